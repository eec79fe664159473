/*
 * scenario_faults.c - faults: (FAULTS.md 2): each rule's when (the match), its probability and
 * its action, the shaping actions (split, bandwidth, read, stall, tarpit, scope, close) and the
 * tls actions; they become struct ms_faults (fault.h).
 *
 * Not here: which rule fires (fault.c) and doing the action (shape.c, conn.c, tls.c). Whether
 * when.listener names a listener is checked after the walk (scenario_check_fault_listeners, run
 * from scenario_check_top), since listeners: may come after faults: in the file.
 *
 * Invariants:
 *   - A rule has at least one action; reply, replies and raw exclude each other.
 *   - Every duration of a rule (delay, for, stall, read.gap, tarpit, close.delay ...) is at most
 *     SCENARIO_FAULT_MAX_MS, a week.
 *   - The when keys listener, protocol, session and encrypted are shared with expectations
 *     (scenario_expect.c), so both read them the same way.
 */
#include "scenario_int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- faults (FAULTS.md 2) ---- */

#define SCENARIO_FAULT_MAX_MS (7 * SCENARIO_DAY_MS) /* every duration of a rule */

static const struct scenario_name scenario_fault_ats[] = {
    {"accept", MS_AT_ACCEPT},   {"tls", MS_AT_TLS},   {"greeting", MS_AT_GREETING},
    {"command", MS_AT_COMMAND}, {"data", MS_AT_DATA}, {"waiting", MS_AT_WAITING},
    {"end", MS_AT_END},
};

static const struct scenario_name scenario_fault_counts[] = {{"session", 0}, {"run", 1}};

static const struct scenario_name scenario_fault_pers[] = {{"event", 0}, {"session", 1}};

static const struct scenario_name scenario_close_hows[] = {
    {"fin", MS_CLOSE_FIN},
    {"rst", MS_CLOSE_RST},
    {"half", MS_CLOSE_HALF},
};

/* One item normalized, or NULL when it is not a valid one. */
static char *
scenario_fault_word(const struct scenario_node *n, enum scenario_word how)
{
    if (n->kind != SCENARIO_SCALAR || scenario_is_null(n) || n->len == 0 ||
        strlen(n->text) != n->len)
        return NULL;
    if (how == SW_NAME)
        return ms_strndup(n->text, n->len);
    char *out = ms_malloc(n->len + 1);
    size_t o = 0;
    int blank = 0;
    for (size_t i = 0; i < n->len; i++) {
        unsigned char c = (unsigned char)n->text[i];
        if (how == SW_COMMAND && (c == ' ' || c == '\t')) {
            blank = o > 0; /* leading blanks vanish, inner runs become one space */
            continue;
        }
        if (c <= 0x20 || c >= 0x7f) {
            free(out);
            return NULL;
        }
        if (blank)
            out[o++] = ' ';
        blank = 0;
        out[o++] = (char)toupper(c);
    }
    out[o] = '\0';
    if (o == 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* A string or a non-empty list of strings into *list (NULL before the call). */
int
scenario_fault_words(struct scenario_ctx *ctx, const struct scenario_node *val, const char *path,
                     enum scenario_word how, const char *want, char ***list, size_t *count)
{
    char ipath[SCENARIO_PATH_MAX];
    size_t n = val->kind == SCENARIO_SEQ ? val->n_kids : 1;
    if (val->kind == SCENARIO_SEQ && n == 0)
        return scenario_fail(ctx, val->pos, path, "an empty list (leave the key out for any)");
    *list = ms_calloc(n, sizeof **list);
    for (size_t i = 0; i < n; i++) {
        const struct scenario_node *item = val->kind == SCENARIO_SEQ ? val->kids[i] : val;
        const char *ip = path;
        if (val->kind == SCENARIO_SEQ) {
            scenario_path_index(ipath, path, i);
            ip = ipath;
        }
        char *w = scenario_fault_word(item, how);
        if (!w)
            return scenario_fail_type(ctx, item, ip, want);
        (*list)[(*count)++] = w;
    }
    return MOCKSRV_OK;
}

int
scenario_parse_fault_listener(struct scenario_ctx *ctx, const struct scenario_node *key,
                              const struct scenario_node *val, const char *path, void *base)
{
    struct ms_fault_rule *r = base;
    /* Whether each names a listener is checked in scenario_check_top: listeners: may come
     * after faults: in the file. */
    return scenario_fault_words(ctx, val, path, SW_NAME, "a listener name", &r->listeners,
                                &r->n_listeners);
}

int
scenario_parse_fault_protocol(struct scenario_ctx *ctx, const struct scenario_node *key,
                              const struct scenario_node *val, const char *path, void *base)
{
    struct ms_fault_rule *r = base;
    const struct scenario_field f = {.names = scenario_protocols,
                                     .n_names = MS_ARRAY_LEN(scenario_protocols),
                                     .what = "protocol"};
    char ipath[SCENARIO_PATH_MAX];
    unsigned v;
    int rc;
    if (val->kind != SCENARIO_SEQ) {
        if ((rc = scenario_get_name(ctx, val, path, &f, &v)) != MOCKSRV_OK)
            return rc;
        r->protocols = 1u << v;
        return MOCKSRV_OK;
    }
    if (val->n_kids == 0)
        return scenario_fail(ctx, val->pos, path, "an empty list (leave the key out for any)");
    for (size_t i = 0; i < val->n_kids; i++) {
        scenario_path_index(ipath, path, i);
        if ((rc = scenario_get_name(ctx, val->kids[i], ipath, &f, &v)) != MOCKSRV_OK)
            return rc;
        r->protocols |= 1u << v;
    }
    return MOCKSRV_OK;
}

/* "3-5": two decimal numbers around a dash, blanks allowed around them. 0 or -1. */
static int
scenario_parse_range(const char *s, uint64_t *lo, uint64_t *hi)
{
    const char *dash = strchr(s, '-');
    const char *a = s, *a_end = dash, *b = dash + 1, *b_end = s + strlen(s);
    while (*a == ' ')
        a++;
    while (a_end > a && a_end[-1] == ' ')
        a_end--;
    while (*b == ' ')
        b++;
    while (b_end > b && b_end[-1] == ' ')
        b_end--;
    if (scenario_parse_u64(a, (size_t)(a_end - a), lo) != 0 ||
        scenario_parse_u64(b, (size_t)(b_end - b), hi) != 0)
        return -1;
    return 0;
}

int
scenario_parse_fault_session(struct scenario_ctx *ctx, const struct scenario_node *key,
                             const struct scenario_node *val, const char *path, void *base)
{
    struct ms_fault_rule *r = base;
    char ipath[SCENARIO_PATH_MAX], text[SCENARIO_TEXT_MAX * 4 + 16];
    uint64_t lo, hi;
    struct ms_pos hi_pos = val->pos;
    const char *hi_path = path;
    int rc;
    if (val->kind == SCENARIO_SEQ) {
        if (val->n_kids != 2)
            return scenario_fail(ctx, val->pos, path,
                                 "expected [first, last], got a list of %zu (use 3, [3, 5] or "
                                 "\"3-5\")",
                                 val->n_kids);
        scenario_path_index(ipath, path, 0);
        if ((rc = scenario_get_uint(ctx, val->kids[0], ipath, 1, UINT_MAX, &lo)) != MOCKSRV_OK)
            return rc;
        scenario_path_index(ipath, path, 1);
        if ((rc = scenario_get_uint(ctx, val->kids[1], ipath, 1, UINT_MAX, &hi)) != MOCKSRV_OK)
            return rc;
        hi_pos = val->kids[1]->pos;
        hi_path = ipath;
    } else if (val->kind == SCENARIO_SCALAR && val->len > 1 && strlen(val->text) == val->len &&
               strchr(val->text + 1, '-')) {
        scenario_describe(text, sizeof text, val);
        if (scenario_parse_range(val->text, &lo, &hi) != 0)
            return scenario_fail(ctx, val->pos, path,
                                 "bad session range %s (use 3, [3, 5] or \"3-5\")", text);
        if (lo < 1 || hi < 1 || lo > UINT_MAX || hi > UINT_MAX)
            return scenario_fail(ctx, val->pos, path, "%s is out of range (1 .. %u)", text,
                                 UINT_MAX);
    } else if (val->kind == SCENARIO_SCALAR && !scenario_is_null(val)) {
        if ((rc = scenario_get_uint(ctx, val, path, 1, UINT_MAX, &lo)) != MOCKSRV_OK)
            return rc;
        hi = lo;
    } else {
        return scenario_fail_type(ctx, val, path, "a session number (3, [3, 5] or \"3-5\")");
    }
    if (hi < lo)
        return scenario_fail(ctx, hi_pos, hi_path, "%llu is below %llu (use [first, last])",
                             (unsigned long long)hi, (unsigned long long)lo);
    r->session_lo = (unsigned)lo;
    r->session_hi = (unsigned)hi;
    return MOCKSRV_OK;
}

int
scenario_parse_fault_encrypted(struct scenario_ctx *ctx, const struct scenario_node *key,
                               const struct scenario_node *val, const char *path, void *base)
{
    struct ms_fault_rule *r = base;
    return scenario_get_bool(ctx, val, path, &r->encrypted);
}

static int
scenario_parse_fault_command(struct scenario_ctx *ctx, const struct scenario_node *key,
                             const struct scenario_node *val, const char *path, void *base)
{
    struct ms_fault_rule *r = base;
    return scenario_fault_words(ctx, val, path, SW_COMMAND,
                                "a command, like RCPT, \"UID FETCH\" or \".\"", &r->commands,
                                &r->n_commands);
}

static int
scenario_parse_fault_received(struct scenario_ctx *ctx, const struct scenario_node *key,
                              const struct scenario_node *val, const char *path, void *base)
{
    struct ms_fault_rule *r = base;
    size_t v;
    int rc = scenario_get_size(ctx, val, path, 1, SIZE_MAX, &v);
    if (rc != MOCKSRV_OK)
        return rc;
    r->received = v;
    r->has_received = 1;
    return MOCKSRV_OK;
}

static int
scenario_parse_fault_for(struct scenario_ctx *ctx, const struct scenario_node *key,
                         const struct scenario_node *val, const char *path, void *base)
{
    struct ms_fault_rule *r = base;
    int rc = scenario_get_duration(ctx, val, path, 1, SCENARIO_FAULT_MAX_MS, &r->for_ms);
    if (rc == MOCKSRV_OK)
        r->has_for = 1;
    return rc;
}

static int
scenario_parse_fault_nth(struct scenario_ctx *ctx, const struct scenario_node *key,
                         const struct scenario_node *val, const char *path, void *base)
{
    struct ms_fault_rule *r = base;
    char ipath[SCENARIO_PATH_MAX];
    uint64_t v;
    int rc;
    size_t n = val->kind == SCENARIO_SEQ ? val->n_kids : 1;
    if (val->kind == SCENARIO_SEQ && n == 0)
        return scenario_fail(ctx, val->pos, path, "an empty list (use 3 or [1, 3])");
    r->nth = ms_calloc(n, sizeof *r->nth);
    for (size_t i = 0; i < n; i++) {
        const struct scenario_node *item = val->kind == SCENARIO_SEQ ? val->kids[i] : val;
        const char *ip = path;
        if (val->kind == SCENARIO_SEQ) {
            scenario_path_index(ipath, path, i);
            ip = ipath;
        }
        if ((rc = scenario_get_uint(ctx, item, ip, 1, UINT_MAX, &v)) != MOCKSRV_OK)
            return rc;
        r->nth[r->n_nth++] = (unsigned)v;
    }
    return MOCKSRV_OK;
}

/* The later of two keys that exclude each other, as an error; OK when not both are given. */
static int
scenario_fault_exclusive(struct scenario_ctx *ctx, const struct scenario_node *map,
                         const char *path, const char *a, const char *b, const char *hint)
{
    char kpath[SCENARIO_PATH_MAX];
    const struct scenario_node *ka = scenario_map_get(map, a), *kb = scenario_map_get(map, b);
    if (!ka || !kb)
        return MOCKSRV_OK;
    if (kb->pos.line < ka->pos.line ||
        (kb->pos.line == ka->pos.line && kb->pos.column < ka->pos.column)) {
        const struct scenario_node *t = ka;
        ka = kb;
        kb = t;
    }
    scenario_path_key(kpath, path, kb);
    return scenario_fail(ctx, kb->pos, kpath, "cannot be combined with %s (at %d:%d)%s", ka->text,
                         ka->pos.line, ka->pos.column, hint);
}

static int
scenario_check_fault_when(struct scenario_ctx *ctx, const struct scenario_node *map,
                          const char *path, void *base)
{
    static const char *const counters[] = {"nth", "every", "after"};
    static const char hint[] = ": use one of nth, every and after";
    struct ms_fault_rule *r = base;
    char kpath[SCENARIO_PATH_MAX];
    int rc;
    for (size_t i = 0; i < MS_ARRAY_LEN(counters); i++)
        for (size_t j = i + 1; j < MS_ARRAY_LEN(counters); j++)
            if ((rc = scenario_fault_exclusive(ctx, map, path, counters[i], counters[j], hint)))
                return rc;
    /* FAULTS.md 1: command is the default event when a command is named; received and for
     * only make sense at their own event, so they imply it. */
    if (!scenario_map_get(map, "at")) {
        if (r->has_received)
            r->at = MS_AT_DATA;
        else if (r->has_for)
            r->at = MS_AT_WAITING;
        else if (r->n_commands)
            r->at = MS_AT_COMMAND;
        else
            r->at = MS_AT_ACCEPT;
    }
    static const struct {
        const char *key;
        enum ms_fault_at at;
    } only[] = {{"received", MS_AT_DATA}, {"for", MS_AT_WAITING}};
    for (size_t i = 0; i < MS_ARRAY_LEN(only); i++) {
        const struct scenario_node *key = scenario_map_get(map, only[i].key);
        if (!key || r->at == only[i].at)
            continue;
        scenario_path_key(kpath, path, key);
        return scenario_fail(ctx, key->pos, kpath, "%s needs at: %s (this rule is at: %s)",
                             only[i].key, scenario_fault_ats[only[i].at].name,
                             scenario_fault_ats[r->at].name);
    }
    if (r->at == MS_AT_WAITING && !r->has_for) {
        /* FAULTS.md 1: waiting is "silent for a while": the while must be said */
        const struct scenario_node *key = scenario_map_get(map, "at");
        scenario_path_key(kpath, path, key);
        return scenario_fail(ctx, key->pos, kpath,
                             "at: waiting needs for: how long the client has been silent "
                             "(e.g. for: 2s)");
    }
    return MOCKSRV_OK;
}

static const struct scenario_field scenario_fault_when_fields[] = {
    F_CUSTOM("listener", scenario_parse_fault_listener),
    F_CUSTOM("protocol", scenario_parse_fault_protocol),
    F_CUSTOM("session", scenario_parse_fault_session),
    F_CUSTOM("encrypted", scenario_parse_fault_encrypted),
    F_STRING("user", struct ms_fault_rule, user, SC_NONEMPTY),
    F_NAMES("at", SK_ENUM, struct ms_fault_rule, at, scenario_fault_ats, "event"),
    F_CUSTOM("command", scenario_parse_fault_command),
    F_STRING("args", struct ms_fault_rule, args, SC_ANY),
    F_CUSTOM("received", scenario_parse_fault_received),
    F_CUSTOM("for", scenario_parse_fault_for),
    F_CUSTOM("nth", scenario_parse_fault_nth),
    F_NUM("every", SK_UINT, struct ms_fault_rule, every, 1, UINT_MAX),
    F_NUM("after", SK_UINT, struct ms_fault_rule, after, 0, UINT_MAX),
    F_NAMES("count", SK_ENUM, struct ms_fault_rule, count_run, scenario_fault_counts,
            "counter scope"),
};
static const struct scenario_table scenario_fault_when_table =
    TABLE(scenario_fault_when_fields, scenario_check_fault_when);

static int
scenario_parse_fault_when(struct scenario_ctx *ctx, const struct scenario_node *key,
                          const struct scenario_node *val, const char *path, void *base)
{
    /* The when keys land in the rule itself. */
    return scenario_walk(ctx, val, path, &scenario_fault_when_table, base);
}

static int
scenario_parse_fault_probability(struct scenario_ctx *ctx, const struct scenario_node *key,
                                 const struct scenario_node *val, const char *path, void *base)
{
    struct ms_fault_rule *r = base;
    char text[SCENARIO_TEXT_MAX * 4 + 16];
    size_t digits = 0, dots = 0;
    int ok =
        val->kind == SCENARIO_SCALAR && val->plain && val->len > 0 && strlen(val->text) == val->len;
    /* Decimal only ("0.25", "1", ".5"): no sign, exponent, hex, inf or nan. */
    for (size_t i = 0; ok && i < val->len; i++) {
        if (isdigit((unsigned char)val->text[i]))
            digits++;
        else if (val->text[i] == '.')
            dots++;
        else
            ok = 0;
    }
    if (!ok || digits == 0 || dots > 1)
        return scenario_fail_type(ctx, val, path, "a probability (a number from 0 to 1)");
    double p = strtod(val->text, NULL);
    if (!(p >= 0.0 && p <= 1.0))
        return scenario_fail(ctx, val->pos, path, "%s is out of range (0 .. 1)",
                             scenario_text(text, sizeof text, val));
    r->probability = p;
    return MOCKSRV_OK;
}

static int
scenario_is_pass(const struct scenario_node *n)
{
    return n->kind == SCENARIO_SCALAR && n->len == 4 && strcmp(n->text, "pass") == 0;
}

/* A line of a reply: the engine adds line ends (and SMTP dashes, IMAP tags), so none inside. */
static int
scenario_fault_line(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                    char **out)
{
    if (n->kind != SCENARIO_SCALAR || scenario_is_null(n) || n->len == 0 ||
        strlen(n->text) != n->len)
        return scenario_fail_type(ctx, n, path, "a reply line");
    if (strpbrk(n->text, "\r\n"))
        return scenario_fail(ctx, n->pos, path,
                             "a reply line holds no CR or LF (use a list of lines, or raw for "
                             "exact bytes)");
    *out = ms_strndup(n->text, n->len);
    return MOCKSRV_OK;
}

/* A line, a list of lines, or pass. On error *out holds what was read (the rule frees it). */
static int
scenario_fault_reply(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                     const char *want, struct ms_fault_reply *out)
{
    char ipath[SCENARIO_PATH_MAX];
    int rc;
    if (scenario_is_pass(n)) {
        out->pass = 1;
        return MOCKSRV_OK;
    }
    if (n->kind == SCENARIO_SCALAR && !scenario_is_null(n)) {
        out->lines = ms_calloc(1, sizeof *out->lines);
        if ((rc = scenario_fault_line(ctx, n, path, &out->lines[0])) != MOCKSRV_OK)
            return rc;
        out->n_lines = 1;
        return MOCKSRV_OK;
    }
    if (n->kind != SCENARIO_SEQ)
        return scenario_fail_type(ctx, n, path, want);
    if (n->n_kids == 0)
        return scenario_fail(ctx, n->pos, path, "an empty list (a reply has at least one line)");
    out->lines = ms_calloc(n->n_kids, sizeof *out->lines);
    for (size_t i = 0; i < n->n_kids; i++) {
        scenario_path_index(ipath, path, i);
        if (scenario_is_pass(n->kids[i]))
            return scenario_fail(ctx, n->kids[i]->pos, ipath,
                                 "pass stands for a whole reply, not a line");
        if ((rc = scenario_fault_line(ctx, n->kids[i], ipath, &out->lines[i])) != MOCKSRV_OK)
            return rc;
        out->n_lines++;
    }
    return MOCKSRV_OK;
}

static int
scenario_parse_fault_reply(struct scenario_ctx *ctx, const struct scenario_node *key,
                           const struct scenario_node *val, const char *path, void *base)
{
    struct ms_fault_rule *r = base;
    r->has_reply = 1;
    return scenario_fault_reply(ctx, val, path, "a reply line, a list of lines, or pass",
                                &r->reply);
}

static int
scenario_parse_fault_replies(struct scenario_ctx *ctx, const struct scenario_node *key,
                             const struct scenario_node *val, const char *path, void *base)
{
    struct ms_fault_rule *r = base;
    char ipath[SCENARIO_PATH_MAX];
    int rc;
    if (val->kind != SCENARIO_SEQ)
        return scenario_fail_type(ctx, val, path, "a list of replies, like [\"451 Later\", pass]");
    if (val->n_kids == 0)
        return scenario_fail(ctx, val->pos, path, "an empty list (leave the key out)");
    r->replies = ms_calloc(val->n_kids, sizeof *r->replies);
    for (size_t i = 0; i < val->n_kids; i++) {
        scenario_path_index(ipath, path, i);
        rc = scenario_fault_reply(ctx, val->kids[i], ipath,
                                  "a reply (a line, a list of lines, or pass)",
                                  &r->replies[r->n_replies++]);
        if (rc != MOCKSRV_OK)
            return rc;
    }
    return MOCKSRV_OK;
}

static int
scenario_parse_fault_raw(struct scenario_ctx *ctx, const struct scenario_node *key,
                         const struct scenario_node *val, const char *path, void *base)
{
    struct ms_fault_rule *r = base;
    /* Exact bytes: YAML escapes ("\r\n", "\0") are the way to write them; raw_len counts. */
    if (val->kind != SCENARIO_SCALAR || scenario_is_null(val) || val->len == 0)
        return scenario_fail_type(ctx, val, path,
                                  "a non-empty string (exact bytes, \"250 OK\\n\")");
    r->raw = ms_strndup(val->text, val->len);
    r->raw_len = val->len;
    r->has_raw = 1;
    return MOCKSRV_OK;
}

static int
scenario_parse_fault_hide(struct scenario_ctx *ctx, const struct scenario_node *key,
                          const struct scenario_node *val, const char *path, void *base)
{
    struct ms_fault_rule *r = base;
    return scenario_fault_words(ctx, val, path, SW_UPPER, "a capability name, like STARTTLS",
                                &r->hide, &r->n_hide);
}

/* A duration or [low, high] (FAULTS.md: "2s or [1s, 3s]"). */
static int
scenario_get_duration_range(struct scenario_ctx *ctx, const struct scenario_node *val,
                            const char *path, int64_t *lo_r, int64_t *hi_r)
{
    char ipath[SCENARIO_PATH_MAX], lo[32], hi[32];
    int rc;
    if (val->kind != SCENARIO_SEQ) {
        if ((rc = scenario_get_duration(ctx, val, path, 0, SCENARIO_FAULT_MAX_MS, lo_r)))
            return rc;
        *hi_r = *lo_r;
        return MOCKSRV_OK;
    }
    if (val->n_kids != 2)
        return scenario_fail(ctx, val->pos, path,
                             "expected [low, high], got a list of %zu (use 2s or [1s, 3s])",
                             val->n_kids);
    scenario_path_index(ipath, path, 0);
    rc = scenario_get_duration(ctx, val->kids[0], ipath, 0, SCENARIO_FAULT_MAX_MS, lo_r);
    if (rc != MOCKSRV_OK)
        return rc;
    scenario_path_index(ipath, path, 1);
    rc = scenario_get_duration(ctx, val->kids[1], ipath, 0, SCENARIO_FAULT_MAX_MS, hi_r);
    if (rc != MOCKSRV_OK)
        return rc;
    if (*hi_r < *lo_r) {
        scenario_format_duration(lo, sizeof lo, (uint64_t)*lo_r);
        scenario_format_duration(hi, sizeof hi, (uint64_t)*hi_r);
        return scenario_fail(ctx, val->kids[1]->pos, ipath, "%s is below %s (use [low, high])", hi,
                             lo);
    }
    return MOCKSRV_OK;
}

static int
scenario_parse_fault_delay(struct scenario_ctx *ctx, const struct scenario_node *key,
                           const struct scenario_node *val, const char *path, void *base)
{
    (void)key;
    struct ms_fault_rule *r = base;
    int rc = scenario_get_duration_range(ctx, val, path, &r->delay_lo, &r->delay_hi);
    if (rc == MOCKSRV_OK)
        r->has_delay = 1;
    return rc;
}

/* ---- shaping: split, bandwidth, read, stall, tarpit, scope ---- */

#define SCENARIO_FAULT_MAX_OFFSET (1LL << 40)

static const struct scenario_name scenario_fault_froms[] = {
    {"start", MS_FROM_START}, {"end", MS_FROM_END}, {"literal", MS_FROM_LITERAL}};

static const struct scenario_name scenario_split_layers[] = {{"tcp", 0}, {"tls", 1}};

static int
scenario_parse_split_size(struct scenario_ctx *ctx, const struct scenario_node *key,
                          const struct scenario_node *val, const char *path, void *base)
{
    (void)key;
    struct ms_fault_split *sp = base;
    char ipath[SCENARIO_PATH_MAX];
    size_t lo, hi;
    int rc;
    if (val->kind != SCENARIO_SEQ) {
        if ((rc = scenario_get_size(ctx, val, path, 1, SIZE_MAX, &lo)) != MOCKSRV_OK)
            return rc;
        sp->size_lo = sp->size_hi = lo;
        return MOCKSRV_OK;
    }
    if (val->n_kids != 2)
        return scenario_fail(ctx, val->pos, path,
                             "expected [min, max], got a list of %zu (use 1 or [1, 64])",
                             val->n_kids);
    scenario_path_index(ipath, path, 0);
    if ((rc = scenario_get_size(ctx, val->kids[0], ipath, 1, SIZE_MAX, &lo)) != MOCKSRV_OK)
        return rc;
    scenario_path_index(ipath, path, 1);
    if ((rc = scenario_get_size(ctx, val->kids[1], ipath, 1, SIZE_MAX, &hi)) != MOCKSRV_OK)
        return rc;
    if (hi < lo)
        return scenario_fail(ctx, val->kids[1]->pos, ipath, "%zu is below %zu (use [min, max])", hi,
                             lo);
    sp->size_lo = lo;
    sp->size_hi = hi;
    return MOCKSRV_OK;
}

static int
scenario_parse_split_offsets(struct scenario_ctx *ctx, const struct scenario_node *key,
                             const struct scenario_node *val, const char *path, void *base)
{
    (void)key;
    struct ms_fault_split *sp = base;
    char ipath[SCENARIO_PATH_MAX], got[SCENARIO_TEXT_MAX * 4 + 16];
    const struct scenario_node *const *items = &val;
    size_t n = 1;
    if (val->kind == SCENARIO_SEQ) {
        items = (const struct scenario_node *const *)val->kids;
        n = val->n_kids;
        if (n == 0)
            return scenario_fail(ctx, val->pos, path, "an empty list of offsets");
    }
    free(sp->offsets);
    sp->offsets = ms_calloc(n, sizeof *sp->offsets);
    sp->n_offsets = 0;
    for (size_t i = 0; i < n; i++) {
        const struct scenario_node *it = items[i];
        if (val->kind == SCENARIO_SEQ)
            scenario_path_index(ipath, path, i);
        else
            snprintf(ipath, sizeof ipath, "%s", path);
        char *end = NULL;
        errno = 0;
        long long v =
            it->kind == SCENARIO_SCALAR && it->plain && it->len ? strtoll(it->text, &end, 10) : 0;
        if (!end || *end || errno || v < -SCENARIO_FAULT_MAX_OFFSET ||
            v > SCENARIO_FAULT_MAX_OFFSET) {
            scenario_describe(got, sizeof got, it);
            return scenario_fail(ctx, it->pos, ipath,
                                 "bad offset %s (a whole number of bytes, negative counts back)",
                                 got);
        }
        sp->offsets[sp->n_offsets++] = v;
    }
    return MOCKSRV_OK;
}

static int
scenario_parse_split_gap(struct scenario_ctx *ctx, const struct scenario_node *key,
                         const struct scenario_node *val, const char *path, void *base)
{
    (void)key;
    struct ms_fault_split *sp = base;
    return scenario_get_duration_range(ctx, val, path, &sp->gap_lo, &sp->gap_hi);
}

static int
scenario_check_split(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                     void *base)
{
    const struct ms_fault_split *sp = base;
    int given = (sp->size_lo != 0) + (sp->n_offsets != 0) + (sp->lines != 0);
    if (given != 1) {
        if (given == 0)
            return scenario_fail(ctx, map->pos, path, "needs one of size, offsets or lines");
        const char *a = sp->size_lo ? "size" : "offsets";
        const char *b = sp->lines ? "lines" : "offsets";
        const struct scenario_node *k = scenario_map_get(map, b);
        return scenario_fail(ctx, k ? k->pos : map->pos, path,
                             "%s and %s cannot be combined (one way of cutting per split)", b, a);
    }
    if (scenario_map_get(map, "from") && !sp->n_offsets)
        return scenario_fail(ctx, scenario_map_get(map, "from")->pos, path,
                             "from applies to offsets only");
    return MOCKSRV_OK;
}

static const struct scenario_field scenario_split_fields[] = {
    F_CUSTOM("size", scenario_parse_split_size),
    F_CUSTOM("offsets", scenario_parse_split_offsets),
    F_BOOL("lines", struct ms_fault_split, lines),
    F_NAMES("from", SK_ENUM, struct ms_fault_split, from, scenario_fault_froms, "origin"),
    F_CUSTOM("gap", scenario_parse_split_gap),
    F_NAMES("layer", SK_ENUM, struct ms_fault_split, layer_tls, scenario_split_layers, "layer"),
};
static const struct scenario_table scenario_split_table =
    TABLE(scenario_split_fields, scenario_check_split);

static int
scenario_parse_fault_split(struct scenario_ctx *ctx, const struct scenario_node *key,
                           const struct scenario_node *val, const char *path, void *base)
{
    (void)key;
    struct ms_fault_rule *r = base;
    if (val->kind != SCENARIO_MAP)
        return scenario_fail_type(
            ctx, val, path, "a mapping like {size: 1, gap: 5ms} or {offsets: [-1], from: end}");
    /* FAULTS.md 5: a gap defaults to 1 ms, so the pieces are separate sends */
    r->split.gap_lo = r->split.gap_hi = 1;
    r->has_split = 1;
    return scenario_walk(ctx, val, path, &scenario_split_table, &r->split);
}

/* "2KiB/s": a size per second. */
static int
scenario_get_rate(struct scenario_ctx *ctx, const struct scenario_node *val, const char *path,
                  uint64_t *out)
{
    char got[SCENARIO_TEXT_MAX * 4 + 16], num[64];
    size_t v;
    if (val->kind != SCENARIO_SCALAR || scenario_is_null(val))
        return scenario_fail_type(ctx, val, path, "a rate like 2KiB/s");
    scenario_describe(got, sizeof got, val);
    const char *slash = strrchr(val->text, '/');
    size_t n = slash ? (size_t)(slash - val->text) : 0;
    if (!slash || strcmp(slash, "/s") != 0 || n == 0 || n >= sizeof num ||
        strlen(val->text) != val->len)
        return scenario_fail(ctx, val->pos, path, "bad rate %s (use 2KiB/s, 500/s)", got);
    memcpy(num, val->text, n);
    num[n] = '\0';
    if (ms_parse_size(num, &v) != MOCKSRV_OK || v == 0)
        return scenario_fail(ctx, val->pos, path, "bad rate %s (use 2KiB/s, 500/s)", got);
    *out = v;
    return MOCKSRV_OK;
}

static int
scenario_parse_fault_bandwidth(struct scenario_ctx *ctx, const struct scenario_node *key,
                               const struct scenario_node *val, const char *path, void *base)
{
    (void)key;
    struct ms_fault_rule *r = base;
    return scenario_get_rate(ctx, val, path, &r->bandwidth);
}

static int
scenario_parse_read_bandwidth(struct scenario_ctx *ctx, const struct scenario_node *key,
                              const struct scenario_node *val, const char *path, void *base)
{
    (void)key;
    struct ms_fault_read *rd = base;
    return scenario_get_rate(ctx, val, path, &rd->bandwidth);
}

static const struct scenario_field scenario_read_fields[] = {
    F_NUM("size", SK_SIZE, struct ms_fault_read, size, 1, SIZE_MAX),
    F_NUM("gap", SK_DURATION, struct ms_fault_read, gap_ms, 0, SCENARIO_FAULT_MAX_MS),
    F_CUSTOM("bandwidth", scenario_parse_read_bandwidth),
    F_NUM("window", SK_SIZE, struct ms_fault_read, window, 1, 64 * SCENARIO_MIB),
};
static const struct scenario_table scenario_read_table = TABLE(scenario_read_fields, NULL);

static int
scenario_parse_fault_read(struct scenario_ctx *ctx, const struct scenario_node *key,
                          const struct scenario_node *val, const char *path, void *base)
{
    (void)key;
    struct ms_fault_rule *r = base;
    r->has_read = 1;
    if (val->kind == SCENARIO_SCALAR && val->len == 4 && strcmp(val->text, "stop") == 0) {
        r->read.stop = 1;
        return MOCKSRV_OK;
    }
    if (val->kind != SCENARIO_MAP)
        return scenario_fail_type(ctx, val, path,
                                  "stop or a mapping {size, gap, bandwidth, window}");
    int rc = scenario_walk(ctx, val, path, &scenario_read_table, &r->read);
    if (rc == MOCKSRV_OK && val->n_kids == 0)
        return scenario_fail(ctx, val->pos, path, "needs size, gap, bandwidth or window");
    return rc;
}

static int
scenario_parse_fault_stall(struct scenario_ctx *ctx, const struct scenario_node *key,
                           const struct scenario_node *val, const char *path, void *base)
{
    (void)key;
    struct ms_fault_rule *r = base;
    int yes;
    r->has_stall = 1;
    if (val->kind == SCENARIO_SCALAR && val->plain && !isdigit((unsigned char)val->text[0])) {
        int rc = scenario_get_bool(ctx, val, path, &yes);
        if (rc != MOCKSRV_OK)
            return rc;
        if (!yes)
            return scenario_fail(ctx, val->pos, path,
                                 "stall: false stalls nothing (use a duration or true)");
        r->stall_ms = -1;
        return MOCKSRV_OK;
    }
    return scenario_get_duration(ctx, val, path, 1, SCENARIO_FAULT_MAX_MS, &r->stall_ms);
}

/* tarpit: while it is parsed */
struct scenario_tarpit {
    int64_t stutter_ms, for_ms;
};

static int
scenario_check_tarpit(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                      void *base)
{
    (void)base;
    if (!scenario_map_get(map, "stutter"))
        return scenario_fail(ctx, map->pos, path, "missing stutter (the gap between bytes)");
    return MOCKSRV_OK;
}

static const struct scenario_field scenario_tarpit_fields[] = {
    F_NUM("stutter", SK_DURATION, struct scenario_tarpit, stutter_ms, 1, SCENARIO_FAULT_MAX_MS),
    F_NUM("for", SK_DURATION, struct scenario_tarpit, for_ms, 1, SCENARIO_FAULT_MAX_MS),
};
static const struct scenario_table scenario_tarpit_table =
    TABLE(scenario_tarpit_fields, scenario_check_tarpit);

static int
scenario_parse_fault_tarpit(struct scenario_ctx *ctx, const struct scenario_node *key,
                            const struct scenario_node *val, const char *path, void *base)
{
    (void)key;
    struct ms_fault_rule *r = base;
    struct scenario_tarpit t = {0};
    if (val->kind != SCENARIO_MAP)
        return scenario_fail_type(ctx, val, path, "a mapping {stutter: 1s, for: 10s}");
    int rc = scenario_walk(ctx, val, path, &scenario_tarpit_table, &t);
    if (rc != MOCKSRV_OK)
        return rc;
    r->has_tarpit = 1;
    r->tarpit_stutter_ms = t.stutter_ms;
    r->tarpit_for_ms = t.for_ms; /* 0: the whole scope */
    return MOCKSRV_OK;
}

static int
scenario_parse_fault_scope(struct scenario_ctx *ctx, const struct scenario_node *key,
                           const struct scenario_node *val, const char *path, void *base)
{
    (void)key;
    struct ms_fault_rule *r = base;
    if (val->kind == SCENARIO_SCALAR && strcmp(val->text, "reply") == 0) {
        r->scope = MS_SCOPE_REPLY;
        return MOCKSRV_OK;
    }
    if (val->kind == SCENARIO_SCALAR && strcmp(val->text, "session") == 0) {
        r->scope = MS_SCOPE_SESSION;
        return MOCKSRV_OK;
    }
    if (val->kind == SCENARIO_SCALAR && val->plain && isdigit((unsigned char)val->text[0])) {
        r->scope = MS_SCOPE_DURATION;
        return scenario_get_duration(ctx, val, path, 1, SCENARIO_FAULT_MAX_MS, &r->scope_ms);
    }
    char got[SCENARIO_TEXT_MAX * 4 + 16];
    scenario_describe(got, sizeof got, val);
    return scenario_fail(ctx, val->pos, path,
                         "bad scope %s (reply, session or a duration like 10s)", got);
}

/* close: as a mapping, while it is parsed. */
struct scenario_close {
    int how; /* MS_CLOSE_NONE until given */
    size_t after_bytes;
    int64_t delay_ms;
    int from;
};

static int
scenario_check_close(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                     void *base)
{
    const struct scenario_close *c = base;
    if (c->how == MS_CLOSE_NONE)
        return scenario_fail(ctx, map->pos, path, "missing how (fin, rst or half)");
    return MOCKSRV_OK;
}

static const struct scenario_field scenario_close_fields[] = {
    F_NAMES("how", SK_ENUM, struct scenario_close, how, scenario_close_hows, "close mode"),
    F_NUM("after_bytes", SK_SIZE, struct scenario_close, after_bytes, 0, SIZE_MAX),
    F_NUM("delay", SK_DURATION, struct scenario_close, delay_ms, 0, SCENARIO_FAULT_MAX_MS),
    F_NAMES("from", SK_ENUM, struct scenario_close, from, scenario_fault_froms, "origin"),
};
static const struct scenario_table scenario_close_table =
    TABLE(scenario_close_fields, scenario_check_close);

static int
scenario_parse_fault_close(struct scenario_ctx *ctx, const struct scenario_node *key,
                           const struct scenario_node *val, const char *path, void *base)
{
    static const struct scenario_field f = {.names = scenario_close_hows,
                                            .n_names = MS_ARRAY_LEN(scenario_close_hows),
                                            .what = "close mode"};
    struct ms_fault_rule *r = base;
    struct scenario_close c = {.how = MS_CLOSE_NONE};
    unsigned how;
    int rc;
    if (val->kind == SCENARIO_SEQ)
        return scenario_fail_type(ctx, val, path,
                                  "fin, rst, half or a mapping {how, after_bytes, delay}");
    if (val->kind == SCENARIO_SCALAR) {
        if ((rc = scenario_get_name(ctx, val, path, &f, &how)) != MOCKSRV_OK)
            return rc;
        r->close_how = (enum ms_close_how)how;
        return MOCKSRV_OK;
    }
    if ((rc = scenario_walk(ctx, val, path, &scenario_close_table, &c)) != MOCKSRV_OK)
        return rc;
    r->close_how = (enum ms_close_how)c.how;
    r->close_after_bytes = c.after_bytes;
    r->has_close_after = scenario_map_get(val, "after_bytes") != NULL;
    r->close_delay_ms = c.delay_ms;
    r->close_from = (enum ms_fault_from)c.from;
    if (c.from == MS_FROM_END)
        return scenario_fail(ctx, scenario_map_get(val, "from")->pos, path,
                             "after_bytes counts from start or literal");
    return MOCKSRV_OK;
}

/* ---- tls (FAULTS.md 2 `tls:`) ---- */

static const struct scenario_name scenario_fault_tls_values[] = {
    {"refuse", MS_FTLS_REFUSE}, {"plaintext", MS_FTLS_PLAINTEXT}, {"close", MS_FTLS_CLOSE},
    {"alert", MS_FTLS_ALERT},   {"garbage", MS_FTLS_GARBAGE},
};

static const struct scenario_name scenario_fault_tls_phases[] = {
    {"after-client-hello", MS_TLS_PHASE_AFTER_CLIENT_HELLO},
    {"mid-server-flight", MS_TLS_PHASE_MID_SERVER_FLIGHT},
    {"before-finished", MS_TLS_PHASE_BEFORE_FINISHED},
};

/* tls: {stall, after_bytes}, while it is parsed. */
struct scenario_tls_stall {
    int phase; /* -1 until given */
    size_t after_bytes;
};

static int
scenario_check_tls_stall(struct scenario_ctx *ctx, const struct scenario_node *map,
                         const char *path, void *base)
{
    const struct scenario_tls_stall *t = base;
    char kpath[SCENARIO_PATH_MAX];
    if (t->phase < 0)
        return scenario_fail(ctx, map->pos, path,
                             "missing stall (after-client-hello, mid-server-flight or "
                             "before-finished)");
    const struct scenario_node *ab = scenario_map_get(map, "after_bytes");
    if (ab && t->phase != MS_TLS_PHASE_MID_SERVER_FLIGHT) {
        scenario_path_key(kpath, path, ab);
        return scenario_fail(ctx, ab->pos, kpath,
                             "after_bytes applies to stall: mid-server-flight only");
    }
    return MOCKSRV_OK;
}

static const struct scenario_field scenario_tls_stall_fields[] = {
    F_NAMES("stall", SK_ENUM, struct scenario_tls_stall, phase, scenario_fault_tls_phases,
            "TLS phase"),
    F_NUM("after_bytes", SK_SIZE, struct scenario_tls_stall, after_bytes, 0, SIZE_MAX),
};
static const struct scenario_table scenario_tls_stall_table =
    TABLE(scenario_tls_stall_fields, scenario_check_tls_stall);

static int
scenario_parse_fault_tls(struct scenario_ctx *ctx, const struct scenario_node *key,
                         const struct scenario_node *val, const char *path, void *base)
{
    (void)key;
    struct ms_fault_rule *r = base;
    char got[SCENARIO_TEXT_MAX * 4 + 16], names[256];
    static const char want[] = "refuse, plaintext, close, alert, garbage or "
                               "{stall: after-client-hello | mid-server-flight | before-finished}";
    if (val->kind == SCENARIO_MAP) {
        struct scenario_tls_stall t = {.phase = -1};
        int rc = scenario_walk(ctx, val, path, &scenario_tls_stall_table, &t);
        if (rc != MOCKSRV_OK)
            return rc;
        r->tls = MS_FTLS_STALL;
        r->tls_stall = (enum ms_fault_tls_phase)t.phase;
        r->has_tls_after = scenario_map_get(val, "after_bytes") != NULL;
        r->tls_after_bytes = t.after_bytes;
        return MOCKSRV_OK;
    }
    if (val->kind != SCENARIO_SCALAR || scenario_is_null(val))
        return scenario_fail_type(ctx, val, path, want);
    for (size_t i = 0; i < MS_ARRAY_LEN(scenario_fault_tls_values); i++) {
        if (strlen(val->text) == val->len &&
            ms_strcaseeq(val->text, scenario_fault_tls_values[i].name)) {
            r->tls = (enum ms_fault_tls)scenario_fault_tls_values[i].value;
            return MOCKSRV_OK;
        }
    }
    scenario_describe(got, sizeof got, val);
    if (ms_strcaseeq(val->text, "stall"))
        return scenario_fail(ctx, val->pos, path,
                             "a stall names its phase: {stall: after-client-hello}, {stall: "
                             "mid-server-flight, after_bytes: 200} or {stall: before-finished}");
    scenario_format_names(names, sizeof names, scenario_fault_tls_values,
                          MS_ARRAY_LEN(scenario_fault_tls_values));
    return scenario_fail(ctx, val->pos, path, "unknown tls fault %s (one of %s, or {stall: PHASE})",
                         got, names);
}

/* Where tls: applies (FAULTS.md 2): to STARTTLS/STLS at: command, or at: tls (the handshake,
 * implicit or after the go-ahead), where refuse comes too late and a reply has nothing to
 * replace. */
static int
scenario_check_fault_tls(struct scenario_ctx *ctx, const struct scenario_node *map,
                         const char *path, const struct ms_fault_rule *r)
{
    static const char *const content[] = {"reply",  "replies", "raw", "send",
                                          "inject", "append",  "hide"};
    char kpath[SCENARIO_PATH_MAX];
    int rc;
    if (r->at == MS_AT_TLS) {
        for (size_t i = 0; i < MS_ARRAY_LEN(content); i++) {
            const struct scenario_node *k = scenario_map_get(map, content[i]);
            if (!k)
                continue;
            scenario_path_key(kpath, path, k);
            return scenario_fail(ctx, k->pos, kpath,
                                 "at: tls has no reply to replace or edit (a handshake takes "
                                 "tls, delay and close)");
        }
    }
    const struct scenario_node *k = scenario_map_get(map, "tls");
    if (!k)
        return MOCKSRV_OK;
    const struct scenario_node *v = scenario_map_value(map, "tls");
    scenario_path_key(kpath, path, k);
    if ((rc = scenario_fault_exclusive(ctx, map, path, "tls", "reply",
                                       ": a reply replaces the go-ahead, so no TLS follows")) ||
        (rc = scenario_fault_exclusive(ctx, map, path, "tls", "replies",
                                       ": a reply replaces the go-ahead, so no TLS follows")) ||
        (rc = scenario_fault_exclusive(ctx, map, path, "tls", "raw",
                                       ": raw replaces the go-ahead, so no TLS follows")))
        return rc;
    if (r->at != MS_AT_COMMAND && r->at != MS_AT_TLS)
        return scenario_fail(ctx, k->pos, kpath,
                             "tls needs command: STARTTLS (or STLS) or at: tls (this rule is "
                             "at: %s)",
                             scenario_fault_ats[r->at].name);
    if (r->at == MS_AT_TLS && r->tls == MS_FTLS_REFUSE)
        return scenario_fail(ctx, v->pos, kpath,
                             "refuse answers STARTTLS or STLS (when: {command: STARTTLS}); at: "
                             "tls the go-ahead has been sent");
    if (r->at == MS_AT_COMMAND) {
        if (!r->n_commands)
            return scenario_fail(ctx, k->pos, kpath,
                                 "tls at: command needs command: STARTTLS (or STLS)");
        for (size_t i = 0; i < r->n_commands; i++)
            if (strcmp(r->commands[i], "STARTTLS") != 0 && strcmp(r->commands[i], "STLS") != 0)
                return scenario_fail(ctx, k->pos, kpath,
                                     "tls applies to STARTTLS and STLS only (this rule's "
                                     "command: %s)",
                                     r->commands[i]);
    }
    return MOCKSRV_OK;
}

static int
scenario_check_fault(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                     void *base)
{
    struct ms_fault_rule *r = base;
    int rc;
    if ((rc = scenario_fault_exclusive(ctx, map, path, "reply", "replies", "")) ||
        (rc = scenario_fault_exclusive(ctx, map, path, "raw", "reply", "")) ||
        (rc = scenario_fault_exclusive(ctx, map, path, "raw", "replies", "")))
        return rc;
    if (!r->has_reply && !r->n_replies && !r->has_raw && !r->send && !r->inject && !r->append &&
        !r->n_hide && !r->has_delay && r->close_how == MS_CLOSE_NONE && !r->has_split &&
        !r->bandwidth && !r->has_read && !r->has_stall && !r->has_tarpit && !r->tls)
        return scenario_fail(ctx, map->pos, path,
                             "a rule needs at least one action (reply, replies, raw, send, "
                             "inject, append, hide, tls, delay, split, bandwidth, read, stall, "
                             "close or tarpit)");
    if ((rc = scenario_check_fault_tls(ctx, map, path, r)) != MOCKSRV_OK)
        return rc;
    return MOCKSRV_OK;
}

static const struct scenario_field scenario_fault_fields[] = {
    F_STRING("name", struct ms_fault_rule, name, SC_NONEMPTY),
    F_CUSTOM("when", scenario_parse_fault_when),
    F_CUSTOM("probability", scenario_parse_fault_probability),
    F_NAMES("per", SK_ENUM, struct ms_fault_rule, per_session, scenario_fault_pers, "draw scope"),
    F_NUM("times", SK_UINT, struct ms_fault_rule, times, 1, UINT_MAX),
    F_CUSTOM("reply", scenario_parse_fault_reply),
    F_CUSTOM("replies", scenario_parse_fault_replies),
    F_CUSTOM("raw", scenario_parse_fault_raw),
    F_STRING("send", struct ms_fault_rule, send, SC_NONEMPTY),
    F_STRING("inject", struct ms_fault_rule, inject, SC_NONEMPTY),
    F_STRING("append", struct ms_fault_rule, append, SC_NONEMPTY),
    F_CUSTOM("hide", scenario_parse_fault_hide),
    F_CUSTOM("delay", scenario_parse_fault_delay),
    F_CUSTOM("close", scenario_parse_fault_close),
    /* FAULTS.md 2 keys of the next part: refused with their position, never ignored. */
    F_CUSTOM("split", scenario_parse_fault_split),
    F_CUSTOM("bandwidth", scenario_parse_fault_bandwidth),
    F_CUSTOM("read", scenario_parse_fault_read),
    F_CUSTOM("stall", scenario_parse_fault_stall),
    F_CUSTOM("tarpit", scenario_parse_fault_tarpit),
    F_CUSTOM("tls", scenario_parse_fault_tls),
    F_CUSTOM("scope", scenario_parse_fault_scope),
};
static const struct scenario_table scenario_fault_table =
    TABLE(scenario_fault_fields, scenario_check_fault);

/* Appends the canonical text of n: for a scalar, whether it was plain (plain and quoted may
 * mean different things: null, true, 3) and its length and bytes (NUL and backslash escaped,
 * so the text is one C string); maps and sequences bracket their kids, keys in file order.
 * Two spellings of the same rule (block or flow style, spacing, comments) give the same text;
 * a changed key, value or order gives another. Depth is bounded by the tree's. */
static void
scenario_node_canon(struct ms_buf *b, const struct scenario_node *n)
{
    if (n->kind == SCENARIO_SCALAR) {
        ms_buf_printf(b, "%c%zu:", n->plain ? 'p' : 'q', n->len);
        for (size_t i = 0; i < n->len; i++) {
            char c = n->text[i];
            if (c == '\0' || c == '\\')
                ms_buf_puts(b, c ? "\\\\" : "\\0");
            else
                ms_buf_append(b, &c, 1);
        }
        return;
    }
    ms_buf_puts(b, n->kind == SCENARIO_MAP ? "{" : "[");
    for (size_t i = 0; i < n->n_kids; i++)
        scenario_node_canon(b, n->kids[i]);
    ms_buf_puts(b, n->kind == SCENARIO_MAP ? "}" : "]");
}

int
scenario_parse_faults(struct scenario_ctx *ctx, const struct scenario_node *key,
                      const struct scenario_node *val, const char *path, void *base)
{
    struct ms_scenario *sc = base;
    char ipath[SCENARIO_PATH_MAX];
    int rc;
    if (scenario_is_null(val))
        return MOCKSRV_OK; /* "faults:" with nothing after it: none */
    if (val->kind != SCENARIO_SEQ)
        return scenario_fail_type(ctx, val, path, "a list of rules");
    sc->faults.rules = ms_calloc(val->n_kids, sizeof *sc->faults.rules);
    for (size_t i = 0; i < val->n_kids; i++) {
        const struct scenario_node *item = val->kids[i];
        scenario_path_index(ipath, path, i);
        if (item->kind != SCENARIO_MAP)
            return scenario_fail_type(ctx, item, ipath, "a rule (a mapping of when and actions)");
        struct ms_fault_rule *r = &sc->faults.rules[sc->faults.n_rules++];
        r->line = item->pos.line;
        r->column = item->pos.column;
        r->encrypted = -1;
        r->probability = 1.0;
        if ((rc = scenario_walk(ctx, item, ipath, &scenario_fault_table, r)) != MOCKSRV_OK)
            return rc;
        if (!r->name)
            r->name = ms_asprintf("faults[%zu]", i);
        /* the definition a reload compares to keep counters (FAULTS.md 5); an unnamed rule's
         * name is its place, so moving it is a change */
        struct ms_buf src = {0};
        scenario_node_canon(&src, item);
        r->source = ms_buf_steal(&src, NULL);
    }
    return MOCKSRV_OK;
}

/* when.listener names a listener of the scenario or a standard one. Run after the walk, since
 * listeners: may follow faults: in the file. */
int
scenario_check_fault_listeners(struct scenario_ctx *ctx, const struct ms_scenario *sc,
                               const struct scenario_node *top)
{
    char path[SCENARIO_PATH_MAX], lpath[SCENARIO_PATH_MAX], name[SCENARIO_TEXT_MAX * 4 + 8];
    const struct scenario_node *faults = scenario_map_value(top, "faults");
    if (!faults || faults->kind != SCENARIO_SEQ)
        return MOCKSRV_OK;
    for (size_t i = 0; i < sc->faults.n_rules; i++) {
        const struct ms_fault_rule *r = &sc->faults.rules[i];
        const struct scenario_node *when = scenario_map_value(faults->kids[i], "when");
        const struct scenario_node *lnode = when ? scenario_map_value(when, "listener") : NULL;
        for (size_t j = 0; lnode && j < r->n_listeners; j++) {
            struct ms_listener_conf std;
            const char *l = r->listeners[j];
            if (ms_scenario_find_listener(sc, l) || ms_listener_standard(l, &std) == MOCKSRV_OK)
                continue;
            const struct scenario_node *n = lnode->kind == SCENARIO_SEQ ? lnode->kids[j] : lnode;
            scenario_path_index(path, "faults", i);
            if (snprintf(lpath, sizeof lpath, "%s.when.listener", path) < 0)
                lpath[0] = '\0';
            if (lnode->kind == SCENARIO_SEQ) {
                memcpy(path, lpath, sizeof path);
                scenario_path_index(lpath, path, j);
            }
            scenario_escape(name, sizeof name, l, strlen(l), SCENARIO_TEXT_MAX);
            /* The nearest name among the scenario's listeners, then the standard ones. */
            const char *best = NULL;
            size_t best_d = SIZE_MAX;
            size_t n_std = MS_ARRAY_LEN(scenario_standard);
            for (size_t k = 0; k < sc->n_listeners + n_std; k++) {
                const char *cand = k < sc->n_listeners
                                       ? sc->listeners[k].name
                                       : scenario_standard[k - sc->n_listeners].name;
                size_t d = scenario_distance(l, strlen(l), cand);
                if (d < best_d && d <= 2 && d < strlen(cand)) {
                    best = cand;
                    best_d = d;
                }
            }
            if (best)
                return scenario_fail(ctx, n->pos, lpath,
                                     "no listener \"%s\" in this scenario (did you mean \"%s\"?)",
                                     name, best);
            char names[512];
            size_t o = 0;
            names[0] = '\0';
            for (size_t k = 0; k < sc->n_listeners; k++) {
                int w = snprintf(names + o, sizeof names - o, "%s%s", k ? ", " : "",
                                 sc->listeners[k].name);
                if (w < 0 || (size_t)w >= sizeof names - o)
                    break;
                o += (size_t)w;
            }
            return scenario_fail(ctx, n->pos, lpath,
                                 "no listener \"%s\" in this scenario (listeners: %s)", name,
                                 names);
        }
    }
    return MOCKSRV_OK;
}
