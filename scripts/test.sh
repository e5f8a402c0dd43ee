#!/usr/bin/env bash
# `npm test`: installs everything the tests need (npm packages; etcd, Consul and MinIO — cached after the
# first run), then runs the unit and integration suites. Integration tests start their own private
# stack of real services on free loopback ports and tear it down afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure-node-deps.sh
bash scripts/install-services.sh
exec npx vitest run "$@"
