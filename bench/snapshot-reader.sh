#!/usr/bin/env bash
# Benchmark: kvdr's etcd snapshot (bbolt) reader on a large real snapshot.
#
#   bash bench/snapshot-reader.sh [BIG_MIB] [KEYS]     (defaults: 1024 MiB of 1 MiB values, 1000000 small keys)
#
# Saves an etcd snapshot with etcdctl, then times `kvdr inspect <file>` (trailer check, then two passes
# over the key bucket, counting every live key) next to `etcdctl snapshot status` (one bbolt pass, no
# per-key work). Reports wall time, MB/s of snapshot read and peak RSS (GNU time).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
big="${1:-1024}"
keys="${2:-1000000}"
# shellcheck source=lib.sh
. bench/lib.sh
bench_prepare
node bench/fill-etcd.mjs "$KVDR_ETCD_ENDPOINT" big/ "$big" 1048576
node bench/fill-etcd.mjs "$KVDR_ETCD_ENDPOINT" pwx/bench/ "$keys" 200
etcdctl --endpoints "$KVDR_ETCD_ENDPOINT" snapshot save "$work/snap.db" >/dev/null 2>&1
size=$(stat -c %s "$work/snap.db")
row() {
  local label="$1"; shift
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/out" 2>"$work/stderr" || { cat "$work/stderr" >&2; return 1; }
  read -r secs kib <"$work/time"
  python3 -c "import sys; s=float(sys.argv[2]); print(f'| {sys.argv[1]} | {s:.1f} s | {int(sys.argv[3])/2**20/max(s,0.001):.0f} MiB/s | {int(sys.argv[4])/1024:.0f} MiB |')" "$label" "$secs" "$size" "$kib"
}
echo "| what | wall | snapshot read | peak RSS |"
echo "|---|---|---|---|"
row "kvdr inspect (sha256 trailer, 2 passes, every live key)" node dist/cli/kvdr.js inspect "$work/snap.db"
row "etcdctl snapshot status (1 pass)" etcdctl snapshot status "$work/snap.db"
echo
echo "snapshot: $((size / 1048576)) MiB, $(head -2 "$work/out" | tail -1)"
