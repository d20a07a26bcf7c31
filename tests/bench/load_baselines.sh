#!/usr/bin/env bash
# The load benchmark (`make bench-load`, part of `make bench`): `parley bench`
# and the baseline tests/bench/direct against one reference server that
# answers like a slow model (first piece after LATENCY_MS, then a piece every
# TOKEN_MS). Prints each command and its JSON line. Run it in an unsanitized
# build; the environment variables below change the settings.
set -euo pipefail
parley=${PARLEY_BIN:-./parley}
builddir=$(dirname "$parley")
latency_ms=${LATENCY_MS:-200}
token_ms=${TOKEN_MS:-20}
turns=${TURNS:-3}
requests=${REQUESTS:-5000}

exec {server_out}< <(exec "$builddir/parley-refserver" --port 0 --quiet \
                       --latency-ms "$latency_ms" --token-ms "$token_ms")
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null' EXIT
read -r -t 30 -u "$server_out" line || { echo "the reference server did not start" >&2; exit 1; }
port=${line##*:}
echo "== parley-refserver --port 0 --quiet --latency-ms $latency_ms --token-ms $token_ms" \
     "(port $port)"
# The server asks for no key then; the clients still need one to start.
export PARLEY_API_KEY=${PARLEY_API_KEY:-bench-key}
unset ANTHROPIC_API_KEY OPENAI_API_KEY

run() {
  echo "== $*"
  "$@" | tail -n 1
}

ws=ws://127.0.0.1:$port/v1/stream
http=http://127.0.0.1:$port
run "$parley" bench --endpoint "$ws" --concurrency 100 --turns "$turns" --requests "$requests"
run "$parley" bench --endpoint "$ws" --concurrency 1000 --turns "$turns" \
  --requests $((requests * 4))
run "$parley" bench --dialect anthropic --endpoint "$http" --concurrency 100 --turns "$turns" \
  --requests "$requests"
run "$builddir/tests/bench/direct" --mode new --endpoint "$http" --concurrency 100 \
  --turns "$turns" --requests "$requests"
run "$builddir/tests/bench/direct" --mode keepalive --endpoint "$http" --concurrency 100 \
  --turns "$turns" --requests "$requests"
