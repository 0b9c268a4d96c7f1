"""Constants and small helpers shared by the Partner API tests."""

from __future__ import annotations

PARTNER_ID = "Xk9pL2PA"
# Distinctive values, so a leak is found by a plain substring search.
API_KEY = "apikey-SECRET-5f1c9e77"
USERNAME = "partner-user"
PASSWORD = "password-SECRET-8d2b41"
TOKEN_TTL = 3600


class ManualClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SleepRecorder:
    """Stands in for asyncio.sleep: records each requested delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
