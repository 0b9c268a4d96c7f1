"""Hostile input, generated, against the real app on loopback (PRODUCT.md: bad input never
causes a 500 or a lost event).

One app per test (and per database), thousands of requests through it. For every answer:
- never a 5xx;
- a refused webhook answers the one JSON error shape (`error`, `detail`) and stores nothing;
- a callback always answers a page for a person (HTML, never JSON);
- nothing is logged at ERROR and no record carries a traceback;
- an accepted event is stored byte for byte, can be shown (`events list --json` builds its
  rows with `event_summary`) and replayed (a dry run), and the pipeline finishes with it:
  `processed`, or `failed` with the error on record, never left `received`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st
from sqlalchemy import select

from receiver.db.tables import Event
from receiver.ingest.signature import sign
from receiver.ops.records import event_summary
from receiver.ops.replay import replay
from receiver.settings import Settings
from tests.hostile.strategies import (
    CONTENT_TYPES,
    ENCODINGS,
    EXTRA_HEADERS,
    RAW_ODDITIES,
    SAMPLE_NAMES,
    SECRET,
    Payload,
    callback_queries,
    event_documents,
    json_values,
    mutated_samples,
    serialise,
    signatures,
    unique_body,
)
from tests.hostile.support import LogCapture, assert_json_error, troubles
from tests.pipeline.support import SHIPPED_RULES
from tests.support.app import RunningApp, running_app
from tests.support.fakes import API_KEY, PARTNER_ID, Hub, Sink

WEBHOOK = "/webhooks/partner"
CALLBACK = "/callbacks/permission"


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,  # no .hypothesis/ folder in the checkout
        print_blob=True,
        # No shrinking: a stuck event costs the whole settle wait per run, and shrinking
        # runs hundreds; the first failing example is reported as it was generated.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


# --- the app under fire -------------------------------------------------------------------


@dataclass
class Fuzz:
    app: RunningApp
    logs: LogCapture
    answers: Counter[str] = field(default_factory=Counter)
    accepted: int = 0

    async def newest_event_id(self) -> int:
        async with self.app.services.sessions() as session:
            newest = await session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1))
        return int(newest or 0)

    async def events_after(self, event_id: int) -> list[Event]:
        async with self.app.services.sessions() as session:
            query = select(Event).where(Event.id > event_id).order_by(Event.id)
            return list((await session.scalars(query)).all())

    def report(self, name: str) -> None:
        total = sum(self.answers.values())
        print(f"\n{name}: {total} requests, {self.accepted} events accepted, {dict(self.answers)}")


@pytest.fixture
async def fuzz(
    request: pytest.FixtureRequest,
    database_url: str,
    make_settings: Callable[..., Settings],
    hub: Hub,
    sink: Sink,
) -> AsyncIterator[Fuzz]:
    """The app with the shipped rules, the fake Partner API and a json:// sink behind it."""
    app_settings = make_settings(
        database_url=database_url,
        d360_webhook_secret=SECRET,
        d360_partner_id=PARTNER_ID,
        d360_api_key=API_KEY,
        d360_api_base=hub.url,
        rules_path=SHIPPED_RULES,
        rules_env={"OPS_NOTIFY_URL": sink.json_url("/ops")},
        enrich_max_wait=1.0,
        delivery_retry_schedule=[0.2],
        sweep_interval=0.3,
    )
    # INFO, not DEBUG: a few thousand requests' worth of DEBUG records costs seconds.
    with LogCapture.installed(logging.INFO) as logs:
        async with running_app(app_settings) as app:
            fuzz = Fuzz(app=app, logs=logs)
            yield fuzz
        fuzz.report(request.node.name)
        assert troubles(logs.records) == []  # start-up and shutdown included


async def settled(fuzz: Fuzz, events: Sequence[Event], timeout: float = 5.0) -> list[Event]:
    """The events again, once the pipeline is done with them (or the time is up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    ids = [event.id for event in events]
    while True:
        await fuzz.app.drain(2.0)
        async with fuzz.app.services.sessions() as session:
            rows = list(
                await session.scalars(select(Event).where(Event.id.in_(ids)).order_by(Event.id))
            )
        if all(row.state != "received" for row in rows) or loop.time() > deadline:
            return rows
        await asyncio.sleep(0.01)


async def check_new_events(fuzz: Fuzz, before: int, *, also: int | None = None) -> list[Event]:
    """Every event stored since `before` (and event `also`) is finished, shown and replayable."""
    stored = await fuzz.events_after(before)
    if also is not None and all(event.id != also for event in stored):
        async with fuzz.app.services.sessions() as session:
            original = await session.get(Event, also)
        assert original is not None, f"the duplicate's event {also} is not stored"
        stored.append(original)
    if not stored:
        return []
    finished = await settled(fuzz, stored)
    for event in finished:
        summary = event_summary(event)
        assert json.loads(json.dumps(summary))["id"] == event.id  # `events list --json`
        assert event.state in ("processed", "failed"), summary
        if event.state == "failed":
            assert event.last_error, summary
        report = await replay(fuzz.app.services, event_ids=[event.id], dry_run=True, force=False)
        assert [item.outcome for item in report.events] == ["planned"], report.to_dict()
        json.dumps(report.to_dict())
    return finished


async def post_webhook(
    fuzz: Fuzz,
    body: bytes,
    *,
    headers: Sequence[tuple[bytes, bytes]] | None = None,
    signed: bool = True,
) -> tuple[httpx.Response, int]:
    """POST `body` (signed unless told otherwise); return the answer and the newest id before."""
    if headers is None:
        headers = [(b"content-type", b"application/json")]
    if signed:
        headers = [*headers, (b"x-360dialog-signature", sign(body, SECRET.encode()).encode())]
    before = await fuzz.newest_event_id()
    mark = fuzz.logs.mark()
    try:
        response = await fuzz.app.client.post(WEBHOOK, content=body, headers=list(headers))
    except httpx.LocalProtocolError:
        reject()  # a header value h11 will not even put on the wire
    fuzz.answers[str(response.status_code)] += 1
    assert response.status_code < 500, (response.status_code, response.text[:500])
    await check_webhook_answer(fuzz, body, response, before=before)
    assert troubles(fuzz.logs.since(mark)) == []
    return response, before


async def check_webhook_answer(
    fuzz: Fuzz, body: bytes, response: httpx.Response, *, before: int
) -> None:
    if not 200 <= response.status_code < 300:
        assert_json_error(response)
        assert await fuzz.events_after(before) == [], "a refused webhook stored an event"
        return
    answer = response.json()
    assert answer["status"] in ("accepted", "duplicate"), answer
    event_id = answer["event_id"]
    assert isinstance(event_id, int)
    if answer["status"] == "accepted":
        fuzz.accepted += 1
        assert isinstance(answer["correlation_id"], str)
    # A duplicate names the event it duplicates: that one must be finished too.
    finished = await check_new_events(fuzz, before, also=event_id)
    if answer["status"] == "accepted":
        stored = {event.id: event for event in finished}
        assert event_id in stored, "an accepted event is not stored"
        assert stored[event_id].raw_body == body.decode("utf-8")
        assert stored[event_id].correlation_id == answer["correlation_id"]


# --- the tests ------------------------------------------------------------------------------


@fuzz_settings(200)
@given(body=(st.binary(max_size=600) | st.sampled_from(RAW_ODDITIES)).map(Payload))
async def test_random_bytes_never_cause_a_5xx_and_every_refusal_is_a_json_error(
    fuzz: Fuzz, body: bytes
) -> None:
    await post_webhook(fuzz, body)


@fuzz_settings(150)
@given(
    document=json_values | event_documents | event_documents,
    encoding=st.sampled_from(ENCODINGS),
)
async def test_random_json_is_stored_byte_for_byte_or_refused_clearly(
    fuzz: Fuzz, document: Any, encoding: str
) -> None:
    await post_webhook(fuzz, Payload(serialise(document, encoding)))


@fuzz_settings(150)
@given(body=mutated_samples())
async def test_mutated_samples_are_stored_and_processed_or_refused_clearly(
    fuzz: Fuzz, body: bytes
) -> None:
    await post_webhook(fuzz, body)


@fuzz_settings(120)
@given(
    name=st.sampled_from(SAMPLE_NAMES),
    content_type=CONTENT_TYPES,
    extra=EXTRA_HEADERS,
    sign_it=st.booleans(),
)
async def test_odd_content_types_and_header_values_get_a_clear_answer(
    fuzz: Fuzz,
    name: str,
    content_type: bytes | None,
    extra: list[tuple[bytes, bytes]],
    sign_it: bool,
) -> None:
    body = unique_body(name)
    headers = [] if content_type is None else [(b"content-type", content_type)]
    headers += extra
    if sign_it:
        # Ours goes first: with two signature headers the app reads the first.
        headers = [(b"x-360dialog-signature", sign(body, SECRET.encode()).encode()), *headers]
    response, _ = await post_webhook(fuzz, body, headers=headers, signed=False)
    media = (content_type or b"").decode("latin-1").split(";")[0].strip().lower()
    encodings = [value for name, value in extra if name == b"content-encoding"]
    encoding = encodings[0].decode("latin-1").strip().lower() if encodings else ""
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        assert response.status_code == 415, response.text
    elif encoding not in ("", "identity"):  # a compressed body is refused, named, before auth
        assert response.status_code == 415, response.text
        assert response.json()["error"] == "unsupported_content_encoding"
    elif not sign_it and not any(name == b"x-360dialog-signature" for name, _ in extra):
        assert response.status_code == 401, response.text


@fuzz_settings(120)
@given(data=st.data(), name=st.sampled_from(SAMPLE_NAMES))
async def test_only_a_signature_made_with_the_platform_secret_is_accepted(
    fuzz: Fuzz, data: st.DataObject, name: str
) -> None:
    body = unique_body(name)
    signature, genuine = data.draw(signatures(body))
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
    if signature is not None:
        headers.append((b"x-360dialog-signature", signature.encode()))
    response, _ = await post_webhook(fuzz, body, headers=headers, signed=False)
    assert response.status_code == (200 if genuine else 401), (signature, response.text)
    if not genuine:
        assert response.json()["error"] in ("bad_signature", "missing_credentials")


@fuzz_settings(150)
@given(query=callback_queries())
async def test_any_callback_query_gets_a_page_never_json_and_never_a_5xx(
    fuzz: Fuzz, query: str
) -> None:
    before = await fuzz.newest_event_id()
    mark = fuzz.logs.mark()
    response = await fuzz.app.client.get(f"{CALLBACK}?{query}")
    fuzz.answers[str(response.status_code)] += 1
    assert response.status_code < 500, (query, response.status_code, response.text[:300])
    assert response.status_code in (200, 400), (query, response.status_code)
    assert response.headers["content-type"].startswith("text/html"), response.headers
    assert response.text.lstrip().lower().startswith("<!doctype html>"), response.text[:200]
    with pytest.raises(ValueError):
        json.loads(response.text)
    stored = await check_new_events(fuzz, before)
    if response.status_code == 400:
        assert stored == [], "a refused callback stored an event"
    fuzz.accepted += len(stored)
    assert troubles(fuzz.logs.since(mark)) == []


@pytest.mark.parametrize("depth", [253, 254, 1023])
async def test_a_deeply_nested_body_without_an_id_gets_an_answer_not_a_500(
    fuzz: Fuzz, depth: int
) -> None:
    """orjson parses 1024 levels but serialises only 254: the dedup key must not need more."""
    body = b'{"event":"channel_live","data":' + b"[" * depth + b"]" * depth + b"}"
    response, _ = await post_webhook(fuzz, body)
    assert response.status_code in (200, 400, 413, 422), response.text
