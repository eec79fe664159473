/*
 * gen.h - synthetic mail for `generate: { count, size }` (SPEC 3): realistic RFC 5322 / MIME
 * messages of about a requested size, each a pure function of (seed, index, size).
 *
 * The shapes (plain text, multipart/alternative, attachments, nested multiparts, forwarded
 * message/rfc822) and how often each appears are described at the top of gen.c.
 */
#ifndef MS_GEN_H
#define MS_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

/* The smallest message the generator makes: a request below this is treated as this. */
#define MS_GEN_MIN_SIZE 640

/*
 * Appends one message to out (existing contents are kept). Its length is within 10% or 200
 * bytes, whichever is larger, of MS_MAX(size, MS_GEN_MIN_SIZE). The bytes depend only on
 * (seed, index, size): no global state, safe to call from any thread. Every line ends in CRLF
 * and is at most 78 bytes in headers and 998 in bodies; every byte is 7-bit (non-ASCII text is
 * RFC 2047 / quoted-printable / base64 encoded); no NUL. The Message-ID is unique per
 * (seed, index). *date_r (unless date_r is NULL) receives the Date header as seconds since the
 * epoch, a moment in 2023-2024, meant as the message's INTERNALDATE.
 */
void ms_gen_message(uint64_t seed, uint64_t index, size_t size, int64_t *date_r,
                    struct ms_buf *out);

#endif
