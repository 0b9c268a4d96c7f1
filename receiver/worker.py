"""The arq worker (`hub-receiver worker`): the same job functions, run from Redis.

Every job is idempotent (it checks and claims its row first), because arq runs a job again
when a worker dies mid-run. Only `Retry` retries in arq: our jobs raise `RetryLater`, turned
into `Retry` here. Results are not kept (`keep_result=0`) so a finished job id can be
enqueued again at once, e.g. for a delivery's next attempt.

On SIGTERM or SIGINT (a deploy, a scale-down, Ctrl-C) the worker takes no new job, lets the
running ones finish for up to `SHUTDOWN_GRACE` seconds, hands the rest back to the queue
(arq re-queues a cancelled job at once) and exits 0: a deploy is not a crash.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from arq import Retry
from arq.connections import RedisSettings
from arq.worker import Function, Worker, func

from receiver.http.loopback import serve_app
from receiver.http.metrics import metrics_app
from receiver.jobs.arq_queue import job_deserializer, job_serializer
from receiver.jobs.registry import JOB_FUNCTIONS
from receiver.metrics import Metrics
from receiver.queue import JobContext, JobFunction, RetryLater
from receiver.settings import Settings
from receiver.wiring import open_runtime

log = logging.getLogger("receiver.worker")

MAX_TRIES = 50
# Seconds a stopping worker gives its running jobs before handing them back. Below the 10 s
# Docker (and most PaaS, 30 s) wait between SIGTERM and SIGKILL, so the hand-back happens
# before the kill; almost every job takes milliseconds, only a send to a slow target more.
SHUTDOWN_GRACE = 8


def _as_arq(name: str, function: JobFunction, *, timeout: float) -> Function:
    async def run(ctx: JobContext, arg: int) -> None:
        try:
            await function(ctx, arg)
        except RetryLater as retry:
            raise Retry(defer=retry.defer) from None

    run.__qualname__ = name
    return func(run, name=name, timeout=timeout, max_tries=MAX_TRIES, keep_result=0)


def build_worker(
    settings: Settings,
    *,
    burst: bool = False,
    handle_signals: bool = True,
    metrics: Metrics | None = None,
) -> Worker:
    """Build the worker inside a running event loop."""
    if not settings.redis_url:
        raise ValueError(
            "REDIS_URL is not set: the worker needs Redis (without it, `serve` runs jobs)"
        )
    timeouts = {"deliver": settings.delivery_timeout + 15.0}
    functions = [
        _as_arq(name, function, timeout=timeouts.get(name, settings.process_timeout))
        for name, function in JOB_FUNCTIONS.items()
    ]
    runtimes: list[Any] = []

    async def startup(ctx: JobContext) -> None:
        runtime = open_runtime(settings, role="worker", metrics=metrics)
        services = await runtime.__aenter__()
        ctx["services"] = services
        runtimes.append(runtime)
        if settings.worker_metrics_port:
            # The worker's counters (deliveries, enrichment, jobs) live in this process.
            server = serve_app(
                metrics_app(services), host=settings.host, port=settings.worker_metrics_port
            )
            await server.__aenter__()
            runtimes.append(server)

    async def shutdown(ctx: JobContext) -> None:
        while runtimes:  # the metrics server first, then the runtime
            await runtimes.pop().__aexit__(None, None, None)

    return Worker(
        functions=functions,
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        max_jobs=settings.worker_max_jobs,
        keep_result=0,
        max_tries=MAX_TRIES,
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
        burst=burst,
        handle_signals=handle_signals,
        # With a wait, arq's signal handler stops picking jobs and waits for the running
        # ones; without, it cancels them at once (re-queued, but a send may be cut short).
        job_completion_wait=SHUTDOWN_GRACE,
        health_check_interval=15,
        # How long an idle worker waits before looking at the queue again: it is most of
        # the end-to-end latency at low load, and costs a cheap Redis call per poll.
        poll_delay=0.01,
        allow_abort_jobs=False,
    )


async def run_worker(settings: Settings, *, burst: bool = False) -> None:
    """Run the worker until it stops; then let running jobs finish before the loop closes.

    arq ends its main loop when it loses Redis; whatever jobs are still running would then
    be cancelled by the loop's shutdown, possibly between a send and its record. Waiting
    for them here (bounded) keeps that from turning into a second send.

    On a signal arq stops by cancelling its own main task: that CancelledError is the
    normal end of a worker, so it ends here instead of as a traceback and exit status 1.
    """
    worker = build_worker(settings, burst=burst)
    stopped_by: list[signal.Signals] = []
    worker.on_stop = stopped_by.append
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not stopped_by or (current is not None and current.cancelling()):
            raise  # cancelled from outside, not stopped by a signal: not ours to swallow
    finally:
        running = [task for task in worker.tasks.values() if not task.done()]
        if running:
            log.info("waiting for %d running jobs before stopping", len(running))
            await asyncio.wait(running, timeout=settings.delivery_timeout + 20)
        await worker.close()
    if stopped_by:
        # arq's own "shutdown on SIGTERM, wait complete" line has the job counts.
        log.info("worker stopped", extra={"signal": stopped_by[0].name})
