"""Load routing rules from a YAML file or a folder of them into an immutable RuleSet.

Files (`*.yaml`, `*.yml`, sorted by name) are read in order; their targets are merged and
their rules concatenated. Every problem found is collected and raised together as one
`RulesError`, each naming file, line, rule and key. The environment is passed in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path as FsPath

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from receiver.routing.conditions import CompiledCondition
from receiver.routing.errors import RuleProblem, RulesError
from receiver.routing.events import KNOWN_EVENTS, KNOWN_STATUSES
from receiver.routing.model import (
    Condition,
    Match,
    Rule,
    RulesFile,
    StatusMatch,
    TargetSpec,
    TimeInterval,
    TimeRange,
    TimeSpecModel,
)
from receiver.routing.paths import Path, compile_path
from receiver.routing.ruleset import (
    ANY,
    CompiledRule,
    RuleSet,
    RuleSource,
    SourceFile,
    Target,
)
from receiver.routing.thresholds import LOW_EVENT, own_crossing
from receiver.routing.throttle import compile_throttle_key
from receiver.routing.time_intervals import TimeSpec
from receiver.routing.yamlnodes import Document, Loc, RulesYamlLoader, build_document
from receiver.vocabulary import CLIENT_TARGET

TargetValidator = Callable[[str], str | None]
TemplateCheck = Callable[[str], bool]
NO_PREVIOUS_STATUS = "none"
DEFAULT_GROUP_WAIT = 30  # seconds, as Alertmanager
DEFAULT_GROUP_INTERVAL = 300

# Models reachable at a (normalised) location, to list allowed keys for unknown ones.
_MODELS_AT: dict[
    Loc,
    type[
        RulesFile
        | Rule
        | Match
        | StatusMatch
        | Condition
        | TargetSpec
        | TimeInterval
        | TimeSpecModel
        | TimeRange
    ],
] = {
    (): RulesFile,
    ("rules", "*"): Rule,
    ("rules", "*", "match"): Match,
    ("rules", "*", "match", "status"): StatusMatch,
    ("rules", "*", "match", "where", "*"): Condition,
    ("time_intervals", "*"): TimeInterval,
    ("time_intervals", "*", "time_intervals", "*"): TimeSpecModel,
    ("time_intervals", "*", "time_intervals", "*", "times", "*"): TimeRange,
    ("targets", "*"): TargetSpec,
}


@dataclass(frozen=True, slots=True)
class _ParsedFile:
    name: str
    model: RulesFile
    document: Document


def load_rules(
    path: str | FsPath,
    *,
    env: Mapping[str, str],
    validate_target: TargetValidator | None = None,
    template_exists: TemplateCheck | None = None,
) -> RuleSet:
    """Load a rules file, or every `*.yaml`/`*.yml` in a folder, into a RuleSet.

    `validate_target(url)` returns an error message or None (e.g. Apprise's parser);
    `template_exists(name)` checks rules' explicit `template:` names. Raise RulesError.
    """
    root = FsPath(path)
    if root.is_dir():
        files = sorted(
            (p for p in root.iterdir() if p.is_file() and p.suffix in {".yaml", ".yml"}),
            key=lambda p: p.name,
        )
    elif root.is_file():
        files = [root]
    else:
        raise RulesError([RuleProblem(str(root), None, None, None, "no such file or folder")])
    texts: list[tuple[str, bytes]] = []
    problems: list[RuleProblem] = []
    for file in files:
        try:
            texts.append((str(file), file.read_bytes()))
        except OSError as exc:
            problems.append(RuleProblem(str(file), None, None, None, f"cannot read: {exc}"))
    if problems:
        raise RulesError(problems)
    return load_rules_texts(
        texts, env=env, validate_target=validate_target, template_exists=template_exists
    )


def load_rules_texts(
    files: list[tuple[str, bytes]],
    *,
    env: Mapping[str, str],
    validate_target: TargetValidator | None = None,
    template_exists: TemplateCheck | None = None,
) -> RuleSet:
    """Load rules from (display name, content) pairs, in the order given."""
    problems: list[RuleProblem] = []
    parsed: list[_ParsedFile] = []
    digest = hashlib.sha256()
    sources: list[SourceFile] = []
    for name, content in files:
        digest.update(name.encode() + b"\0" + content + b"\0")
        sources.append(SourceFile(path=name, sha256=hashlib.sha256(content).hexdigest()))
        result = _parse_file(name, content, env, problems)
        if result is not None:
            parsed.append(result)
    source = RuleSource(files=tuple(sources), digest=digest.hexdigest())
    ruleset = _compile(parsed, source, problems, validate_target, template_exists)
    if problems:
        raise RulesError(problems)
    return ruleset


def _parse_file(
    name: str, content: bytes, env: Mapping[str, str], problems: list[RuleProblem]
) -> _ParsedFile | None:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(RuleProblem(name, None, None, None, f"not UTF-8 text: {exc.reason}"))
        return None
    try:
        node = yaml.compose(text, Loader=RulesYamlLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        problems.append(RuleProblem(name, line, None, None, f"YAML syntax error: {what}"))
        return None
    except yaml.YAMLError as exc:
        problems.append(RuleProblem(name, None, None, None, f"YAML error: {exc}"))
        return None
    document = build_document(node, env)
    value = {} if document.value is None else document.value
    for loc, line, message in document.problems:
        problems.append(RuleProblem(name, line, _rule_name(value, loc), _key_text(loc), message))
    if not isinstance(value, dict):
        problems.append(
            RuleProblem(
                name,
                document.line_of(()),
                None,
                None,
                "expected a mapping with `targets:` and `rules:` at the top level",
            )
        )
        return None
    try:
        model = RulesFile.model_validate(value)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            loc = tuple(error["loc"])
            problems.append(
                RuleProblem(
                    name,
                    document.line_of(loc),
                    _rule_name(value, loc),
                    _key_text(loc),
                    _message(error, loc),
                )
            )
        return None
    return _ParsedFile(name=name, model=model, document=document)


def _rule_name(value: object, loc: Loc) -> str | None:
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = value.get("rules") if isinstance(value, dict) else None
        if isinstance(rules, list) and loc[1] < len(rules):
            rule = rules[loc[1]]
            name = rule.get("name") if isinstance(rule, dict) else None
            return name if isinstance(name, str) else f"#{loc[1] + 1}"
    return None


def _key_text(loc: Loc) -> str | None:
    parts = loc[2:] if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int) else loc
    if len(loc) == 2 and loc[0] == "rules":
        return None
    out = ""
    for part in parts:
        if isinstance(part, int) or "." in part or " " in part:
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or None


def _normalise(loc: Loc) -> Loc:
    out: list[str | int] = []
    for index, part in enumerate(loc):
        after_where = index > 0 and loc[index - 1] == "where"
        target_name = index == 1 and loc[0] == "targets"
        out.append("*" if isinstance(part, int) or after_where or target_name else part)
    return tuple(out)


def _message(error: ErrorDetails, loc: Loc) -> str:
    if error["type"] == "extra_forbidden":
        model = _MODELS_AT.get(_normalise(loc[:-1]))
        allowed = ""
        if model is not None:
            names = [f.alias or n for n, f in model.model_fields.items()]
            allowed = f" (allowed: {', '.join(names)})"
        return f"unknown key{allowed}"
    if error["type"] == "missing":
        return "required key is missing"
    message = error["msg"]
    return message.removeprefix("Value error, ")


def _compile(
    parsed: list[_ParsedFile],
    source: RuleSource,
    problems: list[RuleProblem],
    validate_target: TargetValidator | None,
    template_exists: TemplateCheck | None,
) -> RuleSet:
    targets: dict[str, Target] = {}
    warnings: list[RuleProblem] = []
    for item in parsed:
        for name, spec in item.model.targets.items():
            url = spec.url
            line = item.document.line_of(("targets", name))
            key = f"targets.{name}"
            if name == CLIENT_TARGET:
                problems.append(
                    RuleProblem(
                        item.name, line, None, key, "`client` is built in; pick another name"
                    )
                )
                continue
            if name in targets:
                first = targets[name]
                problems.append(
                    RuleProblem(
                        item.name,
                        line,
                        None,
                        key,
                        f"target {name!r} is already defined at {first.file}:{first.line}",
                    )
                )
                continue
            if url and validate_target is not None:
                error = validate_target(url)
                if error is not None:
                    # Validators may echo the URL back; it can hold tokens.
                    safe = error.replace(url, "<url>")
                    problems.append(
                        RuleProblem(item.name, line, None, key, f"invalid target URL: {safe}")
                    )
            targets[name] = Target(
                name=name,
                url=url,
                file=item.name,
                line=line,
                fallback=spec.fallback,
                failing_after=spec.failing_after,
            )
    _check_fallbacks(targets, parsed, problems)
    known = sorted([*targets, CLIENT_TARGET])
    intervals = _compile_intervals(parsed, problems)
    rules: list[CompiledRule] = []
    seen: dict[str, CompiledRule] = {}
    for item in parsed:
        for index, rule in enumerate(item.model.rules):
            compiled = _compile_rule(
                rule,
                index=index,
                position=len(rules),
                item=item,
                known_targets=set(known),
                intervals=intervals,
                problems=problems,
                warnings=warnings,
                template_exists=template_exists,
            )
            if rule.name in seen:
                earlier = seen[rule.name]
                problems.append(
                    RuleProblem(
                        item.name,
                        compiled.line,
                        rule.name,
                        "name",
                        f"duplicate rule name (first at {earlier.file}:{earlier.line})",
                    )
                )
                continue
            seen[rule.name] = compiled
            rules.append(compiled)
    return RuleSet.build(
        rules=rules,
        targets=targets,
        source=source,
        warnings=warnings,
        time_intervals=intervals,
    )


def _check_fallbacks(
    targets: Mapping[str, Target], parsed: list[_ParsedFile], problems: list[RuleProblem]
) -> None:
    """Every `fallback` names another defined target, and no chain of them loops."""
    documents = {item.name: item.document for item in parsed}

    def problem(target: Target, message: str) -> None:
        document = documents.get(target.file)
        line = document.line_of(("targets", target.name, "fallback")) if document else None
        key = f"targets.{target.name}.fallback"
        problems.append(RuleProblem(target.file, line or target.line, None, key, message))

    for target in targets.values():
        if target.fallback is None:
            continue
        if target.fallback == target.name:
            problem(target, f"target {target.name!r} cannot be its own fallback")
        elif target.fallback == CLIENT_TARGET:
            problem(target, "a fallback must be a target defined here, not the built-in `client`")
        elif target.fallback not in targets:
            defined = ", ".join(sorted(targets)) or "none"
            problem(target, f"unknown fallback target {target.fallback!r} (defined: {defined})")
        else:
            # Follow the chain; a loop back to this target is a cycle (reported per member).
            chain = [target.name]
            current = targets[target.fallback]
            while current.fallback is not None and current.fallback in targets:
                chain.append(current.name)
                if current.fallback == target.name:
                    loop = " -> ".join([*chain, target.name])
                    problem(target, f"fallback cycle: {loop}")
                    break
                if current.fallback in chain or current.fallback == current.name:
                    break  # a loop further on, reported at its own members
                current = targets[current.fallback]


def _compile_intervals(
    parsed: list[_ParsedFile], problems: list[RuleProblem]
) -> dict[str, tuple[TimeSpec, ...]]:
    intervals: dict[str, tuple[TimeSpec, ...]] = {}
    first: dict[str, str] = {}
    for item in parsed:
        for index, interval in enumerate(item.model.time_intervals):
            loc: Loc = ("time_intervals", index, "name")
            line = item.document.line_of(loc)
            if interval.name in intervals:
                problems.append(
                    RuleProblem(
                        item.name,
                        line,
                        None,
                        _key_text(loc),
                        f"time interval {interval.name!r} is already defined at "
                        f"{first[interval.name]}",
                    )
                )
                continue
            first[interval.name] = f"{item.name}:{line}"
            intervals[interval.name] = tuple(spec.compile() for spec in interval.time_intervals)
    return intervals


def _compile_rule(
    rule: Rule,
    *,
    index: int,
    position: int,
    item: _ParsedFile,
    known_targets: set[str],
    intervals: Mapping[str, object],
    problems: list[RuleProblem],
    warnings: list[RuleProblem],
    template_exists: TemplateCheck | None,
) -> CompiledRule:
    base: Loc = ("rules", index)
    doc = item.document

    def problem(loc: Loc, message: str, *, warning: bool = False) -> None:
        full = (*base, *loc)
        found = RuleProblem(item.name, doc.line_of(full), rule.name, _key_text(full), message)
        (warnings if warning else problems).append(found)

    for n, target in enumerate(rule.notify):
        if target not in known_targets:
            defined = ", ".join(sorted(known_targets))
            problem(("notify", n), f"unknown target {target!r} (defined: {defined})")
    for key, names in (("mute_during", rule.mute_during), ("active_during", rule.active_during)):
        for n, interval in enumerate(names or ()):
            if interval not in intervals:
                defined = ", ".join(sorted(intervals)) or "none"
                problem((key, n), f"unknown time interval {interval!r} (defined: {defined})")
    events = None if ANY in rule.match.event else frozenset(rule.match.event)
    named_events = [("event", n, e) for n, e in enumerate(rule.match.event)]
    named_events += [("not_event", n, e) for n, e in enumerate(rule.match.not_event or ())]
    for key, n, event in named_events:
        if event != ANY and event not in KNOWN_EVENTS:
            problem(
                ("match", key, n),
                f"event {event!r} is not a known 360dialog event; "
                "the rule fires only if one arrives with exactly this name",
                warning=True,
            )
    status = rule.match.status
    status_from: frozenset[str | None] | None = None
    status_to: frozenset[str] | None = None
    if status is not None:
        if status.from_ is not None and ANY not in status.from_:
            status_from = frozenset(None if s == NO_PREVIOUS_STATUS else s for s in status.from_)
        if status.to is not None and ANY not in status.to:
            status_to = frozenset(status.to)
        for key, values in (("from", status.from_), ("to", status.to)):
            for n, value in enumerate(values or ()):
                if value not in {ANY, NO_PREVIOUS_STATUS, *KNOWN_STATUSES}:
                    problem(
                        ("match", "status", key, n),
                        f"status {value!r} is not a known status ({', '.join(KNOWN_STATUSES)})",
                        warning=True,
                    )
    conditions: list[CompiledCondition] = []
    for path_text, condition in rule.match.where.items():
        try:
            conditions.append(CompiledCondition.build(compile_path(path_text), condition))
        except ValueError as exc:
            problem(("match", "where", path_text), str(exc))
            continue
        low = [c.bound for c in conditions[-1].comparisons if c.op in {"gt", "ge"}]
        high = [c.bound for c in conditions[-1].comparisons if c.op in {"lt", "le"}]
        if low and high and max(low) >= min(high):
            problem(
                ("match", "where", path_text),
                f"no number is above {max(low):g} and below {min(high):g}; the rule never fires",
                warning=True,
            )
    if events is None or LOW_EVENT in events:
        conditions.extend(own_crossing(tuple(conditions)))
    throttle_key = None
    if rule.throttle_key is not None:
        try:
            throttle_key = compile_throttle_key(rule.throttle_key)
        except ValueError as exc:
            problem(("throttle_key",), str(exc))
        if rule.throttle is None:
            problem(("throttle_key",), "throttle_key has no effect without throttle", warning=True)
    group_by = _group_paths(rule, problem)
    if (
        rule.template is not None
        and template_exists is not None
        and not template_exists(rule.template)
    ):
        problem(
            ("template",),
            f"no template named {rule.template!r} (looked for "
            f"templates/ops/{rule.template}.j2 and templates/client/{rule.template}.j2)",
        )
    return CompiledRule(
        name=rule.name,
        description=rule.description,
        enabled=rule.enabled,
        position=position,
        file=item.name,
        line=doc.line_of(base),
        events=events,
        not_events=frozenset(rule.match.not_event or ()),
        status_required=status is not None,
        status_from=status_from,
        status_to=status_to,
        conditions=tuple(conditions),
        targets=tuple(rule.notify),
        template=rule.template,
        title=rule.title,
        body=rule.body,
        stop=rule.stop,
        throttle_seconds=rule.throttle,
        throttle_key=throttle_key,
        group_by=group_by,
        group_wait=rule.group_wait or DEFAULT_GROUP_WAIT,
        group_interval=rule.group_interval or DEFAULT_GROUP_INTERVAL,
        mute_during=tuple(rule.mute_during or ()),
        active_during=tuple(rule.active_during or ()),
    )


def _group_paths(rule: Rule, problem: Callable[[Loc, str], None]) -> tuple[Path, ...]:
    """Compile `group_by`; group_wait and group_interval mean nothing without it."""
    if rule.group_by is None:
        for key in ("group_wait", "group_interval"):
            if getattr(rule, key) is not None:
                problem((key,), f"{key} needs group_by (the paths that make a group)")
        return ()
    paths: list[Path] = []
    for n, text in enumerate(rule.group_by):
        try:
            paths.append(compile_path(text))
        except ValueError as exc:
            problem(("group_by", n), str(exc))
    return tuple(paths)
