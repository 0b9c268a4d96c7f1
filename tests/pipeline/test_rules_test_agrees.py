"""`rules test` sees exactly what production sees: the same fields, the same messages.

Each body goes through the real pipeline (posted, stored, processed by the real job, on
SQLite and PostgreSQL) and through the real `hub-receiver rules test --json`, under the
shipped rules plus one rule that prints `event.fields` whole. The two must agree on which
rules fire, on the fields, and on every rendered title and body. Production runs without
the Partner API here, which is what `rules test` can know (it never calls it).
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from receiver.pipeline.route import CAP_RULE
from receiver.routing.ruleset import audience_for_target
from receiver.settings import Settings
from tests.pipeline.support import (
    SHIPPED_RULES,
    WEBHOOK_TOKEN,
    all_deliveries,
    history,
    post_authenticated,
    settle,
)
from tests.support.app import running_app
from tests.support.cli import hub_receiver_async
from tests.support.fakes import Sink
from tests.support.samples import SHIPPED_SAMPLES

FIELDS_RULE = "every event, its fields whole"
FIELDS_RULES_FILE = f"""\
rules:
  - name: {FIELDS_RULE}
    match: {{event: "*"}}
    notify: [ops]
    title: fields
    body: "{{{{ event.fields | tojson }}}}"
"""

SAMPLES = {path.name: path.read_text() for path in sorted(SHIPPED_SAMPLES.glob("*.json"))}


def _variant(name: str, change: Callable[[dict[str, Any]], None]) -> str:
    body: dict[str, Any] = copy.deepcopy(json.loads(SAMPLES[f"partner_webhook.{name}.json"]))
    change(body)
    return json.dumps(body, indent=2)


def _template_at_top_level(body: dict[str, Any]) -> None:
    # Issue 11: `rules test` showed `event.fields.template_name`, production has none.
    body.update(template_name="order_update", template_status="APPROVED", language="de")


def _violation_at_top_level(body: dict[str, Any]) -> None:
    data = body.pop("data")
    body.update(
        channel_id=data["id"],
        phone_number="+4915112345678",
        violation_type="SPAM",
        fb_account_status="restricted",
    )


def _client_id_only_under_waba_account(body: dict[str, Any]) -> None:
    del body["data"]["client_id"]
    del body["data"]["client"]


VARIANTS = {
    "waba_template_status_changed, template fields at the top level": _variant(
        "waba_template_status_changed", _template_at_top_level
    ),
    "account_violation, every field at the top level": _variant(
        "account_violation", _violation_at_top_level
    ),
    "channel_live, client id only under data.waba_account": _variant(
        "channel_live", _client_id_only_under_waba_account
    ),
}
BODIES = {**SAMPLES, **VARIANTS}


def _without_ref(body: str | None) -> str:
    # The stored event's correlation id; a file given to `rules test` has none.
    return "\n".join(line for line in (body or "").splitlines() if not line.startswith("Ref: "))


@pytest.fixture
def rules_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(SHIPPED_RULES, folder)
    (folder / "zz-fields.yaml").write_text(FIELDS_RULES_FILE)
    return folder


@pytest.mark.parametrize("name", list(BODIES))
async def test_rules_test_and_the_pipeline_agree_field_for_field_and_message_for_message(
    name: str,
    database_url: str,
    make_settings: Callable[..., Settings],
    sink: Sink,
    rules_folder: Path,
) -> None:
    text = BODIES[name]
    ops_url = sink.json_url("/ops")
    settings = make_settings(
        database_url=database_url,
        rules_path=rules_folder,
        rules_env={"OPS_NOTIFY_URL": ops_url},
        webhook_shared_secret=WEBHOOK_TOKEN,
    )
    async with running_app(settings) as app:
        await post_authenticated(app, json.loads(text))
        await settle(app, events=1)
        rows = [d for d in await all_deliveries(app.services.sessions) if d.rule_name != CAP_RULE]
        channel_id = json.loads(text).get("data", {}).get("id") or json.loads(text).get(
            "channel_id"
        )
        changes = await history(app.services.sessions, channel_id) if channel_id else []

    path = rules_folder.parent / "event.json"
    path.write_text(text)
    args = ["rules", "test", str(path), "--json"]
    if changes:
        before, after = changes[-1]
        args += ["--status", f"{before or ''}:{after}"]
    env = {"RULES_PATH": str(rules_folder), "OPS_NOTIFY_URL": ops_url}
    result = await hub_receiver_async(*args, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    assert sorted(report["fired"]) == sorted({row.rule_name for row in rows})
    messages = {
        (rule["rule"], message["audience"]): message
        for rule in report["rules"]
        for message in rule["messages"]
    }
    for row in rows:
        message = messages[(row.rule_name, audience_for_target(row.target_name))]
        assert (message["title"], _without_ref(message["body"])) == (
            row.title,
            _without_ref(row.body),
        ), f"{row.rule_name} -> {row.target_name}"
    fields_row = next(row for row in rows if row.rule_name == FIELDS_RULE)
    assert report["fields"] == json.loads(fields_row.body or "")
