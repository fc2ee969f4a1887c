#!/usr/bin/env bash
# Starts a real control plane for tests: etcd and kube-apiserver on 127.0.0.1
# only, with certificates generated here, and writes an admin kubeconfig.
# No kubelet or controller manager: tests create Services, EndpointSlices and
# Pods directly.
#
# Idempotent: when both run it only prints the kubeconfig path; when etcd runs
# but kube-apiserver was stopped (down.sh apiserver), it restarts kube-apiserver
# with the same flags and port, which is how outage tests bring it back.
#
#   CLUSTERDNS_TEST_STATE          state dir (default /tmp/clusterdns-test-cluster-$UID)
#   CLUSTERDNS_TEST_APISERVER_PORT, CLUSTERDNS_TEST_ETCD_PORT, CLUSTERDNS_TEST_ETCD_PEER_PORT
#                                  fixed ports (default: free ones picked at first start)
#   CLUSTERDNS_TEST_SERVICE_CIDR   default 10.96.0.0/12,fd00:10:96::/112 (dual-stack)
#   CLUSTERDNS_TEST_OWNER_PID      when set, a watchdog runs down.sh once that process exits,
#                                  so a killed test binary does not leak servers
#   ETCD, KUBE_APISERVER           binaries (default: the ones build.sh caches)
#
# Prints the kubeconfig path on its last line.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
STATE=${CLUSTERDNS_TEST_STATE:-/tmp/clusterdns-test-cluster-$(id -u)}
SERVICE_CIDR=${CLUSTERDNS_TEST_SERVICE_CIDR:-10.96.0.0/12,fd00:10:96::/112}
READY_TIMEOUT=${CLUSTERDNS_TEST_READY_TIMEOUT:-60}

log() { printf 'up.sh: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

mkdir -p "$STATE/pki" "$STATE/logs"
STATE=$(cd "$STATE" && pwd)
PKI=$STATE/pki
KUBECONFIG_PATH=$STATE/kubeconfig

# One up.sh at a time per state dir, so two runs never start two apiservers.
# Background processes below close fd 9 (9>&-): a server holding the lock
# would block every later up.sh and down.sh.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$STATE/.lock"
  flock 9
fi

# shellcheck source=SCRIPTDIR/lib.sh
. "$HERE/lib.sh"

if [ -z "${ETCD:-}" ] || [ -z "${KUBE_APISERVER:-}" ]; then
  bins=$(bash "$HERE/build.sh" 2>>"$STATE/logs/build.log") || die "build.sh failed (see $STATE/logs/build.log)"
  ETCD=${ETCD:-$(printf '%s\n' "$bins" | sed -n 's/^etcd=//p')}
  KUBE_APISERVER=${KUBE_APISERVER:-$(printf '%s\n' "$bins" | sed -n 's/^kube-apiserver=//p')}
fi
[ -x "$ETCD" ] || die "etcd binary not found: $ETCD"
[ -x "$KUBE_APISERVER" ] || die "kube-apiserver binary not found: $KUBE_APISERVER"

# port_free succeeds when nothing accepts connections on 127.0.0.1:$1.
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pick_port prints a free port below the Linux ephemeral range (32768+), so
# it does not collide with the source ports of outgoing connections.
pick_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    case " ${*:-} " in *" $p "*) continue ;; esac
    if port_free "$p"; then
      echo "$p"
      return 0
    fi
  done
  die "no free port found after $i tries"
}

# Ports are chosen once and kept in ports.env: a restarted apiserver must come
# back on the port the tests' clients already point at.
if [ -f "$STATE/ports.env" ]; then
  # shellcheck disable=SC1091
  . "$STATE/ports.env"
else
  ETCD_PORT=${CLUSTERDNS_TEST_ETCD_PORT:-$(pick_port)}
  ETCD_PEER_PORT=${CLUSTERDNS_TEST_ETCD_PEER_PORT:-$(pick_port "$ETCD_PORT")}
  APISERVER_PORT=${CLUSTERDNS_TEST_APISERVER_PORT:-$(pick_port "$ETCD_PORT" "$ETCD_PEER_PORT")}
  printf 'ETCD_PORT=%s\nETCD_PEER_PORT=%s\nAPISERVER_PORT=%s\n' \
    "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" >"$STATE/ports.env"
fi

gen_pki() {
  [ -f "$PKI/done" ] && return 0
  command -v openssl >/dev/null 2>&1 || die "openssl is required (test/tools/install.sh installs it)"
  log "generating certificates in $PKI"
  # EC P-256 keys: generated instantly, accepted by kube-apiserver for TLS,
  # client certificates and service-account tokens (ES256).
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
    -days 3650 -subj "/CN=clusterdns-test-ca" 2>/dev/null
  # -extfile rather than -copy_extensions: works with OpenSSL 1.1 too.
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >"$PKI/serving.ext"
  openssl req "${ec[@]}" -keyout "$PKI/apiserver.key" -out "$PKI/apiserver.csr" \
    -subj "/CN=kube-apiserver" 2>/dev/null
  openssl x509 -req -in "$PKI/apiserver.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -days 3650 -extfile "$PKI/serving.ext" -out "$PKI/apiserver.crt" 2>/dev/null
  # Client certificate for an admin in system:masters (the O field is the group).
  printf 'extendedKeyUsage=clientAuth\n' >"$PKI/client.ext"
  openssl req "${ec[@]}" -keyout "$PKI/admin.key" -out "$PKI/admin.csr" \
    -subj "/O=system:masters/CN=admin" 2>/dev/null
  openssl x509 -req -in "$PKI/admin.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -days 3650 -extfile "$PKI/client.ext" -out "$PKI/admin.crt" 2>/dev/null
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/sa.key" 2>/dev/null
  openssl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  # Static token for the same admin, used by the kubeconfig.
  printf '%s,admin,admin-uid,"system:masters"\n' "$(openssl rand -hex 24)" >"$PKI/tokens.csv"
  chmod 600 "$PKI"/*.key "$PKI/tokens.csv"
  touch "$PKI/done"
}

write_kubeconfig() {
  local token
  token=$(cut -d, -f1 "$PKI/tokens.csv")
  cat >"$KUBECONFIG_PATH.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: clusterdns-test
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: admin
  user:
    token: $token
contexts:
- name: clusterdns-test
  context:
    cluster: clusterdns-test
    user: admin
current-context: clusterdns-test
EOF
  chmod 600 "$KUBECONFIG_PATH.tmp"
  mv "$KUBECONFIG_PATH.tmp" "$KUBECONFIG_PATH"
}

# Health checks use bash's /dev/tcp for plain HTTP and openssl s_client for
# TLS: nothing beyond what the tests already need (no curl on a minimal machine).
etcd_healthy() {
  local resp
  resp=$( (exec 3<>"/dev/tcp/127.0.0.1/$ETCD_PORT" &&
    printf 'GET /health HTTP/1.0\r\n\r\n' >&3 && timeout 2 cat <&3) 2>/dev/null) || return 1
  case $resp in *'"health":"true"'*) return 0 ;; esac
  return 1
}

apiserver_ready() {
  local token status
  token=$(cut -d, -f1 "$PKI/tokens.csv")
  status=$(printf 'GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n' "$token" |
    timeout 5 openssl s_client -quiet -connect "127.0.0.1:$APISERVER_PORT" -CAfile "$PKI/ca.crt" 2>/dev/null |
    head -n 1) || return 1
  case $status in *' 200 '*) return 0 ;; esac
  return 1
}

# wait_for CHECK PIDFILE NAME LOG: bounded wait; fails early if the process died.
wait_for() {
  local check=$1 pidfile=$2 name=$3 logfile=$4 i
  for i in $(seq 1 $((READY_TIMEOUT * 4))); do
    if "$check"; then
      return 0
    fi
    if ! proc_alive "$pidfile" "$name"; then
      log "$name exited; last lines of $logfile:"
      tail -n 20 "$logfile" >&2 || true
      return 1
    fi
    sleep 0.25
  done
  log "$name not ready after ${READY_TIMEOUT}s; last lines of $logfile:"
  tail -n 20 "$logfile" >&2 || true
  return 1
}

start_etcd() {
  if proc_alive "$STATE/etcd.pid" etcd; then
    return 0
  fi
  log "starting etcd on 127.0.0.1:$ETCD_PORT"
  # --unsafe-no-fsync: test data need not survive a power cut, and fsync on a
  # shared disk is what makes etcd slow in CI.
  nohup "$ETCD" \
    --name=clusterdns-test \
    --data-dir="$STATE/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="clusterdns-test=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync \
    --log-level=warn \
    >>"$STATE/logs/etcd.log" 2>&1 </dev/null 9>&- &
  echo $! >"$STATE/etcd.pid"
  wait_for etcd_healthy "$STATE/etcd.pid" etcd "$STATE/logs/etcd.log"
}

start_apiserver() {
  if proc_alive "$STATE/apiserver.pid" kube-apiserver; then
    return 0
  fi
  log "starting kube-apiserver on 127.0.0.1:$APISERVER_PORT"
  # --endpoint-reconciler-type=none: the loopback advertise address is
  # otherwise rejected every 10 s. --disable-admission-plugins=ServiceAccount:
  # no controller manager creates default ServiceAccounts.
  # DisableAllocatorDualWrite: otherwise every Service create rewrites a
  # 128 KiB allocation bitmap in etcd.
  nohup "$KUBE_APISERVER" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$APISERVER_PORT" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" \
    --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --token-auth-file="$PKI/tokens.csv" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=RBAC \
    --endpoint-reconciler-type=none \
    --disable-admission-plugins=ServiceAccount \
    --feature-gates=DisableAllocatorDualWrite=true \
    --profiling=false \
    >>"$STATE/logs/apiserver.log" 2>&1 </dev/null 9>&- &
  echo $! >"$STATE/apiserver.pid"
  wait_for apiserver_ready "$STATE/apiserver.pid" kube-apiserver "$STATE/logs/apiserver.log"
}

# The watchdog outlives up.sh and runs down.sh when the owner (a test binary)
# exits, however it exits. Polling once a second is enough for cleanup.
start_watchdog() {
  [ -n "${CLUSTERDNS_TEST_OWNER_PID:-}" ] || return 0
  if proc_alive "$STATE/watchdog.pid" clusterdns-test-watchdog; then
    return 0
  fi
  # shellcheck disable=SC2016 # expanded by the watchdog's shell, not this one
  CLUSTERDNS_TEST_STATE=$STATE nohup bash -c '
    while kill -0 "$1" 2>/dev/null && [ "$(cut -d" " -f3 "/proc/$1/stat" 2>/dev/null || echo R)" != Z ]; do
      sleep 1
    done
    exec bash "$2/down.sh"
  ' clusterdns-test-watchdog "$CLUSTERDNS_TEST_OWNER_PID" "$HERE" >>"$STATE/logs/watchdog.log" 2>&1 </dev/null 9>&- &
  echo $! >"$STATE/watchdog.pid"
}

gen_pki
write_kubeconfig
start_etcd || die "etcd did not start"
start_apiserver || die "kube-apiserver did not start"
start_watchdog
log "ready: kubectl --kubeconfig $KUBECONFIG_PATH get ns"
echo "$KUBECONFIG_PATH"
