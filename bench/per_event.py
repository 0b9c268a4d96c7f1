"""What one delivered event costs the database: statements and transactions, counted by it.

    uv run python -m bench.per_event                  # 30 events one at a time, then a burst
    uv run python -m bench.per_event --events 50 --burst 2000
    uv run python -m bench.per_event --deployed-only  # without the PARTNER_API_RATE=off burst

The deployment shape on PostgreSQL + Redis, as `bench.idle`: `hub-receiver serve` and
`hub-receiver worker` as processes with production timings, the Partner API (a fake one in
this process) and one rule sending every event to an HTTP sink: each event is one channel and
one delivery. The service's database has `log_statement = 'all'` (set on the database before
the processes connect), so PostgreSQL writes every statement it runs for the service to its
log, prefixed with `user@database`; transactions come from `pg_stat_database`
(`xact_commit + xact_rollback`), read from another database. Everything the service does in
the window counts: its sweeps and watchers included.

Three windows: events posted one at a time, each waiting for its notification (the worst
case: no batch holds more than one row); a burst posted at once (what group commits and
batched claims make of load, at the deployed PARTNER_API_RATE, which spaces the events out to
5 enrichments a second); and the same burst on a service with PARTNER_API_RATE=off. The
statement list of one sequential event is printed, grouped by process, as `bench/RESULTS.md`
quotes it.

The server's log is read from `BENCH_PG_LOG` (default Debian's
`/var/log/postgresql/postgresql-15-main.log`); `log_line_prefix` must name the database
(`%d`, Debian's default does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx

from bench import processes
from bench.events import webhook_body
from bench.idle import Served, served, settled, transactions
from bench.ingest import SECRET
from receiver.dev.sink import SinkState

DATABASE = os.environ.get("BENCH_PER_EVENT_DATABASE", "hub_per_event")
REDIS_URL = os.environ.get("BENCH_PER_EVENT_REDIS_URL", "redis://127.0.0.1:6379/13")
PG_LOG = Path(os.environ.get("BENCH_PG_LOG", "/var/log/postgresql/postgresql-15-main.log"))
OUT = processes.ROOT / "bench" / "out"

# "2026-12-06 01:33:00.123 UTC [1234] postgres@hub_per_event LOG:  execute s1: SELECT ..."
_LINE = re.compile(
    r"\[(?P<pid>\d+)\] \S*@(?P<db>\S+) LOG:  (?:statement|execute [^:]*): (?P<sql>.*)"
)
_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK", "BEGIN ISOLATION LEVEL READ COMMITTED"}


def statements_since(offset: int) -> list[tuple[str, str]]:
    """(backend pid, first line of SQL) of every statement the service ran since `offset`."""
    with PG_LOG.open("rb") as log:
        log.seek(offset)
        text = log.read().decode("utf-8", "replace")
    found = []
    for line in text.splitlines():
        match = _LINE.search(line)
        if match and match["db"] == DATABASE:
            found.append((match["pid"], match["sql"].strip().rstrip(";")))
    return found


def _shape(sql: str) -> str:
    """A statement without its values: what it does, for the per-event list."""
    sql = re.sub(r"\$\d+(::\w+)?", "?", sql)
    sql = re.sub(r"\(\?(, \?)+\)", "(…)", sql)
    words = sql.split()
    head = " ".join(words[:4])
    table = next(
        (words[i + 1] for i, w in enumerate(words[:-1]) if w.upper() in ("FROM", "INTO", "UPDATE")),
        "",
    )
    return f"{head} … [{table}]" if table else head


def summarise(found: list[tuple[str, str]], events: int) -> dict[str, Any]:
    control = [sql for _pid, sql in found if sql.upper() in _CONTROL]
    work = [sql for _pid, sql in found if sql.upper() not in _CONTROL]
    return {
        "events": events,
        "statements": len(work),
        "statements_per_event": round(len(work) / events, 2),
        "begin_commit_rollback": len(control),
        # Each transaction is a BEGIN and a COMMIT (or ROLLBACK) in the log: the service's own,
        # without what pg_stat_database also counts (the bench's polling, late statistics).
        "transactions_per_event_by_log": round(len(control) / 2 / events, 2),
        "kinds": Counter(_shape(sql) for sql in work).most_common(),
    }


async def post(client: httpx.AsyncClient, web_url: str, seq: int, tag: str) -> None:
    _type, body = webhook_body(seq, random.Random(seq), tag=tag)
    response = await client.post(
        web_url + "/webhooks/partner",
        content=body,
        headers={"content-type": "application/json", "x-webhook-token": SECRET},
    )
    response.raise_for_status()


async def wait_received(sink: SinkState, count: int, *, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while len(sink.received) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(sink.received)} of {count} notifications arrived")
        await asyncio.sleep(0.01)


async def window(name: str, url: str, run: Any, events: int, settle: float) -> dict[str, Any]:
    """Count what `run()` (which delivers `events` events) costs, settled both sides."""
    await asyncio.sleep(1.5)  # pg_stat_database catches up when backends go idle
    offset = PG_LOG.stat().st_size  # noqa: ASYNC240 - one stat, before the window
    before = await transactions(name)
    started = time.monotonic()
    await run()
    await settled(url)
    elapsed = time.monotonic() - started
    await asyncio.sleep(settle)
    after = await transactions(name)
    found = statements_since(offset)
    report = summarise(found, events)
    report["log"] = [f"{pid} {sql[:160]}" for pid, sql in found]
    report |= {
        "seconds": round(elapsed + settle, 2),
        "transactions": after - before,
        "transactions_per_event": round((after - before) / events, 2),
    }
    return report


async def measure(
    work: Path,
    *,
    events: int,
    burst: int,
    settle: float,
    code: processes.Code | None = None,
    log_dir: Path | None = None,
    unlimited: bool = True,
) -> dict[str, Any]:
    """The windows, served from `code`: `events` one at a time, then `burst` at once, as
    deployed; then (`unlimited`) the burst again on a service with PARTNER_API_RATE=off."""
    log_dir = log_dir or work
    report: dict[str, Any] = {}
    tag = f"pe{time.time_ns()}"

    def show(window: str) -> None:
        shown = {k: v for k, v in report[window].items() if k not in ("kinds", "log")}
        print(json.dumps({"window": window} | shown))

    def serving(name: str, **extra_env: str) -> contextlib.AbstractAsyncContextManager[Served]:
        return served(
            name,
            database=DATABASE,
            redis_url=REDIS_URL,
            work=work,
            log_dir=log_dir,
            code=code,
            log_statements=True,
            extra_env=extra_env,
        )

    async with serving("per-event") as service, httpx.AsyncClient(timeout=30.0) as client:

        async def one_at_a_time() -> None:
            for n in range(1, events + 1):
                seen = len(service.sink.received)
                await post(client, service.web_url, n, tag)
                await wait_received(service.sink, seen + 1)

        await asyncio.sleep(settle)
        url = service.database_url
        report["sequential"] = await window(DATABASE, url, one_at_a_time, events, settle)
        show("sequential")
        burst_window = bursting(client, service, burst, tag)
        report["burst"] = await window(DATABASE, url, burst_window, burst, settle)
        show("burst")
    if not unlimited:
        return report
    # The deployed PARTNER_API_RATE (5/s, one request per enriched event) spaces a burst's
    # events out, so their claims and records seldom share a batch; without it they do.
    async with (
        serving("per-event-unlimited", PARTNER_API_RATE="off") as service,
        httpx.AsyncClient(timeout=30.0) as client,
    ):
        await asyncio.sleep(settle)
        burst_window = bursting(client, service, burst, tag)
        report["burst_unlimited"] = await window(
            DATABASE, service.database_url, burst_window, burst, settle
        )
        show("burst_unlimited")
    return report


def bursting(
    client: httpx.AsyncClient, service: Served, burst: int, tag: str
) -> Callable[[], Awaitable[None]]:
    """A window's work: `burst` webhooks posted 64 at a time, then every notification."""

    async def run() -> None:
        seen = len(service.sink.received)
        base = 10_000
        gate = asyncio.Semaphore(64)

        async def one(n: int) -> None:
            async with gate:
                await post(client, service.web_url, base + n, tag)

        await asyncio.gather(*(one(n) for n in range(burst)))
        await wait_received(service.sink, seen + burst)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.per_event")
    parser.add_argument("--events", type=int, default=30, help="events posted one at a time")
    parser.add_argument("--burst", type=int, default=1000, help="events posted at once")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after each window")
    parser.add_argument(
        "--deployed-only",
        action="store_true",
        help="skip the second burst (on a service with PARTNER_API_RATE=off)",
    )
    parser.add_argument("--dump", type=Path, help="write the sequential window's statements here")
    args = parser.parse_args()
    if not os.access(PG_LOG, os.R_OK):
        raise SystemExit(f"cannot read the PostgreSQL log {PG_LOG} (set BENCH_PG_LOG)")
    with TemporaryDirectory() as tmp:
        report = asyncio.run(
            measure(
                Path(tmp),
                events=args.events,
                burst=args.burst,
                settle=args.settle,
                unlimited=not args.deployed_only,
            )
        )
    print("statements of the sequential window, per event:")
    for kind, count in report["sequential"]["kinds"]:
        print(f"  {count / args.events:5.2f}  {kind}")
    if args.dump is not None:
        args.dump.write_text("\n".join(report["sequential"]["log"]) + "\n")
    for part in report.values():
        del part["log"]
    OUT.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (OUT / f"per-event-{stamp}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
