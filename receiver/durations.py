"""The one duration grammar, used by settings, rules, the CLI and the admin API.

A duration is one or more parts, each a number and a unit: `90s`, `10m`, `1.5h`, `1h30m`,
`2d`, `250ms`. Units are `ms`, `s`, `m`, `h`, `d`, in any case; numbers may have a decimal
part; spaces are ignored (`1h 30m`). A bare number (`45`) means seconds, which keeps
`SWEEP_INTERVAL=45` working. Limits (longer than zero, at most a year) are the caller's.
"""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"\d+(?:\.\d+)?"
# `ms` before `m`, or "250ms" would read as 250 minutes and a stray "s".
_PART = re.compile(rf"({_NUMBER})(ms|s|m|h|d)")
_WHOLE = re.compile(rf"(?:{_NUMBER}(?:ms|s|m|h|d))+|{_NUMBER}")
HINT = "use a number and a unit: 90s, 10m, 1.5h, 1h30m, 2d"


def parse_duration(text: str) -> float:
    """Return the number of seconds in `text`; raise ValueError when it is not a duration."""
    cleaned = "".join(text.split()).lower()
    if not _WHOLE.fullmatch(cleaned):
        raise ValueError(f"{text!r} is not a duration; {HINT}")
    if not cleaned[-1].isalpha():
        return float(cleaned)
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(cleaned))
