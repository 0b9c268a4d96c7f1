"""What a watcher finds becomes an ordinary event: stored once, routed like a webhook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import select

from receiver.db.tables import Event
from receiver.pipeline.route import AUTHENTICATED
from receiver.pipeline.subject import event_fields, webhook_body
from receiver.routing.events import KNOWN_EVENTS, KNOWN_STATUSES
from receiver.settings import Settings
from receiver.watch.events import WatchEvent, record_watch_events
from tests.watch.support import open_services

CHANNEL = {
    "id": "wW1tCH",
    "client_id": "cL1",
    "hub_status": "live",
    "account_mode": "live",
    "setup_info": {"phone_number": "+4915100001"},
}


def finding(**overrides: Any) -> WatchEvent:
    values: dict[str, Any] = {
        "event_type": "channel_reconciled",
        "source": "reconcile",
        "dedup_key": "wW1tCH:2026-12-01T10:00:00Z:live",
        "data": CHANNEL,
        "channel_id": "wW1tCH",
        "fields": {"status_to": "live"},
    }
    values.update(overrides)
    return WatchEvent(**values)


class Relay:
    def __init__(self) -> None:
        self.handed: list[int] = []

    def events_committed(self, event_ids: Any) -> None:
        self.handed.extend(event_ids)


async def test_a_finding_is_stored_once_and_handed_to_the_relay(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    async with open_services(make_settings(database_url=database_url)) as services:
        relay = Relay()
        services.relay = relay  # type: ignore[assignment]
        first = await record_watch_events(services, [finding(), finding()])
        again = await record_watch_events(services, [finding()])
        async with services.sessions() as session:
            rows = list((await session.scalars(select(Event))).all())
    assert len(first) == 1
    assert again == []
    assert relay.handed == first
    (row,) = rows
    assert (row.source, row.event_type, row.state) == (
        "reconcile",
        "channel_reconciled",
        "received",
    )
    assert row.verification == "partner_api"
    assert row.channel_id == "wW1tCH"
    assert row.client_id == "cL1"
    assert row.phone_number == "+4915100001"
    assert orjson.loads(row.raw_body or "") == {
        "event": "channel_reconciled",
        "source": "reconcile",
        "status_to": "live",
        "data": CHANNEL,
    }


async def test_rules_see_the_source_the_fields_and_the_data(
    sqlite_url: str, make_settings: Callable[..., Settings]
) -> None:
    async with open_services(make_settings(database_url=sqlite_url)) as services:
        await record_watch_events(services, [finding()])
        async with services.sessions() as session:
            row = (await session.scalars(select(Event))).one()
    fields = event_fields(row, body=webhook_body(row))
    assert fields["source"] == "reconcile"
    assert fields["type"] == "channel_reconciled"
    assert fields["status_to"] == "live"
    assert fields["channel_id"] == "wW1tCH"
    assert fields["data"] == CHANNEL


def test_watch_events_are_trusted_and_known_to_rules() -> None:
    assert "partner_api" in AUTHENTICATED
    for name in (
        "channel_reconciled",
        "client_reconciled",
        "number_health_changed",
        "balance_low",
        "balance_recovered",
    ):
        assert name in KNOWN_EVENTS
    assert "deleted" in KNOWN_STATUSES
