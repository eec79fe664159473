/*
 * test_gen.c - the synthetic message generator (gen.c): determinism, size tolerance, line and
 * byte rules of RFC 5322 / RFC 2045, header syntax, MIME structure (every multipart has its
 * delimiters and closing delimiter, boundaries appear nowhere else, base64 and
 * quoted-printable decode cleanly, encoded-words decode to UTF-8), dates, and that every MIME
 * shape appears.
 *
 * The checks use a small MIME walker written here, independent of gen.c, so a generator bug
 * cannot hide behind a shared helper.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "gen.h"

/* ck_assert_msg reports every passing check to the parent in fork mode (a write per call);
 * these helpers check every byte, so they fail loudly but pass silently. */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

#define DATE_FROM 1672531200 /* 2023-01-01T00:00:00Z */
#define DATE_TO 1735689600   /* 2025-01-01T00:00:00Z */

/* ---- helpers ---- */

static struct ms_buf
gen(uint64_t seed, uint64_t index, size_t size, int64_t *date_r)
{
    struct ms_buf b = {0};
    int64_t date = 0;
    ms_gen_message(seed, index, size, &date, &b);
    if (date_r)
        *date_r = date;
    return b;
}

static size_t
tolerance(size_t target)
{
    return MS_MAX(target / 10, (size_t)200);
}

/* Offset of the body (just after the CRLF CRLF ending the header section), or n if none. */
static size_t
body_offset(const char *p, size_t n)
{
    if (n >= 2 && p[0] == '\r' && p[1] == '\n')
        return 2; /* no header fields */
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(p + i, "\r\n\r\n", 4) == 0)
            return i + 4;
    return n;
}

/* The end of the line starting at i: the offset of its CRLF, or n for a last line without. */
static size_t
line_end(const char *p, size_t n, size_t i)
{
    while (i + 1 < n && !(p[i] == '\r' && p[i + 1] == '\n'))
        i++;
    return i + 1 < n ? i : n;
}

/* The unfolded value of the first field called name (case-insensitive) in the header
 * section p[0..n), leading whitespace skipped, into val. Returns 1 if found. */
static int
header_get(const char *p, size_t n, const char *name, char *val, size_t vmax)
{
    size_t nl = strlen(name), i = 0;
    while (i < n) {
        size_t eol = line_end(p, n, i);
        if (eol - i > nl && p[i + nl] == ':' && ms_strncaseeq(p + i, name, nl)) {
            size_t o = 0, j = i + nl + 1;
            for (;;) {
                for (; j < eol; j++)
                    if (o + 1 < vmax && !(o == 0 && (p[j] == ' ' || p[j] == '\t')))
                        val[o++] = p[j];
                /* a continuation line starts with whitespace (RFC 5322 2.2.3) */
                if (eol + 2 < n && (p[eol + 2] == ' ' || p[eol + 2] == '\t')) {
                    j = eol + 2;
                    eol = line_end(p, n, j);
                    continue;
                }
                break;
            }
            val[o] = '\0';
            return 1;
        }
        i = eol + 2;
    }
    return 0;
}

/* A parameter of a Content-Type value (quoted or not) into out. Returns 1 if found. */
static int
param_get(const char *ct, const char *name, char *out, size_t max)
{
    size_t nl = strlen(name);
    for (const char *s = strchr(ct, ';'); s; s = strchr(s + 1, ';')) {
        const char *q = s + 1;
        while (*q == ' ' || *q == '\t')
            q++;
        if (ms_strncaseeq(q, name, nl) && q[nl] == '=') {
            q += nl + 1;
            size_t o = 0;
            if (*q == '"') {
                q++;
                while (*q && *q != '"' && o + 1 < max)
                    out[o++] = *q++;
            } else {
                while (*q && *q != ';' && *q != ' ' && o + 1 < max)
                    out[o++] = *q++;
            }
            out[o] = '\0';
            return 1;
        }
    }
    return 0;
}

static int
b64_value(char c)
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

/* Strict base64 of p[0..n) (no line breaks) into out; returns the decoded length or -1. */
static long
b64_decode(const char *p, size_t n, unsigned char *out)
{
    if (n % 4)
        return -1;
    long o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (p[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad)
                return -1; /* data after "=" */
            v[k] = b64_value(p[i + k]);
            if (v[k] < 0)
                return -1;
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = (unsigned char)(w >> 16);
        if (pad < 2)
            out[o++] = (unsigned char)(w >> 8);
        if (pad < 1)
            out[o++] = (unsigned char)w;
    }
    return o;
}

/* 1 if p[0..n) is well-formed UTF-8 (no overlongs, no surrogates). */
static int
utf8_valid(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        if (len == 0 || i + len > n || (len == 2 && c < 0xc2))
            return 0;
        uint32_t cp = len == 1 ? c : c & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* ---- whole-message line rules ---- */

/* Every line ends in CRLF, no bare CR or LF, no NUL, every byte 7-bit, no line over 998
 * (RFC 5322 2.1.1), and the top header section's lines at most 78. */
static void
check_lines(const char *p, size_t n, const char *what)
{
    REQUIRE(n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n', "%s: no final CRLF", what);
    size_t line = 0, start = 0;
    int in_header = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        REQUIRE(c != 0, "%s: NUL at %zu", what, i);
        REQUIRE(c < 0x80, "%s: 8-bit byte 0x%02x at %zu", what, c, i);
        REQUIRE((c >= 32 && c < 127) || c == '\r' || c == '\n' || c == '\t',
                "%s: control byte 0x%02x at %zu", what, c, i);
        if (c == '\r') {
            REQUIRE(i + 1 < n && p[i + 1] == '\n', "%s: bare CR at %zu", what, i);
            size_t len = i - start;
            REQUIRE(len <= 998, "%s: line %zu is %zu bytes", what, line, len);
            if (in_header) {
                REQUIRE(len <= 78, "%s: header line %zu is %zu bytes: %.*s", what, line, len,
                        (int)len, p + start);
                if (len == 0)
                    in_header = 0;
            }
            i++;
            start = i + 1;
            line++;
        } else {
            REQUIRE(c != '\n', "%s: bare LF at %zu", what, i);
        }
    }
}

/* ---- MIME walker ---- */

struct walk {
    const char *what;
    char sig[1024];    /* the structure, e.g. "multipart/mixed(text/plain,application/pdf)" */
    int utf8_text;     /* a text part was utf-8 quoted-printable */
    int non_ascii;     /* ... and decoded to non-ASCII text */
    int attachments;   /* base64 parts decoded */
    int encoded_words; /* =?UTF-8?...?= seen in headers and decoded */
};

static void walk_entity(struct walk *w, const char *p, size_t n, int depth);

/* A header section: every line "Name: value" (RFC 5322 2.2: printable ASCII but ":" in the
 * name) or a continuation starting with whitespace, lines at most 78; encoded-words decode. */
static void
check_header_section(struct walk *w, const char *p, size_t n)
{
    size_t i = 0, line = 0;
    while (i < n) {
        size_t eol = line_end(p, n, i);
        size_t len = eol - i;
        REQUIRE(len <= 78, "%s: header line is %zu bytes: %.*s", w->what, len, (int)len, p + i);
        if (p[i] == ' ' || p[i] == '\t') {
            REQUIRE(line > 0, "%s: continuation before any field", w->what);
            int content = 0;
            for (size_t k = i; k < eol; k++)
                content |= p[k] != ' ' && p[k] != '\t';
            REQUIRE(content, "%s: whitespace-only continuation line", w->what);
        } else {
            size_t k = i;
            while (k < eol && p[k] > 32 && p[k] < 127 && p[k] != ':')
                k++;
            REQUIRE(k > i && k < eol && p[k] == ':', "%s: not a field: %.*s", w->what, (int)len,
                    p + i);
        }
        /* encoded-words: =?UTF-8?B?...?= or =?UTF-8?Q?...?= decode to UTF-8 (RFC 2047) */
        for (size_t k = i; k + 10 <= eol; k++) {
            if (memcmp(p + k, "=?UTF-8?", 8) != 0)
                continue;
            char enc = p[k + 8];
            REQUIRE((enc == 'B' || enc == 'Q') && p[k + 9] == '?', "%s: bad encoded-word", w->what);
            size_t s = k + 10, e = s;
            while (e + 1 < eol && !(p[e] == '?' && p[e + 1] == '='))
                e++;
            REQUIRE(e + 1 < eol, "%s: unterminated encoded-word", w->what);
            REQUIRE(e + 2 - k <= 75, "%s: encoded-word of %zu chars", w->what, e + 2 - k);
            unsigned char dec[128];
            long dl = 0;
            if (enc == 'B') {
                dl = b64_decode(p + s, e - s, dec);
            } else {
                for (size_t q = s; q < e && dl >= 0; q++) {
                    if (p[q] == '=') {
                        int hi = q + 2 < e ? hexval(p[q + 1]) : -1;
                        int lo = q + 2 < e ? hexval(p[q + 2]) : -1;
                        if (hi < 0 || lo < 0)
                            dl = -1;
                        else
                            dec[dl++] = (unsigned char)(hi << 4 | lo);
                        q += 2;
                    } else {
                        dec[dl++] = (unsigned char)(p[q] == '_' ? ' ' : p[q]);
                    }
                }
            }
            REQUIRE(dl > 0, "%s: encoded-word does not decode: %.*s", w->what, (int)(e + 2 - k),
                    p + k);
            REQUIRE(utf8_valid(dec, (size_t)dl), "%s: encoded-word is not UTF-8", w->what);
            w->encoded_words++;
            k = e + 1;
        }
        i = eol + 2;
        line++;
    }
}

static void
sig_add(struct walk *w, const char *s)
{
    size_t l = strlen(w->sig);
    snprintf(w->sig + l, sizeof w->sig - l, "%s", s);
}

/* A quoted-printable body (RFC 2045 6.7): lines of at most 76, "=" only before two upper-case
 * hex digits or as a soft break, no trailing whitespace; decodes to valid UTF-8. */
static void
check_qp(struct walk *w, const char *p, size_t n)
{
    unsigned char *dec = calloc(n + 1, 1);
    size_t dl = 0, start = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r') {
            REQUIRE(i - start <= 76, "%s: QP line of %zu", w->what, i - start);
            REQUIRE(i == start || (p[i - 1] != ' ' && p[i - 1] != '\t'),
                    "%s: QP line ends in whitespace", w->what);
            dec[dl++] = '\n';
            i++;
            start = i + 1;
        } else if (p[i] == '=') {
            if (i + 1 < n && p[i + 1] == '\r') {
                i += 2; /* a soft line break */
                start = i + 1;
                continue;
            }
            REQUIRE(i + 2 < n && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0,
                    "%s: bad QP escape at %zu", w->what, i);
            dec[dl++] = (unsigned char)(hexval(p[i + 1]) << 4 | hexval(p[i + 2]));
            i += 2;
        } else {
            dec[dl++] = (unsigned char)p[i];
        }
    }
    REQUIRE(utf8_valid(dec, dl), "%s: QP text is not UTF-8", w->what);
    for (size_t i = 0; i < dl; i++)
        w->non_ascii |= dec[i] >= 0x80;
    free(dec);
}

/* A base64 body (RFC 2045 6.8): lines of at most 76, strict alphabet, padding only at the
 * end; checks the file signature the content type promises. */
static void
check_base64(struct walk *w, const char *p, size_t n, const char *type)
{
    char *joined = malloc(n + 1);
    unsigned char *dec = calloc(n + 1, 1);
    size_t jl = 0, start = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r') {
            REQUIRE(i - start <= 76, "%s: base64 line of %zu", w->what, i - start);
            i++;
            start = i + 1;
        } else {
            joined[jl++] = p[i];
        }
    }
    long dl = b64_decode(joined, jl, dec);
    REQUIRE(dl > 0, "%s: base64 does not decode (%zu chars)", w->what, jl);
    if (strcmp(type, "application/pdf") == 0)
        REQUIRE(dl >= 5 && memcmp(dec, "%PDF-", 5) == 0, "%s: not a PDF", w->what);
    if (strcmp(type, "image/png") == 0)
        REQUIRE(dl >= 8 && memcmp(dec, "\x89PNG\r\n\x1a\n", 8) == 0, "%s: not a PNG", w->what);
    w->attachments++;
    free(joined);
    free(dec);
}

/* The body of a multipart with boundary b: a delimiter line "--b", parts, the closing "--b--"
 * (RFC 2046 5.1.1), and no other line starting with "--b". */
static void
walk_multipart(struct walk *w, const char *p, size_t n, const char *b, int depth,
               const char *subtype)
{
    size_t bl = strlen(b), i = 0, part_start = 0, parts = 0;
    int opened = 0, closed = 0;
    sig_add(w, "(");
    while (i < n) {
        size_t eol = line_end(p, n, i);
        size_t len = eol - i;
        if (len >= 2 + bl && p[i] == '-' && p[i + 1] == '-' && memcmp(p + i + 2, b, bl) == 0) {
            int is_close = len == 4 + bl && memcmp(p + i + 2 + bl, "--", 2) == 0;
            REQUIRE(is_close || len == 2 + bl, "%s: boundary inside a line: %.*s", w->what,
                    (int)len, p + i);
            REQUIRE(!closed, "%s: delimiter after the closing delimiter", w->what);
            if (opened) {
                /* the CRLF before a delimiter belongs to the delimiter */
                REQUIRE(i >= part_start + 2, "%s: empty part", w->what);
                if (parts)
                    sig_add(w, ",");
                walk_entity(w, p + part_start, i - 2 - part_start, depth + 1);
                parts++;
            }
            opened = 1;
            closed = is_close;
            part_start = eol + 2;
        } else {
            REQUIRE(memmem(p + i, len, b, bl) == NULL, "%s: boundary inside content: %.*s", w->what,
                    (int)len, p + i);
        }
        i = eol + 2;
    }
    REQUIRE(opened, "%s: no delimiter for boundary %s", w->what, b);
    REQUIRE(closed, "%s: no closing delimiter for boundary %s", w->what, b);
    REQUIRE(parts >= (strcmp(subtype, "alternative") == 0 ? 2u : 1u),
            "%s: multipart/%s with %zu parts", w->what, subtype, parts);
    sig_add(w, ")");
}

/* One entity: a header section and a body, checked by content type. */
static void
walk_entity(struct walk *w, const char *p, size_t n, int depth)
{
    REQUIRE(depth < 8, "%s: nested too deep", w->what);
    size_t bo = body_offset(p, n);
    REQUIRE(bo <= n, "%s: no header/body separator", w->what);
    check_header_section(w, p, bo >= 2 ? bo - 2 : 0);
    char ct[512] = "text/plain; charset=us-ascii", cte[64] = "7bit";
    header_get(p, bo, "Content-Type", ct, sizeof ct);
    header_get(p, bo, "Content-Transfer-Encoding", cte, sizeof cte);
    char type[128];
    size_t tl = 0;
    while (ct[tl] && ct[tl] != ';' && ct[tl] != ' ' && tl + 1 < sizeof type) {
        type[tl] = (char)(ct[tl] >= 'A' && ct[tl] <= 'Z' ? ct[tl] + 32 : ct[tl]);
        tl++;
    }
    type[tl] = '\0';
    sig_add(w, type);
    const char *body = p + bo;
    size_t bn = n - bo;
    if (strncmp(type, "multipart/", 10) == 0) {
        char b[128];
        REQUIRE(param_get(ct, "boundary", b, sizeof b), "%s: multipart without boundary", w->what);
        REQUIRE(strlen(b) >= 1 && strlen(b) <= 70, "%s: boundary length", w->what);
        walk_multipart(w, body, bn, b, depth, type + 10);
    } else if (strcmp(type, "message/rfc822") == 0) {
        REQUIRE(ms_strcaseeq(cte, "7bit"), "%s: message/rfc822 with CTE %s", w->what, cte);
        char from[256];
        size_t ibo = body_offset(body, bn);
        REQUIRE(header_get(body, ibo, "From", from, sizeof from),
                "%s: forwarded message without From", w->what);
        sig_add(w, "[");
        walk_entity(w, body, bn, depth + 1);
        sig_add(w, "]");
    } else if (ms_strcaseeq(cte, "base64")) {
        check_base64(w, body, bn, type);
    } else if (ms_strcaseeq(cte, "quoted-printable")) {
        char cs[32] = "";
        param_get(ct, "charset", cs, sizeof cs);
        REQUIRE(ms_strcaseeq(cs, "utf-8"), "%s: QP text in charset %s", w->what, cs);
        check_qp(w, body, bn);
        w->utf8_text = 1;
    } else {
        REQUIRE(ms_strcaseeq(cte, "7bit"), "%s: CTE %s", w->what, cte);
    }
}

enum shape { PLAIN_ASCII, PLAIN_UTF8, ALTERNATIVE, MIXED, NESTED, RFC822, N_SHAPES };
static const char *const shape_names[] = {"text/plain us-ascii",
                                          "text/plain utf-8",
                                          "multipart/alternative",
                                          "multipart/mixed",
                                          "mixed(alternative, attachment)",
                                          "message/rfc822"};

/* Walks a whole message and classifies its shape. */
static enum shape
walk_message(const char *p, size_t n, const char *what, struct walk *w)
{
    memset(w, 0, sizeof *w);
    w->what = what;
    check_lines(p, n, what);
    size_t bo = body_offset(p, n);
    char v[256];
    static const char *const required[] = {"Return-Path", "Received", "Date",       "From",
                                           "To",          "Subject",  "Message-ID", "MIME-Version"};
    for (size_t i = 0; i < MS_ARRAY_LEN(required); i++)
        REQUIRE(header_get(p, bo, required[i], v, sizeof v), "%s: no %s", what, required[i]);
    walk_entity(w, p, n, 0);
    if (strncmp(w->sig, "text/plain", 10) == 0)
        return w->utf8_text ? PLAIN_UTF8 : PLAIN_ASCII;
    if (strncmp(w->sig, "multipart/alternative(", 22) == 0)
        return ALTERNATIVE;
    if (strstr(w->sig, "message/rfc822"))
        return RFC822;
    if (strncmp(w->sig, "multipart/mixed(multipart/alternative(", 38) == 0)
        return NESTED;
    REQUIRE(strncmp(w->sig, "multipart/mixed(", 16) == 0, "%s: unexpected shape %s", what, w->sig);
    return MIXED;
}

/* Seconds since the epoch of an RFC 5322 date-time "Tue, 14 May 2024 09:12:33 +0200". */
static int64_t
parse_date(const char *s)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char wday[4], mon[4];
    int d, y, hh, mm, ss, zone;
    REQUIRE(sscanf(s, "%3s, %d %3s %d %d:%d:%d %d", wday, &d, mon, &y, &hh, &mm, &ss, &zone) == 8,
            "unparsable date \"%s\"", s);
    const char *mp = strstr(months, mon);
    REQUIRE(mp && (mp - months) % 3 == 0, "month in \"%s\"", s);
    int m = (int)(mp - months) / 3 + 1;
    /* days from civil (H. Hinnant) */
    int yy = y - (m <= 2);
    int era = yy / 400;
    int yoe = yy - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = (int64_t)era * 146097 + doe - 719468;
    int zsign = zone < 0 ? -1 : 1, za = zone < 0 ? -zone : zone;
    int64_t off = zsign * ((za / 100) * 3600 + (za % 100) * 60);
    static const char wdays[] = "ThuFriSatSunMonTueWed";
    REQUIRE(memcmp(wday, wdays + (days % 7) * 3, 3) == 0, "wrong weekday in \"%s\"", s);
    return days * 86400 + hh * 3600 + mm * 60 + ss - off;
}

/* ---- tests ---- */

START_TEST(test_deterministic)
{
    static const size_t sizes[] = {64, 1024, 4096, 100000};
    for (size_t si = 0; si < MS_ARRAY_LEN(sizes); si++) {
        for (uint64_t i = 0; i < 50; i++) {
            int64_t d1, d2;
            struct ms_buf a = gen(17, i, sizes[si], &d1), b = gen(17, i, sizes[si], &d2);
            REQUIRE(a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
                    "seed 17 index %llu size %zu: two calls differ", (unsigned long long)i,
                    sizes[si]);
            ck_assert_int_eq(d1, d2);
            struct ms_buf c = gen(17, i + 1, sizes[si], NULL);
            struct ms_buf e = gen(18, i, sizes[si], NULL);
            REQUIRE(c.len != a.len || memcmp(a.data, c.data, a.len) != 0,
                    "index %llu and %llu give the same bytes", (unsigned long long)i,
                    (unsigned long long)i + 1);
            REQUIRE(e.len != a.len || memcmp(a.data, e.data, a.len) != 0,
                    "seeds 17 and 18 give the same bytes at index %llu", (unsigned long long)i);
            ms_buf_fini(&a);
            ms_buf_fini(&b);
            ms_buf_fini(&c);
            ms_buf_fini(&e);
        }
    }
}
END_TEST

/* Appends: what the buffer held stays, and the message is the same as in an empty buffer. */
START_TEST(test_appends)
{
    struct ms_buf b = {0};
    ms_buf_puts(&b, "prefix");
    int64_t d;
    ms_gen_message(5, 6, 3000, &d, &b);
    struct ms_buf alone = gen(5, 6, 3000, NULL);
    ck_assert_uint_eq(b.len, 6 + alone.len);
    ck_assert(memcmp(b.data, "prefix", 6) == 0);
    ck_assert(memcmp(b.data + 6, alone.data, alone.len) == 0);
    ck_assert_int_eq(b.data[b.len], '\0');
    ms_buf_fini(&b);
    ms_buf_fini(&alone);
}
END_TEST

static const struct {
    size_t size;
    unsigned count;
} size_cases[] = {
    {0, 50},     {64, 200},    {640, 200},   {1024, 300},  {2048, 300},  {4096, 300},
    {5000, 100}, {100000, 60}, {102400, 40}, {1048576, 6}, {3000000, 2},
};

START_TEST(test_size)
{
    size_t size = size_cases[_i].size;
    size_t target = MS_MAX(size, (size_t)MS_GEN_MIN_SIZE), tol = tolerance(target);
    for (unsigned i = 0; i < size_cases[_i].count; i++) {
        struct ms_buf b = gen(99, i, size, NULL);
        size_t dev = b.len > target ? b.len - target : target - b.len;
        REQUIRE(dev <= tol, "size %zu index %u: got %zu bytes, want %zu +- %zu", size, i, b.len,
                target, tol);
        ck_assert_int_eq(b.data[b.len], '\0');
        ms_buf_fini(&b);
    }
}
END_TEST

/* Lines, bytes, headers and MIME structure, over many messages and sizes. */
static const struct {
    size_t size;
    unsigned count;
} walk_cases[] = {
    {64, 300},    {1024, 300},  {2048, 300},  {3000, 300},
    {4096, 1000}, {20000, 200}, {102400, 40}, {1048576, 6},
};

START_TEST(test_structure)
{
    size_t size = walk_cases[_i].size;
    for (unsigned i = 0; i < walk_cases[_i].count; i++) {
        char what[64];
        snprintf(what, sizeof what, "seed 3 index %u size %zu", i, size);
        struct ms_buf b = gen(3, i, size, NULL);
        struct walk w;
        walk_message(b.data, b.len, what, &w);
        ms_buf_fini(&b);
    }
}
END_TEST

START_TEST(test_shapes)
{
    unsigned seen[N_SHAPES] = {0};
    int encoded_subject = 0, encoded_name = 0, folded_subject = 0, two_received = 0;
    int non_ascii = 0;
    for (unsigned i = 0; i < 1000; i++) {
        char what[64];
        snprintf(what, sizeof what, "seed 1 index %u size 4096", i);
        struct ms_buf b = gen(1, i, 4096, NULL);
        struct walk w;
        seen[walk_message(b.data, b.len, what, &w)]++;
        non_ascii += w.non_ascii;
        size_t bo = body_offset(b.data, b.len);
        char v[1024];
        ck_assert(header_get(b.data, bo, "Subject", v, sizeof v));
        encoded_subject += strstr(v, "=?UTF-8?B?") != NULL;
        folded_subject += strlen(v) > 70;
        ck_assert(header_get(b.data, bo, "From", v, sizeof v));
        encoded_name += strstr(v, "=?UTF-8?Q?") != NULL;
        const char *r1 = memmem(b.data, bo, "\r\nReceived:", 11);
        two_received += r1 && memmem(r1 + 1, bo - (size_t)(r1 + 1 - b.data), "\r\nReceived:", 11);
        ms_buf_fini(&b);
    }
    for (int s = 0; s < N_SHAPES; s++)
        REQUIRE(seen[s] > 0, "shape %s never appeared in 1000 messages", shape_names[s]);
    /* roughly the documented distribution: 30/15/25/15/10/5 percent */
    static const unsigned want[N_SHAPES] = {300, 150, 250, 150, 100, 50};
    for (int s = 0; s < N_SHAPES; s++)
        REQUIRE(seen[s] > want[s] / 2 && seen[s] < want[s] * 3 / 2,
                "shape %s: got %u in 1000, want about %u", shape_names[s], seen[s], want[s]);
    REQUIRE(non_ascii > 200, "QP text with non-ASCII letters: got %d", non_ascii);
    REQUIRE(encoded_subject > 100, "encoded subjects: got %d", encoded_subject);
    REQUIRE(encoded_name > 100, "encoded From names: got %d", encoded_name);
    REQUIRE(folded_subject > 50, "long subjects: got %d", folded_subject);
    REQUIRE(two_received > 200, "two Received: got %d", two_received);
}
END_TEST

/* Small requests give plain text only (no multipart squeezed under the size). */
START_TEST(test_small_plain)
{
    for (unsigned i = 0; i < 300; i++) {
        struct ms_buf b = gen(8, i, 1024, NULL);
        struct walk w;
        enum shape s = walk_message(b.data, b.len, "size 1024", &w);
        REQUIRE(s == PLAIN_ASCII || s == PLAIN_UTF8, "index %u: shape %s at 1 KiB", i,
                shape_names[s]);
        ms_buf_fini(&b);
    }
}
END_TEST

/* Date: within 2023-2024, a valid RFC 5322 date-time equal to *date_r; Message-IDs unique. */
START_TEST(test_date_and_id)
{
    size_t cap = 2000, nids = 0;
    char **ids = calloc(cap, sizeof *ids);
    for (uint64_t seed = 1; seed <= 2; seed++) {
        for (unsigned i = 0; i < 1000; i++) {
            int64_t d;
            struct ms_buf b = gen(seed, i, 2048, &d);
            size_t bo = body_offset(b.data, b.len);
            REQUIRE(d >= DATE_FROM && d < DATE_TO, "date %lld out of 2023-2024", (long long)d);
            char v[256];
            ck_assert(header_get(b.data, bo, "Date", v, sizeof v));
            int64_t parsed = parse_date(v);
            REQUIRE(parsed == d, "Date: %s is %lld, date_r %lld", v, (long long)parsed,
                    (long long)d);
            ck_assert(header_get(b.data, bo, "Message-ID", v, sizeof v));
            size_t vl = strlen(v);
            REQUIRE(v[0] == '<' && vl > 12 && strcmp(v + vl - 11, "@mock.test>") == 0,
                    "Message-ID %s", v);
            ids[nids++] = strdup(v);
            ms_buf_fini(&b);
        }
    }
    for (size_t a = 0; a < nids; a++) {
        for (size_t b = a + 1; b < nids; b++)
            REQUIRE(strcmp(ids[a], ids[b]) != 0, "duplicate Message-ID %s", ids[a]);
    }
    for (size_t a = 0; a < nids; a++)
        free(ids[a]);
    free(ids);
}
END_TEST

/* The same index at different sizes is a different message, each valid. */
START_TEST(test_every_size)
{
    for (size_t size = 0; size < 9000; size += 37) {
        char what[64];
        snprintf(what, sizeof what, "seed 11 index 7 size %zu", size);
        struct ms_buf b = gen(11, 7, size, NULL);
        size_t target = MS_MAX(size, (size_t)MS_GEN_MIN_SIZE);
        size_t dev = b.len > target ? b.len - target : target - b.len;
        REQUIRE(dev <= tolerance(target), "%s: got %zu bytes", what, b.len);
        struct walk w;
        walk_message(b.data, b.len, what, &w);
        ms_buf_fini(&b);
    }
}
END_TEST

static Suite *
gen_suite(void)
{
    Suite *s = suite_create("gen");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_deterministic);
    tcase_add_test(tc, test_appends);
    tcase_add_loop_test(tc, test_size, 0, (int)MS_ARRAY_LEN(size_cases));
    tcase_add_loop_test(tc, test_structure, 0, (int)MS_ARRAY_LEN(walk_cases));
    tcase_add_test(tc, test_shapes);
    tcase_add_test(tc, test_small_plain);
    tcase_add_test(tc, test_date_and_id);
    tcase_add_test(tc, test_every_size);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(gen_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
