"""Flush notification groups: one message per due (rule, target, group key).

Routing puts a `group_by` rule's deliveries into their group as `grouped` members. Every
few seconds this watcher claims each group whose window has ended (a conditional update,
so two processes never both send one) and, in the same transaction, renders one message
from its members onto the first member's row (now `pending`, sent by the `deliver` job)
and marks the rest `sent_in_group`. A crash before the commit leaves the group due and
its members waiting; a member routed after the claim opens the follow-up message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from receiver.db.store import groups
from receiver.db.tables import Delivery, NotificationGroup
from receiver.jobs.relay import DELIVER
from receiver.pipeline.route import held_reason, take_client_slot
from receiver.queue import JobRequest, QueueUnavailableError
from receiver.routing.ruleset import audience_for_target
from receiver.services import Services
from receiver.settings import Settings
from receiver.vocabulary import CLIENT_TARGET, DeliveryState

log = logging.getLogger("receiver.watch.groups")

FLUSH_EVERY = 5.0  # seconds: a group is sent at most this long after its window ends
BATCH = 200  # groups per pass; the next pass takes the rest


@dataclass
class FlushResult:
    sent: list[int] = field(default_factory=list)  # delivery ids carrying a group's message
    members: int = 0

    def __str__(self) -> str:
        return f"{len(self.sent)} group messages for {self.members} members"


def group_label(key: dict[str, Any], members: Sequence[dict[str, Any]]) -> str:
    """What the group is about, for titles: the members' one client, else the key's values."""
    names = {(m.get("facts") or {}).get("client_name") for m in members}
    if len(names) == 1 and None not in names:
        return str(names.pop())
    return ", ".join(str(v) for v in key.values() if v is not None) or "(none)"


def group_context(group: NotificationGroup, members: Sequence[Delivery]) -> dict[str, Any]:
    """The first member's context, plus `group` (key, label, events, count, follow_up)."""
    events = [dict(m.group_context or {}) for m in members]
    return {
        **events[0],
        "group": {
            "key": dict(group.group_key),
            "label": group_label(group.group_key, events),
            "events": events,
            "count": len(events),
            "rule": group.rule_name,
            "follow_up": group.sent_count > 1,
        },
    }


async def flush_group(services: Services, group_id: int) -> tuple[int, int] | None:
    """Claim and flush one group; (carrier delivery id, members), or None if not ours."""
    now = services.clock()
    rules = services.rules.current
    renderer = services.rules.renderer
    async with services.sessions.begin() as session:
        group = await groups.claim_group(session, group_id=group_id, now=now)
        if group is None:
            return None
        members = await groups.waiting_members(session, group_id=group_id)
        if not members:
            return None
        carrier = members[0]
        rule = rules.rule(group.rule_name)
        rendered = renderer.render(
            template=group.template,
            title=rule.title if rule is not None else None,
            body=rule.body if rule is not None else None,
            audience=audience_for_target(group.target_name),
            context=group_context(group, members),
        )
        state, reason = DeliveryState.PENDING, None
        if group.target_name == CLIENT_TARGET and carrier.client_id:
            # The client cap counts messages, so a group's one message takes one slot.
            cap = services.settings.client_max_per_hour
            taken = await take_client_slot(session, client_id=carrier.client_id, cap=cap, now=now)
            if not taken:
                state, reason = DeliveryState.HELD, held_reason(cap)
        await groups.carry_message(
            session,
            delivery_id=carrier.id,
            state=state,
            title=rendered.title,
            body=rendered.body,
            render_error=rendered.error,
            reason=reason,
            now=now,
        )
        await groups.mark_sent_in_group(
            session, delivery_ids=[m.id for m in members[1:]], carrier_id=carrier.id, now=now
        )
    return (carrier.id, len(members)) if state == DeliveryState.PENDING else None


class GroupFlusher:
    """The scheduler's watcher for notification groups (always on)."""

    name = "groups"

    def interval(self, settings: Settings) -> float | None:
        return FLUSH_EVERY

    async def has_work(self, services: Services) -> bool:
        async with services.sessions() as session:
            return bool(await groups.due_group_ids(session, now=services.clock(), limit=1))

    async def run_once(self, services: Services) -> FlushResult:
        result = FlushResult()
        async with services.sessions() as session:
            due = await groups.due_group_ids(session, now=services.clock(), limit=BATCH)
        for group_id in due:
            flushed = await flush_group(services, group_id)
            if flushed is not None:
                result.sent.append(flushed[0])
                result.members += flushed[1]
        await hand_over(services, result.sent)
        return result


async def hand_over(services: Services, delivery_ids: list[int]) -> None:
    """Queue the group messages now; the relay's sweep is the backstop."""
    if not delivery_ids or services.queue is None:
        return
    try:
        await services.queue.enqueue_many([JobRequest(DELIVER, i) for i in delivery_ids])
    except QueueUnavailableError:
        log.warning("queue unavailable: %d group messages left for the sweep", len(delivery_ids))
