"""`rules test`: explanations agree with the matcher and show rendered messages."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from receiver.messages import Renderer, build_context
from receiver.routing import (
    RoutingSubject,
    explain,
    explanation_as_dict,
    format_explanation,
    load_rules,
    match_rules,
)

from .support import load, sample_subject, subject

ROOT = Path(__file__).resolve().parents[2]


def context(s: RoutingSubject, rule: str) -> Mapping[str, Any]:
    return build_context(s, rule=rule, correlation_id="corr-1")


RULES = """
targets: {ops: "json://x", off: ""}
rules:
  - {name: wrong event, match: {event: account_violation}, notify: [ops]}
  - {name: live, match: {event: channel_live}, notify: [ops, off, client], stop: true}
  - {name: never reached, match: {}, notify: [ops]}
"""


def test_explain_reports_each_rule_with_reason_targets_and_messages() -> None:
    ruleset = load(RULES)
    result = explain(ruleset, sample_subject("channel_live"), Renderer(), build_context=context)
    wrong, live, never = result.verdicts
    assert (wrong.matched, wrong.reason) == (
        False,
        "event is channel_live, rule wants account_violation",
    )
    assert live.matched
    assert [(t.target, t.audience, t.state) for t in live.targets] == [
        ("ops", "ops", "configured"),
        ("off", "ops", "not configured (skipped)"),
        ("client", "client", "client email: ops@acme-bakery.example"),
    ]
    assert [m.audience for m in live.messages] == ["ops", "client"]
    assert all(m.error is None for m in live.messages)
    assert live.messages[0].title == "Number is live: +4915112345678 (Jana Beispiel)"
    assert never.reason == "not evaluated: rule 'live' matched and has stop: true"
    assert result.fired == ("live",)


@pytest.mark.parametrize(
    "name", ["channel_live", "channel_created", "account_violation", "client_created"]
)
def test_explain_agrees_with_the_matcher_on_the_default_rules(name: str) -> None:
    ruleset = load_rules(ROOT / "routing_rules", env={})
    for change in (None, ("draft", "live"), ("live", "pending_deletion")):
        s = sample_subject(name, status_change=change)
        result = explain(ruleset, s, Renderer(), build_context=context)
        assert list(result.fired) == [m.rule for m in match_rules(ruleset, s)]


def test_the_human_report_and_json_form() -> None:
    ruleset = load(RULES)
    result = explain(ruleset, sample_subject("channel_live"), Renderer(), build_context=context)
    text = format_explanation(result)
    assert "  + live  (rules.yaml:5)" in text
    assert "      no: event is channel_live, rule wants account_violation" in text
    assert "      -> off [ops]: not configured (skipped)" in text
    assert "      | Hello Jana Beispiel," in text
    data = explanation_as_dict(result)
    assert json.loads(json.dumps(data)) == data
    assert data["fired"] == ["live"]
    assert data["rules"][1]["messages"][1]["audience"] == "client"


def test_a_broken_template_shows_as_an_error_in_the_report() -> None:
    ruleset = load("rules: [{name: r, match: {}, notify: [client], body: '{{ nope }}'}]")
    result = explain(ruleset, subject(), Renderer(), build_context=context)
    assert "TEMPLATE ERROR (fallback used): UndefinedError: 'nope' is undefined" in (
        format_explanation(result)
    )
