#!/usr/bin/env bash
# `parley bench` and its baseline tests/bench/direct against the reference
# server: a few hundred requests each, over the native protocol and the
# HTTP dialects, with a new connection per request and with kept-alive ones.
# Each run's last stdout line must be the JSON summary with every key, the
# requests asked for, no error, no reply differing from the echo model, and
# ordered percentiles; runs that go wrong on purpose (a refused key, replies
# cut short) must be counted as errors and mismatches. No timing is
# asserted: speed is for the benchmarks.
set -u
parley=${PARLEY_BIN:-./parley}
builddir=$(dirname "$parley")
refserver=$builddir/parley-refserver
direct=$builddir/tests/bench/direct
key=load-check-key
passed=0
failed=0

pass() { echo "[       OK ] $1"; passed=$((passed + 1)); }
fail() { echo "[  FAILED  ] $1"; failed=$((failed + 1)); }

if ! command -v node >/dev/null 2>&1; then
  echo "node is missing (it checks the JSON lines): run scripts/install-deps.sh"
  echo "[  FAILED  ] 1 test(s)."
  exit 1
fi

tmp=$(mktemp -d)
# The server prints "listening on ADDR:PORT" once ready: read blocks until
# then (or gives up after 30 s), no polling. Its 20 ms before each reply
# keep the conversations' requests in flight together, as a model would,
# even when this machine is slow to start them.
exec {server_out}< <(exec "$refserver" --port 0 --api-key "$key" --quiet --latency-ms 20)
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
port=""
if read -r -t 30 -u "$server_out" line; then
  port=${line##*:}
fi
if [ -z "$port" ]; then
  echo "[  FAILED  ] the reference server did not start"
  echo "[  FAILED  ] 1 test(s)."
  exit 1
fi
ws=ws://127.0.0.1:$port/v1/stream
http=http://127.0.0.1:$port

# What every run that went well must show, besides its own expectations.
clean='o.errors === 0 && o.mismatches === 0 && o.connections >= 1 && o.rps > 0'

# check_json NAME EXPECT LINE: the summary has every key, a number (or null
# for a mean or percentile without samples), percentiles in order, and
# EXPECT, a JavaScript condition on o (the parsed line), holds.
check_json() {
  node -e '
    const [name, expect, line] = process.argv.slice(1);
    let o;
    try { o = JSON.parse(line); } catch (e) { console.log(name + ": not JSON: " + line); process.exit(1); }
    const counts = ["requests", "errors", "mismatches", "retries", "connections", "rps",
                    "cpu_s", "max_rss_mb"];
    const latencies = ["lat_ms_mean", "lat_ms_p50", "lat_ms_p90", "lat_ms_p99",
                       "lat_ms_max", "ttft_ms_p50", "ttft_ms_p99"];
    const problems = [];
    for (const k of counts)
      if (typeof o[k] !== "number" || !(o[k] >= 0)) problems.push(k + " is not a number >= 0");
    for (const k of latencies)
      if (!(k in o) || (o[k] !== null && !(typeof o[k] === "number" && o[k] >= 0)))
        problems.push(k + " is not a number >= 0 or null");
    const ordered = (...v) => v.every((x, i) => i === 0 || v[i - 1] <= x);
    if (o.lat_ms_p50 !== null &&
        !ordered(o.lat_ms_p50, o.lat_ms_p90, o.lat_ms_p99, o.lat_ms_max))
      problems.push("latency percentiles out of order");
    if (o.lat_ms_mean !== null && o.lat_ms_mean > o.lat_ms_max)
      problems.push("mean latency above the maximum");
    /* Every reply has its first piece before its end. */
    if (o.ttft_ms_p50 !== null && !ordered(o.ttft_ms_p50, o.ttft_ms_p99, o.lat_ms_p99))
      problems.push("ttft percentiles out of order or above the latency");
    if (!problems.length && !eval(expect)) problems.push("expected " + expect);
    if (problems.length) { console.log(name + ": " + problems.join("; ") + "\n  " + line); process.exit(1); }
  ' "$1" "$2" "$3"
}

# run_case NAME STATUS EXPECT COMMAND...: runs COMMAND, which must exit with
# STATUS, and checks the last line of its stdout.
run_case() {
  local name=$1 status=$2 expect=$3
  shift 3
  local out rc why
  out=$(timeout 120 "$@" 2>"$tmp/stderr")
  rc=$?
  if [ $rc -ne "$status" ]; then
    fail "$name: exit $rc, expected $status"
    sed 's/^/  /' "$tmp/stderr" | head -10
    return
  fi
  if why=$(check_json "$name" "$expect" "$(printf '%s\n' "$out" | tail -n 1)"); then
    pass "$name"
  else
    fail "$why"
  fi
}

# usage_case NAME COMMAND...: bad arguments must exit 2 and say something.
usage_case() {
  local name=$1
  shift
  "$@" >/dev/null 2>"$tmp/stderr"
  local rc=$?
  if [ $rc -eq 2 ] && [ -s "$tmp/stderr" ]; then
    pass "$name"
  else
    fail "$name: exit $rc, expected 2 with a message"
  fi
}

# The vendors' own variables would take precedence over PARLEY_API_KEY.
unset ANTHROPIC_API_KEY OPENAI_API_KEY
export PARLEY_API_KEY=$key

run_case "parley bench, native: 300 requests, 50 conversations of 3 turns" 0 \
  "$clean && o.requests === 300" \
  "$parley" bench --endpoint "$ws" --concurrency 50 --turns 3 --requests 300
run_case "parley bench, anthropic: 300 requests, 50 conversations of 3 turns" 0 \
  "$clean && o.requests === 300" \
  "$parley" bench --dialect anthropic --endpoint "$http" --concurrency 50 --turns 3 \
  --requests 300
run_case "parley bench, openai: 300 requests, 50 conversations of 3 turns" 0 \
  "$clean && o.requests === 300" \
  "$parley" bench --dialect openai --endpoint "$http" --concurrency 50 --turns 3 \
  --requests 300
run_case "parley bench: --connections 3 opens 3 WebSocket connections" 0 \
  "$clean && o.requests === 200 && o.connections === 3" \
  "$parley" bench --endpoint "$ws" --concurrency 30 --turns 2 --requests 200 --connections 3
# Were --duration ignored, a million requests would run into the time-out.
run_case "parley bench: --duration stops a run before its request budget" 0 \
  "$clean && o.requests >= 20 && o.requests < 1000000" \
  "$parley" bench --endpoint "$ws" --concurrency 20 --turns 4 --requests 1000000 \
  --duration 0.5
# max_tokens=1 cuts every reply to its first piece.
run_case "parley bench: replies cut short are mismatches" 1 \
  "o.errors === 0 && o.requests === 60 && o.mismatches === 60" \
  "$parley" bench --endpoint "$ws" --concurrency 10 --turns 2 --requests 60 --set max_tokens=1
# As many conversations as requests: all fail in one round, before the
# client's reconnect backoff could grow.
run_case "parley bench: a refused key makes every request an error" 1 \
  "o.requests === 20 && o.errors === 20 && o.lat_ms_p50 === null" \
  env PARLEY_API_KEY=wrong-key "$parley" bench --endpoint "$ws" --concurrency 20 \
  --requests 20
# A new connection per request; per thread one kept for all its requests (a
# thread that starts after the budget ran out makes none).
run_case "direct --mode new: 200 requests, a connection each" 0 \
  "$clean && o.requests === 200 && o.connections === 200 && o.retries === 0" \
  "$direct" --mode new --endpoint "$http" --concurrency 20 --turns 3 --requests 200
run_case "direct --mode keepalive: 200 requests over at most 20 connections" 0 \
  "$clean && o.requests === 200 && o.connections <= 20 && o.retries === 0" \
  "$direct" --mode keepalive --endpoint "$http" --concurrency 20 --turns 3 --requests 200
run_case "direct: a refused key makes every request an error" 1 \
  "o.requests === 30 && o.errors === 30 && o.lat_ms_p50 === null" \
  env PARLEY_API_KEY=wrong-key "$direct" --mode keepalive --endpoint "$http" \
  --concurrency 5 --requests 30
usage_case "parley bench: --requests 0 is a usage error" \
  "$parley" bench --endpoint "$ws" --requests 0
usage_case "parley bench: --requests is required" "$parley" bench --endpoint "$ws"
usage_case "parley bench: --set without = is a usage error" \
  "$parley" bench --endpoint "$ws" --requests 1 --set workers
usage_case "direct: an unknown --mode is a usage error" \
  "$direct" --mode pipelined --endpoint "$http" --requests 1

echo "[  PASSED  ] $passed test(s)."
[ "$failed" -eq 0 ] || { echo "[  FAILED  ] $failed test(s)."; exit 1; }
