/*
 * bench_tls_client.c - full TLS 1.3 handshakes in a loop, from several threads (the client of
 * tests/bench/bench_tls.py; OpenSSL directly, nothing of mocksrv's).
 *
 * Usage: bench_tls_client -p PORT [-t SECONDS] [-c THREADS] [-A CAFILE] [-g PREFIX]
 *
 * One handshake: a new TCP connection to 127.0.0.1:PORT, a TLS 1.3 handshake with no session to
 * resume (no session cache, SSL_OP_NO_TICKET, every SSL fresh), then SSL_read until the server's
 * first application data (its greeting, checked to start with PREFIX, default "+OK": this is
 * what shows that the server completed its side of the handshake), one close_notify, close.
 * The certificate is not verified in the timed loop (that would add a chain verification to the
 * client's work); with -A, one verified handshake against CAFILE is made first.
 *
 * Each of THREADS threads (default 4) loops until SECONDS (default 5) have passed; every socket
 * has 5 s send/receive timeouts and the run stops early after 100 failures. Prints one JSON
 * line: handshakes, failures, wall seconds, the client's own CPU seconds (getrusage), and what
 * the first handshake negotiated. Exit status 0 when at least one handshake succeeded and none
 * failed, 1 otherwise, 2 on usage errors. Only 127.0.0.1 is contacted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define MAX_THREADS 64
#define MAX_FAILURES 100

static int port;
static const char *greeting_prefix = "+OK";
static double deadline;
static SSL_CTX *ctx;
static atomic_long failures;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_error[256];

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
fail(const char *what)
{
    atomic_fetch_add(&failures, 1);
    pthread_mutex_lock(&err_lock);
    if (!first_error[0]) {
        unsigned long e = ERR_peek_error();
        if (e)
            snprintf(first_error, sizeof first_error, "%s: %s", what,
                     ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "?");
        else
            snprintf(first_error, sizeof first_error, "%s: %s", what,
                     errno ? strerror(errno) : "failed");
    }
    pthread_mutex_unlock(&err_lock);
    ERR_clear_error();
}

/* One full handshake; 1 on success. With info, fills it with what was negotiated. */
static int
handshake(SSL_CTX *c, char *info, size_t info_len)
{
    int ok = 0;
    SSL *ssl = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fail("socket");
        return 0;
    }
    struct timeval tv = {5, 0};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fail("connect");
        goto out;
    }
    ssl = SSL_new(c);
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        fail("SSL_new");
        goto out;
    }
    if (SSL_connect(ssl) != 1) {
        fail("SSL_connect");
        goto out;
    }
    if (SSL_session_reused(ssl) || SSL_version(ssl) != TLS1_3_VERSION) {
        fail("not a full TLS 1.3 handshake");
        goto out;
    }
    char buf[512];
    int n = SSL_read(ssl, buf, sizeof buf - 1); /* processes the tickets, if any, on the way */
    size_t plen = strlen(greeting_prefix);
    if (n <= 0 || (size_t)n < plen || memcmp(buf, greeting_prefix, plen) != 0) {
        fail("greeting");
        goto out;
    }
    if (info) {
        buf[n] = 0;
        buf[strcspn(buf, "\r\n\"\\")] = 0;
        EVP_PKEY *tmp = NULL;
        const char *group = "?";
        if (SSL_get_peer_tmp_key(ssl, &tmp) == 1)
            group = EVP_PKEY_get0_type_name(tmp);
        int sig_type = NID_undef, sig_md = NID_undef;
        SSL_get_peer_signature_type_nid(ssl, &sig_type);
        SSL_get_peer_signature_nid(ssl, &sig_md);
        X509 *cert = SSL_get1_peer_certificate(ssl);
        EVP_PKEY *pk = cert ? X509_get0_pubkey(cert) : NULL;
        snprintf(info, info_len,
                 "\"version\":\"%s\",\"cipher\":\"%s\",\"group\":\"%s\",\"signature\":\"%s+%s\","
                 "\"server_key\":\"%s %d\",\"verify\":\"%s\",\"greeting\":\"%s\"",
                 SSL_get_version(ssl), SSL_get_cipher_name(ssl), group ? group : "?",
                 sig_type == EVP_PKEY_EC ? "ECDSA"
                 : sig_type != NID_undef ? OBJ_nid2sn(sig_type)
                                         : "?",
                 sig_md != NID_undef ? OBJ_nid2sn(sig_md) : "?",
                 pk ? EVP_PKEY_get0_type_name(pk) : "?", pk ? EVP_PKEY_get_bits(pk) : 0,
                 X509_verify_cert_error_string(SSL_get_verify_result(ssl)), buf);
        X509_free(cert);
        EVP_PKEY_free(tmp);
    }
    SSL_shutdown(ssl); /* our close_notify only; we do not wait for the server's */
    ok = 1;
out:
    SSL_free(ssl);
    close(fd);
    return ok;
}

static void *
worker(void *arg)
{
    long *count = arg;
    while (now() < deadline && atomic_load(&failures) < MAX_FAILURES) {
        if (handshake(ctx, NULL, 0))
            (*count)++;
    }
    return NULL;
}

static SSL_CTX *
client_ctx(const char *cafile)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    if (!c)
        return NULL;
    SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    if (cafile) {
        if (SSL_CTX_load_verify_locations(c, cafile, NULL) != 1) {
            SSL_CTX_free(c);
            return NULL;
        }
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    }
    return c;
}

static double
cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int
main(int argc, char **argv)
{
    double seconds = 5;
    int threads = 4, opt;
    const char *cafile = NULL;
    while ((opt = getopt(argc, argv, "p:t:c:A:g:")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 't':
            seconds = atof(optarg);
            break;
        case 'c':
            threads = atoi(optarg);
            break;
        case 'A':
            cafile = optarg;
            break;
        case 'g':
            greeting_prefix = optarg;
            break;
        default:
            goto usage;
        }
    }
    if (port <= 0 || port > 65535 || threads < 1 || threads > MAX_THREADS || !(seconds > 0) ||
        seconds > 600)
        goto usage;

    char info[1024] = "";
    if (cafile) {
        SSL_CTX *vctx = client_ctx(cafile);
        if (!vctx || !handshake(vctx, info, sizeof info)) {
            printf("{\"handshakes\":0,\"failures\":1,\"error\":\"verified handshake: %s\"}\n",
                   first_error[0] ? first_error : "no context");
            return 1;
        }
        SSL_CTX_free(vctx);
    }
    ctx = client_ctx(NULL);
    if (!ctx) {
        fprintf(stderr, "bench_tls_client: SSL_CTX_new failed\n");
        return 1;
    }
    if (!cafile && !handshake(ctx, info, sizeof info)) { /* warm-up, and what was negotiated */
        printf("{\"handshakes\":0,\"failures\":1,\"error\":\"%s\"}\n", first_error);
        return 1;
    }

    pthread_t tid[MAX_THREADS];
    long counts[MAX_THREADS] = {0};
    double c0 = cpu_seconds(), t0 = now();
    deadline = t0 + seconds;
    int started = 0;
    for (; started < threads; started++)
        if (pthread_create(&tid[started], NULL, worker, &counts[started]) != 0)
            break;
    long total = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
        total += counts[i];
    }
    double wall = now() - t0, cpu = cpu_seconds() - c0;
    long nfail = atomic_load(&failures);
    printf("{\"handshakes\":%ld,\"failures\":%ld,\"wall_s\":%.4f,\"client_cpu_s\":%.4f,"
           "\"threads\":%d%s%s,\"error\":\"%s\"}\n",
           total, nfail, wall, cpu, started, info[0] ? "," : "", info, first_error);
    SSL_CTX_free(ctx);
    return total > 0 && nfail == 0 && started == threads ? 0 : 1;
usage:
    fprintf(stderr, "usage: bench_tls_client -p PORT [-t SECONDS] [-c THREADS] [-A CAFILE] "
                    "[-g PREFIX]\n");
    return 2;
}
