"""Serve an ASGI app on a loopback port for as long as a context is open.

Used by `hub-receiver dev` (the fake Partner API, sinks) and by the tests, which need real
HTTP on loopback rather than in-process transports.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signals to whoever owns the process.

    A plain `uvicorn.Server.serve()` replaces the SIGINT/SIGTERM handlers while it runs and
    raises the signal again when it stops: several of them in one process (dev, the worker's
    metrics port) each stop on the first Ctrl-C, one after another, and re-deliver it to
    arq's or the next server's handler on the way out.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve_app(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    lifespan: Literal["auto", "on", "off"] = "auto",
) -> AsyncIterator[str]:
    """Run `app` under uvicorn in this event loop; yield its base URL."""
    port = port or free_port(host)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan=lifespan, access_log=False
    )
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                # uvicorn logs why (usually the port is taken) and raises SystemExit: left in
                # the task it would surface as "Task exception was never retrieved".
                with contextlib.suppress(SystemExit):
                    task.result()  # surfaces any other start-up error
                raise OSError(f"cannot serve on {host}:{port} (see the log above)")
            await asyncio.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        # A server whose start-up failed exits with SystemExit (uvicorn logged why); raised
        # here, it would escape the caller's cleanup (and a test runner's teardown).
        with contextlib.suppress(SystemExit):
            await task
