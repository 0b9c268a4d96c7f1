"""Build a RoutingSubject from a raw partner webhook body (for `rules test` and fixtures).

360dialog's envelope is unconfirmed (360dialog.md §1): fields are looked for at the top
level and under `data`, `data.setup_info` and `data.waba_account`, first found wins.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from receiver.routing.subject import RoutingSubject

_FIELDS = (
    "client_id",
    "phone_number",
    "phone_name",
    "created_at",
    "billing_started_at",
    "terminated_at",
    "fb_account_status",
    "status",
    "account_mode",
    "violation_type",
    "template_name",
    "template_status",
)
_CHANNEL_MARKERS = ("setup_info", "waba_account", "account_mode", "client_id", "integration")


def _mapping(value: object) -> Mapping[str, object] | None:
    return value if isinstance(value, Mapping) else None


def subject_from_webhook(
    body: Mapping[str, object],
    *,
    now: datetime,
    status_change: tuple[str | None, str] | None = None,
    channel: Mapping[str, object] | None = None,
    client: Mapping[str, object] | None = None,
) -> RoutingSubject:
    """Return the subject for `body`; `channel`/`client` override what the body implies."""
    raw_type = body.get("event")
    event_type = raw_type if isinstance(raw_type, str) and raw_type else "unknown"
    data = _mapping(body.get("data")) or {}
    places = [body, data, _mapping(data.get("setup_info")) or {}]
    places.append(_mapping(data.get("waba_account")) or {})
    fields: dict[str, object] = {}
    for name in _FIELDS:
        for place in places:
            if place.get(name) is not None:
                fields[name] = place[name]
                break
    is_client_event = event_type.startswith("client_")
    looks_like_channel = not is_client_event and any(k in data for k in _CHANNEL_MARKERS)
    if channel is None and looks_like_channel:
        channel = data
    if client is None:
        client = data if is_client_event and data else _mapping(data.get("client"))
    if is_client_event and "id" in data:
        fields.setdefault("client_id", data["id"])
    elif looks_like_channel and "id" in data:
        fields["channel_id"] = data["id"]
    if "channel_id" in body:
        fields.setdefault("channel_id", body["channel_id"])
    event: dict[str, object] = {**fields, "type": event_type, "id": body.get("id"), "data": data}
    return RoutingSubject(
        event_type=event_type,
        event=event,
        channel=channel,
        client=client,
        status_change=status_change,
        now=now,
    )


def load_webhook_subject(
    path: Path, *, now: datetime, status_change: tuple[str | None, str] | None = None
) -> RoutingSubject:
    """Read a webhook JSON file and build its subject; raise ValueError if it is not JSON."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError(f"{path}: expected a JSON object")  # noqa: TRY004 - one error type for bad files
    return subject_from_webhook(body, now=now, status_change=status_change)
