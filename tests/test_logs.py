"""What the log says once per job or send: our own lines, not arq's and Apprise's repeats."""

from __future__ import annotations

import logging

from tests.hostile.support import json_log_lines, parsed_lines

ARQ_START = "%6.2fs → %s(%s)%s"  # arq.worker's own format strings
ARQ_END = "%6.2fs ← %s ● %s"
ARQ_RETRY = "%6.2fs ↻ %s retrying job in %0.2fs"


def emit_job_lines() -> None:
    arq = logging.getLogger("arq.worker")
    arq.info(ARQ_START, 0.01, "process_event:1", "1", "")
    arq.info(ARQ_END, 0.02, "process_event:1", "")
    arq.info(ARQ_RETRY, 0.03, "deliver:7", 1.0)
    apprise = logging.getLogger("apprise")
    apprise.info("Notifying 1 service(s).")
    apprise.warning("Failed to send JSON POST notification: error=500.")


def test_outside_debug_arq_job_lines_and_apprise_info_go_but_retries_and_failures_stay() -> None:
    with json_log_lines(level="INFO") as buffer:
        emit_job_lines()
        events = [line["event"] for line in parsed_lines(buffer)]
    assert not any("→" in e or "←" in e for e in events), events
    assert any("↻ deliver:7 retrying" in e for e in events), events
    assert "Notifying 1 service(s)." not in events
    assert any("Failed to send JSON POST" in e for e in events), events


def test_at_debug_every_job_line_shows() -> None:
    with json_log_lines(level="DEBUG") as buffer:
        emit_job_lines()
        events = [line["event"] for line in parsed_lines(buffer)]
    assert any("→ process_event:1(1)" in e for e in events), events
    assert any("← process_event:1" in e for e in events), events
    assert "Notifying 1 service(s)." in events
