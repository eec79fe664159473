#!/usr/bin/env bash
# The whole suite once more with AddressSanitizer and UndefinedBehaviorSanitizer; any report
# fails the run (UBSan does not recover; ASan exits non-zero, which the tests check).
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR="${BUILD_DIR:-build-asan}"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ci/test.sh -DMOCKSRV_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
