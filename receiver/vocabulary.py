"""The words every layer shares: event types, the built-in client target, and row states.

Lowest layer (imports nothing of ours), so the parser, routing, the pipeline, metrics and
the read models all take their names from here instead of from each other.
"""

from __future__ import annotations

from enum import StrEnum

KNOWN_EVENTS: frozenset[str] = frozenset(
    {
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
        # The exact string of the template status event is undocumented (a guess).
        "waba_template_status_changed",
    }
)
# Events whose `data` is a client object rather than a channel.
CLIENT_EVENTS: frozenset[str] = frozenset({"client_created"})
PERMISSION_EVENTS: frozenset[str] = frozenset({"permission_granted", "permission_revoked"})
UNKNOWN_EVENT = "unknown"

# Events hub-receiver records itself from what its watchers find (receiver/watch/), stored
# with `source` = the watcher (reconcile | health | balance) and verification "partner_api".
WATCH_EVENTS: frozenset[str] = frozenset(
    {
        "channel_reconciled",
        "client_reconciled",
        "number_health_changed",
        "balance_low",
        "balance_recovered",
    }
)
WATCH_CLIENT_EVENTS: frozenset[str] = frozenset(
    {"client_reconciled", "balance_low", "balance_recovered"}
)

# The built-in target: the email of the client that owns the event's channel.
CLIENT_TARGET = "client"


class EventState(StrEnum):
    RECEIVED = "received"  # stored, not yet taken through the pipeline
    PROCESSED = "processed"
    FAILED = "failed"  # gave up after the attempt cap


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # will be retried
    DEAD = "dead"  # retries exhausted or a permanent failure
    # Over the per-client cap (released by hand), or muted by the rule's time window
    # (`held_by` says which; the catch-up watcher summarises it when the window ends).
    HELD = "held"
    SUMMARISED = "summarised"  # was held by a mute window; told in catch-up `summary_id`
    SKIPPED = "skipped"
    THROTTLED = "throttled"
    # Grouping (a rule's `group_by`): a member waits in its notification group as `grouped`;
    # when the group is flushed one member's row carries the group's message (pending ->
    # sent) and the others become `sent_in_group`.
    GROUPED = "grouped"
    SENT_IN_GROUP = "sent_in_group"


class Claim(StrEnum):
    """A permission callback's claim, until and after the Partner API is asked."""

    UNCONFIRMED = "unconfirmed"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
