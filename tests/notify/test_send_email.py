from __future__ import annotations

from typing import Any

import apprise
import pytest

from receiver.dev.mailbox import Mailbox
from receiver.notify.apprise import client_email_url, send


async def test_it_emails_the_client_through_the_local_mailbox(mailbox: Mailbox) -> None:
    url = client_email_url(mailbox.apprise_url(sender="hub@localhost"), "client+1@example.com")

    result = await send(url, title="Your number is live", body="It can send messages now.")

    assert result.ok, result.error
    [email] = await mailbox.wait_for(1)
    assert email.to == ("client+1@example.com",)
    assert email.mail_from == "hub@localhost"
    assert email.subject == "Your number is live"
    assert email.body.strip() == "It can send messages now."


async def test_a_mailbox_that_refuses_everything_is_a_failure(mailbox: Mailbox) -> None:
    mailbox.refuse_all(550)

    result = await send(
        client_email_url(mailbox.apprise_url(), "a@example.com"), title="t", body="b"
    )

    assert not result.ok
    assert result.error is not None
    assert mailbox.messages == []


async def test_a_refused_email_is_transient_because_apprise_hides_the_smtp_code(
    mailbox: Mailbox,
) -> None:
    # Apprise 2.3 logs the SMTP reply only at DEBUG, which we never enable.
    mailbox.refuse_next(1, code=451)
    url = client_email_url(mailbox.apprise_url(), "a@example.com")

    first = await send(url, title="t", body="b")
    second = await send(url, title="t", body="b")

    assert (first.ok, first.permanent, second.ok) == (False, False, True)
    assert len(await mailbox.wait_for(1)) == 1


async def test_each_send_builds_its_own_apprise(
    mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Apprise throttles per instance (5.5 s between emails): a shared one would stall.
    # A spy, not a mock: the real constructor still runs.
    built: list[int] = []
    real_init = apprise.Apprise.__init__

    def spy(self: apprise.Apprise, *args: Any, **kwargs: Any) -> None:
        built.append(id(self))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(apprise.Apprise, "__init__", spy)
    url = client_email_url(mailbox.apprise_url(), "a@example.com")

    results = [await send(url, title=f"n{i}", body="b") for i in range(2)]

    assert all(r.ok for r in results)
    assert len(built) == 2
    assert [m.subject for m in await mailbox.wait_for(2)] == ["n0", "n1"]
