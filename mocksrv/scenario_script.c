/*
 * scenario_script.c - listeners: and a script listener's steps (listeners.NAME.script,
 * SPEC 3.4): each listener's table, the default set when the key is left out, and the steps,
 * which become struct ms_script_step (scenario.h).
 *
 * Not here: running a script (script.c), the standard listener names and ports
 * (ms_listener_standard, scenario_yaml.c), and whether a fault or an expectation names a
 * listener that exists, which needs the whole document (scenario_check_top, scenario.c).
 *
 * Invariants:
 *   - A script goes with protocol: script and back; a script listener's tls is none or
 *     implicit, and an implicit one has no starttls step.
 *   - Listener names are 1 to 64 letters, digits, '-' and '_' (they become MOCKSRV_<NAME>_PORT
 *     in the environment of -- CMD).
 */
#include "scenario_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- listeners.NAME.script (SPEC 3.4; the model in scenario.h, the engine in script.c) ---- */

#define SCENARIO_STEP_KEYS "send, raw, expect, delay, close or starttls"

static const struct scenario_name scenario_script_closes[] = {
    {"fin", MS_CLOSE_FIN},
    {"rst", MS_CLOSE_RST},
    {"reset", MS_CLOSE_RST}, /* SPEC 3.4's example spells it so */
    {"half", MS_CLOSE_HALF},
};

void
scenario_script_free(struct ms_script_step **steps, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        free((*steps)[i].bytes);
        scenario_strings_free(&(*steps)[i].lines, &(*steps)[i].n_lines);
    }
    free(*steps);
    *steps = NULL;
    *n = 0;
}

/* send: a line or a list of lines, one reply; each line gets CRLF unless it ends in LF. */
static int
scenario_parse_step_send(struct scenario_ctx *ctx, const struct scenario_node *key,
                         const struct scenario_node *val, const char *path, void *base)
{
    struct ms_script_step *st = base;
    char ipath[SCENARIO_PATH_MAX];
    int list = val->kind == SCENARIO_SEQ;
    size_t n = list ? val->n_kids : 1;
    if (val->kind == SCENARIO_MAP || scenario_is_null(val))
        return scenario_fail_type(ctx, val, path, "a line or a list of lines");
    if (n == 0)
        return scenario_fail(ctx, val->pos, path, "an empty list (send at least one line)");
    st->op = MS_SCRIPT_SEND;
    st->lines = ms_calloc(n, sizeof *st->lines);
    struct ms_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        const struct scenario_node *item = list ? val->kids[i] : val;
        const char *ip = path;
        if (list) {
            scenario_path_index(ipath, path, i);
            ip = ipath;
        }
        if (item->kind != SCENARIO_SCALAR || scenario_is_null(item)) {
            ms_buf_fini(&b);
            return scenario_fail_type(ctx, item, ip, "a line");
        }
        if (strlen(item->text) != item->len) {
            ms_buf_fini(&b);
            return scenario_fail(ctx, item->pos, ip,
                                 "a line holds no NUL byte (use raw for exact bytes)");
        }
        st->lines[st->n_lines++] = ms_strndup(item->text, item->len);
        ms_buf_append(&b, item->text, item->len);
        if (item->len == 0 || item->text[item->len - 1] != '\n')
            ms_buf_puts(&b, "\r\n");
    }
    st->bytes = ms_buf_steal(&b, &st->len);
    return MOCKSRV_OK;
}

/* raw: exact bytes, nothing added; YAML escapes ("\n", "\0") write any byte. */
static int
scenario_parse_step_raw(struct scenario_ctx *ctx, const struct scenario_node *key,
                        const struct scenario_node *val, const char *path, void *base)
{
    struct ms_script_step *st = base;
    if (val->kind != SCENARIO_SCALAR || scenario_is_null(val) || val->len == 0)
        return scenario_fail_type(ctx, val, path,
                                  "a non-empty string (exact bytes, \"250 OK\\n\")");
    st->op = MS_SCRIPT_SEND;
    st->raw = 1;
    st->bytes = ms_strndup(val->text, val->len); /* a copy of len bytes, NULs included */
    st->len = val->len;
    return MOCKSRV_OK;
}

static int
scenario_parse_step_expect(struct scenario_ctx *ctx, const struct scenario_node *key,
                           const struct scenario_node *val, const char *path, void *base)
{
    struct ms_script_step *st = base;
    if (val->kind != SCENARIO_SCALAR || scenario_is_null(val) || strlen(val->text) != val->len)
        return scenario_fail_type(ctx, val, path, "a glob for one line, like \"EHLO *\"");
    if (strpbrk(val->text, "\r\n"))
        return scenario_fail(ctx, val->pos, path,
                             "a glob holds no CR or LF (it matches one line without its line "
                             "end)");
    st->op = MS_SCRIPT_EXPECT;
    st->bytes = ms_strndup(val->text, val->len);
    st->len = val->len;
    return MOCKSRV_OK;
}

static int
scenario_parse_step_delay(struct scenario_ctx *ctx, const struct scenario_node *key,
                          const struct scenario_node *val, const char *path, void *base)
{
    struct ms_script_step *st = base;
    st->op = MS_SCRIPT_DELAY;
    return scenario_get_duration(ctx, val, path, 0, 7 * SCENARIO_DAY_MS, &st->delay_ms);
}

static int
scenario_parse_step_close(struct scenario_ctx *ctx, const struct scenario_node *key,
                          const struct scenario_node *val, const char *path, void *base)
{
    static const struct scenario_field f = {.names = scenario_script_closes,
                                            .n_names = MS_ARRAY_LEN(scenario_script_closes),
                                            .what = "close"};
    struct ms_script_step *st = base;
    unsigned how;
    int rc = scenario_get_name(ctx, val, path, &f, &how);
    st->op = MS_SCRIPT_CLOSE;
    st->how = (enum ms_close_how)how;
    return rc;
}

static int
scenario_parse_step_starttls(struct scenario_ctx *ctx, const struct scenario_node *key,
                             const struct scenario_node *val, const char *path, void *base)
{
    struct ms_script_step *st = base;
    int on = 0;
    int rc = scenario_get_bool(ctx, val, path, &on);
    if (rc != MOCKSRV_OK)
        return rc;
    if (!on)
        return scenario_fail(ctx, val->pos, path, "starttls: false does nothing (leave it out)");
    st->op = MS_SCRIPT_STARTTLS;
    return MOCKSRV_OK;
}

static const struct scenario_field scenario_step_fields[] = {
    F_CUSTOM("send", scenario_parse_step_send),
    F_CUSTOM("raw", scenario_parse_step_raw),
    F_CUSTOM("expect", scenario_parse_step_expect),
    F_CUSTOM("delay", scenario_parse_step_delay),
    F_CUSTOM("close", scenario_parse_step_close),
    F_CUSTOM("starttls", scenario_parse_step_starttls),
};
static const struct scenario_table scenario_step_table = TABLE(scenario_step_fields, NULL);

/* A list of steps, each a mapping of one key. A close ends the dialogue, so it comes last;
 * TLS starts at most once. Whether the listener may have a script at all (its protocol, its
 * tls) is checked with the listener, in scenario_parse_listeners. */
static int
scenario_parse_script(struct scenario_ctx *ctx, const struct scenario_node *key,
                      const struct scenario_node *val, const char *path, void *base)
{
    struct scenario_listener *l = base;
    char ipath[SCENARIO_PATH_MAX], kpath[SCENARIO_PATH_MAX], text[SCENARIO_TEXT_MAX * 4 + 8];
    const struct ms_script_step *tls = NULL;
    if (val->kind != SCENARIO_SEQ)
        return scenario_fail_type(ctx, val, path,
                                  "a list of steps, like [{send: \"220 odd.example\"}, "
                                  "{expect: \"QUIT\"}]");
    if (val->n_kids == 0)
        return scenario_fail(ctx, val->pos, path, "an empty script (give at least one step)");
    l->script = ms_calloc(val->n_kids, sizeof *l->script);
    l->script_pos = key->pos;
    for (size_t i = 0; i < val->n_kids; i++) {
        const struct scenario_node *item = val->kids[i];
        scenario_path_index(ipath, path, i);
        if (item->kind != SCENARIO_MAP)
            return scenario_fail_type(ctx, item, ipath,
                                      "a step (a mapping with one key: " SCENARIO_STEP_KEYS ")");
        if (item->n_kids == 0)
            return scenario_fail(ctx, item->pos, ipath,
                                 "an empty step (one key: " SCENARIO_STEP_KEYS ")");
        if (item->n_kids > 2) {
            const struct scenario_node *second = item->kids[2];
            scenario_path_key(kpath, ipath, second);
            return scenario_fail(ctx, second->pos, kpath,
                                 "a step has one key: make \"%s\" a step of its own "
                                 "(- %s: ...)",
                                 scenario_text(text, sizeof text, second),
                                 scenario_text(text, sizeof text, second));
        }
        if (i > 0 && l->script[i - 1].op == MS_SCRIPT_CLOSE)
            return scenario_fail(ctx, item->pos, ipath,
                                 "nothing may follow close (at %d:%d): it ends the session",
                                 l->script[i - 1].pos.line, l->script[i - 1].pos.column);
        struct ms_script_step *st = &l->script[l->n_script++];
        st->pos = item->kids[0]->pos;
        int rc = scenario_walk(ctx, item, ipath, &scenario_step_table, st);
        if (rc != MOCKSRV_OK)
            return rc;
        if (st->op == MS_SCRIPT_STARTTLS && tls)
            return scenario_fail(ctx, st->pos, ipath,
                                 "a second starttls (TLS is up since the one at %d:%d)",
                                 tls->pos.line, tls->pos.column);
        if (st->op == MS_SCRIPT_STARTTLS)
            tls = st;
    }
    return MOCKSRV_OK;
}

/* ---- listeners ---- */

static const struct scenario_field scenario_listener_fields[] = {
    F_NAMES("protocol", SK_ENUM, struct scenario_listener, protocol, scenario_protocols,
            "protocol"),
    F_NUM("port", SK_INT, struct scenario_listener, port, 0, 65535),
    F_NAMES("tls", SK_ENUM, struct scenario_listener, tls, scenario_tls_modes, "TLS mode"),
    /* Linux doubles the value and keeps at least about 2 KiB */
    F_NUM("window", SK_SIZE, struct scenario_listener, window, 1, 64 * SCENARIO_MIB),
    F_STRING("host", struct scenario_listener, host, SC_HOST),
    F_CUSTOM("script", scenario_parse_script),
};
static const struct scenario_table scenario_listener_table = TABLE(scenario_listener_fields, NULL);

/* Listener names become MOCKSRV_<NAME>_PORT in the environment of -- CMD. */
static int
scenario_name_ok(const struct scenario_node *key)
{
    if (key->len == 0 || key->len > 64 || strlen(key->text) != key->len)
        return 0;
    for (size_t i = 0; i < key->len; i++)
        if (!isalnum((unsigned char)key->text[i]) && key->text[i] != '-' && key->text[i] != '_')
            return 0;
    return 1;
}

/* A script goes with protocol: script and back (SPEC 3.4). The script engine has no STARTTLS
 * command to offer, so its listener's tls is none (a starttls step may start TLS) or implicit
 * (then TLS is up before the first step, and a starttls step could only fail). */
static int
scenario_check_listener_script(struct scenario_ctx *ctx, const struct scenario_node *name,
                               const struct scenario_node *map, const char *lpath,
                               const struct scenario_listener *raw)
{
    char path[SCENARIO_PATH_MAX];
    if (raw->protocol != MS_PROTO_SCRIPT) {
        if (!raw->script)
            return MOCKSRV_OK;
        if (snprintf(path, sizeof path, "%s.script", lpath) < 0)
            path[0] = '\0';
        return scenario_fail(ctx, raw->script_pos, path,
                             "only a listener with protocol: script has a script (this one is "
                             "%s)",
                             ms_proto_name((enum ms_proto)raw->protocol));
    }
    if (!raw->script)
        return scenario_fail(ctx, name->pos, lpath,
                             "protocol script needs a script: a list of steps (" SCENARIO_STEP_KEYS
                             ")");
    if (raw->tls == MS_TLS_STARTTLS || raw->tls == MS_TLS_REQUIRED) {
        const struct scenario_node *tls = scenario_map_value(map, "tls");
        ms_assert(tls);
        if (snprintf(path, sizeof path, "%s.tls", lpath) < 0)
            path[0] = '\0';
        return scenario_fail(ctx, tls->pos, path,
                             "a script has no STARTTLS command to offer: use tls: none with a "
                             "starttls step, or tls: implicit");
    }
    for (size_t i = 0; raw->tls == MS_TLS_IMPLICIT && i < raw->n_script; i++) {
        if (raw->script[i].op != MS_SCRIPT_STARTTLS)
            continue;
        if (snprintf(path, sizeof path, "%s.script[%zu].starttls", lpath, i) < 0)
            path[0] = '\0';
        return scenario_fail(ctx, raw->script[i].pos, path,
                             "TLS is up from the start on a tls: implicit listener: no starttls "
                             "step");
    }
    return MOCKSRV_OK;
}

int
scenario_parse_listeners(struct scenario_ctx *ctx, const struct scenario_node *key,
                         const struct scenario_node *val, const char *path, void *base)
{
    struct ms_scenario *sc = base;
    char lpath[SCENARIO_PATH_MAX];
    int rc;
    if (val->kind != SCENARIO_MAP)
        return scenario_fail_type(ctx, val, path, "a mapping of listeners");
    if (val->n_kids == 0)
        return scenario_fail(ctx, val->pos, path,
                             "no listeners (leave the key out for the default)");
    if ((rc = scenario_check_dups(ctx, val, path)) != MOCKSRV_OK)
        return rc;
    ctx->seen_listeners = 1;
    sc->listeners = ms_calloc(val->n_kids / 2, sizeof *sc->listeners);
    for (size_t i = 0; i + 1 < val->n_kids; i += 2) {
        const struct scenario_node *name = val->kids[i];
        struct scenario_listener raw = {.protocol = -1, .tls = MS_TLS_NONE, .port = 0};
        struct ms_listener_conf std;
        scenario_path_key(lpath, path, name);
        if (!scenario_name_ok(name))
            return scenario_fail(ctx, name->pos, lpath,
                                 "bad listener name (letters, digits, - and _ only)");
        rc = scenario_walk(ctx, val->kids[i + 1], lpath, &scenario_listener_table, &raw);
        if (rc == MOCKSRV_OK && raw.protocol < 0) {
            if (ms_listener_standard(name->text, &std) == MOCKSRV_OK)
                raw.protocol = (int)std.protocol;
            else
                rc = scenario_fail(ctx, name->pos, lpath,
                                   "missing protocol (smtp, lmtp, pop3, imap or script)");
        }
        if (rc == MOCKSRV_OK)
            rc = scenario_check_listener_script(ctx, name, val->kids[i + 1], lpath, &raw);
        for (size_t j = 0; rc == MOCKSRV_OK && j < sc->n_listeners; j++) {
            const struct ms_listener_conf *o = &sc->listeners[j];
            if (raw.port != 0 && o->port == raw.port &&
                (o->host && raw.host ? strcmp(o->host, raw.host) == 0 : o->host == raw.host))
                rc = scenario_fail(ctx, name->pos, lpath, "port %d is already used by listener %s",
                                   raw.port, o->name);
        }
        if (rc != MOCKSRV_OK) {
            free(raw.host);
            scenario_script_free(&raw.script, &raw.n_script);
            return rc;
        }
        struct ms_listener_conf *l = &sc->listeners[sc->n_listeners++];
        l->name = ms_strndup(name->text, name->len);
        l->protocol = (enum ms_proto)raw.protocol;
        l->tls = (enum ms_tls_mode)raw.tls;
        l->port = raw.port;
        l->host = raw.host;
        l->window = raw.window;
        l->pos = name->pos;
        l->script = raw.script;
        l->n_script = raw.n_script;
    }
    return MOCKSRV_OK;
}
