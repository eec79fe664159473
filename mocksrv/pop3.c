/*
 * pop3.c - the POP3 engine (RFC 1939, CAPA RFC 2449, AUTH RFC 5034, response codes RFC 3206),
 * one coroutine per session.
 *
 * The maildrop is the user's INBOX in the shared store. On login the session takes the
 * maildrop lock (a second login gets -ERR [IN-USE]) and a snapshot: message numbers, UIDs and a
 * reference to each message's bytes, so numbering stays fixed for the session (RFC 1939 5)
 * whatever other protocols do meanwhile. DELE marks snapshot entries; only QUIT in the
 * TRANSACTION state enters UPDATE and expunges them from the store, by UID.
 *
 * Invariants:
 *   - Every command line gets exactly one response; multi-line responses end with ".".
 *   - Message bytes are sent byte-stuffed (RFC 1939 3) from the shared blob, never modified.
 *   - UIDL is "UIDVALIDITY.UID": stable across sessions while the INBOX keeps its UIDVALIDITY.
 *   - The lock is released however the session ends.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include "dot.h"
#include "expect.h"
#include "sasl.h"
#include "server.h"

#define POP3_AUTH_LINE_MAX 16384

struct pop3_item {
    uint32_t uid;
    struct ms_blob *blob; /* one reference */
    int deleted;
};

enum pop3_state { POP3_AUTHORIZATION, POP3_TRANSACTION };

struct pop3 {
    struct ms_session *s;
    struct ms_server *srv;
    const struct ms_scenario *sc;
    struct ms_conn *c;
    enum pop3_state state;
    char *user;      /* from USER, waiting for PASS */
    char stamp[128]; /* APOP timestamp of the greeting, "" when APOP is off */
    char *locked;    /* account name whose maildrop this session holds */
    uint32_t uidvalidity;
    struct pop3_item *items;
    size_t n_items;
    int done;
    char verb[8]; /* the last command received, for at: waiting rules ("" before any) */
    struct ms_buf reply;
};

/* ---- responses ---- */

static void
pop3_send(struct pop3 *p)
{
    /* multi-line bodies (RETR, TOP) are not copied into events: status line only */
    ms_session_reply(p->s, p->reply.data, p->reply.len, 1);
    ms_buf_clear(&p->reply);
}

static void MS_PRINTF(2, 3) pop3_ok(struct pop3 *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ms_buf_puts(&p->reply, "+OK ");
    size_t before = p->reply.len;
    ms_buf_vprintf(&p->reply, fmt, ap);
    if (p->reply.len == before)
        p->reply.len--; /* no text: "+OK" alone */
    ms_buf_puts(&p->reply, "\r\n");
    va_end(ap);
    pop3_send(p);
}

static void MS_PRINTF(2, 0) pop3_verr(struct pop3 *p, const char *fmt, va_list ap)
{
    ms_buf_puts(&p->reply, "-ERR ");
    ms_buf_vprintf(&p->reply, fmt, ap);
    ms_buf_puts(&p->reply, "\r\n");
    pop3_send(p);
}

/* An error the server answers without holding it against the client. */
static void MS_PRINTF(2, 3) pop3_fail(struct pop3 *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pop3_verr(p, fmt, ap);
    va_end(ap);
}

/* A client error; past limits.bad_commands the server gives up. */
static void MS_PRINTF(2, 3) pop3_error(struct pop3 *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pop3_verr(p, fmt, ap);
    va_end(ap);
    if (++p->s->bad_commands >= p->sc->limits.bad_commands) {
        pop3_fail(p, "Too many bad commands.");
        p->s->close_reason = MS_CLOSE_LIMIT;
        p->done = 1;
    }
}

static void
pop3_transport_end(struct pop3 *p, int rc)
{
    if (p->s->fault_closed) {
        /* a fault's close ended the connection (close_reason says so already) */
        p->done = 1;
        return;
    }
    if (rc == MOCKSRV_ETIMEDOUT) {
        /* RFC 1939 3: the autologout timer; no UPDATE state. */
        pop3_fail(p, "Disconnected for inactivity.");
        p->s->close_reason = MS_CLOSE_TIMEOUT;
    } else if (rc == MOCKSRV_ECANCELED && p->s->closing) {
        pop3_fail(p, "[SYS/TEMP] Server shutting down.");
        p->s->close_reason = MS_CLOSE_SHUTDOWN;
    } else if (rc == MOCKSRV_ECLOSED) {
        p->s->close_reason = MS_CLOSE_PEER;
    } else {
        p->s->close_reason = MS_CLOSE_ERROR;
    }
    p->done = 1;
}

/* ---- maildrop ---- */

static struct ms_account *
pop3_account(struct pop3 *p, const char *name)
{
    return p->srv->store ? ms_store_account(p->srv->store, name, 0) : NULL;
}

static void
pop3_release(struct pop3 *p)
{
    for (size_t i = 0; i < p->n_items; i++)
        ms_blob_unref(&p->items[i].blob);
    free(p->items);
    p->items = NULL;
    p->n_items = 0;
    if (p->locked) {
        struct ms_account *acc = pop3_account(p, p->locked);
        if (acc)
            acc->pop3_locked = 0;
        free(p->locked);
        p->locked = NULL;
    }
}

/* Takes the maildrop of user u: lock and snapshot. Sends the response either way. */
static void
pop3_open_maildrop(struct pop3 *p, const struct ms_user *u)
{
    struct ms_account *acc = ms_store_account(p->srv->store, u->name, 1);
    if (acc->pop3_locked) {
        /* RFC 2449 8.1.1 */
        pop3_fail(p, "[IN-USE] Mailbox is locked by another POP3 session.");
        return;
    }
    acc->pop3_locked = 1;
    p->locked = ms_strdup(u->name);
    struct ms_mailbox *inbox = ms_store_mailbox(acc, "INBOX");
    p->uidvalidity = inbox->uidvalidity;
    p->items = ms_calloc(inbox->n_msgs ? inbox->n_msgs : 1, sizeof *p->items);
    uint64_t total = 0;
    for (size_t i = 0; i < inbox->n_msgs; i++) {
        p->items[i].uid = inbox->msgs[i]->uid;
        p->items[i].blob = ms_blob_ref(inbox->msgs[i]->blob);
        total += p->items[i].blob->len;
    }
    p->n_items = inbox->n_msgs;
    p->state = POP3_TRANSACTION;
    free(p->s->auth_user);
    p->s->auth_user = ms_strdup(u->name);
    pop3_ok(p, "Logged in: %zu messages (%llu octets).", p->n_items, (unsigned long long)total);
}

/* UPDATE state (RFC 1939 6): expunge what was deleted, by UID, from the current store. */
static size_t
pop3_update(struct pop3 *p)
{
    struct ms_account *acc = pop3_account(p, p->locked);
    struct ms_mailbox *inbox = acc ? ms_store_mailbox(acc, "INBOX") : NULL;
    size_t left = 0;
    for (size_t i = 0; i < p->n_items; i++) {
        if (!p->items[i].deleted) {
            left++;
            continue;
        }
        if (inbox && inbox->uidvalidity == p->uidvalidity)
            ms_store_expunge_uid(inbox, p->items[i].uid);
    }
    return left;
}

/* ---- argument parsing ---- */

/* A message number argument: 1..n, not deleted. Sends the error and returns NULL otherwise. */
static struct pop3_item *
pop3_item_arg(struct pop3 *p, const char *arg, const char **rest_r)
{
    const char *q = arg;
    uint64_t n = 0;
    if (!isdigit((unsigned char)*q)) {
        pop3_error(p, "Invalid message number.");
        return NULL;
    }
    while (isdigit((unsigned char)*q)) {
        n = n * 10 + (uint64_t)(*q++ - '0');
        if (n > UINT32_MAX) {
            while (isdigit((unsigned char)*q))
                q++;
            pop3_fail(p, "There's no message %.*s.", (int)(q - arg), arg);
            return NULL;
        }
    }
    if (*q && *q != ' ') {
        pop3_error(p, "Invalid message number.");
        return NULL;
    }
    if (rest_r)
        *rest_r = *q ? q + 1 : q;
    else if (*q) {
        pop3_error(p, "Too many arguments.");
        return NULL;
    }
    if (n == 0 || n > p->n_items) {
        pop3_fail(p, "There's no message %llu.", (unsigned long long)n);
        return NULL;
    }
    struct pop3_item *it = &p->items[n - 1];
    if (it->deleted) {
        pop3_fail(p, "Message %llu is deleted.", (unsigned long long)n);
        return NULL;
    }
    return it;
}

static int
pop3_check_no_args(struct pop3 *p, const char *args)
{
    if (!*args)
        return 1;
    pop3_error(p, "Too many arguments.");
    return 0;
}

/* ---- commands ---- */

static void
pop3_cmd_capa(struct pop3 *p, const char *args)
{
    if (!pop3_check_no_args(p, args))
        return;
    /* RFC 2449 5. With tls: required, USER and SASL are offered only once the session is
     * encrypted, as SMTP's EHLO offers AUTH: before STLS they would be refused. */
    int plain_ok = !ms_session_needs_tls(p->s);
    ms_buf_puts(&p->reply, "+OK Capability list follows\r\nTOP\r\n");
    if (plain_ok)
        ms_buf_puts(&p->reply, "USER\r\n");
    ms_buf_puts(&p->reply, "UIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
    if (p->state == POP3_AUTHORIZATION && ms_session_can_starttls(p->s))
        ms_buf_puts(&p->reply, "STLS\r\n");
    unsigned auth = p->sc->pop3.auth;
    if (auth && plain_ok) {
        ms_buf_puts(&p->reply, "SASL");
        for (unsigned bit = 1; bit <= MS_AUTH_OAUTHBEARER; bit <<= 1)
            if (auth & bit)
                ms_buf_printf(&p->reply, " %s", ms_sasl_mech_name(bit));
        ms_buf_puts(&p->reply, "\r\n");
    }
    ms_buf_printf(&p->reply, "IMPLEMENTATION mocksrv %s\r\n.\r\n", mocksrv_version());
    if (p->s->pending.n_hide) {
        /* hide (a fault): drop capabilities, e.g. STLS for a stripping test */
        struct ms_buf kept = {0};
        const char *q = p->reply.data, *end = q + p->reply.len;
        for (int first = 1; q < end; first = 0) {
            const char *eol = memchr(q, '\n', (size_t)(end - q));
            size_t len = (size_t)(eol - q) + 1;
            if (first || !ms_session_hidden(p->s, q, strcspn(q, " \r")))
                ms_buf_append(&kept, q, len);
            q += len;
        }
        ms_buf_clear(&p->reply);
        ms_buf_append(&p->reply, kept.data, kept.len);
        ms_buf_fini(&kept);
    }
    ms_session_reply(p->s, p->reply.data, p->reply.len, 0);
    ms_buf_clear(&p->reply);
}

/* tls: required (SPEC 3.1): no credentials before STLS. */
static int
pop3_check_tls_done(struct pop3 *p)
{
    if (!ms_session_needs_tls(p->s))
        return 1;
    pop3_error(p, "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.");
    return 0;
}

/* RFC 2595 4: the go-ahead, the handshake, and the session stays in AUTHORIZATION. */
static void
pop3_cmd_stls(struct pop3 *p, const char *args)
{
    if (p->s->tls) {
        pop3_error(p, "TLS is already active.");
        return;
    }
    if (!ms_session_can_starttls(p->s)) {
        pop3_error(p, "Unknown command.");
        return;
    }
    if (!pop3_check_no_args(p, args))
        return;
    /* a tls: fault (FAULTS.md 2): refused, a go-ahead without TLS, or a broken handshake */
    struct ms_fault_actions tf;
    enum ms_fault_tls ft = ms_session_tls_take(p->s, &tf);
    if (ft == MS_FTLS_REFUSE) {
        pop3_fail(p, "TLS not available");
        return;
    }
    pop3_ok(p, "Begin TLS negotiation now.");
    if (ft == MS_FTLS_PLAINTEXT)
        return; /* the next bytes are read as commands, still in AUTHORIZATION */
    if (ms_session_starttls_fault(p->s, &tf) != MOCKSRV_OK) {
        p->done = 1;
        return;
    }
    free(p->user);
    p->user = NULL;
}

static void
pop3_cmd_user(struct pop3 *p, const char *args)
{
    if (!pop3_check_tls_done(p))
        return;
    if (!*args) {
        pop3_error(p, "Missing user name.");
        return;
    }
    free(p->user);
    p->user = ms_strdup(args);
    pop3_ok(p, "%s", "");
}

static void
pop3_login_failed(struct pop3 *p)
{
    /* RFC 3206 4: [AUTH] means the credentials were wrong, not the system. */
    pop3_error(p, "[AUTH] Invalid username or password.");
}

static void
pop3_cmd_pass(struct pop3 *p, const char *args)
{
    if (!pop3_check_tls_done(p))
        return;
    if (!p->user) {
        pop3_error(p, "No USER given.");
        return;
    }
    const struct ms_user *u = ms_scenario_find_user(p->sc, p->user);
    int ok = u && u->password && strcmp(u->password, args) == 0;
    ms_session_auth_event(p->s, p->user, 0, ok);
    free(p->user);
    p->user = NULL;
    if (!ok) {
        pop3_login_failed(p);
        return;
    }
    pop3_open_maildrop(p, u);
}

static void
pop3_cmd_apop(struct pop3 *p, const char *args)
{
    if (!p->stamp[0]) {
        pop3_error(p, "APOP is not enabled.");
        return;
    }
    if (!pop3_check_tls_done(p))
        return;
    const char *sp = strrchr(args, ' ');
    if (!sp || sp == args) {
        pop3_error(p, "Syntax: APOP name digest");
        return;
    }
    char *name = ms_strndup(args, (size_t)(sp - args));
    const struct ms_user *u = ms_scenario_find_user(p->sc, name);
    int ok = u && u->password && ms_sasl_apop_check(p->stamp, u->password, sp + 1);
    ms_session_auth_event(p->s, name, 0, ok);
    free(name);
    if (!ok) {
        pop3_login_failed(p);
        return;
    }
    pop3_open_maildrop(p, u);
}

static void
pop3_cmd_auth(struct pop3 *p, const char *args)
{
    unsigned offered = p->sc->pop3.auth;
    if (!*args) {
        /* Not in RFC 5034, but clients probe with a bare AUTH: list the mechanisms. */
        ms_buf_puts(&p->reply, "+OK\r\n");
        for (unsigned bit = 1; bit <= MS_AUTH_OAUTHBEARER; bit <<= 1)
            if (offered & bit)
                ms_buf_printf(&p->reply, "%s\r\n", ms_sasl_mech_name(bit));
        ms_buf_puts(&p->reply, ".\r\n");
        ms_session_reply(p->s, p->reply.data, p->reply.len, 0);
        ms_buf_clear(&p->reply);
        return;
    }
    char mech_name[32];
    const char *sp = strchr(args, ' ');
    size_t ml = sp ? (size_t)(sp - args) : strlen(args);
    unsigned mech = 0;
    if (ml < sizeof mech_name) {
        memcpy(mech_name, args, ml);
        mech_name[ml] = '\0';
        mech = ms_sasl_mech_from_name(mech_name);
    }
    if (!(mech & offered)) {
        pop3_error(p, "Unsupported authentication mechanism.");
        return;
    }
    if (!pop3_check_tls_done(p))
        return;
    const struct ms_user *u = NULL;
    int rc;
    switch (ms_session_sasl(p->s, mech, sp ? sp + 1 : NULL, "+ ", POP3_AUTH_LINE_MAX, &u, &rc)) {
    case MS_SASL_SUCCESS:
        pop3_open_maildrop(p, u);
        break;
    case MS_SASL_FAILURE:
        /* RFC 5034 6 with RFC 3206 */
        pop3_error(p, "[AUTH] Authentication failed.");
        break;
    case MS_SASL_CANCELED:
        pop3_error(p, "Authentication canceled.");
        break;
    case MS_SASL_MALFORMED:
        pop3_error(p, "Invalid base64 data in continued response.");
        break;
    case MS_SASL_TOO_LONG:
        pop3_error(p, "Authentication response too long.");
        break;
    case MS_SASL_TRANSPORT:
        pop3_transport_end(p, rc);
        break;
    }
}

static void
pop3_cmd_stat(struct pop3 *p, const char *args)
{
    if (!pop3_check_no_args(p, args))
        return;
    size_t n = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < p->n_items; i++) {
        if (!p->items[i].deleted) {
            n++;
            total += p->items[i].blob->len;
        }
    }
    pop3_ok(p, "%zu %llu", n, (unsigned long long)total);
}

/* LIST and UIDL share their shape: one line for an argument, else a listing. */
static void
pop3_listing(struct pop3 *p, const char *args, int uidl)
{
    if (*args) {
        struct pop3_item *it = pop3_item_arg(p, args, NULL);
        if (!it)
            return;
        size_t n = (size_t)(it - p->items) + 1;
        if (uidl)
            pop3_ok(p, "%zu %u.%u", n, p->uidvalidity, it->uid);
        else
            pop3_ok(p, "%zu %zu", n, it->blob->len);
        return;
    }
    size_t count = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < p->n_items; i++) {
        if (!p->items[i].deleted) {
            count++;
            total += p->items[i].blob->len;
        }
    }
    if (uidl)
        ms_buf_puts(&p->reply, "+OK\r\n");
    else
        ms_buf_printf(&p->reply, "+OK %zu messages (%llu octets)\r\n", count,
                      (unsigned long long)total);
    for (size_t i = 0; i < p->n_items; i++) {
        const struct pop3_item *it = &p->items[i];
        if (it->deleted)
            continue;
        if (uidl)
            ms_buf_printf(&p->reply, "%zu %u.%u\r\n", i + 1, p->uidvalidity, it->uid);
        else
            ms_buf_printf(&p->reply, "%zu %zu\r\n", i + 1, it->blob->len);
    }
    ms_buf_puts(&p->reply, ".\r\n");
    ms_session_reply(p->s, p->reply.data, p->reply.len, 0);
    ms_buf_clear(&p->reply);
}

static void
pop3_cmd_list(struct pop3 *p, const char *args)
{
    pop3_listing(p, args, 0);
}

static void
pop3_cmd_uidl(struct pop3 *p, const char *args)
{
    pop3_listing(p, args, 1);
}

static void
pop3_cmd_retr(struct pop3 *p, const char *args)
{
    struct pop3_item *it = pop3_item_arg(p, args, NULL);
    if (!it)
        return;
    ms_buf_printf(&p->reply, "+OK %zu octets\r\n", it->blob->len);
    ms_dot_encode(it->blob->data, it->blob->len, &p->reply);
    pop3_send(p);
}

/* TOP msg n (RFC 1939 7): the header, the blank line, then n lines of the body. */
static void
pop3_cmd_top(struct pop3 *p, const char *args)
{
    const char *rest;
    struct pop3_item *it = pop3_item_arg(p, args, &rest);
    if (!it)
        return;
    uint64_t lines = 0;
    const char *q = rest;
    if (!isdigit((unsigned char)*q)) {
        pop3_error(p, "Syntax: TOP msg lines");
        return;
    }
    /* a line count beyond the message is the whole message: saturate, don't overflow */
    for (; isdigit((unsigned char)*q); q++)
        if (lines < UINT32_MAX)
            lines = lines * 10 + (uint64_t)(*q - '0');
    if (*q) {
        pop3_error(p, "Syntax: TOP msg lines");
        return;
    }
    const char *data = it->blob->data, *end = data + it->blob->len;
    /* the header ends at the first empty line */
    const char *body = data;
    while (body < end) {
        const char *lf = memchr(body, '\n', (size_t)(end - body));
        const char *next = lf ? lf + 1 : end;
        size_t len = (size_t)(next - body);
        body = next;
        if (len == 2 && next[-2] == '\r')
            break;
        if (len == 1)
            break;
    }
    const char *cut = body;
    for (uint64_t i = 0; i < lines && cut < end; i++) {
        const char *lf = memchr(cut, '\n', (size_t)(end - cut));
        cut = lf ? lf + 1 : end;
    }
    ms_buf_puts(&p->reply, "+OK\r\n");
    ms_dot_encode(data, (size_t)(cut - data), &p->reply);
    pop3_send(p);
}

static void
pop3_cmd_dele(struct pop3 *p, const char *args)
{
    struct pop3_item *it = pop3_item_arg(p, args, NULL);
    if (!it)
        return;
    it->deleted = 1;
    pop3_ok(p, "Marked to be deleted.");
}

static void
pop3_cmd_noop(struct pop3 *p, const char *args)
{
    if (pop3_check_no_args(p, args))
        pop3_ok(p, "%s", "");
}

static void
pop3_cmd_rset(struct pop3 *p, const char *args)
{
    if (!pop3_check_no_args(p, args))
        return;
    uint64_t total = 0;
    for (size_t i = 0; i < p->n_items; i++) {
        p->items[i].deleted = 0;
        total += p->items[i].blob->len;
    }
    pop3_ok(p, "%zu messages (%llu octets).", p->n_items, (unsigned long long)total);
}

static void
pop3_cmd_quit(struct pop3 *p, const char *args)
{
    if (p->state == POP3_TRANSACTION) {
        size_t left = pop3_update(p);
        pop3_ok(p, "Logging out, %zu messages left.", left);
    } else {
        pop3_ok(p, "Logging out.");
    }
    p->s->close_reason = MS_CLOSE_QUIT;
    p->done = 1;
}

/* ---- dispatch ---- */

typedef void pop3_handler_fn(struct pop3 *p, const char *args);

enum { POP3_IN_AUTH = 1, POP3_IN_TRANS = 2, POP3_ANY = 3 };

static const struct pop3_command {
    const char *verb;
    pop3_handler_fn *fn;
    unsigned states;
} pop3_commands[] = {
    {"CAPA", pop3_cmd_capa, POP3_ANY},      {"USER", pop3_cmd_user, POP3_IN_AUTH},
    {"PASS", pop3_cmd_pass, POP3_IN_AUTH},  {"APOP", pop3_cmd_apop, POP3_IN_AUTH},
    {"AUTH", pop3_cmd_auth, POP3_IN_AUTH},  {"STLS", pop3_cmd_stls, POP3_IN_AUTH},
    {"STAT", pop3_cmd_stat, POP3_IN_TRANS}, {"LIST", pop3_cmd_list, POP3_IN_TRANS},
    {"UIDL", pop3_cmd_uidl, POP3_IN_TRANS}, {"RETR", pop3_cmd_retr, POP3_IN_TRANS},
    {"TOP", pop3_cmd_top, POP3_IN_TRANS},   {"DELE", pop3_cmd_dele, POP3_IN_TRANS},
    {"NOOP", pop3_cmd_noop, POP3_IN_TRANS}, {"RSET", pop3_cmd_rset, POP3_IN_TRANS},
    {"QUIT", pop3_cmd_quit, POP3_ANY},
};

static void
pop3_dispatch(struct pop3 *p, struct ms_line *line)
{
    if (line->nul || line->len == 0) {
        pop3_error(p, "Unknown command.");
        return;
    }
    char verb[8];
    const char *sp = memchr(line->data, ' ', line->len);
    size_t vl = sp ? (size_t)(sp - line->data) : line->len;
    const struct pop3_command *cmd = NULL;
    p->verb[0] = '\0';
    if (vl < sizeof verb) {
        memcpy(verb, line->data, vl);
        verb[vl] = '\0';
        for (size_t i = 0; i <= vl; i++) /* as rules name it */
            p->verb[i] = (char)toupper((unsigned char)verb[i]);
        for (size_t i = 0; i < MS_ARRAY_LEN(pop3_commands); i++)
            if (ms_strcaseeq(pop3_commands[i].verb, verb))
                cmd = &pop3_commands[i];
    }
    const char *args = sp ? sp + 1 : "";
    unsigned state = p->state == POP3_AUTHORIZATION ? POP3_IN_AUTH : POP3_IN_TRANS;
    if (!cmd || !(cmd->states & state)) {
        /* rules see unknown verbs and verbs of the other state too */
        if (vl > 0 && vl < sizeof verb) {
            for (char *v = verb; *v; v++)
                *v = (char)(*v >= 'a' && *v <= 'z' ? *v - 'a' + 'A' : *v);
            if (ms_session_fault_command(p->s, MS_AT_COMMAND, verb, args, 0) ||
                p->s->fault_closed) {
                p->done = p->s->fault_closed;
                return;
            }
        }
        if (!cmd)
            pop3_error(p, "Unknown command.");
        else
            pop3_error(p, p->state == POP3_AUTHORIZATION ? "Unknown command in AUTHORIZATION state."
                                                         : "Unknown command in TRANSACTION state.");
        memset(&p->s->pending, 0, sizeof p->s->pending);
        return;
    }
    if (ms_session_fault_command(p->s, MS_AT_COMMAND, cmd->verb, args, 0) || p->s->fault_closed) {
        p->done = p->s->fault_closed;
        return;
    }
    cmd->fn(p, args);
    memset(&p->s->pending, 0, sizeof p->s->pending);
    if (p->s->fault_closed)
        p->done = 1;
}

void
ms_pop3_session(struct ms_session *s)
{
    struct pop3 p = {
        .s = s,
        .srv = s->srv,
        .sc = s->faults_sc, /* the scenario the session started with */
        .c = &s->conn,
    };
    const struct ms_scenario *sc = p.sc;
    if (s->srv->n_open > sc->limits.sessions) {
        pop3_fail(&p, "[SYS/TEMP] Too many connections, try again later.");
        s->close_reason = MS_CLOSE_LIMIT;
        goto out;
    }
    if (sc->pop3.apop)
        /* RFC 1939 7: a timestamp unique to this greeting, reproducible from the seed */
        snprintf(p.stamp, sizeof p.stamp, "<%u.%llu@%s>", s->id,
                 (unsigned long long)(s->srv->seed % 1000000007ull), sc->hostname);
    if (!ms_session_fault_command(s, MS_AT_GREETING, NULL, NULL, 0)) {
        if (p.stamp[0])
            pop3_ok(&p, "mocksrv POP3 server ready %s", p.stamp);
        else
            pop3_ok(&p, "mocksrv POP3 server ready");
    }
    if (s->fault_closed)
        goto out;
    ms_expect_greeting(s);
    while (!p.done) {
        struct ms_line line;
        int rc = ms_session_read_command(s, sc->limits.pop3_line_length, p.verb[0] ? p.verb : NULL,
                                         &line);
        if (rc == MOCKSRV_ETOOLONG) {
            ms_session_command_event(s, "", 0);
            pop3_error(&p, "Line too long.");
            continue;
        }
        if (rc != MOCKSRV_OK) {
            pop3_transport_end(&p, rc);
            break;
        }
        ms_session_command_event(s, line.data, line.len);
        if (ms_expect_command(s, line.data, line.len)) {
            /* expect enforce: (SPEC 3.5) refused in-band and not run; the session goes on */
            pop3_fail(&p, "command not expected by the scenario");
            continue;
        }
        pop3_dispatch(&p, &line);
    }
out:
    ms_conn_flush(p.c, ms_deadline_in(MS_CLOSE_GRACE_MS));
    pop3_release(&p);
    free(p.user);
    ms_buf_fini(&p.reply);
}
