#!/usr/bin/env bash
# The load harness of issue 5: clusterdns against CoreDNS (and Unbound for
# the forwarded-name scenarios) on the same machine, over the same objects in
# a real control plane, with equivalent configuration, side by side.
#
#   test/bench/run.sh                      quick run (1,000 services, 10,000 endpoints)
#   FULL=1 test/bench/run.sh               issue size (10,000 services, 100,000 endpoints,
#                                          50,000 pods watched in verified mode)
#
# Duration on the 2-core test machine, tools cached: loading takes about 45 s
# for the FULL Services and endpoints and 2 min for its 50,000 Pods (two API
# writes each, ~430 Pods/s); with the default REPS and DURATION the
# scenarios, programming latency and relist take about 8 min more, so a
# FULL=1 run is about 11-12 min
# (FULL=1 SCENARIOS=cluster REPS=1 DURATION=3 PEERS=coredns: about 4 min).
#
# What it does, each step bounded in time and on loopback only:
#  1. installs dnsperf (and unbound when the distribution has it) with apt;
#     builds CoreDNS (coredns.sh), etcd and kube-apiserver (test/cluster/build.sh),
#     all cached outside the repo, and clusterdns and benchtool from this tree;
#  2. starts the control plane (test/cluster/up.sh) and loads N_SERVICES
#     Services, N_ENDPOINTS endpoints and N_PODS running Pods with 16 client
#     workers;
#  3. starts a stub upstream, then each server pinned to SERVER_CPU with the
#     same TTL, cache size and upstream (and, with N_PODS > 0, pod records in
#     verified mode), after the objects exist, so that each starts with a
#     full list of them (the peak RSS shows its cost); checks that every
#     cluster server answers a few Service and pod names exactly right;
#  4. runs each scenario REPS times, alternating servers (A B A B ...), with
#     dnsperf pinned to LOAD_CPU for DURATION seconds per run, and measures
#     the server's CPU time per answered query from /proc/PID/stat and, for
#     the Go servers, heap allocations per answered query from their
#     go_memstats_mallocs_total (scraped from /metrics before and after);
#  5. measures DNS programming latency (PROG_CHANGES API changes at PROG_RATE
#     per second, both servers polled at once), then memory: after the initial
#     list, after all traffic, and during a full relist forced by restarting
#     kube-apiserver;
#  6. prints the Markdown report (each issue-5 target met or not, then the
#     tables) and writes it to $RESULTS_DIR/results.md.
# On exit, however it exits, it stops everything it started.
#
# Parameters (environment):
#   N_SERVICES, N_ENDPOINTS   objects to load (default 1000, 10000; FULL=1: 10000, 100000)
#   N_PODS                    running Pods to load (default 0; FULL=1: 50000). Above 0 both
#                             servers watch Pods and answer pod records in verified mode
#                             (clusterdns kubernetes.pods: verified, CoreDNS pods verified),
#                             and the cluster scenario asks for pod records too
#                             (FULL=1 N_PODS=0: the issue's scenario without pods)
#   REPS                      repetitions per scenario and server (default 3)
#   DURATION                  seconds per dnsperf run (default 10)
#   CLIENTS, OUTSTANDING      dnsperf -c and -q (default 4, 100)
#   MAX_QPS                   dnsperf -Q rate cap, 0 for none (default 0: saturate; the
#                             latencies are then mostly queueing: OUTSTANDING/QPS. Set a
#                             rate both servers sustain to compare latency instead)
#   SCENARIOS                 subset of "cluster hit miss junk proglat" (default all)
#   PEERS                     subset of "coredns unbound" (default both; unbound only
#                             runs the hit and miss scenarios)
#   SERVER_CPU, LOAD_CPU      CPU for the servers / for dnsperf, stub and poller (0, 1)
#   CACHE_SIZE, TTL, ZONE     shared server settings (10000, 5, cluster.local)
#   COREDNS_LAYOUT            split (default): CoreDNS's cache covers only forwarded
#                             names, as clusterdns's cache does by default; single: one
#                             server block with cache in front of kubernetes, the stock
#                             CoreDNS Corefile, and clusterdns with cache.clusterZone on
#   COREDNS_VERSION           default v1.14.7
#   PROG_RATE, PROG_CHANGES   programming-latency load (50/s, 500 changes)
#   RELIST                    1 (default): restart kube-apiserver at the end to force a
#                             full relist and record the peak RSS during it; 0: skip
#   CLUSTERDNS_BIN            use this binary instead of building ./cmd/clusterdns
#   REQUIRE_CLUSTERDNS=1      fail instead of running the peers alone when clusterdns
#                             does not build
#   RESULTS_DIR               output directory (default: a new /tmp/clusterdns-bench.*)
set -euo pipefail

# One run at a time on a machine: runs pin to the same CPUs and ports, and a
# second one would skew both. BENCH_LOCK names the lock file.
exec 9>"${BENCH_LOCK:-/tmp/clusterdns-bench.lock}"
if ! flock -n 9; then
  echo "run.sh: another harness run holds ${BENCH_LOCK:-/tmp/clusterdns-bench.lock}; waiting" >&2
  flock 9
fi

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

if [ "${FULL:-0}" = 1 ]; then
  N_SERVICES=${N_SERVICES:-10000}
  N_ENDPOINTS=${N_ENDPOINTS:-100000}
  N_PODS=${N_PODS:-50000}
fi
N_SERVICES=${N_SERVICES:-1000}
N_ENDPOINTS=${N_ENDPOINTS:-10000}
N_PODS=${N_PODS:-0}
POD_MODE=disabled
[ "$N_PODS" -gt 0 ] && POD_MODE=verified
REPS=${REPS:-3}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-100}
MAX_QPS=${MAX_QPS:-0}
SCENARIOS=${SCENARIOS:-cluster hit miss junk proglat}
PEERS=${PEERS:-coredns unbound}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
CACHE_SIZE=${CACHE_SIZE:-10000}
TTL=${TTL:-5}
ZONE=${ZONE:-cluster.local}
COREDNS_LAYOUT=${COREDNS_LAYOUT:-split}
PROG_RATE=${PROG_RATE:-50}
PROG_CHANGES=${PROG_CHANGES:-500}
RELIST=${RELIST:-1}
STUB_TTL=3600 # longer than any run, so cache-hit entries never expire mid-run
MISS_RATE=120000 # names per second of a cache-miss file: above dnsperf's ceiling

RESULTS_DIR=${RESULTS_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/clusterdns-bench.XXXXXX")}
mkdir -p "$RESULTS_DIR"/{logs,conf,queries,bin}
RESULTS_DIR=$(cd "$RESULTS_DIR" && pwd)
RESULTS=$RESULTS_DIR/results.jsonl
REPORT=$RESULTS_DIR/results.md
BIN=$RESULTS_DIR/bin
LOGS=$RESULTS_DIR/logs
: >"$RESULTS"

log() { printf '\n== %s\n' "$*" >&2; }
warn() { printf '\n!!!!!!!! WARNING: %s\n\n' "$*" >&2; }
die() {
  printf 'run.sh: %s\n' "$*" >&2
  exit 1
}

# ---- cleanup: every process started here is recorded and stopped by PID.
PIDS=()
CLUSTER_STATE=$RESULTS_DIR/cluster
CLUSTER_UP=0
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$CLUSTER_UP" = 1 ]; then
    CLUSTERDNS_TEST_STATE=$CLUSTER_STATE bash "$ROOT/test/cluster/down.sh" >&2 || true
  fi
  rm -rf "$RESULTS_DIR"/queries/miss-*.txt "$BIN"
  echo "run.sh: results and logs in $RESULTS_DIR" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

has() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }

# ---- 1. tools
log "tools"
command -v taskset >/dev/null || die "taskset (util-linux) is required to pin servers and load"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
apt_updated=0
apt_install() { # apt_install PKG: best effort, one apt-get update at most
  command -v apt-get >/dev/null 2>&1 || return 1
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq || true
    apt_updated=1
  fi
  # policy-rc.d in container images keeps unbound's own service from starting;
  # we run our own instance with our own config either way.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$1" >/dev/null
}
command -v dnsperf >/dev/null || apt_install dnsperf || true
command -v dnsperf >/dev/null || die "dnsperf is missing and could not be installed"
if has "$PEERS" unbound && ! command -v unbound >/dev/null; then
  apt_install unbound || warn "unbound could not be installed; running without it"
fi
has "$PEERS" unbound && ! command -v unbound >/dev/null && PEERS=${PEERS//unbound/}
echo "dnsperf: $(dnsperf -h 2>&1 | sed -n 's/^Version //p')  unbound: $(command -v unbound >/dev/null && unbound -V 2>/dev/null | sed -n 's/^Version //p' || echo none)" >&2

# ---- 2. builds
log "builds"
(cd "$ROOT" && go build -o "$BIN/benchtool" ./test/bench/benchtool)
BT=$BIN/benchtool
IMPLS=()
if [ -n "${CLUSTERDNS_BIN:-}" ]; then
  cp "$CLUSTERDNS_BIN" "$BIN/clusterdns"
  IMPLS+=(clusterdns)
elif (cd "$ROOT" && go build -o "$BIN/clusterdns" ./cmd/clusterdns) 2>"$LOGS/clusterdns-build.log"; then
  IMPLS+=(clusterdns)
else
  cat "$LOGS/clusterdns-build.log" >&2
  [ "${REQUIRE_CLUSTERDNS:-0}" = 1 ] && die "clusterdns does not build"
  warn "clusterdns does not build: measuring the peers alone"
fi
COREDNS=""
if has "$PEERS" coredns; then
  start=$(date +%s)
  COREDNS=$(bash "$HERE/coredns.sh" | sed -n 's/^coredns=//p')
  echo "CoreDNS ready in $(($(date +%s) - start))s: $("$COREDNS" -version | head -1)" >&2
  IMPLS+=(coredns)
fi
has "$PEERS" unbound && IMPLS+=(unbound)
[ "${#IMPLS[@]}" -gt 0 ] || die "no server to measure"
bins=$(bash "$ROOT/test/cluster/build.sh") || die "test/cluster/build.sh failed"
export ETCD KUBE_APISERVER
ETCD=$(printf '%s\n' "$bins" | sed -n 's/^etcd=//p')
KUBE_APISERVER=$(printf '%s\n' "$bins" | sed -n 's/^kube-apiserver=//p')

# ---- 3. control plane and objects
log "control plane; loading $N_SERVICES services, $N_ENDPOINTS endpoints, $N_PODS pods"
CLUSTER_UP=1
# OWNER_PID: up.sh's watchdog brings the control plane down even if this
# script is killed with SIGKILL and its trap never runs.
KUBECONFIG_PATH=$(CLUSTERDNS_TEST_STATE=$CLUSTER_STATE CLUSTERDNS_TEST_OWNER_PID=$$ \
  bash "$ROOT/test/cluster/up.sh" | tail -n 1)
[ -f "$KUBECONFIG_PATH" ] || die "up.sh gave no kubeconfig"
KCONTEXT=clusterdns-test
taskset -c "$LOAD_CPU" "$BT" load -kubeconfig "$KUBECONFIG_PATH" \
  -services "$N_SERVICES" -endpoints "$N_ENDPOINTS" -pods "$N_PODS" -workers 16 -results "$RESULTS"
"$BT" queries -kubeconfig "$KUBECONFIG_PATH" -zone "$ZONE" -dir "$RESULTS_DIR/queries"

# ---- 4. stub upstream and servers
log "stub upstream and servers"
bg() { # bg LOGNAME CMD...: start CMD in the background, remember its PID
  local name=$1
  shift
  "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  PIDS+=($!)
  LAST_PID=$!
}
bg stub taskset -c "$LOAD_CPU" "$BT" stub -listen 127.0.0.1:0 -ttl "$STUB_TTL" -portfile "$RESULTS_DIR/stub.port"
for _ in $(seq 1 100); do
  [ -s "$RESULTS_DIR/stub.port" ] && break
  kill -0 "$LAST_PID" 2>/dev/null || die "stub exited: $(cat "$LOGS/stub.log")"
  sleep 0.1
done
STUB=127.0.0.1:$(cat "$RESULTS_DIR/stub.port")

mapfile -t P < <("$BT" ports -n 6)
declare -A PORT PID
PORT[clusterdns]=${P[0]}
PORT[coredns]=${P[1]}
PORT[unbound]=${P[2]}
METRICS_CLUSTERDNS=127.0.0.1:${P[3]}
METRICS_COREDNS=127.0.0.1:${P[4]}
# Where perf scrapes go_memstats_mallocs_total for allocations per query;
# unbound has no such metric (empty: not measured).
declare -A METRICS=([clusterdns]=$METRICS_CLUSTERDNS [coredns]=$METRICS_COREDNS [unbound]="")

cluster_zone_cache=false
[ "$COREDNS_LAYOUT" = single ] && cluster_zone_cache=true
cat >"$RESULTS_DIR/conf/clusterdns.yaml" <<EOF
listen: ["127.0.0.1:${PORT[clusterdns]}"]
limits: {udpSockets: 1}
http: {metrics: "$METRICS_CLUSTERDNS", health: "", ready: ""}
cache: {size: $CACHE_SIZE, clusterZone: $cluster_zone_cache}
forward: {upstreams: ["$STUB"]}
kubernetes: {zone: $ZONE, kubeconfig: $KUBECONFIG_PATH, ttl: $TTL, pods: $POD_MODE}
EOF

# CoreDNS: kubernetes, cache and forward with the same TTL, capacity and
# upstream and pod mode; prometheus on in every server block, as
# clusterdns's /metrics is (it also gives go_memstats_mallocs_total for
# allocations per query).
kube_block="kubernetes $ZONE in-addr.arpa ip6.arpa {
        kubeconfig $KUBECONFIG_PATH $KCONTEXT
        pods $POD_MODE
        ttl $TTL"
cache_block="cache 3600 {
        success $CACHE_SIZE
        denial $CACHE_SIZE
    }"
if [ "$COREDNS_LAYOUT" = single ]; then
  cat >"$RESULTS_DIR/conf/Corefile" <<EOF
.:${PORT[coredns]} {
    bind 127.0.0.1
    prometheus $METRICS_COREDNS
    $kube_block
        fallthrough in-addr.arpa ip6.arpa
    }
    $cache_block
    forward . $STUB
}
EOF
else
  cat >"$RESULTS_DIR/conf/Corefile" <<EOF
$ZONE:${PORT[coredns]} in-addr.arpa:${PORT[coredns]} ip6.arpa:${PORT[coredns]} {
    bind 127.0.0.1
    prometheus $METRICS_COREDNS
    $kube_block
    }
}
.:${PORT[coredns]} {
    bind 127.0.0.1
    prometheus $METRICS_COREDNS
    $cache_block
    forward . $STUB
}
EOF
fi

# Unbound: a forwarding cache in front of the same stub, one thread.
mkdir -p "$RESULTS_DIR/unbound"
cat >"$RESULTS_DIR/conf/unbound.conf" <<EOF
server:
    interface: 127.0.0.1
    port: ${PORT[unbound]}
    do-ip6: no
    num-threads: 1
    so-reuseport: no
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    username: ""
    chroot: ""
    directory: "$RESULTS_DIR/unbound"
    pidfile: "$RESULTS_DIR/unbound/unbound.pid"
    logfile: ""
    use-syslog: no
    verbosity: 1
    module-config: "iterator"
    # Unbound sizes its caches in bytes, not entries: its defaults hold
    # more than the hit set and about as much as CACHE_SIZE small answers.
    msg-cache-size: 4m
    rrset-cache-size: 4m
    cache-max-ttl: 3600
    prefetch: no
    qname-minimisation: no
    num-queries-per-thread: 4096
remote-control:
    control-enable: no
forward-zone:
    name: "."
    forward-addr: ${STUB/:/@}
EOF

SENTINEL=sentinel.bench-000.svc.$ZONE
# The pod sentinel (benchtool load: 10.127.255.250, after every other Pod):
# the Pod informers sync apart from the Service ones.
POD_SENTINEL=10-127-255-250.bench-000.pod.$ZONE
for impl in "${IMPLS[@]}"; do
  case $impl in
  clusterdns) bg clusterdns taskset -c "$SERVER_CPU" "$BIN/clusterdns" -config "$RESULTS_DIR/conf/clusterdns.yaml" ;;
  coredns) bg coredns taskset -c "$SERVER_CPU" "$COREDNS" -conf "$RESULTS_DIR/conf/Corefile" ;;
  unbound)
    unbound-checkconf "$RESULTS_DIR/conf/unbound.conf" >&2
    bg unbound taskset -c "$SERVER_CPU" unbound -d -c "$RESULTS_DIR/conf/unbound.conf"
    ;;
  esac
  PID[$impl]=$LAST_PID
  # Bounded wait: cluster servers until they answer the sentinel (created
  # after every other object), unbound until it answers through the stub.
  if [ "$impl" = unbound ]; then
    "$BT" wait -server "127.0.0.1:${PORT[$impl]}" -name ready.bench.example -timeout 60s ||
      die "unbound did not start: $(tail -n 20 "$LOGS/unbound.log")"
  else
    "$BT" wait -server "127.0.0.1:${PORT[$impl]}" -name "$SENTINEL" -want 10.127.255.254 -timeout 10m ||
      die "$impl did not sync: $(tail -n 20 "$LOGS/$impl.log")"
    if [ "$N_PODS" -gt 0 ]; then
      "$BT" wait -server "127.0.0.1:${PORT[$impl]}" -name "$POD_SENTINEL" -want 10.127.255.250 -timeout 10m ||
        die "$impl did not sync pods: $(tail -n 20 "$LOGS/$impl.log")"
    fi
  fi
done
sleep 2
# Memory is sampled for the servers holding the objects, not for unbound.
for impl in "${IMPLS[@]}"; do
  [ "$impl" = unbound ] || "$BT" mem -pid "${PID[$impl]}" -impl "$impl" -phase synced -reset -results "$RESULTS"
done
# Sanity check before any load: the cluster servers answer the same names
# with the same, right answers (pod records verified when Pods are loaded).
checks=()
for impl in "${IMPLS[@]}"; do
  [ "$impl" = unbound ] || checks+=(-server "$impl=127.0.0.1:${PORT[$impl]}")
done
if [ "${#checks[@]}" -gt 0 ]; then
  "$BT" check -file "$RESULTS_DIR/queries/check.txt" "${checks[@]}" || die "the servers do not answer the check names right"
fi

# ---- 5. scenarios
perf() { # perf SCENARIO IMPL REP DATAFILE
  "$BT" perf -server "127.0.0.1:${PORT[$2]}" -pid "${PID[$2]}" -data "$4" \
    -duration "$DURATION" -clients "$CLIENTS" -outstanding "$OUTSTANDING" -max-qps "$MAX_QPS" \
    -cpu "$LOAD_CPU" -scenario "$1" -impl "$2" -rep "$3" -results "$RESULTS" \
    -metrics "${METRICS[$2]}" -log "$LOGS/dnsperf-$1-$2-$3.txt"
}
Q=$RESULTS_DIR/queries
for scenario in cluster hit miss junk; do
  has "$SCENARIOS" "$scenario" || continue
  log "scenario $scenario: $REPS x ${DURATION}s per server"
  for rep in $(seq 1 "$REPS"); do
    for impl in "${IMPLS[@]}"; do
      # Unbound has no cluster index: it is a peer for forwarded names only.
      [ "$impl" = unbound ] && ! has "hit miss" "$scenario" && continue
      case $scenario in
      cluster) perf cluster "$impl" "$rep" "$Q/cluster.txt" ;;
      junk) perf junk "$impl" "$rep" "$Q/junk.txt" ;;
      hit)
        # One rate-limited pass fills the cache; the measured run only hits.
        taskset -c "$LOAD_CPU" dnsperf -s 127.0.0.1 -p "${PORT[$impl]}" -d "$Q/hit.txt" -n 1 -Q 5000 -t 2 \
          >"$LOGS/warm-$impl-$rep.txt" 2>&1
        perf hit "$impl" "$rep" "$Q/hit.txt"
        ;;
      miss)
        "$BT" missfile -prefix "$impl-r$rep" -n $((DURATION * MISS_RATE)) -out "$Q/miss-$impl-$rep.txt"
        perf miss "$impl" "$rep" "$Q/miss-$impl-$rep.txt"
        rm -f "$Q/miss-$impl-$rep.txt"
        ;;
      esac
    done
  done
done

if has "$SCENARIOS" proglat; then
  targets=()
  for impl in "${IMPLS[@]}"; do
    [ "$impl" = unbound ] || targets+=(-server "$impl=127.0.0.1:${PORT[$impl]}")
  done
  if [ "${#targets[@]}" -gt 0 ]; then
    log "DNS programming latency: $PROG_CHANGES changes at $PROG_RATE/s"
    taskset -c "$LOAD_CPU" "$BT" proglat -kubeconfig "$KUBECONFIG_PATH" -zone "$ZONE" \
      -rate "$PROG_RATE" -changes "$PROG_CHANGES" -results "$RESULTS" "${targets[@]}"
  fi
fi
for impl in "${IMPLS[@]}"; do
  [ "$impl" = unbound ] || "$BT" mem -pid "${PID[$impl]}" -impl "$impl" -phase steady -reset -results "$RESULTS"
done

# ---- 6. a full relist: restart kube-apiserver with one etcd write made
# while it is down, so its new watch cache starts past the informers'
# resource versions, their watches get 410 Gone and every informer lists
# again (without the write they would resume). The peak RSS during that is
# what a relist costs on top of the steady state; the API server's LIST
# count confirms the relist happened.
if [ "$RELIST" = 1 ]; then
  log "full relist (kube-apiserver restart)"
  CLUSTERDNS_TEST_STATE=$CLUSTER_STATE bash "$ROOT/test/cluster/down.sh" apiserver
  "$BT" etcdbump -etcd "127.0.0.1:$(sed -n 's/^ETCD_PORT=//p' "$CLUSTER_STATE/ports.env")"
  CLUSTERDNS_TEST_STATE=$CLUSTER_STATE CLUSTERDNS_TEST_OWNER_PID=$$ bash "$ROOT/test/cluster/up.sh" >/dev/null
  "$BT" sentinel -kubeconfig "$KUBECONFIG_PATH" -name sentinel-relist -ip 10.127.255.253
  if [ "$N_PODS" -gt 0 ]; then
    "$BT" sentinel -kubeconfig "$KUBECONFIG_PATH" -name sentinel-relist -ip 10.127.255.249 -pod
  fi
  for impl in "${IMPLS[@]}"; do
    [ "$impl" = unbound ] && continue
    "$BT" wait -server "127.0.0.1:${PORT[$impl]}" -name "sentinel-relist.bench-000.svc.$ZONE" -want 10.127.255.253 -timeout 5m ||
      die "$impl did not resume after the API server restart: $(tail -n 20 "$LOGS/$impl.log")"
    if [ "$N_PODS" -gt 0 ]; then
      "$BT" wait -server "127.0.0.1:${PORT[$impl]}" -name "10-127-255-249.bench-000.pod.$ZONE" -want 10.127.255.249 -timeout 5m ||
        die "$impl did not resume pods after the API server restart: $(tail -n 20 "$LOGS/$impl.log")"
    fi
  done
  sleep 3
  "$BT" lists -kubeconfig "$KUBECONFIG_PATH" -phase relist -results "$RESULTS"
  for impl in "${IMPLS[@]}"; do
    [ "$impl" = unbound ] || "$BT" mem -pid "${PID[$impl]}" -impl "$impl" -phase relist -results "$RESULTS"
  done
fi

# ---- 7. report
log "report"
{
  echo "## clusterdns load harness: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "- machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -r)"
  echo "- servers: ${IMPLS[*]}; CoreDNS $(test -n "$COREDNS" && "$COREDNS" -version | head -1 | sed 's/^CoreDNS-//'), layout $COREDNS_LAYOUT; clusterdns $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?') (working tree)"
  echo "- objects: $N_SERVICES services, $N_ENDPOINTS endpoints, $N_PODS pods (pod records: $POD_MODE); TTL $TTL; cache $CACHE_SIZE entries; stub upstream on loopback"
  echo "- load: dnsperf -c $CLIENTS -q $OUTSTANDING -l $DURATION$([ "$MAX_QPS" != 0 ] && echo " -Q $MAX_QPS") on CPU $LOAD_CPU; servers on CPU $SERVER_CPU; $REPS repetitions, servers alternating"
  echo "- CPU µs/query: server utime+stime (/proc/PID/stat) over the run / queries answered. Allocs/query: go_memstats_mallocs_total scraped before and after the run (less one scrape's own) / queries answered. Latency: per-query figures from dnsperf -v."
  echo "- reproduce: $(printf '%q ' N_SERVICES="$N_SERVICES" N_ENDPOINTS="$N_ENDPOINTS" N_PODS="$N_PODS" REPS="$REPS" DURATION="$DURATION" COREDNS_LAYOUT="$COREDNS_LAYOUT")test/bench/run.sh"
  echo
  "$BT" report -results "$RESULTS"
} >"$REPORT"
cat "$REPORT"
