/*
 * script.c - the scripted protocol (`protocol: script`, SPEC 3.4): a listener that plays a fixed
 * dialogue instead of a protocol engine, for the odd servers a client must cope with (a greeting
 * with strange capabilities, a bare LF, a reply that never comes, a reset at a chosen point).
 *
 * The steps (struct ms_script_step, scenario.h) run in order:
 *   send / raw   output through ms_session_reply: a `reply` event, and the pending fault
 *                actions of the line it answers (delay, inject, append, split, close ...);
 *   expect       reads one line (limits.smtp_line_length, idle deadline, `at: waiting` rules),
 *                reports it as a `command` event, matches it as expect: sequences do
 *                (ms_expect_pattern_matches: a glob, ASCII case-insensitive, against the whole
 *                line or the line up to a blank, so "EHLO" matches "EHLO client.example"). A mismatch, EOF or timeout is an expect.fail named
 *                "listeners.NAME.script[I]" and ends the session (FIN, see below);
 *   delay        flushes what was written, then sleeps;
 *   starttls     the server TLS handshake now (ms_session_starttls), after a scripted go-ahead;
 *   close        fin: the script ends here; rst: flush, then RST; half: shutdown(SHUT_WR), then
 *                read and log lines until the client's EOF (or the idle timeout).
 * The end of the steps (or close: fin) ends the session normally: session_main runs the
 * `at: end` rules, then closes with FIN and drains what the client still sends, so the close
 * never turns into a RST. Every scripted end (the last step, close fin, rst or half) has the
 * close reason "quit"; a mismatch "error", the client's EOF while expecting "peer-closed", the
 * idle timeout "timeout", SIGTERM "shutdown", a fault's close "fault".
 *
 * Faults: the output before the first expect is the greeting (`at: greeting` rules run before
 * its first send step); every line an expect step accepts is an `at: command` event, with the
 * verb its first word upper-cased and args the rest. When a rule replaces the reply (reply, raw,
 * a bare close), the scripted output that answers the line - the send and raw steps up to the
 * next expect, starttls or close - is skipped; delay steps still run. Otherwise the pending
 * actions go with the first of those output steps; when there is none, they are carried out
 * on an empty output before the next read (a `close` still closes, `inject` still goes out).
 * A line that does not match its glob ends the session before any rule sees it. `expect:`
 * entries of the scenario see every line (sequence, never); `enforce` adds nothing here, the
 * script refuses what it does not expect already.
 *
 * What it deliberately is not: a protocol. No branches, no loops, no variables, no replies
 * computed from the input; a script that needs them is a protocol engine.
 *
 * Invariants:
 *   - A session runs the script of the scenario it started with (s->faults_sc), so a reload
 *     never changes a dialogue in progress.
 *   - Output written before a delay, a read or the end has left before the wait starts.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include "expect.h"
#include "server.h"

#define SCRIPT_SEEN_MAX 200 /* bytes of a client line quoted in an expect.fail */

struct script {
    struct ms_session *s;
    const struct ms_listener_conf *conf;
    const struct ms_scenario *sc;
    size_t line_limit;
    int greeting;  /* still before the first expect: output is the greeting */
    int greeted;   /* the greeting's rules ran */
    int sent;      /* output was written during the greeting */
    int replaced;  /* a rule answered the last line: its scripted output is skipped */
    char verb[32]; /* the first word of the last line, upper-case ("" none): at: waiting */
};

/* "listeners.odd.script[3]", the expectation an expect.fail names. */
static void
script_step_name(const struct script *sp, size_t i, char *out, size_t cap)
{
    if (snprintf(out, cap, "listeners.%s.script[%zu]", sp->conf->name, i) < 0)
        out[0] = '\0';
}

/* The client's bytes, quoted for a message: printable ASCII as is, '"' and '\' escaped, any
 * other byte as \xNN, cut after SCRIPT_SEEN_MAX bytes. */
static void
script_quote(struct ms_buf *b, const char *p, size_t n)
{
    ms_buf_putc(b, '"');
    for (size_t i = 0; i < n && i < SCRIPT_SEEN_MAX; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\')
            ms_buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            ms_buf_printf(b, "\\x%02x", c);
        else
            ms_buf_putc(b, (char)c);
    }
    ms_buf_puts(b, n > SCRIPT_SEEN_MAX ? "\"..." : "\"");
}

/* An unmet expect step: "<what> where "<glob>" was expected". */
static void
script_fail(struct script *sp, size_t i, const struct ms_buf *what)
{
    char name[160];
    struct ms_buf seen = {0};
    const struct ms_script_step *st = &sp->conf->script[i];
    script_step_name(sp, i, name, sizeof name);
    ms_buf_append(&seen, what->data, what->len);
    ms_buf_puts(&seen, " where ");
    script_quote(&seen, st->bytes, st->len);
    ms_buf_puts(&seen, " was expected");
    ms_server_expect_fail(sp->s->srv, sp->s, name, seen.data);
    ms_buf_fini(&seen);
}

/* The pending fault actions of the last line (or of the greeting) that no output step took:
 * carried out on an empty output now. Returns 1 when a rule closed the connection. */
static int
script_settle(struct script *sp)
{
    struct ms_session *s = sp->s;
    if (s->pending.fired)
        ms_session_reply(s, "", 0, 0);
    return s->fault_closed;
}

/* The greeting is over (an expect step or the end came): expect.no_pregreet looks now. */
static void
script_end_greeting(struct script *sp)
{
    if (sp->greeting && sp->sent)
        ms_expect_greeting(sp->s);
    sp->greeting = 0;
}

/* send / raw. Returns 0 when the session must end. */
static int
script_send(struct script *sp, const struct ms_script_step *st)
{
    struct ms_session *s = sp->s;
    if (sp->greeting && !sp->greeted) {
        sp->greeted = 1;
        sp->replaced = ms_session_fault_command(s, MS_AT_GREETING, NULL, NULL, 0);
        if (s->fault_closed)
            return 0;
    }
    if (sp->greeting)
        sp->sent = 1;
    if (sp->replaced)
        return 1; /* a rule answered instead */
    ms_session_reply(s, st->bytes, st->len, 0);
    return !s->fault_closed;
}

/* The first word of line, upper-cased, into sp->verb ("" when empty or too long); *args_r the
 * rest after one blank ("" when none). */
static void
script_verb(struct script *sp, const struct ms_line *line, const char **args_r)
{
    const char *sp_at = memchr(line->data, ' ', line->len);
    size_t vl = sp_at ? (size_t)(sp_at - line->data) : line->len;
    *args_r = sp_at ? sp_at + 1 : "";
    sp->verb[0] = '\0';
    if (vl == 0 || vl >= sizeof sp->verb)
        return;
    for (size_t k = 0; k < vl; k++)
        sp->verb[k] = (char)toupper((unsigned char)line->data[k]);
    sp->verb[vl] = '\0';
}

/* A read that ended the dialogue: the expect step is unmet unless the server is stopping or a
 * fault closed the connection. */
static void
script_read_failed(struct script *sp, size_t i, int rc)
{
    struct ms_session *s = sp->s;
    struct ms_buf what = {0};
    if (s->fault_closed)
        return; /* close_reason is fault already */
    if (rc == MOCKSRV_ECANCELED && s->closing) {
        s->close_reason = MS_CLOSE_SHUTDOWN;
        return;
    }
    if (rc == MOCKSRV_ECLOSED) {
        ms_buf_puts(&what, "connection closed");
        s->close_reason = MS_CLOSE_PEER;
    } else if (rc == MOCKSRV_ETIMEDOUT) {
        ms_buf_printf(&what, "timed out after %lld ms", (long long)sp->sc->limits.idle_timeout_ms);
        s->close_reason = MS_CLOSE_TIMEOUT;
    } else {
        ms_buf_printf(&what, "connection failed (%s)", mocksrv_strerror(rc));
        s->close_reason = MS_CLOSE_ERROR;
    }
    script_fail(sp, i, &what);
    ms_buf_fini(&what);
}

/* expect: one line, matched whole. Returns 0 when the session must end. */
static int
script_expect(struct script *sp, size_t i, const struct ms_script_step *st)
{
    struct ms_session *s = sp->s;
    struct ms_line line;
    if (script_settle(sp))
        return 0;
    script_end_greeting(sp);
    sp->replaced = 0;
    int rc = ms_session_read_command(s, sp->line_limit, sp->verb[0] ? sp->verb : NULL, &line);
    if (rc == MOCKSRV_ETOOLONG) {
        struct ms_buf what = {0};
        ms_session_command_event(s, "", 0);
        ms_buf_printf(&what, "got a line longer than %zu bytes", sp->line_limit);
        script_fail(sp, i, &what);
        ms_buf_fini(&what);
        s->close_reason = MS_CLOSE_ERROR;
        return 0;
    }
    if (rc != MOCKSRV_OK) {
        script_read_failed(sp, i, rc);
        return 0;
    }
    ms_session_command_event(s, line.data, line.len);
    ms_expect_command(s, line.data, line.len);
    /* a NUL would cut the line short for the glob: such a line never matches */
    if (line.nul || !ms_expect_pattern_matches(st->bytes, line.data)) {
        struct ms_buf what = {0};
        ms_buf_puts(&what, "got ");
        script_quote(&what, line.data, line.len);
        script_fail(sp, i, &what);
        ms_buf_fini(&what);
        s->close_reason = MS_CLOSE_ERROR;
        return 0;
    }
    const char *args;
    script_verb(sp, &line, &args);
    sp->replaced =
        ms_session_fault_command(s, MS_AT_COMMAND, sp->verb[0] ? sp->verb : NULL, args, 0);
    return !s->fault_closed;
}

/* delay: what was written leaves first, so the client sees the pause where the script has it. */
static int
script_delay(struct script *sp, const struct ms_script_step *st)
{
    struct ms_session *s = sp->s;
    ms_conn_flush(&s->conn, ms_session_deadline(s));
    int rc = s->closing ? MOCKSRV_ECANCELED : ms_co_sleep(st->delay_ms);
    if (rc == MOCKSRV_OK)
        return 1;
    s->close_reason = s->closing ? MS_CLOSE_SHUTDOWN : MS_CLOSE_ERROR;
    return 0;
}

/* starttls: the handshake right now, as after a STARTTLS go-ahead (input buffered before it
 * is dropped, RFC 3207 4.2). */
static int
script_starttls(struct script *sp, size_t i)
{
    struct ms_session *s = sp->s;
    if (script_settle(sp))
        return 0;
    sp->replaced = 0;
    if (!s->srv->tls_ctx) {
        /* the context is made at bind for scripts with a starttls step; a reload may have
         * added this one later */
        char name[160];
        script_step_name(sp, i, name, sizeof name);
        ms_log_error(&s->srv->events,
                     "session %u: %s: starttls: no TLS context (restart mocksrv after adding a "
                     "starttls step)",
                     s->id, name);
        s->close_reason = MS_CLOSE_ERROR;
        return 0;
    }
    return ms_session_starttls(s) == MOCKSRV_OK;
}

/* close: half. The server stops writing and goes on reading (and logging) until the client's
 * EOF, the idle timeout or the server's stop. */
static void
script_half_close(struct script *sp)
{
    struct ms_session *s = sp->s;
    ms_conn_shutdown(&s->conn, MS_CLOSE_HALF, ms_session_deadline(s));
    for (;;) {
        struct ms_line line;
        int rc = ms_conn_read_line(&s->conn, sp->line_limit, ms_session_deadline(s), &line);
        if (rc == MOCKSRV_OK) {
            ms_session_command_event(s, line.data, line.len);
            continue;
        }
        if (rc == MOCKSRV_ETOOLONG) {
            ms_session_command_event(s, "", 0);
            continue;
        }
        s->close_reason = rc == MOCKSRV_ECLOSED                   ? MS_CLOSE_QUIT
                          : rc == MOCKSRV_ETIMEDOUT               ? MS_CLOSE_TIMEOUT
                          : rc == MOCKSRV_ECANCELED && s->closing ? MS_CLOSE_SHUTDOWN
                                                                  : MS_CLOSE_ERROR;
        return;
    }
}

/* close: the last step. Returns 0 (the session ends either way). */
static int
script_close(struct script *sp, const struct ms_script_step *st)
{
    struct ms_session *s = sp->s;
    if (script_settle(sp))
        return 0;
    script_end_greeting(sp);
    s->close_reason = MS_CLOSE_QUIT;
    if (st->how == MS_CLOSE_RST) {
        /* what the script sent before leaves first; only the close is abrupt */
        ms_conn_flush(&s->conn, ms_deadline_in(MS_CLOSE_GRACE_MS));
        ms_conn_shutdown(&s->conn, MS_CLOSE_RST, 0);
    } else if (st->how == MS_CLOSE_HALF) {
        script_half_close(sp);
    }
    /* fin: session_main closes with FIN once the `at: end` rules ran */
    return 0;
}

void
ms_script_session(struct ms_session *s)
{
    struct script sp = {.s = s, .greeting = 1};
    sp.sc = s->faults_sc ? s->faults_sc : s->srv->sc;
    sp.conf = ms_scenario_find_listener(sp.sc, s->listener->name);
    if (!sp.conf || sp.conf->protocol != MS_PROTO_SCRIPT || sp.conf->n_script == 0) {
        ms_log_error(&s->srv->events,
                     "session %u: listener %s has no script in the current scenario", s->id,
                     s->listener->name);
        s->close_reason = MS_CLOSE_ERROR;
        return;
    }
    sp.line_limit = sp.sc->limits.smtp_line_length;
    if (s->srv->n_open > sp.sc->limits.sessions) {
        /* no protocol, no "too many sessions" reply: the connection just closes */
        s->close_reason = MS_CLOSE_LIMIT;
        return;
    }

    int go = 1;
    size_t i;
    for (i = 0; go && i < sp.conf->n_script; i++) {
        const struct ms_script_step *st = &sp.conf->script[i];
        if (s->closing) {
            s->close_reason = MS_CLOSE_SHUTDOWN;
            go = 0;
            break;
        }
        switch (st->op) {
        case MS_SCRIPT_SEND:
            go = script_send(&sp, st);
            break;
        case MS_SCRIPT_EXPECT:
            go = script_expect(&sp, i, st);
            break;
        case MS_SCRIPT_DELAY:
            go = script_delay(&sp, st);
            break;
        case MS_SCRIPT_STARTTLS:
            go = script_starttls(&sp, i);
            break;
        case MS_SCRIPT_CLOSE:
            go = script_close(&sp, st);
            break;
        }
    }
    if (go) {
        /* the steps ran out: a normal end */
        if (!script_settle(&sp)) {
            script_end_greeting(&sp);
            s->close_reason = MS_CLOSE_QUIT;
        }
    }
    if (!s->conn.failed)
        ms_conn_flush(&s->conn, ms_deadline_in(MS_CLOSE_GRACE_MS));
}
