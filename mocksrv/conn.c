/*
 * conn.c - buffered reads and writes of one session's connection (see conn.h).
 *
 * Reads go straight to recv() into the input buffer, until EAGAIN (edge-triggered epoll), then
 * the coroutine waits on the fd with the caller's deadline. Writes are appended to the output
 * buffer and leave through shape.c when flushed; every wait for input flushes first, which is
 * what makes the reply to a pipelined batch one write.
 *
 * Not here: TLS (a later layer between this buffer and the shaper), protocol syntax.
 */
#include "conn.h"

#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* Input buffers start small, so an idle session costs little (commands are short), and double
 * each time a read fills them, up to CONN_READ_MAX, so a DATA stream is read in large pieces.
 * Output buffers larger than CONN_KEEP are freed once flushed. */
#define CONN_READ_FIRST 1024
#define CONN_READ_MAX (64 * 1024)
#define CONN_KEEP (64 * 1024)

void
ms_conn_init(struct ms_conn *c, struct ms_loop *loop, int fd)
{
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->read_size = CONN_READ_FIRST;
    int one = 1;
    /* Replies are small and already batched per pipelined group: never let Nagle hold them. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0)
        c->shape.nodelay = 1;
    c->io = ms_io_open(loop, fd);
}

void
ms_conn_fini(struct ms_conn *c)
{
    if (c->io)
        ms_io_close(&c->io);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    ms_buf_fini(&c->in);
    ms_buf_fini(&c->out);
    ms_buf_fini(&c->cipher_in);
    ms_buf_fini(&c->cipher_out);
    ms_tls_destroy(&c->tls);
}

static size_t
conn_buffered(const struct ms_conn *c)
{
    return c->in.len - c->in_pos;
}

/* Drops consumed bytes from the front of the input buffer when that is worth a memmove. */
static void
conn_compact(struct ms_conn *c)
{
    if (c->in_pos == 0)
        return;
    if (c->in_pos == c->in.len) {
        c->in_pos = 0;
        ms_buf_clear(&c->in);
    } else if (c->in_pos >= 4096 && c->in_pos * 2 >= c->in.len) {
        ms_buf_consume(&c->in, c->in_pos);
        c->in_pos = 0;
    }
}

/* Reads whatever the socket has (at least one byte, waiting until deadline) and appends it to
 * b: plaintext (c->in) without TLS, ciphertext (c->cipher_in) with it. Returns bytes added or
 * a negative code. */
static ssize_t
conn_recv_socket(struct ms_conn *c, struct ms_buf *b, int64_t deadline)
{
    int rc;
    if (c->drained && !ms_io_broken(c->io)) {
        /* The last read came back short: the socket was empty then, and new data brings a new
         * edge (epoll reports every arrival on a socket, and one that came while nobody waited
         * is remembered). Wait first instead of paying for a recv that says EAGAIN. A FIN or
         * an error pending behind the data brings no new edge: ms_io_broken says so. */
        c->drained = 0;
        rc = ms_co_wait_io(c->io, EPOLLIN, deadline);
        if (rc != MOCKSRV_OK)
            return rc;
    }
    for (;;) {
        ms_buf_reserve(b, c->read_size);
        size_t room = b->cap - b->len - 1;
        ssize_t n = recv(c->fd, b->data + b->len, room, 0);
        if (n > 0) {
            if ((size_t)n == room && c->read_size < CONN_READ_MAX)
                c->read_size *= 2;
            c->drained = (size_t)n < room;
            b->len += (size_t)n;
            b->data[b->len] = '\0';
            c->bytes_in += (uint64_t)n;
            return n;
        }
        if (n == 0) {
            c->eof = 1;
            return MOCKSRV_ECLOSED;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            c->failed = 1;
            return errno == ECONNRESET ? MOCKSRV_ECLOSED : MOCKSRV_EIO;
        }
        rc = ms_co_wait_io(c->io, EPOLLIN, deadline);
        if (rc != MOCKSRV_OK)
            return rc;
    }
}

/* Sends the ciphertext OpenSSL produced (handshake flights, records, alerts). */
static int
conn_send_cipher(struct ms_conn *c, int64_t deadline)
{
    ms_tls_drain(c->tls, &c->cipher_out);
    if (c->cipher_out.len == 0)
        return MOCKSRV_OK;
    struct iovec iov = {.iov_base = c->cipher_out.data, .iov_len = c->cipher_out.len};
    ssize_t n = ms_shape_writev(&c->shape, c->io, &iov, 1, deadline);
    c->bytes_out += c->cipher_out.len;
    ms_buf_clear(&c->cipher_out);
    if (n < 0) {
        c->failed = 1;
        return (int)n;
    }
    return MOCKSRV_OK;
}

/* Plaintext from the TLS session into c->in, reading ciphertext as needed. */
static ssize_t
conn_recv_tls(struct ms_conn *c, int64_t deadline)
{
    for (;;) {
        size_t before = c->in.len;
        enum ms_tls_status st = ms_tls_read(c->tls, &c->in);
        int rc = conn_send_cipher(c, deadline); /* alerts, tickets, key updates */
        if (st == MS_TLS_OK) {
            size_t n = c->in.len - before;
            if (c->tap)
                c->tap(c->tap_arg, '<', c->in.data + before, n);
            return (ssize_t)n;
        }
        if (st == MS_TLS_CLOSED) {
            c->eof = 1;
            return MOCKSRV_ECLOSED;
        }
        if (st == MS_TLS_ERROR) {
            c->failed = 1;
            return MOCKSRV_ETLS;
        }
        if (rc != MOCKSRV_OK)
            return rc;
        ms_buf_clear(&c->cipher_in);
        ssize_t n = conn_recv_socket(c, &c->cipher_in, deadline);
        if (n < 0)
            return n;
        ms_tls_feed(c->tls, c->cipher_in.data, c->cipher_in.len);
    }
}

/* Reads more input into c->in (at least one byte, waiting until deadline).
 * Returns bytes added, or a negative code. */
static ssize_t
conn_recv(struct ms_conn *c, int64_t deadline)
{
    if (c->failed)
        return MOCKSRV_EIO;
    if (c->eof)
        return MOCKSRV_ECLOSED;
    int rc = ms_conn_flush(c, deadline);
    if (rc != MOCKSRV_OK)
        return rc;
    conn_compact(c);
    if (c->tls)
        return conn_recv_tls(c, deadline);
    size_t before = c->in.len;
    ssize_t n = conn_recv_socket(c, &c->in, deadline);
    if (n > 0 && c->tap)
        c->tap(c->tap_arg, '<', c->in.data + before, (size_t)n);
    return n;
}

int
ms_conn_starttls(struct ms_conn *c, struct ms_tls_ctx *ctx, int64_t deadline, const char **reason_r)
{
    *reason_r = NULL;
    /* the go-ahead ("220 Ready to start TLS") leaves in plaintext, before the handshake */
    int rc = ms_conn_flush(c, deadline);
    if (rc != MOCKSRV_OK)
        return rc;
    /* RFC 3207 4.2, RFC 2595 3.1: plaintext sent after the command is not part of the
     * encrypted session (the STARTTLS command injection class of bugs). */
    ms_conn_discard_input(c);
    c->tls = ms_tls_create(ctx);
    for (;;) {
        enum ms_tls_status st = ms_tls_handshake(c->tls);
        rc = conn_send_cipher(c, deadline);
        if (st == MS_TLS_OK)
            return rc;
        if (st != MS_TLS_WANT_INPUT) {
            *reason_r = st == MS_TLS_CLOSED ? "closed by the peer" : ms_tls_error(c->tls);
            c->failed = 1;
            return MOCKSRV_ETLS;
        }
        if (rc != MOCKSRV_OK)
            return rc;
        ms_buf_clear(&c->cipher_in);
        ssize_t n = conn_recv_socket(c, &c->cipher_in, deadline);
        if (n < 0) {
            *reason_r = n == MOCKSRV_ETIMEDOUT ? "handshake timed out"
                        : n == MOCKSRV_ECLOSED ? "connection closed during the handshake"
                                               : "connection failed during the handshake";
            return (int)n;
        }
        ms_tls_feed(c->tls, c->cipher_in.data, c->cipher_in.len);
    }
}

void
ms_conn_close_notify(struct ms_conn *c, int64_t deadline)
{
    if (!c->tls || c->failed)
        return;
    ms_conn_flush(c, deadline);
    ms_tls_shutdown(c->tls);
    conn_send_cipher(c, deadline);
}

int
ms_conn_fill(struct ms_conn *c, int64_t deadline)
{
    if (conn_buffered(c) > 0)
        return MOCKSRV_OK;
    ssize_t n = conn_recv(c, deadline);
    return n < 0 ? (int)n : MOCKSRV_OK;
}

const char *
ms_conn_peek(const struct ms_conn *c, size_t *len_r)
{
    *len_r = conn_buffered(c);
    return c->in.data ? c->in.data + c->in_pos : "";
}

void
ms_conn_consume(struct ms_conn *c, size_t n)
{
    ms_assert(n <= conn_buffered(c));
    c->in_pos += n;
}

int
ms_conn_has_line(const struct ms_conn *c)
{
    size_t n = conn_buffered(c);
    return n > 0 && memchr(c->in.data + c->in_pos, '\n', n) != NULL;
}

size_t
ms_conn_discard_input(struct ms_conn *c)
{
    size_t n = conn_buffered(c);
    c->in_pos = c->in.len;
    conn_compact(c);
    return n;
}

int
ms_conn_read_line(struct ms_conn *c, size_t limit, int64_t deadline, struct ms_line *line_r)
{
    size_t scanned = 0;
    memset(line_r, 0, sizeof *line_r);
    for (;;) {
        size_t avail = conn_buffered(c);
        char *start = c->in.data ? c->in.data + c->in_pos : NULL;
        char *lf = avail > scanned ? memchr(start + scanned, '\n', avail - scanned) : NULL;
        if (lf) {
            size_t total = (size_t)(lf - start) + 1; /* including LF */
            if (c->discarding) {
                /* The tail of an over-long line: drop it and report the line as too long. */
                c->discarding = 0;
                c->in_pos += total;
                return MOCKSRV_ETOOLONG;
            }
            size_t len = total - 1;
            if (len > 0 && start[len - 1] == '\r')
                len--;
            else
                line_r->bare_lf = 1;
            c->in_pos += total;
            if (total > limit)
                return MOCKSRV_ETOOLONG;
            start[len] = '\0';
            line_r->data = start;
            line_r->len = len;
            line_r->nul = memchr(start, '\0', len) != NULL;
            return MOCKSRV_OK;
        }
        scanned = avail;
        if (avail >= limit) {
            /* No line end within the limit: discard what we have and skip to the next LF. */
            c->discarding = 1;
            c->in_pos += avail;
            scanned = 0;
        }
        ssize_t n = conn_recv(c, deadline);
        if (n < 0)
            return (int)n;
        if (c->discarding)
            scanned = 0;
        else
            scanned = avail;
    }
}

int
ms_conn_read_n(struct ms_conn *c, size_t n, struct ms_buf *out, int64_t deadline)
{
    while (n > 0) {
        size_t avail = conn_buffered(c);
        if (avail == 0) {
            ssize_t r = conn_recv(c, deadline);
            if (r < 0)
                return (int)r;
            continue;
        }
        size_t take = MS_MIN(avail, n);
        if (out)
            ms_buf_append(out, c->in.data + c->in_pos, take);
        c->in_pos += take;
        n -= take;
    }
    return MOCKSRV_OK;
}

void
ms_conn_write(struct ms_conn *c, const void *p, size_t n)
{
    ms_buf_append(&c->out, p, n);
}

void
ms_conn_puts(struct ms_conn *c, const char *s)
{
    ms_buf_append(&c->out, s, strlen(s));
}

void
ms_conn_printf(struct ms_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ms_buf_vprintf(&c->out, fmt, ap);
    va_end(ap);
}

int
ms_conn_flush(struct ms_conn *c, int64_t deadline)
{
    if (c->out.len == 0)
        return MOCKSRV_OK;
    if (c->write_shut) {
        /* FAULTS.md close: half: the server keeps reading and logging; what it would say
         * cannot leave any more */
        ms_buf_clear(&c->out);
        return MOCKSRV_OK;
    }
    if (c->failed) {
        ms_buf_clear(&c->out);
        return MOCKSRV_EIO;
    }
    if (c->tap)
        c->tap(c->tap_arg, '>', c->out.data, c->out.len);
    if (c->tls) {
        enum ms_tls_status st = ms_tls_write(c->tls, c->out.data, c->out.len);
        ms_buf_clear(&c->out);
        if (st != MS_TLS_OK) {
            c->failed = 1;
            return MOCKSRV_ETLS;
        }
        return conn_send_cipher(c, deadline);
    }
    struct iovec iov = {.iov_base = c->out.data, .iov_len = c->out.len};
    ssize_t n = ms_shape_writev(&c->shape, c->io, &iov, 1, deadline);
    size_t len = c->out.len;
    if (c->out.cap > CONN_KEEP)
        ms_buf_fini(&c->out); /* a RETR or FETCH of a big message: don't keep its buffer */
    else
        ms_buf_clear(&c->out);
    if (n < 0) {
        c->failed = 1;
        return (int)n;
    }
    c->bytes_out += len;
    return MOCKSRV_OK;
}

void
ms_conn_shutdown(struct ms_conn *c, int how, int64_t deadline)
{
    if (c->fd < 0)
        return;
    if (how == MS_CLOSE_RST) {
        /* close() with a zero linger time sends RST instead of FIN */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        ms_buf_clear(&c->out);
        ms_io_close(&c->io);
        close(c->fd);
        c->fd = -1;
        c->failed = 1;
        return;
    }
    ms_conn_flush(c, deadline);
    shutdown(c->fd, SHUT_WR);
    if (how == MS_CLOSE_HALF) {
        c->write_shut = 1;
        return;
    }
    /* FIN: read and drop until the peer's EOF, so our close does not turn into a RST */
    char sink[4096];
    for (;;) {
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
            ms_co_wait_io(c->io, EPOLLIN, deadline) == MOCKSRV_OK)
            continue;
        break;
    }
    c->eof = 1;
    c->failed = 1;
}
