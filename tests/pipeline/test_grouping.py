"""Grouping end to end: the real app and pipeline, a json:// sink, SQLite and PostgreSQL.

The flusher is driven by hand with a controlled `services.clock`, never by sleeping: a
group's window ends when the test moves the clock past it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from receiver.settings import Settings
from receiver.watch.groups import GroupFlusher
from tests.pipeline.support import (
    ACME,
    ACME_DRAFT,
    ACME_LIVE,
    WEBHOOK_TOKEN,
    deliveries_of,
    post_authenticated,
    settle,
    webhook,
)
from tests.support.app import RunningApp, running_app
from tests.support.fakes import Sink

MakeSettings = Callable[..., Settings]
RULE = "team hears about each client's numbers, grouped"
RULES = f"""
targets:
  ops: ${{OPS_NOTIFY_URL}}
rules:
  - name: {RULE}
    match: {{event: [channel_live, channel_running, channel_ready]}}
    notify: ops
    group_by: [client.id]
    group_wait: 30s
    group_interval: 5m
"""
START = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


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
def grouping_settings(
    pipeline_settings: MakeSettings, rules_dir: Callable[[str], Path], database_url: str
) -> Settings:
    return pipeline_settings(
        database_url=database_url,
        rules_path=rules_dir(RULES),
        webhook_shared_secret=[WEBHOOK_TOKEN],
    )


@pytest.fixture
def start(clock: Clock) -> Callable[[Settings], Any]:
    """Start the app on `settings` with the test's clock."""

    @contextlib.asynccontextmanager
    async def run(settings: Settings) -> AsyncIterator[RunningApp]:
        async with running_app(settings) as app:
            app.services.clock = clock
            yield app

    return run


def burst() -> list[dict[str, Any]]:
    """Three events about Acme's two numbers."""
    return [
        webhook("channel_live", ACME_LIVE, client_id=ACME),
        webhook("channel_live", ACME_DRAFT, client_id=ACME),
        webhook("channel_running", ACME_LIVE, client_id=ACME),
    ]


async def post_all(app: RunningApp, bodies: list[dict[str, Any]], *, total: int) -> None:
    for body in bodies:
        await post_authenticated(app, body)
    await settle(app, events=total)


async def flush(app: RunningApp) -> None:
    """Run the flusher now (the app's scheduler may run it too: the claim decides).

    A run of the app's own that claimed a group first is waited for, or its message could
    still be on its way when the test looks (seen once under load).
    """
    await GroupFlusher().run_once(app.services)
    await app.watchers_settled()
    await app.run_to_idle()


def messages(sink: Sink) -> list[dict[str, Any]]:
    return [r.body for r in sink.state.received if r.path == "/ops"]


async def states(app: RunningApp) -> list[str]:
    return sorted(d.state for d in await deliveries_of(app.services.sessions, rule=RULE))


async def test_a_burst_for_one_client_becomes_one_message_listing_it(
    grouping_settings: Settings, start: Callable[[Settings], Any], clock: Clock, sink: Sink
) -> None:
    async with start(grouping_settings) as app:
        await post_all(app, burst(), total=3)
        assert await states(app) == ["grouped"] * 3
        await flush(app)  # the window is still open
        assert messages(sink) == []

        clock.advance(31)
        await flush(app)
        await flush(app)

        [message] = messages(sink)
        assert message["title"].startswith("3× Number is "), message["title"]
        assert message["message"].count("\n- ") == 3, message["message"]
        assert "client.id = " + ACME in message["message"]
        assert await states(app) == ["sent", "sent_in_group", "sent_in_group"]


async def test_a_restart_in_the_window_loses_no_member_and_sends_once(
    grouping_settings: Settings, start: Callable[[Settings], Any], clock: Clock, sink: Sink
) -> None:
    async with start(grouping_settings) as app:
        await post_all(app, burst()[:2], total=2)
        clock.advance(10)
    # A new process on the same database: the group and its members are in the database.
    async with start(grouping_settings) as app:
        await post_all(app, burst()[2:], total=3)
        assert messages(sink) == []
        clock.advance(25)  # 35 s after the first member: the window ended
        await flush(app)
        await flush(app)
        assert len(messages(sink)) == 1
    async with start(grouping_settings) as app:
        clock.advance(600)
        await flush(app)
        assert await states(app) == ["sent", "sent_in_group", "sent_in_group"]
    [message] = messages(sink)
    assert message["message"].count("\n- ") == 3


async def test_members_after_the_message_come_in_one_follow_up_after_group_interval(
    grouping_settings: Settings, start: Callable[[Settings], Any], clock: Clock, sink: Sink
) -> None:
    async with start(grouping_settings) as app:
        await post_all(app, burst()[:1], total=1)
        clock.advance(31)
        await flush(app)
        assert messages(sink)[0]["title"].startswith("Number is live: +4915112345678")

        clock.advance(10)
        await post_all(app, burst()[1:], total=3)
        clock.advance(60)  # past group_wait, but within group_interval of the message
        await flush(app)
        assert len(messages(sink)) == 1
        clock.advance(300 - 70 + 1)  # last message + group_interval
        await flush(app)

        _, follow_up = messages(sink)
        assert follow_up["title"].startswith("2× ")
        assert "since the last message" in follow_up["message"]
        assert follow_up["message"].count("\n- ") == 2


@pytest.fixture
def pg_grouping_settings(
    pipeline_settings: MakeSettings, rules_dir: Callable[[str], Path], pg_url: str
) -> Settings:
    return pipeline_settings(
        database_url=pg_url, rules_path=rules_dir(RULES), webhook_shared_secret=[WEBHOOK_TOKEN]
    )


async def test_two_flushers_on_one_postgresql_database_send_the_group_once(
    pg_grouping_settings: Settings, start: Callable[[Settings], Any], clock: Clock, sink: Sink
) -> None:
    settings = pg_grouping_settings
    async with start(settings) as one, start(settings) as two:
        await post_all(one, burst(), total=3)
        clock.advance(31)
        flusher = GroupFlusher()
        results = await asyncio.gather(
            *(flusher.run_once(app.services) for app in (one, two, one, two))
        )
        assert sum(len(r.sent) for r in results) <= 1  # the apps' own schedulers may win
        await one.run_to_idle()
        await two.run_to_idle()
        assert len(messages(sink)) == 1
        assert await states(one) == ["sent", "sent_in_group", "sent_in_group"]
