#!/usr/bin/env bash
# Installs what is missing, builds, starts the reference server on loopback
# with a freshly generated key, and runs the quickstart example against it.
set -euo pipefail
cd "$(dirname "$0")"
top=$(pwd)

./scripts/install-deps.sh
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
  autoreconf -fi
fi
dir="$top/build/plain"
mkdir -p "$dir"
if [ ! -f "$dir/Makefile" ] || [ -n "$(cat "$dir/.configure-flags" 2>/dev/null)" ]; then
  (cd "$dir" && "$top/configure" -q && : > .configure-flags)
fi
make -C "$dir" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

# The key travels through the environment only, never on a command line.
PARLEY_API_KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export PARLEY_API_KEY

out=$(mktemp)
"$dir/parley-refserver" --port 0 --quiet >"$out" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$out"' EXIT

port=""
for _ in $(seq 100); do
  port=$(sed -n 's/^listening on [0-9.]*:\([0-9]*\)$/\1/p' "$out")
  [ -n "$port" ] && break
  kill -0 "$server" 2>/dev/null || { echo "quickstart: the reference server did not start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "quickstart: the reference server did not report its port" >&2; exit 1; }

export PARLEY_ENDPOINT="ws://127.0.0.1:$port/v1/stream"
echo "reference server on $PARLEY_ENDPOINT"
"$dir/examples/quickstart"
