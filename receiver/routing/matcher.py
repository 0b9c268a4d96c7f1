"""Pure rule matching: (RuleSet, RoutingSubject) -> the rules that fire, in order.

Rules are evaluated in order (files sorted by name, rules in file order). Every matching
rule fires; a matching rule with `stop: true` ends evaluation. Candidates come from an
index by event type built at load, so unrelated rules cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from receiver.routing.paths import MISSING
from receiver.routing.ruleset import CompiledRule, RuleSet
from receiver.routing.subject import RoutingSubject
from receiver.routing.throttle import default_throttle_key

STATUS_CHANGE_TEMPLATE = "status_change"


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A rule that fired: who to tell, with what, and how to throttle it.

    `template` is the effective template name (the rule's own, else `status_change` for
    rules matching on status, else the event type); the renderer falls back to `generic`
    when no such template exists. `title`/`body` are inline overrides. The throttle
    window is per (rule, throttle_key); both are None when the rule is not throttled.
    """

    rule: str
    targets: tuple[str, ...]
    template: str
    title: str | None
    body: str | None
    throttle_seconds: int | None
    throttle_key: str | None
    stop: bool
    # A grouped rule's key ({path: value}; a missing value is None) and its timings.
    group_key: dict[str, object] | None = None
    group_wait: int = 0
    group_interval: int = 0


def match_rules(ruleset: RuleSet, subject: RoutingSubject) -> list[RuleMatch]:
    """Return the rules that fire for `subject`, in evaluation order."""
    # The hot path: `rule_applies` inlined, minus the event check the index already did.
    matches: list[RuleMatch] = []
    event, channel, client = subject.event, subject.channel, subject.client
    change = subject.status_change
    for rule in ruleset.candidates(subject.event_type):
        if rule.status_required:
            if change is None:
                continue
            if rule.status_from is not None and change[0] not in rule.status_from:
                continue
            if rule.status_to is not None and change[1] not in rule.status_to:
                continue
        for condition in rule.conditions:
            if not condition.passes(condition.path.get(event, channel, client)):
                break
        else:
            matches.append(to_match(rule, subject))
            if rule.stop:
                break
    return matches


def rule_applies(rule: CompiledRule, subject: RoutingSubject) -> bool:
    """Return whether `rule` matches `subject` (enabled or not; events are checked too)."""
    if not rule.wants_event(subject.event_type):
        return False
    if rule.status_required:
        change = subject.status_change
        if change is None:
            return False
        if rule.status_from is not None and change[0] not in rule.status_from:
            return False
        if rule.status_to is not None and change[1] not in rule.status_to:
            return False
    event, channel, client = subject.event, subject.channel, subject.client
    return all(c.passes(c.path.get(event, channel, client)) for c in rule.conditions)


def why_not(rule: CompiledRule, subject: RoutingSubject) -> str | None:
    """Return the first reason `rule` does not match `subject`, or None if it matches."""
    if not rule.enabled:
        return "rule is disabled"
    if rule.events is not None and subject.event_type not in rule.events:
        wanted = " or ".join(sorted(rule.events))
        return f"event is {subject.event_type}, rule wants {wanted}"
    if subject.event_type in rule.not_events:
        return f"event is {subject.event_type}, rule excludes it (not_event)"
    if rule.status_required:
        change = subject.status_change
        if change is None:
            return "no status change, rule wants one"
        before, after = change
        if rule.status_from is not None and before not in rule.status_from:
            wanted = " or ".join(sorted(s or "none" for s in rule.status_from))
            return f"status changed from {before or 'none'}, rule wants from {wanted}"
        if rule.status_to is not None and after not in rule.status_to:
            wanted = " or ".join(sorted(rule.status_to))
            return f"status changed to {after}, rule wants to {wanted}"
    for condition in rule.conditions:
        reason = condition.failure(
            condition.path.get(subject.event, subject.channel, subject.client)
        )
        if reason is not None:
            return reason
    return None


def to_match(rule: CompiledRule, subject: RoutingSubject) -> RuleMatch:
    """Build the RuleMatch for a rule known to match `subject`."""
    throttle_key: str | None = None
    if rule.throttle_seconds is not None:
        if rule.throttle_key is not None:
            throttle_key = rule.throttle_key.resolve(
                subject.event_type, subject.event, subject.channel, subject.client
            )
        else:
            throttle_key = default_throttle_key(
                subject.event_type, subject.event, subject.channel, subject.client
            )
    if rule.template is not None:
        template = rule.template
    elif rule.status_required:
        template = STATUS_CHANGE_TEMPLATE
    else:
        template = subject.event_type
    return RuleMatch(
        rule=rule.name,
        targets=rule.targets,
        template=template,
        title=rule.title,
        body=rule.body,
        throttle_seconds=rule.throttle_seconds,
        throttle_key=throttle_key,
        stop=rule.stop,
        group_key=group_key_of(rule, subject),
        group_wait=rule.group_wait,
        group_interval=rule.group_interval,
    )


def group_key_of(rule: CompiledRule, subject: RoutingSubject) -> dict[str, object] | None:
    """The values of a grouped rule's `group_by` paths for `subject` (None: not grouped)."""
    if not rule.group_by:
        return None
    key: dict[str, object] = {}
    for path in rule.group_by:
        value = path.get(subject.event, subject.channel, subject.client)
        key[path.text] = None if value is MISSING else value
    return key
