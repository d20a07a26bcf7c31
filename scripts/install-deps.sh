#!/usr/bin/env bash
# Installs what building and testing parley needs on Debian 12, idempotently.
# libcurl with WebSocket support comes from bookworm-backports (Debian 12's own
# 7.88 has no ws/wss); the suite is added to the machine's existing Debian
# source so that no mirror is hard-coded.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: run as root or install sudo" >&2; exit 1
  fi
fi

PACKAGES=(build-essential autoconf automake libtool pkg-config
          libck-dev libjson-c-dev libzstd-dev zlib1g-dev libwebsockets-dev libcmocka-dev
          clang openssl
          libmicrohttpd-dev   # examples/gateway.c
          libssl-dev          # SHA-1 of the tests' hostile WebSocket server
          wrk gnuplot-nox     # make bench: load against the gateway, plots
          libhiredis-dev      # the Redis/Valkey session store (src/store)
          redis-server        # its tests start their own, on free ports
          haproxy)            # the gateway fleet of docs/cluster.md
# From bookworm-backports (Debian 12 has no Valkey): the session store's
# tests run against it as well (tests/store/valkey.sh).
BACKPORTS_PACKAGES=(valkey-server)
# Node.js runs the independent interop server (tests/interop); the machine
# image may bring its own, else Debian's.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
  PACKAGES+=(nodejs npm)

curl_has_ws() {
  command -v curl-config >/dev/null 2>&1 &&
    curl-config --protocols 2>/dev/null | grep -qx 'WS'
}

packages_missing() {
  local p
  for p in "${PACKAGES[@]}" "${BACKPORTS_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || return 0
  done
  return 1
}

debian_uri() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list)
  fi
  echo "$uri"
}

add_backports() {
  if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 0
  fi
  local uri
  uri=$(debian_uri)
  if [ -z "$uri" ]; then
    echo "install-deps: cannot find the machine's Debian apt source to add bookworm-backports" >&2
    exit 1
  fi
  $SUDO tee /etc/apt/sources.list.d/parley-backports.sources >/dev/null <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
}

# valkey-server's package starts a daemon on port 6379, where Debian's
# redis-server already runs one, and fails its install when that start
# fails. The tests start servers of their own, so no daemon is started while
# it installs (policy-rc.d's "action forbidden", which invoke-rc.d and
# deb-systemd-invoke obey); a policy-rc.d the machine has is left alone.
install_backports_without_daemons() {
  local guard=/usr/sbin/policy-rc.d added="" rc=0
  if [ ! -e "$guard" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$guard" >/dev/null
    $SUDO chmod 755 "$guard"
    added=1
  fi
  $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports "$@" || rc=$?
  [ -z "$added" ] || $SUDO rm -f "$guard"
  return "$rc"
}

if curl_has_ws && ! packages_missing; then
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
add_backports
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
install_backports_without_daemons "${BACKPORTS_PACKAGES[@]}"
if ! curl_has_ws; then
  $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports \
    libcurl4-openssl-dev
fi
curl_has_ws || { echo "install-deps: libcurl with WebSocket support could not be installed" >&2; exit 1; }
