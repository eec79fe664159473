/*
 * test_scenario_yaml.c - what the scenario loader's parts build on (scenario_yaml.c): the size,
 * duration and date grammars, the standard listeners and the protocol and TLS mode names. The
 * walk and its errors are tested through whole scenarios in test_scenario.c.
 *
 * Table-driven cases print "got X, want Y".
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

/* ---- scalar grammars ---- */

START_TEST(test_parse_size)
{
    static const struct {
        const char *in;
        int rc;
        unsigned long long want;
    } cases[] = {
        {"0", 0, 0},
        {"4096", 0, 4096},
        {"4KiB", 0, 4096},
        {"4kib", 0, 4096},
        {"4K", 0, 4096},
        {"4k", 0, 4096},
        {"4KB", 0, 4000},
        {"7B", 0, 7},
        {"10MB", 0, 10000000},
        {"10MiB", 0, 10485760},
        {"10M", 0, 10485760},
        {"2 MiB", 0, 2097152},
        {"1GiB", 0, 1073741824},
        {"1GB", 0, 1000000000},
        {"1G", 0, 1073741824},
        {"2TiB", 0, 2ull << 40},
        {"3TB", 0, 3000000000000ull},
        {"18446744073709551615", 0, 18446744073709551615ull},
        {"", MOCKSRV_EINVAL, 0},
        {"abc", MOCKSRV_EINVAL, 0},
        {"KiB", MOCKSRV_EINVAL, 0},
        {"-1", MOCKSRV_EINVAL, 0},
        {"+1", MOCKSRV_EINVAL, 0},
        {" 4", MOCKSRV_EINVAL, 0},
        {"4 ", MOCKSRV_EINVAL, 0},
        {"4 4", MOCKSRV_EINVAL, 0},
        {"4XB", MOCKSRV_EINVAL, 0},
        {"4KiBs", MOCKSRV_EINVAL, 0},
        {"1.5MiB", MOCKSRV_EINVAL, 0},
        {"0x10", MOCKSRV_EINVAL, 0},
        {"1_000", MOCKSRV_EINVAL, 0},
        {"18446744073709551616", MOCKSRV_EINVAL, 0},
        {"17179869184GiB", MOCKSRV_EINVAL, 0},
        {"99999999999999999999999999", MOCKSRV_EINVAL, 0},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cases); i++) {
        size_t got = 12345;
        int rc = ms_parse_size(cases[i].in, &got);
        ck_assert_msg(rc == cases[i].rc, "\"%s\": got rc %d, want %d", cases[i].in, rc,
                      cases[i].rc);
        if (rc == 0)
            ck_assert_msg(got == cases[i].want, "\"%s\": got %zu, want %llu", cases[i].in, got,
                          cases[i].want);
        else
            ck_assert_msg(got == 12345, "\"%s\": output written on error", cases[i].in);
    }
    size_t out;
    ck_assert_int_eq(ms_parse_size(NULL, &out), MOCKSRV_EINVAL);
}
END_TEST

START_TEST(test_parse_duration)
{
    static const struct {
        const char *in;
        int rc;
        long long want;
    } cases[] = {
        {"250ms", 0, 250},
        {"2s", 0, 2000},
        {"1m", 0, 60000},
        {"1h", 0, 3600000},
        {"1d", 0, 86400000},
        {"1.5s", 0, 1500},
        {"1.25m", 0, 75000},
        {"0.001s", 0, 1},
        {"1.5", 0, 1500},
        {"10", 0, 10000},
        {"0", 0, 0},
        {"0ms", 0, 0},
        {"1h30m", 0, 5400000},
        {"1m30s500ms", 0, 90500},
        {"2 s", 0, 2000},
        {"100MS", 0, 100},
        {"9223372036854775807ms", 0, 9223372036854775807ll},
        {"", MOCKSRV_EINVAL, 0},
        {"abc", MOCKSRV_EINVAL, 0},
        {"s", MOCKSRV_EINVAL, 0},
        {"-1s", MOCKSRV_EINVAL, 0},
        {"+1s", MOCKSRV_EINVAL, 0},
        {"1x", MOCKSRV_EINVAL, 0},
        {"5sec", MOCKSRV_EINVAL, 0},
        {"1min", MOCKSRV_EINVAL, 0},
        {"1.s", MOCKSRV_EINVAL, 0},
        {".5s", MOCKSRV_EINVAL, 0},
        {"1..5s", MOCKSRV_EINVAL, 0},
        {"0.5ms", MOCKSRV_EINVAL, 0},
        {"1.0005s", MOCKSRV_EINVAL, 0},
        {"1.2345678901s", MOCKSRV_EINVAL, 0},
        {"1s2", MOCKSRV_EINVAL, 0},
        {"1 ", MOCKSRV_EINVAL, 0},
        {" 1s", MOCKSRV_EINVAL, 0},
        {"1s ", MOCKSRV_EINVAL, 0},
        {"9223372036854775808ms", MOCKSRV_EINVAL, 0},
        {"9999999999999999999h", MOCKSRV_EINVAL, 0},
        {"106751991167d", 0, 9223372036828800000ll},
        {"106751991168d", MOCKSRV_EINVAL, 0},
        {"9223372036854775807ms1ms", MOCKSRV_EINVAL, 0},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cases); i++) {
        int64_t got = 12345;
        int rc = ms_parse_duration(cases[i].in, &got);
        ck_assert_msg(rc == cases[i].rc, "\"%s\": got rc %d, want %d", cases[i].in, rc,
                      cases[i].rc);
        if (rc == 0)
            ck_assert_msg(got == cases[i].want, "\"%s\": got %lld, want %lld", cases[i].in,
                          (long long)got, cases[i].want);
        else
            ck_assert_msg(got == 12345, "\"%s\": output written on error", cases[i].in);
    }
    int64_t out;
    ck_assert_int_eq(ms_parse_duration(NULL, &out), MOCKSRV_EINVAL);
}
END_TEST

START_TEST(test_parse_date)
{
    static const struct {
        const char *in;
        int rc;
        long long want;
    } cases[] = {
        {"2024-05-01T09:00:00Z", 0, 1714554000},
        {"2024-05-01t09:00:00z", 0, 1714554000},
        {"2024-05-01T11:00:00+02:00", 0, 1714554000},
        {"2024-05-01T11:00:00+0200", 0, 1714554000},
        {"2024-05-01T11:00:00+02", 0, 1714554000},
        {"2024-05-01T04:00:00-05:00", 0, 1714554000},
        {"2024-05-01 04:00:00 -5", 0, 1714554000},
        {"2024-05-01 09:00:00", 0, 1714554000},
        {"2024-05-01  9:00:00.75 Z", 0, 1714554000},
        {"2024-5-1T09:00:00Z", 0, 1714554000},
        {"2024-05-01", 0, 1714521600},
        {"1970-01-01T00:00:00Z", 0, 0},
        {"1969-12-31T23:59:59Z", 0, -1},
        {"2000-02-29T00:00:00Z", 0, 951782400},
        {"2038-01-19T03:14:08Z", 0, 2147483648ll},
        {"9999-12-31T23:59:59Z", 0, 253402300799ll},
        {"0000-01-01T00:00:00Z", 0, -62167219200ll},
        {"", MOCKSRV_EINVAL, 0},
        {"2024", MOCKSRV_EINVAL, 0},
        {"2024-05", MOCKSRV_EINVAL, 0},
        {"24-05-01", MOCKSRV_EINVAL, 0},
        {"2024-13-01", MOCKSRV_EINVAL, 0},
        {"2024-00-01", MOCKSRV_EINVAL, 0},
        {"2024-04-31", MOCKSRV_EINVAL, 0},
        {"2023-02-29", MOCKSRV_EINVAL, 0},
        {"1900-02-29", MOCKSRV_EINVAL, 0},
        {"2024-05-01T", MOCKSRV_EINVAL, 0},
        {"2024-05-01T09:00", MOCKSRV_EINVAL, 0},
        {"2024-05-01T09:00:60Z", MOCKSRV_EINVAL, 0},
        {"2024-05-01T09:60:00Z", MOCKSRV_EINVAL, 0},
        {"2024-05-01T24:00:00Z", MOCKSRV_EINVAL, 0},
        {"2024-05-01T09:00:00.Z", MOCKSRV_EINVAL, 0},
        {"2024-05-01T09:00:00+24:00", MOCKSRV_EINVAL, 0},
        {"2024-05-01T09:00:00+02:60", MOCKSRV_EINVAL, 0},
        {"2024-05-01T09:00:00+02:0", MOCKSRV_EINVAL, 0},
        {"2024-05-01T09:00:00ZZ", MOCKSRV_EINVAL, 0},
        {"2024-05-01T09:00:00 UTC", MOCKSRV_EINVAL, 0},
        {"2024-05-01X09:00:00Z", MOCKSRV_EINVAL, 0},
        {"Wed, 01 May 2024 09:00:00 +0000", MOCKSRV_EINVAL, 0},
        {" 2024-05-01", MOCKSRV_EINVAL, 0},
        {"2024-05-01 ", MOCKSRV_EINVAL, 0},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cases); i++) {
        int64_t got = 12345;
        int rc = ms_parse_date(cases[i].in, &got);
        ck_assert_msg(rc == cases[i].rc, "\"%s\": got rc %d, want %d", cases[i].in, rc,
                      cases[i].rc);
        if (rc == 0)
            ck_assert_msg(got == cases[i].want, "\"%s\": got %lld, want %lld", cases[i].in,
                          (long long)got, cases[i].want);
        else
            ck_assert_msg(got == 12345, "\"%s\": output written on error", cases[i].in);
    }
    int64_t out;
    ck_assert_int_eq(ms_parse_date(NULL, &out), MOCKSRV_EINVAL);
}
END_TEST

/* ---- names ---- */

START_TEST(test_listener_standard)
{
    static const struct {
        const char *name;
        enum ms_proto protocol;
        int port;
        enum ms_tls_mode tls;
    } cases[] = {
        {"smtp", MS_PROTO_SMTP, 3025, MS_TLS_STARTTLS},
        {"smtps", MS_PROTO_SMTP, 3465, MS_TLS_IMPLICIT},
        {"submission", MS_PROTO_SMTP, 3587, MS_TLS_REQUIRED},
        {"lmtp", MS_PROTO_LMTP, 3024, MS_TLS_NONE},
        {"pop3", MS_PROTO_POP3, 3110, MS_TLS_STARTTLS},
        {"pop3s", MS_PROTO_POP3, 3995, MS_TLS_IMPLICIT},
        {"imap", MS_PROTO_IMAP, 3143, MS_TLS_STARTTLS},
        {"imaps", MS_PROTO_IMAP, 3993, MS_TLS_IMPLICIT},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cases); i++) {
        struct ms_listener_conf c;
        memset(&c, 0x55, sizeof c);
        ck_assert_int_eq(ms_listener_standard(cases[i].name, &c), MOCKSRV_OK);
        ck_assert_str_eq(c.name, cases[i].name);
        ck_assert_msg(c.protocol == cases[i].protocol && c.port == cases[i].port &&
                          c.tls == cases[i].tls,
                      "%s: got %s %d %s, want %s %d %s", cases[i].name, ms_proto_name(c.protocol),
                      c.port, ms_tls_mode_name(c.tls), ms_proto_name(cases[i].protocol),
                      cases[i].port, ms_tls_mode_name(cases[i].tls));
        ck_assert_ptr_null(c.host);
        ck_assert_int_eq(c.pos.line, 0);
    }
    struct ms_listener_conf c;
    ck_assert_int_eq(ms_listener_standard("SMTP", &c), MOCKSRV_ENOTFOUND);
    ck_assert_int_eq(ms_listener_standard("mx", &c), MOCKSRV_ENOTFOUND);
    ck_assert_int_eq(ms_listener_standard(NULL, &c), MOCKSRV_ENOTFOUND);
}
END_TEST

START_TEST(test_names)
{
    const struct {
        const char *got, *want;
    } cases[] = {
        {ms_proto_name(MS_PROTO_SMTP), "smtp"},
        {ms_proto_name(MS_PROTO_LMTP), "lmtp"},
        {ms_proto_name(MS_PROTO_POP3), "pop3"},
        {ms_proto_name(MS_PROTO_IMAP), "imap"},
        {ms_proto_name(MS_PROTO_SCRIPT), "script"},
        {ms_proto_name((enum ms_proto)42), "unknown"},
        {ms_tls_mode_name(MS_TLS_NONE), "none"},
        {ms_tls_mode_name(MS_TLS_STARTTLS), "starttls"},
        {ms_tls_mode_name(MS_TLS_REQUIRED), "required"},
        {ms_tls_mode_name(MS_TLS_IMPLICIT), "implicit"},
        {ms_tls_mode_name((enum ms_tls_mode)42), "unknown"},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cases); i++)
        ck_assert_msg(strcmp(cases[i].got, cases[i].want) == 0, "name %zu: got %s, want %s", i,
                      cases[i].got, cases[i].want);
}
END_TEST

static Suite *
scenario_yaml_suite(void)
{
    Suite *s = suite_create("scenario_yaml");
    TCase *tc = tcase_create("values");
    tcase_add_test(tc, test_parse_size);
    tcase_add_test(tc, test_parse_duration);
    tcase_add_test(tc, test_parse_date);
    tcase_add_test(tc, test_listener_standard);
    tcase_add_test(tc, test_names);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(scenario_yaml_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
