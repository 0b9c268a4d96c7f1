"""The variables every template sees, built from a routing subject (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from receiver.routing.paths import MISSING, compile_path
from receiver.routing.subject import RoutingSubject

# First path that has a value wins: enriched snapshots first, then the webhook itself.
_FACTS: dict[str, tuple[str, ...]] = {
    "phone_number": (
        "channel.setup_info.phone_number",
        "event.phone_number",
        "event.data.setup_info.phone_number",
    ),
    "phone_name": (
        "channel.setup_info.phone_name",
        "event.phone_name",
        "event.data.setup_info.phone_name",
    ),
    "channel_id": ("channel.id", "event.channel_id"),
    "client_id": ("client.id", "event.client_id", "channel.client_id"),
    "client_name": (
        "client.name",
        "channel.client.name",
        "client.contact_info.full_name",
        "event.client_name",
    ),
    "contact_name": (
        "client.contact_info.full_name",
        "channel.client.contact_info.full_name",
        "client.name",
    ),
    "client_email": ("client.contact_info.email", "channel.client.contact_info.email"),
    "business_name": (
        "channel.waba_account.on_behalf_of_business_info.name",
        "client.organisation",
        "channel.waba_account.name",
    ),
    "violation_type": ("event.violation_type", "event.data.violation_type"),
    "account_mode": ("channel.account_mode", "event.account_mode"),
    "fb_account_status": ("channel.waba_account.fb_account_status", "event.fb_account_status"),
}
_COMPILED = {name: tuple(compile_path(p) for p in paths) for name, paths in _FACTS.items()}


def facts_of(
    event: Mapping[str, object],
    channel: Mapping[str, object] | None,
    client: Mapping[str, object] | None,
) -> dict[str, str | None]:
    """Return the handful of facts messages need, each a string or None."""
    facts: dict[str, str | None] = {}
    for name, paths in _COMPILED.items():
        found: str | None = None
        for path in paths:
            value = path.get(event, channel, client)
            if value is not MISSING and value is not None and value != "":
                found = str(value)
                break
        facts[name] = found
    return facts


# Why a message carries no Partner API details, by the event's `enrichment` state. Only a
# Partner API that could not be reached is "unavailable": saying so when it was never
# configured, or when it answered that it knows no such number, sends ops chasing an outage.
_MISSING_DETAILS: dict[str, str] = {
    "not_configured": "Partner API not configured (D360_PARTNER_ID and a key are unset)",
    "not_found": "the Partner API does not know this number or client",
    "not_enriched": "Partner API unavailable",
}
# Failures that reached the Partner API and were refused (HTTP 4xx), as
# `receiver.pipeline.enrich.describe()` words them.
_REFUSED = ("Partner API auth ", "Partner API client ")


def missing_details(enrichment: str | None, error: str | None = None) -> str | None:
    """Why the event has no Partner API details, or None when it has them (or needs none)."""
    if enrichment == "not_enriched" and error is not None and error.startswith(_REFUSED):
        return f"the Partner API refused the lookup ({error})"
    return _MISSING_DETAILS.get(enrichment or "")


def build_context(
    subject: RoutingSubject,
    *,
    rule: str,
    correlation_id: str | None = None,
    received_at: datetime | None = None,
    status_why: str | None = None,
    enriched: bool = True,
    enrichment: str | None = None,
    enrichment_error: str | None = None,
) -> dict[str, Any]:
    """Return the template variables for one (event, rule).

    `event` (type, id, received_at, correlation_id, enriched, enrichment, missing_details,
    fields, data), `channel`, `client` (mappings or None), `status_change` (from, to, why,
    or None), `facts` (phone_number, client_name, ... each a string or None), `rule` (its
    name). The renderer adds `links` and `audience`.

    `enrichment` is the event's enrichment state (enriched, not_found, not_enriched,
    not_configured, not_needed, enriched_late) and `enrichment_error` the error it recorded;
    without a state, `enriched=False` only says details are missing, not why.
    """
    if enrichment is not None:
        missing = missing_details(enrichment, enrichment_error)
    else:
        missing = None if enriched else "no Partner API details"
    event = subject.event
    status_change = None
    if subject.status_change is not None:
        before, after = subject.status_change
        status_change = {"from": before, "to": after, "why": status_why}
    return {
        "event": {
            "type": subject.event_type,
            "id": event.get("id"),
            "received_at": received_at.isoformat() if received_at else None,
            "correlation_id": correlation_id,
            "enriched": enriched,
            "enrichment": enrichment,
            "missing_details": missing,
            "fields": event,
            "data": event.get("data"),
        },
        "channel": subject.channel,
        "client": subject.client,
        "status_change": status_change,
        "facts": facts_of(event, subject.channel, subject.client),
        "rule": rule,
    }
