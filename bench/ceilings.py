"""The worker's library ceilings: what arq, Apprise, httpx and SQLAlchemy cost with nothing of ours.

Issue 15's worker targets are budgets of CPU per unit on one core: 200 events/s is 5 ms per
event, 500 deliveries/s is 2 ms per delivery. Every event or delivery pays, whatever we
write around them, for parts the design card fixes: an arq job, an Apprise send, a Partner
API request through httpx (one per enriched event), and database work through SQLAlchemy.
This part measures each alone, in a fresh process, against the same loopback fakes as the
pipeline parts, and adds them up into the best rate one worker process could reach if our
own code cost nothing:

- `arq`: a worker draining no-op jobs (`WORKER_MAX_JOBS` 50, our JSON serializer).
- `apprise`: a json:// send to the sink as the library does it (an `Apprise` per send).
- `send`: the same send through `receiver.notify.apprise.send`, this tree's send path.
- `partner`: one channel request through `receiver.partner.client.PartnerClient`.
- `database`: transactions through SQLAlchemy's `AsyncSession` on the production engine
  set-up (`receiver.db.engine`), of one and of six one-row `UPDATE`s, which gives a cost
  per transaction and per statement; an event's database floor is then its 4 transactions
  and 11 statements one at a time (`per_event`), its 2.5 and 9.5 in a burst.

CPU is the measuring process's own (all its threads), as the fanout and events parts count
the worker's; the fakes, PostgreSQL and Redis run in processes of their own.

    uv run python -m bench.run --part ceilings --baseline none
    uv run python -m bench.ceilings measure send --port 8080 --count 3000   # one figure
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from bench import databases
from bench.events import API_KEY, CHANNELS, PARTNER_ID, channel_id
from bench.processes import Code, cpu_seconds

CONCURRENCY = 50  # WORKER_MAX_JOBS's default: what one worker runs at once
# An event's database work (bench/RESULTS.md section 9, `per_event`): one at a time, and
# per event under a burst of 1,000 at the deployed rate.
EVENT_DATABASE = {"one_at_a_time": (4.0, 11.0), "burst": (2.5, 9.5)}
KINDS = ("arq", "apprise", "send", "partner", "database")


async def _clocked(count: int, work: Awaitable[Any]) -> dict[str, float]:
    """Await `work` (`count` units of it): units per second, and this process's CPU per unit."""
    cpu, started = cpu_seconds(os.getpid()), time.perf_counter()
    await work
    wall, used = time.perf_counter() - started, cpu_seconds(os.getpid()) - cpu
    return {
        "count": count,
        "per_s": round(count / wall, 1),
        "cpu_ms": round(1000 * used / count, 3),
    }


async def _timed(count: int, one: Callable[[int], Awaitable[None]]) -> dict[str, float]:
    """Run `one(i)` for `count` values, CONCURRENCY at a time, after a warm-up."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def bounded(i: int) -> None:
        async with gate:
            await one(i)

    await asyncio.gather(*(bounded(i) for i in range(min(200, count))))
    return await _clocked(count, asyncio.gather(*(bounded(i) for i in range(count))))


async def _arq(count: int) -> dict[str, float]:
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    from receiver.jobs.arq_queue import ArqQueue, job_deserializer, job_serializer
    from receiver.queue import JobContext, JobRequest

    async def noop(ctx: JobContext, arg: int) -> None:
        return None

    queue = ArqQueue(databases.REDIS_URL)
    try:
        await queue.redis.flushdb()
        await queue.enqueue_many([JobRequest("noop", i) for i in range(count)])
    finally:
        await queue.close()
    worker = Worker(
        functions=[func(noop, name="noop", keep_result=0)],
        redis_settings=RedisSettings.from_dsn(databases.REDIS_URL),
        max_jobs=CONCURRENCY,
        keep_result=0,
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
        burst=True,
        handle_signals=False,
        poll_delay=0.01,  # as receiver/worker.py
    )
    try:
        found = await _clocked(count, worker.async_run())
    finally:
        await worker.close()
    if worker.jobs_complete != count:
        raise RuntimeError(f"arq ran {worker.jobs_complete} of {count} jobs")
    return found


async def _apprise(port: int, count: int) -> dict[str, float]:
    import apprise

    from receiver.notify.apprise import configure_concurrency

    configure_concurrency(CONCURRENCY)  # Apprise's own pools would cap it at cpu count + 4
    url = f"json://127.0.0.1:{port}/ceiling"

    async def one(i: int) -> None:
        notifier = apprise.Apprise()
        notifier.add(url)
        if not await notifier.async_notify(body=f"delivery {i}", title="ceiling"):
            raise RuntimeError("the sink refused a send")

    return await _timed(count, one)


async def _send(port: int, count: int) -> dict[str, float]:
    from receiver.notify import apprise as transport

    transport.configure_concurrency(CONCURRENCY)
    url = f"json://127.0.0.1:{port}/ceiling"
    # The send path of this tree: older trees take fewer keywords.
    accepted = inspect.signature(transport.send).parameters
    extra: dict[str, Any] = {"metadata": {"event_id": "1"}} if "metadata" in accepted else {}
    if "body_format" in accepted:
        extra["body_format"] = "markdown"

    async def one(i: int) -> None:
        result = await transport.send(url, title="ceiling", body=f"delivery {i}", **extra)
        if not result.ok:
            raise RuntimeError(f"send failed: {result.error}")

    return await _timed(count, one)


async def _partner(port: int, count: int) -> dict[str, float]:
    from receiver.partner.client import PartnerClient

    client = PartnerClient(
        base_url=f"http://127.0.0.1:{port}", partner_id=PARTNER_ID, api_key=API_KEY
    )

    async def one(i: int) -> None:
        # A distinct channel each time where it can be: concurrent asks for the same channel
        # share one request (the client coalesces them), which would flatter the figure.
        if await client.get_channel(channel_id(i % CHANNELS)) is None:
            raise RuntimeError("the fake Partner API lost a channel")

    try:
        return await _timed(count, one)
    finally:
        await client.aclose()


async def _database(count: int) -> dict[str, float]:
    from sqlalchemy import Column, Integer, MetaData, Table, update

    from receiver.db.engine import create_engine, create_sessionmaker

    engine = create_engine(databases.pg_url())
    rows = Table(
        "ceiling_rows", MetaData(), Column("id", Integer, primary_key=True), Column("n", Integer)
    )
    async with engine.begin() as conn:
        await conn.run_sync(rows.metadata.drop_all)
        await conn.run_sync(rows.metadata.create_all)
        await conn.execute(rows.insert(), [{"id": i, "n": 0} for i in range(CONCURRENCY * 6)])
    sessions = create_sessionmaker(engine)
    bump = update(rows).where(rows.c.id == 0).values(n=rows.c.n + 1)

    def transaction(statements: int) -> Callable[[int], Awaitable[None]]:
        async def one(i: int) -> None:
            async with sessions.begin() as session:
                for k in range(statements):
                    key = (i % CONCURRENCY) * 6 + k  # no two transactions touch one row
                    await session.execute(bump.where(rows.c.id == key))

        return one

    try:
        single = await _timed(count, transaction(1))
        six = await _timed(count, transaction(6))
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(rows.metadata.drop_all)
        await engine.dispose()
    statement = (six["cpu_ms"] - single["cpu_ms"]) / 5
    return {
        "count": count,
        "transaction_1_cpu_ms": single["cpu_ms"],
        "transaction_6_cpu_ms": six["cpu_ms"],
        "statement_cpu_ms": round(statement, 3),
        "transaction_cpu_ms": round(single["cpu_ms"] - statement, 3),
    }


def measure(kind: str, *, port: int, count: int) -> dict[str, float]:
    """One figure, in this process (run it in a fresh one: `python -m bench.ceilings`)."""
    runs: dict[str, Callable[[], Coroutine[Any, Any, dict[str, float]]]] = {
        "arq": lambda: _arq(count),
        "apprise": lambda: _apprise(port, count),
        "send": lambda: _send(port, count),
        "partner": lambda: _partner(port, count),
        "database": lambda: _database(count),
    }
    return asyncio.run(runs[kind]())


def floors(found: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The best rates one worker process could reach if our own code cost nothing (pure)."""
    arq, send, partner = found["arq"]["cpu_ms"], found["send"]["cpu_ms"], found["partner"]["cpu_ms"]
    database = found["database"]
    per_delivery = arq + send
    result: dict[str, Any] = {
        "delivery_cpu_ms": round(per_delivery, 2),
        "deliveries_per_s": round(1000 / per_delivery, 1),
    }
    for window, (transactions, statements) in EVENT_DATABASE.items():
        db = (
            transactions * database["transaction_cpu_ms"]
            + statements * database["statement_cpu_ms"]
        )
        per_event = arq + partner + send + db
        result[f"event_{window}"] = {
            "database_cpu_ms": round(db, 2),
            "event_cpu_ms": round(per_event, 2),
            "events_per_s": round(1000 / per_event, 1),
        }
    return result


def run_ceilings(work: Path, *, log_dir: Path, quick: bool, code: Code) -> dict[str, Any]:
    """Each figure in a fresh process running `code`, against one set of loopback fakes."""
    from bench.pipeline import upstreams

    count = 600 if quick else 3000
    databases.flush_redis()
    found: dict[str, dict[str, float]] = {}
    with upstreams(log_dir, work / "ceilings-upstreams.json") as ports:
        for kind in KINDS:
            port = ports["hub"] if kind == "partner" else ports["sink"]
            done = subprocess.run(
                [
                    *(sys.executable, "-m", "bench.ceilings", "measure", kind),
                    *("--port", str(port), "--count", str(count)),
                ],
                cwd=code.root,
                env={**os.environ, **code.env},
                capture_output=True,
                text=True,
                check=False,
            )
            (log_dir / f"ceiling-{kind}.log").write_text(done.stdout + done.stderr)
            if done.returncode != 0:
                tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"ceiling {kind} exited {done.returncode}: {tail[:200]}")
            found[kind] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  {kind}: {found[kind]}", flush=True)
    return {**found, "floors": floors(found)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("measure", help="measure one figure in this process, print JSON")
    one.add_argument("kind", choices=KINDS)
    one.add_argument("--port", type=int, default=0, help="the sink's or the fake hub's port")
    one.add_argument("--count", type=int, default=3000)
    args = parser.parse_args()
    print(json.dumps(measure(args.kind, port=args.port, count=args.count)))


if __name__ == "__main__":
    main()
