#!/usr/bin/env bash
# Installs the command-line tools some tests use (dig, dnsperf, openssl) from
# Debian packages when they are missing. Idempotent: present tools are left
# alone and apt-get update runs at most once. It never fails the run: tests
# that need a missing tool skip with their own message, so a machine without
# apt (or without root) still runs everything else.
set -euo pipefail

# command:package pairs.
TOOLS="dig:dnsutils dnsperf:dnsperf openssl:openssl"

warn() {
  printf '\n!!!!!!!! WARNING: %s\n\n' "$*" >&2
}

missing=""
for pair in $TOOLS; do
  cmd=${pair%%:*}
  pkg=${pair#*:}
  if command -v "$cmd" >/dev/null 2>&1; then
    echo "install.sh: $cmd present ($(command -v "$cmd"))"
  else
    missing="$missing $pkg"
  fi
done

if [ -z "$missing" ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  warn "apt-get is not available; cannot install:$missing. Tests that need them will skip."
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    warn "not root and no password-less sudo; cannot install:$missing. Tests that need them will skip."
    exit 0
  fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get update -qq; then
  warn "apt-get update failed; trying to install from the existing package lists"
fi

# One package at a time, so one that is unavailable (dnsperf is not in every
# release) does not block the others.
failed=""
for pkg in $missing; do
  if ! $SUDO apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null; then
    failed="$failed $pkg"
  fi
done

if [ -n "$failed" ]; then
  warn "could not install:$failed. Tests that need them will skip."
fi
for pair in $TOOLS; do
  cmd=${pair%%:*}
  command -v "$cmd" >/dev/null 2>&1 && echo "install.sh: $cmd -> $(command -v "$cmd")"
done
exit 0
