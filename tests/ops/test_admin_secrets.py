"""No secret reaches an admin or metrics answer, nor the admin log lines."""

from __future__ import annotations

import logging

import pytest

from tests.ops.support import (
    AUTH,
    SECRETS,
    RulesFolder,
    Sink,
    channel_live,
    post_webhook,
    settle,
)
from tests.support.app import RunningApp


async def test_no_configured_secret_appears_in_any_admin_or_metrics_answer(
    app: RunningApp, sink: Sink, rules: RulesFolder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sink.state.fail_next(1, status=400)  # one dead delivery, with its error on record
    dead_event = await post_webhook(app, channel_live(1))
    await sink.state.wait_for(1)
    await settle(app)
    sent_event = await post_webhook(app, channel_live(2))
    await sink.state.wait_for(2)
    await settle(app)
    deliveries = (await app.client.get("/admin/deliveries", headers=AUTH)).json()["items"]
    dead = next(d for d in deliveries if d["event_id"] == dead_event)
    rules.write(also=True, broken=True)  # a refused reload answers with its problems

    answers = []
    for method, path in [
        ("GET", "/admin/events"),
        ("GET", f"/admin/events/{dead_event}"),
        ("GET", f"/admin/events/{sent_event}"),
        ("GET", "/admin/channels"),
        ("GET", "/admin/channels/kJ2mQ8CH"),
        ("GET", "/admin/deliveries"),
        ("GET", f"/admin/deliveries/{dead['id']}"),
        ("GET", "/admin/rules"),
        ("POST", "/admin/rules/reload"),
        ("POST", f"/admin/events/{sent_event}/replay?dry_run=true"),
        ("POST", f"/admin/deliveries/{dead['id']}/retry"),
        ("GET", "/metrics"),
        ("GET", "/readyz"),
    ]:
        response = await app.client.request(method, path, headers=AUTH)
        assert response.status_code < 500, (path, response.text)
        answers.append((path, response.text))
    await settle(app)
    rules.write(also=True)
    response = await app.client.post("/admin/rules/reload", headers=AUTH)
    assert response.status_code == 200
    answers.append(("reload", response.text))

    rule_view = (await app.client.get("/admin/rules", headers=AUTH)).json()
    assert {t["name"]: t["url"].split("?")[0] for t in rule_view["targets"]} == {
        # The path is masked too: for a json:// target it is often the secret.
        "ops": f"json://hook:****@127.0.0.1:{sink.port}/****",
        "duty": f"json://hook:****@127.0.0.1:{sink.port}/****",
    }
    for path, text in answers:
        for secret in SECRETS:
            assert secret not in text, (path, secret)
    admin_lines = [r for r in caplog.records if r.name == "receiver.admin"]
    assert len(admin_lines) >= 12
    for record in caplog.records:
        logged = repr(record.__dict__)
        for secret in SECRETS:
            assert secret not in logged, (record.name, secret)
