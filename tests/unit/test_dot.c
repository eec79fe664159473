/*
 * test_dot.c - unit tests of dot.c: a table of DATA streams and the message each decodes to,
 * every one of them fed in one piece, one byte at a time and in random pieces from a fixed seed
 * (the result must not change); the max limit; bytes after the end marker left unconsumed;
 * the encoder and the round trip decode(encode(m)) == m on generated messages.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "base.h"
#include "dot.h"

/* Printable form of bytes for failure messages (static buffer per slot; tests only). */
static const char *
escape(const char *p, size_t n, int slot)
{
    static char bufs[2][1024];
    char *b = bufs[slot & 1];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < sizeof bufs[0]; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r')
            o += (size_t)snprintf(b + o, sizeof bufs[0] - o, "\\r");
        else if (c == '\n')
            o += (size_t)snprintf(b + o, sizeof bufs[0] - o, "\\n");
        else if (c >= 0x20 && c < 0x7f && c != '\\')
            b[o++] = (char)c;
        else
            o += (size_t)snprintf(b + o, sizeof bufs[0] - o, "\\x%02x", c);
    }
    b[o] = '\0';
    return b;
}

static uint64_t
rng_next(uint64_t *s)
{
    /* xorshift64*: fixed seeds make every "random" test reproducible. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dULL;
}

/* The outcome of decoding one stream. */
struct decoded {
    struct ms_buf out;
    size_t consumed;
    size_t total;
    int done;
};

/*
 * Decodes in[0..len) in pieces: piece == 0 means one call, piece == 1 one byte per call,
 * otherwise random piece lengths in [0, piece) drawn from *seed (empty pieces included).
 * Like a session, it stops feeding once done and feeds the unconsumed rest of a piece again.
 */
static void
decode_split(const char *in, size_t len, size_t max, size_t piece, uint64_t *seed,
             struct decoded *r)
{
    struct ms_dot d;
    ms_dot_init(&d);
    memset(r, 0, sizeof *r);
    size_t pos = 0;
    while (pos < len && !r->done) {
        size_t n = len - pos;
        if (piece == 1)
            n = 1;
        else if (piece > 1) {
            size_t want = (size_t)(rng_next(seed) % piece); /* not inside MS_MIN: evaluated once */
            n = MS_MIN(n, want);
        }
        size_t used = ms_dot_decode(&d, in + pos, n, &r->out, max, &r->done);
        ck_assert_msg(used <= n, "consumed %zu of a %zu-byte piece", used, n);
        ck_assert_msg(used == n || r->done, "consumed %zu of %zu bytes without finishing", used, n);
        pos += used;
    }
    r->consumed = pos;
    r->total = d.total;
    if (r->done) {
        /* After the end marker nothing more is consumed. */
        int again = 0;
        size_t more = ms_dot_decode(&d, "x\r\n.\r\n", 6, &r->out, max, &again);
        ck_assert_msg(more == 0 && again == 1, "after done: consumed %zu, done %d; want 0, 1", more,
                      again);
    }
}

/* ---- decode table ----------------------------------------------------------------------- */

struct dot_case {
    const char *in;
    size_t in_len;
    const char *out;
    size_t out_len;
    int done;
    size_t consumed; /* when done; otherwise the whole input */
};

#define IN(s) s, sizeof(s) - 1
#define OUT(s) s, sizeof(s) - 1

static const struct dot_case cases[] = {
    /* The end marker. */
    {IN(".\r\n"), OUT(""), 1, 3},
    {IN("\r\n.\r\n"), OUT("\r\n"), 1, 5},
    {IN("hello\r\n.\r\n"), OUT("hello\r\n"), 1, 10},
    {IN("a\r\nb\r\n.\r\n"), OUT("a\r\nb\r\n"), 1, 9},
    /* Dot-stuffing removed at the start of the data and after CRLF (RFC 5321 4.5.2). */
    {IN("..\r\n.\r\n"), OUT(".\r\n"), 1, 7},
    {IN("..x\r\n.\r\n"), OUT(".x\r\n"), 1, 8},
    {IN("a\r\n..\r\n.\r\n"), OUT("a\r\n.\r\n"), 1, 10},
    {IN("a\r\n...\r\n.\r\n"), OUT("a\r\n..\r\n"), 1, 11},
    {IN("a\r\n.x\r\n.\r\n"), OUT("a\r\nx\r\n"), 1, 10},
    {IN(". \r\n.\r\n"), OUT(" \r\n"), 1, 7},
    /* Only CRLF starts a line: bare LF and bare CR keep what follows byte for byte. */
    {IN("a\n.\nb\r\n.\r\n"), OUT("a\n.\nb\r\n"), 1, 10},
    {IN("a\n.\r\nb\r\n.\r\n"), OUT("a\n.\r\nb\r\n"), 1, 11},
    {IN("a\r.\r\nb\r\n.\r\n"), OUT("a\r.\r\nb\r\n"), 1, 11},
    {IN("a\n..\r\n.\r\n"), OUT("a\n..\r\n"), 1, 9},
    {IN("\n.\r\n"), OUT("\n.\r\n"), 0, 4},
    {IN("a\r\r\n.\r\n"), OUT("a\r\r\n"), 1, 7},
    {IN("a\r\n\r\n.\r\n"), OUT("a\r\n\r\n"), 1, 8},
    /* A line "." not followed by CRLF is a stuffed line: the dot goes, the rest stays. */
    {IN("a\r\n.\nb\r\n.\r\n"), OUT("a\r\n\nb\r\n"), 1, 11},
    {IN("a\r\n.\rX\r\n.\r\n"), OUT("a\r\n\rX\r\n"), 1, 11},
    {IN("a\r\n.\r\r\n.\r\n"), OUT("a\r\n\r\r\n"), 1, 10},
    {IN("a\r\n.\r.\r\n.\r\n"), OUT("a\r\n\r.\r\n"), 1, 11},
    {IN(".\n.\r\n"), OUT("\n.\r\n"), 0, 5},
    /* Binary and 8-bit content. */
    {IN("a\0b\xff\r\n.\r\n"), OUT("a\0b\xff\r\n"), 1, 9},
    /* Incomplete streams: everything consumed, the held-back CR not yet emitted. */
    {IN(""), OUT(""), 0, 0},
    {IN("abc"), OUT("abc"), 0, 3},
    {IN("abc\r"), OUT("abc\r"), 0, 4},
    {IN("abc\r\n"), OUT("abc\r\n"), 0, 5},
    {IN("abc\r\n."), OUT("abc\r\n"), 0, 6},
    {IN("abc\r\n.\r"), OUT("abc\r\n"), 0, 7},
    {IN("."), OUT(""), 0, 1},
    {IN(".\r"), OUT(""), 0, 2},
    /* Pipelining (RFC 2920): what follows the marker is not consumed. */
    {IN("a\r\n.\r\nMAIL FROM:<x@y>\r\n"), OUT("a\r\n"), 1, 6},
    {IN(".\r\nQUIT\r\n"), OUT(""), 1, 3},
    {IN("a\r\n.\r\n.\r\n"), OUT("a\r\n"), 1, 6},
};

static void
check_result(const char *what, const struct dot_case *c, const struct decoded *r)
{
    ck_assert_msg(r->done == c->done, "%s \"%s\": done got %d, want %d", what,
                  escape(c->in, c->in_len, 0), r->done, c->done);
    ck_assert_msg(r->consumed == c->consumed, "%s \"%s\": consumed got %zu, want %zu", what,
                  escape(c->in, c->in_len, 0), r->consumed, c->consumed);
    ck_assert_msg(
        r->out.len == c->out_len && memcmp(r->out.data ? r->out.data : "", c->out, c->out_len) == 0,
        "%s \"%s\": got \"%s\", want \"%s\"", what, escape(c->in, c->in_len, 0),
        escape(r->out.data ? r->out.data : "", r->out.len, 1), escape(c->out, c->out_len, 1));
    ck_assert_msg(r->total == c->out_len, "%s \"%s\": total got %zu, want %zu", what,
                  escape(c->in, c->in_len, 0), r->total, c->out_len);
}

START_TEST(test_decode_table)
{
    const struct dot_case *c = &cases[_i];
    struct decoded r;
    decode_split(c->in, c->in_len, SIZE_MAX, 0, NULL, &r);
    check_result("one piece", c, &r);
    ms_buf_fini(&r.out);

    decode_split(c->in, c->in_len, SIZE_MAX, 1, NULL, &r);
    check_result("byte by byte", c, &r);
    ms_buf_fini(&r.out);

    uint64_t seed = 0x2545f4914f6cdd1dULL + (uint64_t)_i;
    for (int k = 0; k < 50; k++) {
        decode_split(c->in, c->in_len, SIZE_MAX, 2 + (size_t)k % 6, &seed, &r);
        check_result("random pieces", c, &r);
        ms_buf_fini(&r.out);
    }
}
END_TEST

/* ---- generated streams: splits must not matter -------------------------------------------- */

/* A random stream over the bytes that matter to the state machine. */
static size_t
gen_stream(uint64_t *seed, char *buf, size_t cap)
{
    static const char alphabet[] = ".\r\n.\r\nab\0";
    size_t n = (size_t)(rng_next(seed) % cap);
    for (size_t i = 0; i < n; i++)
        buf[i] = alphabet[rng_next(seed) % (sizeof alphabet - 1)];
    return n;
}

START_TEST(test_random_splits)
{
    uint64_t seed = 0xd07d07d07ULL;
    char in[400];
    for (int iter = 0; iter < 2000; iter++) {
        size_t len = gen_stream(&seed, in, sizeof in);
        struct decoded whole, split;
        decode_split(in, len, SIZE_MAX, 0, NULL, &whole);
        size_t piece = iter % 3 == 0 ? 1 : 2 + (size_t)(rng_next(&seed) % 40);
        decode_split(in, len, SIZE_MAX, piece, &seed, &split);
        ck_assert_msg(split.done == whole.done && split.consumed == whole.consumed &&
                          split.total == whole.total && split.out.len == whole.out.len &&
                          memcmp(split.out.data ? split.out.data : "",
                                 whole.out.data ? whole.out.data : "", whole.out.len) == 0,
                      "iteration %d (pieces < %zu) of \"%s\": got \"%s\" (done %d, %zu "
                      "consumed), want \"%s\" (done %d, %zu consumed)",
                      iter, piece, escape(in, len, 0),
                      escape(split.out.data ? split.out.data : "", split.out.len, 1), split.done,
                      split.consumed, "(one piece)", whole.done, whole.consumed);
        ms_buf_fini(&whole.out);
        ms_buf_fini(&split.out);
    }
}
END_TEST

/* ---- max -------------------------------------------------------------------------------- */

START_TEST(test_max)
{
    static const char in[] = "0123456789\r\n..abc\r\n.\r\nNOOP\r\n";
    static const char msg[] = "0123456789\r\n.abc\r\n";
    static const struct {
        size_t max;
        size_t stored;
    } limits[] = {
        {0, 0}, {1, 1}, {5, 5}, {12, 12}, {13, 13}, {17, 17}, {18, 18}, {19, 18}, {SIZE_MAX, 18},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(limits); i++) {
        for (size_t piece = 0; piece < 3; piece++) {
            uint64_t seed = 99 + i;
            struct decoded r;
            decode_split(in, sizeof in - 1, limits[i].max, piece == 2 ? 4 : piece, &seed, &r);
            ck_assert_msg(r.done == 1 && r.consumed == 22,
                          "max %zu: done %d consumed %zu, want done 1 consumed 22", limits[i].max,
                          r.done, r.consumed);
            ck_assert_msg(r.total == sizeof msg - 1, "max %zu: total got %zu, want %zu",
                          limits[i].max, r.total, sizeof msg - 1);
            ck_assert_msg(r.out.len == limits[i].stored &&
                              memcmp(r.out.data ? r.out.data : "", msg, r.out.len) == 0,
                          "max %zu (pieces %zu): stored \"%s\", want the first %zu bytes of "
                          "\"%s\"",
                          limits[i].max, piece, escape(r.out.data ? r.out.data : "", r.out.len, 0),
                          limits[i].stored, escape(msg, sizeof msg - 1, 1));
            ms_buf_fini(&r.out);
        }
    }
    /* out == NULL: count only. */
    struct ms_dot d;
    ms_dot_init(&d);
    int done = 0;
    size_t used = ms_dot_decode(&d, in, sizeof in - 1, NULL, SIZE_MAX, &done);
    ck_assert_msg(used == 22 && done == 1 && d.total == sizeof msg - 1,
                  "out NULL: consumed %zu done %d total %zu, want 22 1 %zu", used, done, d.total,
                  sizeof msg - 1);
    /* A zeroed struct is a fresh decoder too; done_r may be NULL. */
    struct ms_dot z = {0};
    used = ms_dot_decode(&z, ".\r\n", 3, NULL, 0, NULL);
    ck_assert_msg(used == 3 && z.total == 0, "zeroed decoder: consumed %zu total %zu", used,
                  z.total);
}
END_TEST

START_TEST(test_large_message)
{
    /* A few MB through small pieces: the count goes past max without storing. */
    struct ms_buf in = {0};
    for (int i = 0; i < 100000; i++)
        ms_buf_printf(&in, "%sline %d of the message\r\n", i % 7 ? "" : ".", i);
    ms_buf_append(&in, ".\r\n", 3);
    uint64_t seed = 7;
    struct decoded r;
    decode_split(in.data, in.len, 1000, 3000, &seed, &r);
    ck_assert_msg(r.done == 1 && r.consumed == in.len, "large: done %d consumed %zu of %zu", r.done,
                  r.consumed, in.len);
    ck_assert_msg(r.out.len == 1000, "large: stored %zu, want 1000", r.out.len);
    size_t dots = (100000 + 6) / 7;
    ck_assert_msg(r.total == in.len - 3 - dots, "large: total %zu, want %zu", r.total,
                  in.len - 3 - dots);
    ms_buf_fini(&r.out);
    ms_buf_fini(&in);
}
END_TEST

/* ---- encode ----------------------------------------------------------------------------- */

START_TEST(test_encode_table)
{
    static const struct {
        const char *msg;
        size_t len;
        const char *want;
        size_t want_len;
    } enc[] = {
        {IN(""), OUT(".\r\n")},
        {IN("a"), OUT("a\r\n.\r\n")},
        {IN("a\r\n"), OUT("a\r\n.\r\n")},
        {IN("."), OUT("..\r\n.\r\n")},
        {IN(".\r\n"), OUT("..\r\n.\r\n")},
        {IN(".a\r\n"), OUT("..a\r\n.\r\n")},
        {IN("a\r\n.b\r\n"), OUT("a\r\n..b\r\n.\r\n")},
        {IN("a\r\n.\r\n..\r\n"), OUT("a\r\n..\r\n...\r\n.\r\n")},
        {IN("a\n.b"), OUT("a\n.b\r\n.\r\n")},
        {IN("a\r"), OUT("a\r\r\n.\r\n")},
        {IN("a\n"), OUT("a\n\r\n.\r\n")},
        {IN("\r\n"), OUT("\r\n.\r\n")},
        {IN("x\0y"), OUT("x\0y\r\n.\r\n")},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(enc); i++) {
        struct ms_buf out = {0};
        ms_buf_puts(&out, "prefix:"); /* encode appends */
        ms_dot_encode(enc[i].msg, enc[i].len, &out);
        ck_assert_msg(out.len == 7 + enc[i].want_len && memcmp(out.data, "prefix:", 7) == 0 &&
                          memcmp(out.data + 7, enc[i].want, enc[i].want_len) == 0,
                      "encode(\"%s\"): got \"%s\", want \"prefix:%s\"",
                      escape(enc[i].msg, enc[i].len, 0), escape(out.data, out.len, 1),
                      escape(enc[i].want, enc[i].want_len, 0));
        ms_buf_fini(&out);
    }
}
END_TEST

START_TEST(test_round_trip)
{
    uint64_t seed = 0x0123456789abcdefULL;
    char msg[300];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = gen_stream(&seed, msg, sizeof msg - 2);
        /* The round trip is exact for the empty message and for messages ending in CRLF. */
        if (len > 0 && !(len >= 2 && msg[len - 2] == '\r' && msg[len - 1] == '\n')) {
            msg[len++] = '\r';
            msg[len++] = '\n';
        }
        struct ms_buf enc = {0};
        ms_dot_encode(msg, len, &enc);
        ms_buf_puts(&enc, "RSET\r\n"); /* the next pipelined command */
        struct decoded r;
        decode_split(enc.data, enc.len, SIZE_MAX, iter % 2 ? 1 + (size_t)(iter % 17) : 0, &seed,
                     &r);
        ck_assert_msg(r.done == 1 && r.consumed == enc.len - 6,
                      "iteration %d: done %d consumed %zu, want 1 and %zu", iter, r.done,
                      r.consumed, enc.len - 6);
        ck_assert_msg(r.out.len == len && memcmp(r.out.data ? r.out.data : "", msg, len) == 0,
                      "iteration %d: decode(encode(\"%s\")) got \"%s\"", iter, escape(msg, len, 0),
                      escape(r.out.data ? r.out.data : "", r.out.len, 1));
        ms_buf_fini(&r.out);
        ms_buf_fini(&enc);
    }
}
END_TEST

static Suite *
dot_suite(void)
{
    Suite *s = suite_create("dot");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_decode_table, 0, (int)MS_ARRAY_LEN(cases));
    tcase_add_test(tc, test_random_splits);
    tcase_add_test(tc, test_max);
    tcase_add_test(tc, test_large_message);
    tcase_add_test(tc, test_encode_table);
    tcase_add_test(tc, test_round_trip);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(dot_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
