#!/usr/bin/env bash
# Builds mocksrv and runs it on the embedded default scenario, with a transcript on stderr.
# Extra arguments go to mocksrv (e.g. ci/serve.sh --ephemeral).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}" MOCKSRV_QUIET_BUILD=1 ci/build.sh >/dev/null
exec "${BUILD_DIR:-build}/mocksrv" -v "$@"
