"""`POST /webhooks/partner`: authenticate, parse, commit, then answer.

Order of checks: content type and content encoding (415), size (413, never buffering past
the limit), arrival within `BODY_TIMEOUT` (408), authentication (401, recorded), UTF-8 and
JSON (400), object (422). Then the event is committed through the group-commit writer;
only a committed event gets a 2xx. A database that cannot commit answers 503 so 360dialog
retries. A request head over `MAX_HEADER_BYTES` never gets here (431, `http/server.py`).
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from receiver.http.body import BodyTimeoutError, BodyTooLargeError, read_limited_body
from receiver.http.errors import json_error
from receiver.ingest.payload import parse_event, webhook_dedup_key
from receiver.ingest.rows import webhook_row
from receiver.ingest.signature import authenticate
from receiver.ingest.writer import StoreUnavailableError
from receiver.metrics import event_label
from receiver.services import Services

log = logging.getLogger("receiver.webhook")

SIGNATURE_HEADER = "x-360dialog-signature"
KEPT_HEADERS = ("content-type", "content-length", "user-agent", "x-forwarded-for", "x-request-id")
ENDPOINT = "webhooks/partner"
# What the handler reads besides the kept headers (the shared-secret header is added per
# request: its name is a setting).
READ_HEADERS = frozenset(
    name.encode("latin-1") for name in (*KEPT_HEADERS, "content-encoding", SIGNATURE_HEADER)
)
# 360dialog sends plain JSON; a compressed body would only fail later as "not UTF-8".
ACCEPTED_ENCODINGS = ("", "identity")


def is_json_content_type(value: str | None) -> bool:
    if not value:
        return False
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def new_correlation_id() -> str:
    return secrets.token_hex(8)


@functools.lru_cache(maxsize=4)
def _wanted_headers(secret_header: str) -> frozenset[bytes]:
    return READ_HEADERS | {secret_header.encode("latin-1")}


def read_headers(scope: Scope, wanted: frozenset[bytes]) -> dict[str, str]:
    """The `wanted` request headers, first value of each, in one pass over the raw list.

    Starlette's `request.headers` builds a mapping of every header and scans the list again
    for each lookup; the hot path needs a handful, read once.
    """
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in wanted:
            found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found


async def partner_webhook(request: Request) -> Response:
    services: Services = request.app.state.services
    started = time.perf_counter()
    response = await _handle(request, services)
    outcome = "accepted" if response.status_code < 300 else str(response.status_code)
    services.metrics.ack_latency.labels(outcome=outcome).observe(time.perf_counter() - started)
    return response


def _reject(
    services: Services, request: Request, *, status: int, reason: str, detail: str, size: int = 0
) -> Response:
    services.metrics.requests_rejected.labels(endpoint=ENDPOINT, reason=reason).inc()
    if status == 401:
        services.metrics.signature_failures.labels(reason=reason).inc()
        writer = request.app.state.writer
        writer.record_rejection(
            endpoint=ENDPOINT,
            reason=reason,
            remote=request.client.host if request.client else None,
            size=size,
            at=services.clock(),
        )
        log.warning("webhook refused: %s", reason, extra={"reason": reason, "body_bytes": size})
    return json_error(status, reason, detail)


async def _handle(request: Request, services: Services) -> Response:
    settings = services.settings
    # Never the shared-secret header in what is kept, whatever it is named (the signature
    # is only noted as present).
    secret_header = settings.webhook_shared_secret_header.lower()
    headers = read_headers(request.scope, _wanted_headers(secret_header))
    if not is_json_content_type(headers.get("content-type")):
        return _reject(
            services,
            request,
            status=415,
            reason="unsupported_media_type",
            detail="send the event as JSON with Content-Type: application/json",
        )
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding not in ACCEPTED_ENCODINGS:
        return _reject(
            services,
            request,
            status=415,
            reason="unsupported_content_encoding",
            detail=f"Content-Encoding {encoding[:40]!r} is not accepted; send the JSON "
            "uncompressed (no Content-Encoding)",
        )
    try:
        body = await read_limited_body(
            request, settings.max_body_bytes, timeout=settings.body_timeout
        )
    except BodyTooLargeError:
        return _reject(
            services,
            request,
            status=413,
            reason="body_too_large",
            detail=f"the body exceeds {settings.max_body_bytes} bytes",
        )
    except BodyTimeoutError:
        log.info(
            "webhook refused: body not received within %ss; answered 408",
            settings.body_timeout,
            extra={"reason": "body_timeout"},
        )
        response = _reject(
            services,
            request,
            status=408,
            reason="body_timeout",
            detail=f"the body did not arrive within {settings.body_timeout:g} seconds",
        )
        # The rest of the body may still come: this connection cannot carry another request.
        response.headers["connection"] = "close"
        return response
    auth = authenticate(
        body=body,
        signature=headers.get(SIGNATURE_HEADER),
        shared_secret=headers.get(secret_header),
        signing_secrets=request.app.state.signing_secrets,
        shared_secrets=request.app.state.shared_secrets,
    )
    if not auth.ok:
        reason = auth.reason or "unauthenticated"
        return _reject(
            services,
            request,
            status=401,
            reason=reason,
            detail="the request is not signed with a configured platform secret",
            size=len(body),
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _reject(
            services,
            request,
            status=400,
            reason="invalid_utf8",
            detail=f"body is not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset "
            f"{exc.start}); send the JSON encoded as UTF-8",
        )
    try:
        document: Any = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return _reject(
            services,
            request,
            status=400,
            reason="malformed_json",
            detail=f"body is not valid JSON: {exc}",
        )
    if not isinstance(document, dict):
        return _reject(
            services,
            request,
            status=422,
            reason="not_an_object",
            detail="expected a JSON object with an 'event' field, "
            f"got a JSON {type(document).__name__}",
        )
    parsed = parse_event(document)
    correlation_id = new_correlation_id()
    kept: dict[str, str | bool] = {
        name: headers[name][:200]
        for name in KEPT_HEADERS
        if name in headers and name != secret_header
    }
    kept["signature_present"] = SIGNATURE_HEADER in headers
    row = webhook_row(
        parsed,
        text=text,
        verification=auth.verification.value,
        headers=kept,
        received_at=services.clock(),
    )
    row.update(dedup_key=webhook_dedup_key(document, parsed, body), correlation_id=correlation_id)
    try:
        result = await request.app.state.writer.write(row)
    except StoreUnavailableError:
        services.metrics.events_received.labels(
            source="webhook", event_type=event_label(parsed.event_type), outcome="unavailable"
        ).inc()
        log.error(
            "webhook not stored: database unavailable; answering 503",
            extra={"correlation_id": correlation_id},
        )
        return json_error(
            503,
            "storage_unavailable",
            "the event could not be stored; retry later",
            headers={"Retry-After": "5"},
        )
    outcome = "duplicate" if result.duplicate else "accepted"
    services.metrics.events_received.labels(
        source="webhook", event_type=event_label(parsed.event_type), outcome=outcome
    ).inc()
    # The receipt is logged at INFO once per committed batch by the writer (ids, correlation
    # ids, types); this line per request is DEBUG (at INFO: ~17 µs, 5 % of the process).
    log.debug(
        "webhook %s",
        outcome,
        extra={
            # Passed directly rather than bound with bind_event(): this is the hot path.
            "correlation_id": correlation_id,
            "event_id": result.event_id,
            "event_type": parsed.event_type,
            "verification": auth.verification.value,
        },
    )
    answer: dict[str, Any] = {"status": outcome, "event_id": result.event_id}
    if not result.duplicate:
        answer["correlation_id"] = correlation_id
    return Response(orjson.dumps(answer), media_type="application/json")
