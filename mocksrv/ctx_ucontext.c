/*
 * ctx_ucontext.c - the portable context switch: getcontext/makecontext/swapcontext.
 *
 * Selected by the CMake option MOCKSRV_UCONTEXT=ON (which defines MOCKSRV_CTX_UCONTEXT=1) and
 * on CPUs without an assembly back end. Same contract as ctx_x86_64.S (see ctx.h); slower,
 * because glibc's swapcontext also saves and restores the signal mask with a system call.
 *
 * makecontext passes only int arguments, so the entry argument travels as two 32-bit halves
 * (the usual idiom; valid on every LP64 and ILP32 platform glibc supports).
 *
 * Invariant: the entry function never returns (uc_link is NULL, so returning would end the
 * thread); coro.c's entry switches away for the last time instead.
 */
#include "ctx.h"

#include <stdlib.h>

static void
ctx_ucontext_start(unsigned int entry_hi, unsigned int entry_lo, unsigned int arg_hi,
                   unsigned int arg_lo)
{
    uintptr_t e = ((uintptr_t)entry_hi << 16 << 16) | (uintptr_t)entry_lo;
    uintptr_t a = ((uintptr_t)arg_hi << 16 << 16) | (uintptr_t)arg_lo;
    ms_ctx_entry *entry = (ms_ctx_entry *)e;
    entry((void *)a);
    ms_die("coroutine entry returned");
}

void
ms_ctx_init(struct ms_ctx *ctx, void *lo, size_t size, ms_ctx_entry *entry, void *arg)
{
    if (getcontext(&ctx->uc) != 0)
        ms_die("getcontext failed");
    ctx->uc.uc_stack.ss_sp = lo;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_stack.ss_flags = 0;
    ctx->uc.uc_link = NULL;
    uintptr_t e = (uintptr_t)entry;
    uintptr_t a = (uintptr_t)arg;
    /* The (void (*)(void)) cast is what makecontext's prototype demands; it calls the function
     * with the declared arguments. The shifts are split so they stay defined on 32-bit. */
    makecontext(&ctx->uc, (void (*)(void))ctx_ucontext_start, 4, (unsigned int)(e >> 16 >> 16),
                (unsigned int)(e & 0xffffffffu), (unsigned int)(a >> 16 >> 16),
                (unsigned int)(a & 0xffffffffu));
}

void
ms_ctx_switch(struct ms_ctx *from, struct ms_ctx *to)
{
    if (swapcontext(&from->uc, &to->uc) != 0)
        ms_die("swapcontext failed");
}
