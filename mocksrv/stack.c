/*
 * stack.c - coroutine stacks: one anonymous mapping per stack, a PROT_NONE guard page at the
 * bottom, the usable part above it.
 *
 * Stacks grow down, so a coroutine that recurses too deep writes into the guard page and gets
 * SIGSEGV instead of silently overwriting whatever lies below. Frames larger than a page could
 * jump the guard; code running on coroutine stacks keeps big buffers off the stack.
 *
 * The mapping is MAP_NORESERVE: a 64 KiB stack of which a session touches 8 KiB costs 8 KiB of
 * resident memory, and no commit charge is taken for the rest.
 *
 * Not here: context switching (ctx_*), who owns a stack (coro.c). No caching: each coroutine
 * maps and unmaps its own stack.
 *
 * Invariants: st->map == NULL exactly when the stack is not allocated; st->lo is page aligned
 * and st->size a multiple of the page size.
 */
#include "ctx.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define MS_HAVE_VALGRIND 1
#endif
#endif

#if defined(MOCKSRV_ASAN) && MOCKSRV_ASAN
#include <sanitizer/asan_interface.h>
#endif

size_t
ms_stack_page_size(void)
{
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (size_t)page : 4096;
}

int
ms_stack_init(struct ms_stack *st, size_t size)
{
    size_t page = ms_stack_page_size();
    if (size < 2 * page)
        size = 2 * page;
    if (size > SIZE_MAX - 2 * page)
        ms_die("coroutine stack size too large (%zu bytes)", size);
    size = (size + page - 1) / page * page;

    size_t map_size = size + page;
    void *map = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED)
        return MOCKSRV_ENOMEM;
    /* The guard page: any access below the usable part faults. mprotect splits the mapping
     * in two, which fails (ENOMEM) at vm.max_map_count. */
    if (mprotect(map, page, PROT_NONE) != 0) {
        int saved = errno;
        munmap(map, map_size);
        errno = saved;
        return MOCKSRV_ENOMEM;
    }

    st->map = map;
    st->map_size = map_size;
    st->lo = (char *)map + page;
    st->size = size;
    st->vg_id = 0;
#ifdef MS_HAVE_VALGRIND
    st->vg_id = VALGRIND_STACK_REGISTER(st->lo, (char *)st->lo + st->size);
#endif
    return MOCKSRV_OK;
}

void
ms_stack_fini(struct ms_stack *st)
{
    if (!st->map)
        return;
#ifdef MS_HAVE_VALGRIND
    VALGRIND_STACK_DEREGISTER(st->vg_id);
#endif
#if defined(MOCKSRV_ASAN) && MOCKSRV_ASAN
    /* Frames that were live on this stack left poisoned redzones in ASan's shadow memory; a
     * later mapping at the same address would inherit them and report false errors. */
    ASAN_UNPOISON_MEMORY_REGION(st->lo, st->size);
#endif
    if (munmap(st->map, st->map_size) != 0)
        ms_die("munmap of a coroutine stack failed: %s", strerror(errno));
    memset(st, 0, sizeof *st);
}
