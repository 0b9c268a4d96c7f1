"""The arq backend, and the promise that a Redis outage delays work but never loses it.

Each test runs its own `redis-server` (tests/support/redis_server.py): the shared one on 6379
is never stopped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import orjson
import pytest
from redis.asyncio import Redis

from receiver.db.tables import Event
from receiver.settings import Settings
from tests.support.app import RunningApp, run_worker_burst, running_app
from tests.support.events import JSON, event_body, events_in, stored_events
from tests.support.redis_server import RedisServer, private_redis
from tests.support.samples import sample
from tests.support.waiting import eventually

MakeSettings = Callable[..., Settings]
URL = "/webhooks/partner"
QUEUE = "arq:queue"


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    async with private_redis() as server:
        yield server


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def settings(make_settings: MakeSettings, database_url: str, redis_server: RedisServer) -> Settings:
    return make_settings(database_url=database_url, redis_url=redis_server.url, sweep_interval=0.5)


async def queued_jobs(client: Redis) -> set[str]:
    return {member.decode() for member in await client.zrange(QUEUE, 0, -1)}


async def post(app: RunningApp, body: bytes) -> int:
    response = await app.client.post(URL, content=body, headers=JSON)
    assert response.status_code == 200, response.text
    event_id: int = response.json()["event_id"]
    return event_id


async def test_an_event_is_enqueued_in_arq_and_processed_by_the_worker(
    settings: Settings, redis_client: Redis
) -> None:
    async with running_app(settings) as app:
        event_id = await post(app, sample("partner_webhook.channel_live.json"))

        async def handed_over() -> bool:  # the row is written marked: look in the queue
            return await queued_jobs(redis_client) == {f"process_event:{event_id}"}

        await eventually(handed_over)
        [event] = await stored_events(app.services.sessions)
        assert event.enqueued_at is not None

        await run_worker_burst(settings)

        [event] = await stored_events(app.services.sessions)
    assert event.state == "processed"
    assert event.processed_at is not None
    assert await queued_jobs(redis_client) == set()


async def test_a_duplicate_delivery_makes_one_job(settings: Settings, redis_client: Redis) -> None:
    body = sample("partner_webhook.account_violation.json")
    async with running_app(settings) as app:
        first = await post(app, body)
        second = await post(app, body)
        assert first == second
        await eventually(lambda: queued_jobs(redis_client))
        await app.relay.sweep()  # what the next sweep does, done now: still one job
        assert await queued_jobs(redis_client) == {f"process_event:{first}"}


async def test_events_are_accepted_while_redis_is_down_and_processed_when_it_returns(
    settings: Settings, redis_server: RedisServer, redis_client: Redis, database_url: str
) -> None:
    async with running_app(settings) as app:
        await redis_server.stop()
        ids = [await post(app, orjson.dumps(event_body(n))) for n in range(5)]

        ready = await app.client.get("/readyz")
        assert ready.status_code == 503
        assert await app.relay.sweep() == 0  # a sweep ran, and could not hand them over
        assert not app.relay.queue_ok

        # Written marked handed over; the relay takes the mark back when the queue refuses.
        async def all_unmarked() -> list[Event]:
            found = await stored_events(app.services.sessions)
            return found if all(e.enqueued_at is None for e in found) else []

        events = await eventually(all_unmarked, timeout=5.0)
        assert [e.id for e in events] == ids
        assert {e.state for e in events} == {"received"}

        await redis_server.start()

        async def all_handed_over() -> list[Event]:
            if await queued_jobs(redis_client) != {f"process_event:{i}" for i in ids}:
                return []
            found = await stored_events(app.services.sessions)
            return found if all(e.enqueued_at is not None for e in found) else []

        await eventually(all_handed_over, timeout=5.0)

    await run_worker_burst(settings)

    events = await events_in(database_url)
    assert [(e.id, e.state) for e in events] == [(i, "processed") for i in ids]


async def test_an_event_accepted_during_the_outage_is_not_processed_twice(
    settings: Settings, redis_server: RedisServer, redis_client: Redis, database_url: str
) -> None:
    async with running_app(settings) as app:
        await redis_server.stop()
        event_id = await post(app, sample("partner_webhook.channel_created.json"))
        await redis_server.start()

        async def handed_over() -> bool:
            return await queued_jobs(redis_client) == {f"process_event:{event_id}"}

        await eventually(handed_over, timeout=5.0)
        await run_worker_burst(settings)
        assert await app.relay.sweep() == 0  # another sweep: a processed event is not enqueued
        await run_worker_burst(settings)

    [event] = await events_in(database_url)
    assert (event.id, event.state, event.attempts) == (event_id, "processed", 1)
