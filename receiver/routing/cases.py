"""Rule test cases: `hub-receiver rules test --cases PATH`.

A cases file says, for one event at a time, exactly which rules fire and whom they tell:

    cases:
      - name: a violation alerts the team
        event: {event: account_violation, data: {id: kJ2mQ8CH, violation_type: SCAM}}
        status_change: live:restricted
        expect:
          - {rule: team hears about violations, targets: [alerts], throttled: {window: 1h}}

Cases are checked with the matcher production routes with (`match_rules`); the subject is
built by the caller (the CLI uses `receiver.pipeline.subject.preview_subject`, a layer
above this one), so nothing here is a second copy of routing. What routing decides after
the match (client trust, the client cap, a throttle window already taken) depends on the
sender and on the database, and is not part of a case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from receiver.durations import parse_duration
from receiver.routing.matcher import RuleMatch, match_rules, why_not
from receiver.routing.ruleset import RuleSet
from receiver.routing.subject import RoutingSubject
from receiver.routing.yamlnodes import Loc, RulesYamlLoader, build_document
from receiver.vocabulary import Claim

CASE_SUFFIXES = (".yaml", ".yml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThrottleExpectation(_Strict):
    """The throttle window a firing rule takes: its length and, optionally, its key."""

    window: str
    key: str | None = None

    @field_validator("window")
    @classmethod
    def _window_is_a_duration(cls, value: str) -> str:
        parse_duration(value)  # ValueError names the problem
        return value

    @property
    def seconds(self) -> int:
        return int(parse_duration(self.window))


class Expectation(_Strict):
    """One rule expected to fire, whom it tells, and optionally how it is held back.

    `throttled`: false (the rule has no throttle), true (it has one) or {window, key}.
    `muted` / `grouped`: whether the rule's message would be held by a mute window or
    collected into a group.
    """

    rule: str = Field(min_length=1)
    targets: list[str]
    throttled: bool | ThrottleExpectation | None = None
    muted: bool | None = None
    grouped: bool | None = None


class StatusChange(_Strict):
    from_: str | None = Field(default=None, alias="from")
    to: str = Field(min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Case(_Strict):
    """One event, what enrichment would have found, and the rules expected to fire."""

    name: str = Field(min_length=1)
    description: str = ""
    event: dict[str, Any]
    channel: dict[str, Any] | None = None
    client: dict[str, Any] | None = None
    status_change: str | StatusChange | None = None
    claim: Claim | None = None
    at: datetime | None = None
    expect: list[Expectation]

    @field_validator("status_change")
    @classmethod
    def _status_text(cls, value: str | StatusChange | None) -> str | StatusChange | None:
        if isinstance(value, str):
            after = value.rpartition(":")[2].strip()
            if not after:
                raise ValueError("write 'to', 'from:to' or {from: ..., to: ...}")
        return value

    @field_validator("at")
    @classmethod
    def _at_has_zone(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-03-02T02:00:00Z")
        return value

    @model_validator(mode="after")
    def _each_rule_once(self) -> Case:
        seen: set[str] = set()
        for expectation in self.expect:
            if expectation.rule in seen:
                raise ValueError(f"rule {expectation.rule!r} is expected twice")
            seen.add(expectation.rule)
        return self

    @property
    def change(self) -> tuple[str | None, str] | None:
        """The simulated status change as routing sees it: (from or None, to)."""
        value = self.status_change
        if value is None:
            return None
        if isinstance(value, StatusChange):
            before, after = value.from_, value.to
        else:
            before, _, after = value.rpartition(":")
        before = before.strip() if before else None
        return (None if before in (None, "", "none") else before, after.strip())


class CasesFile(_Strict):
    cases: list[Case]


@dataclass(frozen=True, slots=True)
class LoadedCase:
    file: str
    line: int | None
    case: Case


@dataclass(frozen=True, slots=True)
class CaseProblem:
    """One thing wrong with a cases file, shown as `file:line: case 'name': key: message`."""

    file: str
    line: int | None
    case: str | None
    key: str | None
    message: str

    def __str__(self) -> str:
        parts = [self.file if self.line is None else f"{self.file}:{self.line}"]
        if self.case is not None:
            parts.append(f"case {self.case!r}")
        if self.key:
            parts.append(self.key)
        parts.append(self.message)
        return ": ".join(parts)


class CasesError(Exception):
    """A cases path that cannot be read; each problem is one line naming file, case and key."""

    def __init__(self, problems: Sequence[CaseProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def case_files(path: Path) -> list[Path]:
    """The cases files at `path`: the file itself, or a folder's YAML files by name."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in CASE_SUFFIXES and p.is_file())
    if not path.exists():
        raise CasesError([CaseProblem(str(path), None, None, None, "no such file or folder")])
    return [path]


def load_cases(path: Path) -> list[LoadedCase]:
    """Read every case at `path`; raise CasesError listing every malformed one."""
    files = case_files(path)
    if not files:
        raise CasesError([CaseProblem(str(path), None, None, None, "no *.yaml cases files")])
    loaded: list[LoadedCase] = []
    problems: list[CaseProblem] = []
    for file in files:
        found, wrong = load_cases_text(str(file), file.read_bytes())
        loaded += found
        problems += wrong
    if problems:
        raise CasesError(problems)
    return loaded


def load_cases_text(file: str, text: bytes) -> tuple[list[LoadedCase], list[CaseProblem]]:
    """Parse one cases file: its cases, or the problems (file, line, case, key)."""
    try:
        node = yaml.compose(text, Loader=RulesYamlLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        return [], [CaseProblem(file, line, None, None, f"not valid YAML: {reason}")]
    # Cases are test data: values exactly as written (`${...}` and `$$` too, which a body
    # may well contain); the built document only lends its lines and duplicate-key checks.
    document = build_document(node, _Verbatim())
    raw = yaml.load(text, Loader=RulesYamlLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(raw, dict) or not isinstance(raw.get("cases"), list):
        return [], [CaseProblem(file, 1, None, "cases", "expected `cases:` with a list of cases")]
    names = _case_names(raw["cases"])
    problems = [
        CaseProblem(file, line, _case_of(loc, names), _key(loc), message)
        for loc, line, message in document.problems
    ]
    try:
        parsed = CasesFile.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        keys = [_key(tuple(error["loc"])) for error in errors]
        for error, key in zip(errors, keys, strict=True):
            loc = tuple(error["loc"])
            # A union (`throttled: bool | {window, key}`) reports each member it tried; the
            # member whose keys were read is the one meant.
            if error["type"].endswith("_type") and any(k.startswith(key + ".") for k in keys):
                continue
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(
                CaseProblem(file, document.line_of(loc), _case_of(loc, names), _key(loc), message)
            )
        return [], problems
    seen: set[str] = set()
    for index, case in enumerate(parsed.cases):
        if case.name in seen:
            line = document.line_of(("cases", index, "name"))
            problems.append(CaseProblem(file, line, case.name, "name", "duplicate case name"))
        seen.add(case.name)
    cases = [
        LoadedCase(file=file, line=document.line_of(("cases", index)), case=case)
        for index, case in enumerate(parsed.cases)
    ]
    return (cases, []) if not problems else ([], problems)


class _Verbatim(dict[str, str]):
    """An environment in which every `${VAR}` reads as itself."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return "${" + key + "}"


def _case_names(items: Sequence[object]) -> dict[int, str]:
    names: dict[int, str] = {}
    for index, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            names[index] = item["name"]
        else:
            names[index] = f"#{index + 1}"
    return names


def _case_of(loc: Loc, names: Mapping[int, str]) -> str | None:
    if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
        return names.get(loc[1], f"#{loc[1] + 1}")
    return None


def _key(loc: Loc) -> str:
    """`expect[0].targets` for ("cases", 3, "expect", 0, "targets")."""
    rest = loc[2:] if len(loc) >= 2 and loc[0] == "cases" else loc
    text = ""
    for part in rest:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("str", "bool", "ThrottleExpectation", "StatusChange"):
            continue  # pydantic names the union member it tried; the key is enough
        else:
            text += f".{part}" if text else str(part)
    return text


# --- running -------------------------------------------------------------------------------

SubjectBuilder = Callable[[Case], RoutingSubject]


@dataclass(frozen=True, slots=True)
class CaseResult:
    loaded: LoadedCase
    fired: tuple[RuleMatch, ...]
    differences: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.differences


def run_case(
    ruleset: RuleSet,
    loaded: LoadedCase,
    subject: RoutingSubject,
) -> CaseResult:
    """Match `subject` as production does and compare with the case's expectations (pure)."""
    fired = tuple(match_rules(ruleset, subject))
    by_rule = {match.rule: match for match in fired}
    differences: list[str] = []
    for expected in loaded.case.expect:
        match = by_rule.get(expected.rule)
        if match is None:
            differences.append(_did_not_fire(ruleset, expected, subject))
            continue
        differences += _compare(expected, match, ruleset=ruleset, subject=subject)
    expected_rules = {e.rule for e in loaded.case.expect}
    for match in fired:
        if match.rule not in expected_rules:
            differences.append(
                f"+ {match.rule} -> {_targets(match.targets)}  (fired, not expected)"
            )
    return CaseResult(loaded=loaded, fired=fired, differences=tuple(differences))


def run_cases(
    ruleset: RuleSet,
    cases: Iterable[LoadedCase],
    *,
    build_subject: SubjectBuilder,
) -> list[CaseResult]:
    return [run_case(ruleset, loaded, build_subject(loaded.case)) for loaded in cases]


def _did_not_fire(ruleset: RuleSet, expected: Expectation, subject: RoutingSubject) -> str:
    head = f"- {expected.rule} -> {_targets(expected.targets)}  (expected, did not fire"
    rule = next((r for r in ruleset.rules if r.name == expected.rule), None)
    if rule is None:
        return f"{head}: no rule has this name)"
    reason = why_not(rule, subject)
    return f"{head}: {reason or 'an earlier rule with stop: true ended evaluation'})"


def _compare(
    expected: Expectation,
    match: RuleMatch,
    *,
    ruleset: RuleSet,
    subject: RoutingSubject,
) -> list[str]:
    out: list[str] = []
    name = expected.rule
    if sorted(expected.targets) != sorted(match.targets):
        out.append(
            f"~ {name}: targets expected {_targets(expected.targets)}, "
            f"got {_targets(match.targets)}"
        )
    if expected.throttled is not None:
        out += _compare_throttle(name, expected.throttled, match)
    # What `pipeline/route.py` decides with the same pure functions: a rule's mute or
    # active windows hold its messages at `now` (the case's `at`); a held message is not
    # grouped; a rule with `group_by` otherwise collects its messages into a group.
    held = ruleset.hold(name, now=subject.now) is not None
    grouped = match.group_key is not None and not held
    for label, wanted, got in (
        ("muted", expected.muted, held),
        ("grouped", expected.grouped, grouped),
    ):
        if wanted is not None and got != wanted:
            out.append(f"~ {name}: {label} expected {_yes(wanted)}, got {_yes(got)}")
    return out


def _compare_throttle(name: str, wanted: bool | ThrottleExpectation, match: RuleMatch) -> list[str]:
    got = _throttle_text(match)
    if isinstance(wanted, bool):
        if wanted != (match.throttle_seconds is not None):
            return [f"~ {name}: throttled expected {_yes(wanted)}, got {got}"]
        return []
    if match.throttle_seconds != wanted.seconds or (
        wanted.key is not None and wanted.key != match.throttle_key
    ):
        want = f"{wanted.window} ({wanted.seconds}s)" + (
            f" per {wanted.key}" if wanted.key is not None else ""
        )
        return [f"~ {name}: throttled expected {want}, got {got}"]
    return []


def _throttle_text(match: RuleMatch) -> str:
    if match.throttle_seconds is None:
        return "not throttled"
    return f"{match.throttle_seconds}s per {match.throttle_key}"


def _targets(targets: Iterable[str]) -> str:
    return "[" + ", ".join(targets) + "]"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def format_results(results: Sequence[CaseResult]) -> str:
    """A report: one line per passing case, a diff under each failing one, a summary."""
    lines: list[str] = []
    for result in results:
        where = result.loaded.file
        if result.loaded.line is not None:
            where += f":{result.loaded.line}"
        name = result.loaded.case.name
        if result.passed:
            lines.append(f"ok    {where}: case {name!r}")
            continue
        lines.append(f"FAIL  {where}: case {name!r}")
        lines.append("      expected: " + _summary(result.loaded.case.expect))
        lines.append("      got:      " + _fired_summary(result.fired))
        lines.extend(f"      {difference}" for difference in result.differences)
    failed = sum(not r.passed for r in results)
    lines.append(
        f"{len(results)} case{'s' if len(results) != 1 else ''}: "
        f"{len(results) - failed} passed, {failed} failed"
    )
    return "\n".join(lines)


def _summary(expect: Sequence[Expectation]) -> str:
    if not expect:
        return "no rule fires"
    return "; ".join(f"{e.rule} -> {_targets(e.targets)}" for e in expect)


def _fired_summary(fired: Sequence[RuleMatch]) -> str:
    if not fired:
        return "no rule fires"
    return "; ".join(f"{m.rule} -> {_targets(m.targets)}" for m in fired)


def results_as_dict(results: Sequence[CaseResult]) -> dict[str, Any]:
    """A JSON-able form (for `rules test --cases PATH --json`)."""
    return {
        "passed": all(r.passed for r in results),
        "cases": [
            {
                "file": r.loaded.file,
                "line": r.loaded.line,
                "case": r.loaded.case.name,
                "passed": r.passed,
                "fired": [{"rule": m.rule, "targets": list(m.targets)} for m in r.fired],
                "differences": list(r.differences),
            }
            for r in results
        ],
    }
