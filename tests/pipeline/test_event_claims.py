"""Event claims in batches: the jobs that start together share one statement, and each
event is still leased to one run only."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event as engine_events
from sqlalchemy.ext.asyncio import AsyncEngine

from receiver.jobs.process import claim_event
from receiver.services import Services, base_services
from receiver.settings import Settings
from tests.pipeline.support import stored_webhook

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


async def store_received(services: Services, count: int) -> list[int]:
    async with services.sessions.begin() as session:
        rows = [
            stored_webhook(f"claim-test-{n}", state="received", received_at=NOW)
            for n in range(count)
        ]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]


@contextmanager
def claim_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def on_execute(*args: Any) -> None:
        statement = str(args[2])
        if statement.lstrip().startswith("UPDATE events"):
            seen.append(statement)

    sync = engine.sync_engine
    engine_events.listen(sync, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        engine_events.remove(sync, "before_cursor_execute", on_execute)


async def test_jobs_claiming_together_share_one_statement(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    services = base_services(make_settings(database_url=database_url))
    try:
        ids = await store_received(services, 20)
        with claim_statements(services.engine) as statements:
            claimed = await asyncio.gather(*(claim_event(services, i) for i in ids))
        assert len(statements) == 1
        assert [found[0].id for found in claimed if found is not None] == ids
        assert all(found[0].attempts == 1 for found in claimed if found is not None)
    finally:
        await services.engine.dispose()


async def test_an_event_asked_twice_in_one_batch_is_leased_once(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(database_url=database_url)
    services, other = base_services(settings), base_services(settings)
    try:
        [event_id] = await store_received(services, 1)
        first, second = await asyncio.gather(
            claim_event(services, event_id), claim_event(services, event_id)
        )
        assert first is not None and second is None
        # Leased now: another process's run finds it held.
        assert await claim_event(other, event_id) is None
    finally:
        await services.engine.dispose()
        await other.engine.dispose()


async def test_two_workers_claiming_in_batches_lease_each_event_once(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(database_url=database_url)
    first, second = base_services(settings), base_services(settings)
    try:
        ids = await store_received(first, 60)
        answers = await asyncio.gather(
            *(claim_event(first, i) for i in ids),
            *(claim_event(second, i) for i in reversed(ids)),
        )
        leased = Counter(found[0].id for found in answers if found is not None)
        assert sorted(leased) == ids
        assert set(leased.values()) == {1}
    finally:
        await first.engine.dispose()
        await second.engine.dispose()
