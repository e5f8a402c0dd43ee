#!/usr/bin/env bash
# Installs the npm dependencies when they are missing or older than package-lock.json, with npm running
# on a supported Node (scripts/node.sh fetches one when the machine's is too old).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/node.sh
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[deps] npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
