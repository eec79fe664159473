/*
 * scenario.h - the scenario model (plain structs) and its YAML loader (scenario.c, libyaml).
 *
 * The loader turns a YAML 1.1 document into a struct ms_scenario, keeping the line and column
 * of every node so that every error names file:line:column and the key path, e.g.
 *   "tests/x.yaml:7:5: smtp.max_size: bad size \"10XB\" (use 4096, 4KiB, 10MB)".
 * Unknown keys are errors with a "did you mean" suggestion for near misses. The loader never
 * leaves a half-built scenario: on error it frees what it built and returns MOCKSRV_ESCENARIO.
 * Only scenario_yaml.c and scenario_state.c include <yaml.h>.
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
 *   date      ISO 8601 / YAML timestamp: 2024-05-01T09:00:00Z, 2024-05-01T11:00:00+02:00,
 *             2024-05-01 09:00:00 -5, 2024-05-01 (midnight UTC); no zone = UTC; fractions of a
 *             second are dropped. Years 0000..9999.
 * Not accepted: aliases (*x), several documents in one file, nesting deeper than 64 levels,
 * and the keys of later stages (the fault action tls), which are errors saying "not supported
 * yet by this version".
 *
 * Expectations (SPEC 3.5, FAULTS.md 2): a list of entries, each a mapping of an optional when
 * (listener, protocol, session, encrypted, user: the grammar and checks of a fault's when) and
 * at least one check: sequence (a pattern or a list; "..." = any run of commands), match
 * (exact | subsequence; needs sequence), enforce (needs sequence with match: exact), never (a
 * pattern or a list), no_pregreet, quit (booleans; false is no check), messages, sessions
 * (0 .. 2^32-1).
 *
 * Faults (FAULTS.md 2): a list of rules, each a mapping of name, when, the modifiers
 * (probability 0..1, per event|session, times >= 1) and at least one action. Strings and lists
 * of strings are interchangeable where a list is allowed (when.listener, when.protocol,
 * when.command, when.nth, hide, reply). Values as they land in struct ms_fault_rule:
 *   name        default "faults[N]", N the 0-based index
 *   listener    a listener of the scenario or a standard name (ms_listener_standard)
 *   protocol    bits 1 << MS_PROTO_*
 *   session     n | [n, m] | "n-m", 1 <= n <= m -> session_lo, session_hi (0: any)
 *   encrypted   -1 when not given
 *   at          given, else data with `received`, waiting with `for`, command with `command`,
 *               else accept; `received` needs at: data and `for` needs at: waiting
 *   command     upper-case, trimmed, inner blanks collapsed ("uid  fetch" -> "UID FETCH")
 *   nth every after   at most one of them; nth and every >= 1
 *   reply       a line, a list of lines (no CR or LF in a line), or the word pass
 *   replies     a list of: a line, a list of lines, or pass
 *   raw         exact bytes, any escape ("\n", "\0"), raw_len; not with reply or replies
 *   hide        upper-case
 *   delay       d or [d1, d2] with d1 <= d2 -> delay_lo, delay_hi (ms)
 *   close       fin | rst | half, or { how, after_bytes, delay }
 *
 * Mailboxes (users.NAME.mailboxes, SPEC 3.2): a mapping of mailbox name -> settings (or
 * nothing). Names are non-empty, without control characters, '*' or '%', without a leading or
 * trailing '/' or "//"; "inbox" in any case is INBOX (stored as "INBOX"), and two spellings of
 * it are a duplicate. Keys: uidvalidity (1 .. 2^32-1), uidnext (above every UID, 1 .. 2^32-1),
 * special_use (\All \Archive \Drafts \Flagged \Junk \Sent \Trash, RFC 6154; any case,
 * stored as spelled here), subscribed (default true), messages (a list). Each message has
 * exactly one of
 *   file: PATH       read at load, relative to the scenario's directory (for the embedded
 *                    default: among ms_embedded_files); LF-only files (no CR anywhere) are
 *                    converted to CRLF, any other file is taken byte for byte;
 *   raw: STRING      every LF not preceded by a CR becomes CRLF; nothing is added at the end
 *                    (a literal block "|" ends in one line end, "|-" in none);
 *   generate: { count: 1 .. 1000000, size: 64B .. limits.message_size, default 4KiB }
 * and optionally flags (system flags \Seen \Answered \Flagged \Deleted \Draft, any case;
 * \Recent is the server's; anything else is a keyword, an IMAP atom), date (INTERNALDATE),
 * uid (1 .. 2^32-2; given UIDs ascend strictly in file order, a message without one takes the
 * next; generate's uid is its first) and exact (true: no LF -> CRLF conversion). A file or raw
 * message, and a generate size, must not exceed limits.message_size. All the messages of a
 * scenario together: at most 10 million, and at most half of the smallest of physical memory,
 * RLIMIT_AS and the cgroup's memory.max in the estimate of scenario_check_memory (a generated
 * message: max(size, 1KiB) + size/8 + 1KiB + 256 bytes). A user without mailboxes
 * has an INBOX; a user whose mailboxes do not list INBOX gets one first.
 *
 * Defaults: version 1, no seed, hostname "localhost", listeners: only "smtp" on 3025 with
 * tls none (until TLS lands), no users; every other default is in the comments below.
 */
#ifndef MS_SCENARIO_H
#define MS_SCENARIO_H

#include <stdint.h>
#include <stddef.h>

#include "base.h"
#include "fault.h"

struct ms_pos {
    int line;   /* 1-based, 0 = unknown */
    int column; /* 1-based */
};

enum ms_proto { MS_PROTO_SMTP, MS_PROTO_LMTP, MS_PROTO_POP3, MS_PROTO_IMAP, MS_PROTO_SCRIPT };
enum ms_tls_mode { MS_TLS_NONE, MS_TLS_STARTTLS, MS_TLS_REQUIRED, MS_TLS_IMPLICIT };

const char *ms_proto_name(enum ms_proto p);       /* "smtp" ... */
const char *ms_tls_mode_name(enum ms_tls_mode m); /* "none" "starttls" "required" "implicit" */

/* One step of a scripted listener's dialogue (listeners.NAME.script, SPEC 3.4; the engine is
 * script.c). In the scenario a step is a mapping with exactly one key:
 *   send: "line" | [lines]  each line gets CRLF unless it already ends with LF; the lines go
 *                           out together as one reply (one output unit for the faults); no NUL
 *   raw: "bytes"            exact bytes, nothing added (a bare LF, half a line); non-empty
 *   expect: "glob"          reads one line and matches it whole (without its line end) with
 *                           ms_glob, * and ? only, ASCII case-insensitive like a fault's args;
 *                           no CR or LF in the glob
 *   delay: DURATION         0 .. 7d; output so far leaves first
 *   close: fin | rst | reset | half   (reset = rst); the last step of the script
 *   starttls: true          the server TLS handshake now (after a scripted go-ahead); at most
 *                           once, not on a tls: implicit listener
 * A script listener's tls is none or implicit (it has no STARTTLS command of its own). */
enum ms_script_op {
    MS_SCRIPT_SEND, /* send or raw */
    MS_SCRIPT_EXPECT,
    MS_SCRIPT_DELAY,
    MS_SCRIPT_CLOSE,
    MS_SCRIPT_STARTTLS,
};

struct ms_script_step {
    enum ms_script_op op;
    /* SEND: the bytes that go out (lines with their CRLF, or raw bytes; len counts, a raw
     * string may hold a NUL); EXPECT: the glob (NUL-terminated). bytes[len] is NUL. */
    char *bytes;
    size_t len;
    int raw;      /* SEND written as raw: */
    char **lines; /* SEND written as send: the lines as written, for --state-out */
    size_t n_lines;
    int64_t delay_ms;      /* DELAY */
    enum ms_close_how how; /* CLOSE: MS_CLOSE_FIN, MS_CLOSE_RST or MS_CLOSE_HALF */
    struct ms_pos pos;     /* of the step's key */
};

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
    /* SO_RCVBUF of the listening socket, set before listen() so that even the first SYN-ACK
     * advertises a small window (FAULTS.md 6, read.window per listener); 0: the default */
    size_t window;
    /* protocol script only (required there, refused elsewhere): the steps in order, at least
     * one; NULL / 0 for every other protocol */
    struct ms_script_step *script;
    size_t n_script;
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
/* One entry of users.*.mailboxes.*.messages (SPEC 3.2). */
enum ms_message_source { MS_MSG_FILE, MS_MSG_RAW, MS_MSG_GENERATE };

struct ms_message_conf {
    enum ms_message_source source;
    /* MS_MSG_FILE and MS_MSG_RAW: the exact message bytes, read at load time. A file with
     * LF-only line ends (no CR anywhere) is converted to CRLF; otherwise bytes are exact. A raw
     * string always gets CRLF line ends (YAML strings carry LF). bytes[len] is NUL. */
    char *bytes;
    size_t len;
    char *file; /* MS_MSG_FILE: the path as written in the scenario */
    /* MS_MSG_GENERATE: count messages of about size bytes each, from the seed */
    size_t gen_count;
    size_t gen_size;
    /* all kinds (for generate: applied to every generated message) */
    unsigned flags;  /* MS_FLAG_* of store.h */
    char **keywords; /* non-system flags, e.g. "$Label1" */
    size_t n_keywords;
    int64_t date; /* INTERNALDATE, seconds since the epoch; 0 = not given */
    uint32_t uid; /* 0 = assigned ascending (for generate: the first UID) */
    struct ms_pos pos;
    /* additions */
    int exact;             /* `exact: true`: no LF -> CRLF conversion of a file or raw */
    struct ms_pos src_pos; /* of the file, raw or generate value (size checks, messages) */
    struct ms_pos gen_pos; /* of the generate key (the memory check) */
};

struct ms_mailbox_conf {
    char *name;           /* "INBOX", "Archive/2023" */
    uint32_t uidvalidity; /* 0 = not given */
    char *special_use;    /* "\\Sent" ..., or NULL */
    int subscribed;       /* default 1 */
    struct ms_message_conf *messages;
    size_t n_messages;
    struct ms_pos pos;
    /* additions */
    /* 0 = not given; else above every UID of the messages. The store sets the mailbox's uidnext
     * to at least this, so that --state-out keeps it across a round trip. */
    uint32_t uidnext;
};

struct ms_user {
    char *name;
    char *password;
    char **addresses;
    size_t n_addresses;
    struct ms_mailbox_conf *mailboxes; /* in file order; INBOX exists even when not listed */
    size_t n_mailboxes;
    struct ms_pos pos;
};

/* expect: (SPEC 3.5, FAULTS.md 2): what the client must do. One entry = an optional `when`
 * (listener, protocol, session, encrypted, user: the grammar of a fault's when) and at least
 * one check. The engine is expect.c. */
enum ms_expect_match { MS_EXPECT_EXACT, MS_EXPECT_SUBSEQUENCE };

struct ms_expect_conf {
    int line, column; /* of the entry */
    /* when: a session matches on listener/protocol/session at its start; encrypted and user
     * are checked at each command (a command counts only while they hold) */
    char **listeners; /* names of the scenario's listeners (or standard ones) */
    size_t n_listeners;
    unsigned protocols;              /* bits 1 << enum ms_proto; 0 = any */
    unsigned session_lo, session_hi; /* 0 = any; the entry's n-th matching connection */
    int encrypted;                   /* -1 any, 0 plaintext only, 1 encrypted only */
    char *user;                      /* NULL = any */
    /* checks (at least one) */
    char **sequence; /* globs, "..." = any run of commands; NULL = no sequence check */
    size_t n_sequence;
    enum ms_expect_match match; /* default exact */
    int enforce;                /* out-of-sequence commands get the protocol's error */
    char **never;               /* globs no command may match */
    size_t n_never;
    int no_pregreet;   /* nothing from the client before the greeting was sent */
    int quit;          /* every matching session ended with QUIT / LOGOUT */
    uint64_t messages; /* exactly this many messages received (has_messages) */
    int has_messages;
    uint64_t sessions; /* exactly this many sessions matched the when (has_sessions) */
    int has_sessions;
};

/* Run-wide counters of one entry, kept with the entries (allocated by the engine at first use,
 * like the faults' run state), so sessions started before a reload count against their own
 * scenario's entries. */
struct ms_expect_runstate {
    unsigned ordinals; /* connections that matched listener/protocol so far (session: n) */
    uint64_t matched;  /* sessions that matched the whole when (sessions:) */
    uint64_t messages; /* messages received in matching sessions (messages: with a when) */
};

struct ms_expects {
    struct ms_expect_conf *entries;
    size_t n_entries;
    struct ms_expect_runstate *run; /* n_entries entries once a session used them */
    int checked;                    /* the run-wide checks ran (at stop) */
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

    /* faults: (FAULTS.md), in file order. Not written back by ms_scenario_format_state. */
    struct ms_faults faults;
    /* expect: (SPEC 3.5), in file order. Not written back by ms_scenario_format_state either
     * (it writes the settings and mailboxes, not the run's checks). */
    struct ms_expects expect;
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

/* Files embedded in the binary at build time by cmake/embed.cmake (the EMBED_INPUTS of
 * CMakeLists.txt), named by their path below fixtures/: "scenarios/default.yaml",
 * "mail/sample-plain.eml". Read-only; data[len] is a NUL not counted in len. */
struct ms_embedded_file {
    const char *name;
    const unsigned char *data;
    size_t len;
};
extern const struct ms_embedded_file ms_embedded_files[];
extern const size_t ms_embedded_files_count;
/* The embedded file of that exact name, or NULL. */
const struct ms_embedded_file *ms_embedded_find(const char *name);

/* Like ms_scenario_load_string, but `file:` paths resolve among ms_embedded_files, relative to
 * embedded_dir (the directory below fixtures/ the scenario came from, e.g. "scenarios", so
 * "../mail/x.eml" is "mail/x.eml"). ms_scenario_load_default is this with the embedded
 * "scenarios/default.yaml". */
int ms_scenario_load_string_embedded(const char *yaml, size_t len, const char *name,
                                     const char *embedded_dir, struct ms_scenario **sc_r,
                                     struct mocksrv_error *err);

struct ms_store;

/* Formats the state for --state-out (SPEC 2): a complete scenario document - the settings of
 * sc (version, seed, hostname, listeners with their scripts, tls, smtp, pop3, imap, limits,
 * users with password and addresses) with users.*.mailboxes taken from the store: every
 * account, every mailbox with
 * uidvalidity, uidnext, special_use, subscribed, and every message with its uid, flags and
 * keywords (\Recent left out: it belongs to sessions), date (UTC) and bytes. Bytes that are
 * printable ASCII with CRLF line ends and no blank before a line end go inline as a `raw`
 * literal block; any other message is written byte for byte to
 * "<out_path>.d/<user>-<mailbox>-<uid>.eml" (names escaped: characters other than letters,
 * digits, '.', '@' and '+' become _XX) and referenced by a `file:` path relative to out_path's
 * directory, with `exact: true` when the loader would otherwise convert its line ends.
 * The document is appended to yaml_out; the caller writes it to out_path (this function does
 * not). Relative tls paths are made absolute. out_path may be NULL when no message needs a
 * file. Loading the document with ms_scenario_load_file(out_path) and building a store from it
 * gives the same accounts, mailboxes and messages.
 * Returns MOCKSRV_OK; MOCKSRV_EIO (err names the file and the OS reason) when a message file
 * cannot be written; MOCKSRV_EINVAL when a message needs a file and out_path is NULL, or a
 * name in the store cannot be written as YAML (not UTF-8). On error yaml_out is unchanged
 * (message files already written stay). Call it from the thread that owns the store. */
int ms_scenario_format_state(const struct ms_scenario *sc, const struct ms_store *store,
                             const char *out_path, struct ms_buf *yaml_out,
                             struct mocksrv_error *err);

/* Parsing of scalar values, shared with the CLI options. Return 0 or MOCKSRV_EINVAL. */
int ms_parse_size(const char *s, size_t *out);         /* 4096, 4KiB, 4KB, 10MB, 1GiB, 10M */
int ms_parse_duration(const char *s, int64_t *ms_out); /* 250ms, 2s, 1m, 1h, 1.5s; bare = s */
/* The date grammar above, to seconds since the epoch (UTC). */
int ms_parse_date(const char *s, int64_t *out);

#endif
