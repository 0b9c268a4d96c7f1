"""Delivery rows: routing's inserts, the send claim, outcomes and the outbox marks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from receiver.db.dialect import upsert
from receiver.db.tables import Delivery, DeliveryAttempt, Event
from receiver.vocabulary import DeliveryState


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


def _due(*, now: Any, stale_before: Any) -> ColumnElement[bool]:
    return or_(
        and_(
            Delivery.state.in_((DeliveryState.PENDING, DeliveryState.FAILED)),
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
        ),
        and_(Delivery.state == DeliveryState.SENDING, Delivery.claimed_at < stale_before),
    )


# The claim and record statements are built once, with bound parameters: building one
# (and its cache key) cost ~0.6 ms of CPU, more than running it, once per batch.
_WHEN = Delivery.__table__.c.updated_at.type
_CLAIM = (
    update(Delivery)
    .where(
        Delivery.id.in_(bindparam("ids", expanding=True)),
        _due(now=bindparam("now", type_=_WHEN), stale_before=bindparam("stale", type_=_WHEN)),
    )
    .values(
        state=DeliveryState.SENDING,
        claimed_at=bindparam("now", type_=_WHEN),
        attempts=Delivery.attempts + 1,
        updated_at=bindparam("now", type_=_WHEN),
    )
    .returning(Delivery)
    # The rows come back from RETURNING: no need to look for them in the session.
    .execution_options(synchronize_session=False)
)
_EVENTS = select(Event).where(Event.id.in_(bindparam("ids", expanding=True)))


async def claim_deliveries(
    session: AsyncSession,
    *,
    delivery_ids: Sequence[int],
    now: datetime,
    stale_before: datetime,
) -> dict[int, tuple[Delivery, Event | None]]:
    """Claim the due rows among `delivery_ids` for sending, in two statements whatever N.

    A row is due when waiting, failed and due again, or claimed by a sender that died
    before `stale_before`. Return the claimed rows by id, each with its event (None if the
    event is gone); a row not due is absent.
    """
    rows = (
        await session.scalars(
            _CLAIM, {"ids": list(delivery_ids), "now": now, "stale": stale_before}
        )
    ).all()
    if not rows:
        return {}
    event_ids = list({row.event_id for row in rows})
    events = {event.id: event for event in await session.scalars(_EVENTS, {"ids": event_ids})}
    return {row.id: (row, events.get(row.event_id)) for row in rows}


_DELIVERIES = cast(Table, Delivery.__table__)
_RECORD = (
    update(_DELIVERIES)
    .where(
        _DELIVERIES.c.id.in_(bindparam("ids", expanding=True)),
        _DELIVERIES.c.state == DeliveryState.SENDING,
    )
    .values(
        state=bindparam("new_state"),
        last_error=bindparam("error"),
        next_attempt_at=bindparam("retry_at", type_=_WHEN),
        sent_at=bindparam("sent", type_=_WHEN),
        claimed_at=None,
        enqueued_at=bindparam("enqueued", type_=_WHEN),
        updated_at=bindparam("now", type_=_WHEN),
    )
    .returning(_DELIVERIES.c.id)
)


@dataclass(frozen=True)
class OutcomeRecord:
    """One send's outcome, to be written on its (still claimed) row."""

    delivery_id: int
    attempt: int
    started_at: datetime
    state: str
    error: str | None
    next_attempt_at: datetime | None
    finished_at: datetime


async def record_outcomes(
    session: AsyncSession, *, outcomes: Sequence[OutcomeRecord], now: datetime
) -> set[int]:
    """Write outcomes on their claimed rows and their attempts beside them.

    Rows sharing an outcome (every `sent` of a batch) are written by one UPDATE, and the
    attempts by one INSERT. Return the ids whose row was still `sending` (a row no longer
    claimed was recorded already: its attempt is still written, as one run of it).
    """
    groups: dict[tuple[str, str | None, datetime | None], list[int]] = {}
    for outcome in outcomes:
        key = (outcome.state, outcome.error, outcome.next_attempt_at)
        groups.setdefault(key, []).append(outcome.delivery_id)
    recorded: set[int] = set()
    for (state, error, next_attempt_at), ids in groups.items():
        recorded.update(
            (
                await session.execute(
                    _RECORD,
                    {
                        "ids": ids,
                        "new_state": state,
                        "error": error,
                        "retry_at": next_attempt_at,
                        "sent": now if state == DeliveryState.SENT else None,
                        "enqueued": now if next_attempt_at else None,
                        "now": now,
                    },
                )
            ).scalars()
        )
    # The Table, not the entity, and a list of parameter sets: SQLAlchemy sends one
    # multi-row INSERT ("insertmanyvalues") compiled once.
    attempts = cast(Table, DeliveryAttempt.__table__)
    await session.execute(
        insert(attempts),
        [
            {
                "delivery_id": outcome.delivery_id,
                "number": outcome.attempt,
                "started_at": outcome.started_at,
                "finished_at": outcome.finished_at,
                "outcome": outcome.state,
                "error": outcome.error,
            }
            for outcome in outcomes
        ],
    )
    return recorded


async def due_delivery_ids(
    connection: AsyncConnection,
    *,
    now: datetime,
    stale: datetime,
    claim_stale_before: datetime,
    limit: int,
) -> list[int]:
    """Rows due for a send (as a claim judges them: a `sending` row only once its sender's
    claim is older than `claim_stale_before`) not handed over to the queue since `stale`.

    A row being sent is never queued again by the sweep: a job queued for it would hold the
    row's job id, and the retry its sender asks for after a failure would be dropped as
    already queued.
    """
    return list(
        (
            await connection.execute(
                select(Delivery.id)
                .where(
                    _due(now=now, stale_before=claim_stale_before),
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
