"""The fake hub must behave like the Partner API where our client depends on it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from receiver.dev.fake_hub import FakeHubState
from receiver.dev.sample_data import build_channel, build_client

from .support import API_KEY, PARTNER_ID, PASSWORD, TOKEN_TTL, USERNAME, ManualClock

CHANNELS = f"/partners/{PARTNER_ID}/channels"


@pytest.fixture
async def http(hub_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub_url, headers={"X-API-Key": API_KEY}) as client:
        yield client


async def get_channels(http: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    if "filters" in params and not isinstance(params["filters"], str):
        params["filters"] = json.dumps(params["filters"])
    response = await http.get(CHANNELS, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(page: dict[str, Any], key: str = "partner_channels") -> list[str]:
    return [item["id"] for item in page[key]]


async def test_it_answers_with_the_real_list_keys(http: httpx.AsyncClient) -> None:
    page = await get_channels(http, filters={"id": "kJ2mQ8CH"})

    assert set(page) == {
        "count",
        "filters",
        "limit",
        "offset",
        "sort",
        "total",
        "partner_channels",
    }
    assert (page["count"], page["total"], page["filters"]) == (1, 1, {"id": "kJ2mQ8CH"})


async def test_filters_match_dot_paths_exactly(http: httpx.AsyncClient) -> None:
    by_phone = await get_channels(http, filters={"setup_info.phone_number": "+4915187654321"})
    by_waba = await get_channels(http, filters={"waba_account.status": "approved"})
    partial = await get_channels(http, filters={"setup_info.phone_number": "+49151"})
    combined = await get_channels(http, filters={"client_id": "Vb7xR2CL", "hub_status": "live"})

    assert ids(by_phone) == ["zR5wN3CH"]
    assert ids(by_waba) == ["kJ2mQ8CH", "Tq7bY4CH"]
    assert ids(partial) == []
    assert ids(combined) == ["kJ2mQ8CH"]


async def test_limit_and_offset_page_through_the_matches(http: httpx.AsyncClient) -> None:
    first = await get_channels(http, limit=2, offset=0, sort="id")
    second = await get_channels(http, limit=2, offset=2, sort="id")

    assert (first["count"], first["total"], second["count"]) == (2, 3, 1)
    assert ids(first) + ids(second) == ["Tq7bY4CH", "kJ2mQ8CH", "zR5wN3CH"]


async def test_sort_takes_a_comma_list_with_minus_for_descending(
    http: httpx.AsyncClient,
) -> None:
    newest_first = await get_channels(http, sort="-created_at")
    by_client_then_newest = await get_channels(http, sort="client_id,-created_at")

    assert ids(newest_first) == ["Tq7bY4CH", "zR5wN3CH", "kJ2mQ8CH"]
    assert newest_first["sort"] == ["-created_at"]
    assert ids(by_client_then_newest) == ["Tq7bY4CH", "zR5wN3CH", "kJ2mQ8CH"]


@pytest.mark.parametrize(
    "params",
    [
        {"filters": "{not json"},
        {"filters": '["id"]'},
        {"limit": "many"},
        {"offset": "-3"},
    ],
)
async def test_malformed_list_parameters_get_a_400_in_the_error_shape(
    http: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await http.get(CHANNELS, params=params)

    assert response.status_code == 400
    meta = response.json()["meta"]
    assert (meta["success"], meta["http_code"]) == (False, 400)
    assert meta["developer_message"]


async def test_an_unknown_partner_gets_a_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/partners/OtherPA/clients")

    assert response.status_code == 404
    assert response.json()["meta"]["developer_message"] == "Partner not found"


async def test_requests_without_valid_credentials_get_a_401(hub_url: str) -> None:
    async with httpx.AsyncClient(base_url=hub_url) as anonymous:
        missing = await anonymous.get(CHANNELS)
        wrong = await anonymous.get(CHANNELS, headers={"X-API-Key": "nope"})
        forged = await anonymous.get(CHANNELS, headers={"Authorization": "Bearer forged"})

    for response in (missing, wrong, forged):
        assert response.status_code == 401
        assert response.json()["meta"]["http_code"] == 401


async def test_bearer_tokens_expire_after_the_ttl(hub_url: str, clock: ManualClock) -> None:
    async with httpx.AsyncClient(base_url=hub_url) as anonymous:
        issued = await anonymous.post("/token", json={"username": USERNAME, "password": PASSWORD})
        body = issued.json()
        auth = {"Authorization": f"Bearer {body['access_token']}"}
        fresh = await anonymous.get(CHANNELS, headers=auth)
        clock.advance(TOKEN_TTL)
        stale = await anonymous.get(CHANNELS, headers=auth)

    assert (body["token_type"], body["expires_in"]) == ("bearer", TOKEN_TTL)
    assert (fresh.status_code, stale.status_code) == (200, 401)


async def test_the_request_log_hides_secrets(
    hub_url: str, hub_state: FakeHubState, http: httpx.AsyncClient
) -> None:
    await http.get(CHANNELS, params={"limit": "1"})

    [request] = hub_state.requests
    assert request.headers["x-api-key"] == "***"
    assert request.query == {"limit": "1"}
    assert API_KEY not in repr(hub_state.requests)


async def test_update_channel_merges_nested_fields_and_bumps_modified_at(
    hub_state: FakeHubState, http: httpx.AsyncClient
) -> None:
    before = hub_state.channels["kJ2mQ8CH"]["modified_at"]

    hub_state.update_channel("kJ2mQ8CH", waba_account={"status": "account_banned"})

    [channel] = (await get_channels(http, filters={"id": "kJ2mQ8CH"}))["partner_channels"]
    assert channel["waba_account"]["status"] == "account_banned"
    assert channel["waba_account"]["fb_account_status"] == "verified"
    assert channel["modified_at"] > before


async def test_move_channel_hands_a_channel_to_another_client(
    hub_state: FakeHubState, http: httpx.AsyncClient
) -> None:
    hub_state.move_channel("zR5wN3CH", client_id="Hn3pZ8CL")

    page = await get_channels(http, filters={"client_id": "Hn3pZ8CL"})
    assert set(ids(page)) == {"zR5wN3CH", "Tq7bY4CH"}
    moved = hub_state.channels["zR5wN3CH"]
    assert moved["client"]["contact_info"]["email"] == "it@nordwind-tools.example"
    assert moved["waba_account"]["client_id"] == "Hn3pZ8CL"


async def test_set_channel_adds_a_channel_built_from_the_sample_shape(
    hub_state: FakeHubState, http: httpx.AsyncClient
) -> None:
    newcomer = build_client(client_id="Qw8eR4CL", name="Newcomer", email="a@new.example")
    hub_state.set_client(newcomer)
    hub_state.set_channel(
        build_channel(channel_id="Zx1cV2CH", client=newcomer, phone_number="+100", phone_name="New")
    )

    page = await get_channels(http, filters={"client.contact_info.email": "a@new.example"})

    assert ids(page) == ["Zx1cV2CH"]
