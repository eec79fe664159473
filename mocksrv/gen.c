/*
 * gen.c - the synthetic message generator behind `generate: { count, size }` (SPEC 3).
 *
 * What it is: a pure function from (seed, index, size) to the bytes of one realistic message:
 * Return-Path, one or two Received, Date, From/To/Cc with display names (some RFC 2047
 * encoded-word UTF-8), Subject (some encoded-word UTF-8, some long and folded), Message-ID,
 * MIME-Version, optional In-Reply-To/References and User-Agent, then a MIME body. Body text is
 * drawn from small built-in phrase lists; attachment bytes from the hash (behind a real PDF or
 * PNG signature).
 *
 * What it is not: not a MIME library, not a random mail corpus. No mutable global state, no
 * libc RNG, no clock, no locale: draw k of a message is mix(key + k * gamma), the SplitMix64
 * stream of base.h from a per-message key derived from (seed, index), so message i can be
 * generated without generating messages 0..i-1 and replays on any machine.
 *
 * Shapes, drawn per message (percentages of messages whose size allows every shape, i.e.
 * requests of at least GEN_GATE_RFC822 = 3.5 KiB):
 *
 *   30%  text/plain; charset=us-ascii, 7bit
 *   15%  text/plain; charset=utf-8, quoted-printable (some non-ASCII words)
 *   25%  multipart/alternative: text/plain + text/html (us-ascii 7bit or utf-8 QP, 50/50)
 *   15%  multipart/mixed: text/plain + a base64 attachment (application/pdf or image/png, 50/50)
 *   10%  multipart/mixed: multipart/alternative (text + html) + a base64 attachment
 *    5%  multipart/mixed: text/plain + a message/rfc822 attachment (a forwarded message, itself
 *        text/plain or multipart/alternative)
 *
 * A shape that does not fit the requested size falls back along rfc822 -> nested -> mixed ->
 * alternative -> plain (us-ascii or utf-8, 50/50), by the gates GEN_GATE_* below: requests under
 * 2 KiB are plain text only, 2-2.5 KiB add alternative, 2.5-3 KiB mixed, 3-3.5 KiB nested. A
 * forwarded message inside message/rfc822 is plain or alternative. Attachments are base64 with
 * 76-character lines, 15-45% of the room going to the text part (at most 32 KiB), the rest to
 * the attachment, so a 1 MiB message with an attachment is mostly base64.
 *
 * Headers, from GEN_FULL_HEADERS (1200 bytes) up: 50% have a second Received, 1-3 To
 * addresses, 50% a Cc line with 1-2 addresses, 60% a User-Agent or X-Mailer, 30% a "Re:"
 * subject with In-Reply-To and References, 10% "Fwd:". Below it: one Received, one To, none of
 * the optional fields, so a minimal message (about 600 bytes) stays valid. Subjects: 20% are
 * UTF-8 as RFC 2047 B encoded-words (half of those long enough to fold into several
 * encoded-words from 2 KiB up), 15% are long ASCII subjects folded at spaces. A display name is
 * a Q encoded-word when the drawn first or last name is non-ASCII (a quarter of each table);
 * 1 in 8 addresses has no display name, 1 in 8 (ASCII names) a quoted "Last, First".
 *
 * Body text is sentences of built-in phrases (gen_np, gen_vp, gen_adv), 2-5 sentences a
 * paragraph, wrapped at 72; in utf-8 parts a quarter of the noun phrases are non-ASCII words,
 * quoted-printable. HTML parts carry the same kind of text in <p> elements.
 *
 * Invariants:
 * - Every line ends in CRLF; header lines are at most 78 bytes (folding at whitespace), body
 *   lines at most 78 (text wraps at GEN_WRAP, base64 at 76); every byte is 7-bit and non-NUL.
 * - Boundaries are "=_mock_" + 16 hex digits + "_" + a letter: all the same length (so no
 *   boundary is a prefix of another), drawn per multipart, and never found in content: "=_"
 *   cannot occur in quoted-printable (a "=" is followed by a hex digit or CRLF), in base64
 *   ("=" only as final padding) or in the phrase and word lists.
 * - Quoted-printable lines never end in whitespace and contain only whole =XX escapes.
 * - Size: headers and structure are written first; each content leaf gets a share of what is
 *   left, and the last leaf is sized from the exact remaining tail, so the total lands within
 *   a word or a base64 quantum of the target, except where a lone minimal message is larger.
 * - Date is in 2023-2024 with a drawn zone offset; Received dates follow it by seconds or
 *   minutes. The Message-ID is "<" hex(mix(seed ^ c)) "." index "@mock.test>": mix is a
 *   bijection, so it is unique per (seed, index).
 */
#include "gen.h"

#define GEN_HDR_MAX 78        /* RFC 5322 2.1.1: lines SHOULD be at most 78 characters */
#define GEN_WRAP 72           /* body text line width; quoted-printable allows 76 (RFC 2045 6.7) */
#define GEN_B64_LINE 57       /* raw bytes per 76-character base64 line */
#define GEN_FULL_HEADERS 1200 /* below this: one Received, one To, no Cc/User-Agent/Re: */
#define GEN_LONG_SUBJECT 2048 /* long folded subjects from here */
#define GEN_GATE_ALT 2048     /* smallest request that may be multipart/alternative */
#define GEN_GATE_MIXED 2560   /* text + attachment */
#define GEN_GATE_NESTED 3072  /* mixed(alternative, attachment) */
#define GEN_GATE_RFC822 3584  /* mixed(text, message/rfc822) */
#define GEN_TEXT_CAP 32768    /* text part of a message with an attachment: at most this */
#define GEN_DATE_FROM 1672531200 /* 2023-01-01T00:00:00Z */
#define GEN_DATE_SPAN 63158400   /* two years, to 2025-01-01T00:00:00Z */

enum gen_shape {
    GEN_PLAIN_ASCII,
    GEN_PLAIN_UTF8,
    GEN_ALTERNATIVE,
    GEN_MIXED,
    GEN_NESTED,
    GEN_RFC822,
};

/* Text modes. */
#define GEN_TEXT_UTF8 1u /* quoted-printable, with non-ASCII words */
#define GEN_TEXT_HTML 2u /* paragraphs in <p> */

/* One SplitMix64 stream from a per-message key: draw k is mix(key + k * gamma). */
struct gen_rng {
    uint64_t state;
    uint64_t pool; /* unused bits of the last draw, for small draws (word indexes) */
    unsigned bits;
};

struct gen {
    struct gen_rng rng;
    struct ms_buf *out;
    uint64_t seed;
    uint64_t index;
};

/* A person: indexes into the name tables, a local-part style and a domain. */
struct gen_person {
    unsigned first, last, style, domain;
};

/* ---- tables ---- */

/* Body text is sentences of four phrases: noun phrase, verb phrase, noun phrase, adverbial
 * ("The budget request has approved the demo by friday."). Phrases sit in 32-byte slots so one
 * is copied with a fixed-size memcpy. No phrase starts with "from" (a body line starting
 * "From " is mangled by mbox tools) and none contains "=" or "_". */
struct gen_phrase {
    uint8_t len;
    char s[31];
};

/* clang-format off */
#define C(s) {sizeof(s) - 1, s}
static const struct gen_phrase gen_np[] = {
    C("the team"), C("our customer"), C("the new release"), C("the budget"), C("the first draft"),
    C("your feedback"), C("the agenda"), C("the mail server"), C("the quarterly report"),
    C("the contract"), C("the last invoice"), C("my notes"), C("the schedule"),
    C("the next version"), C("the test results"), C("the data"), C("the analysis"),
    C("the office move"), C("the weekly meeting"), C("the design review"), C("the project plan"),
    C("the support ticket"), C("the proposal"), C("the slides"), C("the shared folder"),
    C("the calendar invite"), C("the minutes"), C("the open issues"), C("the network upgrade"),
    C("the travel plans"), C("the lunch order"), C("the status page"), C("the release notes"),
    C("the backup job"), C("the new hire"), C("the product roadmap"), C("the vendor"),
    C("the legal team"), C("the finance team"), C("the sales numbers"), C("the survey results"),
    C("the demo"), C("the prototype"), C("the training session"), C("the offsite"),
    C("the dashboard"), C("the test plan"), C("the migration"), C("the holiday schedule"),
    C("the board meeting"), C("the press release"), C("the user guide"), C("the customer call"),
    C("the deployment"), C("the price list"), C("the spreadsheet"), C("the workshop"),
    C("the security audit"), C("the budget request"), C("the hiring plan"), C("everyone"),
    C("the whole team"), C("the client"), C("the old system"),
};
_Static_assert(MS_ARRAY_LEN(gen_np) == 64, "gen_np is indexed with 6 bits");

static const struct gen_phrase gen_vp[] = {
    C("will review"), C("can send"), C("should check"), C("needs to confirm"), C("has shared"),
    C("wants to discuss"), C("is ready for"), C("moved"), C("looks good for"), C("depends on"),
    C("will update"), C("has approved"), C("asked about"), C("will prepare"), C("is waiting for"),
    C("can cover"), C("forwarded"), C("signed off on"), C("will present"), C("still needs"),
    C("has finished"), C("will follow up on"), C("cannot attend"), C("is blocking"), C("replaced"),
    C("should include"), C("booked"), C("cancelled"), C("postponed"), C("will summarize"),
    C("just received"), C("has questions about"),
};
_Static_assert(MS_ARRAY_LEN(gen_vp) == 32, "gen_vp is indexed with 5 bits");

static const struct gen_phrase gen_adv[] = {
    C("by friday"), C("on monday"), C("tomorrow morning"), C("later today"), C("next week"),
    C("before the deadline"), C("after lunch"), C("in the afternoon"), C("as soon as possible"),
    C("for now"), C("this week"), C("by end of day"), C("before the call"), C("after the meeting"),
    C("next month"), C("in the next sprint"), C("by tuesday"), C("early next week"),
    C("on thursday"), C("once it is ready"), C("if possible"), C("again"), C("in time"),
    C("first thing tomorrow"), C("before the weekend"), C("this quarter"),
    C("until further notice"), C("right away"), C("on short notice"), C("at the latest"),
    C("over the weekend"), C("ahead of the review"),
};
_Static_assert(MS_ARRAY_LEN(gen_adv) == 32, "gen_adv is indexed with 5 bits");
#undef C

/* Non-ASCII words: raw UTF-8 (for encoded-word subjects) and quoted-printable (for bodies),
 * the latter in a 48-byte slot for a fixed-size copy. */
struct gen_uword {
    uint8_t len;
    uint8_t qlen;
    char raw[14];
    char qp[48];
};

static const struct gen_uword gen_uwords[] = {
    {5, 9, "caf\xc3\xa9", "caf=C3=A9"},
    {6, 10, "na\xc3\xafve", "na=C3=AFve"},
    {7, 15, "Gr\xc3\xbc\xc3\x9f" "e", "Gr=C3=BC=C3=9Fe"},
    {7, 11, "fa\xc3\xa7" "ade", "fa=C3=A7ade"},
    {6, 14, "d\xc3\xa9j\xc3\xa0", "d=C3=A9j=C3=A0"},
    {7, 11, "Z\xc3\xbcrich", "Z=C3=BCrich"},
    {4, 8, "S\xc3\xa3o", "S=C3=A3o"},
    {10, 18, "\xc3\x85ngstr\xc3\xb6m", "=C3=85ngstr=C3=B6m"},
    {9, 27, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "=E6=97=A5=E6=9C=AC=E8=AA=9E"},
    {12, 36, "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",
     "=D0=9F=D1=80=D0=B8=D0=B2=D0=B5=D1=82"},
    {12, 36, "\xce\x95\xce\xbb\xce\xbb\xce\xac\xce\xb4\xce\xb1",
     "=CE=95=CE=BB=CE=BB=CE=AC=CE=B4=CE=B1"},
    {13, 21, "sm\xc3\xb6rg\xc3\xa5sbord", "sm=C3=B6rg=C3=A5sbord"},
    {7, 11, "pi\xc3\xb1" "ata", "pi=C3=B1ata"},
    {6, 10, "cr\xc3\xa8me", "cr=C3=A8me"},
    {8, 16, "br\xc3\xbbl\xc3\xa9" "e", "br=C3=BBl=C3=A9e"},
    {8, 16, "r\xc3\xa9sum\xc3\xa9", "r=C3=A9sum=C3=A9"},
    {6, 12, "\xe2\x82\xac" "100", "=E2=82=AC100"},
    {5, 9, "K\xc3\xb6ln", "K=C3=B6ln"},
    {5, 13, "\xc3\x86r\xc3\xb8", "=C3=86r=C3=B8"},
    {7, 11, "touch\xc3\xa9", "touch=C3=A9"},
    {5, 9, "\xc3\xbc" "ber", "=C3=BCber"},
    {6, 10, "se\xc3\xb1or", "se=C3=B1or"},
    {7, 11, "ma\xc3\xb1" "ana", "ma=C3=B1ana"},
    {6, 18, "\xe5\x8c\x97\xe4\xba\xac", "=E5=8C=97=E4=BA=AC"},
    {7, 19, "\xc5\x81\xc3\xb3" "d\xc5\xba", "=C5=81=C3=B3d=C5=BA"},
    {7, 11, "Stra\xc3\x9f" "e", "Stra=C3=9Fe"},
    {5, 9, "ni\xc3\xb1o", "ni=C3=B1o"},
    {9, 17, "fj\xc3\xb6r\xc3\xb0ur", "fj=C3=B6r=C3=B0ur"},
    {12, 36, "\xd0\x9c\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0",
     "=D0=9C=D0=BE=D1=81=D0=BA=D0=B2=D0=B0"},
    {10, 30, "\xce\xba\xcf\x8c\xcf\x83\xce\xbc\xce\xb5", "=CE=BA=CF=8C=CF=83=CE=BC=CE=B5"},
    {5, 9, "\xc3\xa9lan", "=C3=A9lan"},
    {3, 7, "\xc3\x96l", "=C3=96l"},
};
_Static_assert(MS_ARRAY_LEN(gen_uwords) == 32, "gen_uwords is indexed with 5 bits");

/* Names: the display form (UTF-8) and an ASCII form for the local part. The last 8 of each
 * table are non-ASCII. */
struct gen_name {
    const char *display;
    const char *ascii;
};

static const struct gen_name gen_first[] = {
    {"Alice", "alice"}, {"Bob", "bob"}, {"Carol", "carol"}, {"David", "david"},
    {"Erin", "erin"}, {"Frank", "frank"}, {"Grace", "grace"}, {"Heidi", "heidi"},
    {"Ivan", "ivan"}, {"Judy", "judy"}, {"Mallory", "mallory"}, {"Niaj", "niaj"},
    {"Olivia", "olivia"}, {"Peggy", "peggy"}, {"Rupert", "rupert"}, {"Sybil", "sybil"},
    {"Trent", "trent"}, {"Victor", "victor"}, {"Walter", "walter"}, {"Wendy", "wendy"},
    {"Hannah", "hannah"}, {"Kenji", "kenji"}, {"Priya", "priya"}, {"Mateo", "mateo"},
    {"Jos\xc3\xa9", "jose"}, {"Zo\xc3\xab", "zoe"}, {"J\xc3\xbcrgen", "juergen"},
    {"S\xc3\xb8ren", "soren"}, {"Fran\xc3\xa7ois", "francois"}, {"\xc3\x85sa", "asa"},
    {"\xc5\x81ukasz", "lukasz"}, {"Ren\xc3\xa9" "e", "renee"},
};
_Static_assert(MS_ARRAY_LEN(gen_first) == 32, "indexed with 5 bits");

static const struct gen_name gen_last[] = {
    {"Smith", "smith"}, {"Johnson", "johnson"}, {"Brown", "brown"}, {"Garcia", "garcia"},
    {"Miller", "miller"}, {"Davis", "davis"}, {"Wilson", "wilson"}, {"Taylor", "taylor"},
    {"Anderson", "anderson"}, {"Thomas", "thomas"}, {"Moore", "moore"}, {"Martin", "martin"},
    {"Lee", "lee"}, {"Clark", "clark"}, {"Walker", "walker"}, {"Young", "young"},
    {"Nakamura", "nakamura"}, {"Okafor", "okafor"}, {"Fischer", "fischer"}, {"Rossi", "rossi"},
    {"Kowalski", "kowalski"}, {"Haddad", "haddad"}, {"Patel", "patel"}, {"Larsen", "larsen"},
    {"M\xc3\xbcller", "mueller"}, {"N\xc3\xba\xc3\xb1" "ez", "nunez"},
    {"\xc3\x98stergaard", "ostergaard"}, {"Dvo\xc5\x99\xc3\xa1k", "dvorak"},
    {"Gon\xc3\xa7" "alves", "goncalves"}, {"\xc3\x85ngstr\xc3\xb6m", "angstrom"},
    {"\xc3\x87" "elik", "celik"}, {"Szab\xc3\xb3", "szabo"},
};
_Static_assert(MS_ARRAY_LEN(gen_last) == 32, "indexed with 5 bits");

/* clang-format on */

/* Sender domains (RFC 2606 / 6761 reserved names); recipients are at mock.test. */
static const char *const gen_domains[] = {
    "example.com",    "example.org",     "example.net",      "acme.example",
    "globex.example", "initech.example", "umbrella.example", "hooli.example",
};
#define GEN_LOCAL_DOMAIN 8 /* a person's domain index meaning mock.test */

static const char *const gen_agents[] = {
    "User-Agent: Mozilla Thunderbird 115.6.0",
    "User-Agent: Mutt/2.2.9 (2022-11-12)",
    "X-Mailer: Apple Mail (2.3774.300.61.1.2)",
    "X-Mailer: Microsoft Outlook 16.0",
    "User-Agent: Roundcube Webmail/1.6.5",
    "User-Agent: K-9 Mail for Android",
    "X-Mailer: Evolution 3.46.4",
    "User-Agent: Alpine 2.26 (DEB 649 2022-06-02)",
};

/* Zone offsets in minutes, east of UTC. */
static const int gen_zones[] = {0, 60, 120, -300, -240, -420, 330, 540, 600, -180, 0, 60};

static const char gen_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char gen_hex[] = "0123456789ABCDEF";
static const char gen_hexl[] = "0123456789abcdef";

/* ---- the hash ---- */

static void
gen_rng_init(struct gen_rng *r, uint64_t seed, uint64_t index)
{
    r->state = ms_mix64(seed ^ ms_splitmix64(index));
    r->pool = 0;
    r->bits = 0;
}

static inline uint64_t
gen_next(struct gen_rng *r)
{
    return ms_splitmix64_next(&r->state);
}

/* n (<= 32) bits, from the pool of a previous draw when enough are left. */
static inline unsigned
gen_bits(struct gen_rng *r, unsigned n)
{
    if (r->bits < n) {
        r->pool = gen_next(r);
        r->bits = 64;
    }
    unsigned v = (unsigned)(r->pool & ((1ull << n) - 1));
    r->pool >>= n;
    r->bits -= n;
    return v;
}

/* Uniform-enough in [0, n) for small n. */
static inline uint64_t
gen_below(struct gen_rng *r, uint64_t n)
{
    return ((gen_next(r) >> 32) * n) >> 32;
}

/* ---- small writers ---- */

/* ms_buf_append without the call when the room is there (ms_gen_message reserves the whole
 * message up front). data[len] is made NUL again at the end of ms_gen_message. */
static inline void
gen_app(struct ms_buf *out, const char *s, size_t n)
{
    if (out->cap - out->len > n) {
        memcpy(out->data + out->len, s, n);
        out->len += n;
    } else {
        ms_buf_append(out, s, n);
    }
}

static inline void
gen_app1(struct ms_buf *out, char c)
{
    if (out->cap - out->len > 1)
        out->data[out->len++] = c;
    else
        ms_buf_putc(out, c);
}

static inline void
gen_put(struct ms_buf *out, const char *s)
{
    gen_app(out, s, strlen(s));
}

/* Decimal of v into dst (no NUL); returns the length. */
static size_t
gen_fmt_dec(char *dst, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    return n;
}

static void
gen_fmt_hex(char *dst, uint64_t v, unsigned digits, const char *alphabet)
{
    for (unsigned i = 0; i < digits; i++)
        dst[i] = alphabet[(v >> (4 * (digits - 1 - i))) & 15];
}

/* RFC 5322 3.3 date-time, e.g. "Tue, 14 May 2024 09:12:33 +0200", for the instant t (UTC
 * seconds) shown in the zone zone_min minutes east. Returns the length (at most 31). */
static size_t
gen_fmt_date(char *dst, int64_t t, int zone_min)
{
    static const char days[] = "ThuFriSatSunMonTueWed"; /* 1970-01-01 was a Thursday */
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int64_t local = t + (int64_t)zone_min * 60;
    int64_t day = local / 86400, sec = local % 86400;
    int64_t y;
    unsigned m, d;
    ms_civil_from_days(day, &y, &m, &d);
    size_t n = 0;
    memcpy(dst + n, days + (day % 7) * 3, 3);
    n += 3;
    dst[n++] = ',';
    dst[n++] = ' ';
    n += gen_fmt_dec(dst + n, d);
    dst[n++] = ' ';
    memcpy(dst + n, months + (m - 1) * 3, 3);
    n += 3;
    dst[n++] = ' ';
    n += gen_fmt_dec(dst + n, (uint64_t)y);
    dst[n++] = ' ';
    unsigned hms[3] = {(unsigned)(sec / 3600), (unsigned)(sec / 60 % 60), (unsigned)(sec % 60)};
    for (int i = 0; i < 3; i++) {
        dst[n++] = (char)('0' + hms[i] / 10);
        dst[n++] = (char)('0' + hms[i] % 10);
        dst[n++] = i < 2 ? ':' : ' ';
    }
    unsigned z = (unsigned)(zone_min < 0 ? -zone_min : zone_min);
    dst[n++] = zone_min < 0 ? '-' : '+';
    dst[n++] = (char)('0' + z / 600);
    dst[n++] = (char)('0' + z / 60 % 10);
    dst[n++] = (char)('0' + z % 60 / 10);
    dst[n++] = (char)('0' + z % 10);
    return n;
}

/* Base64 of n (<= 57) bytes into dst, padded; returns the length. */
static size_t
gen_b64_encode(const uint8_t *s, size_t n, char *dst)
{
    char *p = dst;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        p[0] = gen_b64[v >> 18];
        p[1] = gen_b64[(v >> 12) & 63];
        p[2] = gen_b64[(v >> 6) & 63];
        p[3] = gen_b64[v & 63];
        p += 4;
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        p[0] = gen_b64[v >> 18];
        p[1] = gen_b64[(v >> 12) & 63];
        p[2] = i + 1 < n ? gen_b64[(v >> 6) & 63] : '=';
        p[3] = '=';
        p += 4;
    }
    return (size_t)(p - dst);
}

/* ---- header lines with folding ---- */

/* A header line being written: tokens are separated by a space, or by CRLF + space when the
 * line would pass GEN_HDR_MAX (RFC 5322 2.2.3 folding). */
struct gen_hdr {
    struct ms_buf *out;
    size_t col;
};

static void
gen_hdr_start(struct gen_hdr *h, struct ms_buf *out, const char *name)
{
    h->out = out;
    h->col = strlen(name) + 1;
    gen_app(out, name, h->col - 1);
    gen_app1(out, ':');
}

static void
gen_hdr_tok(struct gen_hdr *h, const char *s, size_t n)
{
    if (h->col == 0) {
        h->col = 1; /* right after gen_hdr_fold: the tab is the separator */
    } else if (h->col + 1 + n > GEN_HDR_MAX && h->col > 1) {
        gen_app(h->out, "\r\n ", 3);
        h->col = 1;
    } else {
        gen_app1(h->out, ' ');
        h->col++;
    }
    gen_app(h->out, s, n);
    h->col += n;
}

static void
gen_hdr_tokz(struct gen_hdr *h, const char *s)
{
    gen_hdr_tok(h, s, strlen(s));
}

/* An unconditional fold, as MTAs write Received ("\r\n\t"); col 0 tells gen_hdr_tok that
 * the next token needs no space. */
static void
gen_hdr_fold(struct gen_hdr *h)
{
    gen_app(h->out, "\r\n\t", 3);
    h->col = 0;
}

static void
gen_hdr_end(struct gen_hdr *h)
{
    gen_app(h->out, "\r\n", 2);
}

/* ---- people and addresses ---- */

static void
gen_person(struct gen_rng *r, struct gen_person *p, int local)
{
    uint64_t v = gen_next(r);
    p->first = (unsigned)(v & 31);
    p->last = (unsigned)(v >> 5 & 31);
    p->style = (unsigned)(v >> 10 & 7);
    p->domain = local ? GEN_LOCAL_DOMAIN : (unsigned)(v >> 13 & 7);
}

/* The addr-spec (no brackets) into dst; returns the length (at most 48). */
static size_t
gen_fmt_addr(const struct gen_person *p, char *dst)
{
    const char *f = gen_first[p->first].ascii, *l = gen_last[p->last].ascii;
    const char *dom = p->domain == GEN_LOCAL_DOMAIN ? "mock.test" : gen_domains[p->domain];
    size_t n = 0, fl = strlen(f), ll = strlen(l), dl = strlen(dom);
    switch (p->style & 3) {
    case 0: /* first.last */
    case 3:
        memcpy(dst, f, fl);
        n = fl;
        dst[n++] = '.';
        memcpy(dst + n, l, ll);
        n += ll;
        break;
    case 1: /* flast */
        dst[n++] = f[0];
        memcpy(dst + n, l, ll);
        n += ll;
        break;
    default: /* first */
        memcpy(dst, f, fl);
        n = fl;
        break;
    }
    dst[n++] = '@';
    memcpy(dst + n, dom, dl);
    return n + dl;
}

/* RFC 2047 Q encoding of UTF-8 text as one encoded-word (the caller keeps it under 75
 * characters: names are short). Returns the length. */
static size_t
gen_fmt_qword(const char *s, char *dst)
{
    size_t n = 0;
    memcpy(dst, "=?UTF-8?Q?", 10);
    n = 10;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
            dst[n++] = (char)c;
        } else if (c == ' ') {
            dst[n++] = '_'; /* RFC 2047 4.2 (2) */
        } else {
            dst[n++] = '=';
            dst[n++] = gen_hex[c >> 4];
            dst[n++] = gen_hex[c & 15];
        }
    }
    dst[n++] = '?';
    dst[n++] = '=';
    return n;
}

/* Writes one mailbox (RFC 5322 3.4) as header tokens: a display name (plain, quoted
 * "Last, First", or an encoded-word when it is not ASCII) and the angle address, or a bare
 * address for style 7. sep is appended to the last token ("," in lists). */
static void
gen_hdr_mailbox(struct gen_hdr *h, const struct gen_person *p, const char *sep)
{
    char addr[64], tok[128];
    size_t an = gen_fmt_addr(p, addr + 1);
    size_t sl = strlen(sep);
    if (p->style == 7) {
        memcpy(tok, addr + 1, an);
        memcpy(tok + an, sep, sl);
        gen_hdr_tok(h, tok, an + sl);
        return;
    }
    const char *f = gen_first[p->first].display, *l = gen_last[p->last].display;
    size_t fl = strlen(f), ll = strlen(l), n = 0;
    if (!ms_is_ascii(f) || !ms_is_ascii(l)) {
        char raw[64];
        memcpy(raw, f, fl);
        raw[fl] = ' ';
        memcpy(raw + fl + 1, l, ll + 1);
        n = gen_fmt_qword(raw, tok);
        gen_hdr_tok(h, tok, n);
    } else if (p->style == 6) {
        /* the comma makes a quoted-string necessary (RFC 5322 3.2.4) */
        tok[n++] = '"';
        memcpy(tok + n, l, ll);
        n += ll;
        tok[n++] = ',';
        tok[n++] = ' ';
        memcpy(tok + n, f, fl);
        n += fl;
        tok[n++] = '"';
        gen_hdr_tok(h, tok, n);
    } else {
        gen_hdr_tok(h, f, fl);
        gen_hdr_tok(h, l, ll);
    }
    addr[0] = '<';
    addr[an + 1] = '>';
    memcpy(addr + an + 2, sep, sl);
    gen_hdr_tok(h, addr, an + 2 + sl);
}

/* ---- header section ---- */

static const struct gen_phrase *const gen_sentence[4] = {gen_np, gen_vp, gen_np, gen_adv};
static const unsigned gen_sentence_bits[4] = {6, 5, 6, 5};

/* A subject of n phrases into dst (at most 9 * 46 bytes): one noun phrase, a noun phrase and
 * an adverbial, or whole sentences; with utf8, non-ASCII words (raw UTF-8) after the first
 * phrase and after half of the others. Returns the length. */
static size_t
gen_fmt_subject_words(struct gen_rng *r, char *dst, unsigned nphrases, int utf8)
{
    size_t n = 0;
    for (unsigned i = 0; i < nphrases; i++) {
        unsigned slot = nphrases == 2 ? (i ? 3 : 0) : (i & 3);
        if (i)
            dst[n++] = ' ';
        const struct gen_phrase *ph = &gen_sentence[slot][gen_bits(r, gen_sentence_bits[slot])];
        memcpy(dst + n, ph->s, ph->len);
        if (i == 0)
            dst[n] = (char)(dst[n] - 'a' + 'A');
        n += ph->len;
        if (utf8 && (i == 0 || gen_bits(r, 1))) {
            const struct gen_uword *u = &gen_uwords[gen_bits(r, 5)];
            dst[n++] = ' ';
            memcpy(dst + n, u->raw, u->len);
            n += u->len;
        }
    }
    return n;
}

static void
gen_subject(struct gen *g, size_t target)
{
    struct gen_rng *r = &g->rng;
    struct gen_hdr h;
    char raw[512];
    int full = target >= GEN_FULL_HEADERS;
    unsigned kind = (unsigned)gen_below(r, 100);
    int utf8 = kind < 20;
    int is_long = full && target >= GEN_LONG_SUBJECT && kind >= 20 && kind < 35;
    unsigned nwords = is_long ? 6 + gen_bits(r, 2) : 1 + gen_bits(r, 1);
    if (utf8 && target >= GEN_LONG_SUBJECT && gen_bits(r, 1))
        nwords = 4 + gen_bits(r, 2); /* a long encoded subject: several encoded-words, folded */
    size_t n = 0;
    unsigned prefix = (unsigned)gen_below(r, 10);
    if (full && prefix < 3) {
        memcpy(raw, "Re: ", 4);
        n = 4;
    } else if (full && prefix == 3) {
        memcpy(raw, "Fwd: ", 5);
        n = 5;
    }
    n += gen_fmt_subject_words(r, raw + n, nwords, utf8);
    gen_hdr_start(&h, g->out, "Subject");
    if (!utf8) {
        /* ASCII: each word a token, so the line folds at spaces */
        size_t i = 0;
        while (i < n) {
            size_t j = i;
            while (j < n && raw[j] != ' ')
                j++;
            gen_hdr_tok(&h, raw + i, j - i);
            i = j + 1;
        }
    } else {
        /* RFC 2047: B encoded-words of whole characters (section 5), at most 42 bytes of text
         * each so that "Subject: " plus one word stays within 78 columns; the space between
         * adjacent encoded-words is not part of the text (section 6.2). */
        size_t i = 0;
        while (i < n) {
            size_t take = MS_MIN((size_t)42, n - i);
            while (i + take < n && ((unsigned char)raw[i + take] & 0xc0) == 0x80)
                take--;
            char tok[80];
            memcpy(tok, "=?UTF-8?B?", 10);
            size_t tl = 10 + gen_b64_encode((const uint8_t *)raw + i, take, tok + 10);
            tok[tl++] = '?';
            tok[tl++] = '=';
            gen_hdr_tok(&h, tok, tl);
            i += take;
        }
    }
    gen_hdr_end(&h);
    if (full && prefix < 3) {
        /* a reply: In-Reply-To and References (RFC 5322 3.6.4) */
        char id[64];
        size_t il = 0;
        id[il++] = '<';
        gen_fmt_hex(id + il, gen_next(r), 16, gen_hexl);
        il += 16;
        memcpy(id + il, "@mail.example.com>", 18);
        il += 18;
        gen_hdr_start(&h, g->out, "In-Reply-To");
        gen_hdr_tok(&h, id, il);
        gen_hdr_end(&h);
        gen_hdr_start(&h, g->out, "References");
        unsigned refs = 1 + gen_bits(r, 2);
        for (unsigned k = 0; k < refs; k++) {
            char older[64];
            older[0] = '<';
            gen_fmt_hex(older + 1, gen_next(r), 16, gen_hexl);
            memcpy(older + 17, "@mail.example.com>", 18);
            gen_hdr_tok(&h, older, 35);
        }
        gen_hdr_tok(&h, id, il);
        gen_hdr_end(&h);
    }
}

/* One Received field (RFC 5321 4.4). */
static void
gen_received(struct gen *g, const char *from_host, const char *from_ip_note, const char *by,
             const char *with, const char *for_addr, size_t for_len, int64_t t, int zone)
{
    char tok[96], date[40];
    size_t n;
    struct gen_hdr h;
    gen_hdr_start(&h, g->out, "Received");
    gen_hdr_tokz(&h, "from");
    gen_hdr_tokz(&h, from_host);
    gen_hdr_tokz(&h, from_ip_note);
    gen_hdr_fold(&h);
    gen_hdr_tokz(&h, "by");
    gen_hdr_tokz(&h, by);
    gen_hdr_tokz(&h, "with");
    gen_hdr_tokz(&h, with);
    gen_hdr_tokz(&h, "id");
    gen_fmt_hex(tok, gen_next(&g->rng), 10, gen_hex);
    gen_hdr_tok(&h, tok, 10);
    gen_hdr_fold(&h);
    gen_hdr_tokz(&h, "for");
    tok[0] = '<';
    memcpy(tok + 1, for_addr, for_len);
    memcpy(tok + 1 + for_len, ">;", 2);
    gen_hdr_tok(&h, tok, for_len + 3);
    n = gen_fmt_date(date, t, zone);
    gen_hdr_tok(&h, date, n);
    gen_hdr_end(&h);
}

static void
gen_fmt_ip(char *dst, const char *prefix, unsigned last, const char *suffix)
{
    size_t n = strlen(prefix);
    memcpy(dst, prefix, n);
    n += gen_fmt_dec(dst + n, last);
    strcpy(dst + n, suffix);
}

/* Everything up to and including MIME-Version. Returns the Date as seconds. */
static int64_t
gen_headers(struct gen *g, size_t target, int depth, int64_t before)
{
    struct gen_rng *r = &g->rng;
    struct ms_buf *out = g->out;
    int full = target >= GEN_FULL_HEADERS;
    struct gen_person from, to[3], cc[2];
    gen_person(r, &from, 0);
    unsigned nto = full ? 1 + (unsigned)gen_below(r, 3) : 1;
    for (unsigned i = 0; i < nto; i++)
        gen_person(r, &to[i], 1);
    unsigned ncc = full && gen_bits(r, 1) ? 1 + gen_bits(r, 1) : 0;
    for (unsigned i = 0; i < ncc; i++)
        gen_person(r, &cc[i], 1);
    int64_t date;
    if (before)
        date = before - 3600 - (int64_t)gen_below(r, 30 * 86400);
    else
        date = GEN_DATE_FROM + (int64_t)gen_below(r, GEN_DATE_SPAN);
    int zone = gen_zones[gen_below(r, MS_ARRAY_LEN(gen_zones))];

    char addr[64], host[64], note[64];
    size_t an = gen_fmt_addr(&from, addr);
    addr[an] = '\0';
    const char *dom = gen_domains[from.domain];
    memcpy(host, "mail.", 5);
    strcpy(host + 5, dom);

    gen_app(out, "Return-Path: <", 14);
    gen_app(out, addr, an);
    gen_app(out, ">\r\n", 3);

    char rcpt[64];
    size_t rn = gen_fmt_addr(&to[0], rcpt);
    int64_t submitted = date + 1 + (int64_t)gen_below(r, 20);
    int64_t delivered = submitted + 1 + (int64_t)gen_below(r, 300);
    note[0] = '(';
    strcpy(note + 1, host);
    gen_fmt_ip(note + 1 + strlen(host), " [198.51.100.", 1 + (unsigned)gen_below(r, 254), "])");
    gen_received(g, host, note, "mx.mock.test (mocksrv)", "ESMTPS", rcpt, rn, delivered, 0);
    if (full && gen_bits(r, 1)) {
        char lan[32];
        gen_fmt_ip(lan, "[192.168.1.", 2 + (unsigned)gen_below(r, 200), "]");
        gen_fmt_ip(note, "(unknown [203.0.113.", 1 + (unsigned)gen_below(r, 254), "])");
        char by[96];
        strcpy(by, host);
        strcat(by, " (Postfix)");
        gen_received(g, lan, note, by, "ESMTPSA", rcpt, rn, submitted, zone);
    }

    char d[40];
    size_t dn = gen_fmt_date(d, date, zone);
    gen_app(out, "Date: ", 6);
    gen_app(out, d, dn);
    gen_app(out, "\r\n", 2);

    struct gen_hdr h;
    gen_hdr_start(&h, out, "From");
    gen_hdr_mailbox(&h, &from, "");
    gen_hdr_end(&h);
    gen_hdr_start(&h, out, "To");
    for (unsigned i = 0; i < nto; i++)
        gen_hdr_mailbox(&h, &to[i], i + 1 < nto ? "," : "");
    gen_hdr_end(&h);
    if (ncc) {
        gen_hdr_start(&h, out, "Cc");
        for (unsigned i = 0; i < ncc; i++)
            gen_hdr_mailbox(&h, &cc[i], i + 1 < ncc ? "," : "");
        gen_hdr_end(&h);
    }

    gen_subject(g, target);

    char id[80];
    size_t il = 0;
    id[il++] = '<';
    if (depth == 0) {
        gen_fmt_hex(id + il, ms_mix64(g->seed ^ 0x6d6f636b73727631ULL), 16, gen_hexl);
        il += 16;
        id[il++] = '.';
        il += gen_fmt_dec(id + il, g->index);
        memcpy(id + il, "@mock.test>", 11);
        il += 11;
    } else {
        gen_fmt_hex(id + il, gen_next(r), 16, gen_hexl);
        il += 16;
        id[il++] = '@';
        memcpy(id + il, host, strlen(host));
        il += strlen(host);
        id[il++] = '>';
    }
    gen_app(out, "Message-ID: ", 12);
    gen_app(out, id, il);
    gen_app(out, "\r\n", 2);

    if (full && gen_below(r, 10) < 6) {
        gen_put(out, gen_agents[gen_bits(r, 3)]);
        gen_app(out, "\r\n", 2);
    }
    gen_app(out, "MIME-Version: 1.0\r\n", 19);
    return date;
}

/* ---- bodies ---- */

/*
 * Appends paragraphs of text until out->len reaches about end (never less than one line):
 * sentences of four phrases (gen_sentence), 2-5 sentences a paragraph, lines wrapped at
 * GEN_WRAP between phrases, the last line ending in CRLF. With GEN_TEXT_UTF8 a quarter of the
 * noun phrases are non-ASCII words, written quoted-printable; with GEN_TEXT_HTML each
 * paragraph is a <p> element. This loop is most of the generator's time: one draw serves
 * several phrases, and phrases are copied in fixed-size slots.
 */
static void
gen_text(struct gen *g, size_t end, unsigned mode)
{
    struct gen_rng *r = &g->rng;
    struct ms_buf *out = g->out;
    size_t want = end > out->len + 64 ? end - out->len : 64;
    /* slack: a fixed-size phrase copy (48) and the closing punctuation, tag and CRLFs */
    ms_buf_reserve(out, want + 96);
    char *p = out->data + out->len;
    const char *limit = p + want;
    size_t col = 0;
    unsigned sentences = 0, slot = 0;
    int fresh = 1; /* at the start of a line or right after "<p>": no space before a phrase */
    size_t punct = (mode & GEN_TEXT_HTML) ? 5 : 1; /* "." and "</p>" may follow a phrase */
    int html = (mode & GEN_TEXT_HTML) != 0, utf8 = (mode & GEN_TEXT_UTF8) != 0;
    for (;;) {
        if (sentences == 0) {
            sentences = 2 + gen_bits(r, 2);
            if (html) {
                memcpy(p, "<p>", 3);
                p += 3;
                col = 3;
            }
        }
        const char *w;
        size_t wl;
        if (utf8 && (slot & 1) == 0 && gen_bits(r, 2) == 0) {
            const struct gen_uword *u = &gen_uwords[gen_bits(r, 5)];
            w = u->qp;
            wl = u->qlen;
        } else {
            const struct gen_phrase *ph = &gen_sentence[slot][gen_bits(r, gen_sentence_bits[slot])];
            w = ph->s;
            wl = ph->len;
        }
        /* the last phrase: once this one and the closing bytes reach the target */
        int last = p + 1 + wl + punct + 8 >= limit;
        if (!fresh && col + 1 + wl + punct > GEN_WRAP) {
            memcpy(p, "\r\n", 2);
            p += 2;
            col = 0;
            fresh = 1;
        }
        if (!fresh) {
            *p++ = ' ';
            col++;
        }
        fresh = 0;
        if (wl < sizeof gen_np[0].s)
            memcpy(p, w, sizeof gen_np[0].s);
        else
            memcpy(p, w, sizeof gen_uwords[0].qp);
        if (slot == 0 && p[0] >= 'a' && p[0] <= 'z')
            p[0] = (char)(p[0] - 'a' + 'A');
        p += wl;
        col += wl;
        slot = (slot + 1) & 3;
        if (slot == 0 || last) {
            *p++ = '.';
            col++;
            slot = 0;
            if (--sentences == 0 || last) {
                if (html) {
                    memcpy(p, "</p>", 4);
                    p += 4;
                }
                memcpy(p, "\r\n", 2);
                p += 2;
                if (last)
                    break;
                memcpy(p, "\r\n", 2); /* blank line between paragraphs */
                p += 2;
                sentences = 0;
                col = 0;
                fresh = 1;
            }
        }
    }
    out->len = (size_t)(p - out->data);
    out->data[out->len] = '\0';
}

/*
 * Appends a base64 body (RFC 2045 6.8: 76-character lines) of bytes drawn from the hash,
 * starting with magic, sized so that out->len ends near end (at least 64 raw bytes).
 */
static void
gen_base64(struct gen *g, size_t end, const char *magic, size_t magic_len)
{
    struct gen_rng *r = &g->rng;
    struct ms_buf *out = g->out;
    size_t want = end > out->len ? end - out->len : 0;
    size_t raw = want / 78 * GEN_B64_LINE;
    if (want % 78 > 2)
        raw += (want % 78 - 2) / 4 * 3;
    if (raw < 64)
        raw = 64;
    size_t lines = (raw + GEN_B64_LINE - 1) / GEN_B64_LINE;
    ms_buf_reserve(out, lines * 2 + (raw + 2) / 3 * 4);
    char *p = out->data + out->len;
    uint8_t chunk[64];
    for (size_t done = 0; done < raw; done += GEN_B64_LINE) {
        for (int i = 0; i < 8; i++) {
            uint64_t v = gen_next(r);
            memcpy(chunk + i * 8, &v, 8);
        }
        if (done == 0)
            memcpy(chunk, magic, magic_len);
        size_t n = MS_MIN((size_t)GEN_B64_LINE, raw - done);
        p += gen_b64_encode(chunk, n, p);
        memcpy(p, "\r\n", 2);
        p += 2;
    }
    out->len = (size_t)(p - out->data);
    out->data[out->len] = '\0';
}

/* "=_mock_" + 16 hex + "_" + letter into b (26 bytes with the NUL). */
static void
gen_boundary(struct gen *g, char *b, char letter)
{
    memcpy(b, "=_mock_", 7);
    gen_fmt_hex(b + 7, gen_next(&g->rng), 16, gen_hexl);
    b[23] = '_';
    b[24] = letter;
    b[25] = '\0';
}

#define GEN_BOUNDARY_LEN 25

static void
gen_delim(struct ms_buf *out, const char *b, int close)
{
    gen_app(out, "--", 2);
    gen_app(out, b, GEN_BOUNDARY_LEN);
    if (close)
        gen_app(out, "--\r\n", 4);
    else
        gen_app(out, "\r\n", 2);
}

/* Length of the closing delimiter line "--B--\r\n". */
#define GEN_CLOSE_LEN (GEN_BOUNDARY_LEN + 6)

static void
gen_multipart_header(struct ms_buf *out, const char *subtype, const char *b)
{
    gen_put(out, "Content-Type: multipart/");
    gen_put(out, subtype);
    gen_app(out, ";\r\n boundary=\"", 14);
    gen_app(out, b, GEN_BOUNDARY_LEN);
    gen_app(out, "\"\r\n", 3);
}

static void
gen_text_part_header(struct ms_buf *out, int utf8, int html)
{
    gen_put(out, html ? "Content-Type: text/html; charset=" : "Content-Type: text/plain; charset=");
    if (utf8)
        gen_put(out, "utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n");
    else
        gen_put(out, "us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n");
}

static const char gen_preamble[] = "This is a multi-part message in MIME format.\r\n";
static const char gen_html_tail[] = "</body></html>\r\n";

/* The parts of a multipart/alternative (text, then html), from the first delimiter to the
 * closing one, ending near end. */
static void
gen_alternative_parts(struct gen *g, const char *b, size_t end)
{
    struct ms_buf *out = g->out;
    int utf8 = (int)gen_bits(&g->rng, 1);
    unsigned mode = utf8 ? GEN_TEXT_UTF8 : 0;
    gen_delim(out, b, 0);
    gen_text_part_header(out, utf8, 0);
    gen_app(out, "\r\n", 2);
    /* HTML carries more markup per word: the text part gets 40% of what is left after the
     * html part's own headers and wrapper (about 200 bytes) */
    size_t left = end > out->len + 200 ? end - out->len - 200 : 0;
    gen_text(g, out->len + left * 2 / 5, mode);
    gen_delim(out, b, 0);
    gen_text_part_header(out, utf8, 1);
    gen_app(out, "\r\n", 2);
    if (utf8)
        gen_put(out, "<html><head><meta charset=3D\"utf-8\"></head><body>\r\n");
    else
        gen_put(out, "<html><head><meta charset=\"us-ascii\"></head><body>\r\n");
    size_t tail = sizeof gen_html_tail - 1 + GEN_CLOSE_LEN;
    gen_text(g, end > tail ? end - tail : 0, mode | GEN_TEXT_HTML);
    gen_app(out, gen_html_tail, sizeof gen_html_tail - 1);
    gen_delim(out, b, 1);
}

/* An attachment part: headers and base64 content ending near end. */
static void
gen_attachment(struct gen *g, size_t end)
{
    static const char *const pdf_stems[] = {"report", "invoice", "minutes", "scan"};
    static const char *const png_stems[] = {"screenshot", "photo", "diagram", "chart"};
    struct ms_buf *out = g->out;
    uint64_t v = gen_next(&g->rng);
    int png = (int)(v & 1);
    char name[48];
    size_t n = 0;
    const char *stem = png ? png_stems[v >> 1 & 3] : pdf_stems[v >> 1 & 3];
    n = strlen(stem);
    memcpy(name, stem, n);
    name[n++] = '-';
    n += gen_fmt_dec(name + n, 1000 + (v >> 8) % 9000);
    memcpy(name + n, png ? ".png" : ".pdf", 5);
    gen_put(out,
            png ? "Content-Type: image/png; name=\"" : "Content-Type: application/pdf; name=\"");
    gen_put(out, name);
    gen_put(out, "\"\r\nContent-Disposition: attachment; filename=\"");
    gen_put(out, name);
    gen_put(out, "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    if (png)
        gen_base64(g, end, "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
    else
        gen_base64(g, end, "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", 15);
}

static enum gen_shape
gen_pick_shape(struct gen *g, size_t target, int depth)
{
    unsigned u = (unsigned)gen_below(&g->rng, 100);
    enum gen_shape s = u < 30   ? GEN_PLAIN_ASCII
                       : u < 45 ? GEN_PLAIN_UTF8
                       : u < 70 ? GEN_ALTERNATIVE
                       : u < 85 ? GEN_MIXED
                       : u < 95 ? GEN_NESTED
                                : GEN_RFC822;
    if (s == GEN_RFC822 && (target < GEN_GATE_RFC822 || depth > 0))
        s = GEN_NESTED;
    if (s == GEN_NESTED && (target < GEN_GATE_NESTED || depth > 0))
        s = GEN_MIXED;
    if (s == GEN_MIXED && (target < GEN_GATE_MIXED || depth > 0))
        s = GEN_ALTERNATIVE;
    if (s == GEN_ALTERNATIVE && target < GEN_GATE_ALT)
        s = (u & 1) ? GEN_PLAIN_UTF8 : GEN_PLAIN_ASCII;
    return s;
}

/* The share of left for a text part beside an attachment: 15-45%, at most GEN_TEXT_CAP. */
static size_t
gen_text_share(struct gen *g, size_t left)
{
    size_t share = left / 100 * (15 + (size_t)gen_below(&g->rng, 31));
    return MS_MIN(share, (size_t)GEN_TEXT_CAP);
}

/* Appends one message of about target bytes. depth 1 is a forwarded message inside a
 * message/rfc822 part, dated before `before`. Returns its Date. */
static int64_t
gen_message(struct gen *g, size_t target, int depth, int64_t before)
{
    struct ms_buf *out = g->out;
    size_t end = out->len + target;
    enum gen_shape shape = gen_pick_shape(g, target, depth);
    int64_t date = gen_headers(g, target, depth, before);
    char b1[32], b2[32];
    char letter = depth ? 'c' : 'a';
    size_t left;
    switch (shape) {
    case GEN_PLAIN_ASCII:
    case GEN_PLAIN_UTF8:
        gen_text_part_header(out, shape == GEN_PLAIN_UTF8, 0);
        gen_app(out, "\r\n", 2);
        gen_text(g, end, shape == GEN_PLAIN_UTF8 ? GEN_TEXT_UTF8 : 0);
        break;
    case GEN_ALTERNATIVE:
        gen_boundary(g, b1, letter);
        gen_multipart_header(out, "alternative", b1);
        gen_app(out, "\r\n", 2);
        gen_put(out, gen_preamble);
        gen_alternative_parts(g, b1, end);
        break;
    case GEN_MIXED:
    case GEN_RFC822:
        gen_boundary(g, b1, letter);
        gen_multipart_header(out, "mixed", b1);
        gen_app(out, "\r\n", 2);
        gen_put(out, gen_preamble);
        gen_delim(out, b1, 0);
        {
            int utf8 = (int)gen_bits(&g->rng, 1);
            gen_text_part_header(out, utf8, 0);
            gen_app(out, "\r\n", 2);
            /* what follows the text: part headers (about 200 bytes) and the closing line */
            left = end > out->len + 240 ? end - out->len - 240 : 0;
            gen_text(g, out->len + gen_text_share(g, left), utf8 ? GEN_TEXT_UTF8 : 0);
        }
        gen_delim(out, b1, 0);
        if (shape == GEN_MIXED) {
            gen_attachment(g, end > GEN_CLOSE_LEN ? end - GEN_CLOSE_LEN : 0);
        } else {
            gen_put(out, "Content-Type: message/rfc822\r\n"
                         "Content-Disposition: attachment; filename=\"forwarded-message.eml\"\r\n"
                         "\r\n");
            size_t inner = end > out->len + GEN_CLOSE_LEN ? end - out->len - GEN_CLOSE_LEN : 0;
            gen_message(g, MS_MAX(inner, (size_t)MS_GEN_MIN_SIZE), 1, date);
        }
        gen_delim(out, b1, 1);
        break;
    case GEN_NESTED:
        gen_boundary(g, b1, 'a');
        gen_boundary(g, b2, 'b');
        gen_multipart_header(out, "mixed", b1);
        gen_app(out, "\r\n", 2);
        gen_put(out, gen_preamble);
        gen_delim(out, b1, 0);
        gen_multipart_header(out, "alternative", b2);
        gen_app(out, "\r\n", 2);
        /* the alternative gets 2x a text share (text + html), the attachment the rest */
        left = end > out->len + 240 ? end - out->len - 240 : 0;
        gen_alternative_parts(g, b2, out->len + MS_MIN(2 * gen_text_share(g, left), left));
        gen_delim(out, b1, 0);
        gen_attachment(g, end > GEN_CLOSE_LEN ? end - GEN_CLOSE_LEN : 0);
        gen_delim(out, b1, 1);
        break;
    }
    return date;
}

void
ms_gen_message(uint64_t seed, uint64_t index, size_t size, int64_t *date_r, struct ms_buf *out)
{
    struct gen g = {.out = out, .seed = seed, .index = index};
    size_t target = MS_MAX(size, (size_t)MS_GEN_MIN_SIZE);
    gen_rng_init(&g.rng, seed, index);
    /* one allocation for the whole message: the last leaf may pass target by a few bytes */
    ms_buf_reserve(out, target + 512);
    int64_t date = gen_message(&g, target, 0, 0);
    out->data[out->len] = '\0';
    if (date_r)
        *date_r = date;
}
