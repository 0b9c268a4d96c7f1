"""Run the hub-receiver benchmarks, before and after, and write what they measured.

    uv run python -m bench.run                    # everything, baseline and working tree
    uv run python -m bench.run --quick            # shorter runs (a smoke test)
    uv run python -m bench.run --part events --part idle --baseline none

Parts: ingest (SQLite in-process and PostgreSQL + Redis, with the bare and naive references,
WEB_CONCURRENCY 1 and 2), growth (ingest p99 empty vs with 1M stored events; rule
matching with 10/100/1,000 rules), e2e (POST -> sink / mailbox at a steady rate), fanout
(deliveries per second of one worker), events (events per second of one worker, end to
end), per_event (statements and transactions per delivered event), idle (transactions per
second of an idle web + worker), sweep (a quiet reconciliation pass: CPU and writes),
ceilings (what arq, Apprise, httpx and SQLAlchemy alone cost per delivery and per event:
the best one worker could reach if our own code cost nothing).
Memory is sampled in every part that runs a server. Each part runs against the baseline
commit (`--baseline`, an export of it) and then against the working tree, so both see the
same machine; the summary puts the figures side by side with their targets.
Writes bench/out/<timestamp>.json (and bench/out/latest.json).
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

from bench import baseline, databases, ingest, worker_events
from bench.loadgen import wrk_available, wrk_version
from bench.parts import PARTS, Context, run_part
from bench.processes import ROOT, Code
from bench.verdicts import side_by_side

OUT = ROOT / "bench" / "out"


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


def _print_ingest(ingest_result: dict[str, Any]) -> None:
    print(f"{'server':<34}{'req/s':>9}{'p50':>8}{'p99':>8}{'max':>8}{'errors':>8}{'RSS MB':>8}")
    rows: list[tuple[str, dict[str, Any]]] = [
        (f"bare starlette {k}", v) for k, v in ingest_result["bare"].items()
    ]
    for backend in ("sqlite", "postgresql"):
        rows += [(f"{backend} {k}", v) for k, v in ingest_result[backend].items()]
    for name, run in rows:
        lat = run["latency_ms"]
        errors = sum(run["errors"].values())
        rss = run["memory"]["load_peak_largest_mb"]
        print(
            f"{name:<34}{run['rps']:>9.0f}{lat['p50']:>8}{lat['p99']:>8}{lat['max']:>8}"
            f"{errors:>8}{rss:>8}"
        )


def print_summary(report: dict[str, Any]) -> None:
    runs: dict[str, dict[str, Any]] = report["runs"]
    for label, parts in runs.items():
        if "ingest" in parts and "error" not in parts["ingest"]:
            print(f"\nIngest, {label}, 64 connections (req/s, ms to acknowledge)")
            _print_ingest(parts["ingest"])
        matching = (parts.get("growth") or {}).get("matching")
        if matching:
            print(f"\nRule matching, {label} (bench/bench_matching.py)")
            for size in matching["sizes"]:
                print(
                    f"  {size['rules']:>5} rules: median {size['median_us_per_event']:.1f} "
                    f"µs/event, p95 {size['p95_us_per_event']:.1f}"
                )
        for part in ("e2e", "fanout", "events"):
            if part in parts:
                summary = parts[part].get("summary", parts[part])
                print(f"\n{part}, {label}: {json.dumps(summary)[:600]}")
    after = runs["after"]
    before = runs.get("before")
    table = side_by_side(after, before)
    if "events" in after:
        print(f"\n{worker_events.SETTINGS_NOTE}")
    heads = ("what", "before", "after", "target", "met")
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(heads)]
    codes = report["codes"]
    print(f"\nbefore: {codes.get('before', {}).get('name', '(not run)')}; after: working tree")
    print(" | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in table:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--part", action="append", choices=PARTS, help="run only this part")
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument(
        "--baseline",
        default=baseline.DEFAULT_BASELINE,
        help="commit to compare with (default: before issue 15's work); 'none' for no baseline",
    )
    parser.add_argument("--seconds", type=float, help="length of each measured load run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", default="1,2", help="WEB_CONCURRENCY values for ingest")
    parser.add_argument("--seed-rows", type=int, help="stored events for growth (1,000,000)")
    parser.add_argument("--e2e-rate", type=float, default=200.0, help="events/s for e2e")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the receiver")
    args = parser.parse_args(argv)
    parts = args.part or list(PARTS)
    if {"ingest", "growth"} & set(parts) and not wrk_available():
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    seconds = args.seconds or (4.0 if args.quick else 12.0)
    OUT.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "machine": machine(),
        "codes": {},
        "runs": {},
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        work = Path(tmp)
        log_dir = OUT / "logs"
        log_dir.mkdir(exist_ok=True)
        codes: dict[str, Code] = {}
        if args.baseline.lower() != "none":
            codes["before"] = baseline.export(args.baseline, work)
        codes["after"] = Code(name="working tree", root=ROOT)
        report["codes"] = {
            label: {"name": code.name, "root": str(code.root)} for label, code in codes.items()
        }
        report["runs"] = {label: {} for label in codes}
        ctx = Context(
            work=work,
            log_dir=log_dir,
            plan=ingest.Plan(
                seconds=seconds,
                warmup=1.0 if args.quick else 3.0,
                connections=args.connections,
                log_dir=log_dir,
                log_level=args.log_level,
            ),
            quick=args.quick,
            workers=[int(w) for w in args.workers.split(",")],
            seed_rows=args.seed_rows or (100_000 if args.quick else 1_000_000),
            e2e_rate=args.e2e_rate,
            log_level=args.log_level,
        )
        # Baseline, then working tree, part by part: both see the same machine conditions.
        for part in parts:
            for label, code in codes.items():
                print(f"{part}: {label} ({code.name})", flush=True)
                result = run_part(part, ctx, code)
                report["runs"][label][part] = result
                if "error" in result:
                    print(f"  {part} failed: {result['error']}", flush=True)
        if ctx.references:
            report["references"] = ctx.references
    report["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["wall_s"] = round(time.monotonic() - started, 1)
    report["table"] = [
        dict(zip(("what", "before", "after", "target", "met"), row, strict=True))
        for row in side_by_side(report["runs"]["after"], report["runs"].get("before"))
    ]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(report, indent=2, default=str)
    (OUT / f"{stamp}.json").write_text(text)
    (OUT / "latest.json").write_text(text)
    print_summary(report)
    print(f"\nwrote bench/out/{stamp}.json ({report['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
