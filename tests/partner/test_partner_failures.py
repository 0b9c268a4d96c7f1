from __future__ import annotations

import logging

import httpx
import pytest

from receiver.dev.fake_hub import FakeHubState
from receiver.http.loopback import free_port
from receiver.partner.client import PartnerClient
from receiver.partner.errors import PartnerAPIError
from tests.support.waiting import eventually

from .conftest import MakeClient
from .support import API_KEY, PARTNER_ID, PASSWORD, USERNAME, SleepRecorder

CHANNELS_PATH = f"/partners/{PARTNER_ID}/channels"


async def test_it_honours_retry_after_on_429(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    sleeps = SleepRecorder()
    client = make_client(sleep=sleeps, backoff_max=5.0)
    hub_state.fail_next(1, status=429, retry_after=2)

    channel = await client.get_channel("kJ2mQ8CH")

    assert channel is not None
    assert sleeps.delays == [2.0]
    assert len(hub_state.requests) == 2


async def test_it_caps_retry_after_at_backoff_max(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    sleeps = SleepRecorder()
    client = make_client(sleep=sleeps, backoff_max=0.25)
    hub_state.fail_next(1, status=429, retry_after=120)

    await client.get_channel("kJ2mQ8CH")

    assert sleeps.delays == [0.25]


async def test_it_retries_a_500_and_returns_the_answer(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    client = make_client()
    hub_state.fail_next(1, status=500)

    channel = await client.get_channel("kJ2mQ8CH")

    assert channel is not None
    assert channel["id"] == "kJ2mQ8CH"
    assert len(hub_state.requests) == 2


async def test_backoff_grows_exponentially_with_full_jitter(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    sleeps = SleepRecorder()
    client = make_client(sleep=sleeps, max_retries=3, backoff_base=0.1, backoff_max=0.3)
    hub_state.fail_next(3, status=502)

    await client.get_channel("kJ2mQ8CH")

    ceilings = [0.1, 0.2, 0.3]  # base * 2**n, capped at backoff_max
    assert len(sleeps.delays) == 3
    assert all(0.0 <= d <= c for d, c in zip(sleeps.delays, ceilings, strict=True))


async def test_it_gives_up_after_max_retries_with_a_temporary_error(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    client = make_client(max_retries=2)
    hub_state.fail_next(5, status=503)

    with pytest.raises(PartnerAPIError) as caught:
        await client.get_channel("kJ2mQ8CH")

    assert (caught.value.kind, caught.value.permanent, caught.value.status_code) == (
        "server",
        False,
        503,
    )
    assert len(hub_state.requests) == 3


async def test_a_slow_answer_times_out_as_a_temporary_error(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    client = make_client(timeout=0.05, max_retries=1)
    hub_state.slow(0.3)

    with pytest.raises(PartnerAPIError) as caught:
        await client.get_channel("kJ2mQ8CH")

    assert caught.value.kind == "timeout"
    assert caught.value.permanent is False
    assert caught.value.status_code is None

    async def both_arrived() -> bool:  # the retry may still be on its way to the fake
        return len(hub_state.requests) >= 2

    await eventually(both_arrived, timeout=5, what="the retried request at the fake")
    assert len(hub_state.requests) == 2


async def test_invalid_json_is_a_temporary_bad_response_and_is_not_retried(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    client = make_client()
    hub_state.bad_json(1)

    with pytest.raises(PartnerAPIError) as caught:
        await client.get_channel("kJ2mQ8CH")

    assert (caught.value.kind, caught.value.permanent) == ("bad_response", False)
    assert len(hub_state.requests) == 1


async def test_an_unexpected_shape_is_a_bad_response() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"channels": [{"id": "kJ2mQ8CH"}]})

    async with PartnerClient(
        base_url="http://hub.test",
        partner_id=PARTNER_ID,
        api_key=API_KEY,
        transport=httpx.MockTransport(handler),
    ) as client:
        with pytest.raises(PartnerAPIError) as caught:
            await client.get_channel("kJ2mQ8CH")

    assert (caught.value.kind, caught.value.permanent) == ("bad_response", False)


async def test_a_page_of_other_channels_means_the_filter_was_ignored() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"partner_channels": [{"id": "zR5wN3CH"}]})

    async with PartnerClient(
        base_url="http://hub.test",
        partner_id=PARTNER_ID,
        api_key=API_KEY,
        transport=httpx.MockTransport(handler),
    ) as client:
        with pytest.raises(PartnerAPIError) as caught:
            await client.get_channel("kJ2mQ8CH")

    assert caught.value.kind == "bad_response"


async def test_a_404_is_permanent_and_carries_the_developer_message(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    client = make_client(partner_id="UnknownPA")

    with pytest.raises(PartnerAPIError) as caught:
        await client.get_channel("kJ2mQ8CH")

    error = caught.value
    assert (error.kind, error.permanent, error.status_code) == ("client", True, 404)
    assert error.developer_message == "Partner not found"
    assert "Partner not found" in str(error)
    assert len(hub_state.requests) == 1


async def test_connection_refused_is_a_temporary_connect_error() -> None:
    outcomes: list[tuple[str, str]] = []
    async with PartnerClient(
        base_url=f"http://127.0.0.1:{free_port()}",
        partner_id=PARTNER_ID,
        api_key=API_KEY,
        max_retries=1,
        backoff_base=0.001,
        on_request=lambda op, _seconds, outcome: outcomes.append((op, outcome)),
    ) as client:
        with pytest.raises(PartnerAPIError) as caught:
            await client.get_channel("kJ2mQ8CH")

    assert (caught.value.kind, caught.value.permanent) == ("connect", False)
    assert outcomes == [("get_channel", "connect"), ("get_channel", "connect")]


async def test_the_metrics_hook_sees_every_attempt(
    make_client: MakeClient, hub_state: FakeHubState
) -> None:
    seen: list[tuple[str, float, str]] = []
    client = make_client(on_request=lambda *args: seen.append(args))
    hub_state.fail_next(1, status=500)

    await client.get_channel("kJ2mQ8CH")

    assert [(op, outcome) for op, _, outcome in seen] == [
        ("get_channel", "server"),
        ("get_channel", "ok"),
    ]
    assert all(seconds >= 0 for _, seconds, _ in seen)


async def test_a_failing_metrics_hook_does_not_fail_the_call(make_client: MakeClient) -> None:
    def broken(operation: str, seconds: float, outcome: str) -> None:
        raise RuntimeError("prometheus is down")

    client = make_client(on_request=broken)

    assert await client.get_channel("kJ2mQ8CH") is not None


async def test_secrets_never_reach_logs_errors_or_reprs(
    make_client: MakeClient, hub_state: FakeHubState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token_client = make_client(api_key=None, username=USERNAME, password=PASSWORD)
    key_client = make_client()
    errors: list[PartnerAPIError] = []

    await token_client.get_channel("kJ2mQ8CH")
    hub_state.revoke_tokens()
    hub_state.fail_next(1, status=500)
    await token_client.get_channel("kJ2mQ8CH")
    await key_client.get_channel("kJ2mQ8CH")
    for bad in (
        make_client(partner_id="UnknownPA"),
        make_client(api_key=None, username=USERNAME, password=PASSWORD, partner_id="UnknownPA"),
        make_client(api_key=None, username=USERNAME, password="password-SECRET-wrong"),
    ):
        with pytest.raises(PartnerAPIError) as caught:
            await bad.get_channel("kJ2mQ8CH")
        errors.append(caught.value)

    secrets = [API_KEY, PASSWORD, "password-SECRET-wrong", *hub_state.issued_tokens]
    assert len(hub_state.issued_tokens) >= 2
    texts = [caplog.text, repr(token_client), repr(key_client)]
    texts += [str(e) for e in errors] + [repr(e) for e in errors]
    for text in texts:
        for secret in secrets:
            assert secret not in text
    assert "SECRET" not in caplog.text


async def test_a_secret_echoed_by_the_server_is_scrubbed_from_the_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"meta": {"http_code": 400, "developer_message": f"bad key {API_KEY}"}}
        return httpx.Response(400, json=body)

    async with PartnerClient(
        base_url="http://hub.test",
        partner_id=PARTNER_ID,
        api_key=API_KEY,
        transport=httpx.MockTransport(handler),
    ) as client:
        with pytest.raises(PartnerAPIError) as caught:
            await client.get_channel("kJ2mQ8CH")

    assert API_KEY not in str(caught.value)
    assert caught.value.developer_message == "bad key ***"
    assert (caught.value.kind, caught.value.permanent) == ("client", True)
