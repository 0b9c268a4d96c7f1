"""Read-only views for the CLI: tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from receiver.db.tables import Event
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
