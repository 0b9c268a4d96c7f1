"""Forged permission callbacks notify no one (issue 10 §2.2).

A permission callback is a browser redirect anyone can fake. The Partner API judges its
claim; a rejected claim gets no delivery row at all (shipped rules or any other, replay
included), is counted in /metrics and shown by `events list`. The shipped rules tell the
team about confirmed grants and revocations only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from receiver.dev.mailbox import Mailbox
from receiver.ops.replay import replay
from receiver.settings import Settings
from tests.pipeline.support import (
    ACME,
    ACME_LIVE,
    all_deliveries,
    all_events,
    settle,
)
from tests.support.app import RunningApp, running_app
from tests.support.cli import hub_receiver_async as run_cli_async
from tests.support.fakes import Sink

MakeSettings = Callable[..., Settings]

CONFIRMED_RULE = "team hears about confirmed permission changes"

TELL_EVERYONE_RULES = """
targets:
  ops: "{ops}"
rules:
  - name: everything to everyone
    match: {{event: "*"}}
    notify: [ops, client]
"""


async def callback(app: RunningApp, query: str, *, events: int) -> None:
    response = await app.client.get(f"/callbacks/permission?{query}")
    assert response.status_code in (200, 303), response.text
    await settle(app, events=events)


def rejected_claims(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith('hub_receiver_permission_claims_total{claim="rejected"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_forged_revocations_notify_no_one_and_are_counted_and_listed(
    pipeline_settings: MakeSettings, database_url: str, sink: Sink, mailbox: Mailbox
) -> None:
    async with running_app(pipeline_settings(database_url=database_url)) as app:
        # A real channel of a real client, "revoked" by links naming other clients.
        for number in range(1, 4):
            await callback(app, f"client=forger{number}&revoked=[{ACME_LIVE}]", events=number)
        metrics = (await app.client.get("/metrics")).text
        rows = await all_deliveries(app.services.sessions)
        events = await all_events(app.services.sessions)

    assert [(e.event_type, e.state, e.claim) for e in events] == [
        ("permission_revoked", "processed", "rejected")
    ] * 3
    assert rows == []
    assert sink.state.received == []
    assert mailbox.messages == []
    assert rejected_claims(metrics) == 3.0

    listed = await run_cli_async("events", "list", "--json", env={"DATABASE_URL": database_url})
    assert listed.returncode == 0, listed.stderr
    assert [(e["event_type"], e["claim"]) for e in json.loads(listed.stdout)] == [
        ("permission_revoked", "rejected")
    ] * 3


async def test_a_rejected_claim_notifies_no_one_even_when_a_rule_matches_every_event(
    pipeline_settings: MakeSettings,
    database_url: str,
    sink: Sink,
    mailbox: Mailbox,
    rules_dir: Callable[[str], Path],
) -> None:
    folder = rules_dir(TELL_EVERYONE_RULES.format(ops=sink.json_url("/ops")))
    settings = pipeline_settings(database_url=database_url, rules_path=folder)
    async with running_app(settings) as app:
        await callback(app, f"client=forger&channels=[{ACME_LIVE}]", events=1)
        [event] = await all_events(app.services.sessions)
        # Nor does replaying it, plain or forced.
        for force in (False, True):
            report = await replay(app.services, event_ids=[event.id], dry_run=False, force=force)
            assert report.created == 0
            assert report.events[0].note == "a rejected permission claim notifies no one"
        await app.drain()
        rows = await all_deliveries(app.services.sessions)

    assert event.claim == "rejected"
    assert rows == []
    assert sink.state.received == []
    assert mailbox.messages == []


async def test_a_confirmed_revocation_tells_the_team_through_its_own_rule(
    pipeline_settings: MakeSettings, database_url: str, sink: Sink
) -> None:
    async with running_app(pipeline_settings(database_url=database_url)) as app:
        await callback(app, f"client={ACME}&revoked=[{ACME_LIVE}]", events=1)
        [chat] = await sink.state.wait_for(1)
        rows = await all_deliveries(app.services.sessions)
        metrics = (await app.client.get("/metrics")).text

    assert [(d.rule_name, d.target_name, d.state) for d in rows] == [
        (CONFIRMED_RULE, "ops", "sent")
    ]
    assert chat.path == "/ops"
    assert 'hub_receiver_permission_claims_total{claim="confirmed"} 1.0' in metrics
    assert rejected_claims(metrics) == 0.0


async def test_an_unconfirmed_claim_tells_no_one_under_the_shipped_rules(
    pipeline_settings: MakeSettings, database_url: str, sink: Sink
) -> None:
    # Without Partner API credentials nobody can confirm the claim: it could be forged.
    settings = pipeline_settings(database_url=database_url, d360_api_key=None)
    async with running_app(settings) as app:
        await callback(app, f"client={ACME}&channels=[{ACME_LIVE}]", events=1)
        [event] = await all_events(app.services.sessions)
        rows = await all_deliveries(app.services.sessions)

    assert event.claim == "unconfirmed"
    assert rows == []
    assert sink.state.received == []
