from __future__ import annotations

import asyncio
import json

import pytest

from receiver.dev.fake_hub import FakeHubState
from receiver.partner.errors import PartnerAPIError

from .conftest import MakeClient
from .support import PARTNER_ID

CHANNELS_PATH = f"/partners/{PARTNER_ID}/channels"
CLIENTS_PATH = f"/partners/{PARTNER_ID}/clients"


async def test_get_channel_sends_exactly_the_id_filter(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    client = make_client()

    channel = await client.get_channel("kJ2mQ8CH")

    [request] = hub_state.requests
    assert (request.method, request.path) == ("GET", CHANNELS_PATH)
    assert request.query == {"filters": '{"id":"kJ2mQ8CH"}'}
    assert channel is not None
    assert channel["setup_info"]["phone_number"] == "+4915112345678"
    assert channel["client"]["contact_info"]["email"] == "ops@acme-bakery.example"


async def test_get_channel_returns_none_for_an_unknown_channel(make_client: MakeClient) -> None:
    client = make_client()

    assert await client.get_channel("nOpE00CH") is None


async def test_concurrent_lookups_of_one_channel_share_one_request(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    client = make_client()
    hub_state.slow(0.05)

    results = await asyncio.gather(*(client.get_channel("kJ2mQ8CH") for _ in range(10)))

    assert len(hub_state.requests) == 1
    assert all(result == results[0] for result in results)
    first = results[0]
    assert first is not None
    first["status"] = "mutated"
    assert all(r is not None and r["status"] == "running" for r in results[1:])


async def test_lookups_of_different_channels_are_not_coalesced(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    client = make_client()
    hub_state.slow(0.05)

    await asyncio.gather(client.get_channel("kJ2mQ8CH"), client.get_channel("zR5wN3CH"))

    assert len(hub_state.requests) == 2


async def test_a_shared_failure_reaches_every_waiter_and_is_not_cached(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    client = make_client()
    hub_state.slow(0.05)
    hub_state.fail_next(1, status=404)

    results = await asyncio.gather(
        *(client.get_channel("kJ2mQ8CH") for _ in range(5)), return_exceptions=True
    )

    assert len(hub_state.requests) == 1
    assert all(isinstance(r, PartnerAPIError) and r.status_code == 404 for r in results)
    hub_state.slow(0)
    assert await client.get_channel("kJ2mQ8CH") is not None
    assert len(hub_state.requests) == 2


async def test_one_waiter_giving_up_does_not_cancel_the_shared_request(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    client = make_client()
    hub_state.slow(0.1)
    impatient = asyncio.create_task(client.get_channel("kJ2mQ8CH"))
    patient = asyncio.create_task(client.get_channel("kJ2mQ8CH"))
    await asyncio.sleep(0.02)

    impatient.cancel()
    channel = await patient

    assert channel is not None
    assert impatient.cancelled()
    assert len(hub_state.requests) == 1


async def test_find_channel_by_phone_filters_on_the_setup_info_dot_path(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    client = make_client()

    channel = await client.find_channel_by_phone("+31612345678")

    assert channel is not None
    assert channel["id"] == "Tq7bY4CH"
    assert json.loads(hub_state.requests[0].query["filters"]) == {
        "setup_info.phone_number": "+31612345678"
    }
    assert await client.find_channel_by_phone("+10000000000") is None


async def test_get_client_reads_the_clients_list(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    client = make_client()
    hub_state.slow(0.05)

    results = await asyncio.gather(*(client.get_client("Hn3pZ8CL") for _ in range(3)))

    [request] = hub_state.requests
    assert (request.path, request.query) == (CLIENTS_PATH, {"filters": '{"id":"Hn3pZ8CL"}'})
    assert all(
        r is not None and r["contact_info"]["email"] == "it@nordwind-tools.example" for r in results
    )
    hub_state.slow(0)
    assert await client.get_client("nOpE00CL") is None


async def test_list_channels_passes_filters_limit_offset_and_sort(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    client = make_client()

    page = await client.list_channels(
        filters={"client_id": "Vb7xR2CL"}, limit=1, offset=1, sort=["-created_at", "id"]
    )

    assert hub_state.requests[0].query == {
        "filters": '{"client_id":"Vb7xR2CL"}',
        "limit": "1",
        "offset": "1",
        "sort": "-created_at,id",
    }
    assert (page["total"], page["count"], page["limit"], page["offset"]) == (2, 1, 1, 1)
    assert [c["id"] for c in page["partner_channels"]] == ["kJ2mQ8CH"]


async def test_list_clients_returns_the_raw_page(make_client: MakeClient) -> None:
    client = make_client()

    page = await client.list_clients(sort="-id")

    assert [c["id"] for c in page["clients"]] == ["Vb7xR2CL", "Hn3pZ8CL"]
    assert page["sort"] == ["-id"]


async def test_an_invalid_limit_is_a_permanent_client_error(make_client: MakeClient) -> None:
    client = make_client()

    with pytest.raises(PartnerAPIError) as caught:
        await client.list_channels(limit=-1)

    assert (caught.value.kind, caught.value.permanent, caught.value.status_code) == (
        "client",
        True,
        400,
    )
