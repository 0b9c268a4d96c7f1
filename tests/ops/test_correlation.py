"""One correlation id follows an event from its webhook answer to every notification it caused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from receiver.ingest.signature import sign
from receiver.settings import Settings
from tests.hostile.support import json_log_lines, parsed_lines
from tests.ops.support import WEBHOOK, WEBHOOK_SECRET, Sink, admin_get, settle
from tests.support.app import running_app
from tests.support.fakes import API_KEY, PARTNER_ID, Hub
from tests.support.samples import sample

RULE = "team and duty phone hear a number went live"


def rules_for(folder: Path, sink: Sink) -> Path:
    folder.mkdir()
    (folder / "rules.yaml").write_text(
        "targets:\n"
        f'  ops: "{sink.target("ops")}"\n'
        f'  duty: "{sink.target("duty")}"\n'
        "rules:\n"
        f"  - name: {RULE}\n"
        "    match: {event: channel_live}\n"
        "    notify: [ops, duty]\n"
    )
    return folder


def lines_with(lines: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == text]


async def test_the_correlation_id_of_the_answer_follows_the_event_through_every_step(
    ops_settings: Callable[..., Settings],
    database_url: str,
    sink: Sink,
    hub: Hub,
    tmp_path: Path,
) -> None:
    settings = ops_settings(
        database_url,
        rules_path=rules_for(tmp_path / "correlated-rules", sink),
        d360_partner_id=PARTNER_ID,
        d360_api_key=API_KEY,
        d360_api_base=hub.url,
    )
    body = sample("partner_webhook.channel_live.json")
    other = orjson.dumps({**orjson.loads(body), "id": "another-delivery"})
    answers: list[dict[str, Any]] = []
    with json_log_lines("DEBUG") as output:
        async with running_app(settings) as app:
            for document in (body, other):  # a second event, so ids cannot be confused
                response = await app.client.post(
                    WEBHOOK,
                    content=document,
                    headers={
                        "content-type": "application/json",
                        "x-360dialog-signature": sign(document, WEBHOOK_SECRET.encode()),
                    },
                )
                assert response.status_code == 200, response.text
                answers.append(response.json())
            answer = answers[0]
            await sink.state.wait_for(4)
            await settle(app)
            detail = await admin_get(app, f"/admin/events/{answer['event_id']}")
            listed = await admin_get(app, "/admin/events")
    correlation_id = answer["correlation_id"]
    assert isinstance(correlation_id, str)
    assert len(correlation_id) >= 8
    assert answers[1]["correlation_id"] != correlation_id
    lines = parsed_lines(output)

    received = lines_with(lines, "webhook accepted")
    assert [line["event_id"] for line in received if line["correlation_id"] == correlation_id] == [
        answer["event_id"]
    ]

    processed = lines_with(lines, "event processed")
    mine = [line for line in processed if line.get("correlation_id") == correlation_id]
    assert len(mine) == 1, processed
    assert mine[0]["event_id"] == answer["event_id"]
    assert mine[0]["enrichment"] == "enriched"
    # The Partner API lookups are logged inside the event's context, under its id.
    by_event = {a["event_id"]: a["correlation_id"] for a in answers}
    lookups = [line for line in lines if str(line.get("event", "")).startswith("partner api")]
    assert lookups, "no Partner API lookup was logged"
    for line in lookups:
        assert line.get("correlation_id") == by_event[line["event_id"]], line

    sent = [
        line
        for line in lines_with(lines, "delivery sent")
        if line.get("event_id") == answer["event_id"]
    ]
    assert sorted(line["target"] for line in sent) == ["duty", "ops"], sent
    assert {line["correlation_id"] for line in sent} == {correlation_id}
    assert all(line["rule"] == RULE for line in sent)

    # No line about this event carries another event's correlation id, nor the reverse.
    for line in lines:
        if line.get("event_id") == answer["event_id"] and "correlation_id" in line:
            assert line["correlation_id"] == correlation_id, line
        if line.get("correlation_id") == correlation_id and "event_id" in line:
            assert line["event_id"] == answer["event_id"], line

    assert detail["correlation_id"] == correlation_id
    listed_ids = {item["id"]: item["correlation_id"] for item in listed["items"]}
    assert listed_ids == by_event

    payloads = [
        entry.body
        for entry in sink.state.received
        if isinstance(entry.body, dict) and entry.body.get("event_id") == str(answer["event_id"])
    ]
    assert sorted(entry.path for entry in sink.state.received if entry.body in payloads) == [
        "/duty",
        "/ops",
    ]
    assert [payload["correlation_id"] for payload in payloads] == [correlation_id] * 2
