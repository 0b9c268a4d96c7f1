"""Numeric comparisons in `where`: lt, le, gt, ge."""

from __future__ import annotations

import pytest

from receiver.routing import RulesError, match_rules
from receiver.routing.matcher import why_not

from .support import load, subject

CLIENT = {"id": "Vb7xR2CL", "name": "Acme"}


def fires(where: str, balance: object) -> bool:
    ruleset = load(f"rules: [{{name: r, match: {{where: {where}}}, notify: [client]}}]")
    event = {} if balance is ... else {"balance": balance}
    found = match_rules(ruleset, subject("balance_low", event=event, client=CLIENT))
    return [m.rule for m in found] == ["r"]


@pytest.mark.parametrize(
    ("where", "balance", "expected"),
    [
        ("{event.balance: {lt: 50}}", 49.99, True),
        ("{event.balance: {lt: 50}}", 50, False),
        ("{event.balance: {le: 50}}", 50, True),
        ("{event.balance: {le: 50}}", 50.01, False),
        ("{event.balance: {gt: 0}}", 0.5, True),
        ("{event.balance: {gt: 0}}", 0, False),
        ("{event.balance: {ge: 0}}", 0, True),
        ("{event.balance: {ge: 0}}", -3, False),
        ("{event.balance: {lt: 0}}", -3, True),  # an overdrawn account
        ("{event.balance: {lt: 50}}", "12.5", True),  # numeric text counts
        ("{event.balance: {lt: 50}}", " 12.5 ", True),
        ("{event.balance: {lt: '50'}}", 12, True),  # a bound from ${VAR} arrives as text
        ("{event.balance: {lt: 50}}", "n/a", False),  # non-numeric never looks low
        ("{event.balance: {lt: 50}}", None, False),
        ("{event.balance: {lt: 50}}", ..., False),  # missing
        ("{event.balance: {lt: 50}}", True, False),  # a boolean is not a number
        ("{event.balance: {lt: 50}}", "nan", False),
        ("{event.balance: {lt: 50}}", "inf", False),
        ("{event.balance: {lt: 50}}", [80, 20], True),  # a list passes when any item does
        ("{event.balance: {gt: 10, lt: 50}}", 20, True),  # several: all must hold
        ("{event.balance: {gt: 10, lt: 50}}", 60, False),
        ("{event.balance: {gt: 10, lt: 50}}", 5, False),
        ("{event.balance: {lt: 50, present: true}}", 5, True),
        ("{event.balance: {lt: 50, not_one_of: [5]}}", 5, False),
        ("{event.balance: {ge: 1e3}}", 1000, True),
    ],
)
def test_a_comparison_decides_whether_the_rule_fires(
    where: str, balance: object, expected: bool
) -> None:
    assert fires(where, balance) is expected


def test_a_stricter_threshold_for_one_client_is_one_rule() -> None:
    ruleset = load(
        """
        rules:
          - name: Acme wants warning at 50
            match:
              event: balance_low
              where:
                client.id: Vb7xR2CL
                event.balance: {lt: 50}
            notify: [client]
        """
    )
    acme = subject("balance_low", event={"balance": 42.0}, client=CLIENT)
    other = subject("balance_low", event={"balance": 42.0}, client={"id": "Other1CL"})
    assert [m.rule for m in match_rules(ruleset, acme)] == ["Acme wants warning at 50"]
    assert match_rules(ruleset, other) == []


@pytest.mark.parametrize(
    ("balance", "reason"),
    [
        (72, "event.balance is 72, rule wants it < 50"),
        ("n/a", "event.balance is 'n/a', rule wants a number < 50"),
        (..., "event.balance is missing, rule wants a number < 50"),
    ],
)
def test_rules_test_explains_a_failed_comparison(balance: object, reason: str) -> None:
    ruleset = load(
        "rules: [{name: r, match: {where: {event.balance: {lt: 50}}}, notify: [client]}]"
    )
    event = {} if balance is ... else {"balance": balance}
    assert why_not(ruleset.rules[0], subject("balance_low", event=event)) == reason


@pytest.mark.parametrize(
    ("bound", "message"),
    [
        (
            "abc",
            "rules.yaml:1: rule 'r': match.where[event.balance].lt: expected a number, got 'abc'",
        ),
        (
            "true",
            "rules.yaml:1: rule 'r': match.where[event.balance].lt: expected a number, "
            "not true/false",
        ),
        (
            "[1, 2]",
            "rules.yaml:1: rule 'r': match.where[event.balance].lt: expected a number, got list",
        ),
        (
            ".nan",
            "rules.yaml:1: rule 'r': match.where[event.balance].lt: expected a finite "
            "number, got nan",
        ),
    ],
)
def test_a_bound_that_is_not_a_number_is_a_load_error_naming_file_line_rule_and_key(
    bound: str, message: str
) -> None:
    with pytest.raises(RulesError) as caught:
        load(
            f"rules: [{{name: r, match: {{where: {{event.balance: {{lt: {bound}}}}}}}, "
            "notify: [client]}]"
        )
    assert [str(p) for p in caught.value.problems] == [message]


def test_a_range_no_number_fits_loads_with_a_warning() -> None:
    ruleset = load(
        "rules: [{name: r, match: {where: {event.balance: {gt: 50, lt: 10}}}, notify: [client]}]"
    )
    assert [str(w) for w in ruleset.warnings] == [
        "rules.yaml:1: rule 'r': match.where[event.balance]: no number is above 50 and "
        "below 10; the rule never fires"
    ]


def test_a_bound_may_come_from_the_environment() -> None:
    ruleset = load(
        "rules: [{name: r, match: {where: {event.balance: {lt: '${LOW:-50}'}}}, notify: [client]}]",
        env={"LOW": "20"},
    )
    assert match_rules(ruleset, subject("balance_low", event={"balance": 25})) == []
    assert match_rules(ruleset, subject("balance_low", event={"balance": 15}))
