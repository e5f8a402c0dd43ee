#!/usr/bin/env bash
# `npm run demo`: the embedded default. Installs and starts real etcd, Consul and MinIO on loopback,
# seeds a Portworx-like keyspace, creates the demo bucket, and runs kvdr against them with
# config/demo.yaml. `npm run demo -- down` stops the stack.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/versions.sh
stack="${KVDR_DEMO_DIR:-$KVDR_CACHE_DIR/demo}"

if [ "${1:-}" = "down" ]; then
  bash scripts/services.sh down --dir "$stack"
  echo "demo stack stopped"
  exit 0
fi

# Node 24 first on PATH when the machine's is older than 22: `node`, `npm` and kvdr below all run on it.
. scripts/node.sh
bash scripts/ensure-node-deps.sh
bash scripts/install-services.sh
npm run --silent build
bash scripts/services.sh up --dir "$stack"
set -a; . "$stack/env"; set +a
export AWS_ACCESS_KEY_ID="$KVDR_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$KVDR_S3_SECRET_KEY"
export KVDR_DEMO_BACKUPS="$stack/backups"

node scripts/demo-seed.mjs
kvdr() { node dist/cli/kvdr.js --config config/demo.yaml "$@"; }

KVDR_DEMO_PORT="${KVDR_DEMO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
export KVDR_DEMO_PORT
echo "== kvdr serve (each job catches up at start, then runs every 5 minutes; status on http://127.0.0.1:${KVDR_DEMO_PORT:-9464}/)"
# Started directly, not through the kvdr function: $! must be node itself, or SIGTERM would stop only a subshell.
node dist/cli/kvdr.js --config config/demo.yaml serve &
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
echo "The demo stack keeps running (state in $stack):"
echo "  etcd   $KVDR_ETCD_ENDPOINT    consul $KVDR_CONSUL_ADDR    minio $KVDR_S3_ENDPOINT (bucket kvdr-demo)"
echo "Try:  set -a; . $stack/env; set +a; node dist/cli/kvdr.js --config config/demo.yaml serve   # the scheduler, every 5 minutes"
echo "Stop: npm run demo -- down"
