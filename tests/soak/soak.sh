#!/usr/bin/env bash
# make soak (issue 12): SOAK_MINUTES (default 30) of a steady, moderate load
# with faults on, and a check that nothing grows without bound.
#
# The load: `parley bench` holds 200 conversations of 5 turns each over 4
# native connections against parley-refserver, which paces its replies
# (100 ms to the first piece, 100 ms between pieces of 8 bytes: a few
# hundred requests per second) and injects faults: every 50th new request
# rejected (rate_limited, retry_after_ms 20), every 200th acked and then
# stalled until the client repeats it (stall.timeout.ms 2000), a connection
# dropped after every 2000 text messages written on it, an unknown message
# before every 100th text.
#
# Every minute the bench reports (its --report-every) the process's
# resident memory, open file descriptors, the I/O thread's timer-heap size
# and the requests in flight; this script prints them as they come.
#
# The rule: for each of the four, the maximum over the last third of the
# run must not exceed the maximum over the first third by more than 10 %
# plus a floor (memory 4 MiB, descriptors 8, timers 400, requests in
# flight 40). A leak grows with the requests made, so it shows across the
# middle third (a leak of 40 bytes a request is ~13 MiB over 20 minutes
# of this load, one of 12 bytes already fails); the floors absorb the
# allocator's and the load's noise. (The 16 MiB floor this rule had first
# let a leak of ~53 bytes a request pass: every closed session's handle.)
# The bench itself keeps 8 bytes per request (its latency samples): that
# much memory per request made between the two thirds is allowed too.
# The run also fails when the bench cannot run or crashes. Failed requests
# are printed but allowed: they are what some faults are for.
#
# Environment: SOAK_MINUTES (default 30), SOAK_REPORT_S (seconds between
# reports, default 60), PARLEY_BIN and REFSERVER_BIN (default: ./parley and
# ./parley-refserver, as in a build directory).
set -u
minutes=${SOAK_MINUTES:-30}
every=${SOAK_REPORT_S:-60}
parley=${PARLEY_BIN:-./parley}
refserver=${REFSERVER_BIN:-./parley-refserver}
work=$(mktemp -d "${TMPDIR:-/tmp}/parley-soak.XXXXXX")
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export PARLEY_API_KEY=soak-key
# It prints "listening on ADDR:PORT" once ready: read waits for that line
# (at most 30 s).
exec {server_out}< <(exec "$refserver" --quiet --port 0 --latency-ms 100 --token-ms 100 \
    --chunk-bytes 8 --reject-every 50 --retry-after-ms 20 --stall-every 200 \
    --drop-after-texts 2000 --unknown-every 100)
server_pid=$!
line=
read -r -t 30 -u "$server_out" line
port=${line##*:}
case $port in
    '' | *[!0-9]*) echo "soak: parley-refserver did not start ($line)"; exit 1 ;;
esac

echo "soak: $minutes min against 127.0.0.1:$port, a report every $every s"
seconds=$((minutes * 60))
status_file=$work/status
{
    "$parley" bench --endpoint "ws://127.0.0.1:$port/v1/stream" --concurrency 200 \
        --turns 5 --connections 4 --requests 100000000 --duration "$seconds" \
        --report-every "$every" --set stall.timeout.ms=2000 \
        --set request.timeout.ms=120000 2> "$work/stderr"
    echo $? > "$status_file"
} | tee "$work/out" | awk '
    /^report / {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "soak: %4.1f min  RSS %7.1f MiB  fds %4d  timers %6d  in flight %5d" \
               "  done %9d  failed %6d\n", v["t_s"] / 60, v["rss_kb"] / 1024, v["fds"],
               v["timers"], v["inflight"], v["done"], v["failed"]
        fflush()
    }'
status=$(cat "$status_file")
if [ "$status" -ge 2 ]; then
    echo "soak: FAILED: parley bench exited with status $status:"
    tail -n 20 "$work/stderr"
    exit 1
fi
echo "soak: bench results: $(tail -n 1 "$work/out")"

# The rule, over the report lines.
grep '^report ' "$work/out" | awk -v floors="rss_kb=4096 fds=8 timers=400 inflight=40" '
    {
        n++
        for (i = 2; i <= NF; i++) { split($i, kv, "="); val[n, kv[1]] = kv[2] }
    }
    END {
        if (n < 2) { print "soak: FAILED: fewer than 2 reports"; exit 1 }
        w = int(n / 3); if (w < 1) w = 1
        split(floors, f, " ")
        bad = 0
        for (k in f) {
            split(f[k], kv, "="); name = kv[1]; floor = kv[2]
            early = -1; late = -1
            for (i = 1; i <= w; i++) if (val[i, name] > early) early = val[i, name]
            for (i = n - w + 1; i <= n; i++) if (val[i, name] > late) late = val[i, name]
            limit = early * 1.10 + floor
            if (name == "rss_kb")
                limit += 8 * (val[n, "done"] - val[w, "done"]) / 1024
            verdict = late <= limit ? "ok" : "GROWS"
            if (late > limit) bad = 1
            printf "soak: %-8s first %d report(s) max %10d, last %d max %10d, limit %10d: %s\n",
                   name, w, early, w, late, limit, verdict
        }
        if (bad) { print "soak: FAILED: something grows without bound"; exit 1 }
        print "soak: PASSED: nothing grows without bound"
    }'
