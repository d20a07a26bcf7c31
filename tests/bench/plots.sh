#!/usr/bin/env bash
# plots.sh RESULTS OUTDIR: the PNG plots of scenario 1 (docs/benchmarks.md)
# from RESULTS/load.jsonl (tests/bench/matrix.sh): OUTDIR/bench-throughput.png
# (replies per second against conversations at once, one line per client)
# and OUTDIR/bench-latency.png (p50 and p99 against the same).
set -eu
results=$1
outdir=$2
here=$(dirname "$0")

latency=$(sed -n 's/^latency_ms=//p' "$results/run.txt")
for client in direct-new direct-keepalive anthropic native sdk; do
  awk -f "$here/results.awk" -f "$here/tables.awk" -v table=plot -v client="$client" \
    "$results/load.jsonl" > "$results/plot-$client.dat"
done
gnuplot -e "dir='$results'; out='$outdir'; latency=$latency" "$here/plots.gp"
