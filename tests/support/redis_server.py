"""A private `redis-server` for fault tests: stop it and start it again on the same port.

Fault tests must never stop the machine's shared Redis (SERVICES.md), so each one runs its
own throw-away server, in a temporary folder, keeping nothing on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from receiver.http.loopback import free_port

HOST = "127.0.0.1"
START_TIMEOUT = 5.0


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One `redis-server` process on a fixed loopback port, which can be stopped and restarted."""

    def __init__(self, binary: str, directory: Path) -> None:
        self._binary = binary
        self._directory = directory
        self.port = free_port(HOST)
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Start the server (again) on the same port; return once it answers PING."""
        if self.running:
            return
        self._process = await asyncio.create_subprocess_exec(
            self._binary,
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self._directory),
            "--logfile",
            str(self._directory / "redis.log"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while not await asyncio.to_thread(_answers, self.port):
            if self._process.returncode is not None or loop.time() > deadline:
                await self.stop()
                log = (self._directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"private redis-server did not start on {self.port}:\n{log}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop the server and wait until the port refuses connections."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def private_redis() -> AsyncIterator[RedisServer]:
    """Yield a running private Redis (skipped when no `redis-server` binary is installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "no redis-server binary on PATH: the fault test needs its own Redis"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set: a missing server is a failure)")
        pytest.skip(message)
    with tempfile.TemporaryDirectory(prefix="hub-redis-") as folder:
        server = RedisServer(binary, Path(folder))
        await server.start()
        try:
            yield server
        finally:
            await server.stop()
