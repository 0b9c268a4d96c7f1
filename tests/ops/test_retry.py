"""Retrying a delivery by hand: one implementation behind the admin API and the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from receiver.ops.retry import retry_all_dead, retry_deliveries
from receiver.services import Services, base_services
from receiver.settings import Settings
from tests.ops.cli_support import delivery, event, store
from tests.ops.support import AUTH, Sink, admin_get, admin_post, channel_live, post_webhook, settle
from tests.support.app import RunningApp
from tests.support.cli import hub_receiver_async


async def _dead_delivery(app: RunningApp, sink: Sink) -> dict[str, object]:
    sink.state.always_fail(400)
    event_id = await post_webhook(app, channel_live())
    await sink.state.wait_for(1)
    await settle(app)
    [row] = (await admin_get(app, "/admin/deliveries", state="dead"))["items"]
    assert row["event_id"] == event_id
    sink.state.recover()
    return dict(row)


async def test_a_dead_delivery_is_listed_and_a_retry_sends_it_keeping_its_attempts(
    app: RunningApp, sink: Sink
) -> None:
    sink.state.always_fail(400)
    event_id = await post_webhook(app, channel_live())
    await sink.state.wait_for(1)
    await settle(app)

    dead = await admin_get(app, "/admin/deliveries", state="dead")
    [row] = dead["items"]
    assert row["event_id"] == event_id
    assert row["attempts"] == 1
    assert "400" in row["last_error"]
    assert (await admin_get(app, "/admin/deliveries", state="sent"))["count"] == 0

    sink.state.recover()
    answer = await admin_post(app, f"/admin/deliveries/{row['id']}/retry")
    assert answer["retried"] is True
    assert answer["enqueued"] is True
    await sink.state.wait_for(2)
    await settle(app)

    delivery = await admin_get(app, f"/admin/deliveries/{row['id']}")
    assert delivery["state"] == "sent"
    assert delivery["attempts"] == 2
    assert [a["outcome"] for a in delivery["attempt_log"]] == ["dead", "requeued", "sent"]
    assert "retried by hand" in delivery["attempt_log"][1]["error"]
    assert len(sink.state.received) == 2


async def test_only_dead_or_failed_deliveries_can_be_retried(app: RunningApp, sink: Sink) -> None:
    event_id = await post_webhook(app, channel_live())
    await sink.state.wait_for(1)
    await settle(app)
    [delivery] = (await admin_get(app, f"/admin/events/{event_id}"))["deliveries"]

    again = await app.client.post(f"/admin/deliveries/{delivery['id']}/retry", headers=AUTH)
    assert again.status_code == 409
    assert again.json()["error"] == "not_retryable"
    missing = await app.client.post("/admin/deliveries/999999/retry", headers=AUTH)
    assert missing.status_code == 404
    await settle(app)
    assert len(sink.state.received) == 1


async def test_the_cli_retry_records_who_asked_and_the_running_service_sends_it(
    app: RunningApp, sink: Sink, database_url: str
) -> None:
    row = await _dead_delivery(app, sink)

    retried = await hub_receiver_async(
        "deliveries", "retry", str(row["id"]), DATABASE_URL=database_url
    )

    assert retried.returncode == 0, retried.stderr
    assert f"1 delivery queued for retry: {row['id']}" in retried.stdout
    # No queue in the CLI's process (no REDIS_URL): the service's sweep hands it over.
    assert app.services.relay is not None
    await app.services.relay.sweep()
    await sink.state.wait_for(2)
    await settle(app)
    shown = await admin_get(app, f"/admin/deliveries/{row['id']}")
    assert (shown["state"], shown["attempts"]) == ("sent", 2)
    log = shown["attempt_log"]
    assert [a["outcome"] for a in log] == ["dead", "requeued", "sent"]
    assert "retried by hand (hub-receiver deliveries retry) after dead" in log[1]["error"]
    assert len(sink.state.received) == 2


@pytest.fixture
async def services(
    ops_settings: Callable[..., Settings], database_url: str
) -> AsyncIterator[Services]:
    services = base_services(ops_settings(database_url))
    try:
        yield services
    finally:
        await services.engine.dispose()


async def test_retrying_all_dead_leaves_held_and_sent_alone_but_a_held_one_goes_by_id(
    services: Services,
) -> None:
    rows = [delivery(n, event_id=1, rule=f"r{n}", error="e") for n in range(1, 5)]
    for row, state in zip(rows, ("dead", "failed", "held", "sent"), strict=True):
        row.state = state
    await store(services.settings.database_url, event(1), *rows)

    bulk = await retry_all_dead(services, requested_by="a test")

    assert [(r.delivery_id, r.retried, r.enqueued) for r in bulk] == [
        (1, True, False),
        (2, True, False),
    ]
    by_id = await retry_deliveries(services, [3, 4, 99], requested_by="a test")
    assert [(r.delivery_id, r.retried, r.state) for r in by_id] == [
        (3, True, "pending"),
        (4, False, "sent"),
        (99, False, None),
    ]
