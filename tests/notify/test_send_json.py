from __future__ import annotations

import time

import pytest

from receiver.http.loopback import free_port
from receiver.notify.apprise import send
from tests.support.fakes import Sink


async def test_it_delivers_title_and_body_to_a_json_target(sink: Sink) -> None:
    result = await send(sink.json_url(), title="Channel down", body="Number +49 is offline")

    assert result.ok
    assert result.error is None
    [received] = await sink.state.wait_for(1)
    assert received.path == "/hook"
    assert received.body["title"] == "Channel down"
    assert received.body["message"] == "Number +49 is offline"


async def test_it_reports_the_target_in_masked_form(sink: Sink) -> None:
    result = await send(sink.json_url(auth="bot:pa55word"), title="t", body="b")

    assert result.ok
    assert result.target.startswith("json://bot:****@127.0.0.1:")
    assert "pa55word" not in result.target


async def test_it_adds_metadata_to_the_json_payload(sink: Sink) -> None:
    await send(sink.json_url(), title="t", body="b", metadata={"correlation_id": "c-42"})

    [received] = await sink.state.wait_for(1)
    assert received.body["correlation_id"] == "c-42"


async def test_metadata_never_replaces_payload_fields_or_url_extras(sink: Sink) -> None:
    url = sink.json_url(query=":source=rules")
    metadata = {"title": "spoofed", "message": "spoofed", "source": "metadata", "cid": "c-1"}

    await send(url, title="real title", body="real body", metadata=metadata)

    [received] = await sink.state.wait_for(1)
    assert received.body["title"] == "real title"
    assert received.body["message"] == "real body"
    assert received.body["source"] == "rules"
    assert received.body["cid"] == "c-1"


async def test_metadata_does_not_change_the_reported_target(sink: Sink) -> None:
    plain = await send(sink.json_url(), title="t", body="b")
    with_metadata = await send(sink.json_url(), title="t", body="b", metadata={"cid": "c-1"})

    assert plain.target == with_metadata.target


async def test_markdown_bodies_reach_a_json_target_unchanged(sink: Sink) -> None:
    await send(sink.json_url(), title="t", body="*bold* _it_", body_format="markdown")

    [received] = await sink.state.wait_for(1)
    assert received.body["message"] == "*bold* _it_"


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
async def test_a_server_error_or_throttle_is_a_transient_failure(sink: Sink, status: int) -> None:
    sink.state.always_fail(status)

    result = await send(sink.json_url(), title="t", body="b")

    assert not result.ok
    assert not result.permanent
    assert result.error is not None
    assert str(status) in result.error


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
async def test_a_client_error_is_a_permanent_failure(sink: Sink, status: int) -> None:
    sink.state.always_fail(status)

    result = await send(sink.json_url(), title="t", body="b")

    assert not result.ok
    assert result.permanent
    assert result.error is not None
    assert f"error={status}" in result.error


async def test_a_retry_in_the_url_is_ignored_so_one_send_is_one_request(sink: Sink) -> None:
    sink.state.fail_next(5, status=500)

    result = await send(sink.json_url(query="retry=3"), title="t", body="b")

    assert not result.ok
    assert len(sink.state.received) == 1


async def test_a_target_that_recovers_accepts_the_next_send(sink: Sink) -> None:
    sink.state.fail_next(1, status=503)

    first = await send(sink.json_url(), title="t", body="b")
    second = await send(sink.json_url(), title="t", body="b")

    assert (first.ok, second.ok) == (False, True)


async def test_a_hanging_target_fails_transiently_within_the_bound(sink: Sink) -> None:
    sink.state.hang(30)

    started = time.monotonic()
    result = await send(sink.json_url(), title="t", body="b", timeout=0.5)
    elapsed = time.monotonic() - started

    assert not result.ok
    assert not result.permanent
    # Generous: Apprise's own read timeout (4 s) or ours plus grace would both exceed it.
    assert elapsed < 3.0
    await sink.state.wait_for(1)


async def test_an_unreachable_target_is_a_transient_failure() -> None:
    result = await send(f"json://127.0.0.1:{free_port()}/hook", title="t", body="b", timeout=2)

    assert not result.ok
    assert not result.permanent


@pytest.mark.parametrize(
    "url",
    [
        "nosuchservice://token@host",
        "json://",
        "not a url at all",
        "",
        "mailto://",
        "slack://only-one-token",
    ],
)
async def test_a_url_apprise_cannot_load_is_a_permanent_failure(url: str) -> None:
    result = await send(url, title="t", body="b")

    assert not result.ok
    assert result.permanent
    assert result.error is not None
