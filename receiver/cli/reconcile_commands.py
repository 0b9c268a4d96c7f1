"""`hub-receiver reconcile`: one reconciliation pass now (receiver/watch/reconcile.py)."""

from __future__ import annotations

import json
import sys

from receiver.cli.terminal import clean_lines
from receiver.partner.client import PartnerAPIError
from receiver.settings import Settings
from receiver.watch.reconcile import ListChangedError, reconcile
from receiver.wiring import open_runtime


async def reconcile_command(settings: Settings, *, dry_run: bool, as_json: bool) -> int:
    if not settings.partner_api_configured:
        print(
            "hub-receiver: reconcile needs the Partner API: set D360_PARTNER_ID and "
            "D360_API_KEY (or D360_USERNAME and D360_PASSWORD)",
            file=sys.stderr,
        )
        return 2
    async with open_runtime(settings, role="cli") as services:
        try:
            result = await reconcile(services, dry_run=dry_run)
        except (PartnerAPIError, ListChangedError) as exc:
            print(clean_lines(f"hub-receiver: reconcile failed: {exc}"), file=sys.stderr)
            return 1
    summary = result.summary() | {"dry_run": dry_run}
    if as_json:
        print(json.dumps(summary, indent=2))
        return 0
    verb = "would record" if dry_run else "recorded"
    lines = [
        f"listed {result.channels_listed} channels and {result.clients_listed} clients; "
        f"{len(result.findings)} found, {verb} "
        f"{len(result.findings) if dry_run else len(result.recorded)} new",
    ]
    for finding in result.findings:
        if finding.event_type == "channel_reconciled":
            lines.append(
                f"  channel {finding.channel_id}: {finding.fields.get('status_from') or 'new'}"
                f" -> {finding.fields.get('status_to')} ({finding.fields.get('why')})"
            )
        else:
            lines.append(f"  client {finding.client_id}: never seen before")
    if result.baseline:
        lines.append(
            "first pass: numbers and clients never seen are learned and announced to nobody; "
            "from the next pass on, what changes is announced"
        )
    if not dry_run and result.recorded:
        lines.append("serve or a worker routes them (the rules tell the team)")
    print(clean_lines("\n".join(lines)))
    return 0
