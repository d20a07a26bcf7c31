#!/bin/sh
# Run one libFuzzer target for a fixed time and print a one-line summary:
# executions, exec/s, coverage (cov/ft), corpus size and crashes.
#
#   run_target.sh TARGET SECONDS SEEDS [libFuzzer options...]
#
# TARGET is the built binary (tests/fuzz/fuzz_x in a build directory); new
# inputs collect in tests/fuzz/work/fuzz_x/, the whole output goes to
# tests/fuzz/logs/fuzz_x.log, and a crash, leak, timeout or out-of-memory
# input is written as tests/fuzz/fuzz_x-<kind>-<sha1>. SEEDS is the seed
# corpus directory, only read. A dictionary next to the seeds
# (SEEDS/../../fuzz_x.dict) is used when there is one. The exit status is 1
# when the target found something, so that `make fuzz` can report it after
# running every target.
set -u
target=$1 seconds=$2 seeds=$3
shift 3
name=$(basename "$target")
dir=$(dirname "$target")
work=$dir/work/$name
logs=$dir/logs
mkdir -p "$work" "$logs"
log=$logs/$name.log
dict=$(dirname "$(dirname "$seeds")")/$name.dict
set -- -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$dir/$name-" "$@"
if [ -f "$dict" ]; then
    set -- -dict="$dict" "$@"
fi
# In fork mode libFuzzer keeps one line of a crashed job's output: the
# sanitizers' reports (stacks) go to files of their own, one per process,
# and the targets' own checks say what failed in $name.findings.
rm -f "$logs/$name".sanitizer.* "$logs/$name.findings"
ASAN_OPTIONS="log_path=$logs/$name.sanitizer:${ASAN_OPTIONS:-}"
UBSAN_OPTIONS="log_path=$logs/$name.sanitizer:print_stacktrace=1:${UBSAN_OPTIONS:-}"
FUZZ_FINDINGS_LOG=$logs/$name.findings
export ASAN_OPTIONS UBSAN_OPTIONS FUZZ_FINDINGS_LOG
marker=$logs/.$name.start
: > "$marker"
"$target" "$@" "$work" "$seeds" > "$log" 2>&1
status=$?

# The figures, from libFuzzer's final statistics and its last status line
# ("#N NEW cov: C ft: F corp: I/S ... exec/s: R", or with -fork
# "#N: cov: C ft: F corp: I exec/s R oom/timeout/crash: ...").
stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
last=$(grep -E '^#[0-9]+:?[[:space:]].*cov: ' "$log" | tail -n 1)
field() { printf '%s\n' "$last" | sed -n "s|.* $1:* \([^ ]*\).*|\1|p"; }
execs=$(stat number_of_executed_units)
execs=${execs:-$(printf '%s\n' "$last" | sed -n 's/^#\([0-9]*\).*/\1/p')}
rate=$(stat average_exec_per_sec)
# In fork mode the status line's rate is the last job's: the whole run's
# average is the executions over the time.
rate=${rate:-$(awk -v n="${execs:-0}" -v s="$seconds" 'BEGIN { printf "%d", n / s }')}
rss=$(stat peak_rss_mb)
cov=$(field cov) ft=$(field ft) corp=$(field corp)
found=$(find "$dir" -maxdepth 1 -name "$name-*-*" -newer "$marker" | sort)
crashes=$(printf '%s' "$found" | grep -c .)
rm -f "$marker"
echo "$name: ${seconds} s, ${execs:-?} executions, ${rate:-?} exec/s," \
    "cov ${cov:-?} ft ${ft:-?}, corpus ${corp:-?}," \
    "${rss:+peak RSS $rss MB, }crashes $crashes"
for f in $found; do
    echo "  found: $f"
done
if [ "$crashes" -gt 0 ]; then
    # What failed, most frequent first: the targets' checks, then the
    # first line of each sanitizer report.
    {
        cat "$logs/$name.findings" 2>/dev/null | sed 's/^pid [0-9]*: //'
        for f in "$logs/$name".sanitizer.*; do
            [ -f "$f" ] && grep -m 1 -E 'ERROR|runtime error' "$f" | sed 's/^==[0-9]*==//'
        done
    } | sort | uniq -c | sort -rn | head -n 5 | sed 's/^/  /'
    echo "  (stacks: $logs/$name.sanitizer.<pid>)"
fi
if [ "$crashes" -gt 0 ] || [ "$status" -ne 0 ]; then
    echo "  (exit status $status; the whole output is in $log)"
    exit 1
fi
exit 0
