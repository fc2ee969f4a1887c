# shellcheck shell=bash
# Shared by up.sh and down.sh (sourced, not run): process checks by PID file.
# A PID file alone is not proof: the PID may have been reused, or the process
# may be a zombie whose parent has not reaped it yet, which kill -0 reports
# as alive.

# proc_alive PIDFILE NAME succeeds when the PID in PIDFILE is a live process
# whose argv[0] base name, or one of whose arguments, is NAME.
proc_alive() {
  local pid state arg first=1
  [ -f "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [ -r "/proc/$pid/stat" ] || return 0 # no procfs: trust kill -0
  state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ "$state" != Z ] || return 1
  while IFS= read -r -d '' arg; do
    if [ "$first" = 1 ]; then
      [ "${arg##*/}" = "$2" ] && return 0
      first=0
    fi
    [ "$arg" = "$2" ] && return 0
  done <"/proc/$pid/cmdline"
  return 1
}

# stop_proc PIDFILE NAME: SIGTERM, a bounded wait for a clean exit (etcd
# flushes, kube-apiserver drains), then SIGKILL. Removes PIDFILE.
stop_proc() {
  local pid
  if proc_alive "$1" "$2"; then
    pid=$(cat "$1")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      proc_alive "$1" "$2" || break
      sleep 0.1
    done
    if proc_alive "$1" "$2"; then
      echo "stopping $2 (pid $pid): no exit after 10s, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        proc_alive "$1" "$2" || break
        sleep 0.1
      done
    fi
  fi
  rm -f "$1"
}
