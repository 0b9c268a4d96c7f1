"""A rate limit shared by every process that uses the same database.

Each `acquire` reserves the next slot in the `rate_slots` row (one short transaction) and
sleeps until that slot starts, so web processes, workers and a CLI run together never
exceed one request per `interval`. A 429's Retry-After pushes every process's next slot
back (`retry_after`). A reservation that is never used is simply a slot lost: the limit
errs on the side of asking 360dialog less.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from receiver.db.engine import Sessions
from receiver.db.store import watch as store


class SharedLimiter:
    """At most one `acquire` per `interval` seconds across all processes sharing `sessions`."""

    def __init__(
        self,
        sessions: Sessions,
        *,
        name: str,
        interval: float,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sessions = sessions
        self.name = name
        self.interval = interval
        self._clock = clock
        self._sleep = sleep

    async def acquire(self) -> None:
        """Reserve the next slot and wait until it starts."""
        async with self._sessions() as session, session.begin():
            # Connect first: a slot reserved from a clock read before a slow connect would
            # start in the past, and its request would trail it into the next one's slot.
            await session.connection()
            start = await store.reserve_slot(
                session, name=self.name, interval=self.interval, now=self._clock()
            )
        wait = (start - self._clock()).total_seconds()
        if wait > 0:
            await self._sleep(wait)

    async def retry_after(self, seconds: float) -> None:
        """Start no slot, in any process, before `seconds` from now (a 429's Retry-After)."""
        until = self._clock() + timedelta(seconds=max(0.0, seconds))
        async with self._sessions() as session, session.begin():
            await store.push_back_slot(session, name=self.name, until=until)
