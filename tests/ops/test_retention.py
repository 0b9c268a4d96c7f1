"""Retention purges old raw bodies and refused requests, and keeps every record of delivery."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from receiver.db.tables import Delivery, DeliveryAttempt, Event, RejectedRequest
from receiver.ops.retention import run_retention
from receiver.services import Services, base_services
from receiver.settings import Settings

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def services(
    ops_settings: Callable[..., Settings], database_url: str
) -> AsyncIterator[Services]:
    services = base_services(ops_settings(database_url))
    services.clock = lambda: NOW
    try:
        yield services
    finally:
        await services.engine.dispose()


async def add_event(services: Services, name: str, *, age: timedelta, state: str) -> int:
    async with services.sessions.begin() as session:
        event_id: int = (
            await session.execute(
                insert(Event)
                .values(
                    dedup_key=name,
                    correlation_id=name,
                    source="webhook",
                    event_type="channel_live",
                    known=True,
                    received_at=NOW - age,
                    raw_body='{"event": "channel_live"}',
                    headers={},
                    verification="signature",
                    parsed={},
                    state=state,
                    attempts=1,
                    enrichment="enriched",
                )
                .returning(Event.id)
            )
        ).scalar_one()
        delivery_id = (
            await session.execute(
                insert(Delivery)
                .values(
                    event_id=event_id,
                    rule_name="r",
                    target_name="ops",
                    target_kind="json",
                    state="sent",
                    attempts=1,
                    created_at=NOW - age,
                    updated_at=NOW - age,
                )
                .returning(Delivery.id)
            )
        ).scalar_one()
        await session.execute(
            insert(DeliveryAttempt).values(
                delivery_id=delivery_id, number=1, started_at=NOW - age, outcome="sent"
            )
        )
    return event_id


async def add_rejected(services: Services, *, age: timedelta) -> None:
    async with services.sessions.begin() as session:
        await session.execute(
            insert(RejectedRequest).values(
                received_at=NOW - age, endpoint="webhooks/partner", reason="bad", body_bytes=1
            )
        )


async def events(services: Services) -> dict[str, Event]:
    async with services.sessions() as session:
        return {e.dedup_key: e for e in (await session.scalars(select(Event))).all()}


async def count(services: Services, table: Any) -> int:
    async with services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_it_purges_raw_bodies_of_old_finished_events_and_keeps_the_rest(
    services: Services,
) -> None:
    await add_event(services, "old-processed", age=timedelta(days=31), state="processed")
    await add_event(services, "old-failed", age=timedelta(days=40), state="failed")
    await add_event(services, "old-unprocessed", age=timedelta(days=31), state="received")
    await add_event(services, "recent", age=timedelta(days=29), state="processed")
    await add_rejected(services, age=timedelta(days=31))
    await add_rejected(services, age=timedelta(days=1))

    result = await run_retention(services, older_than_days=30)

    assert (result.raw_bodies_purged, result.rejected_deleted) == (2, 1)

    stored = await events(services)
    assert stored["old-processed"].raw_body is None
    assert stored["old-processed"].raw_purged_at == NOW
    assert stored["old-failed"].raw_body is None
    assert stored["old-unprocessed"].raw_body is not None
    assert stored["recent"].raw_body is not None
    assert stored["recent"].raw_purged_at is None
    assert len(stored) == 4
    assert await count(services, Delivery) == 4
    assert await count(services, DeliveryAttempt) == 4
    assert await count(services, RejectedRequest) == 1


async def test_running_it_again_changes_nothing(services: Services) -> None:
    await add_event(services, "old", age=timedelta(days=31), state="processed")
    await add_rejected(services, age=timedelta(days=31))
    assert (await run_retention(services, older_than_days=30)).raw_bodies_purged == 1

    again = await run_retention(services, older_than_days=30)

    assert (again.raw_bodies_purged, again.rejected_deleted, again.complete) == (0, 0, True)
    assert (await events(services))["old"].raw_purged_at == NOW


async def test_it_works_in_bounded_batches_and_says_when_it_stopped_early(
    services: Services,
) -> None:
    for n in range(5):
        await add_event(services, f"old-{n}", age=timedelta(days=31 + n), state="processed")
        await add_rejected(services, age=timedelta(days=31))

    partial = await run_retention(services, older_than_days=30, batch_size=2, max_batches=2)
    assert (partial.raw_bodies_purged, partial.rejected_deleted, partial.complete) == (4, 4, False)
    rest = await run_retention(services, older_than_days=30, batch_size=2, max_batches=2)
    assert (rest.raw_bodies_purged, rest.rejected_deleted, rest.complete) == (1, 1, True)
    assert all(e.raw_body is None for e in (await events(services)).values())
