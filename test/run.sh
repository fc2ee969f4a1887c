#!/usr/bin/env bash
# The one test command: what the README tells people to run and what CI runs.
# It installs or builds what the tests need (idempotently, cached outside the
# repo), checks formatting and static analysis, runs every test with the
# race detector, then fuzzes each fuzz target for a bounded time (FUZZTIME,
# default 20s each). Long suites (soak, large-scale load) are not part of it.
set -euo pipefail
cd "$(dirname "$0")/.."

STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2

step() { printf '\n== %s\n' "$*"; }

step "tools (dig, dnsperf, openssl)"
bash test/tools/install.sh || echo "WARNING: tool install failed; tests that need them will skip" >&2

step "real control plane binaries (etcd, kube-apiserver; cached after the first build)"
if ! bash test/cluster/build.sh; then
  if [ "${CI:-}" = true ]; then
    echo "FATAL: could not build etcd/kube-apiserver in CI" >&2
    exit 1
  fi
  echo "WARNING: could not build etcd/kube-apiserver; real-cluster tests will skip" >&2
fi

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi

step "go vet"
go vet ./...

step "staticcheck"
go run "$STATICCHECK" ./...

step "go test -race"
go test -race -count=1 -timeout 20m ./...

step "fuzz (each target ${FUZZTIME:-20s}; a crash fails the run and go keeps its input under testdata/fuzz/ as a regression seed)"
fuzz() { go test -run '^$' -fuzz "^$2\$" -fuzztime "${FUZZTIME:-20s}" -timeout 5m "$1"; }
fuzz ./server FuzzChain
fuzz ./server FuzzParseConfig
fuzz ./server/frontend FuzzParse
fuzz ./kubeindex FuzzNames
fuzz ./kubeindex FuzzDecodePod
fuzz ./forward FuzzMatches
