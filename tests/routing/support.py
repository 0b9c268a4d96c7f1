"""Helpers for routing tests: load rules from text, build subjects."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from receiver.pipeline.subject import preview_subject
from receiver.routing import RoutingSubject, RuleSet, load_rules_texts
from tests.support.samples import SHIPPED_SAMPLES, sample_json

SAMPLES = SHIPPED_SAMPLES  # the shipped webhooks, kept once (tests/support/samples.py)
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def load(
    text: str, *, env: Mapping[str, str] | None = None, file: str = "rules.yaml", **options: Any
) -> RuleSet:
    body = textwrap.dedent(text).encode()
    return load_rules_texts([(file, body)], env=env or {}, **options)


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = sample_json(f"partner_webhook.{name}.json")
    return loaded


def sample_subject(
    name: str, *, status_change: tuple[str | None, str] | None = None
) -> RoutingSubject:
    return preview_subject(json.dumps(sample(name)), now=NOW, status_change=status_change)


def subject(
    event_type: str = "channel_live",
    *,
    event: Mapping[str, object] | None = None,
    channel: Mapping[str, object] | None = None,
    client: Mapping[str, object] | None = None,
    status_change: tuple[str | None, str] | None = None,
) -> RoutingSubject:
    return RoutingSubject(
        event_type=event_type,
        event={"type": event_type, **(event or {})},
        channel=channel,
        client=client,
        status_change=status_change,
        now=NOW,
    )
