"""Fallback targets end to end: a dead delivery and a failing target reach the fallback, once.

The real pipeline (in-process runner) on SQLite and PostgreSQL; one json:// sink whose
`/ops` path fails while `/backup` answers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from receiver.dev.sink import ReceivedRequest
from receiver.pipeline import fallbacks
from receiver.pipeline.deliver import deliver
from receiver.routing.errors import RulesError
from receiver.routing.loader import load_rules_texts
from receiver.settings import Settings
from tests.pipeline.support import (
    ACME,
    ACME_LIVE,
    WEBHOOK_TOKEN,
    all_deliveries,
    all_events,
    post_authenticated,
    settle,
    webhook,
)
from tests.support.app import RunningApp, running_app
from tests.support.fakes import Sink
from tests.support.waiting import eventually

RULES = """
targets:
  ops:
    url: ${OPS_URL}
    fallback: backup
    failing_after: 5
  backup: ${BACKUP_URL}
rules:
  - name: team hears about live numbers
    match: {event: channel_live}
    notify: ops
"""


@pytest.fixture
def fallback_settings(
    pipeline_settings: Callable[..., Settings],
    rules_dir: Callable[[str], Path],
    database_url: str,
    sink: Sink,
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return pipeline_settings(
            database_url=database_url,
            webhook_shared_secret=[WEBHOOK_TOKEN],
            rules_path=rules_dir(RULES),
            rules_env={"OPS_URL": sink.json_url("/ops"), "BACKUP_URL": sink.json_url("/backup")},
            **overrides,
        )

    return make


def at(sink: Sink, path: str) -> list[ReceivedRequest]:
    return [r for r in sink.state.received if r.path == path]


async def live_events(app: RunningApp, n: int) -> None:
    before = len(await all_events(app.services.sessions))
    for _ in range(n):
        await post_authenticated(app, webhook("channel_live", ACME_LIVE, client_id=ACME))
    await settle(app, events=before + n)


async def test_a_dead_delivery_reaches_the_fallback_once_naming_the_target_not_its_url(
    fallback_settings: Callable[..., Settings], sink: Sink
) -> None:
    sink.state.fail_path("/ops")
    async with running_app(fallback_settings(delivery_retry_schedule=[0.05, 0.05])) as app:
        await live_events(app, 1)

        async def told() -> bool:
            return len(at(sink, "/backup")) >= 1

        await eventually(told)
        await app.drain(5.0)
        rows = await all_deliveries(app.services.sessions)

    assert len(at(sink, "/ops")) == 3  # the first try and two retries, all refused
    [notice] = at(sink, "/backup")
    text = notice.body["title"] + notice.body["message"]
    assert 'target "ops"' in text
    assert "channel_live" in text
    assert "team hears about live numbers" in text
    assert "500" in text or "error" in text.lower()
    assert sink.json_url("/ops") not in text
    assert sink.base_url.removeprefix("http://") not in text
    states = sorted((d.rule_name, d.target_name, d.state) for d in rows)
    assert states == [
        ("(fallback for ops)", "backup", "sent"),
        ("team hears about live numbers", "ops", "dead"),
    ]


async def test_a_failing_target_is_announced_once_and_its_recovery_once(
    fallback_settings: Callable[..., Settings], sink: Sink
) -> None:
    sink.state.fail_path("/ops")
    # No retries: each event is one failed attempt (and one dead delivery).
    async with running_app(fallback_settings(delivery_retry_schedule=[])) as app:
        await live_events(app, 6)
        await app.drain(5.0)
        sink.state.heal_path("/ops")
        await live_events(app, 2)
        await app.drain(5.0)
        rows = await all_deliveries(app.services.sessions)

    titles = [r.body["title"] for r in at(sink, "/backup")]
    assert titles.count("Target failing: ops") == 1
    assert titles.count("Target recovered: ops") == 1
    assert sum(t.startswith("Undelivered:") for t in titles) == 6
    assert titles.index("Target failing: ops") < titles.index("Target recovered: ops")
    by_rule = [r.rule_name for r in rows]
    assert by_rule.count("(target failing: ops)") == 1
    assert by_rule.count("(target recovered: ops)") == 1
    assert len([r for r in at(sink, "/ops") if r.status == 200]) == 2


async def test_running_the_deliver_job_again_sends_no_second_fallback(
    fallback_settings: Callable[..., Settings], sink: Sink
) -> None:
    sink.state.fail_path("/ops")
    async with running_app(fallback_settings(delivery_retry_schedule=[])) as app:
        await live_events(app, 1)
        await app.drain(5.0)
        rows = await all_deliveries(app.services.sessions)
        [dead] = [r for r in rows if r.state == "dead"]
        # A job retried (arq re-running it, the sweep, a second worker): claims nothing.
        for row in rows:
            await deliver({"services": app.services}, row.id)
        # The record itself written twice (a stale claim recorded late) adds no notice.
        [event] = await all_events(app.services.sessions)
        async with app.services.sessions.begin() as session:
            again = await fallbacks.after_outcome(
                session,
                row=dead,
                event=event,
                state="dead",
                error="boom",
                rules=app.services.rules.current,
                renderer=app.services.rules.renderer,
                now=app.services.clock(),
            )
        await app.drain(5.0)
        after = await all_deliveries(app.services.sessions)

    assert again == []
    assert [r.rule_name for r in after].count("(fallback for ops)") == 1
    assert len(at(sink, "/backup")) == 1


# --- rules check ---------------------------------------------------------------------------


def problems_of(text: str) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(RulesError) as raised:
        load_rules_texts([("rules.yaml", text.encode())], env={})
    return [(p.line, p.key, p.message) for p in raised.value.problems]


def test_rules_check_refuses_a_fallback_cycle() -> None:
    found = problems_of(
        "targets:\n"
        "  a: {url: 'json://h/a', fallback: b}\n"
        "  b:\n"
        "    url: json://h/b\n"
        "    fallback: a\n"
    )
    keys = {(line, key) for line, key, _ in found}
    assert keys == {(2, "targets.a.fallback"), (5, "targets.b.fallback")}
    assert all("fallback cycle" in message for _, _, message in found)


def test_rules_check_refuses_a_target_that_is_its_own_fallback() -> None:
    [(line, key, message)] = problems_of("targets:\n  a: {url: 'json://h/a', fallback: a}\n")
    assert (line, key) == (2, "targets.a.fallback")
    assert "own fallback" in message


def test_rules_check_refuses_an_unknown_fallback_and_a_zero_threshold() -> None:
    found = problems_of(
        "targets:\n"
        "  a: {url: 'json://h/a', fallback: nowhere}\n"
        "  c: {url: 'json://h/c', fallback: client}\n"
    )
    by_key = {key: (line, message) for line, key, message in found}
    assert by_key["targets.a.fallback"][0] == 2
    assert "unknown fallback target 'nowhere'" in by_key["targets.a.fallback"][1]
    assert "client" in by_key["targets.c.fallback"][1]
    [(line, key, message)] = problems_of("targets:\n  b: {url: 'json://h/b', failing_after: 0}\n")
    assert (line, key) == (2, "targets.b.failing_after")
    assert "greater than or equal to 1" in message


def test_both_target_forms_load_and_keep_their_urls() -> None:
    rules = load_rules_texts(
        [
            (
                "rules.yaml",
                b"targets:\n  a: json://h/a\n  b: {url: json://h/b, fallback: a}\n  c:\n",
            )
        ],
        env={},
    )
    assert rules.target_url("a") == "json://h/a"
    assert rules.target_url("b") == "json://h/b"
    assert rules.target_url("c") is None
    assert rules.fallback_of("b") == "a"
    assert rules.targets["b"].failing_after == 5
