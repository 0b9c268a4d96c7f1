"""Retry a dead, failed or held delivery by hand: the admin API and `deliveries retry`.

The row goes back to `pending`, due now, with its attempt count kept: the retry is one more
try, recorded in `delivery_attempts` as a `requeued` entry so the history shows who asked
for it and what had failed. The state change is a conditional update, so two people (or a
person and the scheduler) retrying at once revive it once. The delivery is then handed to
the queue when this process has one; the relay's sweep is the backstop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from receiver.db.store import maintenance
from receiver.jobs.relay import DELIVER
from receiver.queue import JobRequest, QueueUnavailableError
from receiver.services import Services
from receiver.vocabulary import DeliveryState

log = logging.getLogger("receiver.ops.retry")

# `held`: a client message over CLIENT_MAX_PER_HOUR (pipeline/route.py); retried by id, it
# is sent whatever the cap says, since a person decided it should go.
RETRYABLE_STATES = (DeliveryState.DEAD, DeliveryState.FAILED, DeliveryState.HELD)
# Retrying "everything dead" leaves `held` alone: releasing every held message at once would
# send the very flood the cap stopped.
RETRYABLE_IN_BULK = (DeliveryState.DEAD, DeliveryState.FAILED)
REQUEUED = maintenance.REQUEUED


@dataclass(frozen=True)
class RetryResult:
    delivery_id: int
    retried: bool
    state: str | None  # the state found (None: no such delivery) or `pending` once retried
    enqueued: bool = False


async def retry_delivery(services: Services, delivery_id: int, *, requested_by: str) -> RetryResult:
    """Make a dead/failed/held delivery due now and hand it to the queue."""
    [result] = await retry_deliveries(services, [delivery_id], requested_by=requested_by)
    return result


async def retry_all_dead(services: Services, *, requested_by: str) -> list[RetryResult]:
    """Retry every dead or failed delivery (never a held one)."""
    ids = await maintenance.delivery_ids_in(services.sessions, states=RETRYABLE_IN_BULK)
    results = await retry_deliveries(
        services, ids, requested_by=requested_by, states=RETRYABLE_IN_BULK
    )
    # One that changed state in between (sent meanwhile, retried by someone else) is no news.
    return [result for result in results if result.retried]


async def retry_deliveries(
    services: Services,
    delivery_ids: Sequence[int],
    *,
    requested_by: str,
    states: Sequence[str] = RETRYABLE_STATES,
) -> list[RetryResult]:
    """Retry each delivery in turn (one short transaction each), then hand them over at once."""
    handed_over = services.queue is not None
    found: list[tuple[int, maintenance.Requeue]] = []
    for delivery_id in delivery_ids:
        requeue = await maintenance.requeue_delivery(
            services.sessions,
            delivery_id=delivery_id,
            from_states=states,
            now=services.clock(),
            # Left unset when nothing can take the job now, so the next sweep does.
            handed_over=handed_over,
            requested_by=requested_by,
        )
        if requeue.requeued:
            log.info(
                "delivery retried by hand",
                extra={
                    "delivery_id": delivery_id,
                    "previous_state": requeue.found,
                    "by": requested_by,
                },
            )
        found.append((delivery_id, requeue))
    revived = [delivery_id for delivery_id, requeue in found if requeue.requeued]
    enqueued = await enqueue_deliveries(services, revived) if revived else False
    return [
        RetryResult(delivery_id, retried=True, state=DeliveryState.PENDING, enqueued=enqueued)
        if requeue.requeued
        else RetryResult(delivery_id, retried=False, state=requeue.found)
        for delivery_id, requeue in found
    ]


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
