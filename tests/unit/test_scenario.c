/*
 * test_scenario.c - the scenario loader through whole scenarios (scenario.c and the parts it
 * calls): every key into its field, the defaults, the embedded default, mailboxes and messages
 * read from the fixtures, every error with its exact line:column, user lookup, and robustness
 * against truncated and mutated input. The grammars and names of scenario_yaml.c are in
 * test_scenario_yaml.c; mailbox and message errors and scenarios too large for the machine in
 * test_scenario_mail.c.
 *
 * Fixtures come from $MOCKSRV_FIXTURES (set by ctest), else ./fixtures (run from the source
 * root). Table-driven cases print "got X, want Y".
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "scenario.h"
#include "store.h"

static const char *
fixtures(void)
{
    const char *d = getenv("MOCKSRV_FIXTURES");
    return d && *d ? d : "fixtures";
}

static char *
read_fixture(const char *rel, size_t *len_r)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", fixtures(), rel);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    struct ms_buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ms_buf_append(&b, chunk, n);
    fclose(f);
    return ms_buf_steal(&b, len_r);
}

static struct ms_scenario *
load_ok(const char *yaml)
{
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    int rc = ms_scenario_load_string(yaml, strlen(yaml), "x.yaml", NULL, &sc, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "load: got %d (%s), want 0", rc, err.message);
    ck_assert_ptr_nonnull(sc);
    return sc;
}

/* ---- every key into its field ---- */

START_TEST(test_full_fixture)
{
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    char path[1024], want[1200];
    snprintf(path, sizeof path, "%s/scenarios/full.yaml", fixtures());
    int rc = ms_scenario_load_file(path, &sc, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "load %s: %s", path, err.message);

    ck_assert_str_eq(sc->path, path);
    snprintf(want, sizeof want, "%s/scenarios", fixtures());
    ck_assert_str_eq(sc->base_dir, want);

    const struct {
        const char *what;
        unsigned long long got, want;
    } nums[] = {
        {"version", (unsigned long long)sc->version, 1},
        {"seed", sc->seed, 9223372036854775807ull},
        {"has_seed", (unsigned long long)sc->has_seed, 1},
        {"n_listeners", sc->n_listeners, 6},
        {"tls.min_version", (unsigned long long)sc->tls.min_version, 0x0303},
        {"smtp.max_size", sc->smtp.max_size, 20ull << 20},
        {"smtp.auth", sc->smtp.auth, MS_AUTH_PLAIN | MS_AUTH_CRAM_MD5 | MS_AUTH_OAUTHBEARER},
        {"smtp.require_auth", (unsigned long long)sc->smtp.require_auth, 1},
        {"smtp.extensions", sc->smtp.extensions,
         MS_EXT_SIZE | MS_EXT_PIPELINING | MS_EXT_DSN | MS_EXT_HELP},
        {"smtp.deliver", (unsigned long long)sc->smtp.deliver, 0},
        {"pop3.auth", sc->pop3.auth, MS_AUTH_LOGIN},
        {"pop3.apop", (unsigned long long)sc->pop3.apop, 1},
        {"imap.auth", sc->imap.auth, 0},
        {"imap.n_capabilities", sc->imap.n_capabilities, 3},
        {"n_users", sc->n_users, 3},
        {"limits.smtp_line_length", sc->limits.smtp_line_length, 1000},
        {"limits.pop3_line_length", sc->limits.pop3_line_length, 255},
        {"limits.imap_line_length", sc->limits.imap_line_length, 8192},
        {"limits.message_size", sc->limits.message_size, 32000000},
        {"limits.literal_size", sc->limits.literal_size, 1048576},
        {"limits.sessions", sc->limits.sessions, 50},
        {"limits.idle_timeout_ms", (unsigned long long)sc->limits.idle_timeout_ms, 1500},
        {"limits.bad_commands", sc->limits.bad_commands, 3},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(nums); i++)
        ck_assert_msg(nums[i].got == nums[i].want, "%s: got %llu, want %llu", nums[i].what,
                      nums[i].got, nums[i].want);

    const struct {
        const char *name;
        enum ms_proto protocol;
        enum ms_tls_mode tls;
        int port;
        const char *host;
        int line;
    } listeners[] = {
        {"smtp", MS_PROTO_SMTP, MS_TLS_NONE, 2525, NULL, 8},
        {"mx", MS_PROTO_SMTP, MS_TLS_STARTTLS, 0, "::1", 9},
        {"submission", MS_PROTO_SMTP, MS_TLS_REQUIRED, 2587, NULL, 10},
        {"lmtp-in", MS_PROTO_LMTP, MS_TLS_NONE, 2424, "127.0.0.2", 11},
        {"pop3s", MS_PROTO_POP3, MS_TLS_IMPLICIT, 2995, NULL, 12},
        {"imap", MS_PROTO_IMAP, MS_TLS_STARTTLS, 2143, NULL, 13},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(listeners); i++) {
        const struct ms_listener_conf *l = &sc->listeners[i];
        ck_assert_str_eq(l->name, listeners[i].name);
        ck_assert_msg(l->protocol == listeners[i].protocol, "%s.protocol: got %s, want %s", l->name,
                      ms_proto_name(l->protocol), ms_proto_name(listeners[i].protocol));
        ck_assert_msg(l->tls == listeners[i].tls, "%s.tls: got %s, want %s", l->name,
                      ms_tls_mode_name(l->tls), ms_tls_mode_name(listeners[i].tls));
        ck_assert_msg(l->port == listeners[i].port, "%s.port: got %d, want %d", l->name, l->port,
                      listeners[i].port);
        if (listeners[i].host)
            ck_assert_str_eq(l->host, listeners[i].host);
        else
            ck_assert_ptr_null(l->host);
        ck_assert_msg(l->pos.line == listeners[i].line && l->pos.column == 3,
                      "%s.pos: got %d:%d, want %d:3", l->name, l->pos.line, l->pos.column,
                      listeners[i].line);
        ck_assert_ptr_eq(ms_scenario_find_listener(sc, listeners[i].name), l);
    }
    ck_assert_ptr_null(ms_scenario_find_listener(sc, "SMTP"));

    ck_assert_str_eq(sc->hostname, "mx.mock.test");
    snprintf(want, sizeof want, "%s/scenarios/../certs/server.pem", fixtures());
    ck_assert_str_eq(sc->tls.cert, want);
    ck_assert_str_eq(sc->tls.key, "/etc/mocksrv/server.key");
    snprintf(want, sizeof want, "%s/scenarios/ca.pem", fixtures());
    ck_assert_str_eq(sc->tls.client_ca, want);
    ck_assert_str_eq(sc->imap.capabilities[0], "IMAP4rev1");
    ck_assert_str_eq(sc->imap.capabilities[1], "IDLE");
    ck_assert_str_eq(sc->imap.capabilities[2], "AUTH=PLAIN");

    ck_assert_str_eq(sc->users[0].name, "alice");
    ck_assert_str_eq(sc->users[0].password, "secret");
    ck_assert_uint_eq(sc->users[0].n_addresses, 2);
    ck_assert_str_eq(sc->users[0].addresses[0], "alice@mock.test");
    ck_assert_str_eq(sc->users[0].addresses[1], "Alice.Liddell@mock.test");
    ck_assert_int_eq(sc->users[0].pos.line, 39);
    ck_assert_str_eq(sc->users[1].name, "bob");
    ck_assert_str_eq(sc->users[1].password, "1234"); /* a plain number is a string here */
    ck_assert_uint_eq(sc->users[1].n_addresses, 0);
    ck_assert_str_eq(sc->users[2].password, "");
    ck_assert_str_eq(sc->users[2].addresses[0], "carol@mock.test");
    ms_scenario_destroy(&sc);
    ck_assert_ptr_null(sc);
}
END_TEST

/* ---- defaults ---- */

static void
check_defaults(const struct ms_scenario *sc)
{
    const struct {
        const char *what;
        unsigned long long got, want;
    } nums[] = {
        {"version", (unsigned long long)sc->version, 1},
        {"has_seed", (unsigned long long)sc->has_seed, 0},
        {"tls.min_version", (unsigned long long)sc->tls.min_version, 0},
        {"smtp.max_size", sc->smtp.max_size, 10ull << 20},
        {"smtp.auth", sc->smtp.auth,
         MS_AUTH_PLAIN | MS_AUTH_LOGIN | MS_AUTH_CRAM_MD5 | MS_AUTH_XOAUTH2 | MS_AUTH_OAUTHBEARER},
        {"smtp.require_auth", (unsigned long long)sc->smtp.require_auth, 0},
        {"smtp.extensions", sc->smtp.extensions, MS_EXT_DEFAULT},
        {"smtp.deliver", (unsigned long long)sc->smtp.deliver, 1},
        {"pop3.auth", sc->pop3.auth, MS_AUTH_PLAIN | MS_AUTH_LOGIN | MS_AUTH_XOAUTH2},
        {"pop3.apop", (unsigned long long)sc->pop3.apop, 0},
        {"imap.auth", sc->imap.auth, MS_AUTH_PLAIN | MS_AUTH_LOGIN | MS_AUTH_XOAUTH2},
        {"imap.n_capabilities", sc->imap.n_capabilities, 0},
        {"limits.smtp_line_length", sc->limits.smtp_line_length, 512},
        {"limits.pop3_line_length", sc->limits.pop3_line_length, 512},
        {"limits.imap_line_length", sc->limits.imap_line_length, 65536},
        {"limits.message_size", sc->limits.message_size, 64ull << 20},
        {"limits.literal_size", sc->limits.literal_size, 64ull << 20},
        {"limits.sessions", sc->limits.sessions, 10000},
        {"limits.idle_timeout_ms", (unsigned long long)sc->limits.idle_timeout_ms, 600000},
        {"limits.bad_commands", sc->limits.bad_commands, 20},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(nums); i++)
        ck_assert_msg(nums[i].got == nums[i].want, "%s: got %llu, want %llu", nums[i].what,
                      nums[i].got, nums[i].want);
    ck_assert_ptr_null(sc->imap.capabilities);
    ck_assert_ptr_null(sc->tls.cert);
    ck_assert_ptr_null(sc->tls.key);
    ck_assert_ptr_null(sc->tls.client_ca);
}

START_TEST(test_defaults)
{
    /* Each of these is a scenario with nothing set: every default applies. */
    static const char *const docs[] = {
        "version: 1\n",
        "{}\n",
        "version: 1\nsmtp:\npop3: ~\nimap: {}\ntls:\nlimits: null\n",
        "imap: { capabilities: default }\n",
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(docs); i++) {
        struct ms_scenario *sc = load_ok(docs[i]);
        check_defaults(sc);
        ck_assert_str_eq(sc->path, "x.yaml");
        ck_assert_str_eq(sc->base_dir, ".");
        ck_assert_str_eq(sc->hostname, "localhost");
        ck_assert_uint_eq(sc->n_users, 0);
        ck_assert_uint_eq(sc->n_listeners, 1);
        ck_assert_str_eq(sc->listeners[0].name, "smtp");
        ck_assert_int_eq(sc->listeners[0].protocol, MS_PROTO_SMTP);
        ck_assert_int_eq(sc->listeners[0].port, 3025);
        ck_assert_int_eq(sc->listeners[0].tls, MS_TLS_NONE);
        ck_assert_ptr_null(sc->listeners[0].host);
        ms_scenario_destroy(&sc);
    }
}
END_TEST

START_TEST(test_listener_defaults)
{
    struct ms_scenario *sc = load_ok("listeners:\n"
                                     "  imaps:\n"
                                     "  pop3: {}\n"
                                     "  odd: { protocol: imap }\n");
    ck_assert_uint_eq(sc->n_listeners, 3);
    ck_assert_int_eq(sc->listeners[0].protocol, MS_PROTO_IMAP);
    ck_assert_int_eq(sc->listeners[1].protocol, MS_PROTO_POP3);
    ck_assert_int_eq(sc->listeners[2].protocol, MS_PROTO_IMAP);
    for (size_t i = 0; i < sc->n_listeners; i++) {
        ck_assert_int_eq(sc->listeners[i].port, 0);
        ck_assert_int_eq(sc->listeners[i].tls, MS_TLS_NONE);
        ck_assert_ptr_null(sc->listeners[i].host);
    }
    ms_scenario_destroy(&sc);
}
END_TEST

START_TEST(test_values)
{
    /* Spellings that must be accepted, and where they land. */
    struct ms_scenario *sc = load_ok("seed: 0\n"
                                     "smtp: { require_auth: ON, deliver: No, max_size: \"4096\" }\n"
                                     "pop3: { apop: TRUE }\n"
                                     "tls: { cert: c.pem, key: k.pem, min_version: 1.3 }\n"
                                     "limits: { idle_timeout: 1h30m, sessions: 1000000 }\n"
                                     "users:\n"
                                     "  \"alice@x\": { password: s, addresses: [alice@x] }\n");
    ck_assert_int_eq(sc->has_seed, 1);
    ck_assert_uint_eq(sc->seed, 0);
    ck_assert_int_eq(sc->smtp.require_auth, 1);
    ck_assert_int_eq(sc->smtp.deliver, 0);
    ck_assert_uint_eq(sc->smtp.max_size, 4096);
    ck_assert_int_eq(sc->pop3.apop, 1);
    ck_assert_int_eq(sc->tls.min_version, 0x0304);
    ck_assert_str_eq(sc->tls.cert, "c.pem"); /* base_dir "." leaves paths alone */
    ck_assert_int_eq(sc->limits.idle_timeout_ms, 5400000);
    ck_assert_uint_eq(sc->limits.sessions, 1000000);
    ms_scenario_destroy(&sc);

    /* CRLF line ends and a UTF-8 byte order mark, as an editor on Windows writes them. */
    sc = load_ok("\xef\xbb\xbfversion: 1\r\nhostname: crlf.test\r\nsmtp:\r\n  deliver: no\r\n");
    ck_assert_str_eq(sc->hostname, "crlf.test");
    ck_assert_int_eq(sc->smtp.deliver, 0);
    ms_scenario_destroy(&sc);

    struct mocksrv_error err;
    const char *yaml = "tls: { cert: c.pem, key: /k.pem }\n";
    ck_assert_int_eq(ms_scenario_load_string(yaml, strlen(yaml), NULL, "/etc/x/", &sc, &err), 0);
    ck_assert_str_eq(sc->path, "<string>");
    ck_assert_str_eq(sc->tls.cert, "/etc/x/c.pem");
    ck_assert_str_eq(sc->tls.key, "/k.pem");
    ms_scenario_destroy(&sc);
}
END_TEST

START_TEST(test_embedded_default)
{
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    int rc = ms_scenario_load_default(&sc, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "default: %s", err.message);
    ck_assert_str_eq(sc->path, "<default>");
    ck_assert_str_eq(sc->hostname, "localhost");
    /* GreenMail's ports (SPEC 5); the TLS and IMAP listeners join as those land */
    const struct ms_listener_conf *l = ms_scenario_find_listener(sc, "smtp");
    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(l->port, 3025);
    ck_assert_ptr_eq(sc->listeners, l); /* first */
    for (size_t i = 0; i < sc->n_listeners; i++) {
        struct ms_listener_conf std;
        ck_assert_msg(ms_listener_standard(sc->listeners[i].name, &std) == MOCKSRV_OK,
                      "default listener %s is not a standard one", sc->listeners[i].name);
        ck_assert_msg(sc->listeners[i].port == std.port &&
                          sc->listeners[i].protocol == std.protocol,
                      "default listener %s: got port %d, want %d", sc->listeners[i].name,
                      sc->listeners[i].port, std.port);
    }
    ck_assert_int_eq(sc->smtp.require_auth, 0);
    ck_assert_int_eq(sc->smtp.deliver, 1);
    ck_assert_uint_eq(sc->n_users, 2);
    const struct ms_user *u = ms_scenario_find_user(sc, "bob@localhost");
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(u->name, "bob");
    ck_assert_str_eq(u->password, "secret");
    ck_assert_ptr_nonnull(ms_scenario_find_user(sc, "alice"));
    ms_scenario_destroy(&sc);
    ms_scenario_destroy(&sc); /* NULL is fine */
}
END_TEST

/* ---- mailboxes and messages ---- */

/* The bytes a loader must give for a file: LF-only converted to CRLF, else exact. */
static char *
expected_file_bytes(const char *rel, size_t *len_r)
{
    size_t len;
    char *raw = read_fixture(rel, &len);
    if (memchr(raw, '\r', len)) {
        *len_r = len;
        return raw;
    }
    struct ms_buf b = {0};
    for (size_t i = 0; i < len; i++) {
        if (raw[i] == '\n')
            ms_buf_putc(&b, '\r');
        ms_buf_putc(&b, raw[i]);
    }
    free(raw);
    return ms_buf_steal(&b, len_r);
}

static void
check_bytes(const char *what, const char *got, size_t got_len, const char *want, size_t want_len)
{
    size_t i = 0;
    while (i < got_len && i < want_len && got[i] == want[i])
        i++;
    ck_assert_msg(got_len == want_len && i == got_len,
                  "%s: got %zu bytes, want %zu; first difference at byte %zu (got 0x%02x, want "
                  "0x%02x)",
                  what, got_len, want_len, i, i < got_len ? (unsigned char)got[i] : 0,
                  i < want_len ? (unsigned char)want[i] : 0);
}

START_TEST(test_mailboxes_fixture)
{
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    char path[1024];
    snprintf(path, sizeof path, "%s/scenarios/mailboxes.yaml", fixtures());
    int rc = ms_scenario_load_file(path, &sc, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "load %s: %s", path, err.message);
    ck_assert_uint_eq(sc->n_users, 3);

    /* alice: four mailboxes in file order, "inbox" stored as INBOX */
    const struct ms_user *a = &sc->users[0];
    const struct {
        const char *name;
        unsigned long long uidvalidity, uidnext;
        const char *special_use;
        int subscribed;
        size_t n_messages;
        int line, column;
    } mbs[] = {
        {"INBOX", 1700000000, 100, NULL, 1, 6, 7, 7},
        {"Sent", 0, 0, "\\Sent", 1, 0, 29, 7},
        {"Archive/2023", 0, 0, "\\Archive", 0, 0, 30, 7},
        {"Drafts", 0, 0, NULL, 1, 0, 31, 7},
    };
    ck_assert_msg(a->n_mailboxes == MS_ARRAY_LEN(mbs), "alice: got %zu mailboxes, want %zu",
                  a->n_mailboxes, MS_ARRAY_LEN(mbs));
    for (size_t i = 0; i < MS_ARRAY_LEN(mbs); i++) {
        const struct ms_mailbox_conf *mb = &a->mailboxes[i];
        ck_assert_str_eq(mb->name, mbs[i].name);
        ck_assert_msg(mb->uidvalidity == mbs[i].uidvalidity && mb->uidnext == mbs[i].uidnext,
                      "%s: got uidvalidity %u uidnext %u, want %llu %llu", mb->name,
                      mb->uidvalidity, mb->uidnext, mbs[i].uidvalidity, mbs[i].uidnext);
        if (mbs[i].special_use)
            ck_assert_str_eq(mb->special_use, mbs[i].special_use);
        else
            ck_assert_ptr_null(mb->special_use);
        ck_assert_msg(mb->subscribed == mbs[i].subscribed, "%s.subscribed: got %d, want %d",
                      mb->name, mb->subscribed, mbs[i].subscribed);
        ck_assert_msg(mb->n_messages == mbs[i].n_messages, "%s: got %zu messages, want %zu",
                      mb->name, mb->n_messages, mbs[i].n_messages);
        ck_assert_msg(mb->pos.line == mbs[i].line && mb->pos.column == mbs[i].column,
                      "%s.pos: got %d:%d, want %d:%d", mb->name, mb->pos.line, mb->pos.column,
                      mbs[i].line, mbs[i].column);
    }

    const struct ms_mailbox_conf *in = &a->mailboxes[0];
    size_t lf_len, cr_len;
    char *lf = expected_file_bytes("mail/lf-only.eml", &lf_len);
    char *cr = expected_file_bytes("mail/cr-mixed.eml", &cr_len);
    static const char bob[] = "From: Bob <bob@mock.test>\r\nSubject: hi\r\n\r\nbody\r\n";
    const struct {
        enum ms_message_source source;
        const char *bytes;
        size_t len;
        const char *file;
        size_t gen_count, gen_size;
        unsigned flags;
        size_t n_keywords;
        long long date;
        unsigned uid;
        int exact;
        int line, column, src_line, src_column;
    } msgs[] = {
        {MS_MSG_FILE, lf, lf_len, "../mail/lf-only.eml", 0, 0, MS_FLAG_SEEN | MS_FLAG_FLAGGED, 2,
         1714554000, 0, 0, 11, 13, 11, 19},
        {MS_MSG_FILE, cr, cr_len, "../mail/cr-mixed.eml", 0, 0, 0, 0, 1714554000, 7, 0, 14, 13, 14,
         19},
        {MS_MSG_RAW, bob, sizeof bob - 1, NULL, 0, 0, 0, 0, 0, 0, 0, 17, 13, 17, 18},
        {MS_MSG_RAW, "no final line end", 17, NULL, 0, 0, 0, 0, 0, 0, 1, 22, 13, 22, 18},
        {MS_MSG_GENERATE, NULL, 0, NULL, 3, 1024, MS_FLAG_DELETED, 0, 0, 20, 0, 24, 13, 24, 41},
        {MS_MSG_GENERATE, NULL, 0, NULL, 2, 4096, 0, 0, 0, 0, 0, 27, 13, 28, 15},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(msgs); i++) {
        const struct ms_message_conf *mc = &in->messages[i];
        char what[64];
        snprintf(what, sizeof what, "INBOX message %zu", i);
        ck_assert_msg(mc->source == msgs[i].source, "%s: got source %d, want %d", what, mc->source,
                      msgs[i].source);
        if (msgs[i].bytes) {
            check_bytes(what, mc->bytes, mc->len, msgs[i].bytes, msgs[i].len);
            ck_assert_msg(mc->bytes[mc->len] == '\0', "%s: not NUL-terminated", what);
        }
        if (msgs[i].file)
            ck_assert_str_eq(mc->file, msgs[i].file);
        else
            ck_assert_ptr_null(mc->file);
        const struct {
            const char *field;
            long long got, want;
        } nums[] = {
            {"gen_count", (long long)mc->gen_count, (long long)msgs[i].gen_count},
            {"gen_size", (long long)mc->gen_size, (long long)msgs[i].gen_size},
            {"flags", mc->flags, msgs[i].flags},
            {"n_keywords", (long long)mc->n_keywords, (long long)msgs[i].n_keywords},
            {"date", mc->date, msgs[i].date},
            {"uid", mc->uid, msgs[i].uid},
            {"exact", mc->exact, msgs[i].exact},
            {"pos.line", mc->pos.line, msgs[i].line},
            {"pos.column", mc->pos.column, msgs[i].column},
            {"src_pos.line", mc->src_pos.line, msgs[i].src_line},
            {"src_pos.column", mc->src_pos.column, msgs[i].src_column},
        };
        for (size_t k = 0; k < MS_ARRAY_LEN(nums); k++)
            ck_assert_msg(nums[k].got == nums[k].want, "%s.%s: got %lld, want %lld", what,
                          nums[k].field, nums[k].got, nums[k].want);
    }
    /* keywords as written, the case-insensitive repeat dropped */
    ck_assert_str_eq(in->messages[0].keywords[0], "$Label1");
    ck_assert_str_eq(in->messages[0].keywords[1], "NonJunk");
    free(lf);
    free(cr);

    /* bob: no mailboxes key, just an INBOX at his name */
    const struct ms_user *b = &sc->users[1];
    ck_assert_uint_eq(b->n_mailboxes, 1);
    ck_assert_str_eq(b->mailboxes[0].name, "INBOX");
    ck_assert_int_eq(b->mailboxes[0].subscribed, 1);
    ck_assert_uint_eq(b->mailboxes[0].n_messages, 0);
    ck_assert_int_eq(b->mailboxes[0].pos.line, b->pos.line);

    /* carol: mailboxes without INBOX get one first */
    const struct ms_user *c = &sc->users[2];
    ck_assert_uint_eq(c->n_mailboxes, 2);
    ck_assert_str_eq(c->mailboxes[0].name, "INBOX");
    ck_assert_int_eq(c->mailboxes[0].pos.line, 34);
    ck_assert_str_eq(c->mailboxes[1].name, "Work");
    ck_assert_uint_eq(c->mailboxes[1].uidvalidity, 4294967295u);
    ms_scenario_destroy(&sc);
}
END_TEST

START_TEST(test_mailbox_values)
{
    /* Spellings that must be accepted, and where they land. */
    struct ms_scenario *sc = load_ok("users:\n"
                                     "  a:\n"
                                     "    password: x\n"
                                     "    mailboxes:\n"
                                     "  b:\n"
                                     "    password: x\n"
                                     "    mailboxes:\n"
                                     "      \"[Gmail]/Sent Mail\": { special_use: '\\SENT' }\n"
                                     "      INBOX/child: { subscribed: off }\n"
                                     "      \"Caf\xc3\xa9\":\n"
                                     "      Empty: { messages: }\n"
                                     "      iNbOx:\n"
                                     "        uidnext: 4294967295\n"
                                     "        messages:\n"
                                     "          - { raw: a, uid: 4294967293 }\n"
                                     "          - { raw: b, date: \"2024-05-01\" }\n");
    ck_assert_uint_eq(sc->users[0].n_mailboxes, 1);
    ck_assert_str_eq(sc->users[0].mailboxes[0].name, "INBOX");
    const struct ms_user *b = &sc->users[1];
    static const char *const names[] = {"[Gmail]/Sent Mail", "INBOX/child", "Caf\xc3\xa9", "Empty",
                                        "INBOX"};
    ck_assert_uint_eq(b->n_mailboxes, MS_ARRAY_LEN(names));
    for (size_t i = 0; i < MS_ARRAY_LEN(names); i++)
        ck_assert_msg(strcmp(b->mailboxes[i].name, names[i]) == 0, "mailbox %zu: got %s, want %s",
                      i, b->mailboxes[i].name, names[i]);
    ck_assert_str_eq(b->mailboxes[0].special_use, "\\Sent");
    ck_assert_int_eq(b->mailboxes[1].subscribed, 0);
    ck_assert_int_eq(b->mailboxes[2].subscribed, 1);
    ck_assert_uint_eq(b->mailboxes[3].n_messages, 0);
    ck_assert_uint_eq(b->mailboxes[4].uidnext, 4294967295u);
    ck_assert_uint_eq(b->mailboxes[4].messages[0].uid, 4294967293u);
    ck_assert_uint_eq(b->mailboxes[4].messages[1].uid, 0); /* the store gives it 4294967294 */
    ck_assert_int_eq(b->mailboxes[4].messages[1].date, 1714521600);
    ms_scenario_destroy(&sc);
}
END_TEST

START_TEST(test_raw_crlf)
{
    /* raw: every LF without a CR before it gets one; nothing is added or removed else */
    static const struct {
        const char *yaml; /* the message entry */
        const char *want;
        size_t len;
    } cases[] = {
        {"raw: |\n            a\n            b\n", "a\r\nb\r\n", 6},
        {"raw: |-\n            a\n            b\n", "a\r\nb", 4},
        {"raw: |+\n            a\n\n", "a\r\n\r\n\r\n", 7},
        {"raw: \"a\\nb\"", "a\r\nb", 4},
        {"raw: \"a\\r\\nb\\r\\n\"", "a\r\nb\r\n", 6},
        {"raw: \"bare\\rcr\\n\"", "bare\rcr\r\n", 9},
        {"raw: \"\\n\\n\"", "\r\n\r\n", 4},
        {"raw: \"\"", "", 0},
        {"raw: \"nul\\0byte\"", "nul\0byte", 8},
        {"raw: \"  lead\\ttab \\n\"", "  lead\ttab \r\n", 13},
        {"raw: \"a\\nb\"\n          exact: true", "a\nb", 3},
        {"raw: \"a\\r\\nb\\nc\"\n          exact: false", "a\r\nb\r\nc", 7},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cases); i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml,
                 "users:\n  a:\n    password: x\n    mailboxes:\n      INBOX:\n        messages:\n"
                 "        - %s\n",
                 cases[i].yaml);
        struct ms_scenario *sc = load_ok(yaml);
        const struct ms_message_conf *mc = &sc->users[0].mailboxes[0].messages[0];
        char what[64];
        snprintf(what, sizeof what, "raw case %zu", i);
        check_bytes(what, mc->bytes, mc->len, cases[i].want, cases[i].len);
        ms_scenario_destroy(&sc);
    }
}
END_TEST

START_TEST(test_file_messages)
{
    /* Through ms_scenario_load_string with a base_dir: LF-only converted, CR files exact, a
     * missing file named as written and as resolved. */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/mail", fixtures());
    const char *yaml = "users:\n  a:\n    password: x\n    mailboxes:\n      INBOX:\n"
                       "        messages:\n"
                       "        - file: lf-only.eml\n"
                       "        - file: cr-mixed.eml\n"
                       "        - { file: lf-only.eml, exact: true }\n"
                       "        - file: ./../mail/simple.eml\n";
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    int rc = ms_scenario_load_string(yaml, strlen(yaml), "y.yaml", dir, &sc, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "load: %s", err.message);
    const struct ms_mailbox_conf *mb = &sc->users[0].mailboxes[0];
    size_t n;
    char *want = expected_file_bytes("mail/lf-only.eml", &n);
    check_bytes("lf-only.eml", mb->messages[0].bytes, mb->messages[0].len, want, n);
    ck_assert_ptr_nonnull(memchr(want, '\r', n));
    free(want);
    want = read_fixture("mail/cr-mixed.eml", &n);
    ck_assert_ptr_nonnull(memchr(want, '\0', n)); /* the fixture has its NUL and 0xff */
    check_bytes("cr-mixed.eml", mb->messages[1].bytes, mb->messages[1].len, want, n);
    free(want);
    want = read_fixture("mail/lf-only.eml", &n);
    check_bytes("lf-only.eml exact", mb->messages[2].bytes, mb->messages[2].len, want, n);
    free(want);
    want = expected_file_bytes("mail/simple.eml", &n);
    check_bytes("simple.eml", mb->messages[3].bytes, mb->messages[3].len, want, n);
    free(want);
    ms_scenario_destroy(&sc);

    yaml = "users:\n  a:\n    password: x\n    mailboxes:\n      INBOX:\n"
           "        messages: [{ file: nope.eml }]\n";
    rc = ms_scenario_load_string(yaml, strlen(yaml), "y.yaml", dir, &sc, &err);
    ck_assert_int_eq(rc, MOCKSRV_ESCENARIO);
    char msg[2048];
    snprintf(msg, sizeof msg,
             "y.yaml:6:28: users.a.mailboxes.INBOX.messages[0].file: cannot read \"nope.eml\" "
             "(%s/nope.eml): No such file or directory",
             dir);
    ck_assert_str_eq(err.message, msg);
    ck_assert_int_eq(err.line, 6);
    ck_assert_int_eq(err.column, 28);
}
END_TEST

START_TEST(test_seed_range)
{
    /* A seed is at most 2^63-1: what --seed takes and the ready line carries, so that a run
     * always replays from the seed its ready line shows. */
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    const char *max = "version: 1\nseed: 9223372036854775807\n";
    ck_assert_int_eq(ms_scenario_load_string(max, strlen(max), "s.yaml", ".", &sc, &err),
                     MOCKSRV_OK);
    ck_assert_uint_eq(sc->seed, 9223372036854775807ull);
    ms_scenario_destroy(&sc);
    const char *over = "version: 1\nseed: 9223372036854775808\n";
    ck_assert_int_eq(ms_scenario_load_string(over, strlen(over), "s.yaml", ".", &sc, &err),
                     MOCKSRV_ESCENARIO);
    ck_assert_ptr_null(sc);
    ck_assert_msg(strncmp(err.message, "s.yaml:2:7: seed: ", 18) == 0, "%s", err.message);
    ck_assert_int_eq(err.line, 2);

    struct mocksrv *srv = mocksrv_new();
    ck_assert_int_eq(mocksrv_set_seed(srv, 9223372036854775808ull), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_seed(srv, 9223372036854775807ull), MOCKSRV_OK);
    mocksrv_free(srv);
}
END_TEST

START_TEST(test_embedded_files)
{
    /* The table has the default scenario under its path below fixtures/. */
    const struct ms_embedded_file *f = ms_embedded_find("scenarios/default.yaml");
    ck_assert_ptr_nonnull(f);
    ck_assert_str_eq(f->name, "scenarios/default.yaml");
    size_t len;
    char *disk = read_fixture("scenarios/default.yaml", &len);
    check_bytes("embedded default.yaml", (const char *)f->data, f->len, disk, len);
    ck_assert_int_eq(f->data[f->len], 0);
    free(disk);
    ck_assert_ptr_null(ms_embedded_find("default.yaml"));
    ck_assert_ptr_null(ms_embedded_find(NULL));
    for (size_t i = 0; i < ms_embedded_files_count; i++)
        ck_assert_ptr_eq(ms_embedded_find(ms_embedded_files[i].name), &ms_embedded_files[i]);

    /* file: paths of an embedded scenario resolve in the table, relative to its directory */
    static const char *const ok[] = {"default.yaml", "./default.yaml", "../scenarios/default.yaml",
                                     "..//scenarios/./default.yaml"};
    for (size_t i = 0; i < MS_ARRAY_LEN(ok); i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml,
                 "users: { a: { password: x, mailboxes: { INBOX: { messages: [ { file: \"%s\", "
                 "exact: true } ] } } } }\n",
                 ok[i]);
        struct ms_scenario *sc = NULL;
        struct mocksrv_error err = {0};
        int rc =
            ms_scenario_load_string_embedded(yaml, strlen(yaml), "<e>", "scenarios", &sc, &err);
        ck_assert_msg(rc == MOCKSRV_OK, "%s: %s", ok[i], err.message);
        const struct ms_message_conf *mc = &sc->users[0].mailboxes[0].messages[0];
        check_bytes(ok[i], mc->bytes, mc->len, (const char *)f->data, f->len);
        ms_scenario_destroy(&sc);
    }
    static const char *const bad[] = {"nope.eml", "../../scenarios/default.yaml",
                                      "/scenarios/default.yaml", "scenarios/default.yaml"};
    for (size_t i = 0; i < MS_ARRAY_LEN(bad); i++) {
        char yaml[256], want[512];
        snprintf(yaml, sizeof yaml,
                 "users: { a: { password: x, mailboxes: { INBOX: { messages: [ { file: \"%s\" } "
                 "] } } } }\n",
                 bad[i]);
        struct ms_scenario *sc = NULL;
        struct mocksrv_error err = {0};
        int rc =
            ms_scenario_load_string_embedded(yaml, strlen(yaml), "<e>", "scenarios", &sc, &err);
        ck_assert_msg(rc == MOCKSRV_ESCENARIO, "%s: got rc %d, want %d", bad[i], rc,
                      MOCKSRV_ESCENARIO);
        snprintf(want, sizeof want,
                 "<e>:1:70: users.a.mailboxes.INBOX.messages[0].file: cannot read \"%s\": not "
                 "among the embedded files (add it to EMBED_INPUTS in CMakeLists.txt)",
                 bad[i]);
        ck_assert_msg(strcmp(err.message, want) == 0, "got  %s\nwant %s", err.message, want);
    }
}
END_TEST

START_TEST(test_default_files)
{
    /* Whatever files the embedded default lists, each is the embedded copy of the file under
     * fixtures/ (converted like any file), and the default has an INBOX for every user. */
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    int rc = ms_scenario_load_default(&sc, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "default: %s", err.message);
    size_t n_files = 0;
    for (size_t u = 0; u < sc->n_users; u++) {
        const struct ms_user *user = &sc->users[u];
        ck_assert_uint_ge(user->n_mailboxes, 1);
        ck_assert_str_eq(user->mailboxes[0].name, "INBOX");
        for (size_t k = 0; k < user->n_mailboxes; k++) {
            const struct ms_mailbox_conf *mb = &user->mailboxes[k];
            for (size_t i = 0; i < mb->n_messages; i++) {
                const struct ms_message_conf *mc = &mb->messages[i];
                if (mc->source != MS_MSG_FILE)
                    continue;
                char rel[1024];
                snprintf(rel, sizeof rel, "scenarios/%s", mc->file);
                size_t n;
                char *want = mc->exact ? read_fixture(rel, &n) : expected_file_bytes(rel, &n);
                check_bytes(rel, mc->bytes, mc->len, want, n);
                free(want);
                n_files++;
            }
        }
    }
    /* SPEC 5: alice's Sent, Drafts and Trash have their special-use attributes */
    const struct ms_user *alice = ms_scenario_find_user(sc, "alice");
    ck_assert_ptr_nonnull(alice);
    static const char *const special[][2] = {
        {"Sent", "\\Sent"}, {"Drafts", "\\Drafts"}, {"Trash", "\\Trash"}};
    for (size_t i = 0; i < MS_ARRAY_LEN(special); i++) {
        const struct ms_mailbox_conf *found = NULL;
        for (size_t k = 0; k < alice->n_mailboxes; k++)
            if (strcmp(alice->mailboxes[k].name, special[i][0]) == 0)
                found = &alice->mailboxes[k];
        ck_assert_msg(found != NULL, "default: alice has no %s", special[i][0]);
        ck_assert_msg(found->special_use && strcmp(found->special_use, special[i][1]) == 0,
                      "default: %s.special_use: got %s, want %s", special[i][0],
                      found->special_use ? found->special_use : "(none)", special[i][1]);
    }
    fprintf(stderr, "test_default_files: %zu message file(s) in the default\n", n_files);
    ms_scenario_destroy(&sc);
}
END_TEST

/* ---- errors ---- */

static const struct {
    const char *yaml;
    int line, column;
    const char *message; /* the message after "x.yaml:LINE:COLUMN: " starts with this */
} error_cases[] = {
    /* top level */
    {"", 1, 1, "empty scenario"},
    {"# only a comment\n", 1, 1, "empty scenario"},
    {"[1, 2]\n", 1, 1, "expected a mapping, got a list"},
    {"~\n", 1, 1, "expected a mapping"},
    {"just text\n", 1, 1, "expected a mapping, got \"just text\""},
    {"version: 2\n", 1, 10, "version: unsupported version 2 (this mocksrv reads version 1)"},
    {"version: one\n", 1, 10, "version: expected an integer, got \"one\""},
    {"version: \"1\"\n", 1, 10, "version: expected an integer"},
    {"seed: -1\n", 1, 7, "seed: -1 is out of range"},
    {"seed: 18446744073709551616\n", 1, 7, "seed: 18446744073709551616 is out of range"},
    {"seed: 0x10\n", 1, 7, "seed: expected an integer"},
    {"seed: "
     "111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111"
     "1111111\n",
     1, 7, "seed: 111111111111111111111111111111111111111111111111... is out of range"},
    {"hostname: \"a b\"\n", 1, 11, "hostname: expected a host name, got \"a b\""},
    {"hostname: [a]\n", 1, 11, "hostname: expected a host name, got a list"},
    {"hostname:\nversion: 1\n", 1, 10, "hostname: expected a host name, got nothing"},
    {"bogus: 1\n", 1, 1, "bogus: unknown key (expected one of: version, seed, hostname"},
    {"Hostname: x\n", 1, 1, "Hostname: unknown key (did you mean \"hostname\"?)"},
    {"listener:\n  smtp:\n", 1, 1, "listener: unknown key (did you mean \"listeners\"?)"},
    {"faults: 1\n", 1, 9, "faults: expected a list of rules, got \"1\""},
    {"version: 1\nexpect:\n  - { messagse: 1 }\n", 3, 7,
     "expect[0].messagse: unknown key (did you mean \"messages\"?)"},
    {"fautls: []\n", 1, 1, "fautls: unknown key (did you mean \"faults\"?)"},
    {"smtp: {}\nsmtp: {}\n", 2, 1, "smtp: duplicate key (first at 1:1)"},
    /* smtp */
    {"smtp:\n  max_sizee: 10\n", 2, 3, "smtp.max_sizee: unknown key (did you mean \"max_size\"?)"},
    {"smtp: [1]\n", 1, 7, "smtp: expected a mapping, got a list"},
    {"smtp: yes\n", 1, 7, "smtp: expected a mapping, got \"yes\""},
    {"smtp:\n  auth: PLAIN\n", 2, 9, "smtp.auth: expected a list, like [PLAIN, LOGIN], got"},
    {"smtp:\n  auth: [PLAIN, PLAN]\n", 2, 17,
     "smtp.auth[1]: unknown mechanism \"PLAN\" (one of PLAIN, LOGIN, CRAM-MD5, XOAUTH2, "
     "OAUTHBEARER)"},
    {"smtp:\n  auth: [[PLAIN]]\n", 2, 10, "smtp.auth[0]: expected a mechanism, got a list"},
    {"smtp: { require_auth: maybe }\n", 1, 23,
     "smtp.require_auth: expected a boolean (true or false), got \"maybe\""},
    {"smtp: { deliver: \"true\" }\n", 1, 18, "smtp.deliver: expected a boolean"},
    {"smtp: { deliver: 1 }\n", 1, 18, "smtp.deliver: expected a boolean"},
    {"smtp: { max_size: 10XB }\n", 1, 19,
     "smtp.max_size: bad size \"10XB\" (use 4096, 4KiB, 10MB)"},
    {"smtp: { max_size: -1 }\n", 1, 19, "smtp.max_size: bad size \"-1\""},
    {"smtp: { max_size: 0 }\n", 1, 19, "smtp.max_size: 0 is out of range (1 .. "},
    {"smtp: { max_size: }\n", 1, 19, "smtp.max_size: expected a size"},
    {"smtp:\n  extensions: [SIZE, STARTTLS]\n", 2, 22,
     "smtp.extensions[1]: unknown extension \"STARTTLS\" (one of SIZE, PIPELINING"},
    {"smtp:\n  deliver: true\n  deliver: false\n", 3, 3,
     "smtp.deliver: duplicate key (first at 2:3)"},
    /* pop3, imap */
    {"pop3: { apop: 1 }\n", 1, 15, "pop3.apop: expected a boolean"},
    {"pop3: { auth: [APOP] }\n", 1, 16, "pop3.auth[0]: unknown mechanism \"APOP\""},
    {"pop3: { stls: true }\n", 1, 9, "pop3.stls: unknown key (expected one of: auth, apop)"},
    {"imap: { capabilities: yes }\n", 1, 23,
     "imap.capabilities: expected \"default\" or a list of capabilities, got \"yes\""},
    {"imap: { capabilities: [IDLE, \"A B\"] }\n", 1, 30,
     "imap.capabilities[1]: expected an IMAP atom, got \"A B\""},
    {"imap: { capabilites: [] }\n", 1, 9,
     "imap.capabilites: unknown key (did you mean \"capabilities\"?)"},
    /* limits */
    {"limits: { smtp_line_length: 100 }\n", 1, 29,
     "limits.smtp_line_length: 100 is out of range (512 .. 64KiB)"},
    {"limits: { smtp_line_length: 65537 }\n", 1, 29,
     "limits.smtp_line_length: 65537 is out of range (512 .. 64KiB)"},
    {"limits: { pop3_line_length: 254 }\n", 1, 29, "limits.pop3_line_length: 254 is out"},
    {"limits: { imap_line_length: 32MiB }\n", 1, 29, "limits.imap_line_length: 32MiB is out"},
    {"limits: { message_size: 2GiB }\n", 1, 25,
     "limits.message_size: 2GiB is out of range (1 .. 1GiB)"},
    {"limits: { literal_size: 0 }\n", 1, 25, "limits.literal_size: 0 is out of range"},
    {"limits: { idle_timeout: 5x }\n", 1, 25,
     "limits.idle_timeout: bad duration \"5x\" (use 250ms, 2s, 1.5s, 1m, 1h)"},
    {"limits: { idle_timeout: 0s }\n", 1, 25,
     "limits.idle_timeout: 0s is out of range (1ms .. 7d)"},
    {"limits: { idle_timeout: 8d }\n", 1, 25, "limits.idle_timeout: 8d is out of range"},
    {"limits: { sessions: 0 }\n", 1, 21, "limits.sessions: 0 is out of range (1 .. 1000000)"},
    {"limits: { sessions: 1.5 }\n", 1, 21, "limits.sessions: expected an integer, got \"1.5\""},
    {"limits: { bad_commands: -3 }\n", 1, 25, "limits.bad_commands: -3 is out of range"},
    {"limits: { bad_command: 3 }\n", 1, 11,
     "limits.bad_command: unknown key (did you mean \"bad_commands\"?)"},
    /* listeners */
    {"listeners: [smtp]\n", 1, 12, "listeners: expected a mapping of listeners, got a list"},
    {"listeners: {}\n", 1, 12, "listeners: no listeners"},
    {"listeners:\n  smtp: { port: 70000 }\n", 2, 17,
     "listeners.smtp.port: 70000 is out of range (0 .. 65535)"},
    {"listeners:\n  smtp: { port: 0, window: 0 }\n", 2, 28,
     "listeners.smtp.window: 0 is out of range (1 .. 64MiB)"},
    {"listeners:\n  smtp: { port: 0, window: small }\n", 2, 28,
     "listeners.smtp.window: bad size \"small\""},
    {"listeners:\n  smtp: { port: -1 }\n", 2, 17, "listeners.smtp.port: -1 is out of range"},
    {"listeners:\n  smtp: { port: smtp }\n", 2, 17, "listeners.smtp.port: expected an integer"},
    {"listeners:\n  odd: { port: 1 }\n", 2, 3,
     "listeners.odd: missing protocol (smtp, lmtp, pop3, imap or script)"},
    {"listeners:\n  odd:\n", 2, 3, "listeners.odd: missing protocol"},
    {"listeners:\n  mx: { protocol: smtpp }\n", 2, 19,
     "listeners.mx.protocol: unknown protocol \"smtpp\" (one of smtp, lmtp, pop3, imap, script)"},
    {"listeners:\n  mx: { protocol: smtp, tls: maybe }\n", 2, 30,
     "listeners.mx.tls: unknown TLS mode \"maybe\" (one of none, starttls, required, implicit)"},
    {"listeners:\n  mx: { protocol: script }\n", 2, 3,
     "listeners.mx: protocol script needs a script: a list of steps"},
    {"listeners:\n  mx: { protocol: smtp, script: [{send: x}] }\n", 2, 25,
     "listeners.mx.script: only a listener with protocol: script has a script"},
    {"listeners:\n  mx: { protocol: smtp, prot: 1 }\n", 2, 25,
     "listeners.mx.prot: unknown key (did you mean \"port\"?)"},
    {"listeners:\n  mx: { protocol: smtp, host: \"\" }\n", 2, 31,
     "listeners.mx.host: expected a host name"},
    {"listeners:\n  a: { protocol: smtp, port: 25 }\n  b: { protocol: lmtp, port: 25 }\n", 3, 3,
     "listeners.b: port 25 is already used by listener a"},
    {"listeners:\n  \"a b\": { protocol: smtp }\n", 2, 3,
     "listeners.a b: bad listener name (letters, digits, - and _ only)"},
    {"listeners:\n  smtp: {}\n  smtp: {}\n", 3, 3, "listeners.smtp: duplicate key (first at 2:3)"},
    {"listeners:\n  smtp: [1]\n", 2, 9, "listeners.smtp: expected a mapping, got a list"},
    /* tls */
    {"tls: { cert: a.pem }\n", 1, 8, "tls.cert: needs tls.key too"},
    {"tls: { key: a.key }\n", 1, 8, "tls.key: needs tls.cert too"},
    {"tls: { cert: \"\", key: k }\n", 1, 14, "tls.cert: expected a non-empty string"},
    {"tls: { min_version: \"1.4\" }\n", 1, 21,
     "tls.min_version: unknown TLS version \"1.4\" (one of 1.0, 1.1, 1.2, 1.3)"},
    {"tls: { min_version: 1.30 }\n", 1, 21, "tls.min_version: unknown TLS version \"1.30\""},
    /* users */
    {"users: {}\n", 1, 8, "users: no users"},
    {"users: [alice]\n", 1, 8, "users: expected a mapping of users, got a list"},
    {"users:\n  bob: { addresses: [bob@x] }\n", 2, 3, "users.bob: missing password"},
    {"users:\n  bob:\n", 2, 3, "users.bob: missing password"},
    {"users:\n  bob: secret\n", 2, 8, "users.bob: expected a mapping, got \"secret\""},
    {"users:\n  bob: { password: ~ }\n", 2, 20,
     "users.bob.password: expected a string, got nothing"},
    {"users:\n  bob: { password: \"a\\0b\" }\n", 2, 20,
     "users.bob.password: expected a string, got \"a\\x00b\""},
    {"users:\n  bob: { password: x, addresses: [bob] }\n", 2, 35,
     "users.bob.addresses[0]: expected an address like alice@mock.test, got \"bob\""},
    {"users:\n  bob: { password: x, addresses: bob@x }\n", 2, 34,
     "users.bob.addresses: expected a list"},
    {"users:\n  bob: { password: x, mailboxes: [INBOX] }\n", 2, 34,
     "users.bob.mailboxes: expected a mapping of mailboxes, got a list"},
    {"users:\n  bob: { password: x, mailboxes: INBOX }\n", 2, 34,
     "users.bob.mailboxes: expected a mapping of mailboxes, got \"INBOX\""},
    {"users:\n  bob: { password: x, pasword: y }\n", 2, 23,
     "users.bob.pasword: unknown key (did you mean \"password\"?)"},
    {"users:\n  alice: { password: x }\n  ALICE: { password: y }\n", 3, 3,
     "users.ALICE: \"ALICE\" is already the name of user alice at 2:3"},
    {"users:\n  alice: { password: x, addresses: [a@x] }\n"
     "  bob: { password: y, addresses: [b@x, A@X] }\n",
     3, 40, "users.bob.addresses[1]: \"A@X\" is already the address of user alice at 2:37"},
    {"users:\n  \"\": { password: x }\n", 2, 3, "users.: bad user name"},
    /* YAML itself */
    {"base: &b { deliver: true }\nsmtp: *b\n", 2, 7,
     "smtp: alias *b: aliases are not supported, repeat the value"},
    {"smtp:\n  auth: [PLAIN, *m]\n", 2, 17, "smtp.auth[1]: alias *m"},
    {"a: 1\n---\nb: 2\n", 2, 1, "a second YAML document: one scenario per file"},
    {"smtp: {\n", 2, 1, "YAML syntax error: did not find expected node content"},
    {"smtp:\n  auth: [PLAIN\n", 3, 1, "YAML syntax error"},
    {"hostname: \"unterminated\n", 2, 1, "YAML syntax error: found unexpected end of stream"},
    {"a: b: c\n", 1, 5, "YAML syntax error: mapping values are not allowed in this context"},
    {"smtp:\n\tauth: []\n", 2, 1, "YAML syntax error: found character that cannot start"},
    {"? [a]\n: 1\n", 1, 3, "keys must be strings, not lists"},
    {"a: \xff\n", 1, 4, "YAML error: invalid leading UTF-8 octet (byte 0xff)"},
    {"a: \"\x01\"\n", 1, 5, "YAML error: control characters are not allowed"},
};

START_TEST(test_error)
{
    const char *yaml = error_cases[_i].yaml;
    struct ms_scenario *sc = (struct ms_scenario *)1;
    struct mocksrv_error err;
    memset(&err, 0x55, sizeof err);
    int rc = ms_scenario_load_string(yaml, strlen(yaml), "x.yaml", ".", &sc, &err);
    ck_assert_msg(rc == MOCKSRV_ESCENARIO, "case %d: got rc %d, want %d", _i, rc,
                  MOCKSRV_ESCENARIO);
    ck_assert_ptr_null(sc);
    ck_assert_int_eq(err.code, MOCKSRV_ESCENARIO);
    ck_assert_str_eq(err.file, "x.yaml");
    char want[1200];
    snprintf(want, sizeof want, "x.yaml:%d:%d: %s", error_cases[_i].line, error_cases[_i].column,
             error_cases[_i].message);
    ck_assert_msg(err.line == error_cases[_i].line && err.column == error_cases[_i].column &&
                      strncmp(err.message, want, strlen(want)) == 0,
                  "case %d:\n got  %d:%d %s\n want %s...", _i, err.line, err.column, err.message,
                  want);
    /* Without a diagnostics struct the result is the same. */
    ck_assert_int_eq(ms_scenario_load_string(yaml, strlen(yaml), "x.yaml", ".", &sc, NULL),
                     MOCKSRV_ESCENARIO);
    ck_assert_ptr_null(sc);
}
END_TEST

START_TEST(test_error_exact)
{
    /* The exact message of the example in the brief, and the bad/ fixtures through the file
     * loader (the CLI tests use them too). */
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err;
    const char *yaml = "version: 1\nhostname: a\n\n\n\nsmtp:\n    max_sizee: 10\n";
    ms_scenario_load_string(yaml, strlen(yaml), "x.yaml", ".", &sc, &err);
    ck_assert_str_eq(err.message,
                     "x.yaml:7:5: smtp.max_sizee: unknown key (did you mean \"max_size\"?)");

    static const struct {
        const char *file;
        int line, column;
        const char *message;
    } files[] = {
        {"unknown_key.yaml", 7, 5, "smtp.max_sizee: unknown key (did you mean \"max_size\"?)"},
        {"syntax.yaml", 4, 6,
         "YAML syntax error: did not find expected ',' or '}' (while parsing a flow mapping at "
         "3:7)"},
        {"../faults-bad-split.yaml", 5, 23,
         "faults[0].split: offsets and size cannot be combined (one way of cutting per split)"},
        {"range.yaml", 4, 21, "limits.smtp_line_length: 100 is out of range (512 .. 64KiB)"},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(files); i++) {
        char path[1024], want[2048];
        snprintf(path, sizeof path, "%s/scenarios/bad/%s", fixtures(), files[i].file);
        int rc = ms_scenario_load_file(path, &sc, &err);
        ck_assert_int_eq(rc, MOCKSRV_ESCENARIO);
        ck_assert_ptr_null(sc);
        ck_assert_str_eq(err.file, path);
        snprintf(want, sizeof want, "%s:%d:%d: %s", path, files[i].line, files[i].column,
                 files[i].message);
        ck_assert_msg(strcmp(err.message, want) == 0, "%s:\n got  %s\n want %s", files[i].file,
                      err.message, want);
    }
}
END_TEST

START_TEST(test_file_errors)
{
    struct ms_scenario *sc = (struct ms_scenario *)1;
    struct mocksrv_error err;
    int rc = ms_scenario_load_file("/nonexistent/x.yaml", &sc, &err);
    ck_assert_int_eq(rc, MOCKSRV_EIO);
    ck_assert_int_eq(err.code, MOCKSRV_EIO);
    ck_assert_ptr_null(sc);
    ck_assert_str_eq(err.message, "/nonexistent/x.yaml: cannot read: No such file or directory");
    ck_assert_str_eq(err.file, "/nonexistent/x.yaml");
    ck_assert_int_eq(err.line, 0);

    char dir[1024], want[1200];
    snprintf(dir, sizeof dir, "%s/scenarios", fixtures());
    ck_assert_int_eq(ms_scenario_load_file(dir, &sc, &err), MOCKSRV_EIO);
    snprintf(want, sizeof want, "%s: cannot read: Is a directory", dir);
    ck_assert_str_eq(err.message, want);
    ck_assert_int_eq(ms_scenario_load_file(dir, &sc, NULL), MOCKSRV_EIO);
}
END_TEST

START_TEST(test_deep_nesting)
{
    /* Far deeper than the limit, in both collection styles: an error, no stack overflow. */
    struct ms_buf b = {0};
    for (int i = 0; i < 100000; i++)
        ms_buf_putc(&b, '[');
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err;
    ck_assert_int_eq(ms_scenario_load_string(b.data, b.len, "x.yaml", ".", &sc, &err),
                     MOCKSRV_ESCENARIO);
    ck_assert_msg(strstr(err.message, "x.yaml:1:65: ") && strstr(err.message, "nested deeper"),
                  "got %s", err.message);
    ms_buf_clear(&b);
    for (int i = 0; i < 200; i++)
        ms_buf_printf(&b, "%*sk:\n", i, "");
    ck_assert_int_eq(ms_scenario_load_string(b.data, b.len, "x.yaml", ".", &sc, &err),
                     MOCKSRV_ESCENARIO);
    ck_assert_msg(strstr(err.message, "nested deeper"), "got %s", err.message);
    ms_buf_fini(&b);

    /* Billion laughs: refused at the first alias, whatever the expansion would be. */
    const char *lol = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n";
    ck_assert_int_eq(ms_scenario_load_string(lol, strlen(lol), "x.yaml", ".", &sc, &err),
                     MOCKSRV_ESCENARIO);
    ck_assert_msg(strstr(err.message, "x.yaml:2:8: b[0]: alias *a"), "got %s", err.message);
}
END_TEST

/* ---- lookups and names ---- */

START_TEST(test_find_user)
{
    struct ms_scenario *sc = load_ok("users:\n"
                                     "  alice: { password: a, addresses: [alice@mock.test, "
                                     "Alice.Liddell@Mock.Test] }\n"
                                     "  bob: { password: b }\n"
                                     "  \"carol@x\": { password: c, addresses: [carol@x] }\n");
    static const struct {
        const char *query;
        const char *want; /* user name, NULL = not found */
    } cases[] = {
        {"alice", "alice"},
        {"ALICE", "alice"},
        {"alice@mock.test", "alice"},
        {"ALICE@MOCK.TEST", "alice"},
        {"alice.liddell@mock.test", "alice"},
        {"bob", "bob"},
        {"Bob", "bob"},
        {"carol@x", "carol@x"},
        {"CAROL@X", "carol@x"},
        {"bob@mock.test", NULL},
        {"alic", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cases); i++) {
        const struct ms_user *u = ms_scenario_find_user(sc, cases[i].query);
        const char *got = u ? u->name : NULL;
        ck_assert_msg((got && cases[i].want) ? strcmp(got, cases[i].want) == 0
                                             : got == cases[i].want,
                      "\"%s\": got %s, want %s", cases[i].query, got ? got : "(none)",
                      cases[i].want ? cases[i].want : "(none)");
    }
    ck_assert_ptr_null(ms_scenario_find_user(sc, NULL));
    ck_assert_ptr_null(ms_scenario_find_user(NULL, "alice"));
    ms_scenario_destroy(&sc);
}
END_TEST

/* ---- robustness: truncations and mutations (what the fuzzer will do, bounded) ---- */

static void
check_robust(const char *yaml, size_t len, const char *what, size_t n, const char *base)
{
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err;
    memset(&err, 0, sizeof err);
    int rc = ms_scenario_load_string(yaml, len, "fuzz.yaml", base, &sc, &err);
    ck_assert_msg(rc == MOCKSRV_OK || rc == MOCKSRV_ESCENARIO, "%s %zu: rc %d", what, n, rc);
    if (rc == MOCKSRV_OK) {
        ck_assert_ptr_nonnull(sc);
        ck_assert_ptr_nonnull(sc->hostname);
        ck_assert_uint_ge(sc->n_listeners, 1);
        ms_scenario_destroy(&sc);
    } else {
        ck_assert_ptr_null(sc);
        ck_assert_msg(strncmp(err.message, "fuzz.yaml:", 10) == 0 && err.line >= 1 &&
                          err.column >= 1,
                      "%s %zu: bad error %d:%d \"%s\"", what, n, err.line, err.column, err.message);
    }
}

START_TEST(test_truncations_mailboxes)
{
    /* The same with mailboxes and messages, whose files are found (the fixture's directory). */
    size_t len;
    char *full = read_fixture("scenarios/mailboxes.yaml", &len);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/scenarios", fixtures());
    for (size_t n = 0; n <= len; n++) {
        char *cut = ms_malloc(n);
        memcpy(cut, full, n);
        struct ms_scenario *sc = NULL;
        struct mocksrv_error err;
        memset(&err, 0, sizeof err);
        int rc = ms_scenario_load_string(cut, n, "fuzz.yaml", dir, &sc, &err);
        ck_assert_msg(rc == MOCKSRV_OK || rc == MOCKSRV_ESCENARIO, "cut at %zu: rc %d", n, rc);
        if (rc == MOCKSRV_OK) {
            for (size_t u = 0; u < sc->n_users; u++)
                ck_assert_str_eq(sc->users[u].mailboxes[0].name, "INBOX");
            ms_scenario_destroy(&sc);
        } else {
            ck_assert_msg(
                strncmp(err.message, "fuzz.yaml:", 10) == 0 && err.line >= 1 && err.column >= 1,
                "cut at %zu: bad error %d:%d \"%s\"", n, err.line, err.column, err.message);
        }
        free(cut);
    }
    free(full);
}
END_TEST

START_TEST(test_truncations)
{
    size_t len;
    char *full = read_fixture("scenarios/full.yaml", &len);
    for (size_t n = 0; n <= len; n++) {
        /* A copy of exactly n bytes, so ASan sees any read past the end. */
        char *cut = ms_malloc(n);
        memcpy(cut, full, n);
        check_robust(cut, n, "truncated at", n, "/base");
        free(cut);
    }
    free(full);
}
END_TEST

static uint64_t
xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The documents mutated: every key of the loader between them. */
static const char *const mutated[] = {"scenarios/full.yaml", "scenarios/mailboxes.yaml"};

START_TEST(test_mutations)
{
    static const char interesting[] = "{}[]:,-&*!|>'\"#?%@\n \t\\0~";
    size_t len;
    char *full = read_fixture(mutated[_i], &len);
    char dir[1024]; /* where mailboxes.yaml finds its message files */
    snprintf(dir, sizeof dir, "%s/scenarios", fixtures());
    uint64_t seed = 0x5ce7a210u;
    for (size_t iter = 0; iter < 2000; iter++) {
        struct ms_buf b = {0};
        ms_buf_append(&b, full, len);
        int edits = 1 + (int)(xorshift(&seed) % 4);
        for (int e = 0; e < edits && b.len > 0; e++) {
            size_t at = (size_t)(xorshift(&seed) % b.len);
            uint64_t r = xorshift(&seed);
            char c = (r & 1) ? interesting[(r >> 8) % (sizeof interesting - 1)] : (char)(r >> 16);
            switch ((r >> 4) % 4) {
            case 0: /* replace */
                b.data[at] = c;
                break;
            case 1: /* insert */
                ms_buf_append(&b, "", 1);
                memmove(b.data + at + 1, b.data + at, b.len - at - 1);
                b.data[at] = c;
                break;
            case 2: { /* delete a run */
                size_t run = MS_MIN((size_t)(r >> 24) % 16 + 1, b.len - at);
                memmove(b.data + at, b.data + at + run, b.len - at - run);
                b.len -= run;
                break;
            }
            default: { /* append a copy of a run from elsewhere */
                size_t run = MS_MIN((size_t)(r >> 24) % 40 + 1, b.len - at);
                char tmp[40];
                memcpy(tmp, b.data + at, run);
                ms_buf_append(&b, tmp, run);
                break;
            }
            }
        }
        char *copy = ms_malloc(b.len);
        memcpy(copy, b.data, b.len);
        check_robust(copy, b.len, mutated[_i], iter, dir);
        free(copy);
        ms_buf_fini(&b);
    }
    free(full);
}
END_TEST

static Suite *
scenario_suite(void)
{
    Suite *s = suite_create("scenario");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, test_full_fixture);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_listener_defaults);
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_embedded_default);
    tcase_add_test(tc, test_mailboxes_fixture);
    tcase_add_test(tc, test_mailbox_values);
    tcase_add_test(tc, test_raw_crlf);
    tcase_add_test(tc, test_file_messages);
    tcase_add_test(tc, test_embedded_files);
    tcase_add_test(tc, test_default_files);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_loop_test(tc, test_error, 0, (int)MS_ARRAY_LEN(error_cases));
    tcase_add_test(tc, test_error_exact);
    tcase_add_test(tc, test_file_errors);
    tcase_add_test(tc, test_deep_nesting);
    suite_add_tcase(s, tc);

    tc = tcase_create("values");
    tcase_add_test(tc, test_seed_range);
    tcase_add_test(tc, test_find_user);
    suite_add_tcase(s, tc);

    tc = tcase_create("robustness");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_truncations);
    tcase_add_test(tc, test_truncations_mailboxes);
    tcase_add_loop_test(tc, test_mutations, 0, (int)MS_ARRAY_LEN(mutated));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(scenario_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
