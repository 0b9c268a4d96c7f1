"""Explain what the rules do with one event: `hub-receiver rules test EVENT.json`.

For every rule, in evaluation order: did it match, and if not the first reason why; who
would be told; and the messages each audience would get, rendered for real.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from receiver.routing.matcher import rule_applies, to_match, why_not
from receiver.routing.ruleset import Audience, RuleSet, audience_for_target
from receiver.routing.subject import RoutingSubject
from receiver.vocabulary import CLIENT_TARGET


class RenderedMessage(Protocol):
    @property
    def title(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def error(self) -> str | None: ...


class MessageRenderer(Protocol):
    """What `explain` needs from `receiver.messages.Renderer`."""

    def render(
        self,
        *,
        template: str | None,
        title: str | None,
        body: str | None,
        audience: Audience,
        context: Mapping[str, Any],
    ) -> RenderedMessage: ...


ContextBuilder = Callable[[RoutingSubject, str], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class TargetPreview:
    """One target a matching rule would notify, and whether it is usable."""

    target: str
    audience: Audience
    state: str  # "configured" | "not configured (skipped)" | "client email: ..."


@dataclass(frozen=True, slots=True)
class MessagePreview:
    audience: Audience
    title: str
    body: str
    error: str | None


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """What one rule did with the event."""

    rule: str
    file: str
    line: int | None
    matched: bool
    reason: str | None
    template: str | None
    throttle_seconds: int | None
    throttle_key: str | None
    targets: tuple[TargetPreview, ...]
    messages: tuple[MessagePreview, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    event_type: str
    status_change: tuple[str | None, str] | None
    verdicts: tuple[RuleVerdict, ...]
    fields: Mapping[str, object]  # `event.fields`: what rules and templates see of the event

    @property
    def fired(self) -> tuple[str, ...]:
        return tuple(v.rule for v in self.verdicts if v.matched)


def explain(
    ruleset: RuleSet,
    subject: RoutingSubject,
    renderer: MessageRenderer,
    *,
    build_context: ContextBuilder,
) -> Explanation:
    """Evaluate every rule against `subject` as the matcher would, with reasons."""
    verdicts: list[RuleVerdict] = []
    stopped_by: str | None = None
    for rule in ruleset.rules:
        if stopped_by is not None:
            skipped = f"not evaluated: rule {stopped_by!r} matched and has stop: true"
            verdicts.append(_no(rule.name, rule.file, rule.line, skipped))
            continue
        reason = why_not(rule, subject)
        if reason is not None:
            verdicts.append(_no(rule.name, rule.file, rule.line, reason))
            continue
        assert rule_applies(rule, subject), f"explain and matcher disagree on {rule.name!r}"
        match = to_match(rule, subject)
        context = build_context(subject, rule.name)
        targets = tuple(_target(ruleset, name, context) for name in match.targets)
        messages: list[MessagePreview] = []
        for audience in dict.fromkeys(t.audience for t in targets):
            rendered = renderer.render(
                template=match.template,
                title=match.title,
                body=match.body,
                audience=audience,
                context=context,
            )
            messages.append(MessagePreview(audience, rendered.title, rendered.body, rendered.error))
        verdicts.append(
            RuleVerdict(
                rule=rule.name,
                file=rule.file,
                line=rule.line,
                matched=True,
                reason=None,
                template=match.template,
                throttle_seconds=match.throttle_seconds,
                throttle_key=match.throttle_key,
                targets=targets,
                messages=tuple(messages),
            )
        )
        if rule.stop:
            stopped_by = rule.name
    return Explanation(subject.event_type, subject.status_change, tuple(verdicts), subject.event)


def _no(name: str, file: str, line: int | None, reason: str) -> RuleVerdict:
    return RuleVerdict(
        rule=name,
        file=file,
        line=line,
        matched=False,
        reason=reason,
        template=None,
        throttle_seconds=None,
        throttle_key=None,
        targets=(),
        messages=(),
    )


def _target(ruleset: RuleSet, name: str, context: Mapping[str, Any]) -> TargetPreview:
    audience = audience_for_target(name)
    if name == CLIENT_TARGET:
        facts = context.get("facts")
        email = facts.get("client_email") if isinstance(facts, Mapping) else None
        state = f"client email: {email}" if email else "client email: unknown (skipped)"
    elif ruleset.target_url(name) is not None:
        state = "configured"
    else:
        state = "not configured (skipped)"
    return TargetPreview(target=name, audience=audience, state=state)


def explanation_as_dict(explanation: Explanation) -> dict[str, Any]:
    """Return a JSON-able form (for `rules test --json`)."""
    change = explanation.status_change
    return {
        "event": explanation.event_type,
        "status_change": None if change is None else {"from": change[0], "to": change[1]},
        "fired": list(explanation.fired),
        "fields": dict(explanation.fields),
        "rules": [
            {
                "rule": v.rule,
                "file": v.file,
                "line": v.line,
                "matched": v.matched,
                "reason": v.reason,
                "template": v.template,
                "throttle_seconds": v.throttle_seconds,
                "throttle_key": v.throttle_key,
                "targets": [
                    {"target": t.target, "audience": t.audience, "state": t.state}
                    for t in v.targets
                ],
                "messages": [
                    {"audience": m.audience, "title": m.title, "body": m.body, "error": m.error}
                    for m in v.messages
                ],
            }
            for v in explanation.verdicts
        ],
    }


def format_explanation(explanation: Explanation, *, verbose: bool = True) -> str:
    """Return a human-readable report; `verbose=False` leaves out rendered bodies."""
    change = explanation.status_change
    head = f"event: {explanation.event_type}"
    if change is not None:
        head += f"   status: {change[0] or 'none'} -> {change[1]}"
    lines = [head, f"rules fired: {len(explanation.fired)} of {len(explanation.verdicts)}", ""]
    for v in explanation.verdicts:
        where = f"{v.file}:{v.line}" if v.line is not None else v.file
        if not v.matched:
            lines.append(f"  - {v.rule}  ({where})\n      no: {v.reason}")
            continue
        lines.append(f"  + {v.rule}  ({where})")
        if v.throttle_seconds is not None:
            lines.append(f"      throttle: {v.throttle_seconds}s per {v.throttle_key}")
        lines.append(f"      template: {v.template}")
        for t in v.targets:
            lines.append(f"      -> {t.target} [{t.audience}]: {t.state}")
        for m in v.messages:
            lines.append(f"      [{m.audience}] title: {m.title}")
            if m.error:
                lines.append(f"      [{m.audience}] TEMPLATE ERROR (fallback used): {m.error}")
            if verbose:
                lines.extend(f"      | {line}" for line in m.body.splitlines())
    return "\n".join(lines)
