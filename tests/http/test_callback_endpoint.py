"""`GET /callbacks/permission`: a person's browser, so pages and redirects, never JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from receiver.settings import Settings
from tests.support.app import running_app
from tests.support.events import stored_events
from tests.support.samples import sample

MakeSettings = Callable[..., Settings]
URL = "/callbacks/permission"


class ManualClock:
    """The app's clock (`Services.clock`), moved by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def example(index: int) -> dict[str, Any]:
    found: list[dict[str, Any]] = json.loads(sample("permission_callback.redirect.json"))
    return found[index]


def query_of(index: int) -> str:
    url: str = example(index)["url"]
    return urlsplit(url).query


@pytest.mark.parametrize("index", [0, 1], ids=["granted two", "kept one removed one"])
async def test_each_sample_callback_stores_one_claim_per_channel_and_shows_a_page(
    make_settings: MakeSettings, database_url: str, index: int
) -> None:
    async with running_app(make_settings(database_url=database_url)) as app:
        before = datetime.now(UTC)
        response = await app.client.get(f"{URL}?{query_of(index)}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "<html" in response.text
        assert "All set" in response.text
        events = await stored_events(app.services.sessions)

    parsed = example(index)["parsed"]
    expected = [("permission_granted", ch) for ch in parsed["channels"]] + [
        ("permission_revoked", ch) for ch in parsed["revoked"]
    ]
    assert sorted((e.event_type, e.channel_id) for e in events) == sorted(expected)
    for event in events:
        assert event.source == "callback"
        assert event.client_id == "Vb7xR2CL"
        assert event.claim == "unconfirmed"
        assert event.known is True
        assert event.verification == "none"
        assert event.raw_body == query_of(index)
        assert event.received_at >= before
    assert len({e.correlation_id for e in events}) == 1  # one visit, one correlation id


async def test_a_reload_within_the_dedup_window_is_stored_once(
    make_settings: MakeSettings, database_url: str
) -> None:
    async with running_app(make_settings(database_url=database_url)) as app:
        first = await app.client.get(f"{URL}?{query_of(0)}")
        again = await app.client.get(f"{URL}?{query_of(0)}")
        raw = await app.client.get(f"{URL}?client=Vb7xR2CL&channels=[kJ2mQ8CH,zR5wN3CH]")
        assert [r.status_code for r in (first, again, raw)] == [200, 200, 200]
        events = await stored_events(app.services.sessions)
    assert len(events) == 2


async def test_a_reload_a_second_later_is_stored_once_whatever_the_time(
    make_settings: MakeSettings, database_url: str
) -> None:
    # A browser reload one second apart must not become two claims just because the clock
    # crossed a window boundary in between.
    boundary = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    clock = ManualClock(boundary - timedelta(seconds=0.5))
    async with running_app(make_settings(database_url=database_url)) as app:
        app.services.clock = clock
        first = await app.client.get(f"{URL}?client=Vb7xR2CL&channels=[kJ2mQ8CH]")
        clock.now += timedelta(seconds=1)
        again = await app.client.get(f"{URL}?client=Vb7xR2CL&channels=[kJ2mQ8CH]")
        assert (first.status_code, again.status_code) == (200, 200)
        events = await stored_events(app.services.sessions)
    assert len(events) == 1


async def test_the_same_channel_granted_after_the_window_is_a_new_claim(
    make_settings: MakeSettings, database_url: str
) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 10, 3, tzinfo=UTC))
    async with running_app(make_settings(database_url=database_url)) as app:
        app.services.clock = clock
        for _ in range(2):
            response = await app.client.get(f"{URL}?client=Vb7xR2CL&channels=[kJ2mQ8CH]")
            assert response.status_code == 200
            clock.now += timedelta(hours=2)
        events = await stored_events(app.services.sessions)
    assert len(events) == 2


@pytest.mark.parametrize(
    "query",
    [
        "",
        "channels=[kJ2mQ8CH]",
        "client=Vb7xR2CL",
        "client=Vb7xR2CL&channels=[kJ2mQ8CH",
        "client=Vb7xR2CL&client=Xx9yZ8CL&channels=[kJ2mQ8CH]",
        "client=%3Cscript%3Ealert(1)%3C/script%3E&channels=[kJ2mQ8CH]",
        "client=Vb7xR2CL&channels=[%3Cb%3Ex%3C/b%3E]",
    ],
)
async def test_a_link_it_cannot_read_gets_a_400_page_not_json(
    make_settings: MakeSettings, database_url: str, query: str
) -> None:
    async with running_app(make_settings(database_url=database_url)) as app:
        response = await app.client.get(f"{URL}?{query}")
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("text/html")
        assert "<html" in response.text
        assert "could not read this link" in response.text
        assert "<script>" not in response.text
        assert "<b>" not in response.text
        assert await stored_events(app.services.sessions) == []


async def test_an_overlong_link_gets_a_400_page(
    make_settings: MakeSettings, database_url: str
) -> None:
    async with running_app(make_settings(database_url=database_url)) as app:
        response = await app.client.get(f"{URL}?client=Vb7xR2CL&channels=[{'a' * 9000}]")
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("text/html")


async def test_it_redirects_the_browser_when_a_redirect_url_is_configured(
    make_settings: MakeSettings, database_url: str
) -> None:
    settings = make_settings(
        database_url=database_url, permission_redirect_url="https://partner.example/welcome"
    )
    async with running_app(settings) as app:
        response = await app.client.get(f"{URL}?{query_of(0)}")
        assert response.status_code == 303
        location = response.headers["location"]
        assert location.startswith("https://partner.example/welcome?")
        assert parse_qs(urlsplit(location).query)["client"] == ["Vb7xR2CL"]
        assert len(await stored_events(app.services.sessions)) == 2


async def test_the_redirect_keeps_a_query_the_redirect_url_already_has(
    make_settings: MakeSettings, database_url: str
) -> None:
    settings = make_settings(
        database_url=database_url, permission_redirect_url="https://partner.example/done?src=360"
    )
    async with running_app(settings) as app:
        response = await app.client.get(f"{URL}?{query_of(0)}")
    assert response.status_code == 303
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["src"] == ["360"]
    assert query["client"] == ["Vb7xR2CL"]
