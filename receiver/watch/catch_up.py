"""The catch-up watcher: when a rule's mute window ends, one summary per (rule, target, group).

Every CATCH_UP_SECONDS it lists the (rule, target, client) groups with deliveries held by a
mute window and asks the current rules whether the rule is still muted at the clock's now.
For a group whose window is over, one transaction claims the held rows with a conditional
update (`held.claim_held`: two workers never both take a row, so never both summarise it),
inserts one summary delivery (rule "<rule> (catch-up)", template `catch_up`) and links the
rows to it. An item whose status change the channel has since left (restricted at 02:00,
live again at 04:00) is listed as resolved. The rule's throttle applies to the summary.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from receiver.db.engine import Session
from receiver.db.store import deliveries, held
from receiver.db.store.held import HeldGroup, HeldItem
from receiver.notify import apprise as transport
from receiver.pipeline.deliver import deliver
from receiver.pipeline.route import claim_throttle, target_kind
from receiver.queue import JobContext, RetryLater
from receiver.routing.ruleset import RuleSet, audience_for_target
from receiver.services import Services
from receiver.settings import Settings
from receiver.vocabulary import CLIENT_TARGET, DeliveryState

log = logging.getLogger("receiver.watch.catch_up")

CATCH_UP_SECONDS = 30.0
TEMPLATE = "catch_up"
SUFFIX = " (catch-up)"


def summary_rule(rule: str) -> str:
    return f"{rule}{SUFFIX}"


@dataclass(frozen=True, slots=True)
class CatchUpResult:
    summaries: list[int]
    still_muted: int

    def __str__(self) -> str:
        return f"{len(self.summaries)} catch-up summaries, {self.still_muted} groups still muted"


class CatchUpWatcher:
    name = "catch_up"

    def interval(self, settings: Settings) -> float | None:
        del settings
        return CATCH_UP_SECONDS

    async def has_work(self, services: Services) -> bool:
        async with services.sessions() as session:
            return bool(await held.held_groups(session))

    async def run_once(self, services: Services) -> CatchUpResult:
        return await catch_up(services)


async def catch_up(services: Services) -> CatchUpResult:
    """Summarise every group whose mute window is over; one transaction per group."""
    rules = services.rules.current
    now = services.clock()
    async with services.sessions() as session:
        groups = await held.held_groups(session)
    summaries: list[int] = []
    still = 0
    for group in groups:
        # A rule since deleted or unmuted has nothing left to wait for.
        if rules.hold(group.rule, now=now) is not None:
            still += 1
            continue
        async with services.sessions() as session, session.begin():
            summary = await summarise(session, group, services=services, rules=rules, now=now)
        if summary is not None:
            summaries.append(summary)
            await _send(services, summary)
    return CatchUpResult(summaries=summaries, still_muted=still)


async def summarise(
    session: Session, group: HeldGroup, *, services: Services, rules: RuleSet, now: datetime
) -> int | None:
    """Claim the group's held rows and insert their one summary; its id, or None."""
    ids = await held.claim_held(session, group=group, now=now)
    if not ids:
        return None  # another worker took them
    items = await held.held_items(session, delivery_ids=ids)
    row = await _summary_row(session, group, items, services=services, rules=rules, now=now)
    summary_id = await deliveries.insert_delivery(session, row=row)
    await held.link_summary(session, delivery_ids=ids, summary_id=summary_id, now=now)
    return summary_id if row["state"] == DeliveryState.PENDING else None


async def _summary_row(
    session: Session,
    group: HeldGroup,
    items: list[HeldItem],
    *,
    services: Services,
    rules: RuleSet,
    now: datetime,
) -> dict[str, Any]:
    listed = [_item(i) for i in items]
    context = {
        "catch_up": {
            "rule": group.rule,
            "target": group.target,
            "window": ", ".join(sorted({i.held_by for i in items if i.held_by})) or "a window",
            "count": len(listed),
            # A muted group_by rule is summarised per group: {"client.id": "..."}.
            "group": json.loads(group.group_key) if group.group_key else None,
            "resolved": sum(1 for i in listed if i["resolved"]),
            # Not `items`: Jinja's `catch_up.items` finds dict.items before the key.
            "events": listed,
        },
        "rule": summary_rule(group.rule),
        "facts": {},
        "event": {},
    }
    rendered = services.rules.renderer.render(
        template=TEMPLATE,
        title=None,
        body=None,
        audience=audience_for_target(group.target),
        context=context,
    )
    state, reason = DeliveryState.PENDING, None
    url = rules.target_url(group.target)
    if group.target != CLIENT_TARGET and not url:
        state, reason = DeliveryState.SKIPPED, f"target '{group.target}' is not configured"
    compiled = rules.rule(group.rule)
    throttle_key = f"catch-up:{group.target}:{group.client_id or ''}:{group.group_key or ''}"
    if state == DeliveryState.PENDING and compiled is not None and compiled.throttle_seconds:
        free = await claim_throttle(
            session,
            rule=summary_rule(group.rule),
            key=throttle_key,
            seconds=compiled.throttle_seconds,
            now=now,
        )
        if not free:
            state = DeliveryState.THROTTLED
            reason = f"throttled: '{group.rule}' already sent a catch-up to {group.target}"
    return {
        # The newest held event carries the summary: (event, rule, target, round) is unique.
        "event_id": items[-1].event_id,
        "rule_name": summary_rule(group.rule)[:200],
        "target_name": group.target,
        "target_kind": target_kind(group.target, rules),
        "target_display": transport.mask(url) if url else None,
        "client_id": group.client_id,
        "state": state,
        "attempts": 0,
        "last_error": reason,
        "title": rendered.title,
        "body": rendered.body,
        "render_error": rendered.error,
        "throttle_key": throttle_key,
        # Sent right after the commit; the sweep covers a failed hand-over.
        "enqueued_at": None,
        "created_at": now,
        "updated_at": now,
        "replay_round": 0,
        "forced": False,
    }


def _item(item: HeldItem) -> dict[str, Any]:
    # No longer true: the event moved the channel to a status it has since left.
    resolved = item.status_to is not None and item.status_now not in {None, item.status_to}
    return {
        "event_type": item.event_type,
        "received_at": item.received_at.isoformat(timespec="minutes"),
        "channel_id": item.channel_id,
        "title": item.title,
        "status_to": item.status_to,
        "status_now": item.status_now,
        "resolved": resolved,
        "held_by": item.held_by,
    }


async def _send(services: Services, summary_id: int) -> None:
    ctx: JobContext = {"services": services}
    try:
        await deliver(ctx, summary_id)
    except RetryLater:
        log.info("catch-up summary %d left for a retry by the sweep", summary_id)
    except Exception as exc:  # the sweep is the backstop
        log.error("catch-up summary %d: first attempt failed", summary_id, exc_info=exc)


__all__ = ["CatchUpWatcher", "catch_up", "summarise"]
