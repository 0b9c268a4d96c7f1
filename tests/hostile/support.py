"""What the hostile-input tests share: capturing every log record, checking answers."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import threading
import traceback
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from receiver import logs

# Loggers that speak at DEBUG about every statement or byte; they never see our data in a
# form worth scanning, and they would make a fuzz run several times slower.
NOISY = ("aiosqlite", "asyncio", "hpack", "httpcore", "multipart", "sqlalchemy.engine")


class LogCapture(logging.Handler):
    """A handler on the root logger that keeps every record (thread-safe)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self._records: list[logging.LogRecord] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            self._records.append(record)

    @property
    def records(self) -> list[logging.LogRecord]:
        with self._guard:
            return list(self._records)

    def since(self, mark: int) -> list[logging.LogRecord]:
        return self.records[mark:]

    def mark(self) -> int:
        with self._guard:
            return len(self._records)

    @classmethod
    @contextlib.contextmanager
    def installed(cls, level: int = logging.DEBUG, *, quiet: bool = True) -> Iterator[LogCapture]:
        capture = cls()
        root = logging.getLogger()
        previous = root.level
        levels = {name: logging.getLogger(name).level for name in NOISY}
        if quiet:
            for name in NOISY:
                logging.getLogger(name).setLevel(logging.WARNING)
        root.addHandler(capture)
        root.setLevel(level)
        try:
            yield capture
        finally:
            root.removeHandler(capture)
            root.setLevel(previous)
            for name, value in levels.items():
                logging.getLogger(name).setLevel(value)


def rendered(record: logging.LogRecord) -> str:
    """Everything a log record could put on a screen: message, extras, traceback."""
    parts = [record.name, record.levelname]
    try:
        parts.append(record.getMessage())
    except Exception as exc:  # a broken format string is itself worth seeing
        parts.append(f"<unformattable {exc!r}: {record.msg!r} % {record.args!r}>")
    parts.append(repr(record.__dict__))
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(record.exc_info[1])))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


def troubles(records: list[logging.LogRecord]) -> list[str]:
    """Records at ERROR or above, and any record that carries a traceback."""
    return [
        rendered(record)
        for record in records
        if record.levelno >= logging.ERROR or record.exc_info or record.exc_text
    ]


def assert_json_error(response: httpx.Response) -> None:
    """A refusal in the app's one error shape: JSON `{"error": ..., "detail": ...}`."""
    assert response.headers.get("content-type", "").startswith("application/json"), (
        response.status_code,
        response.headers,
        response.text[:500],
    )
    document = response.json()
    assert isinstance(document, dict), document
    assert isinstance(document.get("error"), str), document
    assert document["error"], document
    assert isinstance(document.get("detail"), str), document
    assert document["detail"], document


async def raw_request(
    base_url: str,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
) -> httpx.Response:
    """Send a request byte for byte (httpx refuses, e.g., a header value ending in a blank)."""
    url = urlsplit(base_url)
    assert url.hostname is not None
    assert url.port is not None
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        head = [
            f"{method} {path} HTTP/1.1".encode(),
            f"host: {url.hostname}:{url.port}".encode(),
            b"connection: close",
            f"content-length: {len(body)}".encode(),
            *(name + b": " + value for name, value in headers),
        ]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = data.partition(b"\r\n")
    header_block, _, content = rest.partition(b"\r\n\r\n")
    answer_headers = [
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(b":") for line in header_block.split(b"\r\n"))
        if name
    ]
    return httpx.Response(int(status_line.split()[1]), headers=answer_headers, content=content)


# Loggers whose level `configure_logging` sets; restored afterwards so other tests see none
# of it.
_CONFIGURED_LOGGERS = (
    "",
    "apprise",
    "sqlalchemy.engine",
    "httpx",
    "httpcore",
    "uvicorn.access",
    "alembic.runtime.plugins",
    "mail.log",
)


@contextlib.contextmanager
def json_log_lines(level: str = "DEBUG") -> Iterator[io.StringIO]:
    """Run `receiver.logs.configure_logging(fmt="json")` into a buffer, as `serve` would log."""
    levels = {name: logging.getLogger(name).level for name in _CONFIGURED_LOGGERS}
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        logs.configure_logging(level=level, fmt="json")
    handler = logs._CONFIGURED_HANDLER  # the module keeps it so a second call replaces it
    try:
        yield buffer
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
        logs._CONFIGURED_HANDLER = None
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)
        arq_worker = logging.getLogger("arq.worker")
        for installed in list(arq_worker.filters):
            arq_worker.removeFilter(installed)


def parsed_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    """The JSON log lines written so far (each must be one JSON object)."""
    lines = []
    for line in buffer.getvalue().splitlines():
        if line.strip():
            document = json.loads(line)
            assert isinstance(document, dict), line
            lines.append(document)
    return lines
