/*
 * api.c - the public API (mocksrv.h) over the server object.
 *
 * Thread model (DESIGN.md): mocksrv_start runs the loop on one new thread; other threads reach
 * it only through the request eventfd (shutdown, reload) and the locked message list. In stepped
 * mode the host's thread is the loop's thread.
 *
 * Lifecycle, as the host's thread sees it:
 *   at rest   not bound, or bound and stopped (the loop ended) with no thread left to join:
 *             loads and settings are accepted; mocksrv_bind / mocksrv_start bind (again)
 *   bound     stepped by the host until it stops
 *   running   mocksrv_start's thread steps the loop until mocksrv_stop joins it
 * Everything that belongs to a server at rest or to the loop's thread checks api_check_rest or
 * thread_running and returns MOCKSRV_ESTATE otherwise, so no call races with the loop.
 *
 * Not here: the loop, listeners and sessions (server.c), the scenario (scenario.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

struct mocksrv {
    struct ms_server srv;
    /* under srv.lock: 1 from a successful bind until a shutdown is asked or the loop ends;
     * mocksrv_wait_messages waits only while it is set */
    int serving;
    /* the seed of the current run, fixed at bind: what mocksrv_seed reads while the thread
     * runs (a reload on the loop's thread may change srv.seed) */
    uint64_t run_seed;
};

struct mocksrv *
mocksrv_new(void)
{
    struct mocksrv *m = ms_calloc(1, sizeof *m);
    struct ms_server *srv = &m->srv;
    srv->bind_host = ms_strdup("127.0.0.1");
    srv->request_fd = -1;
    ms_events_init(&srv->events);
    pthread_mutex_init(&srv->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->cond, &ca);
    pthread_condattr_destroy(&ca);
    return m;
}

void
mocksrv_free(struct mocksrv *m)
{
    if (!m)
        return;
    struct ms_server *srv = &m->srv;
    /* a thread that ended on its own (exit after, idle exit) is still joined by the stop */
    if (srv->thread_running || (srv->bound && !srv->stopped))
        mocksrv_stop(m);
    ms_server_unbind(srv);
    if (srv->loop)
        ms_loop_destroy(&srv->loop);
    ms_server_free_model(srv);
    free(srv->scenario_path);
    free(srv->scenario_text);
    free(srv->scenario_name);
    for (size_t i = 0; i < srv->n_msgs; i++)
        ms_msg_free(srv->msgs[i]);
    free(srv->msgs);
    for (size_t i = 0; i < srv->n_overrides; i++) {
        free(srv->overrides[i].name);
        free(srv->overrides[i].host);
    }
    free(srv->overrides);
    free(srv->bind_host);
    free(srv->spool_dir);
    free(srv->cert_file);
    free(srv->key_file);
    free(srv->ca_out);
    free(srv->ready_json);
    ms_events_fini(&srv->events);
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->cond);
    free(m);
}

#define API_THREAD_RUNS "the server's thread runs (mocksrv_start): call mocksrv_stop first"

/* MOCKSRV_OK when the server is at rest (see the top of the file), else MOCKSRV_ESTATE. */
static int
api_check_rest(struct mocksrv *m, struct mocksrv_error *err)
{
    if (m->srv.thread_running)
        return ms_error_set(err, MOCKSRV_ESTATE, API_THREAD_RUNS);
    if (m->srv.bound && !m->srv.stopped)
        return ms_error_set(err, MOCKSRV_ESTATE,
                            "the server is bound: this is allowed before mocksrv_bind or "
                            "mocksrv_start, or after mocksrv_stop");
    return MOCKSRV_OK;
}

/* The loop has ended or is about to: nothing more will be accepted, waiters return. */
static void
api_end_serving(struct mocksrv *m)
{
    pthread_mutex_lock(&m->srv.lock);
    m->serving = 0;
    pthread_cond_broadcast(&m->srv.cond);
    pthread_mutex_unlock(&m->srv.lock);
}

/* Checks a loaded scenario for what this version cannot serve, then makes it the server's. A
 * server at rest after a run drops the mailboxes and certificates built from the previous
 * scenario: the next bind builds them from this one. */
static int
api_set_scenario(struct mocksrv *m, int rc, struct ms_scenario *sc, struct mocksrv_error *err)
{
    for (size_t i = 0; rc == MOCKSRV_OK && i < sc->n_listeners; i++) {
        const struct ms_listener_conf *l = &sc->listeners[i];
        if (l->protocol != MS_PROTO_IMAP)
            continue;
        if (err) {
            snprintf(err->file, sizeof err->file, "%s", sc->path);
            err->line = l->pos.line;
            err->column = l->pos.column;
        }
        rc = ms_error_set(err, MOCKSRV_ESCENARIO,
                          "%s:%d:%d: listeners.%s: protocol imap: IMAP is not served by this "
                          "version",
                          sc->path, l->pos.line, l->pos.column, l->name);
    }
    if (rc == MOCKSRV_OK)
        rc = ms_faults_check_supported(sc, err);
    if (rc != MOCKSRV_OK) {
        ms_scenario_destroy(&sc);
        return rc;
    }
    ms_store_destroy(&m->srv.store);
    ms_tls_ctx_destroy(&m->srv.tls_ctx);
    ms_scenario_destroy(&m->srv.sc);
    m->srv.sc = sc;
    return MOCKSRV_OK;
}

int
mocksrv_load_file(struct mocksrv *m, const char *path, struct mocksrv_error *err)
{
    if (!m || !path)
        return ms_error_set(err, MOCKSRV_EINVAL, "mocksrv_load_file: NULL argument");
    int rc = api_check_rest(m, err);
    if (rc != MOCKSRV_OK)
        return rc;
    struct ms_scenario *sc = NULL;
    rc = ms_scenario_load_file(path, &sc, err);
    rc = api_set_scenario(m, rc, sc, err);
    if (rc == MOCKSRV_OK) {
        free(m->srv.scenario_path);
        m->srv.scenario_path = ms_strdup(path);
    }
    return rc;
}

int
mocksrv_load_string(struct mocksrv *m, const char *yaml, size_t len, const char *name,
                    struct mocksrv_error *err)
{
    if (!m || !yaml)
        return ms_error_set(err, MOCKSRV_EINVAL, "mocksrv_load_string: NULL argument");
    int rc = api_check_rest(m, err);
    if (rc != MOCKSRV_OK)
        return rc;
    struct ms_scenario *sc = NULL;
    rc = ms_scenario_load_string(yaml, len, name ? name : "<string>", ".", &sc, err);
    rc = api_set_scenario(m, rc, sc, err);
    if (rc == MOCKSRV_OK) {
        free(m->srv.scenario_path);
        free(m->srv.scenario_text);
        free(m->srv.scenario_name);
        m->srv.scenario_path = NULL;
        m->srv.scenario_text = ms_strndup(yaml, len);
        m->srv.scenario_len = len;
        m->srv.scenario_name = ms_strdup(name ? name : "<string>");
    }
    return rc;
}

int
mocksrv_set_ephemeral(struct mocksrv *m, int on)
{
    if (!m)
        return MOCKSRV_EINVAL;
    int rc = api_check_rest(m, NULL);
    if (rc == MOCKSRV_OK)
        m->srv.ephemeral = on != 0;
    return rc;
}

int
mocksrv_set_bind_host(struct mocksrv *m, const char *host)
{
    if (!m || !host || !*host)
        return MOCKSRV_EINVAL;
    int rc = api_check_rest(m, NULL);
    if (rc != MOCKSRV_OK)
        return rc;
    free(m->srv.bind_host);
    m->srv.bind_host = ms_strdup(host);
    return MOCKSRV_OK;
}

/* A listener name --listen may use: one of the scenario's (the default one when none was
 * loaded yet), or a standard one this version serves. */
static int
api_check_listener_name(struct mocksrv *m, const char *spec, const char *name,
                        struct mocksrv_error *err)
{
    struct ms_server *srv = &m->srv; /* at rest: mocksrv_listen checked it */
    int rc = ms_server_ensure_scenario(srv, err);
    if (rc != MOCKSRV_OK)
        return rc;
    for (size_t i = 0; i < srv->sc->n_listeners; i++)
        if (strcmp(srv->sc->listeners[i].name, name) == 0)
            return MOCKSRV_OK;
    struct ms_listener_conf conf;
    if (ms_listener_standard(name, &conf) != MOCKSRV_OK)
        return ms_error_set(err, MOCKSRV_EINVAL,
                            "--listen %s: no listener \"%s\" in the scenario and not a standard "
                            "one (smtp smtps submission lmtp pop3 pop3s)",
                            spec, name);
    if (conf.protocol == MS_PROTO_IMAP)
        return ms_error_set(err, MOCKSRV_EUNSUPPORTED,
                            "--listen %s: IMAP is not served by this version", spec);
    return MOCKSRV_OK;
}

int
mocksrv_listen(struct mocksrv *m, const char *spec, struct mocksrv_error *err)
{
    if (!m || !spec)
        return ms_error_set(err, MOCKSRV_EINVAL, "mocksrv_listen: NULL argument");
    int rc = api_check_rest(m, err);
    if (rc != MOCKSRV_OK)
        return rc;
    /* NAME=[HOST:]PORT, HOST may be [v6] */
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec)
        return ms_error_set(err, MOCKSRV_EINVAL, "--listen %s: expected NAME=[HOST:]PORT", spec);
    const char *addr = eq + 1;
    const char *colon = strrchr(addr, ':');
    const char *port_text = colon ? colon + 1 : addr;
    char *end = NULL;
    errno = 0;
    long port = strtol(port_text, &end, 10);
    if (!*port_text || *end || errno || port < 0 || port > 65535)
        return ms_error_set(err, MOCKSRV_EINVAL, "--listen %s: bad port \"%s\"", spec, port_text);
    if (colon && colon == addr)
        return ms_error_set(err, MOCKSRV_EINVAL, "--listen %s: empty host", spec);
    char *name = ms_strndup(spec, (size_t)(eq - spec));
    rc = api_check_listener_name(m, spec, name, err);
    if (rc != MOCKSRV_OK) {
        free(name);
        return rc;
    }
    struct ms_server *srv = &m->srv;
    srv->overrides = ms_realloc(srv->overrides, (srv->n_overrides + 1) * sizeof *srv->overrides);
    struct ms_listen_override *o = &srv->overrides[srv->n_overrides++];
    o->name = name;
    o->host = colon ? ms_strndup(addr, (size_t)(colon - addr)) : NULL;
    o->port = (int)port;
    return MOCKSRV_OK;
}

int
mocksrv_set_seed(struct mocksrv *m, uint64_t seed)
{
    if (!m || seed > INT64_MAX)
        return MOCKSRV_EINVAL;
    int rc = api_check_rest(m, NULL);
    if (rc == MOCKSRV_OK) {
        m->srv.seed = seed;
        m->srv.seed_set = 1;
    }
    return rc;
}

int
mocksrv_set_spool(struct mocksrv *m, const char *dir, struct mocksrv_error *err)
{
    if (!m || !dir)
        return ms_error_set(err, MOCKSRV_EINVAL, "mocksrv_set_spool: NULL argument");
    int rc = api_check_rest(m, err);
    if (rc != MOCKSRV_OK)
        return rc;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return ms_error_set(err, MOCKSRV_EIO, "%s: cannot create spool directory: %s", dir,
                            strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK) != 0)
        return ms_error_set(err, MOCKSRV_EIO, "%s: spool is not a writable directory", dir);
    free(m->srv.spool_dir);
    m->srv.spool_dir = ms_strdup(dir);
    return MOCKSRV_OK;
}

int
mocksrv_set_events_file(struct mocksrv *m, const char *path, struct mocksrv_error *err)
{
    if (!m || !path)
        return ms_error_set(err, MOCKSRV_EINVAL, "mocksrv_set_events_file: NULL argument");
    int rc = api_check_rest(m, err);
    if (rc != MOCKSRV_OK)
        return rc;
    return ms_events_open(&m->srv.events, path, err);
}

int
mocksrv_set_cert(struct mocksrv *m, const char *cert, const char *key)
{
    if (!m || !cert || !*cert)
        return MOCKSRV_EINVAL;
    int rc = api_check_rest(m, NULL);
    if (rc != MOCKSRV_OK)
        return rc;
    free(m->srv.cert_file);
    free(m->srv.key_file);
    m->srv.cert_file = ms_strdup(cert);
    m->srv.key_file = key ? ms_strdup(key) : NULL;
    ms_tls_ctx_destroy(&m->srv.tls_ctx); /* after a run: the next bind loads these */
    return MOCKSRV_OK;
}

int
mocksrv_set_ca_out(struct mocksrv *m, const char *path)
{
    if (!m || !path || !*path)
        return MOCKSRV_EINVAL;
    int rc = api_check_rest(m, NULL);
    if (rc != MOCKSRV_OK)
        return rc;
    free(m->srv.ca_out);
    m->srv.ca_out = ms_strdup(path);
    ms_tls_ctx_destroy(&m->srv.tls_ctx); /* after a run: the next bind writes the CA there */
    return MOCKSRV_OK;
}

int
mocksrv_set_verbosity(struct mocksrv *m, int level)
{
    if (!m || level < MOCKSRV_VERBOSITY_SILENT || level > MOCKSRV_VERBOSITY_TRANSCRIPT)
        return MOCKSRV_EINVAL;
    int rc = api_check_rest(m, NULL);
    if (rc == MOCKSRV_OK)
        m->srv.events.verbosity = level;
    return rc;
}

int
mocksrv_set_exit_after(struct mocksrv *m, unsigned n)
{
    if (!m)
        return MOCKSRV_EINVAL;
    int rc = api_check_rest(m, NULL);
    if (rc == MOCKSRV_OK)
        m->srv.exit_after = n;
    return rc;
}

int
mocksrv_set_idle_exit(struct mocksrv *m, int64_t timeout_ms)
{
    if (!m || timeout_ms < 0)
        return MOCKSRV_EINVAL;
    int rc = api_check_rest(m, NULL);
    if (rc == MOCKSRV_OK)
        m->srv.idle_exit_ms = timeout_ms;
    return rc;
}

int
mocksrv_on_event(struct mocksrv *m, mocksrv_event_fn *fn, void *arg)
{
    if (!m)
        return MOCKSRV_EINVAL;
    int rc = api_check_rest(m, NULL);
    if (rc == MOCKSRV_OK) {
        m->srv.events.fn = fn;
        m->srv.events.fn_arg = fn ? arg : NULL;
    }
    return rc;
}

/* Back to "not bound" after a run, keeping the model (scenario, mailboxes, fault and
 * expectation counters, received messages) and the certificates: the restart goes on where
 * the previous run ended. The loop is made anew: the old one ended with the run. */
static void
api_reset_run(struct mocksrv *m)
{
    struct ms_server *srv = &m->srv;
    struct ms_tls_ctx *tls = srv->tls_ctx;
    srv->tls_ctx = NULL;
    ms_server_unbind(srv);
    srv->tls_ctx = tls;
    ms_loop_destroy(&srv->loop);
    srv->idle_timer = 0;
    srv->stopping = 0;
    srv->stopped = 0;
    srv->shutdown_requested = 0;
    srv->reload_requested = 0;
    /* per run: --exit-after counts this run's sessions; mocksrv_stop reports this run's unmet
     * expectations, the counted ones (messages:, sessions:) checked again over the totals */
    srv->n_ended = 0;
    srv->expect_failures = 0;
    if (srv->sc)
        srv->sc->expect.checked = 0;
}

static int
api_bind(struct mocksrv *m, struct mocksrv_error *err)
{
    struct ms_server *srv = &m->srv;
    if (srv->thread_running)
        return ms_error_set(err, MOCKSRV_ESTATE, API_THREAD_RUNS);
    if (srv->bound && !srv->stopped)
        return ms_error_set(err, MOCKSRV_ESTATE,
                            "the server is already bound: call mocksrv_stop before binding again");
    if (srv->bound)
        api_reset_run(m);
    srv->shutdown_requested = 0; /* asked before this bind: there was nothing to stop */
    int rc = ms_server_bind(srv, err);
    if (rc != MOCKSRV_OK)
        return rc;
    m->run_seed = srv->seed;
    pthread_mutex_lock(&srv->lock);
    m->serving = 1;
    pthread_mutex_unlock(&srv->lock);
    return MOCKSRV_OK;
}

int
mocksrv_bind(struct mocksrv *m, struct mocksrv_error *err)
{
    if (!m)
        return ms_error_set(err, MOCKSRV_EINVAL, "mocksrv_bind: NULL server");
    return api_bind(m, err);
}

int
mocksrv_fd(struct mocksrv *m)
{
    if (!m)
        return MOCKSRV_EINVAL;
    if (m->srv.thread_running || !m->srv.loop)
        return MOCKSRV_ESTATE;
    return ms_loop_fd(m->srv.loop);
}

/* One loop iteration on the loop's thread (the host's in stepped mode, the server's own
 * otherwise): 0 while running, 1 once stopped, or a negative code. */
static int
api_step(struct mocksrv *m, int timeout_ms)
{
    struct ms_server *srv = &m->srv;
    int rc = srv->stopped ? MOCKSRV_OK : ms_loop_step(srv->loop, timeout_ms);
    if (rc < 0)
        return rc;
    if (!srv->stopped)
        return 0;
    api_end_serving(m);
    return 1;
}

int
mocksrv_step(struct mocksrv *m, int timeout_ms)
{
    if (!m)
        return MOCKSRV_EINVAL;
    if (m->srv.thread_running || !m->srv.bound)
        return MOCKSRV_ESTATE;
    return api_step(m, timeout_ms);
}

int
mocksrv_reload(struct mocksrv *m, struct mocksrv_error *err)
{
    if (!m)
        return ms_error_set(err, MOCKSRV_EINVAL, "mocksrv_reload: NULL server");
    struct ms_server *srv = &m->srv;
    if (!srv->bound)
        return ms_error_set(err, MOCKSRV_ESTATE, "the server is not bound");
    if (!srv->thread_running)
        return ms_server_reload(srv, err);
    pthread_mutex_lock(&srv->lock);
    int serving = m->serving;
    pthread_mutex_unlock(&srv->lock);
    if (!serving)
        return ms_error_set(err, MOCKSRV_ESTATE, "the server is stopping or has stopped");
    srv->reload_requested = 1;
    mocksrv_interrupt(m);
    return MOCKSRV_OK;
}

void
mocksrv_interrupt(struct mocksrv *m)
{
    /* only a write(2): safe in a signal handler */
    int fd = m ? m->srv.request_fd : -1;
    if (fd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(fd, &one, sizeof one);
        (void)n;
    }
}

void
mocksrv_shutdown(struct mocksrv *m)
{
    if (!m)
        return;
    m->srv.shutdown_requested = 1;
    mocksrv_interrupt(m);
    /* no message is accepted after a shutdown was asked: waiters return now */
    api_end_serving(m);
}

static void *
api_thread_main(void *arg)
{
    struct mocksrv *m = arg;
    while (api_step(m, -1) == 0) {
    }
    /* stopped, or the loop failed: either way nothing more comes */
    api_end_serving(m);
    return NULL;
}

int
mocksrv_start(struct mocksrv *m, struct mocksrv_error *err)
{
    if (!m)
        return ms_error_set(err, MOCKSRV_EINVAL, "mocksrv_start: NULL server");
    int rc = api_bind(m, err);
    if (rc != MOCKSRV_OK)
        return rc;
    m->srv.thread_running = 1;
    if (pthread_create(&m->srv.thread, NULL, api_thread_main, m) != 0) {
        m->srv.thread_running = 0;
        api_end_serving(m);
        ms_server_unbind(&m->srv);
        return ms_error_set(err, MOCKSRV_ESYS, "cannot start the server thread");
    }
    return MOCKSRV_OK;
}

int
mocksrv_stop(struct mocksrv *m)
{
    if (!m)
        return MOCKSRV_EINVAL;
    struct ms_server *srv = &m->srv;
    if (!srv->bound)
        return MOCKSRV_ESTATE;
    if (srv->thread_running && pthread_equal(pthread_self(), srv->thread))
        return MOCKSRV_ESTATE; /* from an event callback: it would wait for itself */
    mocksrv_shutdown(m);
    if (srv->thread_running) {
        pthread_join(srv->thread, NULL);
        srv->thread_running = 0;
    } else {
        while (api_step(m, 100) == 0) {
        }
    }
    return (int)srv->expect_failures;
}

int
mocksrv_port(struct mocksrv *m, const char *listener)
{
    if (!m || !listener)
        return MOCKSRV_EINVAL;
    struct ms_server *srv = &m->srv;
    for (size_t i = 0; i < srv->n_listeners; i++)
        if (strcmp(srv->listeners[i].name, listener) == 0)
            return srv->listeners[i].port;
    return MOCKSRV_ENOTFOUND;
}

const char *
mocksrv_ca_file(struct mocksrv *m)
{
    return m ? ms_tls_ctx_ca_file(m->srv.tls_ctx) : NULL;
}

uint64_t
mocksrv_seed(struct mocksrv *m)
{
    if (!m)
        return 0;
    return m->srv.thread_running ? m->run_seed : m->srv.seed;
}

char *
mocksrv_ready_json(struct mocksrv *m)
{
    if (!m)
        return NULL;
    struct ms_server *srv = &m->srv;
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string("ready"));
    json_object_set_new(o, "pid", json_integer(getpid()));
    json_object_set_new(o, "version", json_string(MOCKSRV_VERSION));
    json_object_set_new(o, "seed", json_integer((json_int_t)mocksrv_seed(m)));
    json_t *ls = json_array();
    for (size_t i = 0; i < srv->n_listeners; i++) {
        const struct ms_listener *l = &srv->listeners[i];
        json_t *j = json_object();
        json_object_set_new(j, "name", json_string(l->name));
        json_object_set_new(j, "protocol", json_string(ms_proto_name(l->protocol)));
        json_object_set_new(j, "tls", json_string(ms_tls_mode_name(l->tls)));
        json_object_set_new(j, "host", json_string(l->host));
        json_object_set_new(j, "port", json_integer(l->port));
        json_array_append_new(ls, j);
    }
    json_object_set_new(o, "listeners", ls);
    const char *ca = ms_tls_ctx_ca_file(srv->tls_ctx);
    json_object_set_new(o, "ca_file", ca ? json_string(ca) : json_null());
    json_object_set_new(o, "spool", srv->spool_dir ? json_string(srv->spool_dir) : json_null());
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

size_t
mocksrv_message_count(struct mocksrv *m)
{
    if (!m)
        return 0;
    pthread_mutex_lock(&m->srv.lock);
    size_t n = m->srv.n_msgs;
    pthread_mutex_unlock(&m->srv.lock);
    return n;
}

size_t
mocksrv_wait_messages(struct mocksrv *m, size_t n, int timeout_ms)
{
    if (!m)
        return 0;
    struct ms_server *srv = &m->srv;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    if (timeout_ms >= 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&srv->lock);
    /* api_end_serving broadcasts when serving drops: a server that cannot accept anything
     * more ends the wait */
    while (srv->n_msgs < n && m->serving) {
        int rc = timeout_ms < 0 ? pthread_cond_wait(&srv->cond, &srv->lock)
                                : pthread_cond_timedwait(&srv->cond, &srv->lock, &until);
        if (rc == ETIMEDOUT)
            break;
    }
    size_t have = srv->n_msgs;
    pthread_mutex_unlock(&srv->lock);
    return have;
}

static const char *
api_dup_into(char **arena, const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *p = *arena;
    memcpy(p, s, n);
    p[n] = '\0';
    *arena += n + 1;
    return p;
}

struct mocksrv_message *
mocksrv_message_get(struct mocksrv *m, size_t index)
{
    if (!m)
        return NULL;
    struct ms_server *srv = &m->srv;
    pthread_mutex_lock(&srv->lock);
    if (index >= srv->n_msgs) {
        pthread_mutex_unlock(&srv->lock);
        return NULL;
    }
    const struct ms_msg *src = srv->msgs[index];
    /* One allocation holds the struct, the pointer arrays and every string. */
    const char *strings[] = {src->listener,    src->helo,      src->mail_from,
                             src->mail_params, src->auth_user, src->spool_path};
    size_t total =
        sizeof(struct mocksrv_message) + 2 * src->rcpt_count * sizeof(char *) + src->blob->len + 1;
    for (size_t i = 0; i < MS_ARRAY_LEN(strings); i++)
        total += strings[i] ? strlen(strings[i]) + 1 : 0;
    for (size_t i = 0; i < src->rcpt_count; i++)
        total += strlen(src->rcpt_to[i]) + strlen(src->rcpt_params[i]) + 2;
    struct mocksrv_message *d = ms_calloc(1, total);
    const char **to = (const char **)(d + 1);
    const char **params = to + src->rcpt_count;
    char *arena = (char *)(params + src->rcpt_count);
    d->id = src->id;
    d->session = src->session;
    d->listener = api_dup_into(&arena, src->listener, strlen(src->listener));
    d->helo = src->helo ? api_dup_into(&arena, src->helo, strlen(src->helo)) : NULL;
    d->mail_from = api_dup_into(&arena, src->mail_from, strlen(src->mail_from));
    d->mail_params = api_dup_into(&arena, src->mail_params, strlen(src->mail_params));
    for (size_t i = 0; i < src->rcpt_count; i++) {
        to[i] = api_dup_into(&arena, src->rcpt_to[i], strlen(src->rcpt_to[i]));
        params[i] = api_dup_into(&arena, src->rcpt_params[i], strlen(src->rcpt_params[i]));
    }
    d->rcpt_to = to;
    d->rcpt_params = params;
    d->rcpt_count = src->rcpt_count;
    d->auth_user =
        src->auth_user ? api_dup_into(&arena, src->auth_user, strlen(src->auth_user)) : NULL;
    d->tls = src->tls;
    d->received_ms = src->received_ms;
    d->data = api_dup_into(&arena, src->blob->data, src->blob->len);
    d->size = src->blob->len;
    d->spool_path =
        src->spool_path ? api_dup_into(&arena, src->spool_path, strlen(src->spool_path)) : NULL;
    pthread_mutex_unlock(&srv->lock);
    return d;
}

void
mocksrv_message_free(struct mocksrv_message *msg)
{
    free(msg);
}

static int
api_format_state(struct mocksrv *m, const char *path, struct ms_buf *out, struct mocksrv_error *err)
{
    struct ms_server *srv = &m->srv;
    if (srv->thread_running)
        return ms_error_set(err, MOCKSRV_ESTATE, API_THREAD_RUNS);
    int rc = ms_server_ensure_scenario(srv, err);
    if (rc != MOCKSRV_OK)
        return rc;
    if (!srv->store) {
        rc = ms_store_load_scenario(srv->sc, srv->seed, &srv->store, err);
        if (rc != MOCKSRV_OK)
            return rc;
    }
    return ms_scenario_format_state(srv->sc, srv->store, path, out, err);
}

int
mocksrv_write_state(struct mocksrv *m, const char *path, struct mocksrv_error *err)
{
    if (!m || !path)
        return ms_error_set(err, MOCKSRV_EINVAL, "mocksrv_write_state: NULL argument");
    struct ms_buf out = {0};
    int rc = api_format_state(m, path, &out, err);
    if (rc == MOCKSRV_OK) {
        char *tmp = ms_asprintf("%s.tmp", path);
        FILE *f = fopen(tmp, "w");
        int ok = f != NULL;
        if (f) {
            ok = fwrite(out.data, 1, out.len, f) == out.len;
            ok = fclose(f) == 0 && ok;
        }
        if (!ok || rename(tmp, path) != 0) {
            rc = ms_error_set(err, MOCKSRV_EIO, "%s: cannot write the state: %s", path,
                              strerror(errno));
            unlink(tmp);
        }
        free(tmp);
    }
    ms_buf_fini(&out);
    return rc;
}

char *
mocksrv_state_yaml(struct mocksrv *m, struct mocksrv_error *err)
{
    if (!m) {
        ms_error_set(err, MOCKSRV_EINVAL, "mocksrv_state_yaml: NULL server");
        return NULL;
    }
    struct ms_buf out = {0};
    if (api_format_state(m, NULL, &out, err) != MOCKSRV_OK) {
        ms_buf_fini(&out);
        return NULL;
    }
    return ms_buf_steal(&out, NULL);
}
