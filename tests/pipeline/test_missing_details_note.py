"""The team's chat message says why an event has no Partner API details, end to end: not
configured, not found, refused (the wording itself is table-tested in
tests/messages/test_enrichment_note.py; "unavailable" in test_enrichment.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from receiver.settings import Settings
from tests.pipeline.support import (
    ACME,
    post,
    settle,
    webhook,
)
from tests.support.app import RunningApp, running_app
from tests.support.fakes import Hub, Sink

MakeSettings = Callable[..., Settings]

NOT_CONFIGURED = (
    "Note: Partner API not configured (D360_PARTNER_ID and a key are unset); "
    "details come from the webhook only."
)
NOT_FOUND = (
    "Note: the Partner API does not know this number or client; details come from the webhook only."
)

RULES = """
targets:
  ops: "{ops}"
rules:
  - name: team hears about every event
    match: {{}}
    notify: [ops]
"""


@pytest.fixture
def chat_settings(
    pipeline_settings: MakeSettings,
    database_url: str,
    sink: Sink,
    rules_dir: Callable[[str], Path],
) -> MakeSettings:
    folder = rules_dir(RULES.format(ops=sink.json_url("/ops")))

    def make(**overrides: object) -> Settings:
        return pipeline_settings(database_url=database_url, rules_path=folder, **overrides)

    return make


@pytest.fixture
async def unconfigured_app(chat_settings: MakeSettings) -> AsyncIterator[RunningApp]:
    async with running_app(chat_settings(d360_partner_id=None, d360_api_key=None)) as app:
        yield app


@pytest.fixture
async def app(chat_settings: MakeSettings) -> AsyncIterator[RunningApp]:
    async with running_app(chat_settings()) as app:
        yield app


async def test_without_partner_api_credentials_the_team_reads_not_configured(
    unconfigured_app: RunningApp, sink: Sink, hub: Hub
) -> None:
    await post(unconfigured_app, webhook("channel_live", "kJ2mQ8CH", client_id=ACME))
    await settle(unconfigured_app, events=1)

    [chat] = await sink.state.wait_for(1)
    assert NOT_CONFIGURED in chat.body["message"]
    assert "unavailable" not in chat.body["message"]
    assert hub.state.requests == []


async def test_for_a_number_the_partner_api_does_not_know_the_team_reads_not_found(
    app: RunningApp, sink: Sink, hub: Hub
) -> None:
    await post(app, webhook("channel_live", "Xx0nopeCH", client_id=ACME))
    await settle(app, events=1)

    [chat] = await sink.state.wait_for(1)
    assert NOT_FOUND in chat.body["message"]
    assert "unavailable" not in chat.body["message"]
    assert hub.channel_lookups() == [{"filters": '{"id":"Xx0nopeCH"}'}]


async def test_when_the_partner_api_refuses_the_key_the_team_reads_refused(
    app: RunningApp, sink: Sink, hub: Hub
) -> None:
    hub.state.fail_next(1, status=401)
    await post(app, webhook("channel_live", "kJ2mQ8CH", client_id=ACME))
    await settle(app, events=1)

    [chat] = await sink.state.wait_for(1)
    assert (
        "Note: the Partner API refused the lookup (Partner API auth (401)" in chat.body["message"]
    )
    assert "unavailable" not in chat.body["message"]
