"""Rendering the dashboard's pages: Jinja2 templates in the package, escaped, with strict headers.

Every value is escaped (autoescape on for every template); pages load only this package's
own stylesheet and script (`/ui/static/`), so the Content-Security-Policy allows nothing
else: no inline script or style, no other origin, no framing. A request carrying
`X-Live: 1` (the page's own refresh, `static/live.js`) gets only the page's live region.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
REFRESH_SECONDS = 5


def _ago(value: str | None, now: datetime) -> str:
    """'3 min ago' for an ISO time (the full time is in the element's title)."""
    if not value:
        return "never"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    seconds = int((now - moment).total_seconds())
    if seconds < 0:
        return "in the future"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _pretty(text: str | None) -> str:
    """A JSON body indented for reading; anything else as it is."""
    if text is None:
        return ""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _query(request: Request, **changes: Any) -> str:
    """This page's query string with some parameters changed (None removes one)."""
    params = dict(request.query_params)
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = str(value)
    return "?" + urlencode(params) if params else "?"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("receiver.http.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty"] = _pretty
    env.filters["json"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False)
    env.filters["segment"] = lambda value: quote(str(value), safe="")
    return env


ENVIRONMENT = _environment()


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    live: bool = False,
) -> Response:
    """Render `template` as a whole page, or only its live region for the page's refresh."""
    now = datetime.now(UTC)
    fragment = live and request.headers.get("x-live") == "1"
    html = ENVIRONMENT.get_template(template).render(
        request=request,
        fragment=fragment,
        live=live,
        refresh=REFRESH_SECONDS,
        ago=lambda value: _ago(value, now),
        query=lambda **changes: _query(request, **changes),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=dict(SECURITY_HEADERS))


def secure(response: Response) -> Response:
    """Add the dashboard's security headers to a response that is not a rendered page."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
