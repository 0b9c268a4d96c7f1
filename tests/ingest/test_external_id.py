"""360dialog's own event id is kept as a column, next to the dedup key, from ingest on."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from sqlalchemy import text

from receiver.db.engine import create_engine
from receiver.db.migrate import upgrade_async
from receiver.ingest.writer import EventWriter
from receiver.settings import Settings
from tests.support.app import running_app
from tests.support.events import JSON, SECRET, events_in, signed
from tests.support.samples import sample
from tests.support.servers import PG_HOST, PG_PORT, PG_USER, admin_pg_url, require

MakeSettings = Callable[..., Settings]
LIVE = sample("partner_webhook.channel_live.json")
LIVE_ID = orjson.loads(LIVE)["id"]


async def test_a_webhook_keeps_360dialogs_id_and_the_dedup_key_as_columns(
    make_settings: MakeSettings, database_url: str
) -> None:
    no_id = b'{"event": "channel_live", "data": {"id": "kJ2mQ8CH"}}'
    async with running_app(make_settings(database_url=database_url)) as app:
        for body in (LIVE, no_id):
            response = await app.client.post("/webhooks/partner", content=body, headers=JSON)
            assert response.status_code == 200, response.text

    with_id, without_id = await events_in(database_url)
    assert with_id.external_id == LIVE_ID
    assert with_id.dedup_key == f"wh:id:channel_live:{LIVE_ID}"
    assert without_id.external_id is None
    assert without_id.dedup_key.startswith("wh:body:")


def _webhook_row(external_id: str) -> dict[str, Any]:
    return {
        "dedup_key": f"wh:id:channel_live:{external_id}",
        "external_id": external_id,
        "correlation_id": "c" * 16,
        "source": "webhook",
        "event_type": "channel_live",
        "known": True,
        "channel_id": "kJ2mQ8CH",
        "client_id": None,
        "phone_number": None,
        "received_at": datetime.now(UTC),
        "raw_body": "{}",
        "headers": {},
        "verification": "signature",
        "parsed": {"event_type": "channel_live", "known": True},
        "state": "received",
        "attempts": 0,
        "enrichment": "pending",
    }


def _callback_row(channel_id: str) -> dict[str, Any]:
    """The shape the permission callback writes: a claim, no external id, a `window` extra."""
    row = _webhook_row("unused")
    del row["external_id"]
    row.update(
        dedup_key=f"cb:permission_granted:Vb7xR2CL:{channel_id}:1",
        window=1,
        source="callback",
        event_type="permission_granted",
        channel_id=channel_id,
        verification="none",
        claim="unconfirmed",
    )
    return row


@pytest.mark.parametrize("callback_first", [True, False])
async def test_a_webhook_and_a_callback_committed_in_one_batch_each_keep_their_own_fields(
    database_url: str, *, callback_first: bool
) -> None:
    engine = create_engine(database_url)
    writer = EventWriter(engine)
    writer.start()
    rows = [_webhook_row("ext-1"), _callback_row("ch-1")]
    if callback_first:
        rows.reverse()
    try:
        # Queued together, so the writer takes them as one batch (one executemany).
        results = await asyncio.gather(*(writer.write(row) for row in rows))
    finally:
        await writer.stop()
        await engine.dispose()

    assert [r.duplicate for r in results] == [False, False]
    stored = {event.source: event for event in await events_in(database_url)}
    assert stored["webhook"].external_id == "ext-1"
    assert stored["webhook"].claim is None
    assert stored["callback"].external_id is None
    assert stored["callback"].claim == "unconfirmed"


async def test_the_shared_secret_header_is_never_kept_whatever_it_is_called(
    make_settings: MakeSettings, database_url: str
) -> None:
    # An operator may name the shared-secret header after one we otherwise keep.
    settings = make_settings(
        database_url=database_url,
        webhook_shared_secret="tok-Secr3t-Wq93",
        webhook_shared_secret_header="x-request-id",
    )
    async with running_app(settings) as app:
        response = await app.client.post(
            "/webhooks/partner",
            content=LIVE,
            headers={**JSON, "x-request-id": "tok-Secr3t-Wq93", "user-agent": "360dialog"},
        )
        assert response.status_code == 200, response.text

    [event] = await events_in(database_url)
    assert event.verification == "shared_secret"
    assert "x-request-id" not in event.headers
    assert "tok-Secr3t-Wq93" not in json.dumps(event.headers)
    assert event.headers["user-agent"] == "360dialog"


# --- the migration -------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_at_0001(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database at revision 0001, before external_id existed."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        await upgrade_async(url, "0001")
        yield url
        return
    require(PG_HOST, PG_PORT, "PostgreSQL")
    name = f"hub_test_mig_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_pg_url())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    try:
        await upgrade_async(url, "0001")
        yield url
    finally:
        conn = await asyncpg.connect(admin_pg_url())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def test_the_migration_gives_events_stored_before_it_their_360dialog_id(
    make_settings: MakeSettings, database_at_0001: str
) -> None:
    insert = text(
        "INSERT INTO events (dedup_key, correlation_id, source, event_type, known, "
        "received_at, headers, verification, parsed, state, attempts, enrichment) VALUES "
        "(:key, 'c', :source, 'channel_live', true, :at, :headers, 'none', :parsed, "
        "'processed', 0, 'enriched')"
    )
    engine = create_engine(database_at_0001)
    try:
        async with engine.begin() as conn:
            for key, source, parsed in (
                (f"wh:id:channel_live:{LIVE_ID}", "webhook", {"delivery_id": LIVE_ID}),
                ("wh:body:abc", "webhook", {"event_type": "channel_live"}),
                ("cb:permission_granted:x", "callback", {"event_type": "permission_granted"}),
            ):
                await conn.execute(
                    insert,
                    {
                        "key": key,
                        "source": source,
                        "at": datetime.now(UTC),
                        "headers": "{}",
                        "parsed": json.dumps(parsed),
                    },
                )
    finally:
        await engine.dispose()

    await upgrade_async(database_at_0001)

    events = await events_in(database_at_0001)
    assert [e.external_id for e in events] == [LIVE_ID, None, None]
    # And the upgraded schema takes new webhooks with their id.
    body = LIVE.replace(LIVE_ID.encode(), b"b1b1b1b1-0000-4000-8000-000000000001")
    settings = make_settings(database_url=database_at_0001, d360_webhook_secret=SECRET)
    async with running_app(settings) as app:
        response = await app.client.post("/webhooks/partner", content=body, headers=signed(body))
        assert response.status_code == 200, response.text
    newest = (await events_in(database_at_0001))[-1]
    assert newest.external_id == "b1b1b1b1-0000-4000-8000-000000000001"
