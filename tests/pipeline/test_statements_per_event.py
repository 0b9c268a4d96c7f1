"""What one delivered event costs the database, counted statement by statement.

One webhook, one channel, one rule, one delivery to the sink: from the POST to the sent
delivery, every statement and transaction the app runs (web and jobs share one engine
in-process) is counted by SQLAlchemy's engine events. The deployment shape's count, with
arq and two processes, is `bench/per_event.py`'s; this test keeps the path from growing back.
"""

from __future__ import annotations

import asyncio
import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import greenlet  # type: ignore[import-untyped]
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from receiver.settings import Settings
from tests.pipeline.support import (
    ACME_LIVE,
    WEBHOOK_TOKEN,
    post_authenticated,
    webhook,
)
from tests.support.app import RunningApp, running_app
from tests.support.fakes import Sink

RULES = """\
targets:
  ops: "{url}"
rules:
  - name: ops hear every event
    match: {{event: "*"}}
    notify: [ops]
    title: "{{{{ event.type }}}}"
    body: "{{{{ event.correlation_id }}}}"
"""

# The budget for one delivered event (one channel, one delivery), one event at a time:
# receive (1 statement), claim (1), the step (client read + write, channel read + write,
# delivery, processed mark: 6), record the send (delivery, attempt, target health: 3). Four
# transactions when events come one at a time; under load the receipts and the records
# share group commits (bench/per_event.py's burst window measures that).
MAX_STATEMENTS = 11
MAX_TRANSACTIONS = 4


@dataclass
class Tally:
    statements: list[str] = field(default_factory=list)
    transactions: int = 0


@contextmanager
def counted(engine: AsyncEngine) -> Iterator[Tally]:
    tally = Tally()
    show = bool(os.environ.get("SHOW_STATEMENTS"))

    def on_execute(*args: Any) -> None:
        statement = " ".join(str(args[2]).split())[:110]
        tally.statements.append(statement)
        if show:
            # The statement runs in SQLAlchemy's greenlet: the caller is in its parent's frames.
            parent = greenlet.getcurrent().parent
            frame = parent.gr_frame if parent is not None else None
            where = [
                f"{Path(f.filename).name}:{f.lineno} {f.name}"
                for f in traceback.extract_stack(frame)
                if "/receiver/" in f.filename
            ][-5:]
            print(statement, "<-", " / ".join(where))

    def on_begin(*_args: Any) -> None:
        tally.transactions += 1

    sync = engine.sync_engine
    event.listen(sync, "before_cursor_execute", on_execute)
    event.listen(sync, "begin", on_begin)
    try:
        yield tally
    finally:
        event.remove(sync, "before_cursor_execute", on_execute)
        event.remove(sync, "begin", on_begin)


async def deliver_one(app: RunningApp, sink: Sink, n: int) -> None:
    # Waited for by the sink and the job runner, not by reading the database (it would count).
    await post_authenticated(app, webhook("channel_live", ACME_LIVE))
    await sink.state.wait_for(n)
    await app.drain()


@pytest.fixture
def one_rule(
    pipeline_settings: Callable[..., Settings],
    pg_url: str,
    sink: Sink,
    rules_dir: Callable[[str], Path],
) -> Callable[..., Settings]:
    """PostgreSQL, one rule sending every event to the sink, no timed sweep (it would count)."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": pg_url,
            "rules_path": rules_dir(RULES.format(url=sink.json_url("/ops"))),
            "sweep_interval": 3600.0,
            "webhook_shared_secret": [WEBHOOK_TOKEN],
        }
        return pipeline_settings(**(values | overrides))

    return make


async def test_one_delivered_event_stays_within_its_statement_budget(
    one_rule: Callable[..., Settings], sink: Sink
) -> None:
    # Deployed with Redis, the Partner API limit lives there and costs the database nothing
    # (tests/watch/test_redis_slots.py); this app has no Redis.
    async with running_app(one_rule(partner_api_rate="off")) as app:
        await deliver_one(app, sink, 1)  # first sighting: the channel and client are new
        await app.flush_writer()
        with counted(app.services.engine) as tally:
            await deliver_one(app, sink, 2)
            await app.flush_writer()
    assert len(tally.statements) <= MAX_STATEMENTS, "\n".join(tally.statements)
    assert tally.transactions <= MAX_TRANSACTIONS, "\n".join(tally.statements)


async def test_a_first_attempt_in_flight_is_left_alone_by_the_sweep(
    one_rule: Callable[..., Settings], sink: Sink
) -> None:
    # A row written claimed for its first attempt must not look due to the relay's sweep: a
    # job it queued would wait in the queue under the row's job id, so the retry that the
    # failing attempt then asks for (same id) would be dropped as already queued, and the
    # queued job, run early, would find the row not due and end: the retry waited for the
    # next sweep.
    async with running_app(one_rule(delivery_timeout=30.0)) as app:
        await app.relay.sweep()  # the start-up sweep (takes everything) is behind us
        sink.state.hang(30)
        await post_authenticated(app, webhook("channel_live", ACME_LIVE))
        await app.flush_writer()
        await sink.state.wait_for(1, timeout=10)  # the first attempt is being sent
        assert await app.relay.sweep() == 0
        sink.state.recover()
        await app.drain()


async def test_a_send_in_flight_is_not_queued_again_once_its_hand_over_is_old(
    one_rule: Callable[..., Settings], sink: Sink
) -> None:
    # The same for any send that outlasts REQUEUE_AFTER: the sweep judges a `sending` row by
    # its claim (stale only after SEND_LEASE), not by when it was handed over.
    async with running_app(one_rule(delivery_timeout=30.0, requeue_after=0.2)) as app:
        await app.relay.sweep()
        sink.state.hang(30)
        await post_authenticated(app, webhook("channel_live", ACME_LIVE))
        await app.flush_writer()
        await sink.state.wait_for(1, timeout=10)
        await asyncio.sleep(0.5)  # its hand-over is now older than REQUEUE_AFTER
        assert await app.relay.sweep() == 0
        sink.state.recover()
        await app.drain()
