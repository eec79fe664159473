/*
 * test_faults_conf.c - the `faults:` section of the scenario loader (scenario_faults.c into the
 * model of fault.h): every key into its field, the defaults (name, probability, encrypted, at), the
 * worked examples A and E of FAULTS.md 3, and every error with its exact line:column.
 *
 * Fixtures come from $MOCKSRV_FIXTURES (set by ctest), else ./fixtures (run from the source
 * root). Table-driven cases print "got X, want Y".
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "scenario.h"

static const char *
fixtures(void)
{
    const char *d = getenv("MOCKSRV_FIXTURES");
    return d && *d ? d : "fixtures";
}

static struct ms_scenario *
load_fixture(const char *rel)
{
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    char path[1024];
    snprintf(path, sizeof path, "%s/scenarios/%s", fixtures(), rel);
    int rc = ms_scenario_load_file(path, &sc, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "load %s: got %d (%s), want 0", path, rc, err.message);
    return sc;
}

static struct ms_scenario *
load_ok(const char *yaml)
{
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    int rc = ms_scenario_load_string(yaml, strlen(yaml), "x.yaml", NULL, &sc, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "load: got %d (%s), want 0", rc, err.message);
    return sc;
}

static const char *
at_name(enum ms_fault_at at)
{
    static const char *const names[] = {"accept", "tls",     "greeting", "command",
                                        "data",   "waiting", "end"};
    return (size_t)at < MS_ARRAY_LEN(names) ? names[at] : "?";
}

/* "a|b|c", for comparing string lists in one message */
static void
join(char *out, size_t cap, char *const *list, size_t n)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++) {
        int k = snprintf(out + o, cap - o, "%s%s", i ? "|" : "", list[i]);
        if (k < 0)
            break;
        o += (size_t)k;
    }
}

static void
check_strings(const char *what, char *const *list, size_t n, const char *want)
{
    char got[1024];
    join(got, sizeof got, list, n);
    ck_assert_msg(strcmp(got, want) == 0, "%s: got \"%s\", want \"%s\"", what, got, want);
}

/* What a rule's numbers must be; strings are checked one by one. */
struct want_rule {
    const char *name;
    int line, column;
    unsigned protocols;
    unsigned session_lo, session_hi;
    int encrypted;
    enum ms_fault_at at;
    unsigned every, after;
    size_t n_nth;
    int count_run;
    uint64_t received;
    int has_received;
    int64_t for_ms;
    int has_for;
    double probability;
    int per_session;
    unsigned times;
    int has_reply, reply_pass;
    size_t reply_lines, n_replies;
    int has_raw;
    size_t raw_len;
    int64_t delay_lo, delay_hi;
    int has_delay;
    enum ms_close_how close_how;
    uint64_t close_after_bytes;
    int has_close_after;
    int64_t close_delay_ms;
};

static void
check_rule(const struct ms_fault_rule *r, const struct want_rule *w)
{
    ck_assert_msg(strcmp(r->name, w->name) == 0, "name: got %s, want %s", r->name, w->name);
    const struct {
        const char *what;
        long long got, want;
    } nums[] = {
        {"line", r->line, w->line},
        {"column", r->column, w->column},
        {"protocols", r->protocols, w->protocols},
        {"session_lo", r->session_lo, w->session_lo},
        {"session_hi", r->session_hi, w->session_hi},
        {"encrypted", r->encrypted, w->encrypted},
        {"every", r->every, w->every},
        {"after", r->after, w->after},
        {"n_nth", (long long)r->n_nth, (long long)w->n_nth},
        {"count_run", r->count_run, w->count_run},
        {"received", (long long)r->received, (long long)w->received},
        {"has_received", r->has_received, w->has_received},
        {"for_ms", r->for_ms, w->for_ms},
        {"has_for", r->has_for, w->has_for},
        {"per_session", r->per_session, w->per_session},
        {"times", r->times, w->times},
        {"has_reply", r->has_reply, w->has_reply},
        {"reply.pass", r->reply.pass, w->reply_pass},
        {"reply.n_lines", (long long)r->reply.n_lines, (long long)w->reply_lines},
        {"n_replies", (long long)r->n_replies, (long long)w->n_replies},
        {"has_raw", r->has_raw, w->has_raw},
        {"raw_len", (long long)r->raw_len, (long long)w->raw_len},
        {"delay_lo", r->delay_lo, w->delay_lo},
        {"delay_hi", r->delay_hi, w->delay_hi},
        {"has_delay", r->has_delay, w->has_delay},
        {"close_how", r->close_how, w->close_how},
        {"close_after_bytes", (long long)r->close_after_bytes, (long long)w->close_after_bytes},
        {"has_close_after", r->has_close_after, w->has_close_after},
        {"close_delay_ms", r->close_delay_ms, w->close_delay_ms},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(nums); i++)
        ck_assert_msg(nums[i].got == nums[i].want, "%s.%s: got %lld, want %lld", r->name,
                      nums[i].what, nums[i].got, nums[i].want);
    ck_assert_msg(r->at == w->at, "%s.at: got %s, want %s", r->name, at_name(r->at),
                  at_name(w->at));
    ck_assert_msg(r->probability == w->probability, "%s.probability: got %g, want %g", r->name,
                  r->probability, w->probability);
}

#define P(x) (1u << MS_PROTO_##x)

/* ---- every key into its field ---- */

START_TEST(test_all_keys)
{
    struct ms_scenario *sc = load_fixture("faults-all.yaml");
    /* clang-format off */
    static const struct want_rule want[] = {
        {.name = "everything", .line = 5, .column = 5, .protocols = P(SMTP) | P(IMAP),
         .session_lo = 2, .session_hi = 4, .encrypted = 0, .at = MS_AT_COMMAND, .n_nth = 2,
         .count_run = 1, .probability = 0.25, .per_session = 1, .times = 2, .has_reply = 1,
         .reply_lines = 2, .delay_lo = 1000, .delay_hi = 1500, .has_delay = 1,
         .close_how = MS_CLOSE_RST, .close_after_bytes = 1024, .has_close_after = 1,
         .close_delay_ms = 2000},
        {.name = "faults[1]", .line = 27, .column = 5, .encrypted = -1, .at = MS_AT_ACCEPT,
         .probability = 1.0, .n_replies = 3},
        {.name = "faults[2]", .line = 29, .column = 5, .session_lo = 3, .session_hi = 5,
         .encrypted = 1, .at = MS_AT_ACCEPT, .every = 2, .probability = 1.0, .has_raw = 1,
         .raw_len = 10, .close_how = MS_CLOSE_HALF},
        {.name = "faults[3]", .line = 32, .column = 5, .protocols = P(POP3), .encrypted = -1,
         .at = MS_AT_DATA, .received = 64 * 1024, .has_received = 1, .probability = 1.0,
         .has_reply = 1, .reply_pass = 1, .delay_lo = 250, .delay_hi = 250, .has_delay = 1},
        {.name = "faults[4]", .line = 35, .column = 5, .encrypted = -1, .at = MS_AT_WAITING,
         .for_ms = 2000, .has_for = 1, .probability = 1.0, .close_how = MS_CLOSE_FIN},
        {.name = "faults[5]", .line = 37, .column = 5, .session_lo = 7, .session_hi = 7,
         .encrypted = -1, .at = MS_AT_DATA, .received = 1024 * 1024, .has_received = 1,
         .probability = 1.0, .has_reply = 1, .reply_lines = 1},
        {.name = "faults[6]", .line = 39, .column = 5, .encrypted = -1, .at = MS_AT_GREETING,
         .probability = 1.0},
    };
    /* clang-format on */
    ck_assert_msg(sc->faults.n_rules == MS_ARRAY_LEN(want), "n_rules: got %zu, want %zu",
                  sc->faults.n_rules, MS_ARRAY_LEN(want));
    for (size_t i = 0; i < MS_ARRAY_LEN(want); i++)
        check_rule(&sc->faults.rules[i], &want[i]);

    const struct ms_fault_rule *r = &sc->faults.rules[0];
    check_strings("listeners", r->listeners, r->n_listeners, "mx|imaps");
    check_strings("commands", r->commands, r->n_commands, "UID FETCH|RCPT|.");
    check_strings("reply", r->reply.lines, r->reply.n_lines, "250-first|250 second");
    check_strings("hide", r->hide, r->n_hide, "STARTTLS|AUTH");
    ck_assert_str_eq(r->user, "alice");
    ck_assert_str_eq(r->args, "TO:<*@slow.test>*");
    ck_assert_str_eq(r->send, "* BYE Shutting down");
    ck_assert_str_eq(r->inject, "* 3 EXISTS");
    ck_assert_str_eq(r->append, "250 injected\r\n");
    ck_assert_msg(r->nth[0] == 1 && r->nth[1] == 3, "nth: got [%u, %u], want [1, 3]", r->nth[0],
                  r->nth[1]);
    ck_assert_ptr_null(r->raw);
    ck_assert_ptr_null(r->replies);

    r = &sc->faults.rules[1];
    ck_assert_msg(r->replies[0].n_lines == 1 && !r->replies[0].pass, "replies[0]");
    ck_assert_str_eq(r->replies[0].lines[0], "454 4.7.0 Temporary failure");
    ck_assert_msg(r->replies[1].pass && r->replies[1].n_lines == 0 && !r->replies[1].lines,
                  "replies[1]: got pass %d, %zu lines, want pass", r->replies[1].pass,
                  r->replies[1].n_lines);
    check_strings("replies[2]", r->replies[2].lines, r->replies[2].n_lines, "250-a|250 b");
    ck_assert_ptr_null(r->listeners);
    ck_assert_ptr_null(r->commands);
    ck_assert_ptr_null(r->user);
    ck_assert_ptr_null(r->args);

    r = &sc->faults.rules[2];
    check_strings("listeners", r->listeners, r->n_listeners, "mx");
    ck_assert_msg(memcmp(r->raw, "250 OK\n\r\0x", 11) == 0, "raw: bytes differ");

    r = &sc->faults.rules[4];
    check_strings("commands", r->commands, r->n_commands, "IDLE");
    r = &sc->faults.rules[6];
    check_strings("hide", r->hide, r->n_hide, "STARTTLS");
    ms_scenario_destroy(&sc);
}
END_TEST

/* ---- defaults and small values ---- */

START_TEST(test_none)
{
    static const char *const docs[] = {"version: 1\n", "faults:\n", "faults: []\n", "faults: ~\n"};
    for (size_t i = 0; i < MS_ARRAY_LEN(docs); i++) {
        struct ms_scenario *sc = load_ok(docs[i]);
        ck_assert_msg(sc->faults.n_rules == 0, "case %zu: n_rules got %zu, want 0", i,
                      sc->faults.n_rules);
        ms_scenario_destroy(&sc);
    }
}
END_TEST

static const struct {
    const char *yaml; /* one rule under "faults:\n  - " */
    enum ms_fault_at at;
    unsigned session_lo, session_hi;
    int64_t delay_lo, delay_hi;
    double probability;
    const char *commands;
} value_cases[] = {
    /* the default event */
    {"{ delay: 1s }", MS_AT_ACCEPT, 0, 0, 1000, 1000, 1.0, ""},
    {"{ when: { command: ehlo }, delay: 1s }", MS_AT_COMMAND, 0, 0, 1000, 1000, 1.0, "EHLO"},
    {"{ when: { command: DATA, at: data }, delay: 1s }", MS_AT_DATA, 0, 0, 1000, 1000, 1.0, "DATA"},
    {"{ when: { command: DATA, received: 1 }, delay: 1s }", MS_AT_DATA, 0, 0, 1000, 1000, 1.0,
     "DATA"},
    {"{ when: { at: end }, delay: 1s }", MS_AT_END, 0, 0, 1000, 1000, 1.0, ""},
    {"{ when: { at: TLS }, delay: 1s }", MS_AT_TLS, 0, 0, 1000, 1000, 1.0, ""},
    {"{ when: , delay: 1s }", MS_AT_ACCEPT, 0, 0, 1000, 1000, 1.0, ""},
    /* session forms */
    {"{ when: { session: 1 }, delay: 0ms }", MS_AT_ACCEPT, 1, 1, 0, 0, 1.0, ""},
    {"{ when: { session: [3, 3] }, delay: 0 }", MS_AT_ACCEPT, 3, 3, 0, 0, 1.0, ""},
    {"{ when: { session: 3-5 }, delay: 0 }", MS_AT_ACCEPT, 3, 5, 0, 0, 1.0, ""},
    {"{ when: { session: \" 2 - 9 \" }, delay: 0 }", MS_AT_ACCEPT, 2, 9, 0, 0, 1.0, ""},
    /* delay forms */
    {"{ delay: [0ms, 250ms] }", MS_AT_ACCEPT, 0, 0, 0, 250, 1.0, ""},
    {"{ delay: [2s, 2s] }", MS_AT_ACCEPT, 0, 0, 2000, 2000, 1.0, ""},
    {"{ delay: 1.5 }", MS_AT_ACCEPT, 0, 0, 1500, 1500, 1.0, ""},
    /* probability */
    {"{ probability: 0, delay: 1s }", MS_AT_ACCEPT, 0, 0, 1000, 1000, 0.0, ""},
    {"{ probability: 1, delay: 1s }", MS_AT_ACCEPT, 0, 0, 1000, 1000, 1.0, ""},
    {"{ probability: .5, delay: 1s }", MS_AT_ACCEPT, 0, 0, 1000, 1000, 0.5, ""},
    {"{ probability: 0.02, delay: 1s }", MS_AT_ACCEPT, 0, 0, 1000, 1000, 0.02, ""},
    /* command normalization */
    {"{ when: { command: [\"uid\\tfetch\", \" . \", Mail] }, delay: 1s }", MS_AT_COMMAND, 0, 0,
     1000, 1000, 1.0, "UID FETCH|.|MAIL"},
};

START_TEST(test_values)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml, "faults:\n  - %s\n", value_cases[_i].yaml);
    struct ms_scenario *sc = load_ok(yaml);
    ck_assert_uint_eq(sc->faults.n_rules, 1);
    const struct ms_fault_rule *r = &sc->faults.rules[0];
    ck_assert_msg(r->at == value_cases[_i].at, "%s: at got %s, want %s", value_cases[_i].yaml,
                  at_name(r->at), at_name(value_cases[_i].at));
    ck_assert_msg(r->session_lo == value_cases[_i].session_lo &&
                      r->session_hi == value_cases[_i].session_hi,
                  "%s: session got %u-%u, want %u-%u", value_cases[_i].yaml, r->session_lo,
                  r->session_hi, value_cases[_i].session_lo, value_cases[_i].session_hi);
    ck_assert_msg(r->delay_lo == value_cases[_i].delay_lo &&
                      r->delay_hi == value_cases[_i].delay_hi,
                  "%s: delay got %lld-%lld, want %lld-%lld", value_cases[_i].yaml,
                  (long long)r->delay_lo, (long long)r->delay_hi,
                  (long long)value_cases[_i].delay_lo, (long long)value_cases[_i].delay_hi);
    ck_assert_msg(r->probability == value_cases[_i].probability, "%s: probability got %g, want %g",
                  value_cases[_i].yaml, r->probability, value_cases[_i].probability);
    check_strings(value_cases[_i].yaml, r->commands, r->n_commands, value_cases[_i].commands);
    ck_assert_str_eq(r->name, "faults[0]");
    ck_assert_int_eq(r->encrypted, -1);
    ms_scenario_destroy(&sc);
}
END_TEST

/* tls: every form into tls, tls_stall, tls_after_bytes (FAULTS.md 2) */
static const struct {
    const char *yaml; /* one rule under "faults:\n  - " */
    enum ms_fault_at at;
    enum ms_fault_tls tls;
    enum ms_fault_tls_phase phase;
    uint64_t after_bytes;
    int has_after;
} tls_cases[] = {
    {"{ when: { command: STARTTLS }, tls: refuse }", MS_AT_COMMAND, MS_FTLS_REFUSE, 0, 0, 0},
    {"{ when: { command: [stls, StartTLS] }, tls: PlainText }", MS_AT_COMMAND, MS_FTLS_PLAINTEXT, 0,
     0, 0},
    {"{ when: { command: STARTTLS }, tls: close }", MS_AT_COMMAND, MS_FTLS_CLOSE, 0, 0, 0},
    {"{ when: { command: STLS, at: command }, tls: alert }", MS_AT_COMMAND, MS_FTLS_ALERT, 0, 0, 0},
    {"{ when: { at: tls }, tls: alert }", MS_AT_TLS, MS_FTLS_ALERT, 0, 0, 0},
    {"{ when: { at: tls }, tls: garbage, delay: 1s }", MS_AT_TLS, MS_FTLS_GARBAGE, 0, 0, 0},
    {"{ when: { at: tls }, tls: { stall: after-client-hello } }", MS_AT_TLS, MS_FTLS_STALL,
     MS_TLS_PHASE_AFTER_CLIENT_HELLO, 0, 0},
    {"{ when: { at: tls }, tls: { stall: mid-server-flight } }", MS_AT_TLS, MS_FTLS_STALL,
     MS_TLS_PHASE_MID_SERVER_FLIGHT, 0, 0},
    {"{ when: { at: tls }, tls: { stall: mid-server-flight, after_bytes: 200 }, close: { how: "
     "rst, delay: 1s } }",
     MS_AT_TLS, MS_FTLS_STALL, MS_TLS_PHASE_MID_SERVER_FLIGHT, 200, 1},
    {"{ when: { at: tls }, tls: { after_bytes: 1KiB, stall: mid-server-flight } }", MS_AT_TLS,
     MS_FTLS_STALL, MS_TLS_PHASE_MID_SERVER_FLIGHT, 1024, 1},
    {"{ when: { at: tls }, tls: { stall: mid-server-flight, after_bytes: 0 } }", MS_AT_TLS,
     MS_FTLS_STALL, MS_TLS_PHASE_MID_SERVER_FLIGHT, 0, 1},
    {"{ when: { command: STARTTLS }, tls: { stall: before-finished } }", MS_AT_COMMAND,
     MS_FTLS_STALL, MS_TLS_PHASE_BEFORE_FINISHED, 0, 0},
    {"{ when: { at: tls }, delay: 500ms }", MS_AT_TLS, MS_FTLS_NONE, 0, 0, 0},
    {"{ when: { at: tls }, close: rst }", MS_AT_TLS, MS_FTLS_NONE, 0, 0, 0},
    /* a tls action alone is an action */
    {"{ when: { command: STARTTLS, session: 2 }, tls: close, append: \"250 x\\r\\n\" }",
     MS_AT_COMMAND, MS_FTLS_CLOSE, 0, 0, 0},
};

START_TEST(test_tls_values)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml, "faults:\n  - %s\n", tls_cases[_i].yaml);
    struct ms_scenario *sc = load_ok(yaml);
    ck_assert_uint_eq(sc->faults.n_rules, 1);
    const struct ms_fault_rule *r = &sc->faults.rules[0];
    ck_assert_msg(r->at == tls_cases[_i].at, "%s: at got %s, want %s", tls_cases[_i].yaml,
                  at_name(r->at), at_name(tls_cases[_i].at));
    ck_assert_msg(r->tls == tls_cases[_i].tls && r->tls_stall == tls_cases[_i].phase,
                  "%s: tls got %d/%d, want %d/%d", tls_cases[_i].yaml, (int)r->tls,
                  (int)r->tls_stall, (int)tls_cases[_i].tls, (int)tls_cases[_i].phase);
    ck_assert_msg(r->tls_after_bytes == tls_cases[_i].after_bytes &&
                      r->has_tls_after == tls_cases[_i].has_after,
                  "%s: after_bytes got %llu (given %d), want %llu (given %d)", tls_cases[_i].yaml,
                  (unsigned long long)r->tls_after_bytes, r->has_tls_after,
                  (unsigned long long)tls_cases[_i].after_bytes, tls_cases[_i].has_after);
    ms_scenario_destroy(&sc);
}
END_TEST

START_TEST(test_listener_names)
{
    /* A listener of the scenario, a standard name, and listeners: after faults: */
    struct ms_scenario *sc = load_ok("faults:\n"
                                     "  - { when: { listener: [mx, imaps, smtp] }, delay: 1s }\n"
                                     "listeners: { mx: { protocol: smtp } }\n");
    check_strings("listeners", sc->faults.rules[0].listeners, sc->faults.rules[0].n_listeners,
                  "mx|imaps|smtp");
    ms_scenario_destroy(&sc);
}
END_TEST

/* ---- the worked examples of FAULTS.md 3 ---- */

START_TEST(test_example_a)
{
    struct ms_scenario *sc = load_fixture("faults-example-a.yaml");
    /* clang-format off */
    static const struct want_rule want[] = {
        {.name = "rcpt3-451", .line = 5, .column = 5, .encrypted = -1, .at = MS_AT_COMMAND,
         .n_nth = 1, .probability = 1.0, .has_reply = 1, .reply_lines = 1},
        {.name = "first-auth-fails", .line = 8, .column = 5, .encrypted = -1,
         .at = MS_AT_COMMAND, .count_run = 1, .probability = 1.0, .n_replies = 2},
        {.name = "slow-end-of-data", .line = 11, .column = 5, .encrypted = -1,
         .at = MS_AT_COMMAND, .probability = 1.0, .delay_lo = 8000, .delay_hi = 8000,
         .has_delay = 1},
        {.name = "busy-second-session", .line = 14, .column = 5, .session_lo = 2,
         .session_hi = 2, .encrypted = -1, .at = MS_AT_COMMAND, .probability = 1.0,
         .has_reply = 1, .reply_lines = 1, .close_how = MS_CLOSE_FIN},
    };
    /* clang-format on */
    ck_assert_uint_eq(sc->faults.n_rules, MS_ARRAY_LEN(want));
    for (size_t i = 0; i < MS_ARRAY_LEN(want); i++)
        check_rule(&sc->faults.rules[i], &want[i]);
    const struct ms_fault_rule *r = sc->faults.rules;
    ck_assert_uint_eq(r[0].nth[0], 3);
    check_strings("commands", r[0].commands, r[0].n_commands, "RCPT");
    check_strings("reply", r[0].reply.lines, r[0].reply.n_lines,
                  "451 4.3.0 Mailbox temporarily unavailable");
    check_strings("commands", r[1].commands, r[1].n_commands, "AUTH");
    check_strings("replies[0]", r[1].replies[0].lines, r[1].replies[0].n_lines,
                  "454 4.7.0 Temporary authentication failure");
    ck_assert_int_eq(r[1].replies[1].pass, 1);
    check_strings("commands", r[2].commands, r[2].n_commands, ".");
    check_strings("commands", r[3].commands, r[3].n_commands, "MAIL");
    ck_assert_uint_eq(sc->seed, 7);
    ms_scenario_destroy(&sc);
}
END_TEST

START_TEST(test_example_e)
{
    struct ms_scenario *sc = load_fixture("faults-example-e.yaml");
    /* clang-format off */
    static const struct want_rule want[] = {
        {.name = "faults[0]", .line = 4, .column = 5, .session_lo = 1, .session_hi = 1,
         .encrypted = -1, .at = MS_AT_ACCEPT, .probability = 1.0, .close_how = MS_CLOSE_RST},
        {.name = "faults[1]", .line = 5, .column = 5, .session_lo = 2, .session_hi = 2,
         .encrypted = -1, .at = MS_AT_GREETING, .probability = 1.0, .close_how = MS_CLOSE_FIN,
         .close_after_bytes = 4, .has_close_after = 1},
        {.name = "faults[2]", .line = 6, .column = 5, .session_lo = 3, .session_hi = 3,
         .encrypted = -1, .at = MS_AT_COMMAND, .probability = 1.0, .close_how = MS_CLOSE_FIN},
        {.name = "faults[3]", .line = 7, .column = 5, .session_lo = 4, .session_hi = 4,
         .encrypted = -1, .at = MS_AT_COMMAND, .probability = 1.0, .close_how = MS_CLOSE_RST,
         .close_after_bytes = 100, .has_close_after = 1},
        {.name = "faults[4]", .line = 9, .column = 5, .encrypted = -1, .at = MS_AT_DATA,
         .received = 65536, .has_received = 1, .probability = 1.0, .close_how = MS_CLOSE_FIN},
        {.name = "faults[5]", .line = 10, .column = 5, .encrypted = -1, .at = MS_AT_COMMAND,
         .probability = 1.0, .has_reply = 1, .reply_pass = 1, .close_how = MS_CLOSE_HALF},
        {.name = "faults[6]", .line = 11, .column = 5, .encrypted = -1, .at = MS_AT_COMMAND,
         .probability = 1.0, .has_reply = 1, .reply_pass = 1, .close_how = MS_CLOSE_FIN,
         .close_delay_ms = 5000},
    };
    /* clang-format on */
    ck_assert_uint_eq(sc->faults.n_rules, MS_ARRAY_LEN(want));
    for (size_t i = 0; i < MS_ARRAY_LEN(want); i++)
        check_rule(&sc->faults.rules[i], &want[i]);
    const struct ms_fault_rule *r = sc->faults.rules;
    static const char *const listeners[] = {"pop3", "pop3", "pop3", "pop3", "smtp", "smtp", "smtp"};
    for (size_t i = 0; i < MS_ARRAY_LEN(listeners); i++)
        check_strings("listener", r[i].listeners, r[i].n_listeners, listeners[i]);
    check_strings("commands", r[2].commands, r[2].n_commands, "USER");
    check_strings("commands", r[3].commands, r[3].n_commands, "RETR");
    ck_assert_str_eq(r[3].args, "2");
    check_strings("commands", r[6].commands, r[6].n_commands, ".");
    ms_scenario_destroy(&sc);
}
END_TEST

/* ---- errors ---- */

#define R "faults:\n  - "
static const struct {
    const char *yaml;
    int line, column;
    const char *message; /* the message after "x.yaml:LINE:COLUMN: " starts with this */
} error_cases[] = {
    /* the list and its rules */
    {"faults: { a: 1 }\n", 1, 9, "faults: expected a list of rules, got a mapping"},
    {"faults: rcpt\n", 1, 9, "faults: expected a list of rules, got \"rcpt\""},
    {R "reply\n", 2, 5,
     "faults[0]: expected a rule (a mapping of when and actions), got \"reply\""},
    {R "{ when: { command: RCPT } }\n", 2, 5,
     "faults[0]: a rule needs at least one action (reply, replies, raw, send, inject, append, "
     "hide, tls, delay, split, bandwidth, read, stall, close or tarpit)"},
    {R "{ delay: 1s }\n  - { name: x }\n", 3, 5, "faults[1]: a rule needs at least one action"},
    {R "{}\n", 2, 5, "faults[0]: a rule needs at least one action"},
    {R "{ delay: 1s, delya: 2s }\n", 2, 18,
     "faults[0].delya: unknown key (did you mean \"delay\"?)"},
    {R "{ delay: 1s, colour: red }\n", 2, 18,
     "faults[0].colour: unknown key (expected one of: "
     "name, when, probability, per, times, reply"},
    {R "{ delay: 1s, delay: 2s }\n", 2, 18, "faults[0].delay: duplicate key (first at 2:7)"},
    {R "{ name: \"\", delay: 1s }\n", 2, 13, "faults[0].name: expected a non-empty string"},
    {R "{ name: [a], delay: 1s }\n", 2, 13,
     "faults[0].name: expected a non-empty string, got a "
     "list"},
    /* when */
    {R "{ when: [RCPT], delay: 1s }\n", 2, 13, "faults[0].when: expected a mapping, got a list"},
    {R "{ when: { comand: RCPT }, delay: 1s }\n", 2, 15,
     "faults[0].when.comand: unknown key (did you mean \"command\"?)"},
    {R "{ when: { listener: smpt }, delay: 1s }\n", 2, 25,
     "faults[0].when.listener: no listener \"smpt\" in this scenario (did you mean \"smtp\"?)"},
    {"listeners: { mx: { protocol: smtp } }\nfaults:\n"
     "  - { when: { listener: [mx, zzzzzz] }, delay: 1s }\n",
     3, 30, "faults[0].when.listener[1]: no listener \"zzzzzz\" in this scenario (listeners: mx)"},
    {R "{ when: { listener: [] }, delay: 1s }\n", 2, 25, "faults[0].when.listener: an empty list"},
    {R "{ when: { listener: { a: 1 } }, delay: 1s }\n", 2, 25,
     "faults[0].when.listener: expected a listener name, got a mapping"},
    {R "{ when: { protocol: smpt }, delay: 1s }\n", 2, 25,
     "faults[0].when.protocol: unknown protocol \"smpt\" (one of smtp, lmtp, pop3, imap, script)"},
    {R "{ when: { protocol: [smtp, http] }, delay: 1s }\n", 2, 32,
     "faults[0].when.protocol[1]: unknown protocol \"http\""},
    {R "{ when: { session: 0 }, delay: 1s }\n", 2, 24,
     "faults[0].when.session: 0 is out of range (1 .. 4294967295)"},
    {R "{ when: { session: [5, 3] }, delay: 1s }\n", 2, 28,
     "faults[0].when.session[1]: 3 is below 5 (use [first, last])"},
    {R "{ when: { session: [1, 2, 3] }, delay: 1s }\n", 2, 24,
     "faults[0].when.session: expected [first, last], got a list of 3"},
    {R "{ when: { session: \"5-3\" }, delay: 1s }\n", 2, 24,
     "faults[0].when.session: 3 is below 5"},
    {R "{ when: { session: 2-x }, delay: 1s }\n", 2, 24,
     "faults[0].when.session: bad session range \"2-x\" (use 3, [3, 5] or \"3-5\")"},
    {R "{ when: { session: 0-3 }, delay: 1s }\n", 2, 24,
     "faults[0].when.session: \"0-3\" is out of range (1 .. 4294967295)"},
    {R "{ when: { session: first }, delay: 1s }\n", 2, 24,
     "faults[0].when.session: expected an integer, got \"first\""},
    {R "{ when: { session: }, delay: 1s }\n", 2, 24,
     "faults[0].when.session: expected a session number (3, [3, 5] or \"3-5\"), got nothing"},
    {R "{ when: { encrypted: maybe }, delay: 1s }\n", 2, 26,
     "faults[0].when.encrypted: expected a boolean (true or false), got \"maybe\""},
    {R "{ when: { user: \"\" }, delay: 1s }\n", 2, 21,
     "faults[0].when.user: expected a non-empty string"},
    {R "{ when: { at: reply }, delay: 1s }\n", 2, 19,
     "faults[0].when.at: unknown event \"reply\" (one of accept, tls, greeting, command, data, "
     "waiting, end)"},
    {R "{ when: { command: \"  \" }, delay: 1s }\n", 2, 24,
     "faults[0].when.command: expected a command, like RCPT, \"UID FETCH\" or \".\", got \"  \""},
    {R "{ when: { command: [RCPT, \"MA\\nIL\"] }, delay: 1s }\n", 2, 31,
     "faults[0].when.command[1]: expected a command"},
    {R "{ when: { command: [RCPT, [MAIL]] }, delay: 1s }\n", 2, 31,
     "faults[0].when.command[1]: expected a command, like RCPT, \"UID FETCH\" or \".\", got a "
     "list"},
    {R "{ when: { args: [a] }, delay: 1s }\n", 2, 21, "faults[0].when.args: expected a string"},
    {R "{ when: { command: RCPT, at: command, received: 1KiB }, delay: 1s }\n", 2, 43,
     "faults[0].when.received: received needs at: data (this rule is at: command)"},
    {R "{ when: { received: 1KiB, at: greeting }, delay: 1s }\n", 2, 15,
     "faults[0].when.received: received needs at: data (this rule is at: greeting)"},
    {R "{ when: { at: data, received: 10XB }, delay: 1s }\n", 2, 35,
     "faults[0].when.received: bad size \"10XB\" (use 4096, 4KiB, 10MB)"},
    {R "{ when: { at: data, received: 0 }, delay: 1s }\n", 2, 35,
     "faults[0].when.received: 0 is out of range (1 .. "},
    {R "{ when: { for: 2s, at: command }, delay: 1s }\n", 2, 15,
     "faults[0].when.for: for needs at: waiting (this rule is at: command)"},
    {R "{ when: { received: 1, for: 2s }, delay: 1s }\n", 2, 28,
     "faults[0].when.for: for needs at: waiting (this rule is at: data)"},
    {R "{ when: { at: waiting, for: soon }, delay: 1s }\n", 2, 33,
     "faults[0].when.for: bad duration \"soon\""},
    {R "{ when: { at: waiting, for: 0ms }, delay: 1s }\n", 2, 33,
     "faults[0].when.for: 0ms is out of range (1ms .. 7d)"},
    {R "{ when: { nth: 0 }, delay: 1s }\n", 2, 20, "faults[0].when.nth: 0 is out of range (1 .. "},
    {R "{ when: { nth: [1, -2] }, delay: 1s }\n", 2, 24,
     "faults[0].when.nth[1]: -2 is out of range"},
    {R "{ when: { nth: [] }, delay: 1s }\n", 2, 20, "faults[0].when.nth: an empty list"},
    {R "{ when: { nth: 3, every: 2 }, delay: 1s }\n", 2, 23,
     "faults[0].when.every: cannot be combined with nth (at 2:15): use one of nth, every and "
     "after"},
    {R "{ when: { every: 2, nth: 3 }, delay: 1s }\n", 2, 25,
     "faults[0].when.nth: cannot be combined with every (at 2:15)"},
    {R "{ when: { after: 5, nth: 3 }, delay: 1s }\n", 2, 25,
     "faults[0].when.nth: cannot be combined with after (at 2:15)"},
    {R "{ when: { every: 2, after: 5 }, delay: 1s }\n", 2, 25,
     "faults[0].when.after: cannot be combined with every (at 2:15)"},
    {R "{ when: { every: 0 }, delay: 1s }\n", 2, 22, "faults[0].when.every: 0 is out of range"},
    {R "{ when: { after: -1 }, delay: 1s }\n", 2, 22, "faults[0].when.after: -1 is out of range"},
    {R "{ when: { count: all }, delay: 1s }\n", 2, 22,
     "faults[0].when.count: unknown counter scope \"all\" (one of session, run)"},
    {R "{ when: { tls: true }, delay: 1s }\n", 2, 15,
     "faults[0].when.tls: unknown key (expected one of: listener, protocol"},
    /* modifiers */
    {R "{ probability: 1.5, delay: 1s }\n", 2, 20,
     "faults[0].probability: 1.5 is out of range (0 .. 1)"},
    {R "{ probability: -0.5, delay: 1s }\n", 2, 20,
     "faults[0].probability: expected a probability (a number from 0 to 1), got \"-0.5\""},
    {R "{ probability: \"0.5\", delay: 1s }\n", 2, 20,
     "faults[0].probability: expected a "
     "probability"},
    {R "{ probability: 1e-3, delay: 1s }\n", 2, 20,
     "faults[0].probability: expected a "
     "probability"},
    {R "{ probability: 0.5.1, delay: 1s }\n", 2, 20,
     "faults[0].probability: expected a "
     "probability"},
    {R "{ probability: nan, delay: 1s }\n", 2, 20,
     "faults[0].probability: expected a "
     "probability"},
    {R "{ per: connection, delay: 1s }\n", 2, 12,
     "faults[0].per: unknown draw scope \"connection\" (one of event, session)"},
    {R "{ times: 0, delay: 1s }\n", 2, 14, "faults[0].times: 0 is out of range (1 .. "},
    /* actions */
    {R "{ reply: \"451 a\", replies: [pass] }\n", 2, 23,
     "faults[0].replies: cannot be combined with reply (at 2:7)"},
    {R "{ replies: [pass], reply: \"451 a\" }\n", 2, 24,
     "faults[0].reply: cannot be combined with replies (at 2:7)"},
    {R "{ raw: \"x\", reply: \"451 a\" }\n", 2, 17,
     "faults[0].reply: cannot be combined with raw (at 2:7)"},
    {R "{ replies: [pass], raw: \"x\" }\n", 2, 24,
     "faults[0].raw: cannot be combined with replies (at 2:7)"},
    {R "{ reply: }\n", 2, 14,
     "faults[0].reply: expected a reply line, a list of lines, or pass, got nothing"},
    {R "{ reply: { a: 1 } }\n", 2, 14,
     "faults[0].reply: expected a reply line, a list of lines, or pass, got a mapping"},
    {R "{ reply: [] }\n", 2, 14, "faults[0].reply: an empty list (a reply has at least one line)"},
    {R "{ reply: \"451 a\\r\\n\" }\n", 2, 14,
     "faults[0].reply: a reply line holds no CR or LF (use a list of lines, or raw for exact "
     "bytes)"},
    {R "{ reply: [\"250-a\", pass] }\n", 2, 24,
     "faults[0].reply[1]: pass stands for a whole reply, not a line"},
    {R "{ reply: [\"250-a\", \"\"] }\n", 2, 24,
     "faults[0].reply[1]: expected a reply line, got \"\""},
    {R "{ replies: pass }\n", 2, 16,
     "faults[0].replies: expected a list of replies, like [\"451 Later\", pass], got \"pass\""},
    {R "{ replies: [] }\n", 2, 16, "faults[0].replies: an empty list"},
    {R "{ replies: [pass, { a: 1 }] }\n", 2, 23,
     "faults[0].replies[1]: expected a reply (a line, a list of lines, or pass), got a mapping"},
    {R "{ replies: [pass, [\"250 a\", [x]]] }\n", 2, 33,
     "faults[0].replies[1][1]: expected a reply line, got a list"},
    {R "{ raw: \"\" }\n", 2, 12, "faults[0].raw: expected a non-empty string"},
    {R "{ raw: [a] }\n", 2, 12, "faults[0].raw: expected a non-empty string (exact bytes"},
    {R "{ send: [a] }\n", 2, 13, "faults[0].send: expected a non-empty string, got a list"},
    {R "{ inject: \"\" }\n", 2, 15, "faults[0].inject: expected a non-empty string, got \"\""},
    {R "{ append: \"a\\0b\" }\n", 2, 15, "faults[0].append: expected a non-empty string"},
    {R "{ hide: [STARTTLS, \"AUTH PLAIN\"] }\n", 2, 24,
     "faults[0].hide[1]: expected a capability name, like STARTTLS, got \"AUTH PLAIN\""},
    {R "{ hide: [] }\n", 2, 13, "faults[0].hide: an empty list"},
    {R "{ delay: soon }\n", 2, 14,
     "faults[0].delay: bad duration \"soon\" (use 250ms, 2s, 1.5s, 1m, 1h)"},
    {R "{ delay: [3s, 1s] }\n", 2, 19, "faults[0].delay[1]: 1s is below 3s (use [low, high])"},
    {R "{ delay: [1s] }\n", 2, 14, "faults[0].delay: expected [low, high], got a list of 1"},
    {R "{ delay: [1s, x] }\n", 2, 19, "faults[0].delay[1]: bad duration \"x\""},
    {R "{ delay: 8d }\n", 2, 14, "faults[0].delay: 8d is out of range (0ms .. 7d)"},
    {R "{ close: reset }\n", 2, 14,
     "faults[0].close: unknown close mode \"reset\" (one of fin, rst, half)"},
    {R "{ close: [fin] }\n", 2, 14,
     "faults[0].close: expected fin, rst, half or a mapping {how, after_bytes, delay}, got a "
     "list"},
    {R "{ close: }\n", 2, 14, "faults[0].close: expected a close mode, got nothing"},
    {R "{ close: { after_bytes: 4 } }\n", 2, 14, "faults[0].close: missing how (fin, rst or half)"},
    {R "{ close: { how: fin, after_bytes: lots } }\n", 2, 39,
     "faults[0].close.after_bytes: bad size \"lots\""},
    {R "{ close: { how: fin, delay: -1s } }\n", 2, 33, "faults[0].close.delay: bad duration"},
    {R "{ close: { how: fin, from: end } }\n", 2, 26,
     "faults[0].close: after_bytes counts from start or literal"},
    {R "{ close: { how: fin, hwo: rst } }\n", 2, 26,
     "faults[0].close.hwo: unknown key (did you mean \"how\"?)"},
    /* shaping */
    {R "{ split: { size: 1, offsets: [-1] } }\n", 2, 25,
     "faults[0].split: offsets and size cannot be combined (one way of cutting per split)"},
    {R "{ split: { lines: true, size: 2 } }\n", 2, 16,
     "faults[0].split: lines and size cannot be combined"},
    {R "{ split: { gap: 5ms } }\n", 2, 14, "faults[0].split: needs one of size, offsets or lines"},
    {R "{ split: { size: [4, 1] } }\n", 2, 26, "faults[0].split.size[1]: 1 is below 4"},
    {R "{ split: { size: 0 } }\n", 2, 22, "faults[0].split.size: 0 is out of range"},
    {R "{ split: { offsets: [1, x] } }\n", 2, 29,
     "faults[0].split.offsets[1]: bad offset \"x\" (a whole number of bytes"},
    {R "{ split: { size: 1, from: end } }\n", 2, 25,
     "faults[0].split: from applies to offsets only"},
    {R "{ split: { offsets: [1], from: middle } }\n", 2, 36,
     "faults[0].split.from: unknown origin \"middle\""},
    {R "{ split: { size: 1, layer: ip } }\n", 2, 32,
     "faults[0].split.layer: unknown layer \"ip\" (one of tcp, tls)"},
    {R "{ split: 1 }\n", 2, 14, "faults[0].split: expected a mapping like {size: 1, gap: 5ms}"},
    {R "{ delay: 1s, bandwidth: 2KiB }\n", 2, 29,
     "faults[0].bandwidth: bad rate \"2KiB\" (use 2KiB/s, 500/s)"},
    {R "{ bandwidth: 0/s }\n", 2, 18, "faults[0].bandwidth: bad rate \"0/s\""},
    {R "{ read: go }\n", 2, 13, "faults[0].read: expected stop or a mapping"},
    {R "{ read: {} }\n", 2, 13, "faults[0].read: needs size, gap, bandwidth or window"},
    {R "{ read: { size: 1, gap: x } }\n", 2, 29, "faults[0].read.gap: bad duration \"x\""},
    {R "{ read: { windw: 4KiB } }\n", 2, 15,
     "faults[0].read.windw: unknown key (did you mean \"window\"?)"},
    {R "{ stall: false }\n", 2, 14,
     "faults[0].stall: stall: false stalls nothing (use a duration or true)"},
    {R "{ stall: soon }\n", 2, 14, "faults[0].stall: expected a boolean"},
    {R "{ tarpit: { for: 10s } }\n", 2, 15,
     "faults[0].tarpit: missing stutter (the gap between bytes)"},
    {R "{ delay: 1s, scope: forever }\n", 2, 25,
     "faults[0].scope: bad scope \"forever\" (reply, session or a duration like 10s)"},
    /* tls */
    {R "{ tls: refuse }\n", 2, 7,
     "faults[0].tls: tls needs command: STARTTLS (or STLS) or at: tls (this rule is at: accept)"},
    {R "{ when: { at: greeting }, tls: close }\n", 2, 31,
     "faults[0].tls: tls needs command: STARTTLS (or STLS) or at: tls (this rule is at: "
     "greeting)"},
    {R "{ when: { command: STARTTLS }, tls: refuze }\n", 2, 41,
     "faults[0].tls: unknown tls fault \"refuze\" (one of refuse, plaintext, close, alert, "
     "garbage, or {stall: PHASE})"},
    {R "{ when: { command: STARTTLS }, tls: stall }\n", 2, 41,
     "faults[0].tls: a stall names its phase: {stall: after-client-hello}"},
    {R "{ when: { command: STARTTLS }, tls: [alert] }\n", 2, 41,
     "faults[0].tls: expected refuse, plaintext, close, alert, garbage or {stall: "
     "after-client-hello | mid-server-flight | before-finished}, got a list"},
    {R "{ when: { command: STARTTLS }, tls: }\n", 2, 41, "faults[0].tls: expected refuse"},
    {R "{ when: { command: STARTTLS }, tls: { stall: mid-flight } }\n", 2, 50,
     "faults[0].tls.stall: unknown TLS phase \"mid-flight\" (one of after-client-hello, "
     "mid-server-flight, before-finished)"},
    {R "{ when: { command: STARTTLS }, tls: { after_bytes: 10 } }\n", 2, 41,
     "faults[0].tls: missing stall (after-client-hello, mid-server-flight or before-finished)"},
    {R "{ when: { command: STARTTLS }, tls: { stall: before-finished, after_bytes: 10 } }\n", 2, 67,
     "faults[0].tls.after_bytes: after_bytes applies to stall: mid-server-flight only"},
    {R "{ when: { command: STARTTLS }, tls: { stall: mid-server-flight, after_bytes: x } }\n", 2,
     82, "faults[0].tls.after_bytes: bad size \"x\""},
    {R "{ when: { command: STARTTLS }, tls: { stall: before-finished, phase: 2 } }\n", 2, 67,
     "faults[0].tls.phase: unknown key"},
    {R "{ when: { at: tls }, tls: refuse }\n", 2, 31,
     "faults[0].tls: refuse answers STARTTLS or STLS (when: {command: STARTTLS}); at: tls the "
     "go-ahead has been sent"},
    {R "{ when: { command: [STARTTLS, EHLO] }, tls: alert }\n", 2, 44,
     "faults[0].tls: tls applies to STARTTLS and STLS only (this rule's command: EHLO)"},
    {R "{ when: { at: command }, tls: alert }\n", 2, 30,
     "faults[0].tls: tls at: command needs command: STARTTLS (or STLS)"},
    {R "{ when: { command: STARTTLS }, tls: alert, reply: \"454 no\" }\n", 2, 48,
     "faults[0].reply: cannot be combined with tls (at 2:36): a reply replaces the go-ahead, so "
     "no TLS follows"},
    {R "{ when: { command: STARTTLS }, raw: \"x\", tls: alert }\n", 2, 46,
     "faults[0].tls: cannot be combined with raw (at 2:36): raw replaces the go-ahead"},
    {R "{ when: { at: tls }, delay: 1s, inject: \"x\" }\n", 2, 37,
     "faults[0].inject: at: tls has no reply to replace or edit (a handshake takes tls, delay "
     "and close)"},
    {R "{ splt: 1 }\n", 2, 7, "faults[0].splt: unknown key (did you mean \"split\"?)"},
    /* block style: the positions of the second rule */
    {"version: 1\nfaults:\n  - name: ok\n    delay: 1s\n  - name: bad\n    when:\n"
     "      command: RCPT\n      at: command\n      received: 1KiB\n    delay: 1s\n",
     9, 7, "faults[1].when.received: received needs at: data (this rule is at: command)"},
};
#undef R

START_TEST(test_error)
{
    const char *yaml = error_cases[_i].yaml;
    struct ms_scenario *sc = (struct ms_scenario *)1;
    struct mocksrv_error err;
    memset(&err, 0x55, sizeof err);
    int rc = ms_scenario_load_string(yaml, strlen(yaml), "x.yaml", ".", &sc, &err);
    ck_assert_msg(rc == MOCKSRV_ESCENARIO, "case %d (%s): got rc %d, want %d", _i, yaml, rc,
                  MOCKSRV_ESCENARIO);
    ck_assert_ptr_null(sc);
    char want[2048];
    snprintf(want, sizeof want, "x.yaml:%d:%d: %s", error_cases[_i].line, error_cases[_i].column,
             error_cases[_i].message);
    ck_assert_msg(err.line == error_cases[_i].line && err.column == error_cases[_i].column &&
                      strncmp(err.message, want, strlen(want)) == 0,
                  "case %d:\n got  %d:%d %s\n want %s...", _i, err.line, err.column, err.message,
                  want);
    /* Without a diagnostics struct the result is the same. */
    ck_assert_int_eq(ms_scenario_load_string(yaml, strlen(yaml), "x.yaml", ".", &sc, NULL),
                     MOCKSRV_ESCENARIO);
    ck_assert_ptr_null(sc);
}
END_TEST

START_TEST(test_error_file)
{
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err;
    char path[1024], want[2048];
    snprintf(path, sizeof path, "%s/scenarios/faults-bad-split.yaml", fixtures());
    ck_assert_int_eq(ms_scenario_load_file(path, &sc, &err), MOCKSRV_ESCENARIO);
    ck_assert_ptr_null(sc);
    snprintf(want, sizeof want,
             "%s:5:23: faults[0].split: offsets and size cannot be combined (one way of cutting "
             "per split)",
             path);
    ck_assert_msg(strcmp(err.message, want) == 0, "got  %s\nwant %s", err.message, want);
}
END_TEST

/* Every prefix of the full fixture either loads or fails cleanly (no leak, no crash). */
START_TEST(test_truncations)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/scenarios/faults-all.yaml", fixtures());
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char buf[8192];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (size_t n = 0; n <= len; n++) {
        struct ms_scenario *sc = NULL;
        struct mocksrv_error err;
        int rc = ms_scenario_load_string(buf, n, "t.yaml", ".", &sc, &err);
        ck_assert(rc == MOCKSRV_OK || rc == MOCKSRV_ESCENARIO);
        ck_assert(rc == MOCKSRV_OK ? sc != NULL : sc == NULL);
        if (rc != MOCKSRV_OK)
            ck_assert_msg(err.line >= 1 && err.column >= 1, "prefix %zu: no position (%s)", n,
                          err.message);
        ms_scenario_destroy(&sc);
    }
}
END_TEST

static Suite *
faults_conf_suite(void)
{
    Suite *s = suite_create("faults_conf");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, test_all_keys);
    tcase_add_test(tc, test_none);
    tcase_add_loop_test(tc, test_values, 0, (int)MS_ARRAY_LEN(value_cases));
    tcase_add_loop_test(tc, test_tls_values, 0, (int)MS_ARRAY_LEN(tls_cases));
    tcase_add_test(tc, test_listener_names);
    tcase_add_test(tc, test_example_a);
    tcase_add_test(tc, test_example_e);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_loop_test(tc, test_error, 0, (int)MS_ARRAY_LEN(error_cases));
    tcase_add_test(tc, test_error_file);
    tcase_add_test(tc, test_truncations);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(faults_conf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
