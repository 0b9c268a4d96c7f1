"""Part 2 (end to end), part 3 (fan-out) and the worker half of part 5 (memory).

Both run the real deployment shape on PostgreSQL + Redis: `hub-receiver serve` and
`hub-receiver worker` as processes, the fake Partner API, an HTTP sink (Apprise `json://`)
and an SMTP mailbox in a third process (`bench/upstreams.py`).

End to end: an open-loop sender posts unique events at a steady rate; every event matches
a rule sending to the sink, one in ten (`channel_live`) also emails the client. Apprise's
json payload carries the event's correlation id (delivery metadata), the email body has it
from the rule's inline template, so each arrival is matched to the moment its POST began.

Fan-out: N deliveries to the sink are stored and enqueued while no worker runs; then one
worker starts, and the rate is N over the time between the first and the last arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import databases, processes
from bench.events import API_KEY, PARTNER_ID, webhook_body
from bench.ingest import SECRET, receiver_env, write_rules
from receiver.jobs.arq_queue import ArqQueue
from receiver.queue import JobRequest

# Every event to the sink, one delivery each (the events part uses this alone).
SINK_RULES = """\
targets:
  sink: "json://127.0.0.1:{sink}/notify"
rules:
  - name: sink hears every event
    match: {{event: "*"}}
    notify: [sink]
    title: "{{{{ event.type }}}}"
    body: "{{{{ event.correlation_id }}}} {{{{ event.type }}}} {{{{ facts.phone_number }}}}"
"""
RULES = (
    SINK_RULES
    + """\
  - name: client hears their number is live
    match: {{event: channel_live}}
    notify: [client]
    title: "Your number is live"
    body: "ref {{{{ event.correlation_id }}}}: {{{{ facts.phone_number }}}} is live."
"""
)
_CORRELATION = re.compile(r"\b([0-9a-f]{16})\b")


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {
        "count": len(ordered),
        "p50": round(statistics.median(ordered), 1),
        "p90": at(0.90),
        "p99": at(0.99),
        "max": round(ordered[-1], 1),
    }


@contextlib.contextmanager
def upstreams(log_dir: Path, results: Path) -> Iterator[dict[str, int]]:
    """Run bench/upstreams.py; yield its ports; on exit, stop it so it writes `results`."""
    with (log_dir / "upstreams.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.upstreams", str(results)],
            cwd=processes.ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"upstreams did not start; see {log_dir / 'upstreams.log'}")
        yield json.loads(line)
    finally:
        process.terminate()
        process.wait(30)


def pipeline_env(url: str, ports: dict[str, int], rules: Path, log_level: str) -> dict[str, str]:
    env = receiver_env(
        database_url=url,
        redis_url=databases.REDIS_URL,
        workers=1,
        rules=rules,
        log_level=log_level,
    )
    env.update(
        {
            "D360_PARTNER_ID": PARTNER_ID,
            "D360_API_KEY": API_KEY,
            "D360_API_BASE": f"http://127.0.0.1:{ports['hub']}",
            "CLIENT_EMAIL_URL": f"mailto://127.0.0.1:{ports['mail']}?from=hub@bench.example",
            "SWEEP_INTERVAL": "15s",
        }
    )
    return env


async def _send_steady(url: str, *, rate: float, seconds: float) -> dict[str, Any]:
    """POST unique events at `rate`/s (open loop); map correlation id -> (sent at, type)."""
    rng = random.Random(7)
    tag = f"e2e{time.time_ns()}"
    sent: dict[str, tuple[float, str]] = {}
    ack_ms: list[float] = []
    failures: list[str] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:

        async def post(seq: int) -> None:
            event_type, body = webhook_body(seq, rng, tag=tag)
            started = time.time()
            try:
                response = await client.post(
                    url,
                    content=body,
                    headers={"content-type": "application/json", "x-webhook-token": SECRET},
                )
            except httpx.HTTPError as exc:
                failures.append(type(exc).__name__)
                return
            ack_ms.append((time.time() - started) * 1000)
            if response.status_code != 200:
                failures.append(str(response.status_code))
                return
            sent[response.json()["correlation_id"]] = (started, event_type)

        tasks = []
        count = int(rate * seconds)
        begin = time.perf_counter()
        for seq in range(count):
            delay = begin + seq / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(seq)))
        await asyncio.gather(*tasks)
        achieved = count / (time.perf_counter() - begin)
    return {
        "sent": sent,
        "ack_ms": _percentiles(ack_ms),
        "failures": failures,
        "achieved_rate": achieved,
    }


async def _stage_breakdown(url: str) -> dict[str, Any]:
    """Where the time went, from the rows: receipt -> processed -> delivery sent."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        rows = await conn.fetch(
            """
            SELECT extract(epoch FROM e.processed_at - e.received_at) * 1000 AS to_processed,
                   extract(epoch FROM d.sent_at - d.created_at) * 1000 AS to_sent,
                   d.target_kind, d.state
            FROM deliveries d JOIN events e ON e.id = d.event_id
            """
        )
    finally:
        await conn.close()
    states: dict[str, int] = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    return {
        "received_to_processed_ms": _percentiles(
            [float(r["to_processed"]) for r in rows if r["to_processed"] is not None]
        ),
        "routed_to_sent_ms": _percentiles(
            [float(r["to_sent"]) for r in rows if r["to_sent"] is not None]
        ),
        "delivery_states": states,
    }


def wait_for(path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not path.exists():
        time.sleep(0.1)


def run_e2e(
    work: Path,
    *,
    log_dir: Path,
    rate: float,
    seconds: float,
    log_level: str = "INFO",
    code: processes.Code | None = None,
) -> dict[str, Any]:
    url = databases.fresh_pg(code)
    databases.flush_redis()
    results_path = work / "e2e-upstreams.json"
    results_path.unlink(missing_ok=True)
    report: dict[str, Any] = {"rate": rate, "seconds": seconds}
    with upstreams(log_dir, results_path) as ports:
        rules = write_rules(work / "rules-e2e", RULES.format(sink=ports["sink"]))
        env = pipeline_env(url, ports, rules, log_level)
        web_port = processes.free_port()
        with (
            processes.running(
                "e2e-web",
                processes.receiver_args(port=web_port),
                env=env,
                port=web_port,
                log_dir=log_dir,
                code=code,
            ) as web,
            processes.running_worker(
                "e2e-worker", env=env, log_dir=log_dir, code=code, settle=2.0
            ) as worker,
        ):
            processes.wait_log(worker, "runtime open")
            idle = {"web_idle_mb": web.memory()["largest_mb"]}
            idle["worker_idle_mb"] = worker.memory()["largest_mb"]
            with (
                processes.MemoryWatch(web.pid) as web_watch,
                processes.MemoryWatch(worker.pid) as worker_watch,
                processes.CpuShare(worker.pid) as worker_cpu,
                processes.CpuShare(web.pid) as web_cpu,
            ):
                sent = asyncio.run(
                    _send_steady(web.url + "/webhooks/partner", rate=rate, seconds=seconds)
                )
                expected_mail = sum(
                    1 for _t, kind in sent["sent"].values() if kind == "channel_live"
                )
                # Drain: wait until the worker's queue is empty and the sink has had them all.
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    depth = asyncio.run(queue_depth())
                    if depth == 0:
                        break
                    time.sleep(0.2)
                time.sleep(2.0)
            report["memory"] = {
                **idle,
                "web_peak_mb": round(web_watch.peak_largest, 1),
                "worker_peak_mb": round(worker_watch.peak_largest, 1),
            }
            report["cpu"] = {"web": web_cpu.result, "worker": worker_cpu.result}
    wait_for(results_path, 30)
    received = json.loads(results_path.read_text())
    sink_ms: list[float] = []
    unmatched = 0
    for item in received["sink"]:
        body = item["body"] if isinstance(item["body"], dict) else {}
        origin = sent["sent"].get(str(body.get("correlation_id")))
        if origin is None:
            unmatched += 1
            continue
        sink_ms.append((item["at"] - origin[0]) * 1000)
    mail_ms: list[float] = []
    for item in received["mail"]:
        match = _CORRELATION.search(item["body"])
        origin = sent["sent"].get(match.group(1)) if match else None
        if origin is None:
            unmatched += 1
            continue
        mail_ms.append((item["at"] - origin[0]) * 1000)
    report.update(
        {
            "achieved_rate": round(sent["achieved_rate"], 1),
            "accepted": len(sent["sent"]),
            "post_failures": sent["failures"][:20],
            "ack_ms": sent["ack_ms"],
            "sink": {
                "expected": len(sent["sent"]),
                "arrived": len(sink_ms),
                "latency_ms": _percentiles(sink_ms),
            },
            "mail": {
                "expected": expected_mail,
                "arrived": len(mail_ms),
                "latency_ms": _percentiles(mail_ms),
            },
            "unmatched_arrivals": unmatched,
            "partner_api_requests": received["hub_requests"],
            "stages": asyncio.run(_stage_breakdown(url)),
        }
    )
    report["summary"] = {
        "sink": report["sink"],
        "mail": report["mail"],
        "ack_ms": report["ack_ms"],
        "memory": report["memory"],
    }
    return report


async def queue_depth() -> int:
    queue = ArqQueue(databases.REDIS_URL)
    try:
        return await queue.depth() or 0
    finally:
        await queue.close()


async def _store_deliveries(url: str, count: int) -> list[int]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    now = datetime.now(UTC)
    try:
        event_id = await conn.fetchval(
            """
            INSERT INTO events (dedup_key, correlation_id, source, event_type, known,
                                channel_id, client_id, received_at, raw_body, headers,
                                verification, parsed, state, processed_at, attempts, enrichment)
            VALUES ('fanout', 'fa00fa00fa00fa00', 'webhook', 'channel_live', true, 'E00000CH',
                    'E000CL', $1, '{}', '{}'::jsonb, 'shared_secret', '{}'::jsonb,
                    'processed', $1, 1, 'enriched')
            RETURNING id
            """,
            now,
        )
        ids: list[int] = []
        for n in range(count):
            ids.append(
                await conn.fetchval(
                    """
                    INSERT INTO deliveries (event_id, rule_name, target_name, target_kind,
                        replay_round, state, attempts, title, body, created_at, updated_at,
                        enqueued_at, forced)
                    VALUES ($1, $2, 'sink', 'json', 0, 'pending', 0, 'fan-out', $3, $4, $4,
                            $4, false)
                    RETURNING id
                    """,
                    event_id,
                    f"fanout rule {n}",
                    f"delivery {n} of the fan-out run",
                    now,
                )
            )
        return ids
    finally:
        await conn.close()


async def _enqueue_deliveries(ids: list[int]) -> None:
    queue = ArqQueue(databases.REDIS_URL)
    try:
        await queue.enqueue_many([JobRequest("deliver", i) for i in ids])
    finally:
        await queue.close()


def run_fanout(
    work: Path,
    *,
    log_dir: Path,
    deliveries: int,
    log_level: str = "INFO",
    code: processes.Code | None = None,
) -> dict[str, Any]:
    url = databases.fresh_pg(code)
    databases.flush_redis()
    results_path = work / "fanout-upstreams.json"
    results_path.unlink(missing_ok=True)
    ids = asyncio.run(_store_deliveries(url, deliveries))
    asyncio.run(_enqueue_deliveries(ids))
    report: dict[str, Any] = {"deliveries": deliveries}
    with upstreams(log_dir, results_path) as ports:
        rules = write_rules(work / "rules-fanout", RULES.format(sink=ports["sink"]))
        env = pipeline_env(url, ports, rules, log_level)
        started = time.time()
        with processes.running_worker(
            "fanout-worker", env=env, log_dir=log_dir, code=code
        ) as worker:
            processes.wait_log(worker, "runtime open")
            cpu_before = processes.cpu_seconds(worker.pid)
            with processes.MemoryWatch(worker.pid) as watch, processes.CpuShare(worker.pid) as cpu:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and asyncio.run(queue_depth()) > 0:
                    time.sleep(0.2)
                time.sleep(1.0)
            worker_cpu = processes.cpu_seconds(worker.pid) - cpu_before
            report["worker_peak_mb"] = round(watch.peak_largest, 1)
            report["cpu"] = cpu.result
            # Less sensitive to the shared machine than the rate: the worker's own CPU time
            # (all its threads) per delivery, idle polling after the last one included.
            report["worker_cpu_ms_per_delivery"] = round(1000 * worker_cpu / deliveries, 2)
    wait_for(results_path, 30)
    received = json.loads(results_path.read_text())
    times = sorted(item["at"] for item in received["sink"])
    report["arrived"] = len(times)
    if len(times) >= 2:
        report["first_arrival_after_start_s"] = round(times[0] - started, 2)
        report["deliveries_per_second"] = round((len(times) - 1) / (times[-1] - times[0]), 1)
    states = asyncio.run(_stage_breakdown(url))["delivery_states"]
    report["delivery_states"] = states
    report["summary"] = {
        k: report.get(k)
        for k in (
            "deliveries",
            "arrived",
            "deliveries_per_second",
            "worker_cpu_ms_per_delivery",
            "worker_peak_mb",
            "cpu",
        )
    }
    return report
