"""`GET /metrics`, read as Prometheus reads it: the scraped text."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from receiver.db.tables import Event
from receiver.settings import Settings
from tests.ops.support import (
    Sink,
    channel_live,
    metric,
    post_webhook,
    scrape,
    settle,
)
from tests.support.app import RunningApp, running_app

RECEIVED = "hub_receiver_events_received_total"
DELIVERIES = "hub_receiver_deliveries_total"
IN_STATE = "hub_receiver_deliveries_in_state"


async def test_counters_follow_a_webhook_from_receipt_to_a_sent_notification(
    app: RunningApp, sink: Sink
) -> None:
    before = await scrape(app)
    assert metric(before, RECEIVED, event_type="channel_live", outcome="accepted") == 0

    await post_webhook(app, channel_live())
    await sink.state.wait_for(1)
    await settle(app)

    after = await scrape(app)
    labels = {"source": "webhook", "event_type": "channel_live", "outcome": "accepted"}
    assert metric(after, RECEIVED, **labels) == 1
    assert metric(after, DELIVERIES, target_kind="json", outcome="sent") == 1
    assert metric(after, "hub_receiver_jobs_total", function="process_event", outcome="processed")
    assert metric(after, "hub_receiver_delivery_latency_seconds_count", target_kind="json") == 1
    assert metric(after, "hub_receiver_ack_duration_seconds_count", outcome="accepted") == 1
    assert metric(after, "hub_receiver_unprocessed_events") == 0
    assert metric(after, "hub_receiver_oldest_unprocessed_event_age_seconds") == 0
    for state in ("pending", "sending", "failed", "dead"):
        assert metric(after, IN_STATE, state=state) == 0
    assert metric(after, "hub_receiver_queue_jobs") == 0


async def test_a_duplicate_and_a_bad_signature_are_counted(app: RunningApp, sink: Sink) -> None:
    body = channel_live()
    await post_webhook(app, body)
    await post_webhook(app, body)
    await post_webhook(app, channel_live(2), secret="not-the-platform-secret")
    await settle(app)

    text = await scrape(app)
    assert metric(text, RECEIVED, event_type="channel_live", outcome="duplicate") == 1
    assert metric(text, "hub_receiver_signature_failures_total") == 1
    assert metric(text, "hub_receiver_requests_rejected_total", endpoint="webhooks/partner") == 1


async def test_a_permanently_refused_notification_shows_as_dead(
    app: RunningApp, sink: Sink
) -> None:
    sink.state.always_fail(400)
    await post_webhook(app, channel_live())
    await sink.state.wait_for(1)
    await settle(app)

    text = await scrape(app)
    assert metric(text, DELIVERIES, target_kind="json", outcome="dead") == 1
    assert metric(text, IN_STATE, state="dead") == 1
    assert metric(text, DELIVERIES, target_kind="json", outcome="sent") == 0


@pytest.fixture
async def idle_app(
    ops_settings: Callable[..., Settings], database_url: str
) -> AsyncIterator[RunningApp]:
    """An app whose sweep does not come round during the test."""
    async with running_app(ops_settings(database_url, sweep_interval=3600)) as running:
        yield running


async def test_events_nobody_handed_over_show_as_unprocessed_with_their_age(
    idle_app: RunningApp,
) -> None:
    await settle(idle_app)  # the start-up sweep has run
    received_at = datetime.now(UTC) - timedelta(minutes=10)
    async with idle_app.services.sessions.begin() as session:
        for n in range(2):
            await session.execute(
                insert(Event).values(
                    dedup_key=f"stuck-{n}",
                    correlation_id=f"c{n}",
                    source="webhook",
                    event_type="channel_live",
                    known=True,
                    received_at=received_at + timedelta(minutes=n),
                    raw_body="{}",
                    headers={},
                    verification="signature",
                    parsed={},
                    state="received",
                    attempts=0,
                    enrichment="pending",
                )
            )

    text = await scrape(idle_app)
    assert metric(text, "hub_receiver_unprocessed_events") == 2
    age = metric(text, "hub_receiver_oldest_unprocessed_event_age_seconds")
    assert 600 <= age < 700


async def test_metrics_are_served_without_a_token_and_without_ids(
    app: RunningApp, sink: Sink
) -> None:
    event_id = await post_webhook(app, channel_live())
    await sink.state.wait_for(1)
    await settle(app)

    text = await scrape(app)
    assert "hub_receiver_events_received_total" in text
    # Labels are bounded sets: no channel, client or correlation id leaks into a series.
    for value in ("kJ2mQ8CH", "Vb7xR2CL", f'"{event_id}"', str(sink.port)):
        assert value not in text
