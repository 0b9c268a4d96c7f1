"""Tables. The database is the record of everything; Redis only carries work.

events            every accepted webhook / callback claim, committed before the 2xx
rejected_requests requests refused by authentication (counted, never processed)
channels          latest snapshot and derived status per channel
clients           latest snapshot per client
status_changes    one row per observed status change of a channel
deliveries        one row per (event, rule, target, replay round): the notification record
notification_groups per (rule, target, group key): a `group_by` rule's open or sent group
delivery_attempts every try of a delivery, with its outcome
throttles         per (rule, key): until when further matches are suppressed
number_health     per channel: its API key (encrypted) and last health check
client_balances   per client: the last balance poll and whether the balance is low
balance_history   one row per change of a client's balance, currency or month's usage
balance_rounds    one row per balance pass: when it ran, how long, how many clients
leases            per name: which process holds a watcher's run until when
rate_slots        per name: the next start time a shared rate limit allows
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from receiver.db.types import BigId, Json, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: Json}


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    # 360dialog's own top-level `id` of a webhook (None for callbacks and id-less bodies):
    # what a partner quotes when asking about an event. Not unique: the dedup key is
    # (type, id), so two event types may share one.
    external_id: Mapped[str | None] = mapped_column(String(200), index=True)
    correlation_id: Mapped[str] = mapped_column(String(32), index=True)
    source: Mapped[str] = mapped_column(String(20))  # webhook | callback
    event_type: Mapped[str] = mapped_column(String(100))
    known: Mapped[bool] = mapped_column(Boolean)
    channel_id: Mapped[str | None] = mapped_column(String(64))
    client_id: Mapped[str | None] = mapped_column(String(64))
    phone_number: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime]
    raw_body: Mapped[str | None] = mapped_column(Text)  # None once retention purged it
    raw_purged_at: Mapped[datetime | None]
    headers: Mapped[dict[str, Any]]
    verification: Mapped[str] = mapped_column(String(20))  # signature | shared_secret | none
    parsed: Mapped[dict[str, Any]]
    # Permission callbacks are claims until the Partner API confirms them.
    claim: Mapped[str | None] = mapped_column(String(20))  # unconfirmed | confirmed | rejected
    claim_reason: Mapped[str | None] = mapped_column(Text)
    # Processing: received -> processed. `enqueued_at` is the outbox hand-over mark.
    state: Mapped[str] = mapped_column(String(20), default="received")
    enqueued_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]  # a worker holds the event until then
    last_error: Mapped[str | None] = mapped_column(Text)
    enrichment: Mapped[str] = mapped_column(String(20), default="pending")
    enrichment_error: Mapped[str | None] = mapped_column(Text)
    rules_version: Mapped[str | None] = mapped_column(String(64))  # rules that routed it

    __table_args__ = (
        Index("ix_events_received_at", "received_at"),
        Index("ix_events_channel_id_received_at", "channel_id", "received_at"),
        Index("ix_events_client_id", "client_id"),
        Index("ix_events_event_type", "event_type"),
        # The outbox: only unprocessed rows are indexed, so it stays small at any size.
        Index(
            "ix_events_unprocessed",
            "id",
            postgresql_where=text("state <> 'processed'"),
            sqlite_where=text("state <> 'processed'"),
        ),
    )


class RejectedRequest(Base):
    __tablename__ = "rejected_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    endpoint: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(100))
    remote: Mapped[str | None] = mapped_column(String(100))
    body_bytes: Mapped[int] = mapped_column(Integer)


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    organisation: Mapped[str | None] = mapped_column(Text)
    contact_email: Mapped[str | None] = mapped_column(Text)
    partner_payload: Mapped[str | None] = mapped_column(Text)
    snapshot: Mapped[dict[str, Any]]
    fetched_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(20))  # partner_api | payload


class Channel(Base):
    __tablename__ = "channels"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_number: Mapped[str | None] = mapped_column(String(64), index=True)
    display_name: Mapped[str | None] = mapped_column(Text)  # setup_info.phone_name
    status: Mapped[str | None] = mapped_column(String(40))
    status_why: Mapped[str | None] = mapped_column(Text)
    snapshot: Mapped[dict[str, Any]]
    snapshot_at: Mapped[datetime]  # the channel's modified_at, else when we fetched it
    fetched_at: Mapped[datetime]
    enriched: Mapped[bool] = mapped_column(Boolean)  # from the Partner API, not the payload
    version: Mapped[int] = mapped_column(Integer, default=1)


class StatusChange(Base):
    __tablename__ = "status_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel_id: Mapped[str] = mapped_column(String(64))
    from_status: Mapped[str | None] = mapped_column(String(40))
    to_status: Mapped[str] = mapped_column(String(40))
    why: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    changed_at: Mapped[datetime]
    channel_version: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        # The guard: one change per channel version, whichever worker gets there first.
        UniqueConstraint("channel_id", "channel_version"),
        Index("ix_status_changes_event_id", "event_id"),
    )


class Delivery(Base):
    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    rule_name: Mapped[str] = mapped_column(String(200))
    target_name: Mapped[str] = mapped_column(String(100))
    target_kind: Mapped[str] = mapped_column(String(40))  # apprise scheme, or "client"
    target_display: Mapped[str | None] = mapped_column(Text)  # Apprise privacy form only
    # For the built-in `client` target: the client the message is for, checked again at send.
    client_id: Mapped[str | None] = mapped_column(String(64))
    replay_round: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    render_error: Mapped[str | None] = mapped_column(Text)
    throttle_key: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    # A delivery held by its rule's mute window: "mute:<interval name>", and when the window
    # ends as far as routing could tell. The catch-up watcher claims such rows after
    # `held_until` and sets `summary_id` to the one summary delivery that told about them.
    held_by: Mapped[str | None] = mapped_column(String(220))
    held_until: Mapped[datetime | None]
    summary_id: Mapped[int | None] = mapped_column(BigId)
    # A `group_by` rule's member: its group, and the template context the group's message
    # lists it with (rendered when the group is flushed, maybe by another process).
    group_id: Mapped[int | None] = mapped_column(BigId, index=True)
    group_context: Mapped[dict[str, Any] | None]
    # A held row of a muted `group_by` rule: its group key (canonical JSON), so the catch-up
    # summary is one per (rule, target, group key) like any grouped message.
    group_key: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("event_id", "rule_name", "target_name", "replay_round"),
        Index("ix_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_deliveries_held_by_held_until", "held_by", "held_until"),
    )


class NotificationGroup(Base):
    """Members of a `group_by` rule collected for one message per (rule, target, group key).

    `collecting` until `flush_at` (first member + group_wait, or last_sent_at +
    group_interval for a follow-up); a flusher claims it with a conditional update and sends
    one message for its `grouped` members, leaving it `notified` until a new member arrives.
    """

    __tablename__ = "notification_groups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule_name: Mapped[str] = mapped_column(String(200))
    target_name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64))  # sha256 of `group_key`
    group_key: Mapped[dict[str, Any]]  # {path: value} of the rule's group_by
    template: Mapped[str | None] = mapped_column(String(100))  # the first member's
    state: Mapped[str] = mapped_column(String(20))  # collecting | notified
    first_at: Mapped[datetime]
    flush_at: Mapped[datetime | None] = mapped_column(index=True)
    last_sent_at: Mapped[datetime | None]
    sent_count: Mapped[int] = mapped_column(Integer, default=0)  # messages sent so far

    __table_args__ = (UniqueConstraint("rule_name", "target_name", "key_hash"),)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(20))  # sent | failed | dead
    error: Mapped[str | None] = mapped_column(Text)


class Throttle(Base):
    __tablename__ = "throttles"

    rule_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    until: Mapped[datetime]
    delivery_id: Mapped[int | None] = mapped_column(BigId)


class Lease(Base):
    """A named lease: who holds it until when (one scheduler run per watcher and interval)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    until: Mapped[datetime]


class RateSlot(Base):
    """A named rate limit shared by every process: the next free start time."""

    __tablename__ = "rate_slots"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_at: Mapped[datetime]


class NumberHealth(Base):
    """A number's own API key (Fernet-encrypted) and what its last health check found."""

    __tablename__ = "number_health"

    channel_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key: Mapped[str | None] = mapped_column(Text)  # Fernet token; never the key itself
    key_set_at: Mapped[datetime | None]
    # cloud_api | on_premise, learnt from the channel or from a 404 on the other endpoint.
    platform: Mapped[str | None] = mapped_column(String(20))
    health: Mapped[str | None] = mapped_column(String(40))
    health_detail: Mapped[dict[str, Any] | None]
    checked_at: Mapped[datetime | None]  # when a check last got an answer
    # The guard of 360dialog's limit: set by a conditional update before each request, which
    # succeeds only when the previous request is at least 5 minutes old.
    requested_at: Mapped[datetime | None]
    next_check_at: Mapped[datetime | None] = mapped_column(index=True)
    last_error: Mapped[str | None] = mapped_column(Text)


class ClientBalance(Base):
    """A client's last balance poll and its low/recovered state (receiver/watch/balance.py)."""

    __tablename__ = "client_balances"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Amounts are the decimal text 360dialog sent, kept exact; comparisons use Decimal.
    balance: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str | None] = mapped_column(String(16))
    total_price: Mapped[str | None] = mapped_column(String(40))
    polled_at: Mapped[datetime | None] = mapped_column(index=True)  # last answer read
    requested_at: Mapped[datetime | None]  # last request, answered or not
    # Direct payment shows as a balance that has ever been non-zero (others stay at 0).
    nonzero_seen: Mapped[bool] = mapped_column(Boolean, default=False)
    low: Mapped[bool] = mapped_column(Boolean, default=False)
    # Crossings so far: part of each event's dedup key, so a crossing is recorded once.
    crossings: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class BalanceHistory(Base):
    """One row per change of a client's balance, currency or month's usage."""

    __tablename__ = "balance_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(64))
    polled_at: Mapped[datetime]
    balance: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str | None] = mapped_column(String(16))
    total_price: Mapped[str | None] = mapped_column(String(40))

    __table_args__ = (Index("ix_balance_history_client_id_polled_at", "client_id", "polled_at"),)


class BalanceRound(Base):
    """One balance pass over the clients (how long a round takes, for /metrics)."""

    __tablename__ = "balance_rounds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(index=True)
    clients: Mapped[int] = mapped_column(Integer, default=0)  # answers read
    errors: Mapped[int] = mapped_column(Integer, default=0)


class TargetHealth(Base):
    """A named target's run of failed attempts, and whether its fallback was told about it.

    Written in the transaction that records each attempt; `told_failing_at` and
    `told_recovered_at` are set by conditional updates, so two workers never both tell.
    """

    __tablename__ = "target_health"

    target_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None]  # the first failed attempt of the current run
    told_failing_at: Mapped[datetime | None]  # set once per run; cleared by the recovery
    told_recovered_at: Mapped[datetime | None]
