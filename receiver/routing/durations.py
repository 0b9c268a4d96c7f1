"""Parse human durations such as ``30s``, ``10m``, ``1h``, ``1d`` (or ``1h30m``)."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+)([smhd])")
_WHOLE = re.compile(r"(?:\d+[smhd])+")
MAX_SECONDS = 366 * 86400


def parse_duration(text: str) -> int:
    """Return the number of seconds in `text`; raise ValueError when it is not a duration."""
    cleaned = text.strip().lower()
    if not _WHOLE.fullmatch(cleaned):
        raise ValueError(
            f"{text!r} is not a duration; use a number and a unit: 30s, 10m, 1h, 1d (or 1h30m)"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(cleaned))
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    if seconds > MAX_SECONDS:
        raise ValueError(f"{text!r} is longer than a year")
    return seconds
