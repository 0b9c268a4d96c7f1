"""The dashboard's pages over real HTTP on loopback: headers, escaping, secrets, filters, rules.

The service learns its numbers the real way: signed webhooks and a permission callback,
enriched through the fake Partner API, routed by the shipped rules to a json:// sink whose
URL carries a password and a secret path. One client of the fake hub names itself with
markup (`<script>`, an `<img onerror>`), and a webhook carries markup in its body and as
its event type: every page must show it as text.
"""

from __future__ import annotations

import asyncio
import copy
import html
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from receiver.dev.sample_data import build_channel, build_client
from receiver.ops import records
from receiver.settings import Settings
from tests.http.test_dashboard_access import (
    ADMIN_TOKEN,
    SHIPPED_RULES,
    WEBHOOK_SECRET,
    assert_secure_headers,
    assert_secure_page,
    browser,
    csrf_of,
    log_in,
    post_webhook,
)
from tests.support.app import RunningApp, running_app
from tests.support.cli import hub_receiver_async
from tests.support.fakes import API_KEY, PARTNER_ID, Hub, Sink
from tests.support.samples import sample, sample_json

MakeSettings = Callable[..., Settings]

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
SCRIPT_SHOWN = "&lt;script&gt;alert(1)&lt;/script&gt;"
IMG_SHOWN = "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"

TARGET_PASSWORD = "SECRETPASS-Dash-Kq93"
TARGET_PATH = "ops-Secr3t-Path-Vn28"

ACME = "Vb7xR2CL"
ACME_LIVE = "kJ2mQ8CH"  # live, +4915112345678, "Acme Bakery"
ACME_DRAFT = "zR5wN3CH"  # draft, +4915187654321, "Acme Bakery Orders"
NORDWIND = "Hn3pZ8CL"
NORDWIND_CHANNEL = "Tq7bY4CH"  # sandbox, +31612345678, "Nordwind Tools"
EVIL_CLIENT = "Xs5sEvCL"
EVIL_CHANNEL = "Xs5sEvCH"  # live, +4917700011122, named with markup
EVIL_PHONE = "+4917700011122"
SAMPLE_LIVE_ID = sample_json("partner_webhook.channel_live.json")["id"]

CARD = re.compile(r'<article class="card [^"]*" data-channel="([^"]+)">')
EVENT_ROW = re.compile(r'<tr data-event="(\d+)">')
FIRED = re.compile(r'<article class="verdict fired">\s*<header><strong>([^<]*)</strong>')


def cards(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return set(CARD.findall(response.text))


def event_rows(response: httpx.Response) -> set[int]:
    assert response.status_code == 200, response.text
    return {int(found) for found in EVENT_ROW.findall(response.text)}


def fired_on_page(response: httpx.Response) -> list[str]:
    return sorted(html.unescape(name) for name in FIRED.findall(response.text))


@pytest.fixture
def ops_url(sink: Sink) -> str:
    """The team's target: a password and a secret path no page may show."""
    return sink.json_url(f"/{TARGET_PATH}", auth=f"user:{TARGET_PASSWORD}")


@pytest.fixture
def page_settings(make_settings: MakeSettings, sqlite_url: str, ops_url: str) -> MakeSettings:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": sqlite_url,
            "admin_token": ADMIN_TOKEN,
            "d360_webhook_secret": WEBHOOK_SECRET,
            "rules_path": SHIPPED_RULES,
            "rules_env": {"OPS_NOTIFY_URL": ops_url},
        }
        values.update(overrides)
        return make_settings(**values)

    return make


@dataclass(frozen=True)
class Estate:
    """A logged-in dashboard over four numbers and the events that told the service of them."""

    app: RunningApp
    live_event: int  # Acme's channel_live (the sample); its team message is dead
    draft_event: int  # channel_created of Acme's draft number
    callback_event: int  # Nordwind granted its sandbox number (permission callback)
    evil_event: int  # channel_live of the number named with markup, markup in the body
    strange_event: int  # an event type that is markup, for the same number
    dead_delivery: int

    @property
    def client(self) -> httpx.AsyncClient:
        return self.app.client

    @property
    def events(self) -> list[int]:
        return [
            self.live_event,
            self.draft_event,
            self.callback_event,
            self.evil_event,
            self.strange_event,
        ]


def add_evil_number(hub: Hub) -> dict[str, Any]:
    evil = build_client(
        client_id=EVIL_CLIENT, name=SCRIPT, organisation=IMG, email="x@evil.example"
    )
    channel = build_channel(
        channel_id=EVIL_CHANNEL,
        client=evil,
        phone_number=EVIL_PHONE,
        phone_name=IMG,
        hub_status="live",
        app_id="666",
    )
    hub.state.set_client(evil)
    hub.state.set_channel(channel)
    return channel


def webhook(event: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "event": event, "data": copy.deepcopy(data), **extra}


async def _only(app: RunningApp, filters: records.Filters, *, deliveries: bool = False) -> int:
    """The id of the one event (or delivery) `filters` select."""
    window = records.Window(limit=5)
    if deliveries:
        found = await records.list_deliveries(app.services, filters=filters, window=window)
    else:
        found = await records.list_events(app.services, filters=filters, window=window)
    [item] = found.items
    item_id: int = item["id"]
    return item_id


@pytest.fixture
async def estate(page_settings: MakeSettings, hub: Hub, sink: Sink) -> AsyncIterator[Estate]:
    evil_channel = add_evil_number(hub)
    settings = page_settings(
        d360_partner_id=PARTNER_ID, d360_api_key=API_KEY, d360_api_base=hub.url
    )
    async with running_app(settings) as app:
        sink.state.fail_next(1, status=400)  # the first team message dies
        live_event = await post_webhook(app, sample("partner_webhook.channel_live.json"))
        await app.run_to_idle()
        dead = await _only(app, records.Filters(state="dead"), deliveries=True)
        draft_event = await post_webhook(
            app, webhook("channel_created", hub.state.channels[ACME_DRAFT])
        )
        granted = await app.client.get(
            "/callbacks/permission",
            params={"client": NORDWIND, "channels": f"[{NORDWIND_CHANNEL}]"},
        )
        assert granted.status_code == 200, granted.text
        evil_event = await post_webhook(app, webhook("channel_live", evil_channel, note=SCRIPT))
        strange = {
            "id": EVIL_CHANNEL,
            "client_id": EVIL_CLIENT,
            "setup_info": {"phone_number": IMG},
        }
        strange_event = await post_webhook(app, webhook(SCRIPT, strange))
        await app.run_to_idle()
        callback_event = await _only(app, records.Filters(source="callback"))
        await log_in(app.client)
        yield Estate(
            app=app,
            live_event=live_event,
            draft_event=draft_event,
            callback_event=callback_event,
            evil_event=evil_event,
            strange_event=strange_event,
            dead_delivery=dead,
        )


def pages_of(estate: Estate) -> list[str]:
    """Every page a logged-in person can GET, for this estate's rows."""
    events = [f"/ui/events/{event_id}" for event_id in estate.events]
    numbers = [f"/ui/numbers/{c}" for c in (ACME_LIVE, ACME_DRAFT, NORDWIND_CHANNEL, EVIL_CHANNEL)]
    return [
        "/ui/",
        *numbers,
        "/ui/events",
        *events,
        *[f"{event}/replay" for event in events],
        "/ui/deliveries",
        "/ui/deliveries?state=dead",
        "/ui/rules",
    ]


async def rules_test(client: httpx.AsyncClient, event: str, *, status: str = "") -> httpx.Response:
    """Paste `event` into the rules page's test form, as a person would."""
    rules = await client.get("/ui/rules")
    assert rules.status_code == 200, rules.text
    return await client.post(
        "/ui/rules/test", data={"csrf": csrf_of(rules.text), "event": event, "status": status}
    )


# --- headers and markup ------------------------------------------------------------------------


async def test_every_page_has_the_strict_headers_and_nothing_the_policy_would_block(
    estate: Estate,
) -> None:
    client = estate.client
    answers = [(200, await client.get(path)) for path in pages_of(estate)]
    answers += [(200, await client.get(path, headers={"x-live": "1"})) for path in pages_of(estate)]
    async with browser(estate.app) as stranger:
        answers += [
            (200, await stranger.get("/ui/login")),
            (403, await stranger.post("/ui/login", data={"token": "wrong"})),
            (401, await stranger.post("/ui/rules/test", data={"csrf": "x"})),
        ]
        redirected = await stranger.get("/ui/events")
    answers += [
        (404, await client.get("/ui/numbers/nope")),
        (404, await client.get("/ui/events/99999999999999999999")),
        (403, await client.post("/ui/rules/test", data={"csrf": "wrong"})),
        (200, await rules_test(client, sample("partner_webhook.channel_live.json").decode())),
        (422, await rules_test(client, "not json")),
    ]

    for status, response in answers:
        assert response.status_code == status, (response.request.url, response.text)
        assert_secure_page(response)
    assert redirected.status_code == 303
    assert_secure_headers(redirected)
    export = await client.get("/ui/export.csv")
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    assert_secure_headers(export)


def assert_no_markup_of_ours(response: httpx.Response) -> None:
    """Nothing of the hostile values reached the page as markup."""
    where = str(response.request.url)
    text = response.text
    assert SCRIPT not in text, where
    assert "<img" not in text.lower(), where
    assert "<svg" not in text.lower(), where
    assert "onerror=alert(1)>" not in text, where


async def test_markup_in_names_bodies_and_event_types_is_shown_as_text(estate: Estate) -> None:
    client = estate.client

    numbers = await client.get("/ui/")
    number = await client.get(f"/ui/numbers/{EVIL_CHANNEL}")
    events = await client.get("/ui/events")
    event = await client.get(f"/ui/events/{estate.evil_event}")
    strange = await client.get(f"/ui/events/{estate.strange_event}")

    for response in (numbers, number):
        assert SCRIPT_SHOWN in response.text  # the client's name
        assert IMG_SHOWN in response.text  # the number's display name
    assert f'<p class="name">{IMG_SHOWN}</p>' in numbers.text
    assert f'<dd class="client">{SCRIPT_SHOWN}</dd>' in numbers.text
    assert f"<dd>{IMG_SHOWN}</dd>" in number.text  # the company's legal name
    assert f"<td>{SCRIPT_SHOWN}</td>" in events.text  # the event type
    assert f"<td>{IMG_SHOWN}</td>" in events.text  # the phone the webhook claimed
    # The raw body, pretty-printed: JSON's own escaping, then HTML's.
    assert f"&#34;note&#34;: &#34;{SCRIPT_SHOWN}&#34;" in event.text
    assert "&#34;phone_name&#34;: &#34;\\&#34;&gt;&lt;img src=x onerror=alert(1)&gt;&#34;" in (
        event.text
    )
    assert f'<span class="type">{SCRIPT_SHOWN}</span>' in strange.text
    pages = [numbers, number, events, event, strange]
    pages += [await client.get(path) for path in pages_of(estate)]
    pages += [await client.get(path, headers={"x-live": "1"}) for path in pages_of(estate)]
    for response in pages:
        assert response.status_code == 200, response.request.url
        assert_no_markup_of_ours(response)


async def test_markup_in_the_address_or_a_pasted_event_is_shown_as_text(estate: Estate) -> None:
    client = estate.client

    reflected = [
        await client.get("/ui/", params={"q": SCRIPT, "client": IMG}),
        await client.get("/ui/events", params={"q": IMG, "type": SCRIPT}),
        await client.get(f"/ui/numbers/{quote(IMG, safe='')}"),
        await client.get(f"/ui/numbers/{quote('<svg onload=alert(1)>', safe='')}"),
        await client.get("/ui/deliveries", params={"state": SCRIPT}),
        await client.get("/ui/login", params={"next": f"/ui/{IMG}"}),
    ]
    pasted = await rules_test(client, f"</textarea>{SCRIPT}{IMG}", status=IMG)
    pasted_json = await rules_test(
        client, json.dumps({"event": SCRIPT, "data": {"id": IMG}}), status=SCRIPT
    )

    assert f'value="{SCRIPT_SHOWN}"' in reflected[0].text
    assert f'value="{IMG_SHOWN}"' in reflected[1].text
    assert f"No number with channel id {IMG_SHOWN}." in reflected[2].text
    assert "&lt;svg onload=alert(1)&gt;" in reflected[3].text
    assert pasted.status_code == 422
    assert f"&lt;/textarea&gt;{SCRIPT_SHOWN}{IMG_SHOWN}</textarea>" in pasted.text
    for response in [*reflected, pasted, pasted_json]:
        assert response.status_code in (200, 404, 422), response.request.url
        assert_no_markup_of_ours(response)
        assert "</textarea><script" not in response.text


# --- secrets -----------------------------------------------------------------------------------


async def test_no_page_shows_a_target_url_the_admin_token_or_another_secret(
    estate: Estate, ops_url: str
) -> None:
    client = estate.client
    secrets = [ops_url, TARGET_PASSWORD, TARGET_PATH, ADMIN_TOKEN, WEBHOOK_SECRET, API_KEY]

    answers = [await client.get(path) for path in pages_of(estate)]
    answers += [await client.get(path, headers={"x-live": "1"}) for path in pages_of(estate)]
    answers.append(await client.get("/ui/export.csv"))
    answers.append(await rules_test(client, sample("partner_webhook.channel_live.json").decode()))
    answers.append(await rules_test(client, "not json"))

    deliveries = answers[pages_of(estate).index("/ui/deliveries")]
    assert "error=400" in deliveries.text  # the dead message's error is shown ...
    rules = answers[pages_of(estate).index("/ui/rules")]
    assert "<strong>ops</strong>" in rules.text  # ... and the targets, by name
    assert "not configured" not in rules.text.split("<h3>Targets</h3>")[1].split("</ul>")[0]
    for response in answers:
        assert response.status_code in {200, 422}, response.request.url
        for secret in secrets:
            assert secret not in response.text, (response.request.url, secret)


# --- the live region ---------------------------------------------------------------------------


def timeless(html: str) -> str:
    """`html` with the text of its relative times ("1 s ago") left out."""
    return re.sub(r"(<time [^>]*>)[^<]*(</time>)", r"\1\2", html)


async def test_the_pages_own_refresh_gets_only_the_live_region_with_the_same_headers(
    estate: Estate,
) -> None:
    client = estate.client
    live = {
        "/ui/": f'data-channel="{EVIL_CHANNEL}"',
        f"/ui/numbers/{ACME_LIVE}": "<h2>Status history</h2>",
        "/ui/events": f'<tr data-event="{estate.live_event}">',
        f"/ui/events/{estate.live_event}": "<h2>Deliveries</h2>",
        "/ui/deliveries": f'<tr data-delivery="{estate.dead_delivery}" class="row-dead">',
    }
    for path, content in live.items():
        whole = await client.get(path)
        region = await client.get(path, headers={"x-live": "1"})

        assert region.status_code == 200, path
        assert_secure_page(region)
        assert content in region.text, path
        for outside in ("<html", "<head>", "<nav", "<main", 'id="live"', "/ui/logout"):
            assert outside not in region.text, (path, outside)
            assert outside in whole.text, (path, outside)
        # "3 s ago" may have become "4 s ago" between the two requests: times aside.
        assert timeless(region.text.strip()) in timeless(whole.text), path
    # A page that does not refresh itself answers whole whatever the header says.
    rules = await client.get("/ui/rules", headers={"x-live": "1"})
    assert "<nav" in rules.text


# --- filters and odd addresses -----------------------------------------------------------------


async def test_the_numbers_filters_select_the_right_cards(estate: Estate) -> None:
    every = {ACME_LIVE, ACME_DRAFT, NORDWIND_CHANNEL, EVIL_CHANNEL}
    expected: list[tuple[dict[str, str], set[str]]] = [
        ({}, every),
        ({"status": "live"}, {ACME_LIVE, EVIL_CHANNEL}),
        ({"status": "draft"}, {ACME_DRAFT}),
        ({"status": "sandbox"}, {NORDWIND_CHANNEL}),
        ({"status": "banned"}, set()),
        ({"q": "15187654321"}, {ACME_DRAFT}),  # digits of the phone
        ({"q": "+49 151 8765-4321"}, {ACME_DRAFT}),  # as people write it
        ({"q": "4321"}, {ACME_DRAFT}),
        ({"q": "orders"}, {ACME_DRAFT}),  # a piece of the display name
        ({"q": "Bakery"}, {ACME_LIVE, ACME_DRAFT}),
        ({"q": "piet"}, {NORDWIND_CHANNEL}),  # a piece of the client's name
        ({"q": NORDWIND}, {NORDWIND_CHANNEL}),  # the client id
        ({"q": ACME_LIVE}, {ACME_LIVE}),  # the channel id
        ({"q": "img src"}, {EVIL_CHANNEL}),
        ({"client": ACME}, {ACME_LIVE, ACME_DRAFT}),
        ({"client": ACME, "status": "live"}, {ACME_LIVE}),
        ({"client": ACME, "q": "orders"}, {ACME_DRAFT}),
        ({"q": "no such number anywhere"}, set()),
        # Values that select nothing known are ignored, not an error.
        ({"status": "bogus"}, every),
        ({"status": SCRIPT}, every),
        ({"status": ""}, every),
        ({"q": "   "}, every),
    ]
    for params, channels in expected:
        response = await estate.client.get("/ui/", params=params)
        assert cards(response) == channels, params
    empty = await estate.client.get("/ui/", params={"q": "no such number anywhere"})
    assert "No numbers match these filters." in empty.text
    after = await estate.client.get("/ui/", params={"cursor": ACME_LIVE})
    assert cards(after) == {channel for channel in every if channel > ACME_LIVE}


async def test_the_events_filters_select_the_right_rows(estate: Estate) -> None:
    e = estate
    every = set(e.events)
    expected: list[tuple[dict[str, str], set[int]]] = [
        ({}, every),
        ({"source": "webhook"}, every - {e.callback_event}),
        ({"source": "callback"}, {e.callback_event}),
        ({"source": "reconcile"}, set()),
        ({"state": "processed"}, every),
        ({"state": "failed"}, set()),
        ({"type": "channel_created"}, {e.draft_event}),
        ({"type": SCRIPT}, {e.strange_event}),
        ({"q": ACME_LIVE}, {e.live_event}),  # a channel id
        ({"q": EVIL_CHANNEL}, {e.evil_event, e.strange_event}),
        ({"q": NORDWIND}, {e.callback_event}),  # a client id
        ({"q": SAMPLE_LIVE_ID}, {e.live_event}),  # 360dialog's event id
        ({"q": str(e.draft_event)}, {e.draft_event}),  # our id
        ({"q": "17700011122"}, {e.evil_event}),  # digits of the phone
        ({"q": "nothing"}, set()),
        ({"source": "webhook", "q": EVIL_CHANNEL, "type": "channel_live"}, {e.evil_event}),
        # Values that select nothing known are ignored, not an error.
        ({"source": "bogus"}, every),
        ({"state": "bogus"}, every),
        ({"source": "bogus", "state": SCRIPT}, every),
        ({"cursor": "abc"}, every),
        ({"cursor": "-1"}, every),
        ({"cursor": "99999999999999999999"}, every),
        ({"cursor": str(e.callback_event)}, {e.live_event, e.draft_event}),
    ]
    for params, rows in expected:
        response = await e.client.get("/ui/events", params=params)
        assert event_rows(response) == rows, params
    empty = await e.client.get("/ui/events", params={"source": "reconcile"})
    assert "No events match these filters." in empty.text


async def test_ids_that_name_nothing_get_a_404_page_and_odd_paging_a_page(
    estate: Estate,
) -> None:
    client = estate.client
    csrf = csrf_of((await client.get("/ui/")).text)

    missing = [
        await client.get("/ui/events/99999999999999999999"),
        await client.get("/ui/events/9223372036854775808"),
        await client.get("/ui/events/0"),
        await client.get("/ui/events/123456"),
        await client.get("/ui/events/99999999999999999999/replay"),
        await client.get("/ui/events/123456/replay"),
        await client.get("/ui/numbers/nope"),
        await client.get(f"/ui/numbers/{'x' * 300}"),
        await client.post("/ui/events/99999999999999999999/replay", data={"csrf": csrf}),
        await client.post("/ui/events/123456/replay", data={"csrf": csrf}),
        await client.post("/ui/deliveries/99999999999999999999/retry", data={"csrf": csrf}),
        await client.post("/ui/deliveries/123456/retry", data={"csrf": csrf}),
    ]
    for response in missing:
        assert response.status_code == 404, (response.request.url, response.text)
        assert_secure_page(response)
        assert "<h1>No such " in response.text, response.request.url
        assert "<html" in response.text  # the problem page, not a bare error
    assert "No number with channel id nope." in missing[6].text

    for params in ({"cursor": "abc"}, {"cursor": "-5"}, {"state": "bogus"}, {"cursor": "1e9"}):
        response = await client.get("/ui/deliveries", params=params)
        assert response.status_code == 200, params
        assert f'data-delivery="{estate.dead_delivery}"' in response.text, params
    numbers_after_all = await client.get("/ui/", params={"cursor": "zzzzzzzz"})
    assert cards(numbers_after_all) == set()


# --- the rules page's test form --------------------------------------------------------------


CASES = [  # (sample, --status): two that fire different rules
    ("partner_webhook.channel_live.json", "live"),
    ("partner_webhook.account_violation.json", "live:restricted"),
]


async def test_the_rules_page_fires_what_hub_receiver_rules_test_fires(
    page_settings: MakeSettings, ops_url: str, tmp_path: Path
) -> None:
    env = {"RULES_PATH": str(SHIPPED_RULES), "OPS_NOTIFY_URL": ops_url}
    runs = []
    for name, status in CASES:
        path = tmp_path / name
        path.write_bytes(sample(name))
        args = ["rules", "test", str(path), "--status", status, "--json"]
        runs.append(asyncio.ensure_future(hub_receiver_async(*args, env=env)))
    async with running_app(page_settings()) as app:
        await log_in(app.client)
        pages = [
            await rules_test(app.client, sample(name).decode(), status=status)
            for name, status in CASES
        ]
    results = await asyncio.gather(*runs)  # the CLI in its own processes, meanwhile

    for (name, status), page, result in zip(CASES, pages, results, strict=True):
        assert result.returncode == 0, (name, result.stderr)
        report = json.loads(result.stdout)
        assert report["fired"], f"{name} --status {status} should fire some rule"
        assert page.status_code == 200, page.text
        assert fired_on_page(page) == sorted(report["fired"]), (name, status)
        counted = f"{len(report['fired'])} of {len(report['rules'])} rule(s) fire for"
        assert counted in page.text, name
        assert ops_url not in page.text
        assert TARGET_PASSWORD not in page.text
    assert fired_on_page(pages[0]) != fired_on_page(pages[1])


async def test_the_rules_page_refuses_a_body_that_is_not_json_with_422_and_keeps_it(
    page_settings: MakeSettings,
) -> None:
    async with running_app(page_settings()) as app:
        await log_in(app.client)
        refused = await rules_test(app.client, "not json", status="live")

    assert refused.status_code == 422
    assert_secure_page(refused)
    assert "Cannot read that event: not JSON" in refused.text
    assert "rule(s) fire for" not in refused.text
    assert "not json</textarea>" in refused.text  # what was pasted stays, to be corrected
