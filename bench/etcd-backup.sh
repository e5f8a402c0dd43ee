#!/usr/bin/env bash
# Benchmark: kvdr's etcd backups against the reference tools, on real etcd and MinIO.
#
#   bash bench/etcd-backup.sh [SNAPSHOT_MIB] [EXPORT_KEYS]      (defaults: 1024 MiB, 1000000 keys)
#
# Snapshot: `kvdr backup` (streams etcd → MinIO; compression none, gzip and zstd) vs `etcdctl snapshot save`
#           + `aws s3 cp` (Debian's awscli), all in the same run; then kvdr's wall / (save + cp) wall and
#           peak RSS per compression. The two reference steps run before and after the kvdr rows and the
#           ratio uses the mean of the two (the machine's load drifts during a run; the load average is
#           printed at the end).
# KVDR_NODE_FLAGS: node options for every kvdr run (e.g. --max-semi-space-size=1). Two extra zstd rows:
#           16 MiB x 4 parts (the default before 2026-11-28, more in flight for a distant region) and
#           parts signed (signPartPayloads: true).
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
  # The same bucket with 16 MiB parts, 4 in flight (defaults 8 MiB x 2): parts are reused buffers, partSize x (queueSize + 1).
  - {name: minio-wide, type: s3, bucket: bench, region: us-east-1, endpoint: "$KVDR_S3_ENDPOINT", forcePathStyle: true, partSizeMiB: 16, queueSize: 4}
  # The default upload with each part's bytes signed (SHA-256 here and in MinIO), as kvdr sent parts before 2026-11-28.
  - {name: minio-signed, type: s3, bucket: bench, region: us-east-1, endpoint: "$KVDR_S3_ENDPOINT", forcePathStyle: true, signPartPayloads: true}
jobs:
  - {name: snap, source: etcd, kind: etcd-snapshot, compression: none, schedule: "0 * * * *", repository: minio}
  - {name: snap-gz, source: etcd, kind: etcd-snapshot, compression: gzip, schedule: "0 * * * *", repository: minio}
  - {name: snap-zst, source: etcd, kind: etcd-snapshot, compression: zstd, schedule: "0 * * * *", repository: minio}
  - {name: snap-zst-wide, source: etcd, kind: etcd-snapshot, compression: zstd, schedule: "0 * * * *", repository: minio-wide}
  - {name: snap-zst-signed, source: etcd, kind: etcd-snapshot, compression: zstd, schedule: "0 * * * *", repository: minio-signed}
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

# shellcheck disable=SC2206 # KVDR_NODE_FLAGS is split into words on purpose
kvdr=(node ${KVDR_NODE_FLAGS:-} dist/cli/kvdr.js --config "$work/kvdr.yaml" --log-level warn)
reference() { # the two reference steps; sets save_secs and cp_secs
  measure "etcdctl snapshot save (to local disk)$1" "$db_bytes" etcdctl --endpoints "$KVDR_ETCD_ENDPOINT" snapshot save "$work/ref.db"
  save_secs+=" $last_secs"
  measure "aws s3 cp of that file → MinIO$1" "$db_bytes" /usr/bin/aws --endpoint-url "$KVDR_S3_ENDPOINT" s3 cp "$work/ref.db" "s3://bench/ref$1.db"
  cp_secs+=" $last_secs"
  rm -f "$work/ref.db"
}
echo "| what | wall | throughput | peak RSS |"
echo "|---|---|---|---|"
save_secs="" cp_secs=""
reference ""
measure "kvdr backup (etcd-snapshot, no compression) → MinIO" "$db_bytes" "${kvdr[@]}" backup snap
none_secs="$last_secs" none_kib="$last_kib"
measure "kvdr backup (etcd-snapshot, gzip) → MinIO" "$db_bytes" "${kvdr[@]}" backup snap-gz
gzip_secs="$last_secs" gzip_kib="$last_kib"
measure "kvdr backup (etcd-snapshot, zstd) → MinIO" "$db_bytes" "${kvdr[@]}" backup snap-zst
zstd_secs="$last_secs" zstd_kib="$last_kib"
measure "kvdr backup (etcd-snapshot, zstd, 16 MiB x 4 parts) → MinIO" "$db_bytes" "${kvdr[@]}" backup snap-zst-wide
wide_secs="$last_secs" wide_kib="$last_kib"
measure "kvdr backup (etcd-snapshot, zstd, parts signed) → MinIO" "$db_bytes" "${kvdr[@]}" backup snap-zst-signed
signed_secs="$last_secs" signed_kib="$last_kib"
reference " (again)"
# Throughput of both export rows is over the bytes of kvdr's export (its manifest's raw size).
measure "kvdr backup (etcd-export, ${export_keys} keys, gzip) → MinIO" export "${kvdr[@]}" backup export
measure "etcdctl get --prefix -w json (${export_keys} keys, to local disk)" "$export_bytes" sh -c "etcdctl --endpoints $KVDR_ETCD_ENDPOINT get --prefix pwx/bench/ -w json > $work/ref.json"
echo
# The stored sizes, from the manifests: what each compression saves in the repository.
stored() { node dist/cli/kvdr.js --config "$work/kvdr.yaml" backups list --job "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["bytes"]["stored"])'; }
python3 - "$save_secs" "$cp_secs" "$(stored snap)" "$(stored snap-gz)" "$(stored snap-zst)" \
  "none:$none_secs:$none_kib" "gzip:$gzip_secs:$gzip_kib" "zstd:$zstd_secs:$zstd_kib" \
  "zstd, 16 MiB x 4 parts:$wide_secs:$wide_kib" "zstd, parts signed (signPartPayloads):$signed_secs:$signed_kib" <<'PY'
import sys
saves, cps = ([float(x) for x in a.split()] for a in sys.argv[1:3])
s_none, s_gz, s_zst = (int(x) for x in sys.argv[3:6])
refs = [s + c for s, c in zip(saves, cps)]
ref = sum(refs) / len(refs)
print(f"etcdctl snapshot save + aws s3 cp: {' and '.join(f'{r:.1f} s' for r in refs)} (before and after the kvdr rows); mean {ref:.1f} s")
print()
print("| kvdr snapshot | wall / (save + cp) | peak RSS | stored |")
print("|---|---|---|---|")
stored = {"none": s_none, "gzip": s_gz, "zstd": s_zst}
for row in sys.argv[6:]:
    name, secs, kib = row.rsplit(":", 2)
    size = stored.get(name)
    where = f"{size / 2**20:.0f} MiB ({size / max(s_none, 1):.0%} of raw)" if size else "—"
    print(f"| {name} | {float(secs) / max(ref, 0.001):.2f} | {int(kib) * 1024 / 1e6:.0f} MB ({int(kib) / 1024:.0f} MiB) | {where} |")
print()
print("target for zstd: ratio <= 0.6 and peak RSS <= 150 MB")
PY
echo "etcd db size: $((db_bytes / 1048576)) MiB; machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; node $(node --version)${KVDR_NODE_FLAGS:+ $KVDR_NODE_FLAGS}; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
