"""The scheduler runs each watcher once per interval across processes sharing a database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from receiver.services import Services
from receiver.settings import Settings
from receiver.watch.scheduler import Scheduler
from tests.watch.support import open_services

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Counting:
    """A watcher that counts its runs (and can be told to fail)."""

    def __init__(self, name: str = "counting", *, every: float | None = 60.0) -> None:
        self.name = name
        self.every = every
        self.runs: list[str] = []
        self.fail = False

    def interval(self, settings: Settings) -> float | None:
        return self.every

    async def run_once(self, services: Services) -> object:
        self.runs.append(str(id(services)))
        if self.fail:
            raise RuntimeError("the upstream said no")
        return {"runs": len(self.runs)}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def test_two_processes_run_a_watcher_once_per_interval(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database_url=database_url)
    clock = Clock()
    watcher = Counting(every=60.0)
    async with open_services(settings) as one, open_services(settings) as two:
        one.clock = two.clock = clock
        schedulers = [Scheduler(one, [watcher]), Scheduler(two, [watcher])]
        for _ in range(3):  # ticks within the first interval, both processes asking
            await asyncio.gather(*(s.run_due() for s in schedulers))
        assert len(watcher.runs) == 1
        clock.now = T0 + timedelta(seconds=61)
        for _ in range(3):
            await asyncio.gather(*(s.run_due() for s in schedulers))
        assert len(watcher.runs) == 2


async def test_a_watcher_that_is_off_never_runs(
    sqlite_url: str, make_settings: Callable[..., Settings]
) -> None:
    watcher = Counting(every=None)
    async with open_services(make_settings(database_url=sqlite_url)) as services:
        assert await Scheduler(services, [watcher]).run_due() == []
    assert watcher.runs == []


async def test_a_failing_watcher_is_logged_and_the_loop_goes_on(
    sqlite_url: str, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    broken, healthy = Counting("broken"), Counting("healthy")
    broken.fail = True
    async with open_services(make_settings(database_url=sqlite_url)) as services:
        services.clock = clock
        scheduler = Scheduler(services, [broken, healthy])
        with caplog.at_level(logging.ERROR, logger="receiver.watch"):
            assert await scheduler.run_due() == ["broken", "healthy"]
        clock.now = T0 + timedelta(minutes=2)
        assert await scheduler.run_due() == ["broken", "healthy"]
    assert len(healthy.runs) == 2
    assert "watcher broken failed (RuntimeError); it runs again next interval" in caplog.text


async def test_the_background_loop_runs_due_watchers_until_stopped(
    sqlite_url: str, make_settings: Callable[..., Settings]
) -> None:
    watcher = Counting(every=3600.0)
    async with open_services(make_settings(database_url=sqlite_url)) as services:
        scheduler = Scheduler(services, [watcher], tick=0.05)
        scheduler.start()
        for _ in range(100):
            if watcher.runs:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # more ticks: still one run in the interval
        await scheduler.stop()
    assert len(watcher.runs) == 1


async def test_settle_waits_for_the_runs_in_progress(
    sqlite_url: str, make_settings: Callable[..., Settings]
) -> None:
    gate = asyncio.Event()
    finished: list[bool] = []

    class Slow(Counting):
        async def run_once(self, services: Services) -> object:
            await gate.wait()
            finished.append(True)
            return None

    async with open_services(make_settings(database_url=sqlite_url)) as services:
        scheduler = Scheduler(services, [Slow("slow")])
        assert await scheduler.start_due() == ["slow"]
        settling = asyncio.create_task(scheduler.settle())
        await asyncio.sleep(0.05)
        assert not settling.done() and finished == []
        gate.set()
        await settling
        assert finished == [True]
