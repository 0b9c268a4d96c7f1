"""Addresses Apprise cannot use fail once, permanently, with the validator's reason."""

from __future__ import annotations

import pytest

from receiver.dev.mailbox import Mailbox
from receiver.notify.apprise import client_email_url, send, validate_target


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("a[x]@b.com", "invalid characters before the @-sign: '[', ']'"),
        ("üser@example.com", "Internationalized characters before the @-sign"),
        ("ops@localhost", "It should have a period"),
    ],
)
async def test_an_address_apprise_cannot_use_is_a_permanent_named_failure(
    mailbox: Mailbox, address: str, reason: str
) -> None:
    url = client_email_url(mailbox.apprise_url(sender="hub@localhost"), address)

    result = await send(url, title="Your number is live", body="b", timeout=5)

    assert (result.ok, result.permanent) == (False, True)
    assert result.error is not None
    assert result.error.startswith("invalid email address: ")
    assert reason in result.error
    assert mailbox.messages == []


@pytest.mark.parametrize(
    ("address", "delivered_to"),
    [
        ("client@ｅｘａｍｐｌｅ.com", "client@example.com"),  # full-width domain
        ("client@bücher.example", "client@xn--bcher-kva.example"),
    ],
)
async def test_a_valid_address_is_sent_in_the_ascii_form_apprise_can_use(
    mailbox: Mailbox, address: str, delivered_to: str
) -> None:
    url = client_email_url(mailbox.apprise_url(sender="hub@localhost"), address)

    result = await send(url, title="t", body="b", timeout=5)

    assert result.ok, result.error
    [email] = await mailbox.wait_for(1)
    assert email.to == (delivered_to,)


def test_a_team_email_target_with_a_bad_recipient_is_refused_at_rule_load() -> None:
    problem = validate_target("mailtos://hub:pw1234@smtp.example.com/ops@example.com/a[x]@b.com")

    assert problem is not None
    assert "invalid email address" in problem
    assert "pw1234" not in problem


def test_a_named_recipient_is_checked_by_its_address() -> None:
    url = "mailtos://hub:pw@smtp.example.com?from=hub@example.com&to=Ops Team <ops@example.com>"

    assert validate_target(url) is None
