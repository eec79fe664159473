/*
 * ctx_aarch64.S - context switch for AArch64, AAPCS64 (Linux). See ctx.h for the C side.
 *
 * ABI notes (Procedure Call Standard for the Arm 64-bit Architecture, section 6.1):
 *   - Callee-saved: x19-x28, the frame pointer x29, sp, and the low 64 bits (d8-d15) of
 *     v8-v15. The link register x30 holds our return address, so it is saved too.
 *     Everything else (x0-x18, x30 after a call, v0-v7, v16-v31, the upper halves of v8-v15,
 *     NZCV) may be clobbered by a call like ms_ctx_switch. x18 is the platform register and
 *     belongs to the thread, not to the coroutine: it is not touched.
 *   - FPCR (rounding mode, flush-to-zero...) is saved and restored with the rest, like MXCSR on
 *     x86-64, so fesetround in one coroutine does not leak into another. Writing FPCR can be
 *     slow on some cores, so it is written only when the value differs. FPSR (sticky
 *     exception flags) is not preserved, as across any call.
 *   - Arguments: x0, x1, ... sp must be 16-byte aligned whenever it is used to access memory.
 *   - Branch protection: ms_ctx_switch and ms_ctx_init start with "bti c" (a NOP on CPUs
 *     without BTI). Our return address is never signed (no paciasp), so with pointer
 *     authentication enabled the plain "ret" still matches.
 *
 * Save-area layout: a suspended context is its stack pointer; the registers are stored on the
 * suspended stack itself (176 bytes, keeping sp 16-byte aligned):
 *
 *      sp + 168  unused (alignment)
 *      sp + 160  FPCR
 *      sp + 152  d15          sp +  72  x28
 *      sp + 144  d14          sp +  64  x27
 *      sp + 136  d13          sp +  56  x26
 *      sp + 128  d12          sp +  48  x25
 *      sp + 120  d11          sp +  40  x24
 *      sp + 112  d10          sp +  32  x23
 *      sp + 104  d9           sp +  24  x22
 *      sp +  96  d8           sp +  16  x21
 *      sp +  88  x30 (lr)     sp +   8  x20
 *      sp +  80  x29 (fp)     sp +   0  x19
 *
 * A fresh context (ms_ctx_init) is the same frame built by hand at the top of the new stack,
 * all zero except x19 = entry, x20 = arg, x30 = ms_ctx_trampoline and FPCR (copied from the
 * creator); x29 = 0 ends frame-pointer walks. The frame sits 16 bytes below the 16-byte
 * aligned top of the stack.
 */

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define MS_BTI_C hint #34
#else
#define MS_BTI_C
#endif

    .text

/* void ms_ctx_switch(struct ms_ctx *from (x0), struct ms_ctx *to (x1)) */
    .globl  ms_ctx_switch
    .hidden ms_ctx_switch
    .type   ms_ctx_switch, %function
    .p2align 4
ms_ctx_switch:
    .cfi_startproc
    MS_BTI_C
    sub     sp, sp, #176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8,  d9,  [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x9, sp
    str     x9, [x0]                /* from->sp */

    ldr     x9, [x1]                /* to->sp: from here on we run on the other stack */
    mov     sp, x9
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8,  d9,  [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    ldr     x9, [sp, #160]
    mrs     x10, fpcr
    cmp     x9, x10
    b.eq    1f
    msr     fpcr, x9
1:
    add     sp, sp, #176
    ret
    .cfi_endproc
    .size   ms_ctx_switch, .-ms_ctx_switch

/* void ms_ctx_init(struct ms_ctx *ctx (x0), void *lo (x1), size_t size (x2),
 *                  ms_ctx_entry *entry (x3), void *arg (x4)) */
    .globl  ms_ctx_init
    .hidden ms_ctx_init
    .type   ms_ctx_init, %function
    .p2align 4
ms_ctx_init:
    .cfi_startproc
    MS_BTI_C
    add     x9, x1, x2              /* top of the stack */
    and     x9, x9, #~15
    sub     x9, x9, #192            /* 16 bytes of zero padding, then the 176-byte frame */
    stp     xzr, xzr, [x9, #176]
    mrs     x10, fpcr
    stp     x10, xzr, [x9, #160]    /* inherit the creator's floating-point control state */
    stp     x3, x4, [x9, #0]        /* x19 = entry, x20 = arg */
    stp     xzr, xzr, [x9, #16]
    stp     xzr, xzr, [x9, #32]
    stp     xzr, xzr, [x9, #48]
    stp     xzr, xzr, [x9, #64]
    adrp    x10, ms_ctx_trampoline
    add     x10, x10, :lo12:ms_ctx_trampoline
    stp     xzr, x10, [x9, #80]     /* x29 = 0, x30 = trampoline */
    stp     xzr, xzr, [x9, #96]
    stp     xzr, xzr, [x9, #112]
    stp     xzr, xzr, [x9, #128]
    stp     xzr, xzr, [x9, #144]
    str     x9, [x0]                /* ctx->sp */
    ret
    .cfi_endproc
    .size   ms_ctx_init, .-ms_ctx_init

/* First code run on a new stack (reached by "ret", which BTI does not check): entry(arg).
 * entry must never return; if it does, trap. */
    .type   ms_ctx_trampoline, %function
    .p2align 4
ms_ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30              /* outermost frame: unwinders and debuggers stop here */
    mov     x0, x20
    blr     x19
    brk     #0
    .cfi_endproc
    .size   ms_ctx_trampoline, .-ms_ctx_trampoline

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
/* GNU property note: this object is BTI compatible, so linking it does not turn BTI off. */
    .pushsection .note.gnu.property, "a"
    .balign 8
    .long   4
    .long   16
    .long   5                       /* NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000000              /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
    .long   4
    .long   1                       /* GNU_PROPERTY_AARCH64_FEATURE_1_BTI */
    .long   0
    .popsection
#endif

    .section .note.GNU-stack,"",%progbits
