#!/usr/bin/env bash
# Builds mocksrv and runs every test (unit and interop) through ctest. With CI=true the build
# treats warnings as errors (-DMOCKSRV_WERROR=ON, see ci/build.sh); extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR="${BUILD_DIR:-build}"
ci/build.sh "$@"
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" --timeout 300
