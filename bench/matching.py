"""Part 4b: rule-matching cost, by running the matching benchmark (`bench/bench_matching.py`)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from bench.processes import ROOT


def measure() -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_matching.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    sizes = []
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0].isdigit():
            sizes.append(
                {
                    "rules": int(parts[0]),
                    "median_us_per_event": float(parts[1]),
                    "p95_us_per_event": float(parts[2]),
                    "matches_per_50_events": int(parts[3]),
                }
            )
    return {"sizes": sizes, "output": out.stdout}
