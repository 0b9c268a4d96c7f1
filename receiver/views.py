"""Read-only views for the CLI: tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update

from receiver.db.tables import Channel, Client, Delivery, Event, StatusChange
from receiver.services import base_services
from receiver.settings import Settings


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def event_summary(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "correlation_id": event.correlation_id,
        "received_at": event.received_at.isoformat(),
        "source": event.source,
        "event_type": event.event_type,
        "known": event.known,
        "channel_id": event.channel_id,
        "client_id": event.client_id,
        "phone_number": event.phone_number,
        "verification": event.verification,
        "claim": event.claim,
        "state": event.state,
        "enrichment": event.enrichment,
        "attempts": event.attempts,
        "last_error": event.last_error,
    }


async def events_list(settings: Settings, *, limit: int, as_json: bool) -> int:
    services = base_services(settings)
    try:
        async with services.sessions() as session:
            events = (
                await session.scalars(select(Event).order_by(Event.id.desc()).limit(limit))
            ).all()
    finally:
        await services.engine.dispose()
    summaries = [event_summary(event) for event in events]
    if as_json:
        print(json.dumps(summaries, indent=2))
        return 0
    if not summaries:
        print("no events yet")
        return 0
    rows = [
        [
            str(s["id"]),
            s["received_at"][:19].replace("T", " "),
            s["event_type"] + ("" if s["known"] else " (unknown)"),
            s["channel_id"] or "-",
            s["client_id"] or "-",
            s["verification"],
            s["state"] + (f"/{s['claim']}" if s["claim"] else ""),
            s["enrichment"],
        ]
        for s in summaries
    ]
    print(
        table(
            rows,
            [
                "ID",
                "RECEIVED (UTC)",
                "EVENT",
                "CHANNEL",
                "CLIENT",
                "VERIFIED",
                "STATE",
                "ENRICHMENT",
            ],
        )
    )
    return 0


def channel_summary(channel: Channel, client: Client | None) -> dict[str, Any]:
    return {
        "id": channel.id,
        "phone_number": channel.phone_number,
        "client_id": channel.client_id,
        "client_name": client.name if client else None,
        "contact_email": client.contact_email if client else None,
        "status": channel.status,
        "why": channel.status_why,
        "enriched": channel.enriched,
        "snapshot_at": channel.snapshot_at.isoformat(),
        "fetched_at": channel.fetched_at.isoformat(),
    }


async def channels_list(settings: Settings, *, limit: int, as_json: bool) -> int:
    services = base_services(settings)
    try:
        async with services.sessions() as session:
            rows = (
                await session.execute(
                    select(Channel, Client)
                    .outerjoin(Client, Client.id == Channel.client_id)
                    .order_by(Channel.fetched_at.desc())
                    .limit(limit)
                )
            ).all()
    finally:
        await services.engine.dispose()
    summaries = [channel_summary(channel, client) for channel, client in rows]
    if as_json:
        print(json.dumps(summaries, indent=2))
        return 0
    if not summaries:
        print("no channels known yet")
        return 0
    print(
        table(
            [
                [
                    s["id"],
                    s["phone_number"] or "-",
                    s["client_name"] or s["client_id"] or "-",
                    s["status"] or "-",
                    s["why"] or "",
                ]
                for s in summaries
            ],
            ["CHANNEL", "PHONE", "CLIENT", "STATUS", "WHY"],
        )
    )
    return 0


async def channel_show(settings: Settings, channel_id: str, *, as_json: bool) -> int:
    services = base_services(settings)
    try:
        async with services.sessions() as session:
            channel = await session.get(Channel, channel_id)
            if channel is None:
                print(f"no channel {channel_id!r} is known", file=sys.stderr)
                return 1
            client = await session.get(Client, channel.client_id) if channel.client_id else None
            history = (
                await session.scalars(
                    select(StatusChange)
                    .where(StatusChange.channel_id == channel_id)
                    .order_by(StatusChange.channel_version)
                )
            ).all()
            events = (
                await session.scalars(
                    select(Event)
                    .where(Event.channel_id == channel_id)
                    .order_by(Event.id.desc())
                    .limit(10)
                )
            ).all()
    finally:
        await services.engine.dispose()
    summary = channel_summary(channel, client)
    summary["history"] = [
        {
            "from": change.from_status,
            "to": change.to_status,
            "why": change.why,
            "event_id": change.event_id,
            "at": change.changed_at.isoformat(),
        }
        for change in history
    ]
    summary["recent_events"] = [event_summary(event) for event in events]
    if as_json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"channel   {summary['id']}")
    print(f"phone     {summary['phone_number'] or '-'}")
    client_line = summary["client_name"] or "-"
    print(f"client    {client_line} ({summary['client_id'] or 'unknown id'})")
    print(f"email     {summary['contact_email'] or 'not known'}")
    print(f"status    {summary['status']}: {summary['why']}")
    print(
        f"source    {'Partner API' if summary['enriched'] else 'webhook payload (not confirmed)'}"
    )
    print("history")
    rows = [
        [
            item["at"][:19].replace("T", " "),
            f"{item['from'] or '(first seen)'} -> {item['to']}",
            str(item["event_id"]),
            item["why"] or "",
        ]
        for item in summary["history"]
    ]
    print(table(rows, ["AT (UTC)", "CHANGE", "EVENT", "WHY"]) if rows else "  (none)")
    return 0


def delivery_summary(row: Delivery, event_type: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_id": row.event_id,
        "event_type": event_type,
        "rule": row.rule_name,
        "target": row.target_name,
        "target_kind": row.target_kind,
        "target_display": row.target_display,
        "replay_round": row.replay_round,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
        "last_error": row.last_error,
        "render_error": row.render_error,
        "title": row.title,
        "created_at": row.created_at.isoformat(),
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
    }


async def deliveries_list(
    settings: Settings, *, state: str | None, limit: int, as_json: bool
) -> int:
    services = base_services(settings)
    try:
        async with services.sessions() as session:
            query = select(Delivery, Event.event_type).join(Event, Event.id == Delivery.event_id)
            if state:
                query = query.where(Delivery.state == state)
            rows = (await session.execute(query.order_by(Delivery.id.desc()).limit(limit))).all()
    finally:
        await services.engine.dispose()
    summaries = [delivery_summary(row, event_type) for row, event_type in rows]
    if as_json:
        print(json.dumps(summaries, indent=2))
        return 0
    if not summaries:
        print("no deliveries" + (f" in state {state}" if state else ""))
        return 0
    print(
        table(
            [
                [
                    str(s["id"]),
                    str(s["event_id"]),
                    s["event_type"],
                    s["rule"][:40],
                    s["target"],
                    s["state"],
                    str(s["attempts"]),
                    (s["last_error"] or "")[:60],
                ]
                for s in summaries
            ],
            ["ID", "EVENT", "TYPE", "RULE", "TARGET", "STATE", "TRIES", "LAST ERROR"],
        )
    )
    return 0


async def deliveries_retry(settings: Settings, *, ids: Sequence[int], all_dead: bool) -> int:
    """Make dead (or failed) deliveries due now; a running service's sweep picks them up."""
    services = base_services(settings)
    now = services.clock()
    try:
        async with services.sessions.begin() as session:
            query = update(Delivery).where(Delivery.state.in_(("dead", "failed")))
            if not all_dead:
                query = query.where(Delivery.id.in_(list(ids)))
            result = await session.execute(
                query.values(
                    state="pending", next_attempt_at=now, enqueued_at=None, updated_at=now
                ).returning(Delivery.id)
            )
            revived = list(result.scalars())
    finally:
        await services.engine.dispose()
    if not revived:
        print("nothing to retry (only dead or failed deliveries can be retried)")
        return 1
    print(
        f"{len(revived)} deliver{'y' if len(revived) == 1 else 'ies'} queued for retry: "
        + ", ".join(map(str, revived))
    )
    print("a running service sends them within SWEEP_INTERVAL")
    return 0
