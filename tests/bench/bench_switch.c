/*
 * bench_switch.c - cost of a coroutine switch: resume + yield round trips, timed.
 *
 * Usage: bench_switch [round_trips]   (default 10,000,000)
 *
 * One coroutine yields in a loop; the main stack resumes it round_trips times. Each round trip
 * is two switches (into the coroutine and back out), with the bookkeeping of ms_coro_resume /
 * ms_coro_yield included, so "ns per switch" is half a round trip. The best of a few runs is
 * reported, to keep scheduler noise out. The target is under 30 ns per switch.
 *
 * Not run by ctest; run it from a -O2 (Release / RelWithDebInfo) build, not a sanitizer one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "runtime.h"

static void
bench_spin(void *arg)
{
    volatile uint64_t *count = arg;
    for (;;) {
        (*count)++;
        ms_coro_yield();
    }
}

static uint64_t
bench_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int
main(int argc, char **argv)
{
    long n = 10000000;
    if (argc > 1) {
        n = strtol(argv[1], NULL, 10);
        if (n <= 0 || n > 1000000000L) {
            fprintf(stderr, "usage: %s [round_trips, 1..1e9]\n", argv[0]);
            return 2;
        }
    }
    volatile uint64_t count = 0;
    struct ms_coro *co = ms_coro_create(bench_spin, (void *)&count, 0);
    ms_coro_resume(co); /* map the stack and start it outside the timing */

    double best = 0;
    for (int run = 0; run < 5; run++) {
        uint64_t t0 = bench_ns();
        for (long i = 0; i < n; i++)
            ms_coro_resume(co);
        uint64_t t1 = bench_ns();
        double per_trip = (double)(t1 - t0) / (double)n;
        if (run == 0 || per_trip < best)
            best = per_trip;
    }
    if (count != 1 + 5 * (uint64_t)n) {
        fprintf(stderr, "bench_switch: coroutine ran %llu times, want %llu\n",
                (unsigned long long)count, (unsigned long long)(1 + 5 * (uint64_t)n));
        return 1;
    }
    ms_coro_destroy(&co);
    printf("bench_switch: %ld round trips (resume + yield), best of 5\n", n);
    printf("round trip: %.2f ns\n", best);
    printf("switch: %.2f ns (target < 30 ns)\n", best / 2);
    return 0;
}
