"""Run the hub-receiver benchmarks and write what they measured.

    uv run python -m bench.run            # everything (about 6 minutes)
    uv run python -m bench.run --quick    # shorter runs, 100k seeded events (about 2 minutes)
    uv run python -m bench.run --part ingest --part growth

Parts: ingest (SQLite in-process and PostgreSQL + Redis, with the bare and naive references,
WEB_CONCURRENCY 1 and 2), growth (ingest p99 empty vs with 1M stored events; rule
matching with 10/100/1,000 rules), e2e (POST -> sink / mailbox at a steady rate), fanout
(deliveries per second of one worker). Memory is sampled in every part that runs a server.
Writes bench/out/<timestamp>.json (and bench/out/latest.json) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import databases, ingest, matching
from bench.loadgen import wrk_available, wrk_version
from bench.processes import ROOT

OUT = ROOT / "bench" / "out"
PARTS = ("ingest", "growth", "e2e", "fanout")
TARGETS = {
    "ingest_pg_ratio": 0.35,
    "ingest_pg_p99_ms": 20.0,
    "ingest_sqlite_ratio": 0.20,
    "e2e_p50_ms": 25.0,
    "e2e_p99_ms": 150.0,
    "fanout_per_worker": 500.0,
    "growth_p99_factor": 1.2,
    "matching_1000_us": 1000.0,
    "web_rss_mb": 150.0,
}


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    redis = subprocess.run(
        ["redis-cli", "-u", databases.REDIS_URL, "info", "server"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    redis_version = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in redis.splitlines()
            if ln.startswith("redis_version")
        ),
        "unknown",
    )
    return {
        "nproc": len(__import__("os").sched_getaffinity(0)),
        "cpu": cpu,
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {
            name: version(name)
            for name in (
                "uvicorn",
                "starlette",
                "sqlalchemy",
                "asyncpg",
                "aiosqlite",
                "arq",
                "apprise",
                "uvloop",
                "httptools",
            )
        },
        "postgresql": databases.pg_server_version(),
        "redis": redis_version,
        "wrk": wrk_version(),
    }


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def run_ingest(plan: ingest.Plan, work: Path, workers: list[int]) -> dict[str, Any]:
    rules = ingest.write_rules(work / "rules-ingest", ingest.INGEST_RULES)
    results: dict[str, Any] = {"bare": {}, "sqlite": {}, "postgresql": {}}
    for n in workers:
        results["bare"][f"w{n}"] = ingest.measure_reference(
            "bare", "bench.references:bare_app", plan, workers=n, env={}
        )
        print(f"  bare w{n}: {results['bare'][f'w{n}']['rps']:.0f} req/s", flush=True)
    for backend in ("sqlite", "postgresql"):
        redis_url = databases.REDIS_URL if backend == "postgresql" else None

        def fresh(name: str, backend: str = backend) -> str:
            if backend == "sqlite":
                return databases.fresh_sqlite(work, name)
            return databases.fresh_pg()

        section: dict[str, Any] = results[backend]
        url = fresh("naive")
        section["naive"] = ingest.measure_reference(
            "naive", "bench.references:naive_app", plan, workers=1, env={"DATABASE_URL": url}
        )
        section["naive"]["events_stored"] = ingest.stored_events(url)
        print(f"  {backend} naive: {section['naive']['rps']:.0f} req/s", flush=True)
        for n in workers:
            url = fresh(f"receiver-w{n}")
            run = ingest.measure_receiver(
                f"receiver-{backend}",
                plan,
                database_url=url,
                redis_url=redis_url,
                workers=n,
                rules=rules,
            )
            bare = results["bare"].get(f"w{n}") or results["bare"][f"w{workers[0]}"]
            best_bare = max(b["rps"] for b in results["bare"].values())
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


def run_growth(plan: ingest.Plan, work: Path, seed_rows: int) -> dict[str, Any]:
    rules = ingest.write_rules(work / "rules-ingest", ingest.INGEST_RULES)
    url = databases.fresh_pg()
    empty = ingest.measure_receiver(
        "growth-empty",
        plan,
        database_url=url,
        redis_url=databases.REDIS_URL,
        workers=1,
        rules=rules,
    )
    print(f"  empty: p99 {empty['latency_ms']['p99']} ms", flush=True)
    url = databases.fresh_pg()
    started = time.perf_counter()
    databases.seed_pg_events(url, seed_rows)
    seed_seconds = time.perf_counter() - started
    print(f"  seeded {seed_rows} events in {seed_seconds:.1f}s", flush=True)
    full = ingest.measure_receiver(
        "growth-full", plan, database_url=url, redis_url=databases.REDIS_URL, workers=1, rules=rules
    )
    print(f"  {seed_rows} stored: p99 {full['latency_ms']['p99']} ms", flush=True)
    match = matching.measure()
    return {
        "seeded_events": seed_rows,
        "seed_seconds": round(seed_seconds, 1),
        "empty": empty,
        "full": full,
        "p99_factor": _ratio(full["latency_ms"]["p99"], empty["latency_ms"]["p99"]),
        "rps_factor": _ratio(full["rps"], empty["rps"]),
        "matching": match,
    }


def verdicts(report: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(what, measured, target, met) for every target the run has a figure for."""
    rows: list[tuple[str, str, str, bool]] = []
    parts = report["parts"]
    if "ingest" in parts:
        for backend, key in (("postgresql", "ingest_pg_ratio"), ("sqlite", "ingest_sqlite_ratio")):
            for name, run in parts["ingest"][backend].items():
                if not name.startswith("receiver"):
                    continue
                ratio = run["ratio_to_bare_same_workers"]
                rows.append(
                    (
                        f"ingest {backend} {name}: share of bare",
                        f"{ratio:.0%} ({run['rps']:.0f} req/s)",
                        f">= {TARGETS[key]:.0%}",
                        ratio >= TARGETS[key],
                    )
                )
                if backend == "postgresql":
                    p99 = run["latency_ms"]["p99"]
                    rows.append(
                        (
                            f"ingest {backend} {name}: p99",
                            f"{p99} ms",
                            f"<= {TARGETS['ingest_pg_p99_ms']:g} ms",
                            p99 <= TARGETS["ingest_pg_p99_ms"],
                        )
                    )
                rss = run["memory"]["load_peak_largest_mb"]
                rows.append(
                    (
                        f"web RSS under load ({backend} {name})",
                        f"{rss} MB",
                        f"<= {TARGETS['web_rss_mb']:g} MB",
                        rss <= TARGETS["web_rss_mb"],
                    )
                )
    if "growth" in parts:
        growth = parts["growth"]
        factor = growth["p99_factor"]
        rows.append(
            (
                f"growth: p99 with {growth['seeded_events']:,} events / empty",
                f"{factor:.2f}x ({growth['full']['latency_ms']['p99']} vs "
                f"{growth['empty']['latency_ms']['p99']} ms)",
                f"<= {TARGETS['growth_p99_factor']}x",
                factor <= TARGETS["growth_p99_factor"],
            )
        )
        sizes = {s["rules"]: s for s in growth["matching"]["sizes"]}
        if 1000 in sizes:
            us = sizes[1000]["median_us_per_event"]
            rows.append(
                (
                    "matching: 1,000 rules",
                    f"{us:.0f} µs/event (p95 {sizes[1000]['p95_us_per_event']:.0f})",
                    "<= 1000 µs/event",
                    us <= TARGETS["matching_1000_us"],
                )
            )
    if "e2e" in parts and parts["e2e"].get("sink"):
        e2e = parts["e2e"]
        for channel in ("sink", "mail"):
            lat = e2e[channel]["latency_ms"]
            if not lat:
                continue
            rows.append(
                (
                    f"e2e {channel}: p50",
                    f"{lat['p50']} ms",
                    f"<= {TARGETS['e2e_p50_ms']:g} ms",
                    lat["p50"] <= TARGETS["e2e_p50_ms"],
                )
            )
            rows.append(
                (
                    f"e2e {channel}: p99",
                    f"{lat['p99']} ms",
                    f"<= {TARGETS['e2e_p99_ms']:g} ms",
                    lat["p99"] <= TARGETS["e2e_p99_ms"],
                )
            )
        rss = e2e["memory"]["web_peak_mb"]
        rows.append(
            ("web RSS under load (e2e)", f"{rss} MB", "<= 150 MB", rss <= TARGETS["web_rss_mb"])
        )
    if "fanout" in parts and parts["fanout"].get("deliveries_per_second"):
        rate = parts["fanout"]["deliveries_per_second"]
        rows.append(
            (
                "fan-out: deliveries/s, one worker",
                f"{rate:.0f}/s",
                ">= 500/s",
                rate >= TARGETS["fanout_per_worker"],
            )
        )
    return rows


def print_summary(report: dict[str, Any]) -> None:
    parts = report["parts"]
    if "ingest" in parts:
        print("\nIngest, 64 connections (req/s, ms to acknowledge)")
        print(f"{'server':<34}{'req/s':>9}{'p50':>8}{'p99':>8}{'max':>8}{'errors':>8}{'RSS MB':>8}")
        rows: list[tuple[str, dict[str, Any]]] = [
            (f"bare starlette {k}", v) for k, v in parts["ingest"]["bare"].items()
        ]
        for backend in ("sqlite", "postgresql"):
            rows += [(f"{backend} {k}", v) for k, v in parts["ingest"][backend].items()]
        for name, run in rows:
            lat = run["latency_ms"]
            errors = sum(run["errors"].values())
            rss = run["memory"]["load_peak_largest_mb"]
            print(
                f"{name:<34}{run['rps']:>9.0f}{lat['p50']:>8}{lat['p99']:>8}{lat['max']:>8}"
                f"{errors:>8}{rss:>8}"
            )
    if "growth" in parts:
        growth = parts["growth"]
        print("\nRule matching (bench/bench_matching.py)")
        for size in growth["matching"]["sizes"]:
            print(
                f"  {size['rules']:>5} rules: median {size['median_us_per_event']:.1f} µs/event, "
                f"p95 {size['p95_us_per_event']:.1f}"
            )
    for part in ("e2e", "fanout"):
        if part in parts:
            print(f"\n{part}: {json.dumps(parts[part].get('summary', parts[part]))[:600]}")
    print("\nTargets")
    for what, measured, target, met in verdicts(report):
        print(f"  {'MET ' if met else 'MISS'}  {what:<52} {measured:<34} {target}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--part", action="append", choices=PARTS, help="run only this part")
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument("--seconds", type=float, help="length of each measured load run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", default="1,2", help="WEB_CONCURRENCY values for ingest")
    parser.add_argument("--seed-rows", type=int, help="stored events for growth (1,000,000)")
    parser.add_argument("--e2e-rate", type=float, default=200.0, help="events/s for e2e")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the receiver")
    args = parser.parse_args(argv)
    if not wrk_available():
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    parts = args.part or list(PARTS)
    seconds = args.seconds or (4.0 if args.quick else 12.0)
    OUT.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "machine": machine(),
        "parts": {},
    }
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        work = Path(tmp)
        log_dir = OUT / "logs"
        log_dir.mkdir(exist_ok=True)
        plan = ingest.Plan(
            seconds=seconds,
            warmup=1.0 if args.quick else 3.0,
            connections=args.connections,
            log_dir=log_dir,
            log_level=args.log_level,
        )
        workers = [int(w) for w in args.workers.split(",")]
        if "ingest" in parts:
            print("ingest", flush=True)
            report["parts"]["ingest"] = run_ingest(plan, work, workers)
        if "growth" in parts:
            print("growth", flush=True)
            rows = args.seed_rows or (100_000 if args.quick else 1_000_000)
            report["parts"]["growth"] = run_growth(plan, work, rows)
        if "e2e" in parts or "fanout" in parts:
            from bench import pipeline

            if "e2e" in parts:
                print("e2e", flush=True)
                report["parts"]["e2e"] = pipeline.run_e2e(
                    work, log_dir=log_dir, rate=args.e2e_rate, seconds=8.0 if args.quick else 30.0
                )
            if "fanout" in parts:
                print("fanout", flush=True)
                report["parts"]["fanout"] = pipeline.run_fanout(
                    work, log_dir=log_dir, deliveries=400 if args.quick else 3000
                )
    report["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["targets"] = [
        {"what": w, "measured": m, "target": t, "met": met} for w, m, t, met in verdicts(report)
    ]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(report, indent=2)
    (OUT / f"{stamp}.json").write_text(text)
    (OUT / "latest.json").write_text(text)
    print_summary(report)
    print(f"\nwrote bench/out/{stamp}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
