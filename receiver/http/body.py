"""Read a request body without ever buffering more than the limit or waiting past the deadline.

A client that hangs up mid-body raises starlette's `ClientDisconnect`; the app logs it as one
INFO line (`receiver/app.py`), since there is nobody left to answer.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request


class BodyTooLargeError(Exception):
    pass


class BodyTimeoutError(Exception):
    """The body did not arrive in time: the client stalled or trickles bytes."""


async def read_limited_body(request: Request, limit: int, *, timeout: float) -> bytes:
    # From the raw header list: `request.headers` would build a mapping of every header.
    declared = next(
        (
            value.decode("latin-1")
            for name, value in request.scope["headers"]
            if name == b"content-length"
        ),
        None,
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    try:
        # One deadline for the whole body, not per chunk: a byte every few seconds would
        # otherwise hold the connection for as long as the client likes.
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLargeError
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeoutError from None
    return b"".join(chunks)
