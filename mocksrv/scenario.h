/*
 * scenario.h - the scenario model (plain structs) and its YAML loader (scenario.c, libyaml).
 *
 * The loader turns a YAML 1.1 document into a struct ms_scenario, keeping the line and column
 * of every node so that every error names file:line:column and the key path, e.g.
 *   "tests/x.yaml:7:5: smtp.max_size: bad size \"10XB\" (use 4096, 4KiB, 10MB)".
 * Unknown keys are errors with a "did you mean" suggestion for near misses. The loader never
 * leaves a half-built scenario: on error it frees what it built and returns MOCKSRV_ESCENARIO.
 * Only scenario.c includes <yaml.h>.
 *
 * Value grammar (YAML 1.1 read strictly):
 *   boolean   plain true/false, yes/no, on/off, any case ("yes" in quotes is a string)
 *   integer   plain decimal digits; no sign, no 0x, no 1_000
 *   size      digits, optional blanks, optional unit, any case: B; K M G T and KiB MiB GiB TiB
 *             are powers of 1024; KB MB GB TB are powers of 1000. Whole numbers only.
 *   duration  a bare number of seconds ("1.5"), or one or more number+unit parts ("1h30m"),
 *             units ms s m h d (any case, blanks allowed before a unit), fractions allowed
 *             down to a whole millisecond ("1.5s").
 *   string    any scalar but a plain null (nothing, ~, null); never with a NUL byte.
 *   section   a mapping; a section key with nothing after it ("smtp:") is an empty one.
 * Not accepted: aliases (*x), several documents in one file, nesting deeper than 64 levels,
 * and the keys of later stages (faults, expect, users.*.mailboxes, listeners.*.script), which
 * are errors saying "not supported yet by this version".
 *
 * Defaults: version 1, no seed, hostname "localhost", listeners: only "smtp" on 3025 with
 * tls none (until TLS lands), no users; every other default is in the comments below.
 */
#ifndef MS_SCENARIO_H
#define MS_SCENARIO_H

#include <stdint.h>
#include <stddef.h>

#include "base.h"

struct ms_pos {
    int line;   /* 1-based, 0 = unknown */
    int column; /* 1-based */
};

enum ms_proto { MS_PROTO_SMTP, MS_PROTO_LMTP, MS_PROTO_POP3, MS_PROTO_IMAP, MS_PROTO_SCRIPT };
enum ms_tls_mode { MS_TLS_NONE, MS_TLS_STARTTLS, MS_TLS_REQUIRED, MS_TLS_IMPLICIT };

const char *ms_proto_name(enum ms_proto p);       /* "smtp" ... */
const char *ms_tls_mode_name(enum ms_tls_mode m); /* "none" "starttls" "required" "implicit" */

/* A listener of the scenario. In the scenario, the protocol defaults from a standard name
 * (ms_listener_standard) and is required for any other name; port defaults to 0, tls to none.
 * Names are letters, digits, - and _ (they end up in MOCKSRV_<NAME>_PORT). Two listeners may not
 * share a non-zero port on the same host. */
struct ms_listener_conf {
    char *name;
    enum ms_proto protocol;
    enum ms_tls_mode tls;
    char *host;        /* NULL: the server's default bind address */
    int port;          /* 0 = ephemeral */
    struct ms_pos pos; /* of the listener's name in the scenario; 0 for standard ones */
};

/* SASL mechanisms, as bits. */
enum {
    MS_AUTH_PLAIN = 1u << 0,
    MS_AUTH_LOGIN = 1u << 1,
    MS_AUTH_CRAM_MD5 = 1u << 2,
    MS_AUTH_XOAUTH2 = 1u << 3,
    MS_AUTH_OAUTHBEARER = 1u << 4,
};

/* SMTP service extensions that smtp.extensions may list, as bits. STARTTLS and AUTH are
 * advertised from the listener's tls mode and smtp.auth, not from this list. */
enum {
    MS_EXT_SIZE = 1u << 0,
    MS_EXT_PIPELINING = 1u << 1,
    MS_EXT_8BITMIME = 1u << 2,
    MS_EXT_ENHANCEDSTATUSCODES = 1u << 3,
    MS_EXT_SMTPUTF8 = 1u << 4,
    MS_EXT_CHUNKING = 1u << 5,
    MS_EXT_DSN = 1u << 6,
    MS_EXT_VRFY = 1u << 7,
    MS_EXT_HELP = 1u << 8,
};
#define MS_EXT_DEFAULT                                                                             \
    (MS_EXT_SIZE | MS_EXT_PIPELINING | MS_EXT_8BITMIME | MS_EXT_ENHANCEDSTATUSCODES |              \
     MS_EXT_SMTPUTF8 | MS_EXT_CHUNKING | MS_EXT_DSN | MS_EXT_VRFY | MS_EXT_HELP)

struct ms_smtp_conf {
    size_t max_size;     /* SIZE advertised and enforced; default 10 MiB; at least 1 */
    unsigned auth;       /* MS_AUTH_* bits; default PLAIN|LOGIN|CRAM-MD5|XOAUTH2|OAUTHBEARER */
    int require_auth;    /* MAIL refused with 530 5.7.0 before AUTH; default 0 */
    unsigned extensions; /* MS_EXT_* bits; default MS_EXT_DEFAULT */
    int deliver;         /* accepted mail lands in recipients' INBOX; default 1 */
};

struct ms_pop3_conf {
    unsigned auth; /* default PLAIN|LOGIN|XOAUTH2 */
    int apop;      /* default 0 */
};

struct ms_imap_conf {
    unsigned auth;       /* default PLAIN|LOGIN|XOAUTH2 */
    char **capabilities; /* NULL = "default"; else explicit list */
    size_t n_capabilities;
};

struct ms_tls_conf {
    char *cert; /* absolute or relative-to-scenario path resolved by the loader; NULL = generate */
    char *key;
    char *client_ca;
    int min_version; /* 0x0301..0x0304 (TLS1_VERSION..TLS1_3_VERSION); 0 = library default */
};

/* Allowed ranges in brackets; a value outside is a scenario error. */
struct ms_limits {
    size_t smtp_line_length; /* default 512 (RFC 5321 4.5.3.1.4) [512 .. 64 KiB] */
    size_t pop3_line_length; /* default 512 [255 .. 64 KiB] */
    size_t imap_line_length; /* default 64 KiB [1 KiB .. 16 MiB] */
    size_t message_size;     /* hard cap for any message or literal; default 64 MiB [1 .. 1 GiB] */
    size_t literal_size;     /* IMAP literal; default 64 MiB [1 .. 1 GiB] */
    unsigned sessions;       /* sessions at once; default 10000 [1 .. 1000000] */
    int64_t idle_timeout_ms; /* default 10 minutes [1 ms .. 7 days] */
    unsigned bad_commands;   /* default 20 [1 .. 1000000] */
};

/* Names and addresses are unique across users, ASCII case-insensitively. Addresses look like
 * local@domain (no blanks, no <>,;"). The password is required (it may be ""). */
struct ms_user {
    char *name;
    char *password;
    char **addresses;
    size_t n_addresses;
    struct ms_pos pos;
};

struct ms_scenario {
    char *path;     /* the file it came from ("<string>", "<default>") */
    char *base_dir; /* directory relative paths are resolved against ("." for strings) */
    int version;    /* 1 */
    uint64_t seed;
    int has_seed;
    char *hostname; /* default "localhost" */

    struct ms_listener_conf *listeners;
    size_t n_listeners;

    struct ms_tls_conf tls;
    struct ms_smtp_conf smtp;
    struct ms_pop3_conf pop3;
    struct ms_imap_conf imap;
    struct ms_limits limits;

    struct ms_user *users;
    size_t n_users;
};

/* Loads a scenario from YAML bytes. name is the file name used in error messages; base_dir
 * resolves relative paths. On success *sc_r owns a new scenario. On failure returns
 * MOCKSRV_ESCENARIO (or MOCKSRV_EIO for the file variant) and fills err (may be NULL) with
 * file, line, column and a message "file:line:column: key.path: problem". */
int ms_scenario_load_string(const char *yaml, size_t len, const char *name, const char *base_dir,
                            struct ms_scenario **sc_r, struct mocksrv_error *err);
int ms_scenario_load_file(const char *path, struct ms_scenario **sc_r, struct mocksrv_error *err);
/* The embedded default scenario (SPEC 5). */
int ms_scenario_load_default(struct ms_scenario **sc_r, struct mocksrv_error *err);
void ms_scenario_destroy(struct ms_scenario **sc);

/* The standard listeners by name: smtp 3025 starttls, smtps 3465 implicit, submission 3587
 * required, lmtp 3024 none, pop3 3110 starttls, pop3s 3995 implicit, imap 3143 starttls,
 * imaps 3993 implicit. Returns 0 and fills *out (name borrowed) or MOCKSRV_ENOTFOUND. */
int ms_listener_standard(const char *name, struct ms_listener_conf *out);

/* A user by name or by one of its addresses (case-insensitive), or NULL. */
const struct ms_user *ms_scenario_find_user(const struct ms_scenario *sc, const char *name);
/* A listener of the scenario by exact name, or NULL. */
const struct ms_listener_conf *ms_scenario_find_listener(const struct ms_scenario *sc,
                                                         const char *name);

/* Parsing of scalar values, shared with the CLI options. Return 0 or MOCKSRV_EINVAL. */
int ms_parse_size(const char *s, size_t *out);         /* 4096, 4KiB, 4KB, 10MB, 1GiB, 10M */
int ms_parse_duration(const char *s, int64_t *ms_out); /* 250ms, 2s, 1m, 1h, 1.5s; bare = s */

#endif
