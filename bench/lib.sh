# Sourced by the benchmark scripts: installs what they need, builds kvdr, starts a private stack of
# real services in $work (removed on exit) and exports its environment.
bench_prepare() {
  [ -x /usr/bin/time ] && { [ "${1:-}" != "--awscli" ] || [ -x /usr/bin/aws ]; } || {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time ${1:+awscli} >/dev/null
  }
  # Every `node` and `npm` in the benchmark runs on a supported Node (Node 24 when the machine's is older).
  . scripts/node.sh
  bash scripts/ensure-node-deps.sh
  bash scripts/install-services.sh >/dev/null
  npm run --silent build
  work="$(mktemp -d /tmp/kvdr-bench-XXXXXX)"
  trap 'bash scripts/services.sh down --dir "$work/stack" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  bash scripts/services.sh up --dir "$work/stack" >/dev/null
  set -a; . "$work/stack/env"; set +a
}
