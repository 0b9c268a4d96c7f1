"""The two reference servers every ingest figure is compared with, in the same run.

- `bare_app`: the framework ceiling. A Starlette route that reads the body and answers 200
  with a small JSON body, served by the same uvicorn settings as `hub-receiver serve`.
- `naive_app`: what a first version would do. Parse the body (the same `parse_event` and
  dedup key as the receiver), then one SQLAlchemy async transaction per request:
  `INSERT ... ON CONFLICT (dedup_key) DO NOTHING` into the real `events` table, commit,
  answer. Same engine set-up as the receiver (`receiver.db.engine.create_engine`).

Both are uvicorn factories: `uvicorn --factory bench.references:bare_app`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.dialects import postgresql, sqlite
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver.db.engine import create_engine
from receiver.db.tables import Event
from receiver.ingest.payload import parse_event, webhook_dedup_key
from receiver.settings import normalise_database_url


async def _bare(request: Request) -> Response:
    await request.body()
    return JSONResponse({"status": "accepted"})


def bare_app() -> Starlette:
    return Starlette(routes=[Route("/webhooks/partner", _bare, methods=["POST"])])


def naive_app() -> Starlette:
    url = normalise_database_url(os.environ["DATABASE_URL"])
    engine = create_engine(url)
    insert: Any = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    async def receive(request: Request) -> Response:
        body = await request.body()
        document: Any = orjson.loads(body)
        parsed = parse_event(document)
        row = {
            "dedup_key": webhook_dedup_key(document, parsed, body),
            "correlation_id": secrets.token_hex(8),
            "source": "webhook",
            "event_type": parsed.event_type[:100],
            "known": parsed.known,
            "channel_id": parsed.channel_id,
            "client_id": parsed.client_id,
            "phone_number": parsed.phone_number,
            "received_at": datetime.now(UTC),
            "raw_body": body.decode(),
            "headers": {"content-type": request.headers.get("content-type", "")},
            "verification": "none",
            "parsed": parsed.model_dump(exclude_none=True),
            "state": "received",
            "attempts": 0,
            "enrichment": "pending",
        }
        async with engine.begin() as conn:
            await conn.execute(
                insert(Event).values(**row).on_conflict_do_nothing(index_elements=["dedup_key"])
            )
        return JSONResponse({"status": "accepted"})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    return Starlette(
        routes=[Route("/webhooks/partner", receive, methods=["POST"])], lifespan=lifespan
    )
