/*
 * shape.c - the one place where outgoing bytes meet the socket.
 *
 * With no fault shaping active a write is a plain sendmsg loop with no copy. When a fault's
 * shaping applies (FAULTS.md 2: delay, split, bandwidth; tarpit is a split of size 1), the
 * output unit handed to ms_shape_writev - the greeting, one command's reply, one handshake
 * flight, or a pipelined batch - is delayed, cut into pieces that each leave in their own send()
 * (TCP_NODELAY is set on every session socket) with a gap between them, and paced by a token
 * bucket refilled every 10 ms. The protocol engines never see any of it.
 *
 * Invariants:
 *   - Every random value (piece sizes, gaps, delays) is ms_draw of the plan's coordinates
 *     and a per-plan draw counter: a run replays from its seed.
 *   - A split guarantees separate send() calls, not separate client reads (gap 0 may coalesce).
 *   - A plan's end bounds the output under way: a tarpit's `for` (FAULTS.md 2) or a scope's
 *     duration that passes in the middle of a unit ends its split or bandwidth there, and the
 *     rest of the unit leaves at once. So a gap never runs past the split's end.
 *   - Other sleeps end early only when the server stops (MOCKSRV_ECANCELED).
 *   - sh->shaped_end says when the last shaped unit was over, so that a read deadline the
 *     server's own output outlived can be told from a silent client's (ms_conn.late_timeout).
 */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define SHAPE_TICK_MS 10

/* Plain path: every byte of iov, waiting for writability. */
static ssize_t
shape_sendmsg(struct ms_io *io, const struct iovec *iov, int iovcnt, int64_t deadline)
{
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

static uint64_t
shape_draw(struct ms_shape_plan *p)
{
    /* k 0 and 1 are the rule's probability and delay draws in fault.c */
    return ms_draw(p->seed, p->rule, p->session, p->match, 2 + p->k++);
}

static uint64_t
shape_range(struct ms_shape_plan *p, uint64_t lo, uint64_t hi)
{
    return hi > lo ? lo + shape_draw(p) % (hi - lo + 1) : lo;
}

/* 1 once `until` (0: never) has passed. */
static int
shape_over(int64_t until)
{
    return until != 0 && ms_now() >= until;
}

/* The earlier of two ends, 0 meaning none. */
static int64_t
shape_earliest(int64_t a, int64_t b)
{
    return a == 0 ? b : b == 0 ? a : MS_MIN(a, b);
}

int
ms_shape_split_over(const struct ms_shape_plan *p)
{
    return shape_over(p->split_until);
}

int
ms_shape_pause(struct ms_shape_plan *p)
{
    int64_t gap = (int64_t)shape_range(p, (uint64_t)p->split.gap_lo, (uint64_t)p->split.gap_hi);
    if (p->split_until) {
        /* the split ends in this gap (a tarpit's `for`, a scope's duration): the rest
         * leaves when it does */
        int64_t left = p->split_until - ms_now();
        gap = MS_MIN(gap, MS_MAX(left, 0));
    }
    return gap > 0 ? ms_co_sleep(gap) : MOCKSRV_OK;
}

/* Drops the parts of a stored plan whose time is over. */
static void
shape_expire(struct ms_shape_plan *p)
{
    if (!p->active)
        return;
    if (shape_over(p->until)) {
        p->active = 0;
        return;
    }
    if (p->has_split && shape_over(p->split_until)) {
        p->has_split = 0;
        if (!p->has_delay && !p->bandwidth)
            p->active = 0;
    }
}

int
ms_shape_active(struct ms_shape *sh)
{
    shape_expire(&sh->session);
    shape_expire(&sh->unit);
    return sh->unit.active || sh->session.active;
}

void
ms_shape_effective(struct ms_shape *sh, struct ms_shape_plan *out)
{
    memset(out, 0, sizeof *out);
    if (sh->session.active) {
        *out = sh->session;
        out->split_until = shape_earliest(sh->session.until, sh->session.split_until);
        out->bandwidth_until = sh->session.until;
    }
    if (sh->unit.active) {
        const struct ms_shape_plan *u = &sh->unit;
        if (u->has_delay) {
            out->has_delay = 1;
            out->delay_lo = u->delay_lo;
            out->delay_hi = u->delay_hi;
        }
        if (u->has_split) {
            out->has_split = 1;
            out->split = u->split;
            out->split_until = u->split_until;
            out->seed = u->seed;
            out->rule = u->rule;
            out->session = u->session;
            out->match = u->match;
            out->k = u->k;
        }
        if (u->bandwidth) {
            out->bandwidth = u->bandwidth;
            out->bandwidth_until = 0;
        }
        out->active = 1;
    }
}

static int
shape_off_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* The cut points of one unit, collected. */
struct shape_cutlist {
    size_t *offs;
    size_t n, cap;
};

static void
shape_add_cut(struct shape_cutlist *cl, size_t off)
{
    if (cl->n == cl->cap) {
        cl->cap = cl->cap ? cl->cap * 2 : 16;
        cl->offs = ms_realloc(cl->offs, cl->cap * sizeof *cl->offs);
    }
    cl->offs[cl->n++] = off;
}

size_t
ms_shape_cuts(struct ms_shape_plan *p, const char *data, size_t len, uint64_t literal,
              size_t **offs_r)
{
    struct shape_cutlist cl = {0};
    const struct ms_fault_split *sp = &p->split;
    *offs_r = NULL;
    if (!p->has_split || len == 0)
        return 0;
    if (sp->lines) {
        for (size_t i = 0; i + 1 < len; i++)
            if (data[i] == '\n')
                shape_add_cut(&cl, i + 1);
    } else if (sp->size_lo) {
        for (size_t off = shape_range(p, sp->size_lo, sp->size_hi); off < len;
             off += shape_range(p, sp->size_lo, sp->size_hi))
            shape_add_cut(&cl, off);
    } else {
        /* offsets: counted from the unit's start, its end, or its first literal byte (a unit
         * without a literal counts from its start) */
        int64_t origin = sp->from == MS_FROM_END                                ? (int64_t)len
                         : sp->from == MS_FROM_LITERAL && literal != UINT64_MAX ? (int64_t)literal
                                                                                : 0;
        for (size_t i = 0; i < sp->n_offsets; i++) {
            int64_t o = origin + sp->offsets[i];
            if (o > 0 && o < (int64_t)len)
                shape_add_cut(&cl, (size_t)o);
        }
        qsort(cl.offs, cl.n, sizeof *cl.offs, shape_off_cmp);
        size_t n = 0;
        for (size_t i = 0; i < cl.n; i++)
            if (n == 0 || cl.offs[i] != cl.offs[n - 1])
                cl.offs[n++] = cl.offs[i];
        cl.n = n;
    }
    *offs_r = cl.offs;
    return cl.n;
}

/* Token bucket: whole bytes that may leave now (at least 1), waiting for a tick if needed;
 * once `until` (0: never) passes, everything that is wanted. */
static int
shape_tokens(struct ms_shape *sh, uint64_t bandwidth, int64_t until, size_t want, size_t *grant_r)
{
    double per_tick = (double)bandwidth * SHAPE_TICK_MS / 1000.0;
    double cap = per_tick < 1.0 ? 1.0 : per_tick;
    for (;;) {
        int64_t now = ms_now();
        if (sh->refill_at == 0) {
            sh->refill_at = now;
            sh->tokens = cap;
        }
        if (now > sh->refill_at) {
            sh->tokens += (double)(now - sh->refill_at) * (double)bandwidth / 1000.0;
            if (sh->tokens > cap)
                sh->tokens = cap;
            sh->refill_at = now;
        }
        if (sh->tokens >= 1.0) {
            size_t g = (size_t)sh->tokens;
            *grant_r = g < want ? g : want;
            sh->tokens -= (double)*grant_r;
            return MOCKSRV_OK;
        }
        if (shape_over(until)) {
            *grant_r = want;
            return MOCKSRV_OK;
        }
        int rc = ms_co_sleep(SHAPE_TICK_MS);
        if (rc != MOCKSRV_OK)
            return rc;
    }
}

ssize_t
ms_shape_send(struct ms_shape *sh, struct ms_io *io, const char *p, size_t n,
              const struct ms_shape_plan *plan, int64_t deadline)
{
    /* close.after_bytes over the session: only what is left of the allowance leaves */
    int cut = 0;
    if (sh->cut_left != UINT64_MAX) {
        if (n > sh->cut_left) {
            n = (size_t)sh->cut_left;
            cut = 1;
        }
        sh->cut_left -= n;
    }
    size_t done = 0;
    while (done < n) {
        size_t take = n - done;
        if (plan && plan->bandwidth && !shape_over(plan->bandwidth_until)) {
            int rc = shape_tokens(sh, plan->bandwidth, plan->bandwidth_until, take, &take);
            if (rc != MOCKSRV_OK)
                return rc;
        }
        struct iovec iov = {.iov_base = (char *)p + done, .iov_len = take};
        ssize_t w = shape_sendmsg(io, &iov, 1, deadline);
        if (w < 0)
            return w;
        done += take;
    }
    if (cut) {
        sh->cut_hit = 1;
        return MOCKSRV_ECLOSED;
    }
    return (ssize_t)n;
}

/* close.after_bytes over the session: sends what is left of the allowance, then reports the
 * cut (the connection closes it). */
static ssize_t
shape_cut(struct ms_shape *sh, struct ms_io *io, const struct iovec *iov, int iovcnt,
          int64_t deadline)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total <= sh->cut_left) {
        sh->cut_left -= total;
        return shape_sendmsg(io, iov, iovcnt, deadline);
    }
    struct ms_buf flat = {0};
    for (int i = 0; i < iovcnt; i++)
        ms_buf_append(&flat, iov[i].iov_base, iov[i].iov_len);
    ssize_t w = ms_shape_send(sh, io, flat.data, flat.len, NULL, deadline);
    ms_buf_fini(&flat);
    return w;
}

ssize_t
ms_shape_writev(struct ms_shape *sh, struct ms_io *io, const struct iovec *iov, int iovcnt,
                int64_t deadline)
{
    if (sh->cut_left != UINT64_MAX && !ms_shape_active(sh))
        return shape_cut(sh, io, iov, iovcnt, deadline);
    if (!ms_shape_active(sh))
        return shape_sendmsg(io, iov, iovcnt, deadline);

    struct ms_shape_plan p;
    ms_shape_effective(sh, &p);
    uint64_t literal = sh->literal;
    int unit_split = sh->unit.active && sh->unit.has_split;
    sh->literal = UINT64_MAX;
    sh->unit.active = 0;

    struct ms_buf flat = {0};
    for (int i = 0; i < iovcnt; i++)
        ms_buf_append(&flat, iov[i].iov_base, iov[i].iov_len);
    ssize_t result = (ssize_t)flat.len;
    int rc = MOCKSRV_OK;
    if (p.has_delay) {
        int64_t d = (int64_t)shape_range(&p, (uint64_t)p.delay_lo, (uint64_t)p.delay_hi);
        if (d > 0)
            rc = ms_co_sleep(d);
    }
    size_t *cuts = NULL, n_cuts = 0;
    if (rc == MOCKSRV_OK)
        n_cuts = ms_shape_cuts(&p, flat.data, flat.len, literal, &cuts);
    size_t start = 0;
    for (size_t i = 0; rc == MOCKSRV_OK && i <= n_cuts; i++) {
        /* the split's time is over: what is left of the unit is one piece */
        if (i < n_cuts && ms_shape_split_over(&p))
            n_cuts = i;
        size_t end = i < n_cuts ? cuts[i] : flat.len;
        ssize_t w = ms_shape_send(sh, io, flat.data + start, end - start, &p, deadline);
        if (w < 0) {
            rc = (int)w;
            break;
        }
        start = end;
        if (i < n_cuts)
            rc = ms_shape_pause(&p);
    }
    sh->shaped_end = ms_now();
    /* the session plan's draws go on where this unit left them */
    if (sh->session.active && !unit_split)
        sh->session.k = p.k;
    free(cuts);
    ms_buf_fini(&flat);
    return rc == MOCKSRV_OK ? result : rc;
}
