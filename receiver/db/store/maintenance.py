"""The statements operations run: the readiness ping, gauge counts, retention, retry by hand."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, text, update

from receiver.db.engine import Engine, Sessions
from receiver.db.tables import Delivery, DeliveryAttempt, Event, RejectedRequest
from receiver.vocabulary import DeliveryState, EventState

# The `delivery_attempts.outcome` of a retry by hand: not a try, a note of who asked.
REQUEUED = "requeued"
ATTEMPT_ERROR_CHARS = 2000


async def ping(*, engine: Engine) -> None:
    """Run one trivial statement; raise whatever the database or driver raised."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


# --- gauges --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    unprocessed_events: int
    oldest_unprocessed_at: datetime | None
    deliveries_by_state: dict[str, int]


async def backlog(*, engine: Engine, delivery_states: Collection[str]) -> Backlog:
    """Events waiting to be processed (and the oldest), and deliveries in `delivery_states`."""
    async with engine.connect() as conn:
        # `state <> 'processed'` is the outbox index's own predicate, so both reads use it;
        # `failed` (poison) events are not waiting for anything and are left out.
        waiting = (
            await conn.execute(
                select(func.count(), func.min(Event.received_at)).where(
                    Event.state != EventState.PROCESSED, Event.state == EventState.RECEIVED
                )
            )
        ).one()
        rows = await conn.execute(
            select(Delivery.state, func.count())
            .where(Delivery.state.in_(list(delivery_states)))
            .group_by(Delivery.state)
        )
        by_state = {state: int(count) for state, count in rows.all()}
        await conn.rollback()
    return Backlog(int(waiting[0]), waiting[1], by_state)


# --- retention -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    found: int  # rows the batch selected (fewer than asked: nothing is left)
    changed: int  # rows this run changed (another run may have taken some meanwhile)


async def purge_raw_body_batch(
    sessions: Sessions, *, received_before: datetime, now: datetime, batch_size: int
) -> Batch:
    """Drop the raw body of up to `batch_size` finished events received before the cutoff."""
    async with sessions.begin() as session:
        ids = list(
            (
                await session.scalars(
                    select(Event.id)
                    .where(
                        Event.received_at < received_before,
                        Event.state.in_((EventState.PROCESSED, EventState.FAILED)),
                        Event.raw_purged_at.is_(None),
                    )
                    .order_by(Event.received_at)
                    .limit(batch_size)
                )
            ).all()
        )
        if not ids:
            return Batch(0, 0)
        # The WHERE repeats the test: a row purged by another run meanwhile is skipped.
        result = await session.execute(
            update(Event)
            .where(Event.id.in_(ids), Event.raw_purged_at.is_(None))
            .values(raw_body=None, raw_purged_at=now)
            .returning(Event.id)
        )
        return Batch(len(ids), len(result.all()))


async def delete_rejected_batch(
    sessions: Sessions, *, received_before: datetime, batch_size: int
) -> Batch:
    """Delete up to `batch_size` refused-request records received before the cutoff."""
    async with sessions.begin() as session:
        ids = list(
            (
                await session.scalars(
                    select(RejectedRequest.id)
                    .where(RejectedRequest.received_at < received_before)
                    .limit(batch_size)
                )
            ).all()
        )
        if not ids:
            return Batch(0, 0)
        result = await session.execute(
            delete(RejectedRequest).where(RejectedRequest.id.in_(ids)).returning(RejectedRequest.id)
        )
        return Batch(len(ids), len(result.all()))


# --- retry by hand (a write to deliveries; kept here with the other operations) ------------


@dataclass(frozen=True)
class Requeue:
    found: str | None  # the delivery's state before (None: no such delivery)
    requeued: bool


async def delivery_ids_in(sessions: Sessions, *, states: Collection[str]) -> list[int]:
    async with sessions() as session:
        found = await session.scalars(
            select(Delivery.id).where(Delivery.state.in_(list(states))).order_by(Delivery.id)
        )
        return list(found.all())


async def requeue_delivery(
    sessions: Sessions,
    *,
    delivery_id: int,
    from_states: Collection[str],
    now: datetime,
    handed_over: bool,
    requested_by: str,
) -> Requeue:
    """Make the delivery pending and due now if it is in `from_states`, noting who asked.

    The state change is a conditional update, so two people (or a person and the scheduler)
    retrying at once revive it once. `handed_over` stamps `enqueued_at` (the caller has a
    queue to give it to); left unset, the relay's next sweep takes it.
    """
    async with sessions.begin() as session:
        row = await session.get(Delivery, delivery_id)
        if row is None:
            return Requeue(found=None, requeued=False)
        # Read before the update, which brings the loaded row up to date.
        before, attempts, last_error = row.state, row.attempts, row.last_error
        revived = await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.state.in_(list(from_states)))
            .values(
                state=DeliveryState.PENDING,
                next_attempt_at=now,
                enqueued_at=now if handed_over else None,
                claimed_at=None,
                updated_at=now,
            )
            .returning(Delivery.id)
        )
        if revived.scalar_one_or_none() is None:
            return Requeue(found=before, requeued=False)
        note = f"retried by hand ({requested_by}) after {before}: {last_error}"
        await session.execute(
            insert(DeliveryAttempt).values(
                delivery_id=delivery_id,
                number=attempts,
                started_at=now,
                finished_at=now,
                outcome=REQUEUED,
                error=note[:ATTEMPT_ERROR_CHARS],
            )
        )
        return Requeue(found=before, requeued=True)
