#!/usr/bin/env bash
# Audit trail cost: per-append latency, and `kvdr audit --verify-log` / `kvdr audit` over a trail of
# N events, in a private MinIO. Usage: bash bench/audit-trail.sh [events...]  (default 1000 5000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/lib.sh
bench_prepare
echo "| events | append (each) | kvdr audit --verify-log | kvdr audit (400 days) |"
echo "|---|---|---|---|"
for n in ${@:-1000 5000}; do node bench/audit-trail.mjs "$n"; done
