"""`GET /metrics`: the process's Prometheus registry, with the shared gauges read fresh.

Unauthenticated, as Prometheus scrapers expect: it holds counts only, labelled by bounded
sets (event type, outcome, target kind, state), never ids, URLs or secrets.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.ops.gauges import refresh_gauges
from receiver.services import Services


async def metrics_endpoint(request: Request) -> Response:
    services: Services = request.app.state.services
    await refresh_gauges(services)
    return Response(
        generate_latest(services.metrics.registry),
        media_type=CONTENT_TYPE_LATEST,
        headers={"Cache-Control": "no-store"},
    )


def metrics_app(services: Services) -> Starlette:
    """A tiny app serving only /metrics, for the worker's own port (WORKER_METRICS_PORT)."""
    app = Starlette(routes=[Route("/metrics", metrics_endpoint, methods=["GET"])])
    app.state.services = services
    return app
