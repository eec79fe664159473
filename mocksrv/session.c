/*
 * session.c - what every protocol session shares: sending a reply (with its event), the SASL
 * exchange of AUTH / AUTHENTICATE, the auth event, reading the next command while the
 * `at: waiting` rules watch the client's silence, and carrying out fault actions.
 *
 * Not here: protocol syntax beyond the challenge prefix each engine passes in ("334 " for SMTP,
 * "+ " for POP3 and IMAP); the engines compose their own replies.
 *
 * Invariants:
 *   - SASL continuation lines are payload (`at: data` of AUTH / AUTHENTICATE), never commands;
 *     the client's "*" always cancels, whatever the rules say.
 *   - A waiting rule fires at most once per silence period; only client bytes end a period.
 */
#include <stdio.h>
#include <stdlib.h>

#include "sasl.h"
#include "server.h"

static int session_fault_shape(struct ms_session *s, const struct ms_fault_actions *fa);
static void session_fault_write(struct ms_session *s, const struct ms_fault_actions *fa,
                                const char *p, size_t n, size_t event_lines);

void
ms_session_reply(struct ms_session *s, const char *p, size_t n, size_t event_lines)
{
    if (s->pending.fired) {
        /* the normal reply, with what the fault rules put around it */
        struct ms_fault_actions fa = s->pending;
        memset(&s->pending, 0, sizeof s->pending);
        session_fault_write(s, &fa, p, n, event_lines);
        return;
    }
    ms_session_reply_raw(s, p, n, event_lines);
}

void
ms_session_reply_raw(struct ms_session *s, const char *p, size_t n, size_t event_lines)
{
    ms_conn_write(&s->conn, p, n);
    if (!ms_events_wanted(&s->srv->events))
        return;
    json_t *ev = ms_session_event(s, "reply");
    json_t *lines = json_array();
    const char *end = p + n;
    size_t count = 0;
    while (p < end && (event_lines == 0 || count < event_lines)) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end;
        if (!eol)
            eol = end;
        if (eol > p && eol[-1] == '\r')
            eol--;
        json_array_append_new(lines, ms_json_bytes(p, (size_t)(eol - p)));
        count++;
        p = next;
    }
    json_object_set_new(ev, "lines", lines);
    if (p < end)
        json_object_set_new(ev, "more_bytes", json_integer((json_int_t)(end - p)));
    ms_session_emit(s, ev);
}

void
ms_session_auth_event(struct ms_session *s, const char *user, unsigned mech, int ok)
{
    if (!ms_events_wanted(&s->srv->events))
        return;
    json_t *ev = ms_session_event(s, "auth");
    json_object_set_new(ev, "user", user ? ms_json_bytes(user, strlen(user)) : json_null());
    json_object_set_new(ev, "mechanism", json_string(mech ? ms_sasl_mech_name(mech) : "USER"));
    json_object_set_new(ev, "ok", json_boolean(ok));
    ms_session_emit(s, ev);
}

/* Sends "PREFIXchallenge\r\n". */
static void
session_challenge(struct ms_session *s, const char *prefix, const char *challenge)
{
    struct ms_buf b = {0};
    ms_buf_printf(&b, "%s%s\r\n", prefix, challenge);
    ms_session_reply(s, b.data, b.len, 0);
    ms_buf_fini(&b);
}

/* Reads one continuation line: 1 with the line (data NULL when too long), 0 on transport end. */
static int
session_sasl_read(struct ms_session *s, size_t limit, struct ms_line *line, int *rc_r)
{
    int rc = ms_conn_read_line(&s->conn, limit, ms_session_deadline(s), line);
    if (rc == MOCKSRV_ETOOLONG) {
        line->data = NULL;
        return 1;
    }
    if (rc != MOCKSRV_OK) {
        *rc_r = rc;
        return 0;
    }
    ms_session_command_event(s, line->data, line->len);
    return 1;
}

/* Reads continuation lines until one goes to the mechanism: the `at: data` rules of the AUTH
 * command (FAULTS.md 4: CPython's _auth_buggy) see every line, with `received` counting the
 * exchange's continuation bytes (CRLF included). A reply or raw that fires answers the line
 * instead of the mechanism, and the client's next line is read; delay and shaping act before
 * the next output; a close ends the exchange. The client's "*" (cancel) is not payload: it
 * always reaches the caller. Returns like session_sasl_read; on a fault's close, 0 with
 * MOCKSRV_ECLOSED (s->fault_closed set). */
static int
session_sasl_payload(struct ms_session *s, size_t limit, struct ms_line *line, int *rc_r,
                     uint64_t *received)
{
    /* the verb of the command the lines belong to, as rules name it */
    const char *verb = s->listener->protocol == MS_PROTO_IMAP ? "AUTHENTICATE" : "AUTH";
    int faults = ms_fault_has_at(s, MS_AT_DATA);
    for (;;) {
        if (!session_sasl_read(s, limit, line, rc_r))
            return 0;
        if (!faults || !line->data || (line->len == 1 && line->data[0] == '*'))
            return 1;
        *received += line->len + (line->bare_lf ? 1 : 2);
        /* each line is a payload's start for the rules without `received` (fault.c fires
         * them at received 0 only); then the exchange's thresholds */
        int replaced = 0;
        if (ms_session_fault_unsolicited(s, MS_AT_DATA, verb, 0, &replaced) ||
            (!replaced &&
             ms_session_fault_unsolicited(s, MS_AT_DATA, verb, *received, &replaced))) {
            *rc_r = MOCKSRV_ECLOSED;
            return 0;
        }
        if (!replaced)
            return 1;
    }
}

enum ms_sasl_outcome
ms_session_sasl(struct ms_session *s, unsigned mech, const char *initial, const char *prefix,
                size_t line_limit, const struct ms_user **user_r, int *rc_r)
{
    /* the session's scenario: the exchange waits for the client, a reload may come meanwhile */
    const struct ms_scenario *sc = s->faults_sc;
    struct ms_sasl *sasl = ms_sasl_create(mech, sc->hostname, s->srv->seed ^ s->id);
    const char *challenge = NULL;
    enum ms_sasl_outcome out;
    struct ms_line line;
    *user_r = NULL;
    *rc_r = MOCKSRV_OK;

    uint64_t received = 0; /* continuation bytes of this exchange, for at: data rules */
    ms_fault_period_start(s, MS_AT_DATA);
    enum ms_sasl_result r = ms_sasl_step(sasl, initial, initial ? strlen(initial) : 0, &challenge);
    while (r == MS_SASL_CONTINUE) {
        session_challenge(s, prefix, challenge);
        if (!session_sasl_payload(s, line_limit, &line, rc_r, &received)) {
            out = MS_SASL_TRANSPORT;
            goto done;
        }
        if (!line.data) {
            out = MS_SASL_TOO_LONG;
            goto done;
        }
        if (line.len == 1 && line.data[0] == '*') {
            /* RFC 4954 4, RFC 5034 4, RFC 3501 6.2.2: the client cancels. */
            out = MS_SASL_CANCELED;
            goto done;
        }
        r = ms_sasl_step(sasl, line.data, line.len, &challenge);
    }
    if (r == MS_SASL_BAD) {
        out = MS_SASL_MALFORMED;
        goto done;
    }
    const char *name = ms_sasl_user(sasl);
    const struct ms_user *u = name ? ms_scenario_find_user(sc, name) : NULL;
    int ok = u && u->password && ms_sasl_check(sasl, u->password);
    ms_session_auth_event(s, name, mech, ok);
    if (ok) {
        *user_r = u;
        out = MS_SASL_SUCCESS;
        goto done;
    }
    const char *fail = ms_sasl_failure_challenge(sasl);
    if (fail) {
        /* XOAUTH2 / OAUTHBEARER (RFC 7628 3.2.3): an error challenge, the client's dummy
         * response, then the failure reply. */
        session_challenge(s, prefix, fail);
        if (!session_sasl_payload(s, line_limit, &line, rc_r, &received)) {
            out = MS_SASL_TRANSPORT;
            goto done;
        }
    }
    out = MS_SASL_FAILURE;
done:
    ms_sasl_destroy(&sasl);
    return out;
}

int
ms_session_can_starttls(const struct ms_session *s)
{
    enum ms_tls_mode m = s->listener->tls;
    return !s->tls && (m == MS_TLS_STARTTLS || m == MS_TLS_REQUIRED) && s->srv->tls_ctx;
}

int
ms_session_needs_tls(const struct ms_session *s)
{
    return !s->tls && s->listener->tls == MS_TLS_REQUIRED;
}

/* A handshake that failed by itself (not by a fault): tls.fail, the transcript, the reason. */
static void
session_tls_failed(struct ms_session *s, int rc, const char *reason)
{
    struct ms_server *srv = s->srv;
    if (ms_events_wanted(&srv->events)) {
        json_t *ev = ms_session_event(s, "tls.fail");
        json_object_set_new(ev, "reason", json_string(reason ? reason : mocksrv_strerror(rc)));
        ms_session_emit(s, ev);
    }
    ms_transcript(&srv->events, s->id, s->listener->name, '*', "TLS handshake failed", 20);
    s->close_reason = rc == MOCKSRV_ETIMEDOUT   ? MS_CLOSE_TIMEOUT
                      : rc == MOCKSRV_ECLOSED   ? MS_CLOSE_PEER
                      : rc == MOCKSRV_ECANCELED ? MS_CLOSE_SHUTDOWN
                                                : MS_CLOSE_ERROR;
}

static void
session_tls_done(struct ms_session *s)
{
    struct ms_server *srv = s->srv;
    s->tls = 1;
    const char *subject = ms_tls_peer_subject(s->conn.tls);
    free(s->tls_client);
    s->tls_client = subject ? ms_strdup(subject) : NULL;
    if (ms_events_wanted(&srv->events)) {
        json_t *ev = ms_session_event(s, "tls.done");
        json_object_set_new(ev, "version", json_string(ms_tls_version(s->conn.tls)));
        json_object_set_new(ev, "cipher", json_string(ms_tls_cipher(s->conn.tls)));
        json_object_set_new(ev, "client",
                            subject ? ms_json_bytes(subject, strlen(subject)) : json_null());
        ms_session_emit(s, ev);
    }
    ms_transcript(&srv->events, s->id, s->listener->name, '*', "TLS established", 15);
}

static int session_tls_fault(struct ms_session *s, const struct ms_fault_actions *cmd,
                             const struct ms_fault_actions *at);

int
ms_session_starttls(struct ms_session *s)
{
    return ms_session_starttls_fault(s, NULL);
}

int
ms_session_starttls_fault(struct ms_session *s, const struct ms_fault_actions *cmd)
{
    struct ms_server *srv = s->srv;
    if (ms_events_wanted(&srv->events))
        ms_session_emit(s, ms_session_event(s, "tls.start"));
    /* FAULTS.md 1: at: tls fires once per handshake, implicit or after the go-ahead */
    struct ms_fault_actions at;
    if (ms_fault_at(s, MS_AT_TLS, NULL, NULL, 0, &at) || (cmd && cmd->tls))
        return session_tls_fault(s, cmd, &at);
    const char *reason = NULL;
    int rc = ms_conn_starttls(&s->conn, srv->tls_ctx, ms_session_deadline(s), &reason);
    if (rc != MOCKSRV_OK) {
        session_tls_failed(s, rc, reason);
        return rc;
    }
    session_tls_done(s);
    return MOCKSRV_OK;
}

enum ms_fault_tls
ms_session_tls_take(struct ms_session *s, struct ms_fault_actions *tls_r)
{
    struct ms_fault_actions *p = &s->pending;
    memset(tls_r, 0, sizeof *tls_r);
    tls_r->close_after = UINT64_MAX;
    if (!p->fired || p->tls == MS_FTLS_NONE)
        return MS_FTLS_NONE;
    tls_r->tls = p->tls;
    tls_r->tls_stall = p->tls_stall;
    tls_r->tls_after_bytes = p->tls_after_bytes;
    tls_r->has_tls_after = p->has_tls_after;
    if (p->tls != MS_FTLS_REFUSE && p->tls != MS_FTLS_PLAINTEXT && p->close_how != MS_CLOSE_NONE) {
        /* the close ends the broken handshake (after its stall), not the go-ahead */
        tls_r->close_how = p->close_how;
        tls_r->close_after = p->close_after;
        tls_r->close_delay_ms = p->close_delay_ms;
        tls_r->close_from = p->close_from;
        p->close_how = MS_CLOSE_NONE;
        p->close_after = UINT64_MAX;
    }
    p->tls = MS_FTLS_NONE;
    return tls_r->tls;
}

/* ---- faults: TLS handshakes broken on purpose (FAULTS.md 2 `tls:`, 6) ---- */

static const char *const session_tls_phases[] = {
    [MS_TLS_PHASE_AFTER_CLIENT_HELLO] = "after-client-hello",
    [MS_TLS_PHASE_MID_SERVER_FLIGHT] = "mid-server-flight",
    [MS_TLS_PHASE_BEFORE_FINISHED] = "before-finished",
};

/* A fatal handshake_failure alert record, written without OpenSSL (RFC 8446 5.1, 6): content
 * type alert (21), legacy version 3.3, length 2, level fatal (2), handshake_failure (40). */
static const char session_tls_alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28};
/* Bytes no TLS client can take for a record: 'g' (0x67) is no content type. */
static const char session_tls_garbage[] = "garbage: this is not TLS\r\n";

/* Neither reads nor writes for ms, or until the server stops (a coroutine sleep: other
 * sessions go on). */
static void
session_fault_wait(struct ms_session *s, int64_t ms)
{
    int64_t end = ms_deadline_in(ms);
    while (!s->closing) {
        int64_t left = end - ms_now();
        if (left <= 0)
            return;
        ms_co_sleep(left); /* MOCKSRV_ECANCELED: the server stops (s->closing) */
    }
}

/* Ends a connection whose handshake a fault broke: a stall lasts until close.delay when a
 * close fired, else until the idle timeout; then the close as close.how says (FIN without
 * one). close: half keeps reading until the client's EOF or the idle timeout: with nothing
 * left to say, that is a FIN that waits longer for the EOF. */
static void
session_tls_end(struct ms_session *s, const struct ms_fault_actions *cf, int stall)
{
    struct ms_conn *c = &s->conn;
    ms_conn_flush(c, ms_deadline_in(MS_CLOSE_GRACE_MS));
    int64_t wait = cf->close_how != MS_CLOSE_NONE ? cf->close_delay_ms : 0;
    if (stall && wait <= 0)
        wait = s->srv->sc->limits.idle_timeout_ms;
    if (wait > 0)
        session_fault_wait(s, wait);
    enum ms_close_how how = cf->close_how != MS_CLOSE_NONE ? cf->close_how : MS_CLOSE_FIN;
    if (how == MS_CLOSE_HALF && !s->closing)
        ms_conn_shutdown(c, MS_CLOSE_FIN, ms_session_deadline(s));
    else if (how == MS_CLOSE_HALF)
        ms_conn_shutdown(c, MS_CLOSE_FIN, ms_deadline_in(MS_CLOSE_GRACE_MS));
    else
        ms_conn_shutdown(c, how, ms_deadline_in(MS_CLOSE_GRACE_MS));
    s->fault_closed = 1;
    s->close_reason = MS_CLOSE_FAULT;
}

/* A handshake with faults: cmd holds the tls (and close) of the STARTTLS/STLS command, or is
 * NULL; at what the at: tls rules gave. The command's keys fired first and win; delay comes
 * from at: tls (the command's delayed the go-ahead). Returns MOCKSRV_OK when TLS is up (a
 * delay only), else an error after which the session ends. */
static int
session_tls_fault(struct ms_session *s, const struct ms_fault_actions *cmd,
                  const struct ms_fault_actions *at)
{
    struct ms_server *srv = s->srv;
    struct ms_conn *c = &s->conn;
    int64_t deadline = ms_session_deadline(s);
    const struct ms_fault_actions *tf = cmd && cmd->tls ? cmd : at;
    const struct ms_fault_actions *cf = cmd && cmd->close_how != MS_CLOSE_NONE ? cmd : at;
    struct ms_conn_tls_opts o = {
        .stop = MS_CONN_TLS_COMPLETE,
        .flight_bytes = UINT64_MAX,
        .delay_ms = at->has_delay ? at->delay_ms : 0,
        .fa = at, /* for the shaping of the handshake flights (split, bandwidth at: tls) */
    };
    const char *reason = NULL;
    char why[64] = "";
    int rc = MOCKSRV_OK, stall = 0;
    /* split, bandwidth, tarpit, read at: tls shape the handshake: the go-ahead leaves first,
     * then the server's first flight is the shaped output unit (scope reply), or every flight
     * and record after it (scope session or a duration) */
    if (at->split.rule || at->bandwidth.rule || at->tarpit.rule || at->read.rule) {
        ms_conn_flush(c, deadline);
        session_fault_shape(s, at);
    }
    switch (tf->tls) {
    case MS_FTLS_CLOSE:
        snprintf(why, sizeof why, "fault: close");
        break;
    case MS_FTLS_ALERT:
    case MS_FTLS_GARBAGE:
        /* the answer to the ClientHello is ours, not OpenSSL's */
        rc = ms_conn_read_hello(c, deadline);
        if (rc != MOCKSRV_OK)
            break;
        if (o.delay_ms > 0)
            session_fault_wait(s, o.delay_ms);
        if (tf->tls == MS_FTLS_ALERT)
            ms_conn_write(c, session_tls_alert, sizeof session_tls_alert);
        else
            ms_conn_write(c, session_tls_garbage, sizeof session_tls_garbage - 1);
        snprintf(why, sizeof why, "fault: %s", tf->tls == MS_FTLS_ALERT ? "alert" : "garbage");
        break;
    case MS_FTLS_STALL:
        o.stop = tf->tls_stall == MS_TLS_PHASE_AFTER_CLIENT_HELLO  ? MS_CONN_TLS_AFTER_HELLO
                 : tf->tls_stall == MS_TLS_PHASE_MID_SERVER_FLIGHT ? MS_CONN_TLS_MID_FLIGHT
                                                                   : MS_CONN_TLS_AFTER_FLIGHT;
        if (tf->has_tls_after)
            o.flight_bytes = tf->tls_after_bytes;
        rc = ms_conn_starttls_ex(c, srv->tls_ctx, deadline, &o, &reason);
        stall = 1;
        snprintf(why, sizeof why, "fault: stall %s",
                 (size_t)tf->tls_stall < MS_ARRAY_LEN(session_tls_phases)
                     ? session_tls_phases[tf->tls_stall]
                     : "?");
        break;
    default:
        if (cf->close_how == MS_CLOSE_NONE) {
            /* delay alone: the server's first flight comes late, then TLS as usual */
            rc = ms_conn_starttls_ex(c, srv->tls_ctx, deadline, &o, &reason);
            if (rc != MOCKSRV_OK) {
                session_tls_failed(s, rc, reason);
                return rc;
            }
            session_tls_done(s);
            return MOCKSRV_OK;
        }
        /* close at: tls: after the ClientHello instead of the server flight, or cut after
         * close.after_bytes of it */
        o.stop = cf->close_after == UINT64_MAX ? MS_CONN_TLS_AFTER_HELLO : MS_CONN_TLS_MID_FLIGHT;
        o.flight_bytes = cf->close_after;
        rc = ms_conn_starttls_ex(c, srv->tls_ctx, deadline, &o, &reason);
        snprintf(why, sizeof why, "fault: close");
        break;
    }
    if (rc != MOCKSRV_OK) {
        session_tls_failed(s, rc, reason);
        return rc;
    }
    if (ms_events_wanted(&srv->events)) {
        json_t *ev = ms_session_event(s, "tls.fail");
        json_object_set_new(ev, "reason", json_string(why));
        ms_session_emit(s, ev);
    }
    ms_transcript(&srv->events, s->id, s->listener->name, '*', why, strlen(why));
    session_tls_end(s, cf, stall);
    return MOCKSRV_ETLS;
}

/* ---- faults: carrying out the output-side actions ---- */

int
ms_fault_replaces(const struct ms_fault_actions *fa)
{
    /* a bare close (no content action, no cut) closes instead of replying */
    int bare_close = fa->close_how != MS_CLOSE_NONE && fa->close_after == UINT64_MAX &&
                     !fa->has_reply && !fa->raw && !fa->pass && !fa->inject && !fa->append &&
                     !fa->tls; /* with tls: the close ends the broken handshake */
    return fa->has_reply || fa->raw || bare_close;
}

int
ms_session_hidden(const struct ms_session *s, const char *keyword, size_t len)
{
    for (size_t i = 0; i < s->pending.n_hide; i++)
        if (strlen(s->pending.hide[i]) == len && ms_strncaseeq(s->pending.hide[i], keyword, len))
            return 1;
    return 0;
}

/* How long a rule's shaping lasts (FAULTS.md 1 "Scope"): reply for greeting, command and tls,
 * session for accept. */
static enum ms_fault_scope
session_fault_scope(const struct ms_fault_rule *r)
{
    if (r->scope != MS_SCOPE_DEFAULT)
        return r->scope;
    return r->at == MS_AT_ACCEPT ? MS_SCOPE_SESSION : MS_SCOPE_REPLY;
}

/* The shaping plan a pick goes into (reply: the next unit; otherwise the session plan, which
 * ends at `until`). */
static struct ms_shape_plan *
session_plan(struct ms_session *s, const struct ms_fault_pick *pk)
{
    struct ms_shape *sh = &s->conn.shape;
    enum ms_fault_scope scope = session_fault_scope(pk->rule);
    struct ms_shape_plan *p = scope == MS_SCOPE_REPLY ? &sh->unit : &sh->session;
    if (!p->active) {
        memset(p, 0, sizeof *p);
        p->active = 1;
    }
    if (p != &sh->unit)
        p->until = scope == MS_SCOPE_DURATION ? ms_now() + pk->rule->scope_ms : 0;
    return p;
}

static void
session_plan_coords(struct ms_session *s, struct ms_shape_plan *p, const struct ms_fault_pick *pk)
{
    p->seed = s->srv->seed;
    p->rule = pk->index;
    p->session = pk->session;
    p->match = pk->match;
    p->k = 0;
}

/* Puts the shaping actions of fa into the connection's plans. Returns 1 when the next output
 * unit is shaped (the caller flushes earlier output first, so the unit stands alone). */
static int
session_fault_shape(struct ms_session *s, const struct ms_fault_actions *fa)
{
    int shaped = 0;
    if (fa->split.rule) {
        struct ms_shape_plan *p = session_plan(s, &fa->split);
        p->has_split = 1;
        p->split = fa->split.rule->split;
        p->split_until = 0;
        session_plan_coords(s, p, &fa->split);
        shaped = 1;
    } else if (fa->tarpit.rule) {
        /* spamd's stutter: one byte per stutter for `for` (FAULTS.md 2), counted from now,
         * even when that ends it in the middle of an output unit (shape.c) */
        const struct ms_fault_rule *r = fa->tarpit.rule;
        struct ms_shape_plan *p = session_plan(s, &fa->tarpit);
        memset(&p->split, 0, sizeof p->split);
        p->has_split = 1;
        p->split_until = r->tarpit_for_ms > 0 ? ms_now() + r->tarpit_for_ms : 0;
        p->split.size_lo = p->split.size_hi = 1;
        p->split.gap_lo = p->split.gap_hi = r->tarpit_stutter_ms;
        session_plan_coords(s, p, &fa->tarpit);
        shaped = 1;
    }
    if (fa->bandwidth.rule) {
        struct ms_shape_plan *p = session_plan(s, &fa->bandwidth);
        p->bandwidth = fa->bandwidth.rule->bandwidth;
        if (!p->has_split)
            session_plan_coords(s, p, &fa->bandwidth);
        shaped = 1;
    }
    if (fa->delay_pick.rule && session_fault_scope(fa->delay_pick.rule) != MS_SCOPE_REPLY) {
        /* a delay before every output unit while the scope lasts (FAULTS.md example F) */
        const struct ms_fault_rule *r = fa->delay_pick.rule;
        struct ms_shape_plan *p = session_plan(s, &fa->delay_pick);
        p->has_delay = 1;
        p->delay_lo = r->delay_lo;
        p->delay_hi = r->delay_hi;
        if (!p->has_split)
            session_plan_coords(s, p, &fa->delay_pick);
    }
    if (fa->read.rule) {
        const struct ms_fault_rule *r = fa->read.rule;
        enum ms_fault_scope scope = r->scope;
        int64_t until = scope == MS_SCOPE_DURATION ? ms_now() + r->scope_ms : 0;
        /* at data the default is the payload; elsewhere the rest of the session */
        int payload = r->at == MS_AT_DATA && scope == MS_SCOPE_DEFAULT;
        ms_conn_read_shape(&s->conn, &r->read, until, payload);
    }
    return shaped;
}

/* 1 when fa's delay is a one-off before this output (scope reply), not a session plan's. */
static int
session_delay_now(const struct ms_fault_actions *fa)
{
    return fa->has_delay && fa->delay_ms > 0 &&
           (!fa->delay_pick.rule || session_fault_scope(fa->delay_pick.rule) == MS_SCOPE_REPLY);
}

/* stall: neither read nor write for its time (true: until the server stops), bounded by the
 * session's idle timeout unless it is `true`. Returns 1 when the session must end. */
static int
session_fault_stall(struct ms_session *s, const struct ms_fault_actions *fa)
{
    const struct ms_fault_rule *r = fa->stall.rule;
    if (!r)
        return 0;
    int64_t idle = s->srv->sc->limits.idle_timeout_ms;
    int64_t ms = r->stall_ms;
    int forever = ms < 0;
    int cut = !forever && idle > 0 && ms > idle;
    if (cut)
        ms = idle;
    int rc = MOCKSRV_OK;
    if (forever) {
        while (rc == MOCKSRV_OK)
            rc = ms_co_sleep(3600 * 1000);
    } else {
        rc = ms_co_sleep(ms);
    }
    if (rc == MOCKSRV_OK && !cut)
        return 0; /* resume */
    s->fault_closed = 1;
    s->close_reason = MS_CLOSE_FAULT;
    return 1;
}

/* close.after_bytes with scope session (Toxiproxy limit_data): the allowance counts over the
 * rest of the session's output, so the close waits for the byte that uses it up. */
static int
session_fault_cut_later(struct ms_session *s, const struct ms_fault_actions *fa)
{
    if (fa->close_how == MS_CLOSE_NONE || fa->close_after == UINT64_MAX || !fa->close_pick.rule ||
        session_fault_scope(fa->close_pick.rule) == MS_SCOPE_REPLY)
        return 0;
    ms_conn_cut_after(&s->conn, fa->close_after, fa->close_how, fa->close_delay_ms);
    return 1;
}

/* Ends the connection as close.how says, after close.delay. */
static void
session_fault_close(struct ms_session *s, const struct ms_fault_actions *fa)
{
    ms_conn_flush(&s->conn, ms_deadline_in(MS_CLOSE_GRACE_MS));
    if (fa->close_delay_ms > 0)
        ms_co_sleep(fa->close_delay_ms);
    ms_conn_shutdown(&s->conn, fa->close_how, ms_deadline_in(MS_CLOSE_GRACE_MS));
    if (fa->close_how != MS_CLOSE_HALF) {
        s->fault_closed = 1;
        s->close_reason = MS_CLOSE_FAULT;
    }
}

/* Writes inject + body + append, cut at close_after bytes, after the delay; then the close. */
static void
session_fault_write(struct ms_session *s, const struct ms_fault_actions *fa, const char *p,
                    size_t n, size_t event_lines)
{
    if (fa->stall.rule) {
        ms_conn_flush(&s->conn, ms_session_deadline(s));
        if (session_fault_stall(s, fa)) {
            ms_conn_shutdown(&s->conn, MS_CLOSE_FIN, ms_deadline_in(MS_CLOSE_GRACE_MS));
            return;
        }
    }
    if (session_delay_now(fa)) {
        /* "before the output starts": what earlier commands got leaves now, this reply later */
        ms_conn_flush(&s->conn, ms_session_deadline(s));
        int rc = ms_co_sleep(fa->delay_ms);
        s->conn.shape.shaped_end = ms_now(); /* a read waiting meanwhile waited for us */
        if (rc == MOCKSRV_ECANCELED && s->closing)
            return;
    }
    /* a shaped unit stands alone: earlier replies of a pipelined batch leave first */
    if (fa->split.rule || fa->tarpit.rule || fa->bandwidth.rule)
        ms_conn_flush(&s->conn, ms_session_deadline(s));
    int shaped = session_fault_shape(s, fa);
    struct ms_buf out = {0};
    if (fa->inject)
        ms_buf_puts(&out, fa->inject);
    ms_buf_append(&out, p, n);
    if (fa->append)
        ms_buf_puts(&out, fa->append);
    size_t len = out.len;
    int cut_later = session_fault_cut_later(s, fa);
    if (fa->close_how != MS_CLOSE_NONE && !cut_later && fa->close_after < len)
        len = (size_t)fa->close_after;
    if (len > 0) /* a bare close sends nothing: no reply event either */
        ms_session_reply_raw(s, out.data, len, event_lines);
    ms_buf_fini(&out);
    if (shaped || cut_later)
        ms_conn_flush(&s->conn, ms_session_deadline(s));
    if (fa->close_how != MS_CLOSE_NONE && !cut_later)
        session_fault_close(s, fa);
}

/* Appends the replacement output of fa to b: raw bytes, or the reply lines formatted for the
 * protocol (IMAP tag, SMTP continuation dashes, CRLF). */
static void
session_fault_format(struct ms_session *s, const struct ms_fault_actions *fa, const char *tag,
                     struct ms_buf *out)
{
    struct ms_buf b = *out;
    if (fa->raw) {
        ms_buf_append(&b, fa->raw, fa->raw_len);
    } else if (fa->has_reply) {
        const struct ms_fault_reply *r = fa->reply;
        enum ms_proto proto = s->listener->protocol;
        for (size_t i = 0; i < r->n_lines; i++) {
            const char *line = r->lines[i];
            size_t len = strlen(line);
            if (proto == MS_PROTO_IMAP && tag && strncmp(line, "* ", 2) != 0 &&
                strncmp(line, "+ ", 2) != 0)
                ms_buf_printf(&b, "%s ", tag);
            ms_buf_append(&b, line, len);
            /* SMTP continuation: every line but the last becomes "NNN-" (RFC 5321 4.2.1) */
            if ((proto == MS_PROTO_SMTP || proto == MS_PROTO_LMTP) && i + 1 < r->n_lines &&
                len >= 4 && b.data[b.len - len + 3] == ' ')
                b.data[b.len - len + 3] = '-';
            if (len < 2 || strcmp(line + len - 2, "\r\n") != 0)
                ms_buf_puts(&b, "\r\n");
        }
    }
    *out = b;
}

void
ms_session_fault_output(struct ms_session *s, const struct ms_fault_actions *fa, const char *tag)
{
    struct ms_buf b = {0};
    session_fault_format(s, fa, tag, &b);
    session_fault_write(s, fa, b.data ? b.data : "", b.len, 0);
    ms_buf_fini(&b);
}

int
ms_session_fault_event(struct ms_session *s, enum ms_fault_at at)
{
    return ms_session_fault_event_at(s, at, NULL, 0);
}

int
ms_session_fault_event_at(struct ms_session *s, enum ms_fault_at at, const char *verb,
                          uint64_t received)
{
    return ms_session_fault_unsolicited(s, at, verb, received, NULL);
}

int
ms_session_fault_unsolicited(struct ms_session *s, enum ms_fault_at at, const char *verb,
                             uint64_t received, int *replaced_r)
{
    struct ms_fault_actions fa;
    if (replaced_r)
        *replaced_r = 0;
    if (!ms_fault_at(s, at, verb, NULL, received, &fa))
        return 0;
    /* Nothing here to reply to: the content actions are the output itself, in the order a
     * client reads them. */
    struct ms_buf b = {0};
    session_fault_format(s, &fa, NULL, &b);
    if (fa.send) {
        /* a line: CRLF added unless it has its own line end, as script `send` (SPEC 3.4);
         * raw gives exact bytes */
        size_t n = strlen(fa.send);
        ms_buf_puts(&b, fa.send);
        if (n == 0 || fa.send[n - 1] != '\n')
            ms_buf_puts(&b, "\r\n");
    }
    session_fault_write(s, &fa, b.data ? b.data : "", b.len, 0);
    /* unsolicited output leaves now: the engine goes back to reading, maybe from its buffer */
    if (b.len || fa.inject || fa.append)
        ms_conn_flush(&s->conn, ms_session_deadline(s));
    ms_buf_fini(&b);
    if (replaced_r)
        *replaced_r = fa.has_reply || fa.raw != NULL;
    return s->fault_closed;
}

int
ms_session_read_command(struct ms_session *s, size_t limit, const char *verb,
                        struct ms_line *line_r)
{
    struct ms_conn *c = &s->conn;
    int64_t idle = ms_session_deadline(s);
    /* a pipelined command already buffered is read at once: no wait, no silence */
    if (!ms_fault_has_at(s, MS_AT_WAITING) || ms_conn_has_line(c))
        return ms_conn_read_line(c, limit, idle, line_r);
    /* FAULTS.md 1 waiting: the silence starts once the last output has left, and again whenever
     * the client sends something (even part of a line); the server's own unsolicited output
     * does not restart it, so rules with different `for` each fire at their own time, once */
    int rc = ms_conn_flush(c, idle);
    if (rc != MOCKSRV_OK)
        return rc;
    int64_t start = ms_now();
    uint64_t seen_in = c->bytes_in;
    int64_t done_ms = -1; /* silence up to which the rules were checked */
    ms_fault_period_start(s, MS_AT_WAITING);
    for (;;) {
        int64_t next = ms_fault_next_for(s, done_ms);
        int64_t deadline = idle;
        if (next >= 0 && (idle == MS_NO_DEADLINE || start + next < idle))
            deadline = start + next;
        rc = ms_conn_read_line(c, limit, deadline, line_r);
        if (rc != MOCKSRV_ETIMEDOUT || deadline == idle)
            return rc;
        if (c->bytes_in != seen_in) {
            /* the client was not silent: a new period starts at its last bytes */
            seen_in = c->bytes_in;
            start = c->in_at;
            done_ms = -1;
            ms_fault_period_start(s, MS_AT_WAITING);
            continue;
        }
        /* the timer says `next` ms have passed; ms_now() may round below it */
        int64_t silence = ms_now() - start;
        if (silence < next)
            silence = next;
        done_ms = silence;
        ms_session_fault_unsolicited(s, MS_AT_WAITING, verb, (uint64_t)silence, NULL);
        if (s->fault_closed)
            return MOCKSRV_ECLOSED;
    }
}

int
ms_session_fault_command(struct ms_session *s, enum ms_fault_at at, const char *verb,
                         const char *args, uint64_t received)
{
    struct ms_fault_actions fa;
    if (!ms_fault_at(s, at, verb, args, received, &fa))
        return 0;
    if (ms_fault_replaces(&fa)) {
        ms_session_fault_output(s, &fa, NULL);
        return 1;
    }
    s->pending = fa;
    return 0;
}
