#!/usr/bin/env bash
# Builds etcd and kube-apiserver from source through the Go module proxy and
# caches the binaries outside the repo, so the real-cluster tests need nothing
# but Go on a fresh machine. A second run finds the cache and does nothing.
#
#   ETCD_VERSION, KUBE_VERSION   override the pinned versions (rarely useful)
#   CLUSTERDNS_TEST_CACHE        cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/clusterdns-test)
#
# Prints the two binary paths on its last two lines:
#   etcd=/path/to/etcd
#   kube-apiserver=/path/to/kube-apiserver
set -euo pipefail

ETCD_VERSION=${ETCD_VERSION:-v3.5.21}
KUBE_VERSION=${KUBE_VERSION:-v1.33.13}
# The staging modules (k8s.io/api, client-go, ...) are published as v0.X.Y for
# kubernetes v1.X.Y.
STAGING_VERSION=v0.${KUBE_VERSION#v1.}
CACHE=${CLUSTERDNS_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clusterdns-test}
ETCD_DIR=$CACHE/etcd-$ETCD_VERSION
KUBE_DIR=$CACHE/kube-apiserver-$KUBE_VERSION
ETCD_BIN=$ETCD_DIR/etcd
KUBE_BIN=$KUBE_DIR/kube-apiserver

log() { printf 'build.sh: %s\n' "$*" >&2; }

report() {
  echo "etcd=$ETCD_BIN"
  echo "kube-apiserver=$KUBE_BIN"
}

if [ -x "$ETCD_BIN" ] && [ -x "$KUBE_BIN" ]; then
  log "cached, nothing to build"
  report
  exit 0
fi

command -v go >/dev/null 2>&1 || { log "go is not installed"; exit 1; }
mkdir -p "$CACHE"

# Several test binaries may start at once; only one of them builds, the
# others wait here and then find the cache filled.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.build.lock"
  flock 9
  if [ -x "$ETCD_BIN" ] && [ -x "$KUBE_BIN" ]; then
    log "built by a concurrent run"
    report
    exit 0
  fi
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/clusterdns-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Throwaway modules must not see a go.work of whatever directory we came from;
# nice keeps the long compile from starving interactive work and other tests.
export GOWORK=off CGO_ENABLED=0 GOFLAGS=-buildvcs=false
GO="nice -n 10 go"

build_etcd() {
  [ -x "$ETCD_BIN" ] && return 0
  log "building etcd $ETCD_VERSION (about 1 minute cold)"
  local dir=$WORK/etcd
  mkdir -p "$dir"
  # `go install ...@version` refuses modules with replace directives, so the
  # server is required from a module of our own and built from there.
  cat >"$dir/go.mod" <<EOF
module clusterdns.test/build/etcd

go 1.23

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  cat >"$dir/tools.go" <<'EOF'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
EOF
  (cd "$dir" && $GO mod tidy && $GO build -trimpath -ldflags "-s -w" -o "$dir/etcd" go.etcd.io/etcd/server/v3)
  mkdir -p "$ETCD_DIR"
  # Rename is atomic, so a concurrent reader never sees half a binary.
  mv "$dir/etcd" "$ETCD_BIN.tmp"
  mv "$ETCD_BIN.tmp" "$ETCD_BIN"
}

# staging_replaces prints the k8s.io staging modules (k8s.io/api, client-go,
# ...) that k8s.io/kubernetes's go.mod replaces by ./staging/src/ directories:
# a module download does not carry those directories, so each must be
# replaced by its published version instead.
staging_replaces() {
  local gomod
  # Outside any module: inside ours the v0.0.0 requirements would not resolve yet.
  mkdir -p "$WORK/probe"
  gomod=$(cd "$WORK/probe" && $GO mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$gomod" ] || { log "no go.mod for k8s.io/kubernetes@$KUBE_VERSION"; return 1; }
  # Both forms: inside a replace ( ... ) block and single-line replace.
  awk '
    /^replace[[:space:]]*\($/ { inrep = 1; next }
    inrep && /^\)/ { inrep = 0; next }
    { line = $0; sub(/^[[:space:]]*(replace[[:space:]]+)?/, "", line) }
    (inrep || $1 == "replace") && line ~ /=>[[:space:]]*\.\/staging\/src\// {
      split(line, f, /[[:space:]]+/)
      if (f[1] ~ /^k8s\.io\//) print f[1]
    }
  ' "$gomod" | sort -u
}

build_kube() {
  [ -x "$KUBE_BIN" ] && return 0
  log "building kube-apiserver $KUBE_VERSION (about 12 minutes cold on 2 cores)"
  local dir=$WORK/kube
  mkdir -p "$dir"
  cat >"$dir/go.mod" <<EOF
module clusterdns.test/build/kube

go 1.24.0

godebug default=go1.24

require k8s.io/kubernetes $KUBE_VERSION
EOF
  cat >"$dir/tools.go" <<'EOF'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
EOF
  local mods n=0 m
  mods=$(staging_replaces)
  for m in $mods; do
    (cd "$dir" && go mod edit -replace="$m=$m@$STAGING_VERSION")
    n=$((n + 1))
  done
  [ "$n" -gt 0 ] || { log "found no staging modules in k8s.io/kubernetes@$KUBE_VERSION go.mod"; return 1; }
  log "replacing $n k8s.io staging modules with $STAGING_VERSION"
  (cd "$dir" && $GO mod tidy &&
    $GO build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION" \
      -o "$dir/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
  mkdir -p "$KUBE_DIR"
  mv "$dir/kube-apiserver" "$KUBE_BIN.tmp"
  mv "$KUBE_BIN.tmp" "$KUBE_BIN"
}

start=$(date +%s)
build_etcd
build_kube
log "built in $(($(date +%s) - start))s"
"$ETCD_BIN" --version >&2
"$KUBE_BIN" --version >&2
report
