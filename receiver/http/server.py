"""How uvicorn runs the app: the limits enforced before the app sees a request.

uvicorn caps the request head only under h11 (`h11_max_incomplete_event_size`); under
httptools, which `uvicorn[standard]` picks, a client could send headers without end (a
100 KB header was accepted) and as slowly as it liked (a connection that sends half a head,
or nothing, was held for good). `CappedHttpToolsProtocol` counts the bytes of each request
head and answers 431 past the cap, and gives each head `HEAD_TIMEOUT` to arrive. The cap
travels in `h11_max_incomplete_event_size`, so the same `MAX_HEADER_BYTES` holds (as a 400)
if uvicorn ever falls back to h11.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from receiver.settings import Settings

log = logging.getLogger("receiver.http")

# Imported by name so that uvicorn's worker processes (WEB_CONCURRENCY > 1) load it too.
PROTOCOL = "receiver.http.server:CappedHttpToolsProtocol"
DEFAULT_HEADER_CAP = 16 * 1024
# Seconds for a request line and headers to arrive, from the connection (or the previous
# response). Fixed: uvicorn's Config has no field to carry it, and a real client sends its
# head in one packet; BODY_TIMEOUT then bounds the body.
HEAD_TIMEOUT = 10.0
# After refusing, keep reading (and dropping) the client's bytes this long before closing:
# closing on unread bytes sends a TCP reset, which can destroy the answer on its way.
LINGER = 2.0


class CappedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a cap on the size (431) and time (408) of a head."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_cap = config.h11_max_incomplete_event_size or DEFAULT_HEADER_CAP
        self.in_head = True  # between the end of one request (or the start) and its headers
        self.head_bytes = 0
        self.head_deadline: asyncio.TimerHandle | None = None
        self.refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        # Feed at most what is left of the cap, so a body sent in the same packet as the
        # headers is never counted as head; a head still incomplete at the cap is refused.
        while self.in_head and len(data) > self.header_cap - self.head_bytes:
            room = self.header_cap - self.head_bytes
            head, data = data[:room], data[room:]
            self.head_bytes += len(head)
            if head:
                super().data_received(head)
            if self.transport.is_closing():
                return
            if self.in_head:
                self.refuse_large_head()
                return
        if self.in_head:
            self.head_bytes += len(data)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.disarm_head_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.in_head = True
        self.head_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.in_head and not self.transport.is_closing():
            self.arm_head_deadline()

    def arm_head_deadline(self) -> None:
        self.disarm_head_deadline()
        self.head_deadline = self.loop.call_later(HEAD_TIMEOUT, self.head_too_slow)

    def disarm_head_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def head_too_slow(self) -> None:
        self.head_deadline = None
        if not self.in_head or self.refused or self.transport.is_closing():
            return
        if self.head_bytes == 0:  # an idle connection: nobody to answer
            self.transport.close()
            return
        log.info("request refused: headers not received within %ss; answered 408", HEAD_TIMEOUT)
        self.refuse(
            408, "headers_timeout", f"the request headers did not arrive within {HEAD_TIMEOUT:g} s"
        )

    def refuse_large_head(self) -> None:
        log.info(
            "request refused: headers exceed %d bytes; answered 431",
            self.header_cap,
            extra={"client": self.client[0] if self.client else None},
        )
        self.refuse(
            431,
            "headers_too_large",
            f"the request line and headers exceed {self.header_cap} bytes",
        )

    def refuse(self, status: int, code: str, detail: str) -> None:
        """Answer in the app's error shape and close: the parser is mid-request."""
        body = orjson.dumps({"error": code, "detail": detail})
        head = [STATUS_LINE[status]]
        head.extend(
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        )
        head.append(b"content-type: application/json\r\n")
        head.append(b"content-length: %d\r\n" % len(body))
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        self.refused = True
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer, then end of stream: the client sees both
        self.loop.call_later(LINGER, self.transport.close)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings `serve` runs with (host and port aside)."""
    return {
        "http": PROTOCOL,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "log_config": None,
        "access_log": False,
        "proxy_headers": True,
        "timeout_graceful_shutdown": 15,
    }
