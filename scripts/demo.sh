#!/usr/bin/env bash
# `npm run demo`: the embedded default. Installs and starts real etcd, Consul and MinIO on loopback,
# seeds a Portworx-like keyspace, creates the demo bucket, and runs kvdr against them with
# config/demo.yaml. `npm run demo -- down` stops the stack.
#
# Overrides (environment): KVDR_DEMO_DIR the stack's directory (default <cache>/demo; a second demo,
# e.g. a test's, runs beside the first in its own one), KVDR_DEMO_PORT kvdr's status port (default a
# free one), KVDR_DEMO_WATCH_PID tear the stack down when that process exits (for tests).
set -euo pipefail
case "${KVDR_DEMO_DIR:-}" in /* | "") ;; *) KVDR_DEMO_DIR="$PWD/$KVDR_DEMO_DIR" ;; esac
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
# shellcheck source=versions.sh
. scripts/versions.sh
stack="${KVDR_DEMO_DIR:-$KVDR_CACHE_DIR/demo}"
say() { printf '[demo] %s\n' "$*" >&2; }

if [ "${1:-}" = "down" ]; then
  bash scripts/services.sh down --dir "$stack"
  echo "demo stack stopped"
  exit 0
fi

# One part of scripts/install-services.sh: only what the demo runs (not Chromium, docker-compose, etcd 3.5
# or the Go test tool, which only tests use). A build gets a progress line first, since it is minutes of
# silence; the installer's own closing "ready: ..." line names every part, so it is left out here.
install_part() { # part, what is built ("" when nothing is), cached binary, expected duration
  if [ -n "$2" ] && [ ! -x "$3" ]; then say "building $2 (first time only, about $4)…"; fi
  bash scripts/install-services.sh "$1" 2>&1 | { grep -v '^\[install\] ready:' || true; } >&2
}

# Node 24 first on PATH when the machine's is older than 22: `node`, `npm` and kvdr below all run on it.
# shellcheck source=node.sh
. scripts/node.sh
bash scripts/ensure-node-deps.sh
command -v etcd >/dev/null || say "installing etcd (Debian package, under a minute)…"
install_part etcd "" "" ""
install_part minio MinIO "$KVDR_BIN_DIR/minio-$KVDR_MINIO_VERSION" "6 minutes"
install_part consul Consul "$KVDR_BIN_DIR/consul-$KVDR_CONSUL_VERSION" "5 minutes"
say "building kvdr (a few seconds)…"
npm run --silent build
bash scripts/services.sh up --dir "$stack" ${KVDR_DEMO_WATCH_PID:+--watch-pid "$KVDR_DEMO_WATCH_PID"}

# demo.env: everything a kvdr command needs against this stack — the endpoints, MinIO's credentials as the
# AWS SDK reads them, the config, and absolute paths — so the commands printed at the end work when
# pasted into any shell, from any directory. (services.sh rewrites $stack/env on every `up`; this is ours.)
KVDR_DEMO_PORT="${KVDR_DEMO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
# Written by services.sh just above.
set -a
# shellcheck source=/dev/null
. "$stack/env"
set +a
{
  cat "$stack/env"
  printf '%s\n' "AWS_ACCESS_KEY_ID=$KVDR_S3_ACCESS_KEY" "AWS_SECRET_ACCESS_KEY=$KVDR_S3_SECRET_KEY" \
    "KVDR_CONFIG=$root/config/demo.yaml" "KVDR_DEMO_BACKUPS=$stack/backups" \
    "KVDR_DEMO_DUMPS=$root/test/fixtures/pxdump" "KVDR_DEMO_PORT=$KVDR_DEMO_PORT"
} >"$stack/demo.env"
# Written just above.
set -a
# shellcheck source=/dev/null
. "$stack/demo.env"
set +a

node scripts/demo-seed.mjs
kvdr() { node dist/cli/kvdr.js "$@"; }

echo "== kvdr serve (each job catches up at start, then runs every 5 minutes; status on http://127.0.0.1:$KVDR_DEMO_PORT/)"
# Started directly, not through the kvdr function: $! must be node itself, or SIGTERM would stop only a subshell.
node dist/cli/kvdr.js serve &
serve=$!
trap 'kill "$serve" 2>/dev/null || true' EXIT
jobs_done() { kvdr backups list --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const kinds=new Set(JSON.parse(s).map(m=>m.kind));process.exit(kinds.size>=5?0:1)})'; }
for _ in $(seq 1 120); do
  jobs_done && break
  kill -0 "$serve" 2>/dev/null || { echo "kvdr serve stopped early; see the lines above" >&2; exit 1; }
  sleep 0.5
done
kill -TERM "$serve"; wait "$serve" || true
trap - EXIT
echo
echo "== kvdr backups list"
kvdr backups list
echo
echo "== kvdr restore-from-s3 --latest --job etcd-export --to-prefix drill/ --dry-run"
kvdr --log-level warn restore-from-s3 --latest --job etcd-export --target "etcd:$KVDR_ETCD_ENDPOINT" --to-prefix "drill/$(date +%s)/" --dry-run
echo
echo "== kvdr backup drill-etcd-export   (a restore drill: restore, read back, time, clean up)"
kvdr --log-level warn backup drill-etcd-export
echo
echo "== kvdr verify --sample 3"
kvdr --log-level warn verify --sample 3
echo
echo "== kvdr audit --since 1h   (exit 5 is expected here: the demo keeps one job on a local disk, in no other region, unlocked)"
kvdr --log-level warn audit --since 1h || true
echo
# Every "Try:" line is one self-contained bash command (test/integration/demo.test.ts runs each as printed):
# it loads demo.env and names node and kvdr by absolute path, since the machine's own node may be too old.
use="set -a; . $(printf '%q' "$stack/demo.env"); set +a; $(printf '%q %q' "$KVDR_NODE" "$root/dist/cli/kvdr.js")"
echo "The demo stack keeps running (state in $stack):"
echo "  etcd   $KVDR_ETCD_ENDPOINT    consul $KVDR_CONSUL_ADDR    minio $KVDR_S3_ENDPOINT (bucket kvdr-demo)"
echo "Try:  $use backup etcd-snapshot   # one job now, outside its schedule"
echo "Try:  $use backups list   # what the demo backed up"
echo "Try:  $use serve   # the scheduler, every 5 minutes; status on http://127.0.0.1:$KVDR_DEMO_PORT/ (Ctrl-C stops it)"
echo "Stop: KVDR_DEMO_DIR=$(printf '%q' "$stack") bash $(printf '%q' "$root/scripts/demo.sh") down   # (npm run demo -- down, for the default directory)"
