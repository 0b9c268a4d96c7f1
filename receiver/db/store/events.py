"""Stored events: the group-commit insert, leases, outbox marks and the replay selection."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, exists, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql.base import Executable

from receiver.db.dialect import upsert
from receiver.db.tables import Base, Client, Event, RejectedRequest
from receiver.vocabulary import EventState

EVENTS: Table = Base.metadata.tables["events"]
EVENT_COLUMNS: frozenset[str] = frozenset(EVENTS.c.keys())


def event_insert(engine: AsyncEngine) -> Executable:
    """The group commit's statement: built once, run as an executemany for every batch.

    Against the Table, not `.values([...])`: compiled once and cached, where a statement
    with values compiled anew for every batch and cost half the web process's CPU under load.
    """
    return (
        upsert(engine, EVENTS)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(EVENTS.c.id, EVENTS.c.dedup_key)
    )


async def insert_events(
    connection: AsyncConnection, *, statement: Executable, rows: list[dict[str, Any]]
) -> list[tuple[int, str]]:
    """Insert `rows` (each with the same keys); return (id, dedup_key) of the new ones."""
    inserted = await connection.execute(statement, rows)
    return [(event_id, key) for event_id, key in inserted.all()]


async def ids_by_dedup_key(
    connection: AsyncConnection, *, keys: Sequence[str]
) -> list[tuple[int, str]]:
    found = await connection.execute(
        select(Event.id, Event.dedup_key).where(Event.dedup_key.in_(list(keys)))
    )
    return [(event_id, key) for event_id, key in found.all()]


async def insert_rejections(connection: AsyncConnection, *, rows: list[dict[str, Any]]) -> None:
    await connection.execute(insert(RejectedRequest), rows)


async def get_event(session: AsyncSession, *, event_id: int) -> Event | None:
    return await session.get(Event, event_id)


async def claim_events(
    session: AsyncSession,
    *,
    event_ids: Sequence[int],
    now: datetime,
    lease_until: datetime,
    own_leases: Collection[datetime] = (),
) -> dict[int, tuple[Event, bool]]:
    """Lease the unprocessed events among `event_ids` that nobody holds, in one statement.

    A lease one of `own_leases` counts as free (this process's own, from a commit that went
    unanswered). Return the leased events by id, each with whether its client is already
    stored (enrichment then skips the client lookup), read by the same statement; an event
    done or held by another run is absent.
    """
    free = or_(Event.lease_until.is_(None), Event.lease_until < now)
    if own_leases:
        free = or_(free, Event.lease_until.in_(list(own_leases)))
    client_known = exists(select(Client.id).where(Client.id == Event.client_id))
    result = await session.execute(
        update(Event)
        .where(Event.id.in_(list(set(event_ids))), Event.state == EventState.RECEIVED, free)
        .values(lease_until=lease_until, attempts=Event.attempts + 1)
        .returning(Event, client_known.label("client_known"))
    )
    return {row[0].id: (row[0], bool(row[1])) for row in result.all()}


async def claim_for_reenrichment(
    session: AsyncSession, *, event_id: int, now: datetime, next_try: datetime
) -> Event | None:
    """Take a processed, not-enriched event whose turn it is, pushing its next turn forward."""
    claimed = await session.execute(
        update(Event)
        .where(
            Event.id == event_id,
            Event.state == EventState.PROCESSED,
            Event.enrichment == "not_enriched",
            or_(Event.next_attempt_at.is_(None), Event.next_attempt_at <= now),
        )
        .values(next_attempt_at=next_try)
        .returning(Event)
    )
    return claimed.scalar_one_or_none()


async def update_event(session: AsyncSession, *, event_id: int, values: dict[str, Any]) -> None:
    await session.execute(update(Event).where(Event.id == event_id).values(**values))


async def select_event_ids(
    session: AsyncSession,
    *,
    event_ids: Sequence[int] | None,
    since: datetime | None,
    until: datetime | None,
    channel: str | None,
    event_type: str | None,
    limit: int,
) -> list[int]:
    """Ids of the events matching every filter given, oldest first, at most `limit`."""
    query = select(Event.id).order_by(Event.id).limit(limit)
    if event_ids is not None:
        query = query.where(Event.id.in_(list(event_ids)))
    if since is not None:
        query = query.where(Event.received_at >= since)
    if until is not None:
        query = query.where(Event.received_at < until)
    if channel is not None:
        query = query.where(Event.channel_id == channel)
    if event_type is not None:
        query = query.where(Event.event_type == event_type)
    return list((await session.scalars(query)).all())


async def due_event_ids(
    connection: AsyncConnection, *, now: datetime, stale: datetime, limit: int
) -> list[int]:
    """Unprocessed events that are due and not handed over since `stale`."""
    return list(
        (
            await connection.execute(
                select(Event.id)
                .where(
                    Event.state == EventState.RECEIVED,
                    or_(Event.enqueued_at.is_(None), Event.enqueued_at < stale),
                    or_(Event.next_attempt_at.is_(None), Event.next_attempt_at <= now),
                )
                .order_by(Event.id)
                .limit(limit)
            )
        ).scalars()
    )


async def reenrichment_due_ids(
    connection: AsyncConnection, *, now: datetime, received_after: datetime, limit: int
) -> list[int]:
    """Events routed without the Partner API, received after `received_after`, now due."""
    return list(
        (
            await connection.execute(
                select(Event.id)
                .where(
                    Event.enrichment == "not_enriched",
                    Event.state == EventState.PROCESSED,
                    Event.received_at > received_after,
                    or_(Event.next_attempt_at.is_(None), Event.next_attempt_at <= now),
                )
                .order_by(Event.id)
                .limit(limit)
            )
        ).scalars()
    )


async def mark_events_enqueued(
    connection: AsyncConnection, *, event_ids: Sequence[int], at: datetime
) -> None:
    await connection.execute(
        update(Event).where(Event.id.in_(list(event_ids))).values(enqueued_at=at)
    )


async def unmark_events_enqueued(connection: AsyncConnection, *, event_ids: Sequence[int]) -> None:
    """Take back the hand-over mark of events the queue refused (the sweep takes them)."""
    await connection.execute(
        update(Event).where(Event.id.in_(list(event_ids))).values(enqueued_at=None)
    )
