"""The action a number's card asks for, and the seed's "Number registration" column."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from receiver.numbers import action_needed, number_registration
from receiver.partner.facts import ChannelFacts
from receiver.status import ChannelStatus

DONE = ChannelFacts(fb_account_status="verified", obo_status="approved")


@dataclass(frozen=True)
class Watched:
    """What the watchers know of the number: its health, its client's balance."""

    health: str | None = None
    balance_low: bool = False


QUIET = Watched()
LOW = Watched(balance_low=True)
BAD = Watched(health="blocked", balance_low=True)


@pytest.mark.parametrize(
    ("status", "facts", "watched", "expected"),
    [
        # The status comes first: nothing else matters for a number in these states.
        ("banned", ChannelFacts(fb_account_status="pending"), BAD, ("client", "banned")),
        ("restricted", DONE, QUIET, ("client", "request a review")),
        ("pending_deletion", DONE, LOW, ("partner", "refund any unused funds")),
        ("deleted", DONE, QUIET, ("partner", "no longer listed")),
        ("unregistered", DONE, QUIET, ("partner", "support ticket")),
        ("error", DONE, QUIET, ("partner", "rejected display name")),
        ("unknown", DONE, QUIET, ("partner", "a state we do not know")),
        # Then what blocks going live, verification before message on behalf.
        (
            "draft",
            ChannelFacts(fb_account_status="pending", obo_status="pending"),
            QUIET,
            ("client", "Meta business verification"),
        ),
        ("live", ChannelFacts(fb_account_status="rejected"), QUIET, ("client", "verification")),
        ("live", ChannelFacts(obo_status="pending"), QUIET, ("client", "message-on-behalf")),
        ("draft", DONE, QUIET, ("client", "finish the signup")),
        ("sandbox", DONE, QUIET, ("client", "take the number live")),
        # Then what hurts a live number: health before funds.
        ("live", DONE, BAD, ("partner", "number health is blocked")),
        ("live", DONE, Watched(health="limited"), ("partner", "number health is limited")),
        ("live", DONE, Watched(health="key_invalid"), ("partner", "numbers set-key")),
        ("live", DONE, Watched(health="available", balance_low=True), ("client", "balance is low")),
        (None, ChannelFacts(), Watched(health="disconnected"), ("partner", "is disconnected")),
    ],
)
def test_the_most_pressing_action_and_who_must_take_it(
    status: str | None, facts: ChannelFacts, watched: Watched, expected: tuple[str, str]
) -> None:
    action = action_needed(status, facts, health=watched.health, balance_low=watched.balance_low)
    assert action is not None
    who, says = expected
    assert action.who == who
    assert says in action.text


@pytest.mark.parametrize(
    ("status", "facts", "health"),
    [
        ("live", DONE, None),
        ("live", DONE, "available"),
        ("live", DONE, "connected"),
        # Verification and message on behalf count as done in any case, in any of their words.
        ("live", ChannelFacts(fb_account_status="VERIFIED", obo_status="Accepted"), None),
        ("live", ChannelFacts(fb_account_status="approved", obo_status="verified"), None),
        # Nothing reported is nothing to act on.
        ("live", ChannelFacts(), None),
        ("pending_review", DONE, None),
        (None, ChannelFacts(), None),
    ],
)
def test_nothing_is_needed_for_a_number_in_order(
    status: str | None, facts: ChannelFacts, health: str | None
) -> None:
    assert action_needed(status, facts, health=health) is None


def test_the_status_may_be_the_enum_or_its_stored_text() -> None:
    assert action_needed(ChannelStatus.BANNED, DONE) == action_needed("banned", DONE)
    assert number_registration(ChannelStatus.LIVE, ChannelFacts()) == "registered"


@pytest.mark.parametrize(
    ("status", "facts", "registration"),
    [
        ("live", ChannelFacts(), "registered"),
        ("restricted", ChannelFacts(), "registered"),
        ("banned", ChannelFacts(), "registered"),
        # What the status says wins over a snapshot's `status` field.
        ("live", ChannelFacts(status="created"), "registered"),
        ("unregistered", ChannelFacts(account_mode="live"), "not registered"),
        ("draft", ChannelFacts(), "not registered"),
        ("sandbox", ChannelFacts(), "not registered"),
        # Otherwise the channel object tells: `created` is not registered yet ...
        ("pending_review", ChannelFacts(status="created"), "not registered"),
        ("pending_deletion", ChannelFacts(status="created"), "not registered"),
        # ... `ready` (Classic) or a live account mode (Embedded Signup) is.
        ("pending_review", ChannelFacts(status="ready"), "registered"),
        ("pending_deletion", ChannelFacts(account_mode="live"), "registered"),
        ("error", ChannelFacts(status="ready"), "registered"),
        # Nothing that tells.
        ("pending_review", ChannelFacts(status="verified"), "unknown"),
        # Embedded Signup ignores `status` (status.py); a deleted number's snapshot is old.
        ("pending_review", ChannelFacts(status="created", version_hint="embedded"), "unknown"),
        ("pending_review", ChannelFacts(status="ready", version_hint="embedded"), "unknown"),
        ("deleted", ChannelFacts(account_mode="live"), "unknown"),
        ("pending_deletion", ChannelFacts(account_mode="sandbox"), "unknown"),
        ("unknown", ChannelFacts(), "unknown"),
        (None, ChannelFacts(), "unknown"),
    ],
)
def test_number_registration(status: str | None, facts: ChannelFacts, registration: str) -> None:
    assert number_registration(status, facts) == registration
