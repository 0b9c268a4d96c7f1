"""The group commit's receipt: one INFO line per committed batch, and what it lists."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from receiver.db.engine import create_engine
from receiver.ingest.writer import EventWriter, StoreUnavailableError
from receiver.settings import Settings
from tests.hostile.support import json_log_lines, parsed_lines
from tests.support.app import running_app
from tests.support.events import JSON, events_in
from tests.support.samples import sample

WEBHOOK = "/webhooks/partner"
LIVE = orjson.loads(sample("partner_webhook.channel_live.json"))


def _row(key: str, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "dedup_key": f"wh:id:channel_live:{key}",
        "external_id": key,
        "correlation_id": f"corr-{key}",
        "source": "webhook",
        "event_type": "channel_live",
        "known": True,
        "channel_id": "kJ2mQ8CH",
        "client_id": "Vb7xR2CL",
        "phone_number": "+4915112345678",
        "received_at": datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=UTC),
        "raw_body": '{"event": "channel_live", "note": "café"}',
        "headers": {"content-type": "application/json", "signature_present": False},
        "verification": "shared_secret",
        "parsed": {"event_type": "channel_live", "known": True, "channel_id": "kJ2mQ8CH"},
        "state": "received",
        "attempts": 0,
        "enrichment": "pending",
    }
    row.update(changes)
    return row


def _receipts(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if str(line.get("event", "")).startswith("events committed")]


async def test_webhooks_are_logged_at_info_once_per_committed_batch_with_their_ids(
    make_settings: Any, database_url: str
) -> None:
    bodies = [orjson.dumps({**LIVE, "id": f"delivery-{n}"}) for n in range(12)]
    with json_log_lines("INFO") as output:
        async with running_app(make_settings(database_url=database_url)) as app:
            responses = await asyncio.gather(
                *(app.client.post(WEBHOOK, content=body, headers=JSON) for body in bodies)
            )
            redelivery = await app.client.post(WEBHOOK, content=bodies[0], headers=JSON)
    answers = [response.json() for response in responses]
    assert all(response.status_code == 200 for response in responses)
    assert redelivery.json()["status"] == "duplicate"
    lines = parsed_lines(output)

    receipts = _receipts(lines)
    listed = [event for line in receipts for event in line["events"]]
    assert len(listed) == len(bodies) + 1
    assert len(receipts) <= len(listed)
    assert all(line["level"] == "info" and line["logger"] == "receiver.ingest" for line in receipts)
    by_correlation = {event["correlation_id"]: event for event in listed}
    for answer in answers:
        event = by_correlation[answer["correlation_id"]]
        assert event == {
            "event_id": answer["event_id"],
            "correlation_id": answer["correlation_id"],
            "event_type": "channel_live",
            "source": "webhook",
            "outcome": "accepted",
        }
    [again] = [event for event in listed if event["outcome"] == "duplicate"]
    assert again["event_id"] == answers[0]["event_id"]
    # The per-request line is DEBUG now: at INFO nothing else is written per webhook.
    assert not [line for line in lines if str(line.get("event", "")).startswith("webhook ")]


@contextlib.asynccontextmanager
async def running_writer(database_url: str) -> AsyncIterator[EventWriter]:
    """A started EventWriter on its own engine, stopped and disposed after the block."""
    engine = create_engine(database_url)
    writer = EventWriter(engine)
    writer.start()
    try:
        yield writer
    finally:
        await writer.stop()
        await engine.dispose()


async def test_a_batch_queued_together_is_one_log_line(database_url: str) -> None:
    async with running_writer(database_url) as writer:
        with json_log_lines("INFO") as output:
            await asyncio.gather(*(writer.write(_row(f"one-line-{n}")) for n in range(10)))
    [receipt] = _receipts(parsed_lines(output))
    assert receipt["event"] == "events committed: 10 new, 0 duplicate"
    assert sorted(event["correlation_id"] for event in receipt["events"]) == sorted(
        f"corr-one-line-{n}" for n in range(10)
    )


async def test_duplicates_in_a_batch_and_already_stored_get_the_stored_id(
    database_url: str,
) -> None:
    async with running_writer(database_url) as writer:
        first = await writer.write(_row("stored-before"))
        results = await asyncio.gather(
            writer.write(_row("new")),
            writer.write(_row("new", correlation_id="corr-again")),
            writer.write(_row("stored-before", correlation_id="corr-later")),
        )

    new, again, later = results
    assert (new.duplicate, again.duplicate, later.duplicate) == (False, True, True)
    assert again.event_id == new.event_id
    assert later.event_id == first.event_id
    assert len(await events_in(database_url)) == 2


async def test_one_refused_row_does_not_fail_the_rows_committed_with_it(
    database_url: str,
) -> None:
    async with running_writer(database_url) as writer:
        with json_log_lines("INFO") as output:
            results = await asyncio.gather(
                writer.write(_row("good-1")),
                writer.write(_row("refused", source=None)),  # NOT NULL: refused for its data
                writer.write(_row("good-2")),
                return_exceptions=True,
            )

    good_1, refused, good_2 = results
    assert isinstance(refused, StoreUnavailableError)
    assert not isinstance(good_1, BaseException) and not good_1.duplicate
    assert not isinstance(good_2, BaseException) and not good_2.duplicate
    stored = await events_in(database_url)
    assert sorted(event.external_id or "" for event in stored) == ["good-1", "good-2"]
    # Only what was committed is in a receipt.
    listed = [event for line in _receipts(parsed_lines(output)) for event in line["events"]]
    assert sorted(event["correlation_id"] for event in listed) == ["corr-good-1", "corr-good-2"]


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        ([("content-type", "application/json"), ("content-type", "text/plain")], {}),
        (
            [("content-type", "application/json"), ("user-agent", "first"), ("user-agent", "x")],
            {"user-agent": "first"},
        ),
    ],
)
async def test_a_repeated_header_is_read_and_kept_by_its_first_value(
    make_settings: Any, sqlite_url: str, headers: list[tuple[str, str]], kept: dict[str, str]
) -> None:
    settings: Settings = make_settings(database_url=sqlite_url)
    async with running_app(settings) as app:
        response = await app.client.post(WEBHOOK, content=orjson.dumps(LIVE), headers=headers)
    assert response.status_code == 200, response.text
    [event] = await events_in(sqlite_url)
    assert event.headers["content-type"] == "application/json"
    for name, value in kept.items():
        assert event.headers[name] == value
