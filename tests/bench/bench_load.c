/*
 * bench_load.c - what a big scenario costs before the first connection: generating the
 * synthetic messages of `generate: { count, size }` (gen.c).
 *
 * Usage: bench_load [count [size]]   (default 10000 messages of 4096 bytes)
 *
 * Each figure is the median of BENCH_RUNS runs, so one descheduled run does not move it, in
 * wall time and in process CPU time (the one to trust on a busy machine):
 *   gen        ms_gen_message into one reused buffer: the generator alone;
 *   gen+alloc  a fresh buffer per message, stolen and freed (one allocation per message on
 *              top of the generator; the store now generates into one reused buffer and
 *              copies each message once into a blob of its exact size, pooled for big batches);
 *   scenario   the whole load: YAML parsed, store built with every message generated
 *              (target: 10,000 x 4 KiB in under 100 ms).
 * The target for 10,000 x 4 KiB is well under 100 ms (about 20-40 ms) for "gen".
 *
 * Not run by ctest; run it from a -O2 (Release / RelWithDebInfo) build, not a sanitizer one.
 * Meant to grow: scenario load and store build are timed here too once they are worth it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base.h"
#include "gen.h"
#include "scenario.h"
#include "store.h"

#define BENCH_RUNS 5
#define BENCH_SEED 42

static uint64_t
bench_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of this process: less disturbed than wall time on a loaded machine. */
static uint64_t
bench_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double
bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, bench_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One run of count messages into a reused buffer; returns wall milliseconds and sets *cpu_r
 * to CPU milliseconds. *bytes_r gets the total generated, which also keeps the work
 * observable. */
static double
bench_gen_reused(long count, size_t size, uint64_t *bytes_r, double *cpu_r)
{
    struct ms_buf b = {0};
    uint64_t bytes = 0;
    int64_t date;
    uint64_t c0 = bench_cpu_ns();
    uint64_t t0 = bench_ns();
    for (long i = 0; i < count; i++) {
        ms_buf_clear(&b);
        ms_gen_message(BENCH_SEED, (uint64_t)i, size, &date, &b);
        bytes += b.len;
    }
    uint64_t t1 = bench_ns();
    *cpu_r = (double)(bench_cpu_ns() - c0) / 1e6;
    ms_buf_fini(&b);
    *bytes_r = bytes;
    return (double)(t1 - t0) / 1e6;
}

/* The store's pattern: a new buffer per message, handed over with ms_buf_steal, freed. */
static double
bench_gen_alloc(long count, size_t size, uint64_t *bytes_r, double *cpu_r)
{
    uint64_t bytes = 0;
    int64_t date;
    uint64_t c0 = bench_cpu_ns();
    uint64_t t0 = bench_ns();
    for (long i = 0; i < count; i++) {
        struct ms_buf b = {0};
        ms_gen_message(BENCH_SEED, (uint64_t)i, size, &date, &b);
        size_t len;
        char *p = ms_buf_steal(&b, &len);
        bytes += len;
        free(p);
    }
    uint64_t t1 = bench_ns();
    *cpu_r = (double)(bench_cpu_ns() - c0) / 1e6;
    *bytes_r = bytes;
    return (double)(t1 - t0) / 1e6;
}

/* What `mocksrv scenario.yaml` does before it binds: parse the YAML, then build the store,
 * generating every message (the target: 10,000 x 4 KiB in under 100 ms). */
static double
bench_scenario_load(long count, size_t size, uint64_t *bytes_r, double *cpu_r)
{
    char yaml[512];
    int n = snprintf(yaml, sizeof yaml,
                     "version: 1\nseed: %d\nusers:\n  alice:\n    password: secret\n"
                     "    mailboxes:\n      INBOX:\n        messages:\n"
                     "          - generate: { count: %ld, size: %zu }\n",
                     BENCH_SEED, count, size);
    uint64_t c0 = bench_cpu_ns();
    uint64_t t0 = bench_ns();
    struct ms_scenario *sc = NULL;
    struct ms_store *st = NULL;
    struct mocksrv_error err = {0};
    if (ms_scenario_load_string(yaml, (size_t)n, "bench.yaml", ".", &sc, &err) != MOCKSRV_OK ||
        ms_store_load_scenario(sc, BENCH_SEED, &st, &err) != MOCKSRV_OK) {
        fprintf(stderr, "bench_load: %s\n", err.message);
        exit(1);
    }
    uint64_t t1 = bench_ns();
    *cpu_r = (double)(bench_cpu_ns() - c0) / 1e6;
    struct ms_mailbox *inbox = ms_store_mailbox(ms_store_account(st, "alice", 0), "INBOX");
    *bytes_r = ms_store_mailbox_size(inbox);
    if (inbox->n_msgs != (size_t)count) {
        fprintf(stderr, "bench_load: %zu messages built, want %ld\n", inbox->n_msgs, count);
        exit(1);
    }
    ms_store_destroy(&st);
    ms_scenario_destroy(&sc);
    return (double)(t1 - t0) / 1e6;
}

typedef double bench_fn(long count, size_t size, uint64_t *bytes_r, double *cpu_r);

static void
bench_report(const char *name, bench_fn *fn, long count, size_t size)
{
    double ms[BENCH_RUNS], cpu[BENCH_RUNS];
    uint64_t bytes = 0;
    for (int run = 0; run < BENCH_RUNS; run++)
        ms[run] = fn(count, size, &bytes, &cpu[run]);
    double med = bench_median(ms, BENCH_RUNS), cpu_med = bench_median(cpu, BENCH_RUNS);
    printf("%-10s %ld messages of %zu bytes: %.1f ms wall (median of %d; min %.1f, max %.1f), "
           "%.1f ms CPU, %.0f MB/s, %.0f ns/message (CPU), %llu bytes\n",
           name, count, size, med, BENCH_RUNS, ms[0], ms[BENCH_RUNS - 1], cpu_med,
           (double)bytes / 1e6 / (cpu_med / 1e3), cpu_med * 1e6 / (double)count,
           (unsigned long long)bytes);
}

int
main(int argc, char **argv)
{
    long count = 10000;
    long size = 4096;
    if (argc > 1)
        count = strtol(argv[1], NULL, 10);
    if (argc > 2)
        size = strtol(argv[2], NULL, 10);
    if (argc > 3 || count <= 0 || count > 100000000L || size <= 0 || size > (64L << 20)) {
        fprintf(stderr, "usage: %s [count, 1..1e8 [size, 1..64MiB]]\n", argv[0]);
        return 2;
    }
    bench_report("gen", bench_gen_reused, count, (size_t)size);
    bench_report("gen+alloc", bench_gen_alloc, count, (size_t)size);
    bench_report("scenario", bench_scenario_load, count, (size_t)size);
    return 0;
}
