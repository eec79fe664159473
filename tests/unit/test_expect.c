/*
 * test_expect.c - expectations (expect.c, and the expect: part of the loader, scenario_expect.c):
 * the pattern match (globs, case, "the line's first words"), the sequence matcher (exact and
 * subsequence, "...", early failure exactly at the first command that cannot match any more, what
 * is wanted next), and the loader (every key into its field, every error with its exact
 * line:column).
 *
 * The session hooks are covered by tests/interop/test_expect.py against a real server.
 * Table-driven cases print "got X, want Y".
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expect.h"
#include "scenario.h"

/* ---- patterns ---- */

static const struct {
    const char *pattern, *line;
    int want;
} pattern_cases[] = {
    {"EHLO", "EHLO client.example", 1},
    {"EHLO", "EHLO", 1},
    {"EHLO", "EHLOX client.example", 0},
    {"EHLO", "HELO client.example", 0},
    {"ehlo", "EHLO client.example", 1}, /* case-insensitive */
    {"EHLO", "ehlo client.example", 1},
    {"QUIT", "QUIT", 1},
    {"QUIT", "QUITE", 0},
    {"MAIL FROM:*", "MAIL FROM:<a@b> SIZE=10", 1},
    {"MAIL FROM:*", "mail from:<a@b>", 1},
    {"MAIL FROM:*", "RCPT TO:<a@b>", 0},
    {"RCPT TO:<?@b>", "RCPT TO:<a@b>", 1},
    {"RCPT TO:<?@b>", "RCPT TO:<aa@b>", 0},
    {"RCPT TO:<a@b>", "RCPT TO:<a@b> NOTIFY=NEVER", 1}, /* the line's first words */
    {"AUTH *", "AUTH PLAIN AGFsaWNlAHNlY3JldA==", 1},
    {"AUTH *", "AUTH", 0},
    {"AUTH PLAIN", "AUTH LOGIN", 0},
    {"UID FETCH", "UID FETCH 1:* (FLAGS)", 1},
    {"UID FETCH", "UID STORE 1 +FLAGS (\\Seen)", 0},
    {"*", "anything at all", 1},
    {"[x]", "[x]", 1}, /* brackets are literal */
    {"[x]", "x", 0},
};

START_TEST(test_pattern)
{
    int got = ms_expect_pattern_matches(pattern_cases[_i].pattern, pattern_cases[_i].line);
    ck_assert_msg(got == pattern_cases[_i].want, "pattern \"%s\" on \"%s\": got %d, want %d",
                  pattern_cases[_i].pattern, pattern_cases[_i].line, got, pattern_cases[_i].want);
}
END_TEST

/* ---- the sequence matcher ---- */

#define MAX_ITEMS 16

struct seq_case {
    const char *name;
    const char *pattern[MAX_ITEMS]; /* NULL-terminated */
    int subsequence;
    const char *commands[MAX_ITEMS]; /* NULL-terminated */
    int dies_at;                     /* index of the first command that breaks it, or -1 */
    int complete;                    /* matched in full after every command */
};

static const char *const example_a[MAX_ITEMS] = {
    "EHLO",        "STARTTLS",  "EHLO",      "AUTH *",    "...", "AUTH *",
    "MAIL FROM:*", "RCPT TO:*", "RCPT TO:*", "RCPT TO:*", "...", "QUIT"};

static const struct seq_case seq_cases[] = {
    {"exact, met", {"EHLO", "QUIT"}, 0, {"EHLO a", "QUIT"}, -1, 1},
    {"exact, incomplete", {"EHLO", "QUIT"}, 0, {"EHLO a"}, -1, 0},
    {"exact, nothing sent", {"EHLO", "QUIT"}, 0, {NULL}, -1, 0},
    {"exact, wrong second", {"EHLO", "QUIT"}, 0, {"EHLO a", "NOOP", "QUIT"}, 1, 0},
    {"exact, wrong first", {"EHLO", "QUIT"}, 0, {"HELO a", "QUIT"}, 0, 0},
    {"exact, one too many", {"EHLO", "QUIT"}, 0, {"EHLO a", "QUIT", "NOOP"}, 2, 0},
    {"dots, a run", {"EHLO", "...", "QUIT"}, 0, {"EHLO a", "NOOP", "RSET", "QUIT"}, -1, 1},
    {"dots, an empty run", {"EHLO", "...", "QUIT"}, 0, {"EHLO a", "QUIT"}, -1, 1},
    {"dots, then more", {"EHLO", "...", "QUIT"}, 0, {"EHLO a", "QUIT", "NOOP"}, -1, 0},
    {"dots only", {"..."}, 0, {NULL}, -1, 1},
    {"dots only, commands", {"..."}, 0, {"A", "B", "C"}, -1, 1},
    {"dots twice", {"EHLO", "...", "...", "QUIT"}, 0, {"EHLO a", "NOOP", "QUIT"}, -1, 1},
    {"dots first", {"...", "QUIT"}, 0, {"NOOP", "NOOP", "QUIT"}, -1, 1},
    {"dots last", {"EHLO", "..."}, 0, {"EHLO a", "NOOP"}, -1, 1},
    {"dots last, wrong first", {"EHLO", "..."}, 0, {"NOOP", "EHLO a"}, 0, 0},
    /* several ways to match: the NFA keeps both (a greedy matcher would fail) */
    {"two ways",
     {"EHLO", "...", "MAIL FROM:*", "RCPT TO:*", "...", "QUIT"},
     0,
     {"EHLO a", "MAIL FROM:<a>", "MAIL FROM:<b>", "RCPT TO:<c>", "DATA", "QUIT"},
     -1,
     1},
    {"globs",
     {"EHLO", "MAIL FROM:<*@mock.test>", "QUIT"},
     0,
     {"EHLO a", "MAIL FROM:<x@other.test>"},
     1,
     0},
    /* early failure only when no way is left: a missing AUTH is absorbed by "..." */
    {"example A, met",
     {0},
     0,
     {"EHLO c", "STARTTLS", "EHLO c", "AUTH PLAIN x", "AUTH LOGIN", "MAIL FROM:<a>", "RCPT TO:<1>",
      "RCPT TO:<2>", "RCPT TO:<3>", "DATA", "QUIT"},
     -1,
     1},
    {"example A, one AUTH",
     {0},
     0,
     {"EHLO c", "STARTTLS", "EHLO c", "AUTH PLAIN x", "MAIL FROM:<a>", "RCPT TO:<1>", "RCPT TO:<2>",
      "RCPT TO:<3>", "DATA", "QUIT"},
     -1,
     0},
    {"example A, no STARTTLS", {0}, 0, {"EHLO c", "AUTH PLAIN x", "QUIT"}, 1, 0},
    {"subsequence, gaps",
     {"EHLO", "MAIL FROM:*", "QUIT"},
     1,
     {"NOOP", "EHLO a", "NOOP", "MAIL FROM:<a>", "RSET", "QUIT"},
     -1,
     1},
    {"subsequence, out of order",
     {"EHLO", "MAIL FROM:*", "QUIT"},
     1,
     {"MAIL FROM:<a>", "EHLO a", "QUIT"},
     -1,
     0},
    {"subsequence, more after", {"EHLO", "QUIT"}, 1, {"EHLO a", "QUIT", "NOOP"}, -1, 1},
    {"subsequence, repeated", {"NOOP", "NOOP"}, 1, {"NOOP", "RSET", "NOOP"}, -1, 1},
    {"subsequence, once only", {"NOOP", "NOOP"}, 1, {"NOOP", "RSET"}, -1, 0},
};

static size_t
count_items(const char *const *items)
{
    size_t n = 0;
    while (n < MAX_ITEMS && items[n])
        n++;
    return n;
}

START_TEST(test_sequence)
{
    const struct seq_case *c = &seq_cases[_i];
    const char *const *pattern = c->pattern[0] ? c->pattern : example_a;
    struct ms_expect_seq q;
    ms_expect_seq_init(&q, (char *const *)pattern, count_items(pattern), c->subsequence);
    int died = -1;
    for (size_t k = 0; k < count_items(c->commands); k++) {
        int accepts = ms_expect_seq_accepts(&q, c->commands[k]);
        int alive = ms_expect_seq_step(&q, c->commands[k]);
        ck_assert_msg(accepts == alive, "%s: accepts %d but step %d at command %zu", c->name,
                      accepts, alive, k);
        if (!alive && died < 0)
            died = (int)k;
    }
    ck_assert_msg(died == c->dies_at, "%s: died at command %d, want %d", c->name, died, c->dies_at);
    ck_assert_msg(ms_expect_seq_complete(&q) == c->complete, "%s: complete %d, want %d", c->name,
                  ms_expect_seq_complete(&q), c->complete);
    ms_expect_seq_fini(&q);
}
END_TEST

/* Once dead, a sequence stays dead whatever follows. */
START_TEST(test_sequence_stays_dead)
{
    char *pattern[] = {"EHLO", "QUIT"};
    struct ms_expect_seq q;
    ms_expect_seq_init(&q, pattern, 2, 0);
    ck_assert_int_eq(ms_expect_seq_step(&q, "NOOP"), 0);
    ck_assert_int_eq(ms_expect_seq_accepts(&q, "EHLO a"), 0);
    ck_assert_int_eq(ms_expect_seq_step(&q, "EHLO a"), 0);
    ck_assert_int_eq(ms_expect_seq_step(&q, "QUIT"), 0);
    ck_assert_int_eq(ms_expect_seq_complete(&q), 0);
    ms_expect_seq_fini(&q);
}
END_TEST

/* accepts() does not move the sequence. */
START_TEST(test_sequence_accepts_is_a_look)
{
    char *pattern[] = {"EHLO", "STARTTLS", "QUIT"};
    struct ms_expect_seq q;
    ms_expect_seq_init(&q, pattern, 3, 0);
    ck_assert_int_eq(ms_expect_seq_accepts(&q, "EHLO a"), 1);
    ck_assert_int_eq(ms_expect_seq_accepts(&q, "STARTTLS"), 0);
    ck_assert_int_eq(ms_expect_seq_accepts(&q, "EHLO b"), 1);
    ck_assert_int_eq(ms_expect_seq_step(&q, "EHLO a"), 1);
    ck_assert_int_eq(ms_expect_seq_accepts(&q, "EHLO a"), 0);
    ck_assert_int_eq(ms_expect_seq_accepts(&q, "STARTTLS"), 1);
    ms_expect_seq_fini(&q);
}
END_TEST

static const struct {
    const char *pattern[MAX_ITEMS];
    int subsequence;
    const char *commands[MAX_ITEMS];
    const char *want;
} wanted_cases[] = {
    {{"EHLO", "STARTTLS"}, 0, {NULL}, "EHLO"},
    {{"EHLO", "STARTTLS"}, 0, {"EHLO a"}, "STARTTLS"},
    {{"EHLO", "STARTTLS"}, 0, {"EHLO a", "STARTTLS"}, "nothing more"},
    {{"EHLO", "...", "QUIT"}, 0, {"EHLO a"}, "QUIT"},
    {{"A", "...", "A"}, 0, {"A"}, "A"},
    {{"A", "...", "A"}, 0, {"A", "A"}, "A or nothing more"},
    {{"...", "EHLO", "...", "HELO"}, 0, {NULL}, "EHLO"},
    {{"EHLO", "MAIL FROM:*", "QUIT"}, 1, {"EHLO a"}, "MAIL FROM:*"},
    {{"EHLO", "...", "QUIT"}, 1, {"EHLO a", "NOOP"}, "QUIT"},
    {{"EHLO", "QUIT"}, 1, {"EHLO a", "QUIT"}, "nothing more"},
};

START_TEST(test_wanted)
{
    const char *const *pattern = wanted_cases[_i].pattern;
    struct ms_expect_seq q;
    ms_expect_seq_init(&q, (char *const *)pattern, count_items(pattern),
                       wanted_cases[_i].subsequence);
    for (size_t k = 0; k < count_items(wanted_cases[_i].commands); k++)
        ms_expect_seq_step(&q, wanted_cases[_i].commands[k]);
    struct ms_buf b = {0};
    ms_expect_seq_wanted(&q, &b);
    ck_assert_msg(b.data && strcmp(b.data, wanted_cases[_i].want) == 0,
                  "case %d: got \"%s\", want \"%s\"", _i, b.data ? b.data : "",
                  wanted_cases[_i].want);
    ms_buf_fini(&b);
    ms_expect_seq_fini(&q);
}
END_TEST

/* A long sequence against a long session: the live set stays exact (no blow-up, no false
 * death) with many "..." in a row of repeated patterns. */
START_TEST(test_sequence_long)
{
    char *pattern[64];
    for (size_t i = 0; i < 64; i++)
        pattern[i] = i % 2 ? "..." : "NOOP";
    struct ms_expect_seq q;
    ms_expect_seq_init(&q, pattern, 64, 0);
    for (int k = 0; k < 10000; k++)
        ck_assert_int_eq(ms_expect_seq_step(&q, "NOOP"), 1);
    ck_assert_int_eq(ms_expect_seq_complete(&q), 1);
    ck_assert_int_eq(ms_expect_seq_step(&q, "RSET"), 1); /* the last "..." takes it */
    ms_expect_seq_fini(&q);
}
END_TEST

/* ---- the loader ---- */

static struct ms_scenario *
load_ok(const char *yaml)
{
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    int rc = ms_scenario_load_string(yaml, strlen(yaml), "x.yaml", ".", &sc, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "load: got %d (%s), want 0", rc, err.message);
    ck_assert_ptr_nonnull(sc);
    return sc;
}

START_TEST(test_load_values)
{
    struct ms_scenario *sc = load_ok(
        "version: 1\n"
        "listeners:\n"
        "  smtp: { protocol: smtp, port: 0, tls: starttls }\n"
        "  submission: { protocol: smtp, port: 0, tls: required }\n"
        "  mx: { protocol: smtp, port: 0 }\n"
        "expect:\n"
        "  - when: { listener: submission }\n"
        "    sequence: [EHLO, STARTTLS, EHLO, \"AUTH *\", \"MAIL FROM:*\", \"...\", DATA, QUIT]\n"
        "  - { when: { protocol: smtp, encrypted: false }, never: [\"AUTH *\", \"MAIL FROM:*\"] }\n"
        "  - { when: { listener: mx }, no_pregreet: true }\n"
        "  - { messages: 1 }\n"
        "  - { when: { protocol: [pop3, smtp] }, quit: true }\n"
        "  - when: { listener: [smtp, mx], session: \"2-4\", user: alice }\n"
        "    sequence: QUIT\n"
        "    match: subsequence\n"
        "    never: \"RSET\"\n"
        "    sessions: 0\n"
        "  - { when: { session: [3, 5], encrypted: true }, sequence: [EHLO], enforce: true }\n"
        "  - { sequence: [EHLO], match: exact, enforce: false, quit: false }\n"
        "  - { no_pregreet: false, sessions: 4294967295 }\n");
    const struct ms_expects *x = &sc->expect;
    ck_assert_uint_eq(x->n_entries, 9);
    ck_assert_ptr_null(x->run);

    const struct ms_expect_conf *e = &x->entries[0];
    ck_assert_int_eq(e->line, 7);
    ck_assert_int_eq(e->column, 5);
    ck_assert_uint_eq(e->n_listeners, 1);
    ck_assert_str_eq(e->listeners[0], "submission");
    ck_assert_uint_eq(e->protocols, 0);
    ck_assert_int_eq(e->encrypted, -1);
    ck_assert_uint_eq(e->n_sequence, 8);
    ck_assert_str_eq(e->sequence[3], "AUTH *");
    ck_assert_str_eq(e->sequence[5], "...");
    ck_assert_int_eq(e->match, MS_EXPECT_EXACT);
    ck_assert_int_eq(e->enforce, 0);
    ck_assert_ptr_null(e->never);

    e = &x->entries[1];
    ck_assert_uint_eq(e->protocols, 1u << MS_PROTO_SMTP);
    ck_assert_int_eq(e->encrypted, 0);
    ck_assert_uint_eq(e->n_never, 2);
    ck_assert_str_eq(e->never[1], "MAIL FROM:*");
    ck_assert_ptr_null(e->sequence);

    e = &x->entries[2];
    ck_assert_int_eq(e->no_pregreet, 1);
    e = &x->entries[3];
    ck_assert_int_eq(e->has_messages, 1);
    ck_assert_uint_eq(e->messages, 1);
    ck_assert_int_eq(e->has_sessions, 0);
    ck_assert_uint_eq(e->n_listeners, 0);
    e = &x->entries[4];
    ck_assert_uint_eq(e->protocols, (1u << MS_PROTO_POP3) | (1u << MS_PROTO_SMTP));
    ck_assert_int_eq(e->quit, 1);

    e = &x->entries[5];
    ck_assert_uint_eq(e->n_listeners, 2);
    ck_assert_str_eq(e->listeners[1], "mx");
    ck_assert_uint_eq(e->session_lo, 2);
    ck_assert_uint_eq(e->session_hi, 4);
    ck_assert_str_eq(e->user, "alice");
    ck_assert_uint_eq(e->n_sequence, 1);
    ck_assert_str_eq(e->sequence[0], "QUIT");
    ck_assert_int_eq(e->match, MS_EXPECT_SUBSEQUENCE);
    ck_assert_uint_eq(e->n_never, 1);
    ck_assert_str_eq(e->never[0], "RSET");
    ck_assert_int_eq(e->has_sessions, 1);
    ck_assert_uint_eq(e->sessions, 0);

    e = &x->entries[6];
    ck_assert_uint_eq(e->session_lo, 3);
    ck_assert_uint_eq(e->session_hi, 5);
    ck_assert_int_eq(e->encrypted, 1);
    ck_assert_int_eq(e->enforce, 1);
    e = &x->entries[7];
    ck_assert_int_eq(e->enforce, 0);
    ck_assert_int_eq(e->quit, 0);
    e = &x->entries[8];
    ck_assert_uint_eq(e->sessions, 4294967295u);
    ms_scenario_destroy(&sc);
    ck_assert_ptr_null(sc);
}
END_TEST

START_TEST(test_load_empty)
{
    struct ms_scenario *sc = load_ok("version: 1\nexpect:\n");
    ck_assert_uint_eq(sc->expect.n_entries, 0);
    ms_scenario_destroy(&sc);
    sc = load_ok("version: 1\nexpect: []\n");
    ck_assert_uint_eq(sc->expect.n_entries, 0);
    ms_scenario_destroy(&sc);
    /* a standard listener name is allowed (--listen may add it), as for faults */
    sc = load_ok("version: 1\nexpect: [{ when: { listener: imaps }, quit: true }]\n");
    ck_assert_uint_eq(sc->expect.n_entries, 1);
    ms_scenario_destroy(&sc);
}
END_TEST

#define L "version: 1\nlisteners: { smtp: { protocol: smtp, port: 0 } }\nexpect:\n"

static const struct {
    const char *yaml;
    int line, column;
    const char *message;
} error_cases[] = {
    {"expect: 1\n", 1, 9, "expect: expected a list of expectations, got \"1\""},
    {"expect: { messages: 1 }\n", 1, 9, "expect: expected a list of expectations, got a mapping"},
    {"expect:\n  - 1\n", 2, 5,
     "expect[0]: expected an expectation (a mapping of when and checks), got \"1\""},
    {L "  - { messagse: 1 }\n", 4, 7,
     "expect[0].messagse: unknown key (did you mean \"messages\"?)"},
    {L "  - { frobnicate: 1 }\n", 4, 7,
     "expect[0].frobnicate: unknown key (expected one of: when, sequence, match, enforce, never, "
     "no_pregreet, quit, messages, sessions)"},
    {L "  - { when: { listener: smtp } }\n", 4, 5,
     "expect[0]: an expectation needs a check: sequence, never, no_pregreet, quit, messages or "
     "sessions"},
    {L "  - {}\n", 4, 5, "expect[0]: an expectation needs a check"},
    {L "  - { quit: false, no_pregreet: false }\n", 4, 5,
     "expect[0]: an expectation needs a check"},
    {L "  - { quit: true }\n  - { match: exact, quit: true }\n", 5, 7,
     "expect[1].match: match needs a sequence in the same entry"},
    {L "  - { never: [QUIT], enforce: true }\n", 4, 22,
     "expect[0].enforce: enforce needs a sequence in the same entry"},
    {L "  - { enforce: false, messages: 0 }\n", 4, 7,
     "expect[0].enforce: enforce needs a sequence in the same entry"},
    {L "  - { sequence: [EHLO], match: subsequence, enforce: true }\n", 4, 45,
     "expect[0].enforce: enforce needs match: exact"},
    {L "  - { sequence: [EHLO], match: fuzzy }\n", 4, 32,
     "expect[0].match: unknown match mode \"fuzzy\" (one of exact, subsequence)"},
    {L "  - { sequence: [EHLO], enforce: maybe }\n", 4, 34,
     "expect[0].enforce: expected a boolean (true or false), got \"maybe\""},
    {L "  - { sequence: [] }\n", 4, 17, "expect[0].sequence: an empty list"},
    {L "  - { sequence: [EHLO, \"\"] }\n", 4, 24,
     "expect[0].sequence[1]: expected a command pattern, like EHLO, \"MAIL FROM:*\" or \"...\""},
    {L "  - { sequence: [EHLO, [QUIT]] }\n", 4, 24,
     "expect[0].sequence[1]: expected a command pattern"},
    {L "  - { sequence: { a: 1 } }\n", 4, 17, "expect[0].sequence: expected a command pattern"},
    {L "  - { never: ~ }\n", 4, 14, "expect[0].never: expected a command pattern, like \"AUTH *\""},
    {L "  - { no_pregreet: 1 }\n", 4, 20, "expect[0].no_pregreet: expected a boolean"},
    {L "  - { quit: yes please }\n", 4, 13, "expect[0].quit: expected a boolean"},
    {L "  - { messages: -1 }\n", 4, 17, "expect[0].messages: -1 is out of range (0 .. 4294967295)"},
    {L "  - { messages: many }\n", 4, 17, "expect[0].messages: expected an integer, got \"many\""},
    {L "  - { sessions: 4294967296 }\n", 4, 17,
     "expect[0].sessions: 4294967296 is out of range (0 .. 4294967295)"},
    {L "  - { when: 1, quit: true }\n", 4, 13, "expect[0].when: expected a mapping, got \"1\""},
    {L "  - { when: { at: greeting }, quit: true }\n", 4, 15,
     "expect[0].when.at: unknown key (expected one of: listener, protocol, session, encrypted, "
     "user)"},
    {L "  - { when: { comand: QUIT }, quit: true }\n", 4, 15, "expect[0].when.comand: unknown key"},
    {L "  - { when: { listener: smpt }, quit: true }\n", 4, 25,
     "expect[0].when.listener: no listener \"smpt\" in this scenario (did you mean \"smtp\"?)"},
    {L "  - { when: { listener: [smtp, other] }, quit: true }\n", 4, 32,
     "expect[0].when.listener[1]: no listener \"other\" in this scenario (listeners: smtp)"},
    {L "  - { when: { protocol: gopher }, quit: true }\n", 4, 25,
     "expect[0].when.protocol: unknown protocol \"gopher\""},
    {L "  - { when: { session: \"5-3\" }, quit: true }\n", 4, 24,
     "expect[0].when.session: 3 is below 5"},
    {L "  - { when: { session: 0 }, quit: true }\n", 4, 24,
     "expect[0].when.session: 0 is out of range"},
    {L "  - { when: { encrypted: plain }, quit: true }\n", 4, 26,
     "expect[0].when.encrypted: expected a boolean"},
    {L "  - { when: { user: \"\" }, quit: true }\n", 4, 21,
     "expect[0].when.user: expected a non-empty string"},
    {L "  - { quit: true, quit: false }\n", 4, 19, "expect[0].quit: duplicate key (first at 4:7)"},
    /* listeners: after expect: in the file is fine; a wrong name is still found */
    {"version: 1\nexpect: [{ when: { listener: mx2 }, quit: true }]\n"
     "listeners: { mx: { protocol: smtp, port: 0 } }\n",
     2, 30, "expect[0].when.listener: no listener \"mx2\" in this scenario (did you mean \"mx\"?)"},
};

START_TEST(test_load_error)
{
    const char *yaml = error_cases[_i].yaml;
    struct ms_scenario *sc = (struct ms_scenario *)1;
    struct mocksrv_error err;
    memset(&err, 0x55, sizeof err);
    int rc = ms_scenario_load_string(yaml, strlen(yaml), "x.yaml", ".", &sc, &err);
    ck_assert_msg(rc == MOCKSRV_ESCENARIO, "case %d: got rc %d, want %d", _i, rc,
                  MOCKSRV_ESCENARIO);
    ck_assert_ptr_null(sc);
    char want[1200];
    snprintf(want, sizeof want, "x.yaml:%d:%d: %s", error_cases[_i].line, error_cases[_i].column,
             error_cases[_i].message);
    ck_assert_msg(err.line == error_cases[_i].line && err.column == error_cases[_i].column &&
                      strncmp(err.message, want, strlen(want)) == 0,
                  "case %d:\n got  %d:%d %s\n want %s...", _i, err.line, err.column, err.message,
                  want);
}
END_TEST

/* The fixtures of FAULTS.md examples A and C load with their expect: sections. */
START_TEST(test_fixtures)
{
    static const char *const names[] = {"faults/smtp-transactional.yaml",
                                        "faults/starttls-family.yaml"};
    const char *dir = getenv("MOCKSRV_FIXTURES");
    for (size_t i = 0; i < MS_ARRAY_LEN(names); i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "fixtures", names[i]);
        struct ms_scenario *sc = NULL;
        struct mocksrv_error err = {0};
        int rc = ms_scenario_load_file(path, &sc, &err);
        ck_assert_msg(rc == MOCKSRV_OK, "load %s: %s", path, err.message);
        ck_assert_msg(sc->expect.n_entries == 1, "%s: %zu expectations, want 1", path,
                      sc->expect.n_entries);
        ms_scenario_destroy(&sc);
    }
}
END_TEST

static Suite *
expect_suite(void)
{
    Suite *s = suite_create("expect");
    TCase *tc = tcase_create("matcher");
    tcase_add_loop_test(tc, test_pattern, 0, (int)MS_ARRAY_LEN(pattern_cases));
    tcase_add_loop_test(tc, test_sequence, 0, (int)MS_ARRAY_LEN(seq_cases));
    tcase_add_test(tc, test_sequence_stays_dead);
    tcase_add_test(tc, test_sequence_accepts_is_a_look);
    tcase_add_loop_test(tc, test_wanted, 0, (int)MS_ARRAY_LEN(wanted_cases));
    tcase_add_test(tc, test_sequence_long);
    suite_add_tcase(s, tc);

    tc = tcase_create("loader");
    tcase_add_test(tc, test_load_values);
    tcase_add_test(tc, test_load_empty);
    tcase_add_loop_test(tc, test_load_error, 0, (int)MS_ARRAY_LEN(error_cases));
    tcase_add_test(tc, test_fixtures);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(expect_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
