# Pinned versions of the real services kvdr is tested against. Sourced by the other scripts.
# etcd comes from Debian (bookworm ships 3.4.23); MinIO and Consul are built from their Go modules.
KVDR_ETCD_DEB_VERSION="3.4.23-4+b4"
# The etcd version that Debian package carries (what `etcd --version` reports); install-services.sh checks it.
KVDR_ETCD_VERSION="3.4.23"
# MinIO stopped tagging semver releases; the Go module proxy serves commits as pseudo-versions.
KVDR_MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
# 1.20.1 is the newest release whose in-tree modules (api, sdk, proto-public, envoyextensions,
# troubleshoot) and dependencies are all in the checksum database; 1.20.6+ need an unlisted consul-awsauth.
KVDR_CONSUL_VERSION="v1.20.1"
# etcd 3.5 for the snapshot reader's tests (Debian ships 3.4): built from its Go module through a wrapper,
# since go.etcd.io/etcd/server/v3's go.mod has replace directives.
KVDR_ETCD35_VERSION="v3.5.17"
KVDR_ETCD35_CLIENT_V2_VERSION="v2.305.17"
# The oldest Go that builds the above with GOTOOLCHAIN=local: MinIO needs 1.24, the Consul wrapper module
# declares 1.25. (With GOTOOLCHAIN=auto, go >= 1.21 fetches that toolchain itself.)
KVDR_GO_MIN_VERSION="1.25"
# Where built binaries are cached, outside any clone, so a second install is instant.
KVDR_CACHE_DIR="${KVDR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kvdr}"
KVDR_BIN_DIR="$KVDR_CACHE_DIR/bin"
