#!/usr/bin/env bash
# Interoperability: `parley chat` against the independent Node.js server
# (written from the protocol page only), plain and with faults: the server
# drops the connection after every 2 text messages and rate-limits every 5th
# new request; every reply must still be printed exactly.
set -u
here=$(cd "$(dirname "$0")" && pwd)
parley=${PARLEY_BIN:-./parley}
passed=0
failed=0

if [ ! -d "$here/node_modules/ws" ]; then
  echo "tests/interop/node_modules is missing: run 'npm ci' in tests/interop (check.sh does)"
  echo "[  FAILED  ] 1 test(s)."
  exit 1
fi

# Starts the server with the given flags; sets $server and $port.
start_server() {
  out=$(mktemp)
  PARLEY_API_KEY=interop-key node "$here/server.js" --port 0 "$@" >"$out" 2>/dev/null &
  server=$!
  port=""
  for _ in $(seq 200); do
    port=$(sed -n 's/^listening on [0-9.]*:\([0-9]*\)$/\1/p' "$out")
    [ -n "$port" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.05
  done
  rm -f "$out"
}

# run_case NAME TURNS SERVER-FLAGS...: chat TURNS turns, expect exact replies.
run_case() {
  local name=$1 turns=$2
  shift 2
  start_server "$@"
  if [ -z "$port" ]; then
    echo "$name: the server did not start"
    failed=$((failed + 1))
    return
  fi
  local args=() expected=""
  for i in $(seq "$turns"); do
    args+=("message number $i")
    expected+="[turn $i] message number $i"$'\n'
  done
  local got
  got=$(PARLEY_API_KEY=interop-key timeout 120 "$parley" chat \
          --endpoint "ws://127.0.0.1:$port/v1/stream" "${args[@]}")
  local rc=$?
  kill "$server" 2>/dev/null
  wait "$server" 2>/dev/null
  if [ $rc -eq 0 ] && [ "$got"$'\n' = "$expected" ]; then
    echo "[       OK ] $name"
    passed=$((passed + 1))
  else
    echo "[  FAILED  ] $name (exit $rc)"
    diff <(printf '%s' "$expected") <(printf '%s\n' "$got") | head -20
    failed=$((failed + 1))
  fi
}

run_case "two turns" 2
run_case "20 turns with drops every 2 texts and every 5th rate-limited" 20 \
  --drop-after-texts 2 --rate-limit-every 5 --chunk-bytes 4

echo "[  PASSED  ] $passed test(s)."
[ "$failed" -eq 0 ] || { echo "[  FAILED  ] $failed test(s)."; exit 1; }
