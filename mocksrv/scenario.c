/*
 * scenario.c - the YAML scenario loader: bytes in, struct ms_scenario out (see scenario.h).
 *
 * Two passes. First libyaml's event parser builds a small tree of our own (struct scenario_node)
 * in which every node keeps its position. Then a table-driven walk turns the tree into the
 * model: each mapping of the scenario has a table of its keys (struct scenario_field) giving the
 * type, the destination field, the allowed range and, where needed, a function of its own.
 * Our own tree rather than yaml_parser_load() because the document API resolves aliases
 * silently: a node shared a million times ("billion laughs") would make the walk exponential,
 * and we could not say where the alias was. Aliases are rejected at their position instead.
 *
 * Not here: TLS, sockets, the mail store. Paths (tls.cert ...) are resolved against the
 * scenario's directory but never opened; the module that uses a file reports its errors.
 * Keys of later stages (faults, expect, users.*.mailboxes, listeners.*.script) are errors that
 * say so, never silently ignored: a scenario is either understood completely or refused.
 *
 * Invariants:
 *   - The first error wins. It fills struct mocksrv_error with MOCKSRV_ESCENARIO, the file
 *     name, the 1-based line and column of the offending node and the message
 *     "file:line:column: key.path: problem"; the loader then frees all it built.
 *   - Bad input never aborts and never recurses deeper than SCENARIO_MAX_DEPTH; only
 *     out-of-memory aborts (ms_malloc). The loader is meant to be fuzzed.
 *   - Every char * in a struct ms_scenario is NUL-free text owned by the scenario.
 */
#include "scenario.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/* Generated from fixtures/scenarios/default.yaml by cmake/embed.cmake. */
extern const unsigned char ms_embedded_default_yaml[];
extern const size_t ms_embedded_default_yaml_len;

#define SCENARIO_MAX_DEPTH 64         /* nesting of mappings and lists */
#define SCENARIO_MAX_FILE (64u << 20) /* bytes of a scenario file */
#define SCENARIO_PATH_MAX 256         /* "users.alice.addresses[3]" */
#define SCENARIO_TEXT_MAX 48          /* bytes of a value quoted in a message */

#define SCENARIO_KIB ((uint64_t)1024)
#define SCENARIO_MIB (SCENARIO_KIB * 1024)
#define SCENARIO_GIB (SCENARIO_MIB * 1024)
#define SCENARIO_DAY_MS ((uint64_t)24 * 3600 * 1000)

/* ---- the node tree ---- */

enum scenario_node_kind { SCENARIO_SCALAR, SCENARIO_MAP, SCENARIO_SEQ };

struct scenario_node {
    enum scenario_node_kind kind;
    struct ms_pos pos;
    /* SCALAR: the text (NUL-terminated, but may hold a NUL of its own: compare len) */
    char *text;
    size_t len;
    int plain; /* unquoted: only plain scalars are null, booleans or integers */
    /* MAP: kids[2i] is a key (always a scalar), kids[2i + 1] its value. SEQ: the items. */
    struct scenario_node **kids;
    size_t n_kids;
    size_t cap_kids;
};

struct scenario_ctx {
    const char *name;     /* for messages: the file name, "<string>", "<default>" */
    const char *base_dir; /* relative paths are resolved against it */
    struct mocksrv_error *err;
    int seen_listeners; /* the listeners key was given (else the default set) */
};

/* ---- the key tables ---- */

enum scenario_kind {
    SK_SECTION,  /* a nested mapping, walked with its own table */
    SK_LATER,    /* a key of a later stage of mocksrv: an error for now */
    SK_STRING,   /* char * */
    SK_PATH,     /* char *, resolved against the scenario's directory */
    SK_BOOL,     /* int */
    SK_INT,      /* int in min..max */
    SK_UINT,     /* unsigned in min..max */
    SK_SIZE,     /* size_t in min..max, ms_parse_size grammar */
    SK_DURATION, /* int64_t milliseconds in min..max, ms_parse_duration grammar */
    SK_ENUM,     /* int: the value of one name of names[] */
    SK_FLAGS,    /* unsigned: the OR of the values of a list of names of names[] */
    SK_STRINGS,  /* char ** at offset, size_t count at offset2 */
    SK_CUSTOM,   /* parse() does it all */
};

/* What a string must look like. */
enum scenario_check { SC_ANY, SC_HOST, SC_ADDRESS, SC_ATOM, SC_NONEMPTY };

struct scenario_name {
    const char *name;
    unsigned value;
};

struct scenario_table;

typedef int scenario_parse_fn(struct scenario_ctx *ctx, const struct scenario_node *key,
                              const struct scenario_node *val, const char *path, void *base);
typedef int scenario_check_fn(struct scenario_ctx *ctx, const struct scenario_node *map,
                              const char *path, void *base);

struct scenario_field {
    const char *key;
    enum scenario_kind kind;
    size_t offset;
    size_t offset2;
    uint64_t min, max;
    enum scenario_check check;
    const struct scenario_name *names;
    size_t n_names;
    const char *what; /* "mechanism": the noun for a name of names[] in messages */
    const struct scenario_table *section;
    scenario_parse_fn *parse;
};

struct scenario_table {
    const struct scenario_field *fields;
    size_t n_fields;
    scenario_check_fn *check; /* run after every key was parsed, may be NULL */
};

/* A listener while it is parsed: protocol -1 until given. */
struct scenario_listener {
    int protocol;
    int tls;
    int port;
    char *host;
};

static int scenario_fail(struct scenario_ctx *ctx, struct ms_pos pos, const char *path,
                         const char *fmt, ...) MS_PRINTF(4, 5);
static int scenario_walk(struct scenario_ctx *ctx, const struct scenario_node *map,
                         const char *path, const struct scenario_table *table, void *base);

/* ---- names ---- */

static const struct scenario_name scenario_protocols[] = {
    {"smtp", MS_PROTO_SMTP}, {"lmtp", MS_PROTO_LMTP},     {"pop3", MS_PROTO_POP3},
    {"imap", MS_PROTO_IMAP}, {"script", MS_PROTO_SCRIPT},
};

static const struct scenario_name scenario_tls_modes[] = {
    {"none", MS_TLS_NONE},
    {"starttls", MS_TLS_STARTTLS},
    {"required", MS_TLS_REQUIRED},
    {"implicit", MS_TLS_IMPLICIT},
};

static const struct scenario_name scenario_tls_versions[] = {
    {"1.0", 0x0301},
    {"1.1", 0x0302},
    {"1.2", 0x0303},
    {"1.3", 0x0304},
};

static const struct scenario_name scenario_mechanisms[] = {
    {"PLAIN", MS_AUTH_PLAIN},
    {"LOGIN", MS_AUTH_LOGIN},
    {"CRAM-MD5", MS_AUTH_CRAM_MD5},
    {"XOAUTH2", MS_AUTH_XOAUTH2},
    {"OAUTHBEARER", MS_AUTH_OAUTHBEARER},
};

static const struct scenario_name scenario_extensions[] = {
    {"SIZE", MS_EXT_SIZE},         {"PIPELINING", MS_EXT_PIPELINING},
    {"8BITMIME", MS_EXT_8BITMIME}, {"ENHANCEDSTATUSCODES", MS_EXT_ENHANCEDSTATUSCODES},
    {"SMTPUTF8", MS_EXT_SMTPUTF8}, {"CHUNKING", MS_EXT_CHUNKING},
    {"DSN", MS_EXT_DSN},           {"VRFY", MS_EXT_VRFY},
    {"HELP", MS_EXT_HELP},
};

static const struct {
    const char *name;
    enum ms_proto protocol;
    int port;
    enum ms_tls_mode tls;
} scenario_standard[] = {
    {"smtp", MS_PROTO_SMTP, 3025, MS_TLS_STARTTLS},
    {"smtps", MS_PROTO_SMTP, 3465, MS_TLS_IMPLICIT},
    {"submission", MS_PROTO_SMTP, 3587, MS_TLS_REQUIRED},
    {"lmtp", MS_PROTO_LMTP, 3024, MS_TLS_NONE},
    {"pop3", MS_PROTO_POP3, 3110, MS_TLS_STARTTLS},
    {"pop3s", MS_PROTO_POP3, 3995, MS_TLS_IMPLICIT},
    {"imap", MS_PROTO_IMAP, 3143, MS_TLS_STARTTLS},
    {"imaps", MS_PROTO_IMAP, 3993, MS_TLS_IMPLICIT},
};

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

/* Decimal digits only: YAML 1.1's 0x, 0o, 1_000 and signs are not integers here. */
static int
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

/* ---- messages ---- */

/* Copies text into out, escaping control bytes, cut to max bytes with "...". */
static void
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

static int
scenario_is_null(const struct scenario_node *n)
{
    if (n->kind != SCENARIO_SCALAR || !n->plain)
        return 0;
    return n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
           strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

/* "a list", "a mapping", "nothing" or the quoted scalar. */
static void
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
static const char *
scenario_text(char *out, size_t cap, const struct scenario_node *n)
{
    scenario_escape(out, cap, n->text, n->len, SCENARIO_TEXT_MAX);
    return out;
}

static int
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

static int
scenario_fail_type(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                   const char *want)
{
    char got[SCENARIO_TEXT_MAX * 4 + 16];
    scenario_describe(got, sizeof got, n);
    return scenario_fail(ctx, n->pos, path, "expected %s, got %s", want, got);
}

static void
scenario_path_key(char *out, const char *parent, const struct scenario_node *key)
{
    char text[SCENARIO_TEXT_MAX * 4 + 8];
    scenario_escape(text, sizeof text, key->text, key->len, SCENARIO_TEXT_MAX);
    int n = *parent ? snprintf(out, SCENARIO_PATH_MAX, "%s.%s", parent, text)
                    : snprintf(out, SCENARIO_PATH_MAX, "%s", text);
    if (n < 0)
        out[0] = '\0';
}

static void
scenario_path_index(char *out, const char *parent, size_t i)
{
    if (snprintf(out, SCENARIO_PATH_MAX, "%s[%zu]", parent, i) < 0)
        out[0] = '\0';
}

/* Formats a byte count the way a user would write it: 65536 -> "64KiB". */
static void
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

static void
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
static void
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

static void
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

static int
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
static const struct scenario_node *
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
static const struct scenario_node *
scenario_map_value(const struct scenario_node *map, const char *key)
{
    if (map->kind != SCENARIO_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < map->n_kids; i += 2)
        if (map->kids[i]->len == strlen(key) && strcmp(map->kids[i]->text, key) == 0)
            return map->kids[i + 1];
    return NULL;
}

static int
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

static int
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

static int
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

static int
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

static int
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

static int
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

static int
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

static void
scenario_strings_free(char ***list, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*list)[i]);
    free(*list);
    *list = NULL;
    *n = 0;
}

/* Replaces *list with the strings of a YAML list; on error *list holds what was read. */
static int
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
static char *
scenario_resolve(const char *base_dir, const char *p)
{
    if (p[0] == '/' || !base_dir[0] || strcmp(base_dir, ".") == 0)
        return ms_strdup(p);
    size_t n = strlen(base_dir);
    return ms_asprintf("%s%s%s", base_dir, base_dir[n - 1] == '/' ? "" : "/", p);
}

/* ---- the walk ---- */

/* Case-insensitive Levenshtein distance, SIZE_MAX for long strings. */
static size_t
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
static int
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
static int
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
    int rc = scenario_get_uint(ctx, val, path, 0, UINT64_MAX, &sc->seed);
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

static int
scenario_check_tls(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                   void *base)
{
    struct ms_tls_conf *tls = base;
    char kpath[SCENARIO_PATH_MAX];
    if (!tls->cert == !tls->key)
        return MOCKSRV_OK;
    const struct scenario_node *key = scenario_map_get(map, tls->cert ? "cert" : "key");
    ms_assert(key);
    scenario_path_key(kpath, path, key);
    return scenario_fail(ctx, key->pos, kpath, "needs tls.%s too", tls->cert ? "key" : "cert");
}

/* One table row per key: F_<kind>(key, struct, field, ...). */
/* clang-format off */
#define F_SECTION(k, s, fld, t) \
    {.key = k, .kind = SK_SECTION, .offset = offsetof(s, fld), .section = &t}
#define F_LATER(k) {.key = k, .kind = SK_LATER}
#define F_CUSTOM(k, fn) {.key = k, .kind = SK_CUSTOM, .parse = fn}
#define F_STRING(k, s, fld, chk) \
    {.key = k, .kind = SK_STRING, .offset = offsetof(s, fld), .check = chk}
#define F_PATH(k, s, fld) \
    {.key = k, .kind = SK_PATH, .offset = offsetof(s, fld), .check = SC_NONEMPTY}
#define F_BOOL(k, s, fld) {.key = k, .kind = SK_BOOL, .offset = offsetof(s, fld)}
#define F_NUM(k, kd, s, fld, lo, hi) \
    {.key = k, .kind = kd, .offset = offsetof(s, fld), .min = lo, .max = hi}
#define F_NAMES(k, kd, s, fld, tbl, w) \
    {.key = k, .kind = kd, .offset = offsetof(s, fld), .names = tbl, \
     .n_names = MS_ARRAY_LEN(tbl), .what = w}
#define TABLE(fields, chk) {fields, MS_ARRAY_LEN(fields), chk}
/* clang-format on */

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

static const struct scenario_field scenario_listener_fields[] = {
    F_NAMES("protocol", SK_ENUM, struct scenario_listener, protocol, scenario_protocols,
            "protocol"),
    F_NUM("port", SK_INT, struct scenario_listener, port, 0, 65535),
    F_NAMES("tls", SK_ENUM, struct scenario_listener, tls, scenario_tls_modes, "TLS mode"),
    F_STRING("host", struct scenario_listener, host, SC_HOST),
    F_LATER("script"),
};
static const struct scenario_table scenario_listener_table = TABLE(scenario_listener_fields, NULL);

static const struct scenario_field scenario_user_fields[] = {
    F_STRING("password", struct ms_user, password, SC_ANY),
    {.key = "addresses",
     .kind = SK_STRINGS,
     .offset = offsetof(struct ms_user, addresses),
     .offset2 = offsetof(struct ms_user, n_addresses),
     .check = SC_ADDRESS},
    F_LATER("mailboxes"),
};
static const struct scenario_table scenario_user_table = TABLE(scenario_user_fields, NULL);

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

static int
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
        if (rc == MOCKSRV_OK && raw.protocol == MS_PROTO_SCRIPT)
            rc = scenario_fail(ctx, name->pos, lpath,
                               "protocol script needs a script, which is not supported yet by "
                               "this version");
        for (size_t j = 0; rc == MOCKSRV_OK && j < sc->n_listeners; j++) {
            const struct ms_listener_conf *o = &sc->listeners[j];
            if (raw.port != 0 && o->port == raw.port &&
                (o->host && raw.host ? strcmp(o->host, raw.host) == 0 : o->host == raw.host))
                rc = scenario_fail(ctx, name->pos, lpath, "port %d is already used by listener %s",
                                   raw.port, o->name);
        }
        if (rc != MOCKSRV_OK) {
            free(raw.host);
            return rc;
        }
        struct ms_listener_conf *l = &sc->listeners[sc->n_listeners++];
        l->name = ms_strndup(name->text, name->len);
        l->protocol = (enum ms_proto)raw.protocol;
        l->tls = (enum ms_tls_mode)raw.tls;
        l->port = raw.port;
        l->host = raw.host;
        l->pos = name->pos;
    }
    return MOCKSRV_OK;
}

/* A user name or address, for the case-insensitive uniqueness check. */
struct scenario_ident {
    const struct scenario_node *node;
    size_t user;  /* index in sc->users */
    size_t index; /* in addresses[], or SIZE_MAX for the user name */
    size_t order; /* document order */
};

static int
scenario_ident_cmp(const void *a, const void *b)
{
    const struct scenario_ident *x = a, *y = b;
    const unsigned char *p = (const unsigned char *)x->node->text;
    const unsigned char *q = (const unsigned char *)y->node->text;
    for (; *p && tolower(*p) == tolower(*q); p++, q++)
        ;
    if (tolower(*p) != tolower(*q))
        return tolower(*p) < tolower(*q) ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Names and addresses find a user case-insensitively (ms_scenario_find_user), so they must be
 * unique that way; a user may list its own name as an address. */
static int
scenario_check_idents(struct scenario_ctx *ctx, const struct ms_scenario *sc,
                      const struct scenario_node *users, const char *path)
{
    char upath[SCENARIO_PATH_MAX], ipath[SCENARIO_PATH_MAX];
    size_t n = 0, k = 0;
    for (size_t u = 0; u < sc->n_users; u++)
        n += 1 + sc->users[u].n_addresses;
    struct scenario_ident *ids = ms_malloc(n * sizeof *ids);
    for (size_t u = 0; u < sc->n_users; u++) {
        const struct scenario_node *def = users->kids[2 * u + 1];
        ids[k] = (struct scenario_ident){users->kids[2 * u], u, SIZE_MAX, k};
        k++;
        const struct scenario_node *addrs = scenario_map_value(def, "addresses");
        for (size_t j = 0; addrs && j < addrs->n_kids; j++, k++)
            ids[k] = (struct scenario_ident){addrs->kids[j], u, j, k};
    }
    ms_assert(k == n);
    qsort(ids, n, sizeof *ids, scenario_ident_cmp);
    size_t bad = SIZE_MAX;
    for (size_t i = 1; i < n; i++)
        if (ids[i].user != ids[i - 1].user &&
            ms_strcaseeq(ids[i].node->text, ids[i - 1].node->text) &&
            (bad == SIZE_MAX || ids[i].order < ids[bad].order))
            bad = i;
    if (bad == SIZE_MAX) {
        free(ids);
        return MOCKSRV_OK;
    }
    /* ids[bad - 1] is the earlier occurrence: equal texts sort by document order. */
    struct scenario_ident later = ids[bad], first = ids[bad - 1];
    free(ids);
    scenario_path_key(upath, path, users->kids[2 * later.user]);
    if (later.index != SIZE_MAX) {
        char ap[SCENARIO_PATH_MAX];
        if (snprintf(ap, sizeof ap, "%s.addresses", upath) < 0)
            ap[0] = '\0';
        scenario_path_index(ipath, ap, later.index);
    } else {
        memcpy(ipath, upath, sizeof ipath);
    }
    return scenario_fail(ctx, later.node->pos, ipath,
                         "\"%s\" is already the %s of user %s at %d:%d (names and addresses "
                         "are matched case-insensitively)",
                         later.node->text, first.index == SIZE_MAX ? "name" : "address",
                         sc->users[first.user].name, first.node->pos.line, first.node->pos.column);
}

static int
scenario_parse_users(struct scenario_ctx *ctx, const struct scenario_node *key,
                     const struct scenario_node *val, const char *path, void *base)
{
    struct ms_scenario *sc = base;
    char upath[SCENARIO_PATH_MAX];
    int rc;
    if (val->kind != SCENARIO_MAP)
        return scenario_fail_type(ctx, val, path, "a mapping of users");
    if (val->n_kids == 0)
        return scenario_fail(ctx, val->pos, path, "no users (leave the key out, or add one)");
    if ((rc = scenario_check_dups(ctx, val, path)) != MOCKSRV_OK)
        return rc;
    sc->users = ms_calloc(val->n_kids / 2, sizeof *sc->users);
    for (size_t i = 0; i + 1 < val->n_kids; i += 2) {
        const struct scenario_node *name = val->kids[i];
        scenario_path_key(upath, path, name);
        if (!scenario_text_ok(name->text, name->len, SC_HOST))
            return scenario_fail(ctx, name->pos, upath,
                                 "bad user name (no spaces or control characters)");
        struct ms_user *u = &sc->users[sc->n_users++];
        u->name = ms_strndup(name->text, name->len);
        u->pos = name->pos;
        if ((rc = scenario_walk(ctx, val->kids[i + 1], upath, &scenario_user_table, u)))
            return rc;
        if (!u->password)
            return scenario_fail(ctx, name->pos, upath, "missing password");
    }
    return scenario_check_idents(ctx, sc, val, path);
}

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
    return MOCKSRV_OK;
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
    F_LATER("faults"),
    F_LATER("expect"),
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
    }
    free(sc->listeners);
    for (size_t i = 0; i < sc->n_users; i++) {
        free(sc->users[i].name);
        free(sc->users[i].password);
        scenario_strings_free(&sc->users[i].addresses, &sc->users[i].n_addresses);
    }
    free(sc->users);
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

int
ms_scenario_load_string(const char *yaml, size_t len, const char *name, const char *base_dir,
                        struct ms_scenario **sc_r, struct mocksrv_error *err)
{
    struct scenario_ctx ctx = {
        .name = name ? name : "<string>",
        .base_dir = base_dir ? base_dir : ".",
        .err = err,
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
    return ms_scenario_load_string((const char *)ms_embedded_default_yaml,
                                   ms_embedded_default_yaml_len, "<default>", ".", sc_r, err);
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
