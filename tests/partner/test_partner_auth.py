from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from receiver.dev.fake_hub import FakeHubState
from receiver.partner.auth import TokenAuth
from receiver.partner.client import PartnerClient
from receiver.partner.errors import PartnerAPIError

from .conftest import MakeClient
from .support import PARTNER_ID, PASSWORD, TOKEN_TTL, USERNAME, ManualClock

CHANNELS_PATH = f"/partners/{PARTNER_ID}/channels"


async def test_it_sends_the_api_key_header(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    client = make_client()

    channel = await client.get_channel("kJ2mQ8CH")

    assert channel is not None
    [request] = hub_state.requests
    assert request.headers["x-api-key"] == "***"
    assert "authorization" not in request.headers
    assert hub_state.calls(path="/token") == []


async def test_it_fetches_a_bearer_token_once_and_reuses_it(
    token_client: Callable[..., PartnerClient], hub_state: FakeHubState
) -> None:
    client = token_client()

    await client.get_channel("kJ2mQ8CH")
    await client.get_channel("zR5wN3CH")

    assert [(r.method, r.path) for r in hub_state.requests] == [
        ("POST", "/token"),
        ("GET", CHANNELS_PATH),
        ("GET", CHANNELS_PATH),
    ]
    assert all(r.headers["authorization"] == "Bearer ***" for r in hub_state.calls(method="GET"))


async def test_concurrent_callers_share_one_token_fetch(
    token_client: Callable[..., PartnerClient], hub_state: FakeHubState
) -> None:
    client = token_client()
    hub_state.slow(0.05)

    await asyncio.gather(*(client.get_channel(cid) for cid in ("kJ2mQ8CH", "zR5wN3CH", "Tq7bY4CH")))

    assert len(hub_state.calls(path="/token")) == 1
    assert len(hub_state.calls(path=CHANNELS_PATH)) == 3


async def test_it_fetches_a_new_token_shortly_before_the_old_one_expires(
    token_client: Callable[..., PartnerClient], hub_state: FakeHubState, clock: ManualClock
) -> None:
    client = token_client()
    await client.get_channel("kJ2mQ8CH")

    clock.advance(TOKEN_TTL - 90)  # still well inside its lifetime: reused
    await client.get_channel("kJ2mQ8CH")
    assert len(hub_state.calls(path="/token")) == 1

    clock.advance(60)  # within the refresh margin, before the hub would refuse it
    await client.get_channel("kJ2mQ8CH")
    assert len(hub_state.calls(path="/token")) == 2
    assert len(hub_state.calls(path=CHANNELS_PATH)) == 3  # none was refused with a 401


async def test_it_refreshes_the_token_once_on_401(
    token_client: Callable[..., PartnerClient], hub_state: FakeHubState
) -> None:
    client = token_client()
    await client.get_channel("kJ2mQ8CH")
    hub_state.revoke_tokens()

    channel = await client.get_channel("kJ2mQ8CH")

    assert channel is not None
    assert [(r.method, r.path) for r in hub_state.requests] == [
        ("POST", "/token"),
        ("GET", CHANNELS_PATH),
        ("GET", CHANNELS_PATH),  # 401: token revoked
        ("POST", "/token"),
        ("GET", CHANNELS_PATH),
    ]


async def test_it_gives_up_when_the_fresh_token_is_refused_too() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(401, json={"meta": {"http_code": 401, "developer_message": "no"}})

    async with PartnerClient(
        base_url="http://hub.test",
        partner_id=PARTNER_ID,
        username=USERNAME,
        password=PASSWORD,
        transport=httpx.MockTransport(handler),
    ) as client:
        with pytest.raises(PartnerAPIError) as caught:
            await client.get_channel("kJ2mQ8CH")

    assert caught.value.kind == "auth"
    assert caught.value.permanent is True
    assert caught.value.status_code == 401
    assert seen == [
        "POST /token",
        f"GET {CHANNELS_PATH}",
        "POST /token",
        f"GET {CHANNELS_PATH}",
    ]


async def test_a_wrong_api_key_is_a_permanent_auth_error(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    client = make_client(api_key="not-the-key")

    with pytest.raises(PartnerAPIError) as caught:
        await client.get_channel("kJ2mQ8CH")

    assert (caught.value.kind, caught.value.permanent, caught.value.status_code) == (
        "auth",
        True,
        401,
    )
    assert len(hub_state.requests) == 1


async def test_a_wrong_password_is_a_permanent_auth_error(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    client = make_client(api_key=None, username=USERNAME, password="wrong")

    with pytest.raises(PartnerAPIError) as caught:
        await client.get_channel("kJ2mQ8CH")

    assert caught.value.kind == "auth"
    assert caught.value.permanent is True
    assert caught.value.developer_message == "Invalid username or password"
    assert [r.path for r in hub_state.requests] == ["/token"]


async def test_it_posts_the_credentials_as_json_to_the_token_endpoint() -> None:
    bodies: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v2/token":
            bodies.append(json.loads(request.content))
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer"})
        return httpx.Response(200, json={"partner_channels": []})

    async with PartnerClient(
        base_url="https://hub.example/api/v2/",
        partner_id=PARTNER_ID,
        username=USERNAME,
        password=PASSWORD,
        transport=httpx.MockTransport(handler),
    ) as client:
        assert await client.get_channel("kJ2mQ8CH") is None

    assert bodies == [{"username": USERNAME, "password": PASSWORD}]


def test_it_refuses_to_start_without_credentials() -> None:
    with pytest.raises(ValueError, match="api_key"):
        PartnerClient(base_url="http://hub.test", partner_id=PARTNER_ID, username=USERNAME)


async def test_concurrent_callers_refused_with_401_share_one_refresh(
    token_client: Callable[..., PartnerClient], hub_state: FakeHubState
) -> None:
    client = token_client()
    await client.get_channel("kJ2mQ8CH")
    hub_state.revoke_tokens()
    hub_state.slow(0.05)  # keep all three requests in flight together

    channels = await asyncio.gather(
        *(client.get_channel(cid) for cid in ("kJ2mQ8CH", "zR5wN3CH", "Tq7bY4CH"))
    )

    assert all(channel is not None for channel in channels)
    assert len(hub_state.calls(path="/token")) == 2  # the first token, and one refresh
    assert len(hub_state.calls(path=CHANNELS_PATH)) == 1 + 3 + 3  # each refused once, resent


async def test_concurrent_callers_share_one_refresh_when_the_token_expires(
    token_client: Callable[..., PartnerClient], hub_state: FakeHubState, clock: ManualClock
) -> None:
    client = token_client()
    await client.get_channel("kJ2mQ8CH")
    clock.advance(TOKEN_TTL)
    hub_state.slow(0.05)

    await asyncio.gather(*(client.get_channel(cid) for cid in ("kJ2mQ8CH", "zR5wN3CH", "Tq7bY4CH")))

    assert len(hub_state.calls(path="/token")) == 2
    assert len(hub_state.calls(path=CHANNELS_PATH)) == 4  # none was refused with a 401


async def test_a_temporary_token_failure_is_retried_like_any_call() -> None:
    seen: list[str] = []
    token_answers = [httpx.Response(503), httpx.Response(200, json={"access_token": "t"})]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/token":
            return token_answers.pop(0)
        return httpx.Response(200, json={"partner_channels": []})

    outcomes: list[tuple[str, str]] = []
    async with PartnerClient(
        base_url="http://hub.test",
        partner_id=PARTNER_ID,
        username=USERNAME,
        password=PASSWORD,
        backoff_base=0.001,
        transport=httpx.MockTransport(handler),
        on_request=lambda op, _seconds, outcome: outcomes.append((op, outcome)),
    ) as client:
        assert await client.get_channel("kJ2mQ8CH") is None

    assert seen == ["POST /token", "POST /token", f"GET {CHANNELS_PATH}"]
    assert outcomes == [
        ("token", "server"),
        ("get_channel", "server"),
        ("token", "ok"),
        ("get_channel", "ok"),
    ]


def test_token_auth_refuses_a_sync_client() -> None:
    auth = TokenAuth(token_url="http://hub.test/token", username=USERNAME, password=PASSWORD)
    transport = httpx.MockTransport(lambda _: httpx.Response(200))
    with httpx.Client(transport=transport) as http, pytest.raises(RuntimeError, match="Async"):
        http.get("http://hub.test/x", auth=auth)
