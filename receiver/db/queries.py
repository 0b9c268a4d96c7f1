"""Small repository functions used by the HTTP layer (which does not import sqlalchemy)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from receiver.db.tables import Event


async def existing_dedup_keys(
    sessions: async_sessionmaker[AsyncSession], keys: Collection[str], *, received_after: datetime
) -> set[str]:
    """Which of `keys` belong to events received after `received_after`."""
    if not keys:
        return set()
    try:
        async with sessions() as session:
            found = await session.execute(
                select(Event.dedup_key).where(
                    Event.dedup_key.in_(list(keys)), Event.received_at > received_after
                )
            )
            return set(found.scalars())
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseUnavailableError(type(exc).__name__) from exc


class DatabaseUnavailableError(Exception):
    """The database could not answer; the caller answers 503."""
