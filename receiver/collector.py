"""The cycle collector's settings for a long-running process (web, worker), set once it is up.

At CPython's defaults the collector cost the web process 17 % of its CPU under load
(`gc.callbacks` timing, 64 connections on PostgreSQL: 2.0 s of 13.7 s), nearly all of it in
full collections of ~85 ms each. A full collection walks every object the process has
(the modules, SQLAlchemy's and pydantic's machinery, Apprise's plugins), and under load
one came every ~1,700 requests: requests in flight survive the young collections, and
enough of them reach the old generation to trigger the next full one. So, once the
runtime is open:

- what exists then (modules, rules, engine, services: kept for the life of the process) is
  moved out of the collector's sight with `gc.freeze()`, after a collection so no garbage
  is frozen with it; full collections then walk only what came later;
- the young generation's threshold goes from 700 to 7,000 allocations, so a request's
  objects are mostly freed by reference counting before a collection sees them.

Together: the collector ran fewer than ten times in the rest of a 10 s load run, and the
web process's CPU per webhook on PostgreSQL fell 17 % (340 -> 281 µs; on SQLite, where the
web process also runs the jobs, 2 %; in the worker, within noise: bench/RESULTS.md
section 10). The cost: a reference cycle that was alive at start-up and is dropped later
is never reclaimed (a rules reload frees the old set by reference counting: 200 reloads
grew RSS by 2.9 MB, 2.2 MB at the defaults); and cyclic garbage waits for up to 7,000
allocations instead of 700.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 7_000  # CPython's default is 700; the older generations keep theirs (10, 10)

_settled = False


def settle_collector() -> None:
    """Freeze what the process holds now and raise the young threshold; once per process
    (tests open many runtimes in one process: only the first freezes)."""
    global _settled  # noqa: PLW0603 - a once-per-process switch
    if _settled:
        return
    _settled = True
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, middle, old)
