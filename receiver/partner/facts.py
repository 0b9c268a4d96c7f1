"""Pure, tolerant extraction of the facts we use from raw 360dialog channel and client objects.

A channel comes from the Partner API (`partner_channels[]`) or from a partner webhook's `data`
(same shape, unconfirmed nesting). Each fact is looked for in every place it is known or
guessed to live; a missing field or one of the wrong type becomes None. Nothing here raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_HOSTING_KEYS = ("hosting_platform_type", "hostingPlatformType", "platform_type")
# No 360dialog document names the field that tells Classic (version 1) from Embedded Signup
# (version 2) channels [guess]: look under the likely names, top level and in setup_info.
_VERSION_KEYS = ("signup_version", "channel_version", "version", "signup_type")


@dataclass(frozen=True, slots=True)
class ChannelFacts:
    """What a channel object says, flattened; every field may be None."""

    id: str | None = None
    client_id: str | None = None
    phone_number: str | None = None
    phone_name: str | None = None
    status: str | None = None
    account_mode: str | None = None
    hub_status: str | None = None
    app_id: str | None = None
    # True when the object carried an `app_id` key (top level or under `integration`), even an
    # empty one: "app_id is null" is a fact, "no app_id key at all" is just a thinner payload.
    app_id_reported: bool = False
    terminated_at: datetime | None = None
    modified_at: datetime | None = None
    waba_status: str | None = None
    fb_account_status: str | None = None
    obo_status: str | None = None
    hosting_platform_type: str | None = None
    # "classic" (version 1) or "embedded" (version 2): an explicit version marker when the
    # object has one, else inferred (hub_status done/pending -> classic, account_mode ->
    # embedded); None when nothing tells.
    version_hint: str | None = None
    # False when reconciliation found the channel no longer listed by the Partner API: it
    # stores the last snapshot with LISTED_KEY false (receiver/watch/reconcile.py).
    listed: bool = True


# Our own marker on a stored snapshot, never a 360dialog field.
LISTED_KEY = "hub_receiver_listed"


@dataclass(frozen=True, slots=True)
class ClientFacts:
    """What a client object says, flattened; every field may be None."""

    id: str | None = None
    name: str | None = None
    organisation: str | None = None
    contact_email: str | None = None
    contact_name: str | None = None
    language: str | None = None
    partner_payload: str | None = None
    status: str | None = None


def channel_facts(raw: object) -> ChannelFacts:
    """Extract ChannelFacts from a channel dict; anything else yields empty facts."""
    if not isinstance(raw, Mapping):
        return ChannelFacts()
    setup = _mapping(raw.get("setup_info"))
    waba = _mapping(raw.get("waba_account"))
    integration = _mapping(raw.get("integration"))
    client = _mapping(raw.get("client"))
    hub_status = _text(raw.get("hub_status"))
    account_mode = _text(raw.get("account_mode"))
    return ChannelFacts(
        id=_text(raw.get("id")),
        client_id=_text(raw.get("client_id")) or _text(client.get("id")),
        phone_number=_text(setup.get("phone_number")) or _text(raw.get("phone_number")),
        phone_name=_text(setup.get("phone_name")) or _text(raw.get("phone_name")),
        status=_text(raw.get("status")),
        account_mode=account_mode,
        hub_status=hub_status,
        app_id=_text(raw.get("app_id")) or _text(integration.get("app_id")),
        app_id_reported="app_id" in raw or "app_id" in integration,
        terminated_at=parse_timestamp(raw.get("terminated_at")),
        modified_at=parse_timestamp(raw.get("modified_at")),
        waba_status=_text(waba.get("status")),
        fb_account_status=_text(waba.get("fb_account_status"))
        or _text(raw.get("fb_account_status")),
        obo_status=_text(_mapping(waba.get("on_behalf_of_business_info")).get("status")),
        hosting_platform_type=_first_text((raw, setup), _HOSTING_KEYS),
        version_hint=_version_marker((raw, setup))
        or _version_hint(hub_status=hub_status, account_mode=account_mode),
        listed=raw.get(LISTED_KEY) is not False,
    )


def client_facts(raw: object) -> ClientFacts:
    """Extract ClientFacts from a clients-list item or a channel's embedded `client`."""
    if not isinstance(raw, Mapping):
        return ClientFacts()
    contact = _mapping(raw.get("contact_info"))
    return ClientFacts(
        id=_text(raw.get("id")),
        name=_text(raw.get("name")),
        organisation=_text(raw.get("organisation")),
        contact_email=_text(contact.get("email")),
        contact_name=_text(contact.get("full_name")) or _text(raw.get("name")),
        language=_text(contact.get("language")),
        partner_payload=_text(raw.get("partner_payload")),
        status=_text(raw.get("status")),
    )


def parse_timestamp(value: object) -> datetime | None:
    """Parse ISO-8601 (with `Z` or an offset) into an aware datetime; naive means UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _version_marker(sources: tuple[Mapping[str, Any], ...]) -> str | None:
    # Read tolerantly: 1, "1", "v1", "1.0", "classic_signup" / 2, "V2", "embedded_signup".
    # Anything else (a revision counter at 7, a date) says nothing.
    for source in sources:
        for key in _VERSION_KEYS:
            value = source.get(key)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            text = _text(value)
            if text is None:
                continue
            word = text.strip().lower().removeprefix("version").strip(" _-").removeprefix("v")
            if word in ("1", "1.0") or "classic" in word:
                return "classic"
            if word in ("2", "2.0") or "embedded" in word:
                return "embedded"
    return None


def _version_hint(*, hub_status: str | None, account_mode: str | None) -> str | None:
    # done/pending exist only for Classic Signup; account_mode only for Embedded Signup.
    if hub_status in ("done", "pending"):
        return "classic"
    if account_mode is not None:
        return "embedded"
    return None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    if isinstance(value, str):
        value = value.replace("\x00", "")  # PostgreSQL text cannot hold NUL
        return value if value.strip() else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # ids and numbers sometimes arrive as JSON numbers
    return None


def _first_text(sources: tuple[Mapping[str, Any], ...], keys: tuple[str, ...]) -> str | None:
    for source in sources:
        for key in keys:
            found = _text(source.get(key))
            if found is not None:
                return found
    return None
