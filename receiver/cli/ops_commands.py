"""The replay and retention commands, as the CLI runs them (outside the web process)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime

from receiver.cli.terminal import clean_lines
from receiver.ops.replay import ReplayError, replay
from receiver.ops.retention import run_retention
from receiver.routing.errors import RulesError
from receiver.services import base_services
from receiver.settings import Settings
from receiver.wiring import load_rules_holder


async def replay_command(
    settings: Settings,
    *,
    event_ids: Sequence[int],
    since: datetime | None,
    until: datetime | None,
    channel: str | None,
    event_type: str | None,
    dry_run: bool,
    force: bool,
    as_json: bool,
) -> int:
    try:
        holder = load_rules_holder(settings)
    except RulesError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    services = base_services(settings)
    services.rules_holder = holder
    try:
        report = await replay(
            services,
            event_ids=list(event_ids) or None,
            since=since,
            until=until,
            channel=channel,
            event_type=event_type,
            dry_run=dry_run,
            force=force,
        )
    except ReplayError as exc:
        print(f"replay not started: {exc}", file=sys.stderr)
        return 2
    finally:
        await services.engine.dispose()
    # Channel ids and errors in the report come from outside: no control characters.
    print(json.dumps(report.to_dict(), indent=2) if as_json else clean_lines(report.format()))
    if not dry_run:
        print(
            "new deliveries are sent by the running service within SWEEP_INTERVAL", file=sys.stderr
        )
    return 0


async def retention_command(settings: Settings, *, days: int | None, as_json: bool) -> int:
    older_than = days or settings.retention_days
    if older_than is None:
        print("set RETENTION_DAYS or pass --days", file=sys.stderr)
        return 2
    services = base_services(settings)
    try:
        result = await run_retention(services, older_than_days=older_than)
    finally:
        await services.engine.dispose()
    summary = {
        "older_than_days": older_than,
        "raw_bodies_purged": result.raw_bodies_purged,
        "rejected_requests_deleted": result.rejected_deleted,
        "complete": result.complete,
    }
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"purged the raw bodies of {result.raw_bodies_purged} events"
            f" older than {older_than} days "
            f"and deleted {result.rejected_deleted} rejected-request records"
            + ("" if result.complete else " (batch limit reached: run again)")
        )
    return 0
