#!/usr/bin/env bash
# Installs the real services kvdr needs — etcd/etcdctl (Debian), MinIO and Consul (built from their Go
# modules at pinned versions) — into a cache outside the clone. Idempotent: a second run only checks.
# Parts helm and kubevalidate bring what checks the Helm chart: helm (built from its Go module; run alone,
# `install-services.sh helm` prints the binary's path) and a venv with kubernetes-validate plus the
# prometheus-operator CRDs (run alone it prints the venv's python, then the CRD directory).
# Part prometheus builds Prometheus and promtool (the alert rules' tests); run alone it prints the two paths.
# Part pxkvdb builds the test tool test/tools/pxkvdb (Portworx's KVDB library behind a CLI); run alone
# (`install-services.sh pxkvdb`) it prints the path of that binary on stdout, for the test harness.
# Missing prerequisites (go, curl, python3, root for apt-get) fail in one line before any work starts.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
. "$here/versions.sh"

log() { printf '[install] %s\n' "$*" >&2; }
warn() { printf '[install] warning: %s\n' "$*" >&2; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

# How to run apt-get: as root, or through passwordless sudo; fails when neither is possible.
apt_runner() {
  command -v apt-get >/dev/null || return 1
  if [ "$(id -u)" = 0 ]; then echo env; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then echo "sudo -n env"; else return 1; fi
}
apt_updated=0
apt_install() {
  local runner; runner="$(apt_runner)" || die "apt-get install $* needs root (or passwordless sudo)"
  if [ "$apt_updated" = 0 ]; then
    $runner DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  $runner DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --allow-downgrades "$@" >/dev/null
}

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]; } # $1 >= $2

# What `etcd --version` / `etcdctl version` on PATH report; empty when missing.
etcd_version() { command -v etcd >/dev/null && etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p' | head -n 1; }
etcdctl_version() { command -v etcdctl >/dev/null && etcdctl version 2>/dev/null | sed -n 's/^etcdctl version: //p' | head -n 1; }
etcd_found() { # "etcd X (path), etcdctl Y (path)" for messages
  printf 'etcd %s (%s), etcdctl %s (%s)' "$(etcd_version || true)" "$(command -v etcd || echo missing)" \
    "$(etcdctl_version || true)" "$(command -v etcdctl || echo missing)"
}
etcd_pinned() { [ "$(etcd_version || true)" = "$KVDR_ETCD_VERSION" ] && [ "$(etcdctl_version || true)" = "$KVDR_ETCD_VERSION" ]; }

# What each part would have to do; nothing when it is installed (the fast, cached path).
needs_etcd() { ! etcd_pinned; }
needs_minio() { [ ! -x "$KVDR_BIN_DIR/minio-$KVDR_MINIO_VERSION" ]; }
needs_consul() { [ ! -x "$KVDR_BIN_DIR/consul-$KVDR_CONSUL_VERSION" ]; }
needs_etcd35() { [ ! -x "$KVDR_BIN_DIR/etcd-$KVDR_ETCD35_VERSION" ]; }
needs_pxkvdb() { [ ! -x "$(pxkvdb_target)" ]; }

# pxkvdb is built from the sources in this clone, so its binary is named by a hash of them: an edit
# (or a new pinned library version in its go.mod) builds a new one, and an unchanged tree reuses it.
pxkvdb_src="$(cd "$here/.." && pwd)/test/tools/pxkvdb"
pxkvdb_target() {
  local hash
  hash="$(cd "$pxkvdb_src" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-12)"
  printf '%s/pxkvdb-%s' "$KVDR_BIN_DIR" "$hash"
}

# Checks, before any work starts, what the parts about to be installed need; fails with one line.
preflight() {
  local missing=() part builds=0 packages=()
  # curl and python3: scripts/services.sh probes readiness and picks free ports with them.
  command -v curl >/dev/null || missing+=("curl")
  command -v python3 >/dev/null || missing+=("python3")
  mkdir -p "$KVDR_BIN_DIR" 2>/dev/null || missing+=("a writable cache directory $KVDR_BIN_DIR (set KVDR_CACHE_DIR)")
  for part in "$@"; do
    case "$part" in
      minio|consul|etcd35|pxkvdb|helm|kubevalidate|prometheus) needs_"$part" && builds=1 ;;
      tools)
        command -v docker-compose >/dev/null || packages+=(docker-compose)
        command -v chromium >/dev/null || packages+=(chromium)
        command -v zstd >/dev/null || packages+=(zstd) ;;
      # A different etcd already installed only earns a warning when apt-get cannot replace it.
      etcd) needs_etcd && { command -v etcd >/dev/null && command -v etcdctl >/dev/null || packages+=(etcd-server etcd-client); } ;;
    esac
  done
  if [ "$builds" = 1 ]; then
    if ! command -v go >/dev/null; then
      missing+=("go >= $KVDR_GO_MIN_VERSION (to build the pinned MinIO, Consul, etcd 3.5 and test/tools/pxkvdb)")
    else
      local have toolchain; have="$(go env GOVERSION 2>/dev/null)"; have="${have#go}"; toolchain="$(go env GOTOOLCHAIN 2>/dev/null)"
      if ! version_ge "$have" "$KVDR_GO_MIN_VERSION" && { [ "$toolchain" = local ] || ! version_ge "$have" 1.21; }; then
        missing+=("go >= $KVDR_GO_MIN_VERSION (found go$have, GOTOOLCHAIN=${toolchain:-unset})")
      fi
    fi
  fi
  if [ ${#packages[@]} -gt 0 ] && ! apt_runner >/dev/null; then
    missing+=("root or passwordless sudo for apt-get, to install ${packages[*]} (or install them yourself)")
  fi
  [ ${#missing[@]} = 0 ] || die "missing prerequisites: $(IFS='|'; echo "${missing[*]}" | sed 's/|/; /g'); provide them and run again"
}

install_etcd() {
  etcd_pinned && return
  local pinned="etcd $KVDR_ETCD_VERSION (Debian etcd-server/etcd-client $KVDR_ETCD_DEB_VERSION)"
  if ! apt_runner >/dev/null; then
    # preflight has already failed when etcd is missing altogether.
    warn "found $(etcd_found); kvdr pins $pinned and cannot install it without root; continuing with what is installed"
    return
  fi
  log "etcd: installing $pinned; found $(etcd_found)"
  if ! apt_install "etcd-server=$KVDR_ETCD_DEB_VERSION" "etcd-client=$KVDR_ETCD_DEB_VERSION"; then
    if command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
      warn "the pinned $pinned is not available from apt; continuing with $(etcd_found)"
    else
      apt_install etcd-server etcd-client
      warn "the pinned $pinned is not available from apt; installed Debian's current one: $(etcd_found)"
    fi
    return
  fi
  # An etcd earlier on PATH than Debian's /usr/bin one still wins.
  etcd_pinned || warn "installed $pinned, but PATH finds $(etcd_found) first"
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

install_pxkvdb() {
  [ -f "$pxkvdb_src/go.mod" ] || die "pxkvdb: $pxkvdb_src/go.mod is missing; run from a complete clone of kvdr"
  grep -Fq "github.com/portworx/kvdb $KVDR_PXKVDB_KVDB_VERSION" "$pxkvdb_src/go.mod" \
    || die "pxkvdb: $pxkvdb_src/go.mod does not require github.com/portworx/kvdb $KVDR_PXKVDB_KVDB_VERSION (scripts/versions.sh); make them agree"
  local target tmp; target="$(pxkvdb_target)"
  if [ ! -x "$target" ]; then
    log "pxkvdb: building test/tools/pxkvdb with github.com/portworx/kvdb@$KVDR_PXKVDB_KVDB_VERSION (first time only, under a minute)"
    tmp="$(mktemp "$target.tmp-XXXXXX")"
    # -mod=readonly: the committed go.sum pins every module; a build never edits go.mod or go.sum.
    if ! (cd "$pxkvdb_src" && GOFLAGS="-buildvcs=false -mod=readonly" go build -trimpath -o "$tmp" .); then
      rm -f "$tmp"; die "pxkvdb: go build in $pxkvdb_src failed (see above)"
    fi
    mv "$tmp" "$target"
  fi
  ln -sfn "$target" "$KVDR_BIN_DIR/pxkvdb"
}

# The chart's tools need Go >= 1.26 (helm 3.22, controller-gen 0.23 and the prometheus-operator API
# module declare it); with GOTOOLCHAIN=local an older Go cannot fetch that toolchain itself.
need_go126() {
  local have toolchain; have="$(go env GOVERSION 2>/dev/null)"; have="${have#go}"; toolchain="$(go env GOTOOLCHAIN 2>/dev/null)"
  version_ge "$have" 1.26 || { [ "$toolchain" != local ] && version_ge "$have" 1.21; } \
    || die "$1 needs go >= 1.26 (found go$have, GOTOOLCHAIN=${toolchain:-unset}); install it or set GOTOOLCHAIN=auto"
}

helm_target() { printf '%s/helm-%s' "$KVDR_BIN_DIR" "$KVDR_HELM_VERSION"; }
needs_helm() { [ ! -x "$(helm_target)" ]; }
install_helm() {
  local target gobin major minor flags; target="$(helm_target)"
  [ -x "$target" ] && return
  need_go126 "helm $KVDR_HELM_VERSION"
  log "helm: building helm.sh/helm/v3/cmd/helm@$KVDR_HELM_VERSION (first time only, about 4 minutes)"
  major="${KVDR_HELM_KUBE_VERSION%%.*}"; minor="${KVDR_HELM_KUBE_VERSION#*.}"
  # What helm's own release build stamps: its version, and the Kubernetes version it renders for by default.
  flags="-X helm.sh/helm/v3/internal/version.version=$KVDR_HELM_VERSION"
  for pkg in pkg/chartutil pkg/lint/rules; do
    flags="$flags -X helm.sh/helm/v3/$pkg.k8sVersionMajor=$major -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$minor"
  done
  gobin="$(mktemp -d)"
  GOBIN="$gobin" GOFLAGS=-buildvcs=false go install -trimpath -ldflags "$flags" "helm.sh/helm/v3/cmd/helm@$KVDR_HELM_VERSION" \
    || { rm -rf "$gobin"; die "helm: go install failed (see above)"; }
  mv "$gobin/helm" "$target"; rmdir "$gobin"
}

kubevalidate_venv() { printf '%s/venv/kubernetes-validate-%s' "$KVDR_CACHE_DIR" "$KVDR_KUBERNETES_VALIDATE_VERSION"; }
kubevalidate_crds() { printf '%s/crds/prometheus-operator-%s' "$KVDR_CACHE_DIR" "$KVDR_PROMETHEUS_OPERATOR_APIS_VERSION"; }
needs_kubevalidate() { [ ! -x "$(kubevalidate_venv)/bin/python" ] || [ ! -d "$(kubevalidate_crds)" ]; }
install_kubevalidate() {
  local venv crds tmp; venv="$(kubevalidate_venv)"; crds="$(kubevalidate_crds)"
  if [ ! -x "$venv/bin/python" ]; then
    log "kubernetes-validate: installing $KVDR_KUBERNETES_VALIDATE_VERSION into $venv (first time only)"
    rm -rf "$venv.tmp"; mkdir -p "$(dirname "$venv")"
    # Debian's python3 makes venvs only with python3-venv (ensurepip).
    python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
    python3 -m venv "$venv.tmp" && "$venv.tmp/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KVDR_KUBERNETES_VALIDATE_VERSION" \
      || { rm -rf "$venv.tmp"; die "kubernetes-validate: pip install failed (see above)"; }
    mv "$venv.tmp" "$venv"
  fi
  [ -d "$crds" ] && return
  need_go126 "the prometheus-operator CRDs"
  local gen="$KVDR_BIN_DIR/controller-gen-$KVDR_CONTROLLER_GEN_VERSION" module="github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring"
  if [ ! -x "$gen" ]; then
    log "controller-gen: building sigs.k8s.io/controller-tools/cmd/controller-gen@$KVDR_CONTROLLER_GEN_VERSION (first time only, about a minute)"
    tmp="$(mktemp -d)"
    GOBIN="$tmp" GOFLAGS=-buildvcs=false go install "sigs.k8s.io/controller-tools/cmd/controller-gen@$KVDR_CONTROLLER_GEN_VERSION" \
      || { rm -rf "$tmp"; die "controller-gen: go install failed (see above)"; }
    mv "$tmp/controller-gen" "$gen"; rmdir "$tmp"
  fi
  log "prometheus-operator CRDs: generating from $module@$KVDR_PROMETHEUS_OPERATOR_APIS_VERSION"
  # Outside any Go module, so no go.mod or go.sum is touched.
  local dir; dir="$(cd "$KVDR_CACHE_DIR" && go mod download -json "$module@$KVDR_PROMETHEUS_OPERATOR_APIS_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')" \
    || die "prometheus-operator CRDs: go mod download $module@$KVDR_PROMETHEUS_OPERATOR_APIS_VERSION failed"
  rm -rf "$crds.tmp"; mkdir -p "$crds.tmp"
  (cd "$dir" && GOFLAGS=-buildvcs=false "$gen" crd paths=./v1/... output:crd:dir="$crds.tmp") \
    || { rm -rf "$crds.tmp"; die "prometheus-operator CRDs: controller-gen failed (see above)"; }
  mv "$crds.tmp" "$crds"
}

# Prometheus and promtool from the one Go module (cmd/prometheus, cmd/promtool). The web UI's assets are
# left out (they are embedded only with the builtinassets tag, built with npm); the HTTP API is all here.
prometheus_target() { printf '%s/%s-%s' "$KVDR_BIN_DIR" "$1" "$KVDR_PROMETHEUS_VERSION"; }
needs_prometheus() { [ ! -x "$(prometheus_target prometheus)" ] || [ ! -x "$(prometheus_target promtool)" ]; }
install_prometheus() {
  needs_prometheus || return 0
  local have toolchain gobin m="github.com/prometheus/prometheus"
  have="$(go env GOVERSION 2>/dev/null)"; have="${have#go}"; toolchain="$(go env GOTOOLCHAIN 2>/dev/null)"
  version_ge "$have" "$KVDR_PROMETHEUS_GO_MIN_VERSION" || { [ "$toolchain" != local ] && version_ge "$have" 1.21; } \
    || die "prometheus $KVDR_PROMETHEUS_VERSION needs go >= $KVDR_PROMETHEUS_GO_MIN_VERSION (found go$have, GOTOOLCHAIN=${toolchain:-unset}); install it or set GOTOOLCHAIN=auto"
  log "prometheus: building $m/cmd/prometheus and cmd/promtool@$KVDR_PROMETHEUS_VERSION (first time only, about 15 minutes)"
  gobin="$(mktemp -d)"
  GOBIN="$gobin" GOFLAGS=-buildvcs=false go install -trimpath "$m/cmd/prometheus@$KVDR_PROMETHEUS_VERSION" "$m/cmd/promtool@$KVDR_PROMETHEUS_VERSION" \
    || { rm -rf "$gobin"; die "prometheus: go install failed (see above)"; }
  mv "$gobin/prometheus" "$(prometheus_target prometheus)"; mv "$gobin/promtool" "$(prometheus_target promtool)"; rmdir "$gobin"
}

install_tools() {
  # docker-compose validates docker-compose.yml in a test (no Docker engine runs here).
  command -v docker-compose >/dev/null || { log "installing docker-compose (Debian)"; apt_install docker-compose; }
  # Chromium renders the HTML audit report in a test.
  command -v chromium >/dev/null || { log "installing chromium (Debian)"; apt_install chromium; }
  # zstd (the reference decoder) proves a `compression: zstd` artifact reads back with `zstd -d`.
  command -v zstd >/dev/null || { log "installing zstd (Debian)"; apt_install zstd; }
}

what="${1:-all}"
case "$what" in
  etcd|etcd35|minio|consul|tools) parts=("$what") ;;
  pxkvdb) preflight pxkvdb; install_pxkvdb; pxkvdb_target; echo; exit 0 ;;
  prometheus) preflight prometheus; install_prometheus; prometheus_target prometheus; echo; prometheus_target promtool; echo; exit 0 ;;
  helm) preflight helm; install_helm; helm_target; echo; exit 0 ;;
  kubevalidate) preflight kubevalidate; install_kubevalidate; echo "$(kubevalidate_venv)/bin/python"; kubevalidate_crds; echo; exit 0 ;;
  all) parts=(etcd tools minio consul etcd35 pxkvdb helm kubevalidate prometheus) ;;
  *) echo "usage: $0 [all|etcd|etcd35|minio|consul|tools|pxkvdb|helm|kubevalidate|prometheus]" >&2; exit 2 ;;
esac
preflight "${parts[@]}"
for part in "${parts[@]}"; do install_"$part"; done
log "ready: $(etcd --version 2>/dev/null | head -1 || true) (and $KVDR_ETCD35_VERSION); minio $KVDR_MINIO_VERSION; consul $KVDR_CONSUL_VERSION; pxkvdb (portworx/kvdb $KVDR_PXKVDB_KVDB_VERSION) (cached in $KVDR_BIN_DIR)"
