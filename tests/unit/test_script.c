/*
 * test_script.c - the `script:` of a `protocol: script` listener in the scenario loader
 * (scenario_script.c into struct ms_script_step of scenario.h, SPEC 3.4): the model of a valid
 * script (bytes with their CRLFs, raw bytes exact, globs, delays, close kinds with `reset` = rst,
 * starttls, positions), every loader error with its exact line:column, the --state-out round
 * trip of a script, and the example fixture fixtures/scenarios/script-odd-smtp.yaml.
 *
 * Table-driven cases print "got X, want Y". Fixtures come from $MOCKSRV_FIXTURES (set by
 * ctest), else ./fixtures (run from the source root).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"
#include "store.h"

static const char *
fixtures(void)
{
    const char *d = getenv("MOCKSRV_FIXTURES");
    return d && *d ? d : "fixtures";
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

/* Printable form of bytes for messages: \r \n \0 and other control bytes escaped. */
static const char *
show(const char *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r')
            o += (size_t)snprintf(out + o, cap - o, "\\r");
        else if (c == '\n')
            o += (size_t)snprintf(out + o, cap - o, "\\n");
        else if (c < 0x20 || c >= 0x7f)
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}

static void
check_bytes(const char *what, const char *got, size_t got_len, const char *want, size_t want_len)
{
    char g[512], w[512];
    ck_assert_msg(got_len == want_len && memcmp(got, want, want_len) == 0,
                  "%s: got \"%s\" (%zu bytes), want \"%s\" (%zu bytes)", what,
                  show(got, got_len, g, sizeof g), got_len, show(want, want_len, w, sizeof w),
                  want_len);
}

static const char *const odd_yaml =
    "listeners:\n"                                              /* 1 */
    "  odd:\n"                                                  /* 2 */
    "    protocol: script\n"                                    /* 3 */
    "    port: 0\n"                                             /* 4 */
    "    script:\n"                                             /* 5 */
    "      - send: \"220 odd.example ESMTP\"\n"                 /* 6 */
    "      - expect: \"EHLO *\"\n"                              /* 7 */
    "      - send: [\"250-odd.example\", \"250 AUTH PLAIN\"]\n" /* 8 */
    "      - delay: 500ms\n"                                    /* 9 */
    "      - raw: \"250 bare\\n\\0x\"\n"                        /* 10 */
    "      - send: \"own end\\n\"\n"                            /* 11 */
    "      - send: \"\"\n"                                      /* 12 */
    "      - starttls: true\n"                                  /* 13 */
    "      - expect: \"QUIT\"\n"                                /* 14 */
    "      - close: reset\n"                                    /* 15 */
    "  smtp: { protocol: smtp, port: 0 }\n";                    /* 16 */

/* What one step of odd_yaml must be. */
struct want_step {
    enum ms_script_op op;
    const char *bytes;
    size_t len;
    int raw;
    size_t n_lines;
    int64_t delay_ms;
    enum ms_close_how how;
    int line, column;
};

START_TEST(test_model)
{
    static const struct want_step want[] = {
        {MS_SCRIPT_SEND, "220 odd.example ESMTP\r\n", 23, 0, 1, 0, MS_CLOSE_NONE, 6, 9},
        {MS_SCRIPT_EXPECT, "EHLO *", 6, 0, 0, 0, MS_CLOSE_NONE, 7, 9},
        {MS_SCRIPT_SEND, "250-odd.example\r\n250 AUTH PLAIN\r\n", 33, 0, 2, 0, MS_CLOSE_NONE, 8, 9},
        {MS_SCRIPT_DELAY, NULL, 0, 0, 0, 500, MS_CLOSE_NONE, 9, 9},
        {MS_SCRIPT_SEND, "250 bare\n\0x", 11, 1, 0, 0, MS_CLOSE_NONE, 10, 9},
        {MS_SCRIPT_SEND, "own end\n", 8, 0, 1, 0, MS_CLOSE_NONE, 11, 9},
        {MS_SCRIPT_SEND, "\r\n", 2, 0, 1, 0, MS_CLOSE_NONE, 12, 9},
        {MS_SCRIPT_STARTTLS, NULL, 0, 0, 0, 0, MS_CLOSE_NONE, 13, 9},
        {MS_SCRIPT_EXPECT, "QUIT", 4, 0, 0, 0, MS_CLOSE_NONE, 14, 9},
        {MS_SCRIPT_CLOSE, NULL, 0, 0, 0, 0, MS_CLOSE_RST, 15, 9},
    };
    struct ms_scenario *sc = load_ok(odd_yaml);
    const struct ms_listener_conf *l = ms_scenario_find_listener(sc, "odd");
    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(l->protocol, MS_PROTO_SCRIPT);
    ck_assert_int_eq(l->tls, MS_TLS_NONE);
    ck_assert_msg(l->n_script == MS_ARRAY_LEN(want), "steps: got %zu, want %zu", l->n_script,
                  MS_ARRAY_LEN(want));
    for (size_t i = 0; i < l->n_script; i++) {
        const struct ms_script_step *st = &l->script[i];
        const struct want_step *w = &want[i];
        char what[64];
        snprintf(what, sizeof what, "script[%zu]", i);
        ck_assert_msg(st->op == w->op, "%s.op: got %d, want %d", what, st->op, w->op);
        ck_assert_msg(st->pos.line == w->line && st->pos.column == w->column,
                      "%s position: got %d:%d, want %d:%d", what, st->pos.line, st->pos.column,
                      w->line, w->column);
        if (w->bytes)
            check_bytes(what, st->bytes, st->len, w->bytes, w->len);
        ck_assert_msg(st->raw == w->raw, "%s.raw: got %d, want %d", what, st->raw, w->raw);
        ck_assert_msg(st->n_lines == w->n_lines, "%s lines: got %zu, want %zu", what, st->n_lines,
                      w->n_lines);
        ck_assert_msg(st->delay_ms == w->delay_ms, "%s.delay: got %lld, want %lld", what,
                      (long long)st->delay_ms, (long long)w->delay_ms);
        if (w->op == MS_SCRIPT_CLOSE)
            ck_assert_msg(st->how == w->how, "%s.how: got %d, want %d", what, st->how, w->how);
    }
    /* the lines as written, for --state-out */
    ck_assert_str_eq(l->script[2].lines[0], "250-odd.example");
    ck_assert_str_eq(l->script[2].lines[1], "250 AUTH PLAIN");
    ck_assert_str_eq(l->script[5].lines[0], "own end\n");
    /* other listeners have no script */
    const struct ms_listener_conf *smtp = ms_scenario_find_listener(sc, "smtp");
    ck_assert_ptr_null(smtp->script);
    ck_assert_uint_eq(smtp->n_script, 0);
    ms_scenario_destroy(&sc);
}
END_TEST

START_TEST(test_close_kinds)
{
    static const struct {
        const char *word;
        enum ms_close_how how;
    } cases[] = {
        {"fin", MS_CLOSE_FIN},   {"rst", MS_CLOSE_RST}, {"reset", MS_CLOSE_RST},
        {"half", MS_CLOSE_HALF}, {"RST", MS_CLOSE_RST}, {"Fin", MS_CLOSE_FIN},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cases); i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml,
                 "listeners: { odd: { protocol: script, script: [{send: hi}, {close: %s}] } }\n",
                 cases[i].word);
        struct ms_scenario *sc = load_ok(yaml);
        const struct ms_listener_conf *l = ms_scenario_find_listener(sc, "odd");
        ck_assert_msg(l->n_script == 2 && l->script[1].op == MS_SCRIPT_CLOSE &&
                          l->script[1].how == cases[i].how,
                      "close: %s: got how %d, want %d", cases[i].word, l->script[1].how,
                      cases[i].how);
        ms_scenario_destroy(&sc);
    }
}
END_TEST

START_TEST(test_implicit_tls_and_durations)
{
    struct ms_scenario *sc = load_ok("listeners:\n"
                                     "  odd:\n"
                                     "    protocol: script\n"
                                     "    tls: implicit\n"
                                     "    script: [{delay: 0ms}, {delay: 1.5s}, {delay: 2},\n"
                                     "             {expect: \"\"}, {send: \"x\"}]\n");
    const struct ms_listener_conf *l = ms_scenario_find_listener(sc, "odd");
    ck_assert_int_eq(l->tls, MS_TLS_IMPLICIT);
    ck_assert_uint_eq(l->n_script, 5);
    ck_assert_int_eq(l->script[0].delay_ms, 0);
    ck_assert_int_eq(l->script[1].delay_ms, 1500);
    ck_assert_int_eq(l->script[2].delay_ms, 2000);
    ck_assert_int_eq(l->script[3].op, MS_SCRIPT_EXPECT);
    ck_assert_uint_eq(l->script[3].len, 0);
    ck_assert_str_eq(l->script[3].bytes, "");
    ms_scenario_destroy(&sc);
}
END_TEST

struct bad_case {
    const char *yaml;
    int line, column;
    const char *message; /* the start of the message after "x.yaml:L:C: " */
};

#define L "listeners:\n  odd:\n    protocol: script\n"

static const struct bad_case bad_cases[] = {
    /* protocol and script go together */
    {"listeners:\n  odd: { protocol: script }\n", 2, 3,
     "listeners.odd: protocol script needs a script: a list of steps (send, raw, expect, delay, "
     "close or starttls)"},
    {"listeners:\n  odd: { protocol: script, port: 0 }\n", 2, 3,
     "listeners.odd: protocol script needs a script"},
    {"listeners:\n  mx: { protocol: smtp, script: [{send: x}] }\n", 2, 25,
     "listeners.mx.script: only a listener with protocol: script has a script (this one is "
     "smtp)"},
    {"listeners:\n  pop3: { script: [{send: x}] }\n", 2, 11,
     "listeners.pop3.script: only a listener with protocol: script has a script (this one is "
     "pop3)"},
    {L "    tls: starttls\n    script: [{send: x}]\n", 4, 10,
     "listeners.odd.tls: a script has no STARTTLS command to offer: use tls: none with a "
     "starttls step, or tls: implicit"},
    {L "    tls: required\n    script: [{send: x}]\n", 4, 10, "listeners.odd.tls: a script has no"},
    {L "    tls: implicit\n    script: [{send: x}, {starttls: true}]\n", 5, 26,
     "listeners.odd.script[1].starttls: TLS is up from the start on a tls: implicit listener"},
    /* the list */
    {L "    script: {send: x}\n", 4, 13,
     "listeners.odd.script: expected a list of steps, like [{send: \"220 odd.example\"}, "
     "{expect: \"QUIT\"}], got a mapping"},
    {L "    script: []\n", 4, 13, "listeners.odd.script: an empty script (give at least one step)"},
    {L "    script:\n", 4, 12, "listeners.odd.script: expected a list of steps"},
    /* a step */
    {L "    script: [send]\n", 4, 14,
     "listeners.odd.script[0]: expected a step (a mapping with one key: send, raw, expect, "
     "delay, close or starttls), got \"send\""},
    {L "    script: [{}]\n", 4, 14,
     "listeners.odd.script[0]: an empty step (one key: send, raw, expect, delay, close or "
     "starttls)"},
    {L "    script:\n      - send: a\n        expect: b\n", 6, 9,
     "listeners.odd.script[0].expect: a step has one key: make \"expect\" a step of its own "
     "(- expect: ...)"},
    {L "    script: [{sned: a}]\n", 4, 15,
     "listeners.odd.script[0].sned: unknown key (did you mean \"send\"?)"},
    {L "    script: [{reply: a}]\n", 4, 15,
     "listeners.odd.script[0].reply: unknown key (expected one of: send, raw, expect, delay, "
     "close, starttls)"},
    /* send */
    {L "    script: [{send: }]\n", 4, 21,
     "listeners.odd.script[0].send: expected a line or a list of lines, got nothing"},
    {L "    script: [{send: {a: b}}]\n", 4, 21,
     "listeners.odd.script[0].send: expected a line or a list of lines, got a mapping"},
    {L "    script: [{send: []}]\n", 4, 21,
     "listeners.odd.script[0].send: an empty list (send at least one line)"},
    {L "    script: [{send: [a, [b]]}]\n", 4, 25,
     "listeners.odd.script[0].send[1]: expected a line, got a list"},
    {L "    script: [{send: \"a\\0b\"}]\n", 4, 21,
     "listeners.odd.script[0].send: a line holds no NUL byte (use raw for exact bytes)"},
    /* raw */
    {L "    script: [{raw: \"\"}]\n", 4, 20,
     "listeners.odd.script[0].raw: expected a non-empty string (exact bytes, \"250 OK\\n\"), "
     "got \"\""},
    {L "    script: [{raw: [a]}]\n", 4, 20, "listeners.odd.script[0].raw: expected a non-empty"},
    /* expect */
    {L "    script: [{expect: }]\n", 4, 23,
     "listeners.odd.script[0].expect: expected a glob for one line, like \"EHLO *\", got "
     "nothing"},
    {L "    script: [{expect: \"EHLO\\r\\n\"}]\n", 4, 23,
     "listeners.odd.script[0].expect: a glob holds no CR or LF (it matches one line without "
     "its line end)"},
    {L "    script: [{expect: [a, b]}]\n", 4, 23,
     "listeners.odd.script[0].expect: expected a glob for one line"},
    /* delay */
    {L "    script: [{delay: soon}]\n", 4, 22,
     "listeners.odd.script[0].delay: bad duration \"soon\" (use 250ms, 2s, 1.5s, 1m, 1h)"},
    {L "    script: [{delay: 8d}]\n", 4, 22,
     "listeners.odd.script[0].delay: 8d is out of range (0ms .. 7d)"},
    /* close */
    {L "    script: [{close: slam}]\n", 4, 22,
     "listeners.odd.script[0].close: unknown close \"slam\" (one of fin, rst, reset, half)"},
    {L "    script: [{close: fin}, {send: x}]\n", 4, 28,
     "listeners.odd.script[1]: nothing may follow close (at 4:15): it ends the session"},
    /* starttls */
    {L "    script: [{starttls: false}]\n", 4, 25,
     "listeners.odd.script[0].starttls: starttls: false does nothing (leave it out)"},
    {L "    script: [{starttls: maybe}]\n", 4, 25,
     "listeners.odd.script[0].starttls: expected a boolean (true or false)"},
    {L "    script:\n      - starttls: true\n      - send: x\n      - starttls: true\n", 7, 9,
     "listeners.odd.script[2]: a second starttls (TLS is up since the one at 5:9)"},
};

#undef L

START_TEST(test_errors)
{
    const struct bad_case *c = &bad_cases[_i];
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    int rc = ms_scenario_load_string(c->yaml, strlen(c->yaml), "x.yaml", NULL, &sc, &err);
    ck_assert_msg(rc == MOCKSRV_ESCENARIO, "case %d: got rc %d, want MOCKSRV_ESCENARIO\n%s", _i, rc,
                  c->yaml);
    ck_assert_ptr_null(sc);
    char want[1024];
    snprintf(want, sizeof want, "x.yaml:%d:%d: %s", c->line, c->column, c->message);
    ck_assert_msg(strncmp(err.message, want, strlen(want)) == 0 && err.line == c->line &&
                      err.column == c->column,
                  "case %d:\ngot  %s\nwant %s", _i, err.message, want);
}
END_TEST

/* --state-out writes the script back; loading that document gives the same steps. */
START_TEST(test_state_round_trip)
{
    struct ms_scenario *sc = load_ok(odd_yaml);
    struct ms_store *st = NULL;
    struct mocksrv_error err = {0};
    ck_assert_msg(ms_store_load_scenario(sc, 1, &st, &err) == MOCKSRV_OK, "store: %s", err.message);
    struct ms_buf yaml = {0};
    int rc = ms_scenario_format_state(sc, st, NULL, &yaml, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "format_state: %s", err.message);
    struct ms_scenario *back = NULL;
    rc = ms_scenario_load_string(yaml.data, yaml.len, "state.yaml", NULL, &back, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "reload: %s\n%s", err.message, yaml.data);
    const struct ms_listener_conf *a = ms_scenario_find_listener(sc, "odd");
    const struct ms_listener_conf *b = ms_scenario_find_listener(back, "odd");
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(b->protocol, MS_PROTO_SCRIPT);
    ck_assert_msg(a->n_script == b->n_script, "steps: got %zu, want %zu\n%s", b->n_script,
                  a->n_script, yaml.data);
    for (size_t i = 0; i < a->n_script; i++) {
        const struct ms_script_step *x = &a->script[i], *y = &b->script[i];
        char what[64];
        snprintf(what, sizeof what, "script[%zu] after the round trip", i);
        ck_assert_msg(x->op == y->op && x->raw == y->raw && x->delay_ms == y->delay_ms &&
                          x->how == y->how && x->n_lines == y->n_lines,
                      "%s: got op %d raw %d delay %lld how %d lines %zu\n%s", what, y->op, y->raw,
                      (long long)y->delay_ms, y->how, y->n_lines, yaml.data);
        if (x->bytes)
            check_bytes(what, y->bytes, y->len, x->bytes, x->len);
    }
    ck_assert_ptr_null(ms_scenario_find_listener(back, "smtp")->script);
    ms_buf_fini(&yaml);
    ms_scenario_destroy(&back);
    ms_store_destroy(&st);
    ms_scenario_destroy(&sc);
}
END_TEST

START_TEST(test_fixture)
{
    char path[1024];
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    snprintf(path, sizeof path, "%s/scenarios/script-odd-smtp.yaml", fixtures());
    int rc = ms_scenario_load_file(path, &sc, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "load %s: %s", path, err.message);
    size_t scripts = 0;
    for (size_t i = 0; i < sc->n_listeners; i++) {
        const struct ms_listener_conf *l = &sc->listeners[i];
        ck_assert_msg((l->protocol == MS_PROTO_SCRIPT) == (l->n_script > 0),
                      "listener %s: protocol %d with %zu steps", l->name, l->protocol, l->n_script);
        scripts += l->protocol == MS_PROTO_SCRIPT;
    }
    ck_assert_msg(scripts >= 1, "no script listener in %s", path);
    ms_scenario_destroy(&sc);
}
END_TEST

static Suite *
script_suite(void)
{
    Suite *s = suite_create("script");
    TCase *tc = tcase_create("loader");
    tcase_add_test(tc, test_model);
    tcase_add_test(tc, test_close_kinds);
    tcase_add_test(tc, test_implicit_tls_and_durations);
    tcase_add_loop_test(tc, test_errors, 0, (int)MS_ARRAY_LEN(bad_cases));
    tcase_add_test(tc, test_state_round_trip);
    tcase_add_test(tc, test_fixture);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(script_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
