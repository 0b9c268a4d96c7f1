"""Time rule matching with 10, 100 and 1,000 generated rules.

Run: `uv run python bench/bench_matching.py` (no arguments, no services). For each size it
builds a RuleSet through the real loader (YAML text -> RuleSet), then times
`match_rules` on a mix of subjects (every known event type, some with a status change)
and prints the median and 95th percentile in microseconds per event over many runs.

Rules are spread over the known event types; a tenth are catch-alls (`event: "*"`), a
fifth also match on status, and each carries one or two `where` conditions (equals,
one_of, pattern, present) on event, channel and client fields, so every candidate rule
does real work. This is a pessimistic load: with 1,000 rules about 165 rules are candidates
for each event and about 38 of them match (each match builds a RuleMatch).

Recorded 2026-11-25 on the 2-core dev container (Python 3.11.7), while other test suites
were running (load average ~4, so p95 is noisy; medians over three runs ranged 149-300 µs
at 1,000 rules):

     rules  median µs/event  p95 µs/event  matches/50 events
        10             1.69          1.77                 22
       100            13.52         14.30                200
      1000           148.95        334.41               1906
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import UTC, datetime

from receiver.routing import RoutingSubject, load_rules_texts, match_rules
from receiver.routing.events import KNOWN_EVENTS, KNOWN_STATUSES

RUNS = 200
SUBJECTS = 50


def _rules_yaml(count: int, rng: random.Random) -> str:
    lines = ['targets: {ops: "json://localhost", billing: ""}', "rules:"]
    for n in range(count):
        event = '"*"' if n % 10 == 0 else rng.choice(KNOWN_EVENTS)
        lines.append(f"  - name: rule {n}")
        lines.append("    match:")
        lines.append(f"      event: {event}")
        if n % 5 == 0:
            lines.append(f"      status: {{to: {rng.choice(KNOWN_STATUSES)}}}")
        lines.append("      where:")
        kind = n % 4
        if kind == 0:
            lines.append("        channel.account_mode: live")
        elif kind == 1:
            lines.append(
                "        channel.waba_account.fb_account_status: {one_of: [verified, pending]}"
            )
        elif kind == 2:
            lines.append("        channel.setup_info.phone_number: {pattern: '^\\+49'}")
        else:
            lines.append("        client.contact_info.email: {present: true}")
        if n % 3 == 0:
            lines.append(f"        event.client_id: {{not_one_of: [blocked{n}]}}")
        lines.append("    notify: [ops, client]")
        if n % 7 == 0:
            lines.append("    throttle: 1h")
    return "\n".join(lines) + "\n"


def _subjects(rng: random.Random) -> list[RoutingSubject]:
    now = datetime.now(UTC)
    subjects = []
    for n in range(SUBJECTS):
        event_type = KNOWN_EVENTS[n % len(KNOWN_EVENTS)]
        channel = {
            "id": f"ch{n}",
            "client_id": f"cl{n}",
            "account_mode": rng.choice(["live", "sandbox"]),
            "setup_info": {"phone_number": rng.choice(["+4915112345678", "+3312345678"])},
            "waba_account": {"fb_account_status": rng.choice(["verified", "rejected"])},
        }
        client = {"id": f"cl{n}", "contact_info": {"email": "ops@example.com"}}
        change = (None, rng.choice(KNOWN_STATUSES)) if n % 3 == 0 else None
        event = {"type": event_type, "client_id": f"cl{n}", "channel_id": f"ch{n}"}
        subjects.append(RoutingSubject(event_type, event, channel, client, change, now))
    return subjects


def bench(count: int) -> tuple[float, float, int]:
    rng = random.Random(count)
    ruleset = load_rules_texts([("bench.yaml", _rules_yaml(count, rng).encode())], env={})
    subjects = _subjects(rng)
    fired = sum(len(match_rules(ruleset, s)) for s in subjects)
    samples: list[float] = []
    for _ in range(RUNS):
        start = time.perf_counter()
        for subject in subjects:
            match_rules(ruleset, subject)
        samples.append((time.perf_counter() - start) / len(subjects) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95)], fired


def main() -> int:
    print(f"python {sys.version.split()[0]}, {RUNS} runs x {SUBJECTS} events per size")
    print(f"{'rules':>6} {'median µs/event':>16} {'p95 µs/event':>13} {'matches/50 events':>18}")
    for count in (10, 100, 1000):
        median, p95, fired = bench(count)
        print(f"{count:>6} {median:>16.2f} {p95:>13.2f} {fired:>18}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
