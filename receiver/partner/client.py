"""The only module that talks to the 360dialog Partner API.

Every failure leaves this module as one exception type, whose `kind` says what went wrong and
whose `permanent` says whether trying the same call later can help:

    PartnerAPIError
      kind="timeout"        no answer within `timeout`             retried, then permanent=False
      kind="connect"        refused / reset / broken connection    retried, then permanent=False
      kind="rate_limited"   HTTP 429 (Retry-After honoured)        retried, then permanent=False
      kind="server"         HTTP 5xx                               retried, then permanent=False
      kind="bad_response"   2xx with invalid JSON or odd shape     not retried,  permanent=False
      kind="auth"           HTTP 401/403, or /token refused        not retried,  permanent=True
      kind="client"         any other HTTP 4xx (e.g. 404)          not retried,  permanent=True

Secrets (API key, password, bearer token) never reach log lines, exception messages or reprs:
logs carry only method, path, status, attempt and duration.
"""

from __future__ import annotations

import asyncio
import copy
import email.utils
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import quote

import httpx

logger = logging.getLogger("receiver.partner")

ErrorKind = Literal[
    "timeout", "connect", "rate_limited", "server", "client", "bad_response", "auth"
]
RequestHook = Callable[[str, float, str], None]
"""Called as hook(operation, seconds, outcome) after every HTTP attempt (outcome "ok" or a kind)."""

_T = TypeVar("_T")

_RETRYABLE: frozenset[str] = frozenset({"timeout", "connect", "rate_limited", "server"})
# A token response without `expires_in` is assumed short-lived: a wrong guess only costs an
# extra /token call, while a long guess would cost a 401 round trip on every stale use.
_DEFAULT_TOKEN_TTL = 3600.0
_TOKEN_MARGIN_MAX = 60.0


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
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind: ErrorKind = kind
        self.permanent = permanent
        self.status_code = status_code
        self.developer_message = developer_message

    def __repr__(self) -> str:
        return (
            f"PartnerAPIError({self.message!r}, kind={self.kind!r}, "
            f"status_code={self.status_code!r}, permanent={self.permanent!r})"
        )


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float  # on the client's monotonic clock

    def __repr__(self) -> str:
        return f"_Token(value='***', refresh_at={self.refresh_at!r})"


class PartnerClient:
    """Async client for the Partner API endpoints hub-receiver uses.

    `base_url` includes the API prefix (`https://hub.360dialog.io/api/v2`). Open one per
    process in the lifespan / worker startup and close it with `aclose()`.
    """

    def __init__(
        self,
        *,
        base_url: str,
        partner_id: str,
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        on_request: RequestHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not api_key and not (username and password):
            raise ValueError("PartnerClient needs api_key, or username and password")
        self._base_url = base_url.rstrip("/")
        self._partner_path = f"/partners/{quote(partner_id, safe='')}"
        self._api_key = api_key or None
        self._username = username
        self._password = password
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._on_request = on_request
        self._clock = clock
        self._sleep = sleep
        self._random = random.Random()  # noqa: S311 - jitter, not security
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self._inflight: dict[tuple[str, str], asyncio.Task[Any]] = {}
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )

    def __repr__(self) -> str:
        auth = "api_key" if self._api_key else "token"
        return f"PartnerClient(base_url={self._base_url!r}, auth={auth!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel coalesced fetches still running and close the connection pool."""
        pending = list(self._inflight.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._http.aclose()

    # -- public operations ---------------------------------------------------------------

    async def get_channel(self, channel_id: str) -> dict[str, Any] | None:
        """Return the channel with this id, or None if the partner has no such channel."""
        return await self._coalesced(("channel", channel_id), lambda: self._channel(channel_id))

    async def find_channel_by_phone(self, phone_number: str) -> dict[str, Any] | None:
        """Return the first channel whose setup_info.phone_number equals `phone_number`."""
        page = await self._list(
            operation="find_channel_by_phone",
            resource="channels",
            items_key="partner_channels",
            filters={"setup_info.phone_number": phone_number},
        )
        items: list[dict[str, Any]] = page["partner_channels"]
        return items[0] if items else None

    async def get_client(self, client_id: str) -> dict[str, Any] | None:
        """Return the client (360dialog "Client Hub") with this id, or None."""
        return await self._coalesced(("client", client_id), lambda: self._client(client_id))

    async def list_channels(
        self,
        *,
        filters: Mapping[str, Any] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        sort: str | Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Return one raw page of `GET /partners/{partner_id}/channels`."""
        return await self._list(
            operation="list_channels",
            resource="channels",
            items_key="partner_channels",
            filters=filters,
            limit=limit,
            offset=offset,
            sort=sort,
        )

    async def list_clients(
        self,
        *,
        filters: Mapping[str, Any] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        sort: str | Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Return one raw page of `GET /partners/{partner_id}/clients`."""
        return await self._list(
            operation="list_clients",
            resource="clients",
            items_key="clients",
            filters=filters,
            limit=limit,
            offset=offset,
            sort=sort,
        )

    # -- lookups by id ---------------------------------------------------------------------

    async def _channel(self, channel_id: str) -> dict[str, Any] | None:
        page = await self._list(
            operation="get_channel",
            resource="channels",
            items_key="partner_channels",
            filters={"id": channel_id},
        )
        return self._pick_by_id(page["partner_channels"], wanted=channel_id, what="channel")

    async def _client(self, client_id: str) -> dict[str, Any] | None:
        page = await self._list(
            operation="get_client",
            resource="clients",
            items_key="clients",
            filters={"id": client_id},
        )
        return self._pick_by_id(page["clients"], wanted=client_id, what="client")

    def _pick_by_id(
        self, items: list[dict[str, Any]], *, wanted: str, what: str
    ) -> dict[str, Any] | None:
        for item in items:
            if item.get("id") == wanted:
                return item
        if items:
            # A page of other objects means the filter was not applied; taking the first would
            # attach the wrong number to an event.
            raise PartnerAPIError(
                f"{what} filter by id was ignored: got {len(items)} other object(s)",
                kind="bad_response",
                permanent=False,
            )
        return None

    async def _coalesced(
        self, key: tuple[str, str], fetch: Callable[[], Coroutine[Any, Any, _T]]
    ) -> _T:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(fetch())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
        # shield: one waiter giving up must not cancel the request the others wait for.
        result: _T = await asyncio.shield(task)
        # Each waiter gets its own copy so no caller can mutate another's answer.
        return copy.deepcopy(result)

    def _settle(self, key: tuple[str, str], task: asyncio.Task[Any]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: every waiter may have been cancelled

    # -- list endpoints ----------------------------------------------------------------------

    async def _list(
        self,
        *,
        operation: str,
        resource: str,
        items_key: str,
        filters: Mapping[str, Any] | None,
        limit: int | None = None,
        offset: int | None = None,
        sort: str | Sequence[str] | None = None,
    ) -> dict[str, Any]:
        params: dict[str, str] = {}
        if filters is not None:
            params["filters"] = json.dumps(dict(filters), separators=(",", ":"))
        if limit is not None:
            params["limit"] = str(limit)
        if offset is not None:
            params["offset"] = str(offset)
        if sort is not None:
            params["sort"] = sort if isinstance(sort, str) else ",".join(sort)
        path = f"{self._partner_path}/{resource}"
        page = await self._request(operation=operation, method="GET", path=path, params=params)
        items = page.get(items_key) if isinstance(page, dict) else None
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise PartnerAPIError(
                f"GET {path} answered without a list of objects under {items_key!r}",
                kind="bad_response",
                permanent=False,
            )
        result: dict[str, Any] = page
        return result

    # -- authentication ----------------------------------------------------------------------

    async def _credentials(self) -> tuple[dict[str, str], str | None]:
        if self._api_key:
            return {"X-API-Key": self._api_key}, None
        token = await self._bearer_token()
        return {"Authorization": f"Bearer {token}"}, token

    async def _bearer_token(self) -> str:
        # One lock so that N callers finding no token trigger one /token call, not N.
        async with self._token_lock:
            cached = self._token
            if cached is not None and self._clock() < cached.refresh_at:
                return cached.value
            self._token = None
            self._token = await self._fetch_token()
            return self._token.value

    def _forget_token(self, used: str | None) -> None:
        # Only drop the token that failed: a concurrent caller may already have replaced it.
        if self._token is not None and self._token.value == used:
            self._token = None

    async def _fetch_token(self) -> _Token:
        body = await self._request(
            operation="token",
            method="POST",
            path="/token",
            json_body={"username": self._username, "password": self._password},
            authenticated=False,
        )
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
            else _DEFAULT_TOKEN_TTL
        )
        margin = min(_TOKEN_MARGIN_MAX, ttl / 10)
        return _Token(value=value, refresh_at=self._clock() + ttl - margin)

    # -- one call, with retries --------------------------------------------------------------

    async def _request(
        self,
        *,
        operation: str,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        authenticated: bool = True,
    ) -> Any:
        retries = 0
        refreshed = False
        while True:
            headers, token = await self._credentials() if authenticated else ({}, None)
            attempt = retries + 1
            outcome = await self._attempt(
                operation=operation,
                method=method,
                path=path,
                params=params,
                json_body=json_body,
                headers=headers,
                attempt=attempt,
            )
            if not isinstance(outcome, _Failure):
                return outcome.body
            error = outcome.error
            if error.status_code == 401 and token is not None and not refreshed:
                logger.info("partner api %s %s -> 401, refreshing the token once", method, path)
                self._forget_token(token)
                refreshed = True
                continue
            if error.kind in _RETRYABLE and retries < self._max_retries:
                delay = self._backoff(retries=retries, retry_after=outcome.retry_after)
                logger.warning(
                    "partner api %s %s failed (%s) attempt=%d, retrying in %.2fs",
                    method,
                    path,
                    error.kind,
                    attempt,
                    delay,
                )
                await self._sleep(delay)
                retries += 1
                continue
            raise error

    async def _attempt(
        self,
        *,
        operation: str,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json_body: Any,
        headers: Mapping[str, str],
        attempt: int,
    ) -> _Success | _Failure:
        started = time.perf_counter()
        outcome: _Success | _Failure
        status: int | str
        try:
            response = await self._http.request(
                method, path, params=params, json=json_body, headers=headers
            )
        except httpx.TimeoutException:
            status = "timeout"
            outcome = _Failure(
                PartnerAPIError(
                    f"{method} {path} timed out after {self._timeout}s",
                    kind="timeout",
                    permanent=False,
                )
            )
        except httpx.TransportError as exc:
            status = "connect"
            outcome = _Failure(
                PartnerAPIError(
                    f"{method} {path} failed: {type(exc).__name__}",
                    kind="connect",
                    permanent=False,
                )
            )
        else:
            status = response.status_code
            outcome = self._interpret(method=method, path=path, response=response)
        duration = time.perf_counter() - started
        label = "ok" if isinstance(outcome, _Success) else outcome.error.kind
        logger.debug(
            "partner api %s %s -> %s attempt=%d duration=%.3fs",
            method,
            path,
            status,
            attempt,
            duration,
        )
        self._report(operation=operation, seconds=duration, outcome=label)
        return outcome

    def _interpret(
        self, *, method: str, path: str, response: httpx.Response
    ) -> _Success | _Failure:
        code = response.status_code
        if 200 <= code < 300:
            try:
                return _Success(response.json())
            except ValueError:
                return _Failure(
                    PartnerAPIError(
                        f"{method} {path} answered {code} with invalid JSON",
                        kind="bad_response",
                        permanent=False,
                        status_code=code,
                    )
                )
        developer_message = self._scrub(_developer_message(response))
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
        error = PartnerAPIError(
            f"{method} {path} answered {code}{detail}",
            kind=kind,
            permanent=permanent,
            status_code=code,
            developer_message=developer_message,
        )
        retry_after = _retry_after(response) if code == 429 else None
        return _Failure(error, retry_after=retry_after)

    def _backoff(self, *, retries: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(0.0, min(retry_after, self._backoff_max))
        ceiling = min(self._backoff_max, self._backoff_base * (2**retries))
        return self._random.uniform(0.0, ceiling)  # "full jitter"

    def _report(self, *, operation: str, seconds: float, outcome: str) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(operation, seconds, outcome)
        except Exception:  # a broken metrics hook must not fail the API call
            logger.warning("partner api on_request hook failed", exc_info=True)

    def _scrub(self, text: str | None) -> str | None:
        """Remove our own secrets from text the server sent back (it may echo them)."""
        if text is None:
            return None
        for secret in (self._api_key, self._password, self._token.value if self._token else None):
            if secret:
                text = text.replace(secret, "***")
        return text


@dataclass(frozen=True, slots=True)
class _Success:
    body: Any


@dataclass(frozen=True, slots=True)
class _Failure:
    error: PartnerAPIError
    retry_after: float | None = None


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
