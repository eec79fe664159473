/*
 * dot.h - SMTP DATA transparency (RFC 5321 4.5.2) as a streaming decoder, and the reverse
 * (byte-stuffing for POP3 RETR / SMTP client use).
 *
 * The decoder takes the raw bytes that follow "354" in arbitrary pieces and produces the message
 * bytes exactly, with leading dots of lines removed, until the end marker CRLF "." CRLF. The CRLF
 * before the dot belongs to the message. Only CRLF ends a line for the purpose of the marker:
 * a bare LF followed by "." LF is message content (the "SMTP smuggling" class of bugs), kept
 * byte for byte. A message that starts with ".\r\n" is empty.
 */
#ifndef MS_DOT_H
#define MS_DOT_H

#include <stddef.h>

#include "base.h"

struct ms_dot {
    int state;    /* private */
    size_t total; /* bytes of decoded message so far */
};

void ms_dot_init(struct ms_dot *d);
/* Decodes from in[0..len). Appends decoded bytes to out unless out is NULL (or unless
 * the message already exceeded max: then bytes are counted in total but not stored).
 * Returns the number of input bytes consumed; *done_r is set to 1 when the end marker was
 * consumed (the bytes after it are left unconsumed: they are the next pipelined command). */
size_t ms_dot_decode(struct ms_dot *d, const char *in, size_t len, struct ms_buf *out, size_t max,
                     int *done_r);
/* Decoder details: max is a storage limit, not a sentinel: 0 stores nothing, SIZE_MAX stores
 * everything. The caller compares total with its limit (SMTP answers 552 when total > max).
 * After the end marker every call consumes nothing and sets *done_r to 1; ms_dot_init starts a
 * new message. A line starting with "." but not ".\r\n" loses its dot, even ".\n" (see
 * dot.c); a bare LF never starts a line. */

/* Appends the byte-stuffed form of msg to out: a "." is added before every line that starts
 * with "."; a final CRLF is added if msg does not end with one, then ".\r\n". */
void ms_dot_encode(const char *msg, size_t len, struct ms_buf *out);

#endif
