#!/usr/bin/env bash
# Run the fault-injection suite (tests/faults) and collect its figures.
#
#   scripts/faults.sh                      # the whole suite, figures in $TMPDIR/hub-faults-results.jsonl
#   scripts/faults.sh -k redis             # one test (any pytest arguments pass through)
#   FAULT_REDIS_OUTAGE_SECONDS=30 scripts/faults.sh -k redis
#
# Each test starts its own PostgreSQL (initdb/pg_ctl from /usr/lib/postgresql/15/bin, or
# FAULT_PG_BIN) and its own redis-server on free loopback ports; the machine's shared
# servers on 5432/6379 are never touched. See docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export FAULT_RESULTS="${FAULT_RESULTS:-${TMPDIR:-/tmp}/hub-faults-results.jsonl}"
: > "$FAULT_RESULTS"
status=0
uv run pytest -m faults -p no:cacheprovider -rA "$@" || status=$?
echo "figures: $FAULT_RESULTS"
exit "$status"
