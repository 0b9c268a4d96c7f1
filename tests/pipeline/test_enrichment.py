"""Enrichment through the Partner API (fake hub), on SQLite and PostgreSQL, in-process runner."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from receiver.db.tables import Client, Event
from receiver.dev.mailbox import Mailbox
from receiver.settings import Settings
from tests.pipeline.support import (
    ACME,
    ACME_EMAIL,
    ACME_LIVE,
    ACME_PHONE,
    NORDWIND_CHANNEL,
    WEBHOOK_TOKEN,
    all_deliveries,
    channel_row,
    client_created,
    history,
    one_event,
    post,
    post_authenticated,
    settle,
    webhook,
)
from tests.support.app import RunningApp, running_app
from tests.support.fakes import Hub, Sink
from tests.support.waiting import eventually

MakeSettings = Callable[..., Settings]

PERMISSION_RULES = """
targets:
  ops: "{ops}"
rules:
  - name: team hears about permission claims
    match: {{event: [permission_granted, permission_revoked]}}
    notify: [ops]
  - name: client hears about its permission
    match: {{event: [permission_granted]}}
    notify: [client]
"""


@pytest.fixture
async def app(pipeline_settings: MakeSettings, database_url: str) -> AsyncIterator[RunningApp]:
    settings = pipeline_settings(database_url=database_url, webhook_shared_secret=[WEBHOOK_TOKEN])
    async with running_app(settings) as running:
        yield running


# --- the Partner API calls -----------------------------------------------------------------


async def test_a_channel_event_is_enriched_through_the_channels_filter_query(
    app: RunningApp, hub: Hub
) -> None:
    answer = await post_authenticated(app, webhook("channel_live", ACME_LIVE, client_id=ACME))
    await settle(app, events=1)

    lookups = hub.channel_lookups()
    assert {"filters": '{"id":"kJ2mQ8CH"}'} in lookups, lookups
    assert all(json.loads(q["filters"]) == {"id": ACME_LIVE} for q in lookups)
    event = await one_event(app.services.sessions, answer["event_id"])
    assert event.enrichment == "enriched"
    channel = await channel_row(app.services.sessions, ACME_LIVE)
    assert channel is not None
    assert channel.enriched
    assert channel.status == "live"
    assert channel.client_id == ACME


async def test_a_client_created_event_is_enriched_through_the_clients_list_filtered_by_id(
    app: RunningApp, hub: Hub
) -> None:
    answer = await post_authenticated(app, client_created(ACME))
    await settle(app, events=1)

    assert hub.client_lookups() == [{"filters": '{"id":"Vb7xR2CL"}'}]
    assert hub.channel_lookups() == []
    event = await one_event(app.services.sessions, answer["event_id"])
    assert event.enrichment == "enriched"
    async with app.services.sessions() as session:
        client = await session.get(Client, ACME)
    assert client is not None
    assert client.source == "partner_api"
    assert client.contact_email == ACME_EMAIL  # from the API, not the thin payload
    assert client.organisation == "Acme Bakery GmbH"


async def test_a_violation_with_only_a_phone_number_is_resolved_by_the_phone_number_filter(
    app: RunningApp, hub: Hub, mailbox: Mailbox
) -> None:
    hub.state.update_channel(ACME_LIVE, waba_account={"status": "account_violation"})
    body = {"id": "v-1", "event": "account_violation", "phone_number": ACME_PHONE}
    answer = await post_authenticated(app, body)
    await settle(app, events=1)

    lookups = [json.loads(q["filters"]) for q in hub.channel_lookups()]
    assert {"setup_info.phone_number": ACME_PHONE} in lookups, lookups
    event = await one_event(app.services.sessions, answer["event_id"])
    assert event.enrichment == "enriched"
    assert await history(app.services.sessions, ACME_LIVE) == [(None, "restricted")]
    # The resolved channel is the event's channel: its owner is told about the violation.
    [to_client] = [
        d for d in await all_deliveries(app.services.sessions) if d.target_name == "client"
    ]
    assert (to_client.state, to_client.client_id) == ("sent", ACME), to_client.last_error
    [mail] = await mailbox.wait_for(1)
    assert mail.to == (ACME_EMAIL,)


# --- permission callbacks are claims -------------------------------------------------------


@pytest.fixture
async def claims_app(
    pipeline_settings: MakeSettings,
    database_url: str,
    sink: Sink,
    rules_dir: Callable[[str], Path],
) -> AsyncIterator[RunningApp]:
    folder = rules_dir(PERMISSION_RULES.format(ops=sink.json_url("/ops")))
    settings = pipeline_settings(database_url=database_url, rules_path=folder)
    async with running_app(settings) as running:
        yield running


async def claim(app: RunningApp, query: str) -> None:
    response = await app.client.get(f"/callbacks/permission?{query}")
    assert response.status_code in (200, 303), response.text
    await settle(app, events=1)


async def test_a_forged_permission_callback_is_rejected_and_never_reaches_the_client(
    claims_app: RunningApp, sink: Sink, mailbox: Mailbox
) -> None:
    # Tq7bY4CH belongs to Hn3pZ8CL; the link claims it for Vb7xR2CL.
    await claim(claims_app, f"client={ACME}&channels=[{NORDWIND_CHANNEL}]")

    sessions = claims_app.services.sessions
    async with sessions() as session:
        [event] = (await session.scalars(select(Event))).all()
    assert event.event_type == "permission_granted"
    assert event.claim == "rejected"
    assert event.claim_reason is not None
    assert "another client" in event.claim_reason
    assert event.state == "processed"
    # A rejected claim notifies no one, whatever the rules say: not even a skipped row.
    assert await all_deliveries(sessions) == []
    assert sink.state.received == []
    assert mailbox.messages == []


async def test_a_genuine_permission_callback_is_confirmed_and_the_client_is_told(
    claims_app: RunningApp, mailbox: Mailbox
) -> None:
    await claim(claims_app, f"client={ACME}&channels=[{ACME_LIVE}]")

    sessions = claims_app.services.sessions
    async with sessions() as session:
        [event] = (await session.scalars(select(Event))).all()
    assert (event.claim, event.claim_reason) == ("confirmed", None)
    [to_client] = [d for d in await all_deliveries(sessions) if d.target_name == "client"]
    assert (to_client.state, to_client.client_id) == ("sent", ACME), to_client.last_error
    [mail] = await mailbox.wait_for(1)
    assert mail.to == (ACME_EMAIL,)


async def test_a_permission_callback_for_a_channel_the_partner_does_not_have_is_rejected(
    claims_app: RunningApp, mailbox: Mailbox
) -> None:
    await claim(claims_app, f"client={ACME}&channels=[Xx0nopeCH]")

    sessions = claims_app.services.sessions
    async with sessions() as session:
        [event] = (await session.scalars(select(Event))).all()
    assert event.claim == "rejected"
    assert event.claim_reason is not None
    assert "no such channel" in event.claim_reason
    assert await all_deliveries(sessions) == []
    assert await channel_row(sessions, "Xx0nopeCH") is None
    assert mailbox.messages == []


# --- the Partner API is down ---------------------------------------------------------------


async def test_an_event_is_routed_unenriched_when_the_api_is_down_and_enriched_late_after(
    pipeline_settings: MakeSettings, database_url: str, hub: Hub, sink: Sink, mailbox: Mailbox
) -> None:
    settings = pipeline_settings(database_url=database_url, sweep_interval=1.0)
    hub.go_down()
    async with running_app(settings) as app:
        sessions = app.services.sessions
        answer = await post(app, webhook("channel_live", ACME_LIVE, client_id=ACME))

        async def routed() -> bool:
            event = await one_event(sessions, answer["event_id"])
            return event.state == "processed"

        await eventually(routed, timeout=10.0)
        hub.come_back()
        event = await one_event(sessions, answer["event_id"])
        assert event.enrichment == "not_enriched"
        assert event.enrichment_error is not None
        assert "500" in event.enrichment_error
        [ops] = await sink.state.wait_for(1)
        assert "Partner API unavailable" in ops.body["message"]

        async def enriched_late() -> str | None:
            late = await one_event(sessions, answer["event_id"])
            return late.enrichment if late.enrichment == "enriched_late" else None

        await eventually(enriched_late, timeout=10.0)
        # The thin payload said nothing about an app: routed as draft. The API knows better.
        assert await history(sessions, ACME_LIVE) == [(None, "draft"), ("draft", "live")]
        channel = await channel_row(sessions, ACME_LIVE)
        assert channel is not None
        assert (channel.status, channel.enriched) == ("live", True)
        async with sessions() as session:
            client = await session.get(Client, ACME)
        assert client is not None
        assert client.contact_email == ACME_EMAIL
        # Routing ran again with the facts: no second copy of what was already sent.
        await app.drain()
        rows = await all_deliveries(sessions)
        keys = [(d.rule_name, d.target_name) for d in rows]
        assert len(keys) == len(set(keys))
        assert sum(1 for r in sink.state.received if r.path == "/ops") == 1
        # The webhook was unsigned: the Partner API confirming the channel does not make the
        # event authentic, so the client is not told (tests/pipeline/test_client_abuse.py
        # has the signed case, emailed once the facts arrive).
        [client_row] = [d for d in rows if d.target_name == "client"]
        assert (client_row.state, client_row.last_error) == (
            "skipped",
            "webhook not authenticated",
        )
        assert mailbox.messages == []
