"""Rows for the CLI tests to show: written straight into a database, as a deployment has them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from receiver.db.engine import create_engine
from receiver.db.tables import Base, Channel, Client, Delivery, Event

AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


async def store(database_url: str, *rows: Base) -> None:
    """Write rows (tables from receiver.db.tables) in one transaction, in order."""
    engine = create_engine(database_url)
    try:
        async with AsyncSession(engine) as session, session.begin():
            for row in rows:
                session.add(row)
                await session.flush()
    finally:
        await engine.dispose()


def client(client_id: str, *, name: str) -> Client:
    return Client(id=client_id, name=name, snapshot={}, fetched_at=AT, source="payload")


def channel(channel_id: str, *, client_id: str, status: str = "live") -> Channel:
    return Channel(
        id=channel_id,
        client_id=client_id,
        phone_number="+4915100000000",
        status=status,
        status_why="the number is live",
        snapshot={},
        snapshot_at=AT,
        fetched_at=AT,
        enriched=False,
        version=1,
    )


def event(event_id: int, *, channel_id: str | None = None) -> Event:
    return Event(
        id=event_id,
        dedup_key=f"key-{event_id}",
        correlation_id=f"corr{event_id}",
        source="webhook",
        event_type="channel_live",
        known=True,
        channel_id=channel_id,
        received_at=AT,
        headers={},
        verification="signature",
        parsed={},
        state="processed",
        attempts=1,
        enrichment="done",
    )


def delivery(delivery_id: int, *, event_id: int, rule: str, error: str) -> Delivery:
    return Delivery(
        id=delivery_id,
        event_id=event_id,
        rule_name=rule,
        target_name="ops",
        target_kind="json",
        state="dead",
        attempts=7,
        last_error=error,
        created_at=AT,
        updated_at=AT,
        replay_round=0,
        forced=False,
    )
