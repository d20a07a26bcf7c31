#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite three times:
# the plain build, then under AddressSanitizer+UBSan, then ThreadSanitizer.
# Ends with one line "N passed, N failed" (test cases over all three builds).
set -euo pipefail
cd "$(dirname "$0")"
top=$(pwd)

./scripts/install-deps.sh
# The independent interop server's one dependency, pinned by its lock file.
(cd tests/interop && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
  autoreconf -fi
fi

jobs=$(nproc 2>/dev/null || echo 2)
variants=("plain:" "asan:--enable-sanitizers=address,undefined" "tsan:--enable-sanitizers=thread")
if [ -n "${PARLEY_CHECK_VARIANTS:-}" ]; then
  read -r -a wanted <<<"$PARLEY_CHECK_VARIANTS"
  selected=()
  for v in "${variants[@]}"; do
    for w in "${wanted[@]}"; do [ "${v%%:*}" = "$w" ] && selected+=("$v"); done
  done
  variants=("${selected[@]}")
fi

passed=0
failed=0
broken=()

# Count cmocka's test cases in one build's logs; a program that ended without
# cmocka's summary (a crash, a sanitizer report, a time-out) counts as failed.
tally() {
  local dir=$1 name=$2 log p f
  while IFS= read -r log; do
    p=$(grep -ahoE '^\[  PASSED  \] [0-9]+ test' "$log" | grep -oE '[0-9]+' | tail -n1 || true)
    f=$(grep -ahoE '^\[  FAILED  \] [0-9]+ test' "$log" | grep -oE '[0-9]+' | tail -n1 || true)
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    if grep -q '^:test-result: FAIL' "${log%.log}.trs" 2>/dev/null && [ "${f:-0}" = 0 ]; then
      failed=$((failed + 1))
      broken+=("$name: ${log#"$dir"/}")
    elif [ "${f:-0}" != 0 ]; then
      broken+=("$name: ${log#"$dir"/}")
    fi
  done < <(find "$dir/tests" -name '*.log' ! -name 'test-suite.log' | sort)
}

for v in "${variants[@]}"; do
  name=${v%%:*}
  flags=${v#*:}
  dir="$top/build/$name"
  echo "=== $name build ==="
  mkdir -p "$dir"
  (cd "$dir" && { [ -f Makefile ] && [ "$(cat .configure-flags 2>/dev/null)" = "$flags" ] ||
                  { "$top/configure" $flags -q && echo "$flags" > .configure-flags; }; })
  make -C "$dir" -j"$jobs" >/dev/null
  rm -f "$dir/test-suite.log"
  make -C "$dir" -j"$jobs" check >/dev/null 2>&1 || true
  if [ ! -f "$dir/test-suite.log" ]; then
    # The tests did not even build or start: that is a failure, not silence.
    failed=$((failed + 1))
    broken+=("$name: make check did not run the tests")
    continue
  fi
  tally "$dir" "$name"
  grep -hE '^# (TOTAL|PASS|FAIL|ERROR):' "$dir/test-suite.log" | tr '\n' ' '; echo
done

if [ ${#broken[@]} -gt 0 ]; then
  echo "Failing test programs (see their .log files):"
  printf '  %s\n' "${broken[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
