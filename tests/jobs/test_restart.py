"""Work stored while nothing processed it is done after a restart: the database is the record."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from arq.constants import default_queue_name
from redis.asyncio import Redis

from receiver.db.tables import Event
from receiver.http.loopback import free_port
from receiver.settings import Settings
from tests.support.app import RunningApp, running_app
from tests.support.events import JSON, event_body, events_in, stored_events
from tests.support.redis_server import private_redis
from tests.support.waiting import eventually

MakeSettings = Callable[..., Settings]
URL = "/webhooks/partner"
DEFAULT_REQUEUE_AFTER = Settings().requeue_after


async def store_events(settings: Settings, count: int) -> list[int]:
    """Run the web app (with no worker anywhere) just long enough to accept `count` events."""
    async with running_app(settings) as app:
        ids = []
        for n in range(count):
            body = orjson.dumps(event_body(n))
            response = await app.client.post(URL, content=body, headers=JSON)
            assert response.status_code == 200, response.text
            ids.append(response.json()["event_id"])
        relay = app.relay

        async def hand_over_tried() -> bool:
            # Rows are written marked handed over: whether they are is in the queue itself.
            if not relay.queue_ok:
                return True
            assert settings.redis_url is not None
            client = Redis.from_url(settings.redis_url)
            try:
                return int(await client.zcard(default_queue_name)) == count
            finally:
                await client.aclose()

        await eventually(hand_over_tried)  # the relay tried its hand-over before the app stops
    return ids


async def all_processed(app: RunningApp) -> list[Event]:
    """The stored events once every one is processed (in-process runner drained), else []."""
    await app.drain()
    events = await stored_events(app.services.sessions)
    return events if events and all(e.state == "processed" for e in events) else []


async def test_events_that_never_reached_the_queue_are_processed_after_a_restart(
    make_settings: MakeSettings, database_url: str
) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    ids = await store_events(make_settings(database_url=database_url, redis_url=unreachable), 5)
    before = await events_in(database_url)
    assert {(e.state, e.enqueued_at) for e in before} == {("received", None)}

    in_process = make_settings(database_url=database_url, requeue_after=DEFAULT_REQUEUE_AFTER)
    async with running_app(in_process) as app:
        events = await eventually(lambda: all_processed(app), timeout=3.0)
    assert [e.id for e in events] == ids


async def test_events_queued_in_redis_but_never_worked_are_processed_after_a_restart(
    make_settings: MakeSettings, database_url: str
) -> None:
    # The production REQUEUE_AFTER: a restart must not leave events waiting for it to pass.
    async with private_redis() as redis:
        with_redis = make_settings(
            database_url=database_url,
            redis_url=redis.url,
            requeue_after=DEFAULT_REQUEUE_AFTER,
        )
        ids = await store_events(with_redis, 5)
    before = await events_in(database_url)
    assert all(e.state == "received" and e.enqueued_at is not None for e in before)

    in_process = make_settings(database_url=database_url, requeue_after=DEFAULT_REQUEUE_AFTER)
    async with running_app(in_process) as app:
        events = await eventually(lambda: all_processed(app), timeout=3.0)
    assert [e.id for e in events] == ids


async def test_a_processed_event_is_not_processed_again_after_a_restart(
    make_settings: MakeSettings, database_url: str
) -> None:
    settings = make_settings(database_url=database_url)
    async with running_app(settings) as app:
        body = orjson.dumps(event_body(1))
        assert (await app.client.post(URL, content=body, headers=JSON)).status_code == 200
        [first] = await eventually(lambda: all_processed(app))
    async with running_app(settings) as app:
        await app.run_to_idle()  # the start-up sweep and one more, done now
    [after] = await events_in(database_url)
    assert (after.state, after.attempts, after.processed_at) == (
        "processed",
        1,
        first.processed_at,
    )
