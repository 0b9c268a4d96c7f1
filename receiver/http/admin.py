"""The admin API under `/admin/`: look at events, channels, deliveries and rules; act on them.

Behind `ADMIN_TOKEN` as a bearer token: unset, the API does not exist (404); a missing token
answers 401, a wrong one 403 (compared in constant time). Answers are JSON; listings take
`limit` (1-200), `cursor` (the `next_cursor` of the previous page) or `offset`, and filters
(`since`/`until` ISO times or durations back from now, `type`, `channel`, `client`, `state`,
...); a value that cannot select anything answers 422. Target URLs appear only masked;
settings are never shown. Every call is logged with its action and outcome; the query string
only when it was answered (a refused request may carry a token pasted into the URL).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver.db.types import MAX_ID
from receiver.http.errors import json_error
from receiver.ops import records
from receiver.ops.replay import ReplayError, replay
from receiver.ops.retry import retry_delivery
from receiver.ops.rules import reload_rules, rules_view
from receiver.routing.errors import RulesError
from receiver.services import Services

log = logging.getLogger("receiver.admin")

Handler = Callable[[Request], Awaitable[Response]]

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
PAGING = ("limit", "cursor", "offset")
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


class InvalidParameterError(Exception):
    """A query parameter the endpoint cannot use; answered 422 naming it."""


# --- the guard -----------------------------------------------------------------------------


def _refusal(request: Request, services: Services) -> Response | None:
    token = services.settings.admin_token
    expected = token.get_secret_value() if token is not None else ""
    if not expected:
        return json_error(404, "admin_disabled", "admin API disabled: set ADMIN_TOKEN to enable it")
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return json_error(
            401,
            "unauthorized",
            "send the admin token as 'Authorization: Bearer <ADMIN_TOKEN>'",
            headers={"WWW-Authenticate": 'Bearer realm="hub-receiver admin"'},
        )
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        return json_error(403, "forbidden", "the admin token is not valid")
    return None


def admin(action: str) -> Callable[[Handler], Handler]:
    """Guard a handler with the admin token and log the call (never the token)."""

    def wrap(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            services: Services = request.app.state.services
            response = _refusal(request, services)
            if response is None:
                try:
                    response = await handler(request)
                except (InvalidParameterError, records.FilterError) as exc:
                    response = json_error(422, "invalid_parameter", str(exc))
            fields: dict[str, object] = {
                "action": action,
                "method": request.method,
                "path": request.url.path,
                # Names only unless answered: `?token=...` sent by mistake must not be logged.
                "params": sorted(request.query_params),
                "status": response.status_code,
                "remote": request.client.host if request.client else None,
            }
            if response.status_code < 400:
                fields["query"] = str(request.query_params)
            if response.status_code in (401, 403):
                log.warning("admin request refused", extra=fields)
            else:
                log.info("admin %s", action, extra=fields)
            return response

        endpoint.__name__ = handler.__name__
        return endpoint

    return wrap


# --- query parameters ----------------------------------------------------------------------


def _check_names(request: Request, allowed: Collection[str]) -> None:
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        raise InvalidParameterError(
            f"unknown parameter(s) {', '.join(unknown)}; this endpoint takes "
            f"{', '.join(sorted(allowed)) or 'none'}"
        )


def _time(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if value is None or not value.strip():
        return None
    try:
        return records.parse_time(value, now=_services(request).clock())
    except records.FilterError as exc:
        raise InvalidParameterError(f"{name}: {exc}") from None


def _int(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidParameterError(f"{name} must be a whole number") from None
    if not low <= number <= high:
        raise InvalidParameterError(f"{name} must be between {low} and {high}")
    return number


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise InvalidParameterError(f"{name} must be true or false")


def _window(request: Request, *, numeric_cursor: bool) -> records.Window:
    cursor = request.query_params.get("cursor") or None
    offset = _int(request, "offset", default=0, low=0, high=1_000_000)
    if cursor is not None and offset:
        raise InvalidParameterError("use either cursor or offset, not both")
    if cursor is not None and numeric_cursor and records.parse_id(cursor) is None:
        raise InvalidParameterError("cursor must be a next_cursor value from a previous page")
    limit = _int(request, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    return records.Window(limit=limit, cursor=cursor, offset=offset)


def _filters(request: Request) -> records.Filters:
    q = request.query_params
    return records.Filters(
        since=_time(request, "since"),
        until=_time(request, "until"),
        event_type=q.get("type") or None,
        channel=q.get("channel") or None,
        client=q.get("client") or None,
        state=q.get("state") or None,
        rule=q.get("rule") or None,
        target=q.get("target") or None,
        external_id=q.get("external_id") or None,
        search=q.get("search") or None,
        source=q.get("source") or None,
    )


def _path_id(request: Request, name: str) -> int | None:
    """The id in the path; None for one no row can have (beyond 64 bits): answered 404."""
    value: int = request.path_params[name]
    return value if 0 <= value <= MAX_ID else None


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _actor(request: Request) -> str:
    return f"admin API from {request.client.host if request.client else 'unknown'}"


# --- events --------------------------------------------------------------------------------

EVENT_FILTERS = ("since", "until", "type", "channel", "client", "state")
EVENT_LOOKUPS = ("external_id", "search", "source")


@admin("list events")
async def list_events(request: Request) -> Response:
    _check_names(request, (*PAGING, *EVENT_FILTERS, *EVENT_LOOKUPS))
    page = await records.list_events(
        _services(request),
        filters=_filters(request),
        window=_window(request, numeric_cursor=True),
    )
    return JSONResponse(page.as_dict())


@admin("show event")
async def show_event(request: Request) -> Response:
    _check_names(request, ())
    event_id = _path_id(request, "event_id")
    detail = await records.event_detail(_services(request), event_id) if event_id else None
    if detail is None:
        return json_error(404, "not_found", f"no event {request.path_params['event_id']}")
    return JSONResponse(detail)


@admin("replay event")
async def replay_event(request: Request) -> Response:
    _check_names(request, ("dry_run", "force"))
    event_id = _path_id(request, "event_id")
    dry_run, force = _flag(request, "dry_run"), _flag(request, "force")
    if event_id is None:
        return json_error(404, "not_found", f"no event {request.path_params['event_id']}")
    try:
        report = await replay(
            _services(request), event_ids=[event_id], dry_run=dry_run, force=force
        )
    except ReplayError as exc:
        return json_error(422, "replay_refused", str(exc))
    item = report.events[0] if report.events else None
    if item is None or item.outcome == "not_found":
        return json_error(404, "not_found", f"no event {event_id}")
    if item.outcome == "skipped":
        return json_error(409, "not_replayable", f"event {event_id} {item.note}")
    return JSONResponse(report.to_dict())


# --- channels ------------------------------------------------------------------------------


@admin("list channels")
async def list_channels(request: Request) -> Response:
    _check_names(request, (*PAGING, "since", "until", "client", "state"))
    page = await records.list_channels(
        _services(request),
        filters=_filters(request),
        window=_window(request, numeric_cursor=False),
    )
    return JSONResponse(page.as_dict())


@admin("show channel")
async def show_channel(request: Request) -> Response:
    _check_names(request, ())
    channel_id: str = request.path_params["channel_id"]
    detail = await records.channel_detail(_services(request), channel_id)
    if detail is None:
        return json_error(404, "not_found", f"no channel {channel_id}")
    return JSONResponse(detail)


# --- deliveries ----------------------------------------------------------------------------


@admin("list deliveries")
async def list_deliveries(request: Request) -> Response:
    _check_names(request, (*PAGING, *EVENT_FILTERS, "rule", "target"))
    page = await records.list_deliveries(
        _services(request),
        filters=_filters(request),
        window=_window(request, numeric_cursor=True),
    )
    return JSONResponse(page.as_dict())


@admin("show delivery")
async def show_delivery(request: Request) -> Response:
    _check_names(request, ())
    delivery_id = _path_id(request, "delivery_id")
    detail = await records.delivery_detail(_services(request), delivery_id) if delivery_id else None
    if detail is None:
        return json_error(404, "not_found", f"no delivery {request.path_params['delivery_id']}")
    return JSONResponse(detail)


@admin("retry delivery")
async def retry(request: Request) -> Response:
    _check_names(request, ())
    services = _services(request)
    delivery_id = _path_id(request, "delivery_id")
    if delivery_id is None:
        return json_error(404, "not_found", f"no delivery {request.path_params['delivery_id']}")
    result = await retry_delivery(services, delivery_id, requested_by=_actor(request))
    if result.state is None:
        return json_error(404, "not_found", f"no delivery {delivery_id}")
    if not result.retried:
        return json_error(
            409,
            "not_retryable",
            f"delivery {delivery_id} is {result.state}; only dead, failed or held deliveries "
            "can be retried",
        )
    detail: dict[str, Any] = await records.delivery_detail(services, delivery_id) or {}
    return JSONResponse({"retried": True, "enqueued": result.enqueued, "delivery": detail})


# --- rules ---------------------------------------------------------------------------------


@admin("show rules")
async def show_rules(request: Request) -> Response:
    _check_names(request, ())
    holder = _services(request).rules
    return JSONResponse(rules_view(holder.loaded, holder.last_reload))


@admin("reload rules")
async def reload(request: Request) -> Response:
    _check_names(request, ())
    services = _services(request)
    try:
        loaded = await reload_rules(services, requested_by=_actor(request))
    except RulesError as exc:
        count = len(exc.problems)
        return JSONResponse(
            {
                "error": "invalid_rules",
                "detail": f"{count} problem{'s' if count != 1 else ''} in the routing rules; "
                "the running rules were kept",
                "problems": [problem.as_dict() for problem in exc.problems],
            },
            status_code=422,
        )
    return JSONResponse({"reloaded": True, **rules_view(loaded, services.rules.last_reload)})


def admin_routes() -> list[Route]:
    """The routes to mount at `/admin`."""
    return [
        Route("/events", list_events, methods=["GET"]),
        Route("/events/{event_id:int}", show_event, methods=["GET"]),
        Route("/events/{event_id:int}/replay", replay_event, methods=["POST"]),
        Route("/channels", list_channels, methods=["GET"]),
        Route("/channels/{channel_id}", show_channel, methods=["GET"]),
        Route("/deliveries", list_deliveries, methods=["GET"]),
        Route("/deliveries/{delivery_id:int}", show_delivery, methods=["GET"]),
        Route("/deliveries/{delivery_id:int}/retry", retry, methods=["POST"]),
        Route("/rules", show_rules, methods=["GET"]),
        Route("/rules/reload", reload, methods=["POST"]),
    ]
