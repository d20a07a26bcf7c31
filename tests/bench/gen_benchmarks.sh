#!/usr/bin/env bash
# gen_benchmarks.sh RESULTS NOTES: docs/benchmarks.md, on stdout, from the
# results of one `make bench` (RESULTS, written by tests/bench/matrix.sh)
# and the hand-written NOTES (tests/bench/benchmarks-notes.md), copied as
# they are at the end. Every figure comes from RESULTS: the tables from
# tests/bench/tables.awk, the other programs' tables as they printed them.
set -eu
results=$1
notes=$2
here=$(dirname "$0")

# A fact of the machine (machine.txt) or of the run (run.txt).
fact() {
  sed -n "s/^$1=//p" "$results/machine.txt" "$results/run.txt" | head -n 1
}

tables() {
  local table=$1
  shift
  awk -f "$here/results.awk" -f "$here/tables.awk" -v table="$table" "$@"
}

# The command a program's output file starts with ("$ COMMAND").
command_of() {
  sed -n '1s/^\$ //p' "$1"
}

# A program's output as Markdown: its tables as they are, each other line a
# paragraph; without the command line, the machine line (the machine is
# described once, at the top) and the JSON line (for programs, not people).
program_md() {
  awk 'NR == 1 || /^\{/ || /^machine:/ { next }
       /^\|/ { if (last == "text") print ""; print; last = "table"; next }
       /^$/ { if (last != "blank") print ""; last = "blank"; next }
       { if (last == "table" || last == "text") print ""; print; last = "text" }' "$1"
}

# Memory per request in flight over HTTP/2: the two runs, when they ran.
http2_memory_md() {
  local parley=$results/memory-http2.txt floor=$results/memory-http2-curl.txt
  [ -f "$parley" ] || return 0
  cat <<EOF
### Memory per request in flight over HTTP/2

One server whose replies wait 2 s for their first piece and 1 s between
pieces, so that every request is in flight when the memory is sampled.
parley (\`bench_memory\`, its sessions opened and one request per
connection made before the first sample, so that the figure leaves the
connections out): \`$(command_of "$parley")\`

$(program_md "$parley")
EOF
  [ -f "$floor" ] || return 0
  cat <<EOF

libcurl alone (\`tests/bench/curl_floor\`: the same requests on one
multi handle, nothing decoded; its figure is the peak RSS less the RSS
before the first transfer, over the transfers, so it includes the
connections' TLS state): \`$(command_of "$floor")\`

\`\`\`
$(grep '^{' "$floor" | tail -n 1)
\`\`\`
EOF
}

# 250000 -> 250,000, as the tables write numbers.
grouped() {
  echo "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta'
}

awk_number() {
  awk "BEGIN { printf \"%.0f\", $1 }"
}

mode=$(fact mode)
latency=$(fact latency_ms)
turns=$(fact turns)
cpus=$(fact cpus)
wall=$(fact wall_s)
available=$((cpus * wall))
ours=$(fact cpu_ours_s)
others=$(awk_number "$(fact cpu_busy_s) - $ours < 0 ? 0 : $(fact cpu_busy_s) - $ours")
virtual=
[ "$(fact virtual)" = yes ] && virtual=", a virtual machine"
range=$(tables range "$results/load.jsonl")
budget="$(fact per_conversation) requests per conversation at once, from"
budget="$budget $(grouped "$(fact min_requests)") to $(grouped "$(fact max_requests)")"

cat <<EOF
# Benchmarks

<!-- Written by \`make bench\` (tests/bench/matrix.sh, gen_benchmarks.sh):
     edit tests/bench/benchmarks-notes.md or the generator, not this file. -->

Every figure in this file comes from one run of \`make bench\` on the machine
below, the reference server and the clients on the same machine, and was
written here by the run itself; the notes at the end are written by hand.
EOF
if [ "$mode" = quick ]; then
  cat <<'EOF'

**This is a quick run (`BENCH_QUICK=1`): fewer points and fewer requests, a
smoke test of the benchmarks, not figures to quote.**
EOF
fi

cat <<EOF

## The machine

| | |
|---|---|
| CPUs | $cpus (\`nproc\`), $(fact cpu_model) at $(fact cpu_mhz) MHz (\`/proc/cpuinfo\`)$virtual |
| memory | $(fact memory_gib) GiB |
| system | $(fact kernel), Debian $(fact debian), $(fact glibc) |
| compiler | $(fact compiler), \`$(fact cflags)\`, no sanitizer |
| libraries | libcurl $(fact libcurl), libwebsockets $(fact libwebsockets), json-c $(fact json_c), zstd $(fact zstd) |
| parley | $(fact parley), commit $(fact commit) |
| limits | \`ulimit -n\` $(fact nofile), \`net.ipv4.tcp_tw_reuse\` $(fact tcp_tw_reuse), ephemeral ports $(fact port_range) |
| this run | $mode, started $(fact started), took $wall s; load average $(fact loadavg_start) before, $(fact loadavg_end) after |
| CPU sharing | of the $available CPU seconds the run lasted, its own processes used $ours, other processes $others, the hypervisor took $(fact cpu_steal_s) (steal) |

The last row says how much of the machine other processes took while this
run went on.

## How to rerun

\`\`\`sh
./check.sh                # once: installs what is missing (gnuplot too), builds, tests
cd build/plain            # check.sh's unsanitized build (-g -O2)
make bench                # the full run (the machine's table says how long it
                          # took): rewrites docs/benchmarks.md, docs/img/bench-*.png
BENCH_QUICK=1 make bench  # about a minute: fewer points and requests; writes
                          # bench-results/benchmarks.md and its img/, leaves docs/ alone
\`\`\`

Every result stays in \`bench-results/\` of the build directory:
\`load.jsonl\` has one line per load point (the JSON line the client
printed, with what was run), \`stderr/\` what each client said on stderr,
and each other program's output is in its own \`.txt\`.

The commands of this run, from the build directory. Each load point had a
reference server of its own, started as shown and stopped after it
(\`--port 0\` picks a free port, \`\$PORT\` below; the server takes its key
from \`PARLEY_API_KEY\`, which the run sets):

\`\`\`sh
$(cat "$results/commands.txt")
\`\`\`

## The classic comparison

The client this product replaces published this comparison (4 cores, 8 GB,
one virtual machine; the server's latency, the load and the method were
not given):

| metric | direct API calls | the client |
|---|---|---|
| max RPS | 120 | 850 |
| mean latency | 320 ms | 75 ms |
| connection reuse | no | yes |
| automatic retry | by hand | built in |

The same comparison here, from scenario 1 below: $cpus CPUs shared by
clients and server, a server that answers each request after $latency ms
(no mean latency can be lower), conversations of $turns turns, from
$range at once. "Direct API calls" is \`tests/bench/direct\`: a thread
per caller, blocking libcurl requests to the Anthropic Messages API, with a
new connection per request or one kept alive per thread. "Official Anthropic
SDK for Node" is \`tests/interop/bench_sdk.js\`: the SDK $(fact sdk) (pinned in
tests/interop/package.json) on Node $(fact node), the same conversations
streamed with \`messages.create({stream: true})\` through Node's fetch
(HTTP/1.1), each reply checked the same way. With a server this
slow no client can make more than N / $latency ms requests a second with N
conversations; what tells the clients apart is how close they stay to that
bound as N grows, and at what cost in CPU and memory (scenario 1's table).

$(tables classic "$results/load.jsonl")

## Scenario 1: classic, a server latency of $latency ms

For each number of conversations at once N, a fresh reference server that
answers after $latency ms, and each client holds N conversations of $turns
turns at once, a new conversation replacing a finished one, until its
request budget ($budget) or $(fact duration_s) s are spent. *replies/s*
counts the replies that matched the server's echo model (errors excluded);
*bound* is N / $latency ms, the most N conversations can make; latency is
from the send to the end of the reply; *CPU %* is of one CPU over the load
(the server runs one thread); *RSS* is the client's peak.

![Replies per second against conversations at once](img/bench-throughput.png)

![Latency p50 and p99 against conversations at once](img/bench-latency.png)

$(tables scenario1 "$results/load.jsonl")

## Scenario 2: the throughput ceiling, a server latency of 0

The same clients against a server that answers at once: the most each
carries, and the client's CPU time per request (its process's user and
system time over its requests). The clients and the server share $cpus CPUs,
so this is the ceiling of the machine with both on it, not of the client
alone: when client and server CPU % add up to about $((cpus * 100)), the
machine is full.

$(tables ceiling "$results/load.jsonl")

## Automatic retry

\`parley bench\` against a server that rejects a share of the new requests
(\`--reject-fraction\`, as \`rate_limited\` before \`ack\`), which the client
sends again after its backoff ([reliability.md](reliability.md)). Only the
native protocol is measured: the reference server's command line injects
rejections on WebSocket only. The baseline retries nothing, so each
rejection would be one of its errors.

$(tables retry "$results/load.jsonl")

## Scenario 5: parley and the official SDK on the HTTP path

The anthropic dialect only: \`parley bench --dialect anthropic\` and the
official Anthropic SDK for Node (\`tests/interop/bench_sdk.js\`) with the
same conversations ($turns turns, each request carrying the history so
far, every reply streamed and checked against the echo model), against a
fresh reference server answering after $latency ms, over HTTP/1.1
(\`http://\`) and over HTTP/2 with TLS (\`https://\`, a self-signed
certificate made for the run, the protocol chosen by ALPN). The SDK calls
\`fetch\`: Node's own speaks HTTP/1.1 only, so for HTTP/2 it is given
undici's \`fetch\` (the npm package, pinned) with an \`Agent({ allowH2:
true })\`, undici's defaults otherwise. *client CPU us/request* is the
client process's user and system time over its requests (\`cpu_s\` of
\`parley bench\`, \`process.cpuUsage()\` of the SDK's), *RSS* its peak;
*server CPU %* is the reference server's, of one CPU over the load.

$(tables http_side "$results/load.jsonl")

*libcurl alone* (\`tests/bench/curl_floor\`) is the same requests with
no parley but its I/O loop: one multi handle driven through libcurl's
event interface, easy handles set up once and added again as each request
ends, the answer's bytes scanned for the last event and not decoded. It
is the least a client built on libcurl 8.14 spends on these loads, and
so the floor under parley's figures on this path.

Every point:

$(tables http "$results/load.jsonl")

$(http2_memory_md)

## Scenario 6: sessions in Redis

\`parley bench\` over the native protocol, the same conversations with the
sessions in memory and in a session store (\`--set
session.store=redis://...\`, a redis-server started for the run on the
same machine, docs/cluster.md): each turn then records itself in the store
as it is sent (the turn does not wait for that answer) and saves itself
there before its DONE (which waits for it), pipelined with the other
sessions' traffic by the I/O thread; each conversation ($turns turns)
takes its lease when it opens, which its first turn waits for, and gives
it back when it closes. The difference between the two rows is what the
store costs; redis-server shares the machine's CPUs with both.

$(tables store "$results/load.jsonl")
EOF

# The targets read bench_memory's JSON line, if it ran, and the HTTP/2
# memory runs (parley's and libcurl's alone), if they ran.
memory=$results/memory.txt
[ -f "$memory" ] || memory=/dev/null
http2_memory=
for f in "$results/memory-http2.txt" "$results/memory-http2-curl.txt"; do
  [ ! -f "$f" ] || http2_memory+=" $f"
done
if [ -f "$results/memory.txt" ]; then
  cat <<EOF

## Scenario 3: memory per session

Idle sessions, then requests in flight on some of them, in one client;
RSS and heap sampled after each step (the notes below say how).

Command: \`$(command_of "$results/memory.txt")\`

$(program_md "$results/memory.txt")
EOF
fi

# bench_connections' outputs in the order of M: connections-2000 before
# connections-10000.
connection_files=()
while read -r f; do
  [ ! -e "$f" ] || connection_files+=("$f")
done < <(printf '%s\n' "$results"/connections-*.txt | sort -V)
if [ ${#connection_files[@]} -gt 0 ]; then
  cat <<EOF

## Scenario 4: requests in flight per connection

M requests kept in flight, one-turn sessions, over 1, 2, 4, ... WebSocket
connections, against a server that answers after 200 ms: how many one
connection carries before latency rises above the floor, and whether the
sizing rule's default holds.
EOF
  for f in "${connection_files[@]}"; do
    cat <<EOF

Command: \`$(command_of "$f")\`

$(program_md "$f")
EOF
  done
  cat <<EOF

$(tables connections "${connection_files[@]}")
EOF
fi

if [ -f "$results/compress.txt" ]; then
  cat <<EOF

## Compression

Command: \`$(command_of "$results/compress.txt")\`

$(program_md "$results/compress.txt")
EOF
fi
if [ -f "$results/compress-threshold.txt" ]; then
  cat <<EOF

### The compression threshold

Command: \`$(command_of "$results/compress-threshold.txt")\`

$(program_md "$results/compress-threshold.txt")
EOF
fi

for f in "$results"/other-*.txt; do
  [ -e "$f" ] || continue
  cat <<EOF

## $(basename "$f" .txt | sed 's/^other-//')

Command: \`$(command_of "$f")\`

$(program_md "$f")
EOF
done

cat <<EOF

## Targets

The targets of issues 7 and 16 (rows "5 HTTP": scenario 5), with what this
run measured. Figures of load depend
on what else ran on the machine meanwhile: its table at the top says how
much CPU the other processes took during this run.

$(tables targets "$results/load.jsonl" "$memory" $http2_memory)

EOF
cat "$notes"
