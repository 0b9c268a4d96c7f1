"""A reconciliation sweep over channels that have not changed writes nothing at all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, select

from receiver.db.tables import Base
from receiver.dev.sample_data import build_channel, build_client
from receiver.services import Services
from receiver.settings import Settings
from receiver.watch.reconcile import reconcile
from receiver.wiring import open_runtime
from tests.support.fakes import API_KEY, PARTNER_ID, Hub
from tests.watch.test_reconcile import process_all

CHANNELS = 60
WRITES = ("INSERT", "UPDATE", "DELETE", "UPSERT", "REPLACE")


def add_channels(hub: Hub, count: int) -> None:
    client = build_client(client_id="SWEEPCL", name="Sweep", email="sweep@x.test")
    hub.state.set_client(client)
    for n in range(count):
        hub.state.set_channel(
            build_channel(
                channel_id=f"SW{n:04d}CH",
                client=client,
                phone_number=f"+49152{n:07d}",
                phone_name=f"Sweep {n}",
                hub_status="live",
                app_id=f"31{n:05d}",
            )
        )


async def dump(services: Services) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    async with services.sessions() as session:
        for table in Base.metadata.sorted_tables:
            rows = (await session.execute(select(table))).all()
            found[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return found


@contextmanager
def write_statements(services: Services) -> Iterator[list[str]]:
    """Collect every write statement the engine sends while the block runs."""
    seen: list[str] = []

    def before(*args: Any) -> None:
        statement = str(args[2]).lstrip().upper()
        if statement.startswith(WRITES):
            seen.append(statement[:120])

    event.listen(services.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(services.engine.sync_engine, "before_cursor_execute", before)


def sweep_settings(
    make_settings: Callable[..., Settings],
    url: str,
    hub: Hub,
    *,
    rate: str,
    redis_url: str | None = None,
) -> Settings:
    return make_settings(
        database_url=url,
        redis_url=redis_url,
        d360_partner_id=PARTNER_ID,
        d360_api_key=API_KEY,
        d360_api_base=hub.url,
        partner_api_rate=rate,
    )


async def sweep_twice(
    settings: Settings, hub: Hub
) -> tuple[dict[str, list[tuple[Any, ...]]], dict[str, list[tuple[Any, ...]]], list[str]]:
    """Sweep, process what it found, sweep again: tables before and after, the 2nd's writes."""
    async with open_runtime(settings, role="cli") as services:
        first = await reconcile(services, page_size=10)
        assert len(first.recorded) > CHANNELS
        await process_all(services, first.recorded)
        before = await dump(services)
        with write_statements(services) as writes:
            second = await reconcile(services, page_size=10)
        after = await dump(services)
    assert second.channels_listed == len(hub.state.channels)
    assert second.findings == [] and second.recorded == []
    return before, after, writes


async def test_a_second_sweep_over_unchanged_channels_writes_nothing(
    database_url: str, make_settings: Callable[..., Settings], hub: Hub
) -> None:
    add_channels(hub, CHANNELS)
    settings = sweep_settings(make_settings, database_url, hub, rate="off")
    before, after, writes = await sweep_twice(settings, hub)
    assert writes == []
    assert after == before


async def test_with_the_shared_limit_in_redis_a_second_sweep_writes_nothing(
    database_url: str, redis_url: str, make_settings: Callable[..., Settings], hub: Hub
) -> None:
    # The deployment shape: REDIS_URL set, so the shared Partner API limit lives in Redis.
    add_channels(hub, CHANNELS)
    settings = sweep_settings(make_settings, database_url, hub, rate="1000/s", redis_url=redis_url)
    before, after, writes = await sweep_twice(settings, hub)
    assert writes == []
    assert after == before


async def test_without_redis_a_second_sweep_writes_only_its_rate_slots(
    database_url: str, make_settings: Callable[..., Settings], hub: Hub
) -> None:
    add_channels(hub, CHANNELS)
    settings = sweep_settings(make_settings, database_url, hub, rate="1000/s")
    before, after, writes = await sweep_twice(settings, hub)
    # One reservation per page of the shared Partner API limit (the one row `partner_api`):
    # without Redis the limit is shared through the database, so every request moves it on.
    pages = -(-len(hub.state.channels) // 10) + -(-len(hub.state.clients) // 10)
    assert len(writes) == pages
    assert all("RATE_SLOTS" in w for w in writes), writes
    assert {k: v for k, v in after.items() if k != "rate_slots"} == {
        k: v for k, v in before.items() if k != "rate_slots"
    }
