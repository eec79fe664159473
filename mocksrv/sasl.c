/*
 * sasl.c - server side of the SASL mechanisms PLAIN, LOGIN, CRAM-MD5, XOAUTH2 and OAUTHBEARER,
 * and strict base64 (see sasl.h).
 *
 * What it is: a pure codec. Each client line is base64-decoded, parsed by the mechanism, and
 * either answered with the next challenge (MS_SASL_CONTINUE), completed (MS_SASL_DONE) or
 * rejected as malformed (MS_SASL_BAD). ms_sasl_check then compares the credentials with the
 * password the caller looked up.
 *
 * What it is not: no sockets, no framing ("334 " / "+ " belong to the protocol engine), no "*"
 * cancel (the engine sees it before base64), no user database, no real OAuth: a bearer token is
 * valid when it equals the user's password.
 *
 * Invariants:
 * - Bad input never aborts: every length is checked, a decoded response is bounded by
 *   SASL_MAX_RESPONSE (16 KiB) and larger ones are MS_SASL_BAD.
 * - Once MS_SASL_DONE or MS_SASL_BAD has been returned, every further step returns MS_SASL_BAD.
 * - Identities and secrets are NUL-free C strings: a NUL inside a field is MS_SASL_BAD (PLAIN
 *   uses exactly two NULs as separators, RFC 4616 section 2).
 * - An empty authentication identity is MS_SASL_BAD for every mechanism: it cannot name a user.
 * - Every buffer that held a secret (decoded responses, passwords, tokens, digests) is wiped with
 *   OPENSSL_cleanse before it is freed.
 * - The CRAM-MD5 challenge depends only on challenge_seed and hostname, never on the clock, so
 *   test transcripts are reproducible.
 *
 * OAUTHBEARER without "a=" in the GS2 header: RFC 7628 section 3.1 makes the authzid optional
 * because a real server learns the user from the token. This mock has no token service (the
 * token is the user's password), so it cannot find the user and answers MS_SASL_BAD.
 */
#include "sasl.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "scenario.h"

/* Largest decoded client response accepted, and the base64 text that can carry it. */
#define SASL_MAX_RESPONSE 16384
#define SASL_MAX_ENCODED (4 * ((SASL_MAX_RESPONSE + 2) / 3))

/* base64("Username:") and base64("Password:"): the de-facto LOGIN challenges. */
#define SASL_LOGIN_USER_B64 "VXNlcm5hbWU6"
#define SASL_LOGIN_PASS_B64 "UGFzc3dvcmQ6"

#define SASL_CRAM_DIGEST_HEX 32 /* HMAC-MD5 is 16 bytes: 32 lowercase hex digits */

/* The JSON error challenges sent before the final failure reply. */
#define SASL_XOAUTH2_ERROR                                                                         \
    "{\"status\":\"401\",\"schemes\":\"bearer\",\"scope\":\"https://mail.google.com/\"}"
#define SASL_OAUTHBEARER_ERROR                                                                     \
    "{\"status\":\"invalid_token\",\"schemes\":\"bearer\",\"scope\":\"https://mail.google.com/\"}"

enum sasl_phase {
    SASL_START,     /* nothing fed yet: the next input may be an initial response */
    SASL_WANT_RESP, /* an empty challenge (or the CRAM-MD5 challenge) was sent */
    SASL_WANT_USER, /* LOGIN: "Username:" was sent */
    SASL_WANT_PASS, /* LOGIN: "Password:" was sent */
    SASL_FINISHED,  /* MS_SASL_DONE was returned */
    SASL_FAILED,    /* MS_SASL_BAD was returned */
};

struct ms_sasl {
    /* Fixed at create. */
    unsigned mech;
    char *hostname;
    uint64_t seed;

    /* Exchange progress. */
    enum sasl_phase phase;
    char *challenge; /* the last base64 challenge handed out (owned) */
    char *cram;      /* CRAM-MD5: the raw challenge text "<n.t@host>" */
    char *failure;   /* XOAUTH2/OAUTHBEARER: the base64 JSON error, built on demand */

    /* Results: secret is the password, the bearer token, or the client's CRAM-MD5 digest. */
    char *user;
    char *authzid;
    char *secret;
};

unsigned
ms_sasl_mech_from_name(const char *name)
{
    static const unsigned mechs[] = {
        MS_AUTH_PLAIN, MS_AUTH_LOGIN, MS_AUTH_CRAM_MD5, MS_AUTH_XOAUTH2, MS_AUTH_OAUTHBEARER,
    };
    if (!name)
        return 0;
    for (size_t i = 0; i < MS_ARRAY_LEN(mechs); i++)
        if (ms_strcaseeq(name, ms_sasl_mech_name(mechs[i])))
            return mechs[i];
    return 0;
}

const char *
ms_sasl_mech_name(unsigned mech)
{
    switch (mech) {
    case MS_AUTH_PLAIN:
        return "PLAIN";
    case MS_AUTH_LOGIN:
        return "LOGIN";
    case MS_AUTH_CRAM_MD5:
        return "CRAM-MD5";
    case MS_AUTH_XOAUTH2:
        return "XOAUTH2";
    case MS_AUTH_OAUTHBEARER:
        return "OAUTHBEARER";
    }
    return NULL;
}

/* Frees a string that may hold a secret, wiping it first, and clears the pointer. */
static void
sasl_wipe(char **s)
{
    if (*s) {
        OPENSSL_cleanse(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

/* Replaces the challenge handed out by the next MS_SASL_CONTINUE. */
static void
sasl_set_challenge(struct ms_sasl *sasl, const char *b64)
{
    free(sasl->challenge);
    sasl->challenge = ms_strdup(b64);
}

static char *
sasl_encode_str(const char *s)
{
    size_t n = strlen(s);
    char *out = ms_malloc(4 * ((n + 2) / 3) + 1);
    ms_base64_encode((const unsigned char *)s, n, out);
    return out;
}

struct ms_sasl *
ms_sasl_create(unsigned mech, const char *hostname, uint64_t challenge_seed)
{
    ms_assert(ms_sasl_mech_name(mech) != NULL);
    struct ms_sasl *sasl = ms_calloc(1, sizeof *sasl);
    sasl->mech = mech;
    sasl->hostname = ms_strdup(hostname && *hostname ? hostname : "localhost");
    sasl->seed = challenge_seed;
    sasl->phase = SASL_START;
    if (mech == MS_AUTH_CRAM_MD5) {
        /* RFC 2195 section 2: "<arbitrary-string.timestamp@hostname>", as RFC 1939 APOP. The
         * first number plays the process id, the second the clock: both drawn from the seed,
         * so nearby seeds give unrelated numbers. */
        uint64_t x = challenge_seed;
        uint64_t pid = ms_splitmix64_next(&x) % 100000;
        uint64_t stamp = 600000000 + ms_splitmix64_next(&x) % 1400000000;
        sasl->cram = ms_asprintf("<%" PRIu64 ".%" PRIu64 "@%s>", pid, stamp, sasl->hostname);
    }
    return sasl;
}

int
ms_sasl_set_cram_challenge(struct ms_sasl *sasl, const char *challenge)
{
    if (sasl->mech != MS_AUTH_CRAM_MD5 || sasl->phase != SASL_START)
        return -1;
    free(sasl->cram);
    sasl->cram = ms_strdup(challenge);
    return 0;
}

void
ms_sasl_destroy(struct ms_sasl **sasl_p)
{
    struct ms_sasl *sasl = *sasl_p;
    if (!sasl)
        return;
    sasl_wipe(&sasl->secret);
    sasl_wipe(&sasl->user);
    sasl_wipe(&sasl->authzid);
    free(sasl->challenge);
    free(sasl->cram);
    free(sasl->failure);
    free(sasl->hostname);
    free(sasl);
    *sasl_p = NULL;
}

/*
 * Decodes a client line into a fresh buffer (NUL-terminated, wiped by the caller with
 * sasl_free_decoded). Returns the length, or -1 for bad base64 or a response over the limit.
 */
static ssize_t
sasl_decode(const char *client, size_t len, unsigned char **out_r)
{
    *out_r = NULL;
    if (len > SASL_MAX_ENCODED)
        return -1;
    unsigned char *out = ms_malloc(len / 4 * 3 + 3);
    ssize_t n = ms_base64_decode(client, len, out);
    if (n < 0 || n > SASL_MAX_RESPONSE) {
        OPENSSL_cleanse(out, len / 4 * 3 + 3);
        free(out);
        return -1;
    }
    out[n] = '\0';
    *out_r = out;
    return n;
}

static void
sasl_free_decoded(unsigned char *buf, size_t n)
{
    if (buf) {
        OPENSSL_cleanse(buf, n + 1);
        free(buf);
    }
}

/* Duplicates p[0..n) as a C string when it holds no NUL; NULL otherwise. */
static char *
sasl_field(const unsigned char *p, size_t n)
{
    if (memchr(p, '\0', n))
        return NULL;
    return ms_strndup((const char *)p, n);
}

/*
 * PLAIN, RFC 4616 section 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd, where authcid
 * and passwd are 1*SAFE (non-empty, NUL-free). Exactly two NULs, then.
 */
static enum ms_sasl_result
sasl_plain(struct ms_sasl *sasl, const unsigned char *msg, size_t n)
{
    const unsigned char *nul1 = memchr(msg, '\0', n);
    if (!nul1)
        return MS_SASL_BAD;
    const unsigned char *authcid = nul1 + 1;
    const unsigned char *nul2 = memchr(authcid, '\0', n - (size_t)(authcid - msg));
    if (!nul2)
        return MS_SASL_BAD;
    const unsigned char *passwd = nul2 + 1;
    size_t authzid_len = (size_t)(nul1 - msg);
    size_t authcid_len = (size_t)(nul2 - authcid);
    size_t passwd_len = n - (size_t)(passwd - msg);
    if (memchr(passwd, '\0', passwd_len) || authcid_len == 0 || passwd_len == 0)
        return MS_SASL_BAD;
    sasl->authzid = authzid_len ? ms_strndup((const char *)msg, authzid_len) : NULL;
    sasl->user = ms_strndup((const char *)authcid, authcid_len);
    sasl->secret = ms_strndup((const char *)passwd, passwd_len);
    return MS_SASL_DONE;
}

/*
 * CRAM-MD5, RFC 2195 section 2: the response is the user name, a space, and the digest as 32
 * lowercase hex digits. The user name may itself contain spaces, so split at the last one.
 */
static enum ms_sasl_result
sasl_cram(struct ms_sasl *sasl, const unsigned char *msg, size_t n)
{
    if (n < SASL_CRAM_DIGEST_HEX + 2 || memchr(msg, '\0', n))
        return MS_SASL_BAD;
    size_t user_len = n - SASL_CRAM_DIGEST_HEX - 1;
    if (msg[user_len] != ' ')
        return MS_SASL_BAD;
    const unsigned char *hex = msg + user_len + 1;
    for (size_t i = 0; i < SASL_CRAM_DIGEST_HEX; i++)
        if (!isxdigit(hex[i]))
            return MS_SASL_BAD;
    sasl->user = ms_strndup((const char *)msg, user_len);
    sasl->secret = ms_strndup((const char *)hex, SASL_CRAM_DIGEST_HEX);
    /* The RFC asks for lowercase; accept uppercase from sloppy clients, compare lowercase. */
    for (char *p = sasl->secret; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return MS_SASL_DONE;
}

/*
 * Takes the token out of an RFC 6750 "Bearer <token>" credential (scheme case-insensitive,
 * RFC 7235 section 2.1). Returns a fresh string or NULL when malformed.
 */
static char *
sasl_bearer(const char *v, size_t n)
{
    if (n < 7 || !ms_strncaseeq(v, "Bearer ", 7))
        return NULL;
    size_t i = 7;
    while (i < n && v[i] == ' ')
        i++;
    if (i == n)
        return NULL;
    return ms_strndup(v + i, n - i);
}

/*
 * The \x01-separated key=value list shared by XOAUTH2 and OAUTHBEARER (RFC 7628 section 3.1:
 * kvpair = key "=" value kvsep, terminated by one more kvsep). p[0..n) starts at the first
 * key; the whole list must end with "\x01\x01". Fills *user_r (XOAUTH2's "user") and *token_r
 * from "auth"; a repeated key is malformed. Returns 0, or -1 when malformed.
 */
static int
sasl_kvpairs(const char *p, size_t n, char **user_r, char **token_r)
{
    size_t i = 0;
    for (;;) {
        if (i >= n)
            return -1; /* the terminating empty pair is missing */
        const char *end = memchr(p + i, '\x01', n - i);
        if (!end)
            return -1;
        size_t pair_len = (size_t)(end - (p + i));
        if (pair_len == 0)
            return i + 1 == n ? 0 : -1; /* "\x01\x01" ends the list: nothing may follow */
        const char *eq = memchr(p + i, '=', pair_len);
        if (!eq || eq == p + i)
            return -1;
        size_t key_len = (size_t)(eq - (p + i));
        const char *v = eq + 1;
        size_t v_len = pair_len - key_len - 1;
        if (user_r && key_len == 4 && memcmp(p + i, "user", 4) == 0) {
            if (*user_r)
                return -1;
            *user_r = ms_strndup(v, v_len);
        } else if (key_len == 4 && memcmp(p + i, "auth", 4) == 0) {
            if (*token_r)
                return -1;
            *token_r = sasl_bearer(v, v_len);
            if (!*token_r)
                return -1;
        }
        /* Other keys (host, port, ...) are informational. */
        i += pair_len + 1;
    }
}

/* XOAUTH2: "user=" user "\x01auth=Bearer " token "\x01\x01" (Google's XOAUTH2 protocol). */
static enum ms_sasl_result
sasl_xoauth2(struct ms_sasl *sasl, const unsigned char *msg, size_t n)
{
    char *user = NULL, *token = NULL;
    if (memchr(msg, '\0', n) || sasl_kvpairs((const char *)msg, n, &user, &token) < 0 || !user ||
        !token || !*user) {
        sasl_wipe(&user);
        sasl_wipe(&token);
        return MS_SASL_BAD;
    }
    sasl->user = user;
    sasl->secret = token;
    return MS_SASL_DONE;
}

/*
 * Decodes an RFC 5801 section 4 saslname ("=2C" for ",", "=3D" for "="; any other "=" or a raw
 * "," is malformed). Returns a fresh string or NULL.
 */
static char *
sasl_saslname(const char *p, size_t n)
{
    struct ms_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '=') {
            if (i + 2 < n && p[i + 1] == '2' && (p[i + 2] == 'C' || p[i + 2] == 'c')) {
                ms_buf_putc(&b, ',');
            } else if (i + 2 < n && p[i + 1] == '3' && (p[i + 2] == 'D' || p[i + 2] == 'd')) {
                ms_buf_putc(&b, '=');
            } else {
                ms_buf_fini(&b);
                return NULL;
            }
            i += 2;
        } else if (p[i] == ',') {
            ms_buf_fini(&b);
            return NULL;
        } else {
            ms_buf_putc(&b, p[i]);
        }
    }
    return ms_buf_steal(&b, NULL);
}

/*
 * OAUTHBEARER, RFC 7628 section 3.1:
 *   client-resp = (gs2-header kvsep *kvpair kvsep) / kvsep
 *   gs2-header  = gs2-cbind-flag "," [ "a=" saslname ] ","       (RFC 5801 section 4)
 * Channel binding is not offered, so the flag is "n" or "y"; "p=" is malformed. A lone kvsep
 * is the client's answer to an error challenge (section 3.2.3), not credentials: malformed
 * here, the engine consumes it itself.
 */
static enum ms_sasl_result
sasl_oauthbearer(struct ms_sasl *sasl, const unsigned char *umsg, size_t n)
{
    const char *msg = (const char *)umsg;
    if (memchr(msg, '\0', n) || n < 3 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',')
        return MS_SASL_BAD;
    const char *authz = msg + 2;
    const char *comma = memchr(authz, ',', n - 2);
    if (!comma)
        return MS_SASL_BAD;
    size_t authz_len = (size_t)(comma - authz);
    if (authz_len == 0)
        return MS_SASL_BAD; /* no "a=": see the file comment */
    if (authz_len < 3 || authz[0] != 'a' || authz[1] != '=')
        return MS_SASL_BAD;
    char *user = sasl_saslname(authz + 2, authz_len - 2);
    if (!user || !*user) {
        free(user);
        return MS_SASL_BAD;
    }
    size_t rest = n - (size_t)(comma + 1 - msg);
    const char *kv = comma + 1;
    char *token = NULL;
    if (rest < 2 || kv[0] != '\x01' || sasl_kvpairs(kv + 1, rest - 1, NULL, &token) < 0 || !token) {
        free(user);
        sasl_wipe(&token);
        return MS_SASL_BAD;
    }
    sasl->user = user;
    sasl->secret = token;
    return MS_SASL_DONE;
}

/* Parses one complete credentials message for the single-step mechanisms. */
static enum ms_sasl_result
sasl_parse(struct ms_sasl *sasl, const unsigned char *msg, size_t n)
{
    switch (sasl->mech) {
    case MS_AUTH_PLAIN:
        return sasl_plain(sasl, msg, n);
    case MS_AUTH_CRAM_MD5:
        return sasl_cram(sasl, msg, n);
    case MS_AUTH_XOAUTH2:
        return sasl_xoauth2(sasl, msg, n);
    case MS_AUTH_OAUTHBEARER:
        return sasl_oauthbearer(sasl, msg, n);
    }
    return MS_SASL_BAD;
}

/* One step of the exchange, on the decoded response (msg is NULL when there is none). */
static enum ms_sasl_result
sasl_advance(struct ms_sasl *sasl, const unsigned char *msg, size_t n)
{
    switch (sasl->phase) {
    case SASL_START:
        if (sasl->mech == MS_AUTH_CRAM_MD5) {
            /* RFC 2195 is server-first: an initial response is a protocol error. */
            if (msg)
                return MS_SASL_BAD;
            char *b64 = sasl_encode_str(sasl->cram);
            sasl_set_challenge(sasl, b64);
            free(b64);
            sasl->phase = SASL_WANT_RESP;
            return MS_SASL_CONTINUE;
        }
        if (sasl->mech == MS_AUTH_LOGIN) {
            if (!msg) {
                sasl_set_challenge(sasl, SASL_LOGIN_USER_B64);
                sasl->phase = SASL_WANT_USER;
                return MS_SASL_CONTINUE;
            }
            sasl->phase = SASL_WANT_USER;
            return sasl_advance(sasl, msg, n); /* the initial response is the user name */
        }
        if (!msg) {
            /* Client-first mechanism without an initial response: RFC 4954 section 4 sends an
             * empty challenge ("334 ") and the credentials come on the next line. */
            sasl_set_challenge(sasl, "");
            sasl->phase = SASL_WANT_RESP;
            return MS_SASL_CONTINUE;
        }
        return sasl_parse(sasl, msg, n);
    case SASL_WANT_RESP:
        return msg ? sasl_parse(sasl, msg, n) : MS_SASL_BAD;
    case SASL_WANT_USER:
        if (!msg || n == 0 || !(sasl->user = sasl_field(msg, n)))
            return MS_SASL_BAD;
        sasl_set_challenge(sasl, SASL_LOGIN_PASS_B64);
        sasl->phase = SASL_WANT_PASS;
        return MS_SASL_CONTINUE;
    case SASL_WANT_PASS:
        /* An empty password is well-formed; it simply will not match a real one. */
        if (!msg || !(sasl->secret = sasl_field(msg, n)))
            return MS_SASL_BAD;
        return MS_SASL_DONE;
    case SASL_FINISHED:
    case SASL_FAILED:
        break;
    }
    return MS_SASL_BAD;
}

enum ms_sasl_result
ms_sasl_step(struct ms_sasl *sasl, const char *client, size_t len, const char **challenge_r)
{
    if (challenge_r)
        *challenge_r = NULL;
    if (sasl->phase == SASL_FINISHED || sasl->phase == SASL_FAILED) {
        sasl->phase = SASL_FAILED;
        return MS_SASL_BAD;
    }
    unsigned char *msg = NULL;
    ssize_t n = 0;
    if (client) {
        /* RFC 4954 section 4: "=" as the initial response stands for a zero-length one. Later
         * responses are plain base64, where "=" alone is invalid. */
        if (sasl->phase == SASL_START && len == 1 && client[0] == '=')
            len = 0;
        n = sasl_decode(client, len, &msg);
        if (n < 0) {
            sasl->phase = SASL_FAILED;
            return MS_SASL_BAD;
        }
    }
    enum ms_sasl_result r = sasl_advance(sasl, msg, (size_t)n);
    sasl_free_decoded(msg, (size_t)n);
    switch (r) {
    case MS_SASL_CONTINUE:
        if (challenge_r)
            *challenge_r = sasl->challenge;
        break;
    case MS_SASL_DONE:
        sasl->phase = SASL_FINISHED;
        break;
    case MS_SASL_BAD:
        /* Half-parsed fields of a rejected exchange are meaningless: drop them. */
        sasl_wipe(&sasl->user);
        sasl_wipe(&sasl->authzid);
        sasl_wipe(&sasl->secret);
        sasl->phase = SASL_FAILED;
        break;
    }
    return r;
}

const char *
ms_sasl_user(const struct ms_sasl *sasl)
{
    return sasl->phase == SASL_FINISHED ? sasl->user : NULL;
}

const char *
ms_sasl_authzid(const struct ms_sasl *sasl)
{
    return sasl->phase == SASL_FINISHED ? sasl->authzid : NULL;
}

/* Constant-time equality of two C strings; only the lengths may leak through timing. */
static int
sasl_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return 0;
    return CRYPTO_memcmp(a, b, la) == 0;
}

/* RFC 2195 section 2: digest = lowercase hex of HMAC-MD5(key = password, text = challenge). */
static int
sasl_cram_check(const struct ms_sasl *sasl, const char *password)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    if (!EVP_Q_mac(NULL, "HMAC", NULL, "MD5", NULL, password, strlen(password),
                   (const unsigned char *)sasl->cram, strlen(sasl->cram), mac, sizeof mac,
                   &mac_len) ||
        mac_len * 2 != SASL_CRAM_DIGEST_HEX) {
        /* MD5 unavailable (a FIPS-only provider): nobody can log in with CRAM-MD5. */
        OPENSSL_cleanse(mac, sizeof mac);
        return 0;
    }
    static const char hexdigits[] = "0123456789abcdef";
    char hex[SASL_CRAM_DIGEST_HEX + 1];
    for (size_t i = 0; i < mac_len; i++) {
        hex[2 * i] = hexdigits[mac[i] >> 4];
        hex[2 * i + 1] = hexdigits[mac[i] & 0xf];
    }
    hex[SASL_CRAM_DIGEST_HEX] = '\0';
    int ok = CRYPTO_memcmp(hex, sasl->secret, SASL_CRAM_DIGEST_HEX) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    OPENSSL_cleanse(hex, sizeof hex);
    return ok;
}

int
ms_sasl_check(const struct ms_sasl *sasl, const char *password)
{
    if (sasl->phase != SASL_FINISHED || !sasl->secret || !password)
        return 0;
    if (sasl->mech == MS_AUTH_CRAM_MD5)
        return sasl_cram_check(sasl, password);
    return sasl_equal(sasl->secret, password);
}

const char *
ms_sasl_failure_challenge(struct ms_sasl *sasl)
{
    /* RFC 7628 section 3.2.2 (and Google's XOAUTH2 protocol): a failure is first reported as
     * a challenge carrying a JSON error; the client's reply to it is not credentials. */
    const char *json;
    if (sasl->mech == MS_AUTH_XOAUTH2)
        json = SASL_XOAUTH2_ERROR;
    else if (sasl->mech == MS_AUTH_OAUTHBEARER)
        json = SASL_OAUTHBEARER_ERROR;
    else
        return NULL;
    if (!sasl->failure)
        sasl->failure = sasl_encode_str(json);
    return sasl->failure;
}

/* RFC 4648 section 4 alphabet value of c, or -1. */
static int
sasl_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

ssize_t
ms_base64_decode(const char *in, size_t len, unsigned char *out)
{
    /* Strict RFC 4648 section 4: whole quanta only, padding only in the last one, no characters
     * outside the alphabet (section 3.3), and canonical pad bits (section 3.5). */
    if (len % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        const unsigned char *q = (const unsigned char *)in + i;
        int last = i + 4 == len;
        int pad = 0;
        if (last && q[3] == '=')
            pad = q[2] == '=' ? 2 : 1;
        int v[4] = {0, 0, 0, 0};
        for (int k = 0; k < 4 - pad; k++) {
            v[k] = sasl_b64_value(q[k]);
            if (v[k] < 0)
                return -1;
        }
        uint32_t bits =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        if ((pad == 2 && (bits & 0xffff)) || (pad == 1 && (bits & 0xff)))
            return -1; /* non-zero pad bits: not the canonical encoding */
        out[o++] = (unsigned char)(bits >> 16);
        if (pad < 2)
            out[o++] = (unsigned char)(bits >> 8);
        if (pad < 1)
            out[o++] = (unsigned char)bits;
    }
    return (ssize_t)o;
}

size_t
ms_base64_encode(const unsigned char *in, size_t len, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        size_t rest = len - i;
        uint32_t bits = (uint32_t)in[i] << 16;
        if (rest > 1)
            bits |= (uint32_t)in[i + 1] << 8;
        if (rest > 2)
            bits |= in[i + 2];
        out[o++] = alphabet[bits >> 18 & 63];
        out[o++] = alphabet[bits >> 12 & 63];
        out[o++] = rest > 1 ? alphabet[bits >> 6 & 63] : '=';
        out[o++] = rest > 2 ? alphabet[bits & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

int
ms_sasl_apop_check(const char *timestamp, const char *password, const char *digest)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_MD *md5 = EVP_MD_fetch(NULL, "MD5", NULL);
    int ok = ctx && md5 && EVP_DigestInit_ex(ctx, md5, NULL) &&
             EVP_DigestUpdate(ctx, timestamp, strlen(timestamp)) &&
             EVP_DigestUpdate(ctx, password, strlen(password)) &&
             EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md5);
    if (!ok || mdlen != 16 || strlen(digest) != 32)
        return 0;
    char hex[33];
    for (unsigned i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    char lower[33];
    for (int i = 0; i < 32; i++)
        lower[i] = (char)tolower((unsigned char)digest[i]);
    lower[32] = '\0';
    int same = CRYPTO_memcmp(hex, lower, 32) == 0;
    OPENSSL_cleanse(md, sizeof md);
    return same;
}
