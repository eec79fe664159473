/*
 * expect.c - expectations: the sequence matcher and the session hooks (see expect.h, SPEC 3.5,
 * FAULTS.md 2).
 *
 * Per session, each entry of the scenario's `expect:` gets a small state: whether it applies
 * (listener, protocol and the entry's n-th matching connection, decided at accept), whether its
 * per-command conditions (encrypted, user) held at least once (the session then "matched" the
 * entry, for quit:, sessions: and messages:), the sequence's live positions and the commands it
 * saw (for the report). A command counts for an entry only while the entry's encrypted/user
 * conditions hold, so `{ when: { encrypted: false }, never: ["AUTH *"] }` looks at the
 * plaintext part of a STARTTLS session only (FAULTS.md example C).
 *
 * Not here: the loader (scenario_expect.c), the protocol replies (the engines), the event and
 * stderr line of a failure (ms_server_expect_fail in server.c).
 *
 * Invariants:
 *   - The matcher never allocates per command; a pattern match allocates only for the "pattern
 *     followed by a blank" form (commands are rare, patterns short).
 *   - What a report quotes from the client is printable ASCII ('?' for anything else) and cut
 *     to a bounded length, so a stderr line stays one readable line.
 */
#include "expect.h"

#include <stdio.h>
#include <stdlib.h>

#include "server.h"

#define EXPECT_QUOTE_MAX 120        /* bytes of one command quoted in a report */
#define EXPECT_SEEN_MAX 2000        /* bytes of the command list kept for a report */
#define EXPECT_PREGREET_PEEK 64     /* bytes of early input quoted */
#define EXPECT_PREGREET_SLACK_MS 50 /* shaped greeting: input younger than this is an answer */

/* ---- the matcher ---- */

static int
expect_is_dots(const char *pattern)
{
    return strcmp(pattern, "...") == 0;
}

int
ms_expect_pattern_matches(const char *pattern, const char *line)
{
    if (ms_glob(pattern, line, 1))
        return 1;
    if (!strchr(line, ' '))
        return 0;
    /* the pattern names the line's first words: "EHLO" for "EHLO client.example" */
    char *longer = ms_asprintf("%s *", pattern);
    int ok = ms_glob(longer, line, 1);
    free(longer);
    return ok;
}

/* Positions reachable without a command: past every live "...". */
static void
expect_seq_close(const struct ms_expect_seq *q, unsigned char *set)
{
    for (size_t i = 0; i < q->n; i++)
        if (set[i] && expect_is_dots(q->pattern[i]))
            set[i + 1] = 1;
}

/* q->next = the positions after line; returns 1 when one is live. */
static int
expect_seq_advance(struct ms_expect_seq *q, const char *line)
{
    int any = 0;
    memset(q->next, 0, q->n + 1);
    for (size_t i = 0; i < q->n; i++) {
        if (!q->live[i])
            continue;
        if (expect_is_dots(q->pattern[i]) || q->subsequence)
            q->next[i] = 1; /* "..." takes it, or a gap of the subsequence */
        if (!expect_is_dots(q->pattern[i]) && ms_expect_pattern_matches(q->pattern[i], line))
            q->next[i + 1] = 1;
    }
    if (q->subsequence && q->live[q->n])
        q->next[q->n] = 1;
    expect_seq_close(q, q->next);
    for (size_t i = 0; i <= q->n; i++)
        any |= q->next[i];
    return any;
}

void
ms_expect_seq_init(struct ms_expect_seq *q, char *const *pattern, size_t n, int subsequence)
{
    memset(q, 0, sizeof *q);
    q->pattern = pattern;
    q->n = n;
    q->subsequence = subsequence;
    q->live = ms_calloc(n + 1, 1);
    q->next = ms_calloc(n + 1, 1);
    q->live[0] = 1;
    expect_seq_close(q, q->live);
}

void
ms_expect_seq_fini(struct ms_expect_seq *q)
{
    free(q->live);
    free(q->next);
    q->live = q->next = NULL;
}

int
ms_expect_seq_accepts(struct ms_expect_seq *q, const char *line)
{
    return !q->dead && expect_seq_advance(q, line);
}

int
ms_expect_seq_step(struct ms_expect_seq *q, const char *line)
{
    if (q->dead)
        return 0;
    if (!expect_seq_advance(q, line))
        q->dead = 1;
    unsigned char *t = q->live;
    q->live = q->next;
    q->next = t;
    return !q->dead;
}

int
ms_expect_seq_complete(const struct ms_expect_seq *q)
{
    return !q->dead && q->live[q->n];
}

void
ms_expect_seq_wanted(const struct ms_expect_seq *q, struct ms_buf *out)
{
    size_t count = 0;
    if (q->subsequence) {
        /* the first pattern not matched yet: after the furthest live position */
        size_t far = 0;
        for (size_t i = 0; i <= q->n; i++)
            if (q->live[i])
                far = i;
        for (; far < q->n && expect_is_dots(q->pattern[far]); far++) {
        }
        ms_buf_puts(out, far < q->n ? q->pattern[far] : "nothing more");
        return;
    }
    for (size_t i = 0; i < q->n; i++) {
        if (!q->live[i] || expect_is_dots(q->pattern[i]))
            continue;
        int dup = 0;
        for (size_t k = 0; k < i && !dup; k++)
            dup = q->live[k] && strcmp(q->pattern[k], q->pattern[i]) == 0;
        if (dup)
            continue;
        ms_buf_printf(out, "%s%s", count ? " or " : "", q->pattern[i]);
        count++;
    }
    if (q->live[q->n])
        ms_buf_puts(out, count ? " or nothing more" : "nothing more");
    else if (!count)
        ms_buf_puts(out, "nothing (the sequence was already broken)");
}

/* ---- per-session state ---- */

struct expect_entry {
    int applies; /* listener, protocol and session: n hold for this connection */
    int matched; /* the encrypted/user conditions held at least once */
    int has_seq;
    struct ms_expect_seq seq;
    int seq_reported;
    int never_reported;
    struct ms_buf seen; /* the commands of the sequence so far, for reports */
    int seen_cut;
    size_t n_seen;
};

struct ms_expect_session {
    struct ms_scenario *sc; /* the scenario the session started with */
    unsigned first_msg;     /* the server's last message id at accept */
    size_t n;
    struct expect_entry e[];
};

/* The conditions checked per command: encrypted and user. */
static int
expect_conditions_hold(const struct ms_expect_conf *c, const struct ms_session *s)
{
    if (c->encrypted >= 0 && c->encrypted != (s->tls != 0))
        return 0;
    return !c->user || (s->auth_user && strcmp(c->user, s->auth_user) == 0);
}

static int
expect_has_when(const struct ms_expect_conf *c)
{
    return c->n_listeners || c->protocols || c->session_lo || c->encrypted >= 0 || c->user;
}

/* Client text for a report: printable ASCII, '?' for other bytes, cut with "...". */
static void
expect_quote(struct ms_buf *out, const char *p, size_t n)
{
    size_t k = MS_MIN(n, (size_t)EXPECT_QUOTE_MAX);
    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)p[i];
        ms_buf_putc(out, c >= 0x20 && c < 0x7f ? (char)c : '?');
    }
    if (k < n)
        ms_buf_puts(out, "...");
}

static void
expect_fail(struct ms_session *s, size_t index, const char *check, const struct ms_buf *seen)
{
    char name[64];
    snprintf(name, sizeof name, "expect[%zu].%s", index, check);
    ms_server_expect_fail(s->srv, s, name, seen->data ? seen->data : "");
}

static void
expect_commands(struct ms_buf *out, const struct expect_entry *x)
{
    ms_buf_puts(out, "; commands: ");
    if (!x->n_seen)
        ms_buf_puts(out, "none");
    else
        ms_buf_append(out, x->seen.data, x->seen.len);
    if (x->seen_cut)
        ms_buf_puts(out, ", ...");
}

static void
expect_remember(struct expect_entry *x, const char *line, size_t len)
{
    if (x->seen.len >= EXPECT_SEEN_MAX) {
        x->seen_cut = 1;
        return;
    }
    if (x->n_seen++)
        ms_buf_puts(&x->seen, ", ");
    expect_quote(&x->seen, line, len);
}

void
ms_expect_session_start(struct ms_session *s)
{
    struct ms_scenario *sc = s->faults_sc; /* the session's: kept alive while it runs */
    size_t n = sc->expect.n_entries;
    s->expect = NULL;
    if (!n)
        return;
    if (!sc->expect.run)
        sc->expect.run = ms_calloc(n, sizeof *sc->expect.run);
    struct ms_expect_session *xs = ms_calloc(1, sizeof *xs + n * sizeof xs->e[0]);
    xs->sc = sc;
    xs->first_msg = s->srv->next_msg_id;
    xs->n = n;
    for (size_t i = 0; i < n; i++) {
        const struct ms_expect_conf *c = &sc->expect.entries[i];
        struct expect_entry *x = &xs->e[i];
        if (!ms_session_selected(s, c->listeners, c->n_listeners, c->protocols))
            continue;
        /* session: n is the entry's n-th connection among those it could apply to */
        unsigned ord = ++sc->expect.run[i].ordinals;
        if (c->session_lo && (ord < c->session_lo || ord > c->session_hi))
            continue;
        x->applies = 1;
        if (c->sequence) {
            x->has_seq = 1;
            ms_expect_seq_init(&x->seq, c->sequence, c->n_sequence,
                               c->match == MS_EXPECT_SUBSEQUENCE);
        }
    }
    s->expect = xs;
}

int
ms_expect_command(struct ms_session *s, const char *line, size_t len)
{
    struct ms_expect_session *xs = s->expect;
    if (!xs)
        return 0;
    /* the line as a C string: a NUL byte (refused by the engines anyway) becomes '?' */
    char *text = ms_strndup(line, len);
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\0')
            text[i] = '?';
    struct ms_buf msg = {0};

    /* enforce first: a refused command is not run, so no sequence takes it */
    int refused = 0;
    for (size_t i = 0; i < xs->n; i++) {
        const struct ms_expect_conf *c = &xs->sc->expect.entries[i];
        struct expect_entry *x = &xs->e[i];
        if (!x->applies || !c->enforce || !x->has_seq || !expect_conditions_hold(c, s))
            continue;
        if (ms_expect_seq_accepts(&x->seq, text))
            continue;
        refused = 1;
        ms_buf_clear(&msg);
        ms_buf_puts(&msg, "got ");
        expect_quote(&msg, text, len);
        ms_buf_puts(&msg, " where ");
        ms_expect_seq_wanted(&x->seq, &msg);
        ms_buf_puts(&msg, " was expected (refused: enforce)");
        expect_commands(&msg, x);
        expect_fail(s, i, "sequence", &msg);
    }

    for (size_t i = 0; i < xs->n; i++) {
        const struct ms_expect_conf *c = &xs->sc->expect.entries[i];
        struct expect_entry *x = &xs->e[i];
        if (!x->applies || !expect_conditions_hold(c, s))
            continue;
        x->matched = 1;
        for (size_t k = 0; k < c->n_never && !x->never_reported; k++) {
            if (!ms_expect_pattern_matches(c->never[k], text))
                continue;
            x->never_reported = 1;
            ms_buf_clear(&msg);
            ms_buf_puts(&msg, "got ");
            expect_quote(&msg, text, len);
            ms_buf_printf(&msg, ", which matches never pattern \"%s\"", c->never[k]);
            if (c->encrypted == 0)
                ms_buf_puts(&msg, " (in plaintext)");
            expect_fail(s, i, "never", &msg);
        }
        if (!x->has_seq || refused)
            continue;
        ms_buf_clear(&msg);
        if (!x->seq.dead)
            ms_expect_seq_wanted(&x->seq, &msg); /* what was wanted before this command */
        struct ms_buf wanted = msg;
        memset(&msg, 0, sizeof msg);
        expect_remember(x, text, len);
        if (!ms_expect_seq_step(&x->seq, text) && !x->seq_reported) {
            /* reported once, at the first command that breaks it (FAULTS.md 2) */
            x->seq_reported = 1;
            ms_buf_puts(&msg, "got ");
            expect_quote(&msg, text, len);
            ms_buf_printf(&msg, " where %s was expected", wanted.data ? wanted.data : "?");
            expect_commands(&msg, x);
            expect_fail(s, i, "sequence", &msg);
        }
        ms_buf_fini(&wanted);
    }
    ms_buf_fini(&msg);
    free(text);
    return refused;
}

void
ms_expect_greeting(struct ms_session *s)
{
    struct ms_expect_session *xs = s->expect;
    if (!xs || s->fault_closed || s->conn.failed)
        return;
    int wanted = 0;
    for (size_t i = 0; i < xs->n; i++)
        wanted |= xs->e[i].applies && xs->sc->expect.entries[i].no_pregreet &&
                  expect_conditions_hold(&xs->sc->expect.entries[i], s);
    if (!wanted)
        return;
    char early[EXPECT_PREGREET_PEEK];
    size_t n;
    if (s->conn.out.len > 0) {
        /* The greeting is still ours: what the client sent is there before any of it left.
         * Looking after the send instead would race with a quick client, which on loopback
         * often runs (and answers) before send() even returns to us. */
        n = ms_conn_input_pending(&s->conn, early, sizeof early);
        if (ms_conn_flush(&s->conn, ms_session_deadline(s)) != MOCKSRV_OK)
            return;
    } else {
        /* A shaped greeting (split, tarpit, bandwidth) has already left, piece by piece.
         * Input that arrived in the last EXPECT_PREGREET_SLACK_MS may be the answer to its
         * last piece; older input came while the client was still waiting for it
         * (Postfix postscreen's pregreet test, FAULTS.md example G). */
        n = ms_conn_input_pending(&s->conn, early, sizeof early);
        int64_t age = n ? ms_conn_input_age(&s->conn) : -1;
        if (age >= 0 && age < EXPECT_PREGREET_SLACK_MS)
            n = 0;
    }
    if (!n)
        return;
    struct ms_buf msg = {0};
    for (size_t i = 0; i < xs->n; i++) {
        const struct ms_expect_conf *c = &xs->sc->expect.entries[i];
        if (!xs->e[i].applies || !c->no_pregreet || !expect_conditions_hold(c, s))
            continue;
        xs->e[i].matched = 1;
        ms_buf_clear(&msg);
        if (s->conn.tls) {
            ms_buf_printf(&msg,
                          "the client sent %zu%s bytes (TLS records) before the greeting "
                          "was complete",
                          n, n == sizeof early ? "+" : "");
        } else {
            ms_buf_puts(&msg, "the client sent \"");
            expect_quote(&msg, early, n);
            ms_buf_printf(&msg, "\"%s before the greeting was complete",
                          n == sizeof early ? " (and more)" : "");
        }
        expect_fail(s, i, "no_pregreet", &msg);
    }
    ms_buf_fini(&msg);
}

/* Messages received in this session that fit the entry's encrypted/user conditions. */
static uint64_t
expect_session_messages(const struct ms_expect_session *xs, const struct ms_expect_conf *c,
                        struct ms_session *s)
{
    struct ms_server *srv = s->srv;
    uint64_t count = 0;
    pthread_mutex_lock(&srv->lock);
    for (size_t k = srv->n_msgs; k > 0 && srv->msgs[k - 1]->id > xs->first_msg; k--) {
        const struct ms_msg *m = srv->msgs[k - 1];
        if (m->session != s->id)
            continue;
        if (c->encrypted >= 0 && c->encrypted != (m->tls != 0))
            continue;
        if (c->user && !(m->auth_user && strcmp(c->user, m->auth_user) == 0))
            continue;
        count++;
    }
    pthread_mutex_unlock(&srv->lock);
    return count;
}

void
ms_expect_session_end(struct ms_session *s, const char *reason)
{
    struct ms_expect_session *xs = s->expect;
    if (!xs)
        return;
    struct ms_buf msg = {0};
    for (size_t i = 0; i < xs->n; i++) {
        const struct ms_expect_conf *c = &xs->sc->expect.entries[i];
        struct expect_entry *x = &xs->e[i];
        if (!x->applies)
            continue;
        if (expect_conditions_hold(c, s))
            x->matched = 1;
        if (x->matched) {
            struct ms_expect_runstate *run = &xs->sc->expect.run[i];
            run->matched++;
            if (c->has_messages && expect_has_when(c))
                run->messages += expect_session_messages(xs, c, s);
            if (x->has_seq && !x->seq_reported && !ms_expect_seq_complete(&x->seq)) {
                ms_buf_clear(&msg);
                ms_buf_puts(&msg, "the session ended where ");
                ms_expect_seq_wanted(&x->seq, &msg);
                ms_buf_puts(&msg, " was expected");
                expect_commands(&msg, x);
                expect_fail(s, i, "sequence", &msg);
            }
            if (c->quit && s->close_reason != MS_CLOSE_QUIT) {
                ms_buf_clear(&msg);
                ms_buf_printf(&msg, "the session ended without %s (%s)",
                              s->listener->protocol == MS_PROTO_IMAP ? "LOGOUT" : "QUIT", reason);
                expect_fail(s, i, "quit", &msg);
            }
        }
        if (x->has_seq)
            ms_expect_seq_fini(&x->seq);
        ms_buf_fini(&x->seen);
    }
    ms_buf_fini(&msg);
    free(xs);
    s->expect = NULL;
}

/* A run-wide count check: "expect[I].sessions: 2 sessions, expected 1". */
static void
expect_count(struct ms_server *srv, size_t i, const char *noun, uint64_t got, uint64_t want)
{
    char seen[128], name[64];
    if (got == want)
        return;
    snprintf(name, sizeof name, "expect[%zu].%ss", i, noun);
    snprintf(seen, sizeof seen, "%llu %s%s, expected %llu", (unsigned long long)got, noun,
             got == 1 ? "" : "s", (unsigned long long)want);
    ms_server_expect_fail(srv, NULL, name, seen);
}

void
ms_expect_run_end(struct ms_server *srv)
{
    struct ms_scenario *sc = srv->sc;
    if (!sc || sc->expect.checked)
        return;
    sc->expect.checked = 1;
    for (size_t i = 0; i < sc->expect.n_entries; i++) {
        const struct ms_expect_conf *c = &sc->expect.entries[i];
        const struct ms_expect_runstate *run = sc->expect.run ? &sc->expect.run[i] : NULL;
        if (c->has_sessions)
            expect_count(srv, i, "session", run ? run->matched : 0, c->sessions);
        if (c->has_messages) {
            /* without a when: every message of the run, reloads included */
            uint64_t got;
            if (expect_has_when(c)) {
                got = run ? run->messages : 0;
            } else {
                pthread_mutex_lock(&srv->lock);
                got = srv->n_msgs;
                pthread_mutex_unlock(&srv->lock);
            }
            expect_count(srv, i, "message", got, c->messages);
        }
    }
}
