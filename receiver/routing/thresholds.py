"""Balance thresholds that rules set: `event.balance: {lt: 50}` on a `balance_low` rule.

The balance watcher records one `balance_low` per client and threshold crossed (its fields
say which: `threshold`, `threshold_op`), for `BALANCE_LOW` and for every upper bound that an
enabled rule puts on `event.balance` (`rule_thresholds`). A rule with such a bound sees only
its own crossing (`own_crossing`, added when the rule is compiled), so a drop 60 -> 8 tells
the `{lt: 50}` rule once (the crossing of 50), not again when 10 is crossed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from receiver.routing.conditions import Comparison, CompiledCondition
from receiver.routing.paths import MISSING, compile_path
from receiver.routing.ruleset import RuleSet

BALANCE_PATH = "event.balance"
THRESHOLD_PATH = "event.threshold"
THRESHOLD_OP_PATH = "event.threshold_op"
LOW_EVENT = "balance_low"


@dataclass(frozen=True, slots=True, order=True)
class Threshold:
    """Low means `balance < bound` (op lt) or `balance <= bound` (op le)."""

    bound: Decimal
    op: Literal["lt", "le"] = "lt"

    def below(self, balance: Decimal) -> bool:
        return balance < self.bound if self.op == "lt" else balance <= self.bound

    def text(self) -> str:
        return f"{self.op}{format(self.bound.normalize(), 'f')}"


def balance_bound(conditions: tuple[CompiledCondition, ...]) -> Threshold | None:
    """The tightest upper bound the conditions put on `event.balance`, if any."""
    found = [
        Threshold(Decimal(repr(c.bound)), "lt" if c.op == "lt" else "le")
        for condition in conditions
        if condition.path.text == BALANCE_PATH
        for c in condition.comparisons
        if c.op in {"lt", "le"}
    ]
    # Tightest first: the smaller bound, and at one bound `lt` (le 5 admits 5, lt 5 does not).
    return min(found, key=lambda t: (t.bound, t.op == "le")) if found else None


def own_crossing(conditions: tuple[CompiledCondition, ...]) -> tuple[CompiledCondition, ...]:
    """The conditions that keep a bounded rule to its own threshold's crossing events.

    Empty when the rule has no upper bound on `event.balance` or names `event.threshold`
    itself (the author chose). An event without `threshold` or `threshold_op` passes them.
    """
    bound = balance_bound(conditions)
    if bound is None or any(c.path.text == THRESHOLD_PATH for c in conditions):
        return ()
    value = float(bound.bound)
    op_is_le = bound.op == "le"
    return (
        _OwnThreshold(
            path=compile_path(THRESHOLD_PATH),
            equals=None,
            one_of=None,
            not_one_of=None,
            pattern=None,
            present=None,
            comparisons=(Comparison("ge", value), Comparison("le", value)),
        ),
        CompiledCondition(
            path=compile_path(THRESHOLD_OP_PATH),
            equals=None,
            one_of=None,
            not_one_of=frozenset({"lt" if op_is_le else "le"}),
            pattern=None,
            present=None,
        ),
    )


@dataclass(frozen=True, slots=True)
class _OwnThreshold(CompiledCondition):
    """`event.threshold` equals the rule's bound; an event with no threshold passes."""

    def passes(self, value: object) -> bool:
        return value is MISSING or value is None or CompiledCondition.passes(self, value)


def rule_thresholds(rules: RuleSet) -> frozenset[Threshold]:
    """Every upper bound an enabled rule that can match `balance_low` puts on the balance."""
    return frozenset(
        bound
        for rule in rules.candidates(LOW_EVENT)
        if (bound := balance_bound(rule.conditions)) is not None
    )
