#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite through CTest.
# Integration tests start their own mosquitto (and later swtpm) on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
deploy/install-deps.sh
deploy/build.sh
cd "${EDGE_BUILD_DIR:-build}"
# Two cores: two tests at a time; integration tests are written to run in parallel.
ctest --output-on-failure -j "${EDGE_TEST_JOBS:-2}" --timeout 300 "$@"
echo "tests/run.sh: done in $(( $(date +%s) - start )) s"
