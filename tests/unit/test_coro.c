/*
 * test_coro.c - unit tests of the coroutine runtime (coro.c, stack.c, the ctx back end).
 *
 * What is checked: control goes back and forth in the documented order; values live across
 * switches survive (integers and floating point, in registers and on the stack); resumes nest;
 * the floating-point control state stays per coroutine; suspended and unstarted coroutines can
 * be destroyed; stacks are page-rounded, lazily resident, and guarded (an overflow dies with
 * SIGSEGV). Each test runs in its own process (check's default fork mode).
 */
#include <check.h>
#include <fenv.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ctx.h"
#include "runtime.h"

/* ---- back and forth ---- */

struct order_log {
    int events[64];
    int n;
};

static void
order_fn(void *arg)
{
    struct order_log *log = arg;
    log->events[log->n++] = 1;
    ms_coro_yield();
    log->events[log->n++] = 3;
    ms_coro_yield();
    log->events[log->n++] = 5;
}

START_TEST(test_switch_order)
{
    struct order_log log = {.n = 0};
    struct ms_coro *co = ms_coro_create(order_fn, &log, 0);
    ck_assert_ptr_null(ms_coro_current());
    ck_assert_int_eq(log.n, 0); /* nothing runs before the first resume */

    ms_coro_resume(co);
    log.events[log.n++] = 2;
    ck_assert(!ms_coro_finished(co));
    ms_coro_resume(co);
    log.events[log.n++] = 4;
    ck_assert(!ms_coro_finished(co));
    ms_coro_resume(co);
    ck_assert(ms_coro_finished(co));
    ck_assert_ptr_null(ms_coro_current());

    ck_assert_int_eq(log.n, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_msg(log.events[i] == i + 1, "event %d: got %d, want %d", i, log.events[i], i + 1);
    ms_coro_destroy(&co);
    ck_assert_ptr_null(co);
}
END_TEST

/* Many values live across each switch: the compiler keeps some in callee-saved registers,
 * spills the rest; either way they must come back intact. */
struct values_state {
    struct ms_coro *self;
    uint64_t sum;
    double fsum;
    int rounds;
};

static void
values_fn(void *arg)
{
    struct values_state *st = arg;
    uint64_t a = 1, b = 2, c = 3, d = 5, e = 8, f = 13, g = 21, h = 34;
    double x = 0.5, y = 1.25, z = -2.0;
    for (int i = 0; i < st->rounds; i++) {
        ck_assert_ptr_eq(ms_coro_current(), st->self);
        ms_coro_yield();
        a += b;
        b ^= c << 1;
        c += d * 3;
        d = d * 7 + e;
        e += f;
        f ^= g;
        g += h;
        h = h * 31 + a;
        x = x * 1.0001 + y;
        y = y - z * 0.5;
        z = z * 0.999;
    }
    st->sum = a + b + c + d + e + f + g + h;
    st->fsum = x + y + z;
}

START_TEST(test_values_survive)
{
    const int rounds = 1000;
    /* Expected result computed without any switch. */
    uint64_t a = 1, b = 2, c = 3, d = 5, e = 8, f = 13, g = 21, h = 34;
    double x = 0.5, y = 1.25, z = -2.0;
    for (int i = 0; i < rounds; i++) {
        a += b;
        b ^= c << 1;
        c += d * 3;
        d = d * 7 + e;
        e += f;
        f ^= g;
        g += h;
        h = h * 31 + a;
        x = x * 1.0001 + y;
        y = y - z * 0.5;
        z = z * 0.999;
    }

    struct values_state st = {.rounds = rounds};
    st.self = ms_coro_create(values_fn, &st, 0);
    /* The caller's own values must survive as well, in registers (both sides keep several
     * floating-point and integer values live across the switch) and in memory. */
    double u = 3.0, v = -0.75, w = 0.125;
    double u_want = u, v_want = v, w_want = w;
    uint64_t k = 77, k_want = 77;
    for (int i = 0; i < rounds + 1; i++) {
        u_want = u_want * 0.5 + w_want;
        v_want = v_want - u_want * 0.25;
        w_want = w_want * 1.0002 + 1.0;
        k_want = k_want * 6364136223846793005ULL + 1;
    }
    volatile uint64_t mine = 0xdeadbeefcafef00dULL;
    int resumes = 0;
    while (!ms_coro_finished(st.self)) {
        ms_coro_resume(st.self);
        resumes++;
        u = u * 0.5 + w;
        v = v - u * 0.25;
        w = w * 1.0002 + 1.0;
        k = k * 6364136223846793005ULL + 1;
    }
    ck_assert_int_eq(resumes, rounds + 1);
    ck_assert_uint_eq(mine, 0xdeadbeefcafef00dULL);
    ck_assert_msg(u == u_want && v == v_want && w == w_want && k == k_want,
                  "caller's values changed across switches");
    ck_assert_msg(st.sum == a + b + c + d + e + f + g + h, "integer sum: got %llu, want %llu",
                  (unsigned long long)st.sum, (unsigned long long)(a + b + c + d + e + f + g + h));
    ck_assert_msg(st.fsum == x + y + z, "float sum: got %.17g, want %.17g", st.fsum, x + y + z);
    ms_coro_destroy(&st.self);
}
END_TEST

/* ---- nesting: a coroutine resumes another ---- */

struct nest_state {
    struct ms_coro *outer, *inner;
    char trace[16];
    int n;
};

static void
nest_inner(void *arg)
{
    struct nest_state *st = arg;
    ck_assert_ptr_eq(ms_coro_current(), st->inner);
    st->trace[st->n++] = 'i';
    ms_coro_yield(); /* back to outer, not to main */
    ck_assert_ptr_eq(ms_coro_current(), st->inner);
    st->trace[st->n++] = 'j';
}

static void
nest_outer(void *arg)
{
    struct nest_state *st = arg;
    st->trace[st->n++] = 'o';
    ms_coro_resume(st->inner);
    ck_assert_ptr_eq(ms_coro_current(), st->outer);
    st->trace[st->n++] = 'p';
    ms_coro_yield(); /* back to main */
    st->trace[st->n++] = 'q';
    ms_coro_resume(st->inner);
    ck_assert(ms_coro_finished(st->inner));
    st->trace[st->n++] = 'r';
}

START_TEST(test_nested_resume)
{
    struct nest_state st = {.n = 0};
    st.outer = ms_coro_create(nest_outer, &st, 0);
    st.inner = ms_coro_create(nest_inner, &st, 0);
    ms_coro_resume(st.outer);
    ck_assert_ptr_null(ms_coro_current());
    st.trace[st.n++] = 'm';
    ms_coro_resume(st.outer);
    ck_assert(ms_coro_finished(st.outer));
    st.trace[st.n] = '\0';
    ck_assert_str_eq(st.trace, "oipmqjr");
    ms_coro_destroy(&st.inner);
    ms_coro_destroy(&st.outer);
}
END_TEST

/* ---- round robin over many coroutines ---- */

static void
ring_fn(void *arg)
{
    int *count = arg;
    for (int i = 0; i < 10; i++) {
        (*count)++;
        ms_coro_yield();
    }
}

START_TEST(test_round_robin)
{
    enum { N = 1000 };
    static struct ms_coro *cos[N];
    static int counts[N];
    for (int i = 0; i < N; i++)
        cos[i] = ms_coro_create(ring_fn, &counts[i], 16 * 1024);
    for (int round = 0; round < 11; round++)
        for (int i = 0; i < N; i++) {
            ck_assert(!ms_coro_finished(cos[i]));
            ms_coro_resume(cos[i]);
            ck_assert_int_eq(counts[i], round < 10 ? round + 1 : 10);
        }
    for (int i = 0; i < N; i++) {
        ck_assert(ms_coro_finished(cos[i]));
        ms_coro_destroy(&cos[i]);
    }
}
END_TEST

/* ---- data slot, destroying suspended / unstarted coroutines ---- */

static void
forever_fn(void *arg)
{
    int *steps = arg;
    for (;;) {
        (*steps)++;
        ms_coro_yield();
    }
}

START_TEST(test_destroy_suspended_and_unstarted)
{
    int steps = 0;
    struct ms_coro *co = ms_coro_create(forever_fn, &steps, 0);
    ck_assert_ptr_null(ms_coro_data(co));
    ms_coro_set_data(co, &steps);
    ck_assert_ptr_eq(ms_coro_data(co), &steps);
    ms_coro_resume(co);
    ms_coro_resume(co);
    ck_assert_int_eq(steps, 2);
    ms_coro_destroy(&co); /* suspended in the middle of its loop */
    ck_assert_ptr_null(co);

    struct ms_coro *never = ms_coro_create(forever_fn, &steps, 0);
    ms_coro_destroy(&never);
    ck_assert_ptr_null(never);
    ck_assert_int_eq(steps, 2);
    ms_coro_destroy(&never); /* NULL: no-op */
}
END_TEST

/* ---- floating-point control state is per coroutine ---- */

static void
round_fn(void *arg)
{
    int *seen = arg;
    ck_assert_int_eq(fesetround(FE_UPWARD), 0);
    ms_coro_yield();
    *seen = fegetround();
}

/* Divisions whose last bit depends on the rounding mode: double (SSE on x86-64, so MXCSR) and
 * long double (the x87 unit on x86-64, so its control word). */
static double
third(void)
{
    volatile double one = 1.0, three = 3.0;
    return one / three;
}

static long double
third_long(void)
{
    volatile long double one = 1.0L, three = 3.0L;
    return one / three;
}

START_TEST(test_fp_control_per_coroutine)
{
    int seen = -1;
    ck_assert_int_eq(fegetround(), FE_TONEAREST);
    double d_nearest = third();
    long double ld_nearest = third_long();
    struct ms_coro *co = ms_coro_create(round_fn, &seen, 0);
    ms_coro_resume(co);
    ck_assert_msg(fegetround() == FE_TONEAREST, "rounding mode leaked out of the coroutine");
    ck_assert_msg(third() == d_nearest, "double rounding mode leaked out of the coroutine");
    ck_assert_msg(third_long() == ld_nearest, "long double rounding mode leaked out");
    ms_coro_resume(co);
    ck_assert_msg(seen == FE_UPWARD, "coroutine lost its rounding mode");
    ms_coro_destroy(&co);
}
END_TEST

/* ---- stacks ---- */

START_TEST(test_stack_rounding_and_guard)
{
    size_t page = ms_stack_page_size();
    struct ms_stack st;
    ck_assert_int_eq(ms_stack_init(&st, 1000), MOCKSRV_OK);
    ck_assert_uint_eq(st.size, 2 * page); /* at least two pages */
    ck_assert_uint_eq((uintptr_t)st.lo % page, 0);
    ck_assert_ptr_eq((char *)st.map + page, st.lo);
    ms_stack_fini(&st);
    ck_assert_ptr_null(st.map);

    ck_assert_int_eq(ms_stack_init(&st, 5 * page + 1), MOCKSRV_OK);
    ck_assert_uint_eq(st.size, 6 * page);
    memset(st.lo, 0xa5, st.size); /* all of it is writable */
    ms_stack_fini(&st);
}
END_TEST

START_TEST(test_stack_untouched_not_resident)
{
    size_t page = ms_stack_page_size();
    size_t size = 64 * 1024 * 1024;
    struct ms_stack st;
    ck_assert_int_eq(ms_stack_init(&st, size), MOCKSRV_OK);
    /* Touch the top 4 pages only, as a shallow coroutine would. */
    memset((char *)st.lo + st.size - 4 * page, 1, 4 * page);
    size_t npages = st.size / page;
    unsigned char *vec = calloc(npages, 1);
    ck_assert_int_eq(mincore(st.lo, st.size, vec), 0);
    size_t resident = 0;
    for (size_t i = 0; i < npages; i++)
        resident += vec[i] & 1;
    free(vec);
    ck_assert_msg(resident >= 4 && resident < 64, "resident pages: got %zu, want 4..63", resident);
    ms_stack_fini(&st);
}
END_TEST

START_TEST(test_stack_guard_page_faults)
{
    struct ms_stack st;
    ck_assert_int_eq(ms_stack_init(&st, 16 * 1024), MOCKSRV_OK);
    signal(SIGSEGV, SIG_DFL); /* under ASan: die by the signal, not by ASan's report */
    volatile char *below = (volatile char *)st.lo - 1;
    *below = 1;
    ck_abort_msg("write into the guard page did not fault");
}
END_TEST

static int
recurse(int depth)
{
    volatile char frame[256];
    frame[0] = (char)depth;
    frame[sizeof frame - 1] = (char)depth;
    if (depth == INT32_MAX)
        return frame[0];
    return recurse(depth + 1) + frame[sizeof frame - 1];
}

static void
overflow_fn(void *arg)
{
    *(int *)arg = recurse(0);
}

START_TEST(test_stack_overflow_segv)
{
    int out = 0;
    signal(SIGSEGV, SIG_DFL); /* under ASan: die by the signal, not by ASan's report */
    struct ms_coro *co = ms_coro_create(overflow_fn, &out, 16 * 1024);
    ms_coro_resume(co);
    ck_abort_msg("infinite recursion on a 16 KiB stack returned %d", out);
}
END_TEST

static Suite *
coro_suite(void)
{
    Suite *s = suite_create("coro");
    TCase *tc = tcase_create("switch");
    tcase_add_test(tc, test_switch_order);
    tcase_add_test(tc, test_values_survive);
    tcase_add_test(tc, test_nested_resume);
    tcase_add_test(tc, test_round_robin);
    tcase_add_test(tc, test_destroy_suspended_and_unstarted);
    tcase_add_test(tc, test_fp_control_per_coroutine);
    suite_add_tcase(s, tc);

    tc = tcase_create("stack");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_stack_rounding_and_guard);
    tcase_add_test(tc, test_stack_untouched_not_resident);
    tcase_add_test_raise_signal(tc, test_stack_guard_page_faults, SIGSEGV);
    tcase_add_test_raise_signal(tc, test_stack_overflow_segv, SIGSEGV);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(coro_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
