"""A web or worker runtime settles the cycle collector once: start-up frozen, young threshold up."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Callable

from receiver import collector
from receiver.settings import Settings
from receiver.wiring import open_runtime

PROBE = """
import gc, json
from receiver.collector import GEN0_THRESHOLD, settle_collector
before = (gc.get_threshold(), gc.get_freeze_count())
settle_collector()
first = (gc.get_threshold(), gc.get_freeze_count())
kept = [[n] for n in range(5_000)]  # made after start-up: stays in the collector's sight
settle_collector()
second = (gc.get_threshold(), gc.get_freeze_count())
print(json.dumps({"before": before, "first": first, "second": second, "gen0": GEN0_THRESHOLD}))
"""


def test_settling_freezes_what_exists_and_raises_the_young_threshold_once() -> None:
    # A fresh interpreter: in this one an earlier test's runtime has settled it already.
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    found = json.loads(done.stdout)
    (threshold, frozen) = found["before"]
    assert frozen == 0 and threshold[0] == 700
    (threshold, frozen) = found["first"]
    assert threshold == [found["gen0"], 10, 10]
    assert frozen > 1_000  # the modules, classes and functions loaded so far
    # The second call changes nothing: what came after start-up is not frozen.
    assert found["second"] == found["first"]


async def test_a_web_runtime_settles_the_collector(
    sqlite_url: str, make_settings: Callable[..., Settings]
) -> None:
    async with open_runtime(make_settings(database_url=sqlite_url), role="web"):
        assert collector._settled
        assert gc.get_threshold()[0] == collector.GEN0_THRESHOLD
        assert gc.get_freeze_count() > 0
