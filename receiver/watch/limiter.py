"""A rate limit shared by every process of a deployment.

Each `acquire` reserves the limit's next slot where every process looks (Redis, or the
`rate_slots` row without it: `receiver.rate_slots`) and sleeps until that slot starts, so web
processes, workers and a CLI run together never exceed one request per `interval`. A 429's
Retry-After pushes every process's next slot back (`retry_after`). A reservation that is
never used is simply a slot lost: the limit errs on the side of asking 360dialog less.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from receiver.rate_slots import SlotStore


class SharedLimiter:
    """At most one `acquire` per `interval` seconds across all processes sharing `slots`."""

    def __init__(
        self,
        slots: SlotStore,
        *,
        name: str,
        interval: float,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._slots = slots
        self.name = name
        self.interval = interval
        self._clock = clock
        self._sleep = sleep

    async def acquire(self) -> None:
        """Reserve the next slot and wait until it starts."""
        start = await self._slots.reserve(self.name, interval=self.interval, now=self._clock)
        wait = (start - self._clock()).total_seconds()
        if wait > 0:
            await self._sleep(wait)

    async def retry_after(self, seconds: float) -> None:
        """Start no slot, in any process, before `seconds` from now (a 429's Retry-After)."""
        now = self._clock()
        until = now + timedelta(seconds=max(0.0, seconds))
        await self._slots.push_back(self.name, until=until, now=now)
