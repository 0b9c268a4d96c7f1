"""Throttle windows: one `throttles` row per (rule, key), taken by a conditional upsert."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from receiver.db.dialect import upsert
from receiver.db.tables import Throttle

KEY_SIZE = 300  # the key column


async def claim_window(
    session: AsyncSession, *, rule: str, key: str, until: datetime, now: datetime
) -> bool:
    """Take the (rule, key) window until `until` if it is free; False while another holds it."""
    statement = (
        upsert(session, Throttle)
        .values(rule_name=rule, key=key[:KEY_SIZE], until=until)
        .on_conflict_do_update(
            index_elements=["rule_name", "key"],
            set_={"until": until},
            where=Throttle.until <= now,
        )
        .returning(Throttle.rule_name)
    )
    return (await session.execute(statement)).first() is not None


async def window_held(session: AsyncSession, *, rule: str, key: str, now: datetime) -> bool:
    """Whether the (rule, key) window is held now (reads only)."""
    held = await session.scalar(
        select(func.count())
        .select_from(Throttle)
        .where(Throttle.rule_name == rule, Throttle.key == key[:KEY_SIZE], Throttle.until > now)
    )
    return bool(held)


async def held_keys(
    session: AsyncSession, *, rule: str, keys: Sequence[str], now: datetime
) -> set[str]:
    """Which of `keys` are held under `rule` now."""
    found = await session.scalars(
        select(Throttle.key).where(
            Throttle.rule_name == rule, Throttle.key.in_(list(keys)), Throttle.until > now
        )
    )
    return set(found)
