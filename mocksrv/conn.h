/*
 * conn.h - a session's buffered connection: line reads with a limit, n-byte reads, raw access to
 * buffered input for streaming decoders, buffered writes that go out through shape.c.
 *
 * Invariants:
 *   - Every read takes a deadline; a session never blocks without one.
 *   - Output is buffered and flushed before the connection waits for input, so the replies to a
 *     pipelined batch of commands leave in one write (RFC 2920 section 3.1).
 *   - Input that follows the current command stays buffered: the next read returns it.
 *   - A line longer than the limit is reported (MOCKSRV_ETOOLONG) and the rest of it, up to and
 *     including its LF, is discarded, so the session can answer and go on.
 *   - Nothing here knows about protocols; conn.c and shape.c are the only users of send/recv.
 */
#ifndef MS_CONN_H
#define MS_CONN_H

#include <stdint.h>
#include <sys/uio.h>

#include "base.h"
#include "runtime.h"
#include "tls.h"

#include "fault.h"

/* How output is shaped while a fault's shaping lasts (FAULTS.md 2 "shaping server -> client"):
 * a delay before each output unit, cuts into separate sends with gaps, a bandwidth. Values are
 * copied from the rule that fired; random ones are drawn per piece from the rule's coordinates. */
struct ms_shape_plan {
    int active;
    int64_t until; /* ms_now() scale; 0: no end */
    /* the split ends earlier than the plan (tarpit `for`, counted from when the rule fired);
     * once it has passed, even in the middle of a unit, the rest leaves at once. In the plan
     * ms_shape_effective makes: when the split ends, whichever plan gave it (0: never) */
    int64_t split_until;
    int64_t bandwidth_until; /* ms_shape_effective only: when the bandwidth ends (0: never) */
    int64_t delay_lo, delay_hi;
    int has_delay;
    struct ms_fault_split split; /* offsets borrowed from the rule */
    int has_split;
    uint64_t bandwidth; /* bytes per second, 0: unlimited */
    /* draw coordinates: (seed, rule, session ordinal, match), k counts draws */
    uint64_t seed, rule, session, match, k;
};

/* The shaping layer: the one place bytes meet the socket. With no plan active a write is one
 * plain sendmsg; the unit plan shapes the next output unit only (scope: reply), the session
 * plan every unit until it ends (scope: session or a duration). Where both give a key, the unit
 * plan wins. */
struct ms_shape {
    int nodelay; /* TCP_NODELAY was set */
    struct ms_shape_plan unit, session;
    double tokens; /* bandwidth: bytes that may leave now */
    int64_t refill_at;
    uint64_t literal; /* offset of the unit's first literal byte (IMAP), UINT64_MAX: none */
    /* close.after_bytes over the whole session (Toxiproxy limit_data): bytes that may still
     * leave (UINT64_MAX: no limit); once used up the write stops there and cut_hit is set */
    uint64_t cut_left;
    int cut_hit;
    /* ms_now() when the last shaped unit (or a fault's delay or stall) was over: a read
     * deadline that passed before then passed while the server, not the client, was busy */
    int64_t shaped_end;
};

/* Writes every byte of iov to io's fd, waiting for writability up to deadline, shaped as the
 * active plans say (the unit plan is used up by this call).
 * Returns bytes written (all of them) or a negative code (ECLOSED, ETIMEDOUT, ECANCELED, EIO). */
ssize_t ms_shape_writev(struct ms_shape *sh, struct ms_io *io, const struct iovec *iov, int iovcnt,
                        int64_t deadline);
/* 1 when a plan applies to the next unit (expired session plans are dropped here). */
int ms_shape_active(struct ms_shape *sh);
/* The plan that applies to the next unit: the unit plan's keys over the session plan's. */
void ms_shape_effective(struct ms_shape *sh, struct ms_shape_plan *out);
/* Cut points of a unit of len bytes (data needed for split.lines), in increasing order inside
 * (0, len), for TCP pieces and for TLS records: returns their number and *offs_r (malloc'ed,
 * the caller frees it; NULL when there are none). */
size_t ms_shape_cuts(struct ms_shape_plan *p, const char *data, size_t len, uint64_t literal,
                     size_t **offs_r);
/* 1 once the effective plan p's split is over (its split_until has passed): the rest of the
 * unit leaves in one piece. */
int ms_shape_split_over(const struct ms_shape_plan *p);
/* Waits the gap after a piece (drawn from the plan), but not past the split's end. Returns
 * MOCKSRV_OK or MOCKSRV_ECANCELED (the server stops). */
int ms_shape_pause(struct ms_shape_plan *p);
/* Sends n bytes as one piece under the effective plan's bandwidth until its end (plan NULL:
 * unpaced; no cuts). */
ssize_t ms_shape_send(struct ms_shape *sh, struct ms_io *io, const char *p, size_t n,
                      const struct ms_shape_plan *plan, int64_t deadline);

/* How input is read while a fault's `read` lasts (FAULTS.md 2 "shaping client -> server"). */
struct ms_read_plan {
    int active;
    int stop;           /* read: stop: never read */
    uint64_t size;      /* bytes per recv at most (0: no limit) */
    int64_t gap_ms;     /* between recvs */
    uint64_t bandwidth; /* bytes per second (0: unlimited) */
    int64_t until;      /* ms_now() scale; 0: no end */
    int payload;        /* ends with the current payload (ms_conn_payload_end) */
    double tokens;
    int64_t refill_at;
    int64_t next_at; /* gap: no recv before */
};

/* Observes bytes crossing the connection (transcript, counters). dir is '<' for input, '>' for
 * output. */
typedef void ms_conn_tap_fn(void *arg, char dir, const char *p, size_t n);

struct ms_conn {
    struct ms_io *io;
    int fd;
    struct ms_shape shape;

    /* input: bytes [in_pos, in.len) are buffered and not yet consumed */
    struct ms_buf in;
    size_t in_pos;
    int eof;                   /* the peer closed its side */
    int failed;                /* a transport error happened: no further I/O */
    int write_shut;            /* half-closed by a fault: output is dropped, reads go on */
    int discarding;            /* skipping the rest of an over-long line */
    size_t read_size;          /* room asked for before each recv: grows while reads fill it */
    int drained;               /* the last recv was short: wait for an edge before the next one */
    struct ms_read_plan rplan; /* a fault's read shaping, when active */
    int cut_how;               /* ms_conn_cut_after: how and when the cut closes */
    int64_t cut_delay_ms;
    int cut_done; /* the cut closed the connection (session.close reason fault) */
    /* the last read that timed out did so because the server's own shaped or delayed output
     * outlived its deadline (shape.shaped_end): the session.close reason is fault, not timeout */
    int late_timeout;

    /* output, flushed before any wait for input */
    struct ms_buf out;

    uint64_t bytes_in; /* on the wire (ciphertext once TLS is up) */
    int64_t in_at;     /* ms_now() when bytes last arrived (0: never) */
    uint64_t bytes_out;

    /* TLS (after STARTTLS or on an implicit listener): plaintext stays in in/out above */
    struct ms_tls *tls;
    struct ms_buf cipher_in;
    struct ms_buf cipher_out;

    ms_conn_tap_fn *tap;
    void *tap_arg;
};

/* A line as read: bytes without the line ending; data[len] is NUL. Borrowed, valid until the
 * next ms_conn_* call on this connection. bare_lf: ended by LF without CR. nul: contains NUL. */
struct ms_line {
    char *data;
    size_t len;
    int bare_lf;
    int nul;
};

/* Takes ownership of fd (which must already be non-blocking: accept4 with SOCK_NONBLOCK), sets
 * TCP_NODELAY and registers it with loop. */
void ms_conn_init(struct ms_conn *c, struct ms_loop *loop, int fd);
/* Deregisters and closes the fd, frees buffers. */
void ms_conn_fini(struct ms_conn *c);

/* Reads one line of at most limit bytes including its CRLF.
 * Returns MOCKSRV_OK, MOCKSRV_ETOOLONG (line discarded), MOCKSRV_ECLOSED, MOCKSRV_ETIMEDOUT,
 * MOCKSRV_ECANCELED or MOCKSRV_EIO. */
int ms_conn_read_line(struct ms_conn *c, size_t limit, int64_t deadline, struct ms_line *line_r);
/* Reads exactly n bytes, appended to out (or thrown away when out is NULL). */
int ms_conn_read_n(struct ms_conn *c, size_t n, struct ms_buf *out, int64_t deadline);
/* Makes sure at least one unconsumed byte is buffered (reading if needed). */
int ms_conn_fill(struct ms_conn *c, int64_t deadline);
/* Buffered, unconsumed input. */
const char *ms_conn_peek(const struct ms_conn *c, size_t *len_r);
void ms_conn_consume(struct ms_conn *c, size_t n);
/* 1 when a complete line is already buffered (more pipelined commands to answer). */
int ms_conn_has_line(const struct ms_conn *c);
/* Throws away all buffered input (after STARTTLS: RFC 3207 section 4.2). Returns bytes dropped. */
size_t ms_conn_discard_input(struct ms_conn *c);

void ms_conn_write(struct ms_conn *c, const void *p, size_t n);
void ms_conn_puts(struct ms_conn *c, const char *s);
void ms_conn_printf(struct ms_conn *c, const char *fmt, ...) MS_PRINTF(2, 3);
/* Sends buffered output. Returns MOCKSRV_OK or a transport error. */
int ms_conn_flush(struct ms_conn *c, int64_t deadline);

/* Flushes pending plaintext, throws away buffered input (RFC 3207 4.2) and runs a server TLS
 * handshake with ctx until deadline. Returns MOCKSRV_OK (every later byte is encrypted),
 * MOCKSRV_ETLS with *reason_r (OpenSSL's reason; the connection is unusable), or a transport
 * error (ECLOSED, ETIMEDOUT, ECANCELED, EIO) with *reason_r describing it. */
int ms_conn_starttls(struct ms_conn *c, struct ms_tls_ctx *ctx, int64_t deadline,
                     const char **reason_r);

/* Where a handshake stops on purpose (FAULTS.md 6 "TLS phases with memory BIOs"). The phase
 * names are the server's behaviour, not record types: TLS 1.3 sends ServerHello .. Finished as
 * one first flight, TLS 1.2 ServerHello .. ServerHelloDone. */
enum ms_conn_tls_stop {
    MS_CONN_TLS_COMPLETE,     /* no stop: the whole handshake (after the delay) */
    MS_CONN_TLS_AFTER_HELLO,  /* the ClientHello is read and never given to OpenSSL */
    MS_CONN_TLS_MID_FLIGHT,   /* only flight_bytes of the server's first flight leave */
    MS_CONN_TLS_AFTER_FLIGHT, /* the whole first flight leaves, then nothing is read */
};

/* A handshake with a fault (ms_conn_starttls_ex). Zeroed = the normal handshake. */
struct ms_conn_tls_opts {
    enum ms_conn_tls_stop stop;
    uint64_t flight_bytes; /* MID_FLIGHT: bytes forwarded; UINT64_MAX: half the flight */
    int64_t delay_ms;      /* between the ClientHello and the server's first flight */
    /* the actions of the `at: tls` rules that fired (borrowed; NULL: none), for what shapes
     * the handshake flights (split, bandwidth: the shaping part of the faults) */
    const struct ms_fault_actions *fa;
};

/* ms_conn_starttls with the fault o describes: the ClientHello is read first (5-byte record
 * header and the length it gives, RFC 8446 5.1) when the handshake stops or is delayed, then
 * the handshake runs until o->stop. Returns MOCKSRV_OK when the handshake completed
 * (MS_CONN_TLS_COMPLETE) or reached its stop: c->tls is then set but carries nothing (the
 * caller ends the connection); otherwise as ms_conn_starttls, which is this without a
 * fault. */
int ms_conn_starttls_ex(struct ms_conn *c, struct ms_tls_ctx *ctx, int64_t deadline,
                        const struct ms_conn_tls_opts *o, const char **reason_r);
/* For the faults that answer a ClientHello without OpenSSL (a raw alert, garbage): flushes
 * pending plaintext (the go-ahead), throws away buffered input, reads the client's first TLS
 * record as above (or what the first read brought when it does not start like a handshake
 * record) and drops it. Returns MOCKSRV_OK or a transport error. */
int ms_conn_read_hello(struct ms_conn *c, int64_t deadline);
/* How long a closing connection may take to flush its output and drain the peer: the deadline,
 * ms_deadline_in(MS_CLOSE_GRACE_MS), of the flushes and shutdowns that end a session or carry
 * out a fault's close. A client that does not read or close by then is cut off. */
#define MS_CLOSE_GRACE_MS 1000

/* Ends the connection on purpose (a fault's close): how is an enum ms_close_how of fault.h.
 * FIN: shutdown(SHUT_WR), drain what the peer still sends (until its EOF or the deadline),
 * close. RST: SO_LINGER {1, 0} then close, discarding unsent data. HALF: shutdown(SHUT_WR)
 * only; reads go on. Unflushed output is sent first (except for RST). */
void ms_conn_shutdown(struct ms_conn *c, int how, int64_t deadline);

/* close.after_bytes with scope session: after `after_bytes` more bytes on the wire, the
 * connection ends as `how` says, `delay_ms` later (the session sees a closed connection). */
void ms_conn_cut_after(struct ms_conn *c, uint64_t after_bytes, int how, int64_t delay_ms);

/* Starts read shaping (a fault's `read`): window sets SO_RCVBUF now. */
void ms_conn_read_shape(struct ms_conn *c, const struct ms_fault_read *rd, int64_t until,
                        int payload);
/* The payload a command carried is over: read shaping scoped to it ends. */
void ms_conn_payload_end(struct ms_conn *c);

/* With TLS up: flushes, then sends a close_notify alert (best effort). */
void ms_conn_close_notify(struct ms_conn *c, int64_t deadline);

/* Input the client has sent that no read has consumed yet, without consuming it: up to cap
 * bytes copied to out from the buffered plaintext, else peeked from the socket (ciphertext
 * under TLS; bytes already inside OpenSSL are not seen). Never waits. Returns the count. Used
 * for expect.no_pregreet (did the client talk before the greeting was complete?). */
size_t ms_conn_input_pending(struct ms_conn *c, char *out, size_t cap);
/* Milliseconds since the kernel last received data from the peer (TCP_INFO
 * tcpi_last_data_recv, jiffies resolution), or -1 when unknown. */
int64_t ms_conn_input_age(struct ms_conn *c);

#endif
