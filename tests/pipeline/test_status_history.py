"""A channel's status history, from webhooks and the Partner API, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select

from receiver.db.tables import Event, StatusChange
from receiver.settings import Settings
from tests.pipeline.support import (
    ACME,
    ACME_DRAFT,
    ACME_EMAIL,
    ACME_LIVE,
    all_events,
    channel_row,
    client_created,
    count,
    history,
    post,
    settle,
    webhook,
)
from tests.support.app import RunningApp, running_app
from tests.support.cli import hub_receiver_async as run_cli_async
from tests.support.fakes import Hub

MakeSettings = Callable[..., Settings]


@pytest.fixture
async def app(pipeline_settings: MakeSettings, database_url: str) -> AsyncIterator[RunningApp]:
    async with running_app(pipeline_settings(database_url=database_url)) as running:
        yield running


async def send(app: RunningApp, body: dict[str, object]) -> None:
    """Post one more event and wait until it (and every job it caused) is done."""
    before = len(await all_events(app.services.sessions))
    await post(app, body)
    await settle(app, events=before + 1)


async def test_an_onboarding_records_each_status_step_and_channels_show_prints_it(
    app: RunningApp, hub: Hub, database_url: str
) -> None:
    sessions = app.services.sessions
    await send(app, client_created(ACME))
    await send(app, webhook("channel_created", ACME_DRAFT, client_id=ACME))
    # The Hub summary goes away; an Embedded Signup channel's Classic status `created` is
    # ignored, and without an app it is still a draft: no change.
    hub.state.update_channel(ACME_DRAFT, hub_status=None, account_mode="sandbox")
    await send(app, webhook("channel_ready", ACME_DRAFT, client_id=ACME))
    # An app is attached, account_mode still sandbox: a sandbox number.
    hub.state.update_channel(
        ACME_DRAFT,
        status="running",
        integration={"enabled": True, "app_id": "5001", "state": "running"},
    )
    await send(app, webhook("channel_running", ACME_DRAFT, client_id=ACME))
    hub.state.update_channel(ACME_DRAFT, account_mode="live")
    await send(app, webhook("channel_live", ACME_DRAFT, client_id=ACME))

    assert await history(sessions, ACME_DRAFT) == [
        (None, "draft"),
        ("draft", "sandbox"),
        ("sandbox", "live"),
    ]
    events = await all_events(sessions)
    assert [e.enrichment for e in events] == ["enriched"] * 5
    # Each change is attributed to the event that revealed it.
    async with sessions() as session:
        revealed_by = list(
            await session.scalars(
                select(StatusChange.event_id)
                .where(StatusChange.channel_id == ACME_DRAFT)
                .order_by(StatusChange.channel_version)
            )
        )
    by_id = {e.id: e.event_type for e in events}
    assert [by_id[i] for i in revealed_by] == ["channel_created", "channel_running", "channel_live"]

    env = {"DATABASE_URL": database_url}
    shown = await run_cli_async("channels", "show", ACME_DRAFT, env=env)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert f"email     {ACME_EMAIL}" in out
    assert "status    live" in out
    changes_shown = [line for line in out.splitlines() if " -> " in line]
    assert len(changes_shown) == 3, out
    assert "(first seen) -> draft" in changes_shown[0]
    assert "draft -> sandbox" in changes_shown[1]
    assert "sandbox -> live" in changes_shown[2]

    as_json = await run_cli_async("channels", "show", ACME_DRAFT, "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    shown_json = json.loads(as_json.stdout)
    # The admin API's shape (one read model): `status_history`, newest first.
    assert [(h["from"], h["to"]) for h in shown_json["status_history"]] == [
        ("sandbox", "live"),
        ("draft", "sandbox"),
        (None, "draft"),
    ]
    assert shown_json["contact_email"] == ACME_EMAIL
    assert shown_json["status"] == "live"


async def test_a_duplicate_webhook_is_stored_once_and_records_no_second_change(
    app: RunningApp,
) -> None:
    body = webhook("channel_live", ACME_LIVE, client_id=ACME)
    first = await post(app, body)
    await settle(app, events=1)
    again = await post(app, body)
    await settle(app, events=1)

    assert again == {"status": "duplicate", "event_id": first["event_id"]}
    assert await count(app.services.sessions, Event) == 1
    assert await history(app.services.sessions, ACME_LIVE) == [(None, "live")]


async def test_a_redelivery_under_a_new_id_records_no_second_change(app: RunningApp) -> None:
    await send(app, webhook("channel_live", ACME_LIVE, client_id=ACME))
    await send(app, webhook("channel_live", ACME_LIVE, client_id=ACME))

    assert await count(app.services.sessions, Event) == 2
    assert await history(app.services.sessions, ACME_LIVE) == [(None, "live")]


async def test_an_older_api_snapshot_arriving_after_a_newer_one_never_flips_the_status_back(
    app: RunningApp, hub: Hub
) -> None:
    hub.state.update_channel(ACME_LIVE, modified_at="2026-03-02T12:00:00Z")
    await send(app, webhook("channel_live", ACME_LIVE, client_id=ACME))
    # A lagging read: the API hands out a draft copy stamped before the live one.
    hub.state.update_channel(ACME_LIVE, hub_status="draft", modified_at="2026-03-02T09:00:00Z")
    await send(app, webhook("channel_created", ACME_LIVE, client_id=ACME))

    assert await history(app.services.sessions, ACME_LIVE) == [(None, "live")]
    channel = await channel_row(app.services.sessions, ACME_LIVE)
    assert channel is not None
    assert channel.status == "live"


async def test_an_older_payload_after_a_newer_one_never_flips_the_status_back_without_the_api(
    make_settings: MakeSettings, database_url: str
) -> None:
    # No Partner API configured: the payloads are all there is.
    settings = make_settings(database_url=database_url, sweep_interval=0.3)
    live = webhook(
        "channel_live",
        ACME_LIVE,
        client_id=ACME,
        account_mode="live",
        modified_at="2026-03-02T10:03:55Z",
        integration={"app_id": "204711"},
    )
    created = webhook(
        "channel_created",
        ACME_LIVE,
        client_id=ACME,
        account_mode="live",
        modified_at="2026-03-02T09:14:07Z",
        integration={"app_id": None},
    )
    async with running_app(settings) as app:
        await send(app, live)
        await send(app, created)

        assert await history(app.services.sessions, ACME_LIVE) == [(None, "live")]
        events = await all_events(app.services.sessions)
        assert [e.enrichment for e in events] == ["not_configured"] * 2
