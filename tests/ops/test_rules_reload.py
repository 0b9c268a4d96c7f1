"""Reloading the routing rules: by the admin API and by SIGHUP; bad rules keep the old ones."""

from __future__ import annotations

import logging
import os
import signal

import pytest

from tests.ops.support import (
    ALSO_RULE,
    AUTH,
    LIVE_RULE,
    RulesFolder,
    Sink,
    admin_get,
    admin_post,
    channel_live,
    post_webhook,
    settle,
)
from tests.support.app import RunningApp
from tests.support.waiting import eventually


async def test_rules_show_names_files_lines_and_masked_targets(
    sqlite_app: RunningApp, sink: Sink
) -> None:
    view = await admin_get(sqlite_app, "/admin/rules")

    [rule] = view["rules"]
    assert rule["name"] == LIVE_RULE
    assert rule["file"].endswith("rules.yaml")
    assert rule["line"] == 5
    assert rule["events"] == ["channel_live"]
    assert rule["targets"] == ["ops"]
    assert [t["name"] for t in view["targets"]] == ["ops", "duty"]
    assert view["targets"][0]["url"].startswith(f"json://hook:****@127.0.0.1:{sink.port}/****")
    assert len(view["digest"]) == 64
    assert view["loaded_at"]


async def test_a_reload_puts_new_rules_to_work(
    app: RunningApp, sink: Sink, rules: RulesFolder
) -> None:
    before = await admin_get(app, "/admin/rules")
    rules.write(also=True)

    answer = await admin_post(app, "/admin/rules/reload")

    assert answer["reloaded"] is True
    assert answer["digest"] != before["digest"]
    assert [r["name"] for r in answer["rules"]] == [LIVE_RULE, ALSO_RULE]
    await post_webhook(app, channel_live())
    await sink.state.wait_for(2)
    assert sorted(sink.paths()) == ["/duty", "/ops"]


async def test_a_bad_reload_answers_422_with_the_problems_and_keeps_the_old_rules(
    app: RunningApp, sink: Sink, rules: RulesFolder
) -> None:
    before = await admin_get(app, "/admin/rules")
    rules.write(also=True, broken=True)

    response = await app.client.post("/admin/rules/reload", headers=AUTH)

    assert response.status_code == 422
    answer = response.json()
    assert answer["error"] == "invalid_rules"
    assert "kept" in answer["detail"]
    assert answer["problems"]
    assert all(p["file"].endswith("rules.yaml") for p in answer["problems"])
    assert any(p["rule"] == "broken" for p in answer["problems"])
    assert (await admin_get(app, "/admin/rules"))["digest"] == before["digest"]
    await post_webhook(app, channel_live())
    await sink.state.wait_for(1)
    await settle(app)
    assert sink.paths() == ["/ops"]


async def test_sighup_reloads_the_rules_and_a_bad_file_keeps_them(
    sqlite_app: RunningApp, rules: RulesFolder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="receiver.ops.rules")
    # The lifespan installed a handler; without one SIGHUP would end the test run.
    assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, signal.SIG_IGN, None)
    before: str = (await admin_get(sqlite_app, "/admin/rules"))["digest"]

    rules.write(also=True)
    os.kill(os.getpid(), signal.SIGHUP)

    async def reloaded() -> bool:
        digest: str = (await admin_get(sqlite_app, "/admin/rules"))["digest"]
        return digest != before

    await eventually(reloaded)
    good = await admin_get(sqlite_app, "/admin/rules")
    assert [r["name"] for r in good["rules"]] == [LIVE_RULE, ALSO_RULE]

    rules.write(broken=True)
    os.kill(os.getpid(), signal.SIGHUP)

    async def refused() -> bool:
        return any("rules reload refused" in r.getMessage() for r in caplog.records)

    await eventually(refused)
    assert (await admin_get(sqlite_app, "/admin/rules"))["digest"] == good["digest"]
