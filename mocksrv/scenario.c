/*
 * scenario.c - the YAML scenario loader's entry points and the model's top level: bytes in,
 * struct ms_scenario out (see scenario.h).
 *
 * Two passes. First libyaml's event parser builds a small tree of our own (struct scenario_node,
 * scenario_yaml.c) in which every node keeps its position. Then a table-driven walk turns the
 * tree into the model: each mapping of the scenario has a table of its keys (struct
 * scenario_field, scenario_int.h) giving the type, the destination field, the allowed range and,
 * where needed, a function of its own. This file holds the table of the top-level keys and the
 * tables of the plain settings sections (tls, smtp, pop3, imap, limits), the custom keys among
 * them (version, seed, imap.capabilities, the tls file check), the checks that need the whole
 * document (scenario_check_top), and ms_scenario_load_file, _string, _string_embedded,
 * _default, ms_scenario_destroy and the look-ups.
 *
 * Not here: the tree and the walk (scenario_yaml.c), listeners and their scripts
 * (scenario_script.c), users, mailboxes and messages (scenario_mail.c), faults
 * (scenario_faults.c), expectations (scenario_expect.c), the state writer (scenario_state.c);
 * TLS, sockets, building the mail store. Paths (tls.cert ...) are resolved against the
 * scenario's directory. tls.cert, tls.key and tls.client_ca are read at load time, which tls.c
 * checks (ms_tls_check_files: PEM, a certificate, a matching key), so that a bad one is an error
 * with its position. Keys of later stages are errors that say so, never silently ignored: a
 * scenario is either understood completely or refused.
 *
 * Invariants:
 *   - The first error wins. It fills struct mocksrv_error with MOCKSRV_ESCENARIO, the file
 *     name, the 1-based line and column of the offending node and the message
 *     "file:line:column: key.path: problem"; the loader then frees all it built.
 *   - Bad input never aborts; only out-of-memory aborts (ms_malloc). The loader is meant to be
 *     fuzzed.
 *   - Every char * in a struct ms_scenario is NUL-free text owned by the scenario, except
 *     ms_message_conf.bytes, which has its length (a raw string may hold a "\0").
 *   - Checks that need the whole document (limits.message_size against the messages, which
 *     may come before limits: in the file; fault and expectation listener names against
 *     listeners:) run in scenario_check_top, after the walk.
 */
#include "scenario_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tls.h"

#define SCENARIO_MAX_FILE (64u << 20) /* bytes of a scenario file */

/* ---- custom keys ---- */

static int
scenario_parse_version(struct scenario_ctx *ctx, const struct scenario_node *key,
                       const struct scenario_node *val, const char *path, void *base)
{
    struct ms_scenario *sc = base;
    uint64_t v;
    int rc = scenario_get_uint(ctx, val, path, 0, UINT64_MAX, &v);
    if (rc != MOCKSRV_OK)
        return rc;
    if (v != 1) {
        char text[SCENARIO_TEXT_MAX * 4 + 8];
        return scenario_fail(ctx, val->pos, path,
                             "unsupported version %s (this mocksrv reads version 1)",
                             scenario_text(text, sizeof text, val));
    }
    sc->version = 1;
    return MOCKSRV_OK;
}

static int
scenario_parse_seed(struct scenario_ctx *ctx, const struct scenario_node *key,
                    const struct scenario_node *val, const char *path, void *base)
{
    struct ms_scenario *sc = base;
    /* at most 2^63-1: what --seed takes and the ready line's JSON integer carries */
    int rc = scenario_get_uint(ctx, val, path, 0, INT64_MAX, &sc->seed);
    if (rc == MOCKSRV_OK)
        sc->has_seed = 1;
    return rc;
}

static int
scenario_parse_capabilities(struct scenario_ctx *ctx, const struct scenario_node *key,
                            const struct scenario_node *val, const char *path, void *base)
{
    struct ms_imap_conf *imap = base;
    if (val->kind == SCENARIO_SCALAR && ms_strcaseeq(val->text, "default")) {
        scenario_strings_free(&imap->capabilities, &imap->n_capabilities);
        return MOCKSRV_OK;
    }
    if (val->kind != SCENARIO_SEQ)
        return scenario_fail_type(ctx, val, path, "\"default\" or a list of capabilities");
    return scenario_get_strings(ctx, val, path, SC_ATOM, &imap->capabilities,
                                &imap->n_capabilities);
}

/* Whether path names nothing (ENOENT, ENOTDIR); any other problem is found by reading it. */
static int
scenario_missing(const char *path)
{
    struct stat st;
    return stat(path, &st) != 0 && (errno == ENOENT || errno == ENOTDIR);
}

static int
scenario_check_tls(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                   void *base)
{
    struct ms_tls_conf *tls = base;
    char kpath[SCENARIO_PATH_MAX];
    if (!tls->cert != !tls->key) {
        const struct scenario_node *key = scenario_map_get(map, tls->cert ? "cert" : "key");
        ms_assert(key);
        scenario_path_key(kpath, path, key);
        return scenario_fail(ctx, key->pos, kpath, "needs tls.%s too", tls->cert ? "key" : "cert");
    }
    /* Read now, so that a file that is not PEM, a certificate file without a certificate or
     * a key that does not match is refused here with its position, not at the first
     * handshake (issue 10). A file that does not exist yet is left to the start, which
     * refuses it (ms_tls_ctx_create): it may be made after the check, as the build makes
     * certs/, and a scenario that names files elsewhere still loads for what it says. The
     * files of an embedded scenario are not on disk: they are checked at start too. */
    if (ctx->embedded_dir)
        return MOCKSRV_OK;
    struct ms_tls_options opt = {0};
    if (tls->cert && !scenario_missing(tls->cert) && !scenario_missing(tls->key)) {
        opt.cert = tls->cert;
        opt.key = tls->key;
    }
    if (tls->client_ca && !scenario_missing(tls->client_ca))
        opt.client_ca = tls->client_ca;
    if (!opt.cert && !opt.client_ca)
        return MOCKSRV_OK;
    struct mocksrv_error why = {0};
    enum ms_tls_file bad = MS_TLS_FILE_CERT;
    if (ms_tls_check_files(&opt, &bad, &why) == MOCKSRV_OK)
        return MOCKSRV_OK;
    const struct scenario_node *key = scenario_map_get(map, ms_tls_file_key(bad));
    ms_assert(key);
    scenario_path_key(kpath, path, key);
    return scenario_fail(ctx, key->pos, kpath, "%s", why.message);
}

/* ---- the settings sections: tls, smtp, pop3, imap, limits ---- */

static const struct scenario_field scenario_tls_fields[] = {
    F_PATH("cert", struct ms_tls_conf, cert),
    F_PATH("key", struct ms_tls_conf, key),
    F_PATH("client_ca", struct ms_tls_conf, client_ca),
    F_NAMES("min_version", SK_ENUM, struct ms_tls_conf, min_version, scenario_tls_versions,
            "TLS version"),
};
static const struct scenario_table scenario_tls_table =
    TABLE(scenario_tls_fields, scenario_check_tls);

static const struct scenario_field scenario_smtp_fields[] = {
    /* At least 1: the session enforces the smaller of max_size and limits.message_size. */
    F_NUM("max_size", SK_SIZE, struct ms_smtp_conf, max_size, 1, SIZE_MAX),
    F_NAMES("auth", SK_FLAGS, struct ms_smtp_conf, auth, scenario_mechanisms, "mechanism"),
    F_BOOL("require_auth", struct ms_smtp_conf, require_auth),
    F_NAMES("extensions", SK_FLAGS, struct ms_smtp_conf, extensions, scenario_extensions,
            "extension"),
    F_BOOL("deliver", struct ms_smtp_conf, deliver),
};
static const struct scenario_table scenario_smtp_table = TABLE(scenario_smtp_fields, NULL);

static const struct scenario_field scenario_pop3_fields[] = {
    F_NAMES("auth", SK_FLAGS, struct ms_pop3_conf, auth, scenario_mechanisms, "mechanism"),
    F_BOOL("apop", struct ms_pop3_conf, apop),
};
static const struct scenario_table scenario_pop3_table = TABLE(scenario_pop3_fields, NULL);

static const struct scenario_field scenario_imap_fields[] = {
    F_CUSTOM("capabilities", scenario_parse_capabilities),
    F_NAMES("auth", SK_FLAGS, struct ms_imap_conf, auth, scenario_mechanisms, "mechanism"),
};
static const struct scenario_table scenario_imap_table = TABLE(scenario_imap_fields, NULL);

static const struct scenario_field scenario_limits_fields[] = {
    /* RFC 5321 4.5.3.1.4: 512 octets is the minimum a server must accept. */
    F_NUM("smtp_line_length", SK_SIZE, struct ms_limits, smtp_line_length, 512, 64 * SCENARIO_KIB),
    /* RFC 2449 4: 255 octets for a command line. */
    F_NUM("pop3_line_length", SK_SIZE, struct ms_limits, pop3_line_length, 255, 64 * SCENARIO_KIB),
    F_NUM("imap_line_length", SK_SIZE, struct ms_limits, imap_line_length, 1024, 16 * SCENARIO_MIB),
    F_NUM("message_size", SK_SIZE, struct ms_limits, message_size, 1, SCENARIO_GIB),
    F_NUM("literal_size", SK_SIZE, struct ms_limits, literal_size, 1, SCENARIO_GIB),
    F_NUM("sessions", SK_UINT, struct ms_limits, sessions, 1, 1000000),
    F_NUM("idle_timeout", SK_DURATION, struct ms_limits, idle_timeout_ms, 1, 7 * SCENARIO_DAY_MS),
    F_NUM("bad_commands", SK_UINT, struct ms_limits, bad_commands, 1, 1000000),
};
static const struct scenario_table scenario_limits_table = TABLE(scenario_limits_fields, NULL);

/* ---- the top level ---- */

static int
scenario_check_top(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                   void *base)
{
    struct ms_scenario *sc = base;
    if (!sc->hostname)
        sc->hostname = ms_strdup("localhost");
    if (!ctx->seen_listeners) {
        /* The default set for this stage: plain SMTP on GreenMail's port. */
        struct ms_listener_conf std;
        ms_assert(ms_listener_standard("smtp", &std) == MOCKSRV_OK);
        sc->listeners = ms_calloc(1, sizeof *sc->listeners);
        sc->listeners[0] = std;
        sc->listeners[0].name = ms_strdup(std.name);
        sc->listeners[0].tls = MS_TLS_NONE;
        sc->n_listeners = 1;
    }
    int rc = scenario_check_fault_listeners(ctx, sc, map);
    if (rc != MOCKSRV_OK)
        return rc;
    if ((rc = scenario_check_expect_listeners(ctx, sc, map)) != MOCKSRV_OK)
        return rc;
    if ((rc = scenario_check_sizes(ctx, sc)) != MOCKSRV_OK)
        return rc;
    return scenario_check_memory(ctx, sc);
}

static const struct scenario_field scenario_top_fields[] = {
    F_CUSTOM("version", scenario_parse_version),
    F_CUSTOM("seed", scenario_parse_seed),
    F_STRING("hostname", struct ms_scenario, hostname, SC_HOST),
    F_CUSTOM("listeners", scenario_parse_listeners),
    F_SECTION("tls", struct ms_scenario, tls, scenario_tls_table),
    F_SECTION("smtp", struct ms_scenario, smtp, scenario_smtp_table),
    F_SECTION("pop3", struct ms_scenario, pop3, scenario_pop3_table),
    F_SECTION("imap", struct ms_scenario, imap, scenario_imap_table),
    F_CUSTOM("users", scenario_parse_users),
    F_SECTION("limits", struct ms_scenario, limits, scenario_limits_table),
    F_CUSTOM("faults", scenario_parse_faults),
    F_CUSTOM("expect", scenario_parse_expect),
};
static const struct scenario_table scenario_top_table =
    TABLE(scenario_top_fields, scenario_check_top);

/* ---- the model ---- */

static struct ms_scenario *
scenario_create(const char *name, const char *base_dir)
{
    struct ms_scenario *sc = ms_calloc(1, sizeof *sc);
    sc->path = ms_strdup(name);
    sc->base_dir = ms_strdup(base_dir);
    sc->version = 1;
    sc->smtp.max_size = 10 * SCENARIO_MIB;
    sc->smtp.auth =
        MS_AUTH_PLAIN | MS_AUTH_LOGIN | MS_AUTH_CRAM_MD5 | MS_AUTH_XOAUTH2 | MS_AUTH_OAUTHBEARER;
    sc->smtp.require_auth = 0;
    sc->smtp.extensions = MS_EXT_DEFAULT;
    sc->smtp.deliver = 1;
    sc->pop3.auth = MS_AUTH_PLAIN | MS_AUTH_LOGIN | MS_AUTH_XOAUTH2;
    sc->pop3.apop = 0;
    sc->imap.auth = MS_AUTH_PLAIN | MS_AUTH_LOGIN | MS_AUTH_XOAUTH2;
    sc->limits.smtp_line_length = 512;
    sc->limits.pop3_line_length = 512;
    sc->limits.imap_line_length = 64 * SCENARIO_KIB;
    sc->limits.message_size = 64 * SCENARIO_MIB;
    sc->limits.literal_size = 64 * SCENARIO_MIB;
    sc->limits.sessions = 10000;
    sc->limits.idle_timeout_ms = 10 * 60 * 1000;
    sc->limits.bad_commands = 20;
    return sc;
}

void
ms_scenario_destroy(struct ms_scenario **scp)
{
    struct ms_scenario *sc = *scp;
    if (!sc)
        return;
    for (size_t i = 0; i < sc->n_listeners; i++) {
        free(sc->listeners[i].name);
        free(sc->listeners[i].host);
        scenario_script_free(&sc->listeners[i].script, &sc->listeners[i].n_script);
    }
    free(sc->listeners);
    for (size_t i = 0; i < sc->n_users; i++) {
        free(sc->users[i].name);
        free(sc->users[i].password);
        scenario_strings_free(&sc->users[i].addresses, &sc->users[i].n_addresses);
        for (size_t k = 0; k < sc->users[i].n_mailboxes; k++)
            scenario_mailbox_fini(&sc->users[i].mailboxes[k]);
        free(sc->users[i].mailboxes);
    }
    free(sc->users);
    ms_faults_fini(&sc->faults);
    for (size_t i = 0; i < sc->expect.n_entries; i++)
        scenario_expect_fini(&sc->expect.entries[i]);
    free(sc->expect.entries);
    free(sc->expect.run);
    scenario_strings_free(&sc->imap.capabilities, &sc->imap.n_capabilities);
    free(sc->tls.cert);
    free(sc->tls.key);
    free(sc->tls.client_ca);
    free(sc->hostname);
    free(sc->path);
    free(sc->base_dir);
    free(sc);
    *scp = NULL;
}

static int
scenario_load(const char *yaml, size_t len, const char *name, const char *base_dir,
              const char *embedded_dir, struct ms_scenario **sc_r, struct mocksrv_error *err)
{
    struct scenario_ctx ctx = {
        .name = name ? name : "<string>",
        .base_dir = base_dir ? base_dir : ".",
        .err = err,
        .embedded_dir = embedded_dir,
    };
    struct scenario_node *root = NULL;
    struct ms_scenario *sc = NULL;
    *sc_r = NULL;
    int rc = scenario_build(&ctx, (const unsigned char *)(yaml ? yaml : ""), yaml ? len : 0, &root);
    if (rc != MOCKSRV_OK)
        return rc;
    sc = scenario_create(ctx.name, ctx.base_dir);
    if (scenario_is_null(root))
        rc = scenario_fail_type(&ctx, root, "", "a mapping (e.g. version: 1)");
    else
        rc = scenario_walk(&ctx, root, "", &scenario_top_table, sc);
    scenario_node_free(root);
    if (rc != MOCKSRV_OK) {
        ms_scenario_destroy(&sc);
        return rc;
    }
    *sc_r = sc;
    return MOCKSRV_OK;
}

int
ms_scenario_load_string(const char *yaml, size_t len, const char *name, const char *base_dir,
                        struct ms_scenario **sc_r, struct mocksrv_error *err)
{
    return scenario_load(yaml, len, name, base_dir, NULL, sc_r, err);
}

int
ms_scenario_load_string_embedded(const char *yaml, size_t len, const char *name,
                                 const char *embedded_dir, struct ms_scenario **sc_r,
                                 struct mocksrv_error *err)
{
    return scenario_load(yaml, len, name, ".", embedded_dir ? embedded_dir : ".", sc_r, err);
}

static int
scenario_fail_io(struct mocksrv_error *err, const char *path, int errnum)
{
    char buf[128];
    const char *text = strerror_r(errnum, buf, sizeof buf);
    if (err) {
        memset(err, 0, sizeof *err);
        if (snprintf(err->file, sizeof err->file, "%s", path) < 0)
            err->file[0] = '\0';
    }
    return ms_error_set(err, MOCKSRV_EIO, "%s: cannot read: %s", path, text);
}

int
ms_scenario_load_file(const char *path, struct ms_scenario **sc_r, struct mocksrv_error *err)
{
    struct ms_buf data = {0};
    struct stat st;
    char *dir = NULL;
    int rc;
    *sc_r = NULL;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return scenario_fail_io(err, path, errno);
    if (fstat(fd, &st) != 0) {
        rc = scenario_fail_io(err, path, errno);
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = scenario_fail_io(err, path, EISDIR);
        goto done;
    }
    for (;;) {
        ms_buf_reserve(&data, 64 * 1024);
        ssize_t n = read(fd, data.data + data.len, data.cap - data.len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = scenario_fail_io(err, path, errno);
            goto done;
        }
        if (n == 0)
            break;
        data.len += (size_t)n;
        if (data.len > SCENARIO_MAX_FILE) {
            rc = scenario_fail_io(err, path, EFBIG);
            goto done;
        }
    }
    const char *slash = strrchr(path, '/');
    dir = !slash          ? ms_strdup(".")
          : slash == path ? ms_strdup("/")
                          : ms_strndup(path, (size_t)(slash - path));
    rc = ms_scenario_load_string(data.data, data.len, path, dir, sc_r, err);

done:
    close(fd);
    free(dir);
    ms_buf_fini(&data);
    return rc;
}

int
ms_scenario_load_default(struct ms_scenario **sc_r, struct mocksrv_error *err)
{
    /* fixtures/scenarios/default.yaml, so its "../mail/x.eml" is the embedded "mail/x.eml" */
    const struct ms_embedded_file *f = ms_embedded_find("scenarios/default.yaml");
    *sc_r = NULL;
    if (!f)
        return ms_error_set(err, MOCKSRV_ENOTFOUND,
                            "<default>: scenarios/default.yaml is not embedded in this build");
    return ms_scenario_load_string_embedded((const char *)f->data, f->len, "<default>", "scenarios",
                                            sc_r, err);
}

const struct ms_user *
ms_scenario_find_user(const struct ms_scenario *sc, const char *name)
{
    if (!sc || !name)
        return NULL;
    for (size_t i = 0; i < sc->n_users; i++) {
        const struct ms_user *u = &sc->users[i];
        if (ms_strcaseeq(u->name, name))
            return u;
        for (size_t j = 0; j < u->n_addresses; j++)
            if (ms_strcaseeq(u->addresses[j], name))
                return u;
    }
    return NULL;
}

const struct ms_listener_conf *
ms_scenario_find_listener(const struct ms_scenario *sc, const char *name)
{
    if (!sc || !name)
        return NULL;
    for (size_t i = 0; i < sc->n_listeners; i++)
        if (strcmp(sc->listeners[i].name, name) == 0)
            return &sc->listeners[i];
    return NULL;
}
