"""The rules file, as typed pydantic models (config is code: unknown keys are errors).

These models check the *shape* of one file: keys, types, regexes, durations. Checks that
need more than one file (target names, duplicate names) live in `loader`. The field
descriptions feed the published JSON Schema (`hub-receiver rules schema`).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from receiver.durations import HINT, parse_duration
from receiver.routing import time_intervals as ti

Scalar = str | int | float | bool | None
MAX_WINDOW_SECONDS = 366 * 86400
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
MAX_INLINE_TEMPLATE = 64 * 1024


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _condition_shorthand(value: object) -> object:
    return value if isinstance(value, dict) else {"equals": value}


def _duration(value: object) -> int:
    if not isinstance(value, str):
        # pydantic turns ValueError (not TypeError) into a validation error.
        raise ValueError(HINT)  # noqa: TRY004
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"{value!r} must be longer than zero")
    if seconds > MAX_WINDOW_SECONDS:
        raise ValueError(f"{value!r} is longer than a year")
    # Throttle windows are whole seconds: round a fraction up so "500ms" is not zero.
    return math.ceil(seconds)


def _none_as_empty(value: object) -> object:
    return "" if value is None else value


def _number(value: object) -> object:
    # A bound may come from ${VAR} expansion as text ("50"); true/false are not numbers.
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")  # noqa: TRY004
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    else:
        raise ValueError(f"expected a number, got {type(value).__name__}")  # noqa: TRY004
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


OneOrMany = Annotated[
    list[Annotated[str, Field(min_length=1)]],
    BeforeValidator(_one_or_many, json_schema_input_type=str | list[str]),
    Field(min_length=1),
]
Seconds = Annotated[int, BeforeValidator(_duration, json_schema_input_type=str)]
Bound = Annotated[float | None, BeforeValidator(_number, json_schema_input_type=float | str | None)]
TemplateName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
TargetName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
IntervalName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """A test on one field. All operators given must hold; lists match if any item does."""

    equals: Scalar = Field(
        default=None,
        description="The field equals this value (compared as text, so 42 equals '42'). "
        "`equals: null` also matches a missing field.",
    )
    one_of: list[Scalar] | None = Field(
        default=None, description="The field equals one of these values."
    )
    not_one_of: list[Scalar] | None = Field(
        default=None,
        description="The field equals none of these values (a missing field passes).",
    )
    pattern: str | None = Field(
        default=None,
        description="A Python regular expression searched for in the field's text "
        "(anchor it with ^...$ for a full match; (?i) for case-insensitive).",
    )
    present: bool | None = Field(
        default=None,
        description="true: the field exists and is not null; false: it is missing or null.",
    )
    lt: Bound = Field(
        default=None,
        description="The field is a number below this one (numeric text such as '9.5' "
        "counts; a missing or non-numeric field fails).",
    )
    le: Bound = Field(default=None, description="The field is a number at most this one.")
    gt: Bound = Field(default=None, description="The field is a number above this one.")
    ge: Bound = Field(default=None, description="The field is a number at least this one.")

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _has_an_operator(self) -> Condition:
        if not self.model_fields_set:
            raise ValueError(
                "empty condition; use equals, one_of, not_one_of, pattern, present, "
                "lt, le, gt or ge"
            )
        return self


ConditionOrShorthand = Annotated[
    Condition,
    BeforeValidator(_condition_shorthand, json_schema_input_type=Condition | Scalar),
]


class StatusMatch(_Strict):
    """A derived channel status change (from the Partner API), e.g. draft -> live."""

    from_: OneOrMany | None = Field(
        default=None,
        alias="from",
        description="Previous status(es); '*' = any; 'none' = no status was known before. "
        "Omitted = any.",
    )
    to: OneOrMany | None = Field(
        default=None, description="New status(es); '*' = any. Omitted = any."
    )


class Match(_Strict):
    """What an event must look like for the rule to fire. Every given part must hold."""

    event: OneOrMany = Field(
        default_factory=lambda: ["*"],
        description="Event type(s), e.g. channel_live or [account_violation, "
        "account_restriction]; '*' = any event, including unknown ones. Default '*'.",
    )
    not_event: OneOrMany | None = Field(
        default=None,
        description="Event type(s) this rule never fires for, e.g. to catch everything "
        "except a few: {event: '*', not_event: [client_created]}.",
    )
    status: StatusMatch | None = Field(
        default=None,
        description="Fire only when the event changed the channel's status "
        "(from/to). `status: {}` = any status change.",
    )
    where: dict[str, ConditionOrShorthand] = Field(
        default_factory=dict,
        description="Conditions keyed by dotted path rooted at event., channel. or client. "
        "(e.g. channel.setup_info.phone_number). A plain value means equals.",
    )


class Rule(_Strict):
    """One routing rule: when `match` holds, notify `notify`."""

    name: str = Field(
        min_length=1, max_length=200, description="Unique name across all rules files."
    )
    description: str = Field(default="", description="Free text for humans.")
    enabled: bool = Field(default=True, description="false: the rule is loaded but never fires.")
    match: Match = Field(description="Conditions; all must hold.")
    notify: OneOrMany = Field(
        description="Target names from `targets`, or the built-in `client` (the channel's "
        "client, by the contact email the Partner API gives)."
    )
    template: TemplateName | None = Field(
        default=None,
        description="Template name, looked up as templates/<audience>/<name>.j2 (user "
        "folder first, then the built-in defaults). Default: the event's own template, "
        "or `status_change` for rules that match on status.",
    )
    title: str | None = Field(
        default=None,
        max_length=MAX_INLINE_TEMPLATE,
        description="Inline Jinja template for the title; overrides the template's title.",
    )
    body: str | None = Field(
        default=None,
        max_length=MAX_INLINE_TEMPLATE,
        description="Inline Jinja template for the body; overrides the template's body.",
    )
    stop: bool = Field(
        default=False,
        description="true: when this rule matches, rules after it (in file order) are "
        "not evaluated. Default false: evaluation continues.",
    )
    throttle: Seconds | None = Field(
        default=None,
        description=(
            "At most one notification per throttle key in this window: 30s, 10m, 1.5h, 1h30m, 1d."
        ),
    )
    throttle_key: str | None = Field(
        default=None,
        min_length=1,
        description="What the throttle counts per: a dotted path (channel.id) or text with "
        "{path} placeholders ('{client.id}-{event.violation_type}'). Default: the channel "
        "id, else the client id, else the event type.",
    )
    group_by: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None,
        min_length=1,
        description="Dotted paths rooted at event., channel. or client. (e.g. [client.id] or "
        "[event.type]): matches with the same values within group_wait become one message "
        "per target that lists them (templates see `group.events` and `group.key`).",
    )
    group_wait: Seconds | None = Field(
        default=None,
        description="How long a new group collects before its first message: 30s, 5m. "
        "Default 30s. Needs group_by.",
    )
    group_interval: Seconds | None = Field(
        default=None,
        description="After a group's message, how long before one follow-up message lists "
        "the members that arrived since: 5m, 1h. Default 5m. Needs group_by.",
    )
    mute_during: list[IntervalName] | None = Field(
        default=None,
        description="Names from `time_intervals`: while any of them holds, this rule's "
        "messages are held (state `held`) and each target gets one catch-up summary "
        "when the window ends.",
    )
    active_during: list[IntervalName] | None = Field(
        default=None,
        description="Names from `time_intervals`: outside all of them, this rule's messages "
        "are held as with `mute_during` and summarised when one of them begins.",
    )


DEFAULT_FAILING_AFTER = 5


def _target_shorthand(value: object) -> object:
    # `name: URL` (or empty) is the short form of `name: {url: URL}`.
    return {"url": value} if value is None or isinstance(value, str) else value


class TargetSpec(_Strict):
    """A named Apprise target, with where to turn when it fails."""

    url: Annotated[str, BeforeValidator(_none_as_empty, json_schema_input_type=str | None)] = Field(
        default="",
        description="The Apprise URL; ${VAR} and ${VAR:-default} come from the environment. "
        "Empty: the target is disabled (deliveries are recorded as skipped).",
    )
    fallback: TargetName | None = Field(
        default=None,
        description="Another target (by name; not `client`) told once when a delivery to this "
        "target dies, and told when this target is failing and when it recovers.",
    )
    failing_after: int = Field(
        default=DEFAULT_FAILING_AFTER,
        ge=1,
        description="Consecutive failed attempts after which the fallback is told that this "
        "target is failing (once; and once when it next succeeds). Default 5.",
    )


TargetEntry = Annotated[
    TargetSpec,
    BeforeValidator(_target_shorthand, json_schema_input_type=str | None | TargetSpec),
]


def _span_list(
    parse: ti.SpanParser,
) -> Any:
    def convert(value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, list):
            raise ValueError("expected a list")  # noqa: TRY004
        return tuple(parse(item) for item in value)

    return BeforeValidator(convert, json_schema_input_type=list[str | int] | None)


Weekdays = Annotated[tuple[tuple[int, int], ...] | None, _span_list(ti.parse_weekdays)]
DaysOfMonth = Annotated[tuple[tuple[int, int], ...] | None, _span_list(ti.parse_days_of_month)]
Months = Annotated[tuple[tuple[int, int], ...] | None, _span_list(ti.parse_months)]
Years = Annotated[tuple[tuple[int, int], ...] | None, _span_list(ti.parse_years)]


class TimeRange(_Strict):
    """A part of the local day, from start_time (included) to end_time (excluded)."""

    start_time: str = Field(description="HH:MM, 00:00 to 23:59.")
    end_time: str = Field(description="HH:MM, after start_time; 24:00 is the end of the day.")

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        ti.parse_times(self.start_time, self.end_time)
        return self

    def span(self) -> tuple[int, int]:
        return ti.parse_times(self.start_time, self.end_time)


class TimeSpecModel(_Strict):
    """When an interval holds: every part given must hold (an empty entry always holds)."""

    times: list[TimeRange] | None = Field(default=None, description="Times of day.")
    weekdays: Weekdays = Field(
        default=None, description="Weekdays or ranges: [monday:friday, sunday]."
    )
    days_of_month: DaysOfMonth = Field(
        default=None,
        description="Days or ranges: ['1:5', '-3:-1'] (negative: from the month's end).",
    )
    months: Months = Field(
        default=None, description="Months by name or number, or ranges: [january:march, 12]."
    )
    years: Years = Field(default=None, description="Years or ranges: ['2026:2027'].")
    location: str = Field(
        default="UTC",
        description="IANA time zone the other parts are read in, e.g. Europe/Berlin.",
    )

    @field_validator("location")
    @classmethod
    def _zone(cls, value: str) -> str:
        return ti.parse_zone(value)

    def compile(self) -> ti.TimeSpec:
        times = None if self.times is None else tuple(t.span() for t in self.times)
        return ti.TimeSpec(
            times=times,
            weekdays=self.weekdays,
            days_of_month=self.days_of_month,
            months=self.months,
            years=self.years,
            location=self.location,
        )


class TimeInterval(_Strict):
    """A named set of times (Alertmanager's shape) for rules' mute_during/active_during."""

    name: IntervalName = Field(description="Unique name across all rules files.")
    time_intervals: list[TimeSpecModel] = Field(
        description="Entries; the interval holds when any entry holds."
    )


class RulesFile(_Strict):
    """A routing rules file: named Apprise targets and an ordered list of rules."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="hub-receiver routing rules",
    )

    targets: dict[TargetName, TargetEntry] = Field(
        default_factory=dict,
        description="Named Apprise URLs (`name: URL`), or `name: {url, fallback, "
        "failing_after}`; ${VAR} and ${VAR:-default} come from the environment. An empty "
        "value disables the target (deliveries are recorded as skipped). `client` is built "
        "in and cannot be defined here.",
    )
    rules: list[Rule] = Field(
        default_factory=list, description="Rules, evaluated in file order (files by name)."
    )
    time_intervals: list[TimeInterval] = Field(
        default_factory=list,
        description="Named time windows for rules' mute_during/active_during "
        "(Alertmanager's time_intervals shape).",
    )
