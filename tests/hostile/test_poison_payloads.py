"""Accepted payloads the database cannot hold as they are must still end `processed` or
`failed`: never retried forever as if the database were down.

Found by the fuzzing in `test_fuzz_endpoints.py` and pinned here, with the embedded default
configuration (no Partner API), where the webhook's own `data` becomes the channel or client
snapshot: a NUL character (`\\u0000`, valid JSON) in any string, or an id longer than the
64-character columns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from sqlalchemy import select

from receiver.db.tables import Event
from receiver.ingest.signature import sign
from receiver.ops.records import event_summary
from receiver.settings import Settings
from tests.support.app import running_app

SECRET = "poison-platform-secret"
POISON = {
    "NUL in a free-text field of the channel": {
        "id": "poison-1",
        "event": "channel_live",
        "data": {"id": "kJ2mQ8CH", "setup_info": {"phone_name": "Acme\u0000 Bakery"}},
    },
    "NUL in a key of an unknown event": {"id": "poison-2", "event": "new_thing", "\u0000": 1},
    "NUL in the client's name": {
        "id": "poison-3",
        "event": "client_created",
        "data": {"id": "Vb7xR2CL", "name": "Jana\u0000"},
    },
    "channel id of 100 characters": {
        "id": "poison-4",
        "event": "channel_live",
        "data": {"id": "X" * 100},
    },
    "client id of 100 characters": {
        "id": "poison-5",
        "event": "channel_live",
        "data": {"id": "zR5wN3CH", "client_id": "C" * 100},
    },
}


async def test_a_payload_the_database_cannot_store_as_is_still_ends_processed_or_failed(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database_url=database_url, d360_webhook_secret=SECRET)
    stuck = []
    async with running_app(settings) as app:
        ids = {}
        for name, document in POISON.items():
            body = orjson.dumps(document)
            response = await app.client.post(
                "/webhooks/partner",
                content=body,
                headers={
                    "content-type": "application/json",
                    "x-360dialog-signature": sign(body, SECRET.encode()),
                },
            )
            assert response.status_code == 200, (name, response.text)
            ids[response.json()["event_id"]] = name
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while True:
            await app.drain(1.0)
            async with app.services.sessions() as session:
                events = list(await session.scalars(select(Event).where(Event.id.in_(ids))))
            waiting = [event for event in events if event.state == "received"]
            if not waiting or loop.time() > deadline:
                break
            await asyncio.sleep(0.05)
    assert len(events) == len(POISON)
    for event in events:
        summary = event_summary(event)
        if event.state not in ("processed", "failed"):
            stuck.append(f"{ids[event.id]}: still {event.state} after {event.attempts} attempts")
        elif event.state == "failed":
            assert event.last_error, summary
    assert stuck == []
