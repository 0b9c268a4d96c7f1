"""The parts `bench.run` measures, each run against one code tree (baseline or working tree).

A part takes the tree as a `Code` and passes it down to every process it starts and every
database it migrates; what is shared by both trees (the bare and naive ingest references,
the fakes, the load generators) runs from the working tree once or the same way for both.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import (
    ceilings,
    databases,
    idle,
    ingest,
    matching,
    per_event,
    pipeline,
    processes,
    worker_events,
)
from bench.processes import Code

PARTS = (
    "ingest",
    "growth",
    "e2e",
    "fanout",
    "events",
    "per_event",
    "idle",
    "sweep",
    "ceilings",
)


@dataclass
class Context:
    """What every part is given: the folders, the run's sizes, the shared references."""

    work: Path
    log_dir: Path
    plan: ingest.Plan
    quick: bool
    workers: list[int]
    seed_rows: int
    e2e_rate: float
    log_level: str
    references: dict[str, Any] = field(default_factory=dict)

    def logs(self, code: Code) -> Path:
        """Each tree's server logs in a folder of their own (the names are the same)."""
        folder = self.log_dir / re.sub(r"\W+", "-", code.name)
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def measure_references(ctx: Context) -> dict[str, Any]:
    """The ceilings receiver ingest is judged against: bare Starlette, commit-per-request.

    Measured once per run, from the working tree, and shared by both trees' ratios.
    """
    plan, work = ctx.plan, ctx.work
    refs: dict[str, Any] = {"bare": {}, "naive": {}}
    for n in ctx.workers:
        refs["bare"][f"w{n}"] = ingest.measure_reference(
            "bare", "bench.references:bare_app", plan, workers=n, env={}
        )
        print(f"  bare w{n}: {refs['bare'][f'w{n}']['rps']:.0f} req/s", flush=True)
    for backend in ("sqlite", "postgresql"):
        url = databases.fresh_sqlite(work, "naive") if backend == "sqlite" else databases.fresh_pg()
        naive = ingest.measure_reference(
            "naive", "bench.references:naive_app", plan, workers=1, env={"DATABASE_URL": url}
        )
        naive["events_stored"] = ingest.stored_events(url)
        refs["naive"][backend] = naive
        print(f"  {backend} naive: {naive['rps']:.0f} req/s", flush=True)
    return refs


def run_ingest(ctx: Context, code: Code) -> dict[str, Any]:
    if not ctx.references:
        ctx.references.update(measure_references(ctx))
    refs = ctx.references
    plan = dataclasses.replace(ctx.plan, log_dir=ctx.logs(code))
    rules = ingest.write_rules(ctx.work / "rules-ingest", ingest.INGEST_RULES)
    results: dict[str, Any] = {"bare": refs["bare"], "sqlite": {}, "postgresql": {}}
    for backend in ("sqlite", "postgresql"):
        redis_url = databases.REDIS_URL if backend == "postgresql" else None
        section: dict[str, Any] = results[backend]
        section["naive"] = refs["naive"][backend]
        for n in ctx.workers:
            if backend == "sqlite":
                url = databases.fresh_sqlite(ctx.work, f"receiver-w{n}", code)
            else:
                url = databases.fresh_pg(code)
            # bench/ingest.py takes no code: its servers start from the default set here.
            with processes.using(code):
                run = ingest.measure_receiver(
                    f"receiver-{backend}",
                    plan,
                    database_url=url,
                    redis_url=redis_url,
                    workers=n,
                    rules=rules,
                )
            bare = refs["bare"].get(f"w{n}") or refs["bare"][f"w{ctx.workers[0]}"]
            best_bare = max(b["rps"] for b in refs["bare"].values())
            run["ratio_to_bare_same_workers"] = _ratio(run["rps"], bare["rps"])
            run["ratio_to_best_bare"] = _ratio(run["rps"], best_bare)
            run["ratio_to_naive"] = _ratio(run["rps"], section["naive"]["rps"])
            section[f"receiver_w{n}"] = run
            print(
                f"  {backend} receiver w{n}: {run['rps']:.0f} req/s, "
                f"p99 {run['latency_ms']['p99']} ms",
                flush=True,
            )
    return results


def run_growth(ctx: Context, code: Code) -> dict[str, Any]:
    rules = ingest.write_rules(ctx.work / "rules-ingest", ingest.INGEST_RULES)
    redis = databases.REDIS_URL
    plan = dataclasses.replace(ctx.plan, log_dir=ctx.logs(code))
    with processes.using(code):
        url = databases.fresh_pg(code)
        empty = ingest.measure_receiver(
            "growth-empty", plan, database_url=url, redis_url=redis, workers=1, rules=rules
        )
        print(f"  empty: p99 {empty['latency_ms']['p99']} ms", flush=True)
        url = databases.fresh_pg(code)
        started = time.perf_counter()
        databases.seed_pg_events(url, ctx.seed_rows)
        seed_seconds = time.perf_counter() - started
        print(f"  seeded {ctx.seed_rows} events in {seed_seconds:.1f}s", flush=True)
        full = ingest.measure_receiver(
            "growth-full", plan, database_url=url, redis_url=redis, workers=1, rules=rules
        )
    print(f"  {ctx.seed_rows} stored: p99 {full['latency_ms']['p99']} ms", flush=True)
    report = {
        "seeded_events": ctx.seed_rows,
        "seed_seconds": round(seed_seconds, 1),
        "empty": empty,
        "full": full,
        "p99_factor": _ratio(full["latency_ms"]["p99"], empty["latency_ms"]["p99"]),
        "rps_factor": _ratio(full["rps"], empty["rps"]),
    }
    # bench/matching.py runs bench_matching.py against the working tree only (it takes no
    # code; routing is pure and in-process), so the baseline has no matching figure.
    if code.root == processes.ROOT:
        report["matching"] = matching.measure()
    return report


def run_e2e(ctx: Context, code: Code) -> dict[str, Any]:
    return pipeline.run_e2e(
        ctx.work,
        log_dir=ctx.logs(code),
        rate=ctx.e2e_rate,
        seconds=8.0 if ctx.quick else 30.0,
        log_level=ctx.log_level,
        code=code,
    )


def run_fanout(ctx: Context, code: Code) -> dict[str, Any]:
    return pipeline.run_fanout(
        ctx.work,
        log_dir=ctx.logs(code),
        deliveries=400 if ctx.quick else 3000,
        log_level=ctx.log_level,
        code=code,
    )


def run_events(ctx: Context, code: Code) -> dict[str, Any]:
    report = worker_events.run_events(
        ctx.work,
        log_dir=ctx.logs(code),
        events=300 if ctx.quick else 2000,
        log_level=ctx.log_level,
        code=code,
    )
    # Scale-out: the same events drained by two workers (they share PostgreSQL and Redis,
    # and here also the machine's two cores with both, the fakes and the web process).
    report["two_workers"] = worker_events.run_events(
        ctx.work,
        log_dir=ctx.logs(code),
        events=300 if ctx.quick else 2000,
        log_level=ctx.log_level,
        code=code,
        workers=2,
    )
    return report


def run_per_event(ctx: Context, code: Code) -> dict[str, Any]:
    if not os.access(per_event.PG_LOG, os.R_OK):
        return {"error": f"cannot read the PostgreSQL log {per_event.PG_LOG} (BENCH_PG_LOG)"}
    report = asyncio.run(
        per_event.measure(
            ctx.work,
            events=10 if ctx.quick else 30,
            burst=300 if ctx.quick else 1000,
            settle=3.0,
            code=code,
            log_dir=ctx.logs(code),
        )
    )
    for window in report.values():
        window.pop("log")
    return report


def run_idle(ctx: Context, code: Code) -> dict[str, Any]:
    return asyncio.run(
        idle.measure(
            ctx.work,
            idle=10.0 if ctx.quick else 30.0,
            settle=20.0,  # the start-up passes (production timings) must be over
            rounds=1,
            code=code,
            log_dir=ctx.logs(code),
        )
    )


SWEEP_REDIS_URL = os.environ.get("BENCH_SWEEP_REDIS_URL", "redis://127.0.0.1:6379/9")


def run_sweep(ctx: Context, code: Code) -> dict[str, Any]:
    """bench/reconcile_sweep.py on PostgreSQL, in a process of its own running `code`.

    The sweep runs reconcile() in-process, so the baseline's needs its own interpreter: run
    from the tree (whose bench/ is this harness) it imports that tree's `receiver`, and
    migrates with that tree's migrations. The limit is 1000/s so the quiet pass's CPU, not
    the limit's waits, is what it measures; the enrichment probe asks 8/s to keep it short.
    """
    channels = 2000 if ctx.quick else 10_000
    log = ctx.logs(code) / "reconcile_sweep.log"
    out = log.with_suffix(".json")
    with log.open("wb") as stream:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "bench.reconcile_sweep", "--db", "postgresql"),
                *("--channels", str(channels), "--clients", str(channels // 10)),
                *("--rate", "1000/s", "--enrich-rate", "8", "--out", str(out)),
                # As deployed: REDIS_URL set (where the working tree keeps the shared limit).
                *("--redis", SWEEP_REDIS_URL),
            ],
            cwd=code.root,
            env={**os.environ, **code.env},
            stdout=stream,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:]
        return {"error": f"reconcile_sweep exited {done.returncode}: {' '.join(tail)[:200]}"}
    runs: list[dict[str, Any]] = json.loads(out.read_text())
    return runs[0]


def run_ceilings(ctx: Context, code: Code) -> dict[str, Any]:
    return ceilings.run_ceilings(ctx.work, log_dir=ctx.logs(code), quick=ctx.quick, code=code)


_RUNNERS = {
    "ingest": run_ingest,
    "growth": run_growth,
    "e2e": run_e2e,
    "fanout": run_fanout,
    "events": run_events,
    "per_event": run_per_event,
    "idle": run_idle,
    "sweep": run_sweep,
    "ceilings": run_ceilings,
}


def run_part(name: str, ctx: Context, code: Code) -> dict[str, Any]:
    """One part against one tree; a failure is recorded as the part's result, not raised."""
    started = time.monotonic()
    try:
        result = _RUNNERS[name](ctx, code)
    except Exception as exc:  # noqa: BLE001 - one part failing must not lose the others
        result = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    result["wall_s"] = round(time.monotonic() - started, 1)
    return result
