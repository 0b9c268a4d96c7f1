"""Webhooks as 360dialog sends them, and the event rows a running app stored from them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from receiver.db.engine import create_engine, create_sessionmaker
from receiver.db.tables import Event, RejectedRequest
from receiver.ingest.signature import sign

SECRET = "platform-secret-for-tests"
SAMPLES = (
    "partner_webhook.channel_created.json",
    "partner_webhook.channel_live.json",
    "partner_webhook.account_violation.json",
    "partner_webhook.client_created.json",
)
JSON = {"content-type": "application/json"}


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """Headers of a webhook 360dialog signed with `secret`."""
    return {**JSON, "x-360dialog-signature": sign(body, secret.encode())}


async def stored_events(sessions: async_sessionmaker[AsyncSession]) -> list[Event]:
    async with sessions() as session:
        return list((await session.scalars(select(Event).order_by(Event.id))).all())


async def rejected_requests(sessions: async_sessionmaker[AsyncSession]) -> list[RejectedRequest]:
    async with sessions() as session:
        return list(
            (await session.scalars(select(RejectedRequest).order_by(RejectedRequest.id))).all()
        )


async def events_in(database_url: str) -> list[Event]:
    """Read the events table of a database no app is running on."""
    engine = create_engine(database_url)
    try:
        return await stored_events(create_sessionmaker(engine))
    finally:
        await engine.dispose()


def event_body(n: int, **extra: Any) -> dict[str, Any]:
    """A distinct channel event (no top-level id, so it is keyed by its content)."""
    return {
        "event": "channel_live",
        "data": {
            "id": f"ch{n:04d}CH",
            "client_id": "Vb7xR2CL",
            "setup_info": {"phone_number": f"+49151{n:08d}"},
        },
        **extra,
    }
