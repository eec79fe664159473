#!/usr/bin/env bash
# Configures and builds mocksrv into BUILD_DIR (default: build/). Extra arguments go to cmake.
#
# Warnings are errors in CI (CI=true: CI services set it, and .ci/run does) and not otherwise: a
# user's newer compiler may warn where ours does not, and that must not stop their build. The
# value is passed on every configure, so an old build directory's cache cannot keep another one;
# MOCKSRV_WERROR=ON|OFF in the environment overrides it, and so does -DMOCKSRV_WERROR=... as an
# argument. BUILD_TYPE (default RelWithDebInfo) is CMAKE_BUILD_TYPE; CC picks the compiler on a
# build directory's first configure, as with cmake itself.
set -euo pipefail
cd "$(dirname "$0")/.."
"$(dirname "$0")/setup.sh"
build="${BUILD_DIR:-build}"
werror="${MOCKSRV_WERROR:-OFF}"
if [ "${CI:-}" = "true" ]; then werror="${MOCKSRV_WERROR:-ON}"; fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
    -DMOCKSRV_WERROR="$werror" "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"
