"""Promise: a failing target never loses or repeats a notification, nor holds up the others.

One rule notifies five targets for every event:
  flaky  JSON sink answering 500 for a while, then 200: retried on the schedule, sent once
  slow   JSON sink that hangs (longer than DELIVERY_TIMEOUT): must not hold up `fast`
  fast   healthy JSON sink: every notification arrives while `slow` hangs
  gone   JSON sink answering 404: the delivery ends `dead`, visible with its error
  mail   SMTP mailbox refusing (451) for a while, then accepting: each email sent once
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from receiver.dev.mailbox import run_mailbox
from tests.faults.harness import (
    LoadReport,
    fault_stack,
    post_all,
    probe_body,
    record_figures,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

SCHEDULE = [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
EVENTS = 10
OUTAGE = 4.0


async def test_failing_targets_are_retried_on_schedule_and_never_block_the_others(
    tmp_path: Path,
) -> None:
    with run_mailbox() as mailbox:
        mail_url = mailbox.apprise_url(sender="hub@example.com") + "&to=ops@example.com"
        env = {
            "DELIVERY_RETRY_SCHEDULE": ",".join(f"{s}s" for s in SCHEDULE),
            "DELIVERY_TIMEOUT": "2s",
            "WORKER_MAX_JOBS": "20",
        }
        async with fault_stack(
            tmp_path,
            sinks=("flaky", "slow", "fast", "gone"),
            extra_targets={"mail": mail_url},
            env=env,
        ) as stack:
            sinks = stack.sinks
            sinks["flaky"].state.always_fail(500)
            sinks["slow"].state.hang(120)
            sinks["gone"].state.always_fail(404)
            mailbox.refuse_all(451)
            await stack.add_web()
            await stack.add_worker()

            prefix = uuid.uuid4().hex[:8]
            items = [(f"{prefix}-{n}", probe_body(f"{prefix}-{n}", n)) for n in range(EVENTS)]
            report = LoadReport()
            loop = asyncio.get_running_loop()
            posted_at = loop.time()
            await post_all(stack.web_urls(), items, report)
            assert len(report.acked) == EVENTS

            # `fast` gets everything while `slow` hangs and `flaky`/`mail` refuse.
            await sinks["fast"].state.wait_for(EVENTS, timeout=30)
            fast_seconds = loop.time() - posted_at
            await asyncio.sleep(max(0.0, OUTAGE - (loop.time() - posted_at)))
            sinks["flaky"].state.recover()
            mailbox.recover()
            await sinks["flaky"].state.wait_for(1, timeout=1)  # it was tried during the outage
            await mailbox.wait_for(EVENTS, timeout=60)
            sinks["slow"].state.recover()
            await stack.wait_deliveries_settled(timeout=90, what="every delivery settled")

            rows = await stack.query(
                "SELECT d.id, d.target_name, d.state, d.attempts, d.last_error, "
                "a.number, a.started_at, a.finished_at, a.outcome "
                "FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id "
                "ORDER BY d.id, a.number"
            )
            deliveries = await stack.deliveries()

        by_target: dict[str, list[dict[str, object]]] = {}
        for row in deliveries:
            by_target.setdefault(row["target_name"], []).append(dict(row))
        states = {
            target: sorted({str(d["state"]) for d in items}) for target, items in by_target.items()
        }
        flaky_ok = sinks["flaky"].ok_receipts()
        fast_ok = sinks["fast"].ok_receipts()
        mails = mailbox.messages
        flaky_attempts = [int(str(d["attempts"])) for d in by_target["flaky"]]
        record_figures(
            "targets_failing",
            events=EVENTS,
            states=states,
            fast_all_received_after_s=round(fast_seconds, 2),
            flaky_attempts=flaky_attempts,
            flaky_requests=len(sinks["flaky"].state.received),
            flaky_delivered=len(flaky_ok),
            flaky_duplicates=sum(n - 1 for n in flaky_ok.values()),
            emails=len(mails),
            gone_errors=sorted({str(d["last_error"])[:80] for d in by_target["gone"]}),
        )

        # fast: everything, once, quickly, although `slow` hung on every request.
        assert len(fast_ok) == EVENTS and set(fast_ok.values()) == {1}, fast_ok
        assert fast_seconds < 15, f"fast target held up: {fast_seconds:.1f}s"
        # flaky: retried, then delivered exactly once per event.
        assert states["flaky"] == ["sent"]
        assert len(flaky_ok) == EVENTS and set(flaky_ok.values()) == {1}, flaky_ok
        assert all(n >= 2 for n in flaky_attempts), flaky_attempts
        # ... on the schedule: the gap before try k+1 is SCHEDULE[k-1] +-20 % (plus the
        # worker's pick-up latency).
        previous: dict[int, object] = {}
        for row in rows:
            if row["target_name"] != "flaky":
                continue
            number = int(row["number"])
            if number > 1:
                gap = row["started_at"] - previous[row["id"]]
                assert isinstance(gap, timedelta)
                expected = SCHEDULE[number - 2]
                assert expected * 0.8 - 0.05 <= gap.total_seconds() <= expected * 1.2 + 2.0, (
                    f"delivery {row['id']} try {number} came {gap.total_seconds():.2f}s after "
                    f"the previous one; schedule says {expected}s +-20%"
                )
            previous[row["id"]] = row["finished_at"]
        # mail: refused, then each email exactly once.
        assert states["mail"] == ["sent"]
        assert len(mails) == EVENTS, f"{len(mails)} emails for {EVENTS} events"
        # gone: dead after one try, the error visible on the row.
        assert states["gone"] == ["dead"]
        assert all(int(str(d["attempts"])) == 1 for d in by_target["gone"])
        assert all("404" in str(d["last_error"]) for d in by_target["gone"]), by_target["gone"]
        # slow: sent once it answered again (a timed-out try may have arrived: not counted).
        assert states["slow"] == ["sent"]
