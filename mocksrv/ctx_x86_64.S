/*
 * ctx_x86_64.S - context switch for x86-64, System V ABI (Linux). See ctx.h for the C side.
 *
 * ABI notes (System V AMD64 psABI, section 3.2):
 *   - Callee-saved: rbx, rbp, r12, r13, r14, r15, rsp, the MXCSR control bits and the x87
 *     control word. Everything else (rax, rcx, rdx, rsi, rdi, r8-r11, xmm0-15, the x87 stack,
 *     the status flags) is caller-saved, so a function call like ms_ctx_switch may clobber it.
 *   - Arguments: rdi, rsi, rdx, rcx, r8. At a call instruction rsp is 16-byte aligned, so at
 *     function entry (return address pushed) rsp == 8 (mod 16).
 *   - fs (thread pointer) is per thread, not per coroutine: it is not touched.
 *
 * Save-area layout: a suspended context is its stack pointer; the registers are stored on the
 * suspended stack itself, below the return address of the ms_ctx_switch call:
 *
 *      sp + 56   return address (where the suspended code continues)
 *      sp + 48   rbp
 *      sp + 40   rbx
 *      sp + 32   r12
 *      sp + 24   r13
 *      sp + 16   r14
 *      sp +  8   r15
 *      sp +  4   x87 control word (16 bits, upper 16 bits unused)
 *      sp +  0   MXCSR (32 bits)
 *
 * A fresh context (ms_ctx_init) is the same frame built by hand at the top of the new stack:
 * return address = ms_ctx_trampoline, r12 = entry, r13 = arg, rbp = 0 (ends frame-pointer
 * walks), MXCSR and x87 control word copied from the creator. Above the frame two zero words
 * keep the trampoline's rsp 16-byte aligned (rsp == top - 16 after the ret), as its call needs.
 */

    .text

/* void ms_ctx_switch(struct ms_ctx *from (rdi), struct ms_ctx *to (rsi)) */
    .globl  ms_ctx_switch
    .hidden ms_ctx_switch
    .type   ms_ctx_switch, @function
    .p2align 4
ms_ctx_switch:
    .cfi_startproc
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $8, %rsp
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)            /* from->sp */
    movq    %rsp, %rax              /* keep the frame just saved, to compare control words */

    movq    (%rsi), %rsp            /* to->sp: from here on we run on the other stack */
    /* Loading MXCSR or the x87 control word stalls the pipeline on many cores, and the two
     * sides almost always agree: load only what differs. */
    movl    (%rsp), %ecx
    cmpl    (%rax), %ecx
    je      1f
    ldmxcsr (%rsp)
1:  movzwl  4(%rsp), %ecx
    cmpw    4(%rax), %cx
    je      2f
    fldcw   4(%rsp)
2:  addq    $8, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .cfi_endproc
    .size   ms_ctx_switch, .-ms_ctx_switch

/* void ms_ctx_init(struct ms_ctx *ctx (rdi), void *lo (rsi), size_t size (rdx),
 *                  ms_ctx_entry *entry (rcx), void *arg (r8)) */
    .globl  ms_ctx_init
    .hidden ms_ctx_init
    .type   ms_ctx_init, @function
    .p2align 4
ms_ctx_init:
    .cfi_startproc
    leaq    (%rsi,%rdx), %rax       /* top of the stack */
    andq    $-16, %rax
    movq    $0, -8(%rax)            /* padding: keeps the trampoline aligned */
    movq    $0, -16(%rax)
    leaq    ms_ctx_trampoline(%rip), %r9
    movq    %r9, -24(%rax)          /* return address of the first switch */
    movq    $0, -32(%rax)           /* rbp */
    movq    $0, -40(%rax)           /* rbx */
    movq    %rcx, -48(%rax)         /* r12 = entry */
    movq    %r8, -56(%rax)          /* r13 = arg */
    movq    $0, -64(%rax)           /* r14 */
    movq    $0, -72(%rax)           /* r15 */
    stmxcsr -80(%rax)               /* inherit the creator's floating-point control state */
    fnstcw  -76(%rax)
    movw    $0, -74(%rax)
    leaq    -80(%rax), %r9
    movq    %r9, (%rdi)             /* ctx->sp */
    ret
    .cfi_endproc
    .size   ms_ctx_init, .-ms_ctx_init

/* First code run on a new stack: entry(arg). entry must never return; if it does, trap. */
    .type   ms_ctx_trampoline, @function
    .p2align 4
ms_ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip              /* outermost frame: unwinders and debuggers stop here */
    movq    %r13, %rdi
    callq   *%r12
    ud2
    .cfi_endproc
    .size   ms_ctx_trampoline, .-ms_ctx_trampoline

    .section .note.GNU-stack,"",@progbits
