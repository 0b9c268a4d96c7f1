"""Run each watcher once per interval across every process that shares the database.

Every `tick` seconds a scheduler looks at each watcher whose interval is on (`interval`
returns None when its setting says "off") and not running here already, and tries to take
the lease row `watch:{name}` until now + interval. Only the process that takes it runs the
watcher, so N web processes and workers together run each watcher once per interval; the
lease is never released early, since the interval is the point. A watcher that raises is
logged with its name and tried again next interval: the loop itself never stops on an error.

A watcher may also say, read-only, whether it has anything to do (`has_work`): when it has
not, no lease is taken and the process asks again an interval later. An idle service then
costs its database one read per such watcher and interval instead of a lease write and a
read (bench/idle.py); it is safe because those watchers claim each piece of work with a
conditional update of their own, the lease only saves repeated passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol, cast

from receiver.db.store import watch as store
from receiver.services import Services
from receiver.settings import Settings

log = logging.getLogger("receiver.watch")

DEFAULT_TICK = 5.0


class Watcher(Protocol):
    name: str

    def interval(self, settings: Settings) -> float | None:
        """Seconds between runs, or None when the watcher is off."""
        ...

    async def run_once(self, services: Services) -> object:
        """One pass; what it returns is logged."""
        ...


class CheckedWatcher(Watcher, Protocol):
    async def has_work(self, services: Services) -> bool:
        """Whether a pass now would find anything to do (reads only)."""
        ...


def lease_name(watcher: Watcher) -> str:
    return f"watch:{watcher.name}"


def new_holder() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


class Scheduler:
    """Runs `watchers` in the background of one process (`start` / `stop`)."""

    def __init__(
        self,
        services: Services,
        watchers: Sequence[Watcher],
        *,
        tick: float = DEFAULT_TICK,
        holder: str | None = None,
    ) -> None:
        self._services = services
        self._watchers = list(watchers)
        self._tick = tick
        self.holder = holder or new_holder()
        self._loop: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Task[None]] = {}
        # The lease is re-entrant for its holder (take_lease), so this process remembers
        # when its own run's interval ends and does not ask before then.
        self._next_due: dict[str, datetime] = {}

    def start(self) -> None:
        if self._loop is None and self._watchers:
            self._loop = asyncio.create_task(self._run(), name="watch-scheduler")

    async def stop(self) -> None:
        """Stop ticking and cancel watcher runs in progress (their leases simply expire)."""
        tasks = [t for t in [self._loop, *self._running.values()] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop = None
        self._running.clear()

    async def _run(self) -> None:
        while True:
            try:
                await self.start_due()
            except Exception:  # a database outage must not end the scheduler
                log.exception("watch scheduler tick failed; trying again in %.0fs", self._tick)
            await asyncio.sleep(self._tick)

    async def start_due(self) -> list[str]:
        """Start every watcher that is due and whose lease this process takes; return names."""
        started: list[str] = []
        for watcher in self._watchers:
            interval = watcher.interval(self._services.settings)
            running = self._running.get(watcher.name)
            if interval is None or (running is not None and not running.done()):
                continue
            due = self._next_due.get(watcher.name)
            if due is not None and self._services.clock() < due:
                continue
            if not await self._has_work(watcher, interval):
                continue
            if await self._take(watcher, interval):
                self._running[watcher.name] = asyncio.create_task(
                    self._run_watcher(watcher), name=f"watch-{watcher.name}"
                )
                started.append(watcher.name)
        return started

    async def settle(self) -> None:
        """Wait for the watcher runs in progress to end (a run that raises was logged)."""
        running = [task for task in self._running.values() if not task.done()]
        await asyncio.gather(*running, return_exceptions=True)

    async def run_due(self) -> list[str]:
        """Like `start_due`, then wait for the started runs to end (tests, one-shot use)."""
        started = await self.start_due()
        await asyncio.gather(*(self._running[name] for name in started))
        return started

    async def _has_work(self, watcher: Watcher, interval: float) -> bool:
        if not hasattr(watcher, "has_work"):
            return True
        now = self._services.clock()
        if await cast(CheckedWatcher, watcher).has_work(self._services):
            return True
        self._next_due[watcher.name] = now + timedelta(seconds=interval)
        return False

    async def _take(self, watcher: Watcher, interval: float) -> bool:
        now = self._services.clock()
        until = now + timedelta(seconds=interval)
        async with self._services.sessions() as session, session.begin():
            taken = await store.take_lease(
                session, name=lease_name(watcher), holder=self.holder, until=until, now=now
            )
        if taken:
            self._next_due[watcher.name] = until
        return taken

    async def _run_watcher(self, watcher: Watcher) -> None:
        log.info("watcher %s starting", watcher.name, extra={"watcher": watcher.name})
        try:
            result = await watcher.run_once(self._services)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception(
                "watcher %s failed (%s); it runs again next interval",
                watcher.name,
                type(exc).__name__,
                extra={"watcher": watcher.name},
            )
            return
        log.info("watcher %s done: %s", watcher.name, result, extra={"watcher": watcher.name})
