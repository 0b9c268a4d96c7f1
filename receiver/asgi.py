"""ASGI factory for multi-process serving: `uvicorn --factory receiver.asgi:make_app`."""

from __future__ import annotations

from starlette.applications import Starlette

from receiver.app import create_app
from receiver.logs import configure_logging
from receiver.settings import load_settings


def make_app() -> Starlette:
    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    return create_app(settings)
