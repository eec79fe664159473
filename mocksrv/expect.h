/*
 * expect.h - expectations (SPEC 3.5, FAULTS.md 2): checking what the client does against the
 * scenario's `expect:` entries (struct ms_expects of scenario.h, filled by the loader).
 *
 * Two parts. The sequence matcher is pure (no session, no I/O): a set of live positions in a
 * pattern of globs and "..." (an NFA), stepped one command line at a time, so a sequence is
 * known to be broken at the first command that no live position accepts. The session hooks
 * call it from the protocol engines and the server, and report every unmet expectation through
 * ms_server_expect_fail (an expect.fail event, a stderr line, the exit status 3).
 *
 * Not here: parsing (scenario_expect.c), the protocol's error reply for an enforced sequence (each
 * engine sends its own: SMTP 503 5.5.1, POP3 -ERR, IMAP BAD).
 *
 * Invariants:
 *   - A session checks the entries of the scenario it started with (a reload never changes a
 *     running session's expectations); run-wide counters live with those entries.
 *   - Each check reports at most once per session (never, sequence), except an enforced
 *     sequence, which reports every command it refuses.
 *   - Run-wide checks (messages, sessions) run once, when the server stops, after every
 *     session ended.
 */
#ifndef MS_EXPECT_H
#define MS_EXPECT_H

#include <stddef.h>

#include "base.h"

struct ms_session;
struct ms_server;

/* ---- the matcher ---- */

/* 1 when a pattern matches a command line (without its line end; IMAP: without the tag):
 * ms_glob with * and ?, ASCII case-insensitive, against the whole line or the line up to a
 * blank ("EHLO" matches "EHLO client.example", "UID FETCH" matches "UID FETCH 1:* FLAGS").
 * "..." is not a pattern here: the sequence matcher gives it its meaning. */
int ms_expect_pattern_matches(const char *pattern, const char *line);

/* The state of one sequence: which pattern positions the commands so far can have reached.
 * Exact: the command list must match the whole pattern; "..." matches any run of commands
 * (none included). Subsequence: the patterns must appear in order, anything between. */
struct ms_expect_seq {
    char *const *pattern; /* borrowed from the scenario */
    size_t n;
    int subsequence;
    unsigned char *live; /* n + 1 flags; live[n]: the whole pattern matched */
    unsigned char *next; /* scratch of the same size */
    int dead;            /* no position is live: the sequence cannot match any more */
};

void ms_expect_seq_init(struct ms_expect_seq *q, char *const *pattern, size_t n, int subsequence);
void ms_expect_seq_fini(struct ms_expect_seq *q);
/* 1 when line can be the next command (the sequence stays matchable); q is unchanged. */
int ms_expect_seq_accepts(struct ms_expect_seq *q, const char *line);
/* Takes line as the next command. Returns 1 while the sequence stays matchable, 0 once it is
 * dead (and from then on). */
int ms_expect_seq_step(struct ms_expect_seq *q, const char *line);
/* 1 when the commands so far match the whole pattern. */
int ms_expect_seq_complete(const struct ms_expect_seq *q);
/* Appends what may come next: "STARTTLS", "EHLO or HELO", "QUIT or nothing more", "nothing
 * more"; for a subsequence, the next pattern still missing. */
void ms_expect_seq_wanted(const struct ms_expect_seq *q, struct ms_buf *out);

/* ---- the session and server hooks ---- */

/* At accept, after the fault state: picks the entries whose listener/protocol/session match
 * (the entry's n-th matching connection) from the server's current scenario. */
void ms_expect_session_start(struct ms_session *s);
/* A command line as received (len bytes, no line end; not SASL continuation lines, not
 * payload). Returns 1 when an entry with enforce: true refuses it: the engine sends its
 * protocol's error and does not run the command. */
int ms_expect_command(struct ms_session *s, const char *line, size_t len);
/* Right after the engine composed its greeting: with a no_pregreet entry that applies, flushes
 * the greeting and reports input the client sent before it was complete. */
void ms_expect_greeting(struct ms_session *s);
/* At the end of a session, before its session.close event (reason: its close reason's name):
 * the per-session checks (sequence complete, quit), the run counters; frees the state. */
void ms_expect_session_end(struct ms_session *s, const char *reason);
/* When the server stops, after every session ended: messages and sessions. Runs once. */
void ms_expect_run_end(struct ms_server *srv);

#endif
