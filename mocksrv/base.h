/*
 * base.h - the bottom layer every module may include: error codes, allocation that aborts on
 * out-of-memory, growable byte buffers, time, the seeded draw, civil dates, and assertions kept
 * in release builds.
 *
 * No I/O here except ms_die() writing to stderr. Nothing in this layer knows about mail,
 * sockets or the event loop.
 */
#ifndef MS_BASE_H
#define MS_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "mocksrv.h"

#define MS_INTERNAL __attribute__((visibility("hidden")))
#define MS_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define MS_NORETURN __attribute__((noreturn))
#define MS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MS_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Bugs abort, in every build type; bad input never reaches an assertion. */
#define ms_assert(cond)                                                                            \
    ((cond) ? (void)0 : ms_die("%s:%d: assertion failed: %s", __FILE__, __LINE__, #cond))

void ms_die(const char *fmt, ...) MS_PRINTF(1, 2) MS_NORETURN;

/* Allocation: out of memory aborts the process (documented in mocksrv.h). */
void *ms_malloc(size_t n);
void *ms_calloc(size_t count, size_t size);
void *ms_realloc(void *p, size_t n);
char *ms_strdup(const char *s);
char *ms_strndup(const char *s, size_t n);
char *ms_asprintf(const char *fmt, ...) MS_PRINTF(1, 2);
char *ms_vasprintf(const char *fmt, va_list ap) MS_PRINTF(1, 0);
/* Grows *array (of *cap elements of size elem) so that it holds at least need elements. */
void ms_grow(void **array, size_t *cap, size_t need, size_t elem);

/* Time: monotonic milliseconds since an arbitrary point, and wall-clock milliseconds. */
int64_t ms_now(void);
int64_t ms_wall_ms(void);
/* A deadline timeout_ms from now; a negative timeout means "no deadline" (INT64_MAX). */
int64_t ms_deadline_in(int64_t timeout_ms);
#define MS_NO_DEADLINE INT64_MAX

/*
 * A growable byte buffer. data[len] is always a NUL (so text can be used as a C string),
 * which is not counted in len. A zeroed struct is a valid empty buffer.
 */
struct ms_buf {
    char *data;
    size_t len;
    size_t cap;
};

void ms_buf_fini(struct ms_buf *b);
void ms_buf_clear(struct ms_buf *b);
void ms_buf_reserve(struct ms_buf *b, size_t extra);
void ms_buf_append(struct ms_buf *b, const void *p, size_t n);
void ms_buf_puts(struct ms_buf *b, const char *s);
void ms_buf_putc(struct ms_buf *b, char c);
void ms_buf_printf(struct ms_buf *b, const char *fmt, ...) MS_PRINTF(2, 3);
void ms_buf_vprintf(struct ms_buf *b, const char *fmt, va_list ap) MS_PRINTF(2, 0);
/* Removes the first n bytes. */
void ms_buf_consume(struct ms_buf *b, size_t n);
/* Hands the bytes to the caller (who frees them) and leaves b empty. */
char *ms_buf_steal(struct ms_buf *b, size_t *len_r);

/*
 * The seeded draw: SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
 * generators", 2014). Pure functions of their arguments, so whatever is drawn from a seed (fault
 * decisions, generated messages, challenges, UIDVALIDITY) replays from it, in any version:
 * changing one of these changes every replay (tests/unit/test_base.c pins the values).
 */
#define MS_GOLDEN_GAMMA 0x9e3779b97f4a7c15ull /* SplitMix64's increment: 2^64 / golden ratio */

/* The finaliser alone (Stafford's mix 13): a bijection of 64 bits, well spread. */
static inline uint64_t
ms_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The generator: advances *state by the gamma and returns the mix of the new state. */
static inline uint64_t
ms_splitmix64_next(uint64_t *state)
{
    *state += MS_GOLDEN_GAMMA;
    return ms_mix64(*state);
}

/* The first value of a generator seeded with x: a well-spread pure function of x. */
static inline uint64_t
ms_splitmix64(uint64_t x)
{
    return ms_splitmix64_next(&x);
}

/* The draw of FAULTS.md 1: a pure function of its coordinates (seed, the rule's index, the
 * session's ordinal, the match ordinal, and k, the draw's number within that match). */
uint64_t ms_draw(uint64_t seed, uint64_t rule, uint64_t session, uint64_t match, uint64_t k);

/* Proleptic Gregorian dates (H. Hinnant's algorithms): exact for every year, negative days
 * included, with no time zone, locale or libc time function. Days count from 1970-01-01 (day 0);
 * months run 1 to 12, days 1 to 31. ms_days_from_civil does not check its date: 31 February
 * counts on into March. */
int64_t ms_days_from_civil(int64_t y, unsigned m, unsigned d);
void ms_civil_from_days(int64_t days, int64_t *y_r, unsigned *m_r, unsigned *d_r);

/* 1 if no byte of the string is above 0x7f (an empty string is ASCII), else 0. */
int ms_is_ascii(const char *s);

/* Case-insensitive ASCII helpers (protocol verbs are ASCII; locale never matters). */
int ms_strcaseeq(const char *a, const char *b);
int ms_strncaseeq(const char *a, const char *b, size_t n);
/* Glob with * and ? only (other characters literal), ASCII case-insensitive when nocase. */
int ms_glob(const char *pattern, const char *s, int nocase);

/* Error helpers: fill an optional mocksrv_error (err may be NULL). Return code. */
int ms_error_set(struct mocksrv_error *err, int code, const char *fmt, ...) MS_PRINTF(3, 4);

#endif
