#!/bin/sh
# certs/gen.sh OUTDIR -- generate the fixed test certificates of mocksrv into OUTDIR.
#
# What this is: the recipe the build runs (certs/CMakeLists.txt, target test_certs) to make the
# certificates the TLS tests use. The profiles live in certs/openssl.cnf; this script only runs
# the `openssl` command (OpenSSL 3.0 or later; $OPENSSL overrides the one on PATH).
#
# What this is not: the certificates mocksrv makes at start when given no --cert (those are made
# in C; SPEC.md section 6), nor anything fit for production. Keys are unencrypted ECDSA P-256.
# No key is ever committed: each run makes new keys, so only the names, dates and extensions are
# fixed, never the bytes.
#
# Files written to OUTDIR (each FILE.pem with its FILE.key, PEM, PKCS#8):
#   ca             "mocksrv test CA", CA:TRUE, keyCertSign+cRLSign, 10 years: the trust anchor
#   server         CN mock.test, SAN mock.test, localhost, 127.0.0.1, ::1; serverAuth; by ca
#   server-chain.pem   server.pem followed by ca.pem (no key of its own; use server.key)
#   expired        as server, but valid 2020-01-01 to 2020-02-01 only; by ca
#   wronghost      SAN DNS:wrong.example only; serverAuth; by ca
#   selfsigned     self-signed, SAN localhost, 127.0.0.1, ::1; serverAuth
#   client         CN alice, clientAuth; by ca
#   other-ca       "mocksrv other CA": a second, untrusted CA
#   other-client   CN mallory, clientAuth; by other-ca (must be refused by a server trusting ca)
#
# Invariants:
#   - Idempotent and all-or-nothing: everything is made in a private temporary directory inside
#     OUTDIR and moved into place only when every step has succeeded, so a failed run leaves the
#     previous set intact and a rerun simply replaces it.
#   - Silent on success; on failure, the failing command's output goes to stderr and the exit
#     status is non-zero.
#   - Hermetic: OPENSSL_CONF points at certs/openssl.cnf, so the system configuration is unused.
set -eu

usage() {
    echo "usage: $0 OUTDIR" >&2
    exit 2
}
die() {
    echo "gen.sh: $*" >&2
    exit 1
}

[ $# -eq 1 ] || usage
OPENSSL=${OPENSSL:-openssl}
here=$(cd "$(dirname "$0")" && pwd) || die "cannot find the script directory"
cnf=$here/openssl.cnf
[ -r "$cnf" ] || die "cannot read $cnf"
mkdir -p "$1" || die "cannot create $1"
outdir=$(cd "$1" && pwd) || die "cannot enter $1"

OPENSSL_CONF=$cnf
export OPENSSL_CONF

tmp=$(mktemp -d "$outdir/.gen.XXXXXX") || die "cannot create a temporary directory in $outdir"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
cd "$tmp"

# run CMD...: run an openssl command quietly; on failure show what it said and stop.
run() {
    if ! "$OPENSSL" "$@" >log 2>&1; then
        cat log >&2
        die "failed: openssl $*"
    fi
}

# 3650 days: the build directory outlives a test run by far; expiry must be a test, not an accident.
days=3650

# key NAME: a fresh unencrypted P-256 key in NAME.key.
key() {
    run genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"
}

# ca NAME SUBJECT SERIAL: a self-signed CA certificate (profile v3_ca).
ca() {
    key "$1"
    run req -new -x509 -key "$1.key" -subj "$2" -sha256 -days "$days" -set_serial "$3" \
        -extensions v3_ca -out "$1.pem"
}

# leaf NAME SUBJECT PROFILE ISSUER SERIAL: a certificate signed by ISSUER.pem/ISSUER.key.
leaf() {
    key "$1"
    run req -new -key "$1.key" -subj "$2" -out "$1.csr"
    run x509 -req -in "$1.csr" -CA "$4.pem" -CAkey "$4.key" -set_serial "$5" -sha256 \
        -days "$days" -extfile "$cnf" -extensions "$3" -out "$1.pem"
}

ca ca "/CN=mocksrv test CA" 0x1000
leaf server "/CN=mock.test" v3_server ca 0x1001
leaf wronghost "/CN=wrong.example" v3_wronghost ca 0x1002
leaf client "/CN=alice" v3_client ca 0x1003

# expired: `openssl x509 -req` in 3.0 cannot set notBefore, so sign with `openssl ca`, whose
# database (index.txt, serial) lives in this temporary directory only ([ ca_test ] in openssl.cnf).
key expired
run req -new -key expired.key -subj "/CN=mock.test" -out expired.csr
: >index.txt
echo 1004 >serial
run ca -batch -notext -in expired.csr -out expired.pem -startdate 20200101000000Z \
    -enddate 20200201000000Z -extensions v3_server

# selfsigned: its own issuer; the server profile without the authority key identifier.
key selfsigned
run req -new -x509 -key selfsigned.key -subj "/CN=localhost" -sha256 -days "$days" \
    -set_serial 0x1005 -extensions v3_selfsigned -out selfsigned.pem

ca other-ca "/CN=mocksrv other CA" 0x2000
leaf other-client "/CN=mallory" v3_client other-ca 0x2001

cat server.pem ca.pem >server-chain.pem

# All made: move into place. ca.pem last, as it is the file the build checks for.
for f in server server-chain expired wronghost selfsigned client other-ca other-client ca; do
    if [ -e "$f.key" ]; then
        mv -f "$f.key" "$outdir/$f.key"
    fi
    mv -f "$f.pem" "$outdir/$f.pem"
done
