"""Throttle keys: what a rule's throttle counts per (the windows are `throttles` rows)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from receiver.routing.paths import MISSING, Path, compile_path, scalar_text

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_MISSING_PART = "-"


@dataclass(frozen=True, slots=True)
class ThrottleKey:
    """A compiled `throttle_key`: a single path, or literal text with {path} placeholders."""

    text: str
    parts: tuple[str | Path, ...]
    single: bool

    def resolve(
        self,
        event_type: str,
        event: Mapping[str, object],
        channel: Mapping[str, object] | None,
        client: Mapping[str, object] | None,
    ) -> str:
        if self.single:
            path = self.parts[0]
            assert isinstance(path, Path)
            text = _text(path.get(event, channel, client))
            return text if text else default_throttle_key(event_type, event, channel, client)
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append(_text(part.get(event, channel, client)) or _MISSING_PART)
        return "".join(out)


def _text(value: object) -> str | None:
    if value is MISSING or value is None:
        return None
    text = scalar_text(value)
    return text if text else None


def compile_throttle_key(text: str) -> ThrottleKey:
    """Compile a throttle key; raise ValueError on a bad path or brace."""
    if "{" not in text and "}" not in text:
        return ThrottleKey(text=text, parts=(compile_path(text.strip()),), single=True)
    parts: list[str | Path] = []
    position = 0
    for found in _PLACEHOLDER.finditer(text):
        literal = text[position : found.start()]
        if "{" in literal or "}" in literal:
            raise ValueError(f"unbalanced braces in {text!r}")
        if literal:
            parts.append(literal)
        parts.append(compile_path(found.group(1).strip()))
        position = found.end()
    tail = text[position:]
    if "{" in tail or "}" in tail:
        raise ValueError(f"unbalanced braces in {text!r}")
    if tail:
        parts.append(tail)
    return ThrottleKey(text=text, parts=tuple(parts), single=False)


def default_throttle_key(
    event_type: str,
    event: Mapping[str, object],
    channel: Mapping[str, object] | None,
    client: Mapping[str, object] | None,
) -> str:
    """Return the channel id, else the client id, else the event type (prefixed by kind)."""
    channel_id = _text(channel.get("id") if channel else None) or _text(event.get("channel_id"))
    if channel_id:
        return f"channel:{channel_id}"
    client_id = (
        _text(client.get("id") if client else None)
        or _text(event.get("client_id"))
        or _text(channel.get("client_id") if channel else None)
    )
    if client_id:
        return f"client:{client_id}"
    return f"event:{event_type}"
