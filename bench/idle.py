"""What an idle service costs its database, and how fast the first event after idling arrives.

    uv run python -m bench.idle                      # 60 s idle, then one webhook; ~2 min
    uv run python -m bench.idle --idle 30 --rounds 3

The deployment shape on PostgreSQL + Redis: `hub-receiver serve` and `hub-receiver worker`
as processes, with the production timings (no SWEEP_INTERVAL or watcher override), the
Partner API configured (a fake one in this process, with the bench's channels) and a rule
sending every event to an HTTP sink (also in this process). After the start-up passes have
settled, PostgreSQL counts the transactions (`pg_stat_database.xact_commit +
xact_rollback`) of the service's own database over `--idle` seconds with no traffic; the
counter is read from another database, so reading it costs the measured one nothing. Then
one webhook is posted and the time from the POST to the sink receiving its notification is
the first-delivery latency after an idle spell; `--rounds` repeats idle + one webhook (with
`--settle` seconds after each webhook, so its processing is not counted as idle).

The PostgreSQL server and Redis are the machine's (bench/databases.py); the database
(`hub_idle`) and the Redis db (14) are this benchmark's own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import asyncpg
import httpx

from bench import databases, processes
from bench.events import API_KEY, PARTNER_ID, hub_state, webhook_body
from bench.ingest import SECRET, receiver_env, write_rules
from receiver.dev.fake_hub import create_fake_hub_app
from receiver.dev.sink import SinkState, create_sink_app
from receiver.http.loopback import serve_app

DATABASE = os.environ.get("BENCH_IDLE_DATABASE", "hub_idle")
REDIS_URL = os.environ.get("BENCH_IDLE_REDIS_URL", "redis://127.0.0.1:6379/14")
OUT = processes.ROOT / "bench" / "out"

RULES = """\
targets:
  sink: "json://127.0.0.1:{sink}/notify"
rules:
  - name: sink hears every event
    match: {{event: "*"}}
    notify: [sink]
    title: "{{{{ event.type }}}}"
    body: "{{{{ event.correlation_id }}}}"
"""

_COUNT = """
SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1
"""


async def recreate(name: str, *, log_statements: bool = False) -> str:
    """Drop and create database `name` (with PostgreSQL logging its every statement)."""
    conn = await asyncpg.connect(databases.PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
        if log_statements:
            await conn.execute(f"ALTER DATABASE \"{name}\" SET log_statement = 'all'")
    finally:
        await conn.close()
    return databases.pg_url(name)


@dataclass(frozen=True)
class Served:
    database_url: str
    web_url: str
    sink: SinkState


@contextlib.asynccontextmanager
async def served(
    name: str,
    *,
    database: str,
    redis_url: str,
    work: Path,
    log_dir: Path,
    code: processes.Code | None,
    log_statements: bool = False,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[Served]:
    """`serve` + `worker` from `code`'s tree on a fresh database, production timings (but
    `extra_env`), the fake Partner API and a sink hearing every event (RULES); warmed up and
    settled."""
    url = await recreate(database, log_statements=log_statements)
    await asyncio.to_thread(databases.migrate, url, code)
    await asyncio.to_thread(databases.flush_redis, redis_url)
    sink = SinkState()
    async with (
        serve_app(create_fake_hub_app(hub_state(), api_key=API_KEY)) as hub_url,
        serve_app(create_sink_app(sink)) as sink_url,
    ):
        rules = write_rules(work / "rules", RULES.format(sink=sink_url.rsplit(":", 1)[1]))
        env = receiver_env(
            database_url=url, redis_url=redis_url, workers=1, rules=rules, log_level="INFO"
        )
        env.pop("SWEEP_INTERVAL")  # production timings
        env |= {"D360_PARTNER_ID": PARTNER_ID, "D360_API_KEY": API_KEY, "D360_API_BASE": hub_url}
        env |= extra_env or {}
        web_port = processes.free_port()
        web = processes.start(
            f"{name}-web",
            processes.receiver_args(port=web_port),
            env=env,
            port=web_port,
            log_dir=log_dir,
            code=code,
        )
        worker = processes.start(
            f"{name}-worker",
            processes.WORKER_ARGS,
            env=env,
            port=0,
            log_dir=log_dir,
            code=code,
        )
        try:
            await asyncio.to_thread(processes.wait_http, web, path="/healthz")
            await asyncio.to_thread(processes.wait_log, worker, "runtime open")
            # One event first: connections opened, the start-up passes done.
            await first_delivery(web.url, sink, 0)
            await settled(url)
            yield Served(database_url=url, web_url=web.url, sink=sink)
        finally:
            processes.stop(web)
            processes.stop(worker)


async def transactions(name: str) -> int:
    """The database's transaction count, read from the admin database (a fresh snapshot)."""
    conn = await asyncpg.connect(databases.PG_ADMIN_DSN)
    try:
        return int(await conn.fetchval(_COUNT, name))
    finally:
        await conn.close()


async def counted_idle(name: str, seconds: float) -> dict[str, float]:
    # Statistics reach pg_stat_database when a backend goes idle (at most ~1 s late), so a
    # wait before each read lets the counter catch up with what happened until then.
    before = await transactions(name)
    await asyncio.sleep(seconds)
    after = await transactions(name)
    return {
        "seconds": seconds,
        "transactions": after - before,
        "per_second": round((after - before) / seconds, 3),
    }


async def settled(url: str, *, timeout: float = 300.0) -> None:
    """Wait until every stored event is processed (the start-up reconcile pass's included)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    deadline = time.monotonic() + timeout
    try:
        while await conn.fetchval("SELECT count(*) FROM events WHERE state = 'received'"):
            if time.monotonic() > deadline:
                raise TimeoutError("events still unprocessed")
            await asyncio.sleep(1.0)
    finally:
        await conn.close()


async def first_delivery(web_url: str, sink: SinkState, seq: int) -> float:
    """POST one unique event; seconds from the POST until the sink has its notification."""
    _event_type, body = webhook_body(seq, random.Random(seq), tag=f"idle{time.time_ns()}")
    seen = len(sink.received)
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=10.0) as client:
        response = await client.post(
            web_url + "/webhooks/partner",
            content=body,
            headers={"content-type": "application/json", "x-webhook-token": SECRET},
        )
    response.raise_for_status()
    while len(sink.received) == seen:
        if time.monotonic() - started > 120:
            raise TimeoutError("no notification within 120 s")
        await asyncio.sleep(0.002)
    return time.monotonic() - started


async def measure(
    work: Path,
    *,
    idle: float,
    settle: float,
    rounds: int,
    code: processes.Code | None = None,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """Idle `rounds` times for `idle` seconds; the service runs from `code`'s tree."""
    log_dir = log_dir or work
    report: dict[str, Any] = {"rounds": [], "logs": str(log_dir)}
    async with served(
        "idle", database=DATABASE, redis_url=REDIS_URL, work=work, log_dir=log_dir, code=code
    ) as service:
        await asyncio.sleep(settle)
        for n in range(1, rounds + 1):
            counted = await counted_idle(DATABASE, idle)
            counted["first_delivery_s"] = round(
                await first_delivery(service.web_url, service.sink, n), 3
            )
            await asyncio.sleep(settle)  # the event's own work stays out of the count
            report["rounds"].append(counted)
            print(json.dumps(counted), flush=True)
    total = sum(r["transactions"] for r in report["rounds"])
    seconds = sum(r["seconds"] for r in report["rounds"])
    report["summary"] = {
        "transactions_per_second": round(total / seconds, 3),
        "first_delivery_s": [r["first_delivery_s"] for r in report["rounds"]],
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds without traffic")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds after warm-up")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keep-logs", type=Path, help="copy the processes' logs here")
    args = parser.parse_args()
    with TemporaryDirectory() as tmp:
        report = asyncio.run(
            measure(Path(tmp), idle=args.idle, settle=args.settle, rounds=args.rounds)
        )
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in Path(tmp).glob("*.log"):
                (args.keep_logs / log.name).write_bytes(log.read_bytes())
    print(json.dumps(report["summary"]), flush=True)
    OUT.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (OUT / f"idle-{stamp}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
