"""Reconciliation: what no webhook announced is found by listing, recorded once, and routed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from receiver.db.tables import Channel, Delivery, Event, StatusChange
from receiver.jobs.process import process_event
from receiver.services import Services
from receiver.settings import Settings
from receiver.watch.reconcile import ListChangedError, list_all, reconcile
from receiver.wiring import open_runtime
from tests.support.fakes import API_KEY, PARTNER_ID, Hub


def reconcile_settings(make_settings: Callable[..., Settings], url: str, hub: Hub) -> Settings:
    return make_settings(
        database_url=url,
        d360_partner_id=PARTNER_ID,
        d360_api_key=API_KEY,
        d360_api_base=hub.url,
        partner_api_rate="1000/s",  # not about the limit (test_limiter.py is)
    )


async def process_all(services: Services, ids: list[int]) -> None:
    for event_id in ids:
        await process_event({"services": services}, event_id)


async def rows(services: Services, table: Any) -> list[Any]:
    async with services.sessions() as session:
        return list((await session.scalars(select(table))).all())


async def test_a_first_pass_records_every_channel_and_client_once(
    database_url: str, make_settings: Callable[..., Settings], hub: Hub
) -> None:
    settings = reconcile_settings(make_settings, database_url, hub)
    async with open_runtime(settings, role="cli") as services:
        first = await reconcile(services, page_size=1)
        again = await reconcile(services, page_size=1)
        stored = await rows(services, Event)
    kinds = sorted(f.event_type for f in first.findings)
    assert kinds.count("channel_reconciled") == len(hub.state.channels)
    assert kinds.count("client_reconciled") == len(hub.state.clients)
    assert len(first.recorded) == len(first.findings)
    # Nothing processed yet, so the second pass finds the same: its keys are the same.
    assert len(again.findings) == len(first.findings)
    assert again.recorded == []
    assert len(stored) == len(first.findings)
    # Every page was asked for, one channel at a time.
    offsets = {q["offset"] for q in hub.channel_lookups()}
    assert offsets == {str(n) for n in range(len(hub.state.channels))}


async def test_a_status_change_no_webhook_announced_is_found_and_stored(
    database_url: str, make_settings: Callable[..., Settings], hub: Hub
) -> None:
    settings = reconcile_settings(make_settings, database_url, hub)
    channel_id = sorted(hub.state.channels)[0]
    async with open_runtime(settings, role="cli") as services:
        await process_all(services, (await reconcile(services)).recorded)
        quiet = await reconcile(services)
        hub.state.update_channel(
            channel_id, hub_status="pending_deletion", terminated_at="2026-12-31T00:00:00Z"
        )
        dry = await reconcile(services, dry_run=True)
        found = await reconcile(services)
        await process_all(services, found.recorded)
        changes = await rows(services, StatusChange)
        channel = next(c for c in await rows(services, Channel) if c.id == channel_id)
    assert quiet.findings == [] and quiet.recorded == []
    assert dry.recorded == [] and len(dry.findings) == 1
    (finding,) = found.findings
    assert finding.channel_id == channel_id
    assert finding.fields["status_to"] == "pending_deletion"
    assert len(found.recorded) == 1
    assert channel.status == "pending_deletion"
    assert [(c.from_status, c.to_status) for c in changes if c.channel_id == channel_id][-1][
        1
    ] == "pending_deletion"


async def test_a_channel_no_longer_listed_becomes_deleted_once(
    sqlite_url: str, make_settings: Callable[..., Settings], hub: Hub
) -> None:
    settings = reconcile_settings(make_settings, sqlite_url, hub)
    channel_id = sorted(hub.state.channels)[0]
    async with open_runtime(settings, role="cli") as services:
        await process_all(services, (await reconcile(services)).recorded)
        hub.state.remove_channel(channel_id)
        found = await reconcile(services)
        await process_all(services, found.recorded)
        after = await reconcile(services)
        channel = next(c for c in await rows(services, Channel) if c.id == channel_id)
    (finding,) = found.findings
    assert finding.fields["status_to"] == "deleted"
    assert finding.fields["why"] == "no longer listed by the Partner API"
    assert channel.status == "deleted"
    assert after.findings == []


async def test_a_list_that_changes_while_paging_is_refused() -> None:
    pages = [
        {"partner_channels": [{"id": "a"}], "total": 2},
        {"partner_channels": [{"id": "b"}], "total": 3},
    ]

    async def fetch(limit: int, offset: int) -> dict[str, Any]:
        return pages[min(offset, 1)]

    with pytest.raises(ListChangedError, match="total went from 2 to 3"):
        await list_all(fetch, key="partner_channels", what="channels list", page_size=1)


async def test_pages_that_repeat_an_item_are_refused() -> None:
    async def fetch(limit: int, offset: int) -> dict[str, Any]:
        return {"partner_channels": [{"id": "a"}], "total": 2}

    with pytest.raises(ListChangedError, match="1 distinct"):
        await list_all(fetch, key="partner_channels", what="channels list", page_size=1)


async def test_the_first_pass_learns_the_estate_silently_and_later_news_is_announced(
    database_url: str, make_settings: Callable[..., Settings], hub: Hub
) -> None:
    # A partner with thousands of numbers deploys: the first pass must not send a message
    # per existing number. What appears after it is news.
    settings = reconcile_settings(make_settings, database_url, hub)
    async with open_runtime(settings, role="cli") as services:
        first = await reconcile(services)
        await process_all(services, first.recorded)
        after_first = await rows(services, Delivery)
        template = dict(hub.state.channels[sorted(hub.state.channels)[0]])
        hub.state.set_channel(
            {**template, "id": "nEw9Z9CH", "setup_info": {"phone_number": "+4930999999"}}
        )
        second = await reconcile(services)
        await process_all(services, second.recorded)
        after_second = await rows(services, Delivery)
        stored = {c.id for c in await rows(services, Channel)}
    assert first.baseline and not second.baseline
    assert first.recorded and all(f.fields.get("baseline") for f in first.findings)
    assert after_first == []  # learned: stored, announced to nobody
    assert set(hub.state.channels) <= stored
    (news,) = second.findings
    assert news.channel_id == "nEw9Z9CH" and "baseline" not in news.fields
    assert {d.rule_name for d in after_second} >= {"team hears what reconciliation found"}
    assert {d.event_id for d in after_second} == set(second.recorded)
