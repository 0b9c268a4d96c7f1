"""One Partner API rate limit across processes: slots reserved in the database."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from receiver.db.store import watch as store
from receiver.partner.client import PartnerClient
from receiver.rate_slots import DatabaseSlots
from receiver.services import Services, partner_client, utc_now
from receiver.settings import Settings
from receiver.watch.limiter import SharedLimiter
from receiver.wiring import PARTNER_API_LIMIT, partner_rate
from tests.support.fakes import API_KEY, PARTNER_ID, Hub
from tests.support.processes import REPO
from tests.watch.support import assert_spaced, open_services

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SLACK = 0.01  # timer resolution


async def test_reserving_slots_hands_out_one_start_per_interval(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    async with open_services(make_settings(database_url=database_url)) as services:
        starts = []
        for _ in range(3):
            async with services.sessions() as session, session.begin():
                starts.append(await store.reserve_slot(session, name="api", interval=2.0, now=T0))
        assert starts == [T0, T0 + timedelta(seconds=2), T0 + timedelta(seconds=4)]
        # Once the slots have passed, the next starts now, not in the past.
        later = T0 + timedelta(minutes=1)
        async with services.sessions() as session, session.begin():
            assert await store.reserve_slot(session, name="api", interval=2.0, now=later) == later


async def test_a_retry_after_pushes_the_next_slot_back_never_forward(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    async with open_services(make_settings(database_url=database_url)) as services:
        async with services.sessions() as session, session.begin():
            await store.push_back_slot(session, name="api", until=T0 + timedelta(seconds=30))
            await store.push_back_slot(session, name="api", until=T0 + timedelta(seconds=5))
        async with services.sessions() as session, session.begin():
            start = await store.reserve_slot(session, name="api", interval=1.0, now=T0)
        assert start == T0 + timedelta(seconds=30)


async def test_two_engines_share_one_limit(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database_url=database_url)
    interval = 0.1
    async with open_services(settings) as one, open_services(settings) as two:
        times: list[float] = []

        async def take(services_: object, limiter: SharedLimiter, n: int) -> None:
            for _ in range(n):
                await limiter.acquire()
                times.append(time.monotonic())

        limiters = [
            SharedLimiter(DatabaseSlots(s.sessions), name="api", interval=interval, clock=utc_now)
            for s in (one, two)
        ]
        await asyncio.gather(*(take(None, limiter, 5) for limiter in limiters))
    assert len(times) == 10
    assert_spaced(times, interval)


PROCESS_SCRIPT = """
import asyncio, sys, time
from receiver.db.engine import create_engine, create_sessionmaker
from receiver.services import utc_now
from receiver.rate_slots import DatabaseSlots
from receiver.watch.limiter import SharedLimiter

async def main() -> None:
    engine = create_engine(sys.argv[1])
    slots = DatabaseSlots(create_sessionmaker(engine))
    limiter = SharedLimiter(slots, name="api", interval=0.2, clock=utc_now)
    for _ in range(5):
        await limiter.acquire()
        print(time.time(), flush=True)
    await engine.dispose()

asyncio.run(main())
"""


def test_two_processes_share_one_limit(postgres_database: str) -> None:
    asyncio.run(_truncate(postgres_database))
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS_SCRIPT, postgres_database],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=60)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes)
    times = [float(line) for output in outputs for line in output.split()]
    assert len(times) == 10
    assert_spaced(times, 0.2)


async def _truncate(url: str) -> None:
    from tests.conftest import truncate_all

    await truncate_all(url)


async def test_partner_api_requests_keep_the_rate_at_the_fake(
    database_url: str, make_settings: Callable[..., Settings], hub: Hub
) -> None:
    settings = make_settings(
        database_url=database_url,
        d360_partner_id=PARTNER_ID,
        d360_api_key=API_KEY,
        d360_api_base=hub.url,
        partner_api_rate="10/s",
    )
    async with open_services(settings) as one, open_services(settings) as two:
        clients = [limited_client(settings, s) for s in (one, two)]
        try:
            await asyncio.gather(
                *(client.list_channels(limit=1, offset=n) for client in clients for n in range(4))
            )
        finally:
            for client in clients:
                await client.aclose()
    arrivals = [r.at for r in hub.state.calls(method="GET")]
    assert len(arrivals) == 8
    assert_spaced(arrivals, 0.1)


async def test_a_429_holds_every_process_back_for_its_retry_after(
    database_url: str, make_settings: Callable[..., Settings], hub: Hub
) -> None:
    settings = make_settings(
        database_url=database_url,
        d360_partner_id=PARTNER_ID,
        d360_api_key=API_KEY,
        d360_api_base=hub.url,
        partner_api_rate="50/s",
    )
    hub.state.fail_next(1, status=429, retry_after=1.0)
    async with open_services(settings) as one, open_services(settings) as two:
        first, other = limited_client(settings, one), limited_client(settings, two)
        try:
            refused = asyncio.create_task(first.list_channels(limit=1))
            # The other process asks just after the 429: it must wait out the Retry-After too.
            await _wait_for(lambda: len(hub.state.requests) == 1)
            await asyncio.sleep(0.1)
            await other.list_channels(limit=1)
            await refused
        finally:
            await first.aclose()
            await other.aclose()
    arrivals = [r.at for r in hub.state.calls(method="GET")]
    assert len(arrivals) == 3
    assert arrivals[1] - arrivals[0] >= 1.0 - SLACK
    assert arrivals[2] - arrivals[0] >= 1.0 - SLACK


def limited_client(settings: Settings, services: Services) -> PartnerClient:
    """The Partner API client as wiring builds it, with the shared limit of `services`."""
    client = partner_client(settings, services.metrics, rate=partner_rate(services))
    assert client is not None
    return client


async def _wait_for(predicate: Callable[[], bool]) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


def test_the_rate_setting_reads_per_second_per_minute_and_off() -> None:
    assert Settings(partner_api_rate="5/s").partner_api_rate == pytest.approx(0.2)
    assert Settings(partner_api_rate="30/m").partner_api_rate == pytest.approx(2.0)
    assert Settings(partner_api_rate="off").partner_api_rate is None
    with pytest.raises(ValueError, match="not a rate"):
        Settings(partner_api_rate="fast")


def test_the_limiter_is_named_for_the_partner_api() -> None:
    assert PARTNER_API_LIMIT == "partner_api"
