"""Where the shared rate limits keep their next free slot: Redis when the deployment has it.

A limit (`watch/limiter.SharedLimiter`: PARTNER_API_RATE, the balance endpoint's 1 per 10 s)
is shared by every process of a deployment, so its "next free slot" lives where they all
look. With REDIS_URL set (the deployment shape: every process has it) that is one Redis key
per limit, moved on by a short Lua script: a Partner API request then costs the database
nothing (it was one upsert and one transaction per request, and so a quiet reconciliation
sweep wrote one row per page). Without Redis (the embedded SQLite default, one process) it is
the `rate_slots` row, as before.

If Redis fails, a call takes its slot from the database instead (logged once per outage, not
per call), so a process that lost Redis keeps a limit rather than stopping or asking without
one. Processes that lost Redis share the database's limit while those still reaching it share
Redis's: during a partial outage the two together may ask up to twice the rate (a worker that
lost Redis has no jobs to run, so in practice it is the web's and the CLI's few requests).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from receiver.db.engine import Sessions
from receiver.db.store import watch as store

log = logging.getLogger("receiver.rate_slots")

KEY_PREFIX = "hub-receiver:rate:"

# next = max(next, now) + step; return the slot's start. Microseconds since the epoch (fit in
# a Lua double exactly); the key expires a minute after its slot has passed.
_RESERVE = """
local now = tonumber(ARGV[1])
local step = tonumber(ARGV[2])
local start = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local ttl = math.floor((start + step - now) / 1000) + 60000
redis.call('SET', KEYS[1], string.format('%d', start + step), 'PX', ttl)
return string.format('%d', start)
"""
# next = max(next, until)
_PUSH_BACK = """
local untl = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
if untl > tonumber(redis.call('GET', KEYS[1]) or '0') then
  local ttl = math.max(math.floor((untl - now) / 1000), 0) + 60000
  redis.call('SET', KEYS[1], string.format('%d', untl), 'PX', ttl)
end
return 1
"""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SlotStore(Protocol):
    async def reserve(self, name: str, *, interval: float, now: Callable[[], datetime]) -> datetime:
        """Take the next slot of limit `name`; return when it starts (now or later)."""
        ...

    async def push_back(self, name: str, *, until: datetime, now: datetime) -> None:
        """Start no slot of `name` before `until`."""
        ...


class DatabaseSlots:
    """The `rate_slots` row of each limit (one short transaction per reservation)."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def reserve(self, name: str, *, interval: float, now: Callable[[], datetime]) -> datetime:
        async with self._sessions() as session, session.begin():
            # Connect first: a slot reserved from a clock read before a slow connect would
            # start in the past, and its request would trail it into the next one's slot.
            await session.connection()
            return await store.reserve_slot(session, name=name, interval=interval, now=now())

    async def push_back(self, name: str, *, until: datetime, now: datetime) -> None:
        async with self._sessions() as session, session.begin():
            await store.push_back_slot(session, name=name, until=until)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


class RedisSlots:
    """One Redis key per limit; the database's row when Redis fails."""

    def __init__(self, redis: Redis, *, fallback: DatabaseSlots) -> None:
        self._reserve = redis.register_script(_RESERVE)
        self._push_back = redis.register_script(_PUSH_BACK)
        self._fallback = fallback
        self._failing = False

    async def reserve(self, name: str, *, interval: float, now: Callable[[], datetime]) -> datetime:
        try:
            step = round(interval * 1_000_000)
            start = await self._reserve(keys=[KEY_PREFIX + name], args=[_micros(now()), step])
        except RedisError as exc:
            self._failed(exc)
            return await self._fallback.reserve(name, interval=interval, now=now)
        self._recovered()
        return _EPOCH + timedelta(microseconds=int(start))

    async def push_back(self, name: str, *, until: datetime, now: datetime) -> None:
        try:
            await self._push_back(keys=[KEY_PREFIX + name], args=[_micros(until), _micros(now)])
        except RedisError as exc:
            self._failed(exc)
            await self._fallback.push_back(name, until=until, now=now)
            return
        self._recovered()

    def _failed(self, exc: RedisError) -> None:
        if not self._failing:
            log.warning(
                "rate limits: Redis unavailable (%s); slots come from the database meanwhile",
                type(exc).__name__,
            )
        self._failing = True

    def _recovered(self) -> None:
        if self._failing:
            log.info("rate limits: Redis is back; slots come from Redis again")
        self._failing = False
