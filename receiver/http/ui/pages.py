"""The dashboard's pages under `/ui/`: numbers, events, deliveries, rules, the CSV export.

Every page reads through the one read model (`receiver/ops/records.py`) that the CLI and the
admin API use, and every action goes through the same operation they call (`ops.replay`,
`ops.retry`, `ops.rules.test_event`). Actions are POSTs carrying the session's CSRF token;
each answers with a redirect back to a page that says what happened (a fixed notice code,
never text from the request).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from receiver.db.types import MAX_ID
from receiver.http.ui.guard import (
    FormError,
    login_limiter,
    problem,
    read_form,
    remote,
    services_of,
    session_box,
    ui,
)
from receiver.http.ui.guard import local_path as local
from receiver.http.ui.guard import log as ui_log
from receiver.http.ui.render import page, secure
from receiver.http.ui.session import COOKIE, CSRF_FIELD
from receiver.ops import records
from receiver.ops.export import number_csv
from receiver.ops.replay import ReplayError, replay
from receiver.ops.retry import retry_delivery
from receiver.ops.rules import parse_status_change, rules_view, test_event
from receiver.routing.explain import explanation_as_dict

PAGE_SIZE = 48
DEAD_FIRST = 20
NOTICES = {
    "retried": "Retry scheduled: the delivery is pending and will be sent shortly.",
    "not_retryable": "Only dead, failed or held deliveries can be retried.",
    "replayed": "Replayed: the new deliveries are on their way.",
    "replayed_nothing": "Replayed: nothing new to send under the current rules.",
    "not_replayable": "This event cannot be replayed (see its state).",
    "logged_out": "You are logged out.",
}


def _notice(request: Request) -> str | None:
    return NOTICES.get(request.query_params.get("notice", ""))


def _csrf(request: Request) -> str:
    csrf: str = request.state.session.csrf
    return csrf


def _common(request: Request, section: str) -> dict[str, Any]:
    return {"csrf": _csrf(request), "section": section, "notice": _notice(request)}


def _text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value or None


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = _text(request, name)
    return value if value in allowed else None


def _cursor(request: Request, *, numeric: bool) -> str | None:
    value = _text(request, "cursor")
    if value is None or (numeric and records.parse_id(value) is None):
        return None
    return value


def _path_id(request: Request, name: str) -> int | None:
    value: int = request.path_params[name]
    return value if 0 <= value <= MAX_ID else None


def _actor(request: Request) -> str:
    return f"dashboard from {remote(request)}"


# --- login ---------------------------------------------------------------------------------


async def login_form(request: Request) -> Response:
    if session_box(request) is None:
        return secure(page(request, "disabled.html", {}, status_code=404))
    context = {"next": local(request.query_params.get("next")), "notice": _notice(request)}
    return page(request, "login.html", context)


async def login(request: Request) -> Response:
    box = session_box(request)
    if box is None:
        return page(request, "disabled.html", {}, status_code=404)
    limiter, address = login_limiter(request), remote(request)
    wait = limiter.wait_for(address)
    if wait > 0:
        response = page(
            request,
            "login.html",
            {"error": f"Too many wrong tokens from your address: wait {math.ceil(wait)} s."},
            status_code=429,
        )
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    try:
        form = await read_form(request)
    except FormError as exc:
        return problem(request, exc.status, "Cannot read the form", str(exc))
    target = local(form.get("next"))
    if not box.token_matches(form.get("token", "")):
        count = limiter.failed(address)
        if count & (count - 1) == 0:  # 1st, 2nd, 4th, 8th ...: a guesser cannot flood the log
            ui_log.warning(
                "dashboard login refused: wrong token", extra={"remote": address, "count": count}
            )
        context = {"error": "That is not the admin token.", "next": target}
        return page(request, "login.html", context, status_code=403)
    limiter.succeeded(address)
    _session, sealed = box.new_session(now=time.time())
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        sealed,
        max_age=int(box.ttl),
        path="/ui/",
        httponly=True,
        samesite="strict",
        # Behind a proxy that ends TLS the scheme here is http: its X-Forwarded-Proto counts
        # too (a forged one only makes the cookie stricter).
        secure=request.url.scheme == "https"
        or request.headers.get("x-forwarded-proto", "").lower() == "https",
    )
    ui_log.info("dashboard login", extra={"remote": address})
    return secure(response)


@ui("logout")
async def logout(_request: Request) -> Response:
    response = RedirectResponse("/ui/login?notice=logged_out", status_code=303)
    response.delete_cookie(COOKIE, path="/ui/", httponly=True, samesite="strict")
    return response


# --- numbers -------------------------------------------------------------------------------


@ui("numbers")
async def numbers(request: Request) -> Response:
    services = services_of(request)
    filters = records.Filters(
        state=_choice(request, "status", records.CHANNEL_STATES),
        client=_text(request, "client"),
        search=_text(request, "q"),
    )
    window = records.Window(limit=PAGE_SIZE, cursor=_cursor(request, numeric=False))
    found = await records.list_numbers(services, filters=filters, window=window)
    context = {
        **_common(request, "numbers"),
        "numbers": found.items,
        "next_cursor": found.next_cursor,
        "statuses": records.CHANNEL_STATES,
        "filters": filters,
    }
    return page(request, "numbers.html", context, live=True)


@ui("number")
async def number(request: Request) -> Response:
    services = services_of(request)
    channel_id: str = request.path_params["channel_id"]
    detail = await records.number_detail(services, channel_id)
    if detail is None:
        return problem(request, 404, "No such number", f"No number with channel id {channel_id}.")
    deliveries = await records.list_deliveries(
        services, filters=records.Filters(channel=channel_id), window=records.Window(limit=50)
    )
    context = {**_common(request, "numbers"), "n": detail, "deliveries": deliveries.items}
    return page(request, "number.html", context, live=True)


@ui("export numbers")
async def export_csv(request: Request) -> Response:
    services = services_of(request)
    stamp = services.clock().strftime("%Y%m%d-%H%M")
    chunks = number_csv(services, spreadsheet=True)
    first = await anext(chunks)  # before the 200: a database that is down gets the error page

    async def body() -> AsyncIterator[str]:
        yield first
        async for chunk in chunks:
            yield chunk

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="numbers-{stamp}.csv"'},
    )


# --- events --------------------------------------------------------------------------------


@ui("events")
async def events(request: Request) -> Response:
    services = services_of(request)
    filters = records.Filters(
        event_type=_text(request, "type"),
        source=_choice(request, "source", records.EVENT_SOURCES),
        state=_choice(request, "state", records.EVENT_STATES),
        search=_text(request, "q"),
    )
    window = records.Window(limit=PAGE_SIZE, cursor=_cursor(request, numeric=True))
    found = await records.list_events(services, filters=filters, window=window)
    context = {
        **_common(request, "events"),
        "events": found.items,
        "next_cursor": found.next_cursor,
        "filters": filters,
        "sources": records.EVENT_SOURCES,
        "states": records.EVENT_STATES,
    }
    return page(request, "events.html", context, live=True)


@ui("event")
async def event(request: Request) -> Response:
    event_id = _path_id(request, "event_id")
    detail = await records.event_detail(services_of(request), event_id) if event_id else None
    if detail is None:
        return problem(request, 404, "No such event", "No event with that id.")
    return page(request, "event.html", {**_common(request, "events"), "e": detail}, live=True)


@ui("replay dry run")
async def replay_preview(request: Request) -> Response:
    event_id = _path_id(request, "event_id")
    services = services_of(request)
    detail = await records.event_detail(services, event_id) if event_id else None
    if detail is None or event_id is None:
        return problem(request, 404, "No such event", "No event with that id.")
    try:
        report = await replay(services, event_ids=[event_id], dry_run=True, force=False)
    except ReplayError as exc:
        return problem(request, 422, "Cannot replay", str(exc))
    item = report.to_dict()["events"][0]
    context = {**_common(request, "events"), "e": detail, "plan": item}
    return page(request, "replay.html", context)


@ui("replay")
async def replay_send(request: Request) -> Response:
    event_id = _path_id(request, "event_id")
    if event_id is None:
        return problem(request, 404, "No such event", "No event with that id.")
    force = request.state.form.get("mode") == "force"
    try:
        report = await replay(
            services_of(request), event_ids=[event_id], dry_run=False, force=force
        )
    except ReplayError as exc:
        return problem(request, 422, "Cannot replay", str(exc))
    item = report.events[0] if report.events else None
    if item is None or item.outcome == "not_found":
        return problem(request, 404, "No such event", "No event with that id.")
    notice = (
        "not_replayable"
        if item.outcome == "skipped"
        else "replayed"
        if item.created
        else "replayed_nothing"
    )
    return RedirectResponse(f"/ui/events/{event_id}?notice={notice}", status_code=303)


# --- deliveries ----------------------------------------------------------------------------


@ui("deliveries")
async def deliveries(request: Request) -> Response:
    services = services_of(request)
    state = _choice(request, "state", records.DELIVERY_STATES)
    cursor = _cursor(request, numeric=True)
    window = records.Window(limit=PAGE_SIZE, cursor=cursor)
    dead: list[dict[str, Any]] = []
    if state is None and cursor is None:  # dead first: what needs someone now
        dead_page = await records.list_deliveries(
            services, filters=records.Filters(state="dead"), window=records.Window(limit=DEAD_FIRST)
        )
        dead = dead_page.items
    found = await records.list_deliveries(
        services, filters=records.Filters(state=state), window=window
    )
    shown = {item["id"] for item in dead}
    context = {
        **_common(request, "deliveries"),
        "dead": dead,
        "deliveries": [item for item in found.items if item["id"] not in shown],
        "next_cursor": found.next_cursor,
        "state": state,
        "states": records.DELIVERY_STATES,
    }
    return page(request, "deliveries.html", context, live=True)


@ui("retry delivery")
async def retry(request: Request) -> Response:
    delivery_id = _path_id(request, "delivery_id")
    back = local(request.state.form.get("next"))
    if delivery_id is None:
        return problem(request, 404, "No such delivery", "No delivery with that id.")
    result = await retry_delivery(services_of(request), delivery_id, requested_by=_actor(request))
    if result.state is None:
        return problem(request, 404, "No such delivery", "No delivery with that id.")
    notice = "retried" if result.retried else "not_retryable"
    separator = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{separator}notice={notice}", status_code=303)


# --- rules ---------------------------------------------------------------------------------


def _rules_context(request: Request) -> dict[str, Any]:
    holder = services_of(request).rules
    return {**_common(request, "rules"), "view": rules_view(holder.loaded, holder.last_reload)}


@ui("rules")
async def rules(request: Request) -> Response:
    return page(request, "rules.html", _rules_context(request))


@ui("rules test")
async def rules_test(request: Request) -> Response:
    services = services_of(request)
    form: dict[str, str] = request.state.form
    text, status = form.get("event", ""), form.get("status", "")
    context = {**_rules_context(request), "pasted": text, "status": status}
    try:
        tested = test_event(
            services.rules.loaded,
            services.settings,
            text,
            status_change=parse_status_change(status),
            now=services.clock(),
        )
    except ValueError as exc:
        context["test_error"] = f"Cannot read that event: {exc}"
        return page(request, "rules.html", context, status_code=422)
    context["result"] = explanation_as_dict(tested.explanation)
    context["reads_as"] = tested.reads_as
    return page(request, "rules.html", context)


# --- routes --------------------------------------------------------------------------------


def ui_routes() -> list[BaseRoute]:
    """The routes to mount at `/ui`."""
    static = StaticFiles(packages=[("receiver.http.ui", "static")])
    return [
        Route("/", numbers, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/numbers/{channel_id}", number, methods=["GET"]),
        Route("/export.csv", export_csv, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        Route("/events/{event_id:int}", event, methods=["GET"]),
        Route("/events/{event_id:int}/replay", replay_preview, methods=["GET"]),
        Route("/events/{event_id:int}/replay", replay_send, methods=["POST"]),
        Route("/deliveries", deliveries, methods=["GET"]),
        Route("/deliveries/{delivery_id:int}/retry", retry, methods=["POST"]),
        Route("/rules", rules, methods=["GET"]),
        Route("/rules/test", rules_test, methods=["POST"]),
        Mount("/static", app=static, name="static"),
    ]


__all__ = ["CSRF_FIELD", "ui_routes"]
