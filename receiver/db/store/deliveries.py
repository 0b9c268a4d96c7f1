"""Delivery rows: routing's inserts, the send claim, outcomes and the outbox marks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from receiver.db.dialect import upsert
from receiver.db.tables import Delivery, DeliveryAttempt, Event
from receiver.vocabulary import DeliveryState

# Due for a send: waiting, failed and due again, or claimed by a worker that died.
DUE_STATES = (DeliveryState.PENDING, DeliveryState.FAILED, DeliveryState.SENDING)


async def deliveries_of_event(session: AsyncSession, *, event_id: int) -> list[Delivery]:
    """Every delivery row of the event, in every round, oldest first."""
    rows = await session.scalars(
        select(Delivery).where(Delivery.event_id == event_id).order_by(Delivery.id)
    )
    return list(rows.all())


async def insert_delivery(session: AsyncSession, *, row: dict[str, Any]) -> int | None:
    """Insert a row unless its (event, rule, target, round) exists; its id, or None."""
    new_id: int | None = (
        await session.execute(
            upsert(session, Delivery)
            .values(**row)
            .on_conflict_do_nothing(
                index_elements=["event_id", "rule_name", "target_name", "replay_round"]
            )
            .returning(Delivery.id)
        )
    ).scalar_one_or_none()
    return new_id


async def skipped_without_owner(
    session: AsyncSession, *, event_id: int, target: str
) -> list[Delivery]:
    """The event's rows to `target` skipped because no recipient was known."""
    rows = await session.scalars(
        select(Delivery).where(
            Delivery.event_id == event_id,
            Delivery.target_name == target,
            Delivery.state == DeliveryState.SKIPPED,
            Delivery.client_id.is_(None),
        )
    )
    return list(rows)


async def revive_skipped(
    session: AsyncSession,
    *,
    delivery_id: int,
    state: str,
    client_id: str,
    reason: str | None,
    now: datetime,
) -> None:
    await session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.state == DeliveryState.SKIPPED)
        .values(
            state=state,
            client_id=client_id,
            last_error=reason,
            enqueued_at=now if state == DeliveryState.PENDING else None,
            updated_at=now,
        )
    )


async def claim_delivery(
    session: AsyncSession, *, delivery_id: int, now: datetime, stale_before: datetime
) -> tuple[Delivery, Event | None] | None:
    """Claim a due row for sending (or one whose sender died before `stale_before`)."""
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            or_(
                and_(
                    Delivery.state.in_((DeliveryState.PENDING, DeliveryState.FAILED)),
                    or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
                ),
                and_(Delivery.state == DeliveryState.SENDING, Delivery.claimed_at < stale_before),
            ),
        )
        .values(
            state=DeliveryState.SENDING,
            claimed_at=now,
            attempts=Delivery.attempts + 1,
            updated_at=now,
        )
        .returning(Delivery)
    )
    row = result.scalar_one_or_none()
    if row is None:
        return None
    return row, await session.get(Event, row.event_id)


async def record_outcome(
    session: AsyncSession,
    *,
    delivery_id: int,
    attempt: int,
    started_at: datetime,
    state: str,
    error: str | None,
    next_attempt_at: datetime | None,
    now: datetime,
) -> bool:
    """Write a send's outcome on its (still claimed) row, and the attempt beside it.

    Return False when the row was no longer `sending` (recorded already).
    """
    result = await session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.state == DeliveryState.SENDING)
        .values(
            state=state,
            last_error=error,
            next_attempt_at=next_attempt_at,
            sent_at=now if state == DeliveryState.SENT else None,
            claimed_at=None,
            enqueued_at=now if next_attempt_at else None,
            updated_at=now,
        )
    )
    await session.execute(
        insert(DeliveryAttempt).values(
            delivery_id=delivery_id,
            number=attempt,
            started_at=started_at,
            finished_at=now,
            outcome=state,
            error=error,
        )
    )
    return bool(getattr(result, "rowcount", 1))


async def due_delivery_ids(
    connection: AsyncConnection, *, now: datetime, stale: datetime, limit: int
) -> list[int]:
    """Rows due for a send that are not handed over to the queue since `stale`."""
    return list(
        (
            await connection.execute(
                select(Delivery.id)
                .where(
                    Delivery.state.in_(DUE_STATES),
                    or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
                    or_(Delivery.enqueued_at.is_(None), Delivery.enqueued_at < stale),
                )
                .order_by(Delivery.id)
                .limit(limit)
            )
        ).scalars()
    )


async def mark_deliveries_enqueued(
    connection: AsyncConnection, *, delivery_ids: Sequence[int], at: datetime
) -> None:
    await connection.execute(
        update(Delivery).where(Delivery.id.in_(list(delivery_ids))).values(enqueued_at=at)
    )
