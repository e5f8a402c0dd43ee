#!/usr/bin/env bash
# `npm test`: installs everything the tests need (Node 24 when the machine's is older than 22; npm packages;
# etcd, Consul and MinIO — cached after the first run), then runs the unit and integration suites.
# Integration tests start their own private stack of real services on free loopback ports and tear it
# down afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/node.sh
bash scripts/ensure-node-deps.sh
bash scripts/install-services.sh
# npm started this script on the machine's node; vitest runs on the chosen one, and so do its workers and
# every CLI the tests spawn (they use process.execPath).
exec "$KVDR_NODE" node_modules/vitest/vitest.mjs run "$@"
