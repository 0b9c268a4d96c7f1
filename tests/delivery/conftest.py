from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from receiver.dev.mailbox import Mailbox, run_mailbox
from receiver.dev.sink import SinkState, create_sink_app
from receiver.http.loopback import serve_app


@dataclass(frozen=True)
class Sink:
    state: SinkState
    base_url: str

    def json_url(self, path: str = "/hook", *, auth: str = "", query: str = "") -> str:
        host = self.base_url.removeprefix("http://")
        userinfo = f"{auth}@" if auth else ""
        return f"json://{userinfo}{host}{path}" + (f"?{query}" if query else "")


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    state = SinkState()
    async with serve_app(create_sink_app(state)) as base_url:
        try:
            yield Sink(state, base_url)
        finally:
            # Releases hanging requests so the server can shut down.
            state.recover()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with run_mailbox() as box:
        yield box
