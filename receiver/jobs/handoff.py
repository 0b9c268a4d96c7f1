"""After a pipeline step commits: count what it wrote, send first attempts, queue retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence

from receiver.db.tables import Delivery, Event
from receiver.jobs.relay import DELIVER
from receiver.pipeline.deliver import deliver, deliver_claimed
from receiver.pipeline.snapshots import ChannelUpdate
from receiver.queue import JobContext, JobRequest, QueueUnavailableError, RetryLater
from receiver.services import Services
from receiver.vocabulary import DeliveryState

log = logging.getLogger("receiver.jobs.process")

COUNTED_AT_ROUTING = (DeliveryState.SKIPPED, DeliveryState.THROTTLED, DeliveryState.HELD)


def count_routed(services: Services, created: list[tuple[int, str, str]]) -> None:
    """Count rows that will never be sent now; the rest are counted when sent."""
    for _id, state, kind in created:
        if state in COUNTED_AT_ROUTING:
            services.metrics.deliveries.labels(target_kind=kind, outcome=state).inc()


async def after_commit(
    services: Services,
    created: list[tuple[int, str, str]],
    *,
    change: ChannelUpdate,
    claimed: Sequence[Delivery] = (),
    event: Event | None = None,
) -> None:
    """Count what a step wrote and send its first attempts.

    Rows the step wrote already claimed (`claimed`, with their `event`) are sent as they
    are; rows it left `pending` are claimed first, like any `deliver` job's.
    """
    if change.change is not None:
        services.metrics.status_changes.labels(
            from_status=change.change.from_status or "none", to_status=change.change.to_status
        ).inc()
    count_routed(services, created)
    pending = [i for i, state, _kind in created if state == DeliveryState.PENDING]
    if not pending and not claimed:
        return
    # First attempts run here, concurrently, one queue hop sooner than a job would. Retries
    # and failures go to the queue, and the sweep is the backstop if this process dies
    # mid-send (the claim's lease expires).
    ctx: JobContext = {"services": services}
    sends = [_first_attempt(services, i, deliver(ctx, i)) for i in pending]
    if claimed:
        assert event is not None, "claimed rows come with their event"
        sends += [
            _first_attempt(services, row.id, deliver_claimed(services, row, event))
            for row in claimed
        ]
    await asyncio.gather(*sends)


async def _first_attempt(services: Services, delivery_id: int, attempt: Awaitable[None]) -> None:
    # Each delivery hands its own retry to the queue as soon as it fails, so a target that
    # hangs does not delay another target's retry schedule.
    try:
        await attempt
        return
    except RetryLater as retry:
        job = JobRequest(DELIVER, delivery_id, defer=retry.defer)
    except Exception as exc:  # the job will run it; the sweep is the backstop
        log.error("first delivery attempt failed: %s", type(exc).__name__, exc_info=exc)
        job = JobRequest(DELIVER, delivery_id, defer=1.0)
    try:
        await services.require_queue().enqueue_many([job])
    except QueueUnavailableError:
        log.warning("queue unavailable: delivery %d left for the sweep", delivery_id)
