#!/usr/bin/env bash
# Starts and stops the real services kvdr is tested and demonstrated against — etcd, Consul and MinIO —
# on loopback, on free ports, with data under one stack directory, and waits until each is ready.
#
#   services.sh up    [--dir D] [--watch-pid PID]   start all three; writes D/env (KEY=value lines)
#   services.sh down  [--dir D]                     stop all and remove D
#   services.sh stop  SERVICE [--dir D]             stop one (fault tests); data and port are kept
#   services.sh start SERVICE [--dir D]             start it again on the same port with the same data
#   services.sh env   [--dir D]                     print D/env
#
# D defaults to $KVDR_STACK_DIR or <cache>/stack. --watch-pid tears the stack down when PID exits,
# so a crashed test run leaves no servers behind. Idempotent: `up` on a running stack only re-checks it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
. "$here/versions.sh"

cmd="${1:-}"; shift || true
service=""
case "$cmd" in start|stop) service="${1:-}"; shift || true ;; esac
dir="${KVDR_STACK_DIR:-$KVDR_CACHE_DIR/stack}"
watch_pid=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --watch-pid) watch_pid="$2"; shift 2 ;;
    *) echo "services.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

MINIO_USER="kvdr-test"
MINIO_PASSWORD="kvdr-test-secret-key"
# A static KMS key lets MinIO serve SSE-S3 and SSE-KMS (key id kvdr-test-key) like AWS does.
MINIO_KMS_KEY="kvdr-test-key:$(printf 'kvdr-test-kms-key-32-bytes-long!' | base64)"
log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

free_ports() { # N free TCP ports on 127.0.0.1, held together so they are distinct
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

port() { sed -n "s/^$1=//p" "$dir/ports"; }
pidfile() { echo "$dir/$1.pid"; }
running() { [ -f "$(pidfile "$1")" ] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }

launch() { # name, then the command; detached so the caller may exit
  local name="$1"; shift
  mkdir -p "$dir/$name"
  setsid nohup "$@" >>"$dir/$name/$name.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
}

wait_for() { # name, seconds, probe command...
  local name="$1" seconds="$2"; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    running "$name" || die "$name exited during start-up; last lines of $dir/$name/$name.log: $(tail -n 5 "$dir/$name/$name.log" | tr '\n' ' ')"
    [ $SECONDS -lt $deadline ] || die "$name not ready after ${seconds}s; see $dir/$name/$name.log"
    sleep 0.2
  done
}

consul_has_leader() { curl -sf "http://127.0.0.1:$(port consul_http)/v1/status/leader" | grep -q '[0-9]'; }

start_etcd() {
  running etcd && return
  local client peer; client=$(port etcd_client); peer=$(port etcd_peer)
  launch etcd etcd --name kvdr --data-dir "$dir/etcd/data" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "kvdr=http://127.0.0.1:$peer" --initial-cluster-state new \
    --quota-backend-bytes 8589934592
  wait_for etcd 30 etcdctl --endpoints "http://127.0.0.1:$client" endpoint health
}

start_consul() {
  running consul && return
  launch consul "$KVDR_BIN_DIR/consul" agent -server -bootstrap-expect 1 -node kvdr \
    -bind 127.0.0.1 -advertise 127.0.0.1 -client 127.0.0.1 -data-dir "$dir/consul/data" \
    -hcl "ports { http = $(port consul_http), https = -1, grpc = -1, grpc_tls = -1, dns = -1, serf_lan = $(port consul_serf_lan), serf_wan = $(port consul_serf_wan), server = $(port consul_server) }" \
    -hcl 'disable_update_check = true' -hcl 'performance { raft_multiplier = 1 }'
  wait_for consul 60 consul_has_leader
}

start_minio() {
  running minio && return
  MINIO_ROOT_USER="$MINIO_USER" MINIO_ROOT_PASSWORD="$MINIO_PASSWORD" MINIO_KMS_SECRET_KEY="$MINIO_KMS_KEY" \
    MINIO_BROWSER=off MINIO_UPDATE=off \
    launch minio "$KVDR_BIN_DIR/minio" server "$dir/minio/data" --quiet \
    --address "127.0.0.1:$(port minio)" --console-address "127.0.0.1:$(port minio_console)"
  wait_for minio 60 curl -sf "http://127.0.0.1:$(port minio)/minio/health/live"
}

stop_one() {
  local name="$1" pid
  [ -f "$(pidfile "$name")" ] || return 0
  pid=$(cat "$(pidfile "$name")")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$(pidfile "$name")"
}

write_env() {
  cat >"$dir/env" <<ENV
KVDR_STACK_DIR=$dir
KVDR_BIN_DIR=$KVDR_BIN_DIR
KVDR_ETCD_ENDPOINT=http://127.0.0.1:$(port etcd_client)
KVDR_CONSUL_ADDR=http://127.0.0.1:$(port consul_http)
KVDR_S3_ENDPOINT=http://127.0.0.1:$(port minio)
KVDR_S3_REGION=us-east-1
KVDR_S3_ACCESS_KEY=$MINIO_USER
KVDR_S3_SECRET_KEY=$MINIO_PASSWORD
KVDR_S3_KMS_KEY_ID=kvdr-test-key
KVDR_ETCD35_BIN=$KVDR_BIN_DIR/etcd35
ENV
}

case "$cmd" in
  up)
    for bin in etcd etcdctl "$KVDR_BIN_DIR/consul" "$KVDR_BIN_DIR/minio"; do
      command -v "$bin" >/dev/null || die "$bin is not installed; run scripts/install-services.sh first"
    done
    mkdir -p "$dir"
    if [ ! -f "$dir/ports" ]; then
      read -r p1 p2 p3 p4 p5 p6 p7 p8 <<<"$(free_ports 8)"
      printf '%s\n' "etcd_client=$p1" "etcd_peer=$p2" "consul_http=$p3" "consul_serf_lan=$p4" \
        "consul_serf_wan=$p5" "consul_server=$p6" "minio=$p7" "minio_console=$p8" >"$dir/ports"
    fi
    start_etcd; start_consul; start_minio
    write_env
    if [ -n "$watch_pid" ]; then
      setsid nohup bash -c "while kill -0 $watch_pid 2>/dev/null; do sleep 2; done; exec '$0' down --dir '$dir'" \
        >/dev/null 2>&1 </dev/null &
    fi
    log "etcd, consul and minio ready; environment in $dir/env"
    ;;
  down)
    [ -d "$dir" ] || exit 0
    for name in minio consul etcd; do stop_one "$name"; done
    rm -rf "$dir"
    ;;
  stop)
    case "$service" in etcd|consul|minio) stop_one "$service" ;; *) die "stop: unknown service '$service'" ;; esac
    ;;
  start)
    [ -f "$dir/ports" ] || die "no stack in $dir; run 'up' first"
    case "$service" in etcd) start_etcd ;; consul) start_consul ;; minio) start_minio ;; *) die "start: unknown service '$service'" ;; esac
    ;;
  env) cat "$dir/env" ;;
  *) echo "usage: services.sh up|down|env [--dir D] | start|stop etcd|consul|minio [--dir D]" >&2; exit 2 ;;
esac
