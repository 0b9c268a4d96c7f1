"""`GET /callbacks/permission`: a client's browser, back from 360dialog's onboarding.

The query is unsigned, so each channel becomes a `permission_granted` / `permission_revoked`
event marked as an unconfirmed claim; the worker confirms it against the Partner API before
anything is routed to a client. A person is looking at the answer: a small page (or a 303
to `PERMISSION_REDIRECT_URL`), and a friendly 400 page for a link we cannot read.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from receiver.db.errors import DatabaseUnavailableError
from receiver.db.store.listings import existing_dedup_keys
from receiver.http.webhooks import new_correlation_id
from receiver.ingest.callback import CallbackQueryError, PermissionClaim, parse_permission_query
from receiver.ingest.writer import StoreUnavailableError
from receiver.services import Services
from receiver.vocabulary import Claim, EventState

log = logging.getLogger("receiver.callback")

# A browser reload or double redirect within this window is the same claim, stored once.
DEDUP_WINDOW_SECONDS = 600
MAX_QUERY = 8192

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;"
    "color:#1f2933}h1{font-size:1.4rem}p{line-height:1.5}"
)
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{style}</style></head>
<body><h1>{title}</h1><p>{message}</p></body></html>
"""
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

# The page runs no script, loads nothing and may not be framed; its URL carries the
# client's and channels' ids, so no Referer leaves it (nor the redirect to
# PERMISSION_REDIRECT_URL), and no cache keeps it.
SECURITY_HEADERS = {
    "content-security-policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def page(title: str, message: str, status: int) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.format(title=html.escape(title), message=html.escape(message), style=_STYLE),
        status_code=status,
        headers=SECURITY_HEADERS,
    )


def dedup_key(kind: str, client_id: str, channel_id: str, window: int) -> str:
    return f"cb:{kind}:{client_id}:{channel_id}:{window}"


async def recent_duplicates(services: Services, rows: list[dict[str, Any]]) -> set[str]:
    """Keys of rows whose claim was stored in the previous window, less than a window ago.

    Keys are per fixed window; this catches a reload that crosses a window boundary.
    """
    previous = {
        dedup_key(row["event_type"], row["client_id"], row["channel_id"], row["window"] - 1): row[
            "dedup_key"
        ]
        for row in rows
    }
    since = services.clock() - timedelta(seconds=DEDUP_WINDOW_SECONDS)
    found = await existing_dedup_keys(services.sessions, keys=previous, received_after=since)
    return {previous[key] for key in found}


def claim_rows(
    claim: PermissionClaim, *, services: Services, raw_query: str
) -> list[dict[str, Any]]:
    now = services.clock()
    window = int(now.timestamp()) // DEDUP_WINDOW_SECONDS
    correlation_id = new_correlation_id()
    rows = []
    for kind, channel_ids in (
        ("permission_granted", claim.channels),
        ("permission_revoked", claim.revoked),
    ):
        for channel_id in channel_ids:
            rows.append(
                {
                    "dedup_key": dedup_key(kind, claim.client_id, channel_id, window),
                    "window": window,
                    "correlation_id": correlation_id,
                    "source": "callback",
                    "event_type": kind,
                    "known": True,
                    "channel_id": channel_id,
                    "client_id": claim.client_id,
                    "phone_number": None,
                    "received_at": now,
                    "raw_body": raw_query,
                    "headers": {},
                    "verification": "none",
                    "parsed": {
                        "event_type": kind,
                        "channel_id": channel_id,
                        "client_id": claim.client_id,
                    },
                    "claim": Claim.UNCONFIRMED.value,
                    "state": EventState.RECEIVED.value,
                    "attempts": 0,
                    "enrichment": "pending",
                }
            )
    return rows


async def permission_callback(request: Request) -> Response:
    services: Services = request.app.state.services
    raw_query = request.url.query
    if len(raw_query) > MAX_QUERY:
        services.metrics.requests_rejected.labels(
            endpoint="callbacks/permission", reason="query_too_long"
        ).inc()
        return page("This link is too long", "Please go back and try the onboarding again.", 400)
    params = request.query_params
    try:
        claim = parse_permission_query(
            client=params.getlist("client"),
            channels=params.getlist("channels"),
            revoked=params.getlist("revoked"),
        )
    except CallbackQueryError as exc:
        services.metrics.requests_rejected.labels(
            endpoint="callbacks/permission", reason="bad_query"
        ).inc()
        return page(
            "We could not read this link",
            f"{exc}. Please return to the page you came from and try again,"
            " or contact your provider.",
            400,
        )
    rows = claim_rows(claim, services=services, raw_query=raw_query)
    writer = request.app.state.writer
    try:
        seen = await recent_duplicates(services, rows)
        for row in rows:
            row.pop("window")
        rows = [row for row in rows if row["dedup_key"] not in seen]
        results = await asyncio.gather(*(writer.write(row) for row in rows))
    except (StoreUnavailableError, DatabaseUnavailableError):
        log.error("permission callback not stored: database unavailable")
        return page(
            "Please try again in a minute",
            "We could not record your choice just now. Reload this page in a minute.",
            503,
        )
    for row, result in zip(rows, results, strict=True):
        services.metrics.events_received.labels(
            source="callback",
            event_type=row["event_type"],
            outcome="duplicate" if result.duplicate else "accepted",
        ).inc()
    log.info(
        "permission callback stored",
        extra={
            "client_id": claim.client_id,
            "granted": len(claim.channels),
            "revoked": len(claim.revoked),
        },
    )
    redirect = services.settings.permission_redirect_url
    if redirect:
        query = urlencode({"client": claim.client_id, "channels": ",".join(claim.channels)})
        separator = "&" if "?" in redirect else "?"
        return RedirectResponse(
            f"{redirect}{separator}{query}", status_code=303, headers=SECURITY_HEADERS
        )
    granted = len(claim.channels)
    message = (
        f"Thank you. We received access to {granted} number{'s' if granted != 1 else ''}"
        + (f" and the removal of {len(claim.revoked)}" if claim.revoked else "")
        + ". You can close this window."
    )
    return page("All set", message, 200)
