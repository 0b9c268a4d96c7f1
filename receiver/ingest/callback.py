"""Parsing of the permission callback query (360dialog.md §2).

The client's browser arrives with `client=<id>&channels=[a,b]` and optionally
`revoked=[c]`: brackets literal or percent-encoded, no quotes, comma separated, spaces and
empty lists possible. Starlette has already percent-decoded the values; we also accept a
bare comma list, quoted ids, and repeated parameters (merged, order kept, duplicates dropped).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_CHANNELS = 100


class CallbackQueryError(ValueError):
    """The query cannot be read as a permission callback; the message is shown to a person."""


@dataclass(frozen=True)
class PermissionClaim:
    client_id: str
    channels: tuple[str, ...]
    revoked: tuple[str, ...]


def _parse_list(name: str, values: Sequence[str]) -> list[str]:
    found: list[str] = []
    for value in values:
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        elif "[" in text or "]" in text:
            raise CallbackQueryError(f"'{name}' has unbalanced brackets")
        for part in text.split(","):
            item = part.strip().strip("\"'").strip()
            if not item:
                continue
            if not _ID.match(item):
                raise CallbackQueryError(f"'{name}' contains something that is not a channel id")
            if item not in found:
                found.append(item)
    if len(found) > MAX_CHANNELS:
        raise CallbackQueryError(f"'{name}' lists more than {MAX_CHANNELS} channels")
    return found


def parse_permission_query(
    *, client: Sequence[str], channels: Sequence[str], revoked: Sequence[str]
) -> PermissionClaim:
    """Read a permission callback from its (already percent-decoded) query values."""
    client_ids = {value.strip().strip("\"'").strip() for value in client if value.strip()}
    if not client_ids:
        raise CallbackQueryError("the link is missing the 'client' parameter")
    if len(client_ids) > 1:
        raise CallbackQueryError("the link names more than one client")
    client_id = client_ids.pop()
    if not _ID.match(client_id):
        raise CallbackQueryError("'client' is not a client id")
    granted = _parse_list("channels", channels)
    removed = _parse_list("revoked", revoked)
    if not granted and not removed and not channels and not revoked:
        raise CallbackQueryError("the link names no channels")
    return PermissionClaim(client_id=client_id, channels=tuple(granted), revoked=tuple(removed))
