/*
 * scenario_expect.c - expect: (SPEC 3.5, FAULTS.md 2): the expectations a run is checked
 * against, which become struct ms_expects (scenario.h).
 *
 * Not here: checking them (expect.c). Their when keys listener, protocol, session and encrypted
 * are read by the fault parsers (scenario_faults.c), and whether a listener exists is checked
 * after the walk (scenario_check_expect_listeners, run from scenario_check_top).
 */
#include "scenario_int.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- expectations (SPEC 3.5, FAULTS.md 2) ---- */

static const struct scenario_name scenario_expect_matches[] = {
    {"exact", MS_EXPECT_EXACT},
    {"subsequence", MS_EXPECT_SUBSEQUENCE},
};

void
scenario_expect_fini(struct ms_expect_conf *e)
{
    scenario_strings_free(&e->listeners, &e->n_listeners);
    scenario_strings_free(&e->sequence, &e->n_sequence);
    scenario_strings_free(&e->never, &e->n_never);
    free(e->user);
}

/* when: the keys of a fault's when that say which sessions and commands count, read by the
 * fault parsers into a scratch rule (same grammar, same messages), then moved over. */
static const struct scenario_field scenario_expect_when_fields[] = {
    F_CUSTOM("listener", scenario_parse_fault_listener),
    F_CUSTOM("protocol", scenario_parse_fault_protocol),
    F_CUSTOM("session", scenario_parse_fault_session),
    F_CUSTOM("encrypted", scenario_parse_fault_encrypted),
    F_STRING("user", struct ms_fault_rule, user, SC_NONEMPTY),
};
static const struct scenario_table scenario_expect_when_table =
    TABLE(scenario_expect_when_fields, NULL);

static int
scenario_parse_expect_when(struct scenario_ctx *ctx, const struct scenario_node *key,
                           const struct scenario_node *val, const char *path, void *base)
{
    struct ms_expect_conf *e = base;
    struct ms_fault_rule r = {.encrypted = -1};
    int rc = scenario_walk(ctx, val, path, &scenario_expect_when_table, &r);
    /* moved whatever the outcome: the entry owns (and frees) what was read */
    e->listeners = r.listeners;
    e->n_listeners = r.n_listeners;
    e->protocols = r.protocols;
    e->session_lo = r.session_lo;
    e->session_hi = r.session_hi;
    e->encrypted = r.encrypted;
    e->user = r.user;
    return rc;
}

static int
scenario_parse_expect_sequence(struct scenario_ctx *ctx, const struct scenario_node *key,
                               const struct scenario_node *val, const char *path, void *base)
{
    struct ms_expect_conf *e = base;
    return scenario_fault_words(ctx, val, path, SW_NAME,
                                "a command pattern, like EHLO, \"MAIL FROM:*\" or \"...\"",
                                &e->sequence, &e->n_sequence);
}

static int
scenario_parse_expect_never(struct scenario_ctx *ctx, const struct scenario_node *key,
                            const struct scenario_node *val, const char *path, void *base)
{
    struct ms_expect_conf *e = base;
    return scenario_fault_words(ctx, val, path, SW_NAME, "a command pattern, like \"AUTH *\"",
                                &e->never, &e->n_never);
}

static int
scenario_parse_expect_messages(struct scenario_ctx *ctx, const struct scenario_node *key,
                               const struct scenario_node *val, const char *path, void *base)
{
    struct ms_expect_conf *e = base;
    int rc = scenario_get_uint(ctx, val, path, 0, UINT32_MAX, &e->messages);
    e->has_messages = rc == MOCKSRV_OK;
    return rc;
}

static int
scenario_parse_expect_sessions(struct scenario_ctx *ctx, const struct scenario_node *key,
                               const struct scenario_node *val, const char *path, void *base)
{
    struct ms_expect_conf *e = base;
    int rc = scenario_get_uint(ctx, val, path, 0, UINT32_MAX, &e->sessions);
    e->has_sessions = rc == MOCKSRV_OK;
    return rc;
}

/* match and enforce qualify a sequence; an entry checks at least one thing. */
static int
scenario_check_expect(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                      void *base)
{
    static const char *const needs_sequence[] = {"match", "enforce"};
    struct ms_expect_conf *e = base;
    char kpath[SCENARIO_PATH_MAX];
    for (size_t i = 0; i < MS_ARRAY_LEN(needs_sequence); i++) {
        const struct scenario_node *k = scenario_map_get(map, needs_sequence[i]);
        if (!k || e->sequence)
            continue;
        scenario_path_key(kpath, path, k);
        return scenario_fail(ctx, k->pos, kpath, "%s needs a sequence in the same entry",
                             needs_sequence[i]);
    }
    const struct scenario_node *enforce = scenario_map_get(map, "enforce");
    if (enforce && e->enforce && e->match == MS_EXPECT_SUBSEQUENCE) {
        scenario_path_key(kpath, path, enforce);
        return scenario_fail(ctx, enforce->pos, kpath,
                             "enforce needs match: exact (in a subsequence any command may fall "
                             "in a gap, so none breaks it)");
    }
    if (!e->sequence && !e->never && !e->no_pregreet && !e->quit && !e->has_messages &&
        !e->has_sessions)
        return scenario_fail(ctx, map->pos, path,
                             "an expectation needs a check: sequence, never, no_pregreet, quit, "
                             "messages or sessions");
    return MOCKSRV_OK;
}

static const struct scenario_field scenario_expect_fields[] = {
    F_CUSTOM("when", scenario_parse_expect_when),
    F_CUSTOM("sequence", scenario_parse_expect_sequence),
    F_NAMES("match", SK_ENUM, struct ms_expect_conf, match, scenario_expect_matches, "match mode"),
    F_BOOL("enforce", struct ms_expect_conf, enforce),
    F_CUSTOM("never", scenario_parse_expect_never),
    F_BOOL("no_pregreet", struct ms_expect_conf, no_pregreet),
    F_BOOL("quit", struct ms_expect_conf, quit),
    F_CUSTOM("messages", scenario_parse_expect_messages),
    F_CUSTOM("sessions", scenario_parse_expect_sessions),
};
static const struct scenario_table scenario_expect_table =
    TABLE(scenario_expect_fields, scenario_check_expect);

int
scenario_parse_expect(struct scenario_ctx *ctx, const struct scenario_node *key,
                      const struct scenario_node *val, const char *path, void *base)
{
    struct ms_scenario *sc = base;
    char ipath[SCENARIO_PATH_MAX];
    int rc;
    if (scenario_is_null(val))
        return MOCKSRV_OK; /* "expect:" with nothing after it: none */
    if (val->kind != SCENARIO_SEQ)
        return scenario_fail_type(ctx, val, path, "a list of expectations");
    sc->expect.entries = ms_calloc(val->n_kids ? val->n_kids : 1, sizeof *sc->expect.entries);
    for (size_t i = 0; i < val->n_kids; i++) {
        const struct scenario_node *item = val->kids[i];
        scenario_path_index(ipath, path, i);
        if (item->kind != SCENARIO_MAP)
            return scenario_fail_type(ctx, item, ipath,
                                      "an expectation (a mapping of when and checks)");
        struct ms_expect_conf *e = &sc->expect.entries[sc->expect.n_entries++];
        e->line = item->pos.line;
        e->column = item->pos.column;
        e->encrypted = -1;
        if ((rc = scenario_walk(ctx, item, ipath, &scenario_expect_table, e)) != MOCKSRV_OK)
            return rc;
    }
    return MOCKSRV_OK;
}

/* when.listener of each entry names a listener of the scenario or a standard one (as for
 * faults). Run after the walk, since listeners: may follow expect: in the file. */
int
scenario_check_expect_listeners(struct scenario_ctx *ctx, const struct ms_scenario *sc,
                                const struct scenario_node *top)
{
    char path[SCENARIO_PATH_MAX], name[SCENARIO_TEXT_MAX * 4 + 8], names[512];
    const struct scenario_node *list = scenario_map_value(top, "expect");
    if (!list || list->kind != SCENARIO_SEQ)
        return MOCKSRV_OK;
    for (size_t i = 0; i < sc->expect.n_entries; i++) {
        const struct ms_expect_conf *e = &sc->expect.entries[i];
        const struct scenario_node *when = scenario_map_value(list->kids[i], "when");
        const struct scenario_node *lnode = when ? scenario_map_value(when, "listener") : NULL;
        for (size_t j = 0; lnode && j < e->n_listeners; j++) {
            struct ms_listener_conf std;
            const char *l = e->listeners[j];
            if (ms_scenario_find_listener(sc, l) || ms_listener_standard(l, &std) == MOCKSRV_OK)
                continue;
            const struct scenario_node *n = lnode->kind == SCENARIO_SEQ ? lnode->kids[j] : lnode;
            int w = lnode->kind == SCENARIO_SEQ
                        ? snprintf(path, sizeof path, "expect[%zu].when.listener[%zu]", i, j)
                        : snprintf(path, sizeof path, "expect[%zu].when.listener", i);
            if (w < 0)
                path[0] = '\0';
            scenario_escape(name, sizeof name, l, strlen(l), SCENARIO_TEXT_MAX);
            const char *best = NULL;
            size_t best_d = SIZE_MAX, o = 0;
            names[0] = '\0';
            for (size_t k = 0; k < sc->n_listeners; k++) {
                const char *cand = sc->listeners[k].name;
                size_t d = scenario_distance(l, strlen(l), cand);
                if (d < best_d && d <= 2 && d < strlen(cand)) {
                    best = cand;
                    best_d = d;
                }
                w = snprintf(names + o, sizeof names - o, "%s%s", k ? ", " : "", cand);
                if (w > 0 && (size_t)w < sizeof names - o)
                    o += (size_t)w;
            }
            if (best)
                return scenario_fail(ctx, n->pos, path,
                                     "no listener \"%s\" in this scenario (did you mean \"%s\"?)",
                                     name, best);
            return scenario_fail(ctx, n->pos, path,
                                 "no listener \"%s\" in this scenario (listeners: %s)", name,
                                 names);
        }
    }
    return MOCKSRV_OK;
}
