/*
 * runtime.h - the event loop (loop.c) and stackful coroutines (coro.c, stack.c, ctx_*.S).
 *
 * One loop per server, one thread per loop. The loop multiplexes edge-triggered epoll, a timer
 * heap and a ready queue of coroutines. A coroutine is a function running on its own mmap'ed
 * stack (guard page below it); it blocks only by calling ms_co_wait_io / ms_co_sleep /
 * ms_co_yield, which switch back to the loop. Nothing here knows about mail.
 *
 * Invariants:
 *   - ms_co_* blocking calls may only be made from inside a coroutine run by a loop.
 *   - An I/O handle is registered with epoll once (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET). Edge
 *     triggering means a coroutine must read/write until EAGAIN before it waits; a wake-up may be
 *     spurious, so callers loop.
 *   - "current coroutine" is thread-local (the only per-thread state), so several loops may run
 *     on several threads.
 */
#ifndef MS_RUNTIME_H
#define MS_RUNTIME_H

#include <stdint.h>
#include <stddef.h>

#include "base.h"

/* ---- coroutines (coro.c, stack.c, ctx_*) ---- */

typedef void ms_coro_fn(void *arg);
struct ms_coro;

#define MS_CORO_STACK_DEFAULT (64 * 1024)

/* Creates a coroutine that will run fn(arg) on a stack of stack_size bytes (0 = default; rounded
 * up to pages, at least two, plus one PROT_NONE guard page below it) when first resumed. The
 * stack is mapped by the first ms_coro_resume, so a created-but-unstarted coroutine costs only
 * its small struct. Aborts when malloc fails; a stack that cannot be mapped is an error of the
 * first resume. */
struct ms_coro *ms_coro_create(ms_coro_fn *fn, void *arg, size_t stack_size);
/* Frees a coroutine that has finished, has never been started, or is suspended (its stack is
 * then unmapped without unwinding: nothing on it is released). Never the running one, nor one
 * of the coroutines that resumed it. Sets *co to NULL. */
void ms_coro_destroy(struct ms_coro **co);
/* Switches from the caller (the loop or any non-coroutine code, or another coroutine) into co
 * until co yields or returns, and returns MOCKSRV_OK. The first resume maps the stack: when
 * that fails (ms_stack_init: memory, vm.max_map_count) it returns MOCKSRV_ENOMEM at once and
 * co stays not started, to be resumed again later or destroyed. */
int ms_coro_resume(struct ms_coro *co);
/* From inside a coroutine: switch back to whoever resumed it. */
void ms_coro_yield(void);
/* The running coroutine, or NULL when called outside any coroutine. */
struct ms_coro *ms_coro_current(void);
/* 1 once fn has returned. */
int ms_coro_finished(const struct ms_coro *co);
/* A cache of stacks left by destroyed coroutines, reused by new ones: one connection per session
 * then costs no mmap/mprotect/munmap and no fresh page faults. Holds at most max stacks (their
 * touched pages stay resident). Single-threaded, like the coroutines that use it. */
struct ms_stack_cache;
struct ms_stack_cache *ms_stack_cache_create(size_t max);
/* Unmaps every cached stack; coroutines still using the cache must be destroyed first. */
void ms_stack_cache_destroy(struct ms_stack_cache **cache);
/* Before the first resume: take the stack from cache when it has one of the right size, and
 * give it back there on destroy. */
void ms_coro_set_stack_cache(struct ms_coro *co, struct ms_stack_cache *cache);

/* Arbitrary user pointer slot (the loop uses it for its task record). */
void ms_coro_set_data(struct ms_coro *co, void *data);
void *ms_coro_data(const struct ms_coro *co);

/* ---- loop (loop.c) ---- */

struct ms_loop;
struct ms_io;

/* Callback for plain (non-coroutine) fd watchers and timers: run on the loop's stack. */
typedef void ms_loop_cb(void *arg, uint32_t events);

/* Returns NULL (errno set) when epoll_create1 fails, e.g. out of file descriptors. */
struct ms_loop *ms_loop_create(void);
/* Destroys the loop; every coroutine still alive is destroyed without being resumed (their
 * stacks are unmapped), every registered fd is removed (not closed). Sets *loop to NULL. */
void ms_loop_destroy(struct ms_loop **loop);

/* The epoll fd: readable when the loop has work (for embedding in a host's poll loop). */
int ms_loop_fd(const struct ms_loop *loop);
/* For embedding (added by the runtime): how long the host may wait on ms_loop_fd before the
 * next ms_loop_step is due anyway: 0 when a coroutine is ready (or the loop is stopping), the
 * time to the nearest timer in ms, -1 when only an fd event can create work. */
int ms_loop_timeout(const struct ms_loop *loop);
/* One iteration: run ready coroutines, wait for events/timers at most timeout_ms
 * (-1 = until something happens; 0 = don't block), dispatch them, run ready coroutines again.
 * Returns the number of things dispatched, or a negative MOCKSRV code. */
int ms_loop_step(struct ms_loop *loop, int timeout_ms);
/* Steps until ms_loop_stop is called (from a coroutine or callback of this loop). The stop is
 * sticky: ms_loop_run returns at once on a stopped loop. Returns MOCKSRV_OK once stopped, or
 * MOCKSRV_ESYS (errno set) when epoll_wait fails, which only a bad descriptor can cause. */
int ms_loop_run(struct ms_loop *loop);
void ms_loop_stop(struct ms_loop *loop);
int ms_loop_stopped(const struct ms_loop *loop);

/* Spawns fn(arg) as a coroutine, queued to run on the next step. stack_size 0 = default.
 * When fn returns, the coroutine is destroyed by the loop. Returns the coroutine. */
struct ms_coro *ms_loop_spawn(struct ms_loop *loop, ms_coro_fn *fn, void *arg, size_t stack_size);
/* Makes a coroutine that is blocked in ms_co_wait_io/ms_co_sleep/ms_co_park runnable again
 * on the next step; its blocking call returns MOCKSRV_ECANCELED. A coroutine that is running or
 * ready gets the cancel at its next blocking call instead, so a wake is never lost. */
void ms_loop_wake(struct ms_loop *loop, struct ms_coro *co);
/* Number of live coroutines spawned by this loop. */
size_t ms_loop_coro_count(const struct ms_loop *loop);
/* How many times a spawned coroutine could not get its stack (the mmap failed: memory,
 * RLIMIT_AS, vm.max_map_count). Such a coroutine does not start: it waits and tries again
 * every 100 ms; an ms_loop_wake meanwhile cancels its first blocking call. */
size_t ms_loop_stack_failures(const struct ms_loop *loop);

/* Registers fd (already non-blocking) for coroutine I/O. Returns a handle, or NULL with errno
 * set when epoll refuses the fd (e.g. a regular file). Close the handle before the fd. */
struct ms_io *ms_io_open(struct ms_loop *loop, int fd);
/* Deregisters (does not close fd); wakes any coroutine waiting on it with MOCKSRV_ECANCELED.
 * Sets *io to NULL. */
void ms_io_close(struct ms_io **io);
int ms_io_fd(const struct ms_io *io);
/* 1 once epoll reported a hang-up, a half-close by the peer or an error on io: the reader must
 * read until EOF or error instead of waiting for another edge. */
int ms_io_broken(const struct ms_io *io);

/* Plain callback watcher on fd (for listeners, signalfd, eventfd): cb(arg, epoll events) on
 * each edge (edge-triggered: drain until EAGAIN). Returns a handle closed with ms_io_close, or
 * NULL with errno set when epoll refuses the fd. */
struct ms_io *ms_loop_watch(struct ms_loop *loop, int fd, uint32_t events, ms_loop_cb *cb,
                            void *arg);

/* From inside a coroutine spawned by this loop: wait until io is readable (EPOLLIN) and/or
 * writable (EPOLLOUT) as asked in events, or the deadline (ms_now() scale; MS_NO_DEADLINE = none)
 * passes. Returns MOCKSRV_OK when an event arrived (possibly spurious: retry the I/O),
 * MOCKSRV_ETIMEDOUT at the deadline, MOCKSRV_ECANCELED when woken by ms_loop_wake or io closed.
 * EPOLLHUP/EPOLLERR/EPOLLRDHUP count as readable and writable. */
int ms_co_wait_io(struct ms_io *io, uint32_t events, int64_t deadline);
/* Sleeps timeout_ms (at least that much on the ms_now() scale; negative = 0). Returns MOCKSRV_OK,
 * or MOCKSRV_ECANCELED if woken early. */
int ms_co_sleep(int64_t timeout_ms);
/* Blocks until woken by ms_loop_wake or the deadline. Returns MOCKSRV_ECANCELED when woken,
 * MOCKSRV_ETIMEDOUT at the deadline. */
int ms_co_park(int64_t deadline);
/* Lets the other ready coroutines run, then continues. */
void ms_co_yield_now(void);
/* The loop that runs the current coroutine. */
struct ms_loop *ms_co_loop(void);

/* Plain timers: cb(arg, 0) on the loop's stack at deadline (ms_now() scale). Equal deadlines fire
 * in the order they were added. Returns an id > 0. Cancelling an id that already fired or was
 * cancelled does nothing. */
uint64_t ms_loop_timer_add(struct ms_loop *loop, int64_t deadline, ms_loop_cb *cb, void *arg);
void ms_loop_timer_cancel(struct ms_loop *loop, uint64_t id);

#endif
