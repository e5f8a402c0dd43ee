#!/usr/bin/env bash
# Benchmark: kvdr restores against the ceiling of a Node client and against `consul kv import`.
#
#   bash bench/restore.sh [ETCD_KEYS...] [-- CONSUL_KEYS...] [--px PX_DUMP_KEYS...]
#                        (defaults: 100000 1000000 -- 20000 --px 500000; a size of 0 skips its section)
#
# etcd:   `kvdr restore --file <kvdr export>` end to end (read and check the whole artifact, count the
#         scope, replay in 128-put transactions with 4 in flight, read everything back and verify the
#         digest) next to bench/raw-etcd-txn.mjs, which only writes the same number of keys in
#         128-put transactions (1 and 4 in flight): the raw rate an etcd3 client reaches.
# Consul: `kvdr restore --file <consul kv export>` next to `consul kv import` of the same file.
# PX:     `kvdr restore --kvdb_dump_file` of a generated PX dump (Go's JSON array of KVPair, base64
#         values) into etcd: the dump is streamed, never parsed whole, so peak RSS should not follow its size.
# Values are 200 bytes. Reports wall time, keys/s and peak RSS (GNU time) as a markdown table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
etcd_sizes=(); consul_sizes=(); px_sizes=()
target=etcd_sizes
for arg in "$@"; do
  if [ "$arg" = "--" ]; then target=consul_sizes; continue; fi
  if [ "$arg" = "--px" ]; then target=px_sizes; continue; fi
  eval "$target+=(\"$arg\")"
done
[ ${#etcd_sizes[@]} -gt 0 ] || etcd_sizes=(100000 1000000)
[ ${#consul_sizes[@]} -gt 0 ] || consul_sizes=(20000)
[ ${#px_sizes[@]} -gt 0 ] || px_sizes=(500000)

# shellcheck source=lib.sh
. bench/lib.sh
bench_prepare
export KVDR_CONFIG="" KVDR_SAFETY_DIR="$work/safety"
kvdr() { node dist/cli/kvdr.js --log-level warn "$@"; }

row() { # LABEL KEYS then the command
  local label="$1" keys="$2"; shift 2
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/stderr" || { cat "$work/stderr" >&2; return 1; }
  read -r secs kib <"$work/time"
  python3 -c "import sys; s=float(sys.argv[3]); print(f'| {sys.argv[1]} | {int(sys.argv[2]):,} | {s:.1f} s | {int(sys.argv[2])/max(s,0.001):,.0f} | {int(sys.argv[4])/1024:.0f} MiB |')" "$label" "$keys" "$secs" "$kib"
}

echo "| what | keys | wall | keys/s | peak RSS |"
echo "|---|---|---|---|---|"
for n in "${etcd_sizes[@]}"; do
  [ "$n" != 0 ] || continue
  node bench/fill-etcd.mjs "$KVDR_ETCD_ENDPOINT" "src$n/" "$n" 200
  cat >"$work/export.yaml" <<YAML
sources: [{name: e, type: etcd, endpoints: ["$KVDR_ETCD_ENDPOINT"], prefix: src$n/}]
repositories: [{name: local, type: fs, path: $work/repo$n}]
jobs: [{name: export, source: e, kind: etcd-export, compression: gzip, schedule: "0 * * * *", repository: local}]
YAML
  kvdr --config "$work/export.yaml" backup export >/dev/null
  file=$(ls "$work/repo$n"/data/export/*)
  row "kvdr restore → etcd (end to end, verified)" "$n" node dist/cli/kvdr.js --log-level warn restore --file "$file" --target "etcd:$KVDR_ETCD_ENDPOINT" --to-prefix "restored$n/" --no-safety-backup
  row "raw etcd3 txns, 128 puts, 1 in flight (write only)" "$n" node bench/raw-etcd-txn.mjs "$KVDR_ETCD_ENDPOINT" "raw1-$n/" "$n" 200 1
  row "raw etcd3 txns, 128 puts, 4 in flight (write only)" "$n" node bench/raw-etcd-txn.mjs "$KVDR_ETCD_ENDPOINT" "raw4-$n/" "$n" 200 4
done
for n in "${consul_sizes[@]}"; do
  [ "$n" != 0 ] || continue
  python3 - "$n" >"$work/consul$n.json" <<'PY'
import base64, json, os, sys
n = int(sys.argv[1])
print(json.dumps([{"key": f"src/{i:09d}", "flags": 0, "value": base64.b64encode(os.urandom(100).hex().encode()).decode()} for i in range(n)]))
PY
  row "kvdr restore → Consul (end to end, verified)" "$n" node dist/cli/kvdr.js --log-level warn restore --file "$work/consul$n.json" --target "consul:$KVDR_CONSUL_ADDR" --no-safety-backup
  curl -sf -X DELETE "$KVDR_CONSUL_ADDR/v1/kv/src/?recurse" >/dev/null
  row "consul kv import (one PUT per key)" "$n" env CONSUL_HTTP_ADDR="$KVDR_CONSUL_ADDR" "$KVDR_BIN_DIR/consul" kv import "@$work/consul$n.json"
done
for n in "${px_sizes[@]}"; do
  [ "$n" != 0 ] || continue
  python3 - "$n" "$work/pwx_kvdb_bench.dump" <<'PY'
import base64, json, os, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as out:  # written a record at a time: the point is a dump too big to hold whole
    out.write("[")
    for i in range(n):
        value = base64.b64encode(os.urandom(100).hex().encode()).decode()
        out.write(("," if i else "") + json.dumps({"Key": f"bench/{i:09d}", "Value": value, "Action": 0, "TTL": 0,
                                                    "KVDBIndex": 1000 + i, "CreatedIndex": 1000 + i, "ModifiedIndex": 1000 + i, "Lock": None}))
    out.write("]")
PY
  echo "PX dump of $n keys: $(( $(stat -c %s "$work/pwx_kvdb_bench.dump") / 1048576 )) MiB" >&2
  row "kvdr restore --kvdb_dump_file → etcd (end to end, verified)" "$n" node dist/cli/kvdr.js --log-level warn restore --kvdb_dump_file "$work/pwx_kvdb_bench.dump" --target "etcd:$KVDR_ETCD_ENDPOINT" --cluster-id "bench$n" --no-safety-backup
  rm -f "$work/pwx_kvdb_bench.dump"
done
echo
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; node $(node --version); etcd $(etcd --version | head -1 | awk '{print $3}'); consul $("$KVDR_BIN_DIR/consul" version | head -1 | awk '{print $2}')"
