#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite through CTest: once in the
# normal build (build/), then again built with ASan+UBSan (build-asan/, Debug).
# Integration tests start their own mosquitto on free loopback ports.
#   EDGE_SKIP_SANITIZE=1 tests/run.sh      skip the sanitizer pass
#   tests/run.sh -L unit                   extra arguments go to both ctest runs
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
deploy/install-deps.sh

run_suite() {
  local dir=$1
  shift
  # Two cores: two tests at a time; integration tests are written to run in parallel.
  (cd "$dir" && ctest --output-on-failure -j "${EDGE_TEST_JOBS:-2}" --timeout 300 "$@")
}

deploy/build.sh
run_suite "${EDGE_BUILD_DIR:-build}" "$@"

if [ "${EDGE_SKIP_SANITIZE:-0}" != "1" ]; then
  EDGE_BUILD_DIR=build-asan EDGE_BUILD_TYPE=Debug deploy/build.sh -DEDGE_SANITIZE=ON
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan "$@"
fi
echo "tests/run.sh: done in $(( $(date +%s) - start )) s"
