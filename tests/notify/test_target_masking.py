"""A target's path is shown masked wherever a target URL is displayed."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from receiver.notify.apprise import mask, send, validate_target
from receiver.ops.rules import rules_view
from receiver.routing.rules_state import load
from receiver.settings import Settings
from tests.support.fakes import Sink

SECRET_PATH = "hooks/T0kenInThePath9"


@pytest.mark.parametrize(
    "url",
    [
        f"json://127.0.0.1:9/{SECRET_PATH}",
        f"jsons://user:pw@example.com/{SECRET_PATH}?-x=1",
        f"form://example.com/{SECRET_PATH}",
        f"ntfy://example.com/{SECRET_PATH.replace('/', '')}",
    ],
)
def test_mask_hides_every_path_segment_of_a_generic_target(url: str) -> None:
    masked = mask(url)

    assert "T0kenInThePath9" not in masked
    assert "hooks" not in masked
    assert "/****" in masked
    assert mask(masked) == masked or "T0ken" not in mask(masked)


def test_mask_keeps_apprise_abbreviations_of_known_tokens() -> None:
    masked = mask("discord://123456789/abcdefghijklmnop")

    assert masked.startswith("discord://1...9/a...p/")


async def test_a_failed_send_to_a_secret_path_shows_it_nowhere(
    sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sink.state.always_fail(500)

    result = await send(sink.json_url(f"/{SECRET_PATH}"), title="t", body="b", timeout=5)

    assert not result.ok
    assert "/****" in result.target
    # Our records and Apprise's (the sink's own access log is not ours to mask).
    logged = [r.getMessage() for r in caplog.records if r.name.startswith(("apprise", "receiver"))]
    assert logged
    for shown in (result.target, result.error or "", *logged):
        assert "T0kenInThePath9" not in shown


def test_a_target_apprise_cannot_load_is_explained_without_its_path() -> None:
    problem = validate_target(f"json://127.0.0.1:notaport/{SECRET_PATH}")

    assert problem is not None
    assert "T0kenInThePath9" not in problem


def test_the_admin_rules_view_shows_targets_with_masked_paths(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "targets:\n"
        f"  ops: json://127.0.0.1:9/{SECRET_PATH}\n"
        "rules:\n"
        "  - name: everything\n"
        "    match: {event: channel_live}\n"
        "    notify: [ops]\n"
    )
    settings = Settings(rules_path=rules)

    view = rules_view(load(settings, now=datetime.now(UTC)))

    [target] = view["targets"]
    assert target["url"].startswith("json://127.0.0.1:9/****/****")
    assert "T0kenInThePath9" not in str(view)
