"""After a pipeline step commits: count what it wrote, send first attempts, queue retries."""

from __future__ import annotations

import asyncio
import logging

from receiver.jobs.relay import DELIVER
from receiver.pipeline.deliver import deliver
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
    services: Services, created: list[tuple[int, str, str]], *, change: ChannelUpdate
) -> None:
    if change.change is not None:
        services.metrics.status_changes.labels(
            from_status=change.change.from_status or "none", to_status=change.change.to_status
        ).inc()
    count_routed(services, created)
    pending = [i for i, state, _kind in created if state == DeliveryState.PENDING]
    if not pending:
        return
    # First attempts run here, concurrently, one queue hop sooner than a job would; each
    # claims its row like any `deliver` job. Retries and failures go to the queue, and the
    # sweep is the backstop if this process dies mid-send (the claim's lease expires).
    ctx: JobContext = {"services": services}
    await asyncio.gather(*(_first_attempt(services, ctx, i) for i in pending))


async def _first_attempt(services: Services, ctx: JobContext, delivery_id: int) -> None:
    # Each delivery hands its own retry to the queue as soon as it fails, so a target that
    # hangs does not delay another target's retry schedule.
    try:
        await deliver(ctx, delivery_id)
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
