"""Matching: operators, status changes, wildcards, stop/continue, order."""

from __future__ import annotations

import pytest

from receiver.routing import RoutingSubject, match_rules
from receiver.routing.matcher import why_not

from .support import load, subject

CHANNEL = {
    "id": "kJ2mQ8CH",
    "client_id": "Vb7xR2CL",
    "account_mode": "live",
    "terminated_at": None,
    "external_id": 110022334455667,
    "tags": ["vip", "de"],
    "setup_info": {"phone_number": "+4915112345678", "phone_name": "Acme"},
    "waba_account": {"fb_account_status": "verified"},
}
CLIENT = {"id": "Vb7xR2CL", "name": "Jana", "contact_info": {"email": "a@b.example"}}


def fires(where: str, *, event_type: str = "channel_live") -> bool:
    ruleset = load(
        f"""
        rules:
          - name: r
            match:
              where: {where}
            notify: [client]
        """
    )
    found = match_rules(ruleset, subject(event_type, channel=CHANNEL, client=CLIENT))
    return [m.rule for m in found] == ["r"]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("{channel.account_mode: live}", True),
        ("{channel.account_mode: sandbox}", False),
        ("{channel.account_mode: {equals: live}}", True),
        ("{channel.external_id: '110022334455667'}", True),  # compared as text
        ("{channel.terminated_at: null}", True),
        ("{channel.nothing_here: null}", True),
        ("{channel.waba_account.fb_account_status: {one_of: [rejected, verified]}}", True),
        ("{channel.waba_account.fb_account_status: {one_of: [rejected, failed]}}", False),
        ("{channel.waba_account.fb_account_status: {not_one_of: [rejected]}}", True),
        ("{channel.waba_account.fb_account_status: {not_one_of: [verified]}}", False),
        ("{channel.missing: {not_one_of: [x]}}", True),
        ("{channel.setup_info.phone_number: {pattern: '^\\+49'}}", True),
        ("{channel.setup_info.phone_number: {pattern: '^\\+33'}}", False),
        ("{client.name: {pattern: '(?i)^jana$'}}", True),
        ("{channel.missing: {pattern: '.*'}}", False),
        ("{channel.setup_info.phone_number: {present: true}}", True),
        ("{channel.terminated_at: {present: true}}", False),
        ("{channel.terminated_at: {present: false}}", True),
        ("{channel.nope.deeper: {present: false}}", True),
        ("{channel.tags: vip}", True),  # a list passes when any item does
        ("{channel.tags.1: de}", True),
        ("{channel.tags.5: {present: false}}", True),
        ("{client.contact_info.email: {present: true, pattern: 'example$'}}", True),
        ("{client.contact_info.email: {present: true, pattern: '^x'}}", False),
        ("{event.type: channel_live}", True),
    ],
)
def test_each_operator_decides_whether_the_rule_fires(where: str, expected: bool) -> None:
    assert fires(where) is expected


def test_a_missing_channel_reads_as_absent_fields() -> None:
    ruleset = load(
        """
        rules:
          - {name: r, match: {where: {channel.id: {present: false}}}, notify: [client]}
        """
    )
    assert [m.rule for m in match_rules(ruleset, subject(channel=None))] == ["r"]


@pytest.mark.parametrize(
    ("status", "change", "expected"),
    [
        ("{to: live}", ("draft", "live"), True),
        ("{to: live}", ("live", "pending_deletion"), False),
        ("{from: draft}", ("draft", "live"), True),
        ("{from: [sandbox, draft], to: live}", ("sandbox", "live"), True),
        ("{from: live, to: live}", ("draft", "live"), False),
        ("{from: none}", (None, "draft"), True),
        ("{from: none}", ("draft", "live"), False),
        ("{from: '*', to: '*'}", (None, "live"), True),
        ("{}", ("live", "pending_deletion"), True),
        ("{}", None, False),
        ("{to: live}", None, False),
    ],
)
def test_status_from_and_to_match_the_status_change(
    status: str, change: tuple[str | None, str] | None, expected: bool
) -> None:
    ruleset = load(f"rules: [{{name: r, match: {{status: {status}}}, notify: [client]}}]")
    found = match_rules(ruleset, subject("channel_running", status_change=change))
    assert bool(found) is expected


@pytest.mark.parametrize(
    ("event", "event_type", "expected"),
    [
        ("channel_live", "channel_live", True),
        ("channel_live", "channel_ready", False),
        ("[account_violation, account_restriction]", "account_restriction", True),
        ("'*'", "something_new_from_360dialog", True),
        ("[channel_live, '*']", "client_created", True),
    ],
)
def test_event_names_lists_and_wildcards(event: str, event_type: str, expected: bool) -> None:
    ruleset = load(f"rules: [{{name: r, match: {{event: {event}}}, notify: [client]}}]")
    assert bool(match_rules(ruleset, subject(event_type))) is expected


def test_not_event_excludes_event_types_from_a_catch_all() -> None:
    ruleset = load(
        """
        rules:
          - name: everything but sign-ups
            match: {event: "*", not_event: [client_created]}
            notify: [client]
        """
    )
    assert match_rules(ruleset, subject("client_created")) == []
    assert len(match_rules(ruleset, subject("channel_live"))) == 1
    assert len(match_rules(ruleset, subject("brand_new_event"))) == 1


def test_an_empty_match_matches_every_event() -> None:
    ruleset = load("rules: [{name: r, match: {}, notify: [client]}]")
    assert len(match_rules(ruleset, subject("anything"))) == 1


MIXED = """
targets: {ops: "json://localhost", vip: "json://localhost/vip"}
rules:
  - {name: first, match: {event: "*"}, notify: [ops]}
  - {name: vip only, match: {where: {client.name: Jana}}, notify: [vip], stop: true}
  - {name: after stop, match: {event: channel_live}, notify: [ops]}
  - {name: disabled, enabled: false, match: {}, notify: [ops]}
"""


def test_every_matching_rule_fires_in_file_order_until_a_stop_rule() -> None:
    ruleset = load(MIXED)
    fired = match_rules(ruleset, subject(client={"name": "Jana"}))
    assert [m.rule for m in fired] == ["first", "vip only"]
    assert fired[1].stop


def test_rules_after_a_stop_rule_fire_when_the_stop_rule_does_not_match() -> None:
    ruleset = load(MIXED)
    fired = match_rules(ruleset, subject(client={"name": "Other"}))
    assert [m.rule for m in fired] == ["first", "after stop"]


def test_a_disabled_rule_never_fires_and_explains_why() -> None:
    ruleset = load(MIXED)
    rule = ruleset.rule("disabled")
    assert rule is not None
    assert "disabled" not in [m.rule for m in match_rules(ruleset, subject())]
    assert why_not(rule, subject()) == "rule is disabled"


def test_catch_all_and_specific_rules_keep_their_relative_order() -> None:
    ruleset = load(
        """
        rules:
          - {name: a, match: {event: channel_live}, notify: [client]}
          - {name: b, match: {event: "*"}, notify: [client]}
          - {name: c, match: {event: [channel_live, channel_ready]}, notify: [client]}
          - {name: d, match: {event: channel_ready}, notify: [client]}
        """
    )
    assert [m.rule for m in match_rules(ruleset, subject("channel_live"))] == ["a", "b", "c"]
    assert [m.rule for m in match_rules(ruleset, subject("channel_ready"))] == ["b", "c", "d"]
    assert [m.rule for m in match_rules(ruleset, subject("other"))] == ["b"]


@pytest.mark.parametrize(
    ("rule", "subject_", "reason"),
    [
        (
            "{name: r, match: {event: account_violation}, notify: [client]}",
            subject("channel_live"),
            "event is channel_live, rule wants account_violation",
        ),
        (
            "{name: r, match: {status: {to: live}}, notify: [client]}",
            subject(),
            "no status change, rule wants one",
        ),
        (
            "{name: r, match: {status: {to: live}}, notify: [client]}",
            subject(status_change=("live", "pending_deletion")),
            "status changed to pending_deletion, rule wants to live",
        ),
        (
            "{name: r, match: {status: {from: none}}, notify: [client]}",
            subject(status_change=("draft", "live")),
            "status changed from draft, rule wants from none",
        ),
        (
            "{name: r, match: {where: {channel.account_mode: live}}, notify: [client]}",
            subject(channel={"account_mode": "sandbox"}),
            "channel.account_mode is 'sandbox', rule wants 'live'",
        ),
        (
            "{name: r, match: {where: {channel.terminated_at: {present: true}}}, notify: [client]}",
            subject(channel={}),
            "channel.terminated_at is missing, rule wants it present",
        ),
    ],
)
def test_why_not_gives_the_first_reason(rule: str, subject_: RoutingSubject, reason: str) -> None:
    ruleset = load(f"rules: [{rule}]")
    assert why_not(ruleset.rules[0], subject_) == reason


def test_a_match_carries_targets_template_and_inline_overrides() -> None:
    ruleset = load(
        """
        targets: {ops: "json://localhost"}
        rules:
          - name: live
            match: {event: channel_live}
            notify: [ops, client]
            title: "Live: {{ facts.phone_number }}"
          - {name: moved, match: {status: {}}, notify: [ops]}
          - {name: named, match: {}, notify: [ops], template: channel_ready}
        """
    )
    live, moved, named = match_rules(ruleset, subject(status_change=("draft", "live")))
    assert live.targets == ("ops", "client")
    assert live.template == "channel_live"
    assert live.title == "Live: {{ facts.phone_number }}"
    assert live.body is None
    assert moved.template == "status_change"
    assert named.template == "channel_ready"
    assert live.throttle_seconds is None and live.throttle_key is None
