"""Throttle key resolution (durations: tests/test_durations.py; windows: tests/pipeline)."""

from __future__ import annotations

import pytest

from receiver.routing import RoutingSubject, match_rules

from .support import load, subject

VIOLATION = "account_violation"


@pytest.mark.parametrize(
    ("extra", "subject_", "key"),
    [
        ("", subject(VIOLATION, channel={"id": "CH1", "client_id": "CL1"}), "channel:CH1"),
        ("", subject(VIOLATION, event={"channel_id": "CH2"}), "channel:CH2"),
        ("", subject(VIOLATION, client={"id": "CL1"}), "client:CL1"),
        ("", subject(VIOLATION, channel={"client_id": "CL3"}), "client:CL3"),
        ("", subject(VIOLATION, event={"client_id": "CL4"}), "client:CL4"),
        ("", subject(VIOLATION), "event:account_violation"),
        (", throttle_key: client.id", subject(VIOLATION, client={"id": "CL1"}), "CL1"),
        (", throttle_key: client.id", subject(VIOLATION, channel={"id": "CH1"}), "channel:CH1"),
        (
            ", throttle_key: '{client.id}/{event.violation_type}'",
            subject(VIOLATION, client={"id": "CL1"}, event={"violation_type": "SCAM"}),
            "CL1/SCAM",
        ),
        (
            ", throttle_key: '{client.id}/{event.nothing}'",
            subject(VIOLATION, client={"id": "CL1"}),
            "CL1/-",
        ),
    ],
)
def test_throttle_key_defaults_to_channel_then_client_then_event_type(
    extra: str, subject_: RoutingSubject, key: str
) -> None:
    ruleset = load(f"rules: [{{name: r, match: {{}}, notify: [client], throttle: 1h{extra}}}]")
    (found,) = match_rules(ruleset, subject_)
    assert found.throttle_seconds == 3600
    assert found.throttle_key == key


def test_unthrottled_rules_have_no_key() -> None:
    ruleset = load("rules: [{name: r, match: {}, notify: [client]}]")
    (found,) = match_rules(ruleset, subject(channel={"id": "CH1"}))
    assert found.throttle_seconds is None
    assert found.throttle_key is None
