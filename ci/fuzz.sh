#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang into build-fuzz/ and fuzzes each one for
# FUZZ_SECONDS (default 60) with its seed corpus and dictionary. Any crash, leak, timeout or
# broken invariant fails the run; the input that caused it is kept in
# FUZZ_BUILD_DIR/artifacts/<target>/ (in both modes: nothing is written into the source tree).
# Run by hand, not by CI (the seed regression below is what CI runs, as ctest's fuzz_seeds).
#
#   ci/fuzz.sh                      build, then fuzz every target
#   ci/fuzz.sh fuzz_smtp fuzz_dot   only these targets
#   ci/fuzz.sh --regress [TARGET..] build, then run every seed once (-runs=0), no fuzzing;
#                                   fuzz_smtp's seeds once more with every connect() interrupted
#                                   (tests/fuzz/eintr_connect.c, LD_PRELOAD), and the inputs of
#                                   tests/fuzz/crashers with MOCKSRV_FUZZ_STRICT=1
#
# Environment:
#   FUZZ_SECONDS     seconds per target (default 60)
#   FUZZ_BUILD_DIR   build directory (default build-fuzz)
#   FUZZ_CC          the compiler (default clang; clang-14 on Debian 12)
#   FUZZ_NO_INSTALL  1: never apt-get; exit 77 (ctest's "skipped") when clang or libFuzzer is
#                    missing
#   FUZZ_ARGS        extra libFuzzer options, e.g. "-jobs=2 -workers=2"
#
# Inputs found while fuzzing go to FUZZ_BUILD_DIR/corpus/<target> (kept between runs); the seed
# corpora in tests/fuzz/corpus are only read. To keep a new input as a seed, copy it there.
# Reproduce a failure with: FUZZ_BUILD_DIR/fuzz/<target> <artifact file>
set -euo pipefail
cd "$(dirname "$0")/.."
src="$(pwd)"

regress=0
if [ "${1:-}" = "--regress" ]; then
    regress=1
    shift
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(fuzz_scenario fuzz_sasl fuzz_dot fuzz_smtp)
fi
seconds="${FUZZ_SECONDS:-60}"
build="${FUZZ_BUILD_DIR:-build-fuzz}"
cc="${FUZZ_CC:-clang}"

# ---- toolchain: clang and its libFuzzer runtime (libclang-rt-14-dev on Debian 12) ----

have_libfuzzer() {
    command -v "$cc" >/dev/null 2>&1 || return 1
    local tmp
    tmp="$(mktemp -d)"
    printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' \
        >"$tmp/t.c"
    local ok=0
    "$cc" -fsanitize=fuzzer,address,undefined "$tmp/t.c" -o "$tmp/t" 2>/dev/null || ok=1
    rm -rf "$tmp"
    return $ok
}

if ! have_libfuzzer; then
    if [ "${FUZZ_NO_INSTALL:-0}" = "1" ]; then
        echo "ci/fuzz.sh: $cc with libFuzzer is not available; skipping" >&2
        exit 77
    fi
    missing=()
    for p in clang libclang-rt-14-dev; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        sudo=""
        if [ "$(id -u)" -ne 0 ]; then
            if command -v sudo >/dev/null; then sudo="sudo"; else
                echo "ci/fuzz.sh: missing packages (${missing[*]}) and not root" >&2; exit 1
            fi
        fi
        echo "ci/fuzz.sh: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get update -q
        $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
    if ! have_libfuzzer; then
        echo "ci/fuzz.sh: $cc cannot link -fsanitize=fuzzer even after installing" >&2
        exit 1
    fi
fi
if [ "${FUZZ_NO_INSTALL:-0}" != "1" ]; then
    ci/setup.sh # the library's own dependencies (OpenSSL, libyaml, jansson, cmake ...)
fi

# ---- build: the library with the top-level CMakeLists.txt, then the harnesses ----

# Coverage instrumentation for the library (-fsanitize=fuzzer-no-link); MOCKSRV_SANITIZE adds
# ASan + UBSan and tells the coroutine switch about ASan. Not -Werror: clang may warn where the
# main build's compiler does not, and that is no reason to stop fuzzing.
mkdir -p "$build"
build="$(cd "$build" && pwd)" # absolute: the second project is configured from elsewhere
cmake -S . -B "$build/lib" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link" -DMOCKSRV_SANITIZE=ON -DMOCKSRV_WERROR=OFF \
    -DMOCKSRV_TESTS=OFF >/dev/null
cmake --build "$build/lib" --target mocksrv_internal -j "$(nproc)"
cmake -S tests/fuzz -B "$build/fuzz" -DCMAKE_C_COMPILER="$cc" \
    -DMOCKSRV_LIB_BUILD="$build/lib" >/dev/null
build_targets=("${targets[@]}")
if [[ " ${targets[*]} " == *" fuzz_smtp "* ]]; then build_targets+=(eintr_connect); fi
cmake --build "$build/fuzz" -j "$(nproc)" --target "${build_targets[@]}"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# ---- run ----

# From the build directory: whatever libFuzzer writes where it stands (fuzz-N.log with -jobs, a
# crash-* file had -artifact_prefix been forgotten) lands there, not in the source tree.
cd "$build"

# Runs target $1 once on each of the inputs (files or directories) in the array "inputs"; $2
# names the pass, the rest (env VAR=value ...) goes before the command.
run_seeds() {
    local t="$1" pass="$2" log="$build/$1.$2.log"
    shift 2
    echo "== $t: seed regression, $pass ($(find "${inputs[@]}" -type f | wc -l) inputs)"
    if ! "$@" "$build/fuzz/$t" -runs=0 -timeout=20 -dict="$src/tests/fuzz/$t.dict" \
        -artifact_prefix="$build/artifacts/$t/" "${inputs[@]}" >"$log" 2>&1; then
        failed+=("$t ($pass)")
        tail -n 60 "$log" >&2
        echo "ci/fuzz.sh: $t failed ($pass); input in $build/artifacts/$t/, log in $log" >&2
    else
        grep -E "INITED|Done|^Executed" "$log" || true
    fi
}

failed=()
for t in "${targets[@]}"; do
    seeds="$src/tests/fuzz/corpus/$t"
    dict="$src/tests/fuzz/$t.dict"
    artifacts="$build/artifacts/$t"
    mkdir -p "$artifacts"
    if [ $regress -eq 1 ]; then
        inputs=("$seeds")
        run_seeds "$t" regress env
        if [ "$t" = fuzz_smtp ]; then
            run_seeds "$t" eintr env LD_PRELOAD="$build/fuzz/libeintr_connect.so"
            # Fixed server bugs (tests/fuzz/crashers/README.md), with the strict reply checks.
            mapfile -t inputs < <(find "$src/tests/fuzz/crashers" -type f ! -name '*.md' | sort)
            run_seeds "$t" crashers env MOCKSRV_FUZZ_STRICT=1
        fi
        continue
    fi
    work="$build/corpus/$t"
    mkdir -p "$work"
    echo "== $t: fuzzing for ${seconds}s"
    # The first corpus directory receives new inputs; the seeds are only read.
    # shellcheck disable=SC2086
    if ! "$build/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -dict="$dict" -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} \
        "$work" "$seeds" >"$build/$t.log" 2>&1; then
        failed+=("$t")
        tail -n 80 "$build/$t.log" >&2
        echo "ci/fuzz.sh: $t failed; input(s) in $artifacts/, log in $build/$t.log" >&2
    else
        grep -E "^#[0-9]+ +(INITED|DONE)|stat::number_of_executed_units|stat::average_exec_per_sec" \
            "$build/$t.log" || true
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "ci/fuzz.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "ci/fuzz.sh: all targets passed"
