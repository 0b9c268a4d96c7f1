"""The plain message sent when a template fails: built without Jinja, never raises."""

from __future__ import annotations

from collections.abc import Mapping

_MAX_FIELD = 200


def _get(mapping: object, *keys: str) -> str | None:
    node = mapping
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    if node is None or node == "":
        return None
    text = str(node)
    return text if len(text) <= _MAX_FIELD else text[: _MAX_FIELD - 1] + "…"


def fallback_message(context: Mapping[str, object], *, audience: str) -> tuple[str, str]:
    """Return (title, body) stating the essentials from `context`."""
    try:
        event_type = _get(context, "event", "type") or "unknown event"
        phone = _get(context, "facts", "phone_number")
        client = _get(context, "facts", "client_name")
        before = _get(context, "status_change", "from")
        after = _get(context, "status_change", "to")
        correlation = _get(context, "event", "correlation_id")
        if audience == "client":
            number = f" {phone}" if phone else ""
            title = f"Update about your WhatsApp number{number}"
            body = (
                f"Hello,\n\nthere is an update about your WhatsApp number{number}. "
                "We will follow up with details; reply to this email if you have questions."
            )
            return title, body
        subject = phone or client or _get(context, "facts", "channel_id") or ""
        title = f"{event_type}: {subject}" if subject else event_type
        lines = [f"Event: {event_type}"]
        if phone:
            lines.append(f"Number: {phone}")
        if client:
            lines.append(f"Client: {client}")
        if after:
            lines.append(f"Status: {before or 'unknown'} -> {after}")
        if correlation:
            lines.append(f"Correlation id: {correlation}")
        lines.append("(plain fallback: the template failed)")
        return title, "\n".join(lines)
    except Exception:  # noqa: BLE001 - the fallback must never fail
        return "notification", "An event was received; its details could not be shown."
