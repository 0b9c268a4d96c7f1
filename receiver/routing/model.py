"""The rules file, as typed pydantic models (config is code: unknown keys are errors).

These models check the *shape* of one file: keys, types, regexes, durations. Checks that
need more than one file (target names, duplicate names) live in `loader`. The field
descriptions feed the published JSON Schema (`hub-receiver rules schema`).
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from receiver.durations import HINT, parse_duration

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


class RulesFile(_Strict):
    """A routing rules file: named Apprise targets and an ordered list of rules."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="hub-receiver routing rules",
    )

    targets: dict[
        TargetName,
        Annotated[str, BeforeValidator(_none_as_empty, json_schema_input_type=str | None)],
    ] = Field(
        default_factory=dict,
        description="Named Apprise URLs; ${VAR} and ${VAR:-default} come from the "
        "environment. An empty value disables the target (deliveries are recorded as "
        "skipped). `client` is built in and cannot be defined here.",
    )
    rules: list[Rule] = Field(
        default_factory=list, description="Rules, evaluated in file order (files by name)."
    )
