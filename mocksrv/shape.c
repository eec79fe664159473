/*
 * shape.c - the one place where outgoing bytes meet the socket.
 *
 * Today it is a straight writev() with waits for writability; the faults stage adds splitting,
 * delays, bandwidth, stalls and cuts here, driven by the fault engine's decisions, so that no
 * protocol engine ever special-cases a fault. With no fault active it must stay a plain writev
 * with no copy.
 */
#include "conn.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>

ssize_t
ms_shape_writev(struct ms_shape *sh, struct ms_io *io, const struct iovec *iov, int iovcnt,
                int64_t deadline)
{
    (void)sh;
    struct iovec local[8];
    ms_assert(iovcnt > 0 && iovcnt <= (int)MS_ARRAY_LEN(local));
    memcpy(local, iov, sizeof *iov * (size_t)iovcnt);
    struct iovec *v = local;
    size_t total = 0;
    int fd = ms_io_fd(io);
    while (iovcnt > 0) {
        struct msghdr msg = {.msg_iov = v, .msg_iovlen = (size_t)iovcnt};
        /* MSG_NOSIGNAL: a peer that went away is an error code, not a SIGPIPE. */
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                int rc = ms_co_wait_io(io, EPOLLOUT, deadline);
                if (rc != MOCKSRV_OK)
                    return rc;
                continue;
            }
            return (errno == EPIPE || errno == ECONNRESET) ? MOCKSRV_ECLOSED : MOCKSRV_EIO;
        }
        total += (size_t)n;
        size_t left = (size_t)n;
        while (iovcnt > 0 && left >= v->iov_len) {
            left -= v->iov_len;
            v++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            v->iov_base = (char *)v->iov_base + left;
            v->iov_len -= left;
        }
    }
    return (ssize_t)total;
}
