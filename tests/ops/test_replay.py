"""Replay: dry runs show the difference and send nothing; plain replays fill gaps; forced
replays send once more and say so on the rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, update

from receiver.db.tables import Event
from receiver.ops.replay import ReplayError, replay
from receiver.settings import Settings
from tests.ops.support import (
    ALSO_RULE,
    AUTH,
    LIVE_RULE,
    RulesFolder,
    Sink,
    admin_get,
    admin_post,
    channel_live,
    post_webhook,
    settle,
)
from tests.support.app import RunningApp, running_app


async def sent_once(app: RunningApp, sink: Sink) -> int:
    event_id = await post_webhook(app, channel_live())
    await sink.state.wait_for(1)
    await settle(app)
    return event_id


async def quiet(app: RunningApp) -> None:
    """Give anything wrongly enqueued the time to reach the sink."""
    await settle(app)
    await asyncio.sleep(0.3)
    await settle(app)


async def test_a_dry_run_shows_what_would_be_sent_now_next_to_what_was_sent_and_sends_nothing(
    app: RunningApp, sink: Sink, rules: RulesFolder
) -> None:
    event_id = await sent_once(app, sink)
    rules.write(also=True)
    await admin_post(app, "/admin/rules/reload")

    report = await admin_post(app, f"/admin/events/{event_id}/replay", dry_run="true")

    assert report["dry_run"] is True
    assert report["deliveries_would_create"] == 1
    assert report["deliveries_created"] == 0
    [event] = report["events"]
    assert event["outcome"] == "planned"
    now = {(p["rule"], p["target"]): p for p in event["would_send_now"]}
    assert now[(LIVE_RULE, "ops")]["action"] == "exists"
    assert now[(ALSO_RULE, "duty")]["action"] == "create"
    assert now[(ALSO_RULE, "duty")]["state"] == "pending"
    assert now[(ALSO_RULE, "duty")]["title"]
    assert [(r["rule"], r["target"], r["state"]) for r in event["sent_then"]] == [
        (LIVE_RULE, "ops", "sent")
    ]
    await quiet(app)
    assert sink.paths() == ["/ops"]
    detail = await admin_get(app, f"/admin/events/{event_id}")
    assert len(detail["deliveries"]) == 1


async def test_a_plain_replay_sends_only_what_the_new_rules_add(
    app: RunningApp, sink: Sink, rules: RulesFolder
) -> None:
    event_id = await sent_once(app, sink)

    unchanged = await admin_post(app, f"/admin/events/{event_id}/replay")
    assert unchanged["deliveries_created"] == 0
    await quiet(app)
    assert sink.paths() == ["/ops"]

    rules.write(also=True)
    await admin_post(app, "/admin/rules/reload")
    added = await admin_post(app, f"/admin/events/{event_id}/replay")
    assert added["deliveries_created"] == 1
    await sink.state.wait_for(2)
    await quiet(app)
    assert sorted(sink.paths()) == ["/duty", "/ops"]

    again = await admin_post(app, f"/admin/events/{event_id}/replay")
    assert again["deliveries_created"] == 0
    await quiet(app)
    assert len(sink.state.received) == 2


async def test_a_forced_replay_sends_each_match_exactly_once_more_in_a_new_round(
    app: RunningApp, sink: Sink
) -> None:
    event_id = await sent_once(app, sink)

    report = await admin_post(app, f"/admin/events/{event_id}/replay", force="true")

    assert report["force"] is True
    assert report["deliveries_created"] == 1
    [event] = report["events"]
    assert event["replay_round"] == 1
    assert [p["action"] for p in event["would_send_now"]] == ["resend"]
    await sink.state.wait_for(2)
    await quiet(app)
    assert sink.paths() == ["/ops", "/ops"]
    rows = (await admin_get(app, f"/admin/events/{event_id}"))["deliveries"]
    assert [(r["replay_round"], r["forced"], r["state"]) for r in rows] == [
        (0, False, "sent"),
        (1, True, "sent"),
    ]

    second = await admin_post(app, f"/admin/events/{event_id}/replay", force="true")
    assert second["events"][0]["replay_round"] == 2
    await sink.state.wait_for(3)
    await quiet(app)
    assert len(sink.state.received) == 3


async def test_replay_answers_404_for_an_unknown_event(sqlite_app: RunningApp) -> None:
    response = await sqlite_app.client.post("/admin/events/4242/replay", headers=AUTH)
    assert response.status_code == 404


async def test_the_replay_function_selects_by_channel_and_reports_for_people(
    app: RunningApp, sink: Sink, rules: RulesFolder
) -> None:
    first = await sent_once(app, sink)
    rules.write(also=True)
    await admin_post(app, "/admin/rules/reload")

    report = await replay(app.services, channel="kJ2mQ8CH", dry_run=True, force=False)

    assert [e.event_id for e in report.events] == [first]
    text = report.format()
    assert text.startswith("dry run under rules ")
    assert "1 delivery row(s) would be created" in text
    assert f"+ {ALSO_RULE} -> duty" in text
    assert f"= {LIVE_RULE} -> ops" in text
    assert "[sent]" in text
    assert report.to_dict()["events"][0]["event_id"] == first
    none = await replay(app.services, channel="nobody", dry_run=False, force=True)
    assert none.events == []
    with pytest.raises(ReplayError):
        await replay(app.services, dry_run=True, force=False)


@pytest.fixture
async def idle_app(
    ops_settings: Callable[..., Settings], sqlite_url: str
) -> AsyncIterator[RunningApp]:
    """An app whose sweep does not come round during the test."""
    async with running_app(ops_settings(sqlite_url, sweep_interval=3600)) as running:
        yield running


async def test_an_event_not_processed_yet_is_not_replayed(idle_app: RunningApp) -> None:
    await settle(idle_app)
    async with idle_app.services.sessions.begin() as session:
        event_id = (
            await session.execute(
                insert(Event)
                .values(
                    dedup_key="waiting",
                    correlation_id="c",
                    source="webhook",
                    event_type="channel_live",
                    known=True,
                    received_at=datetime.now(UTC),
                    raw_body="{}",
                    headers={},
                    verification="signature",
                    parsed={},
                    state="received",
                    attempts=0,
                    enrichment="pending",
                )
                .returning(Event.id)
            )
        ).scalar_one()

    response = await idle_app.client.post(
        f"/admin/events/{event_id}/replay", params={"force": "true"}, headers=AUTH
    )

    assert response.status_code == 409
    assert "not processed yet" in response.json()["detail"]
    assert (await admin_get(idle_app, f"/admin/events/{event_id}"))["deliveries"] == []


async def test_a_replay_of_a_purged_event_says_its_body_is_gone(
    app: RunningApp, sink: Sink
) -> None:
    event_id = await sent_once(app, sink)
    async with app.services.sessions.begin() as session:
        await session.execute(
            update(Event)
            .where(Event.id == event_id)
            .values(raw_body=None, raw_purged_at=datetime.now(UTC))
        )

    report = await admin_post(app, f"/admin/events/{event_id}/replay", dry_run="true")

    assert "raw body purged" in report["events"][0]["note"]
    assert report["events"][0]["would_send_now"][0]["action"] == "exists"
