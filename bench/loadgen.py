"""Drive load: `wrk` for closed-loop ingest, an asyncio sender for a steady event rate.

Ingest uses wrk (C, epoll) with `post_events.lua`, so the generator costs little CPU; the
bare-Starlette reference in the same run shows how far above our figures it can drive.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).with_name("post_events.lua")


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    errors: dict[str, int]
    latency_ms: dict[str, float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "rps": round(self.rps, 1),
            "errors": self.errors,
            "latency_ms": self.latency_ms,
        }


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else "wrk"


def run_wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    tag: str,
    secret: str,
    threads: int = 2,
) -> LoadResult:
    """POST webhooks to `url` for `seconds` over `connections` keep-alive connections."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
        "--",
        tag,
        secret,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("BENCHJSON "))
    latency = {k: round(v / 1000, 2) for k, v in data["latency_us"].items()}
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=data["errors"],
        latency_ms=latency,
    )
