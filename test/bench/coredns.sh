#!/usr/bin/env bash
# Builds CoreDNS at a pinned release through the Go module proxy and caches the
# binary outside the repo; a second run finds the cache and does nothing.
# CoreDNS code never enters this repository: `go install mod@version` builds
# it in a throwaway module of its own, from a temporary directory, with
# exactly the dependency versions of the release's go.mod.
#
#   COREDNS_VERSION         default v1.14.7 (the release issue 5 measured)
#   CLUSTERDNS_TEST_CACHE   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/clusterdns-test)
#
# Prints "coredns=/path/to/coredns" on its last line.
set -euo pipefail

COREDNS_VERSION=${COREDNS_VERSION:-v1.14.7}
CACHE=${CLUSTERDNS_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clusterdns-test}
DIR=$CACHE/coredns-$COREDNS_VERSION
BIN=$DIR/coredns

log() { printf 'coredns.sh: %s\n' "$*" >&2; }

if [ -x "$BIN" ]; then
  log "cached: $BIN"
  echo "coredns=$BIN"
  exit 0
fi
command -v go >/dev/null 2>&1 || { log "go is not installed"; exit 1; }
mkdir -p "$CACHE"

# One build at a time; a waiter finds the cache filled.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.coredns.lock"
  flock 9
  if [ -x "$BIN" ]; then
    echo "coredns=$BIN"
    exit 0
  fi
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/clusterdns-coredns.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

start=$(date +%s)
log "building CoreDNS $COREDNS_VERSION (several minutes cold on 2 cores)"
# GOWORK=off and a temporary working directory: no go.work or go.mod of ours
# takes part. nice keeps the compile from starving other work.
(cd "$WORK" && GOWORK=off GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOBIN="$WORK/bin" \
  nice -n 10 go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION")
mkdir -p "$DIR"
mv "$WORK/bin/coredns" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
log "built in $(($(date +%s) - start))s"
"$BIN" -version >&2
echo "coredns=$BIN"
