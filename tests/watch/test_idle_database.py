"""An idle service leaves its database alone: a few reads a minute, no tight polling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import asyncpg

from receiver.jobs.relay import Relay
from receiver.queue import JobRequest
from receiver.settings import Settings
from receiver.wiring import open_runtime
from tests.support.servers import admin_pg_url

IDLE_SECONDS = 10.0


async def transactions(url: str) -> int:
    """The database's commits + rollbacks, read from another database (costs it nothing)."""
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(admin_pg_url())
    try:
        count = await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", name
        )
    finally:
        await conn.close()
    return int(count)


async def test_an_idle_web_and_worker_commit_at_most_two_transactions_a_second(
    pg_url: str, redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    # Production timings: the sweep and the watchers as they ship.
    settings = make_settings(database_url=pg_url, redis_url=redis_url, sweep_interval=15.0)
    async with (
        open_runtime(settings, role="web"),
        open_runtime(settings, role="worker"),
    ):
        await asyncio.sleep(2.0)  # start-up: first sweeps, first watcher checks
        before = await transactions(pg_url)
        await asyncio.sleep(IDLE_SECONDS)
        # Statistics reach pg_stat_database when a backend goes idle, up to ~1 s late.
        await asyncio.sleep(1.5)
        after = await transactions(pg_url)
    assert after - before <= 2 * IDLE_SECONDS


class CountingQueue:
    name = "counting"

    def __init__(self) -> None:
        self.jobs: list[JobRequest] = []

    async def enqueue_many(self, jobs: Sequence[JobRequest]) -> None:
        self.jobs.extend(jobs)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


async def test_a_quiet_relay_sweeps_less_often_and_hands_over_at_once(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database_url=database_url)
    async with open_runtime(settings, role="cli") as services:
        queue = CountingQueue()
        relay = Relay(
            engine=services.engine,
            queue=queue,
            clock=lambda: datetime.now(UTC),
            sweep_interval=0.2,
            requeue_after=5.0,
            send_lease=settings.send_lease,
        )
        sweeps: list[float] = []
        original = relay.sweep

        async def counted() -> int:
            sweeps.append(asyncio.get_running_loop().time())
            return await original()

        relay.sweep = counted  # type: ignore[method-assign]
        relay.start()
        try:
            await asyncio.sleep(3.0)
            # 0.2 s apart without back-off (15 sweeps); quiet, 0.4 then 0.8 s apart.
            assert 3 <= len(sweeps) <= 7, sweeps
            relay.events_committed([12345])
            await asyncio.sleep(0.05)
            assert [j.job_id for j in queue.jobs] == [JobRequest("process_event", 12345).job_id]
        finally:
            await relay.stop()
