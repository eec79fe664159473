/*
 * fault.h - fault rules (FAULTS.md): the model the scenario loader fills, and the engine that
 * decides at each session event which actions fire.
 *
 * Every `when` key and counter of FAULTS.md 2, every modifier (probability, per, times, scope,
 * name) and every action. Who carries them out: content actions and closes session.c; split,
 * delay, bandwidth, tarpit and session-long cuts shape.c (through the plans session.c
 * installs); read shaping and TLS handshakes conn.c; tls faults session.c with conn.c. What
 * has no engine yet (IMAP payloads) is refused at load (ms_faults_check_supported) with its
 * position, never silently ignored.
 *
 * Invariants:
 *   - Rules are compiled once from the scenario; runtime state (counters) lives in the server
 *     (run counters) and in each session (session counters), never in the rules.
 *   - Every random value is draw(seed, rule, session ordinal, match ordinal, k): a pure
 *     function (ms_draw of base.h, SplitMix64), so a run replays from its seed whatever the
 *     concurrency.
 *   - At one event, rules are checked in file order; for each action key the first firing rule
 *     wins; counters advance for every rule that matched, fired or not.
 */
#ifndef MS_FAULT_H
#define MS_FAULT_H

#include <stdint.h>
#include <stddef.h>

#include "base.h"

enum ms_fault_at {
    MS_AT_ACCEPT,
    MS_AT_TLS,
    MS_AT_GREETING,
    MS_AT_COMMAND,
    MS_AT_DATA,
    MS_AT_WAITING,
    MS_AT_END,
};

enum ms_close_how { MS_CLOSE_NONE, MS_CLOSE_FIN, MS_CLOSE_RST, MS_CLOSE_HALF };

/* Where split offsets and close.after_bytes count from. */
enum ms_fault_from { MS_FROM_START, MS_FROM_END, MS_FROM_LITERAL };

/* How long shaping lasts (FAULTS.md 1 "Scope"). DEFAULT: per event (accept: session,
 * data: the payload, otherwise the one output unit). */
enum ms_fault_scope { MS_SCOPE_DEFAULT, MS_SCOPE_REPLY, MS_SCOPE_SESSION, MS_SCOPE_DURATION };

/* tls: what happens instead of (or during) a TLS handshake. */
enum ms_fault_tls {
    MS_FTLS_NONE,
    MS_FTLS_REFUSE,    /* the protocol's "TLS not available" */
    MS_FTLS_PLAINTEXT, /* go-ahead, then stay in plaintext */
    MS_FTLS_CLOSE,     /* go-ahead, then FIN */
    MS_FTLS_ALERT,     /* go-ahead, read the ClientHello, raw fatal handshake_failure, close */
    MS_FTLS_GARBAGE,   /* go-ahead, non-TLS bytes, close */
    MS_FTLS_STALL,     /* stop at tls_stall (a phase) */
};
enum ms_fault_tls_phase {
    MS_TLS_PHASE_AFTER_CLIENT_HELLO,
    MS_TLS_PHASE_MID_SERVER_FLIGHT, /* forward only tls_after_bytes of the server flight */
    MS_TLS_PHASE_BEFORE_FINISHED,
};

/* split: each piece its own send(). Exactly one of size / offsets / lines is given. */
struct ms_fault_split {
    uint64_t size_lo, size_hi; /* 0: no size; [lo, hi] drawn per piece */
    int64_t *offsets;          /* cut points counted from `from` (negative from end too) */
    size_t n_offsets;
    int lines; /* one write per line */
    enum ms_fault_from from;
    int64_t gap_lo, gap_hi; /* ms between pieces; default 1 ms */
    int layer_tls;          /* one TLS record per piece instead of TCP pieces */
};

/* read: client -> server shaping. */
struct ms_fault_read {
    int stop;           /* never drain: stop polling for input */
    uint64_t size;      /* bytes per recv (0: as much as fits) */
    int64_t gap_ms;     /* between recvs */
    uint64_t bandwidth; /* bytes per second (0: unlimited) */
    uint64_t window;    /* SO_RCVBUF (0: unchanged) */
};

/* One entry of `replies`: lines, or `pass` (the normal reply). */
struct ms_fault_reply {
    char **lines; /* NULL with pass */
    size_t n_lines;
    int pass;
};

struct ms_fault_rule {
    char *name; /* "faults[N]" when not given */
    int line, column;

    /* when */
    char **listeners;
    size_t n_listeners;
    unsigned protocols;              /* bits 1 << enum ms_proto; 0 = any */
    unsigned session_lo, session_hi; /* 0 = any; the rule's n-th matching connection */
    int encrypted;                   /* -1 any, 0 plaintext only, 1 encrypted only */
    char *user;
    enum ms_fault_at at; /* default: command when commands are given, else accept */
    char **commands;     /* upper-case verbs; "." = end of DATA; "UID FETCH" */
    size_t n_commands;
    char *args; /* glob on the rest of the line */
    unsigned *nth;
    size_t n_nth;
    unsigned every;
    unsigned after;
    int count_run;     /* counters per run instead of per session */
    uint64_t received; /* at: data only: fire once this many payload bytes were read */
    int has_received;
    int64_t for_ms; /* at: waiting only: fire after this much client silence */
    int has_for;

    /* modifiers */
    double probability; /* 1.0 = always */
    int per_session;    /* draw once per connection */
    unsigned times;     /* 0 = unlimited */

    /* actions; a NULL pointer / zero value means "not given" */
    struct ms_fault_reply reply; /* has_reply */
    int has_reply;
    struct ms_fault_reply *replies;
    size_t n_replies;
    char *raw;
    size_t raw_len;
    int has_raw;
    char *send;
    char *inject;
    char *append;
    char **hide;
    size_t n_hide;
    int64_t delay_lo, delay_hi; /* ms; has_delay */
    int has_delay;
    enum ms_close_how close_how;
    uint64_t close_after_bytes; /* has_close_after */
    int has_close_after;
    int64_t close_delay_ms;
    enum ms_fault_from close_from; /* after_bytes counts from here (start | literal) */

    /* shaping (has_split, bandwidth != 0, has_read, has_stall, has_tarpit) */
    struct ms_fault_split split;
    int has_split;
    uint64_t bandwidth; /* bytes per second */
    struct ms_fault_read read;
    int has_read;
    int64_t stall_ms; /* -1: forever (stall: true) */
    int has_stall;
    int64_t tarpit_stutter_ms, tarpit_for_ms;
    int has_tarpit;
    enum ms_fault_scope scope;
    int64_t scope_ms; /* MS_SCOPE_DURATION */

    /* tls faults */
    enum ms_fault_tls tls;
    enum ms_fault_tls_phase tls_stall;
    uint64_t tls_after_bytes; /* mid-server-flight; has_tls_after (default: half the flight) */
    int has_tls_after;

    /* the rule's definition as a canonical text: a reload keeps the counters of a rule whose
     * name and definition did not change (FAULTS.md 5) */
    char *source;
};

/* Run-wide counters of one rule (the only mutable part, allocated at bind: it lives with the
 * rules so that sessions started before a reload keep counting against their own rules). */
struct ms_fault_runstate {
    uint64_t matches;    /* count: run */
    uint64_t fired;      /* for times */
    size_t replies_used; /* position in `replies` with count: run */
    unsigned sessions;   /* connections the rule could apply to so far */
};

/* Which rules can apply at an event, built with the run state: per `at`, the rule numbers in
 * file order; at `command`, also per verb (by hash), so a command is checked only against the
 * rules that name it and those that name no command. */
struct ms_fault_verb {
    uint64_t hash; /* of the upper-case verb */
    uint32_t rule;
};

struct ms_fault_index {
    uint32_t *any[MS_AT_END + 1]; /* rules without a command filter, per at */
    size_t n_any[MS_AT_END + 1];
    struct ms_fault_verb *verbs[MS_AT_END + 1]; /* rules with commands, sorted by (hash, rule) */
    size_t n_verbs[MS_AT_END + 1];
};

struct ms_faults {
    struct ms_fault_rule *rules;
    size_t n_rules;
    struct ms_fault_runstate *run; /* n_rules entries once the server uses them */
    struct ms_fault_index *index;  /* built with run */
};

void ms_fault_index_free(struct ms_fault_index **ix);

/* FNV-1a of the ASCII upper-case form of verb. */
uint64_t ms_fault_verb_hash(const char *verb);

/* One session's counters of one rule. */
struct ms_fault_sess {
    unsigned ordinal; /* this connection's number among those the rule could apply to; 0: none */
    uint64_t matches;
    size_t replies_used;
    /* a threshold rule (received at data, for at waiting) matched in this payload or silence
     * period: it matches once per period (ms_fault_period_start clears it) */
    int threshold_seen;
};

/* The rule that won an action key at one event, with the coordinates of its draws. */
struct ms_fault_pick {
    const struct ms_fault_rule *rule;
    uint32_t index; /* the rule's number */
    uint64_t session, match;
};

/* What fired at one event: the first firing rule's value for each action key. Pointers are
 * into the rules (valid for the session). */
struct ms_fault_actions {
    const struct ms_fault_reply *reply; /* has_reply: replaces the normal reply */
    int has_reply;
    int pass;        /* a `pass` entry fired: the normal reply, explicitly */
    const char *raw; /* exact bytes instead of the reply */
    size_t raw_len;
    const char *send;
    const char *inject;
    const char *append;
    const char *const *hide;
    size_t n_hide;
    int64_t delay_ms;
    int has_delay;
    enum ms_close_how close_how;
    uint64_t close_after; /* UINT64_MAX: after the whole reply */
    int64_t close_delay_ms;
    enum ms_fault_from close_from;
    /* shaping: the winning rule of each key with its draw coordinates (rule NULL: none) */
    struct ms_fault_pick delay_pick, close_pick, split, bandwidth, read, stall, tarpit;
    enum ms_fault_tls tls;
    enum ms_fault_tls_phase tls_stall;
    uint64_t tls_after_bytes;
    int has_tls_after;
    int fired; /* number of rules that fired */
};

void ms_faults_fini(struct ms_faults *f);
const char *ms_fault_at_name(enum ms_fault_at at);

#endif
