/*
 * test_scenario_mail.c - users, mailboxes and messages in the scenario loader (scenario_mail.c):
 * every mailbox and message error with its exact line:column, and a scenario too large for the
 * machine (the memory estimate against RLIMIT_AS, the count cap). The fixtures with mailboxes,
 * read into their fields, are in test_scenario.c.
 *
 * Table-driven cases print "got X, want Y".
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "scenario.h"

/* ---- errors ---- */

/* users.a.mailboxes: at line 4; a mailbox name at 5:7 */
#define MB "users:\n  a:\n    password: x\n    mailboxes:\n"
/* ... and a message list of INBOX at line 6: "        - " puts a message at 7:11 */
#define MSG MB "      INBOX:\n        messages:\n"

static const struct {
    const char *yaml;
    int line, column;
    const char *message;
} mailbox_error_cases[] = {
    /* mailboxes */
    {MB "      INBOX: [1]\n", 5, 14, "users.a.mailboxes.INBOX: expected a mapping, got a list"},
    {MB "      INBOX: yes\n", 5, 14, "users.a.mailboxes.INBOX: expected a mapping, got \"yes\""},
    {MB "      INBOX: {}\n      inbox: {}\n", 6, 7,
     "users.a.mailboxes.inbox: INBOX is already at 5:7"},
    {MB "      Inbox:\n      INBOX:\n", 6, 7, "users.a.mailboxes.INBOX: INBOX is already at 5:7"},
    {MB "      Sent: {}\n      Sent: {}\n", 6, 7,
     "users.a.mailboxes.Sent: duplicate key (first at 5:7)"},
    {MB "      \"\": {}\n", 5, 7, "users.a.mailboxes.: bad mailbox name: empty"},
    {MB "      /a: {}\n", 5, 7, "users.a.mailboxes./a: bad mailbox name: a leading or trailing /"},
    {MB "      a/: {}\n", 5, 7, "users.a.mailboxes.a/: bad mailbox name: a leading or trailing /"},
    {MB "      a//b: {}\n", 5, 7, "users.a.mailboxes.a//b: bad mailbox name: an empty level (//)"},
    {MB "      \"a*\": {}\n", 5, 7, "users.a.mailboxes.a*: bad mailbox name: a wildcard (* or %)"},
    {MB "      a%b: {}\n", 5, 7, "users.a.mailboxes.a%b: bad mailbox name: a wildcard (* or %)"},
    {MB "      \"a\\tb\": {}\n", 5, 7,
     "users.a.mailboxes.a\\x09b: bad mailbox name: a control character"},
    {MB "      \"a\\0b\": {}\n", 5, 7, "users.a.mailboxes.a\\x00b: bad mailbox name: a NUL"},
    {MB "      INBOX: { uidvalidity: 0 }\n", 5, 29,
     "users.a.mailboxes.INBOX.uidvalidity: 0 is out of range (1 .. 4294967295)"},
    {MB "      INBOX: { uidvalidity: 4294967296 }\n", 5, 29,
     "users.a.mailboxes.INBOX.uidvalidity: 4294967296 is out of range (1 .. 4294967295)"},
    {MB "      INBOX: { uidvalidity: x }\n", 5, 29,
     "users.a.mailboxes.INBOX.uidvalidity: expected an integer, got \"x\""},
    {MB "      INBOX: { uidnext: 0 }\n", 5, 25,
     "users.a.mailboxes.INBOX.uidnext: 0 is out of range (1 .. 4294967295)"},
    {MB "      INBOX: { uidnext: 3, messages: [{ raw: a, uid: 3 }] }\n", 5, 25,
     "users.a.mailboxes.INBOX.uidnext: 3 is not above the last message's UID 3"},
    {MB "      INBOX: { messages: [{ generate: { count: 5 } }], uidnext: 5 }\n", 5, 65,
     "users.a.mailboxes.INBOX.uidnext: 5 is not above the last message's UID 5"},
    {MB "      Sent: { special_use: '\\Inbox' }\n", 5, 28,
     "users.a.mailboxes.Sent.special_use: unknown special-use attribute \"\\\\Inbox\" (one of "
     "\\All, \\Archive, \\Drafts, \\Flagged, \\Junk, \\Sent, \\Trash)"},
    {MB "      Sent: { special_use: Sent }\n", 5, 28,
     "users.a.mailboxes.Sent.special_use: unknown special-use attribute \"Sent\""},
    {MB "      Sent: { special_use: [x] }\n", 5, 28,
     "users.a.mailboxes.Sent.special_use: expected a special-use attribute, got a list"},
    {MB "      Sent: { subscribed: maybe }\n", 5, 27,
     "users.a.mailboxes.Sent.subscribed: expected a boolean (true or false), got \"maybe\""},
    {MB "      Sent: { uidvalidty: 1 }\n", 5, 15,
     "users.a.mailboxes.Sent.uidvalidty: unknown key (did you mean \"uidvalidity\"?)"},
    {MB "      Sent: { messages: {} }\n", 5, 25,
     "users.a.mailboxes.Sent.messages: expected a list of messages, got a mapping"},
    /* messages: the list */
    {MSG "        - 1\n", 7, 11,
     "users.a.mailboxes.INBOX.messages[0]: expected a message (a mapping with file, raw or "
     "generate), got \"1\""},
    {MSG "        - { flags: [] }\n", 7, 11,
     "users.a.mailboxes.INBOX.messages[0]: a message needs one of file, raw or generate"},
    {MSG "        - raw: a\n        - { raw: a, file: b }\n", 8, 21,
     "users.a.mailboxes.INBOX.messages[1].file: a message has one of file, raw or generate "
     "(raw at 8:13)"},
    {MSG "        - { generate: { count: 1 }, raw: a }\n", 7, 37,
     "users.a.mailboxes.INBOX.messages[0].raw: a message has one of file, raw or generate "
     "(generate at 7:13)"},
    {MSG "        - { raw: a, raw: b }\n", 7, 21,
     "users.a.mailboxes.INBOX.messages[0].raw: duplicate key (first at 7:13)"},
    {MSG "        - { raw: a, flag: [] }\n", 7, 21,
     "users.a.mailboxes.INBOX.messages[0].flag: unknown key (did you mean \"flags\"?)"},
    /* file, raw */
    {MSG "        - file: no-such-file.eml\n", 7, 17,
     "users.a.mailboxes.INBOX.messages[0].file: cannot read \"no-such-file.eml\": No such file "
     "or directory"},
    {MSG "        - file: \"\"\n", 7, 17,
     "users.a.mailboxes.INBOX.messages[0].file: expected a non-empty string, got \"\""},
    {MSG "        - file: [a]\n", 7, 17,
     "users.a.mailboxes.INBOX.messages[0].file: expected a non-empty string, got a list"},
    {MSG "        - file: /\n", 7, 17,
     "users.a.mailboxes.INBOX.messages[0].file: cannot read \"/\": Is a directory"},
    {MSG "        - file: /dev/null\n", 7, 17,
     "users.a.mailboxes.INBOX.messages[0].file: cannot read \"/dev/null\": not a regular file"},
    {MSG "        - raw:\n", 7, 15,
     "users.a.mailboxes.INBOX.messages[0].raw: expected a string (a literal block: raw: |), got "
     "nothing"},
    {MSG "        - raw: { a: b }\n", 7, 16,
     "users.a.mailboxes.INBOX.messages[0].raw: expected a string (a literal block: raw: |), got "
     "a mapping"},
    {MSG "        - { raw: a, exact: maybe }\n", 7, 28,
     "users.a.mailboxes.INBOX.messages[0].exact: expected a boolean"},
    {MSG "        - { generate: { count: 1 }, exact: true }\n", 7, 37,
     "users.a.mailboxes.INBOX.messages[0].exact: applies to file and raw, not generate"},
    /* generate */
    {MSG "        - generate: 5\n", 7, 21,
     "users.a.mailboxes.INBOX.messages[0].generate: expected a mapping, got \"5\""},
    {MSG "        - generate: {}\n", 7, 21,
     "users.a.mailboxes.INBOX.messages[0].generate: missing count (1 .. 1000000)"},
    {MSG "        - generate:\n", 7, 20,
     "users.a.mailboxes.INBOX.messages[0].generate: missing count (1 .. 1000000)"},
    {MSG "        - generate: { count: 0 }\n", 7, 30,
     "users.a.mailboxes.INBOX.messages[0].generate.count: 0 is out of range (1 .. 1000000)"},
    {MSG "        - generate: { count: 1000001 }\n", 7, 30,
     "users.a.mailboxes.INBOX.messages[0].generate.count: 1000001 is out of range (1 .. "
     "1000000)"},
    {MSG "        - generate: { count: 1, size: 63 }\n", 7, 39,
     "users.a.mailboxes.INBOX.messages[0].generate.size: 63 is out of range (64 .. 1GiB)"},
    {MSG "        - generate: { count: 1, size: big }\n", 7, 39,
     "users.a.mailboxes.INBOX.messages[0].generate.size: bad size \"big\""},
    {MSG "        - generate: { count: 1, colour: red }\n", 7, 33,
     "users.a.mailboxes.INBOX.messages[0].generate.colour: unknown key (expected one of: count, "
     "size)"},
    /* limits.message_size, even when limits: comes after users: */
    {MSG "        - generate: { count: 1, size: 2KiB }\nlimits: { message_size: 1KiB }\n", 7, 39,
     "users.a.mailboxes.INBOX.messages[0].generate.size: 2KiB is above limits.message_size "
     "(1KiB)"},
    {MSG "        - generate: { count: 1 }\nlimits: { message_size: 1000 }\n", 7, 21,
     "users.a.mailboxes.INBOX.messages[0].generate.size: 4KiB is above limits.message_size "
     "(1000)"},
    {"limits: { message_size: 4 }\n" MSG "        - raw: \"four\"\n        - raw: \"five\\n\"\n", 9,
     16,
     "users.a.mailboxes.INBOX.messages[1].raw: the message has 6 bytes, above "
     "limits.message_size (4)"},
    /* flags */
    {MSG "        - { raw: a, flags: '\\Seen' }\n", 7, 28,
     "users.a.mailboxes.INBOX.messages[0].flags: expected a list, like ['\\Seen', '$Label1'], "
     "got \"\\\\Seen\""},
    {MSG "        - { raw: a, flags: ['\\Seen', '\\Recent'] }\n", 7, 38,
     "users.a.mailboxes.INBOX.messages[0].flags[1]: \\Recent is set by the server, not by a "
     "scenario"},
    {MSG "        - { raw: a, flags: ['\\Important'] }\n", 7, 29,
     "users.a.mailboxes.INBOX.messages[0].flags[0]: unknown system flag \"\\\\Important\" (one "
     "of \\Seen, \\Answered, \\Flagged, \\Deleted, \\Draft; keywords have no \\)"},
    {MSG "        - { raw: a, flags: [\"a b\"] }\n", 7, 29,
     "users.a.mailboxes.INBOX.messages[0].flags[0]: bad keyword \"a b\" (an IMAP atom: no "
     "blanks, control or 8-bit characters, or any of ( ) { % * \" \\ ])"},
    {MSG "        - { raw: a, flags: [\"a(b\"] }\n", 7, 29,
     "users.a.mailboxes.INBOX.messages[0].flags[0]: bad keyword \"a(b\""},
    {MSG "        - { raw: a, flags: [\"a)\"] }\n", 7, 29,
     "users.a.mailboxes.INBOX.messages[0].flags[0]: bad keyword \"a)\""},
    {MSG "        - { raw: a, flags: [\"{1}\"] }\n", 7, 29,
     "users.a.mailboxes.INBOX.messages[0].flags[0]: bad keyword \"{1}\""},
    {MSG "        - { raw: a, flags: [\"50%\"] }\n", 7, 29,
     "users.a.mailboxes.INBOX.messages[0].flags[0]: bad keyword \"50%\""},
    {MSG "        - { raw: a, flags: [\"a*\"] }\n", 7, 29,
     "users.a.mailboxes.INBOX.messages[0].flags[0]: bad keyword \"a*\""},
    {MSG "        - { raw: a, flags: ['a\"b'] }\n", 7, 29,
     "users.a.mailboxes.INBOX.messages[0].flags[0]: bad keyword \"a\\\"b\""},
    {MSG "        - { raw: a, flags: ['a\\b'] }\n", 7, 29,
     "users.a.mailboxes.INBOX.messages[0].flags[0]: bad keyword \"a\\\\b\""},
    {MSG "        - { raw: a, flags: ['a]'] }\n", 7, 29,
     "users.a.mailboxes.INBOX.messages[0].flags[0]: bad keyword \"a]\""},
    {MSG "        - { raw: a, flags: [\"caf\xc3\xa9\"] }\n", 7, 29,
     "users.a.mailboxes.INBOX.messages[0].flags[0]: bad keyword \"caf\xc3\xa9\""},
    {MSG "        - { raw: a, flags: [[x]] }\n", 7, 29,
     "users.a.mailboxes.INBOX.messages[0].flags[0]: expected a flag, got a list"},
    {MSG "        - { raw: a, flags: [\"\"] }\n", 7, 29,
     "users.a.mailboxes.INBOX.messages[0].flags[0]: expected a flag, got \"\""},
    /* date */
    {MSG "        - { raw: a, date: yesterday }\n", 7, 27,
     "users.a.mailboxes.INBOX.messages[0].date: bad date \"yesterday\" (use 2024-05-01T09:00:00Z, "
     "2024-05-01T11:00:00+02:00 or 2024-05-01)"},
    {MSG "        - { raw: a, date: 2023-02-29T00:00:00Z }\n", 7, 27,
     "users.a.mailboxes.INBOX.messages[0].date: bad date \"2023-02-29T00:00:00Z\""},
    {MSG "        - { raw: a, date: 2024-05-01T24:00:00Z }\n", 7, 27,
     "users.a.mailboxes.INBOX.messages[0].date: bad date"},
    {MSG "        - { raw: a, date: }\n", 7, 27,
     "users.a.mailboxes.INBOX.messages[0].date: expected a date (2024-05-01T09:00:00Z), got "
     "nothing"},
    /* uid */
    {MSG "        - { raw: a, uid: 0 }\n", 7, 26,
     "users.a.mailboxes.INBOX.messages[0].uid: 0 is out of range (1 .. 4294967294)"},
    {MSG "        - { raw: a, uid: 4294967295 }\n", 7, 26,
     "users.a.mailboxes.INBOX.messages[0].uid: 4294967295 is out of range (1 .. 4294967294)"},
    {MSG "        - { raw: a, uid: 5 }\n        - { raw: b, uid: 5 }\n", 8, 26,
     "users.a.mailboxes.INBOX.messages[1].uid: uid 5 is not above the previous message's 5 "
     "(UIDs ascend in file order)"},
    {MSG "        - { raw: a, uid: 5 }\n        - raw: b\n        - { raw: c, uid: 6 }\n", 9, 26,
     "users.a.mailboxes.INBOX.messages[2].uid: uid 6 is not above the previous message's 6"},
    {MSG "        - { generate: { count: 10 }, uid: 5 }\n        - { raw: x, uid: 14 }\n", 8, 26,
     "users.a.mailboxes.INBOX.messages[1].uid: uid 14 is not above the previous message's 14"},
    {MSG "        - { raw: a, uid: 4294967294 }\n        - raw: b\n", 8, 11,
     "users.a.mailboxes.INBOX.messages[1]: UIDs run out: the last would be 4294967295 (at most "
     "4294967294)"},
    {MSG "        - { generate: { count: 3 }, uid: 4294967293 }\n", 7, 42,
     "users.a.mailboxes.INBOX.messages[0]: UIDs run out: the last would be 4294967295"},
};

START_TEST(test_mailbox_error)
{
    const char *yaml = mailbox_error_cases[_i].yaml;
    struct ms_scenario *sc = (struct ms_scenario *)1;
    struct mocksrv_error err;
    memset(&err, 0x55, sizeof err);
    int rc = ms_scenario_load_string(yaml, strlen(yaml), "x.yaml", ".", &sc, &err);
    ck_assert_msg(rc == MOCKSRV_ESCENARIO, "case %d: got rc %d, want %d", _i, rc,
                  MOCKSRV_ESCENARIO);
    ck_assert_ptr_null(sc);
    char want[2048];
    snprintf(want, sizeof want, "x.yaml:%d:%d: %s", mailbox_error_cases[_i].line,
             mailbox_error_cases[_i].column, mailbox_error_cases[_i].message);
    ck_assert_msg(
        err.line == mailbox_error_cases[_i].line && err.column == mailbox_error_cases[_i].column &&
            strncmp(err.message, want, strlen(want)) == 0,
        "case %d:\n got  %d:%d %s\n want %s...", _i, err.line, err.column, err.message, want);
}
END_TEST

/* ---- a scenario too large for the machine (issue 10, item 7) ---- */

/* A mailbox of alice with one raw message, then n generate entries of count x size. */
static char *
generate_yaml(int n, unsigned count, const char *size)
{
    struct ms_buf b = {0};
    ms_buf_puts(&b, "version: 1\n"
                    "limits: { message_size: 1GiB }\n"
                    "users:\n"
                    "  alice:\n"
                    "    password: secret\n"
                    "    mailboxes:\n"
                    "      INBOX:\n"
                    "        messages:\n"
                    "          - raw: \"Subject: a\\r\\n\\r\\nb\\r\\n\"\n");
    for (int i = 0; i < n; i++) {
        char line[128];
        snprintf(line, sizeof line, "          - generate: { count: %u, size: %s }\n", count, size);
        ms_buf_puts(&b, line);
    }
    return ms_buf_steal(&b, NULL);
}

static int
load_generate(int n, unsigned count, const char *size, struct mocksrv_error *err)
{
    char *yaml = generate_yaml(n, count, size);
    struct ms_scenario *sc = NULL;
    int rc = ms_scenario_load_string(yaml, strlen(yaml), "g.yaml", NULL, &sc, err);
    ms_scenario_destroy(&sc);
    free(yaml);
    return rc;
}

/* A million messages of 1GiB: more than any machine has, refused at load with the position of
 * the generate key and both figures (it passed, and the start aborted "out of memory"). */
START_TEST(test_generate_beyond_memory_is_refused)
{
    struct mocksrv_error err = {0};
    int rc = load_generate(1, 1000000, "1GiB", &err);
    ck_assert_msg(rc == MOCKSRV_ESCENARIO, "got %d (%s), want MOCKSRV_ESCENARIO", rc, err.message);
    ck_assert_int_eq(err.line, 10);
    ck_assert_int_eq(err.column, 13);
    const char *want = "g.yaml:10:13: users.alice.mailboxes.INBOX.messages[1].generate: the "
                       "mailboxes would need about ";
    ck_assert_msg(strncmp(err.message, want, strlen(want)) == 0, "got \"%s\"", err.message);
    ck_assert_msg(strstr(err.message, "above the limit of") && strstr(err.message, "half of"),
                  "got \"%s\"", err.message);
}
END_TEST

/* More than SCENARIO_MAX_MESSAGES (10 million) messages: the entry that passes it is named,
 * whatever the memory says. */
START_TEST(test_generate_count_cap)
{
    struct mocksrv_error err = {0};
    ck_assert_int_eq(load_generate(10, 1000000, "64", &err), MOCKSRV_ESCENARIO);
    ck_assert_int_eq(err.line, 19);
    ck_assert_msg(strstr(err.message, "messages[10].generate: 10000001 messages up to here, "
                                      "above the limit of 10000000 messages"),
                  "got \"%s\"", err.message);
    /* one entry fewer is under the cap: the memory limit may refuse it, the count does not */
    int rc = load_generate(9, 1000000, "64", &err);
    ck_assert_msg(rc == MOCKSRV_OK || !strstr(err.message, "messages up to here"), "got \"%s\"",
                  err.message);
}
END_TEST

/* With RLIMIT_AS at 1GiB the limit is 512MiB: 6000 messages of 64KiB (about 450MiB) load, 8000
 * (about 600MiB) do not. Nothing is allocated: the check only counts. */
START_TEST(test_generate_memory_limit_from_rlimit)
{
#if defined(MOCKSRV_ASAN) && MOCKSRV_ASAN
    return; /* ASan's shadow memory does not fit under a 1GiB address space */
#endif
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 &&
        (unsigned long long)pages * (unsigned long long)page < (2ull << 30))
        return; /* a machine under 2GiB: physical memory is the limit, not RLIMIT_AS */
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (1ull << 30))
        return;
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long mapped = 0;
    if (f && fscanf(f, "%llu", &mapped) == 1 &&
        mapped * (unsigned long long)page > (256ull << 20)) {
        fclose(f);
        return; /* this process maps too much already for a 1GiB address space */
    }
    if (f)
        fclose(f);
    rl.rlim_cur = 1ull << 30; /* this forked test process only */
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
    struct mocksrv_error err = {0};
    int rc = load_generate(1, 6000, "64KiB", &err);
    ck_assert_msg(rc == MOCKSRV_OK, "6000 x 64KiB: got %d (%s)", rc, err.message);
    ck_assert_int_eq(load_generate(1, 8000, "64KiB", &err), MOCKSRV_ESCENARIO);
    ck_assert_msg(strstr(err.message, "above the limit of 512.0MiB (536870912 bytes: half of "
                                      "RLIMIT_AS (ulimit -v))"),
                  "got \"%s\"", err.message);
}
END_TEST

static Suite *
scenario_mail_suite(void)
{
    Suite *s = suite_create("scenario_mail");
    TCase *tc = tcase_create("errors");
    tcase_add_loop_test(tc, test_mailbox_error, 0, (int)MS_ARRAY_LEN(mailbox_error_cases));
    tcase_add_test(tc, test_generate_beyond_memory_is_refused);
    tcase_add_test(tc, test_generate_count_cap);
    tcase_add_test(tc, test_generate_memory_limit_from_rlimit);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(scenario_mail_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
