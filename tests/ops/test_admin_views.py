"""What the admin API shows about events, channels and deliveries."""

from __future__ import annotations

import orjson

from tests.ops.support import (
    AUTH,
    LIVE_RULE,
    Sink,
    admin_get,
    channel_live,
    post_webhook,
    settle,
)
from tests.support.app import RunningApp


async def test_event_detail_shows_body_verdicts_status_change_and_deliveries_with_attempts(
    app: RunningApp, sink: Sink
) -> None:
    body = channel_live()
    event_id = await post_webhook(app, body)
    await sink.state.wait_for(1)
    await settle(app)

    event = await admin_get(app, f"/admin/events/{event_id}")

    assert event["id"] == event_id
    assert orjson.loads(event["raw_body"]) == orjson.loads(body)
    assert event["parsed"]["channel_id"] == "kJ2mQ8CH"
    assert event["headers"]["signature_present"] is True
    assert event["verification"] == "signature"
    assert event["state"] == "processed"
    assert event["enrichment"] == "not_configured"
    assert [(c["from"], c["to"]) for c in event["status_changes"]] == [(None, "live")]
    [delivery] = event["deliveries"]
    assert delivery["rule"] == LIVE_RULE
    assert delivery["target"] == "ops"
    assert delivery["state"] == "sent"
    assert delivery["target_display"].startswith("json://hook:****@127.0.0.1")
    assert delivery["title"]
    assert [a["outcome"] for a in delivery["attempt_log"]] == ["sent"]


async def test_events_page_by_cursor_and_filter_by_type_and_channel(
    app: RunningApp, sink: Sink
) -> None:
    ids = [await post_webhook(app, channel_live(n)) for n in range(3)]
    await settle(app)

    first = await admin_get(app, "/admin/events", limit=2)
    assert [e["id"] for e in first["items"]] == [ids[2], ids[1]]
    assert first["next_cursor"] == str(ids[1])
    second = await admin_get(app, "/admin/events", limit=2, cursor=first["next_cursor"])
    assert [e["id"] for e in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None
    by_offset = await admin_get(app, "/admin/events", limit=1, offset=1)
    assert [e["id"] for e in by_offset["items"]] == [ids[1]]

    assert (await admin_get(app, "/admin/events", type="channel_live"))["count"] == 3
    assert (await admin_get(app, "/admin/events", type="client_created"))["count"] == 0
    assert (await admin_get(app, "/admin/events", channel="kJ2mQ8CH"))["count"] == 3
    assert (await admin_get(app, "/admin/events", state="received"))["count"] == 0
    assert (await admin_get(app, "/admin/events", since="2000-01-01T00:00:00Z"))["count"] == 3
    assert (await admin_get(app, "/admin/events", until="2000-01-01T00:00:00"))["count"] == 0


async def test_listings_refuse_parameters_they_cannot_use(sqlite_app: RunningApp) -> None:
    for params in (
        {"limit": "201"},
        {"limit": "0"},
        {"since": "yesterday"},
        {"cursor": "abc"},
        {"cursor": "5", "offset": "5"},
        {"chanel": "typo"},
    ):
        response = await sqlite_app.client.get("/admin/events", params=params, headers=AUTH)
        assert response.status_code == 422, params
        assert response.json()["error"] == "invalid_parameter"


async def test_channel_detail_shows_snapshot_status_why_and_history(
    app: RunningApp, sink: Sink
) -> None:
    await post_webhook(app, channel_live())
    await settle(app)

    listing = await admin_get(app, "/admin/channels", client="Vb7xR2CL")
    assert [c["id"] for c in listing["items"]] == ["kJ2mQ8CH"]
    assert (await admin_get(app, "/admin/channels", state="live"))["count"] == 1
    assert (await admin_get(app, "/admin/channels", state="restricted"))["count"] == 0

    channel = await admin_get(app, "/admin/channels/kJ2mQ8CH")
    assert channel["status"] == "live"
    assert channel["status_why"]
    assert channel["snapshot"]["setup_info"]["phone_number"] == "+4915112345678"
    assert channel["client"]["id"] == "Vb7xR2CL"
    assert [(h["from"], h["to"]) for h in channel["status_history"]] == [(None, "live")]
    missing = await app.client.get("/admin/channels/nope", headers=AUTH)
    assert missing.status_code == 404
