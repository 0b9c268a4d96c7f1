"""What a replay reports: per event, what the rules pick now next to what was sent then."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from receiver.db.tables import Delivery
from receiver.pipeline.route import PlannedDelivery

__all__ = [
    "EventReplay",
    "PlannedDelivery",
    "RecordedDelivery",
    "ReplayError",
    "ReplayReport",
    "recorded",
]


class ReplayError(Exception):
    """The replay was not started (nothing selected, or too much at once)."""


@dataclass(frozen=True)
class RecordedDelivery:
    """A delivery row the event had before this replay."""

    id: int
    rule: str
    target: str
    replay_round: int
    forced: bool
    state: str
    title: str | None
    sent_at: str | None


@dataclass
class EventReplay:
    event_id: int
    outcome: str  # planned | replayed | skipped | not_found
    event_type: str | None = None
    channel_id: str | None = None
    correlation_id: str | None = None
    external_id: str | None = None  # 360dialog's id of the webhook
    dedup_key: str | None = None
    note: str | None = None
    replay_round: int | None = None
    now: list[PlannedDelivery] = field(default_factory=list)
    then: list[RecordedDelivery] = field(default_factory=list)

    @property
    def created(self) -> list[PlannedDelivery]:
        return [p for p in self.now if p.delivery_id is not None]


@dataclass
class ReplayReport:
    dry_run: bool
    force: bool
    rules_digest: str
    events: list[EventReplay] = field(default_factory=list)
    enqueued: bool = True

    @property
    def created(self) -> int:
        return sum(len(e.created) for e in self.events)

    @property
    def would_create(self) -> int:
        return sum(1 for e in self.events for p in e.now if p.action in ("create", "resend"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "force": self.force,
            "rules_digest": self.rules_digest,
            "events_selected": len(self.events),
            "deliveries_would_create": self.would_create,
            "deliveries_created": self.created,
            "enqueued": self.enqueued,
            "events": [
                {
                    **{k: v for k, v in asdict(e).items() if k not in ("now", "then")},
                    "would_send_now": [asdict(p) for p in e.now],
                    "sent_then": [asdict(r) for r in e.then],
                }
                for e in self.events
            ],
        }

    def format(self) -> str:
        mode = "dry run" if self.dry_run else "forced replay" if self.force else "replay"
        lines = [
            f"{mode} under rules {self.rules_digest[:12]}: {len(self.events)} event(s), "
            + (
                f"{self.would_create} delivery row(s) would be created"
                if self.dry_run
                else f"{self.created} delivery row(s) created"
            )
        ]
        for item in self.events:
            head = f"event {item.event_id}"
            if item.event_type:
                head += f" {item.event_type}"
            if item.channel_id:
                head += f" (channel {item.channel_id})"
            if item.external_id:
                head += f" [360dialog id {item.external_id}]"
            if item.replay_round is not None and item.replay_round > 0:
                head += f", round {item.replay_round}"
            lines.append("")
            lines.append(f"{head}: {item.outcome}")
            if item.note:
                lines.append(f"  note: {item.note}")
            if item.outcome in ("skipped", "not_found"):
                continue
            lines.append("  now:" if item.now else "  now: no rule matches")
            for planned in item.now:
                mark = {"create": "+", "resend": "+", "exists": "="}[planned.action]
                state = planned.state + (f" ({planned.reason})" if planned.reason else "")
                row = f" -> #{planned.delivery_id}" if planned.delivery_id is not None else ""
                lines.append(
                    f"    {mark} {planned.rule} -> {planned.target}: "
                    f"{planned.title or ''!r} [{state}]{row}"
                )
            lines.append("  then:" if item.then else "  then: nothing was sent")
            for recorded in item.then:
                extra = f", round {recorded.replay_round}" if recorded.replay_round else ""
                extra += ", forced" if recorded.forced else ""
                lines.append(
                    f"    #{recorded.id} {recorded.rule} -> {recorded.target}: "
                    f"{recorded.title or ''!r} [{recorded.state}{extra}]"
                )
        if not self.dry_run and not self.enqueued:
            lines.append("")
            lines.append("new deliveries were not handed to a queue: the relay's sweep sends them")
        return "\n".join(lines)


def recorded(row: Delivery) -> RecordedDelivery:
    return RecordedDelivery(
        id=row.id,
        rule=row.rule_name,
        target=row.target_name,
        replay_round=row.replay_round,
        forced=row.forced,
        state=row.state,
        title=row.title,
        sent_at=row.sent_at.isoformat() if row.sent_at else None,
    )
