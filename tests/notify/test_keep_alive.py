"""Sends to one HTTP target reuse a kept-alive connection; cookies do not carry over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import requests

from receiver.notify import apprise as transport


@dataclass
class Counted:
    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def counting_server(
    *, set_cookie: bool = False, close_after_answer: bool = False
) -> AsyncIterator[Counted]:
    """A small HTTP/1.1 server on loopback that keeps connections open and counts them."""
    counted = Counted()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counted.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                await reader.readexactly(length)
                counted.requests.append(head)
                cookie = b"Set-Cookie: session=abc; Path=/\r\n" if set_cookie else b""
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + cookie + b"\r\nok")
                await writer.drain()
                if close_after_answer:  # without saying so: the client finds out later
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    counted.port = server.sockets[0].getsockname()[1]
    try:
        yield counted
    finally:
        server.close()
        await server.wait_closed()


async def test_sends_to_one_target_reuse_a_connection() -> None:
    async with counting_server() as server:
        url = f"json://127.0.0.1:{server.port}/hook"
        for n in range(10):
            result = await transport.send(url, title="t", body=str(n))
            assert result.ok, result.error
        assert len(server.requests) == 10
        # A connection per send before: now one per sending thread that took a send.
        assert server.connections <= 3


async def test_a_connection_the_target_closed_is_opened_again_not_failed_on() -> None:
    async with counting_server(close_after_answer=True) as server:
        url = f"json://127.0.0.1:{server.port}/hook"
        for n in range(3):
            result = await transport.send(url, title="t", body=str(n))
            assert result.ok, result.error
            await asyncio.sleep(0.05)  # the close reaches the client's kept connection
        assert len(server.requests) == 3
        assert server.connections == 3


async def test_a_cookie_one_send_was_given_is_not_sent_by_the_next() -> None:
    async with counting_server(set_cookie=True) as server:
        url = f"json://127.0.0.1:{server.port}/hook"
        for n in range(3):
            assert (await transport.send(url, title="t", body=str(n))).ok
        assert not any(b"cookie:" in head.lower() for head in server.requests)


def test_requests_outside_a_send_are_the_librarys_own() -> None:
    # Not one of our sends: the wrapped function passes through to requests' own.
    assert requests.post.__wrapped__ is requests.api.post  # type: ignore[attr-defined]
    assert not transport._pooled_http.get()
