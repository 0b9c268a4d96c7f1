"""The dashboard's door: ADMIN_TOKEN set, a valid session cookie, a CSRF token on every POST.

Without ADMIN_TOKEN the dashboard shows only how to enable it. Without a session a GET is
sent to the login page (and back afterwards); a POST without a session or with a wrong CSRF
token is refused (401 / 403) and changes nothing. Every page is logged with its action and
outcome, never the cookie, the form or the token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from receiver.db.errors import DATABASE_ERRORS, DatabaseUnavailableError, failure_detail
from receiver.http.body import BodyTimeoutError, BodyTooLargeError, read_limited_body
from receiver.http.ui.render import page, secure
from receiver.http.ui.session import COOKIE, CSRF_FIELD, LoginLimiter, SessionBox, csrf_matches
from receiver.services import Services

log = logging.getLogger("receiver.ui")

Handler = Callable[[Request], Awaitable[Response]]
FORM_LIMIT = 512 * 1024  # a pasted event for the rules page is the largest form


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def session_box(request: Request) -> SessionBox | None:
    """The box sealing this deployment's sessions; None when ADMIN_TOKEN is not set."""
    settings = services_of(request).settings
    token = settings.admin_token.get_secret_value() if settings.admin_token is not None else ""
    if not token:
        return None
    box: SessionBox | None = getattr(request.app.state, "ui_box", None)
    if box is None:
        box = SessionBox(token, ttl=settings.ui_session_ttl)
        request.app.state.ui_box = box
    return box


def login_limiter(request: Request) -> LoginLimiter:
    limiter: LoginLimiter | None = getattr(request.app.state, "ui_login_limiter", None)
    if limiter is None:
        limiter = LoginLimiter()
        request.app.state.ui_login_limiter = limiter
    return limiter


def remote(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def local_path(value: str | None) -> str:
    """`value` when it is a path of the dashboard's own, else the home page (no open redirect)."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/"


class FormError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form, bounded in size and time; the first value of each field."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormError(415, "send the form as application/x-www-form-urlencoded")
    settings = services_of(request).settings
    try:
        body = await read_limited_body(request, FORM_LIMIT, timeout=settings.body_timeout)
    except BodyTooLargeError:
        raise FormError(413, "the form is too large") from None
    except BodyTimeoutError:
        raise FormError(408, "the form did not arrive in time") from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError(400, "the form is not UTF-8") from None
    try:
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=50)
    except ValueError:  # more fields than any dashboard form has
        raise FormError(400, "the form has too many fields") from None
    return {name: values[0] for name, values in fields.items()}


def problem(request: Request, status: int, title: str, message: str) -> Response:
    return page(request, "problem.html", {"title": title, "message": message}, status_code=status)


def ui(action: str) -> Callable[[Handler], Handler]:
    """Guard a dashboard handler (see the module's doc) and log the call."""

    def wrap(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            response = await _guarded(request, handler)
            extra = {
                "action": action,
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
                "remote": remote(request),
            }
            if response.status_code in (401, 403):
                state = request.app.state
                count = state.ui_refused = getattr(state, "ui_refused", 0) + 1
                if count & (count - 1) == 0:  # the 1st, 2nd, 4th, ... refusal: no log flood
                    log.warning("dashboard request refused", extra={**extra, "count": count})
            elif request.headers.get("x-live") == "1" and response.status_code < 400:
                log.debug("dashboard %s (refresh)", action, extra=extra)  # every 5 s per tab
            else:
                log.info("dashboard %s", action, extra=extra)
            return secure(response)

        endpoint.__name__ = handler.__name__
        return endpoint

    return wrap


async def _guarded(request: Request, handler: Handler) -> Response:
    box = session_box(request)
    if box is None:
        return page(request, "disabled.html", {}, status_code=404)
    session = box.open(request.cookies.get(COOKIE), now=time.time())
    if session is None:
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)
        return problem(request, 401, "Not logged in", "Log in again, then repeat what you did.")
    request.state.session = session
    if request.method == "POST":
        try:
            form = await read_form(request)
        except FormError as exc:
            return problem(request, exc.status, "Cannot read the form", str(exc))
        if not csrf_matches(session, form.get(CSRF_FIELD)):
            return problem(
                request,
                403,
                "Form expired",
                "This form was not issued by this login (or is from before it). "
                "Reload the page and try again.",
            )
        request.state.form = form
    try:
        return await handler(request)
    except (*DATABASE_ERRORS, DatabaseUnavailableError) as exc:
        log.warning(
            "dashboard page without its database: %s", failure_detail(exc) or type(exc).__name__
        )
        return problem(
            request, 503, "Database unavailable", "The database did not answer; try again shortly."
        )
