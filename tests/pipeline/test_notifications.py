"""Routing and delivery end to end: PostgreSQL, Redis, the arq worker, the fake hub, a json://
sink for the team and an SMTP mailbox for clients. Rules are the shipped `routing_rules/`
unless a test needs its own."""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest

from receiver.dev.mailbox import Mailbox
from receiver.settings import Settings
from tests.pipeline.support import (
    ACME,
    ACME_EMAIL,
    ACME_LIVE,
    ACME_PHONE,
    NORDWIND_CHANNEL,
    NORDWIND_EMAIL,
    WEBHOOK_TOKEN,
    all_deliveries,
    attempts_of,
    deliveries_of,
    handed_over,
    post_authenticated,
    webhook,
)
from tests.support.app import RunningApp, run_worker_burst, running_app
from tests.support.cli import hub_receiver_async as run_cli_async
from tests.support.fakes import Hub, Sink
from tests.support.waiting import eventually

MakeSettings = Callable[..., Settings]

LIFECYCLE_RULE = "team hears about every number lifecycle event"
CLIENT_LIVE_RULE = "client hears their number is live"
ALERT_RULE = "team hears about violations and restrictions, at most hourly per number"
CLIENT_RESTRICTED_RULE = "client hears their number was restricted"


@pytest.fixture
def e2e_settings(
    pipeline_settings: MakeSettings, pg_url: str, pipeline_redis_url: str
) -> MakeSettings:
    def make(**overrides: object) -> Settings:
        return pipeline_settings(
            database_url=pg_url,
            redis_url=pipeline_redis_url,
            webhook_shared_secret=[WEBHOOK_TOKEN],
            **overrides,
        )

    return make


async def work(app: RunningApp, settings: Settings, *, events: int) -> None:
    """Let the relay hand `events` events to Redis, then run the worker until the queue is empty."""
    await handed_over(app, events=events)
    await run_worker_burst(settings)


def channel_live(channel_id: str = ACME_LIVE, *, client_id: str = ACME) -> dict[str, object]:
    return webhook("channel_live", channel_id, client_id=client_id)


# --- the happy path -------------------------------------------------------------------------


async def test_channel_live_reaches_the_team_chat_and_the_clients_inbox(
    e2e_settings: MakeSettings, sink: Sink, mailbox: Mailbox
) -> None:
    settings = e2e_settings()
    async with running_app(settings) as app:
        answer = await post_authenticated(app, channel_live())
        await work(app, settings, events=1)

        [chat] = await sink.state.wait_for(1)
        [mail] = await mailbox.wait_for(1)
        rows = await all_deliveries(app.services.sessions)

    assert chat.path == "/ops"
    assert chat.body["title"] == f"Number is live: {ACME_PHONE} (Jana Beispiel)"
    message = chat.body["message"]
    assert f"Number: {ACME_PHONE} (Acme Bakery)" in message
    assert "Client: Jana Beispiel [Vb7xR2CL]" in message
    assert "Status: new → live" in message
    assert chat.body["correlation_id"]

    assert mail.to == (ACME_EMAIL,)
    assert mail.subject == f"{ACME_PHONE} is live"
    assert "Hello Jana Beispiel" in mail.body
    assert f"{ACME_PHONE} (Acme Bakery) is now live" in mail.body

    assert {(d.rule_name, d.target_name, d.state, d.attempts) for d in rows} == {
        (LIFECYCLE_RULE, "ops", "sent", 1),
        (CLIENT_LIVE_RULE, "client", "sent", 1),
    }
    assert all(d.event_id == answer["event_id"] for d in rows)
    assert len(sink.state.received) == 1
    assert len(mailbox.messages) == 1


async def test_a_duplicate_webhook_notifies_once(
    e2e_settings: MakeSettings, sink: Sink, mailbox: Mailbox
) -> None:
    settings = e2e_settings()
    body = channel_live()
    async with running_app(settings) as app:
        await post_authenticated(app, body)
        await post_authenticated(app, body)
        await work(app, settings, events=1)
        await post_authenticated(app, body)  # again, after it was processed
        await run_worker_burst(settings)

        await sink.state.wait_for(1)
        await mailbox.wait_for(1)
        rows = await all_deliveries(app.services.sessions)

    assert len(rows) == 2
    assert len(sink.state.received) == 1
    assert len(mailbox.messages) == 1


# --- failures and retries -------------------------------------------------------------------


async def test_a_target_failing_twice_is_retried_on_schedule_and_then_sent(
    e2e_settings: MakeSettings, sink: Sink
) -> None:
    settings = e2e_settings(delivery_retry_schedule=[0.2, 0.4])
    sink.state.fail_next(2, 500)
    async with running_app(settings) as app:
        await post_authenticated(app, channel_live())
        await work(app, settings, events=1)

        received = await sink.state.wait_for(3)
        [row] = await deliveries_of(app.services.sessions, rule=LIFECYCLE_RULE)
        tries = await attempts_of(app.services.sessions, row.id)

    assert [r.status for r in received] == [500, 500, 200]
    assert (row.state, row.attempts, row.last_error) == ("sent", 3, None)
    assert row.sent_at is not None
    assert [(t.number, t.outcome) for t in tries] == [(1, "failed"), (2, "failed"), (3, "sent")]
    assert all(t.error and "500" in t.error for t in tries[:2])
    # The schedule is 0.2 s then 0.4 s, with +-20 % jitter.
    gaps = [(b.received_at - a.received_at).total_seconds() for a, b in pairwise(received)]
    assert gaps[0] >= 0.15, gaps
    assert gaps[1] >= 0.3, gaps


async def test_a_permanent_failure_is_dead_masked_and_revived_by_deliveries_retry(
    e2e_settings: MakeSettings, sink: Sink, pg_url: str
) -> None:
    ops_url = sink.json_url("/ops", auth="bot:s3cr3t-pa55")
    settings = e2e_settings(rules_env={"OPS_NOTIFY_URL": ops_url})
    sink.state.always_fail(404)
    async with running_app(settings) as app:
        sessions = app.services.sessions
        await post_authenticated(app, channel_live())
        await work(app, settings, events=1)

        [dead] = await deliveries_of(sessions, rule=LIFECYCLE_RULE)
        assert (dead.state, dead.attempts) == ("dead", 1)
        assert dead.last_error is not None
        assert "404" in dead.last_error
        assert dead.target_display is not None
        assert dead.target_display.startswith("json://")
        for shown in (dead.target_display, dead.last_error):
            assert "s3cr3t-pa55" not in shown
        listed = await run_cli_async(
            "deliveries", "list", "--state", "dead", "--json", env={"DATABASE_URL": pg_url}
        )
        assert listed.returncode == 0, listed.stderr
        assert [d["id"] for d in json.loads(listed.stdout)] == [dead.id]
        assert "s3cr3t-pa55" not in listed.stdout

        sink.state.recover()
        retried = await run_cli_async(
            "deliveries", "retry", str(dead.id), env={"DATABASE_URL": pg_url}
        )
        assert retried.returncode == 0, retried.stderr
        assert f"1 delivery queued for retry: {dead.id}" in retried.stdout

        async def handed_to_the_queue() -> bool:
            [row] = await deliveries_of(sessions, rule=LIFECYCLE_RULE)
            return row.state == "pending" and row.enqueued_at is not None

        await eventually(handed_to_the_queue)  # the web process's sweep
        await run_worker_burst(settings)
        [revived] = await deliveries_of(sessions, rule=LIFECYCLE_RULE)
        tries = await attempts_of(sessions, dead.id)

    assert (revived.state, revived.attempts, revived.last_error) == ("sent", 2, None)
    # The retry by hand is in the history, as the admin API's is (one implementation).
    assert [t.outcome for t in tries] == ["dead", "requeued", "sent"]
    assert [r.status for r in sink.state.received] == [404, 200]


# --- throttling ------------------------------------------------------------------------------


async def test_two_violations_within_the_throttle_window_notify_once(
    e2e_settings: MakeSettings, hub: Hub, mailbox: Mailbox
) -> None:
    hub.state.update_channel(ACME_LIVE, waba_account={"status": "account_violation"})
    settings = e2e_settings()
    async with running_app(settings) as app:
        for violation in ("SCAM", "SPAM"):
            await post_authenticated(
                app,
                webhook("account_violation", ACME_LIVE, client_id=ACME, violation_type=violation),
            )
        await work(app, settings, events=2)

        sessions = app.services.sessions
        alerts = await deliveries_of(sessions, rule=ALERT_RULE)
        to_client = [d for d in await all_deliveries(sessions) if d.target_name == "client"]

    assert sorted(d.state for d in alerts) == ["sent", "throttled"], alerts
    [throttled] = [d for d in alerts if d.state == "throttled"]
    assert throttled.attempts == 0
    assert throttled.last_error is not None
    assert "throttled" in throttled.last_error
    assert throttled.throttle_key == f"channel:{ACME_LIVE}"
    # The client hears about the number's new status once; the second violation changed
    # nothing, so it is not news.
    assert [(d.rule_name, d.state) for d in to_client] == [(CLIENT_RESTRICTED_RULE, "sent")]
    assert [m.to for m in mailbox.messages] == [(ACME_EMAIL,)]


# --- who the client target reaches ------------------------------------------------------------


async def test_a_client_target_only_emails_the_client_that_owns_the_channel(
    e2e_settings: MakeSettings, hub: Hub, mailbox: Mailbox
) -> None:
    hub.state.update_channel(NORDWIND_CHANNEL, hub_status="live", account_mode="live")
    settings = e2e_settings()
    async with running_app(settings) as app:
        # The payload names the other client; the Partner API knows the owner.
        await post_authenticated(app, channel_live(NORDWIND_CHANNEL, client_id=ACME))
        await work(app, settings, events=1)

        [mail] = await mailbox.wait_for(1)
        [row] = await deliveries_of(app.services.sessions, rule=CLIENT_LIVE_RULE)

    assert mail.to == (NORDWIND_EMAIL,)
    assert "+31612345678 is live" in mail.subject
    assert (row.state, row.client_id) == ("sent", "Hn3pZ8CL")
    assert all(ACME_EMAIL not in m.to for m in mailbox.messages)
    assert len(mailbox.messages) == 1


async def test_a_client_without_a_contact_email_is_skipped_with_the_reason(
    e2e_settings: MakeSettings, hub: Hub, sink: Sink, mailbox: Mailbox
) -> None:
    hub.state.clients[ACME]["contact_info"].pop("email")
    hub.state.update_channel(ACME_LIVE, client={"contact_info": {"email": None}})
    settings = e2e_settings()
    async with running_app(settings) as app:
        await post_authenticated(app, channel_live())
        await work(app, settings, events=1)

        await sink.state.wait_for(1)
        [row] = await deliveries_of(app.services.sessions, rule=CLIENT_LIVE_RULE)

    assert row.state == "skipped"
    assert row.last_error == "no contact email is known for this client"
    assert mailbox.messages == []


# --- templates ---------------------------------------------------------------------------------


BROKEN_TEMPLATE_RULES = """
targets:
  ops: "{ops}"
rules:
  - name: number went live
    match: {{event: channel_live}}
    notify: [ops]
    body: "{{{{ nope.missing }}}}"
"""


async def test_a_broken_template_sends_the_plain_fallback_and_records_the_error(
    e2e_settings: MakeSettings, sink: Sink, rules_dir: Callable[[str], Path]
) -> None:
    folder = rules_dir(BROKEN_TEMPLATE_RULES.format(ops=sink.json_url("/ops")))
    settings = e2e_settings(rules_path=folder)
    async with running_app(settings) as app:
        await post_authenticated(app, channel_live())
        await work(app, settings, events=1)

        [chat] = await sink.state.wait_for(1)
        [row] = await all_deliveries(app.services.sessions)

    assert row.state == "sent"
    assert row.render_error is not None
    assert "nope" in row.render_error
    assert ACME_PHONE in chat.body["message"]
    assert "channel_live" in chat.body["title"] + chat.body["message"]
    assert "{{" not in chat.body["message"]
    assert chat.body["message"] == row.body
