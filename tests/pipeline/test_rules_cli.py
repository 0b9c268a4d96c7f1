"""`hub-receiver rules test` and `rules check`, run as the user runs them (a subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.pipeline.support import SHIPPED_RULES
from tests.support.cli import hub_receiver as run_cli
from tests.support.samples import SHIPPED_SAMPLES as SAMPLES

OPS = "json://127.0.0.1:9/ops"


def shipped_env() -> dict[str, str]:
    return {"RULES_PATH": str(SHIPPED_RULES), "OPS_NOTIFY_URL": OPS}


def test_rules_test_shows_which_rules_fire_for_a_sample_and_the_rendered_messages() -> None:
    # The client hears about a change: the number going live, not a bare channel_live.
    result = run_cli(
        "rules",
        "test",
        str(SAMPLES / "partner_webhook.channel_live.json"),
        "--status",
        "sandbox:live",
        env=shipped_env(),
    )

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(
        "event: channel_live   status: sandbox -> live\nrules fired: 2 of 17\n"
    ), out
    assert "  + team hears about every number lifecycle event  (" in out
    assert "  + client hears their number is live  (" in out
    assert "  - team hears about new clients  (" in out
    assert "no: event is channel_live, rule wants client_created" in out
    assert "[ops] title: Number is live: +4915112345678 (Jana Beispiel)" in out
    assert "-> client [client]: client email: ops@acme-bakery.example" in out
    assert "[client] title: +4915112345678 is live" in out
    assert "| good news: +4915112345678 (Acme Bakery) is now live on WhatsApp." in out
    assert OPS not in out  # target URLs may hold tokens: only names are shown


def test_rules_test_can_simulate_a_status_change() -> None:
    sample = str(SAMPLES / "partner_webhook.account_violation.json")
    result = run_cli(
        "rules", "test", sample, "--status", "live:restricted", "--json", env=shipped_env()
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["event"] == "account_violation"
    assert report["fired"] == [
        "team hears about violations and restrictions, at most hourly per number",
        "team hears about every other status change",
        "client hears their number was restricted",
    ]


def test_rules_test_without_a_status_says_what_the_body_reads_as_and_how_to_simulate_it() -> None:
    # Production saw channel_live as a first sighting (new -> live) and told the client; a
    # newcomer running `rules test` on the same file must learn why it shows no client rule.
    sample = str(SAMPLES / "partner_webhook.channel_live.json")
    plain = run_cli("rules", "test", sample, "--json", env=shipped_env())
    first_seen = run_cli("rules", "test", sample, "--status", "live", "--json", env=shipped_env())

    assert plain.returncode == 0, plain.stderr
    assert "reads as 'live'" in plain.stderr
    assert "`--status live` shows a first sighting" in plain.stderr
    assert "client hears their number is live" not in json.loads(plain.stdout)["fired"]
    assert "client hears their number is live" in json.loads(first_seen.stdout)["fired"]
    assert "note: no status change simulated" not in first_seen.stderr


def test_rules_test_shows_a_broken_template_and_the_fallback(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        f'targets:\n  ops: "{OPS}"\n'
        "rules:\n"
        "  - name: number went live\n"
        "    match: {event: channel_live}\n"
        "    notify: [ops]\n"
        '    body: "{{ nope.missing }}"\n'
    )
    sample = str(SAMPLES / "partner_webhook.channel_live.json")
    result = run_cli("rules", "test", sample, env={"RULES_PATH": str(tmp_path)})

    assert result.returncode == 0, result.stderr
    assert "  + number went live  (" in result.stdout
    assert "[ops] TEMPLATE ERROR (fallback used):" in result.stdout
    assert "nope" in result.stdout


GOOD_RULE = """\
targets:
  ops: "json://127.0.0.1:9/ops"

rules:
  - name: fine rule
    match: {event: channel_live}
    notify: [ops]

"""


@pytest.mark.parametrize(
    ("bad_rule", "line", "expected"),
    [
        (
            "  - name: number went live\n"
            "    match: {event: channel_live}\n"
            "    notify: [ops, opps]\n",
            11,
            "rule 'number went live': notify[1]: unknown target 'opps'",
        ),
        (
            "  - name: violations\n"
            "    match: {event: account_violation}\n"
            "    notify: [ops]\n"
            "    throtle: 1h\n",
            12,
            "rule 'violations': throtle: unknown key",
        ),
    ],
    ids=["unknown target", "unknown key"],
)
def test_rules_check_names_file_line_rule_and_key_of_a_problem_and_fails(
    tmp_path: Path, bad_rule: str, line: int, expected: str
) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(GOOD_RULE + bad_rule)

    result = run_cli("rules", "check", env={"RULES_PATH": str(tmp_path)})

    assert result.returncode != 0
    assert f"{path}:{line}: {expected}" in result.stderr, result.stderr
    assert "json://127.0.0.1:9/ops" not in result.stderr
    assert result.stdout == ""


def test_rules_check_accepts_the_shipped_rules() -> None:
    result = run_cli("rules", "check", env=shipped_env())

    assert result.returncode == 0, result.stderr
    assert "17 rules OK" in result.stdout
