/*
 * smtp.c - the SMTP (RFC 5321) and LMTP (RFC 2033) engine, one coroutine per session.
 *
 * Straight-line code: read a command line, find its handler in the command table, let the
 * handler's guard check state and syntax (a guard sends its own error reply and returns 0), then
 * act and reply. Replies are buffered by conn.c and flushed before the next wait for input, so a
 * pipelined batch (RFC 2920) is answered in one write.
 *
 * What it deliberately is not: a relay. Every syntactically valid recipient is accepted; accepted
 * mail goes to the server (spool, message list, events). Only extensions the scenario advertises
 * are accepted (smtp.extensions, smtp.auth), others get the reply an RFC-conforming server gives
 * for an unknown command or parameter.
 *
 * Invariants:
 *   - Every command line gets exactly one reply (LMTP: DATA/BDAT LAST get one per recipient).
 *     A fault's early answer at data (mid-body or mid-chunk) is that reply: the end of data or
 *     the chunk gets no other, and the transaction is reset.
 *   - Message bytes are kept exactly as received after dot-unstuffing (DATA) or as sent (BDAT).
 *   - The transaction (MAIL, RCPT, data) is reset by RSET, EHLO/HELO/LHLO and after each message.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include "dot.h"
#include "expect.h"
#include "sasl.h"
#include "server.h"

#define SMTP_MAX_RCPT 1000
#define SMTP_AUTH_LINE_MAX (12288 + 2) /* RFC 4954 section 4 */

struct smtp_txn {
    int active; /* MAIL accepted */
    char *mail_from;
    char *mail_params;
    char **rcpt_to;
    char **rcpt_params;
    size_t rcpt_count;
    size_t rcpt_cap;
    int smtputf8;
    /* BDAT (RFC 3030) */
    int bdat; /* a BDAT chunk was received in this transaction */
    int bdat_too_big;
    struct ms_buf body;
};

struct smtp {
    struct ms_session *s;
    struct ms_server *srv;
    const struct ms_scenario *sc;
    struct ms_conn *c;
    int lmtp;
    char *helo;    /* argument of the last EHLO/HELO/LHLO, or NULL */
    int ehlo;      /* the session used EHLO/LHLO: extensions apply */
    int done;      /* QUIT, fatal error or limit: leave the loop */
    char verb[16]; /* the last command received ("." after a DATA body), for at: waiting rules */
    struct smtp_txn txn;
    struct ms_buf reply; /* the reply being composed */
};

/* ---- replies ---- */

static int
smtp_has(const struct smtp *sm, unsigned ext)
{
    return (sm->sc->smtp.extensions & ext) != 0;
}

/* Sends the reply composed in sm->reply (one or more CRLF-terminated lines). */
static void
smtp_send(struct smtp *sm)
{
    ms_session_reply(sm->s, sm->reply.data, sm->reply.len, 0);
    ms_buf_clear(&sm->reply);
}

/* Composes one reply line "CODE[-| ]ESC text". The enhanced status code (RFC 2034) is included
 * only when advertised and the client used EHLO. */
static void MS_PRINTF(5, 0)
    smtp_vline(struct smtp *sm, int code, int last, const char *esc, const char *fmt, va_list ap)
{
    ms_buf_printf(&sm->reply, "%03d%c", code, last ? ' ' : '-');
    if (esc && sm->ehlo && smtp_has(sm, MS_EXT_ENHANCEDSTATUSCODES))
        ms_buf_printf(&sm->reply, "%s ", esc);
    ms_buf_vprintf(&sm->reply, fmt, ap);
    ms_buf_puts(&sm->reply, "\r\n");
}

static void MS_PRINTF(4, 5)
    smtp_reply(struct smtp *sm, int code, const char *esc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    smtp_vline(sm, code, 1, esc, fmt, ap);
    va_end(ap);
    smtp_send(sm);
}

/* A reply that counts as a client error (RFC 5321 4.3.2); past limits.bad_commands the server
 * gives up with 421 as Postfix does. */
static void MS_PRINTF(4, 5)
    smtp_error(struct smtp *sm, int code, const char *esc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    smtp_vline(sm, code, 1, esc, fmt, ap);
    va_end(ap);
    smtp_send(sm);
    if (++sm->s->bad_commands >= sm->sc->limits.bad_commands) {
        smtp_reply(sm, 421, "4.7.0", "%s Error: too many errors", sm->sc->hostname);
        sm->s->close_reason = MS_CLOSE_LIMIT;
        sm->done = 1;
    }
}

/* ---- transaction ---- */

static void
smtp_txn_reset(struct smtp *sm)
{
    struct smtp_txn *t = &sm->txn;
    free(t->mail_from);
    free(t->mail_params);
    for (size_t i = 0; i < t->rcpt_count; i++) {
        free(t->rcpt_to[i]);
        free(t->rcpt_params[i]);
    }
    free(t->rcpt_to);
    free(t->rcpt_params);
    ms_buf_fini(&t->body);
    memset(t, 0, sizeof *t);
}

/* Hands the transaction to the server as a message; data is taken over. Returns the message id
 * (> 0), or 0 when it could not be stored. */
static unsigned
smtp_store(struct smtp *sm, struct ms_buf *data)
{
    struct smtp_txn *t = &sm->txn;
    struct ms_msg *m = ms_calloc(1, sizeof *m);
    m->session = sm->s->id;
    m->listener = ms_strdup(sm->s->listener->name);
    m->helo = sm->helo ? ms_strdup(sm->helo) : NULL;
    m->mail_from = t->mail_from;
    m->mail_params = t->mail_params;
    m->rcpt_to = t->rcpt_to;
    m->rcpt_params = t->rcpt_params;
    m->rcpt_count = t->rcpt_count;
    t->mail_from = t->mail_params = NULL;
    t->rcpt_to = t->rcpt_params = NULL;
    t->rcpt_count = t->rcpt_cap = 0;
    m->auth_user = sm->s->auth_user ? ms_strdup(sm->s->auth_user) : NULL;
    m->tls = sm->s->tls;
    m->tls_client = sm->s->tls_client ? ms_strdup(sm->s->tls_client) : NULL;
    m->received_ms = ms_wall_ms();
    /* stored at its exact size: data grew by doubling while it was read */
    m->blob = ms_blob_from_buf(data);
    struct mocksrv_error err;
    if (ms_server_add_message(sm->srv, m, &err) != MOCKSRV_OK)
        return 0;
    return sm->srv->next_msg_id;
}

/* The final reply(ies) for a message: one for SMTP, one per recipient for LMTP (RFC 2033 4.2). */
static void
smtp_finish_message(struct smtp *sm, struct ms_buf *data, int too_big)
{
    size_t nrcpt = sm->txn.rcpt_count;
    char **rcpts = NULL;
    if (sm->lmtp) {
        rcpts = ms_calloc(nrcpt, sizeof *rcpts);
        for (size_t i = 0; i < nrcpt; i++)
            rcpts[i] = ms_strdup(sm->txn.rcpt_to[i]);
    }
    unsigned id = 0;
    if (!too_big)
        id = smtp_store(sm, data);
    for (size_t i = 0; i < (sm->lmtp ? nrcpt : 1); i++) {
        const char *who = sm->lmtp ? rcpts[i] : NULL;
        if (too_big)
            smtp_reply(sm, 552, "5.3.4", "%s%s%sMessage size exceeds fixed maximum message size",
                       who ? "<" : "", who ? who : "", who ? "> " : "");
        else if (id == 0)
            smtp_reply(sm, 451, "4.3.0", "%s%s%sError: queue file write error", who ? "<" : "",
                       who ? who : "", who ? "> " : "");
        else
            smtp_reply(sm, 250, "2.0.0", "%s%s%sOk: queued as %06u", who ? "<" : "", who ? who : "",
                       who ? "> " : "", id);
    }
    if (rcpts) {
        for (size_t i = 0; i < nrcpt; i++)
            free(rcpts[i]);
        free(rcpts);
    }
    smtp_txn_reset(sm);
}

/* Client text echoed in a reply: printable ASCII only, at most 64 bytes, so a reply line never
 * carries a bare CR, 8-bit bytes, or more than RFC 5321 4.5.3.1.5's 512 octets. Returns buf. */
static const char *
smtp_echo(const char *text, char *buf, size_t size)
{
    size_t n = 0;
    for (; *text && n + 1 < size && n < 64; text++)
        buf[n++] = (*text >= 0x20 && *text < 0x7f) ? *text : '?';
    if (*text && n >= 3)
        memcpy(buf + n - 3, "...", 3);
    buf[n] = '\0';
    return buf;
}

/* ---- argument parsing ---- */

/* Parses "FROM:<path> params" (prefix "FROM:" or "TO:"). Lenient as Postfix is by default:
 * a space after the colon and a path without angle brackets are accepted. Returns 0 on success
 * with *path_r and *params_r allocated, -1 on a syntax error. */
static int
smtp_parse_path(const char *arg, const char *prefix, char **path_r, char **params_r)
{
    size_t pl = strlen(prefix);
    if (!ms_strncaseeq(arg, prefix, pl))
        return -1;
    const char *p = arg + pl;
    while (*p == ' ')
        p++;
    const char *start, *end;
    if (*p == '<') {
        start = ++p;
        int quoted = 0;
        while (*p && (quoted || *p != '>')) {
            if (*p == '"')
                quoted = !quoted;
            else if (*p == '\\' && p[1])
                p++;
            p++;
        }
        if (*p != '>')
            return -1;
        end = p++;
        if (*p && *p != ' ')
            return -1;
    } else {
        start = p;
        while (*p && *p != ' ')
            p++;
        end = p;
        if (end == start)
            return -1;
    }
    /* no controls; a space only inside a quoted local part ("a b"@x) */
    int quoted = 0;
    for (const char *q = start; q < end; q++) {
        if (*q == '"')
            quoted = !quoted;
        if ((unsigned char)*q < 0x20 || *q == 0x7f || (*q == ' ' && !quoted))
            return -1;
    }
    while (*p == ' ')
        p++;
    *path_r = ms_strndup(start, (size_t)(end - start));
    *params_r = ms_strdup(p);
    return 0;
}

/* Iterates over "KEY[=VALUE]" parameters separated by spaces. */
struct smtp_param {
    char key[32];
    const char *value; /* NULL when absent; points into the copy */
};

/* Splits params (modified in place) into at most max entries. Returns the count or -1. */
static int
smtp_split_params(char *params, struct smtp_param *out, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(params, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (n == max)
            return -1;
        char *eq = strchr(tok, '=');
        size_t kl = eq ? (size_t)(eq - tok) : strlen(tok);
        if (kl == 0 || kl >= sizeof out[n].key)
            return -1;
        memcpy(out[n].key, tok, kl);
        out[n].key[kl] = '\0';
        out[n].value = eq ? eq + 1 : NULL;
        n++;
    }
    return n;
}

static int
smtp_parse_uint(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s) || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

static size_t
smtp_max_size(const struct smtp *sm)
{
    return MS_MIN(sm->sc->smtp.max_size, sm->sc->limits.message_size);
}

/* ---- guards: each validates, sends its own error reply, and returns 0 to stop ---- */

static int
smtp_check_helo_done(struct smtp *sm)
{
    if (sm->helo)
        return 1;
    smtp_error(sm, 503, "5.5.1", "Error: send %s first", sm->lmtp ? "LHLO" : "HELO/EHLO");
    return 0;
}

/* tls: required (SPEC 3.1): MAIL and AUTH wait for STARTTLS (RFC 3207 4). */
static int
smtp_check_tls_done(struct smtp *sm)
{
    if (!ms_session_needs_tls(sm->s))
        return 1;
    smtp_error(sm, 530, "5.7.0", "Must issue a STARTTLS command first");
    return 0;
}

static int
smtp_check_no_args(struct smtp *sm, const char *verb, const char *args)
{
    if (!*args)
        return 1;
    smtp_error(sm, 501, "5.5.4", "Syntax: %s", verb);
    return 0;
}

/* One parameter of MAIL or RCPT: 1 accepted, 0 refused (the reply is sent), -1 unknown. */
typedef int smtp_param_fn(struct smtp *sm, const char *key, const char *value);

/* MAIL parameters (RFC 1870, 6152, 6531, 3461, 4954 section 5). */
static int
smtp_mail_param(struct smtp *sm, const char *k, const char *v)
{
    if (ms_strcaseeq(k, "SIZE") && smtp_has(sm, MS_EXT_SIZE)) {
        uint64_t size;
        if (smtp_parse_uint(v, &size) != 0) {
            smtp_error(sm, 501, "5.5.4", "Bad message size syntax");
            return 0;
        }
        if (size > smtp_max_size(sm)) {
            smtp_reply(sm, 552, "5.3.4", "Message size exceeds fixed limit");
            return 0;
        }
        return 1;
    }
    if (ms_strcaseeq(k, "BODY") && smtp_has(sm, MS_EXT_8BITMIME)) {
        if (v && (ms_strcaseeq(v, "7BIT") || ms_strcaseeq(v, "8BITMIME")))
            return 1;
        smtp_error(sm, 501, "5.5.4", "Unsupported BODY parameter value");
        return 0;
    }
    if (ms_strcaseeq(k, "SMTPUTF8") && smtp_has(sm, MS_EXT_SMTPUTF8) && !v) {
        sm->txn.smtputf8 = 1;
        return 1;
    }
    if (ms_strcaseeq(k, "RET") && smtp_has(sm, MS_EXT_DSN)) {
        if (v && (ms_strcaseeq(v, "FULL") || ms_strcaseeq(v, "HDRS")))
            return 1;
        smtp_error(sm, 501, "5.5.4", "Bad RET parameter syntax");
        return 0;
    }
    if (ms_strcaseeq(k, "ENVID") && smtp_has(sm, MS_EXT_DSN) && v && *v)
        return 1; /* kept verbatim in mail_params */
    if (ms_strcaseeq(k, "AUTH") && sm->sc->smtp.auth && v && *v)
        return 1; /* RFC 4954 section 5: accepted and kept; the identity is not trusted */
    return -1;
}

/* RCPT parameters (RFC 3461 4.1, 4.2). */
static int
smtp_rcpt_param(struct smtp *sm, const char *k, const char *v)
{
    if (ms_strcaseeq(k, "NOTIFY") && smtp_has(sm, MS_EXT_DSN) && v && *v) {
        /* NEVER, or a list of SUCCESS, FAILURE, DELAY */
        char *list = ms_strdup(v), *save = NULL;
        int bad = 0, never = 0, count = 0;
        for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            count++;
            if (ms_strcaseeq(t, "NEVER"))
                never = 1;
            else if (!ms_strcaseeq(t, "SUCCESS") && !ms_strcaseeq(t, "FAILURE") &&
                     !ms_strcaseeq(t, "DELAY"))
                bad = 1;
        }
        free(list);
        if (!bad && !(never && count > 1))
            return 1;
        smtp_error(sm, 501, "5.5.4", "Bad NOTIFY parameter syntax");
        return 0;
    }
    if (ms_strcaseeq(k, "ORCPT") && smtp_has(sm, MS_EXT_DSN) && v && strchr(v, ';'))
        return 1; /* kept verbatim */
    return -1;
}

/* Checks every "KEY[=VALUE]" of params with fn; an unknown one gets 555 (RFC 5321 4.1.1.11). */
static int
smtp_check_params(struct smtp *sm, const char *params, const char *syntax, smtp_param_fn *fn)
{
    char *copy = ms_strdup(params);
    struct smtp_param p[16];
    int n = smtp_split_params(copy, p, (int)MS_ARRAY_LEN(p));
    int ok = n >= 0;
    if (!ok)
        smtp_error(sm, 501, "5.5.4", "Syntax: %s", syntax);
    for (int i = 0; ok && i < n; i++) {
        int r = fn(sm, p[i].key, p[i].value);
        if (r < 0) {
            char echo[80];
            smtp_error(sm, 555, "5.5.4", "Unsupported option: %s",
                       smtp_echo(p[i].key, echo, sizeof echo));
        }
        ok = r > 0;
    }
    free(copy);
    return ok;
}

/* ---- commands ---- */

static void
smtp_cmd_ehlo(struct smtp *sm, const char *verb, const char *args)
{
    int extended = !ms_strcaseeq(verb, "HELO");
    if (!*args) {
        smtp_error(sm, 501, "5.5.4", "Syntax: %s hostname", verb);
        return;
    }
    smtp_txn_reset(sm);
    free(sm->helo);
    sm->helo = ms_strdup(args);
    sm->ehlo = extended;
    if (!extended) {
        smtp_reply(sm, 250, NULL, "%s", sm->sc->hostname);
        return;
    }
    /* RFC 5321 4.1.1.1: the greeting line, then one keyword per line. */
    ms_buf_printf(&sm->reply, "250-%s\r\n", sm->sc->hostname);
    const struct ms_smtp_conf *conf = &sm->sc->smtp;
    if (smtp_has(sm, MS_EXT_PIPELINING))
        ms_buf_puts(&sm->reply, "250-PIPELINING\r\n");
    if (smtp_has(sm, MS_EXT_SIZE))
        ms_buf_printf(&sm->reply, "250-SIZE %zu\r\n", smtp_max_size(sm));
    if (smtp_has(sm, MS_EXT_VRFY))
        ms_buf_puts(&sm->reply, "250-VRFY\r\n");
    if (smtp_has(sm, MS_EXT_HELP))
        ms_buf_puts(&sm->reply, "250-HELP\r\n");
    if (ms_session_can_starttls(sm->s))
        ms_buf_puts(&sm->reply, "250-STARTTLS\r\n");
    /* with tls: required, AUTH is offered only once the session is encrypted */
    if (conf->auth && !ms_session_needs_tls(sm->s)) {
        ms_buf_puts(&sm->reply, "250-AUTH");
        for (unsigned bit = 1; bit <= MS_AUTH_OAUTHBEARER; bit <<= 1)
            if (conf->auth & bit)
                ms_buf_printf(&sm->reply, " %s", ms_sasl_mech_name(bit));
        ms_buf_puts(&sm->reply, "\r\n");
    }
    if (smtp_has(sm, MS_EXT_ENHANCEDSTATUSCODES))
        ms_buf_puts(&sm->reply, "250-ENHANCEDSTATUSCODES\r\n");
    if (smtp_has(sm, MS_EXT_8BITMIME))
        ms_buf_puts(&sm->reply, "250-8BITMIME\r\n");
    if (smtp_has(sm, MS_EXT_DSN))
        ms_buf_puts(&sm->reply, "250-DSN\r\n");
    if (smtp_has(sm, MS_EXT_SMTPUTF8))
        ms_buf_puts(&sm->reply, "250-SMTPUTF8\r\n");
    if (smtp_has(sm, MS_EXT_CHUNKING))
        ms_buf_puts(&sm->reply, "250-CHUNKING\r\n");
    /* hide (a fault): drop keywords from the list, as a STARTTLS-stripping middlebox does */
    if (sm->s->pending.n_hide) {
        struct ms_buf kept = {0};
        const char *p = sm->reply.data, *end = p + sm->reply.len;
        for (int first = 1; p < end; first = 0) {
            const char *eol = memchr(p, '\n', (size_t)(end - p));
            size_t len = (size_t)(eol - p) + 1, kw = strcspn(p + 4, " \r");
            if (first || !ms_session_hidden(sm->s, p + 4, kw))
                ms_buf_append(&kept, p, len);
            p += len;
        }
        ms_buf_clear(&sm->reply);
        ms_buf_append(&sm->reply, kept.data, kept.len);
        ms_buf_fini(&kept);
    }
    /* The last line must use "250 ": rewrite the final dash. */
    size_t last = sm->reply.len - 2;
    while (last > 0 && sm->reply.data[last - 1] != '\n')
        last--;
    sm->reply.data[last + 3] = ' ';
    smtp_send(sm);
}

static void
smtp_cmd_mail(struct smtp *sm, const char *verb, const char *args)
{
    if (!smtp_check_helo_done(sm))
        return;
    if (sm->txn.active) {
        smtp_error(sm, 503, "5.5.1", "Error: nested MAIL command");
        return;
    }
    if (!smtp_check_tls_done(sm))
        return;
    if (sm->sc->smtp.require_auth && !sm->s->auth_user) {
        smtp_error(sm, 530, "5.7.0", "Authentication required");
        return;
    }
    char *path, *params;
    if (smtp_parse_path(args, "FROM:", &path, &params) != 0) {
        smtp_error(sm, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
        return;
    }
    smtp_txn_reset(sm);
    if (!smtp_check_params(sm, params, "MAIL FROM:<address> [parameters]", smtp_mail_param)) {
        free(path);
        free(params);
        smtp_txn_reset(sm);
        return;
    }
    if (!ms_is_ascii(path) && !sm->txn.smtputf8) {
        /* RFC 6531 3.4: an internationalized address needs the SMTPUTF8 parameter. */
        smtp_error(sm, 553, "5.6.7", "Must declare SMTPUTF8 to send UTF8 addresses");
        free(path);
        free(params);
        smtp_txn_reset(sm);
        return;
    }
    sm->txn.active = 1;
    sm->txn.mail_from = path;
    sm->txn.mail_params = params;
    smtp_reply(sm, 250, "2.1.0", "Ok");
}

static void
smtp_cmd_rcpt(struct smtp *sm, const char *verb, const char *args)
{
    struct smtp_txn *t = &sm->txn;
    if (!t->active) {
        smtp_error(sm, 503, "5.5.1", "Error: need MAIL command");
        return;
    }
    if (t->bdat) {
        smtp_error(sm, 503, "5.5.1", "Error: BDAT in progress");
        return;
    }
    char *path = NULL, *params = NULL;
    if (smtp_parse_path(args, "TO:", &path, &params) != 0 || !*path) {
        smtp_error(sm, 501, "5.5.4", "Syntax: RCPT TO:<address>");
        goto fail;
    }
    if (!smtp_check_params(sm, params, "RCPT TO:<address> [parameters]", smtp_rcpt_param))
        goto fail;
    if (!ms_is_ascii(path) && !t->smtputf8) {
        smtp_error(sm, 553, "5.6.7", "Must declare SMTPUTF8 to send UTF8 addresses");
        goto fail;
    }
    if (t->rcpt_count >= SMTP_MAX_RCPT) {
        smtp_reply(sm, 452, "4.5.3", "Error: too many recipients");
        goto fail;
    }
    if (t->rcpt_count == t->rcpt_cap) {
        size_t cap = t->rcpt_cap;
        ms_grow((void **)&t->rcpt_to, &cap, t->rcpt_count + 1, sizeof *t->rcpt_to);
        ms_grow((void **)&t->rcpt_params, &t->rcpt_cap, t->rcpt_count + 1, sizeof *t->rcpt_params);
    }
    t->rcpt_to[t->rcpt_count] = path;
    t->rcpt_params[t->rcpt_count] = params;
    t->rcpt_count++;
    smtp_reply(sm, 250, "2.1.5", "Ok");
    return;
fail:
    free(path);
    free(params);
}

static int
smtp_check_data_ready(struct smtp *sm)
{
    if (!sm->txn.active) {
        smtp_error(sm, 503, "5.5.1", "Error: need MAIL command");
        return 0;
    }
    if (sm->txn.rcpt_count == 0) {
        smtp_error(sm, 503, "5.5.1", "Error: need RCPT command");
        return 0;
    }
    return 1;
}

/* Ends the session on a transport error while reading a payload. */
static void
smtp_transport_end(struct smtp *sm, int rc)
{
    if (sm->s->fault_closed) {
        /* a fault's close ended the connection (close_reason says so already) */
        sm->done = 1;
        return;
    }
    if (rc == MOCKSRV_ETIMEDOUT) {
        smtp_reply(sm, 421, "4.4.2", "%s Error: timeout exceeded", sm->sc->hostname);
        sm->s->close_reason = MS_CLOSE_TIMEOUT;
    } else if (rc == MOCKSRV_ECANCELED && sm->s->closing) {
        smtp_reply(sm, 421, "4.3.2", "%s Service shutting down", sm->sc->hostname);
        sm->s->close_reason = MS_CLOSE_SHUTDOWN;
    } else if (rc == MOCKSRV_ECLOSED) {
        sm->s->close_reason = MS_CLOSE_PEER;
    } else {
        sm->s->close_reason = MS_CLOSE_ERROR;
    }
    sm->done = 1;
}

static void
smtp_cmd_data(struct smtp *sm, const char *verb, const char *args)
{
    if (!smtp_check_no_args(sm, verb, args) || !smtp_check_data_ready(sm))
        return;
    if (sm->txn.bdat) {
        smtp_error(sm, 503, "5.5.1", "Error: BDAT in progress");
        return;
    }
    smtp_reply(sm, 354, NULL, "End data with <CR><LF>.<CR><LF>");
    struct ms_dot dot;
    ms_dot_init(&dot);
    struct ms_buf data = {0};
    size_t max = smtp_max_size(sm);
    int64_t deadline = ms_session_deadline(sm->s);
    int done = 0;
    int data_faults = ms_fault_has_at(sm->s, MS_AT_DATA);
    /* An early answer (a reply or raw of an at: data rule, smtp-sink -A) goes out at once,
     * mid-body. The message is then refused: the rest of the body is read and dropped (unless
     * the rule closes or stops reading), the end of data gets no second reply, and the
     * transaction is reset as by RSET. Later data rules of this body are not checked. */
    int early = 0;
    if (data_faults) {
        /* the payload starts: rules without `received` fire here, once per payload, after
         * the 354 left and before the first byte is read (so read shaping covers it all) */
        ms_fault_period_start(sm->s, MS_AT_DATA);
        ms_conn_flush(sm->c, deadline);
        if (ms_session_fault_unsolicited(sm->s, MS_AT_DATA, "DATA", 0, &early)) {
            ms_buf_fini(&data);
            smtp_txn_reset(sm);
            sm->done = 1;
            return;
        }
    }
    while (!done) {
        int rc = ms_conn_fill(sm->c, deadline);
        if (rc != MOCKSRV_OK) {
            ms_buf_fini(&data);
            smtp_transport_end(sm, rc);
            return;
        }
        size_t avail;
        const char *p = ms_conn_peek(sm->c, &avail);
        size_t used = ms_dot_decode(&dot, p, avail, early ? NULL : &data, max, &done);
        ms_conn_consume(sm->c, used);
        deadline = ms_session_deadline(sm->s);
        if (data_faults && !early && dot.total > 0 &&
            ms_session_fault_unsolicited(sm->s, MS_AT_DATA, "DATA", dot.total, &early)) {
            /* a fault ended the connection mid-DATA (FAULTS.md example E) */
            ms_buf_fini(&data);
            smtp_txn_reset(sm);
            sm->done = 1;
            return;
        }
        if (early)
            ms_buf_fini(&data);
    }
    ms_conn_payload_end(sm->c); /* read shaping of this payload ends */
    ms_session_command_event(sm->s, ".", 1);
    memcpy(sm->verb, ".", 2);
    if (early) {
        smtp_txn_reset(sm);
        ms_buf_fini(&data);
        return;
    }
    if (ms_session_fault_command(sm->s, MS_AT_COMMAND, ".", "", 0)) {
        /* a fault answered the end of DATA: the message was not accepted */
        smtp_txn_reset(sm);
    } else {
        smtp_finish_message(sm, &data, dot.total > max);
    }
    if (sm->s->fault_closed)
        sm->done = 1;
    ms_buf_fini(&data);
}

/* Reads a BDAT chunk of size bytes into out (NULL: dropped) under the chunk's at: data rules
 * (FAULTS.md 5: at: data + command: BDAT is its payload): rules without `received` at its
 * start, thresholds as its bytes arrive. *early_r: a reply or raw answered the chunk early; the
 * rest is then read and dropped. Returns MOCKSRV_OK or a transport error (MOCKSRV_ECLOSED with
 * s->fault_closed when a rule closed the connection). */
static int
smtp_read_chunk(struct smtp *sm, uint64_t size, struct ms_buf *out, int *early_r)
{
    *early_r = 0;
    if (!ms_fault_has_at(sm->s, MS_AT_DATA))
        return ms_conn_read_n(sm->c, (size_t)size, out, ms_session_deadline(sm->s));
    ms_fault_period_start(sm->s, MS_AT_DATA);
    if (ms_session_fault_unsolicited(sm->s, MS_AT_DATA, "BDAT", 0, early_r))
        return MOCKSRV_ECLOSED;
    uint64_t got = 0;
    while (got < size) {
        int rc = ms_conn_fill(sm->c, ms_session_deadline(sm->s));
        if (rc != MOCKSRV_OK)
            return rc;
        size_t avail;
        const char *p = ms_conn_peek(sm->c, &avail);
        size_t take = avail < size - got ? avail : (size_t)(size - got);
        if (out && !*early_r)
            ms_buf_append(out, p, take);
        ms_conn_consume(sm->c, take);
        got += take;
        if (!*early_r && ms_session_fault_unsolicited(sm->s, MS_AT_DATA, "BDAT", got, early_r))
            return MOCKSRV_ECLOSED;
    }
    ms_conn_payload_end(sm->c); /* read shaping of this payload ends */
    return MOCKSRV_OK;
}

static void
smtp_cmd_bdat(struct smtp *sm, const char *verb, const char *args)
{
    /* RFC 3030 2: BDAT chunk-size [LAST] */
    char size_text[32] = "";
    const char *sp = strchr(args, ' ');
    size_t sl = sp ? (size_t)(sp - args) : strlen(args);
    int last = 0;
    if (sp) {
        const char *rest = sp + 1;
        if (!ms_strcaseeq(rest, "LAST")) {
            smtp_error(sm, 501, "5.5.4", "Syntax: BDAT size [LAST]");
            return;
        }
        last = 1;
    }
    uint64_t size;
    if (sl == 0 || sl >= sizeof size_text) {
        smtp_error(sm, 501, "5.5.4", "Syntax: BDAT size [LAST]");
        return;
    }
    memcpy(size_text, args, sl);
    if (smtp_parse_uint(size_text, &size) != 0) {
        smtp_error(sm, 501, "5.5.4", "Syntax: BDAT size [LAST]");
        return;
    }
    /* The chunk follows the command whatever we answer: read it to stay in step. */
    struct smtp_txn *t = &sm->txn;
    int ready = t->active && t->rcpt_count > 0;
    size_t max = smtp_max_size(sm);
    /* body.len <= max always holds, so this cannot wrap whatever size the client declares */
    int keep = ready && !t->bdat_too_big && size <= max - t->body.len;
    if (ready && !keep)
        t->bdat_too_big = 1;
    int early;
    int rc = smtp_read_chunk(sm, size, keep ? &t->body : NULL, &early);
    if (rc != MOCKSRV_OK) {
        smtp_transport_end(sm, rc);
        return;
    }
    if (early) {
        /* a fault answered this chunk already (as for DATA): no reply of its own, and the
         * transaction is over, so the chunks that follow get 503 */
        smtp_txn_reset(sm);
        return;
    }
    if (!ready) {
        smtp_check_data_ready(sm);
        return;
    }
    t->bdat = 1;
    if (!last) {
        smtp_reply(sm, 250, "2.0.0", "%llu bytes received", (unsigned long long)size);
        return;
    }
    struct ms_buf body = t->body;
    memset(&t->body, 0, sizeof t->body);
    smtp_finish_message(sm, &body, t->bdat_too_big);
    ms_buf_fini(&body);
}

static void
smtp_cmd_rset(struct smtp *sm, const char *verb, const char *args)
{
    if (!smtp_check_no_args(sm, verb, args))
        return;
    smtp_txn_reset(sm);
    smtp_reply(sm, 250, "2.0.0", "Ok");
}

static void
smtp_cmd_noop(struct smtp *sm, const char *verb, const char *args)
{
    /* RFC 5321 4.1.1.9: a parameter string is allowed and ignored. */
    smtp_reply(sm, 250, "2.0.0", "Ok");
}

static void
smtp_cmd_quit(struct smtp *sm, const char *verb, const char *args)
{
    smtp_reply(sm, 221, "2.0.0", "Bye");
    sm->s->close_reason = MS_CLOSE_QUIT;
    sm->done = 1;
}

static void
smtp_cmd_vrfy(struct smtp *sm, const char *verb, const char *args)
{
    if (!smtp_has(sm, MS_EXT_VRFY)) {
        smtp_error(sm, 502, "5.5.1", "VRFY command is disabled");
        return;
    }
    if (!*args) {
        smtp_error(sm, 501, "5.5.4", "Syntax: VRFY address");
        return;
    }
    char *name = ms_strdup(args[0] == '<' ? args + 1 : args);
    size_t nl = strlen(name);
    if (nl && name[nl - 1] == '>')
        name[nl - 1] = '\0';
    const struct ms_user *u = ms_scenario_find_user(sm->sc, name);
    if (u)
        smtp_reply(sm, 250, "2.1.5", "%s <%s>", u->name,
                   u->n_addresses ? u->addresses[0] : u->name);
    else {
        char echo[80];
        smtp_reply(sm, 550, "5.1.1", "<%s>: Recipient address rejected: User unknown",
                   smtp_echo(name, echo, sizeof echo));
    }
    free(name);
}

static void
smtp_cmd_help(struct smtp *sm, const char *verb, const char *args)
{
    if (!smtp_has(sm, MS_EXT_HELP)) {
        smtp_error(sm, 502, "5.5.1", "HELP command is disabled");
        return;
    }
    smtp_reply(sm, 214, "2.0.0", "Commands: %s MAIL RCPT DATA%s RSET NOOP QUIT VRFY HELP%s%s",
               sm->lmtp ? "LHLO" : "EHLO HELO", smtp_has(sm, MS_EXT_CHUNKING) ? " BDAT" : "",
               sm->sc->smtp.auth ? " AUTH" : "", ms_session_can_starttls(sm->s) ? " STARTTLS" : "");
}

static void
smtp_cmd_auth(struct smtp *sm, const char *verb, const char *args)
{
    unsigned offered = sm->sc->smtp.auth;
    if (offered && sm->ehlo && !smtp_check_tls_done(sm))
        return;
    if (!offered || !sm->ehlo) {
        smtp_error(sm, 503, "5.5.1", "Error: authentication not enabled");
        return;
    }
    if (sm->s->auth_user) {
        smtp_error(sm, 503, "5.5.1", "Error: already authenticated");
        return;
    }
    if (sm->txn.active) {
        smtp_error(sm, 503, "5.5.1", "Error: MAIL transaction in progress");
        return;
    }
    char mech_name[32];
    const char *sp = strchr(args, ' ');
    size_t ml = sp ? (size_t)(sp - args) : strlen(args);
    if (ml == 0 || ml >= sizeof mech_name) {
        smtp_error(sm, 501, "5.5.4", "Syntax: AUTH mechanism");
        return;
    }
    memcpy(mech_name, args, ml);
    mech_name[ml] = '\0';
    unsigned mech = ms_sasl_mech_from_name(mech_name);
    if (!(mech & offered)) {
        smtp_error(sm, 504, "5.5.4", "Unsupported authentication mechanism");
        return;
    }
    const char *initial = sp ? sp + 1 : NULL;
    const struct ms_user *u = NULL;
    int rc;
    switch (ms_session_sasl(sm->s, mech, initial, "334 ", SMTP_AUTH_LINE_MAX, &u, &rc)) {
    case MS_SASL_SUCCESS:
        sm->s->auth_user = ms_strdup(u->name);
        smtp_reply(sm, 235, "2.7.0", "Authentication successful");
        break;
    case MS_SASL_FAILURE:
        smtp_error(sm, 535, "5.7.8", "Error: authentication failed");
        break;
    case MS_SASL_CANCELED:
        /* RFC 4954 section 4 */
        smtp_error(sm, 501, "5.7.0", "Authentication aborted");
        break;
    case MS_SASL_MALFORMED:
        smtp_error(sm, 501, "5.5.2", "Cannot decode response");
        break;
    case MS_SASL_TOO_LONG:
        smtp_error(sm, 500, "5.5.6", "Authentication exchange line is too long");
        break;
    case MS_SASL_TRANSPORT:
        smtp_transport_end(sm, rc);
        break;
    }
}

/* RFC 3207: the go-ahead, the handshake, then a fresh start: the client must EHLO again and
 * everything learnt before (EHLO argument, AUTH, a transaction) is forgotten (section 4.2). */
static void
smtp_cmd_starttls(struct smtp *sm, const char *verb, const char *args)
{
    if (sm->s->tls) {
        smtp_error(sm, 503, "5.5.1", "Error: TLS already active");
        return;
    }
    if (!ms_session_can_starttls(sm->s)) {
        smtp_error(sm, 500, "5.5.2", "Error: command not recognized");
        return;
    }
    if (!smtp_check_no_args(sm, verb, args))
        return;
    /* a tls: fault (FAULTS.md 2): refused, a go-ahead without TLS, or a broken handshake */
    struct ms_fault_actions tf;
    enum ms_fault_tls ft = ms_session_tls_take(sm->s, &tf);
    if (ft == MS_FTLS_REFUSE) {
        smtp_reply(sm, 454, "4.7.0", "TLS not available"); /* RFC 3207 4 */
        return;
    }
    smtp_reply(sm, 220, "2.0.0", "Ready to start TLS");
    if (ft == MS_FTLS_PLAINTEXT)
        return; /* the next bytes are read as commands, the session as it was */
    if (ms_session_starttls_fault(sm->s, &tf) != MOCKSRV_OK) {
        sm->done = 1;
        return;
    }
    smtp_txn_reset(sm);
    free(sm->helo);
    sm->helo = NULL;
    sm->ehlo = 0;
    free(sm->s->auth_user);
    sm->s->auth_user = NULL;
}

/* ---- dispatch ---- */

typedef void smtp_handler_fn(struct smtp *sm, const char *verb, const char *args);

enum {
    SMTP_SMTP_ONLY = 1 << 0, /* not in LMTP (HELO/EHLO) */
    SMTP_LMTP_ONLY = 1 << 1, /* LHLO */
};

struct smtp_command {
    const char *verb;
    smtp_handler_fn *fn;
    unsigned flags;
    unsigned ext; /* the extension that must be advertised (0: always) */
};

static const struct smtp_command smtp_commands[] = {
    {"EHLO", smtp_cmd_ehlo, SMTP_SMTP_ONLY, 0},
    {"HELO", smtp_cmd_ehlo, SMTP_SMTP_ONLY, 0},
    {"LHLO", smtp_cmd_ehlo, SMTP_LMTP_ONLY, 0},
    {"MAIL", smtp_cmd_mail, 0, 0},
    {"RCPT", smtp_cmd_rcpt, 0, 0},
    {"DATA", smtp_cmd_data, 0, 0},
    {"BDAT", smtp_cmd_bdat, 0, MS_EXT_CHUNKING},
    {"RSET", smtp_cmd_rset, 0, 0},
    {"NOOP", smtp_cmd_noop, 0, 0},
    {"QUIT", smtp_cmd_quit, 0, 0},
    {"VRFY", smtp_cmd_vrfy, 0, 0},
    {"HELP", smtp_cmd_help, 0, 0},
    {"AUTH", smtp_cmd_auth, 0, 0},
    {"STARTTLS", smtp_cmd_starttls, 0, 0},
};

static const struct smtp_command *
smtp_find(const struct smtp *sm, const char *verb)
{
    for (size_t i = 0; i < MS_ARRAY_LEN(smtp_commands); i++) {
        const struct smtp_command *cmd = &smtp_commands[i];
        if (!ms_strcaseeq(cmd->verb, verb))
            continue;
        if ((cmd->flags & SMTP_SMTP_ONLY) && sm->lmtp)
            return NULL;
        if ((cmd->flags & SMTP_LMTP_ONLY) && !sm->lmtp)
            return NULL;
        if (cmd->ext && !smtp_has(sm, cmd->ext))
            return NULL;
        return cmd;
    }
    return NULL;
}

static void
smtp_dispatch(struct smtp *sm, struct ms_line *line)
{
    if (line->nul || line->len == 0) {
        smtp_error(sm, 500, "5.5.2", "Error: bad syntax");
        return;
    }
    char verb[16];
    const char *sp = memchr(line->data, ' ', line->len);
    size_t vl = sp ? (size_t)(sp - line->data) : line->len;
    const struct smtp_command *cmd = NULL;
    sm->verb[0] = '\0';
    if (vl < sizeof verb) {
        memcpy(verb, line->data, vl);
        verb[vl] = '\0';
        cmd = smtp_find(sm, verb);
        /* as rules name it: the table's spelling, else the verb upper-cased */
        for (size_t i = 0; i <= vl; i++)
            sm->verb[i] = (char)toupper((unsigned char)verb[i]);
    }
    const char *args = sp ? sp + 1 : "";
    if (!cmd) {
        /* rules see unknown verbs too (a reply for a command mocksrv does not know) */
        if (vl > 0 && vl < sizeof verb) {
            for (char *v = verb; *v; v++)
                *v = (char)toupper((unsigned char)*v);
            if (ms_session_fault_command(sm->s, MS_AT_COMMAND, verb, args, 0) ||
                sm->s->fault_closed) {
                sm->done = sm->s->fault_closed;
                return;
            }
        }
        smtp_error(sm, 500, "5.5.2", "Error: command not recognized");
        memset(&sm->s->pending, 0, sizeof sm->s->pending);
        return;
    }
    if (ms_session_fault_command(sm->s, MS_AT_COMMAND, cmd->verb, args, 0) || sm->s->fault_closed) {
        sm->done = sm->s->fault_closed;
        return;
    }
    cmd->fn(sm, cmd->verb, args);
    memset(&sm->s->pending, 0, sizeof sm->s->pending); /* a command that sent no reply */
    if (sm->s->fault_closed)
        sm->done = 1;
}

void
ms_smtp_session(struct ms_session *s)
{
    struct smtp sm = {
        .s = s,
        .srv = s->srv,
        .sc = s->faults_sc, /* the scenario the session started with */
        .c = &s->conn,
        .lmtp = s->listener->protocol == MS_PROTO_LMTP,
    };
    const struct ms_scenario *sc = sm.sc;

    if (s->srv->n_open > sc->limits.sessions) {
        smtp_reply(&sm, 421, NULL, "%s Error: too many sessions, try again later", sc->hostname);
        s->close_reason = MS_CLOSE_LIMIT;
        goto out;
    }
    if (!ms_session_fault_command(s, MS_AT_GREETING, NULL, NULL, 0))
        smtp_reply(&sm, 220, NULL, "%s %s mocksrv", sc->hostname, sm.lmtp ? "LMTP" : "ESMTP");
    if (s->fault_closed)
        goto out;
    ms_expect_greeting(s);

    while (!sm.done) {
        struct ms_line line;
        int rc = ms_session_read_command(s, sc->limits.smtp_line_length,
                                         sm.verb[0] ? sm.verb : NULL, &line);
        if (rc == MOCKSRV_ETOOLONG) {
            ms_session_command_event(s, "", 0);
            smtp_error(&sm, 500, "5.5.2", "Error: line too long");
            continue;
        }
        if (rc != MOCKSRV_OK) {
            smtp_transport_end(&sm, rc);
            break;
        }
        ms_session_command_event(s, line.data, line.len);
        if (ms_expect_command(s, line.data, line.len)) {
            /* expect enforce: (SPEC 3.5) refused in-band and not run; the session goes on */
            smtp_reply(&sm, 503, "5.5.1", "Command not expected by the scenario");
            continue;
        }
        smtp_dispatch(&sm, &line);
    }
out:
    ms_conn_flush(sm.c, ms_deadline_in(MS_CLOSE_GRACE_MS));
    smtp_txn_reset(&sm);
    free(sm.helo);
    ms_buf_fini(&sm.reply);
}
