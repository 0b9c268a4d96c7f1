"""A small HTTP sink that records what Apprise `json://` targets send it.

Used by the delivery tests and by `hub-receiver dev`, so a person can point a rule at
`json://127.0.0.1:PORT/anything` and read `GET /_received` to see what went out.
Failures can be injected (`fail_next`, `always_fail`, `fail_path`, `hang`) to exercise retry
paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# Header values that carry credentials are never kept, so `/_received` is safe to show.
_SECRET_HEADER_WORDS = ("auth", "cookie", "token", "secret", "key", "password")
_REDACTED = "***"
# A dev sink has no business accepting large bodies; Apprise payloads are small.
_MAX_BODY_BYTES = 1_000_000


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int
    received_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": self.body,
            "status": self.status,
            "received_at": self.received_at.isoformat(),
        }


def _safe_headers(request: Request) -> dict[str, str]:
    return {
        name: _REDACTED if any(word in name for word in _SECRET_HEADER_WORDS) else value
        for name, value in request.headers.items()
    }


class SinkState:
    """What the sink received, and how it should answer next. One event loop only."""

    def __init__(self) -> None:
        self._received: list[ReceivedRequest] = []
        self._changed = asyncio.Condition()
        self._fail_next = 0
        self._fail_next_status = 500
        self._always_fail: int | None = None
        self._failing_paths: dict[str, int] = {}
        self._hang_seconds = 0.0
        # Set by recover(): releases requests that are hanging, so a test's server can stop.
        self._released = asyncio.Event()

    @property
    def received(self) -> list[ReceivedRequest]:
        return list(self._received)

    def fail_next(self, n: int, status: int = 500) -> None:
        self._fail_next = n
        self._fail_next_status = status

    def always_fail(self, status: int) -> None:
        self._always_fail = status

    def fail_path(self, path: str, status: int = 500) -> None:
        """Answer every request to `path` with `status` until `heal_path` or `recover()`."""
        self._failing_paths[path] = status

    def heal_path(self, path: str) -> None:
        self._failing_paths.pop(path, None)

    def hang(self, seconds: float) -> None:
        """Sleep `seconds` before answering each request, until `recover()`."""
        self._hang_seconds = seconds
        self._released = asyncio.Event()

    def recover(self) -> None:
        self._fail_next = 0
        self._always_fail = None
        self._failing_paths.clear()
        self._hang_seconds = 0.0
        self._released.set()

    def _next_status(self, path: str = "") -> int:
        if path in self._failing_paths:
            return self._failing_paths[path]
        if self._always_fail is not None:
            return self._always_fail
        if self._fail_next > 0:
            self._fail_next -= 1
            return self._fail_next_status
        return 200

    async def _record(self, entry: ReceivedRequest) -> None:
        async with self._changed:
            self._received.append(entry)
            self._changed.notify_all()

    # A timeout argument (ASYNC109) keeps test code short: `await box.wait_for(2, 1.0)`.
    async def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Wait until at least `count` requests arrived; raise TimeoutError otherwise."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self._received) >= count)
            return list(self._received)


async def _receive(request: Request) -> Response:
    state: SinkState = request.app.state.sink
    try:
        raw = await request.body()
    except ClientDisconnect:
        # The sender gave up (a test's timeout); there is nobody left to answer.
        return Response(status_code=499)
    if len(raw) > _MAX_BODY_BYTES:
        return JSONResponse({"error": "body too large"}, status_code=413)
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", errors="replace")
    status = state._next_status(request.url.path)
    await state._record(
        ReceivedRequest(
            method=request.method,
            path=request.url.path,
            headers=_safe_headers(request),
            body=body,
            status=status,
            received_at=datetime.now(UTC),
        )
    )
    if state._hang_seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state._released.wait(), state._hang_seconds)
    return JSONResponse({"status": status}, status_code=status)


async def _list_received(request: Request) -> Response:
    state: SinkState = request.app.state.sink
    return JSONResponse([entry.as_json() for entry in state.received])


def create_sink_app(state: SinkState) -> Starlette:
    """Build the sink: `GET /_received` lists what arrived; anything else is recorded."""
    app = Starlette(
        routes=[
            Route("/_received", _list_received, methods=["GET"]),
            Route("/{path:path}", _receive, methods=["POST", "PUT", "PATCH", "DELETE"]),
        ]
    )
    app.state.sink = state
    return app
