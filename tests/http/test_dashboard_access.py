"""The dashboard's door over real HTTP on loopback: ADMIN_TOKEN, the session cookie, CSRF.

Every test runs the real app (lifespan and all) under uvicorn and talks to it with httpx as
a browser would: it logs in through the form, carries the cookie, and takes the CSRF token
from a page's hidden input. What a refused request must not do is checked in the database
through the read model (`receiver.ops.records`) the pages themselves use. The helpers at the
top are shared with tests/http/test_dashboard_pages.py.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from receiver.http.ui.render import CSP
from receiver.http.ui.session import COOKIE, FREE_FAILURES, MAX_WAIT, LoginLimiter, SessionBox
from receiver.ops import records
from receiver.settings import Settings
from tests.support.app import RunningApp, running_app
from tests.support.events import signed
from tests.support.fakes import Sink
from tests.support.samples import REPO, sample

MakeSettings = Callable[..., Settings]

# Distinctive fake secrets: none may appear in a page, a cookie or a log line.
ADMIN_TOKEN = "adm-Dash-Tok3n-Rv62Qx"
WEBHOOK_SECRET = "whsec-Dash-Secr3t-Lp27"
SHIPPED_RULES = REPO / "routing_rules"
ACME_LIVE = "kJ2mQ8CH"
ACME_PHONE = "+4915112345678"

CSRF_INPUT = re.compile(r'<input type="hidden" name="csrf" value="([^"]*)">')
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
STYLE_IN_HTML = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
FORM = {"content-type": "application/x-www-form-urlencoded"}


# --- helpers shared with test_dashboard_pages.py ------------------------------------------------


def csrf_of(html: str) -> str:
    """The CSRF token of a page: every form on it carries the same one."""
    tokens: set[str] = set(CSRF_INPUT.findall(html))
    assert len(tokens) == 1, f"expected one CSRF token on the page, found {tokens}"
    return tokens.pop()


def assert_secure_headers(response: httpx.Response) -> None:
    """The headers render.py puts on every dashboard answer, redirects included."""
    where = f"{response.request.method} {response.request.url.path}"
    assert response.headers.get("content-security-policy") == CSP, where
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("x-frame-options") == "DENY", where
    assert response.headers.get("cache-control") == "no-store", where


def assert_secure_page(response: httpx.Response) -> None:
    """An HTML page with the headers, and nothing in it the CSP would have to block."""
    assert_secure_headers(response)
    where = f"{response.request.method} {response.request.url.path}"
    assert response.headers["content-type"].startswith("text/html"), where
    html = response.text
    for attributes in SCRIPT_TAG.findall(html):
        assert "src=" in attributes, f"{where}: inline <script{attributes}>"
    assert not STYLE_IN_HTML.search(html), f"{where}: inline style"


def browser(
    app: RunningApp, *, cookie: str | None = None, address: str | None = None
) -> httpx.AsyncClient:
    """A second browser on the app: its own cookie jar, optionally its own source address."""
    transport = httpx.AsyncHTTPTransport(local_address=address) if address else None
    client = httpx.AsyncClient(base_url=app.url, timeout=10.0, transport=transport)
    if cookie is not None:
        client.cookies.set(COOKIE, cookie)
    return client


async def log_in(client: httpx.AsyncClient, *, token: str = ADMIN_TOKEN) -> str:
    """Log in through the form; return the session's CSRF token as the pages carry it."""
    response = await client.post("/ui/login", data={"token": token, "next": "/ui/"})
    assert response.status_code == 303, response.text
    home = await client.get("/ui/")
    assert home.status_code == 200, home.text
    return csrf_of(home.text)


async def post_webhook(app: RunningApp, document: dict[str, Any] | bytes) -> int:
    """Post a webhook signed with the test secret; return its stored event id."""
    body = document if isinstance(document, bytes) else orjson.dumps(document)
    response = await app.client.post(
        "/webhooks/partner", content=body, headers=signed(body, WEBHOOK_SECRET)
    )
    assert response.status_code == 200, response.text
    event_id: int = response.json()["event_id"]
    return event_id


def not_secret_of(value: str) -> list[str]:
    """`value` and the base64 forms a careless cookie could carry it in."""
    raw = value.encode()
    encoded = [base64.b64encode(raw), base64.urlsafe_b64encode(raw)]
    return [value, *{e.decode() for e in encoded}, *{e.decode().rstrip("=") for e in encoded}]


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def dashboard_settings(make_settings: MakeSettings, sqlite_url: str, sink: Sink) -> MakeSettings:
    """Settings of a service with the dashboard on, the shipped rules sending to the sink."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": sqlite_url,
            "admin_token": ADMIN_TOKEN,
            "d360_webhook_secret": WEBHOOK_SECRET,
            "rules_path": SHIPPED_RULES,
            "rules_env": {"OPS_NOTIFY_URL": sink.json_url("/ops")},
        }
        values.update(overrides)
        return make_settings(**values)

    return make


@pytest.fixture
async def app(dashboard_settings: MakeSettings) -> AsyncIterator[RunningApp]:
    async with running_app(dashboard_settings()) as running:
        yield running


@dataclass(frozen=True)
class DeadDelivery:
    event_id: int
    delivery_id: int


@pytest.fixture
async def dead(app: RunningApp, sink: Sink) -> DeadDelivery:
    """A processed channel_live whose team message is dead (the sink refused it for good)."""
    sink.state.fail_next(1, status=400)
    event_id = await post_webhook(app, sample("partner_webhook.channel_live.json"))
    await app.run_to_idle()
    found = await records.list_deliveries(
        app.services, filters=records.Filters(state="dead"), window=records.Window(limit=5)
    )
    [row] = found.items
    assert row["event_id"] == event_id
    return DeadDelivery(event_id=event_id, delivery_id=row["id"])


class Clock:
    """The login limiter's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter_with(app: RunningApp, clock: Clock) -> None:
    """Give the app a login limiter on `clock` (the app makes its own on the first login)."""
    app.app.state.ui_login_limiter = LoginLimiter(clock=clock)


# --- without ADMIN_TOKEN ---------------------------------------------------------------------


async def test_without_admin_token_every_dashboard_url_explains_how_to_enable_it_and_shows_nothing(
    dashboard_settings: MakeSettings,
) -> None:
    async with running_app(dashboard_settings(admin_token=None)) as app:
        event_id = await post_webhook(app, sample("partner_webhook.channel_live.json"))
        await app.run_to_idle()
        detail = await records.event_detail(app.services, event_id)
        assert detail is not None
        assert (detail["channel_id"], detail["phone_number"]) == (ACME_LIVE, ACME_PHONE)
        answers = [
            await app.client.get("/ui/"),
            await app.client.get("/ui/events"),
            await app.client.get(f"/ui/events/{event_id}"),
            await app.client.get(f"/ui/numbers/{ACME_LIVE}"),
            await app.client.get("/ui/deliveries"),
            await app.client.get("/ui/rules"),
            await app.client.get("/ui/login"),
            await app.client.get("/ui/login?next=/ui/events"),
            await app.client.get("/ui/export.csv"),
            await app.client.post("/ui/login", data={"token": "", "next": "/ui/"}),
            await app.client.post("/ui/login", data={"token": "anything"}),
            await app.client.post("/ui/logout", data={"csrf": "x"}),
            await app.client.post(f"/ui/events/{event_id}/replay", data={"csrf": "x"}),
            await app.client.post("/ui/rules/test", data={"csrf": "x", "event": "{}"}),
        ]

        for response in answers:
            where = f"{response.request.method} {response.request.url}"
            assert response.status_code == 404, where
            assert_secure_page(response)
            assert "The dashboard is disabled" in response.text, where
            assert "ADMIN_TOKEN" in response.text, where
            assert ACME_LIVE not in response.text, where
            assert ACME_PHONE not in response.text, where
            assert "set-cookie" not in response.headers, where
            assert "<nav" not in response.text, where
        after = await records.event_detail(app.services, event_id)
        assert after is not None
        assert len(after["deliveries"]) == len(detail["deliveries"])  # no replay happened


# --- logging in, and back to where one was going --------------------------------------------


async def test_a_page_asked_for_without_a_session_sends_to_login_and_back_after_it(
    app: RunningApp,
) -> None:
    asked = await app.client.get("/ui/events?x=1")

    assert asked.status_code == 303
    assert asked.headers["location"] == "/ui/login?next=" + quote("/ui/events?x=1", safe="")
    assert_secure_headers(asked)
    form = await app.client.get(asked.headers["location"])
    assert form.status_code == 200
    assert_secure_page(form)
    assert '<input type="hidden" name="next" value="/ui/events?x=1">' in form.text
    assert 'name="token" type="password"' in form.text
    logged_in = await app.client.post(
        "/ui/login", data={"token": ADMIN_TOKEN, "next": "/ui/events?x=1"}
    )
    assert logged_in.status_code == 303
    assert logged_in.headers["location"] == "/ui/events?x=1"
    assert_secure_headers(logged_in)
    events = await app.client.get(logged_in.headers["location"])
    assert events.status_code == 200
    assert "<h1>Events</h1>" in events.text
    async with browser(app) as other:
        export = await other.get("/ui/export.csv")
    assert export.status_code == 303
    assert export.headers["location"] == "/ui/login?next=%2Fui%2Fexport.csv"


async def test_a_next_pointing_anywhere_but_the_dashboard_sends_the_login_home(
    app: RunningApp,
) -> None:
    elsewhere = [
        "https://evil.example",
        "https://evil.example/ui/",
        "//evil.example",
        "//evil.example/ui/",
        "/admin/events",
        "/\\evil",
        "/\\/evil.example",
        "/ui/\\evil.example",
        "javascript:alert(1)",
        "ui/events",
        "",
    ]
    for target in elsewhere:
        form = await app.client.get("/ui/login", params={"next": target})
        assert form.status_code == 200, target
        assert '<input type="hidden" name="next" value="/ui/">' in form.text, target
        async with browser(app) as client:
            response = await client.post("/ui/login", data={"token": ADMIN_TOKEN, "next": target})
        assert response.status_code == 303, target
        assert response.headers["location"] == "/ui/", target


async def test_a_wrong_token_is_refused_with_403_and_sets_no_cookie(app: RunningApp) -> None:
    response = await app.client.post(
        "/ui/login", data={"token": "not-the-token-Wq7", "next": "/ui/events"}
    )

    assert response.status_code == 403
    assert_secure_page(response)
    assert "That is not the admin token." in response.text
    assert "not-the-token-Wq7" not in response.text
    assert "set-cookie" not in response.headers
    assert '<input type="hidden" name="next" value="/ui/events">' in response.text
    still_out = await app.client.get("/ui/")
    assert still_out.status_code == 303
    assert still_out.headers["location"].startswith("/ui/login")


async def test_the_right_token_sets_a_strict_http_only_cookie_that_holds_no_token(
    app: RunningApp, dead: DeadDelivery
) -> None:
    response = await app.client.post("/ui/login", data={"token": f"  {ADMIN_TOKEN}\n"})

    assert response.status_code == 303
    assert response.headers["location"] == "/ui/"
    [set_cookie] = response.headers.get_list("set-cookie")
    name, _, rest = set_cookie.partition("=")
    value, *attributes = (part.strip() for part in rest.split(";"))
    assert name == COOKIE
    flags = {a.split("=")[0].lower(): a.partition("=")[2] for a in attributes}
    assert "httponly" in flags
    assert flags["samesite"].lower() == "strict"
    assert flags["path"] == "/ui/"
    assert flags["max-age"] == str(int(app.services.settings.ui_session_ttl))
    assert "secure" not in flags  # plain http on loopback; https sets it
    for form in not_secret_of(ADMIN_TOKEN):
        assert form not in value, form
    box = SessionBox(ADMIN_TOKEN, ttl=60)
    assert box.open(value.strip('"'), now=time.time()) is not None  # it is the session

    pages = [
        "/ui/",
        f"/ui/numbers/{ACME_LIVE}",
        "/ui/events",
        f"/ui/events/{dead.event_id}",
        f"/ui/events/{dead.event_id}/replay",
        "/ui/deliveries",
        "/ui/rules",
        "/ui/login",
        "/ui/export.csv",
    ]
    for path in pages:
        page = await app.client.get(path)
        assert page.status_code == 200, path
        assert ADMIN_TOKEN not in page.text, path
        assert WEBHOOK_SECRET not in page.text, path


async def test_a_cookie_sealed_by_this_token_is_accepted_until_the_ttl(
    dashboard_settings: MakeSettings,
) -> None:
    box = SessionBox(ADMIN_TOKEN, ttl=60)
    session, cookie = box.new_session(now=time.time() - 30)
    async with (
        running_app(dashboard_settings(ui_session_ttl=60)) as app,
        browser(app, cookie=cookie) as client,
    ):
        home = await client.get("/ui/")
        assert home.status_code == 200
        assert csrf_of(home.text) == session.csrf
        tested = await client.post("/ui/rules/test", data={"csrf": session.csrf, "event": "{}"})
        assert tested.status_code == 200, tested.text


def _tampered(cookie: str) -> str:
    middle = len(cookie) // 2
    flipped = "A" if cookie[middle] != "A" else "B"
    return cookie[:middle] + flipped + cookie[middle + 1 :]


async def refused_cookie(app: RunningApp, kind: str) -> tuple[str, str]:
    """A cookie the app must refuse, and the CSRF token that goes with it."""
    box = SessionBox(ADMIN_TOKEN, ttl=app.services.settings.ui_session_ttl)
    if kind == "sealed under another ADMIN_TOKEN":
        session, cookie = SessionBox("another-admin-token", ttl=60).new_session(now=time.time())
        return cookie, session.csrf
    if kind == "expired":
        session, cookie = box.new_session(now=time.time() - 120)
        return cookie, session.csrf
    if kind == "from the future":
        session, cookie = box.new_session(now=time.time() + 3600)
        return cookie, session.csrf
    async with browser(app) as other:  # a real login's cookie, then changed
        csrf = await log_in(other)
        issued = other.cookies.get(COOKIE)
    assert issued is not None
    if kind == "tampered with":
        return _tampered(issued.strip('"')), csrf
    return "not-a-session", csrf


@pytest.mark.parametrize(
    "kind",
    ["sealed under another ADMIN_TOKEN", "tampered with", "expired", "from the future", "garbage"],
)
async def test_a_cookie_this_service_did_not_seal_or_sealed_too_long_ago_is_refused(
    dashboard_settings: MakeSettings, kind: str
) -> None:
    async with running_app(dashboard_settings(ui_session_ttl=60)) as app:
        cookie, csrf = await refused_cookie(app, kind)
        async with browser(app, cookie=cookie) as client:
            for path in ("/ui/", "/ui/rules", "/ui/export.csv"):
                response = await client.get(path)
                assert response.status_code == 303, path
                assert response.headers["location"] == "/ui/login?next=" + quote(path, safe="")
            posted = await client.post("/ui/rules/test", data={"csrf": csrf, "event": "{}"})
    assert posted.status_code == 401
    assert_secure_page(posted)
    assert "Not logged in" in posted.text
    assert "fire for" not in posted.text


# --- slowing a guesser down ----------------------------------------------------------------


async def test_after_three_wrong_tokens_even_the_right_one_waits_with_429_and_retry_after(
    app: RunningApp,
) -> None:
    clock = Clock()
    limiter_with(app, clock)
    for n in range(FREE_FAILURES):
        wrong = await app.client.post("/ui/login", data={"token": f"guess-{n}"})
        assert wrong.status_code == 403, n

    held = await app.client.post("/ui/login", data={"token": ADMIN_TOKEN})

    assert held.status_code == 429
    assert_secure_page(held)
    wait = int(held.headers["retry-after"])
    assert 1 <= wait <= MAX_WAIT + 1
    assert f"wait {wait} s" in held.text
    assert "set-cookie" not in held.headers
    assert (await app.client.get("/ui/")).status_code == 303  # not logged in
    # The count is per remote address: another address logs in at once ...
    async with browser(app, address="127.0.0.2") as other:
        elsewhere = await other.post("/ui/login", data={"token": ADMIN_TOKEN})
        assert elsewhere.status_code == 303
        assert (await other.get("/ui/")).status_code == 200
    # ... and this one once it has waited.
    clock.now += wait
    again = await app.client.post("/ui/login", data={"token": ADMIN_TOKEN})
    assert again.status_code == 303
    assert (await app.client.get("/ui/")).status_code == 200


async def test_each_further_wrong_token_doubles_the_wait(app: RunningApp) -> None:
    clock = Clock()
    limiter_with(app, clock)
    waits = []
    for n in range(FREE_FAILURES + 4):
        wrong = await app.client.post("/ui/login", data={"token": f"guess-{n}"})
        assert wrong.status_code == 403, n
        if n + 1 < FREE_FAILURES:
            continue
        held = await app.client.post("/ui/login", data={"token": ADMIN_TOKEN})
        assert held.status_code == 429, n
        waits.append(int(held.headers["retry-after"]))
        clock.now += MAX_WAIT  # whatever the wait was, it is over

    assert waits == [1, 2, 4, 8, 16]  # doubling from 1 s (whole seconds, rounded up)


async def test_a_guesser_gets_a_few_log_lines_not_one_per_try(
    app: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    limiter_with(app, clock)
    guesses = [f"guess-Zx{n:02d}" for n in range(10)]
    for guess in guesses:  # each after the wait: every one is looked at and refused
        clock.now += MAX_WAIT + 1
        response = await app.client.post("/ui/login", data={"token": guess})
        assert response.status_code == 403
    for guess in guesses:  # without waiting: refused unread
        response = await app.client.post("/ui/login", data={"token": guess})
        assert response.status_code == 429

    warnings = [
        r for r in caplog.records if r.name == "receiver.ui" and r.levelno >= logging.WARNING
    ]
    assert 1 <= len(warnings) <= 4, [r.getMessage() for r in warnings]
    for record in caplog.records:
        logged = repr(record.__dict__)
        for guess in guesses:
            assert guess not in logged, record.getMessage()
        assert ADMIN_TOKEN not in logged


# --- CSRF: every POST carries the session's token -------------------------------------------


async def _delivery_and_replays(app: RunningApp, dead: DeadDelivery) -> tuple[Any, ...]:
    """What a POST could change: the dead delivery (state, attempts, log) and the event's
    deliveries (a replay adds some)."""
    delivery = await records.delivery_detail(app.services, dead.delivery_id)
    event = await records.event_detail(app.services, dead.event_id)
    assert delivery is not None
    assert event is not None
    return (
        delivery["state"],
        delivery["attempts"],
        len(delivery["attempt_log"]),
        sorted(d["id"] for d in event["deliveries"]),
    )


def _actions(dead: DeadDelivery) -> list[tuple[str, dict[str, str]]]:
    return [
        (f"/ui/deliveries/{dead.delivery_id}/retry", {"next": "/ui/deliveries"}),
        (f"/ui/events/{dead.event_id}/replay", {"mode": "force"}),
        ("/ui/rules/test", {"event": sample("partner_webhook.channel_live.json").decode()}),
        ("/ui/logout", {"next": "/ui/"}),
    ]


async def test_a_post_without_the_forms_csrf_token_is_refused_and_changes_nothing(
    app: RunningApp, dead: DeadDelivery
) -> None:
    csrf = await log_in(app.client)
    before = await _delivery_and_replays(app, dead)
    assert before[0] == "dead"
    async with browser(app) as other:
        other_csrf = await log_in(other)  # a token of another login
    assert other_csrf != csrf

    for path, fields in _actions(dead):
        for given in (None, "", "wrong", csrf[:-1], other_csrf):
            data = fields if given is None else {**fields, "csrf": given}
            response = await app.client.post(path, data=data)
            assert response.status_code == 403, (path, given)
            assert_secure_page(response)
            assert "Form expired" in response.text, (path, given)
            assert "set-cookie" not in response.headers, (path, given)
            assert "fire for" not in response.text, (path, given)

    await app.run_to_idle()
    assert await _delivery_and_replays(app, dead) == before
    assert (await app.client.get("/ui/")).status_code == 200  # the logout did not happen


async def test_a_post_with_the_pages_csrf_token_does_what_it_says(
    app: RunningApp, dead: DeadDelivery, sink: Sink
) -> None:
    await log_in(app.client)
    deliveries = await app.client.get("/ui/deliveries")
    assert f'action="/ui/deliveries/{dead.delivery_id}/retry"' in deliveries.text
    csrf = csrf_of(deliveries.text)
    sent_before = len(sink.state.received)

    retried = await app.client.post(
        f"/ui/deliveries/{dead.delivery_id}/retry", data={"csrf": csrf, "next": "/ui/deliveries"}
    )
    assert retried.status_code == 303, retried.text
    assert retried.headers["location"] == "/ui/deliveries?notice=retried"
    assert_secure_headers(retried)
    await app.run_to_idle()
    delivery = await records.delivery_detail(app.services, dead.delivery_id)
    assert delivery is not None
    assert (delivery["state"], delivery["attempts"]) == ("sent", 2)
    assert len(sink.state.received) == sent_before + 1
    notice = await app.client.get(retried.headers["location"])
    assert "Retry scheduled" in notice.text

    preview = await app.client.get(f"/ui/events/{dead.event_id}/replay")
    before = await records.event_detail(app.services, dead.event_id)
    assert before is not None
    replayed = await app.client.post(
        f"/ui/events/{dead.event_id}/replay", data={"csrf": csrf_of(preview.text), "mode": "force"}
    )
    assert replayed.status_code == 303, replayed.text
    assert replayed.headers["location"] == f"/ui/events/{dead.event_id}?notice=replayed"
    await app.run_to_idle()
    after = await records.event_detail(app.services, dead.event_id)
    assert after is not None
    assert len(after["deliveries"]) > len(before["deliveries"])
    assert any(d["replay_round"] for d in after["deliveries"])

    rules = await app.client.get("/ui/rules")
    tested = await app.client.post(
        "/ui/rules/test",
        data={
            "csrf": csrf_of(rules.text),
            "event": sample("partner_webhook.channel_live.json").decode(),
        },
    )
    assert tested.status_code == 200, tested.text
    assert "fire for channel_live" in tested.text

    out = await app.client.post("/ui/logout", data={"csrf": csrf})
    assert out.status_code == 303
    assert out.headers["location"] == "/ui/login?notice=logged_out"
    [cleared] = out.headers.get_list("set-cookie")
    assert cleared.startswith(f"{COOKIE}=")
    assert "max-age=0" in cleared.lower()
    assert "path=/ui/" in cleared.lower()
    assert (await app.client.get("/ui/")).status_code == 303
    assert "You are logged out." in (await app.client.get(out.headers["location"])).text


async def test_a_post_without_a_session_is_refused_with_401_and_changes_nothing(
    app: RunningApp, dead: DeadDelivery
) -> None:
    async with browser(app) as other:
        csrf = await log_in(other)  # a valid token, but this browser has no session
    before = await _delivery_and_replays(app, dead)

    for path, fields in _actions(dead):
        response = await app.client.post(path, data={**fields, "csrf": csrf})
        assert response.status_code == 401, path
        assert_secure_page(response)
        assert "Not logged in" in response.text

    await app.run_to_idle()
    assert await _delivery_and_replays(app, dead) == before


async def test_a_post_that_is_not_a_form_gets_415_and_a_huge_form_413(app: RunningApp) -> None:
    csrf = await log_in(app.client)
    event = sample("partner_webhook.channel_live.json").decode()

    as_json = await app.client.post("/ui/rules/test", json={"csrf": csrf, "event": event})
    as_multipart = await app.client.post(
        "/ui/rules/test", data={"csrf": csrf, "event": event}, files={"f": b"x"}
    )
    as_text = await app.client.post(
        "/ui/rules/test",
        content=f"csrf={csrf}",
        headers={"content-type": "text/plain"},
    )
    no_type = await app.client.post("/ui/rules/test", content=f"csrf={csrf}")
    huge = await app.client.post("/ui/rules/test", data={"csrf": csrf, "event": "x" * (600 * 1024)})
    login_as_json = await app.client.post("/ui/login", json={"token": ADMIN_TOKEN})
    login_huge = await app.client.post(
        "/ui/login", data={"token": ADMIN_TOKEN, "padding": "x" * (600 * 1024)}
    )

    for response in (as_json, as_multipart, as_text, no_type, login_as_json):
        assert response.status_code == 415, response.request.headers.get("content-type")
        assert_secure_page(response)
        assert "application/x-www-form-urlencoded" in response.text
    for response in (huge, login_huge):
        assert response.status_code == 413
        assert_secure_page(response)
        assert "too large" in response.text
    assert "set-cookie" not in login_as_json.headers
    assert "set-cookie" not in login_huge.headers


async def test_a_form_with_too_many_fields_is_refused_as_a_bad_form_not_a_server_error(
    app: RunningApp,
) -> None:
    csrf = await log_in(app.client)
    fields = "&".join(f"f{n}=1" for n in range(60))

    tested = await app.client.post("/ui/rules/test", content=f"csrf={csrf}&{fields}", headers=FORM)
    login = await app.client.post(
        "/ui/login", content=f"token={ADMIN_TOKEN}&{fields}", headers=FORM
    )

    for response in (tested, login):
        assert response.status_code == 400, response.text
        assert_secure_page(response)
        assert "too many fields" in response.text
