"""What the CLI prints about events, channels and deliveries: tables for people, JSON for scripts.

Every listing and detail comes from the read model (`receiver/ops/records.py`), the one the
admin API serves, so `--json` prints the same items; this module only lays them out. A
retry by hand goes through `receiver/ops/retry.py`, as the admin API's does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from receiver.cli.terminal import clean
from receiver.ops import records
from receiver.services import base_services
from receiver.settings import Settings

# Who a retry's attempt log names as having asked for it.
CLI_RETRY = "hub-receiver deliveries retry"


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


async def channels_list(settings: Settings, *, limit: int, as_json: bool) -> int:
    """Print the channels most recently fetched first."""
    services = base_services(settings)
    try:
        page = await records.list_channels(
            services,
            filters=records.Filters(),
            window=records.Window(limit=limit),
            recently_fetched_first=True,
        )
    finally:
        await services.engine.dispose()
    if as_json:
        print(json.dumps(page.items, indent=2))
        return 0
    if not page.items:
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
                    _health_cell(s),
                    s["status_why"] or "",
                ]
                for s in page.items
            ],
            ["CHANNEL", "PHONE", "CLIENT", "STATUS", "HEALTH", "WHY"],
        )
    )
    return 0


async def channel_show(settings: Settings, channel_id: str, *, as_json: bool) -> int:
    """Print one channel: its client, status and why, and its status history (oldest first)."""
    services = base_services(settings)
    try:
        detail = await records.channel_detail(services, channel_id)
    finally:
        await services.engine.dispose()
    if detail is None:
        print(clean(f"no channel {channel_id!r} is known"), file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(detail, indent=2))
        return 0
    print(clean(f"channel   {detail['id']}"))
    print(clean(f"phone     {detail['phone_number'] or '-'}"))
    client_line = detail["client_name"] or "-"
    print(clean(f"client    {client_line} ({detail['client_id'] or 'unknown id'})"))
    print(clean(f"email     {detail['contact_email'] or 'not known'}"))
    print(clean(f"status    {detail['status']}: {detail['status_why']}"))
    print(f"source    {'Partner API' if detail['enriched'] else 'webhook payload (not confirmed)'}")
    print(clean(f"health    {_health_cell(detail)}"))
    print("history")
    rows = [
        [
            change["changed_at"][:19].replace("T", " "),
            f"{change['from'] or '(first seen)'} -> {change['to']}",
            str(change["event_id"]),
            change["why"] or "",
        ]
        for change in reversed(detail["status_history"])  # newest first in the read model
    ]
    if len(rows) >= records.STATUS_HISTORY_LIMIT:
        print(f"(the latest {len(rows)} changes; older ones are kept but not shown)")
    print(table(rows, ["AT (UTC)", "CHANGE", "EVENT", "WHY"]) if rows else "  (none)")
    return 0


def _health_cell(item: dict[str, Any]) -> str:
    if not item.get("health_key_set"):
        return "no key" if item.get("health") is None else str(item["health"])
    if item.get("health") is None:
        return "not checked yet"
    checked = item.get("health_checked_at") or ""
    return f"{item['health']} (checked {checked[:16].replace('T', ' ')} UTC)"


def _balance_cell(item: dict[str, Any]) -> str:
    if item.get("balance") is None:
        return "not polled" if not item.get("balance_error") else "unreadable"
    low = "  LOW" if item.get("balance_low") else ""
    return f"{item['balance']} {item.get('currency') or ''}".strip() + low


async def clients_list(settings: Settings, *, limit: int, as_json: bool) -> int:
    """Print the known clients with their balance and the month's usage."""
    services = base_services(settings)
    try:
        page = await records.list_clients(services, window=records.Window(limit=limit))
    finally:
        await services.engine.dispose()
    if as_json:
        print(json.dumps(page.items, indent=2))
        return 0
    if not page.items:
        print("no clients known yet")
        return 0
    rows = [
        [
            c["id"],
            c["name"] or "-",
            c["contact_email"] or "-",
            _balance_cell(c),
            c["total_price"] or "-",
            (c["balance_polled_at"] or "-")[:16].replace("T", " "),
        ]
        for c in page.items
    ]
    print(table(rows, ["CLIENT", "NAME", "EMAIL", "BALANCE", "USAGE", "POLLED (UTC)"]))
    return 0


async def client_show(settings: Settings, client_id: str, *, as_json: bool) -> int:
    """Print one client: contact, balance and usage, balance history, numbers."""
    services = base_services(settings)
    try:
        detail = await records.client_detail(services, client_id)
    finally:
        await services.engine.dispose()
    if detail is None:
        print(clean(f"no client {client_id!r} is known"), file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(detail, indent=2))
        return 0
    print(clean(f"client    {detail['name'] or '-'} ({detail['id']})"))
    print(clean(f"email     {detail['contact_email'] or 'not known'}"))
    print(clean(f"balance   {_balance_cell(detail)}"))
    print(clean(f"usage     {detail['total_price'] or '-'} this month"))
    if detail["balance_error"]:
        print(clean(f"last poll {detail['balance_error']}"))
    print("numbers")
    numbers = [[c["id"], c["phone_number"] or "-", c["status"] or "-"] for c in detail["channels"]]
    print(table(numbers, ["CHANNEL", "PHONE", "STATUS"]) if numbers else "  (none)")
    print("balance history (newest first)")
    changes = [
        [
            (h["polled_at"] or "")[:19].replace("T", " "),
            f"{h['balance']} {h['currency'] or ''}".strip(),
            h["total_price"] or "-",
        ]
        for h in detail["balance_history"]
    ]
    print(table(changes, ["AT (UTC)", "BALANCE", "USAGE"]) if changes else "  (none)")
    return 0


async def deliveries_list(
    settings: Settings, *, state: str | None, limit: int, as_json: bool
) -> int:
    """Print the latest deliveries, newest first."""
    services = base_services(settings)
    try:
        page = await records.list_deliveries(
            services, filters=records.Filters(state=state), window=records.Window(limit=limit)
        )
    except records.FilterError as exc:
        print(f"hub-receiver: {exc}", file=sys.stderr)
        return 2
    finally:
        await services.engine.dispose()
    if as_json:
        print(json.dumps(page.items, indent=2))
        return 0
    if not page.items:
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
                    _delivery_state(s),
                    str(s["attempts"]),
                    s["last_error"] or "",
                ]
                for s in page.items
            ],
            ["ID", "EVENT", "TYPE", "RULE", "TARGET", "STATE", "TRIES", "LAST ERROR"],
        )
    )
    return 0


def _delivery_state(item: dict[str, Any]) -> str:
    """The state, and for a delivery a mute window held, which window and until when."""
    if not item.get("held_by"):
        return str(item["state"])
    until = item.get("held_until")
    return f"{item['state']} ({item['held_by']}, until {until or 'no end in sight'})"


async def deliveries_retry(settings: Settings, *, ids: Sequence[int], all_dead: bool) -> int:
    """Retry deliveries by hand (the admin API's retry) and print which were queued."""
    from receiver.ops.retry import retry_all_dead, retry_deliveries

    services = base_services(settings)
    if settings.redis_url:
        from receiver.jobs.arq_queue import ArqQueue

        # Handed to the workers now, as the admin API does; the sweep is the backstop.
        services.queue = ArqQueue(settings.redis_url)
    try:
        if all_dead:
            results = await retry_all_dead(services, requested_by=CLI_RETRY)
        else:
            results = await retry_deliveries(services, ids, requested_by=CLI_RETRY)
    finally:
        if services.queue is not None:
            await services.queue.close()
        await services.engine.dispose()
    for result in results:
        if not result.retried:
            why = "does not exist" if result.state is None else f"is {result.state}"
            print(f"delivery {result.delivery_id} {why}", file=sys.stderr)
    revived = [result.delivery_id for result in results if result.retried]
    if not revived:
        print("nothing to retry (only dead, failed or held deliveries can be retried)")
        return 1
    print(
        f"{len(revived)} deliver{'y' if len(revived) == 1 else 'ies'} queued for retry: "
        + ", ".join(map(str, revived))
    )
    if all(result.enqueued for result in results if result.retried):
        print("handed to the workers")
    else:
        print("a running service sends them within SWEEP_INTERVAL")
    return 0
