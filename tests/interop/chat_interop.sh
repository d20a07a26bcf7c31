#!/usr/bin/env bash
# Interoperability: `parley chat` against the independent Node.js server
# (written from the protocol page only), plain and with faults: the server
# drops the connection after every 2 text messages and rate-limits every 5th
# new request; every reply must still be printed exactly. Then the anthropic
# and openai dialects against vendor_server.js (written from the vendors' API
# docs only), plain and with every 3rd request answered 429.
set -u
here=$(cd "$(dirname "$0")" && pwd)
parley=${PARLEY_BIN:-./parley}
passed=0
failed=0

# The servers' npm dependencies: tests/interop/node_modules, or the directory
# named by PARLEY_NODE_MODULES (configure's variable; `make distcheck`
# points it at the source tree's, as the tarball has none).
modules=${PARLEY_NODE_MODULES:-$here/node_modules}
export NODE_PATH="$modules"
if [ ! -d "$modules/ws" ]; then
  echo "$modules is missing: run 'npm ci' in tests/interop (check.sh does)"
  echo "[  FAILED  ] 1 test(s)."
  exit 1
fi

# start_server SCRIPT FLAGS...: starts a server; sets $server and $port.
start_server() {
  local script=$1
  shift
  out=$(mktemp)
  PARLEY_API_KEY=interop-key node "$here/$script" --port 0 "$@" >"$out" 2>/dev/null &
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

# run_case NAME DIALECT TURNS SERVER-FLAGS...: chat TURNS turns (0: the one
# turn "hello") in DIALECT (native, anthropic or openai), expect exact replies.
run_case() {
  local name=$1 dialect=$2 turns=$3
  shift 3
  local script=server.js endpoint
  [ "$dialect" = native ] || script=vendor_server.js
  start_server "$script" "$@"
  if [ -z "$port" ]; then
    echo "[  FAILED  ] $name: the server did not start"
    failed=$((failed + 1))
    return
  fi
  if [ "$dialect" = native ]; then
    endpoint="ws://127.0.0.1:$port/v1/stream"
  else
    endpoint="http://127.0.0.1:$port"
  fi
  local args=() expected=""
  if [ "$turns" -eq 0 ]; then
    args=(hello)
    expected="[turn 1] hello"$'\n'
  fi
  for i in $(seq "$turns"); do
    args+=("message number $i")
    expected+="[turn $i] message number $i"$'\n'
  done
  local got
  # The vendors' own key variables would take precedence over PARLEY_API_KEY.
  got=$(env -u ANTHROPIC_API_KEY -u OPENAI_API_KEY PARLEY_API_KEY=interop-key \
          timeout 120 "$parley" chat --dialect "$dialect" --endpoint "$endpoint" \
          "${args[@]}")
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

run_case "two turns" native 2
run_case "20 turns with drops every 2 texts and every 5th rate-limited" native 20 \
  --drop-after-texts 2 --rate-limit-every 5 --chunk-bytes 4
for dialect in anthropic openai; do
  run_case "$dialect: hello" "$dialect" 0
  run_case "$dialect: five turns" "$dialect" 5
  run_case "$dialect: five turns with every 3rd request rate-limited" "$dialect" 5 \
    --rate-limit-every 3
done

echo "[  PASSED  ] $passed test(s)."
[ "$failed" -eq 0 ] || { echo "[  FAILED  ] $failed test(s)."; exit 1; }
