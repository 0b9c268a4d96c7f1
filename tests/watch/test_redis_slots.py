"""Shared rate limits in Redis: one limit across processes, and nothing written to the database."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from receiver.db.tables import RateSlot
from receiver.rate_slots import DatabaseSlots, RedisSlots
from receiver.services import Services
from receiver.settings import Settings
from receiver.wiring import open_runtime, partner_rate
from tests.support.fakes import API_KEY, PARTNER_ID, Hub
from tests.watch.support import assert_spaced, open_services

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@asynccontextmanager
async def redis_slots(url: str, services: Services) -> AsyncIterator[RedisSlots]:
    client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        yield RedisSlots(client, fallback=DatabaseSlots(services.sessions))
    finally:
        await client.aclose()


async def rate_rows(services: Services) -> list[str]:
    async with services.sessions() as session:
        return list((await session.scalars(select(RateSlot.name))).all())


async def test_two_processes_take_successive_slots_from_one_key(
    database_url: str, redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    async with (
        open_services(make_settings(database_url=database_url)) as services,
        redis_slots(redis_url, services) as one,
        redis_slots(redis_url, services) as two,
    ):
        starts = [
            await slots.reserve("api", interval=2.0, now=lambda: T0) for slots in (one, two, one)
        ]
        assert starts == [T0, T0 + timedelta(seconds=2), T0 + timedelta(seconds=4)]
        later = T0 + timedelta(minutes=1)  # the slots have passed: the next starts now
        assert await two.reserve("api", interval=2.0, now=lambda: later) == later
        # A Retry-After pushes the next slot back, never forward.
        await one.push_back("api", until=later + timedelta(seconds=30), now=later)
        await two.push_back("api", until=later + timedelta(seconds=5), now=later)
        start = await one.reserve("api", interval=1.0, now=lambda: later)
        assert start == later + timedelta(seconds=30)
        assert await rate_rows(services) == []  # the database was not written


async def test_partner_api_requests_from_two_processes_keep_the_rate_and_write_nothing(
    database_url: str, redis_url: str, make_settings: Callable[..., Settings], hub: Hub
) -> None:
    settings = make_settings(
        database_url=database_url,
        redis_url=redis_url,
        d360_partner_id=PARTNER_ID,
        d360_api_key=API_KEY,
        d360_api_base=hub.url,
        partner_api_rate="10/s",
    )
    # As each process is wired: REDIS_URL set, so its limits live in Redis.
    async with open_runtime(settings, role="cli") as one, open_runtime(settings, role="cli") as two:
        assert isinstance(one.slots, RedisSlots)
        assert all(partner_rate(s) is not None for s in (one, two))
        await asyncio.gather(
            *(
                s.partner.list_channels(limit=1, offset=n)
                for s in (one, two)
                if s.partner is not None
                for n in range(4)
            )
        )
        assert await rate_rows(one) == []
    arrivals = [r.at for r in hub.state.calls(method="GET")]
    assert len(arrivals) == 8
    assert_spaced(arrivals, 0.1)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_without_redis_a_slot_comes_from_the_database_and_the_outage_is_logged_once(
    database_url: str, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        open_services(make_settings(database_url=database_url)) as services,
        redis_slots(f"redis://127.0.0.1:{closed_port()}/0", services) as slots,
    ):
        with caplog.at_level(logging.WARNING, logger="receiver.rate_slots"):
            starts = [await slots.reserve("api", interval=2.0, now=lambda: T0) for _ in range(3)]
        assert starts == [T0, T0 + timedelta(seconds=2), T0 + timedelta(seconds=4)]
        assert await rate_rows(services) == ["api"]
        warnings = [r for r in caplog.records if r.name == "receiver.rate_slots"]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "from the database" in warnings[0].getMessage()
