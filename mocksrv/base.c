/*
 * base.c - errors, allocation, byte buffers, time, the seeded draw, civil dates and small string
 * helpers (see base.h).
 *
 * Not here: anything that does I/O besides ms_die's last words on stderr.
 */
#include "base.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

const char *
mocksrv_strerror(int code)
{
    switch (code) {
#define MS_X_CASE(name, value, text)                                                               \
    case value:                                                                                    \
        return text;
        MOCKSRV_ERRORS(MS_X_CASE)
#undef MS_X_CASE
    }
    return "unknown error";
}

const char *
mocksrv_version(void)
{
    return MOCKSRV_VERSION;
}

void
ms_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mocksrv: fatal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

void *
ms_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        ms_die("out of memory (%zu bytes)", n);
    return p;
}

void *
ms_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        ms_die("out of memory (%zu x %zu bytes)", count, size);
    return p;
}

void *
ms_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        ms_die("out of memory (%zu bytes)", n);
    return q;
}

char *
ms_strdup(const char *s)
{
    return ms_strndup(s, strlen(s));
}

char *
ms_strndup(const char *s, size_t n)
{
    char *p = ms_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *
ms_vasprintf(const char *fmt, va_list ap)
{
    char *p = NULL;
    if (vasprintf(&p, fmt, ap) < 0)
        ms_die("out of memory (asprintf)");
    return p;
}

char *
ms_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = ms_vasprintf(fmt, ap);
    va_end(ap);
    return p;
}

void
ms_grow(void **array, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return;
    size_t n = *cap ? *cap : 4;
    while (n < need)
        n *= 2;
    *array = ms_realloc(*array, n * elem);
    *cap = n;
}

int64_t
ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
ms_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
ms_deadline_in(int64_t timeout_ms)
{
    if (timeout_ms < 0)
        return MS_NO_DEADLINE;
    return ms_now() + timeout_ms;
}

void
ms_buf_fini(struct ms_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void
ms_buf_clear(struct ms_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void
ms_buf_reserve(struct ms_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t n = b->cap ? b->cap : 64;
    while (n < need)
        n *= 2;
    b->data = ms_realloc(b->data, n);
    b->cap = n;
}

void
ms_buf_append(struct ms_buf *b, const void *p, size_t n)
{
    ms_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void
ms_buf_puts(struct ms_buf *b, const char *s)
{
    ms_buf_append(b, s, strlen(s));
}

void
ms_buf_putc(struct ms_buf *b, char c)
{
    ms_buf_append(b, &c, 1);
}

void
ms_buf_vprintf(struct ms_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    ms_buf_reserve(b, 64);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    ms_assert(n >= 0);
    if ((size_t)n >= b->cap - b->len) {
        ms_buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
    }
    va_end(ap2);
    b->len += (size_t)n;
}

void
ms_buf_printf(struct ms_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ms_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void
ms_buf_consume(struct ms_buf *b, size_t n)
{
    ms_assert(n <= b->len);
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    if (b->data)
        b->data[b->len] = '\0';
}

char *
ms_buf_steal(struct ms_buf *b, size_t *len_r)
{
    if (!b->data)
        ms_buf_reserve(b, 0);
    char *p = b->data;
    if (len_r)
        *len_r = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

uint64_t
ms_draw(uint64_t seed, uint64_t rule, uint64_t session, uint64_t match, uint64_t k)
{
    /* Each coordinate goes through a full mix before the next joins, so neighbouring
     * coordinates give unrelated draws. */
    uint64_t x = ms_splitmix64(seed);
    x = ms_splitmix64(x ^ rule);
    x = ms_splitmix64(x ^ session);
    x = ms_splitmix64(x ^ match);
    return ms_splitmix64(x ^ k);
}

/* An era is 400 years (146097 days), after which the Gregorian calendar repeats; years run from
 * March so that the leap day ends them. 719468 is the number of days from 0000-03-01 to
 * 1970-01-01. */
int64_t
ms_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void
ms_civil_from_days(int64_t days, int64_t *y_r, unsigned *m_r, unsigned *d_r)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d_r = doy - (153 * mp + 2) / 5 + 1;
    *m_r = mp < 10 ? mp + 3 : mp - 9;
    *y_r = (int64_t)yoe + era * 400 + (*m_r <= 2);
}

int
ms_is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

int
ms_strcaseeq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return 0;
    return *a == *b;
}

int
ms_strncaseeq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
            return 0;
        if (!a[i])
            return 1;
    }
    return 1;
}

static int
glob_char_eq(char p, char s, int nocase)
{
    if (nocase)
        return tolower((unsigned char)p) == tolower((unsigned char)s);
    return p == s;
}

int
ms_glob(const char *pattern, const char *s, int nocase)
{
    /* Iterative matcher with one backtrack point: linear in practice, no recursion. */
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pattern == '*') {
            star = pattern++;
            resume = s;
        } else if (*pattern == '?' || (*pattern && glob_char_eq(*pattern, *s, nocase))) {
            pattern++;
            s++;
        } else if (star) {
            pattern = star + 1;
            s = ++resume;
        } else {
            return 0;
        }
    }
    while (*pattern == '*')
        pattern++;
    return *pattern == '\0';
}

int
ms_error_set(struct mocksrv_error *err, int code, const char *fmt, ...)
{
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}
