#!/bin/sh
# Runs one test program with a hard time limit, so that no test can hang the
# suite. PARLEY_TEST_TIMEOUT (seconds) overrides the default.
exec timeout --kill-after=10 "${PARLEY_TEST_TIMEOUT:-300}" "$@"
