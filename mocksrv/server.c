/*
 * server.c - listeners, sessions and the server's lifecycle (see server.h).
 *
 * Invariants:
 *   - Every listener is bound and listening before the server counts as bound: a scenario that
 *     cannot be fully bound binds nothing (no half-started server).
 *   - A session's coroutine owns its connection; the server only wakes it to stop it.
 *   - A message is on disk (spool files renamed into place) before ms_server_add_message
 *     returns OK, so the engine's success reply means the message is stored; a message that
 *     could not be spooled leaves no file. It is in the message list before its event.
 *   - A client in a listener's backlog is accepted without another client connecting, even
 *     after accept ran out of descriptors (a timer retries; a session's end hurries it).
 *   - A replaced scenario lives exactly as long as the sessions that started with it.
 */
#include "server.h"

#include "expect.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const server_close_reasons[] = {
    [MS_CLOSE_QUIT] = "quit",   [MS_CLOSE_PEER] = "peer-closed", [MS_CLOSE_TIMEOUT] = "timeout",
    [MS_CLOSE_FAULT] = "fault", [MS_CLOSE_ERROR] = "error",      [MS_CLOSE_SHUTDOWN] = "shutdown",
    [MS_CLOSE_LIMIT] = "limit",
};

int
ms_server_ensure_scenario(struct ms_server *srv, struct mocksrv_error *err)
{
    if (srv->sc)
        return MOCKSRV_OK;
    return ms_scenario_load_default(&srv->sc, err);
}

/* ---- messages ---- */

void
ms_msg_free(struct ms_msg *m)
{
    if (!m)
        return;
    free(m->listener);
    free(m->helo);
    free(m->mail_from);
    free(m->mail_params);
    for (size_t i = 0; i < m->rcpt_count; i++) {
        free(m->rcpt_to[i]);
        free(m->rcpt_params[i]);
    }
    free(m->rcpt_to);
    free(m->rcpt_params);
    free(m->auth_user);
    free(m->tls_client);
    ms_blob_unref(&m->blob);
    free(m->spool_path);
    free(m);
}

static json_t *
server_msg_json(const struct ms_msg *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(m->id));
    json_object_set_new(o, "session", json_integer(m->session));
    json_object_set_new(o, "listener", json_string(m->listener));
    json_object_set_new(o, "helo", m->helo ? ms_json_bytes(m->helo, strlen(m->helo)) : json_null());
    json_object_set_new(o, "mail_from", ms_json_bytes(m->mail_from, strlen(m->mail_from)));
    json_object_set_new(o, "mail_params", ms_json_bytes(m->mail_params, strlen(m->mail_params)));
    json_t *to = json_array(), *params = json_array();
    for (size_t i = 0; i < m->rcpt_count; i++) {
        json_array_append_new(to, ms_json_bytes(m->rcpt_to[i], strlen(m->rcpt_to[i])));
        json_array_append_new(params, ms_json_bytes(m->rcpt_params[i], strlen(m->rcpt_params[i])));
    }
    json_object_set_new(o, "rcpt_to", to);
    json_object_set_new(o, "rcpt_params", params);
    json_object_set_new(o, "auth_user",
                        m->auth_user ? ms_json_bytes(m->auth_user, strlen(m->auth_user))
                                     : json_null());
    json_object_set_new(o, "tls", json_boolean(m->tls));
    json_object_set_new(o, "tls_client",
                        m->tls_client ? ms_json_bytes(m->tls_client, strlen(m->tls_client))
                                      : json_null());
    json_object_set_new(o, "size", json_integer((json_int_t)m->blob->len));
    json_object_set_new(o, "received_ms", json_integer(m->received_ms));
    return o;
}

/* Writes p to a new temporary file tmp (fsync-free: tests, not durability). On failure nothing
 * is left behind. */
static int
server_write_temp(const char *tmp, const char *p, size_t n, struct mocksrv_error *err)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return ms_error_set(err, MOCKSRV_EIO, "%s: %s", tmp, strerror(errno));
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return ms_error_set(err, MOCKSRV_EIO, "%s: %s", tmp, strerror(e));
        }
        off += (size_t)w;
    }
    /* tmpfs and NFS may report ENOSPC only here */
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return ms_error_set(err, MOCKSRV_EIO, "%s: %s", tmp, strerror(e));
    }
    return MOCKSRV_OK;
}

/* Spools m as NNNNNN.eml (the bytes) and NNNNNN.json (the envelope): both are written to
 * temporary files first, then renamed, the .json last (a reader that sees the .json finds the
 * .eml). Either both files appear or neither: on any failure what was written or renamed is
 * removed, so a later message that takes the same number finds no file of this one. */
static int
server_spool(struct ms_server *srv, const struct ms_msg *m, struct mocksrv_error *err)
{
    char eml_tmp[4096], eml[4096], json_tmp[4096], json[4096];
    snprintf(eml_tmp, sizeof eml_tmp, "%s/.%06u.eml.tmp", srv->spool_dir, m->id);
    snprintf(eml, sizeof eml, "%s/%06u.eml", srv->spool_dir, m->id);
    snprintf(json_tmp, sizeof json_tmp, "%s/.%06u.json.tmp", srv->spool_dir, m->id);
    snprintf(json, sizeof json, "%s/%06u.json", srv->spool_dir, m->id);

    json_t *env = server_msg_json(m);
    char *text = json_dumps(env, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(env);
    size_t len = strlen(text);
    text = ms_realloc(text, len + 2);
    text[len++] = '\n';

    int rc = server_write_temp(eml_tmp, m->blob->data, m->blob->len, err);
    if (rc != MOCKSRV_OK)
        goto done;
    rc = server_write_temp(json_tmp, text, len, err);
    if (rc != MOCKSRV_OK) {
        unlink(eml_tmp);
        goto done;
    }
    if (rename(eml_tmp, eml) != 0) {
        rc = ms_error_set(err, MOCKSRV_EIO, "%s: %s", eml, strerror(errno));
        unlink(eml_tmp);
        unlink(json_tmp);
        goto done;
    }
    if (rename(json_tmp, json) != 0) {
        rc = ms_error_set(err, MOCKSRV_EIO, "%s: %s", json, strerror(errno));
        unlink(eml);
        unlink(json_tmp);
        goto done;
    }
done:
    free(text);
    return rc;
}

/* smtp.deliver: the message lands in the INBOX of every recipient who is a user (by name or
 * address), once per user however many of its addresses were given. Returns the users. */
static json_t *
server_deliver(struct ms_server *srv, struct ms_msg *m)
{
    json_t *users = json_array();
    if (!srv->sc->smtp.deliver || !srv->store)
        return users;
    for (size_t i = 0; i < m->rcpt_count; i++) {
        const struct ms_user *u = ms_scenario_find_user(srv->sc, m->rcpt_to[i]);
        if (!u)
            continue;
        int seen = 0;
        size_t k;
        json_t *v;
        json_array_foreach(users, k, v) seen |= strcmp(json_string_value(v), u->name) == 0;
        if (seen)
            continue;
        struct ms_account *acc = ms_store_account(srv->store, u->name, 1);
        struct ms_mailbox *inbox = ms_store_mailbox(acc, "INBOX");
        ms_store_append(inbox, ms_blob_ref(m->blob), MS_FLAG_RECENT, NULL, 0, m->received_ms / 1000,
                        0);
        json_array_append_new(users, json_string(u->name));
    }
    return users;
}

int
ms_server_add_message(struct ms_server *srv, struct ms_msg *m, struct mocksrv_error *err)
{
    m->id = ++srv->next_msg_id;
    if (srv->spool_dir) {
        int rc = server_spool(srv, m, err);
        if (rc != MOCKSRV_OK) {
            /* nothing of it is on disk: the next message takes the number */
            srv->next_msg_id--;
            ms_log_error(&srv->events, "spool: %s", err ? err->message : "write failed");
            ms_msg_free(m);
            return rc;
        }
        m->spool_path = ms_asprintf("%s/%06u.eml", srv->spool_dir, m->id);
    }
    json_t *delivered = server_deliver(srv, m);

    /* In the list before its event: a callback of the event finds it (mocksrv_message_get).
     * From here m is shared with other threads, which only read it; so does this thread. The
     * lock is released before the event, whose callback may take it. */
    pthread_mutex_lock(&srv->lock);
    ms_grow((void **)&srv->msgs, &srv->cap_msgs, srv->n_msgs + 1, sizeof *srv->msgs);
    srv->msgs[srv->n_msgs++] = m;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);

    json_t *ev = ms_event_new(&srv->events, "message", m->session, m->listener);
    json_t *body = server_msg_json(m);
    json_object_set_new(body, "delivered_to", delivered);
    json_object_del(body, "session");
    json_object_del(body, "listener");
    /* SPEC 2 names them from/to in the event; the spool envelope keeps mail_from/rcpt_to */
    json_object_set(body, "from", json_object_get(body, "mail_from"));
    json_object_set(body, "to", json_object_get(body, "rcpt_to"));
    json_object_del(body, "mail_from");
    json_object_del(body, "rcpt_to");
    json_object_set_new(body, "spool", m->spool_path ? json_string(m->spool_path) : json_null());
    json_object_update(ev, body);
    json_decref(body);
    ms_event_emit(&srv->events, ev);
    return MOCKSRV_OK;
}

/* ---- sessions ---- */

json_t *
ms_session_event(struct ms_session *s, const char *name)
{
    return ms_event_new(&s->srv->events, name, s->id, s->listener->name);
}

void
ms_session_emit(struct ms_session *s, json_t *event)
{
    ms_event_emit(&s->srv->events, event);
}

void
ms_session_command_event(struct ms_session *s, const char *line, size_t len)
{
    if (!ms_events_wanted(&s->srv->events))
        return;
    json_t *ev = ms_session_event(s, "command");
    json_object_set_new(ev, "line", ms_json_bytes(line, len));
    ms_session_emit(s, ev);
}

void
ms_server_expect_fail(struct ms_server *srv, struct ms_session *s, const char *expectation,
                      const char *seen)
{
    srv->expect_failures++;
    if (ms_events_wanted(&srv->events)) {
        json_t *ev = s ? ms_session_event(s, "expect.fail")
                       : ms_event_new(&srv->events, "expect.fail", 0, NULL);
        json_object_set_new(ev, "expectation", json_string(expectation));
        json_object_set_new(ev, "seen", ms_json_bytes(seen, strlen(seen)));
        ms_event_emit(&srv->events, ev);
    }
    if (s)
        ms_log_error(&srv->events, "expectation not met: session %u (%s): %s: %s", s->id,
                     s->listener->name, expectation, seen);
    else
        ms_log_error(&srv->events, "expectation not met: %s: %s", expectation, seen);
}

int64_t
ms_session_deadline(struct ms_session *s)
{
    return ms_deadline_in(s->srv->sc->limits.idle_timeout_ms);
}

static void
session_tap(void *arg, char dir, const char *p, size_t n)
{
    struct ms_session *s = arg;
    ms_transcript(&s->srv->events, s->id, s->listener->name, dir, p, n);
}

static void server_check_exit(struct ms_server *srv);
static void server_collect_retired(struct ms_server *srv);
static void server_accept_soon(struct ms_server *srv);

static void
session_main(void *arg)
{
    struct ms_session *s = arg;
    struct ms_server *srv = s->srv;

    if (ms_events_wanted(&srv->events)) {
        json_t *ev = ms_session_event(s, "session.open");
        json_object_set_new(ev, "peer", json_string(s->peer));
        json_object_set_new(ev, "protocol", json_string(ms_proto_name(s->listener->protocol)));
        ms_session_emit(s, ev);
    }
    ms_transcript(&srv->events, s->id, s->listener->name, '*', "connected", 9);
    ms_fault_session_start(s);
    ms_expect_session_start(s);
    if (ms_session_fault_event(s, MS_AT_ACCEPT))
        goto done;

    if (s->listener->tls == MS_TLS_IMPLICIT && ms_session_starttls(s) != MOCKSRV_OK)
        goto done; /* 465/995/993 style: no greeting before the handshake */
    switch (s->listener->protocol) {
    case MS_PROTO_SMTP:
    case MS_PROTO_LMTP:
        ms_smtp_session(s);
        break;
    case MS_PROTO_POP3:
        ms_pop3_session(s);
        break;
    case MS_PROTO_SCRIPT:
        ms_script_session(s);
        break;
    default:
        s->close_reason = MS_CLOSE_ERROR;
        break;
    }
    if (!s->fault_closed && !s->conn.failed && ms_session_fault_event(s, MS_AT_END))
        goto done;
    ms_conn_close_notify(&s->conn, ms_deadline_in(MS_CLOSE_GRACE_MS));
    /* a script ends where its steps end, maybe while the client still sends (a mismatch, a
     * script shorter than the dialogue): FIN and drain, so that the close is no RST */
    if (s->listener->protocol == MS_PROTO_SCRIPT && !s->conn.failed)
        ms_conn_shutdown(&s->conn, MS_CLOSE_FIN, ms_deadline_in(MS_CLOSE_GRACE_MS));
done:
    if (s->conn.cut_done || (s->close_reason == MS_CLOSE_TIMEOUT && s->conn.late_timeout))
        s->close_reason = MS_CLOSE_FAULT;
    ms_fault_session_end(s);
    ms_conn_flush(&s->conn, ms_deadline_in(MS_CLOSE_GRACE_MS));
    /* expect.fail events of this session come before its session.close */
    ms_expect_session_end(s, server_close_reasons[s->close_reason]);

    if (ms_events_wanted(&srv->events)) {
        json_t *ev = ms_session_event(s, "session.close");
        json_object_set_new(ev, "reason", json_string(server_close_reasons[s->close_reason]));
        json_object_set_new(ev, "bytes_in", json_integer((json_int_t)s->conn.bytes_in));
        json_object_set_new(ev, "bytes_out", json_integer((json_int_t)s->conn.bytes_out));
        ms_session_emit(s, ev);
    }
    ms_transcript(&srv->events, s->id, s->listener->name, '*',
                  server_close_reasons[s->close_reason],
                  strlen(server_close_reasons[s->close_reason]));

    ms_conn_fini(&s->conn);
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s->auth_user);
    free(s->tls_client);
    free(s);
    srv->n_open--;
    srv->n_ended++;
    srv->last_activity = ms_now();
    if (srv->n_retired_sc)
        server_collect_retired(srv); /* this session may have been the last on an old scenario */
    server_accept_soon(srv);
    server_check_exit(srv);
}

static void
server_format_peer(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        snprintf(out, n, "%s:%d", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        snprintf(out, n, "[%s]:%d", host, port);
    } else {
        snprintf(out, n, "unknown");
    }
}

/* Retry interval of an accept that failed for want of resources, and the interval between two
 * logs of such failures. */
#define SERVER_ACCEPT_RETRY_MS 20
#define SERVER_ACCEPT_LOG_MS 10000

static void server_accept(struct ms_listener *l);

static void
server_on_accept_retry(void *arg, uint32_t events)
{
    struct ms_listener *l = arg;
    (void)events;
    l->retry_timer = 0;
    if (!l->srv->stopping && l->fd >= 0)
        server_accept(l);
}

/* accept failed with e: connections stay in the backlog. The listener is edge-triggered, so
 * nothing would call us for them until another client connects: a timer retries. EMFILE and
 * ENFILE clear up when sessions end (server_accept_soon), ENOBUFS and ENOMEM by themselves. The
 * error is logged at most every SERVER_ACCEPT_LOG_MS with the count of those not logged. */
static void
server_accept_failed(struct ms_listener *l, int e)
{
    struct ms_server *srv = l->srv;
    int64_t now = ms_now();
    if (l->failure_log_ms == 0 || now - l->failure_log_ms >= SERVER_ACCEPT_LOG_MS) {
        if (l->failures_quiet)
            ms_log_error(&srv->events,
                         "accept on %s: %s (%u more times since the last report); the waiting "
                         "clients are accepted as descriptors free up",
                         l->name, strerror(e), l->failures_quiet);
        else
            ms_log_error(&srv->events,
                         "accept on %s: %s; the waiting clients are accepted as descriptors free "
                         "up",
                         l->name, strerror(e));
        l->failure_log_ms = now;
        l->failures_quiet = 0;
    } else {
        l->failures_quiet++;
    }
    if (!l->retry_timer)
        l->retry_timer =
            ms_loop_timer_add(srv->loop, now + SERVER_ACCEPT_RETRY_MS, server_on_accept_retry, l);
}

/* A session ended and freed its descriptor: listeners waiting for one retry now (from the loop,
 * not from the ending session's coroutine). */
static void
server_accept_soon(struct ms_server *srv)
{
    for (size_t i = 0; i < srv->n_listeners; i++) {
        struct ms_listener *l = &srv->listeners[i];
        if (!l->retry_timer)
            continue;
        ms_loop_timer_cancel(srv->loop, l->retry_timer);
        l->retry_timer = ms_loop_timer_add(srv->loop, ms_now(), server_on_accept_retry, l);
    }
}

/* Accepts until the backlog is empty (edge-triggered: until EAGAIN) or accept fails. */
static void
server_accept(struct ms_listener *l)
{
    struct ms_server *srv = l->srv;
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return;
            /* accept(2): a connection that went away, or a network error of the pending
             * connection (Linux passes those on): on to the next */
            if (e == EINTR || e == ECONNABORTED || e == EPROTO || e == ENETDOWN ||
                e == ENOPROTOOPT || e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH ||
                e == EOPNOTSUPP || e == ENETUNREACH)
                continue;
            server_accept_failed(l, e);
            return;
        }
        if (srv->stopping) {
            close(fd);
            continue;
        }
        struct ms_session *s = ms_calloc(1, sizeof *s);
        s->srv = srv;
        s->listener = l;
        s->id = ++srv->n_accepted;
        l->sessions++;
        server_format_peer(&ss, s->peer, sizeof s->peer);
        ms_conn_init(&s->conn, srv->loop, fd);
        if (srv->events.verbosity >= 2) {
            s->conn.tap = session_tap;
            s->conn.tap_arg = s;
        }
        s->next = srv->sessions;
        if (srv->sessions)
            srv->sessions->prev = s;
        srv->sessions = s;
        srv->n_open++;
        s->co = ms_loop_spawn(srv->loop, session_main, s, 0);
    }
}

static void
server_on_accept(void *arg, uint32_t events)
{
    struct ms_listener *l = arg;
    (void)events;
    if (l->retry_timer)
        return; /* out of descriptors: the retry comes */
    server_accept(l);
}

/* ---- lifecycle ---- */

static void
server_stop_now(struct ms_server *srv)
{
    /* every session has ended: the run-wide expectations (messages, sessions) */
    ms_expect_run_end(srv);
    srv->stopped = 1;
    ms_loop_stop(srv->loop);
}

static void
server_check_exit(struct ms_server *srv)
{
    if (!srv->stopping && srv->exit_after && srv->n_ended >= srv->exit_after)
        ms_server_begin_shutdown(srv);
    if (srv->stopping && srv->n_open == 0)
        server_stop_now(srv);
}

static void server_arm_idle(struct ms_server *srv);

static void
server_on_idle_timer(void *arg, uint32_t events)
{
    struct ms_server *srv = arg;
    (void)events;
    srv->idle_timer = 0;
    if (srv->stopping)
        return;
    if (srv->n_open == 0 && ms_now() - srv->last_activity >= srv->idle_exit_ms) {
        ms_log_info(&srv->events, "idle for %lld ms: stopping", (long long)srv->idle_exit_ms);
        ms_server_begin_shutdown(srv);
        return;
    }
    server_arm_idle(srv);
}

static void
server_arm_idle(struct ms_server *srv)
{
    if (srv->idle_exit_ms <= 0 || srv->idle_timer)
        return;
    int64_t due = srv->last_activity + srv->idle_exit_ms;
    if (srv->n_open > 0)
        due = ms_now() + srv->idle_exit_ms;
    srv->idle_timer = ms_loop_timer_add(srv->loop, due, server_on_idle_timer, srv);
}

static void
server_close_listeners(struct ms_server *srv)
{
    for (size_t i = 0; i < srv->n_listeners; i++) {
        struct ms_listener *l = &srv->listeners[i];
        if (l->retry_timer)
            ms_loop_timer_cancel(srv->loop, l->retry_timer);
        l->retry_timer = 0;
        if (l->watch)
            ms_io_close(&l->watch);
        if (l->fd >= 0)
            close(l->fd);
        l->fd = -1;
    }
}

void
ms_server_begin_shutdown(struct ms_server *srv)
{
    if (srv->stopping)
        return;
    srv->stopping = 1;
    server_close_listeners(srv);
    for (struct ms_session *s = srv->sessions; s; s = s->next) {
        s->closing = 1;
        ms_loop_wake(srv->loop, s->co);
    }
    if (srv->n_open == 0)
        server_stop_now(srv);
}

static void
server_on_request(void *arg, uint32_t events)
{
    struct ms_server *srv = arg;
    uint64_t v;
    (void)events;
    while (read(srv->request_fd, &v, sizeof v) > 0) {
    }
    if (srv->reload_requested) {
        srv->reload_requested = 0;
        struct mocksrv_error err = {0};
        ms_server_reload(srv, &err);
    }
    if (srv->shutdown_requested)
        ms_server_begin_shutdown(srv);
}

/* Parses "[HOST:]PORT" / "[v6]:PORT". */
static int
server_resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    char h[256];
    snprintf(h, sizeof h, "%s", host);
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        memmove(h, h + 1, hl - 2);
        h[hl - 2] = '\0';
    }
    if (strcmp(h, "localhost") == 0)
        snprintf(h, sizeof h, "127.0.0.1");
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return 0;
    }
    return -1;
}

static int
server_open_listener(struct ms_server *srv, struct ms_listener *l, struct mocksrv_error *err)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (server_resolve(l->host, l->port, &ss, &sl) != 0)
        return ms_error_set(err, MOCKSRV_EBIND,
                            "listener %s: bad address \"%s\" (use an IPv4 or IPv6 literal)",
                            l->name, l->host);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ms_error_set(err, MOCKSRV_EBIND, "listener %s: socket: %s", l->name,
                            strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (l->window) {
        /* accepted sockets inherit it, and the SYN-ACK already advertises the small window */
        int v = l->window > INT32_MAX / 2 ? INT32_MAX / 2 : (int)l->window;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    }
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        close(fd);
        return ms_error_set(err, MOCKSRV_EBIND, "listener %s: cannot listen on %s port %d: %s",
                            l->name, l->host, l->port, strerror(e));
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &bl);
    l->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                               : ((struct sockaddr_in6 *)&bound)->sin6_port);
    l->fd = fd;
    l->watch = ms_loop_watch(srv->loop, fd, EPOLLIN, server_on_accept, l);
    return MOCKSRV_OK;
}

static void
server_add_listener(struct ms_server *srv, const struct ms_listener_conf *conf)
{
    srv->listeners = ms_realloc(srv->listeners, (srv->n_listeners + 1) * sizeof *srv->listeners);
    struct ms_listener *l = &srv->listeners[srv->n_listeners++];
    memset(l, 0, sizeof *l);
    l->srv = srv;
    l->fd = -1;
    l->name = ms_strdup(conf->name);
    l->protocol = conf->protocol;
    l->tls = conf->tls;
    l->host = ms_strdup(conf->host ? conf->host : srv->bind_host);
    l->port = srv->ephemeral ? 0 : conf->port;
    l->window = conf->window;
}

static struct ms_listener *
server_find_listener(struct ms_server *srv, const char *name)
{
    for (size_t i = 0; i < srv->n_listeners; i++)
        if (strcmp(srv->listeners[i].name, name) == 0)
            return &srv->listeners[i];
    return NULL;
}

void
ms_server_unbind(struct ms_server *srv)
{
    server_close_listeners(srv);
    for (size_t i = 0; i < srv->n_listeners; i++) {
        free(srv->listeners[i].name);
        free(srv->listeners[i].host);
    }
    free(srv->listeners);
    srv->listeners = NULL;
    srv->n_listeners = 0;
    if (srv->request_watch)
        ms_io_close(&srv->request_watch);
    if (srv->request_fd >= 0)
        close(srv->request_fd);
    srv->request_fd = -1;
    ms_tls_ctx_destroy(&srv->tls_ctx);
    srv->bound = 0;
}

/* A seed for a run that names none: from the kernel's generator (the clock and the PID only if
 * it cannot answer), so that runs started together draw unrelated seeds; below 2^63 like every
 * seed, so the ready line shows it and --seed N replays it. */
static uint64_t
server_draw_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = ((uint64_t)ms_wall_ms() * 2654435761u) ^ (uint64_t)getpid() << 32;
    return seed & INT64_MAX;
}

int
ms_server_bind(struct ms_server *srv, struct mocksrv_error *err)
{
    if (srv->bound)
        return ms_error_set(err, MOCKSRV_ESTATE, "already bound");
    int rc = ms_server_ensure_scenario(srv, err);
    if (rc != MOCKSRV_OK)
        return rc;
    struct ms_scenario *sc = srv->sc;
    if (!srv->seed_set)
        srv->seed = sc->has_seed ? sc->seed : server_draw_seed();
    if (!srv->store) {
        rc = ms_store_load_scenario(sc, srv->seed, &srv->store, err);
        if (rc != MOCKSRV_OK)
            return rc;
    }
    if (!srv->loop)
        srv->loop = ms_loop_create();
    srv->request_fd = -1;

    for (size_t i = 0; i < sc->n_listeners; i++)
        server_add_listener(srv, &sc->listeners[i]);
    for (size_t i = 0; i < srv->n_overrides; i++) {
        struct ms_listen_override *o = &srv->overrides[i];
        struct ms_listener *l = server_find_listener(srv, o->name);
        if (!l) {
            struct ms_listener_conf conf;
            if (ms_listener_standard(o->name, &conf) != MOCKSRV_OK) {
                rc = ms_error_set(err, MOCKSRV_EINVAL,
                                  "--listen %s: no such listener in the scenario and not a "
                                  "standard one (smtp smtps submission lmtp pop3 pop3s imap imaps)",
                                  o->name);
                goto fail;
            }
            server_add_listener(srv, &conf);
            l = &srv->listeners[srv->n_listeners - 1];
        }
        if (o->host) {
            free(l->host);
            l->host = ms_strdup(o->host);
        }
        l->port = o->port;
    }
    for (size_t i = 0; i < srv->n_listeners; i++) {
        struct ms_listener *l = &srv->listeners[i];
        if (l->protocol != MS_PROTO_SMTP && l->protocol != MS_PROTO_LMTP &&
            l->protocol != MS_PROTO_POP3 && l->protocol != MS_PROTO_SCRIPT) {
            rc = ms_error_set(err, MOCKSRV_EUNSUPPORTED,
                              "listener %s: protocol %s is not supported by this version", l->name,
                              ms_proto_name(l->protocol));
            goto fail;
        }
    }
    int need_tls = 0;
    for (size_t i = 0; i < srv->n_listeners; i++)
        need_tls |= srv->listeners[i].tls != MS_TLS_NONE;
    /* a script listener with a starttls step (SPEC 3.4) needs the context as well */
    for (size_t i = 0; i < sc->n_listeners; i++)
        for (size_t k = 0; k < sc->listeners[i].n_script; k++)
            need_tls |= sc->listeners[i].script[k].op == MS_SCRIPT_STARTTLS;
    /* --cert is checked even when no listener uses it: a bad file is an error at start */
    if ((need_tls || srv->cert_file) && !srv->tls_ctx) {
        struct ms_tls_options opt = {
            .cert = srv->cert_file ? srv->cert_file : sc->tls.cert,
            .key = srv->cert_file ? srv->key_file : sc->tls.key,
            .client_ca = sc->tls.client_ca,
            .min_version = sc->tls.min_version,
            .hostname = sc->hostname,
            .ca_out = srv->ca_out,
        };
        rc = ms_tls_ctx_create(&opt, &srv->tls_ctx, err);
        if (rc != MOCKSRV_OK)
            goto fail;
    }
    for (size_t i = 0; i < srv->n_listeners; i++) {
        rc = server_open_listener(srv, &srv->listeners[i], err);
        if (rc != MOCKSRV_OK)
            goto fail;
    }

    srv->request_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (srv->request_fd < 0) {
        rc = ms_error_set(err, MOCKSRV_ESYS, "eventfd: %s", strerror(errno));
        goto fail;
    }
    srv->request_watch = ms_loop_watch(srv->loop, srv->request_fd, EPOLLIN, server_on_request, srv);
    srv->events.start_ms = ms_now();
    srv->last_activity = ms_now();
    srv->bound = 1;
    server_arm_idle(srv);
    return MOCKSRV_OK;

fail:
    ms_server_unbind(srv);
    return rc;
}

/* ---- model: scenario and store, reload ---- */

/* Destroys the replaced scenarios that no open session uses any more. */
static void
server_collect_retired(struct ms_server *srv)
{
    size_t keep = 0;
    for (size_t i = 0; i < srv->n_retired_sc; i++) {
        struct ms_scenario *sc = srv->retired_sc[i];
        int used = 0;
        for (struct ms_session *s = srv->sessions; s && !used; s = s->next)
            used = s->faults_sc == sc;
        if (used)
            srv->retired_sc[keep++] = sc;
        else
            ms_scenario_destroy(&sc);
    }
    srv->n_retired_sc = keep;
}

/* The scenario and store are replaced: the store goes now, the scenario when no session uses
 * it. */
static void
server_retire(struct ms_server *srv)
{
    if (srv->sc) {
        srv->retired_sc =
            ms_realloc(srv->retired_sc, (srv->n_retired_sc + 1) * sizeof *srv->retired_sc);
        srv->retired_sc[srv->n_retired_sc++] = srv->sc;
        srv->sc = NULL;
    }
    ms_store_destroy(&srv->store);
    server_collect_retired(srv);
}

void
ms_server_free_model(struct ms_server *srv)
{
    /* the loop is gone: no session runs any more, whatever the list says */
    ms_scenario_destroy(&srv->sc);
    ms_store_destroy(&srv->store);
    for (size_t i = 0; i < srv->n_retired_sc; i++)
        ms_scenario_destroy(&srv->retired_sc[i]);
    srv->n_retired_sc = 0;
    free(srv->retired_sc);
    srv->retired_sc = NULL;
}

int
ms_server_reload(struct ms_server *srv, struct mocksrv_error *err)
{
    struct ms_scenario *sc = NULL;
    int rc;
    if (srv->scenario_path)
        rc = ms_scenario_load_file(srv->scenario_path, &sc, err);
    else if (srv->scenario_text)
        rc = ms_scenario_load_string(srv->scenario_text, srv->scenario_len, srv->scenario_name, ".",
                                     &sc, err);
    else
        rc = ms_scenario_load_default(&sc, err);
    if (rc == MOCKSRV_OK && (rc = ms_faults_check_supported(sc, err)) != MOCKSRV_OK)
        ms_scenario_destroy(&sc);
    if (rc != MOCKSRV_OK)
        goto report;
    struct ms_store *store = NULL;
    uint64_t seed = srv->seed_set ? srv->seed : sc->has_seed ? sc->seed : srv->seed;
    rc = ms_store_load_scenario(sc, seed, &store, err);
    if (rc != MOCKSRV_OK) {
        ms_scenario_destroy(&sc);
        goto report;
    }
    /* POP3 maildrop locks belong to the sessions, which survive the reload. */
    for (size_t i = 0; srv->store && i < srv->store->n_accounts; i++) {
        struct ms_account *old = srv->store->accounts[i];
        struct ms_account *acc = ms_store_account(store, old->name, 0);
        if (acc)
            acc->pop3_locked = old->pop3_locked;
    }
    /* FAULTS.md 5: a rule whose name and definition did not change keeps its run counters
     * (nth/every/after with count: run, times, replies, its connection count); the others
     * start from zero. Sessions already open keep counting against their old rules. */
    ms_fault_run_init(sc);
    ms_fault_run_keep(sc, srv->sc);
    server_retire(srv);
    srv->sc = sc;
    srv->store = store;
    srv->seed = seed;
report:
    if (ms_events_wanted(&srv->events)) {
        json_t *ev = ms_event_new(&srv->events, "reload", 0, NULL);
        json_object_set_new(ev, "ok", json_boolean(rc == MOCKSRV_OK));
        if (rc != MOCKSRV_OK && err)
            json_object_set_new(ev, "error", json_string(err->message));
        ms_event_emit(&srv->events, ev);
    }
    if (rc != MOCKSRV_OK)
        ms_log_error(&srv->events, "reload failed, keeping the previous scenario: %s",
                     err ? err->message : mocksrv_strerror(rc));
    else
        ms_log_info(&srv->events, "reloaded the scenario");
    return rc;
}
