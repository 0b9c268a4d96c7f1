"""How the Partner API knows us: an API key header, or bearer tokens from `POST /token`.

Both are `httpx.Auth` flows, so the client's retry loop and operations never see credentials.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass

import httpx

from receiver.partner.errors import PartnerAPIError, read_json, status_error

logger = logging.getLogger("receiver.partner")

# A token response without `expires_in` is assumed short-lived: a wrong guess only costs an
# extra /token call, while a long guess would cost a 401 round trip on every stale use.
DEFAULT_TOKEN_TTL = 3600.0
_TOKEN_MARGIN_MAX = 60.0


class ApiKeyAuth(httpx.Auth):
    """Send the partner's API key as `X-API-Key` on every request."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def __repr__(self) -> str:
        return "ApiKeyAuth(api_key='***')"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-API-Key"] = self._api_key
        yield request

    def secrets(self) -> tuple[str | None, ...]:
        """What to scrub from text the server sends back."""
        return (self._api_key,)


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float  # on the auth's monotonic clock

    def __repr__(self) -> str:
        return f"_Token(value='***', refresh_at={self.refresh_at!r})"


class TokenAuth(httpx.Auth):
    """Bearer tokens from `POST /token` (username and password), for `httpx.AsyncClient`.

    The token is fetched on first use and again shortly before it expires, and once more when
    a request is refused with 401 (then the request is sent a second time, and its answer is
    final). One lock makes concurrent requests share a single `/token` call: the first fetches,
    the others wait and reuse its token. A refused or unreadable `/token` answer raises
    `PartnerAPIError` out of the request. `on_token(seconds, outcome)` hears of every
    `/token` answer and must not raise.
    """

    requires_response_body = True  # the /token answer is read inside the flow

    def __init__(
        self,
        *,
        token_url: str,
        username: str,
        password: str,
        clock: Callable[[], float] = time.monotonic,
        on_token: Callable[[float, str], None] | None = None,
    ) -> None:
        self._token_url = token_url
        self._username = username
        self._password = password
        self._clock = clock
        self._on_token = on_token
        self._token: _Token | None = None
        # Held across the /token round trip. An asyncio.Lock has no owner, so httpx closing
        # the flow (aclose on cancellation) releases it whichever task runs the close.
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"TokenAuth(token_url={self._token_url!r}, password='***')"

    def secrets(self) -> tuple[str | None, ...]:
        """What to scrub from text the server sends back."""
        return (self._password, self._token.value if self._token else None)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("TokenAuth needs httpx.AsyncClient: it serialises refreshes with a lock")
        yield request  # pragma: no cover - makes this a generator, as httpx expects

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        refused: str | None = None
        for _ in range(2):  # the request, and once more with a fresh token after a 401
            async with self._lock:
                token = self._usable(refused=refused)
                if token is None:
                    started = time.perf_counter()
                    answer = yield self._token_request(request)
                    await answer.aread()
                    token = self._accept(answer, seconds=time.perf_counter() - started)
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request
            if response.status_code != 401 or refused is not None:
                return
            logger.info(
                "partner api %s %s -> 401, refreshing the token once",
                request.method,
                request.url.path,
            )
            refused = token

    def _usable(self, *, refused: str | None) -> str | None:
        """The cached token, unless it is due for refresh or is the one just refused."""
        cached = self._token
        if cached is None:
            return None
        # Only drop the token that failed: a concurrent request may already have replaced it.
        if cached.value == refused or self._clock() >= cached.refresh_at:
            self._token = None
            return None
        return cached.value

    def _token_request(self, request: httpx.Request) -> httpx.Request:
        return httpx.Request(
            "POST",
            self._token_url,
            json={"username": self._username, "password": self._password},
            headers={"Accept": "application/json"},
            extensions=dict(request.extensions),  # the client's timeout
        )

    def _accept(self, response: httpx.Response, *, seconds: float) -> str:
        try:
            self._token = self._read_token(response)
        except PartnerAPIError as error:
            if self._on_token is not None:
                self._on_token(seconds, error.kind)
            raise
        if self._on_token is not None:
            self._on_token(seconds, "ok")
        return self._token.value

    def _read_token(self, response: httpx.Response) -> _Token:
        error = status_error(response, method="POST", path="/token", secrets=(self._password,))
        if error is not None:
            raise error
        body = read_json(response, method="POST", path="/token")
        value = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise PartnerAPIError(
                "POST /token answered without an access_token",
                kind="bad_response",
                permanent=False,
            )
        expires_in = body.get("expires_in")
        ttl = (
            float(expires_in)
            if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
            else DEFAULT_TOKEN_TTL
        )
        margin = min(_TOKEN_MARGIN_MAX, ttl / 10)
        return _Token(value=value, refresh_at=self._clock() + ttl - margin)
