#!/usr/bin/env bash
# Benchmark: continuous backup (etcd-continuous) under a sustained write load, and a point-in-time restore.
#
#   bash bench/continuous.sh [PUTS_PER_SECOND] [SECONDS] [BASE_KEYS] [CHANGES]   (defaults: 1500 60 100000 100000)
#
# Lag:     `kvdr serve` follows a scope while bench/continuous-load.mjs writes single puts (and every 10th a
#          delete) at the given rate; every 200 ms it samples etcd's newest revision and kvdr's durable
#          revision (/metrics), and reports how long each sample took to become durable in MinIO: p50, p99,
#          max (target p99 <= segmentSeconds + 2 s, segmentSeconds 5). kvdr's CPU share is (user + sys) /
#          wall of the serve process; peak RSS from GNU time.
# Restore: a base of BASE_KEYS keys, then CHANGES changes (overwrites, new keys, deletes) streamed into
#          segments; then `kvdr restore-from-s3 --at rev:N` of the last revision into an empty prefix, end to
#          end (select, fetch and verify the base, replay the segments, plan, write, verify): target <= 30 s.
#          Beside it, in the same run, bench/raw-etcd-txn.mjs writes the same number of keys: the ceiling.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rate="${1:-1500}"; seconds="${2:-60}"; base_keys="${3:-100000}"; changes="${4:-100000}"
# shellcheck source=lib.sh
. bench/lib.sh
bench_prepare
export AWS_ACCESS_KEY_ID="$KVDR_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$KVDR_S3_SECRET_KEY" KVDR_SAFETY_DIR="$work/safety"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
node -e "
const { S3Client, CreateBucketCommand } = require('@aws-sdk/client-s3');
new S3Client({ region: '$KVDR_S3_REGION', endpoint: '$KVDR_S3_ENDPOINT', forcePathStyle: true }).send(new CreateBucketCommand({ Bucket: 'bench-continuous' })).catch((e) => { console.error(e.message); process.exit(1); });"
config() { # PREFIX JOB
  cat <<YAML
sources: [{name: e, type: etcd, endpoints: ["$KVDR_ETCD_ENDPOINT"], prefix: "$1"}]
repositories: [{name: dr, type: s3, bucket: bench-continuous, region: $KVDR_S3_REGION, endpoint: "$KVDR_S3_ENDPOINT", forcePathStyle: true}]
jobs: [{name: $2, source: e, kind: etcd-continuous, schedule: "0 0 1 1 *", repository: dr, continuous: {segmentSeconds: 5, spoolDir: $work/spool-$2}}]
service: {listen: "127.0.0.1:$port"}
YAML
}
serve_until_base() { # CONFIG JOB: starts kvdr serve under GNU time, waits for its /metrics to show the job following
  /usr/bin/time -f '%e %U %S %M' -o "$work/serve.time" node dist/cli/kvdr.js --log-level warn --config "$1" serve 2>"$work/serve.log" &
  serve_pid=$!
  for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$port/metrics" 2>/dev/null | grep -q "^kvdr_continuous_following{job=\"$2\"} 1" && return 0
    sleep 0.2
  done
  cat "$work/serve.log" >&2; return 1
}
# SIGTERM goes to kvdr itself (GNU time, the job's process, does not pass signals on), then time reports.
stop_serve() { pkill -TERM -P "$serve_pid"; wait "$serve_pid" || true; }

echo "## lag under load ($rate puts/s requested for $seconds s, segmentSeconds 5)"
config lag/ lag >"$work/lag.yaml"
serve_until_base "$work/lag.yaml" lag
load="$(node bench/continuous-load.mjs "$KVDR_ETCD_ENDPOINT" lag/ "$rate" "$seconds" "http://127.0.0.1:$port/metrics" lag)"
stop_serve
read -r wall user sys kib < <(tail -n 1 "$work/serve.time")
python3 - "$load" "$wall" "$user" "$sys" "$kib" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); wall, user, sys_, kib = map(float, sys.argv[2:])
print("| achieved rate | lag p50 | lag p99 | lag max | kvdr CPU (of one core) | kvdr peak RSS |")
print("|---|---|---|---|---|---|")
print(f"| {r['rate']:,.0f} puts/s ({r['puts']:,} in {r['seconds']:.0f} s) | {r['p50']:.1f} s | {r['p99']:.1f} s | {r['max']:.1f} s | {100*(user+sys_)/wall:.0f}% | {kib/1024:.0f} MiB |")
PY

echo
echo "## point-in-time restore: $base_keys-key base + $changes changes"
node bench/fill-etcd.mjs "$KVDR_ETCD_ENDPOINT" pitr/ "$base_keys" 200
config pitr/ pitr >"$work/pitr.yaml"
serve_until_base "$work/pitr.yaml" pitr
# The changes: overwrites of the base's keys, new keys, every 10th a delete; 2000 puts/s requested.
node bench/continuous-load.mjs "$KVDR_ETCD_ENDPOINT" pitr/ 2000 "$((changes / 2000))" "http://127.0.0.1:$port/metrics" pitr "$((base_keys + base_keys / 5))" >"$work/pitr.load"
stop_serve
final="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["finalRevision"])' "$work/pitr.load")"
/usr/bin/time -f '%e %M' -o "$work/restore.time" node dist/cli/kvdr.js --log-level warn --config "$work/pitr.yaml" restore-from-s3 --at "rev:$final" --job pitr --target "etcd:$KVDR_ETCD_ENDPOINT" --to-prefix restored/ >"$work/restore.out" 2>"$work/restore.err" || { cat "$work/restore.err" >&2; exit 1; }
read -r secs kib <"$work/restore.time"
keys="$(node -e "const { Etcd3 } = require('etcd3'); const e = new Etcd3({ hosts: ['$KVDR_ETCD_ENDPOINT'] }); e.getAll().prefix('restored/').count().then((n) => { console.log(n); e.close(); });")"
raw="$(node bench/raw-etcd-txn.mjs "$KVDR_ETCD_ENDPOINT" raw/ "$keys" 200 4)"
echo "| what | wall | peak RSS |"
echo "|---|---|---|"
echo "| kvdr restore-from-s3 --at rev:$final ($keys keys after replaying the segments) | $secs s | $((kib / 1024)) MiB |"
echo "| raw etcd3 txn writes of the same $keys keys (128-put transactions, 4 in flight) | $(sed -E 's/.* in ([0-9.]+) s.*/\1/' <<<"$raw") s | - |"
