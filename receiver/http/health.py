"""`/healthz` (the process answers) and `/readyz` (its dependencies answer)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from receiver.db.store import maintenance
from receiver.services import Services

log = logging.getLogger("receiver.health")
CHECK_TIMEOUT = 2.0


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def database_ok(services: Services) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await maintenance.ping(engine=services.engine)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        log.warning("readiness: database check failed: %s", type(exc).__name__)
        return False
    return True


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    settings = services.settings
    checks: dict[str, Any] = {"database": "ok" if await database_ok(services) else "down"}
    queue = services.queue
    if settings.redis_url:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                redis_ok = queue is not None and await queue.ping()
        except TimeoutError:
            redis_ok = False
        checks["redis"] = "ok" if redis_ok else "down"
    else:
        checks["queue"] = "in-process"
    ready = all(value != "down" for value in checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks}
    if settings.webhook_auth_configured:
        body["webhook_authentication"] = (
            "signature" if settings.d360_webhook_secret else "shared secret header"
        )
    else:
        body["webhook_authentication"] = "NONE"
        body["warning"] = (
            "webhook authentication is not configured: anyone who knows the URL can post events "
            "(set D360_WEBHOOK_SECRET or WEBHOOK_SHARED_SECRET)"
        )
    if not settings.partner_api_configured:
        body["partner_api"] = "not configured: events are routed without enrichment"
    return JSONResponse(body, status_code=200 if ready else 503)
