/*
 * ctx.h - private to the runtime: machine context switch (ctx_x86_64.S, ctx_aarch64.S or
 * ctx_ucontext.c) and coroutine stacks (stack.c). Only coro.c includes this header.
 *
 * A context is what a suspended stack needs to continue: with the assembly back ends, the
 * callee-saved registers are pushed on the suspended stack itself and the context is only the
 * saved stack pointer (the layout of the saved frame is documented at the top of each .S file
 * and mirrored by ms_ctx_init below); with the ucontext fallback it is a ucontext_t.
 *
 * Not here: who runs when (coro.c), sanitizer bookkeeping (coro.c), scheduling (loop.c).
 *
 * Invariants:
 *   - ms_ctx_switch(from, to) saves the caller into *from and continues *to; it returns when
 *     some later switch names *from as its target. It is an ordinary function call to the
 *     compiler: caller-saved registers are dead across it.
 *   - The entry function given to ms_ctx_init never returns; it must switch away for the last
 *     time (the trampoline traps if it does return).
 *   - A stack is one mapping: a PROT_NONE guard page at the lowest address, then size usable
 *     bytes. Stacks grow down, so running off the end touches the guard page and faults.
 */
#ifndef MS_CTX_H
#define MS_CTX_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

#if defined(MOCKSRV_CTX_UCONTEXT) && MOCKSRV_CTX_UCONTEXT
#include <ucontext.h>
#define MS_CTX_BACKEND "ucontext"
struct ms_ctx {
    ucontext_t uc;
};
#elif defined(__x86_64__) || defined(__aarch64__)
#define MS_CTX_BACKEND "asm"
struct ms_ctx {
    void *sp; /* saved stack pointer; the registers sit on that stack (see the .S files) */
};
#else
#error "no assembly context switch for this CPU: configure with -DMOCKSRV_UCONTEXT=ON"
#endif

typedef void ms_ctx_entry(void *arg);

/* Prepares ctx so that the first switch to it calls entry(arg) on the stack [lo, lo + size). */
void ms_ctx_init(struct ms_ctx *ctx, void *lo, size_t size, ms_ctx_entry *entry, void *arg);
/* Saves the running context into *from and continues *to. */
void ms_ctx_switch(struct ms_ctx *from, struct ms_ctx *to);

/* ---- stacks (stack.c) ---- */

struct ms_stack {
    void *map;       /* the whole mapping, guard page first; NULL when not allocated */
    size_t map_size; /* guard page + usable bytes */
    void *lo;        /* lowest usable byte, just above the guard page */
    size_t size;     /* usable bytes, a multiple of the page size */
    unsigned vg_id;  /* Valgrind stack id (0 when not running under Valgrind) */
};

/* Maps a stack of at least size usable bytes (rounded up to pages, at least two pages) with a
 * guard page below. Untouched pages cost no resident memory (MAP_NORESERVE). Returns
 * MOCKSRV_ENOMEM, *st untouched and errno set, when the mapping fails (a resource limit:
 * memory, RLIMIT_AS, vm.max_map_count), which the caller must survive. */
int ms_stack_init(struct ms_stack *st, size_t size);
/* Unmaps the stack (which must not be the one running) and zeroes *st. No-op when unmapped. */
void ms_stack_fini(struct ms_stack *st);
/* The system page size. */
size_t ms_stack_page_size(void);

#endif
