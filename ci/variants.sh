#!/usr/bin/env bash
# The builds a user may make that ci/test.sh does not, each in a build directory of its own,
# warnings as errors:
#   build-release  gcc, CMAKE_BUILD_TYPE=Release (-O3 -DNDEBUG: gcc's flow analysis warns where
#                  -O2 -g does not); every target, then the unit tests
#   build-clang    clang, the default build type; every target, then the unit tests
#   build-lib      the library alone (-DMOCKSRV_TESTS=OFF), as the README tells a user to build
#                  and install it: it must not look for check, Python or the openssl program,
#                  and must install the library, header, pkg-config file and CMake package
# Run by .ci/run after ci/test.sh. VARIANTS="release clang lib" (the default) picks which.
set -euo pipefail
cd "$(dirname "$0")/.."
export MOCKSRV_WERROR=ON
read -r -a variants <<<"${VARIANTS:-release clang lib}"

release() {
    echo "== ci/variants.sh: gcc Release (build-release)"
    CC=gcc BUILD_DIR=build-release BUILD_TYPE=Release ci/build.sh
    (cd build-release && ctest --output-on-failure -j "$(nproc)" --timeout 300 -L unit)
}

clang_build() {
    echo "== ci/variants.sh: clang (build-clang)"
    CC=clang BUILD_DIR=build-clang ci/build.sh
    (cd build-clang && ctest --output-on-failure -j "$(nproc)" --timeout 300 -L unit)
}

# A PATH without python3 and the openssl program, and a pkg-config path without check.pc, in
# $1: what a machine with only the library's dependencies offers.
without_test_tools() {
    local dir="$1" d f link
    local -a dirs
    mkdir -p "$dir/bin" "$dir/pkgconfig"
    IFS=: read -r -a dirs <<<"$PATH"
    for d in "${dirs[@]}"; do
        for f in "$d"/*; do
            [ -e "$f" ] || continue # an empty or missing directory leaves the pattern itself
            case "${f##*/}" in python* | openssl | checkmk) continue ;; esac
            link="$dir/bin/${f##*/}"
            [ -L "$link" ] || ln -s "$f" "$link" # the first in PATH wins, as in a shell
        done
    done
    IFS=: read -r -a dirs <<<"$(pkg-config --variable pc_path pkg-config)"
    for d in "${dirs[@]}"; do
        for f in "$d"/*.pc; do
            [ -e "$f" ] || continue
            [ "${f##*/}" != check.pc ] || continue
            link="$dir/pkgconfig/${f##*/}"
            [ -L "$link" ] || ln -s "$f" "$link"
        done
    done
}

lib() {
    echo "== ci/variants.sh: the library alone (build-lib)"
    ci/setup.sh
    rm -rf build-lib
    local env_dir="$PWD/build-lib/no-test-tools" prefix="$PWD/build-lib/install"
    without_test_tools "$env_dir"
    # CMAKE_FIND_USE_CMAKE_SYSTEM_PATH=FALSE: find_program searches PATH only, not /usr/bin too.
    local -a bare=(env PATH="$env_dir/bin" PKG_CONFIG_LIBDIR="$env_dir/pkgconfig"
        PKG_CONFIG_PATH= cmake -DCMAKE_FIND_USE_CMAKE_SYSTEM_PATH=FALSE)
    # The controls: this environment hides the test tools, and with the tests on the configure
    # fails; otherwise it hides nothing and proves nothing.
    if env PATH="$env_dir/bin" sh -c 'command -v python3 || command -v openssl' ||
        env PKG_CONFIG_LIBDIR="$env_dir/pkgconfig" PKG_CONFIG_PATH= pkg-config --exists check ||
        "${bare[@]}" -S . -B build-lib/control -DMOCKSRV_TESTS=ON >build-lib/control.log 2>&1; then
        echo "ci/variants.sh: check, python3 or openssl is still in reach" >&2
        exit 1
    fi
    # The README's commands.
    "${bare[@]}" -S . -B build-lib -DMOCKSRV_TESTS=OFF -DMOCKSRV_WERROR=ON >/dev/null
    cmake --build build-lib -j "$(nproc)"
    cmake --install build-lib --prefix "$prefix" >/dev/null
    # Whatever tests/ and certs/ look for leaves an entry in the cache when looked for at all.
    local found
    found=$(grep -E '^(CHECK_|PYTHON3|OPENSSL_BIN|MOCKSRV_FUZZ_CC)[A-Za-z0-9_]*:' \
        build-lib/CMakeCache.txt || true)
    if [ -n "$found" ]; then
        echo "ci/variants.sh: -DMOCKSRV_TESTS=OFF still looked for test tools:" >&2
        echo "$found" >&2
        exit 1
    fi
    local libdir f
    libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:[A-Z]*=//p' build-lib/CMakeCache.txt)
    for f in bin/mocksrv include/mocksrv.h "$libdir/libmocksrv.a" "$libdir/libmocksrv.so" \
        "$libdir/pkgconfig/mocksrv.pc" "$libdir/cmake/mocksrv/mocksrvConfig.cmake"; do
        if [ ! -e "$prefix/$f" ]; then
            echo "ci/variants.sh: cmake --install did not install $f" >&2
            exit 1
        fi
    done
    echo "build-lib: built and installed into $prefix without check, python3 or openssl(1)"
}

for v in "${variants[@]}"; do
    case "$v" in
    release) release ;;
    clang) clang_build ;;
    lib) lib ;;
    *) echo "ci/variants.sh: unknown variant $v (release, clang, lib)" >&2; exit 2 ;;
    esac
done
echo "ci/variants.sh: ${variants[*]} passed"
