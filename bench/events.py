"""Webhook bodies and the Partner API data they refer to (the e2e and fan-out parts).

Same shape as `post_events.lua` (the ingest generator): a channel event with the embedded
client, setup info and WABA account, about 1 KB. The fake Partner API is given the same
channels and clients, so enrichment finds every channel an event names.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from receiver.dev.fake_hub import FakeHubState
from receiver.dev.sample_data import build_channel, build_client

CHANNELS = 50
CLIENTS = 10
PARTNER_ID = "benchPA"
API_KEY = "bench-api-key"
# channel_live is the one that also emails the client (one event in ten).
EVENT_TYPES = (
    "channel_created",
    "channel_submitted",
    "channel_ready",
    "channel_running",
    "account_violation",
    "cancellation_request",
    "template_messaging_enabled",
    "waba_template_status_changed",
    "channel_live",
)


def channel_id(n: int) -> str:
    return f"E{n:05d}CH"


def client_id(n: int) -> str:
    return f"E{n:03d}CL"


def client_email(n: int) -> str:
    return f"client{n}@bench.example"


def hub_state() -> FakeHubState:
    state = FakeHubState(partner_id=PARTNER_ID)
    clients = []
    for n in range(CLIENTS):
        client = build_client(client_id=client_id(n), name=f"Bench {n}", email=client_email(n))
        state.set_client(client)
        clients.append(client)
    for n in range(CHANNELS):
        state.set_channel(
            build_channel(
                channel_id=channel_id(n),
                client=clients[n % CLIENTS],
                phone_number=f"+49151{n:07d}",
                phone_name=f"Bench {n}",
                hub_status="live",
                app_id=f"2047{n:02d}",
            )
        )
    return state


def webhook_body(seq: int, rng: random.Random, *, tag: str) -> tuple[str, bytes]:
    """(event type, body) of a unique event; one in ten is a channel_live."""
    event_type = "channel_live" if seq % 10 == 0 else rng.choice(EVENT_TYPES[:-1])
    n = rng.randrange(CHANNELS)
    cl = n % CLIENTS
    body: dict[str, Any] = {
        "id": f"{tag}-{seq}",
        "event": event_type,
        "data": {
            "id": channel_id(n),
            "client_id": client_id(cl),
            "client": {
                "id": client_id(cl),
                "name": f"Bench {cl}",
                "contact_info": {"email": client_email(cl), "language": "en"},
            },
            "status": "running",
            "account_mode": "live",
            "setup_info": {"phone_number": f"+49151{n:07d}", "phone_name": f"Bench {n}"},
            "waba_account": {
                "id": f"E{n:05d}WA",
                "client_id": client_id(cl),
                "status": "approved",
                "fb_account_status": "verified",
            },
        },
    }
    return event_type, orjson.dumps(body)
