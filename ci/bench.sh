#!/usr/bin/env bash
# Runs the benchmarks by hand (never from ctest or CI): builds a Release mocksrv into
# BENCH_BUILD_DIR (default build-bench/), installs the peers it compares against when missing
# (Postfix's smtp-sink/smtp-source, Debian's python3-aiosmtpd), then runs
#
#   tests/bench_switch                      coroutine switch cost (if the build has it)
#   tests/bench_load                        scenario load: 10,000 generated x 4 KiB, in-process
#   tests/bench/bench_spawn.py              spawn to ready line vs smtp-sink's (and Dovecot's)
#                                           first 220
#   tests/bench/bench_store_memory.py       RSS per stored message (SMTP and generated), and the
#                                           ready line of a 10,000 x 4 KiB scenario
#   tests/bench/bench_throughput.py         smtp-source msg/s vs smtp-sink
#   tests/bench/bench_idle_memory.py        RSS per idle session vs aiosmtpd
#
# BENCH_BASE=<git revision> also builds that revision (Release, from `git archive` into a
# directory under $TMPDIR, outside the checkout) and measures it in the same run as "before":
# bench_load, bench_spawn and bench_store_memory then print before, after and their ratio.
#
# Each appends a Markdown section to tests/bench/results/latest.md (rewritten on every run);
# a summary of the targets is printed at the end. Takes about 5 minutes on 2 CPUs; every step
# has a timeout, so it ends well under 10. Only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/.."

ci/setup.sh

# Peers. "No configuration" for Postfix: we only want its smtp-sink and smtp-source binaries,
# not a mail system, and the daemon must not be left running.
peers=(postfix python3-aiosmtpd)
peers+=(dovecot-core dovecot-pop3d)   # bench_pop3.py's peer: a private dovecot -F, stopped by PID
# Dovecot (an LMTP listener, for spawn-to-first-greeting) is optional: it is used when installed,
# and installed only when asked with BENCH_DOVECOT=1.
if [ "${BENCH_DOVECOT:-0}" = 1 ]; then peers+=(dovecot-core dovecot-lmtpd); fi
missing=()
for p in "${peers[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null; then sudo="sudo"; else
            echo "ci/bench.sh: missing packages (${missing[*]}) and not root" >&2; exit 1
        fi
    fi
    echo "ci/bench.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
    # Only a Postfix this script just installed is stopped; one that was there before is not ours.
    if [[ " ${missing[*]} " == *" postfix "* ]] && $sudo postfix status >/dev/null 2>&1; then
        $sudo postfix stop || true
    fi
    if [[ " ${missing[*]} " == *" dovecot-core "* ]] && command -v systemctl >/dev/null &&
        $sudo systemctl is-active --quiet dovecot 2>/dev/null; then
        $sudo systemctl stop dovecot || true
    fi
fi

build="${BENCH_BUILD_DIR:-build-bench}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMOCKSRV_WERROR=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target mocksrv
cmake --build "$build" -j "$(nproc)" --target bench_load
base_bin=""
base_dir=""
if [ -n "${BENCH_BASE:-}" ]; then
    base_dir="${TMPDIR:-/tmp}/mocksrv-bench-base-$(git rev-parse --short "$BENCH_BASE")"
    if [ ! -x "$base_dir/build/mocksrv" ]; then
        rm -rf "$base_dir" && mkdir -p "$base_dir/src"
        git archive "$BENCH_BASE" | tar -x -C "$base_dir/src"
        cmake -S "$base_dir/src" -B "$base_dir/build" -DCMAKE_BUILD_TYPE=Release \
            -DMOCKSRV_WERROR=OFF >/dev/null
        cmake --build "$base_dir/build" -j "$(nproc)" --target mocksrv bench_load
    fi
    base_bin="$base_dir/build/mocksrv"
fi
have_switch=0
if [ -f tests/bench/bench_switch.c ]; then
    if cmake --build "$build" -j "$(nproc)" --target bench_switch; then have_switch=1; else
        echo "ci/bench.sh: bench_switch did not build; skipping it" >&2
    fi
fi

# 10,000 idle sessions need 10,000 descriptors in the client and in the server.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

export MOCKSRV_BIN="$PWD/$build/mocksrv"
export BENCH_RESULTS="$PWD/tests/bench/results/latest.md"
mkdir -p "$(dirname "$BENCH_RESULTS")"
py=/usr/bin/python3   # Debian's: python3-aiosmtpd is installed for it
{
    echo "# mocksrv benchmarks"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); Linux $(uname -r); $("$MOCKSRV_BIN" --version 2>&1 | head -1)"
    echo
} >"$BENCH_RESULTS"

status=0
if [ "$have_switch" = 1 ]; then
    echo "== bench_switch"
    if out=$(timeout 120 "$build/tests/bench_switch" 2>&1); then :; else
        echo "ci/bench.sh: bench_switch failed (status $?)" >&2; status=1
    fi
    echo "$out"
    printf '## Coroutine switch (bench_switch)\n\n```\n%s\n```\n\n' "$out" >>"$BENCH_RESULTS"
fi
echo "== bench_load"
for b in "$build" ${base_dir:+"$base_dir/build"}; do
    echo "-- $b"
    if out=$(timeout 120 "$b/tests/bench_load" 10000 4096 2>&1); then :; else
        echo "ci/bench.sh: bench_load failed (status $?)" >&2; status=1
    fi
    echo "$out"
    printf '## Scenario load (bench_load, %s)\n\n```\n%s\n```\n\n' "$b" "$out" >>"$BENCH_RESULTS"
done
before=()
if [ -n "$base_bin" ]; then before=(--before "$base_bin"); fi
echo "== bench_store_memory"
if ! timeout 300 "$py" tests/bench/bench_store_memory.py "${before[@]}"; then
    echo "ci/bench.sh: bench_store_memory failed" >&2
    printf '## bench_store_memory\n\nFAILED (see the console output).\n\n' >>"$BENCH_RESULTS"
    status=1
fi
echo "== bench_spawn"
if ! timeout 200 "$py" tests/bench/bench_spawn.py "${before[@]}"; then
    echo "ci/bench.sh: bench_spawn failed" >&2
    printf '## bench_spawn\n\nFAILED (see the console output).\n\n' >>"$BENCH_RESULTS"
    status=1
fi
# Time caps (seconds) per benchmark; each also stops its own loops earlier.
for b in bench_throughput:300 bench_idle_memory:200; do
    cap=${b#*:} b=${b%:*}
    echo "== $b"
    if ! timeout "$cap" "$py" "tests/bench/$b.py"; then
        echo "ci/bench.sh: $b failed" >&2
        printf '## %s\n\nFAILED (see the console output).\n\n' "$b" >>"$BENCH_RESULTS"
        status=1
    fi
done
echo "== bench_pop3"; if ! timeout 300 "$py" tests/bench/bench_pop3.py; then echo "ci/bench.sh: bench_pop3 failed" >&2; printf '## bench_pop3\n\nFAILED (see the console output).\n\n' >>"$BENCH_RESULTS"; status=1; fi
echo "== bench_tls"; if ! { cmake --build "$build" -j "$(nproc)" --target bench_tls_client && BENCH_TLS_CLIENT="$PWD/$build/tests/bench_tls_client" timeout 300 "$py" tests/bench/bench_tls.py; }; then echo "ci/bench.sh: bench_tls failed" >&2; printf '## bench_tls\n\nFAILED (see the console output).\n\n' >>"$BENCH_RESULTS"; status=1; fi

echo
echo "== summary ($BENCH_RESULTS)"
grep -E '^(Target|First 220|Before|- |switch:|scenario )|(met|NOT met) \|$' "$BENCH_RESULTS" || true
exit "$status"
