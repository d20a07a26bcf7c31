#!/bin/sh
# The session store's tests again, with Valkey as the server instead of
# Redis: docs/cluster.md promises both. The same programs, their fixture
# (tests/fixtures/redis_server.h) starting valkey-server.
if ! command -v valkey-server >/dev/null 2>&1; then
  echo "valkey-server is not installed (scripts/install-deps.sh installs it from bookworm-backports)"
  exit 77
fi
PARLEY_TEST_STORE_SERVER=valkey-server
export PARLEY_TEST_STORE_SERVER
failed=0
for test in tests/store/test_store tests/e2e/test_store_sessions; do
  echo "== $test against $(valkey-server --version)"
  "./$test" || failed=1
done
exit $failed
