#!/usr/bin/env bash
# Benchmark: kvdr's etcd backups against the reference tools, on real etcd and MinIO.
#
#   bash bench/etcd-backup.sh [SNAPSHOT_MIB] [EXPORT_KEYS]      (defaults: 1024 MiB, 1000000 keys)
#
# Snapshot: `kvdr backup` (streams etcd → MinIO; compression none, gzip and zstd) vs `etcdctl snapshot save`
#           + `aws s3 cp` (Debian's awscli), all in the same run; then kvdr's wall / (save + cp) wall.
# Export:   `kvdr backup` of an etcd-export job vs `etcdctl get --prefix -w json` to a file.
# Reports wall time, throughput and peak RSS (GNU time). Prints a markdown table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
snapshot_mib="${1:-1024}"
export_keys="${2:-1000000}"

# shellcheck source=lib.sh
. bench/lib.sh
bench_prepare --awscli
export AWS_ACCESS_KEY_ID="$KVDR_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$KVDR_S3_SECRET_KEY" AWS_DEFAULT_REGION="$KVDR_S3_REGION"
/usr/bin/aws --endpoint-url "$KVDR_S3_ENDPOINT" s3 mb s3://bench >/dev/null

echo "filling etcd: ${snapshot_mib} x 1 MiB values, then ${export_keys} keys of 200 B ..." >&2
node bench/fill-etcd.mjs "$KVDR_ETCD_ENDPOINT" big/ "$snapshot_mib" 1048576
node bench/fill-etcd.mjs "$KVDR_ETCD_ENDPOINT" pwx/bench/ "$export_keys" 200
db_bytes=$(etcdctl --endpoints "$KVDR_ETCD_ENDPOINT" endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["dbSize"])')

cat >"$work/kvdr.yaml" <<YAML
sources: [{name: etcd, type: etcd, endpoints: ["$KVDR_ETCD_ENDPOINT"], prefix: pwx/bench/}]
repositories:
  - {name: minio, type: s3, bucket: bench, region: us-east-1, endpoint: "$KVDR_S3_ENDPOINT", forcePathStyle: true}
  # The same bucket with 8 MiB parts, 2 in flight (defaults 16 MiB x 4): the upload buffers are most of the RSS.
  - {name: minio-small, type: s3, bucket: bench, region: us-east-1, endpoint: "$KVDR_S3_ENDPOINT", forcePathStyle: true, partSizeMiB: 8, queueSize: 2}
jobs:
  - {name: snap, source: etcd, kind: etcd-snapshot, compression: none, schedule: "0 * * * *", repository: minio}
  - {name: snap-gz, source: etcd, kind: etcd-snapshot, compression: gzip, schedule: "0 * * * *", repository: minio}
  - {name: snap-zst, source: etcd, kind: etcd-snapshot, compression: zstd, schedule: "0 * * * *", repository: minio}
  - {name: snap-zst-small, source: etcd, kind: etcd-snapshot, compression: zstd, schedule: "0 * * * *", repository: minio-small}
  - {name: export, source: etcd, kind: etcd-export, compression: gzip, schedule: "0 * * * *", repository: minio}
YAML

# measure LABEL BYTES CMD...: runs CMD under GNU time, prints one table row. BYTES "export" means the
# raw size of the export kvdr just stored, as its manifest records it.
measure() {
  local label="$1" bytes="$2"; shift 2
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/stderr" || { cat "$work/stderr" >&2; return 1; }
  if [ "$bytes" = export ]; then
    bytes=$(node dist/cli/kvdr.js --config "$work/kvdr.yaml" backups list --job export --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["bytes"]["raw"])')
    export_bytes="$bytes"
  fi
  read -r secs kib <"$work/time"
  last_secs="$secs" last_kib="$kib"
  python3 - "$label" "$bytes" "$secs" "$kib" <<'PY'
import sys
label, size, secs, kib = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(f"| {label} | {secs:.1f} s | {size / 2**20 / max(secs, 0.001):.0f} MiB/s | {kib / 1024:.0f} MiB |")
PY
}
both() { "$@"; }  # a pipeline of two reference commands measured as one

echo "| what | wall | throughput | peak RSS |"
echo "|---|---|---|---|"
measure "kvdr backup (etcd-snapshot, no compression) → MinIO" "$db_bytes" node dist/cli/kvdr.js --config "$work/kvdr.yaml" --log-level warn backup snap
none_secs="$last_secs"
measure "kvdr backup (etcd-snapshot, gzip) → MinIO" "$db_bytes" node dist/cli/kvdr.js --config "$work/kvdr.yaml" --log-level warn backup snap-gz
gzip_secs="$last_secs"
measure "kvdr backup (etcd-snapshot, zstd) → MinIO" "$db_bytes" node dist/cli/kvdr.js --config "$work/kvdr.yaml" --log-level warn backup snap-zst
zstd_secs="$last_secs" zstd_kib="$last_kib"
measure "kvdr backup (etcd-snapshot, zstd, 8 MiB x 2 parts) → MinIO" "$db_bytes" node dist/cli/kvdr.js --config "$work/kvdr.yaml" --log-level warn backup snap-zst-small
small_secs="$last_secs" small_kib="$last_kib"
measure "etcdctl snapshot save (to local disk)" "$db_bytes" etcdctl --endpoints "$KVDR_ETCD_ENDPOINT" snapshot save "$work/ref.db"
save_secs="$last_secs"
measure "aws s3 cp of that file → MinIO" "$db_bytes" /usr/bin/aws --endpoint-url "$KVDR_S3_ENDPOINT" s3 cp "$work/ref.db" s3://bench/ref.db
cp_secs="$last_secs"
rm -f "$work/ref.db"
# Throughput of both export rows is over the bytes of kvdr's export (its manifest's raw size).
measure "kvdr backup (etcd-export, ${export_keys} keys, gzip) → MinIO" export node dist/cli/kvdr.js --config "$work/kvdr.yaml" --log-level warn backup export
measure "etcdctl get --prefix -w json (${export_keys} keys, to local disk)" "$export_bytes" sh -c "etcdctl --endpoints $KVDR_ETCD_ENDPOINT get --prefix pwx/bench/ -w json > $work/ref.json"
echo
# The stored sizes, from the manifests: what each compression saves in the repository.
stored() { node dist/cli/kvdr.js --config "$work/kvdr.yaml" backups list --job "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["bytes"]["stored"])'; }
python3 - "$none_secs" "$gzip_secs" "$zstd_secs" "$save_secs" "$cp_secs" "$zstd_kib" "$(stored snap)" "$(stored snap-gz)" "$(stored snap-zst)" "$small_secs" "$small_kib" <<'PY'
import sys
none, gz, zst, save, cp = map(float, sys.argv[1:6])
kib, s_none, s_gz, s_zst = (int(x) for x in sys.argv[6:10])
small, small_kib = float(sys.argv[10]), int(sys.argv[11])
ref = save + cp
print(f"etcdctl snapshot save + aws s3 cp: {ref:.1f} s")
for name, secs, size in (("none", none, s_none), ("gzip", gz, s_gz), ("zstd", zst, s_zst)):
    print(f"kvdr snapshot, {name}: wall / (save + cp) = {secs / max(ref, 0.001):.2f}; stored {size / 2**20:.0f} MiB ({size / max(s_none, 1):.0%} of raw)")
print(f"target for zstd: ratio <= 0.6 and peak RSS <= 150 MB; measured {zst / max(ref, 0.001):.2f} and {kib * 1024 / 1e6:.0f} MB"
      f" (8 MiB x 2 parts: {small / max(ref, 0.001):.2f} and {small_kib * 1024 / 1e6:.0f} MB)")
PY
echo "etcd db size: $((db_bytes / 1048576)) MiB; machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; node $(node --version)"
