"""Wire a process: build its services for its role (web, worker, CLI), and close them.

The one place that knows every layer: the queue backend (arq or in-process) with the job
functions, the relay, the Partner API client, the rules, the retention loop. `create_app`,
the arq worker and the CLI call `open_runtime`; nothing below this layer imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from receiver.collector import settle_collector
from receiver.jobs.arq_queue import ArqQueue
from receiver.jobs.inprocess import InProcessQueue
from receiver.jobs.registry import JOB_FUNCTIONS
from receiver.jobs.relay import Relay
from receiver.metrics import Metrics
from receiver.notify import apprise as delivery
from receiver.ops.retention import run_retention
from receiver.rate_slots import DatabaseSlots, RedisSlots
from receiver.routing.rules_state import RulesHolder, load
from receiver.services import Role, Services, base_services, partner_client, utc_now
from receiver.settings import Settings
from receiver.watch.balance import BalanceWatcher
from receiver.watch.catch_up import CatchUpWatcher
from receiver.watch.groups import GroupFlusher
from receiver.watch.health import HealthWatcher
from receiver.watch.keys import check_keys_readable
from receiver.watch.limiter import SharedLimiter
from receiver.watch.reconcile import Reconciler
from receiver.watch.scheduler import Scheduler, Watcher

log = logging.getLogger("receiver.runtime")


PARTNER_API_LIMIT = "partner_api"  # the rate_slots row every Partner API request waits on


def watchers() -> list[Watcher]:
    """Every watcher the scheduler runs (each decides from settings whether it is on)."""
    return [Reconciler(), HealthWatcher(), BalanceWatcher(), CatchUpWatcher(), GroupFlusher()]


def partner_rate(services: Services) -> SharedLimiter | None:
    """The PARTNER_API_RATE limit, shared by every process (receiver.rate_slots)."""
    interval = services.settings.partner_api_rate
    if interval is None:
        return None
    return SharedLimiter(
        services.rate_slots(), name=PARTNER_API_LIMIT, interval=interval, clock=services.clock
    )


def load_rules_holder(settings: Settings) -> RulesHolder:
    """Load the routing rules (raises RulesError naming file, line, rule and key)."""
    return RulesHolder(settings, load(settings, now=utc_now()))


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings, *, role: Role, metrics: Metrics | None = None
) -> AsyncIterator[Services]:
    """Build the services for `role`; on exit hand back in-flight work and close everything."""
    rules = load_rules_holder(
        settings
    )  # a bad rules file stops start-up here, before anything opens
    runs_jobs = role == "worker" or (role == "web" and not settings.redis_url)
    if runs_jobs:
        # A delivery job waits on its send: let every job slot have a sending thread.
        delivery.configure_concurrency(settings.worker_max_jobs)
    services = base_services(settings, metrics=metrics, runs_jobs=runs_jobs)
    services.rules_holder = rules
    if role in ("web", "worker"):
        try:  # keys stored under another KEYS_SECRET stop start-up (KeysError says why)
            await check_keys_readable(services)
        except BaseException:
            await services.engine.dispose()
            raise
    queue = ArqQueue(settings.redis_url) if settings.redis_url else None
    if queue is not None:
        # Every process of a deployment has REDIS_URL: its rate limits live there too.
        services.slots = RedisSlots(queue.redis, fallback=DatabaseSlots(services.sessions))
    services.partner = partner_client(settings, services.metrics, rate=partner_rate(services))
    ctx = {"services": services}
    if queue is not None:
        services.queue = queue
    elif role == "web":
        # On SQLite every job competes with the webhook writer for the one write lock:
        # two at a time keep the acknowledgement path fast (bench/RESULTS.md).
        concurrency = (
            min(settings.worker_max_jobs, 2) if settings.is_sqlite else settings.worker_max_jobs
        )
        services.queue = InProcessQueue(JOB_FUNCTIONS, ctx=ctx, concurrency=concurrency)
    if services.queue is not None and role in ("web", "worker"):
        relay = Relay(
            engine=services.engine,
            queue=services.queue,
            clock=services.clock,
            sweep_interval=settings.sweep_interval,
            requeue_after=settings.requeue_after,
            send_lease=settings.send_lease,
        )
        relay.start()
        services.relay = relay
    retention = (
        asyncio.create_task(_retention_loop(services), name="retention")
        if settings.retention_days and role in ("web", "worker")
        else None
    )
    # The watchers run where jobs run: `serve` without Redis, and every worker (their leases
    # keep N processes from running one twice in an interval).
    scheduler = Scheduler(services, watchers()) if runs_jobs else None
    if scheduler is not None:
        scheduler.start()
        services.extras["scheduler"] = scheduler
    if role in ("web", "worker"):
        settle_collector()
    log.info(
        "runtime open",
        extra={"role": role, "queue": services.queue.name if services.queue else None},
    )
    try:
        yield services
    finally:
        if scheduler is not None:
            await scheduler.stop()
        if retention is not None:
            retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retention
        if services.relay is not None:
            await services.relay.stop()
        if services.queue is not None:
            await services.queue.close()
        if services.partner is not None:
            await services.partner.aclose()
        await services.engine.dispose()


RETENTION_EVERY = 3600.0


async def _retention_loop(services: Services) -> None:
    """Purge old raw bodies hourly (RETENTION_DAYS); idempotent, safe in every process."""
    days = services.settings.retention_days
    assert days is not None
    while True:
        try:
            result = await run_retention(services, older_than_days=days)
            log.info(
                "retention pass",
                extra={
                    "raw_bodies_purged": result.raw_bodies_purged,
                    "rejected_deleted": result.rejected_deleted,
                },
            )
        except Exception:  # retention must never take the process down
            log.exception("retention pass failed; trying again in an hour")
        await asyncio.sleep(RETENTION_EVERY)
