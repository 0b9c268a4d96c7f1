"""Number health: the 5-minute limit per number, changes as events, reading the bodies."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from receiver.db.tables import Event, NumberHealth
from receiver.partner.health import (
    UnknownShapeError,
    classify_cloud,
    classify_on_premise,
    describe,
    platform_of,
)
from receiver.services import Services
from receiver.settings import Settings
from receiver.watch.health import HealthWatcher, run_pass
from receiver.watch.keys import set_key
from tests.support.fakes import Hub
from tests.watch.support import open_services

SECRET = "m4wL9dOqYj0rQF0xN6cXb6oQyGm1r2sP3t4u5v6w7x8="  # a Fernet key, for tests only
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def gaps(times: list[float]) -> list[float]:
    ordered = sorted(times)
    return [later - earlier for earlier, later in itertools.pairwise(ordered)]


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def timestamp(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def health_settings(make_settings: Callable[..., Settings], url: str, hub: Hub) -> Settings:
    return make_settings(
        database_url=url, keys_secret=SECRET, d360_waba_base=hub.url, d360_waba_v2_base=hub.url
    )


async def health_events(services: Services) -> list[Event]:
    async with services.sessions() as session:
        rows = await session.execute(
            select(Event).where(Event.event_type == "number_health_changed").order_by(Event.id)
        )
        return list(rows.scalars())


async def number(services: Services, channel_id: str) -> NumberHealth:
    async with services.sessions() as session:
        row = await session.get(NumberHealth, channel_id)
        assert row is not None
        return row


async def test_no_number_is_asked_about_twice_within_5_minutes(
    database_url: str, hub: Hub, make_settings: Callable[..., Settings]
) -> None:
    clock = Clock()
    hub.state.clock = clock.timestamp
    hub.state.set_health("kJ2mQ8CH", api_key="key-one")
    hub.state.set_health("pT4nR7CH", api_key="key-two", platform="on_premise", status="connected")
    settings = health_settings(make_settings, database_url, hub)
    async with open_services(settings) as services:
        services.clock = clock
        await set_key(services, channel_id="kJ2mQ8CH", api_key="key-one")
        await set_key(services, channel_id="pT4nR7CH", api_key="key-two")
        watcher = HealthWatcher()
        # An hour of ticks every 37 s, with `health check` (a pass over every number,
        # due or not) run by hand in between: the database guard must hold for both.
        for step in range(100):
            clock.advance(37)
            if step % 3 == 0:
                await run_pass(services, due_only=False)
            else:
                await watcher.run_once(services)

    for channel_id in ("kJ2mQ8CH", "pT4nR7CH"):
        times = [r.at for r in hub.state.health_calls(channel_id)]
        assert all(gap >= 300 for gap in gaps(times)), (channel_id, gaps(times))
        # ... and the number was still checked about once per 5 minutes over the hour.
        assert len(times) >= 11, (channel_id, len(times))
    assert [r for r in hub.state.health_requests if r.channel_id is None] == []


async def test_a_change_of_health_becomes_one_event_with_360dialogs_advice(
    database_url: str, hub: Hub, make_settings: Callable[..., Settings]
) -> None:
    clock = Clock()
    hub.state.set_health("kJ2mQ8CH", api_key="key-one")
    settings = health_settings(make_settings, database_url, hub)
    async with open_services(settings) as services:
        services.clock = clock
        await set_key(services, channel_id="kJ2mQ8CH", api_key="key-one")
        await run_pass(services, due_only=False)
        assert await health_events(services) == []  # a first look at a healthy number
        assert (await number(services, "kJ2mQ8CH")).health == "available"

        hub.state.set_health(
            "kJ2mQ8CH",
            status="BLOCKED",
            errors=[
                {
                    "error_code": 141006,
                    "error_description": "The payment method is not valid",
                    "possible_solution": "Add a valid payment method to the WABA",
                }
            ],
        )
        clock.advance(299)
        [too_soon] = await run_pass(services, due_only=False)
        assert too_soon.outcome == "too_soon"
        assert too_soon.line() == "kJ2mQ8CH  checked at 09:00, next after 09:05 (UTC)"
        clock.advance(1)
        [changed] = await run_pass(services, due_only=False)
        assert (changed.outcome, changed.previous, changed.health) == (
            "changed",
            "available",
            "blocked",
        )
        clock.advance(300)
        await run_pass(services, due_only=False)  # still blocked: nothing new

        [event] = await health_events(services)
        assert event.source == "health"
        assert event.channel_id == "kJ2mQ8CH"
        assert '"health_from":"available"' in (event.raw_body or "")
        assert '"health_to":"blocked"' in (event.raw_body or "")
        assert "Add a valid payment method to the WABA" in (event.raw_body or "")

        hub.state.set_health("kJ2mQ8CH", status="AVAILABLE", errors=[])
        clock.advance(300)
        await run_pass(services, due_only=False)
        assert [
            e.raw_body is not None and '"health_to":"available"' in e.raw_body
            for e in await health_events(services)
        ] == [False, True]


async def test_a_refused_key_is_key_invalid_and_told_once(
    sqlite_url: str, hub: Hub, make_settings: Callable[..., Settings]
) -> None:
    clock = Clock()
    hub.state.set_health("kJ2mQ8CH", api_key="the-right-key")
    async with open_services(health_settings(make_settings, sqlite_url, hub)) as services:
        services.clock = clock
        await set_key(services, channel_id="kJ2mQ8CH", api_key="a-wrong-key")
        for _ in range(3):
            await run_pass(services, due_only=False)
            clock.advance(300)
        assert (await number(services, "kJ2mQ8CH")).health == "key_invalid"
        assert len(await health_events(services)) == 1


async def test_an_unknown_platform_asks_cloud_api_first_then_on_premise_next_time(
    sqlite_url: str, hub: Hub, make_settings: Callable[..., Settings]
) -> None:
    clock = Clock()
    hub.state.clock = clock.timestamp
    hub.state.set_health("kJ2mQ8CH", api_key="k", platform="on_premise", status="disconnected")
    async with open_services(health_settings(make_settings, sqlite_url, hub)) as services:
        services.clock = clock
        await set_key(services, channel_id="kJ2mQ8CH", api_key="k")
        [first] = await run_pass(services, due_only=False)
        assert first.outcome == "failed"
        clock.advance(300)
        [second] = await run_pass(services, due_only=False)
        assert second.health == "disconnected"
    assert [r.endpoint for r in hub.state.health_calls("kJ2mQ8CH")] == [
        "health_status",
        "v1/health",
    ]


def test_a_logged_unknown_body_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(UnknownShapeError):
        classify_cloud({"status": "ok"})
    with pytest.raises(UnknownShapeError):
        classify_on_premise({"health": {"gateway_status": "sleepy"}})


CLOUD_BODIES: list[tuple[Any, str, list[str]]] = [
    ({"health_status": {"can_send_message": "AVAILABLE"}}, "available", []),
    (
        {"can_send_message": "LIMITED", "additional_info": ["Tier limit reached"]},
        "limited",
        ["Tier limit reached"],
    ),
    (
        {
            "health_status": {
                "can_send_message": "BLOCKED",
                "entities": [
                    {
                        "entity_type": "PHONE_NUMBER",
                        "can_send_message": "BLOCKED",
                        "errors": [
                            {
                                "error_code": 141010,
                                "error_description": "The phone number is not registered",
                                "possible_solution": "Register the number",
                            }
                        ],
                    }
                ],
            }
        },
        "blocked",
        ["[141010] The phone number is not registered Possible solution: Register the number"],
    ),
]


@pytest.mark.parametrize(("body", "health", "lines"), CLOUD_BODIES)
def test_cloud_api_bodies_are_read(body: Any, health: str, lines: list[str]) -> None:
    reading = classify_cloud(body)
    assert reading.health == health
    assert describe(reading.detail()).splitlines() == lines


@pytest.mark.parametrize(
    ("body", "health"),
    [
        ({"health": {"gateway_status": "connected"}}, "connected"),
        ({"health": {"gateway_status": "UNREGISTERED"}}, "unregistered"),
        (
            {
                "health": {
                    "node-a": {"gateway_status": "connected", "role": "secondary_master"},
                    "node-b": {"gateway_status": "disconnected", "role": "primary_master"},
                    "node-c": {"role": "coreapp"},
                }
            },
            "disconnected",
        ),
        (
            {
                "health": {
                    "n1": {"gateway_status": "connected"},
                    "n2": {"gateway_status": "connecting"},
                }
            },
            "connecting",
        ),
    ],
)
def test_on_premise_bodies_are_read(body: Any, health: str) -> None:
    assert classify_on_premise(body).health == health


@pytest.mark.parametrize(("body"), [None, [], {"health": {}}, {"health": {"gateway_status": 3}}])
def test_on_premise_bodies_of_unknown_shape_are_refused(body: Any) -> None:
    with pytest.raises(UnknownShapeError):
        classify_on_premise(body)


@pytest.mark.parametrize(
    ("value", "platform"),
    [
        ("Cloud API", "cloud_api"),
        ("CLOUD_API", "cloud_api"),
        ("On-premise", "on_premise"),
        ("on_premise", "on_premise"),
        (None, None),
        ("mars", None),
    ],
)
def test_the_hosting_platform_type_chooses_the_endpoint(
    value: str | None, platform: str | None
) -> None:
    assert platform_of(value) == platform
