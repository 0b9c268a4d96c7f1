"""Time intervals in Alertmanager's shape, and when a rule's mute ends (pure, `now` passed in).

An interval is a list of specs; it holds at an instant when any spec does. A spec holds when
every part it gives holds in its `location` (an IANA zone, default UTC): `times` as
[start, end) minutes of the local day (end up to 24:00), `weekdays`, `days_of_month`
(negative counts back from the month's end: -1 is its last day), `months`, `years`; all
ranges inclusive, written `a:b`. As in Alertmanager, a range never wraps: quiet nights are
two ranges, `22:00-24:00` and `00:00-07:00`.

`window_end` walks the instants where some spec can change its answer (each local day's
range edges and midnight) instead of minutes, so a mute of weeks costs a few hundred steps.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = tuple(m.lower() for m in calendar.month_name[1:])
DAY_MINUTES = 24 * 60
# A window that does not end within this horizon is reported as never ending (None).
HORIZON = timedelta(days=2 * 366)
MUTE = "mute"
INACTIVE = "inactive"

Span = tuple[int, int]  # inclusive bounds (minutes: [start, end) instead)
SpanParser = Callable[[str | int], Span]


@dataclass(frozen=True, slots=True)
class TimeSpec:
    """One entry of an interval's `time_intervals`: None parts hold always."""

    times: tuple[Span, ...] | None = None
    weekdays: tuple[Span, ...] | None = None  # 0 = Monday
    days_of_month: tuple[Span, ...] | None = None
    months: tuple[Span, ...] | None = None
    years: tuple[Span, ...] | None = None
    location: str = "UTC"

    def holds(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.location))
        if self.years is not None and not _within(local.year, self.years):
            return False
        if self.months is not None and not _within(local.month, self.months):
            return False
        if self.days_of_month is not None and not _day_within(local.date(), self.days_of_month):
            return False
        if self.weekdays is not None and not _within(local.weekday(), self.weekdays):
            return False
        if self.times is not None:
            minute = local.hour * 60 + local.minute
            return any(start <= minute < end for start, end in self.times)
        return True

    def edges_after(self, now: datetime) -> list[datetime]:
        """Instants after `now` where this spec's answer may change (today's and tomorrow's)."""
        zone = ZoneInfo(self.location)
        today = now.astimezone(zone).date()
        minutes = {0} | {m for span in self.times or () for m in span if m < DAY_MINUTES}
        out: list[datetime] = []
        for day in (today, today + timedelta(days=1)):
            for minute in minutes:
                local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
                moment = local.astimezone(UTC)
                if moment > now:
                    out.append(moment)
        return out


Interval = Sequence[TimeSpec]


def _within(value: int, spans: tuple[Span, ...]) -> bool:
    return any(low <= value <= high for low, high in spans)


def _day_within(day: date, spans: tuple[Span, ...]) -> bool:
    length = calendar.monthrange(day.year, day.month)[1]

    def resolve(n: int) -> int:
        return n if n > 0 else length + 1 + n

    return any(resolve(low) <= day.day <= resolve(high) for low, high in spans)


def in_interval(intervals: Interval, now: datetime) -> bool:
    """Return whether any spec of the interval holds at `now` (an aware datetime)."""
    return any(spec.holds(now) for spec in intervals)


def next_change(
    holds: Callable[[datetime], bool], specs: Interval, now: datetime
) -> datetime | None:
    """Return the first instant after `now` where `holds` differs from now, or None."""
    current = holds(now)
    moment = now
    limit = now + HORIZON
    while moment < limit:
        edges = [e for spec in specs for e in spec.edges_after(moment)]
        # No spec can change before the next local midnight of the earliest zone; a spec
        # list with no parts at all (always on) has midnights too, so this always advances.
        moment = min(edges) if edges else moment + timedelta(days=1)
        if holds(moment) != current:
            return moment
    return None


def window_end(intervals: Interval, now: datetime) -> datetime | None:
    """Return when `intervals` next stops holding (now, if it does not hold); None: never."""
    if not in_interval(intervals, now):
        return now
    return next_change(lambda t: in_interval(intervals, t), intervals, now)


@dataclass(frozen=True, slots=True)
class Hold:
    """Why and until when a rule's deliveries are held (`until` None: no end in sight)."""

    held_by: str
    until: datetime | None
    reason: str


def hold_for(
    *,
    mute_during: Sequence[str],
    active_during: Sequence[str],
    intervals: Mapping[str, Interval],
    now: datetime,
) -> Hold | None:
    """Return the hold a rule's mute/active windows put on a message at `now`, or None.

    Muted while any `mute_during` interval holds, or (given `active_during`) while none of
    those does; held until neither is the case. Unknown names are the loader's to refuse.
    """
    mutes = [(name, intervals.get(name, ())) for name in mute_during]
    actives = [spec for name in active_during for spec in intervals.get(name, ())]

    def muted(at: datetime) -> bool:
        if any(in_interval(specs, at) for _, specs in mutes):
            return True
        return bool(active_during) and not in_interval(actives, at)

    if not muted(now):
        return None
    specs = [spec for _, group in mutes for spec in group] + actives
    until = next_change(muted, specs, now)
    by_mute = next((name for name, specs in mutes if in_interval(specs, now)), None)
    if by_mute is not None:
        held_by = f"{MUTE}:{by_mute}"
        why = f"muted during {by_mute!r}"
    else:
        held_by = f"{INACTIVE}:{','.join(active_during)}"
        why = f"outside its active window{'s' if len(active_during) > 1 else ''} " + ", ".join(
            repr(n) for n in active_during
        )
    when = f"until {until.isoformat(timespec='minutes')}" if until else "with no end in sight"
    return Hold(
        held_by=held_by[:220], until=until, reason=f"held: {why}, {when}; sent as a catch-up"
    )


# Parsing of the YAML values (used by the rules model's validators): ValueError on bad input.


def parse_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (an IANA name, e.g. Europe/Berlin)"
        ) from None
    return value


def parse_times(start: str, end: str) -> Span:
    low, high = _clock(start, allow_24=False), _clock(end, allow_24=True)
    if low >= high:
        raise ValueError(
            f"start_time {start!r} must be before end_time {end!r} "
            "(a range never wraps midnight: use 22:00-24:00 and 00:00-07:00)"
        )
    return low, high


def _clock(value: str, *, allow_24: bool) -> int:
    hours, sep, minutes = value.partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"{value!r} is not a time of day (HH:MM)")
    total = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or total > DAY_MINUTES or (total == DAY_MINUTES and not allow_24):
        raise ValueError(f"{value!r} is not a time of day (00:00 to 24:00)")
    return total


def _range(value: str | int) -> tuple[str, str]:
    text = str(value).strip().lower()
    low, sep, high = text.partition(":")
    return (low, high) if sep else (low, low)


def _named(text: str, names: tuple[str, ...], what: str, first: int) -> int:
    if text in names:
        return names.index(text) + first
    if text.isdigit() and what == "month" and 1 <= int(text) <= 12:
        return int(text)
    raise ValueError(f"{text!r} is not a {what} ({', '.join(names)})")


def parse_weekdays(value: str | int) -> Span:
    low, high = (_named(p, WEEKDAYS, "weekday", 0) for p in _range(value))
    if low > high:
        raise ValueError(f"{value!r}: the first weekday must not come after the last")
    return low, high


def parse_months(value: str | int) -> Span:
    low, high = (_named(p, MONTHS, "month", 1) for p in _range(value))
    if low > high:
        raise ValueError(f"{value!r}: the first month must not come after the last")
    return low, high


def parse_days_of_month(value: str | int) -> Span:
    low, high = (_integer(p, "day of month") for p in _range(value))
    for day in (low, high):
        if day == 0 or not -31 <= day <= 31:
            raise ValueError(f"{value!r}: days of month are 1 to 31, or -31 to -1 from the end")
    if (low > 0) == (high > 0) and low > high:
        raise ValueError(f"{value!r}: the first day must not come after the last")
    if low < 0 < high:
        raise ValueError(
            f"{value!r}: a range may not start counting from the end and end from the start"
        )
    return low, high


def parse_years(value: str | int) -> Span:
    low, high = (_integer(p, "year") for p in _range(value))
    if low < 1 or low > high:
        raise ValueError(f"{value!r} is not a year or range of years (e.g. 2026:2027)")
    return low, high


def _integer(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a {what}") from None
