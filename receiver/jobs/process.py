"""`process_event(ctx, event_id)`: take one stored event through the pipeline.

Each run claims the event with a lease (a conditional update), so two runs of the same
event never overlap even when a sweep re-enqueues it while it runs; whatever a run writes
lands in one transaction with the `processed` mark, so a crash part-way leaves the event
unprocessed and the next run starts over cleanly.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import or_, update

from receiver.db.tables import Event
from receiver.jobs.queue import JobContext
from receiver.logs import bind_event
from receiver.services import Services

log = logging.getLogger("receiver.jobs.process")

LEASE = timedelta(minutes=2)


async def claim_event(services: Services, event_id: int) -> Event | None:
    """Take the lease on an unprocessed event; None when it is done or held by another run."""
    now = services.clock()
    async with services.sessions.begin() as session:
        result = await session.execute(
            update(Event)
            .where(
                Event.id == event_id,
                Event.state != "processed",
                or_(Event.lease_until.is_(None), Event.lease_until < now),
            )
            .values(lease_until=now + LEASE, attempts=Event.attempts + 1)
            .returning(Event)
        )
        return result.scalar_one_or_none()


async def process_event(ctx: JobContext, event_id: int) -> None:
    services: Services = ctx["services"]
    event = await claim_event(services, event_id)
    if event is None:
        services.metrics.jobs.labels(function="process_event", outcome="skipped").inc()
        return
    with bind_event(correlation_id=event.correlation_id, event_id=event.id):
        async with services.sessions.begin() as session:
            await session.execute(
                update(Event)
                .where(Event.id == event_id)
                .values(state="processed", processed_at=services.clock(), lease_until=None)
            )
        services.metrics.jobs.labels(function="process_event", outcome="processed").inc()
        log.info("event processed", extra={"event_type": event.event_type})
