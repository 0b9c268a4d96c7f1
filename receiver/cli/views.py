"""Read-only views for the CLI: tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update

from receiver.cli.terminal import clean
from receiver.db.tables import Channel, Client, Delivery, Event, StatusChange
from receiver.ops import records
from receiver.ops.records import event_summary
from receiver.services import base_services
from receiver.settings import Settings


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """Columns padded to their widest cell; cells cleaned of control characters."""
    rows = [[clean(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


async def events_list(
    settings: Settings, *, filters: records.Filters, window: records.Window, as_json: bool
) -> int:
    """Print a page of events (the admin API's listing, filters and all)."""
    services = base_services(settings)
    try:
        page = await records.list_events(services, filters=filters, window=window)
    except records.FilterError as exc:
        print(f"hub-receiver: {exc}", file=sys.stderr)
        return 2
    finally:
        await services.engine.dispose()
    summaries = page.items
    if as_json:
        print(json.dumps(summaries, indent=2))
        return 0
    if not summaries:
        print("no events match" if filters != records.Filters() else "no events yet")
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
            s["external_id"] or "-",
            _short_key(s["dedup_key"]),
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
                "360DIALOG ID",
                "DEDUP KEY",
            ],
        )
    )
    if page.next_cursor is not None:
        print(f"(more: add --before {page.next_cursor})", file=sys.stderr)
    return 0


def _short_key(key: str) -> str:
    """A dedup key for a table: hashes are cut (the full key is in --json and `events show`)."""
    kind, _, rest = key.partition(":")
    if rest.startswith(("body:", "raw:")):
        how, _, digest = rest.partition(":")
        return f"{kind}:{how}:{digest[:12]}…"
    return key if len(key) <= 60 else key[:59] + "…"


async def event_show(settings: Settings, ref: str, *, as_json: bool) -> int:
    """Print one event by our id or 360dialog's: body, headers, verdicts, what it caused."""
    services = base_services(settings)
    try:
        ids = await records.find_events(services, ref)
        details = [await records.event_detail(services, event_id) for event_id in ids]
    finally:
        await services.engine.dispose()
    found = [detail for detail in details if detail is not None]
    if not found:
        print(clean(f"no event {ref!r} (neither our id nor a 360dialog id)"), file=sys.stderr)
        return 1
    if len(found) > 1:
        listed = ", ".join(f"{d['id']} ({d['event_type']})" for d in found)
        print(
            clean(f"360dialog id {ref!r} names {len(found)} events: {listed}; show one by our id"),
            file=sys.stderr,
        )
        return 1
    [detail] = found
    if as_json:
        print(json.dumps(detail, indent=2))
        return 0
    print(format_event(detail))
    return 0


def format_event(detail: dict[str, Any]) -> str:
    """The `events show` page: one fact per line, then the body, changes and deliveries."""

    def field(name: str, value: Any) -> str:
        return f"{name:<14}{'-' if value is None or value == '' else value}"

    claim = detail["claim"]
    if claim and detail["claim_reason"]:
        claim = f"{claim}: {detail['claim_reason']}"
    enrichment = detail["enrichment"]
    if detail["enrichment_error"]:
        enrichment = f"{enrichment}: {detail['enrichment_error']}"
    state = detail["state"] + f" (attempts {detail['attempts']})"
    if detail["last_error"]:
        state += f": {detail['last_error']}"
    lines = [
        field(
            "event",
            f"{detail['id']} {detail['event_type']}"
            + ("" if detail["known"] else " (unknown type)"),
        ),
        field("360dialog id", detail["external_id"]),
        field("dedup key", detail["dedup_key"]),
        field("correlation", detail["correlation_id"]),
        field("received", detail["received_at"]),
        field("source", detail["source"]),
        field("verified", detail["verification"]),
        field("channel", detail["channel_id"]),
        field("client", detail["client_id"]),
        field("phone", detail["phone_number"]),
        field("state", state),
        field("processed", detail["processed_at"]),
        field("enrichment", enrichment),
        field("claim", claim),
        field("rules", detail["rules_version"]),
        "headers (kept; never a secret)",
    ]
    headers: dict[str, Any] = detail["headers"] or {}
    lines += [f"  {name}: {value}" for name, value in headers.items()]
    if not headers:
        lines.append("  (none)")
    lines.append("parsed")
    lines += [f"  {name}: {value}" for name, value in (detail["parsed"] or {}).items()]
    lines.append("raw body")
    if detail["raw_body"] is None:
        lines.append(f"  (purged by retention at {detail['raw_purged_at']})")
    else:
        lines += ["  " + line for line in detail["raw_body"].split("\n")]
    lines.append("status changes")
    changes = detail["status_changes"]
    lines += [
        f"  {c['changed_at'][:19].replace('T', ' ')}  {c['from'] or '(first seen)'} -> {c['to']}"
        + (f": {c['why']}" if c["why"] else "")
        for c in changes
    ] or ["  (none)"]
    lines.append("deliveries")
    if not detail["deliveries"]:
        lines.append("  (none)")
    for delivery in detail["deliveries"]:
        round_ = f", round {delivery['replay_round']}" if delivery["replay_round"] else ""
        shown = delivery["target_display"] or delivery["target_kind"]
        lines.append(
            f"  #{delivery['id']} {delivery['rule']} -> "
            f"{delivery['target']} ({shown}): "
            f"{delivery['state']}, {delivery['attempts']} attempt(s){round_}"
        )
        if delivery["title"]:
            lines.append(f"      title: {delivery['title']}")
        lines += [
            f"      {a['number']}. {(a['started_at'] or '')[:19].replace('T', ' ')} {a['outcome']}"
            + (f": {a['error']}" if a["error"] else "")
            for a in delivery["attempt_log"]
        ]
    # Every value may come from a webhook sender or a remote server: no control characters.
    return "\n".join(clean(line) for line in lines)


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
                print(clean(f"no channel {channel_id!r} is known"), file=sys.stderr)
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
    print(clean(f"channel   {summary['id']}"))
    print(clean(f"phone     {summary['phone_number'] or '-'}"))
    client_line = summary["client_name"] or "-"
    print(clean(f"client    {client_line} ({summary['client_id'] or 'unknown id'})"))
    print(clean(f"email     {summary['contact_email'] or 'not known'}"))
    print(clean(f"status    {summary['status']}: {summary['why']}"))
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
    # Rule names and errors are printed whole (the terminal wraps them): cut short, the
    # error lost the part that said why (`--json` has every field).
    print(
        table(
            [
                [
                    str(s["id"]),
                    str(s["event_id"]),
                    s["event_type"],
                    s["rule"],
                    s["target"],
                    s["state"],
                    str(s["attempts"]),
                    s["last_error"] or "",
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
            # `held` (over the client cap) only by id: releasing every held message at once
            # would send the very flood the cap stopped.
            query = update(Delivery).where(
                Delivery.state.in_(("dead", "failed") if all_dead else ("dead", "failed", "held"))
            )
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
        print("nothing to retry (only dead, failed or held deliveries can be retried)")
        return 1
    print(
        f"{len(revived)} deliver{'y' if len(revived) == 1 else 'ies'} queued for retry: "
        + ", ".join(map(str, revived))
    )
    print("a running service sends them within SWEEP_INTERVAL")
    return 0
