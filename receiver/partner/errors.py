"""How a Partner API call fails: one exception type, and the reading of a response into it.

Every failure leaves `receiver.partner` as a `PartnerAPIError`, whose `kind` says what went
wrong and whose `permanent` says whether trying the same call later can help:

    PartnerAPIError
      kind="timeout"        no answer within `timeout`             retried, then permanent=False
      kind="connect"        refused / reset / broken connection    retried, then permanent=False
      kind="rate_limited"   HTTP 429 (Retry-After honoured)        retried, then permanent=False
      kind="server"         HTTP 5xx                               retried, then permanent=False
      kind="bad_response"   2xx with invalid JSON or odd shape     not retried,  permanent=False
      kind="auth"           HTTP 401/403, or /token refused        not retried,  permanent=True
      kind="client"         any other HTTP 4xx (e.g. 404)          not retried,  permanent=True

Messages carry method, path and status, never a secret: text the server sends back is
scrubbed of our own credentials before it is kept (`scrub`).
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

ErrorKind = Literal[
    "timeout", "connect", "rate_limited", "server", "client", "bad_response", "auth"
]
RETRYABLE: frozenset[ErrorKind] = frozenset({"timeout", "connect", "rate_limited", "server"})


class PartnerAPIError(Exception):
    """A Partner API call failed; `permanent` says whether a later retry can help."""

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        permanent: bool,
        status_code: int | None = None,
        developer_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind: ErrorKind = kind
        self.permanent = permanent
        self.status_code = status_code
        self.developer_message = developer_message
        self.retry_after = retry_after  # seconds the server asked us to wait (429 only)

    def __repr__(self) -> str:
        return (
            f"PartnerAPIError({self.message!r}, kind={self.kind!r}, "
            f"status_code={self.status_code!r}, permanent={self.permanent!r})"
        )

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


def transport_error(
    exc: httpx.TransportError, *, method: str, path: str, timeout: float
) -> PartnerAPIError:
    """Classify a request that got no answer: a timeout, or a broken connection."""
    if isinstance(exc, httpx.TimeoutException):
        return PartnerAPIError(
            f"{method} {path} timed out after {timeout}s", kind="timeout", permanent=False
        )
    return PartnerAPIError(
        f"{method} {path} failed: {type(exc).__name__}", kind="connect", permanent=False
    )


def read_json(response: httpx.Response, *, method: str, path: str) -> Any:
    """Return the body of a 2xx answer or raise PartnerAPIError if it is not JSON."""
    try:
        return response.json()
    except ValueError:
        raise PartnerAPIError(
            f"{method} {path} answered {response.status_code} with invalid JSON",
            kind="bad_response",
            permanent=False,
            status_code=response.status_code,
        ) from None


def status_error(
    response: httpx.Response, *, method: str, path: str, secrets: Iterable[str | None]
) -> PartnerAPIError | None:
    """Classify a non-2xx answer (its body must have been read); None for a 2xx."""
    code = response.status_code
    if 200 <= code < 300:
        return None
    developer_message = scrub(_developer_message(response), secrets)
    detail = f": {developer_message}" if developer_message else ""
    kind: ErrorKind
    if code in (401, 403):
        kind, permanent = "auth", True
    elif code == 429:
        kind, permanent = "rate_limited", False
    elif code >= 500:
        kind, permanent = "server", False
    elif 400 <= code < 500:
        kind, permanent = "client", True
    else:
        kind, permanent = "bad_response", False
    return PartnerAPIError(
        f"{method} {path} answered {code}{detail}",
        kind=kind,
        permanent=permanent,
        status_code=code,
        developer_message=developer_message,
        retry_after=_retry_after(response) if code == 429 else None,
    )


def scrub(text: str | None, secrets: Iterable[str | None]) -> str | None:
    """Remove our own secrets from text the server sent back (it may echo them)."""
    if text is None:
        return None
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _developer_message(response: httpx.Response) -> str | None:
    """Read 360dialog's `{"meta": {"developer_message": ...}}` error body, if it is one."""
    try:
        body = response.json()
    except ValueError:
        return None
    meta = body.get("meta") if isinstance(body, dict) else None
    message = meta.get("developer_message") if isinstance(meta, dict) else None
    return message if isinstance(message, str) and message else None


def _retry_after(response: httpx.Response) -> float | None:
    """Parse Retry-After as seconds or as an HTTP date; None when absent or unreadable."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
