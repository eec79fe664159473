/*
 * loop.c - the event loop: edge-triggered epoll, a timer heap and a ready queue of coroutines.
 *
 * One step (ms_loop_step) runs the coroutines that are ready, sleeps in epoll_wait until an fd
 * event, the nearest timer or the caller's timeout, wakes the coroutines waiting on the fds
 * that fired (or calls the watchers' callbacks), fires the timers that are due, and runs the
 * ready coroutines once more. ms_loop_run repeats steps until ms_loop_stop. In the spirit of
 * Redis's ae.c, one iteration per call so that a host can embed the loop.
 *
 * Not here: the context switch (coro.c), signal handling (the server watches a signalfd with
 * ms_loop_watch), anything about mail. No thread safety: a loop belongs to the thread that
 * steps it.
 *
 * Invariants:
 *   - The loop never busy-spins: epoll_wait gets timeout 0 only when a coroutine is ready or
 *     the loop is stopping; otherwise it blocks until the nearest timer or the caller's timeout.
 *   - A task (the loop's record of a spawned coroutine) is in exactly one state: READY (in the
 *     ready queue, or in the batch being run), RUNNING (on the CPU), or BLOCKED (waiting for an
 *     io event, its deadline timer or ms_loop_wake; or, never started, for a stack: the mmap
 *     failed, and a timer retries it). Only BLOCKED tasks are woken; waking one
 *     removes it from its io's waiter list and cancels its deadline timer, so it is woken once.
 *   - A ready pass runs only the tasks that were ready when it started: a coroutine that calls
 *     ms_co_yield_now runs again in the next pass, after the loop has looked at epoll.
 *   - A spawned coroutine whose function returned is destroyed by the loop after the switch
 *     back to the loop's stack, never on its own stack.
 *   - epoll events carry a struct ms_io pointer. An io closed while a batch of events is being
 *     dispatched stays allocated (marked closed, on the dead list) until the batch is over, so
 *     a later event of the same batch never reads freed memory.
 *   - Readiness that arrives while no coroutine waits for it is remembered in io->pending and
 *     makes the next ms_co_wait_io for it return at once (a possibly spurious wake-up, which the
 *     contract allows) rather than lose an edge.
 *   - Timers: a binary min-heap ordered by (deadline, insertion sequence), so equal deadlines
 *     fire first-in first-out. A timer id names a slot in loop->timers plus the slot's
 *     generation; cancelling a fired or cancelled timer (stale generation) does nothing.
 *     Timers added while timers fire wait for the next step, so a callback re-arming itself at
 *     "now" cannot starve the loop.
 */
#include "runtime.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define LOOP_EVENTS 128

/* Readiness as seen by coroutine waiters (ms_co_wait_io takes EPOLLIN / EPOLLOUT). */
#define IO_READ EPOLLIN
#define IO_WRITE EPOLLOUT
/* A hang-up or an error makes both directions "ready": the next read or write reports it. */
#define IO_BROKEN (EPOLLHUP | EPOLLERR | EPOLLRDHUP)

#define TIMER_NONE UINT32_MAX

enum task_state {
    TASK_READY,
    TASK_RUNNING,
    TASK_BLOCKED,
};

/* The loop's record of a coroutine it spawned; the coroutine's data slot points to it. */
struct loop_task {
    struct ms_loop *loop;
    struct ms_coro *co;
    ms_coro_fn *fn;
    void *arg;
    enum task_state state;
    int result;                    /* what the blocking call returns once woken */
    int cancel_pending;            /* woken while not blocked: the next block returns at once */
    int starved;                   /* not started: its stack could not be mapped (BLOCKED) */
    struct loop_task *next_ready;  /* ready queue */
    struct loop_task *prev, *next; /* all live tasks */

    /* while BLOCKED */
    struct ms_io *wait_io;               /* io waited on, or NULL */
    uint32_t wait_events;                /* IO_READ and/or IO_WRITE */
    struct loop_task *io_prev, *io_next; /* other waiters on wait_io */
    uint64_t timer_id;                   /* deadline timer, 0 = none */
};

struct ms_io {
    struct ms_loop *loop;
    int fd;
    int closed;
    uint32_t pending; /* readiness no waiter took yet (IO_READ / IO_WRITE) */
    int broken;       /* a hang-up, half-close or error was reported: no edge will follow */
    ms_loop_cb *cb;   /* plain watcher (ms_loop_watch); NULL for coroutine I/O */
    void *cb_arg;
    struct loop_task *waiters; /* coroutines blocked on this io */
    struct ms_io *prev, *next; /* all open ios; after close, next links the dead list */
};

struct loop_timer {
    int64_t deadline;
    uint64_t seq; /* insertion order, the tie-break for equal deadlines */
    ms_loop_cb *cb;
    void *arg;
    uint32_t gen;       /* bumped each time the slot is freed; part of the id */
    uint32_t heap_pos;  /* index in loop->heap, or TIMER_NONE when the slot is free */
    uint32_t next_free; /* free-slot list */
};

/* Stacks kept for reuse: enough for a burst of short sessions, a few MiB of address space. */
#define LOOP_STACK_CACHE 64
/* A coroutine whose stack cannot be mapped tries again after this long. */
#define LOOP_STACK_RETRY_MS 100

struct ms_loop {
    int epfd;
    int tfd;                       /* timerfd in epfd, armed at the next due work (embedding) */
    struct ms_stack_cache *stacks; /* stacks of finished coroutines, reused by new ones */
    int64_t tfd_armed;             /* absolute ms it is armed for; 0 = disarmed */
    int stop;
    int stepping;    /* inside ms_loop_step (no re-entry) */
    int dispatching; /* inside the event batch: closed ios go to the dead list */

    /* coroutines */
    struct loop_task *tasks; /* all live tasks */
    size_t ntasks;
    size_t starved; /* times a task could not get a stack (ms_loop_stack_failures) */
    struct loop_task *ready_head, *ready_tail;

    /* fds */
    struct ms_io *ios;  /* all open ios */
    struct ms_io *dead; /* closed during the current batch, freed after it */

    /* timers: slots (stable, addressed by id) and a heap of slot indices */
    struct loop_timer *timers;
    size_t timers_cap;
    uint32_t timers_used; /* slots ever handed out (a prefix of timers) */
    uint32_t free_timer;  /* head of the free-slot list, TIMER_NONE if empty */
    uint32_t *heap;
    size_t heap_len, heap_cap;
    uint64_t timer_seq;

    struct epoll_event events[LOOP_EVENTS];
};

static void loop_arm_tfd(struct ms_loop *loop);

/* ---- timer heap ---- */

static int
timer_before(const struct ms_loop *loop, uint32_t a, uint32_t b)
{
    const struct loop_timer *ta = &loop->timers[a], *tb = &loop->timers[b];
    if (ta->deadline != tb->deadline)
        return ta->deadline < tb->deadline;
    return ta->seq < tb->seq;
}

static void
timer_heap_set(struct ms_loop *loop, size_t pos, uint32_t slot)
{
    loop->heap[pos] = slot;
    loop->timers[slot].heap_pos = (uint32_t)pos;
}

static void
timer_heap_up(struct ms_loop *loop, size_t pos)
{
    uint32_t slot = loop->heap[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (!timer_before(loop, slot, loop->heap[parent]))
            break;
        timer_heap_set(loop, pos, loop->heap[parent]);
        pos = parent;
    }
    timer_heap_set(loop, pos, slot);
}

static void
timer_heap_down(struct ms_loop *loop, size_t pos)
{
    uint32_t slot = loop->heap[pos];
    for (;;) {
        size_t child = 2 * pos + 1;
        if (child >= loop->heap_len)
            break;
        if (child + 1 < loop->heap_len &&
            timer_before(loop, loop->heap[child + 1], loop->heap[child]))
            child++;
        if (!timer_before(loop, loop->heap[child], slot))
            break;
        timer_heap_set(loop, pos, loop->heap[child]);
        pos = child;
    }
    timer_heap_set(loop, pos, slot);
}

/* Takes the timer in slot out of the heap and frees the slot. */
static void
timer_remove(struct ms_loop *loop, uint32_t slot)
{
    struct loop_timer *t = &loop->timers[slot];
    size_t pos = t->heap_pos;
    ms_assert(pos < loop->heap_len && loop->heap[pos] == slot);
    loop->heap_len--;
    if (pos < loop->heap_len) {
        /* Move the last leaf into the hole; it may belong above or below it. */
        timer_heap_set(loop, pos, loop->heap[loop->heap_len]);
        if (pos > 0 && timer_before(loop, loop->heap[pos], loop->heap[(pos - 1) / 2]))
            timer_heap_up(loop, pos);
        else
            timer_heap_down(loop, pos);
    }
    t->heap_pos = TIMER_NONE;
    t->gen++;
    if (t->gen == 0)
        t->gen = 1; /* ids stay > 0 */
    t->cb = NULL;
    t->arg = NULL;
    t->next_free = loop->free_timer;
    loop->free_timer = slot;
}

uint64_t
ms_loop_timer_add(struct ms_loop *loop, int64_t deadline, ms_loop_cb *cb, void *arg)
{
    ms_assert(cb != NULL);
    uint32_t slot;
    if (loop->free_timer != TIMER_NONE) {
        slot = loop->free_timer;
        loop->free_timer = loop->timers[slot].next_free;
    } else {
        ms_assert(loop->timers_used < TIMER_NONE - 1);
        slot = loop->timers_used++;
        void *p = loop->timers;
        ms_grow(&p, &loop->timers_cap, loop->timers_used, sizeof *loop->timers);
        loop->timers = p;
        loop->timers[slot].gen = 1;
    }
    struct loop_timer *t = &loop->timers[slot];
    t->deadline = deadline;
    t->seq = loop->timer_seq++;
    t->cb = cb;
    t->arg = arg;
    t->next_free = TIMER_NONE;

    void *p = loop->heap;
    ms_grow(&p, &loop->heap_cap, loop->heap_len + 1, sizeof *loop->heap);
    loop->heap = p;
    loop->heap_len++;
    timer_heap_set(loop, loop->heap_len - 1, slot);
    timer_heap_up(loop, loop->heap_len - 1);
    if (!loop->stepping)
        loop_arm_tfd(loop); /* outside a step nobody else would re-arm it */
    return ((uint64_t)t->gen << 32) | ((uint64_t)slot + 1);
}

void
ms_loop_timer_cancel(struct ms_loop *loop, uint64_t id)
{
    if (id == 0)
        return;
    uint64_t slot64 = (id & 0xffffffffu) - 1;
    uint32_t gen = (uint32_t)(id >> 32);
    if (slot64 >= loop->timers_used)
        return;
    uint32_t slot = (uint32_t)slot64;
    struct loop_timer *t = &loop->timers[slot];
    if (t->gen != gen || t->heap_pos == TIMER_NONE)
        return; /* fired or cancelled already */
    timer_remove(loop, slot);
}

/* Fires the timers due by now that existed when this call began. Returns how many fired. */
static int
loop_fire_timers(struct ms_loop *loop)
{
    if (loop->heap_len == 0)
        return 0;
    int64_t now = ms_now();
    uint64_t seq_limit = loop->timer_seq;
    int n = 0;
    while (loop->heap_len > 0) {
        uint32_t slot = loop->heap[0];
        struct loop_timer *t = &loop->timers[slot];
        if (t->deadline > now || t->seq >= seq_limit)
            break;
        ms_loop_cb *cb = t->cb;
        void *arg = t->arg;
        timer_remove(loop, slot); /* before the call: the callback may add or cancel timers */
        cb(arg, 0);
        n++;
    }
    return n;
}

/* ---- tasks ---- */

static void
loop_ready_push(struct ms_loop *loop, struct loop_task *t)
{
    t->state = TASK_READY;
    t->next_ready = NULL;
    if (loop->ready_tail)
        loop->ready_tail->next_ready = t;
    else
        loop->ready_head = t;
    loop->ready_tail = t;
}

static void
io_waiter_unlink(struct loop_task *t)
{
    struct ms_io *io = t->wait_io;
    if (t->io_prev)
        t->io_prev->io_next = t->io_next;
    else
        io->waiters = t->io_next;
    if (t->io_next)
        t->io_next->io_prev = t->io_prev;
    t->io_prev = t->io_next = NULL;
    t->wait_io = NULL;
    t->wait_events = 0;
}

/* Makes a BLOCKED task ready; its blocking call will return result. No-op otherwise. */
static void
loop_task_wake(struct loop_task *t, int result)
{
    if (t->state != TASK_BLOCKED)
        return;
    t->result = result;
    if (t->wait_io)
        io_waiter_unlink(t);
    if (t->timer_id) {
        ms_loop_timer_cancel(t->loop, t->timer_id);
        t->timer_id = 0;
    }
    loop_ready_push(t->loop, t);
}

static void
loop_task_timeout(void *arg, uint32_t events)
{
    struct loop_task *t = arg;
    t->timer_id = 0; /* this timer has fired: nothing to cancel */
    loop_task_wake(t, MOCKSRV_ETIMEDOUT);
}

static void
loop_task_main(void *arg)
{
    struct loop_task *t = arg;
    t->fn(t->arg);
}

static void
loop_task_free(struct ms_loop *loop, struct loop_task *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        loop->tasks = t->next;
    if (t->next)
        t->next->prev = t->prev;
    loop->ntasks--;
    ms_coro_destroy(&t->co);
    free(t);
}

/* Resumes one ready task until it blocks, yields or finishes. */
static void
loop_task_run(struct ms_loop *loop, struct loop_task *t)
{
    if (t->starved && t->result == MOCKSRV_ECANCELED)
        t->cancel_pending = 1; /* woken while it waited for a stack: its first block returns */
    t->starved = 0;
    t->state = TASK_RUNNING;
    if (ms_coro_resume(t->co) != MOCKSRV_OK) {
        /* Its stack could not be mapped (memory, RLIMIT_AS, vm.max_map_count: a resource
         * limit, not a bug). It has not started: it waits, BLOCKED like a sleeper, and tries
         * again in LOOP_STACK_RETRY_MS, when stacks of finished coroutines may be back. Its
         * client waits as behind a full accept queue; the process goes on. */
        t->starved = 1;
        t->result = MOCKSRV_OK;
        t->state = TASK_BLOCKED;
        t->timer_id = ms_loop_timer_add(loop, ms_now() + LOOP_STACK_RETRY_MS, loop_task_timeout, t);
        loop->starved++;
        return;
    }
    if (ms_coro_finished(t->co)) {
        /* Back on the loop's stack: the coroutine's stack can go. */
        ms_assert(t->wait_io == NULL && t->timer_id == 0);
        loop_task_free(loop, t);
    } else if (t->state == TASK_RUNNING) {
        /* It called ms_coro_yield directly rather than an ms_co_* call: treat as a yield. */
        loop_ready_push(loop, t);
    }
}

/* One pass over the tasks ready now. Returns how many ran. */
static int
loop_run_ready(struct ms_loop *loop)
{
    struct loop_task *t = loop->ready_head;
    loop->ready_head = loop->ready_tail = NULL;
    int n = 0;
    while (t) {
        /* Tasks of this batch are READY and so untouchable by wakes: next stays valid. */
        struct loop_task *next = t->next_ready;
        t->next_ready = NULL;
        loop_task_run(loop, t);
        n++;
        t = next;
    }
    return n;
}

/* The task of the running coroutine; aborts outside a coroutine spawned by a loop. */
static struct loop_task *
loop_current_task(void)
{
    struct ms_coro *co = ms_coro_current();
    ms_assert(co != NULL); /* ms_co_* called outside a coroutine */
    struct loop_task *t = ms_coro_data(co);
    ms_assert(t != NULL && t->co == co); /* a coroutine not spawned by ms_loop_spawn */
    return t;
}

/* A wake that came while the task was running or ready is not lost: it cancels the next
 * blocking call (the server's stop request must reach a session that was busy). */
static int
loop_task_take_cancel(struct loop_task *t)
{
    if (!t->cancel_pending)
        return 0;
    t->cancel_pending = 0;
    return 1;
}

/* Switches to the loop until the task is woken; returns what woke it. */
static int
loop_task_block(struct loop_task *t, int64_t deadline)
{
    if (deadline != MS_NO_DEADLINE)
        t->timer_id = ms_loop_timer_add(t->loop, deadline, loop_task_timeout, t);
    t->state = TASK_BLOCKED;
    ms_coro_yield();
    ms_assert(t->state == TASK_RUNNING);
    return t->result;
}

/* ---- loop ---- */

struct ms_loop *
ms_loop_create(void)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        return NULL;
    struct ms_loop *loop = ms_calloc(1, sizeof *loop);
    loop->epfd = epfd;
    /* A timerfd inside the epoll set makes the epoll fd readable when a timer is due or a
     * coroutine is ready, so a host polling ms_loop_fd needs no timeout of its own. */
    loop->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (loop->tfd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &loop->tfd};
        epoll_ctl(epfd, EPOLL_CTL_ADD, loop->tfd, &ev);
    }
    loop->stacks = ms_stack_cache_create(LOOP_STACK_CACHE);
    loop->free_timer = TIMER_NONE;
    loop->timer_seq = 1;
    return loop;
}

void
ms_loop_destroy(struct ms_loop **loopp)
{
    struct ms_loop *loop = *loopp;
    if (!loop)
        return;
    ms_assert(!loop->stepping);
    /* Suspended coroutines are dropped where they stand: their stacks are unmapped without
     * unwinding, so whatever they hold is the owner's to release. */
    while (loop->tasks) {
        struct loop_task *t = loop->tasks;
        loop->tasks = t->next;
        ms_coro_destroy(&t->co);
        free(t);
    }
    while (loop->ios) {
        struct ms_io *io = loop->ios;
        loop->ios = io->next;
        epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
        free(io);
    }
    while (loop->dead) {
        struct ms_io *io = loop->dead;
        loop->dead = io->next;
        free(io);
    }
    free(loop->timers);
    free(loop->heap);
    if (loop->tfd >= 0)
        close(loop->tfd);
    ms_stack_cache_destroy(&loop->stacks);
    close(loop->epfd);
    free(loop);
    *loopp = NULL;
}

int
ms_loop_fd(const struct ms_loop *loop)
{
    return loop->epfd;
}

int
ms_loop_timeout(const struct ms_loop *loop)
{
    if (loop->ready_head || loop->stop)
        return 0;
    if (loop->heap_len == 0)
        return -1;
    int64_t deadline = loop->timers[loop->heap[0]].deadline;
    int64_t now = ms_now();
    if (deadline <= now)
        return 0;
    return deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
}

static void
io_dispatch(struct ms_io *io, uint32_t events)
{
    if (io->cb) {
        io->cb(io->cb_arg, events);
        return;
    }
    uint32_t ready = events & (IO_READ | IO_WRITE);
    if (events & IO_BROKEN) {
        ready |= IO_READ | IO_WRITE;
        io->broken = 1;
    }
    uint32_t taken = 0;
    struct loop_task *next;
    for (struct loop_task *t = io->waiters; t; t = next) {
        next = t->io_next;
        if (t->wait_events & ready) {
            taken |= t->wait_events & ready;
            loop_task_wake(t, MOCKSRV_OK);
        }
    }
    io->pending |= ready & ~taken;
}

/* Arms the timerfd for the earliest due work: now when a coroutine is ready, else the nearest
 * timer. A syscall only when that moment comes earlier than the armed one: session deadlines
 * move later on every read, and an early expiry costs only a step that finds nothing due
 * (after which the timer is re-armed), whereas re-arming on every read would cost a syscall. */
static void
loop_arm_tfd(struct ms_loop *loop)
{
    if (loop->tfd < 0)
        return;
    int64_t due = 0;
    if (loop->ready_head)
        due = 1; /* an absolute time in the past: fires at once */
    else if (loop->heap_len)
        due = loop->timers[loop->heap[0]].deadline;
    if (due == 0 || (loop->tfd_armed != 0 && due >= loop->tfd_armed))
        return;
    struct itimerspec its = {0};
    its.it_value.tv_sec = due / 1000;
    its.it_value.tv_nsec = (due % 1000) * 1000000L;
    timerfd_settime(loop->tfd, TFD_TIMER_ABSTIME, &its, NULL);
    loop->tfd_armed = due;
}

static void
loop_free_dead(struct ms_loop *loop)
{
    while (loop->dead) {
        struct ms_io *io = loop->dead;
        loop->dead = io->next;
        free(io);
    }
}

int
ms_loop_step(struct ms_loop *loop, int timeout_ms)
{
    ms_assert(!loop->stepping);
    loop->stepping = 1;
    int n = loop_run_ready(loop);

    int wait = ms_loop_timeout(loop);
    if (timeout_ms >= 0 && (wait < 0 || timeout_ms < wait))
        wait = timeout_ms;
    int nev = epoll_wait(loop->epfd, loop->events, LOOP_EVENTS, wait);
    if (nev < 0) {
        if (errno != EINTR) {
            loop->stepping = 0;
            return MOCKSRV_ESYS;
        }
        nev = 0; /* a signal: go on with timers and ready coroutines */
    }

    loop->dispatching = 1;
    for (int i = 0; i < nev; i++) {
        if (loop->events[i].data.ptr == &loop->tfd) {
            uint64_t expirations;
            while (read(loop->tfd, &expirations, sizeof expirations) > 0) {
            }
            loop->tfd_armed = 0;
            continue;
        }
        struct ms_io *io = loop->events[i].data.ptr;
        if (io->closed)
            continue;
        io_dispatch(io, loop->events[i].events);
        n++;
    }
    loop->dispatching = 0;
    loop_free_dead(loop);

    n += loop_fire_timers(loop);
    n += loop_run_ready(loop);
    loop_arm_tfd(loop);
    loop->stepping = 0;
    return n;
}

int
ms_loop_run(struct ms_loop *loop)
{
    while (!loop->stop) {
        int rc = ms_loop_step(loop, -1);
        if (rc < 0)
            return rc; /* epoll_wait failed (errno): the caller decides, the loop is intact */
    }
    return MOCKSRV_OK;
}

void
ms_loop_stop(struct ms_loop *loop)
{
    loop->stop = 1;
}

int
ms_loop_stopped(const struct ms_loop *loop)
{
    return loop->stop;
}

struct ms_coro *
ms_loop_spawn(struct ms_loop *loop, ms_coro_fn *fn, void *arg, size_t stack_size)
{
    struct loop_task *t = ms_calloc(1, sizeof *t);
    t->loop = loop;
    t->fn = fn;
    t->arg = arg;
    t->co = ms_coro_create(loop_task_main, t, stack_size);
    ms_coro_set_stack_cache(t->co, loop->stacks);
    ms_coro_set_data(t->co, t);
    t->next = loop->tasks;
    if (loop->tasks)
        loop->tasks->prev = t;
    loop->tasks = t;
    loop->ntasks++;
    loop_ready_push(loop, t);
    if (!loop->stepping)
        loop_arm_tfd(loop);
    return t->co;
}

void
ms_loop_wake(struct ms_loop *loop, struct ms_coro *co)
{
    struct loop_task *t = ms_coro_data(co);
    ms_assert(t != NULL && t->loop == loop);
    if (t->state != TASK_BLOCKED)
        t->cancel_pending = 1;
    loop_task_wake(t, MOCKSRV_ECANCELED);
    if (!loop->stepping)
        loop_arm_tfd(loop);
}

size_t
ms_loop_coro_count(const struct ms_loop *loop)
{
    return loop->ntasks;
}

size_t
ms_loop_stack_failures(const struct ms_loop *loop)
{
    return loop->starved;
}

/* ---- fds ---- */

static struct ms_io *
io_open(struct ms_loop *loop, int fd, uint32_t events, ms_loop_cb *cb, void *arg)
{
    struct ms_io *io = ms_calloc(1, sizeof *io);
    io->loop = loop;
    io->fd = fd;
    io->cb = cb;
    io->cb_arg = arg;
    struct epoll_event ev = {.events = events | EPOLLET, .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        int saved = errno;
        free(io);
        errno = saved;
        return NULL;
    }
    io->next = loop->ios;
    if (loop->ios)
        loop->ios->prev = io;
    loop->ios = io;
    return io;
}

struct ms_io *
ms_io_open(struct ms_loop *loop, int fd)
{
    return io_open(loop, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, NULL, NULL);
}

struct ms_io *
ms_loop_watch(struct ms_loop *loop, int fd, uint32_t events, ms_loop_cb *cb, void *arg)
{
    ms_assert(cb != NULL);
    return io_open(loop, fd, events, cb, arg);
}

void
ms_io_close(struct ms_io **iop)
{
    struct ms_io *io = *iop;
    if (!io)
        return;
    *iop = NULL;
    struct ms_loop *loop = io->loop;
    ms_assert(!io->closed);
    io->closed = 1;
    /* May fail with EBADF when the fd was closed first; the kernel dropped it then. */
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    while (io->waiters)
        loop_task_wake(io->waiters, MOCKSRV_ECANCELED);

    if (io->prev)
        io->prev->next = io->next;
    else
        loop->ios = io->next;
    if (io->next)
        io->next->prev = io->prev;
    if (loop->dispatching) {
        io->prev = NULL;
        io->next = loop->dead;
        loop->dead = io;
    } else {
        free(io);
    }
}

int
ms_io_fd(const struct ms_io *io)
{
    return io->fd;
}

/* ---- blocking calls, from inside a spawned coroutine ---- */

int
ms_co_wait_io(struct ms_io *io, uint32_t events, int64_t deadline)
{
    struct loop_task *t = loop_current_task();
    ms_assert(io->loop == t->loop && io->cb == NULL);
    uint32_t want = events & (IO_READ | IO_WRITE);
    ms_assert(want != 0);
    if (io->closed || loop_task_take_cancel(t))
        return MOCKSRV_ECANCELED;
    if (io->pending & want) {
        /* An edge came while nobody waited: report it now (maybe spurious; callers retry). */
        io->pending &= ~want;
        return MOCKSRV_OK;
    }
    t->wait_io = io;
    t->wait_events = want;
    t->io_prev = NULL;
    t->io_next = io->waiters;
    if (io->waiters)
        io->waiters->io_prev = t;
    io->waiters = t;
    return loop_task_block(t, deadline);
}

int
ms_co_park(int64_t deadline)
{
    struct loop_task *t = loop_current_task();
    if (loop_task_take_cancel(t))
        return MOCKSRV_ECANCELED;
    return loop_task_block(t, deadline);
}

int
ms_co_sleep(int64_t timeout_ms)
{
    if (timeout_ms < 0)
        timeout_ms = 0;
    /* ms_now() truncates to the millisecond: one more keeps a sleep from ending early */
    int rc = ms_co_park(ms_now() + timeout_ms + (timeout_ms > 0));
    return rc == MOCKSRV_ETIMEDOUT ? MOCKSRV_OK : rc;
}

void
ms_co_yield_now(void)
{
    struct loop_task *t = loop_current_task();
    loop_ready_push(t->loop, t);
    ms_coro_yield();
}

struct ms_loop *
ms_co_loop(void)
{
    return loop_current_task()->loop;
}

int
ms_io_broken(const struct ms_io *io)
{
    return io->broken;
}
