"""Channel and client snapshots, and the status changes recorded against them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from receiver.db.dialect import upsert
from receiver.db.tables import Base, Channel, Client, StatusChange


async def get_channel(
    session: AsyncSession, *, channel_id: str, fresh: bool = False
) -> Channel | None:
    """The channel row; `fresh` re-reads it even when the session holds a copy."""
    return await session.get(Channel, channel_id, populate_existing=fresh)


async def get_client(
    session: AsyncSession, *, client_id: str, fresh: bool = False
) -> Client | None:
    return await session.get(Client, client_id, populate_existing=fresh)


async def client_exists(session: AsyncSession, *, client_id: str) -> bool:
    found = await session.execute(select(Client.id).where(Client.id == client_id))
    return found.first() is not None


async def lock_client(session: AsyncSession, *, client_id: str) -> Client | None:
    """The client row, locked for this transaction (PostgreSQL's FOR UPDATE)."""
    return await session.get(Client, client_id, with_for_update=True)


async def insert_client(session: AsyncSession, *, client_id: str, values: dict[str, Any]) -> None:
    """Insert a client unless one with that id exists (a concurrent insert wins)."""
    await session.execute(
        upsert(session, Client).values(id=client_id, **values).on_conflict_do_nothing()
    )


async def update_client(session: AsyncSession, *, client: Client, values: dict[str, Any]) -> None:
    """Write `values` on the client's row and on `client` itself (no re-read)."""
    await session.execute(
        update(Client)
        .where(Client.id == client.id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    _committed(client, values)


def _committed(row: Base, values: dict[str, Any]) -> None:
    """Give a loaded row the values just written to it, as if it had been read again."""
    for key, value in values.items():
        set_committed_value(row, key, value)


async def read_channel(session: AsyncSession, *, channel_id: str) -> Channel | None:
    return (
        await session.execute(
            select(Channel)
            .where(Channel.id == channel_id)
            .execution_options(populate_existing=True)  # never a stale cached row
        )
    ).scalar_one_or_none()


async def insert_channel(session: AsyncSession, *, channel_id: str, values: dict[str, Any]) -> bool:
    """Insert the channel at version 1; False when another transaction created it first."""
    inserted = await session.execute(
        upsert(session, Channel)
        .values(id=channel_id, version=1, **values)
        .on_conflict_do_nothing()
        .returning(Channel.version)
    )
    return inserted.scalar_one_or_none() is not None


async def update_channel_if_version(
    session: AsyncSession, *, channel: Channel, values: dict[str, Any]
) -> int | None:
    """Compare-and-set on the version `channel` was read at: the new version, or None when
    another writer moved it. On success `channel` holds what was written (no re-read)."""
    version = channel.version
    updated = await session.execute(
        update(Channel)
        .where(Channel.id == channel.id, Channel.version == version)
        .values(version=version + 1, **values)
        .returning(Channel.version)
        .execution_options(synchronize_session=False)
    )
    new_version: int | None = updated.scalar_one_or_none()
    if new_version is not None:
        _committed(channel, {**values, "version": new_version})
    return new_version


async def insert_status_change(
    session: AsyncSession,
    *,
    channel_id: str,
    from_status: str | None,
    to_status: str,
    why: str,
    event_id: int,
    changed_at: datetime,
    channel_version: int,
) -> None:
    await session.execute(
        insert(StatusChange).values(
            channel_id=channel_id,
            from_status=from_status,
            to_status=to_status,
            why=why,
            event_id=event_id,
            changed_at=changed_at,
            channel_version=channel_version,
        )
    )


async def status_change_of_event(session: AsyncSession, *, event_id: int) -> StatusChange | None:
    """The (first) status change an event caused, if any."""
    return (
        await session.scalars(
            select(StatusChange)
            .where(StatusChange.event_id == event_id)
            .order_by(StatusChange.id)
            .limit(1)
        )
    ).first()
