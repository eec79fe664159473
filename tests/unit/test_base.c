/*
 * test_base.c - the base layer (base.c): the seeded draw and replay stability of everything
 * drawn from a seed, civil dates, ASCII checks.
 *
 * A run replays from its seed (SPEC, FAULTS.md 1): fault draws, generated messages, the CRAM-MD5
 * challenge and the default UIDVALIDITY must not change from one version to the next. The
 * "replay" cases pin values observed from the code as it was before the seeded draw moved to
 * base.c; any change to the mixer, its constants or how a module feeds it fails them.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "fault.h"
#include "gen.h"
#include "sasl.h"
#include "scenario.h"
#include "store.h"

/* FNV-1a 64 of n bytes: a short fingerprint of a generated message. */
static uint64_t
fnv1a(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ---- the seeded draw ---- */

/* The generator against the first values the SplitMix64 reference gives from seed 0 (Vigna's
 * splitmix64.c: next() = mix(x += 0x9e3779b97f4a7c15)). */
START_TEST(test_splitmix64_reference)
{
    static const uint64_t want[] = {0xe220a8397b1dcdafull, 0x6e789e6aa1b965f4ull,
                                    0x06c45d188009454full, 0xf88bb8a8724c81ecull};
    uint64_t state = 0;
    for (size_t i = 0; i < MS_ARRAY_LEN(want); i++) {
        uint64_t first = ms_splitmix64(state);
        uint64_t got = ms_splitmix64_next(&state);
        ck_assert_msg(got == want[i], "value %zu: got 0x%016" PRIx64 ", want 0x%016" PRIx64, i, got,
                      want[i]);
        ck_assert_msg(first == got, "ms_splitmix64 of the state before value %zu differs", i);
        ck_assert_uint_eq(state, (i + 1) * MS_GOLDEN_GAMMA);
    }
    /* the finaliser alone adds no gamma: 0 is its fixed point, and the generator's first value
     * from seed 0 is the mix of the gamma */
    ck_assert_uint_eq(ms_mix64(0), 0);
    ck_assert_uint_eq(ms_mix64(MS_GOLDEN_GAMMA), want[0]);
}
END_TEST

/* ---- replay: values from a seed are the same in every version ---- */

static const struct {
    uint64_t seed, rule, session, match, k;
    uint64_t want;
} draw_cases[] = {
    {0, 0, 0, 0, 0, 0x78ae5a9a6b5fd45eull},         {1, 2, 3, 4, 5, 0x90bb69b7166551deull},
    {42, 3, 17, 9, 2, 0x2de5aef599547147ull},       {UINT64_MAX, 7, 1, 0, 1, 0xb8b0b08a72663093ull},
    {INT64_MAX, 0, 5, 0, 0, 0x5c4abf674435b0e7ull},
};

START_TEST(test_replay_fault_draw)
{
    for (size_t i = 0; i < MS_ARRAY_LEN(draw_cases); i++) {
        uint64_t got = ms_draw(draw_cases[i].seed, draw_cases[i].rule, draw_cases[i].session,
                               draw_cases[i].match, draw_cases[i].k);
        ck_assert_msg(got == draw_cases[i].want,
                      "draw %zu: got 0x%016" PRIx64 ", want 0x%016" PRIx64, i, got,
                      draw_cases[i].want);
    }
}
END_TEST

static const struct {
    uint64_t seed, index;
    size_t size;
    size_t want_len;
    int64_t want_date;
    uint64_t want_hash;
} gen_cases[] = {
    {0, 0, 64, 637, 1702857940, 0x7919fe313ac6d2faull},
    {17, 3, 4096, 4093, 1718281314, 0x8d5d605f17d7ba4cull},
    {123456789, 42, 100000, 100003, 1713547236, 0x377d574093de73b1ull},
    {INT64_MAX, 1, 1200, 1197, 1714479000, 0xf84c63acae6d50f7ull},
};

START_TEST(test_replay_gen)
{
    for (size_t i = 0; i < MS_ARRAY_LEN(gen_cases); i++) {
        struct ms_buf b = {0};
        int64_t date = 0;
        ms_gen_message(gen_cases[i].seed, gen_cases[i].index, gen_cases[i].size, &date, &b);
        uint64_t h = fnv1a(b.data, b.len);
        ck_assert_msg(b.len == gen_cases[i].want_len && date == gen_cases[i].want_date &&
                          h == gen_cases[i].want_hash,
                      "message %zu: got len %zu date %" PRId64 " hash 0x%016" PRIx64
                      ", want len %zu date %" PRId64 " hash 0x%016" PRIx64,
                      i, b.len, date, h, gen_cases[i].want_len, gen_cases[i].want_date,
                      gen_cases[i].want_hash);
        ms_buf_fini(&b);
    }
}
END_TEST

static const struct {
    uint64_t seed;
    const char *want;
} cram_cases[] = {
    {0, "<7535.1194355700@mock.test>"},
    {1, "<22465.866428519@mock.test>"},
    {INT64_MAX, "<52039.1244690247@mock.test>"},
};

START_TEST(test_replay_cram_challenge)
{
    for (size_t i = 0; i < MS_ARRAY_LEN(cram_cases); i++) {
        struct ms_sasl *sasl = ms_sasl_create(MS_AUTH_CRAM_MD5, "mock.test", cram_cases[i].seed);
        const char *b64 = NULL;
        ck_assert_int_eq(ms_sasl_step(sasl, NULL, 0, &b64), MS_SASL_CONTINUE);
        unsigned char raw[128];
        size_t n = strlen(b64);
        ck_assert_uint_le(n, 4 * sizeof raw / 3);
        ssize_t len = ms_base64_decode(b64, n, raw);
        ck_assert_int_ge(len, 0);
        raw[len] = '\0';
        ck_assert_msg(strcmp((const char *)raw, cram_cases[i].want) == 0,
                      "seed %" PRIu64 ": got \"%s\", want \"%s\"", cram_cases[i].seed, raw,
                      cram_cases[i].want);
        ms_sasl_destroy(&sasl);
    }
}
END_TEST

static const struct {
    uint64_t seed;
    uint32_t want_uidvalidity;
    uint64_t want_hash; /* of the three generated messages, in UID order */
} store_cases[] = {
    {0, 658607536, 0x981a892b3dc30f81ull},
    {5, 154358619, 0x2b198bbba86585afull},
    {INT64_MAX, 1038352040, 0x9841f5d08f4e7d07ull},
};

START_TEST(test_replay_store)
{
    static const char yaml[] = "version: 1\n"
                               "users:\n"
                               "  alice:\n"
                               "    password: secret\n"
                               "    mailboxes:\n"
                               "      INBOX:\n"
                               "        messages:\n"
                               "          - generate: { count: 3, size: 2KiB }\n"
                               "      Archive: {}\n";
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    ck_assert_msg(ms_scenario_load_string(yaml, sizeof yaml - 1, "t.yaml", ".", &sc, &err) ==
                      MOCKSRV_OK,
                  "%s", err.message);
    for (size_t i = 0; i < MS_ARRAY_LEN(store_cases); i++) {
        struct ms_store *st = NULL;
        ck_assert_msg(ms_store_load_scenario(sc, store_cases[i].seed, &st, &err) == MOCKSRV_OK,
                      "%s", err.message);
        struct ms_account *alice = ms_store_account(st, "alice", 0);
        struct ms_mailbox *inbox = ms_store_mailbox(alice, "INBOX");
        struct ms_mailbox *archive = ms_store_mailbox(alice, "Archive");
        ck_assert_uint_eq(inbox->n_msgs, 3);
        ck_assert_uint_eq(archive->uidvalidity, inbox->uidvalidity);
        uint64_t h = 0;
        for (size_t m = 0; m < inbox->n_msgs; m++)
            h = h * 31 + fnv1a(inbox->msgs[m]->blob->data, inbox->msgs[m]->blob->len);
        ck_assert_msg(inbox->uidvalidity == store_cases[i].want_uidvalidity &&
                          h == store_cases[i].want_hash,
                      "seed %" PRIu64 ": got uidvalidity %" PRIu32 " hash 0x%016" PRIx64
                      ", want uidvalidity %" PRIu32 " hash 0x%016" PRIx64,
                      store_cases[i].seed, inbox->uidvalidity, h, store_cases[i].want_uidvalidity,
                      store_cases[i].want_hash);
        ms_store_destroy(&st);
    }
    ms_scenario_destroy(&sc);
}
END_TEST

/* ---- civil dates ---- */

/* Days from 1970-01-01, as Python's datetime.date counts them (years 1 to 9999); year 0 and
 * before from the algorithm's own epoch, 0000-03-01 = -719468 (year 0 is a leap year). */
static const struct {
    int64_t y;
    unsigned m, d;
    int64_t days;
} civil_cases[] = {
    {1970, 1, 1, 0},       {1969, 12, 31, -1},     {2000, 2, 29, 11016}, {2000, 3, 1, 11017},
    {1900, 2, 28, -25509}, {1900, 3, 1, -25508},   {2024, 2, 29, 19782}, {2023, 1, 1, 19358},
    {2038, 1, 19, 24855},  {1600, 2, 29, -135081}, {1, 1, 1, -719162},   {9999, 12, 31, 2932896},
    {0, 3, 1, -719468},    {0, 2, 29, -719469},    {0, 1, 1, -719528},   {-1, 12, 31, -719529},
};

START_TEST(test_civil_table)
{
    for (size_t i = 0; i < MS_ARRAY_LEN(civil_cases); i++) {
        int64_t y = civil_cases[i].y, days = civil_cases[i].days;
        unsigned m = civil_cases[i].m, d = civil_cases[i].d;
        int64_t got = ms_days_from_civil(y, m, d);
        ck_assert_msg(got == days, "%04" PRId64 "-%02u-%02u: got day %" PRId64 ", want %" PRId64, y,
                      m, d, got, days);
        int64_t gy;
        unsigned gm, gd;
        ms_civil_from_days(days, &gy, &gm, &gd);
        ck_assert_msg(gy == y && gm == m && gd == d,
                      "day %" PRId64 ": got %04" PRId64 "-%02u-%02u, want %04" PRId64 "-%02u-%02u",
                      days, gy, gm, gd, y, m, d);
    }
    /* no check of the date: 31 February 2023 is 3 March */
    ck_assert_int_eq(ms_days_from_civil(2023, 2, 31), ms_days_from_civil(2023, 3, 3));
}
END_TEST

/* Every day from 0000-03-01 to 9999-12-31 and on: each is the day after the one before it by the
 * calendar's rules (month lengths, leap years), and converts back to its number. */
START_TEST(test_civil_walk)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t y = 0;
    unsigned m = 3, d = 1;
    for (int64_t days = -719468; days <= 2932896 + 366; days++) {
        int64_t gy;
        unsigned gm, gd;
        ms_civil_from_days(days, &gy, &gm, &gd);
        if (gy != y || gm != m || gd != d)
            ck_abort_msg("day %" PRId64 ": got %04" PRId64 "-%02u-%02u, want %04" PRId64
                         "-%02u-%02u",
                         days, gy, gm, gd, y, m, d);
        int64_t back = ms_days_from_civil(y, m, d);
        if (back != days)
            ck_abort_msg("%04" PRId64 "-%02u-%02u: got day %" PRId64 ", want %" PRId64, y, m, d,
                         back, days);
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        unsigned len = m == 2 && leap ? 29 : mdays[m - 1];
        if (++d > len) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
    }
    ck_assert_int_eq(y, 10001);
}
END_TEST

/* ---- strings ---- */

START_TEST(test_is_ascii)
{
    static const struct {
        const char *s;
        int want;
    } cases[] = {
        {"", 1},
        {"user@example.com", 1},
        {"\x01\x7f tab\there", 1},
        {"j\xc3\xb6rg@example.com", 0}, /* UTF-8 */
        {"\x80", 0},
        {"abc\xff", 0},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cases); i++)
        ck_assert_msg(ms_is_ascii(cases[i].s) == cases[i].want, "case %zu: got %d, want %d", i,
                      ms_is_ascii(cases[i].s), cases[i].want);
}
END_TEST

static Suite *
base_suite(void)
{
    Suite *s = suite_create("base");
    TCase *tc = tcase_create("replay");
    tcase_add_test(tc, test_splitmix64_reference);
    tcase_add_test(tc, test_replay_fault_draw);
    tcase_add_test(tc, test_replay_gen);
    tcase_add_test(tc, test_replay_cram_challenge);
    tcase_add_test(tc, test_replay_store);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tc = tcase_create("dates");
    tcase_add_test(tc, test_civil_table);
    tcase_add_test(tc, test_civil_walk);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tc = tcase_create("strings");
    tcase_add_test(tc, test_is_ascii);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(base_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
