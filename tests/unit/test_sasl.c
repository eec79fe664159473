/*
 * test_sasl.c - unit tests of sasl.c: the five mechanisms driven step by step from tables
 * (published vectors from RFC 4616, RFC 4954, RFC 2195, RFC 7628 and Google's XOAUTH2 page,
 * then malformed variants), strict base64 against RFC 4648 section 10, the 16 KiB bound, and a
 * bounded random walk over ms_sasl_step from a fixed seed that must never crash.
 *
 * Not here: protocol framing ("334 ", "*" cancel), which the engine tests cover.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>

#include "base.h"
#include "sasl.h"
#include "scenario.h"

/* ---- helpers ---------------------------------------------------------------------------- */

/* Printable form of bytes for failure messages (static buffer per slot; tests only). */
static const char *
escape(const char *p, size_t n, int slot)
{
    static char bufs[2][512];
    char *b = bufs[slot & 1];
    size_t o = 0;
    if (!p)
        return "(null)";
    for (size_t i = 0; i < n && o + 5 < sizeof bufs[0]; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            b[o++] = (char)c;
        else
            o += (size_t)snprintf(b + o, sizeof bufs[0] - o, "\\x%02x", c);
    }
    b[o] = '\0';
    return b;
}

static char *
b64(const char *raw, size_t n)
{
    char *out = ms_malloc(4 * ((n + 2) / 3) + 1);
    ms_base64_encode((const unsigned char *)raw, n, out);
    return out;
}

/* Decodes a challenge to text (NUL-terminated), or returns NULL for invalid base64. */
static char *
unb64(const char *s, size_t *len_r)
{
    size_t n = strlen(s);
    char *out = ms_malloc(n / 4 * 3 + 3);
    ssize_t r = ms_base64_decode(s, n, (unsigned char *)out);
    if (r < 0) {
        free(out);
        return NULL;
    }
    out[r] = '\0';
    if (len_r)
        *len_r = (size_t)r;
    return out;
}

static uint64_t
rng_next(uint64_t *s)
{
    /* xorshift64*: fixed seeds make every "random" test reproducible. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dULL;
}

/* ---- mechanism names -------------------------------------------------------------------- */

START_TEST(test_mech_names)
{
    static const struct {
        const char *name;
        unsigned mech;
    } cases[] = {
        {"PLAIN", MS_AUTH_PLAIN},
        {"plain", MS_AUTH_PLAIN},
        {"LOGIN", MS_AUTH_LOGIN},
        {"Login", MS_AUTH_LOGIN},
        {"CRAM-MD5", MS_AUTH_CRAM_MD5},
        {"cram-md5", MS_AUTH_CRAM_MD5},
        {"XOAUTH2", MS_AUTH_XOAUTH2},
        {"xoauth2", MS_AUTH_XOAUTH2},
        {"OAUTHBEARER", MS_AUTH_OAUTHBEARER},
        {"oauthBearer", MS_AUTH_OAUTHBEARER},
        {"CRAM-MD", 0},
        {"PLAINX", 0},
        {"", 0},
        {"GSSAPI", 0},
        {"SCRAM-SHA-1", 0},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cases); i++) {
        unsigned got = ms_sasl_mech_from_name(cases[i].name);
        ck_assert_msg(got == cases[i].mech, "mech_from_name(\"%s\"): got %#x, want %#x",
                      cases[i].name, got, cases[i].mech);
    }
    ck_assert_msg(ms_sasl_mech_from_name(NULL) == 0, "mech_from_name(NULL): want 0");
    static const struct {
        unsigned mech;
        const char *name;
    } names[] = {
        {MS_AUTH_PLAIN, "PLAIN"},
        {MS_AUTH_LOGIN, "LOGIN"},
        {MS_AUTH_CRAM_MD5, "CRAM-MD5"},
        {MS_AUTH_XOAUTH2, "XOAUTH2"},
        {MS_AUTH_OAUTHBEARER, "OAUTHBEARER"},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(names); i++) {
        const char *got = ms_sasl_mech_name(names[i].mech);
        ck_assert_msg(got && strcmp(got, names[i].name) == 0, "mech_name(%#x): got %s, want %s",
                      names[i].mech, got ? got : "(null)", names[i].name);
    }
    ck_assert_msg(ms_sasl_mech_name(0) == NULL, "mech_name(0): want NULL");
    ck_assert_msg(ms_sasl_mech_name(MS_AUTH_PLAIN | MS_AUTH_LOGIN) == NULL,
                  "mech_name(two bits): want NULL");
}
END_TEST

/* ---- base64 ----------------------------------------------------------------------------- */

START_TEST(test_base64_vectors)
{
    /* RFC 4648 section 10. */
    static const struct {
        const char *raw, *enc;
    } cases[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cases); i++) {
        char enc[64];
        size_t n = ms_base64_encode((const unsigned char *)cases[i].raw, strlen(cases[i].raw), enc);
        ck_assert_msg(n == strlen(cases[i].enc) && strcmp(enc, cases[i].enc) == 0,
                      "encode(\"%s\"): got \"%s\" (%zu), want \"%s\"", cases[i].raw, enc, n,
                      cases[i].enc);
        unsigned char dec[64];
        ssize_t d = ms_base64_decode(cases[i].enc, strlen(cases[i].enc), dec);
        ck_assert_msg(d == (ssize_t)strlen(cases[i].raw) &&
                          memcmp(dec, cases[i].raw, strlen(cases[i].raw)) == 0,
                      "decode(\"%s\"): got %zd bytes, want \"%s\"", cases[i].enc, d, cases[i].raw);
    }
}
END_TEST

START_TEST(test_base64_invalid)
{
    static const char *const bad[] = {
        "Zg",       /* not a whole quantum */
        "Zg=",      /* padding cut short */
        "Zm8==",    /* too much padding */
        "Zg==Zg==", /* padding before the end */
        "Zm=v",     /* data after padding */
        "Zg=a",     /* data after padding */
        "====",     /* padding only */
        "A===",     /* three pad characters */
        "=Zm9",     /* padding first */
        "Zm9 ",     /* whitespace */
        "Zm9v\r\n", /* line break */
        " Zm9v",    /* leading space, and not a quantum */
        "Zm9\t",    /* tab */
        "Zm9v!A==", /* outside the alphabet */
        "Zm9-",     /* base64url alphabet */
        "Zm9_",     /* base64url alphabet */
        "Zh==",     /* non-canonical: pad bits set (RFC 4648 section 3.5) */
        "Zm9=",     /* non-canonical: pad bits set */
        "\xc3\xa9\xc3\xa9",
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(bad); i++) {
        unsigned char out[64];
        ssize_t got = ms_base64_decode(bad[i], strlen(bad[i]), out);
        ck_assert_msg(got == -1, "decode(\"%s\"): got %zd, want -1",
                      escape(bad[i], strlen(bad[i]), 0), got);
    }
    /* An embedded NUL is a bad character too, not an end of string. */
    unsigned char out[8];
    ssize_t got = ms_base64_decode("Zm\0v", 4, out);
    ck_assert_msg(got == -1, "decode(\"Zm\\0v\"): got %zd, want -1", got);
}
END_TEST

START_TEST(test_base64_round_trip)
{
    uint64_t seed = 0x5a5a1234u;
    unsigned char raw[300];
    char enc[4 * ((300 + 2) / 3) + 1];
    for (int iter = 0; iter < 2000; iter++) {
        size_t n = (size_t)(rng_next(&seed) % sizeof raw);
        for (size_t i = 0; i < n; i++)
            raw[i] = (unsigned char)rng_next(&seed);
        size_t e = ms_base64_encode(raw, n, enc);
        ck_assert_msg(e == 4 * ((n + 2) / 3), "encoded length of %zu bytes: got %zu, want %zu", n,
                      e, 4 * ((n + 2) / 3));
        unsigned char big[sizeof raw + 3];
        ssize_t d = ms_base64_decode(enc, e, big);
        ck_assert_msg(d == (ssize_t)n && memcmp(big, raw, n) == 0,
                      "round trip of %zu bytes: got %zd bytes back", n, d);
    }
}
END_TEST

/* ---- mechanism exchanges, table-driven -------------------------------------------------- */

enum step_kind {
    IN_NONE, /* NULL: no initial response */
    IN_ENC,  /* the raw bytes, base64-encoded by the test */
    IN_LIT,  /* passed to ms_sasl_step as is */
};

struct step {
    enum step_kind kind;
    const char *data;
    size_t len;
    enum ms_sasl_result want;
    const char *want_challenge; /* decoded text, checked on MS_SASL_CONTINUE when not NULL */
};

/* The exchange table reads best one exchange per block, as written. */
/* clang-format off */
#define NONE(w, c) {IN_NONE, NULL, 0, w, c}
#define ENC(s, w, c) {IN_ENC, s, sizeof(s) - 1, w, c}
#define LIT(s, w, c) {IN_LIT, s, sizeof(s) - 1, w, c}

struct exchange {
    const char *name;
    unsigned mech;
    const char *cram_challenge; /* replaces the generated CRAM-MD5 challenge when set */
    struct step steps[5];
    size_t nsteps;
    /* Checked when the last step is MS_SASL_DONE. */
    const char *user, *authzid, *good, *bad;
};

static const struct exchange exchanges[] = {
    /* PLAIN, RFC 4616 section 4 and RFC 4954 section 4. */
    {"plain rfc4616 tim", MS_AUTH_PLAIN, NULL,
     {ENC("\0tim\0tanstaaftanstaaf", MS_SASL_DONE, NULL)}, 1,
     "tim", NULL, "tanstaaftanstaaf", "tanstaaf"},
    {"plain rfc4616 authzid", MS_AUTH_PLAIN, NULL,
     {ENC("Ursel\0Kurt\0xipj3plmq", MS_SASL_DONE, NULL)}, 1, "Kurt", "Ursel", "xipj3plmq",
     "xipj3plmQ"},
    {"plain rfc4954 literal", MS_AUTH_PLAIN, NULL,
     {LIT("AHRlc3QAMTIzNA==", MS_SASL_DONE, NULL)}, 1, "test", NULL, "1234", "12345"},
    {"plain after empty challenge", MS_AUTH_PLAIN, NULL,
     {NONE(MS_SASL_CONTINUE, ""), ENC("\0tim\0tanstaaftanstaaf", MS_SASL_DONE, NULL)}, 2,
     "tim", NULL, "tanstaaftanstaaf", ""},
    {"plain utf-8 and binary password", MS_AUTH_PLAIN, NULL,
     {ENC("\0j\xc3\xb6rg\0p\xff\x01 w", MS_SASL_DONE, NULL)}, 1, "j\xc3\xb6rg", NULL,
     "p\xff\x01 w", "p\xff\x01"},
    {"plain = initial response", MS_AUTH_PLAIN, NULL,
     {LIT("=", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"plain empty line after challenge", MS_AUTH_PLAIN, NULL,
     {NONE(MS_SASL_CONTINUE, ""), LIT("", MS_SASL_BAD, NULL)}, 2, NULL, NULL, NULL, NULL},
    {"plain = after challenge", MS_AUTH_PLAIN, NULL,
     {NONE(MS_SASL_CONTINUE, ""), LIT("=", MS_SASL_BAD, NULL)}, 2, NULL, NULL, NULL, NULL},
    {"plain bad base64", MS_AUTH_PLAIN, NULL,
     {LIT("AHRpbQB0YW5zdGFhZn!h", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"plain base64 with space", MS_AUTH_PLAIN, NULL,
     {LIT("AHRlc3QA MTIzNA==", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"plain missing NUL", MS_AUTH_PLAIN, NULL,
     {ENC("tim\0tanstaaf", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"plain no NUL", MS_AUTH_PLAIN, NULL,
     {ENC("timtanstaaf", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"plain three NULs", MS_AUTH_PLAIN, NULL,
     {ENC("\0tim\0tans\0taaf", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"plain empty authcid", MS_AUTH_PLAIN, NULL,
     {ENC("\0\0secret", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"plain empty password", MS_AUTH_PLAIN, NULL,
     {ENC("\0tim\0", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"plain step after done", MS_AUTH_PLAIN, NULL,
     {ENC("\0tim\0x", MS_SASL_DONE, NULL), ENC("\0tim\0x", MS_SASL_BAD, NULL)},
     2, NULL, NULL, NULL, NULL},
    {"plain step after bad", MS_AUTH_PLAIN, NULL,
     {ENC("nonul", MS_SASL_BAD, NULL), ENC("\0tim\0x", MS_SASL_BAD, NULL)},
     2, NULL, NULL, NULL, NULL},

    /* LOGIN (draft-murchison-sasl-login). */
    {"login", MS_AUTH_LOGIN, NULL,
     {NONE(MS_SASL_CONTINUE, "Username:"), ENC("tim", MS_SASL_CONTINUE, "Password:"),
      ENC("tanstaaftanstaaf", MS_SASL_DONE, NULL)},
     3, "tim", NULL, "tanstaaftanstaaf", "tanstaaftanstaa"},
    {"login initial response", MS_AUTH_LOGIN, NULL,
     {LIT("dGlt", MS_SASL_CONTINUE, "Password:"), ENC("tanstaaftanstaaf", MS_SASL_DONE, NULL)},
     2, "tim", NULL, "tanstaaftanstaaf", "x"},
    {"login literal challenges", MS_AUTH_LOGIN, NULL,
     {NONE(MS_SASL_CONTINUE, "Username:"), LIT("dXNlcg==", MS_SASL_CONTINUE, "Password:"),
      LIT("cGFzcw==", MS_SASL_DONE, NULL)},
     3, "user", NULL, "pass", "Pass"},
    {"login empty password", MS_AUTH_LOGIN, NULL,
     {NONE(MS_SASL_CONTINUE, "Username:"), ENC("tim", MS_SASL_CONTINUE, "Password:"),
      LIT("", MS_SASL_DONE, NULL)},
     3, "tim", NULL, "", "x"},
    {"login = initial response", MS_AUTH_LOGIN, NULL,
     {LIT("=", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"login empty username", MS_AUTH_LOGIN, NULL,
     {NONE(MS_SASL_CONTINUE, "Username:"), LIT("", MS_SASL_BAD, NULL)}, 2, NULL, NULL, NULL, NULL},
    {"login NUL in username", MS_AUTH_LOGIN, NULL,
     {NONE(MS_SASL_CONTINUE, "Username:"), ENC("t\0m", MS_SASL_BAD, NULL)},
     2, NULL, NULL, NULL, NULL},
    {"login NUL in password", MS_AUTH_LOGIN, NULL,
     {ENC("tim", MS_SASL_CONTINUE, "Password:"), ENC("pa\0ss", MS_SASL_BAD, NULL)},
     2, NULL, NULL, NULL, NULL},
    {"login bad base64 password", MS_AUTH_LOGIN, NULL,
     {ENC("tim", MS_SASL_CONTINUE, "Password:"), LIT("cGFzcw=", MS_SASL_BAD, NULL)},
     2, NULL, NULL, NULL, NULL},

    /* CRAM-MD5, RFC 2195 section 2. */
    {"cram-md5 rfc2195", MS_AUTH_CRAM_MD5, "<1896.697170952@postoffice.reston.mci.net>",
     {NONE(MS_SASL_CONTINUE, "<1896.697170952@postoffice.reston.mci.net>"),
      LIT("dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw", MS_SASL_DONE, NULL)},
     2, "tim", NULL, "tanstaaftanstaaf", "tanstaaftanstaaF"},
    {"cram-md5 uppercase digest", MS_AUTH_CRAM_MD5, "<1896.697170952@postoffice.reston.mci.net>",
     {NONE(MS_SASL_CONTINUE, NULL),
      ENC("tim B913A602C7EDA7A495B4E6E7334D3890", MS_SASL_DONE, NULL)},
     2, "tim", NULL, "tanstaaftanstaaf", "x"},
    {"cram-md5 user with space", MS_AUTH_CRAM_MD5, "<1896.697170952@postoffice.reston.mci.net>",
     {NONE(MS_SASL_CONTINUE, NULL),
      ENC("t m b913a602c7eda7a495b4e6e7334d3890", MS_SASL_DONE, NULL)},
     2, "t m", NULL, "tanstaaftanstaaf", "x"},
    {"cram-md5 initial response", MS_AUTH_CRAM_MD5, NULL,
     {LIT("dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw", MS_SASL_BAD, NULL)},
     1, NULL, NULL, NULL, NULL},
    {"cram-md5 = initial response", MS_AUTH_CRAM_MD5, NULL,
     {LIT("=", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"cram-md5 no space", MS_AUTH_CRAM_MD5, NULL,
     {NONE(MS_SASL_CONTINUE, NULL), ENC("timb913a602c7eda7a495b4e6e7334d3890", MS_SASL_BAD,
                                        NULL)},
     2, NULL, NULL, NULL, NULL},
    {"cram-md5 short digest", MS_AUTH_CRAM_MD5, NULL,
     {NONE(MS_SASL_CONTINUE, NULL), ENC("tim b913a602c7eda7a495b4e6e7334d389", MS_SASL_BAD,
                                        NULL)},
     2, NULL, NULL, NULL, NULL},
    {"cram-md5 non-hex digest", MS_AUTH_CRAM_MD5, NULL,
     {NONE(MS_SASL_CONTINUE, NULL), ENC("tim g913a602c7eda7a495b4e6e7334d3890", MS_SASL_BAD,
                                        NULL)},
     2, NULL, NULL, NULL, NULL},
    {"cram-md5 empty user", MS_AUTH_CRAM_MD5, NULL,
     {NONE(MS_SASL_CONTINUE, NULL), ENC(" b913a602c7eda7a495b4e6e7334d3890", MS_SASL_BAD,
                                        NULL)},
     2, NULL, NULL, NULL, NULL},
    {"cram-md5 empty response", MS_AUTH_CRAM_MD5, NULL,
     {NONE(MS_SASL_CONTINUE, NULL), LIT("", MS_SASL_BAD, NULL)}, 2, NULL, NULL, NULL, NULL},

    /* XOAUTH2, Google's example. */
    {"xoauth2 google example", MS_AUTH_XOAUTH2, NULL,
     {LIT("dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQm"
          "hkSFJoZG1semRHRXVZMjl0Q2cBAQ==",
          MS_SASL_DONE, NULL)},
     1, "someuser@example.com", NULL, "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
     "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCh"},
    {"xoauth2 after empty challenge", MS_AUTH_XOAUTH2, NULL,
     {NONE(MS_SASL_CONTINUE, ""), ENC("user=u@x\001auth=Bearer tok\001\001", MS_SASL_DONE, NULL)},
     2, "u@x", NULL, "tok", "to"},
    {"xoauth2 bearer case", MS_AUTH_XOAUTH2, NULL,
     {ENC("user=u@x\001auth=bearer tok\001\001", MS_SASL_DONE, NULL)}, 1, "u@x", NULL, "tok",
     "TOK"},
    {"xoauth2 missing auth", MS_AUTH_XOAUTH2, NULL,
     {ENC("user=u@x\001\001", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"xoauth2 missing user", MS_AUTH_XOAUTH2, NULL,
     {ENC("auth=Bearer tok\001\001", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"xoauth2 empty user", MS_AUTH_XOAUTH2, NULL,
     {ENC("user=\001auth=Bearer tok\001\001", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"xoauth2 missing terminator", MS_AUTH_XOAUTH2, NULL,
     {ENC("user=u@x\001auth=Bearer tok\001", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"xoauth2 trailing bytes", MS_AUTH_XOAUTH2, NULL,
     {ENC("user=u@x\001auth=Bearer tok\001\001x", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"xoauth2 basic scheme", MS_AUTH_XOAUTH2, NULL,
     {ENC("user=u@x\001auth=Basic dTpw\001\001", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"xoauth2 empty token", MS_AUTH_XOAUTH2, NULL,
     {ENC("user=u@x\001auth=Bearer \001\001", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"xoauth2 duplicate user", MS_AUTH_XOAUTH2, NULL,
     {ENC("user=a\001user=b\001auth=Bearer t\001\001", MS_SASL_BAD, NULL)},
     1, NULL, NULL, NULL, NULL},
    {"xoauth2 NUL", MS_AUTH_XOAUTH2, NULL,
     {ENC("user=u\0x\001auth=Bearer t\001\001", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},

    /* OAUTHBEARER, RFC 7628 section 4.1 and section 3.1 grammar. */
    {"oauthbearer rfc7628", MS_AUTH_OAUTHBEARER, NULL,
     {LIT("bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVh"
          "cmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB",
          MS_SASL_DONE, NULL)},
     1, "user@example.com", NULL, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", "secret"},
    {"oauthbearer after empty challenge", MS_AUTH_OAUTHBEARER, NULL,
     {NONE(MS_SASL_CONTINUE, ""), ENC("n,a=u,\001auth=Bearer t\001\001", MS_SASL_DONE, NULL)},
     2, "u", NULL, "t", "u"},
    {"oauthbearer y flag", MS_AUTH_OAUTHBEARER, NULL,
     {ENC("y,a=u,\001auth=Bearer t\001\001", MS_SASL_DONE, NULL)}, 1, "u", NULL, "t", ""},
    {"oauthbearer saslname escapes", MS_AUTH_OAUTHBEARER, NULL,
     {ENC("n,a=us=2Cer=3Dx,\001auth=Bearer t\001\001", MS_SASL_DONE, NULL)}, 1, "us,er=x", NULL,
     "t", "x"},
    {"oauthbearer no a=", MS_AUTH_OAUTHBEARER, NULL,
     {ENC("n,,\001auth=Bearer t\001\001", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"oauthbearer empty a=", MS_AUTH_OAUTHBEARER, NULL,
     {ENC("n,a=,\001auth=Bearer t\001\001", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"oauthbearer bad escape", MS_AUTH_OAUTHBEARER, NULL,
     {ENC("n,a=u=41,\001auth=Bearer t\001\001", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"oauthbearer channel binding", MS_AUTH_OAUTHBEARER, NULL,
     {ENC("p=tls-unique,a=u,\001auth=Bearer t\001\001", MS_SASL_BAD, NULL)},
     1, NULL, NULL, NULL, NULL},
    {"oauthbearer missing kvsep", MS_AUTH_OAUTHBEARER, NULL,
     {ENC("n,a=u,auth=Bearer t\001\001", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"oauthbearer missing auth", MS_AUTH_OAUTHBEARER, NULL,
     {ENC("n,a=u,\001host=h\001port=1\001\001", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"oauthbearer missing terminator", MS_AUTH_OAUTHBEARER, NULL,
     {ENC("n,a=u,\001auth=Bearer t\001", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"oauthbearer error reply", MS_AUTH_OAUTHBEARER, NULL,
     {LIT("AQ==", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
    {"oauthbearer = initial response", MS_AUTH_OAUTHBEARER, NULL,
     {LIT("=", MS_SASL_BAD, NULL)}, 1, NULL, NULL, NULL, NULL},
};
/* clang-format on */

static const char *
result_name(enum ms_sasl_result r)
{
    switch (r) {
    case MS_SASL_CONTINUE:
        return "CONTINUE";
    case MS_SASL_DONE:
        return "DONE";
    case MS_SASL_BAD:
        return "BAD";
    }
    return "?";
}

START_TEST(test_exchanges)
{
    const struct exchange *x = &exchanges[_i];
    struct ms_sasl *sasl = ms_sasl_create(x->mech, "mx.example", 42);
    if (x->cram_challenge)
        ck_assert_msg(ms_sasl_set_cram_challenge(sasl, x->cram_challenge) == 0,
                      "%s: set_cram_challenge failed", x->name);
    enum ms_sasl_result r = MS_SASL_BAD;
    for (size_t s = 0; s < x->nsteps; s++) {
        const struct step *st = &x->steps[s];
        char *enc = NULL;
        const char *in = NULL;
        size_t len = 0;
        if (st->kind == IN_ENC) {
            enc = b64(st->data, st->len);
            in = enc;
            len = strlen(enc);
        } else if (st->kind == IN_LIT) {
            in = st->data;
            len = st->len;
        }
        const char *chal = "unset";
        r = ms_sasl_step(sasl, in, len, &chal);
        free(enc);
        ck_assert_msg(r == st->want, "%s: step %zu: got %s, want %s", x->name, s, result_name(r),
                      result_name(st->want));
        if (r == MS_SASL_CONTINUE) {
            ck_assert_msg(chal != NULL, "%s: step %zu: CONTINUE without a challenge", x->name, s);
            size_t clen = 0;
            char *plain = unb64(chal, &clen);
            ck_assert_msg(plain != NULL, "%s: step %zu: challenge \"%s\" is not base64", x->name, s,
                          chal);
            if (st->want_challenge)
                ck_assert_msg(strcmp(plain, st->want_challenge) == 0,
                              "%s: step %zu: challenge got \"%s\", want \"%s\"", x->name, s, plain,
                              st->want_challenge);
            free(plain);
        } else {
            ck_assert_msg(chal == NULL, "%s: step %zu: challenge set on %s", x->name, s,
                          result_name(r));
            ck_assert_msg(ms_sasl_user(sasl) == NULL || r == MS_SASL_DONE, "%s: user set after BAD",
                          x->name);
        }
    }
    if (r == MS_SASL_DONE) {
        const char *user = ms_sasl_user(sasl), *authzid = ms_sasl_authzid(sasl);
        ck_assert_msg(user && strcmp(user, x->user) == 0, "%s: user: got \"%s\", want \"%s\"",
                      x->name, escape(user, user ? strlen(user) : 0, 0), x->user);
        if (x->authzid)
            ck_assert_msg(authzid && strcmp(authzid, x->authzid) == 0,
                          "%s: authzid: got \"%s\", want \"%s\"", x->name,
                          authzid ? authzid : "(null)", x->authzid);
        else
            ck_assert_msg(authzid == NULL, "%s: authzid: got \"%s\", want NULL", x->name, authzid);
        ck_assert_msg(ms_sasl_check(sasl, x->good) == 1, "%s: check(\"%s\"): got 0, want 1",
                      x->name, escape(x->good, strlen(x->good), 0));
        ck_assert_msg(ms_sasl_check(sasl, x->bad) == 0, "%s: check(\"%s\"): got 1, want 0", x->name,
                      escape(x->bad, strlen(x->bad), 0));
    } else {
        ck_assert_msg(ms_sasl_check(sasl, "anything") == 0, "%s: check before DONE: want 0",
                      x->name);
    }
    ms_sasl_destroy(&sasl);
    ck_assert_msg(sasl == NULL, "%s: destroy did not clear the pointer", x->name);
    ms_sasl_destroy(&sasl); /* harmless on NULL */
}
END_TEST

/* ---- CRAM-MD5 generated challenge --------------------------------------------------------- */

static char *
cram_start(uint64_t seed, const char *host)
{
    struct ms_sasl *sasl = ms_sasl_create(MS_AUTH_CRAM_MD5, host, seed);
    const char *chal = NULL;
    enum ms_sasl_result r = ms_sasl_step(sasl, NULL, 0, &chal);
    ck_assert_msg(r == MS_SASL_CONTINUE, "cram start: got %s, want CONTINUE", result_name(r));
    char *plain = unb64(chal, NULL);
    ck_assert_msg(plain != NULL, "cram challenge \"%s\" is not base64", chal);
    ms_sasl_destroy(&sasl);
    return plain;
}

START_TEST(test_cram_challenge_seeded)
{
    char *a = cram_start(7, "mx.example"), *b = cram_start(7, "mx.example");
    char *c = cram_start(8, "mx.example"), *d = cram_start(7, NULL);
    ck_assert_msg(strcmp(a, b) == 0, "same seed: got \"%s\" and \"%s\", want equal", a, b);
    ck_assert_msg(strcmp(a, c) != 0, "seeds 7 and 8: both gave \"%s\"", a);
    unsigned long long n1, n2;
    char host[64];
    int end = 0;
    int got = sscanf(a, "<%llu.%llu@%63[^>]>%n", &n1, &n2, host, &end);
    ck_assert_msg(got == 3 && end == (int)strlen(a) && strcmp(host, "mx.example") == 0,
                  "challenge \"%s\": want <digits.digits@mx.example>", a);
    ck_assert_msg(strstr(d, "@localhost>") != NULL, "NULL hostname: got \"%s\", want @localhost",
                  d);
    free(a);
    free(b);
    free(c);
    free(d);
}
END_TEST

START_TEST(test_cram_generated_round_trip)
{
    /* Client side computed here with OpenSSL, server side in sasl.c. */
    struct ms_sasl *sasl = ms_sasl_create(MS_AUTH_CRAM_MD5, "pop.example", 1234567);
    const char *chal = NULL;
    ck_assert(ms_sasl_step(sasl, NULL, 0, &chal) == MS_SASL_CONTINUE);
    size_t clen = 0;
    char *plain = unb64(chal, &clen);
    ck_assert_msg(plain != NULL, "CRAM-MD5 challenge \"%s\" is not base64", chal);
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    ck_assert(EVP_Q_mac(NULL, "HMAC", NULL, "MD5", NULL, "s3cret", 6, (unsigned char *)plain, clen,
                        mac, sizeof mac, &mac_len) != NULL);
    char resp[128];
    int o = snprintf(resp, sizeof resp, "alice ");
    for (size_t i = 0; i < mac_len; i++)
        o += snprintf(resp + o, sizeof resp - (size_t)o, "%02x", mac[i]);
    char *enc = b64(resp, strlen(resp));
    enum ms_sasl_result r = ms_sasl_step(sasl, enc, strlen(enc), &chal);
    ck_assert_msg(r == MS_SASL_DONE, "got %s, want DONE", result_name(r));
    ck_assert_msg(ms_sasl_check(sasl, "s3cret") == 1, "check(s3cret): got 0, want 1");
    ck_assert_msg(ms_sasl_check(sasl, "s3cre") == 0, "check(s3cre): got 1, want 0");
    ck_assert_msg(ms_sasl_set_cram_challenge(sasl, "<x>") == -1,
                  "set_cram_challenge after start: got 0, want -1");
    free(enc);
    free(plain);
    ms_sasl_destroy(&sasl);

    struct ms_sasl *p = ms_sasl_create(MS_AUTH_PLAIN, "h", 1);
    ck_assert_msg(ms_sasl_set_cram_challenge(p, "<x>") == -1,
                  "set_cram_challenge on PLAIN: got 0, want -1");
    ms_sasl_destroy(&p);
}
END_TEST

/* ---- failure challenges ----------------------------------------------------------------- */

START_TEST(test_failure_challenge)
{
    static const struct {
        unsigned mech;
        const char *json; /* NULL: no failure challenge */
    } cases[] = {
        {MS_AUTH_XOAUTH2,
         "{\"status\":\"401\",\"schemes\":\"bearer\",\"scope\":\"https://mail.google.com/\"}"},
        {MS_AUTH_OAUTHBEARER, "{\"status\":\"invalid_token\",\"schemes\":\"bearer\","
                              "\"scope\":\"https://mail.google.com/\"}"},
        {MS_AUTH_PLAIN, NULL},
        {MS_AUTH_LOGIN, NULL},
        {MS_AUTH_CRAM_MD5, NULL},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cases); i++) {
        struct ms_sasl *sasl = ms_sasl_create(cases[i].mech, "h", 0);
        if (cases[i].mech == MS_AUTH_XOAUTH2) {
            static const char creds[] = "user=u\001auth=Bearer bad\001\001";
            char *enc = b64(creds, sizeof creds - 1);
            ck_assert(ms_sasl_step(sasl, enc, strlen(enc), NULL) == MS_SASL_DONE);
            ck_assert_msg(ms_sasl_check(sasl, "good") == 0, "xoauth2 bad token: check got 1");
            free(enc);
        }
        const char *fc = ms_sasl_failure_challenge(sasl);
        const char *name = ms_sasl_mech_name(cases[i].mech);
        if (!cases[i].json) {
            ck_assert_msg(fc == NULL, "%s: failure challenge: got \"%s\", want NULL", name, fc);
        } else {
            ck_assert_msg(fc != NULL, "%s: failure challenge: got NULL", name);
            char *plain = unb64(fc, NULL);
            ck_assert_msg(plain && strcmp(plain, cases[i].json) == 0,
                          "%s: failure challenge decodes to \"%s\", want \"%s\"", name,
                          plain ? plain : "(bad base64)", cases[i].json);
            ck_assert_msg(ms_sasl_failure_challenge(sasl) == fc, "%s: failure challenge not stable",
                          name);
            free(plain);
        }
        ms_sasl_destroy(&sasl);
    }
}
END_TEST

/* ---- bounds ----------------------------------------------------------------------------- */

static enum ms_sasl_result
plain_with_password_len(size_t pwlen)
{
    size_t n = 5 + pwlen; /* "\0tim\0" + password */
    char *raw = ms_malloc(n);
    memcpy(raw, "\0tim\0", 5);
    memset(raw + 5, 'p', pwlen);
    char *enc = b64(raw, n);
    struct ms_sasl *sasl = ms_sasl_create(MS_AUTH_PLAIN, "h", 0);
    enum ms_sasl_result r = ms_sasl_step(sasl, enc, strlen(enc), NULL);
    if (r == MS_SASL_DONE)
        ck_assert(ms_sasl_check(sasl, "p") == 0);
    ms_sasl_destroy(&sasl);
    free(enc);
    free(raw);
    return r;
}

START_TEST(test_bounds)
{
    static const struct {
        size_t pwlen;
        enum ms_sasl_result want;
    } cases[] = {
        {16384 - 5, MS_SASL_DONE}, /* exactly 16 KiB decoded */
        {16384 - 4, MS_SASL_BAD},  /* one byte over */
        {16384 - 3, MS_SASL_BAD},
        {100000, MS_SASL_BAD},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cases); i++) {
        enum ms_sasl_result got = plain_with_password_len(cases[i].pwlen);
        ck_assert_msg(got == cases[i].want, "PLAIN of %zu decoded bytes: got %s, want %s",
                      cases[i].pwlen + 5, result_name(got), result_name(cases[i].want));
    }
}
END_TEST

/* ---- random walk ------------------------------------------------------------------------ */

START_TEST(test_random_steps)
{
    static const unsigned mechs[] = {
        MS_AUTH_PLAIN, MS_AUTH_LOGIN, MS_AUTH_CRAM_MD5, MS_AUTH_XOAUTH2, MS_AUTH_OAUTHBEARER,
    };
    /* Bytes that mean something to some mechanism, so the walk reaches the parsers. */
    static const char interesting[] = "\0\001=, aun@:Bearer0123456789abcdef=2C=3D\xff\r\n";
    static const char b64chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \r\n*-_";
    uint64_t seed = 0x6d6f636b73727673ULL;
    size_t done = 0, bad = 0;
    for (int iter = 0; iter < 5000; iter++) {
        unsigned mech = mechs[rng_next(&seed) % MS_ARRAY_LEN(mechs)];
        struct ms_sasl *sasl = ms_sasl_create(mech, "fuzz.example", rng_next(&seed));
        int nsteps = 1 + (int)(rng_next(&seed) % 4);
        for (int s = 0; s < nsteps; s++) {
            char raw[200], *enc = NULL;
            const char *in = NULL;
            size_t len = 0, n = (size_t)(rng_next(&seed) % sizeof raw);
            switch (rng_next(&seed) % 5) {
            case 0: /* no response */
                break;
            case 1: /* base64 of structured bytes */
            case 2:
                for (size_t k = 0; k < n; k++)
                    raw[k] = interesting[rng_next(&seed) % (sizeof interesting - 1)];
                enc = b64(raw, n);
                in = enc;
                len = strlen(enc);
                break;
            case 3: /* base64-looking text, often invalid */
                for (size_t k = 0; k < n; k++)
                    raw[k] = b64chars[rng_next(&seed) % (sizeof b64chars - 1)];
                in = raw;
                len = n;
                break;
            default: /* arbitrary bytes */
                for (size_t k = 0; k < n; k++)
                    raw[k] = (char)rng_next(&seed);
                in = raw;
                len = n;
                break;
            }
            const char *chal = NULL;
            enum ms_sasl_result r = ms_sasl_step(sasl, in, len, &chal);
            free(enc);
            if (r == MS_SASL_CONTINUE) {
                ck_assert_msg(chal != NULL, "iteration %d: CONTINUE without challenge", iter);
                char *plain = unb64(chal, NULL);
                ck_assert_msg(plain != NULL, "iteration %d: challenge not base64", iter);
                free(plain);
            } else if (r == MS_SASL_DONE) {
                done++;
                const char *user = ms_sasl_user(sasl);
                ck_assert_msg(user && *user, "iteration %d: DONE with an empty user", iter);
                (void)ms_sasl_authzid(sasl);
                ck_assert_msg(ms_sasl_check(sasl, "no-such-password-here") == 0,
                              "iteration %d: random input matched a password", iter);
            } else {
                bad++;
            }
            (void)ms_sasl_failure_challenge(sasl);
        }
        ms_sasl_destroy(&sasl);
    }
    /* The walk must reach both outcomes, or it is not exercising the parsers. */
    ck_assert_msg(done > 0 && bad > 0, "random walk: %zu DONE, %zu BAD; want both > 0", done, bad);
}
END_TEST

static Suite *
sasl_suite(void)
{
    Suite *s = suite_create("sasl");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_mech_names);
    tcase_add_test(tc, test_base64_vectors);
    tcase_add_test(tc, test_base64_invalid);
    tcase_add_test(tc, test_base64_round_trip);
    tcase_add_loop_test(tc, test_exchanges, 0, (int)MS_ARRAY_LEN(exchanges));
    tcase_add_test(tc, test_cram_challenge_seeded);
    tcase_add_test(tc, test_cram_generated_round_trip);
    tcase_add_test(tc, test_failure_challenge);
    tcase_add_test(tc, test_bounds);
    tcase_add_test(tc, test_random_steps);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(sasl_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
