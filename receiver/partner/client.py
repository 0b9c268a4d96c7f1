"""The Partner API operations hub-receiver uses: lookups by id or phone, and raw list pages.

The only module that sends requests to the 360dialog Partner API. Its neighbours do one job
each: `auth` (API key or bearer tokens), `retry` (backoff on temporary failures), `errors`
(`PartnerAPIError` and how a response is classified). Secrets (API key, password, bearer
token) never reach log lines, exception messages or reprs: logs carry only method, path,
status, attempt and duration.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar
from urllib.parse import quote

import httpx

from receiver.partner.auth import ApiKeyAuth, TokenAuth
from receiver.partner.errors import (
    ErrorKind,
    PartnerAPIError,
    read_json,
    status_error,
    transport_error,
)
from receiver.partner.retry import RetryPolicy, with_retries

__all__ = ["ErrorKind", "PartnerAPIError", "PartnerClient", "RateGate", "RequestHook"]

logger = logging.getLogger("receiver.partner")

RequestHook = Callable[[str, float, str], None]
"""Called as hook(operation, seconds, outcome) after every HTTP attempt (outcome "ok" or a kind)."""

_T = TypeVar("_T")

# A 429 without Retry-After still tells every process to slow down for a moment.
DEFAULT_PUSH_BACK = 1.0


class RateGate(Protocol):
    """The shared Partner API rate limit (`receiver.watch.limiter.SharedLimiter`)."""

    async def acquire(self) -> None: ...

    async def retry_after(self, seconds: float) -> None: ...


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
        clock: Callable[[], float] = time.monotonic,  # token expiry
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rate: RateGate | None = None,
    ) -> None:
        self._rate = rate  # awaited before every request; a 429 pushes it back
        self._base_url = base_url.rstrip("/")
        self._partner_path = f"/partners/{quote(partner_id, safe='')}"
        self._auth: ApiKeyAuth | TokenAuth
        if api_key:
            self._auth = ApiKeyAuth(api_key)
        elif username and password:
            self._auth = TokenAuth(
                token_url=f"{self._base_url}/token",
                username=username,
                password=password,
                clock=clock,
                on_token=lambda seconds, outcome: self._report("token", seconds, outcome),
            )
        else:
            raise ValueError("PartnerClient needs api_key, or username and password")
        self._timeout = timeout
        self._retry = RetryPolicy(
            max_retries=max_retries, backoff_base=backoff_base, backoff_max=backoff_max
        )
        self._sleep = sleep
        self._on_request = on_request
        self._inflight: dict[tuple[str, str], asyncio.Task[Any]] = {}
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            auth=self._auth,
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )

    def __repr__(self) -> str:
        auth = "api_key" if isinstance(self._auth, ApiKeyAuth) else "token"
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

    async def get_balance(
        self,
        client_id: str,
        *,
        gate: RateGate | None = None,
        from_month: int | None = None,
        from_year: int | None = None,
    ) -> Any:
        """Return the raw body of `GET .../clients/{client_id}/info/balance`.

        360dialog allows 1 request per 10 s here: `gate` (the shared balance limit) is
        awaited before every attempt, retries included, and a 429 pushes it back.
        """
        path = f"{self._partner_path}/clients/{quote(client_id, safe='')}/info/balance"
        params: dict[str, str] = {}
        if from_month is not None:
            params["from_month"] = str(from_month)
        if from_year is not None:
            params["from_year"] = str(from_year)
        return await with_retries(
            lambda attempt: self._get(
                operation="get_balance", path=path, params=params, attempt=attempt, gate=gate
            ),
            policy=self._retry,
            sleep=self._sleep,
            label=f"GET {path}",
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
        page = await with_retries(
            lambda attempt: self._get(
                operation=operation, path=path, params=params, attempt=attempt
            ),
            policy=self._retry,
            sleep=self._sleep,
            label=f"GET {path}",
        )
        items = page.get(items_key) if isinstance(page, dict) else None
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise PartnerAPIError(
                f"GET {path} answered without a list of objects under {items_key!r}",
                kind="bad_response",
                permanent=False,
            )
        result: dict[str, Any] = page
        return result

    # -- one attempt -------------------------------------------------------------------------

    async def _get(
        self,
        *,
        operation: str,
        path: str,
        params: Mapping[str, str],
        attempt: int,
        gate: RateGate | None = None,
    ) -> Any:
        """Send one GET; return its JSON body or raise the classified PartnerAPIError."""
        if self._rate is not None:
            await self._rate.acquire()  # before the clock starts: the wait is not API latency
        if gate is not None:  # an endpoint's own stricter limit: the last wait before sending
            await gate.acquire()
        started = time.perf_counter()
        status: int | str = "?"
        outcome = "ok"
        try:
            try:
                response = await self._http.get(path, params=params)
            except httpx.TransportError as exc:
                raise transport_error(exc, method="GET", path=path, timeout=self._timeout) from None
            status = response.status_code
            error = status_error(response, method="GET", path=path, secrets=self._auth.secrets())
            if error is not None:
                raise error
            return read_json(response, method="GET", path=path)
        except PartnerAPIError as error:
            outcome = error.kind
            status = error.status_code or error.kind
            if error.kind == "rate_limited":
                wait = error.retry_after if error.retry_after is not None else DEFAULT_PUSH_BACK
                for limit in (self._rate, gate):
                    if limit is not None:
                        await limit.retry_after(wait)
            raise
        finally:
            duration = time.perf_counter() - started
            logger.debug(
                "partner api GET %s -> %s attempt=%d duration=%.3fs",
                path,
                status,
                attempt,
                duration,
            )
            self._report(operation, duration, outcome)

    def _report(self, operation: str, seconds: float, outcome: str) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(operation, seconds, outcome)
        except Exception:  # a broken metrics hook must not fail the API call
            logger.warning("partner api on_request hook failed", exc_info=True)
