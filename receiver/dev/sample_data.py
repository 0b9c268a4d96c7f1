"""Sample clients and channels, in the Partner API's response shape, for the fake hub.

Shapes follow /work/shared/samples/partner_api.channels_filter.response.json. Ids are fake
and end in CL (client) / CH (channel) / WA (WABA) like 360dialog's examples.
"""

from __future__ import annotations

from typing import Any

from receiver.dev.fake_hub import FakeHubState

ACME_CLIENT_ID = "Vb7xR2CL"
ACME_LIVE_CHANNEL_ID = "kJ2mQ8CH"
ACME_DRAFT_CHANNEL_ID = "zR5wN3CH"
NORDWIND_CLIENT_ID = "Hn3pZ8CL"
NORDWIND_CHANNEL_ID = "Tq7bY4CH"


def build_client(
    *,
    client_id: str,
    name: str,
    email: str,
    organisation: str | None = None,
    language: str = "en",
    partner_payload: str = "",
    status: str = "active",
    created_at: str = "2026-03-02T09:12:41Z",
) -> dict[str, Any]:
    """Return a client object as an item of the clients list."""
    return {
        "id": client_id,
        "name": name,
        "status": status,
        "organisation": organisation or name,
        "max_channels": 10,
        "partner_payload": partner_payload,
        "contact_info": {"email": email, "full_name": name, "language": language},
        "created_at": created_at,
        "modified_at": created_at,
    }


def embedded_client(client: dict[str, Any]) -> dict[str, Any]:
    """Return the `client` object a channel embeds for this client."""
    return {
        "id": client["id"],
        "name": client.get("name"),
        "partner_payload": client.get("partner_payload"),
        "contact_info": dict(client.get("contact_info") or {}),
    }


def build_channel(
    *,
    channel_id: str,
    client: dict[str, Any],
    phone_number: str,
    phone_name: str,
    status: str = "running",
    account_mode: str | None = "live",
    hub_status: str | None = None,
    app_id: str | None = None,
    terminated_at: str | None = None,
    waba_status: str = "approved",
    fb_account_status: str = "verified",
    created_at: str = "2026-03-02T09:14:07Z",
    modified_at: str = "2026-03-02T10:03:55Z",
) -> dict[str, Any]:
    """Return a channel object as an item of `partner_channels`."""
    waba_id = channel_id[:-2] + "WA"
    channel: dict[str, Any] = {
        "id": channel_id,
        "client_id": client["id"],
        "client": embedded_client(client),
        "status": status,
        "account_mode": account_mode,
        "created_at": created_at,
        "modified_at": modified_at,
        "billing_started_at": modified_at if app_id else None,
        "terminated_at": terminated_at,
        "setup_info": {"phone_number": phone_number, "phone_name": phone_name},
        "waba_account": {
            "id": waba_id,
            "name": phone_name,
            "client_id": client["id"],
            "status": waba_status,
            "fb_account_status": fb_account_status,
            "on_behalf_of_business_info": {"name": phone_name, "status": "approved"},
        },
        "waba_account_id": waba_id,
        "integration": {
            "enabled": app_id is not None,
            "app_id": app_id,
            "state": "running" if app_id else None,
        },
    }
    if hub_status is not None:
        channel["hub_status"] = hub_status
    return channel


def default_state(partner_id: str) -> FakeHubState:
    """Two clients and three channels: one live, one draft, one for the other client.

    Acme pays by direct payment (a balance of 42.50 EUR); Nordwind does not.
    """
    acme = build_client(
        client_id=ACME_CLIENT_ID,
        name="Jana Beispiel",
        email="ops@acme-bakery.example",
        organisation="Acme Bakery GmbH",
        language="de",
        partner_payload="crm-account-4711",
    )
    nordwind = build_client(
        client_id=NORDWIND_CLIENT_ID,
        name="Piet de Vries",
        email="it@nordwind-tools.example",
        organisation="Nordwind Tools B.V.",
        language="nl",
        created_at="2026-03-05T14:00:00Z",
    )
    state = FakeHubState(partner_id=partner_id)
    state.set_client(acme)
    state.set_client(nordwind)
    # Acme pays 360dialog directly (prepaid): a real balance. Nordwind does not, so its
    # balance stays 0 as the seed says, and the balance watcher leaves it alone.
    state.set_balance(ACME_CLIENT_ID, balance=42.5, currency="EUR", total_price=7.25)
    state.set_channel(
        build_channel(
            channel_id=ACME_LIVE_CHANNEL_ID,
            client=acme,
            phone_number="+4915112345678",
            phone_name="Acme Bakery",
            hub_status="live",
            app_id="204711",
        )
    )
    state.set_channel(
        build_channel(
            channel_id=ACME_DRAFT_CHANNEL_ID,
            client=acme,
            phone_number="+4915187654321",
            phone_name="Acme Bakery Orders",
            status="created",
            hub_status="draft",
            waba_status="created",
            fb_account_status="pending",
            created_at="2026-03-04T08:00:00Z",
            modified_at="2026-03-04T08:00:00Z",
        )
    )
    state.set_channel(
        build_channel(
            channel_id=NORDWIND_CHANNEL_ID,
            client=nordwind,
            phone_number="+31612345678",
            phone_name="Nordwind Tools",
            hub_status="sandbox",
            account_mode="sandbox",
            app_id="309122",
            created_at="2026-03-05T14:10:00Z",
            modified_at="2026-03-05T15:00:00Z",
        )
    )
    return state
