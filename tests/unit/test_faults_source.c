/*
 * test_faults_source.c - what a reload compares (FAULTS.md 5): each fault rule's `source`, the
 * canonical text scenario_faults.c makes of its YAML node, and ms_fault_run_keep (fault.c), which
 * hands the run counters of unchanged rules to the new scenario.
 *
 * Not here: the SIGHUP path itself (tests/interop/test_reload.py observes it with real
 * sessions).
 *
 * Invariants checked: two spellings of one rule (block or flow style, spacing, comments) have
 * the same source; any change of a key, a value, their order or a scalar's quoting gives
 * another; a rule keeps its counters only when its name and source are both unchanged, and
 * each old rule gives them to one new rule at most.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "scenario.h"
#include "server.h"

static struct ms_scenario *
load_ok(const char *yaml)
{
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    int rc = ms_scenario_load_string(yaml, strlen(yaml), "x.yaml", NULL, &sc, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "load: got %d (%s), want 0", rc, err.message);
    return sc;
}

#define HEAD "version: 1\nlisteners: { smtp: { protocol: smtp, port: 0 } }\nfaults:\n"

/* The source of rule 0 of a scenario made of HEAD + rules. */
static char *
source_of(const char *rules)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, "%s%s", HEAD, rules);
    struct ms_scenario *sc = load_ok(yaml);
    ck_assert_uint_ge(sc->faults.n_rules, 1);
    ck_assert_ptr_nonnull(sc->faults.rules[0].source);
    char *src = strdup(sc->faults.rules[0].source);
    ms_scenario_destroy(&sc);
    return src;
}

START_TEST(test_source_same_for_spellings)
{
    static const char *const same[] = {
        "  - name: r\n    when: { command: NOOP, nth: 2 }\n    reply: \"250 x\"\n",
        "  - name: r\n    when:\n      command: NOOP\n      nth: 2\n    reply: \"250 x\"\n",
        "  - { name: r, when: { command: NOOP, nth: 2 }, reply: \"250 x\" }\n",
        ("  # a comment\n  - name: r   # another\n    when: {command:   NOOP, nth: 2}\n"
         "    reply: \"250 x\"\n"),
        "  - name: r\n    when: { command: NOOP, nth: 2 }\n    reply: '250 x'\n",
    };
    char *want = source_of(same[0]);
    for (size_t i = 1; i < sizeof same / sizeof same[0]; i++) {
        char *got = source_of(same[i]);
        ck_assert_msg(strcmp(got, want) == 0, "case %zu: got %s, want %s", i, got, want);
        free(got);
    }
    free(want);
}
END_TEST

START_TEST(test_source_differs_on_change)
{
    static const char *const base = "  - name: r\n    when: { command: NOOP, nth: 2 }\n"
                                    "    reply: \"250 x\"\n";
    static const char *const other[] = {
        "  - name: r\n    when: { command: NOOP, nth: 3 }\n    reply: \"250 x\"\n",
        "  - name: r\n    when: { command: NOOP, nth: 2 }\n    reply: \"250 y\"\n",
        "  - name: s\n    when: { command: NOOP, nth: 2 }\n    reply: \"250 x\"\n",
        "  - name: r\n    when: { nth: 2, command: NOOP }\n    reply: \"250 x\"\n",
        "  - name: r\n    when: { command: NOOP, nth: 2 }\n    reply: 250 x\n", /* plain */
        "  - name: r\n    when: { command: NOOP, nth: 2, count: run }\n    reply: \"250 x\"\n",
        "  - name: r\n    when: { command: [NOOP], nth: 2 }\n    reply: \"250 x\"\n",
    };
    char *want = source_of(base);
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        char *got = source_of(other[i]);
        ck_assert_msg(strcmp(got, want) != 0, "case %zu: same source %s", i, got);
        free(got);
    }
    free(want);
}
END_TEST

START_TEST(test_source_escapes_nul)
{
    /* a NUL inside a value must not hide what follows it from the comparison */
    char *a = source_of("  - name: r\n    when: { command: NOOP }\n    raw: \"a\\0b\"\n");
    char *b = source_of("  - name: r\n    when: { command: NOOP }\n    raw: \"a\\0c\"\n");
    ck_assert_msg(strcmp(a, b) != 0, "got equal sources %s", a);
    free(a);
    free(b);
}
END_TEST

START_TEST(test_run_keep)
{
    struct ms_scenario *old = load_ok(HEAD "  - name: kept\n    when: { command: NOOP }\n"
                                           "    reply: \"250 a\"\n"
                                           "  - name: changed\n    when: { command: RSET }\n"
                                           "    reply: \"250 b\"\n"
                                           "  - when: { command: VRFY }\n    reply: \"252 c\"\n");
    /* new order, one definition changed, the unnamed rule moved (its name is its place) */
    struct ms_scenario *neu = load_ok(HEAD "  - when: { command: VRFY }\n    reply: \"252 c\"\n"
                                           "  - name: changed\n    when: { command: RSET }\n"
                                           "    reply: \"250 B\"\n"
                                           "  - name: kept\n    when: { command: NOOP }\n"
                                           "    reply: \"250 a\"\n"
                                           "  - name: kept\n    when: { command: NOOP }\n"
                                           "    reply: \"250 a\"\n");
    /* nothing ran yet: nothing to keep, and no crash */
    ms_fault_run_init(neu);
    ms_fault_run_keep(neu, old);
    ck_assert_uint_eq(neu->faults.run[2].matches, 0);
    ms_fault_run_init(old);
    for (size_t i = 0; i < old->faults.n_rules; i++) {
        old->faults.run[i].matches = 10 + i;
        old->faults.run[i].fired = 20 + i;
        old->faults.run[i].replies_used = 30 + i;
        old->faults.run[i].sessions = 40 + (unsigned)i;
    }
    ms_fault_run_keep(neu, old);
    const struct ms_fault_runstate *r = neu->faults.run;
    /* "kept" (old 0) goes to the first new rule of that name and definition only */
    ck_assert_uint_eq(r[2].matches, 10);
    ck_assert_uint_eq(r[2].fired, 20);
    ck_assert_uint_eq(r[2].replies_used, 30);
    ck_assert_uint_eq(r[2].sessions, 40);
    ck_assert_uint_eq(r[3].matches, 0);
    ck_assert_uint_eq(r[1].matches, 0); /* changed definition: reset */
    ck_assert_uint_eq(r[0].matches, 0); /* faults[2] became faults[0]: another name */
    ms_scenario_destroy(&old);
    ms_scenario_destroy(&neu);
}
END_TEST

static Suite *
faults_source_suite(void)
{
    Suite *s = suite_create("faults_source");
    TCase *tc = tcase_create("source");
    tcase_add_test(tc, test_source_same_for_spellings);
    tcase_add_test(tc, test_source_differs_on_change);
    tcase_add_test(tc, test_source_escapes_nul);
    tcase_add_test(tc, test_run_keep);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(faults_source_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
