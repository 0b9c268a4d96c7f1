"""Helpers for message tests: contexts from the shared samples."""

from __future__ import annotations

from typing import Any

from receiver.messages import build_context
from tests.routing.support import sample, sample_subject, subject

__all__ = ["context_for", "sample", "subject"]


def context_for(
    name: str, *, status_change: tuple[str | None, str] | None = None, rule: str = "r"
) -> dict[str, Any]:
    return build_context(
        sample_subject(name, status_change=status_change),
        rule=rule,
        correlation_id="corr-1",
    )
