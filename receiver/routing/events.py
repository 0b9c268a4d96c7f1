"""The partner webhook event types we know about (a floor: new ones appear unannounced)."""

from __future__ import annotations

KNOWN_EVENTS: tuple[str, ...] = (
    "client_created",
    "channel_created",
    "channel_submitted",
    "channel_ready",
    "channel_running",
    "channel_live",
    "account_violation",
    "account_restriction",
    "cancellation_request",
    "cancellation_revoke",
    "cancellation_processed",
    "template_messaging_enabled",
    "template_messaging_disabled",
    # The exact string is unknown (360dialog.md §1); this is our guess.
    "waba_template_status_changed",
)

KNOWN_STATUSES: tuple[str, ...] = (
    "live",
    "sandbox",
    "pending_deletion",
    "draft",
    "unregistered",
    "done",
    "pending",
)
