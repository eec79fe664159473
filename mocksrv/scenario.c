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
 * Not here: TLS, sockets, building the mail store. Paths (tls.cert ...) are resolved against
 * the scenario's directory. Files are read at load time so that a bad one is an error with its
 * position: a message's `file:` (store.c then only copies bytes), and tls.cert, tls.key and
 * tls.client_ca, which tls.c checks (ms_tls_check_files: PEM, a certificate, a matching key). Keys
 * of later stages (the fault action tls) are errors that say so, never silently ignored: a scenario
 * is either understood completely or refused. A script listener's steps (listeners.*.script,
 * SPEC 3.4) become struct ms_script_step (scenario.h) here; script.c runs them. `faults:` becomes
 * struct ms_faults (fault.h) here; which rule fires is fault.c's business; `expect:` becomes struct
 * ms_expects (scenario.h), checked by expect.c.
 *
 * The other direction is here too: ms_scenario_format_state writes a store back as a scenario
 * (--state-out) with libyaml's emitter, choosing for each message between an inline `raw`
 * literal block and a file beside the document, so that loading it again gives the same bytes.
 *
 * Invariants:
 *   - The first error wins. It fills struct mocksrv_error with MOCKSRV_ESCENARIO, the file
 *     name, the 1-based line and column of the offending node and the message
 *     "file:line:column: key.path: problem"; the loader then frees all it built.
 *   - Bad input never aborts and never recurses deeper than SCENARIO_MAX_DEPTH; only
 *     out-of-memory aborts (ms_malloc). The loader is meant to be fuzzed.
 *   - Every char * in a struct ms_scenario is NUL-free text owned by the scenario, except
 *     ms_message_conf.bytes, which has its length (a raw string may hold a "\0").
 *   - Checks that need the whole document (limits.message_size against the messages, which
 *     may come before limits: in the file) run in scenario_check_top, after the walk.
 */
#include "scenario.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "store.h"
#include "tls.h"

#define SCENARIO_MAX_DEPTH 64         /* nesting of mappings and lists */
#define SCENARIO_MAX_FILE (64u << 20) /* bytes of a scenario file */
#define SCENARIO_PATH_MAX 256         /* "users.alice.addresses[3]" */
#define SCENARIO_TEXT_MAX 48          /* bytes of a value quoted in a message */

#define SCENARIO_KIB ((uint64_t)1024)
#define SCENARIO_MIB (SCENARIO_KIB * 1024)
#define SCENARIO_GIB (SCENARIO_MIB * 1024)
#define SCENARIO_DAY_MS ((uint64_t)24 * 3600 * 1000)

#define SCENARIO_MAX_GENERATE 1000000u  /* generate.count */
#define SCENARIO_MIN_GENERATE_SIZE 64u  /* generate.size: room for a header and a body */
#define SCENARIO_MAX_MESSAGES 10000000u /* messages of all users and mailboxes together */
/* What the store holds besides a message's bytes: struct ms_message, the blob, malloc. */
#define SCENARIO_MESSAGE_OVERHEAD 256u
#define SCENARIO_MEMORY_ANY (64 * SCENARIO_MIB) /* mailboxes this small pass without a look */
#define SCENARIO_UID_MAX (UINT32_MAX - 1) /* RFC 3501 2.3.1.1: UIDs are 32-bit, uidnext above */
#define MOCKSRV_EAGAIN_TABS 1             /* internal to ms_scenario_format_state */

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
    /* Non-NULL for an embedded scenario: `file:` paths name ms_embedded_files, relative to this
     * directory below fixtures/ ("scenarios"). */
    const char *embedded_dir;
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
    SK_U32,      /* uint32_t in min..max */
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
    size_t window;
    struct ms_script_step *script; /* listeners.NAME.script, NULL when not given */
    size_t n_script;
    struct ms_pos script_pos; /* of the script key */
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
static void
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

/* ---- listeners.NAME.script (SPEC 3.4; the model in scenario.h, the engine in script.c) ---- */

#define SCENARIO_STEP_KEYS "send, raw, expect, delay, close or starttls"

static const struct scenario_name scenario_script_closes[] = {
    {"fin", MS_CLOSE_FIN},
    {"rst", MS_CLOSE_RST},
    {"reset", MS_CLOSE_RST}, /* SPEC 3.4's example spells it so */
    {"half", MS_CLOSE_HALF},
};

static void
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

/* ---- mailboxes and messages ---- */

static const struct scenario_name scenario_special_uses[] = {
    /* RFC 6154 2 */
    {"\\All", 0},  {"\\Archive", 1}, {"\\Drafts", 2}, {"\\Flagged", 3},
    {"\\Junk", 4}, {"\\Sent", 5},    {"\\Trash", 6},
};

static void
scenario_message_fini(struct ms_message_conf *mc)
{
    free(mc->bytes);
    free(mc->file);
    scenario_strings_free(&mc->keywords, &mc->n_keywords);
}

static void
scenario_mailbox_fini(struct ms_mailbox_conf *mb)
{
    for (size_t i = 0; i < mb->n_messages; i++)
        scenario_message_fini(&mb->messages[i]);
    free(mb->messages);
    free(mb->name);
    free(mb->special_use);
}

/* Collapses "." and ".." of a relative path in place; -1 when ".." climbs above its start. */
static int
scenario_normalize(char *path)
{
    char *copy = ms_strdup(path);
    char *out = path, *p = copy;
    int rc = 0;
    for (;;) {
        char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.')) {
            /* "//" and "/./" */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (out == path) {
                rc = -1;
                break;
            }
            out--; /* the '/' after the last component */
            while (out > path && out[-1] != '/')
                out--;
        } else {
            memcpy(out, p, n);
            out += n;
            *out++ = '/';
        }
        if (!end)
            break;
        p = end + 1;
    }
    if (out > path)
        out--; /* the last '/' */
    *out = '\0';
    free(copy);
    return rc;
}

/* Reads a whole regular file of at most max bytes; returns 0 or an errno value. */
static int
scenario_read_file(const char *path, size_t max, struct ms_buf *out)
{
    struct stat st;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return errno;
    if (fstat(fd, &st) != 0) {
        rc = errno;
    } else if (S_ISDIR(st.st_mode)) {
        rc = EISDIR;
    } else if (!S_ISREG(st.st_mode)) {
        rc = EINVAL; /* a FIFO or a device would block or never end */
    } else if ((uint64_t)st.st_size > max) {
        rc = EFBIG;
    }
    while (rc == 0) {
        ms_buf_reserve(out, 64 * 1024);
        ssize_t n = read(fd, out->data + out->len, out->cap - out->len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = errno;
        else if (n == 0)
            break;
        else if ((out->len += (size_t)n) > max)
            rc = EFBIG; /* it grew while we read */
        out->data[out->len] = '\0';
    }
    close(fd);
    return rc;
}

const struct ms_embedded_file *
ms_embedded_find(const char *name)
{
    for (size_t i = 0; name && i < ms_embedded_files_count; i++)
        if (strcmp(ms_embedded_files[i].name, name) == 0)
            return &ms_embedded_files[i];
    return NULL;
}

static int
scenario_parse_msg_file(struct scenario_ctx *ctx, const struct scenario_node *key,
                        const struct scenario_node *val, const char *path, void *base)
{
    struct ms_message_conf *mc = base;
    char text[SCENARIO_TEXT_MAX * 4 + 16];
    struct ms_buf data = {0};
    int rc;
    if ((rc = scenario_get_string(ctx, val, path, SC_NONEMPTY, &mc->file)) != MOCKSRV_OK)
        return rc;
    mc->source = MS_MSG_FILE;
    mc->src_pos = val->pos;
    scenario_describe(text, sizeof text, val);
    if (ctx->embedded_dir) {
        char *name = ms_asprintf("%s/%s", ctx->embedded_dir, mc->file);
        const struct ms_embedded_file *f = NULL;
        if (mc->file[0] != '/' && scenario_normalize(name) == 0)
            f = ms_embedded_find(name);
        free(name);
        if (!f)
            return scenario_fail(ctx, val->pos, path,
                                 "cannot read %s: not among the embedded files (add it to "
                                 "EMBED_INPUTS in CMakeLists.txt)",
                                 text);
        mc->bytes = ms_strndup((const char *)f->data, f->len);
        mc->len = f->len;
        return MOCKSRV_OK;
    }
    char *full = scenario_resolve(ctx->base_dir, mc->file);
    /* The largest limits.message_size: a larger file is refused whatever the limits say. */
    int e = scenario_read_file(full, SCENARIO_GIB, &data);
    if (e != 0) {
        char buf[128], where[SCENARIO_PATH_MAX + 8] = "";
        const char *reason = e == EFBIG    ? "larger than 1GiB"
                             : e == EINVAL ? "not a regular file"
                                           : strerror_r(e, buf, sizeof buf);
        if (strcmp(full, mc->file) != 0 && snprintf(where, sizeof where, " (%s)", full) < 0)
            where[0] = '\0';
        free(full);
        ms_buf_fini(&data);
        return scenario_fail(ctx, val->pos, path, "cannot read %s%s: %s", text, where, reason);
    }
    free(full);
    mc->bytes = ms_buf_steal(&data, &mc->len);
    return MOCKSRV_OK;
}

static int
scenario_parse_msg_raw(struct scenario_ctx *ctx, const struct scenario_node *key,
                       const struct scenario_node *val, const char *path, void *base)
{
    struct ms_message_conf *mc = base;
    /* Any string, even "" or one with a "\0" escape: the bytes have their length. */
    if (val->kind != SCENARIO_SCALAR || scenario_is_null(val))
        return scenario_fail_type(ctx, val, path, "a string (a literal block: raw: |)");
    mc->source = MS_MSG_RAW;
    mc->src_pos = val->pos;
    mc->bytes = ms_strndup(val->text, val->len);
    mc->len = val->len;
    return MOCKSRV_OK;
}

struct scenario_generate {
    unsigned count; /* 0 until given */
    size_t size;
};

static int
scenario_check_generate(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                        void *base)
{
    const struct scenario_generate *g = base;
    if (g->count == 0)
        return scenario_fail(ctx, map->pos, path, "missing count (1 .. %u)", SCENARIO_MAX_GENERATE);
    return MOCKSRV_OK;
}

static const struct scenario_field scenario_generate_fields[] = {
    F_NUM("count", SK_UINT, struct scenario_generate, count, 1, SCENARIO_MAX_GENERATE),
    /* At most limits.message_size, checked in scenario_check_top; 1GiB is its largest value. */
    F_NUM("size", SK_SIZE, struct scenario_generate, size, SCENARIO_MIN_GENERATE_SIZE,
          SCENARIO_GIB),
};
static const struct scenario_table scenario_generate_table =
    TABLE(scenario_generate_fields, scenario_check_generate);

static int
scenario_parse_msg_generate(struct scenario_ctx *ctx, const struct scenario_node *key,
                            const struct scenario_node *val, const char *path, void *base)
{
    struct ms_message_conf *mc = base;
    struct scenario_generate g = {.count = 0, .size = 4 * SCENARIO_KIB};
    int rc = scenario_walk(ctx, val, path, &scenario_generate_table, &g);
    if (rc != MOCKSRV_OK)
        return rc;
    const struct scenario_node *size = scenario_map_value(val, "size");
    mc->source = MS_MSG_GENERATE;
    mc->gen_count = g.count;
    mc->gen_size = g.size;
    mc->src_pos = size ? size->pos : val->pos;
    mc->gen_pos = key->pos;
    return MOCKSRV_OK;
}

/* System flags by name (RFC 3501 2.3.2), anything else a keyword (an atom). */
static int
scenario_parse_msg_flags(struct scenario_ctx *ctx, const struct scenario_node *key,
                         const struct scenario_node *val, const char *path, void *base)
{
    struct ms_message_conf *mc = base;
    char ipath[SCENARIO_PATH_MAX], got[SCENARIO_TEXT_MAX * 4 + 16];
    if (val->kind != SCENARIO_SEQ)
        return scenario_fail_type(ctx, val, path, "a list, like ['\\Seen', '$Label1']");
    mc->keywords = ms_calloc(val->n_kids, sizeof *mc->keywords);
    for (size_t i = 0; i < val->n_kids; i++) {
        const struct scenario_node *n = val->kids[i];
        scenario_path_index(ipath, path, i);
        if (n->kind != SCENARIO_SCALAR || scenario_is_null(n) || n->len == 0 ||
            strlen(n->text) != n->len)
            return scenario_fail_type(ctx, n, ipath, "a flag");
        scenario_describe(got, sizeof got, n);
        if (n->text[0] == '\\') {
            unsigned bit = ms_flag_from_name(n->text);
            if (bit == MS_FLAG_RECENT)
                return scenario_fail(ctx, n->pos, ipath,
                                     "\\Recent is set by the server, not by a scenario");
            if (bit == 0)
                return scenario_fail(ctx, n->pos, ipath,
                                     "unknown system flag %s (one of \\Seen, \\Answered, "
                                     "\\Flagged, \\Deleted, \\Draft; keywords have no \\)",
                                     got);
            mc->flags |= bit;
            continue;
        }
        /* RFC 3501 9: flag-keyword = atom */
        if (!scenario_text_ok(n->text, n->len, SC_ATOM))
            return scenario_fail(ctx, n->pos, ipath,
                                 "bad keyword %s (an IMAP atom: no blanks, control or 8-bit "
                                 "characters, or any of ( ) { %% * \" \\ ])",
                                 got);
        int dup = 0;
        for (size_t j = 0; j < mc->n_keywords && !dup; j++)
            dup = ms_strcaseeq(mc->keywords[j], n->text);
        if (!dup) /* keywords are a set, case-insensitively */
            mc->keywords[mc->n_keywords++] = ms_strndup(n->text, n->len);
    }
    return MOCKSRV_OK;
}

static int
scenario_parse_msg_date(struct scenario_ctx *ctx, const struct scenario_node *key,
                        const struct scenario_node *val, const char *path, void *base)
{
    struct ms_message_conf *mc = base;
    char got[SCENARIO_TEXT_MAX * 4 + 16];
    if (val->kind != SCENARIO_SCALAR || scenario_is_null(val))
        return scenario_fail_type(ctx, val, path, "a date (2024-05-01T09:00:00Z)");
    if (strlen(val->text) != val->len || ms_parse_date(val->text, &mc->date) != MOCKSRV_OK) {
        scenario_describe(got, sizeof got, val);
        return scenario_fail(ctx, val->pos, path,
                             "bad date %s (use 2024-05-01T09:00:00Z, 2024-05-01T11:00:00+02:00 "
                             "or 2024-05-01)",
                             got);
    }
    return MOCKSRV_OK;
}

/* "a\nb" -> "a\r\nb": every LF without a CR before it gets one. */
static void
scenario_crlf(struct ms_message_conf *mc)
{
    struct ms_buf out = {0};
    ms_buf_reserve(&out, mc->len + mc->len / 32);
    for (size_t i = 0; i < mc->len; i++) {
        if (mc->bytes[i] == '\n' && (i == 0 || mc->bytes[i - 1] != '\r'))
            ms_buf_putc(&out, '\r');
        ms_buf_putc(&out, mc->bytes[i]);
    }
    free(mc->bytes);
    mc->bytes = ms_buf_steal(&out, &mc->len);
}

static int
scenario_check_message(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                       void *base)
{
    struct ms_message_conf *mc = base;
    if (mc->exact && mc->source == MS_MSG_GENERATE) {
        char kpath[SCENARIO_PATH_MAX];
        const struct scenario_node *key = scenario_map_get(map, "exact");
        scenario_path_key(kpath, path, key);
        return scenario_fail(ctx, key->pos, kpath, "applies to file and raw, not generate");
    }
    if (mc->exact || mc->source == MS_MSG_GENERATE)
        return MOCKSRV_OK;
    /* A file with a CR anywhere is taken as it is: it knows its line ends. */
    if (mc->source == MS_MSG_RAW || !memchr(mc->bytes, '\r', mc->len))
        scenario_crlf(mc);
    return MOCKSRV_OK;
}

static const struct scenario_field scenario_message_fields[] = {
    F_CUSTOM("file", scenario_parse_msg_file),
    F_CUSTOM("raw", scenario_parse_msg_raw),
    F_CUSTOM("generate", scenario_parse_msg_generate),
    F_CUSTOM("flags", scenario_parse_msg_flags),
    F_CUSTOM("date", scenario_parse_msg_date),
    F_NUM("uid", SK_U32, struct ms_message_conf, uid, 1, SCENARIO_UID_MAX),
    F_BOOL("exact", struct ms_message_conf, exact),
};
static const struct scenario_table scenario_message_table =
    TABLE(scenario_message_fields, scenario_check_message);

/* The UID of the last message of a mailbox after all its entries (0: none). Only for
 * mailboxes whose UIDs were checked by scenario_parse_messages. */
static uint32_t
scenario_last_uid(const struct ms_mailbox_conf *mb)
{
    uint64_t last = 0;
    for (size_t i = 0; i < mb->n_messages; i++) {
        const struct ms_message_conf *mc = &mb->messages[i];
        uint64_t n = mc->source == MS_MSG_GENERATE ? mc->gen_count : 1;
        last = (mc->uid ? mc->uid - 1 : last) + n;
    }
    return (uint32_t)last;
}

static int
scenario_parse_messages(struct scenario_ctx *ctx, const struct scenario_node *key,
                        const struct scenario_node *val, const char *path, void *base)
{
    static const char *const sources[] = {"file", "raw", "generate"};
    struct ms_mailbox_conf *mb = base;
    char ipath[SCENARIO_PATH_MAX], kpath[SCENARIO_PATH_MAX];
    uint64_t last = 0; /* the UID of the previous message, as the store will assign it */
    int rc;
    if (scenario_is_null(val))
        return MOCKSRV_OK; /* "messages:" with nothing after it: none */
    if (val->kind != SCENARIO_SEQ)
        return scenario_fail_type(ctx, val, path, "a list of messages");
    mb->messages = ms_calloc(val->n_kids, sizeof *mb->messages);
    for (size_t i = 0; i < val->n_kids; i++) {
        const struct scenario_node *item = val->kids[i];
        const struct scenario_node *src = NULL;
        scenario_path_index(ipath, path, i);
        if (item->kind != SCENARIO_MAP)
            return scenario_fail_type(ctx, item, ipath,
                                      "a message (a mapping with file, raw "
                                      "or generate)");
        if ((rc = scenario_check_dups(ctx, item, ipath)) != MOCKSRV_OK)
            return rc;
        /* Exactly one source, checked before any file is read. */
        for (size_t k = 0; k + 1 < item->n_kids; k += 2) {
            for (size_t s = 0; s < MS_ARRAY_LEN(sources); s++) {
                const struct scenario_node *kn = item->kids[k];
                if (kn->len != strlen(sources[s]) || strcmp(kn->text, sources[s]) != 0)
                    continue;
                if (src) {
                    scenario_path_key(kpath, ipath, kn);
                    return scenario_fail(ctx, kn->pos, kpath,
                                         "a message has one of file, raw or generate "
                                         "(%s at %d:%d)",
                                         src->text, src->pos.line, src->pos.column);
                }
                src = kn;
            }
        }
        if (!src)
            return scenario_fail(ctx, item->pos, ipath,
                                 "a message needs one of file, raw or generate");
        struct ms_message_conf *mc = &mb->messages[mb->n_messages++];
        mc->pos = item->pos;
        if ((rc = scenario_walk(ctx, item, ipath, &scenario_message_table, mc)) != MOCKSRV_OK)
            return rc;
        /* RFC 3501 2.3.1.1: UIDs ascend; the store assigns last + 1 to a message without. */
        uint64_t n = mc->source == MS_MSG_GENERATE ? mc->gen_count : 1;
        const struct scenario_node *uid = scenario_map_value(item, "uid");
        if (mc->uid && mc->uid <= last) {
            scenario_path_key(kpath, ipath, scenario_map_get(item, "uid"));
            return scenario_fail(ctx, uid->pos, kpath,
                                 "uid %u is not above the previous message's %llu (UIDs "
                                 "ascend in file order)",
                                 mc->uid, (unsigned long long)last);
        }
        last = (mc->uid ? mc->uid - 1 : last) + n;
        if (last > SCENARIO_UID_MAX)
            return scenario_fail(ctx, uid ? uid->pos : item->pos, ipath,
                                 "UIDs run out: the last would be %llu (at most %u)",
                                 (unsigned long long)last, SCENARIO_UID_MAX);
    }
    return MOCKSRV_OK;
}

static int
scenario_parse_special_use(struct scenario_ctx *ctx, const struct scenario_node *key,
                           const struct scenario_node *val, const char *path, void *base)
{
    struct ms_mailbox_conf *mb = base;
    const struct scenario_field f = {.names = scenario_special_uses,
                                     .n_names = MS_ARRAY_LEN(scenario_special_uses),
                                     .what = "special-use attribute"};
    unsigned v;
    int rc = scenario_get_name(ctx, val, path, &f, &v);
    if (rc != MOCKSRV_OK)
        return rc;
    free(mb->special_use);
    mb->special_use = ms_strdup(scenario_special_uses[v].name);
    return MOCKSRV_OK;
}

static int
scenario_check_mailbox(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                       void *base)
{
    struct ms_mailbox_conf *mb = base;
    char kpath[SCENARIO_PATH_MAX];
    uint32_t last = scenario_last_uid(mb);
    if (mb->uidnext == 0 || mb->uidnext > last)
        return MOCKSRV_OK;
    const struct scenario_node *key = scenario_map_get(map, "uidnext");
    scenario_path_key(kpath, path, key);
    return scenario_fail(ctx, scenario_map_value(map, "uidnext")->pos, kpath,
                         "%u is not above the last message's UID %u", mb->uidnext, last);
}

static const struct scenario_field scenario_mailbox_fields[] = {
    F_NUM("uidvalidity", SK_U32, struct ms_mailbox_conf, uidvalidity, 1, UINT32_MAX),
    F_NUM("uidnext", SK_U32, struct ms_mailbox_conf, uidnext, 1, UINT32_MAX),
    F_CUSTOM("special_use", scenario_parse_special_use),
    F_BOOL("subscribed", struct ms_mailbox_conf, subscribed),
    F_CUSTOM("messages", scenario_parse_messages),
};
static const struct scenario_table scenario_mailbox_table =
    TABLE(scenario_mailbox_fields, scenario_check_mailbox);

/* RFC 3501 5.1: "/" is our hierarchy separator, so no empty level; * and % are LIST
 * wildcards, which a name cannot contain. */
static const char *
scenario_mailbox_name_problem(const struct scenario_node *name)
{
    const char *s = name->text;
    if (name->len == 0)
        return "empty";
    if (strlen(s) != name->len)
        return "a NUL character";
    for (size_t i = 0; i < name->len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return "a control character";
        if (c == '*' || c == '%')
            return "a wildcard (* or %)";
    }
    if (s[0] == '/' || s[name->len - 1] == '/')
        return "a leading or trailing /";
    if (strstr(s, "//"))
        return "an empty level (//)";
    return NULL;
}

static int
scenario_parse_mailboxes(struct scenario_ctx *ctx, const struct scenario_node *key,
                         const struct scenario_node *val, const char *path, void *base)
{
    struct ms_user *u = base;
    char mpath[SCENARIO_PATH_MAX];
    const struct scenario_node *inbox = NULL;
    int rc;
    if (scenario_is_null(val))
        return MOCKSRV_OK; /* nothing: just an INBOX (scenario_check_user) */
    if (val->kind != SCENARIO_MAP)
        return scenario_fail_type(ctx, val, path, "a mapping of mailboxes");
    if ((rc = scenario_check_dups(ctx, val, path)) != MOCKSRV_OK)
        return rc;
    /* One more for the INBOX that scenario_check_user may add. */
    u->mailboxes = ms_calloc(val->n_kids / 2 + 1, sizeof *u->mailboxes);
    for (size_t i = 0; i + 1 < val->n_kids; i += 2) {
        const struct scenario_node *name = val->kids[i];
        const char *problem = scenario_mailbox_name_problem(name);
        scenario_path_key(mpath, path, name);
        if (problem)
            return scenario_fail(ctx, name->pos, mpath, "bad mailbox name: %s", problem);
        int is_inbox = ms_strcaseeq(name->text, "INBOX");
        if (is_inbox && inbox)
            /* RFC 3501 5.1: INBOX is case-insensitive, so "inbox" and "INBOX" are one */
            return scenario_fail(ctx, name->pos, mpath, "INBOX is already at %d:%d",
                                 inbox->pos.line, inbox->pos.column);
        if (is_inbox)
            inbox = name;
        struct ms_mailbox_conf *mb = &u->mailboxes[u->n_mailboxes++];
        mb->name = is_inbox ? ms_strdup("INBOX") : ms_strndup(name->text, name->len);
        mb->subscribed = 1;
        mb->pos = name->pos;
        if ((rc = scenario_walk(ctx, val->kids[i + 1], mpath, &scenario_mailbox_table, mb)))
            return rc;
    }
    return MOCKSRV_OK;
}

/* Every user has an INBOX (RFC 3501 5.1): one not listed comes first, at the user's name. */
static int
scenario_check_user(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                    void *base)
{
    struct ms_user *u = base;
    for (size_t i = 0; i < u->n_mailboxes; i++)
        if (strcmp(u->mailboxes[i].name, "INBOX") == 0)
            return MOCKSRV_OK;
    if (!u->mailboxes)
        u->mailboxes = ms_calloc(1, sizeof *u->mailboxes);
    memmove(&u->mailboxes[1], &u->mailboxes[0], u->n_mailboxes * sizeof *u->mailboxes);
    memset(&u->mailboxes[0], 0, sizeof *u->mailboxes);
    u->mailboxes[0].name = ms_strdup("INBOX");
    u->mailboxes[0].subscribed = 1;
    u->mailboxes[0].pos = u->pos;
    u->n_mailboxes++;
    return MOCKSRV_OK;
}

/* limits.message_size may come after users: in the file, so it is checked at the end. */
static int
scenario_check_sizes(struct scenario_ctx *ctx, const struct ms_scenario *sc)
{
    char path[SCENARIO_PATH_MAX * 2], got[32], lim[32];
    size_t max = sc->limits.message_size;
    for (size_t u = 0; u < sc->n_users; u++) {
        const struct ms_user *user = &sc->users[u];
        for (size_t k = 0; k < user->n_mailboxes; k++) {
            const struct ms_mailbox_conf *mb = &user->mailboxes[k];
            for (size_t i = 0; i < mb->n_messages; i++) {
                const struct ms_message_conf *mc = &mb->messages[i];
                size_t n = mc->source == MS_MSG_GENERATE ? mc->gen_size : mc->len;
                if (n <= max)
                    continue;
                const char *what = mc->source == MS_MSG_FILE  ? "file"
                                   : mc->source == MS_MSG_RAW ? "raw"
                                                              : "generate.size";
                if (snprintf(path, sizeof path, "users.%s.mailboxes.%s.messages[%zu].%s",
                             user->name, mb->name, i, what) < 0)
                    path[0] = '\0';
                scenario_format_size(lim, sizeof lim, max);
                if (mc->source == MS_MSG_GENERATE) {
                    scenario_format_size(got, sizeof got, n);
                    return scenario_fail(ctx, mc->src_pos, path,
                                         "%s is above limits.message_size (%s)", got, lim);
                }
                return scenario_fail(ctx, mc->src_pos, path,
                                     "the message has %zu bytes, above limits.message_size (%s)", n,
                                     lim);
            }
        }
    }
    return MOCKSRV_OK;
}

/* The memory.max of our cgroup (v2), or 0 when none is set or it cannot be read. */
static uint64_t
scenario_cgroup_max(void)
{
    char line[4096], path[4200], value[64];
    uint64_t max = 0;
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3) != 0)
            continue;
        line[strcspn(line, "\n")] = '\0';
        /* the namespace's root when the path is not visible (a container) */
        const char *rel = strcmp(line + 3, "/") == 0 ? "" : line + 3;
        for (int i = 0; i < 2 && max == 0; i++) {
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", i == 0 ? rel : "");
            FILE *m = fopen(path, "re");
            if (!m)
                continue;
            if (fgets(value, sizeof value, m) && isdigit((unsigned char)value[0]))
                max = strtoull(value, NULL, 10);
            fclose(m);
        }
        break;
    }
    fclose(f);
    return max;
}

/* How much the mailboxes of a scenario may hold: half of the smallest of physical memory,
 * RLIMIT_AS and the cgroup's memory.max (half: a reload builds the new store beside the old
 * one, and the sessions need the rest). *what_r says which one it is. */
static uint64_t
scenario_memory_limit(const char **what_r)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t limit = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
    *what_r = "physical memory";
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (uint64_t)rl.rlim_cur < limit) {
        limit = (uint64_t)rl.rlim_cur;
        *what_r = "RLIMIT_AS (ulimit -v)";
    }
    uint64_t cg = scenario_cgroup_max();
    if (cg > 0 && cg < limit) {
        limit = cg;
        *what_r = "the cgroup's memory.max";
    }
    return limit / 2;
}

/* Formats a large byte count for a message: "70.3GiB", "512.0MiB", "4096 bytes". */
static void
scenario_format_bytes(char *out, size_t cap, uint64_t n)
{
    if (n >= SCENARIO_GIB)
        snprintf(out, cap, "%.1fGiB", (double)n / (double)SCENARIO_GIB);
    else if (n >= SCENARIO_MIB)
        snprintf(out, cap, "%.1fMiB", (double)n / (double)SCENARIO_MIB);
    else
        snprintf(out, cap, "%llu bytes", (unsigned long long)n);
}

/* What the store will hold for one message entry (all the messages of a generate), estimated
 * as store.c builds it: the bytes of a file or raw message; for a generated one the size
 * asked plus the eighth store.c reserves beyond it and 1KiB, a small request filling about
 * 1KiB (a minimal message is larger than asked); plus SCENARIO_MESSAGE_OVERHEAD each. */
static uint64_t
scenario_entry_bytes(const struct ms_message_conf *mc, uint64_t *count_r)
{
    int gen = mc->source == MS_MSG_GENERATE;
    uint64_t n = gen ? mc->gen_count : 1;
    uint64_t each =
        gen ? MS_MAX((uint64_t)mc->gen_size, SCENARIO_KIB) + mc->gen_size / 8 + SCENARIO_KIB
            : mc->len;
    *count_r = n;
    return n * (each + SCENARIO_MESSAGE_OVERHEAD);
}

/* The totals of the scenario's messages in file order, stopping at the first entry past
 * max_count messages or max_bytes bytes: returns it and fills the path to it, or NULL. */
static const struct ms_message_conf *
scenario_sum_messages(const struct ms_scenario *sc, uint64_t max_count, uint64_t max_bytes,
                      uint64_t *count_r, uint64_t *bytes_r, char *path, size_t cap)
{
    uint64_t count = 0, bytes = 0, n;
    for (size_t u = 0; u < sc->n_users; u++) {
        const struct ms_user *user = &sc->users[u];
        for (size_t k = 0; k < user->n_mailboxes; k++) {
            const struct ms_mailbox_conf *mb = &user->mailboxes[k];
            for (size_t i = 0; i < mb->n_messages; i++) {
                const struct ms_message_conf *mc = &mb->messages[i];
                /* no overflow: an entry is under 2^51 bytes, and callers stop by 2^62 */
                bytes += scenario_entry_bytes(mc, &n);
                count += n;
                *count_r = count;
                *bytes_r = bytes;
                if (count <= max_count && bytes <= max_bytes)
                    continue;
                const char *key = mc->source == MS_MSG_FILE  ? "file"
                                  : mc->source == MS_MSG_RAW ? "raw"
                                                             : "generate";
                if (snprintf(path, cap, "users.%s.mailboxes.%s.messages[%zu].%s", user->name,
                             mb->name, i, key) < 0)
                    path[0] = '\0';
                return mc;
            }
        }
    }
    return NULL;
}

/* A scenario too large for the machine is refused here rather than by an out-of-memory abort
 * when the store is built (issue 10): past SCENARIO_MAX_MESSAGES messages, or when the bytes
 * the mailboxes would hold (scenario_entry_bytes) pass scenario_memory_limit, the entry at
 * which the running total passes the limit is named. The machine is asked only by a scenario
 * past SCENARIO_MEMORY_ANY. Nothing is allocated. */
static int
scenario_check_memory(struct scenario_ctx *ctx, const struct ms_scenario *sc)
{
    char path[SCENARIO_PATH_MAX * 2], need[32], lim[32], one[32];
    uint64_t count = 0, bytes = 0, n;
    const struct ms_message_conf *mc;
    /* the first pass stops past 2^62 bytes, which no machine has, so the sum cannot wrap */
    scenario_sum_messages(sc, UINT64_MAX, (uint64_t)1 << 62, &count, &bytes, path, sizeof path);
    if (count > SCENARIO_MAX_MESSAGES) {
        mc = scenario_sum_messages(sc, SCENARIO_MAX_MESSAGES, UINT64_MAX, &count, &bytes, path,
                                   sizeof path);
        return scenario_fail(ctx, mc->source == MS_MSG_GENERATE ? mc->gen_pos : mc->src_pos, path,
                             "%llu messages up to here, above the limit of %u messages in a "
                             "scenario",
                             (unsigned long long)count, SCENARIO_MAX_MESSAGES);
    }
    if (bytes <= SCENARIO_MEMORY_ANY)
        return MOCKSRV_OK;
    const char *what = NULL;
    uint64_t limit = scenario_memory_limit(&what);
    if (bytes <= limit)
        return MOCKSRV_OK;
    mc = scenario_sum_messages(sc, UINT64_MAX, limit, &count, &bytes, path, sizeof path);
    scenario_format_bytes(need, sizeof need, bytes);
    scenario_format_bytes(lim, sizeof lim, limit);
    scenario_format_bytes(one, sizeof one, scenario_entry_bytes(mc, &n));
    return scenario_fail(ctx, mc->source == MS_MSG_GENERATE ? mc->gen_pos : mc->src_pos, path,
                         "the mailboxes would need about %s of memory up to here (%s for this "
                         "entry), above the limit of %s (%llu bytes: half of %s); lower count or "
                         "size",
                         need, one, lim, (unsigned long long)limit, what);
}

static const struct scenario_field scenario_user_fields[] = {
    F_STRING("password", struct ms_user, password, SC_ANY),
    {.key = "addresses",
     .kind = SK_STRINGS,
     .offset = offsetof(struct ms_user, addresses),
     .offset2 = offsetof(struct ms_user, n_addresses),
     .check = SC_ADDRESS},
    F_CUSTOM("mailboxes", scenario_parse_mailboxes),
};
static const struct scenario_table scenario_user_table =
    TABLE(scenario_user_fields, scenario_check_user);

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

/* ---- faults (FAULTS.md 2) ---- */

#define SCENARIO_FAULT_MAX_MS (7 * SCENARIO_DAY_MS) /* delay, for, close.delay */

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

/* How the items of a string-or-list key are read. */
enum scenario_word {
    SW_NAME,    /* as written, non-empty (listener names: checked against the listeners later) */
    SW_UPPER,   /* no blanks or control characters, upper-cased (hide: capability names) */
    SW_COMMAND, /* trimmed, inner blanks collapsed to one space, upper-cased ("UID FETCH") */
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
static int
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

static int
scenario_parse_fault_listener(struct scenario_ctx *ctx, const struct scenario_node *key,
                              const struct scenario_node *val, const char *path, void *base)
{
    struct ms_fault_rule *r = base;
    /* Whether each names a listener is checked in scenario_check_top: listeners: may come
     * after faults: in the file. */
    return scenario_fault_words(ctx, val, path, SW_NAME, "a listener name", &r->listeners,
                                &r->n_listeners);
}

static int
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

static int
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

static int
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

static int
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
static int
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

/* expect: (defined with the expectations, below) */
static scenario_parse_fn scenario_parse_expect;
static int scenario_check_expect_listeners(struct scenario_ctx *ctx, const struct ms_scenario *sc,
                                           const struct scenario_node *top);

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

/* ---- expectations (SPEC 3.5, FAULTS.md 2) ---- */

static const struct scenario_name scenario_expect_matches[] = {
    {"exact", MS_EXPECT_EXACT},
    {"subsequence", MS_EXPECT_SUBSEQUENCE},
};

static void
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

static int
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
static int
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

/* ---- state out (--state-out): a store written back as a scenario ---- */

struct scenario_emit {
    yaml_emitter_t em;
    struct ms_buf *out;
    int rc; /* the first error; later events are dropped */
    struct mocksrv_error *err;
    /* message files */
    const char *out_path; /* may be NULL */
    char *dir;            /* "<out_path>.d", created on first use */
    char *dir_rel;        /* its name relative to out_path's directory */
    int dir_made;
    /* Tabs: libyaml's emitter refuses them in a literal block (it reads a tab as a special
     * character and falls back to a quoted scalar), though every parser reads them there as
     * content. So with tabs set, a tab of an inline message is emitted as SCENARIO_TAB_MARK
     * and put back in the output; n_tabs counts them. */
    int tabs;
    size_t n_tabs;
};

/* U+E000, a private-use character: printable for libyaml, never in an inline message (ASCII
 * only); if a name elsewhere in the document has one, the count differs and the document is
 * made again without the trick. */
#define SCENARIO_TAB_MARK "\xee\x80\x80"

static int
scenario_emit_write(void *data, unsigned char *buffer, size_t size)
{
    ms_buf_append(data, buffer, size);
    return 1;
}

static void
scenario_emit_fail_yaml(struct scenario_emit *e, const char *what)
{
    if (e->rc != MOCKSRV_OK)
        return;
    if (e->em.error == YAML_MEMORY_ERROR)
        ms_die("out of memory (libyaml)");
    e->rc = ms_error_set(e->err, MOCKSRV_EINVAL, "state: cannot write %s as YAML: %s", what,
                         e->em.problem ? e->em.problem : "not valid UTF-8");
}

/* Hands an event to the emitter, which owns it from then on, failed or not. */
static void
scenario_emit_event(struct scenario_emit *e, yaml_event_t *ev, int made, const char *what)
{
    if (!made) {
        /* yaml_*_event_initialize refuses text that is not UTF-8 */
        if (e->rc == MOCKSRV_OK)
            e->rc = ms_error_set(e->err, MOCKSRV_EINVAL,
                                 "state: cannot write %s as YAML: not valid UTF-8", what);
        return;
    }
    if (e->rc != MOCKSRV_OK) {
        yaml_event_delete(ev);
        return;
    }
    if (!yaml_emitter_emit(&e->em, ev))
        scenario_emit_fail_yaml(e, what);
}

static void
scenario_emit_scalar(struct scenario_emit *e, const char *text, size_t len,
                     yaml_scalar_style_t style)
{
    yaml_event_t ev;
    int made =
        yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)len, 1, 1, style);
    scenario_emit_event(e, &ev, made, text);
}

/* Plain when the loader and any YAML reader see the same string (a letter first, no null or
 * boolean word), else double-quoted, which carries any UTF-8 text exactly. */
static void
scenario_emit_str(struct scenario_emit *e, const char *s)
{
    static const char *const words[] = {"null", "true", "false", "yes", "no",
                                        "on",   "off",  "y",     "n"};
    int plain = isalpha((unsigned char)s[0]);
    for (const char *p = s; plain && *p; p++)
        plain = isalnum((unsigned char)*p) || strchr("._@/+-", *p);
    for (size_t i = 0; plain && i < MS_ARRAY_LEN(words); i++)
        plain = !ms_strcaseeq(s, words[i]);
    scenario_emit_scalar(e, s, strlen(s),
                         plain ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

static void
scenario_emit_plain(struct scenario_emit *e, const char *s)
{
    scenario_emit_scalar(e, s, strlen(s), YAML_PLAIN_SCALAR_STYLE);
}

static void
scenario_emit_u64(struct scenario_emit *e, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    scenario_emit_plain(e, buf);
}

static void
scenario_emit_bool(struct scenario_emit *e, int v)
{
    scenario_emit_plain(e, v ? "true" : "false");
}

static void
scenario_emit_map_start(struct scenario_emit *e, int flow)
{
    yaml_event_t ev;
    int made = yaml_mapping_start_event_initialize(
        &ev, NULL, NULL, 1, flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
    scenario_emit_event(e, &ev, made, "a mapping");
}

static void
scenario_emit_map_end(struct scenario_emit *e)
{
    yaml_event_t ev;
    scenario_emit_event(e, &ev, yaml_mapping_end_event_initialize(&ev), "a mapping");
}

static void
scenario_emit_seq_start(struct scenario_emit *e, int flow)
{
    yaml_event_t ev;
    int made = yaml_sequence_start_event_initialize(
        &ev, NULL, NULL, 1, flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
    scenario_emit_event(e, &ev, made, "a list");
}

static void
scenario_emit_seq_end(struct scenario_emit *e)
{
    yaml_event_t ev;
    scenario_emit_event(e, &ev, yaml_sequence_end_event_initialize(&ev), "a list");
}

/* [PLAIN, LOGIN]: the names of the bits set, in table order. */
static void
scenario_emit_names(struct scenario_emit *e, const char *key, unsigned bits,
                    const struct scenario_name *names, size_t n)
{
    scenario_emit_plain(e, key);
    scenario_emit_seq_start(e, 1);
    for (size_t i = 0; i < n; i++)
        if (bits & names[i].value)
            scenario_emit_plain(e, names[i].name);
    scenario_emit_seq_end(e);
}

static void
scenario_emit_size(struct scenario_emit *e, const char *key, uint64_t v)
{
    char buf[32];
    scenario_format_size(buf, sizeof buf, v);
    scenario_emit_plain(e, key);
    scenario_emit_plain(e, buf);
}

/* A path of the scenario, absolute so that it still works from out_path's directory. */
static void
scenario_emit_path(struct scenario_emit *e, const char *key, const char *p)
{
    char cwd[4096];
    if (!p)
        return;
    scenario_emit_plain(e, key);
    if (p[0] == '/' || !getcwd(cwd, sizeof cwd)) {
        scenario_emit_str(e, p);
        return;
    }
    char *abs = ms_asprintf("%s/%s", cwd, p);
    scenario_emit_str(e, abs);
    free(abs);
}

/* A message is inline when YAML carries it exactly as a literal block and the loader's LF ->
 * CRLF gives the bytes back: printable ASCII lines (and tabs, when allowed) ended by CRLF, no
 * blank before a line end or at the end (YAML would keep it, but libyaml writes such text
 * double-quoted), no tab first. Bare CR or LF, NUL, other control and 8-bit bytes go to a
 * file. */
static int
scenario_inline_ok(const char *p, size_t n, int tabs)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r') {
            if (i + 1 >= n || p[i + 1] != '\n' || (i > 0 && (p[i - 1] == ' ' || p[i - 1] == '\t')))
                return 0;
            i++; /* the LF */
        } else if ((c < 0x20 && !(c == '\t' && tabs)) || c > 0x7e) {
            return 0;
        }
    }
    /* A tab first: a reader that detects the block's indentation from its first line takes it
     * for indentation and fails (libyaml writes an explicit indentation only before a space
     * or a line end). */
    return n == 0 || (p[n - 1] != ' ' && p[n - 1] != '\t' && p[0] != '\t');
}

/* Letters, digits, '.', '@' and '+' as they are, anything else _XX: injective, so two
 * mailboxes never share a file, and '-' stays free as the separator. */
static void
scenario_file_part(struct ms_buf *b, const char *s, const char *alt, size_t alt_n)
{
    size_t start = b->len;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '.' || *p == '@' || *p == '+')
            ms_buf_putc(b, (char)*p);
        else
            ms_buf_printf(b, "_%02x", *p);
    }
    if (b->len - start > 80) {
        /* NAME_MAX is 255: an index instead ("_" then a letter is never an escape) */
        b->len = start;
        ms_buf_printf(b, "_%s%zu", alt, alt_n);
    }
}

static int
scenario_fail_write(struct scenario_emit *e, const char *path, int errnum)
{
    char buf[128];
    const char *reason = strerror_r(errnum, buf, sizeof buf);
    if (e->err) {
        memset(e->err, 0, sizeof *e->err);
        if (snprintf(e->err->file, sizeof e->err->file, "%s", path) < 0)
            e->err->file[0] = '\0';
    }
    return ms_error_set(e->err, MOCKSRV_EIO, "%s: cannot write: %s", path, reason);
}

/* The exact bytes, in one file (replaced if it exists). */
static int
scenario_write_file(struct scenario_emit *e, const char *path, const char *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666);
    if (fd < 0)
        return scenario_fail_write(e, path, errno);
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int saved = errno;
            close(fd);
            return scenario_fail_write(e, path, saved);
        }
        p += w;
        n -= (size_t)w;
    }
    if (close(fd) != 0)
        return scenario_fail_write(e, path, errno);
    return MOCKSRV_OK;
}

static void
scenario_emit_message(struct scenario_emit *e, const struct ms_account *acc, size_t acc_i,
                      const struct ms_mailbox *mb, size_t mb_i, const struct ms_message *m)
{
    char date[40];
    const char *bytes = m->blob->data;
    size_t len = m->blob->len;

    scenario_emit_map_start(e, 0);
    scenario_emit_plain(e, "uid");
    scenario_emit_u64(e, m->uid);
    /* \Recent belongs to the sessions that saw the message arrive (RFC 3501 2.3.2) */
    unsigned flags = m->flags & ~(unsigned)MS_FLAG_RECENT;
    if (flags || m->n_keywords) {
        scenario_emit_plain(e, "flags");
        scenario_emit_seq_start(e, 1);
        for (unsigned bit = 1; bit <= MS_FLAG_DRAFT; bit <<= 1)
            if (flags & bit)
                scenario_emit_scalar(e, ms_flag_name(bit), strlen(ms_flag_name(bit)),
                                     YAML_SINGLE_QUOTED_SCALAR_STYLE);
        for (size_t i = 0; i < m->n_keywords; i++)
            scenario_emit_scalar(e, m->keywords[i], strlen(m->keywords[i]),
                                 YAML_SINGLE_QUOTED_SCALAR_STYLE);
        scenario_emit_seq_end(e);
    }
    if (m->internaldate != 0) {
        scenario_format_date(date, sizeof date, m->internaldate);
        scenario_emit_plain(e, "date");
        scenario_emit_plain(e, date);
    }
    if (scenario_inline_ok(bytes, len, e->tabs)) {
        /* YAML strings carry LF: drop the CRs, the loader puts them back */
        struct ms_buf text = {0};
        ms_buf_reserve(&text, len);
        for (size_t i = 0; i < len; i++) {
            if (bytes[i] == '\t') {
                ms_buf_puts(&text, SCENARIO_TAB_MARK);
                e->n_tabs++;
            } else if (bytes[i] != '\r') {
                ms_buf_putc(&text, bytes[i]);
            }
        }
        scenario_emit_plain(e, "raw");
        scenario_emit_scalar(e, text.data, text.len, YAML_LITERAL_SCALAR_STYLE);
        ms_buf_fini(&text);
        scenario_emit_map_end(e);
        return;
    }
    if (e->rc != MOCKSRV_OK)
        return;
    if (!e->out_path) {
        e->rc = ms_error_set(e->err, MOCKSRV_EINVAL,
                             "state: message %u of %s/%s needs a file (its bytes are not "
                             "plain CRLF text) and no output path was given",
                             m->uid, acc->name, mb->name);
        return;
    }
    if (!e->dir_made) {
        if (mkdir(e->dir, 0777) != 0 && errno != EEXIST) {
            e->rc = scenario_fail_write(e, e->dir, errno);
            return;
        }
        e->dir_made = 1;
    }
    struct ms_buf name = {0};
    scenario_file_part(&name, acc->name, "u", acc_i);
    ms_buf_putc(&name, '-');
    scenario_file_part(&name, mb->name, "m", mb_i);
    ms_buf_printf(&name, "-%u.eml", m->uid);
    char *full = ms_asprintf("%s/%s", e->dir, name.data);
    char *rel = ms_asprintf("%s/%s", e->dir_rel, name.data);
    e->rc = scenario_write_file(e, full, bytes, len);
    scenario_emit_plain(e, "file");
    scenario_emit_str(e, rel);
    if (!memchr(bytes, '\r', len) && memchr(bytes, '\n', len)) {
        /* the loader would turn these LFs into CRLF */
        scenario_emit_plain(e, "exact");
        scenario_emit_bool(e, 1);
    }
    scenario_emit_map_end(e);
    free(full);
    free(rel);
    ms_buf_fini(&name);
}

static void
scenario_emit_mailboxes(struct scenario_emit *e, const struct ms_account *acc, size_t acc_i)
{
    scenario_emit_plain(e, "mailboxes");
    scenario_emit_map_start(e, 0);
    for (size_t k = 0; k < acc->n_mailboxes; k++) {
        const struct ms_mailbox *mb = acc->mailboxes[k];
        scenario_emit_str(e, mb->name);
        scenario_emit_map_start(e, 0);
        scenario_emit_plain(e, "uidvalidity");
        scenario_emit_u64(e, mb->uidvalidity);
        scenario_emit_plain(e, "uidnext");
        scenario_emit_u64(e, mb->uidnext);
        if (mb->special_use) {
            scenario_emit_plain(e, "special_use");
            scenario_emit_scalar(e, mb->special_use, strlen(mb->special_use),
                                 YAML_SINGLE_QUOTED_SCALAR_STYLE);
        }
        scenario_emit_plain(e, "subscribed");
        scenario_emit_bool(e, mb->subscribed);
        if (mb->n_msgs) {
            scenario_emit_plain(e, "messages");
            scenario_emit_seq_start(e, 0);
            for (size_t i = 0; i < mb->n_msgs; i++)
                scenario_emit_message(e, acc, acc_i, mb, k, mb->msgs[i]);
            scenario_emit_seq_end(e);
        }
        scenario_emit_map_end(e);
    }
    scenario_emit_map_end(e);
}

/* listeners.NAME.script, one flow mapping per step: send lines as written (the loader adds
 * the same CRLFs again), raw bytes and globs double-quoted, which carries any text exactly
 * (a NUL as "\0"); `reset` comes back as rst. */
static void
scenario_emit_script(struct scenario_emit *e, const struct ms_listener_conf *l)
{
    char buf[32];
    scenario_emit_plain(e, "script");
    scenario_emit_seq_start(e, 0);
    for (size_t i = 0; i < l->n_script; i++) {
        const struct ms_script_step *st = &l->script[i];
        scenario_emit_map_start(e, 1);
        switch (st->op) {
        case MS_SCRIPT_SEND:
            if (st->raw) {
                scenario_emit_plain(e, "raw");
                scenario_emit_scalar(e, st->bytes, st->len, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
                break;
            }
            scenario_emit_plain(e, "send");
            if (st->n_lines > 1)
                scenario_emit_seq_start(e, 1);
            for (size_t k = 0; k < st->n_lines; k++)
                scenario_emit_scalar(e, st->lines[k], strlen(st->lines[k]),
                                     YAML_DOUBLE_QUOTED_SCALAR_STYLE);
            if (st->n_lines > 1)
                scenario_emit_seq_end(e);
            break;
        case MS_SCRIPT_EXPECT:
            scenario_emit_plain(e, "expect");
            scenario_emit_scalar(e, st->bytes, st->len, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
            break;
        case MS_SCRIPT_DELAY:
            scenario_format_duration(buf, sizeof buf, (uint64_t)st->delay_ms);
            scenario_emit_plain(e, "delay");
            scenario_emit_plain(e, buf);
            break;
        case MS_SCRIPT_CLOSE:
            scenario_emit_plain(e, "close");
            scenario_emit_plain(e, st->how == MS_CLOSE_RST    ? "rst"
                                   : st->how == MS_CLOSE_HALF ? "half"
                                                              : "fin");
            break;
        case MS_SCRIPT_STARTTLS:
            scenario_emit_plain(e, "starttls");
            scenario_emit_bool(e, 1);
            break;
        }
        scenario_emit_map_end(e);
    }
    scenario_emit_seq_end(e);
}

/* The settings of the scenario. faults: is deliberately not written back: the state document
 * records the mail store, and a fault plan replayed on a reload of the state would fire again
 * against a run it was not written for. Keep the fault rules in their own scenario file. */
static void
scenario_emit_settings(struct scenario_emit *e, const struct ms_scenario *sc)
{
    char buf[64];
    scenario_emit_plain(e, "version");
    scenario_emit_u64(e, 1);
    if (sc->has_seed) {
        scenario_emit_plain(e, "seed");
        scenario_emit_u64(e, sc->seed);
    }
    scenario_emit_plain(e, "hostname");
    scenario_emit_str(e, sc->hostname);

    scenario_emit_plain(e, "listeners");
    scenario_emit_map_start(e, 0);
    for (size_t i = 0; i < sc->n_listeners; i++) {
        const struct ms_listener_conf *l = &sc->listeners[i];
        scenario_emit_str(e, l->name);
        scenario_emit_map_start(e, l->n_script == 0);
        scenario_emit_plain(e, "protocol");
        scenario_emit_plain(e, ms_proto_name(l->protocol));
        scenario_emit_plain(e, "port");
        scenario_emit_u64(e, (uint64_t)l->port);
        scenario_emit_plain(e, "tls");
        scenario_emit_plain(e, ms_tls_mode_name(l->tls));
        if (l->host) {
            scenario_emit_plain(e, "host");
            scenario_emit_str(e, l->host);
        }
        if (l->window)
            scenario_emit_size(e, "window", l->window);
        if (l->n_script)
            scenario_emit_script(e, l);
        scenario_emit_map_end(e);
    }
    scenario_emit_map_end(e);

    if (sc->tls.cert || sc->tls.client_ca || sc->tls.min_version) {
        scenario_emit_plain(e, "tls");
        scenario_emit_map_start(e, 0);
        scenario_emit_path(e, "cert", sc->tls.cert);
        scenario_emit_path(e, "key", sc->tls.key);
        scenario_emit_path(e, "client_ca", sc->tls.client_ca);
        for (size_t i = 0; i < MS_ARRAY_LEN(scenario_tls_versions); i++) {
            if (scenario_tls_versions[i].value != (unsigned)sc->tls.min_version)
                continue;
            scenario_emit_plain(e, "min_version");
            scenario_emit_scalar(e, scenario_tls_versions[i].name,
                                 strlen(scenario_tls_versions[i].name),
                                 YAML_DOUBLE_QUOTED_SCALAR_STYLE);
        }
        scenario_emit_map_end(e);
    }

    scenario_emit_plain(e, "smtp");
    scenario_emit_map_start(e, 0);
    scenario_emit_size(e, "max_size", sc->smtp.max_size);
    scenario_emit_names(e, "auth", sc->smtp.auth, scenario_mechanisms,
                        MS_ARRAY_LEN(scenario_mechanisms));
    scenario_emit_plain(e, "require_auth");
    scenario_emit_bool(e, sc->smtp.require_auth);
    scenario_emit_names(e, "extensions", sc->smtp.extensions, scenario_extensions,
                        MS_ARRAY_LEN(scenario_extensions));
    scenario_emit_plain(e, "deliver");
    scenario_emit_bool(e, sc->smtp.deliver);
    scenario_emit_map_end(e);

    scenario_emit_plain(e, "pop3");
    scenario_emit_map_start(e, 0);
    scenario_emit_names(e, "auth", sc->pop3.auth, scenario_mechanisms,
                        MS_ARRAY_LEN(scenario_mechanisms));
    scenario_emit_plain(e, "apop");
    scenario_emit_bool(e, sc->pop3.apop);
    scenario_emit_map_end(e);

    scenario_emit_plain(e, "imap");
    scenario_emit_map_start(e, 0);
    scenario_emit_plain(e, "capabilities");
    if (!sc->imap.capabilities) {
        scenario_emit_plain(e, "default");
    } else {
        scenario_emit_seq_start(e, 1);
        for (size_t i = 0; i < sc->imap.n_capabilities; i++)
            scenario_emit_str(e, sc->imap.capabilities[i]);
        scenario_emit_seq_end(e);
    }
    scenario_emit_names(e, "auth", sc->imap.auth, scenario_mechanisms,
                        MS_ARRAY_LEN(scenario_mechanisms));
    scenario_emit_map_end(e);

    scenario_emit_plain(e, "limits");
    scenario_emit_map_start(e, 0);
    scenario_emit_size(e, "smtp_line_length", sc->limits.smtp_line_length);
    scenario_emit_size(e, "pop3_line_length", sc->limits.pop3_line_length);
    scenario_emit_size(e, "imap_line_length", sc->limits.imap_line_length);
    scenario_emit_size(e, "message_size", sc->limits.message_size);
    scenario_emit_size(e, "literal_size", sc->limits.literal_size);
    scenario_emit_plain(e, "sessions");
    scenario_emit_u64(e, sc->limits.sessions);
    scenario_format_duration(buf, sizeof buf, (uint64_t)sc->limits.idle_timeout_ms);
    scenario_emit_plain(e, "idle_timeout");
    scenario_emit_plain(e, buf);
    scenario_emit_plain(e, "bad_commands");
    scenario_emit_u64(e, sc->limits.bad_commands);
    scenario_emit_map_end(e);
}

static void
scenario_emit_user(struct scenario_emit *e, const char *name, const struct ms_user *u,
                   const struct ms_account *acc, size_t acc_i)
{
    scenario_emit_str(e, name);
    scenario_emit_map_start(e, 0);
    scenario_emit_plain(e, "password");
    scenario_emit_str(e, u ? u->password : "");
    if (u && u->n_addresses) {
        scenario_emit_plain(e, "addresses");
        scenario_emit_seq_start(e, 1);
        for (size_t i = 0; i < u->n_addresses; i++)
            scenario_emit_str(e, u->addresses[i]);
        scenario_emit_seq_end(e);
    }
    if (acc)
        scenario_emit_mailboxes(e, acc, acc_i);
    scenario_emit_map_end(e);
}

/* Puts the tabs back: SCENARIO_TAB_MARK -> '\t' in out[start..]. Returns the number of marks
 * replaced. */
static size_t
scenario_put_tabs(struct ms_buf *out, size_t start)
{
    const size_t mark = sizeof SCENARIO_TAB_MARK - 1;
    size_t r = start, w = start, n = 0;
    while (r < out->len) {
        if (r + mark <= out->len && memcmp(out->data + r, SCENARIO_TAB_MARK, mark) == 0) {
            out->data[w++] = '\t';
            r += mark;
            n++;
        } else {
            out->data[w++] = out->data[r++];
        }
    }
    out->len = w;
    out->data[w] = '\0';
    return n;
}

static size_t
scenario_count_marks(const struct ms_buf *out, size_t start)
{
    size_t n = 0;
    const char *p = out->data + start, *end = out->data + out->len;
    while ((p = memmem(p, (size_t)(end - p), SCENARIO_TAB_MARK, sizeof SCENARIO_TAB_MARK - 1))) {
        n++;
        p += sizeof SCENARIO_TAB_MARK - 1;
    }
    return n;
}

static int
scenario_format_state_pass(const struct ms_scenario *sc, const struct ms_store *store,
                           const char *out_path, struct ms_buf *yaml_out, int tabs,
                           struct mocksrv_error *err)
{
    struct scenario_emit e = {
        .out = yaml_out, .rc = MOCKSRV_OK, .err = err, .out_path = out_path, .tabs = tabs};
    size_t start = yaml_out->len;
    yaml_event_t ev;

    if (out_path) {
        const char *slash = strrchr(out_path, '/');
        e.dir = ms_asprintf("%s.d", out_path);
        e.dir_rel = ms_asprintf("%s.d", slash ? slash + 1 : out_path);
    }
    if (!yaml_emitter_initialize(&e.em))
        ms_die("out of memory (libyaml)");
    yaml_emitter_set_output(&e.em, scenario_emit_write, yaml_out);
    yaml_emitter_set_unicode(&e.em, 1);
    yaml_emitter_set_width(&e.em, -1); /* no folding of long quoted lines */
    yaml_emitter_set_indent(&e.em, 2);
    ms_buf_puts(yaml_out,
                "# mocksrv state: the scenario with its mailboxes as they were at exit.\n");

    scenario_emit_event(&e, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING),
                        "the stream");
    scenario_emit_event(&e, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1),
                        "the document");
    scenario_emit_map_start(&e, 0);
    scenario_emit_settings(&e, sc);

    /* Users of the scenario in its order, each with its account (same name); then accounts
     * without a user, with an empty password (none today: accounts are made for users). */
    size_t n_store = store ? store->n_accounts : 0;
    size_t *user_of = ms_calloc(n_store, sizeof *user_of); /* account -> user + 1, 0: none */
    size_t n_extra = n_store;
    for (size_t k = 0; k < n_store; k++)
        for (size_t i = 0; i < sc->n_users && !user_of[k]; i++)
            if (strcmp(store->accounts[k]->name, sc->users[i].name) == 0) {
                user_of[k] = i + 1;
                n_extra--;
            }
    if (sc->n_users || n_extra) {
        scenario_emit_plain(&e, "users");
        scenario_emit_map_start(&e, 0);
        for (size_t i = 0; i < sc->n_users; i++) {
            size_t k = 0;
            while (k < n_store && user_of[k] != i + 1)
                k++;
            scenario_emit_user(&e, sc->users[i].name, &sc->users[i],
                               k < n_store ? store->accounts[k] : NULL, k);
        }
        for (size_t k = 0; k < n_store; k++)
            if (!user_of[k])
                scenario_emit_user(&e, store->accounts[k]->name, NULL, store->accounts[k], k);
        scenario_emit_map_end(&e);
    }
    free(user_of);

    scenario_emit_map_end(&e);
    scenario_emit_event(&e, &ev, yaml_document_end_event_initialize(&ev, 1), "the document");
    scenario_emit_event(&e, &ev, yaml_stream_end_event_initialize(&ev), "the stream");
    if (e.rc == MOCKSRV_OK && !yaml_emitter_flush(&e.em))
        scenario_emit_fail_yaml(&e, "the document");
    yaml_emitter_delete(&e.em);
    free(e.dir);
    free(e.dir_rel);
    if (e.rc == MOCKSRV_OK && e.n_tabs && scenario_count_marks(yaml_out, start) != e.n_tabs)
        e.rc = MOCKSRV_EAGAIN_TABS; /* a mark that is not a tab of ours: again without */
    else if (e.rc == MOCKSRV_OK && e.n_tabs)
        ms_assert(scenario_put_tabs(yaml_out, start) == e.n_tabs);
    if (e.rc != MOCKSRV_OK) {
        yaml_out->len = start;
        if (yaml_out->data)
            yaml_out->data[start] = '\0';
    }
    return e.rc;
}

int
ms_scenario_format_state(const struct ms_scenario *sc, const struct ms_store *store,
                         const char *out_path, struct ms_buf *yaml_out, struct mocksrv_error *err)
{
    int rc = scenario_format_state_pass(sc, store, out_path, yaml_out, 1, err);
    if (rc == MOCKSRV_EAGAIN_TABS)
        rc = scenario_format_state_pass(sc, store, out_path, yaml_out, 0, err);
    return rc;
}
