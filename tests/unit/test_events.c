/*
 * test_events.c - the event sink: every line valid JSON whatever the bytes, UTF-8 kept, invalid
 * sequences escaped as \xNN, events carrying event/t/session/listener, written as JSON lines.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "events.h"

struct escape_case {
    const char *in;
    size_t len;
    const char *want;
};

START_TEST(test_escape_table)
{
    static const struct escape_case cases[] = {
        {"plain", 5, "plain"},
        {"caf\xc3\xa9", 5, "caf\xc3\xa9"},           /* valid 2-byte */
        {"\xe2\x82\xac", 3, "\xe2\x82\xac"},         /* euro sign */
        {"\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"}, /* emoji */
        {"a\xff"
         "b",
         3, "a\\xFFb"},                                  /* invalid byte */
        {"\xc3", 1, "\\xC3"},                            /* truncated sequence */
        {"\xc0\xaf", 2, "\\xC0\\xAF"},                   /* overlong */
        {"\xed\xa0\x80", 3, "\\xED\\xA0\\x80"},          /* surrogate */
        {"\xf4\x90\x80\x80", 4, "\\xF4\\x90\\x80\\x80"}, /* above U+10FFFF */
        {"x\0y", 3, "x\\x00y"},                          /* NUL */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ms_buf b = {0};
        ms_utf8_escape(&b, cases[i].in, cases[i].len);
        ck_assert_msg(b.len == strlen(cases[i].want) && memcmp(b.data, cases[i].want, b.len) == 0,
                      "case %zu: got \"%s\", want \"%s\"", i, b.data ? b.data : "", cases[i].want);
        ms_buf_fini(&b);
    }
}
END_TEST

START_TEST(test_every_line_is_json)
{
    /* Random bytes from a fixed seed as command lines: each event line must parse. */
    char path[] = "/tmp/mocksrv-events-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    struct ms_events ev;
    ms_events_init(&ev);
    ck_assert_int_eq(ms_events_open(&ev, path, NULL), 0);
    uint64_t x = 42;
    for (int i = 0; i < 500; i++) {
        char bytes[64];
        size_t n = (size_t)(i % 64);
        for (size_t k = 0; k < n; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            bytes[k] = (char)(x >> 56);
        }
        json_t *e = ms_event_new(&ev, "command", (unsigned)i + 1, "smtp");
        json_object_set_new(e, "line", ms_json_bytes(bytes, n));
        ms_event_emit(&ev, e);
    }
    ms_events_fini(&ev);

    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char *line = NULL;
    size_t cap = 0;
    int count = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        ck_assert_msg(o != NULL, "line %d is not JSON: %s", count + 1, jerr.text);
        ck_assert_str_eq(json_string_value(json_object_get(o, "event")), "command");
        ck_assert_int_eq(json_integer_value(json_object_get(o, "session")), count + 1);
        ck_assert_str_eq(json_string_value(json_object_get(o, "listener")), "smtp");
        ck_assert(json_is_real(json_object_get(o, "t")));
        ck_assert(json_is_string(json_object_get(o, "line")));
        json_decref(o);
        count++;
    }
    free(line);
    fclose(f);
    unlink(path);
    ck_assert_int_eq(count, 500);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("events");
    tcase_add_test(tc, test_escape_table);
    tcase_add_test(tc, test_every_line_is_json);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
