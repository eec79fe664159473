/*
 * session.c - what every protocol session shares: sending a reply (with its event), the SASL
 * exchange of AUTH / AUTHENTICATE, and the auth event.
 *
 * Not here: protocol syntax beyond the challenge prefix each engine passes in ("334 " for SMTP,
 * "+ " for POP3 and IMAP); the engines compose their own replies.
 */
#include <stdio.h>
#include <stdlib.h>

#include "sasl.h"
#include "server.h"

void
ms_session_reply(struct ms_session *s, const char *p, size_t n, size_t event_lines)
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

enum ms_sasl_outcome
ms_session_sasl(struct ms_session *s, unsigned mech, const char *initial, const char *prefix,
                size_t line_limit, const struct ms_user **user_r, int *rc_r)
{
    const struct ms_scenario *sc = s->srv->sc;
    struct ms_sasl *sasl = ms_sasl_create(mech, sc->hostname, s->srv->seed ^ s->id);
    const char *challenge = NULL;
    enum ms_sasl_outcome out;
    struct ms_line line;
    *user_r = NULL;
    *rc_r = MOCKSRV_OK;

    enum ms_sasl_result r = ms_sasl_step(sasl, initial, initial ? strlen(initial) : 0, &challenge);
    while (r == MS_SASL_CONTINUE) {
        session_challenge(s, prefix, challenge);
        if (!session_sasl_read(s, line_limit, &line, rc_r)) {
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
        if (!session_sasl_read(s, line_limit, &line, rc_r)) {
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

int
ms_session_starttls(struct ms_session *s)
{
    struct ms_server *srv = s->srv;
    if (ms_events_wanted(&srv->events))
        ms_session_emit(s, ms_session_event(s, "tls.start"));
    const char *reason = NULL;
    int rc = ms_conn_starttls(&s->conn, srv->tls_ctx, ms_session_deadline(s), &reason);
    if (rc != MOCKSRV_OK) {
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
        return rc;
    }
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
    return MOCKSRV_OK;
}
