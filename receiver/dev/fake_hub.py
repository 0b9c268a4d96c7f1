"""A fake 360dialog Partner API, as a small real Starlette app.

Shipped in the package because `hub-receiver dev` runs it for users without 360dialog
credentials; the tests run it on loopback. It serves the paths below the real base URL
(`https://hub.360dialog.io/api/v2`), so a client's `base_url` is the fake's root:

    POST /token                            {"username", "password"} -> bearer token
    GET  /partners/{partner_id}/channels   filters / limit / offset / sort -> partner_channels
    GET  /partners/{partner_id}/clients    same list semantics -> clients
    GET  /partners/{partner_id}/clients/{client_id}/info/balance  balance, currency, usage
    PATCH /_fake/clients/{client_id}/balance  change it: {"balance", "currency", "total_price"}
    GET  /health_status                    a Cloud API number's health (D360-API-KEY)
    GET  /v1/health                        an On-Premise number's health (D360-API-KEY)
    PATCH /_fake/health/{channel_id}       change a number's health (not a 360dialog path)

Errors use 360dialog's shape `{"meta": {"success": false, "http_code", "developer_message"}}`.
`FakeHubState` holds the data, injects failures and records every request it answered.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_DEFAULT_LIMIT = 20
_SECRET_HEADERS = ("authorization", "x-api-key", "d360-api-key")

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake answered; secret header values are replaced by `***`."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    # time.monotonic() when it arrived: tests prove rate limits from these.
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class HealthRequest:
    """One health request: which number (by its key), which endpoint, at `clock()` time."""

    channel_id: str | None  # None: the key belongs to no number
    endpoint: str  # health_status | v1/health
    at: float


@dataclass(frozen=True, slots=True)
class _InjectedFailure:
    status: int
    retry_after: float | None


@dataclass
class FakeHubState:
    """The fake's data (one partner), failure injection and request log."""

    partner_id: str
    clock: Callable[[], float] = time.monotonic
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Per client: balance, currency, total_price; a client without one has balance 0 as a
    # client without direct payment does at 360dialog.
    balances: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    delay: float = 0.0
    issued_tokens: list[str] = field(default_factory=list)  # every token ever issued
    # Number health: channel id -> {"api_key", "platform", "status", "errors"}.
    health: dict[str, dict[str, Any]] = field(default_factory=dict)
    health_requests: list[HealthRequest] = field(default_factory=list)
    _failures: deque[_InjectedFailure] = field(default_factory=deque, init=False)
    _bad_json: int = field(default=0, init=False)
    _tokens: dict[str, float] = field(default_factory=dict, init=False)

    # -- data --------------------------------------------------------------------------------

    def set_client(self, client: Mapping[str, Any]) -> None:
        """Add or replace a client object (clients-list shape)."""
        self.clients[str(client["id"])] = copy.deepcopy(dict(client))

    def set_channel(self, channel: Mapping[str, Any]) -> None:
        """Add or replace a channel object (partner_channels shape)."""
        self.channels[str(channel["id"])] = copy.deepcopy(dict(channel))

    def update_channel(self, channel_id: str, /, **changes: Any) -> dict[str, Any]:
        """Merge `changes` into a channel (nested dicts merge); bump modified_at unless given."""
        channel = self.channels[channel_id]
        _deep_merge(channel, changes)
        if "modified_at" not in changes:
            channel["modified_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return copy.deepcopy(channel)

    def move_channel(self, channel_id: str, *, client_id: str) -> dict[str, Any]:
        """Give a channel to another (existing) client, as a transfer in the Hub would."""
        client = self.clients[client_id]
        embedded = {
            "id": client_id,
            "name": client.get("name"),
            "partner_payload": client.get("partner_payload"),
            "contact_info": copy.deepcopy(client.get("contact_info") or {}),
        }
        self.channels[channel_id]["client"] = None  # replaced wholesale, not merged
        return self.update_channel(
            channel_id,
            client_id=client_id,
            client=embedded,
            waba_account={"client_id": client_id},
        )

    def set_health(
        self,
        channel_id: str,
        *,
        api_key: str | None = None,
        platform: str | None = None,
        status: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Add or change a number's health; `status` is AVAILABLE/LIMITED/BLOCKED (Cloud API)
        or connected/disconnected/... (On-Premise)."""
        entry = self.health.setdefault(
            channel_id, {"api_key": None, "platform": "cloud_api", "status": "AVAILABLE"}
        )
        for name, value in (
            ("api_key", api_key),
            ("platform", platform),
            ("status", status),
            ("errors", errors),
        ):
            if value is not None:
                entry[name] = value
        return {name: value for name, value in entry.items() if name != "api_key"}

    def health_calls(self, channel_id: str | None = None) -> list[HealthRequest]:
        return [r for r in self.health_requests if channel_id is None or r.channel_id == channel_id]

    def remove_channel(self, channel_id: str) -> None:
        del self.channels[channel_id]

    def set_balance(self, client_id: str, /, **values: Any) -> dict[str, Any]:
        """Change a client's balance, currency or total_price (any value: bad data too)."""
        balance = self.balances.setdefault(
            client_id, {"balance": 0, "currency": "EUR", "total_price": 0}
        )
        balance.update(values)
        return dict(balance)

    def balance_body(self, client_id: str) -> dict[str, Any]:
        """The balance endpoint's answer for a client (a shape 360dialog documents loosely)."""
        values = self.balances.get(client_id, {"balance": 0, "currency": "EUR", "total_price": 0})
        now = datetime.now(UTC)
        return {
            "balance": values.get("balance"),
            "currency": values.get("currency"),
            "usage": {
                "year": now.year,
                "month": now.month,
                "currency": values.get("currency"),
                "total_price": values.get("total_price"),
            },
        }

    # -- failure injection -------------------------------------------------------------------

    def fail_next(self, n: int = 1, *, status: int = 500, retry_after: float | None = None) -> None:
        """Answer the next `n` requests (any route) with `status` in the error shape."""
        for _ in range(n):
            self._failures.append(_InjectedFailure(status=status, retry_after=retry_after))

    def slow(self, seconds: float) -> None:
        """Delay every following request by `seconds` (0 turns it off)."""
        self.delay = seconds

    def bad_json(self, n: int = 1) -> None:
        """Answer the next `n` successful requests with a truncated JSON body."""
        self._bad_json += n

    def revoke_tokens(self) -> None:
        """Invalidate every issued bearer token (the next use answers 401)."""
        self._tokens.clear()

    def calls(self, *, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Return the recorded requests matching `method` and/or `path`."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and (path is None or r.path == path)
        ]

    # -- used by the app ---------------------------------------------------------------------

    def issue_token(self, *, ttl: float) -> str:
        token = secrets.token_urlsafe(24)
        self._tokens[token] = self.clock() + ttl
        self.issued_tokens.append(token)
        return token

    def token_valid(self, token: str) -> bool:
        expires_at = self._tokens.get(token)
        return expires_at is not None and self.clock() < expires_at

    def record(self, request: Request) -> None:
        headers = {
            name: _redact(name, value)
            for name, value in request.headers.items()
            if name not in ("host", "content-length")
        }
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers=headers,
            )
        )

    def take_failure(self) -> _InjectedFailure | None:
        return self._failures.popleft() if self._failures else None

    def take_bad_json(self) -> bool:
        if self._bad_json <= 0:
            return False
        self._bad_json -= 1
        return True


def create_fake_hub_app(
    state: FakeHubState,
    *,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    token_ttl: int = 86400,
) -> Starlette:
    """Return the fake Partner API serving `state`, accepting the given credentials."""

    def authenticated(request: Request) -> bool:
        given_key = request.headers.get("x-api-key")
        if api_key is not None and given_key is not None:
            return secrets.compare_digest(given_key, api_key)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return username is not None and scheme.lower() == "bearer" and state.token_valid(token)

    async def token(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return error_response(400, "Request body must be JSON")
        if not isinstance(body, dict):
            return error_response(400, "Request body must be a JSON object")
        if username is None or password is None:
            return error_response(401, "Token authentication is not enabled")
        given_user, given_password = body.get("username"), body.get("password")
        if not (
            isinstance(given_user, str)
            and isinstance(given_password, str)
            and secrets.compare_digest(given_user, username)
            and secrets.compare_digest(given_password, password)
        ):
            return error_response(401, "Invalid username or password")
        return JSONResponse(
            {
                "access_token": state.issue_token(ttl=token_ttl),
                "token_type": "bearer",
                "expires_in": token_ttl,
            }
        )

    def listing(items: Callable[[], Iterable[dict[str, Any]]], key: str) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            if not authenticated(request):
                return error_response(401, "Unauthorized: invalid API key or expired token")
            if request.path_params["partner_id"] != state.partner_id:
                return error_response(404, "Partner not found")
            return list_response(request, items=items(), key=key)

        return endpoint

    def guarded(handler: Endpoint) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            state.record(request)
            if state.delay > 0:
                await asyncio.sleep(state.delay)
            failure = state.take_failure()
            if failure is not None:
                failed = error_response(failure.status, "Injected failure")
                if failure.retry_after is not None:
                    failed.headers["Retry-After"] = _format_seconds(failure.retry_after)
                return failed
            response = await handler(request)
            if response.status_code == 200 and state.take_bad_json():
                return Response(b'{"partner_channels": [', media_type="application/json")
            return response

        return endpoint

    async def control(request: Request) -> Response:
        # Not a 360dialog endpoint: lets a person running `hub-receiver dev` change a
        # channel (e.g. {"hub_status": "pending_deletion"}) before posting the next event.
        channel_id = request.path_params["channel_id"]
        if channel_id not in state.channels:
            return error_response(404, f"no channel {channel_id}")
        try:
            changes = await request.json()
        except ValueError:
            return error_response(400, "send a JSON object of fields to change")
        if not isinstance(changes, dict):
            return error_response(400, "send a JSON object of fields to change")
        return JSONResponse(state.update_channel(channel_id, **changes))

    def number_health(endpoint: str) -> Endpoint:
        platform = "cloud_api" if endpoint == "health_status" else "on_premise"

        async def handler(request: Request) -> Response:
            given = request.headers.get("d360-api-key", "")
            number = next(
                (
                    (channel_id, entry)
                    for channel_id, entry in state.health.items()
                    if entry.get("api_key") and secrets.compare_digest(given, entry["api_key"])
                ),
                None,
            )
            state.health_requests.append(
                HealthRequest(number[0] if number else None, endpoint, state.clock())
            )
            if number is None:
                return error_response(401, "Invalid API key")
            channel_id, entry = number
            if entry.get("platform") != platform:
                return error_response(404, "Not found")
            return JSONResponse(_health_body(channel_id, entry))

        return handler

    async def health_control(request: Request) -> Response:
        try:
            changes = await request.json()
        except ValueError:
            return error_response(400, "send a JSON object: status, errors, platform, api_key")
        if not isinstance(changes, dict) or not set(changes) <= {
            "status",
            "errors",
            "platform",
            "api_key",
        }:
            return error_response(400, "send a JSON object: status, errors, platform, api_key")
        return JSONResponse(state.set_health(request.path_params["channel_id"], **changes))

    async def balance(request: Request) -> Response:
        if not authenticated(request):
            return error_response(401, "Unauthorized: invalid API key or expired token")
        client_id = request.path_params["client_id"]
        if request.path_params["partner_id"] != state.partner_id or client_id not in state.clients:
            return error_response(404, "Client not found")
        return JSONResponse(state.balance_body(client_id))

    async def control_balance(request: Request) -> Response:
        client_id = request.path_params["client_id"]
        if client_id not in state.clients:
            return error_response(404, f"no client {client_id}")
        try:
            changes = await request.json()
        except ValueError:
            changes = None
        if not isinstance(changes, dict):
            return error_response(400, "send a JSON object: balance, currency, total_price")
        return JSONResponse(state.set_balance(client_id, **changes))

    routes = [
        Route("/_fake/channels/{channel_id}", control, methods=["PATCH"]),
        Route("/_fake/clients/{client_id}/balance", control_balance, methods=["PATCH"]),
        Route(
            "/partners/{partner_id}/clients/{client_id}/info/balance",
            guarded(balance),
            methods=["GET"],
        ),
        Route("/_fake/health/{channel_id}", health_control, methods=["PATCH"]),
        Route("/health_status", guarded(number_health("health_status")), methods=["GET"]),
        Route("/v1/health", guarded(number_health("v1/health")), methods=["GET"]),
        Route("/token", guarded(token), methods=["POST"]),
        Route(
            "/partners/{partner_id}/channels",
            guarded(listing(state.channels.values, "partner_channels")),
            methods=["GET"],
        ),
        Route(
            "/partners/{partner_id}/clients",
            guarded(listing(state.clients.values, "clients")),
            methods=["GET"],
        ),
    ]
    return Starlette(routes=routes)


def _health_body(channel_id: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    status = str(entry.get("status", ""))
    errors = list(entry.get("errors") or [])
    if entry.get("platform") == "on_premise":
        body: dict[str, Any] = {"health": {"gateway_status": status}, "meta": {"version": "2"}}
        if errors:
            body["errors"] = errors
        return body
    number: dict[str, Any] = {
        "entity_type": "PHONE_NUMBER",
        "id": channel_id,
        "can_send_message": status,
    }
    if errors:
        number["errors"] = errors
    return {"health_status": {"can_send_message": status, "entities": [number]}}


def error_response(status: int, message: str) -> JSONResponse:
    """Return an error in 360dialog's shape."""
    body = {"meta": {"success": False, "http_code": status, "developer_message": message}}
    return JSONResponse(body, status_code=status)


def list_response(request: Request, *, items: Iterable[dict[str, Any]], key: str) -> Response:
    """Apply 360dialog's list semantics (filters, sort, offset, limit) to `items`."""
    params = request.query_params
    try:
        filters = _parse_filters(params.get("filters"))
        limit = _parse_count(params.get("limit"), name="limit", default=_DEFAULT_LIMIT)
        offset = _parse_count(params.get("offset"), name="offset", default=0)
    except ValueError as exc:
        return error_response(400, str(exc))
    sort = [part.strip() for part in params.get("sort", "").split(",") if part.strip()]
    matched = [item for item in items if _matches(item, filters)]
    for spec in reversed(sort):  # stable sorts, least significant key first
        path = spec.lstrip("-")
        matched.sort(key=_sort_by(path), reverse=spec.startswith("-"))
    page = matched[offset : offset + limit]
    body = {
        "count": len(page),
        "filters": filters,
        "limit": limit,
        "offset": offset,
        "sort": sort,
        "total": len(matched),
        key: copy.deepcopy(page),
    }
    return JSONResponse(body)


def _parse_filters(raw: str | None) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise ValueError("filters must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise ValueError("filters must be a JSON object")  # noqa: TRY004 - becomes a 400
    return parsed


def _parse_count(raw: str | None, *, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a non-negative integer") from None
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


def _lookup(item: Mapping[str, Any], path: str) -> Any:
    current: Any = item
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def _matches(item: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    return all(_lookup(item, path) == expected for path, expected in filters.items())


def _sort_by(path: str) -> Callable[[Mapping[str, Any]], tuple[int, Any]]:
    return lambda item: _sort_key(_lookup(item, path))


def _sort_key(value: Any) -> tuple[int, Any]:
    # None sorts first; numbers and strings in their own bands so they never compare.
    if value is None:
        return (0, 0)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, json.dumps(value, sort_keys=True))


def _deep_merge(target: dict[str, Any], changes: Mapping[str, Any]) -> None:
    for key, value in changes.items():
        existing = target.get(key)
        if isinstance(value, Mapping) and isinstance(existing, dict):
            _deep_merge(existing, value)
        else:
            target[key] = copy.deepcopy(value)


def _redact(name: str, value: str) -> str:
    if name not in _SECRET_HEADERS:
        return value
    scheme, sep, _ = value.partition(" ")
    return f"{scheme} ***" if sep and name == "authorization" else "***"


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
