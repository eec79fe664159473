/*
 * conn.c - buffered reads and writes of one session's connection (see conn.h).
 *
 * Reads go straight to recv() into the input buffer, until EAGAIN (edge-triggered epoll), then
 * the coroutine waits on the fd with the caller's deadline. Writes are appended to the output
 * buffer and leave through shape.c when flushed; every wait for input flushes first, which is
 * what makes the reply to a pipelined batch one write.
 *
 * With TLS up, plaintext stays in these buffers and ciphertext goes through OpenSSL's memory
 * BIOs (tls.c) to the shaper. Also here: a fault's read shaping (size, gap, bandwidth, window,
 * stop), handshakes stopped on purpose (ms_conn_starttls_ex), split with layer: tls (one record
 * per piece), and the close when a session-long after_bytes allowance runs out.
 *
 * Not here: protocol syntax, deciding what a fault does (fault.c, session.c).
 */
#include "conn.h"

#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
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
    c->shape.literal = UINT64_MAX;
    c->shape.cut_left = UINT64_MAX;
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
/* Read shaping (a fault's `read`): waits as the plan says and returns how many bytes the next
 * recv may take (0: no limit). */
static int
conn_read_pace(struct ms_conn *c, int64_t deadline, size_t *limit_r)
{
    struct ms_read_plan *rp = &c->rplan;
    *limit_r = 0;
    int64_t now = ms_now();
    if (rp->until && now >= rp->until) {
        rp->active = 0;
        return MOCKSRV_OK;
    }
    if (rp->stop) {
        /* read: stop: the fd is not read at all until the plan ends or the deadline passes */
        int64_t end = rp->until ? rp->until : deadline;
        if (deadline != MS_NO_DEADLINE && deadline < end)
            end = deadline;
        for (;;) {
            now = ms_now();
            if (rp->until && now >= rp->until) {
                rp->active = 0;
                return MOCKSRV_OK;
            }
            if (end != MS_NO_DEADLINE && now >= end)
                return MOCKSRV_ETIMEDOUT;
            int rc = ms_co_sleep(end == MS_NO_DEADLINE ? 60000 : end - now);
            if (rc != MOCKSRV_OK)
                return rc;
        }
    }
    if (rp->next_at > now) {
        int rc = ms_co_sleep(rp->next_at - now);
        if (rc != MOCKSRV_OK)
            return rc;
    }
    size_t limit = rp->size ? (size_t)rp->size : 0;
    if (rp->bandwidth) {
        double cap = (double)rp->bandwidth / 100.0;
        if (cap < 1.0)
            cap = 1.0;
        for (;;) {
            now = ms_now();
            if (rp->refill_at == 0) {
                rp->refill_at = now;
                rp->tokens = cap;
            }
            rp->tokens += (double)(now - rp->refill_at) * (double)rp->bandwidth / 1000.0;
            if (rp->tokens > cap)
                rp->tokens = cap;
            rp->refill_at = now;
            if (rp->tokens >= 1.0)
                break;
            int rc = ms_co_sleep(10);
            if (rc != MOCKSRV_OK)
                return rc;
        }
        if (!limit || (size_t)rp->tokens < limit)
            limit = (size_t)rp->tokens;
    }
    *limit_r = limit;
    return MOCKSRV_OK;
}

/* Read shaping: what a recv of n bytes used up. */
static void
conn_read_paced(struct ms_conn *c, size_t n)
{
    struct ms_read_plan *rp = &c->rplan;
    if (rp->gap_ms > 0)
        rp->next_at = ms_now() + rp->gap_ms;
    if (rp->bandwidth)
        rp->tokens -= (double)n;
}

void
ms_conn_read_shape(struct ms_conn *c, const struct ms_fault_read *rd, int64_t until, int payload)
{
    struct ms_read_plan *rp = &c->rplan;
    memset(rp, 0, sizeof *rp);
    rp->active = 1;
    rp->stop = rd->stop;
    rp->size = rd->size;
    rp->gap_ms = rd->gap_ms;
    rp->bandwidth = rd->bandwidth;
    rp->until = until;
    rp->payload = payload;
    if (rd->window && c->fd >= 0) {
        int v = rd->window > INT32_MAX ? INT32_MAX : (int)rd->window;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    }
}

void
ms_conn_payload_end(struct ms_conn *c)
{
    if (c->rplan.active && c->rplan.payload)
        c->rplan.active = 0;
}

static ssize_t
conn_recv_wait(struct ms_conn *c, struct ms_buf *b, int64_t deadline)
{
    int rc;
    size_t limit = 0;
    if (c->rplan.active && (rc = conn_read_pace(c, deadline, &limit)) != MOCKSRV_OK)
        return rc;
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
        if (limit && limit < room)
            room = limit;
        ssize_t n = recv(c->fd, b->data + b->len, room, 0);
        if (n > 0) {
            if (c->rplan.active)
                conn_read_paced(c, (size_t)n);
            if (!limit && (size_t)n == room && c->read_size < CONN_READ_MAX)
                c->read_size *= 2;
            c->drained = (size_t)n < room;
            b->len += (size_t)n;
            b->data[b->len] = '\0';
            c->bytes_in += (uint64_t)n;
            c->in_at = ms_now();
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

/* conn_recv_wait, telling whose a timeout is: the client's when it was silent for its time,
 * the fault's when the server's own shaped or delayed output was still under way when the
 * deadline passed (the client could not answer output it had not received yet). */
static ssize_t
conn_recv_socket(struct ms_conn *c, struct ms_buf *b, int64_t deadline)
{
    ssize_t n = conn_recv_wait(c, b, deadline);
    if (n == MOCKSRV_ETIMEDOUT)
        c->late_timeout = deadline != MS_NO_DEADLINE && deadline <= c->shape.shaped_end;
    return n;
}

void
ms_conn_cut_after(struct ms_conn *c, uint64_t after_bytes, int how, int64_t delay_ms)
{
    c->shape.cut_left = after_bytes;
    c->cut_how = how;
    c->cut_delay_ms = delay_ms;
}

/* The session's byte allowance ran out in a write: close as the fault said. */
static void
conn_cut_close(struct ms_conn *c)
{
    if (!c->shape.cut_hit || c->cut_done)
        return;
    c->cut_done = 1;
    if (c->cut_delay_ms > 0)
        ms_co_sleep(c->cut_delay_ms);
    ms_buf_clear(&c->out);
    ms_conn_shutdown(c, c->cut_how, ms_deadline_in(MS_CLOSE_GRACE_MS));
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
        conn_cut_close(c);
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
    static const struct ms_conn_tls_opts plain = {.stop = MS_CONN_TLS_COMPLETE,
                                                  .flight_bytes = UINT64_MAX};
    return ms_conn_starttls_ex(c, ctx, deadline, &plain, reason_r);
}

/* ---- handshakes broken on purpose (FAULTS.md 2 `tls:`, 6) ---- */

/* The largest record a ClientHello may come in: 2^14 bytes of plaintext (RFC 8446 5.1) plus
 * the expansion TLS 1.2 allows (RFC 5246 6.2.3). A header announcing more is not a record. */
#define CONN_RECORD_MAX (16384 + 2048)

/* Reads the client's first record into c->cipher_in (emptied first): its 5-byte header and
 * the length that gives, or what the first read brought when it does not start like a
 * handshake record (content type 22), e.g. a client that sends plaintext instead. */
static int
conn_read_record(struct ms_conn *c, int64_t deadline)
{
    ms_buf_clear(&c->cipher_in);
    for (;;) {
        const unsigned char *d = (const unsigned char *)c->cipher_in.data;
        size_t have = c->cipher_in.len;
        if (have >= 1 && d[0] != 22)
            return MOCKSRV_OK;
        if (have >= 5) {
            size_t len = (size_t)d[3] << 8 | d[4];
            if (len > CONN_RECORD_MAX || have >= 5 + len)
                return MOCKSRV_OK;
        }
        ssize_t n = conn_recv_socket(c, &c->cipher_in, deadline);
        if (n < 0)
            return (int)n;
    }
}

static const char *
conn_handshake_reason(int rc)
{
    return rc == MOCKSRV_ETIMEDOUT   ? "handshake timed out"
           : rc == MOCKSRV_ECLOSED   ? "connection closed during the handshake"
           : rc == MOCKSRV_ECANCELED ? "server stopping during the handshake"
                                     : "connection failed during the handshake";
}

int
ms_conn_read_hello(struct ms_conn *c, int64_t deadline)
{
    int rc = ms_conn_flush(c, deadline);
    if (rc != MOCKSRV_OK)
        return rc;
    ms_conn_discard_input(c);
    rc = conn_read_record(c, deadline);
    ms_buf_clear(&c->cipher_in);
    return rc;
}

/* Sends the first n bytes of the ciphertext OpenSSL produced and drops the rest. */
static int
conn_send_cipher_part(struct ms_conn *c, size_t n, int64_t deadline)
{
    int rc = MOCKSRV_OK;
    if (n > 0) {
        struct iovec iov = {.iov_base = c->cipher_out.data, .iov_len = n};
        ssize_t w = ms_shape_writev(&c->shape, c->io, &iov, 1, deadline);
        c->bytes_out += n;
        if (w < 0) {
            c->failed = 1;
            rc = (int)w;
        }
    }
    ms_buf_clear(&c->cipher_out);
    return rc;
}

int
ms_conn_starttls_ex(struct ms_conn *c, struct ms_tls_ctx *ctx, int64_t deadline,
                    const struct ms_conn_tls_opts *o, const char **reason_r)
{
    *reason_r = NULL;
    /* the go-ahead ("220 Ready to start TLS") leaves in plaintext, before the handshake */
    int rc = ms_conn_flush(c, deadline);
    if (rc != MOCKSRV_OK)
        return rc;
    /* RFC 3207 4.2, RFC 2595 3.1: plaintext sent after the command is not part of the
     * encrypted session (the STARTTLS command injection class of bugs). */
    ms_conn_discard_input(c);
    c->tls = ms_tls_create(ctx, reason_r);
    if (!c->tls) {
        c->failed = 1; /* no handshake can start: the session ends, the server goes on */
        return MOCKSRV_ETLS;
    }
    if (o->stop != MS_CONN_TLS_COMPLETE || o->delay_ms > 0) {
        /* the ClientHello is read here, so that the stop or the delay comes after it */
        rc = conn_read_record(c, deadline);
        if (rc != MOCKSRV_OK) {
            *reason_r = conn_handshake_reason(rc);
            return rc;
        }
        if (o->stop == MS_CONN_TLS_AFTER_HELLO)
            return MOCKSRV_OK; /* OpenSSL never sees it: no server flight */
        if (o->delay_ms > 0) {
            rc = ms_co_sleep(o->delay_ms);
            c->shape.shaped_end = ms_now();
            if (rc != MOCKSRV_OK) {
                *reason_r = conn_handshake_reason(rc);
                return rc;
            }
        }
        ms_tls_feed(c->tls, c->cipher_in.data, c->cipher_in.len);
    }
    for (;;) {
        enum ms_tls_status st = ms_tls_handshake(c->tls);
        if (o->stop >= MS_CONN_TLS_MID_FLIGHT && (st == MS_TLS_OK || st == MS_TLS_WANT_INPUT)) {
            /* the server's first flight: all of it, or the part asked for, then stop */
            ms_tls_drain(c->tls, &c->cipher_out);
            size_t n = c->cipher_out.len;
            if (n > 0) {
                if (o->stop == MS_CONN_TLS_MID_FLIGHT)
                    n = o->flight_bytes == UINT64_MAX ? n / 2 : (size_t)MS_MIN(n, o->flight_bytes);
                rc = conn_send_cipher_part(c, n, deadline);
                if (rc != MOCKSRV_OK)
                    *reason_r = conn_handshake_reason(rc);
                return rc;
            }
        }
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
            *reason_r = conn_handshake_reason((int)n);
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

/* split with layer: tls: each piece of plaintext is its own SSL_write, so its own TLS record,
 * sent on its own with the gap after it. */
static int
conn_flush_records(struct ms_conn *c, struct ms_shape_plan *p, int64_t deadline)
{
    int unit_split = c->shape.unit.active && c->shape.unit.has_split;
    c->shape.unit.active = 0;
    int rc = MOCKSRV_OK;
    if (p->has_delay) {
        int64_t d = p->delay_lo;
        if (p->delay_hi > p->delay_lo)
            d += (int64_t)(ms_draw(p->seed, p->rule, p->session, p->match, 2 + p->k++) %
                           (uint64_t)(p->delay_hi - p->delay_lo + 1));
        if (d > 0)
            rc = ms_co_sleep(d);
    }
    size_t *cuts = NULL, n_cuts = 0;
    if (rc == MOCKSRV_OK)
        n_cuts = ms_shape_cuts(p, c->out.data, c->out.len, c->shape.literal, &cuts);
    c->shape.literal = UINT64_MAX;
    size_t start = 0;
    for (size_t i = 0; rc == MOCKSRV_OK && i <= n_cuts; i++) {
        /* the split's time is over: what is left of the unit is one record */
        if (i < n_cuts && ms_shape_split_over(p))
            n_cuts = i;
        size_t end = i < n_cuts ? cuts[i] : c->out.len;
        if (ms_tls_write(c->tls, c->out.data + start, end - start) != MS_TLS_OK) {
            c->failed = 1;
            rc = MOCKSRV_ETLS;
            break;
        }
        ms_tls_drain(c->tls, &c->cipher_out);
        ssize_t w =
            ms_shape_send(&c->shape, c->io, c->cipher_out.data, c->cipher_out.len, p, deadline);
        c->bytes_out += c->cipher_out.len;
        ms_buf_clear(&c->cipher_out);
        if (w < 0) {
            conn_cut_close(c);
            c->failed = 1;
            rc = (int)w;
            break;
        }
        start = end;
        if (i < n_cuts)
            rc = ms_shape_pause(p);
    }
    c->shape.shaped_end = ms_now();
    if (c->shape.session.active && !unit_split)
        c->shape.session.k = p->k;
    free(cuts);
    ms_buf_clear(&c->out);
    return rc;
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
    if (c->tls && ms_shape_active(&c->shape)) {
        struct ms_shape_plan p;
        ms_shape_effective(&c->shape, &p);
        if (p.has_split && p.split.layer_tls)
            return conn_flush_records(c, &p, deadline);
    }
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
        conn_cut_close(c);
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

size_t
ms_conn_input_pending(struct ms_conn *c, char *out, size_t cap)
{
    size_t avail = c->in.len - c->in_pos;
    if (avail > 0) {
        size_t n = MS_MIN(avail, cap);
        memcpy(out, c->in.data + c->in_pos, n);
        return n;
    }
    if (c->failed || c->fd < 0 || cap == 0)
        return 0;
    /* a look only: the bytes stay in the socket for the next read */
    ssize_t n = recv(c->fd, out, cap, MSG_PEEK | MSG_DONTWAIT);
    return n > 0 ? (size_t)n : 0;
}

int64_t
ms_conn_input_age(struct ms_conn *c)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (c->fd < 0 || getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return -1;
    return ti.tcpi_last_data_recv;
}
