"""What rules see of one event: built here, once, for every caller.

The pipeline, re-enrichment, replay and `hub-receiver rules test` all build the routing
subject with `routing_subject`, from an event row as the webhook endpoint stores it (the
production parser's fields, `receiver.ingest.payload.parse_event`) and the webhook's raw
body, which each run parses once (`webhook_body`) and hands to everything that needs it.
`rules test` builds an unsaved row from the file (`webhook_event`) and takes the snapshots
processing would store from the payload alone (`payload_snapshots`), so it cannot see other
fields than production does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from receiver.db.tables import Event
from receiver.db.types import ID_SIZE
from receiver.ingest.payload import parse_event
from receiver.ingest.rows import clamp, webhook_row
from receiver.partner.facts import channel_facts, client_facts
from receiver.pipeline.snapshots import storable
from receiver.routing.subject import RoutingSubject
from receiver.status import derive_status
from receiver.vocabulary import CLIENT_EVENTS, WATCH_CLIENT_EVENTS, WATCH_EVENTS

Body = Mapping[str, Any]


# Top-level keys of a watcher's envelope that are not its own fields (receiver/watch/events.py).
ENVELOPE_KEYS = frozenset({"event", "source", "data"})
WATCH_VERIFICATION = "partner_api"  # receiver/watch/events.py: what the watchers store


def webhook_body(event: Event) -> Body | None:
    """The event's JSON body: a webhook's, or a watcher's envelope; None for a callback,
    a purged or odd body."""
    if event.source == "callback" or not event.raw_body:
        return None
    try:
        body = orjson.loads(event.raw_body)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def payload_data(body: Body | None) -> dict[str, Any] | None:
    """The body's `data` object, the only part that describes a channel (or client)."""
    # At the top level, `id` is the delivery's own id, not a channel's.
    data = body.get("data") if body is not None else None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class PayloadSnapshots:
    """What the payload alone says about the client and the channel (Partner API shapes)."""

    client: dict[str, Any] | None
    channel: dict[str, Any] | None


def payload_snapshots(event: Event, body: Body | None) -> PayloadSnapshots:
    """The client and channel objects processing stores from the payload when the API is silent.

    A client object is taken only from an authenticated-or-signed webhook's payload (an
    unauthenticated one must not plant a contact address); a channel object from any
    webhook that is not about a client.
    """
    data = payload_data(body)
    if data is None:
        return PayloadSnapshots(client=None, channel=None)
    client: dict[str, Any] | None = None
    about_client = event.event_type in CLIENT_EVENTS or event.event_type in WATCH_CLIENT_EVENTS
    if event.verification != "none":
        embedded = data if about_client else data.get("client")
        client = embedded if isinstance(embedded, dict) else None
    channel = data if not about_client else None
    return PayloadSnapshots(client=client, channel=channel)


def event_fields(event: Event, *, body: Body | None, claim: str | None = None) -> dict[str, Any]:
    """The event as rules see it (`event.fields`): parsed fields flat, plus the raw `data`."""
    fields: dict[str, Any] = dict(event.parsed)
    fields["type"] = event.event_type
    fields["source"] = event.source
    data: Any = None
    if body is not None:
        data = body.get("data")
        if event.source == "webhook":
            fields.setdefault("id", body.get("id"))
        else:  # a watcher's envelope: its own fields (health_to, balance, ...) at the top
            for key, value in body.items():
                if key not in ENVELOPE_KEYS:
                    fields.setdefault(key, value)
    claim = claim if claim is not None else event.claim
    if claim is not None:
        fields["claim"] = claim
    fields["data"] = data
    return fields


def routing_subject(
    event: Event,
    *,
    body: Body | None,
    channel: Mapping[str, Any] | None,
    client: Mapping[str, Any] | None,
    status_change: tuple[str | None, str] | None,
    claim: str | None,
    now: datetime,
) -> RoutingSubject:
    """The one webhook-to-subject function (see the module docstring)."""
    return RoutingSubject(
        event_type=event.event_type,
        event=event_fields(event, body=body, claim=claim),
        channel=channel,
        client=client,
        status_change=status_change,
        now=now,
    )


def webhook_event(document: Mapping[str, Any], *, raw_body: str, verification: str) -> Event:
    """An unsaved event row for a webhook body, with the fields the webhook endpoint stores."""
    return Event(
        **webhook_row(parse_event(document), text=raw_body, verification=verification, headers={})
    )


def is_watch_envelope(document: Mapping[str, Any]) -> bool:
    """Whether a body is a watcher's envelope (`{"event": ..., "source": "balance", ...}`)."""
    source = document.get("source")
    return document.get("event") in WATCH_EVENTS and isinstance(source, str) and source != "webhook"


def watch_event(document: Mapping[str, Any], *, raw_body: str) -> Event:
    """An unsaved event row for a watcher's envelope, as `record_watch_events` stores it."""
    parsed = parse_event(document)
    return Event(
        source=document["source"],
        event_type=str(document["event"])[:100],
        known=True,
        channel_id=clamp(parsed.channel_id),
        client_id=clamp(parsed.client_id),
        phone_number=clamp(parsed.phone_number),
        raw_body=raw_body,
        headers={},
        verification=WATCH_VERIFICATION,
        parsed=parsed.model_dump(exclude_none=True),
    )


def preview_subject(
    text: str, *, now: datetime, status_change: tuple[str | None, str] | None = None
) -> RoutingSubject:
    """The subject of a webhook body as processing builds it from the payload alone.

    For `rules test`: the body is taken as an authenticated webhook, stored as the endpoint
    stores it (a watcher's envelope as the watcher stores it, fields as `event.*`), its
    client and channel as processing would store them on an empty database
    without the Partner API. Raise ValueError when the text is not a JSON object.
    """
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError("expected a JSON object")  # noqa: TRY004 - one error type for bad files
    if is_watch_envelope(document):
        event = watch_event(document, raw_body=text)
    else:
        event = webhook_event(document, raw_body=text, verification="signature")
    body = webhook_body(event)
    found = payload_snapshots(event, body)
    channel = storable(found.channel) if found.channel is not None else None
    channel_id = channel_facts(channel).id if channel is not None else None
    if channel_id is None or len(channel_id) > ID_SIZE:
        channel = None
    owner = channel_facts(channel).client_id if channel is not None else None
    owner = owner or event.client_id
    client = storable(found.client) if found.client is not None else None
    if client is not None and (owner is None or client_facts(client).id != owner):
        client = None  # processing looks the owner up, and would not find this one
    return routing_subject(
        event,
        body=body,
        channel=channel,
        client=client,
        status_change=status_change,
        claim=None,
        now=now,
    )


def preview_status_why(subject: RoutingSubject) -> str | None:
    """Why the channel has the status `subject`'s change goes to, as processing words it.

    Processing records the derived status's reason with the change; a simulated change
    (`rules test --status`) gets it only when the payload implies that status.
    """
    if subject.status_change is None or subject.channel is None:
        return None
    derived = derive_status(channel_facts(subject.channel))
    return derived.why if derived.status == subject.status_change[1] else None
