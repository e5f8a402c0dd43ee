#!/usr/bin/env bash
# Installs the real services kvdr needs — etcd/etcdctl (Debian), MinIO and Consul (built from their Go
# modules at pinned versions) — into a cache outside the clone. Idempotent: a second run only checks.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
. "$here/versions.sh"
mkdir -p "$KVDR_BIN_DIR"

log() { printf '[install] %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install_etcd() {
  if command -v etcd >/dev/null && command -v etcdctl >/dev/null; then return; fi
  log "etcd: installing etcd-server and etcd-client $KVDR_ETCD_DEB_VERSION from Debian"
  # Fall back to the distribution's current build if the pinned one has been superseded.
  apt_install "etcd-server=$KVDR_ETCD_DEB_VERSION" "etcd-client=$KVDR_ETCD_DEB_VERSION" \
    || { log "etcd: pinned $KVDR_ETCD_DEB_VERSION unavailable, installing the current package"; apt_install etcd-server etcd-client; }
}

install_minio() {
  local target="$KVDR_BIN_DIR/minio-$KVDR_MINIO_VERSION"
  if [ ! -x "$target" ]; then
    log "minio: building github.com/minio/minio@$KVDR_MINIO_VERSION (first time only, several minutes)"
    local gobin; gobin="$(mktemp -d)"
    GOBIN="$gobin" GOFLAGS=-buildvcs=false go install "github.com/minio/minio@$KVDR_MINIO_VERSION"
    mv "$gobin/minio" "$target"
    rmdir "$gobin"
  fi
  ln -sfn "$target" "$KVDR_BIN_DIR/minio"
}

# Consul's go.mod has replace directives, so `go install consul@version` refuses it. A wrapper module
# that requires it (and carries over Consul's exclude lines) builds the same main package.
install_consul() {
  local target="$KVDR_BIN_DIR/consul-$KVDR_CONSUL_VERSION"
  if [ ! -x "$target" ]; then
    log "consul: building github.com/hashicorp/consul@$KVDR_CONSUL_VERSION via a wrapper module (first time only, several minutes)"
    local src="$KVDR_CACHE_DIR/src/consul-wrapper-$KVDR_CONSUL_VERSION"
    rm -rf "$src"; mkdir -p "$src"
    cat >"$src/go.mod" <<MOD
module kvdr.local/consul-wrapper

go 1.25

exclude (
	github.com/hashicorp/go-msgpack v1.1.5
	github.com/hashicorp/go-msgpack v1.1.6
)
MOD
    (cd "$src" && GOFLAGS=-buildvcs=false go get "github.com/hashicorp/consul@$KVDR_CONSUL_VERSION" \
      && GOFLAGS=-buildvcs=false go build -trimpath -o "$target.tmp" github.com/hashicorp/consul \
      && mv "$target.tmp" "$target")
  fi
  ln -sfn "$target" "$KVDR_BIN_DIR/consul"
}

install_etcd35() {
  local target="$KVDR_BIN_DIR/etcd-$KVDR_ETCD35_VERSION"
  if [ ! -x "$target" ]; then
    log "etcd: building go.etcd.io/etcd/server/v3@$KVDR_ETCD35_VERSION via a wrapper module (first time only, about a minute)"
    local src="$KVDR_CACHE_DIR/src/etcd-wrapper-$KVDR_ETCD35_VERSION" v="$KVDR_ETCD35_VERSION"
    rm -rf "$src"; mkdir -p "$src"
    printf 'module kvdr.local/etcd-wrapper\n\ngo 1.22\n' >"$src/go.mod"
    (cd "$src" && GOFLAGS=-buildvcs=false go get "go.etcd.io/etcd/server/v3@$v" "go.etcd.io/etcd/api/v3@$v" \
        "go.etcd.io/etcd/client/pkg/v3@$v" "go.etcd.io/etcd/client/v2@$KVDR_ETCD35_CLIENT_V2_VERSION" \
        "go.etcd.io/etcd/client/v3@$v" "go.etcd.io/etcd/pkg/v3@$v" "go.etcd.io/etcd/raft/v3@$v" \
      && GOFLAGS=-buildvcs=false go build -trimpath -o "$target.tmp" go.etcd.io/etcd/server/v3 \
      && mv "$target.tmp" "$target")
  fi
  ln -sfn "$target" "$KVDR_BIN_DIR/etcd35"
}

install_tools() {
  # docker-compose validates docker-compose.yml in a test (no Docker engine runs here).
  command -v docker-compose >/dev/null || { log "installing docker-compose (Debian)"; apt_install docker-compose; }
  # Chromium renders the HTML audit report in a test.
  command -v chromium >/dev/null || { log "installing chromium (Debian)"; apt_install chromium; }
}

what="${1:-all}"
case "$what" in
  etcd) install_etcd ;;
  etcd35) install_etcd35 ;;
  minio) install_minio ;;
  consul) install_consul ;;
  tools) install_tools ;;
  all) install_etcd; install_tools; install_minio; install_consul; install_etcd35 ;;
  *) echo "usage: $0 [all|etcd|etcd35|minio|consul|tools]" >&2; exit 2 ;;
esac
log "ready: $(etcd --version 2>/dev/null | head -1 || true) (and $KVDR_ETCD35_VERSION); minio $KVDR_MINIO_VERSION; consul $KVDR_CONSUL_VERSION (cached in $KVDR_BIN_DIR)"
