/*
 * scenario_int.h - what the parts of the scenario loader share, internal to mocksrv/scenario*.c:
 * the node tree (struct scenario_node), the loader's context, the key tables (struct
 * scenario_field, struct scenario_table and the F_* macros that write their rows), the name
 * tables, and the functions one part calls in another.
 *
 * Not a public header: nothing outside mocksrv/scenario*.c includes it (scenario.h is the
 * loader's interface). Only the parts that read or write YAML include <yaml.h>: the tree of our
 * own keeps it out of here.
 *
 * The parts: scenario_yaml.c (tree, walk, typed values, grammars, names), scenario.c (the top
 * level and the entry points), scenario_script.c (listeners and scripts), scenario_mail.c
 * (users, mailboxes, messages), scenario_faults.c (faults, shaping, tls actions),
 * scenario_expect.c (expectations), scenario_state.c (--state-out).
 */
#ifndef MS_SCENARIO_INT_H
#define MS_SCENARIO_INT_H

#include <stddef.h>
#include <stdint.h>

#include "scenario.h"

#define SCENARIO_PATH_MAX 256 /* "users.alice.addresses[3]" */
#define SCENARIO_TEXT_MAX 48  /* bytes of a value quoted in a message */

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

int scenario_fail(struct scenario_ctx *ctx, struct ms_pos pos, const char *path, const char *fmt,
                  ...) MS_PRINTF(4, 5);
int scenario_walk(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                  const struct scenario_table *table, void *base);

/* How the items of a string-or-list key are read. */
enum scenario_word {
    SW_NAME,    /* as written, non-empty (listener names: checked against the listeners later) */
    SW_UPPER,   /* no blanks or control characters, upper-cased (hide: capability names) */
    SW_COMMAND, /* trimmed, inner blanks collapsed to one space, upper-cased ("UID FETCH") */
};

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

/* ---- names ---- */

/* The tables of names the parts share (scenario_standard: the standard listeners, for
 * ms_listener_standard), here with their rows so that F_NAMES and MS_ARRAY_LEN see their sizes;
 * static const, so a file that uses one has its own copy. */
struct scenario_standard {
    const char *name;
    enum ms_proto protocol;
    int port;
    enum ms_tls_mode tls;
};

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

static const struct scenario_standard scenario_standard[] = {
    {"smtp", MS_PROTO_SMTP, 3025, MS_TLS_STARTTLS},
    {"smtps", MS_PROTO_SMTP, 3465, MS_TLS_IMPLICIT},
    {"submission", MS_PROTO_SMTP, 3587, MS_TLS_REQUIRED},
    {"lmtp", MS_PROTO_LMTP, 3024, MS_TLS_NONE},
    {"pop3", MS_PROTO_POP3, 3110, MS_TLS_STARTTLS},
    {"pop3s", MS_PROTO_POP3, 3995, MS_TLS_IMPLICIT},
    {"imap", MS_PROTO_IMAP, 3143, MS_TLS_STARTTLS},
    {"imaps", MS_PROTO_IMAP, 3993, MS_TLS_IMPLICIT},
};

/* ---- scenario_yaml.c ---- */

void scenario_format_date(char *out, size_t cap, int64_t t);
int scenario_parse_u64(const char *s, size_t len, uint64_t *out);
void scenario_escape(char *out, size_t cap, const char *text, size_t len, size_t max);
int scenario_is_null(const struct scenario_node *n);
void scenario_describe(char *out, size_t cap, const struct scenario_node *n);
const char *scenario_text(char *out, size_t cap, const struct scenario_node *n);
int scenario_fail_type(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                       const char *want);
void scenario_path_key(char *out, const char *parent, const struct scenario_node *key);
void scenario_path_index(char *out, const char *parent, size_t i);
void scenario_format_size(char *out, size_t cap, uint64_t n);
void scenario_format_duration(char *out, size_t cap, uint64_t ms);
void scenario_format_names(char *out, size_t cap, const struct scenario_name *names, size_t n);
void scenario_node_free(struct scenario_node *n);
int scenario_build(struct scenario_ctx *ctx, const unsigned char *yaml, size_t len,
                   struct scenario_node **root_r);
const struct scenario_node *scenario_map_get(const struct scenario_node *map, const char *key);
const struct scenario_node *scenario_map_value(const struct scenario_node *map, const char *key);
int scenario_text_ok(const char *s, size_t len, enum scenario_check check);
int scenario_get_string(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                        enum scenario_check check, char **out);
int scenario_get_bool(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                      int *out);
int scenario_get_uint(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                      uint64_t min, uint64_t max, uint64_t *out);
int scenario_get_size(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                      uint64_t min, uint64_t max, size_t *out);
int scenario_get_duration(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                          uint64_t min, uint64_t max, int64_t *out);
int scenario_get_name(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                      const struct scenario_field *f, unsigned *out);
void scenario_strings_free(char ***list, size_t *n);
int scenario_get_strings(struct scenario_ctx *ctx, const struct scenario_node *n, const char *path,
                         enum scenario_check check, char ***list, size_t *count);
char *scenario_resolve(const char *base_dir, const char *p);
size_t scenario_distance(const char *a, size_t la, const char *b);
int scenario_check_dups(struct scenario_ctx *ctx, const struct scenario_node *map,
                        const char *path);

/* ---- scenario_script.c ---- */

void scenario_script_free(struct ms_script_step **steps, size_t *n);
int scenario_parse_listeners(struct scenario_ctx *ctx, const struct scenario_node *key,
                             const struct scenario_node *val, const char *path, void *base);

/* ---- scenario_mail.c ---- */

void scenario_mailbox_fini(struct ms_mailbox_conf *mb);
int scenario_check_sizes(struct scenario_ctx *ctx, const struct ms_scenario *sc);
int scenario_check_memory(struct scenario_ctx *ctx, const struct ms_scenario *sc);
int scenario_parse_users(struct scenario_ctx *ctx, const struct scenario_node *key,
                         const struct scenario_node *val, const char *path, void *base);

/* ---- scenario_faults.c ---- */

int scenario_fault_words(struct scenario_ctx *ctx, const struct scenario_node *val,
                         const char *path, enum scenario_word how, const char *want, char ***list,
                         size_t *count);
int scenario_parse_fault_listener(struct scenario_ctx *ctx, const struct scenario_node *key,
                                  const struct scenario_node *val, const char *path, void *base);
int scenario_parse_fault_protocol(struct scenario_ctx *ctx, const struct scenario_node *key,
                                  const struct scenario_node *val, const char *path, void *base);
int scenario_parse_fault_session(struct scenario_ctx *ctx, const struct scenario_node *key,
                                 const struct scenario_node *val, const char *path, void *base);
int scenario_parse_fault_encrypted(struct scenario_ctx *ctx, const struct scenario_node *key,
                                   const struct scenario_node *val, const char *path, void *base);
int scenario_parse_faults(struct scenario_ctx *ctx, const struct scenario_node *key,
                          const struct scenario_node *val, const char *path, void *base);
int scenario_check_fault_listeners(struct scenario_ctx *ctx, const struct ms_scenario *sc,
                                   const struct scenario_node *top);

/* ---- scenario_expect.c ---- */

void scenario_expect_fini(struct ms_expect_conf *e);
int scenario_parse_expect(struct scenario_ctx *ctx, const struct scenario_node *key,
                          const struct scenario_node *val, const char *path, void *base);
int scenario_check_expect_listeners(struct scenario_ctx *ctx, const struct ms_scenario *sc,
                                    const struct scenario_node *top);

#endif
