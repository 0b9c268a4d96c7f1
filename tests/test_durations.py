"""The one duration grammar, as settings, rules, the CLI and the admin API read it."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from receiver.durations import parse_duration
from receiver.routing.model import Seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5h", 5400.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("1m30s", 90.0),
        ("1d12h", 129600.0),
        ("250ms", 0.25),
        ("1s500ms", 1.5),
        (" 2H ", 7200.0),
        ("45", 45.0),
        ("0.5", 0.5),
        ("0s", 0.0),
    ],
)
def test_a_duration_reads_as_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", " ", "h", "1w", "-1h", "1h30", "s1", ".5h", "1.h", "1e3s", "1,5h", "ten"]
)
def test_anything_else_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="1h30m"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("1.5h", 5400), ("1h30m", 5400), ("500ms", 1)]
)
def test_a_rule_window_is_whole_seconds_rounded_up(text: str, seconds: int) -> None:
    assert TypeAdapter(Seconds).validate_python(text) == seconds


@pytest.mark.parametrize("value", ["0s", "400d", "1w", 30])
def test_a_rule_window_must_be_a_positive_duration_within_a_year(value: object) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Seconds).validate_python(value)
