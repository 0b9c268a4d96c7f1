"""Every value the seed (and 360dialog.md §4) names, and the shared samples, table-tested."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from receiver.partner.facts import ChannelFacts, channel_facts
from receiver.status import (
    ChannelStatus,
    DerivedStatus,
    derive_status,
    is_newer,
    status_changed,
)
from tests.support.samples import sample_json

TERMINATED = datetime(2026, 4, 1, tzinfo=UTC)


def facts(**fields: Any) -> ChannelFacts:
    return ChannelFacts(**fields)


@pytest.mark.parametrize(
    ("hub_status", "expected"),
    [
        ("live", "live"),
        ("sandbox", "sandbox"),
        ("pending_deletion", "pending_deletion"),
        ("draft", "draft"),
        ("unregistered", "unregistered"),
        ("done", "live"),
        ("pending", "pending_review"),
    ],
)
def test_every_hub_status_maps_to_a_status(hub_status: str, expected: str) -> None:
    derived = derive_status(facts(hub_status=hub_status))

    assert derived == DerivedStatus(status=expected, why=f"hub_status is {hub_status!r}")


def test_an_unknown_hub_status_is_unknown_and_says_why() -> None:
    derived = derive_status(facts(hub_status="frozen", account_mode="live"))

    assert derived.status == ChannelStatus.UNKNOWN
    assert "'frozen'" in derived.why


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("created", "pending_review"),
        ("unverified", "pending_review"),
        ("verified", "pending_review"),
        ("new_name_requested", "pending_review"),
        ("certificate_declined", "error"),
        ("ready", "live"),
        ("error", "error"),
    ],
)
def test_every_classic_signup_status_maps_to_a_status(status: str, expected: str) -> None:
    derived = derive_status(facts(status=status))

    assert derived.status == expected
    assert derived.why.startswith(f"status is {status!r}")


def test_account_mode_live_is_live_and_ignores_status() -> None:
    derived = derive_status(facts(account_mode="live", status="created", app_id="204711"))

    assert derived == DerivedStatus(
        status="live",
        why="account_mode is 'live'; status 'created' is ignored (Embedded Signup)",
    )


# The seed: for version 2 (Embedded Signup) "the decisive field for the channel status is the
# account_mode field ... statuses from the channel.status field can be ignored"; the Classic
# table applies only to version 1. Each row: the channel object -> status, words of the why.
@pytest.mark.parametrize(
    ("raw", "expected", "why"),
    [
        # account_mode makes a channel Embedded Signup: its Classic `status` never decides.
        (
            {"account_mode": "sandbox", "status": "ready", "app_id": "204711"},
            "sandbox",
            "account_mode is 'sandbox' and app_id is '204711': set up, not live; "
            "status 'ready' is ignored (Embedded Signup)",
        ),
        (
            {"account_mode": "sandbox", "status": "ready"},
            "draft",
            "account_mode is 'sandbox' and neither app_id nor terminated_at is set; "
            "status 'ready' is ignored (Embedded Signup)",
        ),
        (
            {"account_mode": "sandbox", "status": "created", "integration": {"app_id": None}},
            "draft",
            "account_mode is 'sandbox' and neither app_id nor terminated_at is set; "
            "status 'created' is ignored (Embedded Signup)",
        ),
        (
            {"account_mode": "sandbox", "status": "error", "app_id": "204711"},
            "sandbox",
            "status 'error' is ignored",
        ),
        (
            {"account_mode": "sandbox", "status": "ready", "terminated_at": "2026-04-01T00:00Z"},
            "pending_deletion",
            "terminated_at is set",
        ),
        ({"account_mode": "sandbox", "hub_status": "live"}, "live", "hub_status is 'live'"),
        (
            {"account_mode": "live", "status": "certificate_declined", "app_id": "204711"},
            "live",
            "account_mode is 'live'; status 'certificate_declined' is ignored",
        ),
        # A version marker saying 2 makes a channel Embedded Signup without account_mode.
        (
            {"signup_version": 2, "status": "ready", "app_id": "204711"},
            "pending_review",
            "app_id is '204711' (not terminated) but nothing says the channel is live; "
            "status 'ready' is ignored (Embedded Signup)",
        ),
        (
            {"version": "v2", "status": "created"},
            "draft",
            "neither app_id nor terminated_at is set; status 'created' is ignored",
        ),
        # Classic: no account_mode, or a marker saying 1 (even beside account_mode).
        ({"status": "ready", "app_id": "204711"}, "live", "status is 'ready' (Classic Signup)"),
        (
            {"signup_version": "1", "account_mode": "sandbox", "status": "ready"},
            "live",
            "status is 'ready' (Classic Signup)",
        ),
        (
            {"version": 1, "account_mode": "live", "status": "created"},
            "pending_review",
            "status is 'created' (Classic Signup)",
        ),
        ({"hub_status": "done", "account_mode": "sandbox", "status": "error"}, "live", "done"),
        # A status that is no Classic value is not called "ignored": it never meant anything.
        (
            {"account_mode": "sandbox", "status": "running", "app_id": "204711"},
            "sandbox",
            "account_mode is 'sandbox' and app_id is '204711': set up, not live",
        ),
    ],
)
def test_embedded_signup_channels_ignore_the_classic_status(
    raw: dict[str, Any], expected: str, why: str
) -> None:
    derived = derive_status(channel_facts(raw))

    assert derived.status == expected, derived
    assert why in derived.why, derived
    if raw.get("status") == "running":
        assert "ignored" not in derived.why


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"account_mode": "sandbox", "status": "ready", "app_id": "1"}, "sandbox"),
        ({"account_mode": "sandbox", "status": "created"}, "draft"),
        ({"version_hint": "embedded", "status": "ready"}, "draft"),
        ({"version_hint": "classic", "account_mode": "sandbox", "status": "ready"}, "live"),
        ({"status": "ready"}, "live"),
    ],
)
def test_hand_built_facts_tell_the_signup_version_the_same_way(
    fields: dict[str, Any], expected: str
) -> None:
    assert derive_status(facts(**fields)).status == expected


def test_account_mode_live_without_any_app_id_field_is_live() -> None:
    assert derive_status(facts(account_mode="live")).status == "live"


def test_account_mode_live_with_an_explicitly_empty_app_id_is_draft() -> None:
    derived = derive_status(facts(account_mode="live", app_id_reported=True))

    assert derived.status == "draft"
    assert "app_id is empty" in derived.why


@pytest.mark.parametrize(
    "raw",
    [
        {"app_id": "204711"},
        {"integration": {"app_id": "204711"}},
    ],
)
def test_an_app_id_alone_means_past_draft_but_not_live(raw: dict[str, Any]) -> None:
    derived = derive_status(channel_facts(raw))

    assert derived.status == "pending_review"
    assert "app_id is '204711'" in derived.why


def test_terminated_at_means_pending_deletion() -> None:
    derived = derive_status(facts(terminated_at=TERMINATED, app_id="204711", account_mode="live"))

    assert derived.status == "pending_deletion"
    assert derived.why.startswith("terminated_at is set")


def test_neither_app_id_nor_terminated_at_means_draft() -> None:
    assert derive_status(facts()) == DerivedStatus(
        status="draft", why="neither app_id nor terminated_at is set"
    )


@pytest.mark.parametrize(
    ("waba_status", "expected"),
    [
        ("account_banned", "banned"),
        ("account_violation", "restricted"),
        ("account_restriction", "restricted"),
        ("bsp_removed", "pending_deletion"),
    ],
)
def test_waba_restrictions_override_a_live_hub_status(waba_status: str, expected: str) -> None:
    derived = derive_status(facts(waba_status=waba_status, hub_status="live", account_mode="live"))

    assert derived.status == expected
    assert derived.why.startswith(f"waba_account.status is {waba_status!r}")


def test_an_ordinary_waba_status_does_not_decide() -> None:
    assert derive_status(facts(waba_status="approved", hub_status="sandbox")).status == "sandbox"


def test_hub_status_wins_over_terminated_at_and_account_mode() -> None:
    derived = derive_status(
        facts(hub_status="draft", terminated_at=TERMINATED, account_mode="live")
    )

    assert derived.status == "draft"


def test_every_derived_status_is_in_the_documented_set() -> None:
    values = {s.value for s in ChannelStatus}

    assert values == {
        "draft",
        "pending_review",
        "sandbox",
        "live",
        "restricted",
        "banned",
        "pending_deletion",
        "unregistered",
        "error",
        "unknown",
        "deleted",
    }


def sample_channel(name: str) -> dict[str, Any]:
    body: dict[str, Any] = sample_json(name)
    if "partner_channels" in body:
        channel: dict[str, Any] = body["partner_channels"][0]
        return channel
    data: dict[str, Any] = body["data"]
    return data


@pytest.mark.parametrize(
    ("sample", "expected", "why"),
    [
        ("partner_api.channels_filter.response.json", "live", "account_mode is 'live'"),
        ("partner_webhook.channel_live.json", "live", "account_mode is 'live'"),
        (
            "partner_webhook.channel_created.json",
            "draft",
            "account_mode is 'live' but app_id is empty and terminated_at is unset; "
            "status 'created' is ignored (Embedded Signup)",
        ),
        (
            "partner_webhook.account_violation.json",
            "restricted",
            "waba_account.status is 'account_violation': Meta reported a policy violation",
        ),
    ],
)
def test_the_shared_samples_derive_the_expected_status(
    sample: str, expected: str, why: str
) -> None:
    assert derive_status(channel_facts(sample_channel(sample))) == DerivedStatus(expected, why)


NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("current", "candidate", "expected"),
    [
        (None, None, True),
        (None, NOW, True),
        (NOW, None, False),
        (NOW, NOW + timedelta(seconds=1), True),
        (NOW, NOW, True),
        (NOW, NOW - timedelta(seconds=1), False),
        (NOW.replace(tzinfo=None), NOW + timedelta(hours=1), True),
        (NOW + timedelta(hours=1), NOW.replace(tzinfo=None), False),
    ],
)
def test_an_older_snapshot_never_overwrites_a_newer_one(
    current: datetime | None, candidate: datetime | None, expected: bool
) -> None:
    assert is_newer(current=current, candidate=candidate) is expected


@pytest.mark.parametrize(
    ("previous", "new", "expected"),
    [
        (None, "draft", True),
        ("draft", "draft", False),
        ("draft", "live", True),
        ("live", "restricted", True),
    ],
)
def test_status_changed_compares_the_stored_status(
    previous: str | None, new: str, expected: bool
) -> None:
    assert status_changed(previous, DerivedStatus(status=new, why="test")) is expected
