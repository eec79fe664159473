/*
 * fuzz_sasl.c - libFuzzer target for the SASL server mechanisms and strict base64 (sasl.h).
 *
 * Input layout: byte 0 selects, the rest is split at LF into lines.
 *   bits 0-2  mechanism: PLAIN LOGIN CRAM-MD5 XOAUTH2 OAUTHBEARER (value modulo 5)
 *   bit 3     the first line is an initial response (else the exchange starts with NULL)
 *   bit 4     constructed mode: lines 0, 1, 2 are a user, a password and an authzid from which
 *             the harness builds a well-formed exchange itself; it must end in DONE and the
 *             credentials must check. Otherwise (raw mode) every line is fed as the client's
 *             base64 text, as an engine would.
 *   bit 5     CRAM-MD5 digest in uppercase hex (constructed mode)
 *
 * What must hold, after every step:
 *   - CONTINUE comes with a challenge that is canonical base64; DONE and BAD with none;
 *   - once DONE or BAD was returned, every further step is BAD;
 *   - ms_sasl_user is non-NULL and non-empty exactly when the last step was DONE; authzid is
 *     NULL unless the exchange is DONE, and only PLAIN ever sets it;
 *   - ms_sasl_check is 0 without DONE and for a NULL password; for PLAIN and LOGIN in raw mode it
 *     accepts exactly the password that was sent (decoded independently here);
 *   - ms_sasl_failure_challenge is non-NULL (canonical base64 of a JSON object) exactly for
 *     XOAUTH2 and OAUTHBEARER, and stable across calls;
 *   - base64: decode then encode gives the line back (the decoder is strict, so canonical),
 *     encode then decode gives the bytes back;
 *   - ms_sasl_mech_from_name on a line is 0 or a mechanism whose name matches it.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "base.h"
#include "sasl.h"
#include "scenario.h"

#define FUZZ_HOST "fuzz.test"
#define FUZZ_MAX_LINES 64

static const unsigned fuzz_mechs[] = {
    MS_AUTH_PLAIN, MS_AUTH_LOGIN, MS_AUTH_CRAM_MD5, MS_AUTH_XOAUTH2, MS_AUTH_OAUTHBEARER,
};

static void fuzz_fail(const char *fmt, ...) MS_PRINTF(1, 2) MS_NORETURN;

static void
fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_sasl: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

/* Decodes base64 text into a fresh buffer (NUL-terminated). Returns the length or -1. */
static ssize_t
fuzz_b64_decode(const char *in, size_t len, unsigned char **out_r)
{
    unsigned char *out = ms_malloc(len / 4 * 3 + 3 + 1);
    ssize_t n = ms_base64_decode(in, len, out);
    if (n < 0) {
        free(out);
        *out_r = NULL;
        return -1;
    }
    out[n] = '\0';
    *out_r = out;
    return n;
}

static char *
fuzz_b64_encode(const void *in, size_t len)
{
    char *out = ms_malloc(4 * ((len + 2) / 3) + 1);
    ms_base64_encode(in, len, out);
    return out;
}

/* The base64 round trips on one line of input. */
static void
fuzz_base64(const char *line, size_t len)
{
    unsigned char *dec;
    ssize_t n = fuzz_b64_decode(line, len, &dec);
    if (n >= 0) {
        char *again = fuzz_b64_encode(dec, (size_t)n);
        if (strlen(again) != len || memcmp(again, line, len) != 0)
            fuzz_fail("base64: \"%.*s\" decodes to %zd bytes that encode to \"%s\"", (int)len, line,
                      n, again);
        free(again);
        free(dec);
    }
    char *enc = fuzz_b64_encode(line, len);
    size_t el = strlen(enc);
    if (el != 4 * ((len + 2) / 3))
        fuzz_fail("base64: %zu bytes encode to %zu characters", len, el);
    n = fuzz_b64_decode(enc, el, &dec);
    if (n != (ssize_t)len || memcmp(dec, line, len) != 0)
        fuzz_fail("base64: encode then decode of %zu bytes gave %zd", len, n);
    free(dec);
    free(enc);
}

static void
fuzz_mech_name(const char *line, size_t len)
{
    char name[32];
    if (len >= sizeof name || memchr(line, '\0', len))
        return;
    memcpy(name, line, len);
    name[len] = '\0';
    unsigned m = ms_sasl_mech_from_name(name);
    if (m == 0)
        return;
    const char *canon = ms_sasl_mech_name(m);
    if (!canon || !ms_strcaseeq(canon, name))
        fuzz_fail("mech_from_name(\"%s\") = %u (%s)", name, m, canon ? canon : "NULL");
}

static void
fuzz_check_challenge(const char *ch)
{
    unsigned char *dec;
    size_t len = strlen(ch);
    ssize_t n = fuzz_b64_decode(ch, len, &dec);
    if (n < 0)
        fuzz_fail("challenge \"%s\" is not base64", ch);
    free(dec);
}

/* The invariants that hold after any step, given its result and whether an earlier step had
 * already ended the exchange. */
static void
fuzz_check_step(struct ms_sasl *sasl, unsigned mech, enum ms_sasl_result r, const char *ch,
                int ended_before)
{
    if (r != MS_SASL_CONTINUE && r != MS_SASL_DONE && r != MS_SASL_BAD)
        fuzz_fail("step returned %d", (int)r);
    if (ended_before && r != MS_SASL_BAD)
        fuzz_fail("step after the end returned %d, want BAD", (int)r);
    if (r == MS_SASL_CONTINUE) {
        if (!ch)
            fuzz_fail("CONTINUE without a challenge");
        fuzz_check_challenge(ch);
    } else if (ch) {
        fuzz_fail("result %d with a challenge \"%s\"", (int)r, ch);
    }
    const char *user = ms_sasl_user(sasl);
    const char *authzid = ms_sasl_authzid(sasl);
    if (r == MS_SASL_DONE && (!user || !*user))
        fuzz_fail("DONE without a user");
    if (r != MS_SASL_DONE && user)
        fuzz_fail("user \"%s\" without DONE (result %d)", user, (int)r);
    if (r != MS_SASL_DONE && authzid)
        fuzz_fail("authzid \"%s\" without DONE", authzid);
    if (authzid && mech != MS_AUTH_PLAIN)
        fuzz_fail("authzid \"%s\" set by %s", authzid, ms_sasl_mech_name(mech));
    if (ms_sasl_check(sasl, NULL) != 0)
        fuzz_fail("check with a NULL password succeeded");
    if (r != MS_SASL_DONE && ms_sasl_check(sasl, "secret") != 0)
        fuzz_fail("check succeeded without DONE");
}

/* Asserts that check accepts password and rejects a longer one (and, for a non-empty password,
 * the empty one). */
static void
fuzz_check_password(struct ms_sasl *sasl, const char *password)
{
    if (ms_sasl_check(sasl, password) != 1)
        fuzz_fail("check rejects the password \"%s\" that was sent", password);
    char *longer = ms_asprintf("%sx", password);
    if (ms_sasl_check(sasl, longer) != 0)
        fuzz_fail("check accepts \"%s\" for \"%s\"", longer, password);
    free(longer);
    if (*password && ms_sasl_check(sasl, "") != 0)
        fuzz_fail("check accepts \"\" for \"%s\"", password);
}

static void
fuzz_failure_challenge(struct ms_sasl *sasl, unsigned mech)
{
    const char *fc = ms_sasl_failure_challenge(sasl);
    int want = mech == MS_AUTH_XOAUTH2 || mech == MS_AUTH_OAUTHBEARER;
    if (!fc != !want)
        fuzz_fail("failure challenge %s for %s", fc ? fc : "NULL", ms_sasl_mech_name(mech));
    if (!fc)
        return;
    unsigned char *dec;
    ssize_t n = fuzz_b64_decode(fc, strlen(fc), &dec);
    if (n < 2 || dec[0] != '{' || dec[n - 1] != '}')
        fuzz_fail("failure challenge \"%s\" is not base64 JSON", fc);
    free(dec);
    if (ms_sasl_failure_challenge(sasl) != fc)
        fuzz_fail("failure challenge changed between calls");
}

/* ---- raw mode ---- */

struct fuzz_line {
    const char *p;
    size_t len;
};

/* Independent oracles for the mechanisms whose credentials are simple to decode. lines[0..n)
 * are the responses fed so far (the last one gave DONE). */
static void
fuzz_raw_oracle(struct ms_sasl *sasl, unsigned mech, const struct fuzz_line *fed, size_t n)
{
    unsigned char *a = NULL, *b = NULL;
    if (mech == MS_AUTH_PLAIN) {
        ssize_t len = fuzz_b64_decode(fed[n - 1].p, fed[n - 1].len, &a);
        if (len < 0)
            fuzz_fail("PLAIN DONE on bad base64");
        /* authzid NUL authcid NUL passwd */
        const unsigned char *nul1 = memchr(a, '\0', (size_t)len);
        const unsigned char *nul2 =
            nul1 ? memchr(nul1 + 1, '\0', (size_t)(a + len - nul1 - 1)) : NULL;
        if (!nul2)
            fuzz_fail("PLAIN DONE without two NULs");
        const char *authcid = (const char *)nul1 + 1;
        const char *passwd = (const char *)nul2 + 1;
        if (strcmp(ms_sasl_user(sasl), authcid) != 0)
            fuzz_fail("PLAIN user \"%s\", sent \"%s\"", ms_sasl_user(sasl), authcid);
        const char *authzid = ms_sasl_authzid(sasl);
        if (nul1 == a ? authzid != NULL : !authzid || strcmp(authzid, (const char *)a) != 0)
            fuzz_fail("PLAIN authzid \"%s\", sent \"%s\"", authzid ? authzid : "NULL", a);
        fuzz_check_password(sasl, passwd);
    } else if (mech == MS_AUTH_LOGIN && n >= 2) {
        if (fuzz_b64_decode(fed[n - 2].p, fed[n - 2].len, &a) < 0 ||
            fuzz_b64_decode(fed[n - 1].p, fed[n - 1].len, &b) < 0)
            fuzz_fail("LOGIN DONE on bad base64");
        if (strcmp(ms_sasl_user(sasl), (const char *)a) != 0)
            fuzz_fail("LOGIN user \"%s\", sent \"%s\"", ms_sasl_user(sasl), a);
        fuzz_check_password(sasl, (const char *)b);
    }
    free(a);
    free(b);
}

static void
fuzz_raw(unsigned mech, int initial, uint64_t seed, const struct fuzz_line *lines, size_t n)
{
    struct ms_sasl *sasl = ms_sasl_create(mech, FUZZ_HOST, seed);
    struct fuzz_line fed[FUZZ_MAX_LINES + 1];
    size_t n_fed = 0;
    int ended = 0;
    size_t next = 0;
    const char *ch = (const char *)"x"; /* must be overwritten by every step */
    enum ms_sasl_result r;
    if (initial && n > 0) {
        /* "=" stands for an empty initial response (RFC 4954 section 4). */
        fed[n_fed++] = lines[0];
        r = ms_sasl_step(sasl, lines[0].p, lines[0].len, &ch);
        if (mech == MS_AUTH_CRAM_MD5 && r != MS_SASL_BAD)
            fuzz_fail("CRAM-MD5 accepted an initial response");
        next = 1;
    } else {
        r = ms_sasl_step(sasl, NULL, 0, &ch);
        if (r != MS_SASL_CONTINUE)
            fuzz_fail("%s without an initial response gave %d, want CONTINUE",
                      ms_sasl_mech_name(mech), (int)r);
        if (mech == MS_AUTH_LOGIN && strcmp(ch, "VXNlcm5hbWU6") != 0)
            fuzz_fail("LOGIN first challenge \"%s\"", ch);
    }
    for (;;) {
        fuzz_check_step(sasl, mech, r, ch, ended);
        if (r == MS_SASL_DONE) {
            /* An initial "=" is an empty response, not base64: no oracle for it. */
            if (!(n_fed == 1 && initial && fed[0].len == 1 && fed[0].p[0] == '='))
                fuzz_raw_oracle(sasl, mech, fed, n_fed);
        }
        if (r != MS_SASL_CONTINUE)
            ended = 1;
        if (next >= n)
            break;
        fed[n_fed++] = lines[next];
        ch = (const char *)"x";
        r = ms_sasl_step(sasl, lines[next].p, lines[next].len, &ch);
        next++;
    }
    fuzz_failure_challenge(sasl, mech);
    ms_sasl_destroy(&sasl);
    if (sasl)
        fuzz_fail("ms_sasl_destroy did not clear the pointer");
}

/* ---- constructed mode ---- */

/* A copy of p[0..n) without the bytes in drop, or fallback when nothing is left. */
static char *
fuzz_field(const char *p, size_t n, const char *drop, size_t n_drop, const char *fallback)
{
    struct ms_buf b = {0};
    for (size_t i = 0; i < n; i++)
        if (!memchr(drop, p[i], n_drop))
            ms_buf_putc(&b, p[i]);
    if (b.len == 0)
        ms_buf_puts(&b, fallback);
    return ms_buf_steal(&b, NULL);
}

/* RFC 5801 saslname: "," as "=2C", "=" as "=3D". */
static char *
fuzz_saslname(const char *s)
{
    struct ms_buf b = {0};
    for (; *s; s++) {
        if (*s == ',')
            ms_buf_puts(&b, "=2C");
        else if (*s == '=')
            ms_buf_puts(&b, "=3D");
        else
            ms_buf_putc(&b, *s);
    }
    return ms_buf_steal(&b, NULL);
}

/* Feeds raw bytes base64-encoded and checks the step. */
static enum ms_sasl_result
fuzz_feed(struct ms_sasl *sasl, unsigned mech, const void *raw, size_t len, const char **ch_r)
{
    char *b64 = fuzz_b64_encode(raw, len);
    enum ms_sasl_result r = ms_sasl_step(sasl, b64, strlen(b64), ch_r);
    fuzz_check_step(sasl, mech, r, *ch_r, 0);
    free(b64);
    return r;
}

static void
fuzz_expect(enum ms_sasl_result got, enum ms_sasl_result want, const char *what)
{
    if (got != want)
        fuzz_fail("constructed %s: got %d, want %d", what, (int)got, (int)want);
}

static void
fuzz_constructed(unsigned mech, int initial, int upper, uint64_t seed,
                 const struct fuzz_line *lines, size_t n)
{
    static const char nul_soh[] = {'\0', '\x01'};
    struct fuzz_line none = {"", 0};
    const struct fuzz_line *lu = n > 0 ? &lines[0] : &none;
    const struct fuzz_line *lp = n > 1 ? &lines[1] : &none;
    const struct fuzz_line *lz = n > 2 ? &lines[2] : &none;
    int oauth = mech == MS_AUTH_XOAUTH2 || mech == MS_AUTH_OAUTHBEARER;
    /* XOAUTH2 separates pairs with \x01 (and so must the user); OAUTHBEARER's user sits in the
     * GS2 header, where \x01 is an ordinary byte. */
    char *user = fuzz_field(lu->p, lu->len, nul_soh, mech == MS_AUTH_XOAUTH2 ? 2 : 1, "u");
    /* PLAIN needs a non-empty password; a bearer token is non-empty and its leading blanks
     * belong to the "Bearer " scheme. */
    char *pass = fuzz_field(lp->p, lp->len, nul_soh, oauth ? 2 : 1,
                            mech == MS_AUTH_PLAIN || oauth ? "p" : "");
    if (oauth && pass[0] == ' ')
        pass[0] = 'p';
    char *authzid = fuzz_field(lz->p, lz->len, nul_soh, 1, "");

    struct ms_sasl *sasl = ms_sasl_create(mech, FUZZ_HOST, seed);
    const char *ch = NULL;
    enum ms_sasl_result r;
    struct ms_buf msg = {0};
    int client_first = mech != MS_AUTH_CRAM_MD5 && initial;
    if (!client_first) {
        r = ms_sasl_step(sasl, NULL, 0, &ch);
        fuzz_check_step(sasl, mech, r, ch, 0);
        fuzz_expect(r, MS_SASL_CONTINUE, "first step");
    }
    switch (mech) {
    case MS_AUTH_PLAIN:
        ms_buf_append(&msg, authzid, strlen(authzid) + 1);
        ms_buf_append(&msg, user, strlen(user) + 1);
        ms_buf_puts(&msg, pass);
        r = fuzz_feed(sasl, mech, msg.data, msg.len, &ch);
        break;
    case MS_AUTH_LOGIN:
        r = fuzz_feed(sasl, mech, user, strlen(user), &ch);
        fuzz_expect(r, MS_SASL_CONTINUE, "LOGIN user");
        if (strcmp(ch, "UGFzc3dvcmQ6") != 0)
            fuzz_fail("LOGIN password challenge \"%s\"", ch);
        r = fuzz_feed(sasl, mech, pass, strlen(pass), &ch);
        break;
    case MS_AUTH_CRAM_MD5: {
        unsigned char *text;
        ssize_t tl = fuzz_b64_decode(ch, strlen(ch), &text);
        if (tl < 3 || text[0] != '<' || text[tl - 1] != '>' || !strstr((char *)text, FUZZ_HOST))
            fuzz_fail("CRAM-MD5 challenge \"%s\" is not <...@" FUZZ_HOST ">", ch);
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t mac_len = 0;
        if (!EVP_Q_mac(NULL, "HMAC", NULL, "MD5", NULL, pass, strlen(pass), text, (size_t)tl, mac,
                       sizeof mac, &mac_len)) {
            free(text);
            goto out; /* no MD5 here (FIPS): nothing to compare */
        }
        ms_buf_printf(&msg, "%s ", user);
        for (size_t i = 0; i < mac_len; i++)
            ms_buf_printf(&msg, upper ? "%02X" : "%02x", mac[i]);
        free(text);
        r = fuzz_feed(sasl, mech, msg.data, msg.len, &ch);
        break;
    }
    case MS_AUTH_XOAUTH2:
        ms_buf_printf(&msg,
                      "user=%s\x01"
                      "auth=Bearer %s\x01\x01",
                      user, pass);
        r = fuzz_feed(sasl, mech, msg.data, msg.len, &ch);
        break;
    default: {
        char *name = fuzz_saslname(user);
        ms_buf_printf(&msg,
                      "n,a=%s,\x01"
                      "auth=Bearer %s\x01\x01",
                      name, pass);
        free(name);
        r = fuzz_feed(sasl, mech, msg.data, msg.len, &ch);
        break;
    }
    }
    fuzz_expect(r, MS_SASL_DONE, ms_sasl_mech_name(mech));
    if (strcmp(ms_sasl_user(sasl), user) != 0)
        fuzz_fail("%s: user \"%s\", sent \"%s\"", ms_sasl_mech_name(mech), ms_sasl_user(sasl),
                  user);
    const char *got_authzid = ms_sasl_authzid(sasl);
    const char *want_authzid = mech == MS_AUTH_PLAIN && *authzid ? authzid : NULL;
    if (!got_authzid != !want_authzid || (got_authzid && strcmp(got_authzid, want_authzid) != 0))
        fuzz_fail("authzid \"%s\", want \"%s\"", got_authzid ? got_authzid : "NULL",
                  want_authzid ? want_authzid : "NULL");
    fuzz_check_password(sasl, pass);
    /* After DONE, any further line is BAD. */
    r = ms_sasl_step(sasl, "", 0, &ch);
    fuzz_check_step(sasl, mech, r, ch, 1);
out:
    fuzz_failure_challenge(sasl, mech);
    ms_sasl_destroy(&sasl);
    ms_buf_fini(&msg);
    free(user);
    free(pass);
    free(authzid);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t sel = data[0];
    unsigned mech = fuzz_mechs[(sel & 7) % MS_ARRAY_LEN(fuzz_mechs)];
    int initial = (sel >> 3) & 1;
    int constructed = (sel >> 4) & 1;
    int upper = (sel >> 5) & 1;
    uint64_t seed = size > 1 ? data[1] * 0x9e3779b97f4a7c15ULL : 0;

    struct fuzz_line lines[FUZZ_MAX_LINES];
    size_t n = 0;
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    while (p <= end && n < FUZZ_MAX_LINES) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        const char *e = lf ? lf : end;
        lines[n].p = p;
        lines[n].len = (size_t)(e - p);
        n++;
        if (!lf)
            break;
        p = lf + 1;
    }
    for (size_t i = 0; i < n; i++) {
        fuzz_base64(lines[i].p, lines[i].len);
        fuzz_mech_name(lines[i].p, lines[i].len);
    }
    if (constructed)
        fuzz_constructed(mech, initial, upper, seed, lines, n);
    else
        fuzz_raw(mech, initial, seed, lines, n);
    return 0;
}
