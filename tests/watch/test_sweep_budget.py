"""A reconciliation sweep shares the Partner API budget; it never starves webhook enrichment."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from receiver.dev.sample_data import build_channel, build_client
from receiver.settings import Settings
from receiver.watch.reconcile import reconcile
from receiver.wiring import open_runtime
from tests.support.fakes import API_KEY, PARTNER_ID, Hub
from tests.watch.support import assert_spaced

RATE = 50  # per second: fast, so a sweep of ~110 pages takes ~2 s
CHANNELS = 2_000
CLIENTS = 100
PAGE_SIZE = 20
MIDDLE = 50  # channel pages the sweep has fetched when the webhook's enrichment asks


def add_estate(hub: Hub) -> None:
    clients = [
        build_client(client_id=f"B{n:03d}CL", name=f"Budget {n}", email=f"b{n}@x.test")
        for n in range(CLIENTS)
    ]
    for client in clients:
        hub.state.set_client(client)
    for n in range(CHANNELS):
        hub.state.set_channel(
            build_channel(
                channel_id=f"B{n:05d}CH",
                client=clients[n % CLIENTS],
                phone_number=f"+49153{n:07d}",
                phone_name=f"Budget {n}",
                hub_status="live",
            )
        )


def is_page(query: dict[str, str]) -> bool:
    return "offset" in query  # the sweep pages; enrichment asks by filters


async def until(predicate: Callable[[], bool]) -> None:
    for _ in range(3_000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the sweep never got that far")


async def test_enrichment_in_the_middle_of_a_sweep_goes_before_the_sweeps_remaining_pages(
    database_url: str, make_settings: Callable[..., Settings], hub: Hub
) -> None:
    add_estate(hub)
    settings = make_settings(
        database_url=database_url,
        d360_partner_id=PARTNER_ID,
        d360_api_key=API_KEY,
        d360_api_base=hub.url,
        partner_api_rate=f"{RATE}/s",
    )
    wanted = "B01234CH"
    # Two runtimes, two engines: the sweep and the enrichment meet only in the shared limit,
    # as a worker's reconcile pass and a web process's enrichment would.
    async with (
        open_runtime(settings, role="cli") as sweeper,
        open_runtime(settings, role="cli") as enricher,
    ):
        assert enricher.partner is not None
        sweep = asyncio.create_task(reconcile(sweeper, dry_run=True, page_size=PAGE_SIZE))
        await until(lambda: sum(is_page(r.query) for r in hub.state.requests) >= MIDDLE)
        pages_before = sum(is_page(r.query) for r in hub.state.requests)
        channel = await enricher.partner.get_channel(wanted)
        result = await sweep

    assert channel is not None and channel["id"] == wanted
    assert result.channels_listed == len(hub.state.channels)
    arrivals = sorted(hub.state.calls(method="GET"), key=lambda r: r.at)
    pages = [r for r in arrivals if is_page(r.query)]
    (enrichment,) = [r for r in arrivals if not is_page(r.query)]
    overtook = sum(1 for r in pages if r.at < enrichment.at) - pages_before
    remaining = len(pages) - pages_before
    # The sweep waits for one slot at a time, so only the page it had already reserved (and,
    # on a busy machine where the enricher's request takes a few slots to get going, the
    # next few) arrive first. A sweep that reserved its pages ahead, or queued enrichment
    # behind itself, would put all `remaining` pages first.
    assert remaining > 40
    assert overtook <= 5, f"{overtook} of the sweep's {remaining} remaining pages went first"
    # One budget for both: no pair of requests at the fake closer than the rate allows ...
    times = [r.at for r in arrivals]
    assert_spaced(times, 1 / RATE)
    # ... so no second holds more than RATE requests (+1: a request may trail its slot).
    busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    assert busiest <= RATE + 1
