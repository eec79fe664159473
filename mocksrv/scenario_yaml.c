/*
 * scenario_yaml.c - what every part of the scenario loader builds on: the node tree, its
 * builder, the table-driven walk, typed values, scalar grammars, names and error messages.
 *
 * libyaml's event parser builds a small tree of our own (struct scenario_node, scenario_int.h)
 * in which every node keeps its position. Our own tree rather than yaml_parser_load() because
 * the document API resolves aliases silently: a node shared a million times ("billion laughs")
 * would make the walk exponential, and we could not say where the alias was. Aliases are
 * rejected at their position instead. scenario_walk then turns a mapping into a struct with the
 * mapping's table of keys (struct scenario_table): unknown keys get a "did you mean", duplicate
 * keys are refused, each value is read by the grammar of its kind (scenario_get_*).
 *
 * Not here: what any key means. The tables and custom keys live with their part (scenario.c,
 * scenario_script.c, scenario_mail.c, scenario_faults.c, scenario_expect.c); this file knows no
 * key of the scenario. Also the grammars of sizes, durations and dates (ms_parse_size,
 * ms_parse_duration, ms_parse_date), which the CLI uses too.
 *
 * Invariants:
 *   - The first error wins: scenario_fail fills struct mocksrv_error with MOCKSRV_ESCENARIO,
 *     the file name, the 1-based line and column of the node and
 *     "file:line:column: key.path: problem", and every caller returns what it returns at once.
 *   - Bad input never aborts and never recurses deeper than SCENARIO_MAX_DEPTH; only
 *     out-of-memory aborts (ms_malloc).
 *   - A scalar node's text is NUL-terminated but may hold a NUL of its own: compare len.
 */
#include "scenario_int.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <yaml.h>

#define SCENARIO_MAX_DEPTH 64 /* nesting of mappings and lists */

/* ---- names ---- */

const char *
ms_proto_name(enum ms_proto p)
{
    for (size_t i = 0; i < MS_ARRAY_LEN(scenario_protocols); i++)
        if (scenario_protocols[i].value == (unsigned)p)
            return scenario_protocols[i].name;
    return "unknown";
}

const char *
ms_tls_mode_name(enum ms_tls_mode m)
{
    for (size_t i = 0; i < MS_ARRAY_LEN(scenario_tls_modes); i++)
        if (scenario_tls_modes[i].value == (unsigned)m)
            return scenario_tls_modes[i].name;
    return "unknown";
}

int
ms_listener_standard(const char *name, struct ms_listener_conf *out)
{
    for (size_t i = 0; name && i < MS_ARRAY_LEN(scenario_standard); i++) {
        if (strcmp(scenario_standard[i].name, name) != 0)
            continue;
        memset(out, 0, sizeof *out);
        /* Borrowed, as scenario.h says: the cast only drops const from a static string. */
        out->name = (char *)scenario_standard[i].name;
        out->protocol = scenario_standard[i].protocol;
        out->port = scenario_standard[i].port;
        out->tls = scenario_standard[i].tls;
        return MOCKSRV_OK;
    }
    return MOCKSRV_ENOTFOUND;
}

/* ---- scalar grammars ---- */

int
ms_parse_size(const char *s, size_t *out)
{
    /* Single letters are binary, as nginx and most daemons read "10M"; B/KB/MB decimal. */
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"B", 1},
        {"K", SCENARIO_KIB},
        {"KiB", SCENARIO_KIB},
        {"KB", 1000},
        {"M", SCENARIO_MIB},
        {"MiB", SCENARIO_MIB},
        {"MB", 1000 * 1000},
        {"G", SCENARIO_GIB},
        {"GiB", SCENARIO_GIB},
        {"GB", 1000 * 1000 * 1000},
        {"T", SCENARIO_GIB * 1024},
        {"TiB", SCENARIO_GIB * 1024},
        {"TB", (uint64_t)1000 * 1000 * 1000 * 1000},
    };
    if (!s || !isdigit((unsigned char)*s))
        return MOCKSRV_EINVAL;
    uint64_t n = 0;
    const char *p = s;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - d) / 10)
            return MOCKSRV_EINVAL;
        n = n * 10 + d;
    }
    const char *unit = p;
    while (*unit == ' ')
        unit++;
    if (unit != p && *unit == '\0')
        return MOCKSRV_EINVAL; /* trailing blanks */
    for (size_t i = 0; i < MS_ARRAY_LEN(units); i++) {
        if (!ms_strcaseeq(unit, units[i].unit))
            continue;
        if (n > UINT64_MAX / units[i].mult || n * units[i].mult > SIZE_MAX)
            return MOCKSRV_EINVAL;
        *out = (size_t)(n * units[i].mult);
        return MOCKSRV_OK;
    }
    return MOCKSRV_EINVAL;
}

int
ms_parse_duration(const char *s, int64_t *ms_out)
{
    static const struct {
        const char *unit; /* "ms" before "m": the first unit that prefixes the rest wins */
        uint64_t ms;
    } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", SCENARIO_DAY_MS},
    };
    static const uint64_t pow10[] = {1,      10,      100,      1000,      10000,
                                     100000, 1000000, 10000000, 100000000, 1000000000};
    if (!s || !*s)
        return MOCKSRV_EINVAL;
    const char *p = s;
    uint64_t total = 0;
    for (int part = 0; *p; part++) {
        uint64_t whole = 0, frac = 0;
        size_t n_frac = 0;
        if (!isdigit((unsigned char)*p))
            return MOCKSRV_EINVAL;
        for (; isdigit((unsigned char)*p); p++) {
            whole = whole * 10 + (unsigned)(*p - '0');
            if (whole > (uint64_t)INT64_MAX)
                return MOCKSRV_EINVAL;
        }
        if (*p == '.') {
            p++;
            if (!isdigit((unsigned char)*p))
                return MOCKSRV_EINVAL;
            for (; isdigit((unsigned char)*p); p++) {
                if (n_frac == MS_ARRAY_LEN(pow10) - 1)
                    return MOCKSRV_EINVAL;
                frac = frac * 10 + (unsigned)(*p - '0');
                n_frac++;
            }
        }
        const char *u = p;
        while (*u == ' ')
            u++;
        uint64_t mult = 0;
        for (size_t i = 0; i < MS_ARRAY_LEN(units); i++) {
            size_t n = strlen(units[i].unit);
            if (ms_strncaseeq(u, units[i].unit, n) && !isalpha((unsigned char)u[n])) {
                mult = units[i].ms;
                p = u + n;
                break;
            }
        }
        if (!mult) {
            if (part > 0 || u != p || *p)
                return MOCKSRV_EINVAL;
            mult = 1000; /* a bare number is seconds */
        }
        if (whole > (uint64_t)INT64_MAX / mult)
            return MOCKSRV_EINVAL;
        /* frac < 10^9 and mult <= 86400000: the product fits. */
        uint64_t fr = frac * mult;
        if (fr % pow10[n_frac] != 0)
            return MOCKSRV_EINVAL; /* finer than a millisecond */
        uint64_t add = whole * mult + fr / pow10[n_frac];
        if (add > (uint64_t)INT64_MAX - total)
            return MOCKSRV_EINVAL;
        total += add;
    }
    *ms_out = (int64_t)total;
    return MOCKSRV_OK;
}

/* Reads 1..max decimal digits (at least min) at *p. */
static int
scenario_date_num(const char **p, int min, int max, unsigned *out)
{
    unsigned v = 0;
    int n = 0;
    while (n < max && isdigit((unsigned char)**p)) {
        v = v * 10 + (unsigned)(**p - '0');
        (*p)++;
        n++;
    }
    *out = v;
    return n >= min;
}

int
ms_parse_date(const char *s, int64_t *out)
{
    /* ISO 8601 (extended format) and the YAML 1.1 timestamp type:
     *   YYYY-M?M-D?D ( [Tt] | [ \t]+ ) H?H:MM:SS (.frac)? ( [ \t]* ( Z | [+-]H?H (:?MM)? ) )?
     * or a date alone (midnight UTC). */
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned year, mon, day, hour = 0, min = 0, sec = 0, oh = 0, om = 0;
    int sign = 0;
    const char *p = s;
    if (!s || !scenario_date_num(&p, 4, 4, &year) || *p++ != '-' ||
        !scenario_date_num(&p, 1, 2, &mon) || *p++ != '-' || !scenario_date_num(&p, 1, 2, &day))
        return MOCKSRV_EINVAL;
    if (*p) {
        if (*p == 'T' || *p == 't')
            p++;
        else if (*p == ' ' || *p == '\t')
            while (*p == ' ' || *p == '\t')
                p++;
        else
            return MOCKSRV_EINVAL;
        if (!scenario_date_num(&p, 1, 2, &hour) || *p++ != ':' ||
            !scenario_date_num(&p, 2, 2, &min) || *p++ != ':' || !scenario_date_num(&p, 2, 2, &sec))
            return MOCKSRV_EINVAL;
        if (*p == '.') {
            /* INTERNALDATE has whole seconds (RFC 3501 9, date-time): a fraction is dropped */
            p++;
            if (!isdigit((unsigned char)*p))
                return MOCKSRV_EINVAL;
            while (isdigit((unsigned char)*p))
                p++;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            sign = *p++ == '-' ? -1 : 1;
            if (!scenario_date_num(&p, 1, 2, &oh))
                return MOCKSRV_EINVAL;
            if (*p == ':')
                p++;
            if (isdigit((unsigned char)*p) && !scenario_date_num(&p, 2, 2, &om))
                return MOCKSRV_EINVAL;
            if (oh > 23 || om > 59)
                return MOCKSRV_EINVAL;
        }
        if (*p)
            return MOCKSRV_EINVAL;
    }
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] || (mon == 2 && day == 29 && !leap))
        return MOCKSRV_EINVAL;
    if (hour > 23 || min > 59 || sec > 59)
        return MOCKSRV_EINVAL;
    int64_t t = ms_days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec;
    *out = t - sign * (int64_t)(oh * 3600 + om * 60);
    return MOCKSRV_OK;
}

/* "2024-05-01T09:00:00Z": RFC 3339, always UTC. */
void
scenario_format_date(char *out, size_t cap, int64_t t)
{
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t rem = t - days * 86400;
    int64_t y;
    unsigned m, d;
    ms_civil_from_days(days, &y, &m, &d);
    snprintf(out, cap, "%04lld-%02u-%02uT%02u:%02u:%02uZ", (long long)y, m, d,
             (unsigned)(rem / 3600), (unsigned)(rem / 60 % 60), (unsigned)(rem % 60));
}

/* Decimal digits only: YAML 1.1's 0x, 0o, 1_000 and signs are not integers here. */
int
scenario_parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t n = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (n > (UINT64_MAX - d) / 10)
            return -2;
        n = n * 10 + d;
    }
    *out = n;
    return 0;
}

/* ---- error messages ---- */

/* Copies text into out, escaping control bytes, cut to max bytes with "...". */
void
scenario_escape(char *out, size_t cap, const char *text, size_t len, size_t max)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)text[i];
        if (i == max) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
            int n = c == '"' || c == '\\' ? snprintf(out + o, cap - o, "\\%c", c)
                                          : snprintf(out + o, cap - o, "\\x%02x", c);
            o += (size_t)n;
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

int
scenario_is_null(const struct scenario_node *n)
{
    if (n->kind != SCENARIO_SCALAR || !n->plain)
        return 0;
    return n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
           strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

/* "a list", "a mapping", "nothing" or the quoted scalar. */
void
scenario_describe(char *out, size_t cap, const struct scenario_node *n)
{
    char text[SCENARIO_TEXT_MAX * 4 + 16];
    if (n->kind == SCENARIO_MAP) {
        snprintf(out, cap, "a mapping");
    } else if (n->kind == SCENARIO_SEQ) {
        snprintf(out, cap, "a list");
    } else if (scenario_is_null(n)) {
        snprintf(out, cap, "nothing");
    } else {
        scenario_escape(text, sizeof text, n->text, n->len, SCENARIO_TEXT_MAX);
        if (snprintf(out, cap, "\"%s\"", text) < 0)
            out[0] = '\0';
    }
}

/* A scalar's text for a message, unquoted (numbers read better so), escaped and cut. */
const char *
scenario_text(char *out, size_t cap, const struct scenario_node *n)
{
    scenario_escape(out, cap, n->text, n->len, SCENARIO_TEXT_MAX);
    return out;
}

int
scenario_fail(struct scenario_ctx *ctx, struct ms_pos pos, const char *path, const char *fmt, ...)
{
    struct mocksrv_error *err = ctx->err;
    if (!err)
        return MOCKSRV_ESCENARIO;
    char problem[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof problem, fmt, ap);
    va_end(ap);
    memset(err, 0, sizeof *err);
    err->code = MOCKSRV_ESCENARIO;
    err->line = pos.line;
    err->column = pos.column;
    if (snprintf(err->file, sizeof err->file, "%s", ctx->name) < 0)
        err->file[0] = '\0';
    int n;
    if (path && *path)
        n = snprintf(err->message, sizeof err->message, "%s:%d:%d: %s: %s", ctx->name, pos.line,
                     pos.column, path, problem);
    else
        n = snprintf(err->message, sizeof err->message, "%s:%d:%d: %s", ctx->name, pos.line,
                     pos.column, problem);
    if (n < 0)
        snprintf(err->message, sizeof err->message, "scenario error");
    return MOCKSRV_ESCENARIO;
}

int
scenario_fail_type(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                   const char *want)
{
    char got[SCENARIO_TEXT_MAX * 4 + 16];
    scenario_describe(got, sizeof got, n);
    return scenario_fail(ctx, n->pos, path, "expected %s, got %s", want, got);
}

void
scenario_path_key(char *out, const char *parent, const struct scenario_node *key)
{
    char text[SCENARIO_TEXT_MAX * 4 + 8];
    scenario_escape(text, sizeof text, key->text, key->len, SCENARIO_TEXT_MAX);
    int n = *parent ? snprintf(out, SCENARIO_PATH_MAX, "%s.%s", parent, text)
                    : snprintf(out, SCENARIO_PATH_MAX, "%s", text);
    if (n < 0)
        out[0] = '\0';
}

void
scenario_path_index(char *out, const char *parent, size_t i)
{
    if (snprintf(out, SCENARIO_PATH_MAX, "%s[%zu]", parent, i) < 0)
        out[0] = '\0';
}

/* Formats a byte count the way a user would write it: 65536 -> "64KiB". */
void
scenario_format_size(char *out, size_t cap, uint64_t n)
{
    if (n >= SCENARIO_GIB && n % SCENARIO_GIB == 0)
        snprintf(out, cap, "%lluGiB", (unsigned long long)(n / SCENARIO_GIB));
    else if (n >= SCENARIO_MIB && n % SCENARIO_MIB == 0)
        snprintf(out, cap, "%lluMiB", (unsigned long long)(n / SCENARIO_MIB));
    else if (n >= SCENARIO_KIB && n % SCENARIO_KIB == 0)
        snprintf(out, cap, "%lluKiB", (unsigned long long)(n / SCENARIO_KIB));
    else
        snprintf(out, cap, "%llu", (unsigned long long)n);
}

void
scenario_format_duration(char *out, size_t cap, uint64_t ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"d", SCENARIO_DAY_MS}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    for (size_t i = 0; i < MS_ARRAY_LEN(units); i++) {
        if (ms >= units[i].ms && ms % units[i].ms == 0) {
            snprintf(out, cap, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    }
    snprintf(out, cap, "%llums", (unsigned long long)ms);
}

/* "PLAIN, LOGIN, CRAM-MD5" */
void
scenario_format_names(char *out, size_t cap, const struct scenario_name *names, size_t n)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++) {
        int k = snprintf(out + o, cap - o, "%s%s", i ? ", " : "", names[i].name);
        if (k < 0)
            break;
        o += (size_t)k;
    }
}

/* ---- the tree builder ---- */

static struct ms_pos
scenario_pos(yaml_mark_t mark)
{
    struct ms_pos pos;
    pos.line = mark.line < INT_MAX ? (int)mark.line + 1 : INT_MAX;
    pos.column = mark.column < INT_MAX ? (int)mark.column + 1 : INT_MAX;
    return pos;
}

void
scenario_node_free(struct scenario_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n_kids; i++)
        scenario_node_free(n->kids[i]);
    free(n->kids);
    free(n->text);
    free(n);
}

static struct scenario_node *
scenario_node_create(enum scenario_node_kind kind, yaml_mark_t mark)
{
    struct scenario_node *n = ms_calloc(1, sizeof *n);
    n->kind = kind;
    n->pos = scenario_pos(mark);
    return n;
}

/* The key path of the place the builder is at, for errors found while building. */
static void
scenario_stack_path(char *out, struct scenario_node **stack, size_t depth)
{
    char tmp[SCENARIO_PATH_MAX];
    out[0] = '\0';
    for (size_t i = 0; i < depth; i++) {
        const struct scenario_node *p = stack[i];
        int inner = i + 1 < depth; /* the child being built is stack[i + 1], p's last kid */
        memcpy(tmp, out, SCENARIO_PATH_MAX);
        if (p->kind == SCENARIO_MAP) {
            /* Inner: the child is the value after the key kids[n - 2]. Innermost: a value is
             * pending after kids[n - 1] when n is odd, else a key is: stop there. */
            if (inner ? p->n_kids < 2 : p->n_kids % 2 == 0)
                return;
            scenario_path_key(out, tmp, p->kids[inner ? p->n_kids - 2 : p->n_kids - 1]);
        } else if (p->kind == SCENARIO_SEQ) {
            scenario_path_index(out, tmp, inner ? p->n_kids - 1 : p->n_kids);
        }
    }
}

/* Reports a libyaml error: its position, problem and context. */
static int
scenario_fail_yaml(struct scenario_ctx *ctx, const yaml_parser_t *parser, const unsigned char *yaml,
                   size_t len)
{
    struct ms_pos pos;
    const char *problem = parser->problem ? parser->problem : "cannot parse";
    if (parser->error == YAML_MEMORY_ERROR)
        ms_die("out of memory (libyaml)");
    if (parser->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset: count lines and UTF-8 characters up to it. */
        size_t off = MS_MIN(parser->problem_offset, len);
        pos.line = 1;
        pos.column = 1;
        for (size_t i = 0; i < off; i++) {
            if (yaml[i] == '\n') {
                pos.line++;
                pos.column = 1;
            } else if ((yaml[i] & 0xc0) != 0x80) {
                pos.column++;
            }
        }
        if (parser->problem_value != -1)
            return scenario_fail(ctx, pos, NULL, "YAML error: %s (byte 0x%02x)", problem,
                                 (unsigned)parser->problem_value & 0xff);
        return scenario_fail(ctx, pos, NULL, "YAML error: %s", problem);
    }
    pos = scenario_pos(parser->problem_mark);
    if (parser->context) {
        struct ms_pos cpos = scenario_pos(parser->context_mark);
        return scenario_fail(ctx, pos, NULL, "YAML syntax error: %s (%s at %d:%d)", problem,
                             parser->context, cpos.line, cpos.column);
    }
    return scenario_fail(ctx, pos, NULL, "YAML syntax error: %s", problem);
}

/* Adds a new node as the next child of the innermost open collection (or as the root). */
static int
scenario_attach(struct scenario_ctx *ctx, struct scenario_node *n, struct scenario_node **stack,
                size_t depth, struct scenario_node **root)
{
    if (depth == 0) {
        if (*root) {
            struct ms_pos pos = n->pos;
            scenario_node_free(n);
            return scenario_fail(ctx, pos, NULL, "a second YAML document: one scenario per file");
        }
        *root = n;
        return MOCKSRV_OK;
    }
    struct scenario_node *parent = stack[depth - 1];
    ms_grow((void **)&parent->kids, &parent->cap_kids, parent->n_kids + 1, sizeof *parent->kids);
    parent->kids[parent->n_kids++] = n;
    if (parent->kind == SCENARIO_MAP && parent->n_kids % 2 == 1 && n->kind != SCENARIO_SCALAR) {
        char path[SCENARIO_PATH_MAX];
        scenario_stack_path(path, stack, depth - 1);
        return scenario_fail(ctx, n->pos, path, "keys must be strings, not %s",
                             n->kind == SCENARIO_MAP ? "mappings" : "lists");
    }
    return MOCKSRV_OK;
}

static int
scenario_build_event(struct scenario_ctx *ctx, const yaml_event_t *ev, struct scenario_node **stack,
                     size_t *depth, struct scenario_node **root, int *documents)
{
    struct scenario_node *n;
    char path[SCENARIO_PATH_MAX];
    int rc;

    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if ((*documents)++ > 0)
            return scenario_fail(ctx, scenario_pos(ev->start_mark), NULL,
                                 "a second YAML document: one scenario per file");
        return MOCKSRV_OK;
    case YAML_ALIAS_EVENT: {
        char anchor[SCENARIO_TEXT_MAX * 4 + 8];
        const char *a = (const char *)ev->data.alias.anchor;
        scenario_escape(anchor, sizeof anchor, a ? a : "", a ? strlen(a) : 0, SCENARIO_TEXT_MAX);
        scenario_stack_path(path, stack, *depth);
        return scenario_fail(ctx, scenario_pos(ev->start_mark), path,
                             "alias *%s: aliases are not supported, repeat the value", anchor);
    }
    case YAML_SCALAR_EVENT:
        n = scenario_node_create(SCENARIO_SCALAR, ev->start_mark);
        n->len = ev->data.scalar.length;
        n->text = ms_strndup((const char *)ev->data.scalar.value, n->len);
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        return scenario_attach(ctx, n, stack, *depth, root);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        n = scenario_node_create(ev->type == YAML_MAPPING_START_EVENT ? SCENARIO_MAP : SCENARIO_SEQ,
                                 ev->start_mark);
        if ((rc = scenario_attach(ctx, n, stack, *depth, root)) != MOCKSRV_OK)
            return rc;
        if (*depth == SCENARIO_MAX_DEPTH) {
            scenario_stack_path(path, stack, *depth);
            return scenario_fail(ctx, n->pos, path, "nested deeper than %d levels",
                                 SCENARIO_MAX_DEPTH);
        }
        stack[(*depth)++] = n;
        return MOCKSRV_OK;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        ms_assert(*depth > 0); /* libyaml balances them */
        (*depth)--;
        return MOCKSRV_OK;
    default:
        return MOCKSRV_OK;
    }
}

int
scenario_build(struct scenario_ctx *ctx, const unsigned char *yaml, size_t len,
               struct scenario_node **root_r)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    struct scenario_node *stack[SCENARIO_MAX_DEPTH];
    struct scenario_node *root = NULL;
    size_t depth = 0;
    int documents = 0;
    int rc = MOCKSRV_OK;

    if (!yaml_parser_initialize(&parser))
        ms_die("out of memory (libyaml)");
    yaml_parser_set_input_string(&parser, yaml, len);
    for (;;) {
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = scenario_fail_yaml(ctx, &parser, yaml, len);
            goto fail;
        }
        if (ev.type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        rc = scenario_build_event(ctx, &ev, stack, &depth, &root, &documents);
        yaml_event_delete(&ev);
        if (rc != MOCKSRV_OK)
            goto fail;
    }
    yaml_parser_delete(&parser);
    if (!root) {
        struct ms_pos pos = {1, 1};
        return scenario_fail(ctx, pos, NULL,
                             "empty scenario (expected a mapping, e.g. version: 1)");
    }
    *root_r = root;
    return MOCKSRV_OK;

fail:
    yaml_parser_delete(&parser);
    scenario_node_free(root);
    return rc;
}

/* ---- typed values ---- */

/* The key node of a key of a mapping, or NULL. */
const struct scenario_node *
scenario_map_get(const struct scenario_node *map, const char *key)
{
    if (map->kind != SCENARIO_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < map->n_kids; i += 2)
        if (map->kids[i]->len == strlen(key) && strcmp(map->kids[i]->text, key) == 0)
            return map->kids[i];
    return NULL;
}

/* The value node of a key of a mapping, or NULL. */
const struct scenario_node *
scenario_map_value(const struct scenario_node *map, const char *key)
{
    if (map->kind != SCENARIO_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < map->n_kids; i += 2)
        if (map->kids[i]->len == strlen(key) && strcmp(map->kids[i]->text, key) == 0)
            return map->kids[i + 1];
    return NULL;
}

int
scenario_text_ok(const char *s, size_t len, enum scenario_check check)
{
    if (strlen(s) != len)
        return 0; /* a NUL from a "\0" escape */
    if (check == SC_ANY)
        return 1;
    if (len == 0)
        return 0;
    if (check == SC_NONEMPTY)
        return 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f)
            return 0;
        if (check == SC_ADDRESS && strchr("<>,;\"", c))
            return 0;
        /* RFC 3501 9: atom-specials */
        if (check == SC_ATOM && (c >= 0x80 || strchr("(){%*\"\\]", c)))
            return 0;
    }
    if (check == SC_HOST)
        return len <= 255;
    if (check == SC_ADDRESS) {
        const char *at = strrchr(s, '@');
        return at && at != s && at[1] != '\0';
    }
    return 1;
}

int
scenario_get_string(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                    enum scenario_check check, char **out)
{
    static const char *const wants[] = {
        [SC_ANY] = "a string",
        [SC_HOST] = "a host name",
        [SC_ADDRESS] = "an address like alice@mock.test",
        [SC_ATOM] = "an IMAP atom",
        [SC_NONEMPTY] = "a non-empty string",
    };
    if (n->kind != SCENARIO_SCALAR || scenario_is_null(n))
        return scenario_fail_type(ctx, n, path, wants[check]);
    if (!scenario_text_ok(n->text, n->len, check))
        return scenario_fail_type(ctx, n, path, wants[check]);
    *out = ms_strndup(n->text, n->len);
    return MOCKSRV_OK;
}

int
scenario_get_bool(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                  int *out)
{
    /* YAML 1.1 booleans, plain only: "yes" in quotes is a string. */
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    if (n->kind == SCENARIO_SCALAR && n->plain) {
        for (size_t i = 0; i < MS_ARRAY_LEN(yes); i++) {
            if (ms_strcaseeq(n->text, yes[i])) {
                *out = 1;
                return MOCKSRV_OK;
            }
            if (ms_strcaseeq(n->text, no[i])) {
                *out = 0;
                return MOCKSRV_OK;
            }
        }
    }
    return scenario_fail_type(ctx, n, path, "a boolean (true or false)");
}

int
scenario_get_uint(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                  uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    int rc = -1;
    if (n->kind == SCENARIO_SCALAR && n->plain) {
        const char *digits = n->text[0] == '-' ? n->text + 1 : n->text;
        rc = scenario_parse_u64(digits, n->len - (size_t)(digits - n->text), &v);
        if (rc == 0 && digits != n->text && v != 0)
            rc = -2; /* negative */
    }
    if (rc == -1)
        return scenario_fail_type(ctx, n, path, "an integer");
    if (rc == -2 || v < min || v > max) {
        char text[SCENARIO_TEXT_MAX * 4 + 8];
        return scenario_fail(ctx, n->pos, path, "%s is out of range (%llu .. %llu)",
                             scenario_text(text, sizeof text, n), (unsigned long long)min,
                             (unsigned long long)max);
    }
    *out = v;
    return MOCKSRV_OK;
}

int
scenario_get_size(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                  uint64_t min, uint64_t max, size_t *out)
{
    char got[SCENARIO_TEXT_MAX * 4 + 16], lo[32], hi[32];
    size_t v;
    if (n->kind != SCENARIO_SCALAR || scenario_is_null(n))
        return scenario_fail_type(ctx, n, path, "a size (4096, 4KiB, 10MB)");
    scenario_describe(got, sizeof got, n);
    if (strlen(n->text) != n->len || ms_parse_size(n->text, &v) != MOCKSRV_OK)
        return scenario_fail(ctx, n->pos, path, "bad size %s (use 4096, 4KiB, 10MB)", got);
    if (v < min || v > max) {
        scenario_format_size(lo, sizeof lo, min);
        scenario_format_size(hi, sizeof hi, max);
        return scenario_fail(ctx, n->pos, path, "%s is out of range (%s .. %s)",
                             scenario_text(got, sizeof got, n), lo, hi);
    }
    *out = v;
    return MOCKSRV_OK;
}

int
scenario_get_duration(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                      uint64_t min, uint64_t max, int64_t *out)
{
    char got[SCENARIO_TEXT_MAX * 4 + 16], lo[32], hi[32];
    int64_t v;
    if (n->kind != SCENARIO_SCALAR || scenario_is_null(n))
        return scenario_fail_type(ctx, n, path, "a duration (250ms, 2s, 1m)");
    scenario_describe(got, sizeof got, n);
    if (strlen(n->text) != n->len || ms_parse_duration(n->text, &v) != MOCKSRV_OK)
        return scenario_fail(ctx, n->pos, path, "bad duration %s (use 250ms, 2s, 1.5s, 1m, 1h)",
                             got);
    if ((uint64_t)v < min || (uint64_t)v > max) {
        scenario_format_duration(lo, sizeof lo, min);
        scenario_format_duration(hi, sizeof hi, max);
        return scenario_fail(ctx, n->pos, path, "%s is out of range (%s .. %s)",
                             scenario_text(got, sizeof got, n), lo, hi);
    }
    *out = v;
    return MOCKSRV_OK;
}

int
scenario_get_name(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                  const struct scenario_field *f, unsigned *out)
{
    char got[SCENARIO_TEXT_MAX * 4 + 16], allowed[256];
    if (n->kind != SCENARIO_SCALAR || scenario_is_null(n)) {
        if (snprintf(allowed, sizeof allowed, "a %s", f->what) < 0)
            allowed[0] = '\0';
        return scenario_fail_type(ctx, n, path, allowed);
    }
    for (size_t i = 0; i < f->n_names; i++) {
        if (strlen(n->text) == n->len && ms_strcaseeq(n->text, f->names[i].name)) {
            *out = f->names[i].value;
            return MOCKSRV_OK;
        }
    }
    scenario_describe(got, sizeof got, n);
    scenario_format_names(allowed, sizeof allowed, f->names, f->n_names);
    return scenario_fail(ctx, n->pos, path, "unknown %s %s (one of %s)", f->what, got, allowed);
}

static int
scenario_get_flags(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                   const struct scenario_field *f, unsigned *out)
{
    char ipath[SCENARIO_PATH_MAX], want[128];
    unsigned bits = 0, bit;
    if (n->kind != SCENARIO_SEQ) {
        if (snprintf(want, sizeof want, "a list, like [%s, %s]", f->names[0].name,
                     f->names[1].name) < 0)
            want[0] = '\0';
        return scenario_fail_type(ctx, n, path, want);
    }
    for (size_t i = 0; i < n->n_kids; i++) {
        scenario_path_index(ipath, path, i);
        int rc = scenario_get_name(ctx, n->kids[i], ipath, f, &bit);
        if (rc != MOCKSRV_OK)
            return rc;
        bits |= bit;
    }
    *out = bits;
    return MOCKSRV_OK;
}

void
scenario_strings_free(char ***list, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*list)[i]);
    free(*list);
    *list = NULL;
    *n = 0;
}

/* Replaces *list with the strings of a YAML list; on error *list holds what was read. */
int
scenario_get_strings(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                     enum scenario_check check, char ***list, size_t *count)
{
    char ipath[SCENARIO_PATH_MAX];
    scenario_strings_free(list, count);
    if (n->kind != SCENARIO_SEQ)
        return scenario_fail_type(ctx, n, path, "a list");
    *list = ms_calloc(n->n_kids, sizeof **list);
    for (size_t i = 0; i < n->n_kids; i++) {
        scenario_path_index(ipath, path, i);
        int rc = scenario_get_string(ctx, n->kids[i], ipath, check, &(*list)[i]);
        if (rc != MOCKSRV_OK)
            return rc;
        (*count)++;
    }
    return MOCKSRV_OK;
}

/* Joins a relative path to the scenario's directory. */
char *
scenario_resolve(const char *base_dir, const char *p)
{
    if (p[0] == '/' || !base_dir[0] || strcmp(base_dir, ".") == 0)
        return ms_strdup(p);
    size_t n = strlen(base_dir);
    return ms_asprintf("%s%s%s", base_dir, base_dir[n - 1] == '/' ? "" : "/", p);
}

/* ---- the walk ---- */

/* Case-insensitive Levenshtein distance, SIZE_MAX for long strings. */
size_t
scenario_distance(const char *a, size_t la, const char *b)
{
    size_t lb = strlen(b);
    size_t row[65];
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            row[j] = MS_MIN(MS_MIN(row[j] + 1, row[j - 1] + 1), diag + cost);
            diag = up;
        }
    }
    return row[lb];
}

static int
scenario_fail_unknown(struct scenario_ctx *ctx, const struct scenario_node *key, const char *path,
                      const struct scenario_table *t)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < t->n_fields; i++) {
        const char *cand = t->fields[i].key;
        size_t d = scenario_distance(key->text, key->len, cand);
        /* Within two edits, but not so short that any word would match. */
        if (d < best_d && (d == 0 || (d <= 2 && d < strlen(cand)))) {
            best = cand;
            best_d = d;
        }
    }
    if (best)
        return scenario_fail(ctx, key->pos, path, "unknown key (did you mean \"%s\"?)", best);
    char keys[512];
    size_t o = 0;
    keys[0] = '\0';
    for (size_t i = 0; i < t->n_fields; i++) {
        if (t->fields[i].kind == SK_LATER)
            continue;
        int k = snprintf(keys + o, sizeof keys - o, "%s%s", o ? ", " : "", t->fields[i].key);
        if (k < 0 || (size_t)k >= sizeof keys - o)
            break;
        o += (size_t)k;
    }
    return scenario_fail(ctx, key->pos, path, "unknown key (expected one of: %s)", keys);
}

struct scenario_key_ref {
    const struct scenario_node *key;
    size_t index;
};

static int
scenario_key_cmp(const void *a, const void *b)
{
    const struct scenario_key_ref *x = a, *y = b;
    size_t n = MS_MIN(x->key->len, y->key->len);
    int c = memcmp(x->key->text, y->key->text, n);
    if (c)
        return c;
    if (x->key->len != y->key->len)
        return x->key->len < y->key->len ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* The first key (in document order) that repeats an earlier one is an error. Sorting keeps it
 * O(n log n) for maps of thousands of users. */
int
scenario_check_dups(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path)
{
    size_t n = map->n_kids / 2;
    if (n < 2)
        return MOCKSRV_OK;
    struct scenario_key_ref *refs = ms_malloc(n * sizeof *refs);
    for (size_t i = 0; i < n; i++) {
        refs[i].key = map->kids[2 * i];
        refs[i].index = i;
    }
    qsort(refs, n, sizeof *refs, scenario_key_cmp);
    size_t dup = SIZE_MAX, first = 0;
    for (size_t i = 1; i < n; i++) {
        const struct scenario_node *a = refs[i - 1].key, *b = refs[i].key;
        if (a->len == b->len && memcmp(a->text, b->text, a->len) == 0 && refs[i].index < dup) {
            dup = refs[i].index;
            first = refs[i - 1].index;
        }
    }
    free(refs);
    if (dup == SIZE_MAX)
        return MOCKSRV_OK;
    /* The earlier of a run of equal keys sorts first: first is the occurrence before dup. */
    const struct scenario_node *key = map->kids[2 * dup], *prev = map->kids[2 * first];
    char kpath[SCENARIO_PATH_MAX];
    scenario_path_key(kpath, path, key);
    return scenario_fail(ctx, key->pos, kpath, "duplicate key (first at %d:%d)", prev->pos.line,
                         prev->pos.column);
}

static int
scenario_parse_field(struct scenario_ctx *ctx, const struct scenario_field *f,
                     const struct scenario_node *key, const struct scenario_node *val,
                     const char *path, void *base)
{
    void *dst = (char *)base + f->offset;
    uint64_t u;
    unsigned bits;
    char *s = NULL;
    int rc;

    switch (f->kind) {
    case SK_SECTION:
        return scenario_walk(ctx, val, path, f->section, dst);
    case SK_LATER:
        return scenario_fail(ctx, key->pos, path, "not supported yet by this version");
    case SK_STRING:
    case SK_PATH:
        if ((rc = scenario_get_string(ctx, val, path, f->check, &s)) != MOCKSRV_OK)
            return rc;
        free(*(char **)dst);
        if (f->kind == SK_PATH) {
            *(char **)dst = scenario_resolve(ctx->base_dir, s);
            free(s);
        } else {
            *(char **)dst = s;
        }
        return MOCKSRV_OK;
    case SK_BOOL:
        return scenario_get_bool(ctx, val, path, dst);
    case SK_INT:
    case SK_UINT:
        if ((rc = scenario_get_uint(ctx, val, path, f->min, f->max, &u)) != MOCKSRV_OK)
            return rc;
        if (f->kind == SK_INT)
            *(int *)dst = (int)u;
        else
            *(unsigned *)dst = (unsigned)u;
        return MOCKSRV_OK;
    case SK_U32:
        if ((rc = scenario_get_uint(ctx, val, path, f->min, f->max, &u)) != MOCKSRV_OK)
            return rc;
        *(uint32_t *)dst = (uint32_t)u;
        return MOCKSRV_OK;
    case SK_SIZE:
        return scenario_get_size(ctx, val, path, f->min, f->max, dst);
    case SK_DURATION:
        return scenario_get_duration(ctx, val, path, f->min, f->max, dst);
    case SK_ENUM:
        if ((rc = scenario_get_name(ctx, val, path, f, &bits)) != MOCKSRV_OK)
            return rc;
        *(int *)dst = (int)bits;
        return MOCKSRV_OK;
    case SK_FLAGS:
        return scenario_get_flags(ctx, val, path, f, dst);
    case SK_STRINGS:
        return scenario_get_strings(ctx, val, path, f->check, dst,
                                    (size_t *)((char *)base + f->offset2));
    case SK_CUSTOM:
        return f->parse(ctx, key, val, path, base);
    }
    return MOCKSRV_OK;
}

/* Walks a mapping with a table of its keys; a null value (a key with nothing after it) is an
 * empty mapping. */
int
scenario_walk(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
              const struct scenario_table *table, void *base)
{
    char kpath[SCENARIO_PATH_MAX];
    int rc;
    if (!scenario_is_null(map)) {
        if (map->kind != SCENARIO_MAP)
            return scenario_fail_type(ctx, map, path, "a mapping");
        if ((rc = scenario_check_dups(ctx, map, path)) != MOCKSRV_OK)
            return rc;
        for (size_t i = 0; i + 1 < map->n_kids; i += 2) {
            const struct scenario_node *key = map->kids[i], *val = map->kids[i + 1];
            const struct scenario_field *f = NULL;
            for (size_t j = 0; j < table->n_fields && !f; j++)
                if (key->len == strlen(table->fields[j].key) &&
                    strcmp(key->text, table->fields[j].key) == 0)
                    f = &table->fields[j];
            scenario_path_key(kpath, path, key);
            if (!f)
                return scenario_fail_unknown(ctx, key, kpath, table);
            if ((rc = scenario_parse_field(ctx, f, key, val, kpath, base)) != MOCKSRV_OK)
                return rc;
        }
    }
    return table->check ? table->check(ctx, map, path, base) : MOCKSRV_OK;
}
