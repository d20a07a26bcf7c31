#!/usr/bin/env bash
# `make bench`: the benchmark matrix of issue 7 on this machine, server and
# clients on the same box. Every result is collected in bench-results/ (in
# the build directory, where make runs this), then docs/benchmarks.md and
# its plots are written from them alone (tests/bench/gen_benchmarks.sh,
# tests/bench/plots.sh), so the document always shows one run, whole.
#
#   - classic (the issue's scenario 1): a server that answers after 200 ms;
#     10 to 10,000 conversations at once; `parley bench` over the native
#     protocol and the anthropic dialect, and the baseline
#     tests/bench/direct, --mode new and keepalive.
#   - ceiling (scenario 2): the same clients against a server that answers
#     at once: the most each carries, and its CPU per request.
#   - retry: `parley bench` against a server that rejects 2 % of the
#     requests.
#   - http (issue 16): the anthropic dialect, `parley bench` and the
#     official Anthropic SDK for Node (tests/interop/bench_sdk.js) side by
#     side, over HTTP/1.1 (http://) and HTTP/2 over TLS (https://, a
#     certificate made for the run), 200 and 1,000 conversations at once,
#     a server answering after 200 ms. The SDK also runs in the classic
#     and ceiling sweeps (HTTP/1.1, Node's fetch).
#   - store (issue 15): `parley bench` over the native protocol with the
#     sessions in memory and in a redis-server started for the run, 1,000
#     conversations, a server answering after 200 ms: what a turn's two
#     store round trips cost.
#   - every program of BENCHMARKS (Makefile.am): memory per session
#     (scenario 3), requests in flight per connection (scenario 4),
#     compression, and any other.
#
# BENCH_QUICK=1 runs fewer points with fewer requests (about a minute) and
# writes the document into bench-results/ instead of docs/: a smoke test
# of the whole chain that leaves the published figures alone.
#
# Each load point gets a fresh reference server, started here and stopped
# after the point: the server keeps every finished request for its
# idempotency window (600 s), so one server per series would carry the
# earlier points' hundreds of thousands of requests into the later ones;
# a new port per point also spares the new-connection baseline the
# previous point's TIME_WAIT sockets; and a point that wedges the server
# cannot spoil the next. Starting one takes milliseconds.
#
# The SDK's points need node and tests/interop/node_modules (`npm ci` there;
# check.sh does it); without them they are listed as skipped, with why.
#
# Environment (make sets it): top_srcdir, BENCHMARKS, CC, CFLAGS,
# SANITIZER_CFLAGS, BENCH_QUICK.
set -euo pipefail

srcdir=${top_srcdir:?run this through make bench}
results=bench-results
if [ -n "${SANITIZER_CFLAGS:-}" ]; then
  echo "make bench: this build has sanitizers ($SANITIZER_CFLAGS), which make every" \
       "figure meaningless: run it in an unsanitized build" >&2
  exit 1
fi
command -v gnuplot >/dev/null ||
  { echo "make bench: gnuplot is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }

latency_ms=200
turns=3
reject_fraction=0.02
if [ -n "${BENCH_QUICK:-}" ]; then
  mode=quick
  classic_concurrency="10 100 1000"
  ceiling_concurrency="100"
  http_concurrency="200"
  http_memory_inflight=500
  store_concurrency="100"
  per_conversation=5   # requests per concurrent conversation slot
  min_requests=50
  max_requests=5000
  duration_s=5         # no point runs longer than this (plus the drain)
  ceiling_requests=5000
  retry_requests=500
  docdir=$results
else
  mode=full
  classic_concurrency="10 100 1000 2000 5000 10000"
  ceiling_concurrency="100 1000"
  http_concurrency="200 1000"
  http_memory_inflight=2000
  store_concurrency="1000"
  # 25 rounds of 200 ms: about 5 s of load where the clients keep up.
  per_conversation=25
  min_requests=250
  max_requests=250000
  duration_s=15
  ceiling_requests=50000
  retry_requests=3000
  docdir=$srcdir/docs
fi
clients="direct-new direct-keepalive anthropic native sdk"
# The SDK is one Node thread answering a few hundred requests a second on
# this machine: with 10,000 conversations its first turns alone would
# take about a minute to answer, past the point's time limit.
sdk_max_concurrency=5000

rm -rf "$results"
mkdir -p "$results/stderr"
load=$results/load.jsonl
: > "$load"
# Every command run, in order, as the document shows them.
commands=$results/commands.txt
: > "$commands"

# The baseline needs two descriptors per caller thread: take all the
# descriptors the hard limit allows (raising it needs privileges).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
clk_tck=$(getconf CLK_TCK)

# The server asks for this key; the clients send it.
export PARLEY_API_KEY=bench-key
unset ANTHROPIC_API_KEY OPENAI_API_KEY

# ---- CPU accounting: how much of the machine this run had ---------------

# Jiffies of all CPUs from /proc/stat's first line: busy (user, nice,
# system, irq, softirq) and stolen by the hypervisor.
cpu_jiffies() {
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $9; exit }' /proc/stat
}

# ---- the reference server, one per point ---------------------------------

server=
server_out=
port=

start_server() {
  # lws logs some conditions as errors whatever --quiet says (an HPACK
  # table full of one-off headers): kept with the clients' stderr.
  exec {server_out}< <(exec ./parley-refserver --port 0 --quiet "$@" \
                         2>> "$results/stderr/servers.txt")
  server=$!
  local line
  read -r -t 30 -u "$server_out" line ||
    { echo "make bench: the reference server did not start" >&2; exit 1; }
  port=${line##*:}
}

# Stop the server, leaving the CPU seconds it used in server_cpu_s (null
# when it is gone already).
server_cpu_s=
stop_server() {
  local stat
  if read -r -a stat 2>/dev/null < "/proc/$server/stat"; then
    # utime and stime, fields 14 and 15 (the name has no space).
    server_cpu_s=$(awk -v t=$((stat[13] + stat[14])) -v hz="$clk_tck" \
                   'BEGIN { printf "%.2f", t / hz }')
  else
    server_cpu_s=null
  fi
  kill "$server" 2>/dev/null || true
  wait "$server" || true
  exec {server_out}<&-
  server=
}
# ---- the session store, one for the run ----------------------------------

store=
store_port=
store_dir=
# A redis-server on a free loopback port (a port taken makes it exit: try
# another), with no snapshots, in a directory of its own.
start_store() {
  store_dir=$(mktemp -d "${TMPDIR:-/tmp}/parley-bench-redis.XXXXXX")
  local try
  for try in 1 2 3 4 5 6 7 8; do
    store_port=$((20000 + RANDOM % 40000))
    redis-server --port "$store_port" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$store_dir" > "$results/stderr/redis.txt" 2>&1 &
    store=$!
    local waited
    for waited in $(seq 50); do
      redis-cli -p "$store_port" ping 2>/dev/null | grep -q PONG && return 0
      kill -0 "$store" 2>/dev/null || break
      sleep 0.1
    done
    kill "$store" 2>/dev/null || true
    wait "$store" 2>/dev/null || true
  done
  echo "make bench: redis-server did not start: $(tail -n 1 "$results/stderr/redis.txt")" >&2
  exit 1
}
stop_store() {
  [ -z "$store" ] || { kill "$store" 2>/dev/null || true; wait "$store" 2>/dev/null || true; }
  store=
  [ -z "$store_dir" ] || rm -rf "$store_dir"
}
trap '[ -z "$server" ] || kill "$server" 2>/dev/null || true; stop_store' EXIT

# ---- one load point ------------------------------------------------------

json_string() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "${s//$'\t'/ }"
}

# point SCENARIO CLIENT CONCURRENCY REQUESTS LATENCY_MS REJECT_FRACTION: run
# CLIENT against a fresh server that answers after LATENCY_MS and rejects
# that fraction of the requests, and append its JSON line, with what was
# run, to load.jsonl.
point() {
  local scenario=$1 client=$2 concurrency=$3 requests=$4 latency=$5 reject=$6
  local head
  head=$(printf '{"scenario":"%s","client":"%s","concurrency":%s,"latency_ms":%s' \
         "$scenario" "$client" "$concurrency" "$latency")
  head+=$(printf ',"reject_fraction":%s' "$reject")
  local why=
  case $client in
    direct-*)
      # Two descriptors per thread, and some for libcurl and the process.
      local needed=$((2 * concurrency + 64))
      if [ "$needed" -gt "$nofile" ]; then
        why="a thread per caller needs $needed file descriptors;"
        why+=" ulimit -n is at most $nofile here"
      fi
      ;;
    sdk*)
      if [ -n "$sdk_missing" ]; then
        why=$sdk_missing
      elif [ "$concurrency" -gt "$sdk_max_concurrency" ]; then
        why="the SDK's points stop at $sdk_max_concurrency conversations at once"
        why+=" (one Node thread: the first turns alone would outlast the point)"
      fi
      ;;
  esac
  if [ -n "$why" ]; then
    echo "== $scenario $client $concurrency: skipped: $why"
    echo "# $client, $concurrency at once: skipped: $why" >> "$commands"
    printf '%s,"skipped":%s}\n' "$head" "$(json_string "$why")" >> "$load"
    return
  fi
  local -a server_options=(--latency-ms "$latency")
  [ "$reject" = 0 ] || server_options+=(--reject-fraction "$reject")
  # HTTP/2 is served over TLS only (ALPN; lws 4.1 has no h2c next to
  # HTTP/1.1 and WebSocket on one port).
  case $client in
    *-h2) server_options+=(--tls-cert "$tls_cert" --tls-key "$tls_key") ;;
  esac
  start_server "${server_options[@]}"
  local ws=ws://127.0.0.1:$port/v1/stream http=http://127.0.0.1:$port
  local https=https://127.0.0.1:$port
  local -a cmd
  case $client in
    native) cmd=(./parley bench --endpoint "$ws") ;;
    native-store)
      cmd=(./parley bench --endpoint "$ws" --set "session.store=redis://127.0.0.1:$store_port"
           --set worker.id=1) ;;
    anthropic) cmd=(./parley bench --dialect anthropic --endpoint "$http") ;;
    anthropic-h2)
      cmd=(./parley bench --dialect anthropic --endpoint "$https" --cacert "$tls_cert") ;;
    sdk) cmd=(node "$sdk_bench" --endpoint "$http") ;;
    sdk-h2) cmd=(node "$sdk_bench" --http2 --endpoint "$https" --cacert "$tls_cert") ;;
    direct-new) cmd=(./tests/bench/direct --mode new --endpoint "$http") ;;
    direct-keepalive) cmd=(./tests/bench/direct --mode keepalive --endpoint "$http") ;;
    curl-floor) cmd=(./tests/bench/curl_floor --wait events --endpoint "$http") ;;
    curl-floor-h2)
      cmd=(./tests/bench/curl_floor --wait events --endpoint "$https" --cacert "$tls_cert") ;;
  esac
  cmd+=(--concurrency "$concurrency" --requests "$requests" --duration "$duration_s")
  # libcurl alone holds no conversations: a request is a turn of its own.
  case $client in
    curl-floor*) ;;
    *) cmd+=(--turns "$turns") ;;
  esac
  # As the document shows it: the port is a new one each time.
  local shown="./parley-refserver --port 0 --quiet ${server_options[*]} & ${cmd[*]}"
  shown=${shown//:$port/:\$PORT}
  [ -z "$store_port" ] || shown=${shown//:$store_port/:\$REDIS_PORT}
  echo "== $scenario $client $concurrency: $shown"
  echo "$shown" >> "$commands"
  local out rc=0 started ended
  local errors=$results/stderr/$scenario-$client-$concurrency.txt
  started=$(date +%s.%N)
  out=$(timeout $((duration_s + 180)) "${cmd[@]}" 2> "$errors" | tail -n 1) || rc=$?
  ended=$(date +%s.%N)
  stop_server
  local facts
  facts=$(printf ',"server_cpu_s":%s,"wall_s":%s,"exit":%d,"cmd":%s' "$server_cpu_s" \
          "$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.2f", b - a }')" "$rc" \
          "$(json_string "$shown")")
  if [ "${out:0:1}" = "{" ]; then
    echo "$out"
    printf '%s%s,%s\n' "$head" "$facts" "${out#\{}" >> "$load"
  else
    local why
    why=$(tail -n 1 "$errors")
    echo "   failed (exit $rc): $why"
    printf '%s%s,"failed":%s}\n' "$head" "$facts" "$(json_string "exit $rc: $why")" >> "$load"
  fi
  # The first lines the client said on stderr (errors it saw), for a reader.
  sed "s/^/   /" "$errors" | head -n 5
}

# Requests for a point: enough rounds of every conversation for a few
# seconds of load, within bounds.
requests_for() {
  local r=$(($1 * per_conversation))
  [ "$r" -ge "$min_requests" ] || r=$min_requests
  [ "$r" -le "$max_requests" ] || r=$max_requests
  echo "$r"
}

# ---- the peer and TLS -----------------------------------------------------

# The official SDK's bench client, or why its points cannot run.
sdk_bench=$srcdir/tests/interop/bench_sdk.js
sdk_missing=
if ! command -v node >/dev/null; then
  sdk_missing="node is not installed"
elif [ ! -d "$srcdir/tests/interop/node_modules/@anthropic-ai/sdk" ]; then
  sdk_missing="tests/interop/node_modules lacks the SDK: run npm ci there (check.sh does)"
fi

# A self-signed certificate for 127.0.0.1, for the HTTP/2 points.
tls_cert=$results/tls/cert.pem
tls_key=$results/tls/key.pem
mkdir -p "$results/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$tls_key" -out "$tls_cert" \
  2> "$results/tls/openssl.txt" ||
  { echo "make bench: openssl could not make a certificate:" \
         "$(tail -n 1 "$results/tls/openssl.txt")" >&2; exit 1; }

# ---- the run -------------------------------------------------------------

run_started=$(date +%s)
read -r busy0 steal0 < <(cpu_jiffies)
loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)
./parley --version >/dev/null # fail early when the build is incomplete

for c in $classic_concurrency; do
  for client in $clients; do
    point classic "$client" "$c" "$(requests_for "$c")" "$latency_ms" 0
  done
done
for c in $ceiling_concurrency; do
  for client in $clients; do
    point ceiling "$client" "$c" "$ceiling_requests" 0 0
  done
done
point retry native 100 "$retry_requests" "$latency_ms" "$reject_fraction"
for c in $http_concurrency; do
  for client in anthropic sdk curl-floor anthropic-h2 sdk-h2 curl-floor-h2; do
    point http "$client" "$c" "$(requests_for "$c")" "$latency_ms" 0
  done
done
start_store
for c in $store_concurrency; do
  for client in native native-store; do
    point store "$client" "$c" "$(requests_for "$c")" "$latency_ms" 0
  done
done
stop_store

# bench PROGRAM LABEL [ARG...]: run a program of BENCHMARKS; its output,
# after a first line with the command, in LABEL.txt.
bench() {
  local prog=$1 label=$2
  shift 2
  local shown="./$prog${*:+ $*}"
  echo "== $shown"
  echo "$shown" >> "$commands"
  { echo "\$ $shown"; "./$prog" "$@"; } | tee "$results/$label.txt"
}

# Memory per request in flight over HTTP/2 (issue 16): parley
# (bench_memory) and libcurl alone (curl_floor) against one server whose
# replies wait 2 s for their first piece and 1 s between pieces, so that all
# are in flight at once when the memory is sampled.
start_server --latency-ms 2000 --token-ms 1000 --tls-cert "$tls_cert" --tls-key "$tls_key"
bench tests/bench/bench_memory memory-http2 --sessions "$http_memory_inflight" \
  --inflight "$http_memory_inflight" --endpoint "https://127.0.0.1:$port" \
  --set dialect=anthropic --set "tls.ca.file=$tls_cert"
bench tests/bench/curl_floor memory-http2-curl --wait events \
  --endpoint "https://127.0.0.1:$port" --cacert "$tls_cert" \
  --concurrency "$http_memory_inflight" --requests "$http_memory_inflight"
stop_server

for prog in ${BENCHMARKS:-}; do
  case $mode:$(basename "$prog") in
    full:bench_compress)
      bench "$prog" compress
      bench "$prog" compress-threshold --threshold ;;
    quick:bench_compress)
      bench "$prog" compress --messages 500 --rounds 3
      bench "$prog" compress-threshold --threshold ;;
    full:bench_memory) bench "$prog" memory ;;
    quick:bench_memory) bench "$prog" memory --sessions 20000 --inflight 2000 ;;
    full:bench_connections)
      bench "$prog" connections-2000 --inflight 2000
      bench "$prog" connections-10000 --inflight 10000 ;;
    quick:bench_connections)
      bench "$prog" connections-2000 --inflight 2000 --connections 1,4 --seconds 1 \
        --warmup-seconds 0.5 ;;
    *) bench "$prog" "other-$(basename "$prog")" ;;
  esac
done

read -r busy1 steal1 < <(cpu_jiffies)
# The CPU seconds this script's children used: the second line of bash's
# `times` (their user and system time). Not in a $(...) subshell, whose
# children are others.
times > "$results/times.txt"
ours_s=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/)
                        print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$results/times.txt")
{
  echo "mode=$mode"
  echo "started=$(date -u -d "@$run_started" '+%Y-%m-%d %H:%M UTC')"
  echo "wall_s=$(($(date +%s) - run_started))"
  echo "latency_ms=$latency_ms"
  echo "turns=$turns"
  echo "duration_s=$duration_s"
  echo "per_conversation=$per_conversation"
  echo "min_requests=$min_requests"
  echo "max_requests=$max_requests"
  echo "reject_fraction=$reject_fraction"
  echo "sdk_max_concurrency=$sdk_max_concurrency"
  echo "loadavg_start=$loadavg_start"
  echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
  awk -v b=$((busy1 - busy0)) -v s=$((steal1 - steal0)) -v hz="$clk_tck" \
      -v ours="$ours_s" 'BEGIN {
    printf "cpu_busy_s=%.1f\ncpu_ours_s=%.1f\ncpu_steal_s=%.1f\n", b / hz, ours, s / hz }'
} > "$results/run.txt"
CC=${CC:-cc} CFLAGS=${CFLAGS:-} "$srcdir/tests/bench/machine.sh" > "$results/machine.txt"

mkdir -p "$docdir/img"
"$srcdir/tests/bench/plots.sh" "$results" "$docdir/img"
"$srcdir/tests/bench/gen_benchmarks.sh" "$results" "$srcdir/tests/bench/benchmarks-notes.md" \
  > "$docdir/benchmarks.md"
# The README's table of the same figures: rewritten in place by a full run,
# beside the document by a quick one.
readme=$srcdir/README.md
[ "$mode" = full ] || { cp "$srcdir/README.md" "$results/README.md"; readme=$results/README.md; }
"$srcdir/tests/bench/readme_table.sh" "$results" "$readme"
echo "== wrote $docdir/benchmarks.md and $docdir/img/bench-*.png" \
     "($mode run, $(($(date +%s) - run_started)) s)"
