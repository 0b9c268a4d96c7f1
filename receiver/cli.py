"""`hub-receiver`: serve, worker, migrate, and the commands ops use to look and act.

Every listing has a `--json` form for scripts. Settings are read once here and passed down.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import Any

from receiver.logs import configure_logging
from receiver.settings import Settings, SettingsError, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from receiver.app import create_app
    from receiver.db.migrate import upgrade

    if settings.is_sqlite or args.migrate:
        # The embedded default applies its migrations itself; on PostgreSQL that is the
        # Procfile's `release` step (`hub-receiver migrate`), unless --migrate is given.
        upgrade(settings.database_url)
    host = args.host or settings.host
    port = args.port or settings.port
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": False,
        "proxy_headers": True,
        "timeout_graceful_shutdown": 15,
    }
    if settings.web_concurrency > 1:
        uvicorn.run(
            "receiver.asgi:make_app", factory=True, workers=settings.web_concurrency, **common
        )
    else:
        uvicorn.run(create_app(settings), **common)
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.jobs.worker import build_worker

    async def run() -> None:
        worker = build_worker(settings, burst=args.burst)
        try:
            await worker.async_run()
        finally:
            await worker.close()

    asyncio.run(run())
    return 0


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from receiver.db.migrate import upgrade

    upgrade(settings.database_url)
    print("database is at the latest schema")
    return 0


def _events_list(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.views import events_list

    return asyncio.run(events_list(settings, limit=args.limit, as_json=args.json))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hub-receiver",
        description="360dialog partner webhook receiver and notification router",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the web service (applies migrations on SQLite)")
    serve.add_argument("--host", help="interface to bind (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: PORT or 8000)")
    serve.add_argument(
        "--migrate", action="store_true", help="apply migrations first, on any database"
    )
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser("worker", help="run the arq worker (needs REDIS_URL)")
    worker.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    worker.set_defaults(handler=_worker)

    migrate = commands.add_parser("migrate", help="upgrade the database schema")
    migrate.set_defaults(handler=_migrate)

    events = commands.add_parser("events", help="look at stored events")
    events_commands = events.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    events_list = events_commands.add_parser("list", help="latest events, newest first")
    events_list.add_argument("--limit", type=int, default=20)
    events_list.add_argument("--json", action="store_true", help="machine-readable output")
    events_list.set_defaults(handler=_events_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"hub-receiver: {exc}", file=sys.stderr)
        return 2
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
