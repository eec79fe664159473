/*
 * dot.c - SMTP DATA transparency (RFC 5321 section 4.5.2): a streaming decoder for what follows
 * "354", and the byte-stuffing encoder for POP3 RETR (RFC 1939 section 3) and SMTP clients.
 *
 * What it is: a byte-level state machine. The only memory between calls is struct ms_dot, so
 * the decoded message is identical however the input is split (fed in one piece, byte by byte,
 * or in random pieces).
 *
 * What it is not: no line-length limit (that is the session's business), no CRLF repair, no
 * parsing of the message. Bytes are kept exactly, including bare CR, bare LF and NULs.
 *
 * Invariants and choices:
 * - A line starts at the beginning of the data or right after CRLF. Bare LF (or bare CR) does
 *   not start a line: "a\n.\nb" and "a\n.\r\n" are content, byte for byte, and never end the
 *   message (the "SMTP smuggling" class of bugs).
 * - The end marker is "." CRLF at the start of a line. The CRLF before it belongs to the
 *   message; the ".\r\n" is consumed and nothing after it: the bytes that follow are the next
 *   pipelined command (RFC 2920), left to the caller. Data that starts with ".\r\n" is an empty
 *   message.
 * - Every other line that starts with "." loses that dot (RFC 5321 section 4.5.2, as Postfix
 *   does), whatever follows it: "\r\n..x" gives "\r\n.x", "\r\n.x" gives "\r\nx", and
 *   "\r\n.\n" gives "\r\n\n", "\r\n.\rX" gives "\r\n\rX".
 * - The only byte ever held back between calls is the CR of a line that so far reads ".\r":
 *   it is emitted (and counted) once the next byte shows it is not the end marker.
 * - total counts every decoded byte; out receives the first max of them and nothing beyond, so
 *   a session that answers 552 still reads up to the end marker and stays in sync.
 * - The encoder is the exact inverse for messages ending in CRLF: it stuffs a dot where the
 *   decoder removes one (start of data and after CRLF), so decode(encode(m)) == m.
 */
#include "dot.h"

enum dot_state {
    DOT_BOL = 0, /* at the start of a line: the first state, so a zeroed ms_dot is valid */
    DOT_TEXT,    /* inside a line */
    DOT_CR,      /* just after a CR inside a line (or after the CR of a line ".\r" was resolved) */
    DOT_DOT,     /* the line so far is ".": the dot was dropped */
    DOT_DOT_CR,  /* the line so far is ".\r": the CR is held back */
    DOT_DONE,    /* the end marker was consumed */
};

void
ms_dot_init(struct ms_dot *d)
{
    d->state = DOT_BOL;
    d->total = 0;
}

/* Adds n decoded bytes to the message: counted always, stored within max only. */
static void
dot_emit(struct ms_dot *d, const char *p, size_t n, struct ms_buf *out, size_t max)
{
    if (out && d->total < max)
        ms_buf_append(out, p, MS_MIN(n, max - d->total));
    d->total += n;
}

size_t
ms_dot_decode(struct ms_dot *d, const char *in, size_t len, struct ms_buf *out, size_t max,
              int *done_r)
{
    size_t i = 0;
    while (i < len && d->state != DOT_DONE) {
        char c = in[i];
        switch (d->state) {
        case DOT_BOL:
            if (c == '.') {
                d->state = DOT_DOT; /* the dot is dropped whether or not this is the end */
                i++;
                continue;
            }
            d->state = DOT_TEXT;
            continue; /* reprocess c as ordinary text */
        case DOT_TEXT: {
            /* Fast path: copy the run up to the next CR in one piece. */
            const char *cr = memchr(in + i, '\r', len - i);
            size_t run = cr ? (size_t)(cr - (in + i)) + 1 : len - i;
            dot_emit(d, in + i, run, out, max);
            i += run;
            if (cr)
                d->state = DOT_CR;
            continue;
        }
        case DOT_CR:
            dot_emit(d, &c, 1, out, max);
            i++;
            if (c == '\n')
                d->state = DOT_BOL;
            else if (c != '\r')
                d->state = DOT_TEXT;
            continue;
        case DOT_DOT:
            if (c == '\r') {
                d->state = DOT_DOT_CR; /* maybe the end marker: hold the CR back */
                i++;
                continue;
            }
            d->state = DOT_TEXT; /* a stuffed line: its dot is gone, the rest is text */
            continue;
        case DOT_DOT_CR:
            if (c == '\n') {
                d->state = DOT_DONE;
                i++;
                continue;
            }
            /* ".\r" followed by something else: the CR was content after all. */
            dot_emit(d, "\r", 1, out, max);
            d->state = DOT_CR;
            continue; /* reprocess c as the byte after a CR */
        default:
            ms_die("ms_dot_decode: corrupt state %d", d->state);
        }
    }
    if (done_r)
        *done_r = d->state == DOT_DONE;
    return i;
}

void
ms_dot_encode(const char *msg, size_t len, struct ms_buf *out)
{
    /* An empty message is just the end marker (a CRLF added to it would not decode back to
     * empty). */
    ms_buf_reserve(out, len + len / 64 + 5);
    size_t start = 0; /* first byte not yet copied */
    /* Dots are rare: jump from one to the next with memchr and stuff those that begin a line
     * (at the start, or after CRLF). */
    const char *p = msg, *end = msg + len;
    while (p < end && (p = memchr(p, '.', (size_t)(end - p))) != NULL) {
        size_t i = (size_t)(p - msg);
        if (i == 0 || (i >= 2 && msg[i - 1] == '\n' && msg[i - 2] == '\r')) {
            ms_buf_append(out, msg + start, i - start);
            ms_buf_putc(out, '.');
            start = i;
        }
        p++;
    }
    ms_buf_append(out, msg + start, len - start);
    if (len > 0 && !(len >= 2 && msg[len - 2] == '\r' && msg[len - 1] == '\n'))
        ms_buf_append(out, "\r\n", 2);
    ms_buf_append(out, ".\r\n", 3);
}
