"""Notification groups (a rule's `group_by`): joining one, claiming it when due, its members.

A member joins inside its event's routing transaction; a flusher claims a due group with a
conditional update (`collecting` and due -> `notified`) and, in the same transaction, turns
its `grouped` members into one message. Two flushers never both claim one group, and a
member committed before the claim is in it, one committed after opens the follow-up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from receiver.db.dialect import upsert
from receiver.db.tables import Delivery, NotificationGroup
from receiver.vocabulary import DeliveryState

COLLECTING = "collecting"  # members wait; a message goes out at flush_at
NOTIFIED = "notified"  # the last message went out at last_sent_at; nothing waits


def key_text(key: Mapping[str, object]) -> str:
    """A group key as canonical JSON text (values may be any JSON)."""
    return json.dumps(key, sort_keys=True, default=str, separators=(",", ":"))


def key_hash(key: Mapping[str, object]) -> str:
    """A stable digest of a group key."""
    return hashlib.sha256(key_text(key).encode()).hexdigest()


def reopen_at(
    *, last_sent_at: datetime | None, now: datetime, wait: int, interval: int
) -> datetime:
    """When a notified group that gains a member sends again (pure).

    Within group_interval of its last message the newcomer waits for the follow-up at
    last_sent_at + group_interval; later, the group has gone quiet and collects afresh.
    """
    if last_sent_at is not None:
        follow_up = last_sent_at + timedelta(seconds=interval)
        if follow_up > now:
            return follow_up
    return now + timedelta(seconds=wait)


async def join_group(
    session: AsyncSession,
    *,
    rule: str,
    target: str,
    key: Mapping[str, object],
    template: str | None,
    wait: int,
    interval: int,
    now: datetime,
) -> int:
    """Return the id of the (rule, target, key) group a new member joins, opening it if needed.

    The no-op DO UPDATE locks the group's row until the routing transaction ends, so a
    flusher's claim waits for this member rather than sending without it.
    """
    statement = (
        upsert(session, NotificationGroup)
        .values(
            rule_name=rule,
            target_name=target,
            key_hash=key_hash(key),
            group_key=dict(key),
            template=template,
            state=COLLECTING,
            first_at=now,
            flush_at=now + timedelta(seconds=wait),
            sent_count=0,
        )
        .on_conflict_do_update(
            index_elements=["rule_name", "target_name", "key_hash"],
            set_={"state": NotificationGroup.state},
        )
        .returning(NotificationGroup.id, NotificationGroup.state, NotificationGroup.last_sent_at)
    )
    group_id, state, last_sent_at = (await session.execute(statement)).one()
    if state == NOTIFIED:
        await session.execute(
            update(NotificationGroup)
            .where(NotificationGroup.id == group_id)
            .values(
                state=COLLECTING,
                first_at=now,
                flush_at=reopen_at(
                    last_sent_at=last_sent_at, now=now, wait=wait, interval=interval
                ),
            )
        )
    return int(group_id)


async def due_group_ids(session: AsyncSession, *, now: datetime, limit: int) -> list[int]:
    """Groups whose window has ended, oldest first."""
    found = await session.scalars(
        select(NotificationGroup.id)
        .where(NotificationGroup.state == COLLECTING, NotificationGroup.flush_at <= now)
        .order_by(NotificationGroup.flush_at, NotificationGroup.id)
        .limit(limit)
    )
    return list(found)


async def claim_group(
    session: AsyncSession, *, group_id: int, now: datetime
) -> NotificationGroup | None:
    """Mark a due group notified now; the group, or None when another flusher has it."""
    result = await session.execute(
        update(NotificationGroup)
        .where(
            NotificationGroup.id == group_id,
            NotificationGroup.state == COLLECTING,
            NotificationGroup.flush_at <= now,
        )
        .values(
            state=NOTIFIED,
            last_sent_at=now,
            flush_at=None,
            sent_count=NotificationGroup.sent_count + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return await session.get(NotificationGroup, group_id, populate_existing=True)


async def waiting_members(session: AsyncSession, *, group_id: int) -> list[Delivery]:
    """The group's members not yet in a message, oldest first."""
    rows = await session.scalars(
        select(Delivery)
        .where(Delivery.group_id == group_id, Delivery.state == DeliveryState.GROUPED)
        .order_by(Delivery.id)
    )
    return list(rows.all())


async def carry_message(
    session: AsyncSession,
    *,
    delivery_id: int,
    state: str,
    title: str,
    body: str,
    render_error: str | None,
    reason: str | None,
    now: datetime,
) -> None:
    """Make one member's row the group's message (a delivery needs an event: the first's)."""
    await session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.state == DeliveryState.GROUPED)
        .values(
            state=state,
            title=title,
            body=body,
            render_error=render_error,
            last_error=reason,
            enqueued_at=now if state == DeliveryState.PENDING else None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


async def mark_sent_in_group(
    session: AsyncSession, *, delivery_ids: Sequence[int], carrier_id: int, now: datetime
) -> None:
    """The other members: told about in the carrier's message."""
    if not delivery_ids:
        return
    await session.execute(
        update(Delivery)
        .where(Delivery.id.in_(list(delivery_ids)), Delivery.state == DeliveryState.GROUPED)
        .values(
            state=DeliveryState.SENT_IN_GROUP,
            last_error=f"sent in the group message of delivery {carrier_id}",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
