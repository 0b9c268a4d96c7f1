"""Wait for something a running app (or process) does in its own time, without fixed sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float = 8.0,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """Call `check` until it returns something truthy; fail with its last value after `timeout`.

    `timeout` is only how long to wait before calling it a failure: a passing check returns at
    once, so a generous default costs nothing on a healthy run and spares a loaded machine.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            waiting_for = f" waiting for {what}" if what else ""
            raise AssertionError(f"still {value!r} after {timeout}s{waiting_for}")
        await asyncio.sleep(interval)
