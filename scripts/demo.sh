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

bash scripts/ensure-node-deps.sh
bash scripts/install-services.sh
npm run --silent build
bash scripts/services.sh up --dir "$stack"
set -a; . "$stack/env"; set +a
export AWS_ACCESS_KEY_ID="$KVDR_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$KVDR_S3_SECRET_KEY"
export KVDR_DEMO_BACKUPS="$stack/backups"

node scripts/demo-seed.mjs
kvdr() { node dist/cli/kvdr.js --config config/demo.yaml "$@"; }

for job in etcd-snapshot etcd-export consul-snapshot consul-export px-dumps; do
  echo "== kvdr backup $job"
  kvdr --log-level warn backup "$job"
done
echo
echo "== kvdr backups list"
kvdr backups list
echo
echo "== kvdr restore-from-s3 --latest --job etcd-export --to-prefix drill/ --dry-run"
kvdr --log-level warn restore-from-s3 --latest --job etcd-export --target "etcd:$KVDR_ETCD_ENDPOINT" --to-prefix "drill/$(date +%s)/" --dry-run
echo
echo "The demo stack keeps running (state in $stack):"
echo "  etcd   $KVDR_ETCD_ENDPOINT    consul $KVDR_CONSUL_ADDR    minio $KVDR_S3_ENDPOINT (bucket kvdr-demo)"
echo "Try:  set -a; . $stack/env; set +a; node dist/cli/kvdr.js --config config/demo.yaml serve   # the scheduler, every 5 minutes"
echo "Stop: npm run demo -- down"
