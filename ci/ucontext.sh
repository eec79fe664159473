#!/usr/bin/env bash
# The unit tests with the portable ucontext context switch instead of the assembly one.
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR="${BUILD_DIR:-build-ucontext}"
ci/build.sh -DMOCKSRV_UCONTEXT=ON
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" -L unit
