"""`balance check`: one balance pass now, through the same shared limit as the watcher."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from receiver.cli.terminal import clean_lines
from receiver.settings import Settings
from receiver.watch.balance import LIMIT_INTERVAL, Progress, balance_pass
from receiver.wiring import open_runtime


async def balance_check_command(settings: Settings, *, as_json: bool) -> int:
    if not settings.partner_api_configured:
        print(
            "hub-receiver: the Partner API is not configured "
            "(set D360_PARTNER_ID and D360_API_KEY, or D360_USERNAME and D360_PASSWORD)",
            file=sys.stderr,
        )
        return 2
    lines: list[dict[str, object]] = []

    def show(step: Progress) -> None:
        lines.append(asdict(step))
        if not as_json:
            print(
                clean_lines(f"[{step.index}/{step.total}] {step.client_id}: {step.detail}"),
                flush=True,
            )

    if not as_json:
        print(
            f"asking 360dialog for each client's balance, one request per "
            f"{LIMIT_INTERVAL:.0f}s across all processes",
            flush=True,
        )
    async with open_runtime(settings, role="cli") as services:
        result = await balance_pass(services, force=True, progress=show)
    if as_json:
        print(json.dumps({"result": asdict(result), "clients": lines}, indent=2))
    elif result.clients == 0:
        print("no clients known yet (they arrive with webhooks, or `hub-receiver reconcile`)")
    else:
        print(clean_lines(f"done: {result}"))
    return 1 if result.errors else 0
