"""The loaded, compiled, immutable set of rules and targets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal

from receiver.routing.conditions import CompiledCondition
from receiver.routing.errors import RuleProblem
from receiver.routing.paths import Path
from receiver.routing.throttle import ThrottleKey
from receiver.routing.time_intervals import Hold, TimeSpec, hold_for
from receiver.vocabulary import CLIENT_TARGET

ANY = "*"
Audience = Literal["ops", "client"]


@dataclass(frozen=True, slots=True)
class Target:
    """A named Apprise target. An empty URL means "not configured": skip, do not fail."""

    name: str
    url: str = field(repr=False)  # may hold tokens: never log or show it
    file: str
    line: int | None
    fallback: str | None = None  # the target told when this one fails (checked: no cycles)
    failing_after: int = 5  # consecutive failed attempts that make it "failing"

    @property
    def configured(self) -> bool:
        return bool(self.url)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready for matching; `events`/`status_*` of None mean "any"."""

    name: str
    description: str
    enabled: bool
    position: int
    file: str
    line: int | None
    events: frozenset[str] | None
    not_events: frozenset[str]
    status_required: bool
    status_from: frozenset[str | None] | None
    status_to: frozenset[str] | None
    conditions: tuple[CompiledCondition, ...]
    targets: tuple[str, ...]
    template: str | None
    title: str | None
    body: str | None
    stop: bool
    throttle_seconds: int | None
    throttle_key: ThrottleKey | None
    # `group_by`: matches with equal values at these paths share one message per target.
    group_by: tuple[Path, ...] = ()
    group_wait: int = 30
    group_interval: int = 300
    mute_during: tuple[str, ...] = ()  # names in RuleSet.time_intervals
    active_during: tuple[str, ...] = ()

    def wants_event(self, event_type: str) -> bool:
        return (self.events is None or event_type in self.events) and (
            event_type not in self.not_events
        )


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file the rules were read from, with the SHA-256 of its bytes."""

    path: str
    sha256: str


@dataclass(frozen=True, slots=True)
class RuleSource:
    """Where the rules came from: files in load order and one digest over all of them."""

    files: tuple[SourceFile, ...]
    digest: str


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Rules in evaluation order, merged targets, and an index by event type."""

    rules: tuple[CompiledRule, ...]
    targets: Mapping[str, Target]
    source: RuleSource
    warnings: tuple[RuleProblem, ...]
    _by_event: Mapping[str, tuple[CompiledRule, ...]] = field(repr=False)
    _any_event: tuple[CompiledRule, ...] = field(repr=False)
    time_intervals: Mapping[str, tuple[TimeSpec, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def build(
        cls,
        *,
        rules: Sequence[CompiledRule],
        targets: Mapping[str, Target],
        source: RuleSource,
        warnings: Sequence[RuleProblem] = (),
        time_intervals: Mapping[str, tuple[TimeSpec, ...]] | None = None,
    ) -> RuleSet:
        enabled = [r for r in rules if r.enabled]
        # Any event type not named by some rule sees exactly the catch-all rules.
        any_event = tuple(r for r in enabled if r.events is None)
        named = {e for r in enabled for e in (r.events or frozenset()) | r.not_events}
        by_event = {event: tuple(r for r in enabled if r.wants_event(event)) for event in named}
        return cls(
            rules=tuple(rules),
            targets=MappingProxyType(dict(targets)),
            source=source,
            warnings=tuple(warnings),
            time_intervals=MappingProxyType(dict(time_intervals or {})),
            _by_event=MappingProxyType(by_event),
            _any_event=any_event,
        )

    def candidates(self, event_type: str) -> tuple[CompiledRule, ...]:
        """Return the enabled rules that can match `event_type`, in evaluation order."""
        return self._by_event.get(event_type, self._any_event)

    def rule(self, name: str) -> CompiledRule | None:
        return next((r for r in self.rules if r.name == name), None)

    def hold(self, rule: str, *, now: datetime) -> Hold | None:
        """Return why a message of `rule` is held at `now` (its mute/active windows), or None."""
        compiled = self.rule(rule)
        if compiled is None or not (compiled.mute_during or compiled.active_during):
            return None
        return hold_for(
            mute_during=compiled.mute_during,
            active_during=compiled.active_during,
            intervals=self.time_intervals,
            now=now,
        )

    def target_url(self, name: str) -> str | None:
        """Return the Apprise URL of a named target; None when unset, unknown or `client`."""
        if name == CLIENT_TARGET:
            return None
        target = self.targets.get(name)
        return target.url if target is not None and target.configured else None

    def fallback_of(self, name: str) -> str | None:
        """Return the target told when `name` fails; None when it has none (or is unknown)."""
        target = self.targets.get(name)
        return target.fallback if target is not None else None


def audience_for_target(name: str) -> Audience:
    """Return the message audience for a target: `client` for the built-in, else `ops`."""
    return "client" if name == CLIENT_TARGET else "ops"
