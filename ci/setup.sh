#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build mocksrv and run its tests.
# Only missing packages are installed; needs root (or sudo) when something is missing.
set -euo pipefail

# Installed with --no-install-recommends, so whatever a test needs from a package's Recommends is
# listed here by name. Checked on a fresh debootstrap root (required + important + ca-certificates)
# with ../shared/tools/fresh-ci; the last line is in such a root already, listed so that a smaller
# image (a container) gets it too.
packages=(
    build-essential cmake pkg-config            # toolchain (gcc, make, cc for the build and tests)
    libssl-dev libyaml-dev libjansson-dev       # OpenSSL 3, libyaml, jansson
    check libsubunit-dev                        # unit tests (check links subunit on Debian)
    python3 curl swaks openssl                  # interop clients we did not write; certs/gen.sh
    groff-base                                  # docs_man: the man pages render without a warning
    libnet-ssleay-perl libio-socket-ssl-perl    # swaks --tls (swaks only Recommends them)
    libio-socket-inet6-perl                     # swaks to ::1 (Recommends)
    libauthen-sasl-perl                         # swaks --auth (Suggests)
    fetchmail                                   # POP3 interop client (test_pop3_fetchmail.py)
    clang libclang-rt-14-dev                    # ctest fuzz_seeds; ci/variants.sh's clang build
    util-linux mount procps coreutils           # prlimit, mount -t tmpfs, ps/pgrep, timeout, nproc
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
        echo "ci/setup.sh: missing packages (${missing[*]}) and not root" >&2; exit 1
    fi
fi
echo "ci/setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
