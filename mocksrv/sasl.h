/*
 * sasl.h - server side of the SASL mechanisms PLAIN (RFC 4616), LOGIN, CRAM-MD5 (RFC 2195),
 * XOAUTH2 (Google) and OAUTHBEARER (RFC 7628), independent of any protocol.
 *
 * A pure codec: base64 lines in, base64 challenges out, credentials checked against a password
 * given by the caller. The protocol engine frames challenges ("334 " for SMTP, "+ " for POP3 and
 * IMAP), handles the client's "*" cancel itself, and looks the user up. "=" as an initial response
 * means an empty one (RFC 4954). Secrets are wiped with OPENSSL_cleanse when the state is
 * destroyed.
 */
#ifndef MS_SASL_H
#define MS_SASL_H

#include <stddef.h>

#include "base.h"

enum ms_sasl_result {
    MS_SASL_CONTINUE, /* send *challenge_r (base64, may be "") and feed the next client line */
    MS_SASL_DONE,     /* credentials complete: check them with ms_sasl_check */
    MS_SASL_BAD,      /* malformed exchange (bad base64, missing fields): protocol's syntax error */
};

struct ms_sasl;

/* Mechanism bit (MS_AUTH_* of scenario.h) from its name (case-insensitive), or 0. */
unsigned ms_sasl_mech_from_name(const char *name);
const char *ms_sasl_mech_name(unsigned mech);

/* Starts an exchange. challenge_seed makes the CRAM-MD5 challenge
 * "<seed.timestamp@hostname>" reproducible. */
struct ms_sasl *ms_sasl_create(unsigned mech, const char *hostname, uint64_t challenge_seed);
void ms_sasl_destroy(struct ms_sasl **sasl);

/* For tests (RFC 2195's example): replaces the raw CRAM-MD5 challenge text, before it is sent.
 * Call right after ms_sasl_create. Returns 0, or -1 if the mechanism is not CRAM-MD5 or the
 * exchange has started. */
int ms_sasl_set_cram_challenge(struct ms_sasl *sasl, const char *challenge);

/* Feeds the client's response (base64 text without CRLF; NULL when there is no initial
 * response to AUTH). On MS_SASL_CONTINUE, *challenge_r is a NUL-terminated base64 string owned by
 * the state, valid until the next call. */
enum ms_sasl_result ms_sasl_step(struct ms_sasl *sasl, const char *client, size_t len,
                                 const char **challenge_r);
/* Step details: a response decoding to more than 16 KiB, bad base64 (strict, see below), an
 * initial response to CRAM-MD5, an empty identity, or OAUTHBEARER without "a=" in its GS2 header
 * (no token service here to name the user) is MS_SASL_BAD. After DONE or BAD every further
 * step is MS_SASL_BAD. ms_sasl_user and ms_sasl_authzid return NULL unless the exchange is DONE;
 * authzid is only ever set by PLAIN. */

/* After MS_SASL_DONE: the authentication identity (user name as sent) and, if given, the
 * authorization identity. Borrowed from the state. */
const char *ms_sasl_user(const struct ms_sasl *sasl);
const char *ms_sasl_authzid(const struct ms_sasl *sasl);

/* After MS_SASL_DONE: 1 when the credentials match password (for XOAUTH2/OAUTHBEARER the token
 * must equal the password), 0 otherwise. Constant-time comparison. */
int ms_sasl_check(const struct ms_sasl *sasl, const char *password);

/* For XOAUTH2 and OAUTHBEARER a failed check is reported with a challenge carrying a JSON
 * error, which the client answers with a line (empty, or "AQ==") before the final failure reply.
 * Returns that base64 challenge, or NULL for the other mechanisms. Borrowed. */
const char *ms_sasl_failure_challenge(struct ms_sasl *sasl);

/* Base64 (RFC 4648, with padding). decode returns the decoded length, or -1 on bad input
 * (whitespace is not allowed). out needs (len / 4) * 3 + 3 bytes; encode's out needs
 * 4 * ((len + 2) / 3) + 1 bytes and is NUL-terminated. */
ssize_t ms_base64_decode(const char *in, size_t len, unsigned char *out);
size_t ms_base64_encode(const unsigned char *in, size_t len, char *out);

/* POP3 APOP (RFC 1939 section 7): 1 when digest (32 hex digits, any case) is
 * MD5(timestamp password), 0 otherwise. Constant-time comparison. */
int ms_sasl_apop_check(const char *timestamp, const char *password, const char *digest);

#endif
