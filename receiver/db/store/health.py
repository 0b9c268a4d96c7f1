"""Number health: the numbers' encrypted API keys, and the guarded record of each check."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from receiver.db.dialect import upsert
from receiver.db.tables import NumberHealth


async def put_key(
    session: AsyncSession,
    *,
    channel_id: str,
    encrypted: str,
    now: datetime,
    next_check_at: datetime,
) -> None:
    """Store a number's (encrypted) key and when the watcher first checks it."""
    values = {
        "api_key": encrypted,
        "key_set_at": now,
        "next_check_at": next_check_at,
        "last_error": None,
    }
    await session.execute(
        upsert(session, NumberHealth)
        .values(channel_id=channel_id, **values)
        .on_conflict_do_update(index_elements=["channel_id"], set_=values)
    )


async def clear_key(session: AsyncSession, *, channel_id: str) -> bool:
    """Forget a number's key and its health; False when it had no key."""
    result = await session.execute(
        delete(NumberHealth).where(
            NumberHealth.channel_id == channel_id, NumberHealth.api_key.is_not(None)
        )
    )
    return bool(getattr(result, "rowcount", 0))


async def encrypted_keys(session: AsyncSession) -> list[tuple[str, str]]:
    """(channel id, encrypted key) of every number with a key."""
    rows = await session.execute(
        select(NumberHealth.channel_id, NumberHealth.api_key)
        .where(NumberHealth.api_key.is_not(None))
        .order_by(NumberHealth.channel_id)
    )
    return [(row[0], row[1]) for row in rows if row[1] is not None]


async def keyed_numbers(
    session: AsyncSession, *, due_at: datetime | None = None, limit: int | None = None
) -> list[NumberHealth]:
    """Numbers with a key; with `due_at`, only those whose next check is due by then."""
    query = select(NumberHealth).where(NumberHealth.api_key.is_not(None))
    if due_at is not None:
        query = query.where(
            or_(NumberHealth.next_check_at.is_(None), NumberHealth.next_check_at <= due_at)
        ).order_by(NumberHealth.next_check_at)
    else:
        query = query.order_by(NumberHealth.channel_id)
    if limit is not None:
        query = query.limit(limit)
    return list((await session.execute(query)).scalars())


async def claim_request(
    session: AsyncSession,
    *,
    channel_id: str,
    now: datetime,
    not_after: datetime,
    next_check_at: datetime,
) -> bool:
    """Take the right to ask 360dialog about a number now.

    Succeeds only when the previous request was made at or before `not_after` (now minus
    the 5-minute floor): the one guard, whichever process or command asks.
    """
    result = await session.execute(
        update(NumberHealth)
        .where(
            NumberHealth.channel_id == channel_id,
            NumberHealth.api_key.is_not(None),
            or_(NumberHealth.requested_at.is_(None), NumberHealth.requested_at <= not_after),
        )
        .values(requested_at=now, next_check_at=next_check_at)
    )
    return getattr(result, "rowcount", 0) == 1


async def save_result(
    session: AsyncSession,
    *,
    channel_id: str,
    requested_at: datetime,
    values: dict[str, Any],
) -> bool:
    """Record what the request made at `requested_at` found (False when a newer one exists)."""
    result = await session.execute(
        update(NumberHealth)
        .where(NumberHealth.channel_id == channel_id, NumberHealth.requested_at == requested_at)
        .values(**values)
    )
    return getattr(result, "rowcount", 0) == 1


async def read_number(session: AsyncSession, *, channel_id: str) -> NumberHealth | None:
    return (
        await session.execute(
            select(NumberHealth)
            .where(NumberHealth.channel_id == channel_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def health_of(
    session: AsyncSession, *, channel_ids: Sequence[str]
) -> dict[str, NumberHealth]:
    if not channel_ids:
        return {}
    rows = await session.execute(
        select(NumberHealth).where(NumberHealth.channel_id.in_(list(channel_ids)))
    )
    return {row.channel_id: row for row in rows.scalars()}
