/*
 * coro.c - stackful coroutines: create, resume, yield, destroy.
 *
 * A coroutine runs fn(arg) on its own stack (stack.c) and gives the CPU back only by
 * ms_coro_yield or by returning; ms_coro_resume continues it where it stopped. The machine
 * part of a switch is ms_ctx_switch (ctx.h); this file keeps track of who runs and tells the
 * sanitizers about every change of stack.
 *
 * Not here: scheduling, I/O, timers (loop.c). A coroutine is not a thread: nothing here is
 * safe to call from another thread than the one that resumes the coroutine.
 *
 * Invariants:
 *   - coro_current is the coroutine executing right now on this thread, NULL on the thread's
 *     own stack. It is the only mutable per-thread state of the runtime.
 *   - A running coroutine's caller_ctx holds the context that resumed it (the thread's stack or
 *     another coroutine, recorded in co->caller); yield and return go back there. Resumes
 *     nest like calls: a coroutine may resume another one, never itself or one of its
 *     (transitive) callers, which are running.
 *   - The stack is mapped on the first resume, so coroutines created but not started yet cost
 *     only this struct (the loop may queue a great many of them at once).
 *   - A finished coroutine never runs again; its stack is freed by ms_coro_destroy, which the
 *     owner calls after the final switch back, never on the stack being freed.
 *
 * AddressSanitizer (MOCKSRV_ASAN=1): each switch is bracketed by
 * __sanitizer_start_switch_fiber (the stack we are going to) and
 * __sanitizer_finish_switch_fiber (once there), so ASan always knows the bounds of the stack in
 * use; the coroutine learns its caller's stack bounds from the finish call. The last switch out
 * of a finished coroutine passes NULL, letting ASan drop that fiber's fake stack.
 */
#include "runtime.h"

#include "ctx.h"

#include <stdlib.h>

#if defined(MOCKSRV_ASAN) && MOCKSRV_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CORO_ASAN 1
#else
#define CORO_ASAN 0
#endif

enum coro_state {
    CORO_CREATED,   /* never resumed; no stack yet */
    CORO_RUNNING,   /* on the CPU, or resumed another coroutine that is */
    CORO_SUSPENDED, /* yielded; waits for ms_coro_resume */
    CORO_FINISHED,  /* fn returned */
};

struct ms_coro {
    /* hot: touched on every switch */
    struct ms_ctx ctx;        /* this coroutine, while suspended */
    struct ms_ctx caller_ctx; /* whoever resumed it, while it runs */
    struct ms_coro *caller;   /* the coroutine that resumed it; NULL = the thread's stack */
    enum coro_state state;
#if CORO_ASAN
    void *asan_fake_stack;          /* ASan's fake stack of this coroutine, while suspended */
    const void *asan_caller_bottom; /* bounds of the caller's stack, while running */
    size_t asan_caller_size;
#endif

    /* set at creation */
    ms_coro_fn *fn;
    void *arg;
    void *data;
    size_t stack_size; /* as asked; the mapping is made on the first resume */
    struct ms_stack stack;
    struct ms_stack_cache *cache; /* where the stack comes from and goes back to, or NULL */
};

struct ms_stack_cache {
    struct ms_stack *stacks;
    size_t n;
    size_t max;
};

/* The one piece of per-thread state. initial-exec: a switch must not call __tls_get_addr. */
static _Thread_local struct ms_coro *coro_current __attribute__((tls_model("initial-exec")));

static void
coro_entry(void *p)
{
    struct ms_coro *co = p;
#if CORO_ASAN
    __sanitizer_finish_switch_fiber(NULL, &co->asan_caller_bottom, &co->asan_caller_size);
#endif
    co->fn(co->arg);

    /* Back to whoever resumed us for the last time; ms_coro_resume sees FINISHED. The stack
     * stays mapped until the owner destroys the coroutine from another stack. */
    co->state = CORO_FINISHED;
    coro_current = co->caller;
#if CORO_ASAN
    __sanitizer_start_switch_fiber(NULL, co->asan_caller_bottom, co->asan_caller_size);
#endif
    ms_ctx_switch(&co->ctx, &co->caller_ctx);
    ms_die("finished coroutine resumed");
}

struct ms_coro *
ms_coro_create(ms_coro_fn *fn, void *arg, size_t stack_size)
{
    ms_assert(fn != NULL);
    struct ms_coro *co = ms_calloc(1, sizeof *co);
    co->fn = fn;
    co->arg = arg;
    co->stack_size = stack_size ? stack_size : MS_CORO_STACK_DEFAULT;
    co->state = CORO_CREATED;
    return co;
}

void
ms_coro_destroy(struct ms_coro **cop)
{
    struct ms_coro *co = *cop;
    if (!co)
        return;
    /* A running coroutine (or one of its callers) is on the CPU: its stack is in use. */
    ms_assert(co->state != CORO_RUNNING);
    struct ms_stack_cache *cache = co->cache;
    if (co->stack.map && cache && cache->n < cache->max) {
#if CORO_ASAN
        /* frames of a coroutine destroyed while suspended leave poisoned redzones behind */
        ASAN_UNPOISON_MEMORY_REGION(co->stack.lo, co->stack.size);
#endif
        cache->stacks[cache->n++] = co->stack;
    } else {
        ms_stack_fini(&co->stack);
    }
    free(co);
    *cop = NULL;
}

struct ms_stack_cache *
ms_stack_cache_create(size_t max)
{
    struct ms_stack_cache *c = ms_calloc(1, sizeof *c);
    c->stacks = ms_calloc(max ? max : 1, sizeof *c->stacks);
    c->max = max;
    return c;
}

void
ms_stack_cache_destroy(struct ms_stack_cache **cp)
{
    struct ms_stack_cache *c = *cp;
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        ms_stack_fini(&c->stacks[i]);
    free(c->stacks);
    free(c);
    *cp = NULL;
}

void
ms_coro_set_stack_cache(struct ms_coro *co, struct ms_stack_cache *cache)
{
    ms_assert(co->state == CORO_CREATED);
    co->cache = cache;
}

/* Takes a cached stack of the size ms_stack_init would map for this coroutine. */
static int
coro_cache_take(struct ms_coro *co)
{
    struct ms_stack_cache *c = co->cache;
    if (!c || c->n == 0)
        return 0;
    size_t page = ms_stack_page_size();
    size_t want = co->stack_size < 2 * page ? 2 * page : co->stack_size;
    want = (want + page - 1) / page * page;
    for (size_t i = c->n; i-- > 0;) {
        if (c->stacks[i].size == want) {
            co->stack = c->stacks[i];
            c->stacks[i] = c->stacks[--c->n];
            return 1;
        }
    }
    return 0;
}

int
ms_coro_resume(struct ms_coro *co)
{
    ms_assert(co->state == CORO_CREATED || co->state == CORO_SUSPENDED);
    if (co->state == CORO_CREATED) {
        /* a stack that cannot be mapped is a resource limit, not a bug: the caller decides */
        if (!coro_cache_take(co) && ms_stack_init(&co->stack, co->stack_size) != MOCKSRV_OK)
            return MOCKSRV_ENOMEM;
        ms_ctx_init(&co->ctx, co->stack.lo, co->stack.size, coro_entry, co);
    }
    co->caller = coro_current;
    co->state = CORO_RUNNING;
    coro_current = co;
#if CORO_ASAN
    void *fake_stack = NULL;
    __sanitizer_start_switch_fiber(&fake_stack, co->stack.lo, co->stack.size);
#endif
    ms_ctx_switch(&co->caller_ctx, &co->ctx);
#if CORO_ASAN
    __sanitizer_finish_switch_fiber(fake_stack, NULL, NULL);
#endif
    /* co yielded or finished; either way it has set coro_current back to co->caller. */
    return MOCKSRV_OK;
}

void
ms_coro_yield(void)
{
    struct ms_coro *co = coro_current;
    ms_assert(co != NULL);
    co->state = CORO_SUSPENDED;
    coro_current = co->caller;
#if CORO_ASAN
    __sanitizer_start_switch_fiber(&co->asan_fake_stack, co->asan_caller_bottom,
                                   co->asan_caller_size);
#endif
    ms_ctx_switch(&co->ctx, &co->caller_ctx);
#if CORO_ASAN
    /* Resumed, possibly by a different caller than last time: learn its stack. */
    __sanitizer_finish_switch_fiber(co->asan_fake_stack, &co->asan_caller_bottom,
                                    &co->asan_caller_size);
#endif
}

struct ms_coro *
ms_coro_current(void)
{
    return coro_current;
}

int
ms_coro_finished(const struct ms_coro *co)
{
    return co->state == CORO_FINISHED;
}

void
ms_coro_set_data(struct ms_coro *co, void *data)
{
    co->data = data;
}

void *
ms_coro_data(const struct ms_coro *co)
{
    return co->data;
}
