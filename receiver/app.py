"""`create_app(settings)`: the web application and the lifespan that owns its resources."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route

from receiver.http.admin import admin_routes
from receiver.http.callbacks import permission_callback
from receiver.http.errors import json_error
from receiver.http.health import healthz, readyz
from receiver.http.metrics import metrics_endpoint
from receiver.http.ui.pages import ui_routes
from receiver.http.webhooks import partner_webhook
from receiver.ingest.writer import EventWriter
from receiver.metrics import Metrics
from receiver.ops.rules import install_reload_signal
from receiver.settings import Settings
from receiver.wiring import open_runtime

log = logging.getLogger("receiver.app")


def create_app(settings: Settings, *, metrics: Metrics | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not settings.webhook_auth_configured:
            log.warning(
                "WEBHOOK AUTHENTICATION IS OFF: anyone who knows the URL can post events. "
                "Set D360_WEBHOOK_SECRET (platform secret) or WEBHOOK_SHARED_SECRET."
            )
        async with open_runtime(settings, role="web", metrics=metrics) as services:
            writer = EventWriter(
                services.engine,
                on_committed=services.relay.events_committed if services.relay else None,
            )
            writer.start()
            app.state.services = services
            app.state.writer = writer
            app.state.signing_secrets = [
                s.get_secret_value().encode() for s in settings.d360_webhook_secret
            ]
            app.state.shared_secrets = [
                s.get_secret_value().encode() for s in settings.webhook_shared_secret
            ]
            uninstall_reload_signal = install_reload_signal(services)  # SIGHUP: reload rules
            try:
                yield
            finally:
                uninstall_reload_signal()
                await writer.stop()

    async def not_found(_request: Request, _exc: Exception) -> Response:
        return json_error(404, "not_found", "no such endpoint")

    async def method_not_allowed(_request: Request, _exc: Exception) -> Response:
        return json_error(405, "method_not_allowed", "this endpoint does not accept that method")

    async def client_disconnected(request: Request, _exc: Exception) -> Response:
        # Nobody is left to answer and nothing of ours failed: one line, no traceback
        # (3,000 hang-ups used to write 16 MB of tracebacks and stall the process).
        log.info(
            "client disconnected before its request was read",
            extra={"method": request.method, "path": request.url.path},
        )
        return Response(status_code=400)  # never sent: uvicorn drops it

    async def server_error(_request: Request, exc: Exception) -> Response:
        log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
        return json_error(500, "internal_error", "unexpected error; it has been logged")

    routes = [
        Route("/webhooks/partner", partner_webhook, methods=["POST"]),
        Route("/callbacks/permission", permission_callback, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Mount("/admin", routes=admin_routes()),
        Route("/ui", lambda _request: RedirectResponse("/ui/", status_code=308), methods=["GET"]),
        Mount("/ui", routes=ui_routes()),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            404: not_found,
            405: method_not_allowed,
            ClientDisconnect: client_disconnected,
            500: server_error,
        },
    )
