"""Handles on the fakes of what we do not own: the Partner API, a json:// sink, an SMTP mailbox.

The fixtures that start them (`hub`, `sink`, `mailbox`) are in tests/conftest.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from receiver.dev.fake_hub import FakeHubState
from receiver.dev.sink import SinkState

PARTNER_ID = "Zx9PA"
API_KEY = "partner-api-key-for-tests"


@dataclass(frozen=True)
class Hub:
    state: FakeHubState
    url: str

    def channel_lookups(self) -> list[dict[str, str]]:
        """The query strings of every channels-list request the fake answered."""
        path = f"/partners/{PARTNER_ID}/channels"
        return [r.query for r in self.state.calls(method="GET", path=path)]

    def client_lookups(self) -> list[dict[str, str]]:
        path = f"/partners/{PARTNER_ID}/clients"
        return [r.query for r in self.state.calls(method="GET", path=path)]

    def go_down(self) -> None:
        """Answer every request with a 500 until `come_back()`."""
        self.state.fail_next(100_000, status=500)

    def come_back(self) -> None:
        while self.state.take_failure() is not None:
            pass


@dataclass(frozen=True)
class Sink:
    state: SinkState
    base_url: str

    def json_url(self, path: str = "/hook", *, auth: str = "", query: str = "") -> str:
        """The Apprise json:// URL that posts to `path` on the sink."""
        host = self.base_url.removeprefix("http://")
        userinfo = f"{auth}@" if auth else ""
        return f"json://{userinfo}{host}{path}" + (f"?{query}" if query else "")
