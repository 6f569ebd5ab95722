#!/usr/bin/env bash
# Configures and builds into build/ (programs in build/bin/). Extra arguments go to CMake.
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="$PWD"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
BUILD_DIR="${EDGE_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${EDGE_BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "${EDGE_JOBS:-2}" ${EDGE_TARGETS:+--target $EDGE_TARGETS}
