"""Every load error names the file, the line, the rule and the key."""

from __future__ import annotations

import textwrap

import pytest

from receiver.routing import RulesError, load_rules_texts
from receiver.routing.errors import RuleProblem


def problems(text: str, *, env: dict[str, str] | None = None) -> list[RuleProblem]:
    body = textwrap.dedent(text).lstrip("\n").encode()
    with pytest.raises(RulesError) as caught:
        load_rules_texts([("routing_rules/default.yaml", body)], env=env or {})
    return list(caught.value.problems)


def only(text: str, *, env: dict[str, str] | None = None) -> str:
    found = problems(text, env=env)
    assert len(found) == 1, found
    return str(found[0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            """
            targets: {ops: "json://x"}
            rules:
              - name: number went live
                match: {event: channel_live}
                notify: [ops, opps]
            """,
            "routing_rules/default.yaml:5: rule 'number went live': notify[1]: "
            "unknown target 'opps' (defined: client, ops)",
        ),
        (
            """
            rules:
              - name: r
                match: {event: channel_live}
                notify: [client]
                continue: false
            """,
            "routing_rules/default.yaml:5: rule 'r': continue: unknown key (allowed: name, "
            "description, enabled, match, notify, template, title, body, stop, throttle, "
            "throttle_key, group_by, group_wait, group_interval, mute_during, active_during)",
        ),
        (
            """
            rules:
              - name: r
                match:
                  evnt: channel_live
                notify: [client]
            """,
            "routing_rules/default.yaml:4: rule 'r': match.evnt: unknown key (allowed: "
            "event, not_event, status, where)",
        ),
        (
            """
            rules:
              - name: r
                match:
                  where:
                    channel.setup_info.phone_number: {pattern: "[+49"}
                notify: [client]
            """,
            "routing_rules/default.yaml:5: rule 'r': match.where[channel.setup_info.phone_number]"
            ".pattern: invalid regular expression: unterminated character set at position 0",
        ),
        (
            """
            rules:
              - name: r
                match:
                  where:
                    channel.x: {one_off: [a]}
                notify: [client]
            """,
            "routing_rules/default.yaml:5: rule 'r': match.where[channel.x].one_off: unknown "
            "key (allowed: equals, one_of, not_one_of, pattern, present, lt, le, gt, ge)",
        ),
        (
            """
            rules:
              - name: r
                match:
                  where:
                    setup_info.phone_number: "+49"
                notify: [client]
            """,
            "routing_rules/default.yaml:5: rule 'r': match.where[setup_info.phone_number]: "
            "path 'setup_info.phone_number' must start with one of: event., channel., client.",
        ),
        (
            """
            rules:
              - name: r
                match: {}
                notify: [client]
                throttle: 1 hour
            """,
            "routing_rules/default.yaml:5: rule 'r': throttle: '1 hour' is not a duration; "
            "use a number and a unit: 90s, 10m, 1.5h, 1h30m, 2d",
        ),
        (
            """
            rules:
              - name: r
                match: {}
                notify: [client]
                throttle: 3600
            """,
            "routing_rules/default.yaml:5: rule 'r': throttle: use a number and a unit: "
            "90s, 10m, 1.5h, 1h30m, 2d",
        ),
        (
            """
            rules:
              - name: r
                match: {}
                notify: [client]
                throttle: 1h
                throttle_key: "{client.id"
            """,
            "routing_rules/default.yaml:6: rule 'r': throttle_key: unbalanced braces in "
            "'{client.id'",
        ),
        (
            """
            targets:
              ops: "slack://${SLACK_TOKEN}/#ops"
            """,
            "routing_rules/default.yaml:2: targets.ops: environment variable SLACK_TOKEN is "
            "not set (no default given)",
        ),
        (
            """
            rules:
              - name: r
                match: {}
            """,
            "routing_rules/default.yaml:2: rule 'r': notify: required key is missing",
        ),
        (
            """
            rules:
              - name: r
                match: {event: [channel_live}
                notify: [client]
            """,
            "routing_rules/default.yaml:3: YAML syntax error: while parsing a flow sequence "
            "expected ',' or ']', but got '}'",
        ),
        (
            """
            targets:
              ops: json://a
              ops: json://b
            """,
            "routing_rules/default.yaml:3: targets.ops: duplicate key",
        ),
        (
            """
            targets:
              client: mailto://x
            """,
            "routing_rules/default.yaml:2: targets.client: `client` is built in; pick another name",
        ),
        (
            """
            rules:
              - {name: same, match: {}, notify: [client]}
              - {name: same, match: {}, notify: [client]}
            """,
            "routing_rules/default.yaml:3: rule 'same': name: duplicate rule name (first at "
            "routing_rules/default.yaml:2)",
        ),
        (
            """
            - just a list
            """,
            "routing_rules/default.yaml:1: expected a mapping with `targets:` and `rules:` at "
            "the top level",
        ),
        (
            """
            rules:
              - {match: {}, notify: [client]}
            """,
            "routing_rules/default.yaml:2: rule '#1': name: required key is missing",
        ),
    ],
)
def test_load_errors_name_file_line_rule_and_key(text: str, message: str) -> None:
    assert only(text) == message


def test_all_problems_are_reported_together() -> None:
    found = problems(
        """
        targets: {ops: "${A}"}
        rules:
          - {name: a, match: {}, notify: [nope]}
          - {name: b, match: {where: {x.y: 1}}, notify: [client]}
        """
    )
    assert [p.line for p in found] == [1, 3, 4]
    assert [p.rule for p in found] == [None, "a", "b"]


def test_rules_error_prints_every_problem() -> None:
    text = "rules: [{name: a, match: {}, notify: [nope]}]\n"
    with pytest.raises(RulesError) as caught:
        load_rules_texts([("r.yaml", text.encode())], env={})
    assert str(caught.value).splitlines() == [
        "1 problem in routing rules",
        "  r.yaml:1: rule 'a': notify[0]: unknown target 'nope' (defined: client)",
    ]


def test_target_urls_never_appear_in_errors() -> None:
    secret = "slack://T0KEN-A/T0KEN-B/#ops"

    def validate(url: str) -> str | None:
        return f"cannot parse {url}"

    body = f'targets: {{ops: "{secret}"}}\n'.encode()
    with pytest.raises(RulesError) as caught:
        load_rules_texts([("r.yaml", body)], env={}, validate_target=validate)
    assert "T0KEN" not in str(caught.value)
    assert str(caught.value.problems[0]) == (
        "r.yaml:1: targets.ops: invalid target URL: cannot parse <url>"
    )


def test_an_unknown_template_is_an_error_when_templates_are_checked() -> None:
    body = b"rules: [{name: a, match: {}, notify: [client], template: nope}]\n"
    with pytest.raises(RulesError) as caught:
        load_rules_texts([("r.yaml", body)], env={}, template_exists=lambda name: False)
    assert "rule 'a': template: no template named 'nope'" in str(caught.value)


def test_non_utf8_files_are_refused() -> None:
    with pytest.raises(RulesError, match="not UTF-8"):
        load_rules_texts([("r.yaml", b"rules: [\xff]")], env={})
