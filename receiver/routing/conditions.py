"""Compiled `where` conditions: pure tests on one resolved value.

Values compare as text (`paths.scalar_text`), so an id sent as 42 equals '42', and a
missing field reads as null. A list value passes equals/one_of/pattern when any item does.
The comparisons (lt, le, gt, ge) read the value as a number (numeric text counts); a
missing, null or non-numeric value fails them, so a balance nobody could read never
looks low.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from receiver.routing.model import Condition, Scalar
from receiver.routing.paths import MISSING, Path, scalar_text

_NULL = "null"


def _texts(value: object) -> tuple[str, ...]:
    if value is MISSING or value is None:
        return (_NULL,)
    if isinstance(value, list | tuple):
        return tuple(t for t in (scalar_text(v) for v in value) if t is not None)
    text = scalar_text(value)
    return () if text is None else (text,)


def _text_set(values: list[Scalar]) -> frozenset[str]:
    return frozenset(t for t in (scalar_text(v) for v in values) if t is not None)


_COMPARISONS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "lt": ("<", operator.lt),
    "le": ("<=", operator.le),
    "gt": (">", operator.gt),
    "ge": (">=", operator.ge),
}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _numbers(value: object) -> tuple[float, ...]:
    items = value if isinstance(value, list | tuple) else (value,)
    return tuple(n for n in (_number(v) for v in items) if n is not None)


@dataclass(frozen=True, slots=True)
class Comparison:
    """One numeric bound: `op` is lt, le, gt or ge."""

    op: str
    bound: float

    def holds(self, value: object) -> bool:
        test = _COMPARISONS[self.op][1]
        return any(test(n, self.bound) for n in _numbers(value))

    def describe(self) -> str:
        return f"{_COMPARISONS[self.op][0]} {self.bound:g}"


def _show(value: object) -> str:
    if value is MISSING:
        return "missing"
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    """One path and its operators, ready to test."""

    path: Path
    equals: str | None
    one_of: frozenset[str] | None
    not_one_of: frozenset[str] | None
    pattern: re.Pattern[str] | None
    present: bool | None
    comparisons: tuple[Comparison, ...] = ()

    @classmethod
    def build(cls, path: Path, condition: Condition) -> CompiledCondition:
        given = condition.model_fields_set
        return cls(
            path=path,
            equals=scalar_text(condition.equals) if "equals" in given else None,
            one_of=None if condition.one_of is None else _text_set(condition.one_of),
            not_one_of=None if condition.not_one_of is None else _text_set(condition.not_one_of),
            pattern=None if condition.pattern is None else re.compile(condition.pattern),
            present=condition.present,
            comparisons=tuple(
                Comparison(op, bound)
                for op in _COMPARISONS
                if (bound := getattr(condition, op)) is not None
            ),
        )

    def passes(self, value: object) -> bool:
        """Return whether `value` satisfies every operator (the fast path)."""
        if self.present is not None and (value is not MISSING and value is not None) != (
            self.present
        ):
            return False
        if not all(c.holds(value) for c in self.comparisons):
            return False
        if (
            self.equals is None
            and self.one_of is None
            and self.not_one_of is None
            and self.pattern is None
        ):
            return True
        texts = _texts(value)
        if self.equals is not None and self.equals not in texts:
            return False
        if self.one_of is not None and self.one_of.isdisjoint(texts):
            return False
        if self.not_one_of is not None and not self.not_one_of.isdisjoint(texts):
            return False
        if self.pattern is not None:
            if value is MISSING or value is None:
                return False
            return any(self.pattern.search(t) for t in texts)
        return True

    def failure(self, value: object) -> str | None:
        """Return why `value` fails this condition, or None when it passes."""
        if self.passes(value):
            return None
        shown = f"{self.path.text} is {_show(value)}"
        texts = _texts(value)
        if self.present is not None and (value is not MISSING and value is not None) != (
            self.present
        ):
            return f"{shown}, rule wants it {'present' if self.present else 'absent'}"
        for comparison in self.comparisons:
            if not comparison.holds(value):
                if not _numbers(value):
                    return f"{shown}, rule wants a number {comparison.describe()}"
                return f"{shown}, rule wants it {comparison.describe()}"
        if self.equals is not None and self.equals not in texts:
            return f"{shown}, rule wants {self.equals!r}"
        if self.one_of is not None and self.one_of.isdisjoint(texts):
            return f"{shown}, rule wants one of: {', '.join(sorted(self.one_of))}"
        if self.not_one_of is not None and not self.not_one_of.isdisjoint(texts):
            return f"{shown}, rule excludes it"
        pattern = self.pattern.pattern if self.pattern is not None else ""
        return f"{shown}, rule wants pattern {pattern!r}"
