"""Mute windows end to end: the real app and pipeline, a json:// sink, SQLite and PostgreSQL.

The catch-up watcher is driven by hand with a controlled `services.clock`, never by
sleeping: a window ends when the test moves the clock past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from receiver.ops.records import Filters, Window, list_deliveries
from receiver.settings import Settings
from receiver.watch.catch_up import CatchUpWatcher, summary_rule
from tests.pipeline.support import (
    ACME,
    ACME_DRAFT,
    ACME_LIVE,
    NORDWIND,
    NORDWIND_CHANNEL,
    WEBHOOK_TOKEN,
    all_events,
    deliveries_of,
    post_authenticated,
    settle,
    webhook,
)
from tests.support.app import RunningApp, running_app
from tests.support.cli import hub_receiver_async as run_cli_async
from tests.support.fakes import Hub, Sink

MakeSettings = Callable[..., Settings]
RULE = "team hears about numbers, quietly"
EVENTS = "[channel_live, channel_running, account_violation]"


def rules(mute: str, extra: str = "") -> str:
    return f"""
targets:
  ops: ${{OPS_NOTIFY_URL}}
time_intervals:
  - name: always
    time_intervals: [{{}}]
  - name: morning-meeting
    time_intervals:
      - times: [{{start_time: "09:00", end_time: "10:00"}}]
        location: Europe/Berlin
rules:
  - name: {RULE}
    match: {{event: {EVENTS}}}
    notify: ops
    mute_during: [{mute}]
{extra}"""


# 09:00 in Berlin (UTC+1 in December): inside "morning-meeting" until 09:00 UTC.
START = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
WINDOW_END = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


class Clock:
    """The time every part of the app reads (`services.clock`), moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings_for(
    pipeline_settings: MakeSettings, rules_dir: Callable[[str], Path], database_url: str
) -> Callable[..., Settings]:
    def make(mute: str, extra: str = "") -> Settings:
        return pipeline_settings(
            database_url=database_url,
            rules_path=rules_dir(rules(mute, extra)),
            webhook_shared_secret=[WEBHOOK_TOKEN],
        )

    return make


@pytest.fixture
def start(clock: Clock) -> Callable[[Settings], Any]:
    """Start the app on `settings` with the test's clock."""

    @contextlib.asynccontextmanager
    async def run(settings: Settings) -> AsyncIterator[RunningApp]:
        async with running_app(settings) as app:
            app.services.clock = clock
            yield app

    return run


async def send(app: RunningApp, body: dict[str, Any]) -> None:
    before = len(await all_events(app.services.sessions))
    await post_authenticated(app, body)
    await settle(app, events=before + 1)


async def catch_up(app: RunningApp) -> None:
    """Run the watcher now (the app's scheduler may run it too: the claim decides)."""
    await CatchUpWatcher().run_once(app.services)
    await app.run_to_idle()


def messages(sink: Sink) -> list[dict[str, Any]]:
    return [r.body for r in sink.state.received if r.path == "/ops"]


async def states(app: RunningApp, rule: str = RULE) -> list[str]:
    return sorted(d.state for d in await deliveries_of(app.services.sessions, rule=rule))


async def listed(app: RunningApp) -> list[dict[str, Any]]:
    page = await list_deliveries(app.services, filters=Filters(rule=RULE), window=Window())
    return list(page.items)


async def test_a_rule_muted_by_an_always_on_window_sends_nothing_and_holds_its_deliveries(
    settings_for: Callable[[str], Settings],
    start: Callable[[Settings], Any],
    sink: Sink,
    database_url: str,
) -> None:
    async with start(settings_for("always")) as app:
        await send(app, webhook("channel_live", ACME_LIVE, client_id=ACME))
        await send(app, webhook("channel_live", ACME_DRAFT, client_id=ACME))
        await catch_up(app)

        assert messages(sink) == []
        assert await states(app) == ["held", "held"]
        items = await listed(app)
        assert [i["state"] for i in items] == ["held", "held"]
        assert {i["held_by"] for i in items} == {"mute:always"}
        assert all(i["held_until"] is None for i in items)  # always on: no end in sight
        assert all("muted during 'always'" in i["last_error"] for i in items)

    env = {"DATABASE_URL": database_url}
    shown = await run_cli_async("deliveries", "list", "--state", "held", env=env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("held (mute:always, until no end in sight)") == 2, shown.stdout
    as_json = await run_cli_async("deliveries", "list", "--json", env=env)
    assert [d["held_by"] for d in json.loads(as_json.stdout)] == ["mute:always"] * 2


async def test_a_window_that_ends_sends_one_summary_listing_what_it_held(
    settings_for: Callable[[str], Settings],
    start: Callable[[Settings], Any],
    clock: Clock,
    sink: Sink,
) -> None:
    async with start(settings_for("morning-meeting")) as app:
        await send(app, webhook("channel_live", ACME_LIVE, client_id=ACME))
        clock.advance(60)
        await send(app, webhook("channel_running", ACME_LIVE, client_id=ACME))
        await send(app, webhook("channel_live", ACME_DRAFT, client_id=ACME))
        items = await listed(app)
        assert {i["held_until"] for i in items} == {WINDOW_END.isoformat()}, items
        await catch_up(app)  # still in the window
        assert messages(sink) == []

        clock.now = WINDOW_END + timedelta(seconds=1)
        await catch_up(app)
        await catch_up(app)

        [message] = messages(sink)
        assert message["title"].startswith("Catch-up: 3 held by mute:morning-meeting")
        assert message["message"].count("\n- ") == 3, message["message"]
        assert "resolved" not in message["message"]
        assert await states(app) == ["summarised"] * 3
        [summary] = await deliveries_of(app.services.sessions, rule=summary_rule(RULE))
        assert summary.state == "sent"
        held = await deliveries_of(app.services.sessions, rule=RULE)
        assert {d.summary_id for d in held} == {summary.id}

        # A message after the window is sent as usual, not held.
        await send(app, webhook("channel_running", ACME_DRAFT, client_id=ACME))
        await app.run_to_idle()
        assert len(messages(sink)) == 2
        assert (await states(app)).count("sent") == 1


async def test_a_held_message_does_not_take_the_throttle_window_of_the_first_one_after_it(
    settings_for: Callable[..., Settings],
    start: Callable[[Settings], Any],
    clock: Clock,
    sink: Sink,
) -> None:
    # Nothing was sent while muted, so nothing may throttle the first message after it.
    async with start(settings_for("morning-meeting", "    throttle: 6h\n")) as app:
        await send(app, webhook("channel_live", ACME_LIVE, client_id=ACME))
        assert await states(app) == ["held"]

        clock.now = WINDOW_END + timedelta(seconds=1)
        await send(app, webhook("channel_running", ACME_LIVE, client_id=ACME))
        await app.run_to_idle()

        assert sorted(await states(app)) == ["held", "sent"]
        assert len(messages(sink)) == 1


async def test_a_number_restricted_and_live_again_during_the_window_is_listed_as_resolved(
    settings_for: Callable[[str], Settings],
    start: Callable[[Settings], Any],
    clock: Clock,
    hub: Hub,
    sink: Sink,
) -> None:
    usual = hub.state.channels[ACME_LIVE]["waba_account"]["status"]
    async with start(settings_for("morning-meeting")) as app:
        hub.state.update_channel(ACME_LIVE, waba_account={"status": "account_violation"})
        await send(app, webhook("account_violation", ACME_LIVE, client_id=ACME))
        clock.advance(30 * 60)
        hub.state.update_channel(ACME_LIVE, waba_account={"status": usual})
        await send(app, webhook("channel_live", ACME_LIVE, client_id=ACME))
        assert messages(sink) == []

        clock.now = WINDOW_END + timedelta(seconds=1)
        await catch_up(app)

        [message] = messages(sink)
        body = message["message"]
        assert "1 no longer true" in body, body
        [violation] = [line for line in body.splitlines() if "(resolved: now live)" in line]
        assert "08:00" in violation  # the restriction, not the recovery
        assert body.count("(resolved") == 1


@pytest.fixture
def pg_settings(
    pipeline_settings: MakeSettings, rules_dir: Callable[[str], Path], pg_url: str
) -> Settings:
    return pipeline_settings(
        database_url=pg_url,
        rules_path=rules_dir(rules("morning-meeting")),
        webhook_shared_secret=[WEBHOOK_TOKEN],
    )


async def test_two_catch_up_runs_on_one_postgresql_database_send_one_summary(
    pg_settings: Settings, start: Callable[[Settings], Any], clock: Clock, sink: Sink
) -> None:
    async with start(pg_settings) as one, start(pg_settings) as two:
        await send(one, webhook("channel_live", ACME_LIVE, client_id=ACME))
        await send(one, webhook("channel_live", ACME_DRAFT, client_id=ACME))
        clock.now = WINDOW_END + timedelta(seconds=1)
        watcher = CatchUpWatcher()
        results = await asyncio.gather(
            *(watcher.run_once(app.services) for app in (one, two, one, two))
        )
        assert sum(len(r.summaries) for r in results) <= 1  # the apps' schedulers may win
        await one.run_to_idle()
        await two.run_to_idle()
        assert len(messages(sink)) == 1
        assert await states(one) == ["summarised", "summarised"]
        assert len(await deliveries_of(one.services.sessions, rule=summary_rule(RULE))) == 1


async def test_a_muted_group_by_rule_sends_one_summary_per_group_when_the_window_ends(
    settings_for: Callable[..., Settings],
    start: Callable[[Settings], Any],
    clock: Clock,
    sink: Sink,
) -> None:
    # Grouping applies to the summary as to any message: one per (rule, target, group key).
    grouped = "    group_by: [client.id]\n"
    async with start(settings_for("morning-meeting", grouped)) as app:
        await send(app, webhook("channel_live", ACME_LIVE, client_id=ACME))
        await send(app, webhook("channel_running", ACME_DRAFT, client_id=ACME))
        await send(app, webhook("channel_live", NORDWIND_CHANNEL, client_id=NORDWIND))
        assert await states(app) == ["held"] * 3

        clock.now = WINDOW_END + timedelta(seconds=1)
        await catch_up(app)
        await catch_up(app)

        titles = sorted(m["title"] for m in messages(sink))
        assert len(titles) == 2, titles
        assert titles[0].startswith("Catch-up: 1 held") and f"client.id {NORDWIND}" in titles[0]
        assert titles[1].startswith("Catch-up: 2 held") and f"client.id {ACME}" in titles[1]
        assert await states(app) == ["summarised"] * 3


async def test_two_catch_up_runs_at_once_in_one_process_send_one_summary(
    settings_for: Callable[[str], Settings],
    start: Callable[[Settings], Any],
    clock: Clock,
    sink: Sink,
) -> None:
    async with start(settings_for("morning-meeting")) as app:
        await send(app, webhook("channel_live", ACME_LIVE, client_id=ACME))
        clock.now = WINDOW_END + timedelta(seconds=1)
        watcher = CatchUpWatcher()
        await asyncio.gather(watcher.run_once(app.services), watcher.run_once(app.services))
        await app.run_to_idle()
        assert len(messages(sink)) == 1
        assert len(await deliveries_of(app.services.sessions, rule=summary_rule(RULE))) == 1
