"""Run the real app (lifespan and all) on loopback, and the real arq worker, for tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette

from receiver.app import create_app
from receiver.http.loopback import serve_app
from receiver.ingest.writer import EventWriter
from receiver.jobs.inprocess import InProcessQueue
from receiver.services import Handover, Services
from receiver.settings import Settings
from receiver.watch.scheduler import Scheduler
from receiver.worker import build_worker
from tests.support.waiting import eventually


@dataclass
class RunningApp:
    url: str
    app: Starlette
    client: httpx.AsyncClient

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    @property
    def relay(self) -> Handover:
        relay = self.services.relay
        assert relay is not None, "this app runs no relay"
        return relay

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for in-process jobs to finish (no-op with the arq backend)."""
        queue = self.services.queue
        if isinstance(queue, InProcessQueue):
            await queue.drain(timeout)

    async def flush_writer(self) -> None:
        """Commit what the event writer holds and store its refusal samples now."""
        writer: EventWriter = self.app.state.writer
        await writer.flush()

    async def watchers_settled(self) -> None:
        """Wait for the app's own watcher runs in progress (its scheduler's) to end."""
        scheduler = self.services.extras.get("scheduler")
        if isinstance(scheduler, Scheduler):
            await scheduler.settle()

    async def run_to_idle(self, *, sweeps: int = 10) -> None:
        """Do now what the relay's timer would do next: sweep and drain until nothing is due.

        Stands in for "sleep past a sweep or two": once it returns, the start-up sweep has run,
        a sweep found no due event or delivery, and the in-process runner has nothing left
        running, so whatever the app would do with its work (bar retries due later) is done.
        """
        relay = self.relay

        async def first_sweep_done() -> bool:
            return relay.last_sweep_at is not None

        await eventually(first_sweep_done, what="the relay's start-up sweep")
        await self.drain()
        for _ in range(sweeps):
            found = await relay.sweep()
            await self.drain()
            if not found:
                return
        raise AssertionError(f"work still due after {sweeps} sweeps")


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[RunningApp]:
    app = create_app(settings)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        yield RunningApp(url=url, app=app, client=client)


async def run_worker_burst(settings: Settings) -> None:
    """Run the real arq worker until the queue is empty (jobs deferred into the future wait)."""
    worker = build_worker(settings, burst=True, handle_signals=False)
    try:
        await worker.main()
    finally:
        await worker.close()
