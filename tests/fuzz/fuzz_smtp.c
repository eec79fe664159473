/*
 * fuzz_smtp.c - libFuzzer target for the SMTP/LMTP engine, through the public library API and
 * a real loopback TCP connection.
 *
 * The server is created on the first input and kept (stepped mode: mocksrv_bind and
 * mocksrv_step, ephemeral ports, small limits, user alice/secret, idle_timeout 200 ms). The
 * harness is single-threaded: it plays the client with a non-blocking socket and steps the
 * server itself, so an input costs a few milliseconds and nothing waits on a clock - except
 * the idle mode below, which has a second server of its own, identical but for an idle timeout
 * of 20 ms: at 200 ms, the few per cent of the corpus that test timeouts took three quarters of
 * the run.
 *
 * Input layout: byte 0 selects, the rest is what the client sends.
 *   bit 0     prefix the bytes with "EHLO x\r\n" ("LHLO x\r\n" for LMTP) to start deeper
 *   bit 1     LMTP listener instead of SMTP
 *   bits 2-3  how the bytes are cut into writes, with a server step between two writes:
 *             0 one write, 1 after every LF, 2 random pieces of 1..16, 3 random pieces of 1..256
 *   bits 4-7  how the client ends: 0..13 half-close (shutdown SHUT_WR) and read until the
 *             server closes; 14 abortive close (RST) without reading; 15 stay connected until
 *             the server ends the session (idle mode, on the second server)
 *
 * What must hold:
 *   - the server never crashes, and mocksrv_step never fails;
 *   - every line the client receives is a reply line: three digits, the first 2..5, then " " or
 *     "-", ending with CRLF; a "-" line is followed by a line with the same code; the first
 *     line is the "220 " greeting; no connection ends in the middle of a line or of a
 *     multi-line reply;
 *   - after a half-close the server closes within FUZZ_HANG_MS (it has nothing left to wait
 *     for); a client that stays connected is never dropped silently: the last reply before the
 *     server closes is 221 or 421;
 *   - every accepted message respects max_size (4 KiB) and has a recipient;
 *   - after every input a fresh connection gets the "220 " greeting within FUZZ_HANG_MS.
 * MOCKSRV_FUZZ_VERBOSE=1 prints every reply line to stderr (to read a reproducer's transcript).
 * MOCKSRV_FUZZ_STRICT=1 also requires reply lines of at most 512 octets (RFC 5321 section
 * 4.5.3.1.5) whose text is printable US-ASCII. It is off by default, as when the first runs
 * found the server echoing client bytes into replies (fixed since), and on in the seed
 * regression's replay of crashers/ (see crashers/README.md).
 *
 * Not covered: TLS, the threaded mode (mocksrv_start), spooling to disk.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mocksrv.h"

#define FUZZ_MAX_SIZE 4096       /* smtp.max_size below */
#define FUZZ_HANG_MS 3000        /* far above both idle timeouts: only a stuck server is slower */
#define FUZZ_MAX_LINE 65536      /* a reply line longer than this is reported as such */
#define FUZZ_RESTART_AFTER 20000 /* messages kept by a server before it is recreated */
#define FUZZ_MIN(a, b) ((a) < (b) ? (a) : (b))

/* %s: the idle timeout. */
static const char fuzz_scenario[] = "version: 1\n"
                                    "seed: 7\n"
                                    "hostname: fuzz.test\n"
                                    "listeners:\n"
                                    "  smtp: { protocol: smtp, port: 0, tls: none }\n"
                                    "  lmtp: { protocol: lmtp, port: 0, tls: none }\n"
                                    "smtp:\n"
                                    "  max_size: 4KiB\n"
                                    "users:\n"
                                    "  alice: { password: secret, addresses: [alice@fuzz.test] }\n"
                                    "limits:\n"
                                    "  smtp_line_length: 512\n"
                                    "  idle_timeout: %s\n"
                                    "  bad_commands: 1000\n"
                                    "  sessions: 8\n";

struct fuzz_server {
    const char *idle_timeout;
    struct mocksrv *srv;
    int smtp_port;
    int lmtp_port;
    size_t messages_checked;
};

static struct fuzz_server fuzz_main = {.idle_timeout = "200ms"};
static struct fuzz_server fuzz_idle = {.idle_timeout = "20ms"};
static int fuzz_strict, fuzz_verbose;

/* The client side of one connection: the line being received and what came before. */
struct fuzz_client {
    int fd;
    const char *what; /* "session" or "probe", for messages */
    char line[FUZZ_MAX_LINE];
    size_t len;
    size_t lines;
    char cont_code[4]; /* code of a pending "-" line, "" when none */
    char last_code[4]; /* code of the last complete line */
    int eof;
};

static void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_smtp: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

static int64_t
fuzz_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Events are on so that their JSON is built (and checked by ASan) for every session. */
static void
fuzz_on_event(void *arg, const char *name, const char *json)
{
    (void)arg;
    if (!name || !json || json[0] != '{')
        fuzz_fail("event %s with JSON %s", name ? name : "NULL", json ? json : "NULL");
}

static void
fuzz_server_start(struct fuzz_server *sv)
{
    struct mocksrv_error err = {0};
    char yaml[sizeof fuzz_scenario + 32];
    int len = snprintf(yaml, sizeof yaml, fuzz_scenario, sv->idle_timeout);
    sv->srv = mocksrv_new();
    if (mocksrv_load_string(sv->srv, yaml, (size_t)len, "fuzz", &err) != 0)
        fuzz_fail("scenario: %s", err.message);
    mocksrv_set_ephemeral(sv->srv, 1);
    mocksrv_set_seed(sv->srv, 7);
    mocksrv_set_verbosity(sv->srv, 0);
    mocksrv_on_event(sv->srv, fuzz_on_event, NULL);
    if (mocksrv_bind(sv->srv, &err) != 0)
        fuzz_fail("bind: %s", err.message);
    sv->smtp_port = mocksrv_port(sv->srv, "smtp");
    sv->lmtp_port = mocksrv_port(sv->srv, "lmtp");
    if (sv->smtp_port <= 0 || sv->lmtp_port <= 0)
        fuzz_fail("ports %d %d", sv->smtp_port, sv->lmtp_port);
    sv->messages_checked = 0;
}

static void
fuzz_server_stop(struct fuzz_server *sv)
{
    mocksrv_stop(sv->srv);
    mocksrv_free(sv->srv);
    sv->srv = NULL;
}

/* One loop iteration of the server; wait_ms > 0 only when the client has nothing to do. */
static void
fuzz_step(struct fuzz_server *sv, int wait_ms)
{
    int rc = mocksrv_step(sv->srv, wait_ms);
    if (rc != 0)
        fuzz_fail("mocksrv_step returned %d (%s)", rc, mocksrv_strerror(rc));
}

/*
 * Loopback completes the handshake in the kernel's backlog before the server accepts, but a
 * connect can still sleep (a full accept queue), and a signal then interrupts it: libFuzzer's
 * -timeout timer (SIGALRM). It fails with EINTR while the handshake goes on, and connecting
 * again would only say EALREADY: wait until the socket is writable, then read the outcome.
 * (eintr_connect.c makes every connect do this, for the seed regression.)
 */
static int
fuzz_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fuzz_fail("socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
        return fd;
    if (errno != EINTR)
        fuzz_fail("connect to %d: %s", port, strerror(errno));
    int64_t deadline = fuzz_now() + FUZZ_HANG_MS;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = poll(&p, 1, 100);
        if (n > 0)
            break;
        if (n < 0 && errno != EINTR)
            fuzz_fail("poll for connect to %d: %s", port, strerror(errno));
        if (fuzz_now() > deadline)
            fuzz_fail("connect to %d: not connected within %d ms", port, FUZZ_HANG_MS);
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        fuzz_fail("getsockopt(SO_ERROR): %s", strerror(errno));
    if (err != 0)
        fuzz_fail("connect to %d: %s (after EINTR)", port, strerror(err));
    return fd;
}

/* Checks one complete reply line, CRLF included. */
static void
fuzz_check_line(struct fuzz_client *c, const char *p, size_t n)
{
    if (fuzz_verbose)
        fprintf(stderr, "%s S: %.*s", c->what, (int)n, p);
    if (n < 6 || p[n - 2] != '\r' || p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '9' ||
        p[2] < '0' || p[2] > '9' || (p[3] != ' ' && p[3] != '-'))
        fuzz_fail("%s: line %zu is not a reply line: \"%.*s\"", c->what, c->lines + 1, (int)n, p);
    if (c->lines == 0 && memcmp(p, "220 ", 4) != 0)
        fuzz_fail("%s: first line is not the 220 greeting: \"%.*s\"", c->what, (int)n, p);
    if (c->cont_code[0] && memcmp(p, c->cont_code, 3) != 0)
        fuzz_fail("%s: \"%.*s\" continues a %s- reply", c->what, (int)n, p, c->cont_code);
    if (fuzz_strict) {
        if (n > 512)
            fuzz_fail("%s: reply line of %zu octets (RFC 5321 4.5.3.1.5: 512): \"%.*s\"", c->what,
                      n, (int)n, p);
        for (size_t i = 4; i < n - 2; i++)
            if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e)
                fuzz_fail("%s: byte 0x%02x in reply text: \"%.*s\"", c->what, (unsigned char)p[i],
                          (int)n, p);
    }
    memcpy(c->last_code, p, 3);
    c->last_code[3] = '\0';
    if (p[3] == '-')
        memcpy(c->cont_code, c->last_code, sizeof c->cont_code);
    else
        c->cont_code[0] = '\0';
    c->lines++;
}

/* Reads what the socket has (non-blocking); returns 1 when something arrived. */
static int
fuzz_read(struct fuzz_client *c)
{
    int got = 0;
    while (!c->eof) {
        char buf[16384];
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            /* 0: orderly close. ECONNRESET: the server closed with our bytes unread. */
            if (n < 0 && errno != ECONNRESET)
                fuzz_fail("%s: recv: %s", c->what, strerror(errno));
            c->eof = 1;
            if (c->len)
                fuzz_fail("%s: closed in the middle of a line: \"%.*s\"", c->what, (int)c->len,
                          c->line);
            if (c->cont_code[0])
                fuzz_fail("%s: closed in the middle of a %s- reply", c->what, c->cont_code);
            break;
        }
        got = 1;
        for (ssize_t i = 0; i < n; i++) {
            if (c->len == sizeof c->line)
                fuzz_fail("%s: reply line longer than %d bytes", c->what, FUZZ_MAX_LINE);
            c->line[c->len++] = buf[i];
            if (buf[i] == '\n') {
                fuzz_check_line(c, c->line, c->len);
                c->len = 0;
            }
        }
    }
    return got;
}

/* The server must greet a fresh connection, and close it once the client half-closes. */
static void
fuzz_probe(struct fuzz_server *sv)
{
    static struct fuzz_client c;
    memset(&c, 0, sizeof c);
    c.what = "probe";
    c.fd = fuzz_connect(sv->smtp_port);
    int64_t deadline = fuzz_now() + FUZZ_HANG_MS;
    while (c.lines == 0) {
        if (fuzz_now() > deadline)
            fuzz_fail("probe: no greeting within %d ms: the server is stuck", FUZZ_HANG_MS);
        fuzz_step(sv, 0);
        if (!fuzz_read(&c)) {
            if (c.eof)
                fuzz_fail("probe: closed without a greeting");
            fuzz_step(sv, 1);
        }
    }
    shutdown(c.fd, SHUT_WR);
    while (!c.eof) {
        if (fuzz_now() > deadline)
            fuzz_fail("probe: not closed within %d ms after EOF", FUZZ_HANG_MS);
        fuzz_step(sv, 0);
        if (!fuzz_read(&c) && !c.eof)
            fuzz_step(sv, 1);
    }
    close(c.fd);
}

/* Every message accepted since the last input: within max_size, with a recipient. */
static void
fuzz_check_messages(struct fuzz_server *sv)
{
    size_t n = mocksrv_message_count(sv->srv);
    for (; sv->messages_checked < n; sv->messages_checked++) {
        struct mocksrv_message *m = mocksrv_message_get(sv->srv, sv->messages_checked);
        if (!m)
            fuzz_fail("message %zu of %zu missing", sv->messages_checked, n);
        if (m->size > FUZZ_MAX_SIZE)
            fuzz_fail("message %u of %zu bytes accepted with max_size %d", m->id, m->size,
                      FUZZ_MAX_SIZE);
        if (m->rcpt_count == 0 || !m->mail_from || (m->size && !m->data))
            fuzz_fail("message %u: %zu recipients, mail_from %p, data %p", m->id, m->rcpt_count,
                      (const void *)m->mail_from, (const void *)m->data);
        mocksrv_message_free(m);
    }
    if (sv->messages_checked >= FUZZ_RESTART_AFTER) {
        /* Accepted messages stay in memory; keep long runs within libFuzzer's RSS limit. */
        fuzz_server_stop(sv);
        fuzz_server_start(sv);
    }
}

static uint32_t
fuzz_next(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* Size of the next write: the whole rest, up to the next LF, or a random piece. */
static size_t
fuzz_piece(int cut, uint32_t *x, const char *p, size_t left)
{
    size_t n;
    switch (cut) {
    case 1: {
        const char *lf = memchr(p, '\n', left);
        return lf ? (size_t)(lf - p) + 1 : left;
    }
    case 2:
        n = 1 + fuzz_next(x) % 16;
        return FUZZ_MIN(left, n);
    case 3:
        n = 1 + fuzz_next(x) % 256;
        return FUZZ_MIN(left, n);
    default:
        return left;
    }
}

enum fuzz_end {
    FUZZ_END_HALF,  /* shutdown(SHUT_WR), read until the server closes */
    FUZZ_END_ABORT, /* RST at once, nothing read */
    FUZZ_END_IDLE,  /* stay connected until the server closes */
};

/* Plays one session: sends payload as cut says, reads and checks every reply, ends as end says. */
static void
fuzz_session(struct fuzz_server *sv, int port, const char *payload, size_t len, int cut, uint32_t x,
             enum fuzz_end end)
{
    static struct fuzz_client c;
    memset(&c, 0, sizeof c);
    c.what = "session";
    c.fd = fuzz_connect(port);

    size_t sent = 0;
    int send_closed = 0, half_closed = 0;
    int64_t deadline = fuzz_now() + FUZZ_HANG_MS;
    for (;;) {
        int progress = 0;
        if (sent < len && !send_closed) {
            size_t n = fuzz_piece(cut, &x, payload + sent, len - sent);
            ssize_t w = send(c.fd, payload + sent, n, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) {
                sent += (size_t)w;
                progress = 1;
            } else if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
                send_closed = 1; /* the server hung up first (QUIT, too many errors) */
            } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                fuzz_fail("send: %s", strerror(errno));
            }
        } else if (end == FUZZ_END_ABORT) {
            /* SO_LINGER 0: close sends RST; the server sees a reset, maybe mid-reply. */
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(c.fd);
            for (int i = 0; i < 4; i++)
                fuzz_step(sv, 0);
            return;
        } else if (end == FUZZ_END_HALF && !half_closed) {
            shutdown(c.fd, SHUT_WR);
            half_closed = 1;
            progress = 1;
        }
        fuzz_step(sv, 0);
        if (fuzz_read(&c))
            progress = 1;
        if (c.eof)
            break;
        if (fuzz_now() > deadline)
            fuzz_fail("session: the server neither closed nor stopped answering within %d ms "
                      "(%zu of %zu bytes sent, %s)",
                      FUZZ_HANG_MS, sent, len, half_closed ? "half-closed" : "connected");
        if (!progress)
            fuzz_step(sv, 1); /* nothing to do but wait for the server's timers */
    }
    if (end == FUZZ_END_IDLE && !send_closed && strcmp(c.last_code, "221") != 0 &&
        strcmp(c.last_code, "421") != 0)
        fuzz_fail("session: the server hung up on a live client after a %s reply",
                  c.last_code[0] ? c.last_code : "(no)");
    close(c.fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_main.srv) {
        const char *strict = getenv("MOCKSRV_FUZZ_STRICT");
        const char *verbose = getenv("MOCKSRV_FUZZ_VERBOSE");
        fuzz_strict = strict && strcmp(strict, "1") == 0;
        fuzz_verbose = verbose && strcmp(verbose, "1") == 0;
        fuzz_server_start(&fuzz_main);
        fuzz_server_start(&fuzz_idle);
    }
    if (size == 0)
        return 0;
    uint8_t sel = data[0];
    int greet = sel & 1;
    int lmtp = (sel >> 1) & 1;
    int cut = (sel >> 2) & 3;
    int ending = sel >> 4;
    enum fuzz_end end = ending == 15   ? FUZZ_END_IDLE
                        : ending == 14 ? FUZZ_END_ABORT
                                       : FUZZ_END_HALF;
    struct fuzz_server *sv = end == FUZZ_END_IDLE ? &fuzz_idle : &fuzz_main;

    const char *prefix = greet ? (lmtp ? "LHLO x\r\n" : "EHLO x\r\n") : "";
    size_t plen = strlen(prefix);
    size_t len = plen + size - 1;
    char *payload = malloc(len + 1);
    memcpy(payload, prefix, plen);
    memcpy(payload + plen, data + 1, size - 1);
    uint32_t x = 0x9e3779b9u ^ (uint32_t)size ^ (uint32_t)sel << 24;

    fuzz_session(sv, lmtp ? sv->lmtp_port : sv->smtp_port, payload, len, cut, x, end);
    free(payload);
    fuzz_check_messages(sv);
    fuzz_probe(sv);
    return 0;
}
