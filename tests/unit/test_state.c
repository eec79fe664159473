/*
 * test_state.c - --state-out (ms_scenario_format_state in scenario_state.c): a store written back
 * as a scenario document, which must load again (ms_scenario_load_file) into a scenario that builds
 * the same store: accounts, mailboxes (uidvalidity, uidnext, special_use, subscribed) and
 * messages (bytes, uid, flags, keywords, date). Clean CRLF text goes inline as a `raw` literal
 * block, awkward bytes (binary, bare CR or LF, NUL, 8-bit, tabs, trailing blanks, no final line
 * end) to files in "<out_path>.d/".
 *
 * Each test works in its own mkdtemp directory under $TMPDIR. Table-driven cases print "got X,
 * want Y".
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scenario.h"
#include "store.h"

/* ---- helpers ---- */

static char *
make_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    char *dir = ms_asprintf("%s/mocksrv-state-XXXXXX", t && *t ? t : "/tmp");
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp %s: %s", dir, strerror(errno));
    return dir;
}

/* rm -r of a directory we made: files and one level of subdirectories. */
static void
remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *p = ms_asprintf("%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p);
        else
            unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

static size_t
count_files(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void
write_file(const char *path, const char *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "fopen %s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* The store of a scenario, as the server builds it. store.c does not know the mailbox key
 * uidnext yet (added with --state-out): apply it here the way it should, "at least this". */
static struct ms_store *
build_store(const struct ms_scenario *sc)
{
    struct ms_store *st = NULL;
    struct mocksrv_error err = {0};
    int rc = ms_store_load_scenario(sc, sc->seed, &st, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "ms_store_load_scenario: %s", err.message);
    for (size_t u = 0; u < sc->n_users; u++) {
        struct ms_account *acc = ms_store_account(st, sc->users[u].name, 0);
        ck_assert_ptr_nonnull(acc);
        for (size_t k = 0; k < sc->users[u].n_mailboxes; k++) {
            const struct ms_mailbox_conf *mc = &sc->users[u].mailboxes[k];
            struct ms_mailbox *mb = ms_store_mailbox(acc, mc->name);
            ck_assert_ptr_nonnull(mb);
            if (mc->uidnext > mb->uidnext)
                mb->uidnext = mc->uidnext;
        }
    }
    return st;
}

static struct ms_scenario *
load_string_ok(const char *yaml, const char *base_dir)
{
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    int rc = ms_scenario_load_string(yaml, strlen(yaml), "x.yaml", base_dir, &sc, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "load: got %d (%s), want 0", rc, err.message);
    return sc;
}

static void
check_same_bytes(const char *what, const struct ms_blob *got, const struct ms_blob *want)
{
    size_t i = 0;
    while (i < got->len && i < want->len && got->data[i] == want->data[i])
        i++;
    ck_assert_msg(got->len == want->len && i == got->len,
                  "%s: got %zu bytes, want %zu; first difference at byte %zu", what, got->len,
                  want->len, i);
}

/* The test's own reading of the rule of scenario.h for inline messages. */
static int
inline_ok(const struct ms_blob *b)
{
    const char *p = b->data;
    size_t n = b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        int blank_before = i > 0 && (p[i - 1] == ' ' || p[i - 1] == '\t');
        if (c == '\n' && (i == 0 || p[i - 1] != '\r'))
            return 0;
        if (c == '\r' && (i + 1 == n || p[i + 1] != '\n' || blank_before))
            return 0;
        if ((c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c > 0x7e)
            return 0;
    }
    return n == 0 || (p[n - 1] != ' ' && p[n - 1] != '\t' && p[0] != '\t');
}

/* Two stores hold the same state (\Recent aside: it belongs to sessions). */
static void
check_same_store(const struct ms_store *got, const struct ms_store *want)
{
    ck_assert_msg(got->n_accounts == want->n_accounts, "accounts: got %zu, want %zu",
                  got->n_accounts, want->n_accounts);
    for (size_t a = 0; a < want->n_accounts; a++) {
        const struct ms_account *ga = got->accounts[a], *wa = want->accounts[a];
        ck_assert_str_eq(ga->name, wa->name);
        ck_assert_msg(ga->n_mailboxes == wa->n_mailboxes, "%s: got %zu mailboxes, want %zu",
                      wa->name, ga->n_mailboxes, wa->n_mailboxes);
        for (size_t k = 0; k < wa->n_mailboxes; k++) {
            const struct ms_mailbox *gm = ga->mailboxes[k], *wm = wa->mailboxes[k];
            char what[512];
            snprintf(what, sizeof what, "%s/%s", wa->name, wm->name);
            ck_assert_str_eq(gm->name, wm->name);
            const struct {
                const char *field;
                unsigned long long got, want;
            } nums[] = {
                {"uidvalidity", gm->uidvalidity, wm->uidvalidity},
                {"uidnext", gm->uidnext, wm->uidnext},
                {"subscribed", (unsigned long long)gm->subscribed,
                 (unsigned long long)wm->subscribed},
                {"n_msgs", gm->n_msgs, wm->n_msgs},
            };
            for (size_t i = 0; i < MS_ARRAY_LEN(nums); i++)
                ck_assert_msg(nums[i].got == nums[i].want, "%s.%s: got %llu, want %llu", what,
                              nums[i].field, nums[i].got, nums[i].want);
            ck_assert_msg(gm->special_use && wm->special_use
                              ? strcmp(gm->special_use, wm->special_use) == 0
                              : gm->special_use == wm->special_use,
                          "%s.special_use: got %s, want %s", what,
                          gm->special_use ? gm->special_use : "(none)",
                          wm->special_use ? wm->special_use : "(none)");
            for (size_t i = 0; i < wm->n_msgs; i++) {
                const struct ms_message *g = gm->msgs[i], *w = wm->msgs[i];
                char mwhat[600];
                snprintf(mwhat, sizeof mwhat, "%s message %zu (uid %u)", what, i, w->uid);
                ck_assert_msg(g->uid == w->uid, "%s: got uid %u, want %u", mwhat, g->uid, w->uid);
                ck_assert_msg((g->flags & ~(unsigned)MS_FLAG_RECENT) ==
                                  (w->flags & ~(unsigned)MS_FLAG_RECENT),
                              "%s: got flags 0x%x, want 0x%x", mwhat, g->flags, w->flags);
                ck_assert_msg(g->internaldate == w->internaldate, "%s: got date %lld, want %lld",
                              mwhat, (long long)g->internaldate, (long long)w->internaldate);
                ck_assert_msg(g->n_keywords == w->n_keywords, "%s: got %zu keywords, want %zu",
                              mwhat, g->n_keywords, w->n_keywords);
                for (size_t j = 0; j < w->n_keywords; j++)
                    ck_assert_msg(strcmp(g->keywords[j], w->keywords[j]) == 0,
                                  "%s: keyword %zu: got %s, want %s", mwhat, j, g->keywords[j],
                                  w->keywords[j]);
                check_same_bytes(mwhat, g->blob, w->blob);
            }
        }
    }
}

/* Formats the state to dir/state.yaml (and its .d), writes it, loads it back. */
static struct ms_scenario *
round_trip(const struct ms_scenario *sc, const struct ms_store *st, const char *dir,
           struct ms_buf *yaml_r)
{
    char *out = ms_asprintf("%s/state.yaml", dir);
    struct mocksrv_error err = {0};
    struct ms_buf yaml = {0};
    int rc = ms_scenario_format_state(sc, st, out, &yaml, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "format_state: got %d (%s), want 0", rc, err.message);
    write_file(out, yaml.data, yaml.len);
    struct ms_scenario *back = NULL;
    rc = ms_scenario_load_file(out, &back, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "reload: %s\n--- document ---\n%s", err.message, yaml.data);
    free(out);
    if (yaml_r)
        *yaml_r = yaml;
    else
        ms_buf_fini(&yaml);
    return back;
}

/* ---- the round trip ---- */

/* Message bodies that cannot be a `raw` literal block and must go to a file, byte for byte. */
static const struct {
    const char *what;
    const char *bytes;
    size_t len;
} awkward[] = {
    {"binary", "\x00\x01\x02\xff\xfe\r\n\x80", 8},
    {"bare CR", "Subject: a\r\n\r\nline\rmore\r\n", 25},
    {"bare LF among CRLF", "Subject: a\r\n\r\nline\nmore\r\n", 25},
    {"LF only", "Subject: a\n\nbody\n", 17},
    {"trailing spaces", "Subject: a  \r\n\r\nbody \r\n", 23},
    {"trailing tab", "Subject: a\t\r\n\r\nbody\r\n", 21},
    {"tab first", "\tSubject: a\r\n\r\nbody\r\n", 21},
    {"tab before a line end", "Subject: a\r\n\r\nbody\t\r\nend\r\n", 26},
    {"no final line end, blank at end", "Subject: a\r\n\r\nbody ", 19},
    {"NUL", "Subject: a\r\n\r\nnul\0byte\r\n", 24},
    {"8-bit", "Subject: caf\xc3\xa9\r\n\r\n\xe9t\xe9\r\n", 22},
    {"final CR", "Subject: a\r\n\r\nbody\r", 19},
    {"DEL", "Subject: a\r\n\r\n\x7f\r\n", 17},
};

/* ... and clean text that must go inline (as raw) and come back exactly. */
static const struct {
    const char *what;
    const char *bytes;
} clean[] = {
    {"simple", "From: a@b\r\nSubject: hi\r\n\r\nbody\r\n"},
    {"no final line end", "Subject: a\r\n\r\nbody"},
    {"several final line ends", "Subject: a\r\n\r\nbody\r\n\r\n\r\n"},
    {"leading spaces", "  indented first line\r\n   and more\r\n"},
    {"leading line end", "\r\nSubject: a\r\n"},
    {"only line ends", "\r\n\r\n"},
    {"YAML-looking lines", "--- x\r\n---\r\n...\r\n# not a comment\r\n- item\r\nkey: value\r\n"},
    {"quotes and backslashes", "Subject: \"q\" 'q' \\ |>\r\n\r\n{[*&!%@`]}\r\n"},
    {"blank lines inside", "a\r\n\r\n\r\nb\r\n"},
    {"empty", ""},
    {"tab inside", "Subject: a\tb\r\n\r\nbody\r\n"},
    {"folded header", "Received: from a\r\n\tby b;\r\n\t\t2 tabs\r\nSubject: x\r\n\r\nb\r\n"},
    {"tab after a leading line end", "\r\n\tx\r\n"},
    {"space then tab first", " \tx\r\n"},
};

START_TEST(test_round_trip)
{
    char *dir = make_tmpdir();
    char *mail = ms_asprintf("%s/in.eml", dir);
    write_file(mail, "Subject: from a file\n\nLF only on disk\n", 38);
    const char *yaml =
        "version: 1\n"
        "seed: 7\n"
        "hostname: mx.mock.test\n"
        "listeners:\n"
        "  smtp: { port: 0 }\n"
        "  odd: { protocol: imap, port: 2143, tls: implicit, host: \"::1\" }\n"
        "tls: { cert: c.pem, key: /k.pem, min_version: \"1.2\" }\n"
        "smtp: { max_size: 5MB, auth: [LOGIN], require_auth: true, extensions: [SIZE], "
        "deliver: false }\n"
        "pop3: { auth: [], apop: true }\n"
        "imap: { capabilities: [IMAP4rev1, IDLE], auth: [PLAIN] }\n"
        "limits: { smtp_line_length: 1000, idle_timeout: 1500ms, sessions: 9, message_size: "
        "2MiB }\n"
        "users:\n"
        "  alice:\n"
        "    password: secret\n"
        "    addresses: [alice@mock.test, a2@mock.test]\n"
        "    mailboxes:\n"
        "      INBOX:\n"
        "        uidvalidity: 1700000000\n"
        "        messages:\n"
        "          - file: in.eml\n"
        "            flags: ['\\Seen', '$Label1', NonJunk]\n"
        "            date: 2024-05-01T09:00:00Z\n"
        "          - raw: |\n"
        "              Subject: raw\n"
        "\n"
        "              body\n"
        "            uid: 10\n"
        "            date: 1969-07-20T20:17:40Z\n"
        "          - generate: { count: 3, size: 200 }\n"
        "            flags: ['\\Flagged']\n"
        "      Sent: { special_use: '\\Sent', uidvalidity: 42, uidnext: 50 }\n"
        "      Archive/2023: { subscribed: false }\n"
        "      \"a/b\": {}\n"
        "      a_b: {}\n"
        "      \"sp ace\": {}\n"
        "      \"Caf\xc3\xa9\": { special_use: '\\Junk' }\n"
        "  \"carol@x\":\n"
        "    password: \"\"\n"
        "  dave:\n"
        "    password: \"null\"\n"
        "  \"1234\":\n"
        "    password: \"a: b # c\"\n";
    struct ms_scenario *sc = load_string_ok(yaml, dir);
    struct ms_store *st = build_store(sc);

    /* What a run could do to the store: flags changed, a message expunged (uidnext stays above
     * it), awkward and clean messages delivered into several mailboxes. */
    struct ms_account *alice = ms_store_account(st, "alice", 0);
    struct ms_mailbox *inbox = ms_store_mailbox(alice, "INBOX");
    const char *kw[] = {"$Forwarded"};
    ms_store_set_flags(inbox, inbox->msgs[1], MS_FLAG_ANSWERED | MS_FLAG_DRAFT | MS_FLAG_RECENT, kw,
                       1);
    ck_assert_int_eq(ms_store_expunge_uid(inbox, inbox->msgs[inbox->n_msgs - 1]->uid), 0);
    const char *mailboxes[] = {"INBOX", "a/b", "a_b", "sp ace", "Caf\xc3\xa9"};
    size_t n_awkward = 0;
    for (size_t i = 0; i < MS_ARRAY_LEN(awkward); i++) {
        for (size_t k = 0; k < MS_ARRAY_LEN(mailboxes); k++) {
            if (k != 0 && i % 3 != k % 3)
                continue;
            struct ms_mailbox *mb = ms_store_mailbox(alice, mailboxes[k]);
            ck_assert_ptr_nonnull(ms_store_append(mb,
                                                  ms_blob_create(awkward[i].bytes, awkward[i].len),
                                                  MS_FLAG_SEEN, NULL, 0, 1700000000 + (int)i, 0));
            n_awkward++;
        }
    }
    struct ms_mailbox *sent = ms_store_mailbox(alice, "Sent");
    for (size_t i = 0; i < MS_ARRAY_LEN(clean); i++)
        ck_assert_ptr_nonnull(
            ms_store_append(sent, ms_blob_create(clean[i].bytes, strlen(clean[i].bytes)), 0, NULL,
                            0, i ? 1600000000 + (int)i : 0, 0));
    /* a mailbox of the same files' names for two mailboxes: "a/b" and "a_b" both had uid 1 */
    ck_assert_uint_ge(ms_store_mailbox(alice, "a/b")->n_msgs, 1);
    ck_assert_uint_ge(ms_store_mailbox(alice, "a_b")->n_msgs, 1);

    struct ms_buf doc = {0};
    struct ms_scenario *back = round_trip(sc, st, dir, &doc);
    struct ms_store *st2 = build_store(back);
    check_same_store(st2, st);

    /* Each message is where SPEC says: inline when it is printable ASCII with CRLF line ends
     * and no blank before a line end (a literal block holds it exactly), else in a file. */
    const struct ms_user *ba = ms_scenario_find_user(back, "alice");
    struct ms_account *alice2 = ms_store_account(st2, "alice", 0);
    size_t n_file = 0;
    for (size_t k = 0; k < ba->n_mailboxes; k++) {
        const struct ms_mailbox *mb2 = alice2->mailboxes[k];
        ck_assert_uint_eq(ba->mailboxes[k].n_messages, mb2->n_msgs);
        for (size_t i = 0; i < ba->mailboxes[k].n_messages; i++) {
            const struct ms_message_conf *mc = &ba->mailboxes[k].messages[i];
            enum ms_message_source want = inline_ok(mb2->msgs[i]->blob) ? MS_MSG_RAW : MS_MSG_FILE;
            ck_assert_msg(mc->source == want, "%s message %zu: got source %d, want %d",
                          ba->mailboxes[k].name, i, mc->source, want);
            n_file += mc->source == MS_MSG_FILE;
        }
    }
    /* every awkward body is a file, every clean one inline (Sent has only those) */
    ck_assert_uint_ge(n_file, n_awkward);
    const struct ms_mailbox_conf *sent_conf = &ba->mailboxes[1];
    ck_assert_str_eq(sent_conf->name, "Sent");
    for (size_t i = 0; i < sent_conf->n_messages; i++)
        ck_assert_msg(sent_conf->messages[i].source == MS_MSG_RAW,
                      "Sent message %zu (%s): got a file, want raw", i, clean[i].what);
    char *d = ms_asprintf("%s/state.yaml.d", dir);
    ck_assert_uint_eq(count_files(d), n_file);
    free(d);

    /* The settings came through too. */
    ck_assert_int_eq(back->has_seed, 1);
    ck_assert_uint_eq(back->seed, 7);
    ck_assert_str_eq(back->hostname, "mx.mock.test");
    ck_assert_uint_eq(back->n_listeners, 2);
    ck_assert_str_eq(back->listeners[1].name, "odd");
    ck_assert_int_eq(back->listeners[1].protocol, MS_PROTO_IMAP);
    ck_assert_int_eq(back->listeners[1].tls, MS_TLS_IMPLICIT);
    ck_assert_int_eq(back->listeners[1].port, 2143);
    ck_assert_str_eq(back->listeners[1].host, "::1");
    ck_assert_str_eq(back->tls.cert, sc->tls.cert); /* dir is absolute: so was the path */
    ck_assert_str_eq(back->tls.key, "/k.pem");
    ck_assert_int_eq(back->tls.min_version, 0x0303);
    ck_assert_uint_eq(back->smtp.max_size, 5000000);
    ck_assert_uint_eq(back->smtp.auth, MS_AUTH_LOGIN);
    ck_assert_int_eq(back->smtp.require_auth, 1);
    ck_assert_uint_eq(back->smtp.extensions, MS_EXT_SIZE);
    ck_assert_int_eq(back->smtp.deliver, 0);
    ck_assert_uint_eq(back->pop3.auth, 0);
    ck_assert_int_eq(back->pop3.apop, 1);
    ck_assert_uint_eq(back->imap.n_capabilities, 2);
    ck_assert_str_eq(back->imap.capabilities[1], "IDLE");
    ck_assert_uint_eq(back->imap.auth, MS_AUTH_PLAIN);
    ck_assert_uint_eq(back->limits.smtp_line_length, 1000);
    ck_assert_int_eq(back->limits.idle_timeout_ms, 1500);
    ck_assert_uint_eq(back->limits.sessions, 9);
    ck_assert_uint_eq(back->limits.message_size, 2u << 20);
    ck_assert_uint_eq(back->limits.literal_size, sc->limits.literal_size);
    ck_assert_uint_eq(back->n_users, 4);
    const char *passwords[][2] = {
        {"alice", "secret"}, {"carol@x", ""}, {"dave", "null"}, {"1234", "a: b # c"}};
    for (size_t i = 0; i < MS_ARRAY_LEN(passwords); i++) {
        ck_assert_str_eq(back->users[i].name, passwords[i][0]);
        ck_assert_str_eq(back->users[i].password, passwords[i][1]);
    }
    ck_assert_uint_eq(back->users[0].n_addresses, 2);
    ck_assert_str_eq(back->users[0].addresses[1], "a2@mock.test");

    /* And a second round trip gives the same document, byte for byte. */
    struct ms_buf doc2 = {0};
    struct ms_scenario *back2 = round_trip(back, st2, dir, &doc2);
    ck_assert_msg(doc.len == doc2.len && memcmp(doc.data, doc2.data, doc.len) == 0,
                  "second document differs:\n%s\n--- vs ---\n%s", doc.data, doc2.data);

    ms_buf_fini(&doc);
    ms_buf_fini(&doc2);
    ms_scenario_destroy(&back2);
    ms_store_destroy(&st2);
    ms_scenario_destroy(&back);
    ms_store_destroy(&st);
    ms_scenario_destroy(&sc);
    remove_tree(dir);
    free(mail);
    free(dir);
}
END_TEST

START_TEST(test_each_awkward_alone)
{
    /* Every awkward body, and every clean one, alone in an INBOX: back exactly, and in the form
     * expected (a file or raw). */
    for (int kind = 0; kind < 2; kind++) {
        size_t n = kind == 0 ? MS_ARRAY_LEN(awkward) : MS_ARRAY_LEN(clean);
        for (size_t i = 0; i < n; i++) {
            const char *what = kind == 0 ? awkward[i].what : clean[i].what;
            const char *bytes = kind == 0 ? awkward[i].bytes : clean[i].bytes;
            size_t len = kind == 0 ? awkward[i].len : strlen(clean[i].bytes);
            char *dir = make_tmpdir();
            struct ms_scenario *sc = load_string_ok("users: { u: { password: p } }\n", dir);
            struct ms_store *st = build_store(sc);
            struct ms_mailbox *mb = ms_store_mailbox(ms_store_account(st, "u", 0), "INBOX");
            ck_assert_ptr_nonnull(
                ms_store_append(mb, ms_blob_create(bytes, len), 0, NULL, 0, 0, 7));
            struct ms_scenario *back = round_trip(sc, st, dir, NULL);
            const struct ms_message_conf *mc = &back->users[0].mailboxes[0].messages[0];
            enum ms_message_source want = kind == 0 ? MS_MSG_FILE : MS_MSG_RAW;
            ck_assert_msg(mc->source == want, "%s: got source %d, want %d", what, mc->source, want);
            struct ms_store *st2 = build_store(back);
            check_same_store(st2, st);
            ms_store_destroy(&st2);
            ms_scenario_destroy(&back);
            ms_store_destroy(&st);
            ms_scenario_destroy(&sc);
            remove_tree(dir);
            free(dir);
        }
    }
}
END_TEST

START_TEST(test_document)
{
    /* The exact document for a small store: what a user reads after --state-out. */
    struct ms_scenario *sc =
        load_string_ok("users:\n"
                       "  alice:\n"
                       "    password: secret\n"
                       "    addresses: [alice@localhost]\n"
                       "    mailboxes:\n"
                       "      INBOX:\n"
                       "        uidvalidity: 5\n"
                       "        messages:\n"
                       "          - raw: |\n"
                       "              Subject: hi\n"
                       "\n"
                       "              body\n"
                       "            flags: ['\\seen', $Label1]\n"
                       "            date: 2024-05-01T11:00:00+02:00\n"
                       "      Trash: { special_use: '\\trash', subscribed: no, uidvalidity: 6 }\n",
                       ".");
    struct ms_store *st = build_store(sc);
    struct ms_buf yaml = {0};
    struct mocksrv_error err = {0};
    ck_assert_int_eq(ms_scenario_format_state(sc, st, NULL, &yaml, &err), MOCKSRV_OK);
    static const char want[] =
        "# mocksrv state: the scenario with its mailboxes as they were at exit.\n"
        "version: 1\n"
        "hostname: localhost\n"
        "listeners:\n"
        "  smtp: {protocol: smtp, port: 3025, tls: none}\n"
        "smtp:\n"
        "  max_size: 10MiB\n"
        "  auth: [PLAIN, LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER]\n"
        "  require_auth: false\n"
        "  extensions: [SIZE, PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING, DSN, "
        "VRFY, HELP]\n"
        "  deliver: true\n"
        "pop3:\n"
        "  auth: [PLAIN, LOGIN, XOAUTH2]\n"
        "  apop: false\n"
        "imap:\n"
        "  capabilities: default\n"
        "  auth: [PLAIN, LOGIN, XOAUTH2]\n"
        "limits:\n"
        "  smtp_line_length: 512\n"
        "  pop3_line_length: 512\n"
        "  imap_line_length: 64KiB\n"
        "  message_size: 64MiB\n"
        "  literal_size: 64MiB\n"
        "  sessions: 10000\n"
        "  idle_timeout: 10m\n"
        "  bad_commands: 20\n"
        "users:\n"
        "  alice:\n"
        "    password: secret\n"
        "    addresses: [alice@localhost]\n"
        "    mailboxes:\n"
        "      INBOX:\n"
        "        uidvalidity: 5\n"
        "        uidnext: 2\n"
        "        subscribed: true\n"
        "        messages:\n"
        "        - uid: 1\n"
        "          flags: ['\\Seen', '$Label1']\n"
        "          date: 2024-05-01T09:00:00Z\n"
        "          raw: |\n"
        "            Subject: hi\n"
        "\n"
        "            body\n"
        "      Trash:\n"
        "        uidvalidity: 6\n"
        "        uidnext: 1\n"
        "        special_use: '\\Trash'\n"
        "        subscribed: false\n";
    ck_assert_msg(strcmp(yaml.data, want) == 0, "got:\n%s\nwant:\n%s", yaml.data, want);
    ms_buf_fini(&yaml);
    ms_store_destroy(&st);
    ms_scenario_destroy(&sc);
}
END_TEST

START_TEST(test_tabs)
{
    /* Tabs go inline through a private-use mark that is put back after libyaml; a document
     * that has that character of its own (a mailbox name here) is made again with tabbed
     * messages in files instead. Both round trips are exact. */
    for (int own_mark = 0; own_mark < 2; own_mark++) {
        char *dir = make_tmpdir();
        struct ms_scenario *sc = load_string_ok(own_mark ? "users:\n  u:\n    password: p\n"
                                                           "    mailboxes: { \"m\xee\x80\x80\": }\n"
                                                         : "users: { u: { password: p } }\n",
                                                dir);
        struct ms_store *st = build_store(sc);
        struct ms_mailbox *mb = ms_store_mailbox(ms_store_account(st, "u", 0), "INBOX");
        static const char msg[] = "Received: from a\r\n\tby b\r\n\r\nx\ty\r\n";
        ck_assert_ptr_nonnull(
            ms_store_append(mb, ms_blob_create(msg, sizeof msg - 1), 0, NULL, 0, 0, 0));
        struct ms_buf doc = {0};
        struct ms_scenario *back = round_trip(sc, st, dir, &doc);
        const struct ms_message_conf *mc = &back->users[0].mailboxes[0].messages[0];
        enum ms_message_source want = own_mark ? MS_MSG_FILE : MS_MSG_RAW;
        ck_assert_msg(mc->source == want, "own mark %d: got source %d, want %d", own_mark,
                      mc->source, want);
        ck_assert_msg(own_mark || strstr(doc.data, "            \tby b\n") != NULL,
                      "no tab in the literal block:\n%s", doc.data);
        ck_assert_msg(!own_mark || strstr(doc.data, "m\xee\x80\x80") != NULL,
                      "the mailbox name lost its character:\n%s", doc.data);
        struct ms_store *st2 = build_store(back);
        check_same_store(st2, st);
        ms_buf_fini(&doc);
        ms_store_destroy(&st2);
        ms_scenario_destroy(&back);
        ms_store_destroy(&st);
        ms_scenario_destroy(&sc);
        remove_tree(dir);
        free(dir);
    }
}
END_TEST

START_TEST(test_errors)
{
    char *dir = make_tmpdir();
    struct ms_scenario *sc = load_string_ok("users: { u: { password: p } }\n", dir);
    struct ms_store *st = build_store(sc);
    struct ms_mailbox *mb = ms_store_mailbox(ms_store_account(st, "u", 0), "INBOX");
    ck_assert_ptr_nonnull(ms_store_append(mb, ms_blob_create("bin\0ary", 7), 0, NULL, 0, 0, 3));
    struct mocksrv_error err = {0};
    struct ms_buf yaml = {0};
    ms_buf_puts(&yaml, "kept");

    /* A message that needs a file, and no path to put it beside. */
    int rc = ms_scenario_format_state(sc, st, NULL, &yaml, &err);
    ck_assert_int_eq(rc, MOCKSRV_EINVAL);
    ck_assert_str_eq(err.message, "state: message 3 of u/INBOX needs a file (its bytes are not "
                                  "plain CRLF text) and no output path was given");
    ck_assert_str_eq(yaml.data, "kept"); /* unchanged on error */

    /* A directory that cannot be made. */
    char *out = ms_asprintf("%s/no/such/dir/state.yaml", dir);
    rc = ms_scenario_format_state(sc, st, out, &yaml, &err);
    ck_assert_int_eq(rc, MOCKSRV_EIO);
    char *want = ms_asprintf("%s/no/such/dir/state.yaml.d: cannot write: No such file or "
                             "directory",
                             dir);
    ck_assert_str_eq(err.message, want);
    ck_assert_str_eq(yaml.data, "kept");
    free(want);
    free(out);

    /* "<out>.d" is a file, not a directory. */
    out = ms_asprintf("%s/s.yaml", dir);
    char *dfile = ms_asprintf("%s.d", out);
    write_file(dfile, "x", 1);
    rc = ms_scenario_format_state(sc, st, out, &yaml, &err);
    ck_assert_int_eq(rc, MOCKSRV_EIO);
    want = ms_asprintf("%s/u-INBOX-3.eml: cannot write: Not a directory", dfile);
    ck_assert_str_eq(err.message, want);
    *strstr(want, ": cannot write") = '\0';
    ck_assert_str_eq(err.file, want); /* the file that could not be written */
    free(want);
    free(dfile);
    free(out);

    /* A mailbox name that is not UTF-8 cannot be YAML. */
    ck_assert_ptr_nonnull(ms_store_mailbox_create(st, ms_store_account(st, "u", 0), "bad\xff", 0));
    out = ms_asprintf("%s/t.yaml", dir);
    rc = ms_scenario_format_state(sc, st, out, &yaml, &err);
    ck_assert_int_eq(rc, MOCKSRV_EINVAL);
    ck_assert_msg(strstr(err.message, "not valid UTF-8") != NULL, "got %s", err.message);
    ck_assert_str_eq(yaml.data, "kept");
    free(out);

    ms_buf_fini(&yaml);
    ms_store_destroy(&st);
    ms_scenario_destroy(&sc);
    remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(test_file_names)
{
    /* Files are named <user>-<mailbox>-<uid>.eml with everything but letters, digits, '.', '@'
     * and '+' as _XX, so no two mailboxes share one; long names fall back to an index. */
    char *dir = make_tmpdir();
    char *long_name = ms_malloc(201);
    memset(long_name, 'L', 200);
    long_name[200] = '\0';
    char *yaml = ms_asprintf("users:\n  \"a-b_c@x\":\n    password: p\n    mailboxes:\n"
                             "      \"x/y\":\n      x_y:\n      \"%s\":\n",
                             long_name);
    struct ms_scenario *sc = load_string_ok(yaml, dir);
    struct ms_store *st = build_store(sc);
    struct ms_account *acc = ms_store_account(st, "a-b_c@x", 0);
    const char *names[] = {"INBOX", "x/y", "x_y", long_name};
    for (size_t i = 0; i < MS_ARRAY_LEN(names); i++)
        ck_assert_ptr_nonnull(ms_store_append(ms_store_mailbox(acc, names[i]),
                                              ms_blob_create("\x01", 1), 0, NULL, 0, 0, 9));
    struct ms_scenario *back = round_trip(sc, st, dir, NULL);
    const char *want[] = {"a_2db_5fc@x-INBOX-9.eml", "a_2db_5fc@x-x_2fy-9.eml",
                          "a_2db_5fc@x-x_5fy-9.eml", "a_2db_5fc@x-_m3-9.eml"};
    for (size_t i = 0; i < MS_ARRAY_LEN(want); i++) {
        const struct ms_message_conf *mc = &back->users[0].mailboxes[i].messages[0];
        char *rel = ms_asprintf("state.yaml.d/%s", want[i]);
        ck_assert_msg(strcmp(mc->file, rel) == 0, "%s: got %s, want %s", names[i], mc->file, rel);
        free(rel);
    }
    struct ms_store *st2 = build_store(back);
    check_same_store(st2, st);
    ms_store_destroy(&st2);
    ms_scenario_destroy(&back);
    ms_store_destroy(&st);
    ms_scenario_destroy(&sc);
    free(yaml);
    free(long_name);
    remove_tree(dir);
    free(dir);
}
END_TEST

static Suite *
state_suite(void)
{
    Suite *s = suite_create("state");
    TCase *tc = tcase_create("round trip");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_each_awkward_alone);
    tcase_add_test(tc, test_document);
    tcase_add_test(tc, test_file_names);
    tcase_add_test(tc, test_tabs);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(state_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
