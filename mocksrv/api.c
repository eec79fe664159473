/*
 * api.c - the public API (mocksrv.h) over the server object.
 *
 * Thread model (DESIGN.md): mocksrv_start runs the loop on one new thread; other threads reach
 * it only through the request eventfd (shutdown) and the locked message list. In stepped mode
 * the host's thread is the loop's thread.
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
    if (srv->bound && !srv->stopped)
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

static int
api_check_unbound(struct mocksrv *m, struct mocksrv_error *err)
{
    if (m->srv.bound)
        return ms_error_set(err, MOCKSRV_ESTATE, "the server is already bound");
    return MOCKSRV_OK;
}

static int
api_set_scenario(struct mocksrv *m, int rc, struct ms_scenario *sc, struct mocksrv_error *err)
{
    if (rc == MOCKSRV_OK && (rc = ms_faults_check_supported(sc, err)) != MOCKSRV_OK)
        ms_scenario_destroy(&sc);
    if (rc == MOCKSRV_OK) {
        ms_scenario_destroy(&m->srv.sc);
        m->srv.sc = sc;
    }
    return rc;
}

int
mocksrv_load_file(struct mocksrv *m, const char *path, struct mocksrv_error *err)
{
    int rc = api_check_unbound(m, err);
    if (rc != MOCKSRV_OK)
        return rc;
    struct ms_scenario *sc = NULL;
    rc = ms_scenario_load_file(path, &sc, err);
    if (rc == MOCKSRV_OK) {
        free(m->srv.scenario_path);
        m->srv.scenario_path = ms_strdup(path);
    }
    return api_set_scenario(m, rc, sc, err);
}

int
mocksrv_load_string(struct mocksrv *m, const char *yaml, size_t len, const char *name,
                    struct mocksrv_error *err)
{
    int rc = api_check_unbound(m, err);
    if (rc != MOCKSRV_OK)
        return rc;
    struct ms_scenario *sc = NULL;
    rc = ms_scenario_load_string(yaml, len, name ? name : "<string>", ".", &sc, err);
    if (rc == MOCKSRV_OK) {
        free(m->srv.scenario_path);
        free(m->srv.scenario_text);
        free(m->srv.scenario_name);
        m->srv.scenario_path = NULL;
        m->srv.scenario_text = ms_strndup(yaml, len);
        m->srv.scenario_len = len;
        m->srv.scenario_name = ms_strdup(name ? name : "<string>");
    }
    return api_set_scenario(m, rc, sc, err);
}

void
mocksrv_set_ephemeral(struct mocksrv *m, int on)
{
    m->srv.ephemeral = on;
}

int
mocksrv_set_bind_host(struct mocksrv *m, const char *host)
{
    if (!host || !*host)
        return MOCKSRV_EINVAL;
    free(m->srv.bind_host);
    m->srv.bind_host = ms_strdup(host);
    return MOCKSRV_OK;
}

int
mocksrv_listen(struct mocksrv *m, const char *spec, struct mocksrv_error *err)
{
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
    struct ms_server *srv = &m->srv;
    srv->overrides = ms_realloc(srv->overrides, (srv->n_overrides + 1) * sizeof *srv->overrides);
    struct ms_listen_override *o = &srv->overrides[srv->n_overrides++];
    o->name = ms_strndup(spec, (size_t)(eq - spec));
    o->host = colon ? ms_strndup(addr, (size_t)(colon - addr)) : NULL;
    o->port = (int)port;
    return MOCKSRV_OK;
}

void
mocksrv_set_seed(struct mocksrv *m, uint64_t seed)
{
    m->srv.seed = seed;
    m->srv.seed_set = 1;
}

int
mocksrv_set_spool(struct mocksrv *m, const char *dir, struct mocksrv_error *err)
{
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
    return ms_events_open(&m->srv.events, path, err);
}

int
mocksrv_set_cert(struct mocksrv *m, const char *cert, const char *key)
{
    if (!cert || !*cert)
        return MOCKSRV_EINVAL;
    free(m->srv.cert_file);
    free(m->srv.key_file);
    m->srv.cert_file = ms_strdup(cert);
    m->srv.key_file = key ? ms_strdup(key) : NULL;
    return MOCKSRV_OK;
}

int
mocksrv_set_ca_out(struct mocksrv *m, const char *path)
{
    if (!path || !*path)
        return MOCKSRV_EINVAL;
    free(m->srv.ca_out);
    m->srv.ca_out = ms_strdup(path);
    return MOCKSRV_OK;
}

void
mocksrv_set_verbosity(struct mocksrv *m, int level)
{
    m->srv.events.verbosity = level;
}

void
mocksrv_set_exit_after(struct mocksrv *m, unsigned n)
{
    m->srv.exit_after = n;
}

void
mocksrv_set_idle_exit(struct mocksrv *m, int64_t timeout_ms)
{
    m->srv.idle_exit_ms = timeout_ms;
}

void
mocksrv_on_event(struct mocksrv *m, mocksrv_event_fn *fn, void *arg)
{
    m->srv.events.fn = fn;
    m->srv.events.fn_arg = arg;
}

int
mocksrv_bind(struct mocksrv *m, struct mocksrv_error *err)
{
    return ms_server_bind(&m->srv, err);
}

int
mocksrv_fd(struct mocksrv *m)
{
    return m->srv.loop ? ms_loop_fd(m->srv.loop) : -1;
}

int
mocksrv_step(struct mocksrv *m, int timeout_ms)
{
    struct ms_server *srv = &m->srv;
    if (!srv->bound)
        return MOCKSRV_ESTATE;
    if (srv->stopped)
        return 1;
    int rc = ms_loop_step(srv->loop, timeout_ms);
    if (rc < 0)
        return rc;
    return srv->stopped ? 1 : 0;
}

int
mocksrv_reload(struct mocksrv *m, struct mocksrv_error *err)
{
    struct ms_server *srv = &m->srv;
    if (!srv->bound)
        return ms_error_set(err, MOCKSRV_ESTATE, "the server is not bound");
    if (!srv->thread_running)
        return ms_server_reload(srv, err);
    srv->reload_requested = 1;
    mocksrv_interrupt(m);
    return MOCKSRV_OK;
}

void
mocksrv_interrupt(struct mocksrv *m)
{
    /* only a write(2): safe in a signal handler */
    int fd = m->srv.request_fd;
    if (fd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(fd, &one, sizeof one);
        (void)n;
    }
}

void
mocksrv_shutdown(struct mocksrv *m)
{
    m->srv.shutdown_requested = 1;
    mocksrv_interrupt(m);
}

static void *
api_thread_main(void *arg)
{
    struct mocksrv *m = arg;
    while (mocksrv_step(m, -1) == 0) {
    }
    return NULL;
}

int
mocksrv_start(struct mocksrv *m, struct mocksrv_error *err)
{
    int rc = mocksrv_bind(m, err);
    if (rc != MOCKSRV_OK)
        return rc;
    if (pthread_create(&m->srv.thread, NULL, api_thread_main, m) != 0) {
        ms_server_unbind(&m->srv);
        return ms_error_set(err, MOCKSRV_ESYS, "cannot start the server thread");
    }
    m->srv.thread_running = 1;
    return MOCKSRV_OK;
}

int
mocksrv_stop(struct mocksrv *m)
{
    struct ms_server *srv = &m->srv;
    if (!srv->bound)
        return MOCKSRV_ESTATE;
    mocksrv_shutdown(m);
    if (srv->thread_running) {
        pthread_join(srv->thread, NULL);
        srv->thread_running = 0;
    } else {
        while (mocksrv_step(m, 100) == 0) {
        }
    }
    return (int)srv->expect_failures;
}

int
mocksrv_port(struct mocksrv *m, const char *listener)
{
    struct ms_server *srv = &m->srv;
    for (size_t i = 0; i < srv->n_listeners; i++)
        if (strcmp(srv->listeners[i].name, listener) == 0)
            return srv->listeners[i].port;
    return MOCKSRV_ENOTFOUND;
}

const char *
mocksrv_ca_file(struct mocksrv *m)
{
    return ms_tls_ctx_ca_file(m->srv.tls_ctx);
}

uint64_t
mocksrv_seed(struct mocksrv *m)
{
    return m->srv.seed;
}

char *
mocksrv_ready_json(struct mocksrv *m)
{
    struct ms_server *srv = &m->srv;
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string("ready"));
    json_object_set_new(o, "pid", json_integer(getpid()));
    json_object_set_new(o, "version", json_string(MOCKSRV_VERSION));
    json_object_set_new(o, "seed", json_integer((json_int_t)srv->seed));
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
    pthread_mutex_lock(&m->srv.lock);
    size_t n = m->srv.n_msgs;
    pthread_mutex_unlock(&m->srv.lock);
    return n;
}

size_t
mocksrv_wait_messages(struct mocksrv *m, size_t n, int timeout_ms)
{
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
    while (srv->n_msgs < n) {
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
    struct ms_buf out = {0};
    if (api_format_state(m, NULL, &out, err) != MOCKSRV_OK) {
        ms_buf_fini(&out);
        return NULL;
    }
    return ms_buf_steal(&out, NULL);
}
