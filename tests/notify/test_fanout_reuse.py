"""Loaded targets are reused between sends; nothing of one send or target reaches another."""

from __future__ import annotations

import ssl

from receiver.notify import apprise as transport
from tests.support.fakes import Sink


async def test_a_reused_target_never_sends_to_or_with_another_targets_url(sink: Sink) -> None:
    first = sink.json_url("/first", auth="bot:first-secret")
    second = sink.json_url("/second", auth="bot:second-secret")

    for n in range(3):
        for url in (first, second):
            result = await transport.send(url, title="t", body=f"{n}", metadata={"n": str(n)})
            assert result.ok
            other = "second-secret" if url == first else "first-secret"
            assert other not in (result.target or "")

    received = await sink.state.wait_for(6)
    assert [r.path for r in received] == ["/first", "/second"] * 3
    assert transport._load(first, 30.0).plugin is not transport._load(second, 30.0).plugin


async def test_one_sends_metadata_does_not_stay_on_the_reused_target(sink: Sink) -> None:
    url = sink.json_url()
    await transport.send(url, title="t", body="b", metadata={"correlation_id": "c-1"})
    await transport.send(url, title="t", body="b", metadata={"event_id": "7"})

    first, second = await sink.state.wait_for(2)
    assert first.body["correlation_id"] == "c-1"
    assert "correlation_id" not in second.body
    assert second.body["event_id"] == "7"
    assert transport._load(url, 30.0).plugin.payload_extras == {}


def test_emails_share_one_tls_context_per_verify_mode() -> None:
    shared = transport._SHARED_TLS
    token = transport._tls_verify.set(True)
    try:
        verified = shared.create_default_context()
        assert shared.create_default_context() is verified
    finally:
        transport._tls_verify.reset(token)
    token = transport._tls_verify.set(False)
    try:
        unverified = shared.create_default_context()
        assert shared.create_default_context() is unverified
    finally:
        transport._tls_verify.reset(token)

    assert unverified is not verified
    assert verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname
    assert unverified.verify_mode == ssl.CERT_NONE and not unverified.check_hostname
    # Outside one of our sends, Apprise gets a context of its own, as before.
    assert shared.create_default_context() is not verified


def test_apprises_smtp_controller_uses_the_shared_contexts() -> None:
    from apprise.plugins.email import smtp

    stand_in = vars(smtp)["ssl"]
    assert stand_in is transport._SHARED_TLS
    assert stand_in.CERT_NONE == ssl.CERT_NONE
