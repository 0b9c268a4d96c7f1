"""`POST /webhooks/partner` end to end: real uvicorn on loopback, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from receiver.db.tables import Event
from receiver.settings import Settings
from tests.support.app import RunningApp, running_app
from tests.support.events import (
    JSON,
    SAMPLES,
    SECRET,
    event_body,
    rejected_requests,
    signed,
    stored_events,
)
from tests.support.samples import sample
from tests.support.waiting import eventually

MakeSettings = Callable[..., Settings]
URL = "/webhooks/partner"

EXPECTED = {
    "partner_webhook.channel_created.json": ("channel_created", "kJ2mQ8CH", "Vb7xR2CL"),
    "partner_webhook.channel_live.json": ("channel_live", "kJ2mQ8CH", "Vb7xR2CL"),
    "partner_webhook.account_violation.json": ("account_violation", "kJ2mQ8CH", "Vb7xR2CL"),
    "partner_webhook.client_created.json": ("client_created", None, "Vb7xR2CL"),
}


@pytest.fixture
def settings(make_settings: MakeSettings, database_url: str) -> Settings:
    return make_settings(database_url=database_url, d360_webhook_secret=SECRET)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[RunningApp]:
    async with running_app(settings) as running:
        yield running


async def only_event(app: RunningApp) -> Event:
    events = await stored_events(app.services.sessions)
    assert len(events) == 1, events
    return events[0]


# --- accepted and stored ---------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
async def test_it_stores_each_sample_before_answering_200(app: RunningApp, name: str) -> None:
    body = sample(name)
    before = datetime.now(UTC)
    response = await app.client.post(URL, content=body, headers=signed(body))
    after = datetime.now(UTC)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "accepted"
    event = await only_event(app)
    assert answer["event_id"] == event.id
    assert answer["correlation_id"] == event.correlation_id
    assert event.raw_body == body.decode()
    assert before <= event.received_at <= after
    assert event.received_at.tzinfo is not None
    assert event.source == "webhook"
    assert event.verification == "signature"
    assert event.known is True
    assert event.claim is None
    event_type, channel_id, client_id = EXPECTED[name]
    assert (event.event_type, event.channel_id, event.client_id) == (
        event_type,
        channel_id,
        client_id,
    )
    assert event.parsed["event_type"] == event_type
    assert event.parsed["delivery_id"] == json.loads(body)["id"]
    if channel_id is not None:
        assert event.phone_number == "+4915112345678"
    assert event.headers["content-type"] == "application/json"
    assert event.headers["signature_present"] is True
    assert "x-360dialog-signature" not in event.headers


async def test_it_keeps_the_raw_body_byte_for_byte_whatever_its_formatting(
    app: RunningApp,
) -> None:
    body = (
        b'  {"event" :"channel_live",\n "data":{"id":"kJ2mQ8CH", "note":"caf\xc3\xa9 \\u00e9"}}\n'
    )
    response = await app.client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 200, response.text
    event = await only_event(app)
    assert event.raw_body is not None
    assert event.raw_body.encode() == body


async def test_it_stores_a_duplicate_delivery_once_and_answers_200_both_times(
    app: RunningApp,
) -> None:
    body = sample("partner_webhook.channel_live.json")
    first = await app.client.post(URL, content=body, headers=signed(body))
    second = await app.client.post(URL, content=body, headers=signed(body))

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["status"] == "accepted"
    assert second.json()["status"] == "duplicate"
    assert second.json()["event_id"] == first.json()["event_id"]
    assert len(await stored_events(app.services.sessions)) == 1


async def test_a_redelivery_with_other_formatting_is_a_duplicate(app: RunningApp) -> None:
    document = event_body(1)
    compact = orjson.dumps(document)
    pretty = json.dumps(dict(reversed(list(document.items()))), indent=2).encode()
    first = await app.client.post(URL, content=compact, headers=signed(compact))
    second = await app.client.post(URL, content=pretty, headers=signed(pretty))
    assert second.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    assert len(await stored_events(app.services.sessions)) == 1


async def test_the_same_delivery_sent_concurrently_is_stored_once(app: RunningApp) -> None:
    body = sample("partner_webhook.account_violation.json")
    responses = await asyncio.gather(
        *(app.client.post(URL, content=body, headers=signed(body)) for _ in range(10))
    )
    assert {r.status_code for r in responses} == {200}
    assert sorted(r.json()["status"] for r in responses) == ["accepted"] + ["duplicate"] * 9
    assert len({r.json()["event_id"] for r in responses}) == 1
    assert len(await stored_events(app.services.sessions)) == 1


async def test_forty_concurrent_events_are_all_acknowledged_and_all_stored(
    app: RunningApp,
) -> None:
    bodies = [orjson.dumps(event_body(n)) for n in range(40)]
    responses = await asyncio.gather(
        *(app.client.post(URL, content=body, headers=signed(body)) for body in bodies)
    )
    assert [r.status_code for r in responses] == [200] * 40
    assert {r.json()["status"] for r in responses} == {"accepted"}
    events = await stored_events(app.services.sessions)
    assert len(events) == 40
    assert {e.id for e in events} == {r.json()["event_id"] for r in responses}
    assert {e.raw_body for e in events} == {b.decode() for b in bodies}


async def test_an_unknown_event_is_stored_and_flagged_unknown(app: RunningApp) -> None:
    body = orjson.dumps({"event": "channel_teleported", "data": {"id": "kJ2mQ8CH"}})
    response = await app.client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 200
    event = await only_event(app)
    assert (event.event_type, event.known, event.channel_id) == (
        "channel_teleported",
        False,
        "kJ2mQ8CH",
    )


async def test_an_object_without_an_event_name_is_stored_as_unknown(app: RunningApp) -> None:
    body = b'{"hello": "world"}'
    response = await app.client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 200
    event = await only_event(app)
    assert (event.event_type, event.known) == ("unknown", False)


async def test_nul_characters_in_the_body_do_not_stop_it_being_stored(app: RunningApp) -> None:
    body = b'{"event": "channel_live", "data": {"id": "kJ2m\\u0000Q8CH", "x\\u0000": "\\u0000"}}'
    response = await app.client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 200, response.text
    event = await only_event(app)
    assert event.channel_id == "kJ2mQ8CH"
    assert event.raw_body == body.decode()


async def test_an_overlong_id_in_the_body_is_still_stored(app: RunningApp) -> None:
    # Ids are free text to us: 360dialog may send anything, and a 2xx must still mean stored.
    long_id = "C" * 150
    body = orjson.dumps(
        {
            "event": "channel_live",
            "data": {"id": long_id, "client_id": long_id, "setup_info": {"phone_number": long_id}},
        }
    )
    response = await app.client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 200, response.text
    event = await only_event(app)
    assert event.raw_body == body.decode()


async def test_one_odd_event_does_not_fail_the_others_committed_with_it(app: RunningApp) -> None:
    odd = orjson.dumps({"event": "channel_live", "data": {"id": "C" * 150}})
    normal = [orjson.dumps(event_body(n)) for n in range(10)]
    responses = await asyncio.gather(
        *(app.client.post(URL, content=body, headers=signed(body)) for body in [odd, *normal])
    )
    assert [r.status_code for r in responses[1:]] == [200] * 10
    assert responses[0].status_code == 200, responses[0].text
    assert len(await stored_events(app.services.sessions)) == 11


async def test_a_stored_event_is_processed_by_the_in_process_runner(app: RunningApp) -> None:
    body = sample("partner_webhook.channel_live.json")
    response = await app.client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 200

    async def processed() -> Event | None:
        await app.drain()
        event = await only_event(app)
        return event if event.state == "processed" else None

    event = await eventually(processed)
    assert event is not None
    assert event.processed_at is not None


# --- authentication ------------------------------------------------------------------------


async def test_it_refuses_a_bad_signature_with_401_records_it_and_stores_nothing(
    app: RunningApp,
) -> None:
    body = sample("partner_webhook.channel_live.json")
    response = await app.client.post(URL, content=body, headers=signed(body, "wrong-secret"))

    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"
    rejected = await eventually(lambda: rejected_requests(app.services.sessions), timeout=2.5)
    assert [(r.endpoint, r.reason, r.body_bytes) for r in rejected] == [
        ("webhooks/partner", "bad_signature", len(body))
    ]
    assert rejected[0].remote == "127.0.0.1"
    assert await stored_events(app.services.sessions) == []


async def test_it_refuses_a_missing_signature_with_401(app: RunningApp) -> None:
    body = sample("partner_webhook.channel_live.json")
    response = await app.client.post(URL, content=body, headers=JSON)
    assert response.status_code == 401
    assert response.json()["error"] == "missing_credentials"
    rejected = await eventually(lambda: rejected_requests(app.services.sessions), timeout=2.5)
    assert [r.reason for r in rejected] == ["missing_credentials"]
    assert await stored_events(app.services.sessions) == []


async def test_a_signature_over_another_body_is_refused(app: RunningApp) -> None:
    body = sample("partner_webhook.channel_live.json")
    tampered = body.replace(b"channel_live", b"channel_ready")
    response = await app.client.post(URL, content=tampered, headers=signed(body))
    assert response.status_code == 401
    assert await stored_events(app.services.sessions) == []


async def test_a_refusal_is_recorded_promptly_even_while_events_keep_arriving(
    app: RunningApp,
) -> None:
    body = sample("partner_webhook.channel_live.json")
    refused = await app.client.post(URL, content=body, headers=signed(body, "wrong-secret"))
    assert refused.status_code == 401

    async def steady_traffic() -> None:
        for n in range(20):
            good = orjson.dumps(event_body(n))
            await app.client.post(URL, content=good, headers=signed(good))
            await asyncio.sleep(0.2)

    traffic = asyncio.create_task(steady_traffic())
    try:
        await eventually(lambda: rejected_requests(app.services.sessions), timeout=2.5)
    finally:
        traffic.cancel()
        await asyncio.gather(traffic, return_exceptions=True)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-webhook-token", "shared-token"),
        ("authorization", "Bearer shared-token"),
    ],
)
async def test_it_accepts_the_shared_secret_header_and_never_stores_it(
    make_settings: MakeSettings, database_url: str, header: str, value: str
) -> None:
    settings = make_settings(
        database_url=database_url,
        webhook_shared_secret="old-token,shared-token",
        webhook_shared_secret_header=header,
    )
    body = sample("partner_webhook.channel_live.json")
    async with running_app(settings) as app:
        ok = await app.client.post(URL, content=body, headers={**JSON, header: value})
        wrong = await app.client.post(
            URL, content=body + b" ", headers={**JSON, header: "Bearer guess"}
        )
        missing = await app.client.post(URL, content=body + b"  ", headers=JSON)
        assert ok.status_code == 200, ok.text
        assert (wrong.status_code, wrong.json()["error"]) == (401, "bad_shared_secret")
        assert (missing.status_code, missing.json()["error"]) == (401, "missing_credentials")
        event = await only_event(app)
    assert event.verification == "shared_secret"
    assert header not in event.headers
    assert "shared-token" not in json.dumps(event.headers)
    assert "shared-token" not in json.dumps(event.parsed)


async def test_without_authentication_configured_events_are_stored_as_unverified(
    make_settings: MakeSettings, database_url: str
) -> None:
    body = sample("partner_webhook.channel_live.json")
    async with running_app(make_settings(database_url=database_url)) as app:
        response = await app.client.post(URL, content=body, headers=JSON)
        assert response.status_code == 200
        event = await only_event(app)
    assert event.verification == "none"
    assert event.headers["signature_present"] is False


# --- bad input -----------------------------------------------------------------------------


@pytest.fixture
def small_limit_settings(make_settings: MakeSettings, database_url: str) -> Settings:
    return make_settings(database_url=database_url, max_body_bytes=1024)


async def test_a_body_over_the_limit_is_refused_with_413(small_limit_settings: Settings) -> None:
    body = orjson.dumps({"event": "channel_live", "padding": "x" * 2000})
    async with running_app(small_limit_settings) as app:
        response = await app.client.post(URL, content=body, headers=JSON)
        assert response.status_code == 413
        assert response.json()["error"] == "body_too_large"
        assert "1024" in response.json()["detail"]
        assert await stored_events(app.services.sessions) == []


async def test_a_chunked_body_over_the_limit_is_refused_with_413(
    small_limit_settings: Settings,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"event": "channel_live", "padding": "'
        for _ in range(4):
            yield b"x" * 512
            await asyncio.sleep(0)
        yield b'"}'

    async with running_app(small_limit_settings) as app:
        response = await app.client.post(URL, content=chunks(), headers=JSON)
        assert response.status_code == 413
        assert response.json()["error"] == "body_too_large"
        assert await stored_events(app.services.sessions) == []


async def test_a_chunked_body_under_the_limit_is_accepted(small_limit_settings: Settings) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"event": "channel_live",'
        yield b' "data": {"id": "kJ2mQ8CH"}}'

    async with running_app(small_limit_settings) as app:
        response = await app.client.post(URL, content=chunks(), headers=JSON)
        assert response.status_code == 200, response.text
        assert (await only_event(app)).channel_id == "kJ2mQ8CH"


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_a_body_that_is_not_declared_json_is_refused_with_415(
    app: RunningApp, content_type: str | None
) -> None:
    body = sample("partner_webhook.channel_live.json")
    headers = signed(body)
    del headers["content-type"]
    if content_type is not None:
        headers["content-type"] = content_type
    response = await app.client.post(URL, content=body, headers=headers)
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert await stored_events(app.services.sessions) == []


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "Application/JSON", "application/vnd.hub+json"],
)
async def test_json_content_types_with_parameters_or_suffixes_are_accepted(
    app: RunningApp, content_type: str
) -> None:
    body = sample("partner_webhook.channel_live.json")
    headers = {**signed(body), "content-type": content_type}
    response = await app.client.post(URL, content=body, headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b'{"event": "channel_live"', "end of data"),
        (b"{'event': 'channel_live'}", "line 1 column 2"),
        (b"", "empty"),
        (b'{"event": "channel_live"} trailing', "after document"),
        (b'{"event": NaN}', "line 1 column 11"),
    ],
    ids=["truncated", "single quotes", "empty", "trailing text", "NaN"],  # bad UTF-8: its own 400
)
async def test_malformed_json_is_refused_with_400_naming_the_problem(
    app: RunningApp, body: bytes, names: str
) -> None:
    response = await app.client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"] == "malformed_json"
    assert "not valid JSON" in answer["detail"]
    assert names.lower() in answer["detail"].lower()
    assert await stored_events(app.services.sessions) == []


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b'[{"event": "channel_live"}]', "list"),
        (b'"channel_live"', "str"),
        (b"42", "int"),
        (b"null", "NoneType"),
    ],
)
async def test_json_that_is_not_an_object_is_refused_with_422(
    app: RunningApp, body: bytes, kind: str
) -> None:
    response = await app.client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 422
    assert response.json()["error"] == "not_an_object"
    assert kind in response.json()["detail"]
    assert await stored_events(app.services.sessions) == []


async def test_every_error_answer_is_json_with_error_and_detail(app: RunningApp) -> None:
    body = sample("partner_webhook.channel_live.json")
    answers = [
        await app.client.post(URL, content=body, headers={"content-type": "text/plain"}),
        await app.client.post(URL, content=body, headers=JSON),
        await app.client.post(URL, content=b"{", headers=signed(b"{")),
        await app.client.post(URL, content=b"[]", headers=signed(b"[]")),
        await app.client.post(URL, content=b"x" * 2_000_000, headers=JSON),
        await app.client.get(URL),
        await app.client.post("/webhooks/nowhere", content=body, headers=JSON),
    ]
    assert [a.status_code for a in answers] == [415, 401, 400, 422, 413, 405, 404]
    for answer in answers:
        assert answer.headers["content-type"].startswith("application/json"), answer
        document: dict[str, Any] = answer.json()
        assert set(document) == {"error", "detail"}, document
        assert document["error"]
        assert document["detail"]
