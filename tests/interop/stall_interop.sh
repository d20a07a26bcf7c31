#!/usr/bin/env bash
# Acceptance of issue 12: against the independent Node.js server (written from
# the protocol page only) that silences the connection of every 40th request
# (the socket stays open; nothing more is sent on it and pings get no pong),
# with stall.timeout.ms=500, 2,000 requests over 50 conversations of 40 turns
# (`parley bench`, which checks every reply against the echo model) must all
# complete with the exact text.
set -u
here=$(cd "$(dirname "$0")" && pwd)
parley=${PARLEY_BIN:-./parley}

# The server's npm dependency, as in chat_interop.sh.
modules=${PARLEY_NODE_MODULES:-$here/node_modules}
export NODE_PATH="$modules"
if [ ! -d "$modules/ws" ]; then
  echo "$modules is missing: run 'npm ci' in tests/interop (check.sh does)"
  echo "[  FAILED  ] 1 test(s)."
  exit 1
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
PARLEY_API_KEY=interop-key node "$here/server.js" --port 0 --stall-every 40 \
  --token-ms 2 --chunk-bytes 8 >"$out" 2>/dev/null &
server=$!
port=""
for _ in $(seq 200); do
  port=$(sed -n 's/^listening on [0-9.]*:\([0-9]*\)$/\1/p' "$out")
  [ -n "$port" ] && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.05
done
if [ -z "$port" ]; then
  echo "[  FAILED  ] stalled connections: the server did not start"
  echo "[  FAILED  ] 1 test(s)."
  exit 1
fi

# Each stall costs its connection's requests stall.timeout.ms and the Ping's
# bound (stall.ping.timeout.ms, here 1 s instead of the default 3 s, to keep
# the run short). The bound stays under run-bounded.sh's 300 s so the
# summary still shows.
start=$(date +%s)
result=$(PARLEY_API_KEY=interop-key PARLEY_LOG=error timeout 280 "$parley" bench \
           --endpoint "ws://127.0.0.1:$port/v1/stream" --requests 2000 --concurrency 50 \
           --turns 40 --set stall.timeout.ms=500 --set stall.ping.timeout.ms=1000)
rc=$?
kill "$server" 2>/dev/null
wait "$server" 2>/dev/null
summary=$(printf '%s\n' "$result" | tail -n1)
echo "parley bench ($(( $(date +%s) - start )) s, exit $rc): $summary"
if [ $rc -eq 0 ] && printf '%s' "$summary" | grep -q '"requests":2000,"errors":0,"mismatches":0,'; then
  echo "[       OK ] 2000 requests, every 40th connection stalled: all exact"
  echo "[  PASSED  ] 1 test(s)."
else
  echo "[  FAILED  ] 2000 requests, every 40th connection stalled"
  echo "[  FAILED  ] 1 test(s)."
  exit 1
fi
