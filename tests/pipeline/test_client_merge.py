"""A channel's embedded `client` and the clients list make one client, end to end.

The fake hub's channels embed their client (`id`, `name`, `contact_info.email`, ...) as the
Partner API's channels filter query does; the clients list may know the client better, not
at all, or refuse to answer. Whatever it does, the client's email is never lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from receiver.db.tables import Client
from receiver.dev.fake_hub import create_fake_hub_app, error_response
from receiver.dev.mailbox import Mailbox
from receiver.dev.sample_data import default_state
from receiver.http.loopback import serve_app
from receiver.pipeline.enrich import embedded_client, merge_client
from receiver.settings import Settings
from tests.pipeline.support import (
    ACME,
    ACME_EMAIL,
    ACME_LIVE,
    WEBHOOK_TOKEN,
    all_deliveries,
    one_event,
    post_authenticated,
    settle,
    webhook,
)
from tests.support.app import RunningApp, running_app
from tests.support.cli import hub_receiver_async as run_cli_async
from tests.support.fakes import API_KEY, PARTNER_ID, Hub

MakeSettings = Callable[..., Settings]

RULES = """
rules:
  - name: client hears their number is live
    match: {event: [channel_live]}
    notify: [client]
"""
LISTED_EMAIL = "billing@acme-bakery.example"  # the clients list's, when it differs


@dataclass(frozen=True)
class Case:
    arrange: tuple[Callable[[Hub], None], ...]
    refused: bool
    name: str
    email: str


@dataclass
class ClientsList:
    """How the fake hub's clients list behaves for a test."""

    refused: bool = False


@pytest.fixture
def clients_list() -> ClientsList:
    return ClientsList()


@pytest.fixture
async def hub(clients_list: ClientsList) -> AsyncIterator[Hub]:
    """The fake hub, whose clients list answers 403 (a permanent failure) when refused."""
    state = default_state(PARTNER_ID)
    fake = create_fake_hub_app(state, api_key=API_KEY)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if clients_list.refused and scope["type"] == "http" and scope["path"].endswith("/clients"):
            await error_response(403, "this key may not list clients")(scope, receive, send)
            return
        await fake(scope, receive, send)

    async with serve_app(app) as url:
        yield Hub(state=state, url=url)


@pytest.fixture
async def app(
    pipeline_settings: MakeSettings, database_url: str, rules_dir: Callable[[str], Path]
) -> AsyncIterator[RunningApp]:
    settings = pipeline_settings(
        database_url=database_url,
        rules_path=rules_dir(RULES),
        webhook_shared_secret=[WEBHOOK_TOKEN],
    )
    async with running_app(settings) as running:
        yield running


def listed_without_email(hub: Hub) -> None:
    contact = hub.state.clients[ACME]["contact_info"]
    del contact["email"]


def listed_with_another_email(hub: Hub) -> None:
    hub.state.clients[ACME]["contact_info"]["email"] = LISTED_EMAIL


def not_listed(hub: Hub) -> None:
    del hub.state.clients[ACME]


def no_embedded_client(hub: Hub) -> None:
    hub.state.channels[ACME_LIVE]["client"] = None


@pytest.mark.parametrize(
    "case",
    [
        # The clients list has the client: it wins field by field, the embedded fills gaps.
        Case((listed_with_another_email,), False, "Jana Beispiel", LISTED_EMAIL),
        Case((listed_without_email,), False, "Jana Beispiel", ACME_EMAIL),
        # The clients list has no such client, or refuses for good: the embedded one is used.
        Case((not_listed,), False, "Jana Beispiel", ACME_EMAIL),
        Case((), True, "Jana Beispiel", ACME_EMAIL),
        # No embedded client: the clients list alone.
        Case((no_embedded_client, listed_with_another_email), False, "Jana Beispiel", LISTED_EMAIL),
    ],
    ids=["list-wins", "embedded-fills-gaps", "list-empty", "list-refused", "no-embedded"],
)
async def test_the_client_keeps_its_email_whatever_the_clients_list_says(
    app: RunningApp,
    hub: Hub,
    clients_list: ClientsList,
    mailbox: Mailbox,
    case: Case,
) -> None:
    for step in case.arrange:
        step(hub)
    clients_list.refused = case.refused
    name, email = case.name, case.email

    answer = await post_authenticated(app, webhook("channel_live", ACME_LIVE, client_id=ACME))
    await settle(app, events=1)

    sessions = app.services.sessions
    if not case.refused:  # a refused lookup never reaches the fake's request log
        assert hub.client_lookups() == [{"filters": '{"id":"Vb7xR2CL"}'}]
    event = await one_event(sessions, answer["event_id"])
    assert event.enrichment == "enriched", event.enrichment_error
    if case.refused:
        assert event.enrichment_error is not None
        assert "clients lookup: Partner API auth (403)" in event.enrichment_error
    async with sessions() as session:
        client = await session.get(Client, ACME)
    assert client is not None
    assert (client.name, client.contact_email, client.source) == (name, email, "partner_api")

    [to_client] = [d for d in await all_deliveries(sessions) if d.target_name == "client"]
    assert (to_client.state, to_client.client_id) == ("sent", ACME), to_client.last_error
    [mail] = await mailbox.wait_for(1)
    assert mail.to == (email,)

    env = {"DATABASE_URL": app.services.settings.database_url}
    shown = await run_cli_async("channels", "show", ACME_LIVE, env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"client    {name} ({ACME})" in shown.stdout
    assert f"email     {email}" in shown.stdout


async def test_without_an_embedded_client_or_a_listed_one_the_email_is_not_known(
    app: RunningApp, hub: Hub, mailbox: Mailbox
) -> None:
    no_embedded_client(hub)
    not_listed(hub)

    await post_authenticated(app, webhook("channel_live", ACME_LIVE, client_id=ACME))
    await settle(app, events=1)

    async with app.services.sessions() as session:
        assert await session.get(Client, ACME) is None
    [to_client] = await all_deliveries(app.services.sessions)
    assert to_client.state == "skipped"
    assert mailbox.messages == []


# --- the merge itself (pure) -----------------------------------------------------------------

EMBEDDED: dict[str, Any] = {
    "id": ACME,
    "name": "Jana B.",
    "partner_payload": "crm-1",
    "contact_info": {"email": ACME_EMAIL, "full_name": "Jana B.", "phone": "+49 1"},
}


@pytest.mark.parametrize(
    ("listed", "embedded", "expected"),
    [
        (None, None, None),
        (None, EMBEDDED, EMBEDDED),
        ({"id": ACME, "name": "Jana"}, None, {"id": ACME, "name": "Jana"}),
        (
            {
                "id": ACME,
                "name": "Jana Beispiel",
                "organisation": "Acme Bakery GmbH",
                "partner_payload": None,
                "contact_info": {"email": "  ", "full_name": "Jana Beispiel", "language": "de"},
            },
            EMBEDDED,
            {
                "id": ACME,
                "name": "Jana Beispiel",
                "organisation": "Acme Bakery GmbH",
                "partner_payload": "crm-1",
                "contact_info": {
                    "email": ACME_EMAIL,
                    "full_name": "Jana Beispiel",
                    "phone": "+49 1",
                    "language": "de",
                },
            },
        ),
        (
            {"id": ACME, "contact_info": {"email": LISTED_EMAIL}},
            EMBEDDED,
            {**EMBEDDED, "contact_info": {**EMBEDDED["contact_info"], "email": LISTED_EMAIL}},
        ),
        ({"id": ACME, "contact_info": None}, EMBEDDED, EMBEDDED),
        ({"id": ACME, "status": None}, {"id": ACME}, {"id": ACME, "status": None}),
    ],
)
def test_the_clients_list_wins_field_by_field_and_the_embedded_client_fills_gaps(
    listed: dict[str, Any] | None,
    embedded: dict[str, Any] | None,
    expected: dict[str, Any] | None,
) -> None:
    assert merge_client(listed=listed, embedded=embedded) == expected


@pytest.mark.parametrize(
    ("channel", "client_id", "expected"),
    [
        (None, ACME, None),
        ({"client": None}, ACME, None),
        ({"client": "Vb7xR2CL"}, ACME, None),
        ({"client": EMBEDDED}, ACME, EMBEDDED),
        ({"client": EMBEDDED}, None, EMBEDDED),
        ({"client": {"name": "Jana"}}, ACME, {"id": ACME, "name": "Jana"}),
        ({"client": EMBEDDED}, "Hn3pZ8CL", None),  # another client's: never merged
    ],
)
def test_only_the_channels_own_embedded_client_is_used(
    channel: dict[str, Any] | None, client_id: str | None, expected: dict[str, Any] | None
) -> None:
    assert embedded_client(channel, client_id=client_id) == expected
