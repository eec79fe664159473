/*
 * fuzz_dot.c - libFuzzer target for the SMTP DATA transparency codec (dot.h).
 *
 * The whole input is the byte stream that follows "354". What must hold:
 *   - splitting does not matter: the stream decoded in one piece, one byte at a time and in
 *     pieces whose sizes come from a generator seeded with the input's first bytes gives the
 *     same bytes, total, done flag and number of bytes consumed;
 *   - the one-piece result equals that of a plain, non-streaming reference decoder written
 *     here from the rules in dot.h (dots removed at the start of a line, a line starting after
 *     CRLF only, the end marker "." CRLF at the start of a line, the CR of a trailing ".\r" held
 *     back), and the end marker, when found, is at the start of a line;
 *   - max is a storage limit only: a small max stores a prefix of the same bytes and counts the
 *     same total; out == NULL counts the same total and consumes the same bytes;
 *   - once done, a further call consumes nothing and stays done;
 *   - encode then decode gives the input back, with "\r\n" appended when the input is not empty
 *     and does not end with CRLF, and the decoder stops exactly at the end of the encoding.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "dot.h"

struct fuzz_result {
    struct ms_buf out;
    size_t total;
    size_t consumed;
    int done;
};

static void fuzz_fail(const char *fmt, ...) MS_PRINTF(1, 2) MS_NORETURN;

static void
fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_dot: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

/* memcmp that accepts NULL with n == 0 (glibc declares memcmp nonnull; UBSan checks it). */
static int
fuzz_memeq(const void *a, const void *b, size_t n)
{
    return n == 0 || memcmp(a, b, n) == 0;
}

/* xorshift32: piece sizes from the input's first bytes. */
static uint32_t
fuzz_next(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/*
 * Decodes in[0..len) in pieces: piece 0 means one piece; otherwise sizes 1..piece drawn from
 * the generator (piece 1: byte by byte). Stops feeding once done, as a session would.
 */
static void
fuzz_decode(const char *in, size_t len, uint32_t seed, size_t piece, int store, size_t max,
            struct fuzz_result *r)
{
    struct ms_dot d;
    ms_dot_init(&d);
    memset(r, 0, sizeof *r);
    uint32_t x = seed | 1;
    size_t pos = 0;
    int done = 0;
    do {
        size_t n = len - pos;
        if (piece > 0 && n > 0) {
            size_t cut = 1 + fuzz_next(&x) % piece; /* not inside MS_MIN: evaluated twice */
            n = MS_MIN(n, cut);
        }
        size_t used = ms_dot_decode(&d, in + pos, n, store ? &r->out : NULL, max, &done);
        if (used > n)
            fuzz_fail("consumed %zu of a %zu-byte piece", used, n);
        if (!done && used != n)
            fuzz_fail("not done but consumed only %zu of %zu", used, n);
        pos += used;
    } while (!done && pos < len);
    r->total = d.total;
    r->consumed = pos;
    r->done = done;
    /* Once done, nothing more is consumed. */
    if (done) {
        int again = 0;
        size_t used = ms_dot_decode(&d, in + pos, len - pos, store ? &r->out : NULL, max, &again);
        if (used != 0 || !again || d.total != r->total)
            fuzz_fail("after done: consumed %zu, done %d, total %zu -> %zu", used, again, r->total,
                      d.total);
    }
}

/* The reference: the rules of dot.h applied to the whole stream at once. */
static void
fuzz_reference(const char *in, size_t len, struct fuzz_result *r)
{
    memset(r, 0, sizeof *r);
    int bol = 1;
    size_t i = 0;
    while (i < len) {
        if (bol && in[i] == '.') {
            if (len - i >= 3 && in[i + 1] == '\r' && in[i + 2] == '\n') {
                r->done = 1;
                i += 3;
                break;
            }
            if (len - i == 2 && in[i + 1] == '\r') {
                i += 2; /* ".\r" at the end: the CR is held back, not yet content */
                break;
            }
            i++; /* a stuffed dot */
            bol = 0;
            continue;
        }
        ms_buf_putc(&r->out, in[i]);
        bol = in[i] == '\n' && i > 0 && in[i - 1] == '\r';
        i++;
    }
    r->consumed = i;
    r->total = r->out.len;
}

static void
fuzz_same(const struct fuzz_result *a, const struct fuzz_result *b, const char *what, int bytes)
{
    if (a->total != b->total || a->consumed != b->consumed || a->done != b->done)
        fuzz_fail("%s: total %zu consumed %zu done %d, want total %zu consumed %zu done %d", what,
                  b->total, b->consumed, b->done, a->total, a->consumed, a->done);
    if (bytes && (a->out.len != b->out.len || !fuzz_memeq(a->out.data, b->out.data, a->out.len)))
        fuzz_fail("%s: decoded bytes differ (%zu vs %zu bytes)", what, b->out.len, a->out.len);
}

static void
fuzz_results_fini(struct fuzz_result *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ms_buf_fini(&r[i].out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    uint32_t seed = 0;
    for (size_t i = 0; i < 4 && i < size; i++)
        seed = seed << 8 | data[i];
    size_t piece = size > 0 ? 1 + data[0] % 32 : 1;
    size_t small = size > 1 ? data[1] % 64 : 0;

    struct fuzz_result whole, ref, bytes, split, capped, nostore;
    fuzz_decode(in, size, seed, 0, 1, SIZE_MAX, &whole);
    fuzz_reference(in, size, &ref);
    fuzz_same(&ref, &whole, "one piece vs reference", 1);
    if (whole.out.len != whole.total)
        fuzz_fail("stored %zu bytes of %zu with no limit", whole.out.len, whole.total);
    if (whole.done) {
        /* The marker is ".\r\n" at the start of the data or right after CRLF. */
        size_t c = whole.consumed;
        if (c < 3 || !fuzz_memeq(in + c - 3, ".\r\n", 3) ||
            (c != 3 && (c < 5 || !fuzz_memeq(in + c - 5, "\r\n", 2))))
            fuzz_fail("done at %zu, which does not follow a CRLF \".\" CRLF", c);
    } else if (whole.consumed != size) {
        fuzz_fail("not done after consuming %zu of %zu", whole.consumed, size);
    }

    fuzz_decode(in, size, seed, 1, 1, SIZE_MAX, &bytes);
    fuzz_same(&whole, &bytes, "byte by byte", 1);
    fuzz_decode(in, size, seed, piece, 1, SIZE_MAX, &split);
    fuzz_same(&whole, &split, "random split", 1);

    fuzz_decode(in, size, seed, piece, 1, small, &capped);
    fuzz_same(&whole, &capped, "max-limited", 0);
    if (capped.out.len != MS_MIN(small, whole.total) ||
        !fuzz_memeq(capped.out.data, whole.out.data, capped.out.len))
        fuzz_fail("max %zu stored %zu bytes, want the first %zu", small, capped.out.len,
                  MS_MIN(small, whole.total));
    fuzz_decode(in, size, seed, piece, 0, SIZE_MAX, &nostore);
    fuzz_same(&whole, &nostore, "out == NULL", 0);

    /* Encode then decode. */
    struct ms_buf enc = {0};
    ms_dot_encode(in, size, &enc);
    struct fuzz_result back;
    fuzz_decode(enc.data, enc.len, seed, piece, 1, SIZE_MAX, &back);
    int crlf_end = size >= 2 && in[size - 2] == '\r' && in[size - 1] == '\n';
    size_t want_len = size + (size > 0 && !crlf_end ? 2 : 0);
    if (!back.done || back.consumed != enc.len)
        fuzz_fail("decoding the %zu-byte encoding: done %d after %zu bytes", enc.len, back.done,
                  back.consumed);
    if (back.out.len != want_len || !fuzz_memeq(back.out.data, in, size) ||
        (want_len > size && !fuzz_memeq(back.out.data + size, "\r\n", 2)))
        fuzz_fail("decode(encode(m)) differs from m (+CRLF): %zu bytes, want %zu", back.out.len,
                  want_len);

    ms_buf_fini(&enc);
    struct fuzz_result all[] = {whole, ref, bytes, split, capped, nostore, back};
    fuzz_results_fini(all, MS_ARRAY_LEN(all));
    return 0;
}
