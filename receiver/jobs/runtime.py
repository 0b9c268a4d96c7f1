"""Open and close a process's services: database, queue backend, relay (and later clients)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from receiver.jobs.arq_queue import ArqQueue
from receiver.jobs.inprocess import InProcessQueue
from receiver.jobs.registry import JOB_FUNCTIONS
from receiver.jobs.relay import Relay
from receiver.metrics import Metrics
from receiver.services import Role, Services, base_services, load_rules_holder, partner_client
from receiver.settings import Settings

log = logging.getLogger("receiver.runtime")


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings, *, role: Role, metrics: Metrics | None = None
) -> AsyncIterator[Services]:
    """Build the services for `role`; on exit hand back in-flight work and close everything."""
    rules = load_rules_holder(
        settings
    )  # a bad rules file stops start-up here, before anything opens
    services = base_services(settings, metrics=metrics)
    services.rules_holder = rules
    services.partner = partner_client(settings, services.metrics)
    ctx = {"services": services}
    if settings.redis_url:
        services.queue = ArqQueue(settings.redis_url)
    elif role == "web":
        services.queue = InProcessQueue(
            JOB_FUNCTIONS, ctx=ctx, concurrency=settings.worker_max_jobs
        )
    if services.queue is not None and role in ("web", "worker"):
        services.relay = Relay(
            engine=services.engine,
            queue=services.queue,
            clock=services.clock,
            sweep_interval=settings.sweep_interval,
            requeue_after=settings.requeue_after,
        )
        services.relay.start()
    log.info(
        "runtime open",
        extra={"role": role, "queue": services.queue.name if services.queue else None},
    )
    try:
        yield services
    finally:
        if services.relay is not None:
            await services.relay.stop()
        if services.queue is not None:
            await services.queue.close()
        if services.partner is not None:
            await services.partner.aclose()
        await services.engine.dispose()
