"""A local SMTP server that keeps the emails Apprise `mailto://` targets send.

Used by the delivery tests and by `hub-receiver dev`, so client emails can be read locally
instead of leaving the machine. aiosmtpd's `Controller` runs its own event loop in a
thread; `Mailbox` is therefore thread-safe and wakes waiters in their own loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from receiver.http.loopback import free_port

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ReceivedEmail:
    mail_from: str
    to: tuple[str, ...]
    subject: str
    body: str
    received_at: datetime


def _body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    content = part.get_content()
    return content if isinstance(content, str) else ""


class Mailbox:
    """Emails received so far, and whether the next ones should be refused."""

    def __init__(self, *, host: str = HOST, port: int = 0) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._messages: list[ReceivedEmail] = []
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._refuse_next = 0
        self._refuse_next_code = 451
        self._refuse_all: int | None = None

    def apprise_url(self, *, sender: str = "hub-receiver@localhost") -> str:
        """Return a recipient-less Apprise `mailto://` URL that sends to this mailbox."""
        return f"mailto://{self.host}:{self.port}?from={sender}"

    @property
    def messages(self) -> list[ReceivedEmail]:
        with self._lock:
            return list(self._messages)

    def refuse_next(self, n: int, code: int = 451) -> None:
        with self._lock:
            self._refuse_next = n
            self._refuse_next_code = code

    def refuse_all(self, code: int = 550) -> None:
        with self._lock:
            self._refuse_all = code

    def recover(self) -> None:
        with self._lock:
            self._refuse_next = 0
            self._refuse_all = None

    def _refusal(self) -> int | None:
        with self._lock:
            if self._refuse_all is not None:
                return self._refuse_all
            if self._refuse_next > 0:
                self._refuse_next -= 1
                return self._refuse_next_code
            return None

    def _add(self, message: ReceivedEmail) -> None:
        with self._lock:
            self._messages.append(message)
            waiters = list(self._waiters)
        for loop, event in waiters:
            # The loop of a finished test may be closed already; nobody waits there.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    # A timeout argument (ASYNC109) keeps test code short: `await box.wait_for(2, 1.0)`.
    async def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedEmail]:
        """Wait until at least `count` emails arrived; raise TimeoutError otherwise."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    waiter[1].clear()
                    if len(self.messages) >= count:
                        return self.messages
                    await waiter[1].wait()
        finally:
            with self._lock:
                self._waiters.remove(waiter)


class _Handler:
    """aiosmtpd handler; runs in the Controller's thread."""

    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        code = self._mailbox._refusal()
        if code is not None:
            return f"{code} Refused by the hub-receiver dev mailbox"
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)  # guaranteed by policy.default
        self._mailbox._add(
            ReceivedEmail(
                mail_from=str(envelope.mail_from or ""),
                to=tuple(str(rcpt) for rcpt in envelope.rcpt_tos),
                subject=str(parsed.get("subject", "")),
                body=_body_text(parsed),
                received_at=datetime.now(UTC),
            )
        )
        return "250 Message accepted for delivery"


@contextlib.contextmanager
def run_mailbox(port: int | None = None, *, host: str = HOST) -> Iterator[Mailbox]:
    """Serve a `Mailbox` on `host:port` (a free port if none) while the context is open.

    Starting blocks the calling thread for a moment (aiosmtpd waits for its thread to
    answer); that is acceptable in tests and at `hub-receiver dev` start-up.
    """
    # aiosmtpd cannot report the port it got from the OS, so port 0 does not work.
    mailbox = Mailbox(host=host, port=port or free_port(host))
    controller = Controller(_Handler(mailbox), hostname=host, port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
