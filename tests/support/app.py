"""Run the real app (lifespan and all) on loopback, and the real arq worker, for tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette

from receiver.app import create_app
from receiver.http.loopback import serve_app
from receiver.jobs.inprocess import InProcessQueue
from receiver.jobs.worker import build_worker
from receiver.services import Services
from receiver.settings import Settings


@dataclass
class RunningApp:
    url: str
    app: Starlette
    client: httpx.AsyncClient

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for in-process jobs to finish (no-op with the arq backend)."""
        queue = self.services.queue
        if isinstance(queue, InProcessQueue):
            await queue.drain(timeout)


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
