"""What the pipeline tests share: the fakes' handles, posting events, reading what was written."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from receiver.db.tables import Channel, Delivery, DeliveryAttempt, Event, StatusChange
from tests.support.app import RunningApp
from tests.support.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
SHIPPED_RULES = REPO / "routing_rules"

ACME = "Vb7xR2CL"  # ops@acme-bakery.example
ACME_LIVE = "kJ2mQ8CH"  # live
ACME_DRAFT = "zR5wN3CH"  # draft
NORDWIND = "Hn3pZ8CL"  # it@nordwind-tools.example
NORDWIND_CHANNEL = "Tq7bY4CH"  # sandbox
ACME_EMAIL = "ops@acme-bakery.example"
NORDWIND_EMAIL = "it@nordwind-tools.example"
ACME_PHONE = "+4915112345678"

Sessions = async_sessionmaker[AsyncSession]


# --- webhooks ----------------------------------------------------------------------------------


def webhook(event: str, channel_id: str | None = None, **data: Any) -> dict[str, Any]:
    """A partner webhook in the `{id, event, data}` envelope, with a fresh delivery id."""
    body: dict[str, Any] = {"id": str(uuid.uuid4()), "event": event, "data": dict(data)}
    if channel_id is not None:
        body["data"]["id"] = channel_id
    return body


def client_created(client_id: str = ACME) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "event": "client_created",
        "data": {"id": client_id, "name": "someone", "status": "active"},
    }


async def post(app: RunningApp, body: Mapping[str, Any]) -> dict[str, Any]:
    response = await app.client.post("/webhooks/partner", json=dict(body))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


# With WEBHOOK_SHARED_SECRET set to this, `post_authenticated` webhooks are authenticated
# (only those may reach the built-in `client` target).
WEBHOOK_TOKEN = "webhook-token-for-tests"


async def post_authenticated(app: RunningApp, body: Mapping[str, Any]) -> dict[str, Any]:
    response = await app.client.post(
        "/webhooks/partner", json=dict(body), headers={"x-webhook-token": WEBHOOK_TOKEN}
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


# --- waiting --------------------------------------------------------------------------------


async def settle(app: RunningApp, *, events: int, timeout: float = 8.0) -> None:
    """In-process runner: wait until `events` events are processed and every job finished."""

    async def done() -> bool:
        stored = await all_events(app.services.sessions)
        return len(stored) >= events and all(e.state != "received" for e in stored)

    await eventually(done, timeout=timeout)
    await app.drain(timeout)


async def handed_over(app: RunningApp, *, events: int) -> None:
    """arq: wait until the relay has put `events` events into Redis."""

    async def done() -> bool:
        stored = await all_events(app.services.sessions)
        return len(stored) >= events and all(
            e.enqueued_at is not None for e in stored if e.state == "received"
        )

    await eventually(done)


# --- reading ---------------------------------------------------------------------------------


def stored_webhook(
    key: str, *, state: str, received_at: datetime, correlation_id: str | None = None
) -> Event:
    """A `channel_live` webhook row to add straight to the database (no pipeline)."""
    return Event(
        dedup_key=key,
        correlation_id=correlation_id or uuid.uuid5(uuid.NAMESPACE_URL, key).hex[:16],
        source="webhook",
        event_type="channel_live",
        known=True,
        received_at=received_at,
        raw_body="{}",
        headers={},
        verification="shared_secret",
        parsed={},
        state=state,
    )


async def all_events(sessions: Sessions) -> list[Event]:
    async with sessions() as session:
        return list((await session.scalars(select(Event).order_by(Event.id))).all())


async def one_event(sessions: Sessions, event_id: int) -> Event:
    async with sessions() as session:
        event = await session.get(Event, event_id)
        assert event is not None
        return event


async def history(sessions: Sessions, channel_id: str) -> list[tuple[str | None, str]]:
    async with sessions() as session:
        rows = await session.scalars(
            select(StatusChange)
            .where(StatusChange.channel_id == channel_id)
            .order_by(StatusChange.channel_version)
        )
        return [(row.from_status, row.to_status) for row in rows]


async def channel_row(sessions: Sessions, channel_id: str) -> Channel | None:
    async with sessions() as session:
        return await session.get(Channel, channel_id)


async def all_deliveries(sessions: Sessions) -> list[Delivery]:
    async with sessions() as session:
        return list((await session.scalars(select(Delivery).order_by(Delivery.id))).all())


async def deliveries_of(sessions: Sessions, *, rule: str) -> list[Delivery]:
    return [d for d in await all_deliveries(sessions) if d.rule_name == rule]


async def attempts_of(sessions: Sessions, delivery_id: int) -> list[DeliveryAttempt]:
    async with sessions() as session:
        rows = await session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == delivery_id)
            .order_by(DeliveryAttempt.number)
        )
        return list(rows.all())


async def count(sessions: Sessions, table: Any) -> int:
    async with sessions() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())
