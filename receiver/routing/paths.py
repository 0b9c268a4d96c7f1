"""Dotted paths into the routing subject: ``channel.setup_info.phone_number``.

A path is compiled once at load into a root index and a tuple of keys, so matching only
walks dictionaries. Missing keys resolve to `MISSING`; JSON null stays None.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

ROOTS: Final = ("event", "channel", "client")
_SEGMENT = re.compile(r"[A-Za-z0-9_\-]+")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@dataclass(frozen=True, slots=True)
class Path:
    """A compiled dotted path; `get` resolves it against (event, channel, client)."""

    text: str
    root: int
    keys: tuple[str, ...]

    def get(
        self,
        event: Mapping[str, object] | None,
        channel: Mapping[str, object] | None,
        client: Mapping[str, object] | None,
    ) -> object:
        node: object = (event, channel, client)[self.root]
        if node is None:
            return MISSING
        for key in self.keys:
            if isinstance(node, Mapping):
                node = node.get(key, MISSING)
                if node is MISSING:
                    return MISSING
            elif isinstance(node, Sequence) and not isinstance(node, str) and key.isdigit():
                index = int(key)
                if index >= len(node):
                    return MISSING
                node = node[index]
            else:
                return MISSING
        return node


def compile_path(text: str) -> Path:
    """Compile `text`; raise ValueError naming what is wrong with it."""
    parts = text.split(".")
    if parts[0] not in ROOTS:
        raise ValueError(
            f"path {text!r} must start with one of: {', '.join(r + '.' for r in ROOTS)}"
        )
    if len(parts) < 2:
        raise ValueError(f"path {text!r} names no field (e.g. {parts[0]}.id)")
    for part in parts[1:]:
        if not _SEGMENT.fullmatch(part):
            raise ValueError(f"path {text!r} has an empty or invalid segment {part!r}")
    return Path(text=text, root=ROOTS.index(parts[0]), keys=tuple(parts[1:]))


def scalar_text(value: object) -> str | None:
    """Return the canonical text of a scalar (for tolerant comparisons), else None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return None
