"""Dashboard logins: a signed, encrypted session cookie, its CSRF token, and slowing guessers.

The cookie holds a random CSRF token and when the login happened, sealed with Fernet under
a key derived from ADMIN_TOKEN (HKDF): never the token itself. Changing ADMIN_TOKEN ends
every session; every web process derives the same key, so any of them accepts a login made
on another. A session lasts UI_SESSION_TTL; logging out clears the cookie in that browser.

Wrong tokens are counted per remote address (in this process): after FREE_FAILURES, each
further try must wait twice as long as the one before (up to MAX_WAIT) and is answered 429
until then, without the token being looked at.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

COOKIE = "hub_session"
CSRF_FIELD = "csrf"
FREE_FAILURES = 3
MAX_WAIT = 300.0
TRACKED_ADDRESSES = 10_000


@dataclass(frozen=True)
class Session:
    csrf: str
    issued_at: float


class SessionBox:
    """Seals and opens session cookies under a key derived from the admin token."""

    def __init__(self, admin_token: str, *, ttl: float) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"hub-receiver ui session v1"
        ).derive(admin_token.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self._token = admin_token.encode()
        self.ttl = ttl

    def token_matches(self, given: str) -> bool:
        return hmac.compare_digest(given.strip().encode(), self._token)

    def new_session(self, *, now: float) -> tuple[Session, str]:
        session = Session(csrf=secrets.token_urlsafe(32), issued_at=now)
        payload = orjson.dumps({"csrf": session.csrf, "iat": session.issued_at})
        return session, self._fernet.encrypt_at_time(payload, int(now)).decode()

    def open(self, cookie: str | None, *, now: float) -> Session | None:
        """The session in `cookie`; None when absent, forged, sealed under another token,
        or older than the TTL."""
        if not cookie:
            return None
        try:
            payload = self._fernet.decrypt_at_time(
                cookie.encode(), ttl=int(self.ttl), current_time=int(now)
            )
            data = orjson.loads(payload)
            return Session(csrf=str(data["csrf"]), issued_at=float(data["iat"]))
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None


def csrf_matches(session: Session, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), session.csrf.encode())


@dataclass
class _Failures:
    count: int
    last: float


class LoginLimiter:
    """Wrong-token counts per remote address, bounded in memory."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._now = clock

    def wait_for(self, address: str) -> float:
        """Seconds this address must still wait before its next try (0: may try now)."""
        failures = self._failures.get(address)
        if failures is None or failures.count < FREE_FAILURES:
            return 0.0
        wait = min(2.0 ** (failures.count - FREE_FAILURES), MAX_WAIT)
        return max(0.0, failures.last + wait - self._now())

    def failed(self, address: str) -> int:
        """Count a wrong token; return how many in a row this address has sent."""
        failures = self._failures.pop(address, None) or _Failures(0, 0.0)
        failures.count += 1
        failures.last = self._now()
        self._failures[address] = failures
        while len(self._failures) > TRACKED_ADDRESSES:
            self._failures.popitem(last=False)
        return failures.count

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
