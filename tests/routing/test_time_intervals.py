"""Time intervals (Alertmanager's shape): membership and window ends across zones and DST."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from receiver.routing import time_intervals as ti
from receiver.routing.time_intervals import TimeSpec, hold_for, in_interval, window_end

BERLIN_NIGHTS = (TimeSpec(times=((22 * 60, 24 * 60), (0, 7 * 60)), location="Europe/Berlin"),)
WEEKDAYS_9_TO_5 = (TimeSpec(times=((9 * 60, 17 * 60),), weekdays=((0, 4),)),)
LAST_DAY = (TimeSpec(days_of_month=((-1, -1),)),)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("intervals", "now", "expected"),
    [
        (BERLIN_NIGHTS, utc(2026, 1, 15, 21, 30), True),  # 22:30 CET
        (BERLIN_NIGHTS, utc(2026, 1, 15, 20, 59), False),  # 21:59 CET
        (BERLIN_NIGHTS, utc(2026, 7, 15, 20, 30), True),  # 22:30 CEST
        (BERLIN_NIGHTS, utc(2026, 7, 15, 5, 0), False),  # 07:00 CEST: end is excluded
        (WEEKDAYS_9_TO_5, utc(2026, 6, 5, 16, 59), True),  # a Friday
        (WEEKDAYS_9_TO_5, utc(2026, 6, 6, 12, 0), False),  # a Saturday
        (LAST_DAY, utc(2026, 2, 28, 12, 0), True),
        (LAST_DAY, utc(2024, 2, 28, 12, 0), False),  # leap year: the 29th is last
        ((TimeSpec(),), utc(2026, 1, 1, 0, 0), True),
        ((), utc(2026, 1, 1, 0, 0), False),
    ],
)
def test_in_interval_reads_each_part_in_its_location(
    intervals: tuple[TimeSpec, ...], now: datetime, expected: bool
) -> None:
    assert in_interval(intervals, now) is expected


@pytest.mark.parametrize(
    ("intervals", "now", "end"),
    [
        # Spring forward in Berlin (2026-03-29): 07:00 CEST is 05:00 UTC, not 06:00.
        (BERLIN_NIGHTS, utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 5, 0)),
        # Fall back (2026-10-25): 07:00 CET is 06:00 UTC.
        (BERLIN_NIGHTS, utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 6, 0)),
        (WEEKDAYS_9_TO_5, utc(2026, 6, 5, 10, 0), utc(2026, 6, 5, 17, 0)),
        (WEEKDAYS_9_TO_5, utc(2026, 6, 6, 10, 0), utc(2026, 6, 6, 10, 0)),  # not in it
        ((TimeSpec(),), utc(2026, 1, 1, 0, 0), None),  # always on never ends
    ],
)
def test_window_end_is_the_first_instant_outside(
    intervals: tuple[TimeSpec, ...], now: datetime, end: datetime | None
) -> None:
    assert window_end(intervals, now) == end


def test_active_during_holds_outside_the_window_until_it_begins() -> None:
    hold = hold_for(
        mute_during=(),
        active_during=("office",),
        intervals={"office": WEEKDAYS_9_TO_5},
        now=utc(2026, 6, 6, 12, 0),  # Saturday noon
    )
    assert hold is not None
    assert hold.held_by == "inactive:office"
    assert hold.until == utc(2026, 6, 8, 9, 0)  # Monday 09:00


@pytest.mark.parametrize(
    ("parse", "value", "expected"),
    [
        (ti.parse_weekdays, "monday:friday", (0, 4)),
        (ti.parse_weekdays, "Sunday", (6, 6)),
        (ti.parse_months, "january:march", (1, 3)),
        (ti.parse_months, 12, (12, 12)),
        (ti.parse_days_of_month, "-3:-1", (-3, -1)),
        (ti.parse_years, "2026:2027", (2026, 2027)),
    ],
)
def test_alertmanager_ranges_parse(parse: ti.SpanParser, value: str, expected: object) -> None:
    assert parse(value) == expected


@pytest.mark.parametrize(
    ("parse", "value"),
    [
        (ti.parse_weekdays, "friday:monday"),
        (ti.parse_weekdays, "funday"),
        (ti.parse_months, "13"),
        (ti.parse_days_of_month, "0"),
        (ti.parse_days_of_month, "-3:5"),
        (ti.parse_years, "2027:2026"),
    ],
)
def test_bad_ranges_are_refused(parse: ti.SpanParser, value: str) -> None:
    with pytest.raises(ValueError):
        parse(value)


@pytest.mark.parametrize(
    ("start", "end"), [("07:00", "22:00"), ("22:00", "07:00"), ("24:00", "24:00"), ("9:5", "10:00")]
)
def test_times_must_be_ordered_clock_times(start: str, end: str) -> None:
    if (start, end) == ("07:00", "22:00"):
        assert ti.parse_times(start, end) == (420, 1320)
        return
    with pytest.raises(ValueError):
        ti.parse_times(start, end)


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="Mars/Base"):
        ti.parse_zone("Mars/Base")
