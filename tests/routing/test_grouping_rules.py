"""`group_by`, `group_wait`, `group_interval`: checked at load, and the key a match carries."""

from __future__ import annotations

import textwrap

import pytest

from receiver.routing import RulesError, load_rules_texts
from receiver.routing.matcher import match_rules
from tests.routing.support import load, sample_subject

FILE = "routing_rules/default.yaml"


def only_problem(text: str) -> str:
    body = textwrap.dedent(text).lstrip("\n").encode()
    with pytest.raises(RulesError) as caught:
        load_rules_texts([(FILE, body)], env={})
    [problem] = caught.value.problems
    return str(problem)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "group_by: [client.id, number]",
            f"{FILE}:6: rule 'r': group_by[1]: path 'number' must start with one of: "
            "event., channel., client.",
        ),
        (
            "group_by: [channel.]",
            f"{FILE}:6: rule 'r': group_by[0]: path 'channel.' has an empty or invalid segment ''",
        ),
        (
            "group_by: []",
            f"{FILE}:6: rule 'r': group_by: List should have at least 1 item after "
            "validation, not 0",
        ),
        (
            "group_by: [client.id]\ngroup_wait: soon",
            f"{FILE}:7: rule 'r': group_wait: 'soon' is not a duration; use a number and a "
            "unit: 90s, 10m, 1.5h, 1h30m, 2d",
        ),
        (
            "group_interval: 5m",
            f"{FILE}:6: rule 'r': group_interval: group_interval needs group_by "
            "(the paths that make a group)",
        ),
        (
            "group_wait: 30s",
            f"{FILE}:6: rule 'r': group_wait: group_wait needs group_by "
            "(the paths that make a group)",
        ),
    ],
)
def test_grouping_mistakes_name_file_line_rule_and_key(rule: str, message: str) -> None:
    keys = textwrap.indent(rule, "    ")
    text = f"""
targets: {{ops: "json://x"}}
rules:
  - name: r
    match: {{event: channel_live}}
    notify: ops
{keys}
"""
    assert only_problem(text) == message


def test_a_grouped_match_carries_its_key_and_timings() -> None:
    rules = load(
        """
        targets: {ops: "json://x"}
        rules:
          - name: r
            match: {event: channel_live}
            notify: ops
            group_by: [client.id, event.type, channel.nothing_here]
            group_interval: 10m
        """
    )
    [match] = match_rules(rules, sample_subject("channel_live"))
    assert match.group_key is not None
    assert match.group_key["event.type"] == "channel_live"
    assert match.group_key["channel.nothing_here"] is None
    assert (match.group_wait, match.group_interval) == (30, 600)


def test_an_ungrouped_match_has_no_key() -> None:
    rules = load(
        """
        targets: {ops: "json://x"}
        rules: [{name: r, match: {event: channel_live}, notify: ops}]
        """
    )
    [match] = match_rules(rules, sample_subject("channel_live"))
    assert match.group_key is None
