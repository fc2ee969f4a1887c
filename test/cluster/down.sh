#!/usr/bin/env bash
# Stops what up.sh started, by PID, and removes the state dir. Idempotent.
#
#   down.sh            stop kube-apiserver and etcd, remove CLUSTERDNS_TEST_STATE
#   down.sh apiserver  stop only kube-apiserver and keep everything else, for
#                      outage tests; up.sh brings it back on the same port
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
STATE=${CLUSTERDNS_TEST_STATE:-/tmp/clusterdns-test-cluster-$(id -u)}
# shellcheck source=SCRIPTDIR/lib.sh
. "$HERE/lib.sh"

[ -d "$STATE" ] || exit 0

# Same lock as up.sh: a stop never races a start.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$STATE/.lock"
  flock 9
fi

case ${1:-all} in
apiserver)
  stop_proc "$STATE/apiserver.pid" kube-apiserver
  exit 0
  ;;
all) ;;
*)
  echo "usage: down.sh [apiserver]" >&2
  exit 2
  ;;
esac

stop_proc "$STATE/apiserver.pid" kube-apiserver
stop_proc "$STATE/etcd.pid" etcd
# When the watchdog itself runs this script it has exec'd into it: $$ is its
# PID and it must not wait for itself.
if [ -f "$STATE/watchdog.pid" ] && [ "$(cat "$STATE/watchdog.pid")" != "$$" ]; then
  stop_proc "$STATE/watchdog.pid" clusterdns-test-watchdog
fi
# Only remove what looks like our state dir: never an arbitrary directory a
# mistyped variable points at.
if [ -f "$STATE/ports.env" ] || [ -d "$STATE/pki" ]; then
  rm -rf "$STATE"
else
  echo "down.sh: $STATE does not look like a clusterdns test state dir; left in place" >&2
fi
