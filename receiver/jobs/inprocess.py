"""In-process job runner: the embedded default when REDIS_URL is unset.

Runs the same job functions as the arq worker, as tasks in the web process, at most
`concurrency` at a time, one run per job id at a time. On shutdown, running jobs get a
grace period and are then cancelled; their rows stay unprocessed and the next start's sweep
picks them up, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from receiver.queue import JobFunction, JobRequest, RetryLater

log = logging.getLogger("receiver.jobs")


class InProcessQueue:
    name = "in-process"

    def __init__(
        self,
        functions: Mapping[str, JobFunction],
        *,
        ctx: dict[str, Any],
        concurrency: int = 20,
        max_tries: int = 1000,
    ) -> None:
        self._functions = functions
        self._ctx = ctx
        self._semaphore = asyncio.Semaphore(concurrency)
        self._max_tries = max_tries
        self._active: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[asyncio.Task[None] | None] = set()
        self._closing = False

    async def enqueue_many(self, jobs: Sequence[JobRequest]) -> None:
        for job in jobs:
            if self._closing or job.job_id in self._active:
                continue
            if job.function not in self._functions:
                raise KeyError(f"no job function named {job.function!r}")
            self._active.add(job.job_id)
            task = asyncio.create_task(self._run(job, job.defer, 1), name=job.job_id)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, job: JobRequest, delay: float, job_try: int) -> None:
        try:
            while True:
                if delay > 0:
                    if self._closing:
                        return  # its row stays due: the next start's sweep brings it back
                    await asyncio.sleep(delay)
                async with self._semaphore:
                    ctx = {**self._ctx, "job_try": job_try, "job_id": job.job_id}
                    task = asyncio.current_task()
                    self._running.add(task)
                    try:
                        await self._functions[job.function](ctx, job.arg)
                        return
                    except RetryLater as retry:
                        if job_try >= self._max_tries:
                            log.error("job %s gave up after %d tries", job.job_id, job_try)
                            return
                        delay, job_try = retry.defer, job_try + 1
                    except Exception:
                        # Same contract as arq: any other exception ends the job. The row
                        # keeps its state, so the sweep brings the work back later.
                        log.exception("job %s failed", job.job_id)
                        return
                    finally:
                        self._running.discard(task)
        finally:
            self._active.discard(job.job_id)

    async def ping(self) -> bool:
        return not self._closing

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until nothing is running or scheduled (tests, `dev`, shutdown)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, grace: float = 10.0) -> None:
        self._closing = True
        # A job asleep until its retry time (a failed send waits 30 s) or waiting for a slot
        # has nothing to finish: stop it now, so only running jobs hold up a Ctrl-C.
        for task in self._tasks - self._running:
            task.cancel()
        running = list(self._tasks)
        if not running:
            return
        _done, pending = await asyncio.wait(running, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
