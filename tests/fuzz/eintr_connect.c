/*
 * eintr_connect.c - LD_PRELOAD library for the seed regression of fuzz_smtp: every connect() on
 * a blocking socket starts the connection and then fails with EINTR, as when a signal arrives
 * while connect sleeps (libFuzzer's -timeout timer). A harness must then wait for the
 * connection rather than give up or connect again. Loaded only by ci/fuzz.sh --regress and the
 * fuzz_smtp_eintr test of tests/fuzz/CMakeLists.txt; no part of any harness.
 *
 * The harness calls connect() through ASan's interceptor, which finds the real one with
 * dlsym(RTLD_NEXT): that is this library, which in turn finds libc's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>

int
connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    static int (*real_connect)(int, const struct sockaddr *, socklen_t);
    if (!real_connect)
        real_connect =
            (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    if (!real_connect) {
        errno = ENOSYS;
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || (flags & O_NONBLOCK))
        return real_connect(fd, addr, len);
    /* Started without waiting, then "interrupted": the handshake goes on in the kernel. */
    if (fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
        return real_connect(fd, addr, len);
    int rc = real_connect(fd, addr, len);
    int saved = errno;
    fcntl(fd, F_SETFL, flags);
    if (rc != 0 && saved != EINPROGRESS) {
        errno = saved;
        return -1;
    }
    errno = EINTR;
    return -1;
}
