"""Clients that hang up, stall or send huge headers: the real `serve` process, raw sockets.

`hub-receiver serve` runs as its own process (uvicorn with the options production uses), so
what it logs is read from its output exactly as an operator would see it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from receiver.http.loopback import free_port
from tests.support.processes import ServiceProcess, process_env
from tests.support.waiting import eventually

URL = "/webhooks/partner"
HALF_SENT = (
    b"POST /webhooks/partner HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    b"Content-Length: 1000\r\n\r\n"
    b'{"event": "channel_live", "data": {"id": "kJ2mQ8CH"'
)
DISCONNECTED = "client disconnected before its request was read"


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    env = process_env({"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"})
    env["BODY_TIMEOUT"] = "1"
    web = ServiceProcess("web", "serve", env, log_dir=tmp_path, port=free_port())
    await web.start()
    try:
        yield web
    finally:
        await web.stop()


def log_records(web: ServiceProcess) -> list[dict[str, object]]:
    records = []
    for line in web.log_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


async def exchange(port: int, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send `data`, then read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def send_and_hang_up(port: int, data: bytes) -> None:
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


def status_and_body(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


# --- hang-ups ------------------------------------------------------------------------------


async def test_a_client_that_hangs_up_mid_body_is_one_info_line_without_a_traceback(
    serve: ServiceProcess,
) -> None:
    await send_and_hang_up(serve.port or 0, HALF_SENT)

    async def disconnect_lines() -> list[dict[str, object]]:
        return [r for r in log_records(serve) if r.get("event") == DISCONNECTED]

    await eventually(disconnect_lines, timeout=10.0)
    await serve.stop()  # a stopped server has logged all it ever will about the request
    lines = await disconnect_lines()
    assert len(lines) == 1
    assert lines[0]["level"] == "info"
    assert lines[0]["path"] == URL
    assert "Traceback" not in serve.log_text()
    assert not [r for r in log_records(serve) if r.get("level") in ("error", "critical")]


async def test_after_hundreds_of_half_sent_bodies_healthz_answers_and_the_log_stays_small(
    serve: ServiceProcess,
) -> None:
    count = 300
    log_before = serve.log_path.stat().st_size
    limit = asyncio.Semaphore(50)

    async def one() -> None:
        async with limit:
            await send_and_hang_up(serve.port or 0, HALF_SENT)

    await asyncio.gather(*(one() for _ in range(count)))

    async with httpx.AsyncClient(timeout=10.0) as client:
        response = await client.get(f"{serve.url}/healthz")
    assert response.status_code == 200

    async def all_logged() -> bool:
        lines = [r for r in log_records(serve) if r.get("event") == DISCONNECTED]
        return len(lines) == count

    await eventually(all_logged, timeout=20.0)
    assert "Traceback" not in serve.log_text()
    # One short line per hang-up (each used to be two tracebacks, ~5.8 KB).
    assert serve.log_path.stat().st_size - log_before < count * 400


# --- stalls ----------------------------------------------------------------------------------


async def test_a_body_that_stops_arriving_is_answered_408_after_the_body_timeout(
    serve: ServiceProcess,
) -> None:
    answer = await exchange(serve.port or 0, HALF_SENT)  # and then nothing; BODY_TIMEOUT=1

    status, body = status_and_body(answer)
    assert status == 408
    assert body["error"] == "body_timeout"
    assert b"connection: close" in answer.lower()


async def test_a_body_trickled_byte_by_byte_is_cut_off_at_the_deadline(
    serve: ServiceProcess,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", serve.port or 0)
    try:
        writer.write(HALF_SENT)
        answered = asyncio.ensure_future(reader.read())
        for _ in range(60):  # 60 x 0.1 s: well past the 1 s deadline if each byte reset it
            if answered.done():
                break
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.1)
        answer = await asyncio.wait_for(answered, 10.0)
    finally:
        writer.close()
    assert status_and_body(answer)[0] == 408


async def test_a_head_that_never_ends_is_answered_408_and_an_idle_connection_is_closed(
    serve: ServiceProcess,
) -> None:
    partial = exchange(serve.port or 0, b"GET /healthz HTTP/1.1\r\nHost: test\r\n", timeout=30.0)
    idle = exchange(serve.port or 0, b"", timeout=30.0)  # uvicorn alone held both for good

    partial_answer, idle_answer = await asyncio.gather(partial, idle)

    status, body = status_and_body(partial_answer)
    assert status == 408
    assert body["error"] == "headers_timeout"
    assert idle_answer == b""


# --- header size -----------------------------------------------------------------------------


async def test_a_100_kb_header_is_refused_with_431(serve: ServiceProcess) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"

    answer = await exchange(serve.port or 0, request)

    status, body = status_and_body(answer)
    assert status == 431
    assert body["error"] == "headers_too_large"
    async with httpx.AsyncClient(timeout=10.0) as client:
        assert (await client.get(f"{serve.url}/healthz")).status_code == 200


async def test_ordinary_headers_with_a_large_body_in_the_same_packet_are_accepted(
    serve: ServiceProcess,
) -> None:
    body = b'{"event": "channel_live", "data": {"id": "kJ2mQ8CH"}}' + b" " * 500_000
    request = (
        b"POST /webhooks/partner HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"X-Padding: " + b"p" * 12_000 + b"\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body

    answer = await exchange(serve.port or 0, request)

    status, answered = status_and_body(answer)
    assert status == 200, answered
    assert answered["status"] == "accepted"
