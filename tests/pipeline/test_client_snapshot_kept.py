"""A channel's embedded `client` is a partial view: storing it keeps what it does not carry."""

from __future__ import annotations

from datetime import UTC, datetime

from receiver.db.engine import create_engine, create_sessionmaker
from receiver.db.store import channels as store
from receiver.pipeline.snapshots import store_client

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
FULL = {
    "id": "CL1",
    "name": "Jana Beispiel",
    "organisation": "Acme Bakery GmbH",
    "contact_info": {"email": "ops@acme.example", "full_name": "Jana Beispiel"},
    "partner_payload": "crm-1",
}
EMBEDDED = {"id": "CL1", "name": "Jana B.", "contact_info": {"email": "new@acme.example"}}


async def test_an_embedded_client_updates_what_it_carries_and_keeps_the_rest(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions.begin() as session:
            await store_client(session, dict(FULL), now=NOW, source="partner_api")
        async with sessions.begin() as session:
            await store_client(session, dict(EMBEDDED), now=NOW, source="partner_api")
        async with sessions() as session:
            client = await store.get_client(session, client_id="CL1", fresh=True)
    finally:
        await engine.dispose()
    assert client is not None
    assert client.organisation == "Acme Bakery GmbH"  # the embedded view has none: kept
    assert client.partner_payload == "crm-1"
    assert client.name == "Jana B."  # what it carries wins
    assert client.contact_email == "new@acme.example"
    assert client.snapshot["contact_info"]["full_name"] == "Jana Beispiel"
