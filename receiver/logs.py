"""Logging: one line per fact, JSON when not on a terminal, readable when on one.

Modules log through the standard library (`logging.getLogger("receiver.x")`); structlog's
formatter renders every record, including third-party ones, and adds the context bound with
`bind_event()` (the correlation id, event id) so each line about an event can be followed.
Secrets never reach here: modules log ids, sizes and masked targets only, and the `apprise`
logger stays at INFO because its DEBUG lines print URLs.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import orjson
import structlog

_CONFIGURED_HANDLER: logging.Handler | None = None


def _dumps(value: Any, **_options: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def configure_logging(
    *, level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto"
) -> None:
    global _CONFIGURED_HANDLER  # noqa: PLW0603 - logging is process-wide by nature
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if _CONFIGURED_HANDLER is not None:
        root.removeHandler(_CONFIGURED_HANDLER)
    root.addHandler(handler)
    _CONFIGURED_HANDLER = handler
    root.setLevel(level)
    # Apprise prints URLs (with tokens) at DEBUG; SQL echo would print bound values. Its INFO
    # lines ("Notifying 1 service(s).", "Sent ... notification.") say again what our
    # "delivery sent" line says, twice per send: they show at DEBUG only.
    apprise_level = logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING
    logging.getLogger("apprise").setLevel(max(logging.INFO, apprise_level))
    arq_worker = logging.getLogger("arq.worker")
    for old in [f for f in arq_worker.filters if isinstance(f, _ArqJobLines)]:
        arq_worker.removeFilter(old)
    if root.level > logging.DEBUG:
        arq_worker.addFilter(_ArqJobLines())
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd, in `dev` and tests


class _ArqJobLines(logging.Filter):
    """Drop arq's two INFO lines per job (start `→`, end `←`) outside DEBUG: our own lines
    ("event processed", "delivery sent") say what each job did. Retries, cancellations and
    start-up and shutdown lines still show."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        return not (record.levelno == logging.INFO and ("→" in message or "←" in message))


@contextmanager
def bind_event(
    *, correlation_id: str | None, event_id: int | None = None, **extra: Any
) -> Iterator[None]:
    """Attach the event's correlation id (and more) to every log line inside the block."""
    values = {"correlation_id": correlation_id, "event_id": event_id, **extra}
    values = {k: v for k, v in values.items() if v is not None}
    with structlog.contextvars.bound_contextvars(**values):
        yield
