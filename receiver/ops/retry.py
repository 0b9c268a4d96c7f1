"""Retry a dead or failed delivery by hand (admin API, `deliveries retry`).

The row goes back to `pending`, due now, with its attempt count kept: the retry is one more
try, recorded in `delivery_attempts` as a `requeued` entry so the history shows who asked
for it and what had failed. The state change is a conditional update, so two people (or a
person and the scheduler) retrying at once revive it once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import insert, update

from receiver.db.tables import Delivery, DeliveryAttempt
from receiver.jobs.queue import JobRequest, QueueUnavailableError
from receiver.jobs.relay import DELIVER
from receiver.services import Services

log = logging.getLogger("receiver.ops.retry")

# `held`: a client message over CLIENT_MAX_PER_HOUR (pipeline/route.py); retried by name,
# it is sent whatever the cap says, since a person decided it should go.
RETRYABLE_STATES = ("dead", "failed", "held")
REQUEUED = "requeued"


@dataclass(frozen=True)
class RetryResult:
    delivery_id: int
    retried: bool
    state: str | None  # the state found (None: no such delivery) or `pending` once retried
    enqueued: bool = False


async def retry_delivery(services: Services, delivery_id: int, *, requested_by: str) -> RetryResult:
    """Make a dead/failed delivery due now and hand it to the queue (the sweep is the backstop)."""
    now = services.clock()
    async with services.sessions.begin() as session:
        row = await session.get(Delivery, delivery_id)
        if row is None:
            return RetryResult(delivery_id, retried=False, state=None)
        revived = await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.state.in_(RETRYABLE_STATES))
            .values(
                state="pending",
                next_attempt_at=now,
                # Left unset when nothing can take the job now, so the next sweep does.
                enqueued_at=now if services.queue is not None else None,
                claimed_at=None,
                updated_at=now,
            )
            .returning(Delivery.id)
        )
        if revived.scalar_one_or_none() is None:
            return RetryResult(delivery_id, retried=False, state=row.state)
        await session.execute(
            insert(DeliveryAttempt).values(
                delivery_id=delivery_id,
                number=row.attempts,
                started_at=now,
                finished_at=now,
                outcome=REQUEUED,
                error=f"retried by hand ({requested_by}) after {row.state}: {row.last_error}"[
                    :2000
                ],
            )
        )
        previous = row.state
    log.info(
        "delivery retried by hand",
        extra={"delivery_id": delivery_id, "previous_state": previous, "by": requested_by},
    )
    enqueued = await enqueue_deliveries(services, [delivery_id])
    return RetryResult(delivery_id, retried=True, state="pending", enqueued=enqueued)


async def enqueue_deliveries(services: Services, delivery_ids: list[int]) -> bool:
    """Hand deliveries to the queue; False when they are left for the relay's sweep."""
    if not delivery_ids:
        return True
    if services.queue is None:
        log.info("no queue in this process: %d deliveries left for the sweep", len(delivery_ids))
        return False
    try:
        await services.require_queue().enqueue_many([JobRequest(DELIVER, i) for i in delivery_ids])
    except QueueUnavailableError:
        log.warning("queue unavailable: %d deliveries left for the sweep", len(delivery_ids))
        return False
    return True
