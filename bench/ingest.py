"""Part 1 (ingest), part 4 (growth) and part 5 (web memory): closed-loop POST load.

Every measurement starts the server under test as its own process on a fresh database
(fresh Redis db too), warms it up, then runs wrk at the given connection count while a
thread samples the RSS of the server's processes.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import databases, processes
from bench.loadgen import LoadResult, run_wrk

SECRET = "bench-shared-secret"

# Ingest-only rules: every event matches, the target is off, so the in-process runner
# (SQLite) routes each event into one skipped delivery and sends nothing.
INGEST_RULES = """\
targets:
  ops: ""
rules:
  - name: ops hears about everything
    match: {event: "*"}
    notify: [ops]
"""


@dataclass(frozen=True)
class Plan:
    seconds: float
    warmup: float
    connections: int
    log_dir: Path
    log_level: str


def write_rules(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules.yaml").write_text(text)
    return directory


def receiver_env(
    *, database_url: str, redis_url: str | None, workers: int, rules: Path, log_level: str
) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url or "",
        "WEB_CONCURRENCY": str(workers),
        "RULES_PATH": str(rules),
        "WEBHOOK_SHARED_SECRET": SECRET,
        "LOG_LEVEL": log_level,
        "LOG_FORMAT": "json",
        # No Partner API, no sweep noise during a short run.
        "D360_PARTNER_ID": "",
        "SWEEP_INTERVAL": "60s",
    }


def stored_events(database_url: str) -> int:
    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[1]
        with sqlite3.connect(path) as conn:
            count: int = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            return count
    return int(str(databases.pg_scalar(database_url, "SELECT count(*) FROM events")))


def _load(
    server: processes.Server, plan: Plan, tag: str
) -> tuple[LoadResult, dict[str, Any], dict[str, float]]:
    url = server.url + "/webhooks/partner"
    idle = server.memory()
    if plan.warmup > 0:
        run_wrk(
            url, connections=plan.connections, seconds=plan.warmup, tag=tag + "w", secret=SECRET
        )
        time.sleep(0.5)
    with processes.MemoryWatch(server.pid) as watch, processes.CpuShare(server.pid) as cpu:
        result = run_wrk(
            url, connections=plan.connections, seconds=plan.seconds, tag=tag, secret=SECRET
        )
    memory = {
        "idle_largest_mb": idle["largest_mb"],
        "idle_tree_mb": idle["tree_mb"],
        "load_peak_largest_mb": round(watch.peak_largest, 1),
        "load_peak_tree_mb": round(watch.peak_total, 1),
        "processes": len(watch.peak_per_process),
    }
    return result, memory, cpu.result


def measure_reference(
    name: str, factory: str, plan: Plan, *, workers: int, env: dict[str, str]
) -> dict[str, Any]:
    port = processes.free_port()
    args = processes.uvicorn_args(factory, port=port, workers=workers)
    with processes.running(
        f"{name}-w{workers}", args, env=env, port=port, log_dir=plan.log_dir, ready_path="/"
    ) as server:
        result, memory, cpu = _load(server, plan, tag=f"{name}{workers}{time.time_ns()}")
    return {"server": name, "workers": workers, **result.as_json(), "memory": memory, "cpu": cpu}


def measure_receiver(
    name: str,
    plan: Plan,
    *,
    database_url: str,
    redis_url: str | None,
    workers: int,
    rules: Path,
) -> dict[str, Any]:
    if redis_url:
        databases.flush_redis(redis_url)
    before = stored_events(database_url)
    port = processes.free_port()
    env = receiver_env(
        database_url=database_url,
        redis_url=redis_url,
        workers=workers,
        rules=rules,
        log_level=plan.log_level,
    )
    with processes.running(
        f"{name}-w{workers}",
        processes.receiver_args(port=port),
        env=env,
        port=port,
        log_dir=plan.log_dir,
    ) as server:
        result, memory, cpu = _load(server, plan, tag=f"{name}{workers}{time.time_ns()}")
    stored = stored_events(database_url) - before
    return {
        "server": name,
        "workers": workers,
        **result.as_json(),
        "memory": memory,
        "cpu": cpu,
        "events_stored": stored,
    }
