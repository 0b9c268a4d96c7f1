"""`numbers set-key|import-keys|remove-key` and `health check`: the number health commands.

A key is read from standard input (never argv, which other users see in `ps` and shells keep
in history) and is never printed: not here, not in an error.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import TextIO

from receiver.cli.terminal import clean_lines
from receiver.services import base_services
from receiver.settings import Settings
from receiver.watch.health import run_pass
from receiver.watch.keys import KeysError, import_keys, key_box, remove_key, set_key


def read_key(stream: TextIO) -> str:
    if stream.isatty():
        return getpass.getpass("API key of the number (not shown): ")
    return stream.read()


async def set_key_command(settings: Settings, *, channel_id: str, stream: TextIO) -> int:
    try:
        key_box(settings)  # refuse before asking for the key
    except KeysError as exc:
        print(f"hub-receiver: {exc}", file=sys.stderr)
        return 2
    api_key = read_key(stream)
    services = base_services(settings)
    try:
        await set_key(services, channel_id=channel_id, api_key=api_key)
    except KeysError as exc:
        print(f"hub-receiver: {exc}", file=sys.stderr)
        return 2
    finally:
        await services.engine.dispose()
    print(clean_lines(f"key set for {channel_id.strip()} (stored encrypted)"))
    return 0


async def import_keys_command(settings: Settings, *, path: Path) -> int:
    services = base_services(settings)
    try:
        count = await import_keys(services, path=path)
    except KeysError as exc:
        print(clean_lines(f"hub-receiver: {exc}"), file=sys.stderr)
        return 2
    finally:
        await services.engine.dispose()
    print(f"{count} keys set (stored encrypted)")
    return 0


async def remove_key_command(settings: Settings, *, channel_id: str) -> int:
    services = base_services(settings)
    try:
        removed = await remove_key(services, channel_id=channel_id)
    finally:
        await services.engine.dispose()
    if not removed:
        print(clean_lines(f"hub-receiver: no key is set for {channel_id}"), file=sys.stderr)
        return 1
    print(clean_lines(f"key removed for {channel_id}"))
    return 0


async def health_check_command(settings: Settings, *, channel_ids: list[str], as_json: bool) -> int:
    services = base_services(settings)
    try:
        results = await run_pass(services, due_only=False, channel_ids=channel_ids or None)
    finally:
        await services.engine.dispose()
    if as_json:
        rows = [
            {
                "channel_id": r.channel_id,
                "outcome": r.outcome,
                "health": r.health,
                "previous": r.previous,
                "requested_at": r.requested_at.isoformat() if r.requested_at else None,
                "message": r.message,
            }
            for r in results
        ]
        print(json.dumps(rows, indent=2))
    elif not results:
        print("no numbers with a key (hub-receiver numbers set-key CHANNEL_ID)")
    else:
        print(clean_lines("\n".join(r.line() for r in results)))
    return 1 if any(r.outcome == "failed" for r in results) else 0
