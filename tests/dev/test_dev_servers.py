from __future__ import annotations

import asyncio
import json
import smtplib
import urllib.request

import pytest

from receiver.dev.mailbox import Mailbox
from tests.support.fakes import Sink


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 -- loopback only
        return json.loads(response.read())


async def test_the_sink_lists_what_it_received(sink: Sink) -> None:
    request = urllib.request.Request(  # noqa: S310 -- loopback only
        f"{sink.base_url}/anything",
        data=b'{"a": 1}',
        headers={"Content-Type": "application/json", "Authorization": "Bearer abc"},
        method="POST",
    )
    with await asyncio.to_thread(urllib.request.urlopen, request, timeout=5):
        pass

    listed = await asyncio.to_thread(_get, f"{sink.base_url}/_received")

    assert isinstance(listed, list)
    [entry] = listed
    assert entry["path"] == "/anything"
    assert entry["body"] == {"a": 1}
    assert entry["headers"]["authorization"] == "***"


async def test_the_sink_wait_gives_up_after_its_timeout(sink: Sink) -> None:
    with pytest.raises(TimeoutError):
        await sink.state.wait_for(1, timeout=0.05)


def _send_mail(mailbox: Mailbox, to: str) -> None:
    with smtplib.SMTP(mailbox.host, mailbox.port, timeout=5) as smtp:
        smtp.sendmail("a@localhost", [to], f"Subject: hi\r\nTo: {to}\r\n\r\nhello\r\n")


async def test_the_mailbox_wakes_a_waiter_from_its_own_thread(mailbox: Mailbox) -> None:
    waiting = asyncio.create_task(mailbox.wait_for(1, timeout=5))
    await asyncio.to_thread(_send_mail, mailbox, "b@example.org")

    [email] = await waiting
    assert (email.to, email.subject, email.body.strip()) == (("b@example.org",), "hi", "hello")


async def test_the_mailbox_refuses_when_told_to(mailbox: Mailbox) -> None:
    mailbox.refuse_next(1, code=451)

    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(_send_mail, mailbox, "b@example.org")
    await asyncio.to_thread(_send_mail, mailbox, "b@example.org")

    assert refused.value.smtp_code == 451
    assert len(await mailbox.wait_for(1)) == 1
