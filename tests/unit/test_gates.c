/*
 * test_gates.c - the TLS gates of every protocol, table-driven, against an in-process server
 * (library, own thread) over loopback, with an OpenSSL client on the same socket after the
 * go-ahead.
 *
 * Gate rows (SPEC 3.1 `tls: required`): on a listener that requires TLS, a credential or mail
 * command sent before STARTTLS/STLS is refused with the protocol's reply (SMTP/LMTP 530 5.7.0,
 * POP3 -ERR), no credential is even checked (no `auth` event, no login), the capability list
 * does not offer what would be refused; and after the handshake the very same command works.
 * The credentials are valid, so only the gate stands between the client and a login.
 *
 * Injection rows (RFC 3207 4.2, RFC 2595 3.1, the CVE-2011-0411 class): bytes pipelined behind
 * STARTTLS/STLS in the same write are thrown away: the handshake succeeds (no plaintext reply
 * comes between the go-ahead and the ServerHello), the first reply inside TLS is the one to the
 * client's own next command, and the injected command leaves no `command` event.
 *
 * Each row is one connection to a fresh server. IMAP fits as one more protocol entry and one
 * more row per gate: a step's `end` is the prefix of a reply's last line (the IMAP tag), and a
 * row's before_only lists what is offered only before the handshake (LOGINDISABLED), beside
 * `hidden` for what is offered only after it (SMTP AUTH; POP3 USER and SASL).
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "mocksrv.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char scenario[] = "version: 1\n"
                               "seed: 11\n"
                               "hostname: gate.test\n"
                               "listeners:\n"
                               "  smtpreq: { protocol: smtp, port: 0, tls: required }\n"
                               "  lmtpreq: { protocol: lmtp, port: 0, tls: required }\n"
                               "  pop3req: { protocol: pop3, port: 0, tls: required }\n"
                               "  smtp: { protocol: smtp, port: 0, tls: starttls }\n"
                               "  pop3: { protocol: pop3, port: 0, tls: starttls }\n"
                               "pop3: { apop: true }\n"
                               "users:\n"
                               "  alice: { password: secret, addresses: [alice@gate.test] }\n";

/* POP3's refusal before STLS on a tls: required listener: the whole prefix, so that another
 * -ERR (no USER given, APOP not enabled) cannot pass for it */
#define POP3_REFUSED "-ERR Plaintext authentication disallowed"

/* AUTH PLAIN's initial response for alice / secret: base64("\0alice\0secret") */
#define PLAIN_ALICE "AGFsaWNlAHNlY3JldA=="

/* ---- events, collected on the server's thread ---- */

struct events {
    pthread_mutex_t lock;
    char **lines;
    size_t n, cap;
};

static void
events_add(void *arg, const char *name, const char *json)
{
    struct events *ev = arg;
    (void)name;
    pthread_mutex_lock(&ev->lock);
    if (ev->n == ev->cap) {
        ev->cap = ev->cap ? ev->cap * 2 : 64;
        ev->lines = realloc(ev->lines, ev->cap * sizeof *ev->lines);
        ck_assert_ptr_nonnull(ev->lines);
    }
    ev->lines[ev->n++] = strdup(json);
    pthread_mutex_unlock(&ev->lock);
}

/* Events whose JSON contains every one of the (up to two) fragments. */
static size_t
events_count(struct events *ev, const char *a, const char *b)
{
    size_t n = 0;
    pthread_mutex_lock(&ev->lock);
    for (size_t i = 0; i < ev->n; i++)
        if (strstr(ev->lines[i], a) && (!b || strstr(ev->lines[i], b)))
            n++;
    pthread_mutex_unlock(&ev->lock);
    return n;
}

/* ---- a server per row ---- */

struct fixture {
    struct mocksrv *srv;
    struct events ev;
};

static void
fixture_start(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->ev.lock, NULL);
    f->srv = mocksrv_new();
    struct mocksrv_error err = {0};
    ck_assert_msg(mocksrv_load_string(f->srv, scenario, sizeof scenario - 1, "gates", &err) == 0,
                  "%s", err.message);
    mocksrv_set_ephemeral(f->srv, 1);
    mocksrv_on_event(f->srv, events_add, &f->ev);
    ck_assert_msg(mocksrv_start(f->srv, &err) == 0, "%s", err.message);
    ck_assert_ptr_nonnull(mocksrv_ca_file(f->srv));
}

static void
fixture_stop(struct fixture *f)
{
    mocksrv_stop(f->srv);
    mocksrv_free(f->srv);
    for (size_t i = 0; i < f->ev.n; i++)
        free(f->ev.lines[i]);
    free(f->ev.lines);
    pthread_mutex_destroy(&f->ev.lock);
}

/* ---- a client: plaintext, then TLS on the same socket ---- */

struct client {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char buf[16384];
    size_t len;
};

static void
client_open(struct client *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(c->fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    /* every read is bounded: a server that says nothing fails the test, it does not hang it */
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static void
client_close(struct client *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    close(c->fd);
}

static void
client_send(struct client *c, const char *data)
{
    size_t n = strlen(data);
    if (c->ssl)
        ck_assert_int_eq(SSL_write(c->ssl, data, (int)n), (int)n);
    else
        ck_assert_int_eq(write(c->fd, data, n), (ssize_t)n);
}

/* One line without its CRLF; 0, or -1 when the connection ended or nothing came in time. */
static int
client_line(struct client *c, char *out, size_t cap)
{
    for (;;) {
        char *lf = memchr(c->buf, '\n', c->len);
        if (lf) {
            size_t l = (size_t)(lf - c->buf);
            size_t copy = l > 0 && c->buf[l - 1] == '\r' ? l - 1 : l;
            if (copy >= cap)
                copy = cap - 1;
            memcpy(out, c->buf, copy);
            out[copy] = '\0';
            memmove(c->buf, lf + 1, c->len - l - 1);
            c->len -= l + 1;
            return 0;
        }
        if (c->len == sizeof c->buf)
            return -1;
        ssize_t got = c->ssl ? SSL_read(c->ssl, c->buf + c->len, (int)(sizeof c->buf - c->len))
                             : read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
        if (got <= 0)
            return -1;
        c->len += (size_t)got;
    }
}

/* The handshake after the go-ahead. Plaintext already buffered (bytes the server sent after
 * its go-ahead) would be read by OpenSSL as a record and fail the handshake; so would plaintext
 * still on the wire. */
static void
client_starttls(struct client *c, const char *ca_file)
{
    ck_assert_msg(c->len == 0, "plaintext after the go-ahead: \"%.*s\"", (int)c->len, c->buf);
    c->ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(c->ctx);
    ck_assert_int_eq(SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL), 1);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    c->ssl = SSL_new(c->ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "gate.test");
    SSL_set1_host(c->ssl, "gate.test");
    int r = SSL_connect(c->ssl);
    char why[256] = "";
    if (r != 1)
        ERR_error_string_n(ERR_peek_last_error(), why, sizeof why);
    ck_assert_msg(r == 1, "handshake failed: %s", why);
}

/* ---- the rows ---- */

enum proto { P_SMTP, P_POP3 };

/* One command and the prefix its reply must start with. end: the prefix of the reply's last
 * line ("." for a POP3 multi-line reply, the tag for IMAP); NULL: SMTP's "NNN " line, or
 * POP3's single line. */
struct step {
    const char *send; /* "%APOP%" is replaced by "alice <digest of the greeting's stamp>" */
    const char *want;
    const char *end;
};

/* How a protocol looks from the client: its greeting, the capability command, STARTTLS. */
struct proto_ops {
    const char *greeting; /* prefix of the greeting's first line */
    struct step capa;     /* the capability command (SMTP: none, the row's EHLO/LHLO is) */
    const char *starttls; /* the command and the prefix of its go-ahead */
    const char *go_ahead;
};

static const struct proto_ops protos[] = {
    [P_SMTP] = {"220 ", {NULL, NULL, NULL}, "STARTTLS\r\n", "220 "},
    [P_POP3] = {"+OK ", {"CAPA\r\n", "+OK", "."}, "STLS\r\n", "+OK "},
};

/* Reads one reply; returns its first line in first (and the lines joined with '\n' in all when
 * not NULL). Where it ends: see struct step; a POP3 "-ERR" is always one line. */
static void
read_reply(struct client *c, enum proto p, const char *end, char *first, size_t cap, char *all,
           size_t all_cap)
{
    char line[1024];
    if (all)
        all[0] = '\0';
    for (int i = 0; i < 200; i++) {
        ck_assert_msg(client_line(c, line, sizeof line) == 0, "no reply (after \"%s\")",
                      i ? first : "");
        if (i == 0)
            snprintf(first, cap, "%s", line);
        if (all && strlen(all) + strlen(line) + 2 < all_cap) {
            strcat(all, line);
            strcat(all, "\n");
        }
        if (end) {
            if (strncmp(line, end, strlen(end)) == 0 || (p == P_POP3 && i == 0 && line[0] == '-'))
                return;
        } else if (p == P_SMTP ? strlen(line) < 4 || line[3] == ' ' : 1) {
            return;
        }
    }
    ck_abort_msg("reply without end");
}

#define MAX_STEPS 4

struct gate_case {
    const char *name;
    enum proto proto;
    const char *listener;
    struct step setup;             /* before each attempt (EHLO / LHLO), or none */
    struct step before[MAX_STEPS]; /* refused in plaintext: only the first is sent */
    struct step after[MAX_STEPS];  /* the same credential or command inside TLS */
    const char *hidden[3];         /* capability words not offered before TLS, offered after */
    const char *before_only[2];    /* capability words offered before TLS only (LOGINDISABLED) */
    int logs_in;                   /* after: one auth event with ok true */
};

static const struct gate_case gates[] = {
    {.name = "smtp AUTH PLAIN",
     .proto = P_SMTP,
     .listener = "smtpreq",
     .setup = {"EHLO client.test\r\n", "250-gate.test", NULL},
     .before = {{"AUTH PLAIN " PLAIN_ALICE "\r\n", "530 5.7.0", NULL}},
     .after = {{"AUTH PLAIN " PLAIN_ALICE "\r\n", "235 2.7.0", NULL}},
     .hidden = {"AUTH"},
     .logs_in = 1},
    {.name = "smtp AUTH PLAIN, response on its own line",
     .proto = P_SMTP,
     .listener = "smtpreq",
     .setup = {"EHLO client.test\r\n", "250-gate.test", NULL},
     .before = {{"AUTH PLAIN\r\n", "530 5.7.0", NULL}},
     .after = {{"AUTH PLAIN\r\n", "334", NULL}, {PLAIN_ALICE "\r\n", "235 2.7.0", NULL}},
     .hidden = {"AUTH"},
     .logs_in = 1},
    {.name = "smtp AUTH LOGIN",
     .proto = P_SMTP,
     .listener = "smtpreq",
     .setup = {"EHLO client.test\r\n", "250-gate.test", NULL},
     .before = {{"AUTH LOGIN\r\n", "530 5.7.0", NULL}},
     .after = {{"AUTH LOGIN\r\n", "334 ", NULL},
               {"YWxpY2U=\r\n", "334 ", NULL},       /* alice */
               {"c2VjcmV0\r\n", "235 2.7.0", NULL}}, /* secret */
     .hidden = {"AUTH"},
     .logs_in = 1},
    {.name = "smtp AUTH LOGIN with the user name",
     .proto = P_SMTP,
     .listener = "smtpreq",
     .setup = {"EHLO client.test\r\n", "250-gate.test", NULL},
     .before = {{"AUTH LOGIN YWxpY2U=\r\n", "530 5.7.0", NULL}},
     .after = {{"AUTH LOGIN YWxpY2U=\r\n", "334 ", NULL}, {"c2VjcmV0\r\n", "235 2.7.0", NULL}},
     .hidden = {"AUTH"},
     .logs_in = 1},
    {.name = "smtp MAIL",
     .proto = P_SMTP,
     .listener = "smtpreq",
     .setup = {"EHLO client.test\r\n", "250-gate.test", NULL},
     .before = {{"MAIL FROM:<bob@client.test>\r\n", "530 5.7.0", NULL}},
     .after = {{"MAIL FROM:<bob@client.test>\r\n", "250 ", NULL}}},
    {.name = "lmtp MAIL",
     .proto = P_SMTP,
     .listener = "lmtpreq",
     .setup = {"LHLO client.test\r\n", "250-gate.test", NULL},
     .before = {{"MAIL FROM:<bob@client.test>\r\n", "530 5.7.0", NULL}},
     .after = {{"MAIL FROM:<bob@client.test>\r\n", "250 ", NULL}}},
    {.name = "lmtp AUTH PLAIN",
     .proto = P_SMTP,
     .listener = "lmtpreq",
     .setup = {"LHLO client.test\r\n", "250-gate.test", NULL},
     .before = {{"AUTH PLAIN " PLAIN_ALICE "\r\n", "530 5.7.0", NULL}},
     .after = {{"AUTH PLAIN " PLAIN_ALICE "\r\n", "235 2.7.0", NULL}},
     .hidden = {"AUTH"},
     .logs_in = 1},
    {.name = "pop3 USER",
     .proto = P_POP3,
     .listener = "pop3req",
     .before = {{"USER alice\r\n", POP3_REFUSED, NULL}},
     .after = {{"USER alice\r\n", "+OK", NULL}, {"PASS secret\r\n", "+OK", NULL}},
     .hidden = {"USER", "SASL", NULL},
     .logs_in = 1},
    {.name = "pop3 USER and PASS pipelined",
     .proto = P_POP3,
     .listener = "pop3req",
     .before = {{"USER alice\r\nPASS secret\r\n", POP3_REFUSED, NULL}, {NULL, POP3_REFUSED, NULL}},
     .after = {{"USER alice\r\n", "+OK", NULL}, {"PASS secret\r\n", "+OK", NULL}},
     .hidden = {"USER", "SASL", NULL},
     .logs_in = 1},
    {.name = "pop3 PASS",
     .proto = P_POP3,
     .listener = "pop3req",
     .before = {{"PASS secret\r\n", POP3_REFUSED, NULL}},
     .after = {{"USER alice\r\n", "+OK", NULL}, {"PASS secret\r\n", "+OK", NULL}},
     .hidden = {"USER", "SASL", NULL},
     .logs_in = 1},
    {.name = "pop3 APOP",
     .proto = P_POP3,
     .listener = "pop3req",
     .before = {{"APOP %APOP%\r\n", POP3_REFUSED, NULL}},
     .after = {{"APOP %APOP%\r\n", "+OK", NULL}},
     .hidden = {"USER", "SASL", NULL},
     .logs_in = 1},
    {.name = "pop3 AUTH PLAIN",
     .proto = P_POP3,
     .listener = "pop3req",
     .before = {{"AUTH PLAIN " PLAIN_ALICE "\r\n", POP3_REFUSED, NULL}},
     .after = {{"AUTH PLAIN " PLAIN_ALICE "\r\n", "+OK", NULL}},
     .hidden = {"USER", "SASL", NULL},
     .logs_in = 1},
    {.name = "pop3 AUTH PLAIN, response on its own line",
     .proto = P_POP3,
     .listener = "pop3req",
     .before = {{"AUTH PLAIN\r\n", POP3_REFUSED, NULL}},
     .after = {{"AUTH PLAIN\r\n", "+ ", NULL}, {PLAIN_ALICE "\r\n", "+OK", NULL}},
     .hidden = {"USER", "SASL", NULL},
     .logs_in = 1},
};

/* "alice <hex md5(stamp secret)>" for the APOP stamp in the greeting (RFC 1939 7). */
static void
apop_args(const char *greeting, char *out, size_t cap)
{
    const char *lt = strchr(greeting, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    ck_assert_msg(lt && gt, "no APOP stamp in \"%s\"", greeting);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ck_assert(EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1);
    EVP_DigestUpdate(ctx, lt, (size_t)(gt - lt + 1));
    EVP_DigestUpdate(ctx, "secret", 6);
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    size_t n = (size_t)snprintf(out, cap, "alice ");
    for (unsigned i = 0; i < mdlen && n + 3 < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%02x", md[i]);
}

/* Sends st->send (with %APOP% expanded), reads the reply and checks its first line. */
static void
run_step(struct client *c, enum proto p, const struct step *st, const char *greeting,
         const char *when)
{
    if (st->send) {
        const char *mark = strstr(st->send, "%APOP%");
        if (mark) {
            char args[128], line[256];
            apop_args(greeting, args, sizeof args);
            snprintf(line, sizeof line, "%.*s%s%s", (int)(mark - st->send), st->send, args,
                     mark + 6);
            client_send(c, line);
        } else {
            client_send(c, st->send);
        }
    }
    char first[1024];
    read_reply(c, p, st->end, first, sizeof first, NULL, 0);
    ck_assert_msg(strncmp(first, st->want, strlen(st->want)) == 0,
                  "%s, \"%s\": got \"%s\", want \"%s...\"", when,
                  st->send ? st->send : "(pipelined)", first, st->want);
}

/* 1 when word is one of the capability list's words (after an SMTP "250-" / "250 "). */
static int
capability_offered(const char *all, const char *word)
{
    char copy[8192];
    snprintf(copy, sizeof copy, "%s", all);
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strlen(line) >= 4 && line[0] >= '2' && line[0] <= '5' &&
            (line[3] == '-' || line[3] == ' '))
            line += 4;
        char *save_w = NULL;
        for (char *w = strtok_r(line, " ", &save_w); w; w = strtok_r(NULL, " ", &save_w))
            if (strcmp(w, word) == 0)
                return 1;
    }
    return 0;
}

/* The capability list before (tls 0) or after (tls 1) the handshake: the words of hidden
 * offered only after it, those of before_only only before it. */
static void
check_capabilities(struct client *c, const struct gate_case *g, int tls)
{
    const struct proto_ops *ops = &protos[g->proto];
    const struct step *capa = ops->capa.send ? &ops->capa : &g->setup;
    if (!capa->send)
        return;
    char first[1024], all[8192];
    client_send(c, capa->send);
    read_reply(c, g->proto, capa->end, first, sizeof first, all, sizeof all);
    ck_assert_msg(strncmp(first, capa->want, strlen(capa->want)) == 0, "%s: %s", g->name, first);
    for (size_t i = 0; i < ARRAY_LEN(g->hidden) && g->hidden[i]; i++)
        ck_assert_msg(capability_offered(all, g->hidden[i]) == tls,
                      "%s: %s %s the capabilities %s TLS:\n%s", g->name, g->hidden[i],
                      tls ? "missing from" : "offered in", tls ? "after" : "before", all);
    for (size_t i = 0; i < ARRAY_LEN(g->before_only) && g->before_only[i]; i++)
        ck_assert_msg(capability_offered(all, g->before_only[i]) == !tls,
                      "%s: %s %s the capabilities %s TLS:\n%s", g->name, g->before_only[i],
                      tls ? "offered in" : "missing from", tls ? "after" : "before", all);
}

START_TEST(test_gate)
{
    const struct gate_case *g = &gates[_i];
    const struct proto_ops *ops = &protos[g->proto];
    struct fixture f;
    fixture_start(&f);
    struct client c;
    client_open(&c, mocksrv_port(f.srv, g->listener));
    char greeting[1024];
    read_reply(&c, g->proto, NULL, greeting, sizeof greeting, NULL, 0);
    ck_assert_msg(strncmp(greeting, ops->greeting, strlen(ops->greeting)) == 0, "%s: %s", g->name,
                  greeting);

    /* in plaintext: not offered, and refused */
    if (g->setup.send)
        run_step(&c, g->proto, &g->setup, greeting, g->name);
    check_capabilities(&c, g, 0);
    for (size_t i = 0; i < MAX_STEPS && g->before[i].want; i++)
        run_step(&c, g->proto, &g->before[i], greeting, g->name);
    if (g->proto == P_POP3) {
        /* still in AUTHORIZATION: no maildrop was opened */
        struct step stat = {"STAT\r\n", "-ERR", NULL};
        run_step(&c, g->proto, &stat, greeting, g->name);
    }
    ck_assert_msg(events_count(&f.ev, "\"event\":\"auth\"", NULL) == 0,
                  "%s: a credential was checked before TLS", g->name);

    /* the handshake, then the same command works */
    client_send(&c, ops->starttls);
    char go[1024];
    read_reply(&c, g->proto, NULL, go, sizeof go, NULL, 0);
    ck_assert_msg(strncmp(go, ops->go_ahead, strlen(ops->go_ahead)) == 0, "%s: %s", g->name, go);
    client_starttls(&c, mocksrv_ca_file(f.srv));
    if (g->setup.send)
        run_step(&c, g->proto, &g->setup, greeting, g->name);
    check_capabilities(&c, g, 1);
    for (size_t i = 0; i < MAX_STEPS && g->after[i].want; i++)
        run_step(&c, g->proto, &g->after[i], greeting, g->name);
    ck_assert_int_eq(events_count(&f.ev, "\"event\":\"auth\"", "\"ok\":true"), (size_t)g->logs_in);
    client_close(&c);
    fixture_stop(&f);
}
END_TEST

/* ---- STARTTLS / STLS injection ---- */

struct inject_case {
    const char *name;
    enum proto proto;
    const char *listener;
    struct step setup;           /* before STARTTLS (EHLO), or none */
    const char *starttls;        /* STARTTLS and what is pipelined behind it, one write */
    const char *injected;        /* the injected command line as a `command` event would show it */
    struct step first;           /* inside TLS: the client's own command and its reply */
    struct step then[MAX_STEPS]; /* and what tells whether the injected ones ran */
};

static const struct inject_case injects[] = {
    {.name = "smtp RSET",
     .proto = P_SMTP,
     .listener = "smtp",
     .setup = {"EHLO client.test\r\n", "250-gate.test", NULL},
     .starttls = "STARTTLS\r\nRSET\r\n",
     .injected = "RSET",
     /* RSET's reply would come first */
     .first = {"EHLO client.test\r\n", "250-gate.test", NULL},
     .then = {{"NOOP\r\n", "250 ", NULL}}},
    {.name = "smtp EHLO and MAIL",
     .proto = P_SMTP,
     .listener = "smtp",
     .setup = {"EHLO client.test\r\n", "250-gate.test", NULL},
     .starttls = "STARTTLS\r\nEHLO injected.test\r\nMAIL FROM:<evil@injected.test>\r\n",
     .injected = "MAIL FROM:<evil@injected.test>",
     .first = {"NOOP\r\n", "250 ", NULL},
     /* without an EHLO inside TLS, MAIL is refused: the injected EHLO did not count */
     .then = {{"MAIL FROM:<bob@client.test>\r\n", "503 ", NULL}}},
    {.name = "smtp AUTH on a required listener",
     .proto = P_SMTP,
     .listener = "smtpreq",
     .setup = {"EHLO client.test\r\n", "250-gate.test", NULL},
     .starttls = "STARTTLS\r\nEHLO injected.test\r\nAUTH PLAIN " PLAIN_ALICE "\r\n",
     .injected = "AUTH PLAIN " PLAIN_ALICE "\"",
     .first = {"EHLO client.test\r\n", "250-gate.test", NULL},
     /* not authenticated: AUTH works now (not "503 already authenticated") */
     .then = {{"AUTH PLAIN\r\n", "334", NULL}, {PLAIN_ALICE "\r\n", "235 2.7.0", NULL}}},
    {.name = "lmtp MAIL",
     .proto = P_SMTP,
     .listener = "lmtpreq",
     .setup = {"LHLO client.test\r\n", "250-gate.test", NULL},
     .starttls = "STARTTLS\r\nLHLO injected.test\r\nMAIL FROM:<evil@injected.test>\r\n",
     .injected = "MAIL FROM:<evil@injected.test>",
     .first = {"NOOP\r\n", "250 ", NULL},
     .then = {{"MAIL FROM:<bob@client.test>\r\n", "503 ", NULL}}},
    {.name = "pop3 USER",
     .proto = P_POP3,
     .listener = "pop3",
     .starttls = "STLS\r\nUSER alice\r\n",
     .injected = "USER alice",
     /* USER's "+OK" would come first */
     .first = {"CAPA\r\n", "+OK Capability list follows", "."},
     /* no USER pending inside TLS */
     .then = {{"PASS secret\r\n", "-ERR", NULL}}},
    {.name = "pop3 USER and PASS on a required listener",
     .proto = P_POP3,
     .listener = "pop3req",
     .starttls = "STLS\r\nUSER alice\r\nPASS secret\r\n",
     .injected = "PASS secret",
     .first = {"CAPA\r\n", "+OK Capability list follows", "."},
     /* still in AUTHORIZATION: STAT is refused */
     .then = {{"STAT\r\n", "-ERR", NULL}}},
};

START_TEST(test_injection)
{
    const struct inject_case *t = &injects[_i];
    struct fixture f;
    fixture_start(&f);
    struct client c;
    client_open(&c, mocksrv_port(f.srv, t->listener));
    char greeting[1024], go[1024];
    read_reply(&c, t->proto, NULL, greeting, sizeof greeting, NULL, 0);
    if (t->setup.send)
        run_step(&c, t->proto, &t->setup, greeting, t->name);
    client_send(&c, t->starttls);
    read_reply(&c, t->proto, NULL, go, sizeof go, NULL, 0);
    ck_assert_msg(strncmp(go, protos[t->proto].go_ahead, strlen(protos[t->proto].go_ahead)) == 0,
                  "%s: %s", t->name, go);
    /* a reply to the injected bytes in plaintext would be in c.buf or on the wire now, and
     * fail the handshake */
    client_starttls(&c, mocksrv_ca_file(f.srv));
    run_step(&c, t->proto, &t->first, greeting, t->name);
    size_t own = 0; /* credentials the client sends inside TLS */
    for (size_t i = 0; i < MAX_STEPS && t->then[i].want; i++) {
        run_step(&c, t->proto, &t->then[i], greeting, t->name);
        own += t->then[i].send && strncmp(t->then[i].send, "AUTH", 4) == 0;
    }
    /* the only credentials checked are the ones the client sent inside TLS */
    ck_assert_msg(events_count(&f.ev, "\"event\":\"auth\"", NULL) == own,
                  "%s: the injected credentials were checked", t->name);
    ck_assert_int_eq(events_count(&f.ev, "\"event\":\"auth\"", "\"ok\":true"), own);
    char line[256];
    snprintf(line, sizeof line, "\"line\":\"%s", t->injected);
    ck_assert_msg(events_count(&f.ev, "\"event\":\"command\"", line) == 0,
                  "%s: the injected \"%s\" was read as a command", t->name, t->injected);
    /* the session goes on: nothing else is waiting in the client's buffer */
    ck_assert_msg(c.len == 0, "%s: unexpected \"%.*s\"", t->name, (int)c.len, c.buf);
    client_close(&c);
    fixture_stop(&f);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("gates");
    TCase *tc = tcase_create("tls");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_gate, 0, (int)ARRAY_LEN(gates));
    tcase_add_loop_test(tc, test_injection, 0, (int)ARRAY_LEN(injects));
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
