/*
 * test_store.c - the mailbox store: UID assignment, explicit UIDs, expunge, flags and keywords,
 * the change log, INBOX case-insensitivity, shared immutable bytes, building from a scenario,
 * and what a stored message costs in memory.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "scenario.h"
#include "store.h"

static struct ms_blob *
blob(const char *s)
{
    return ms_blob_create(s, strlen(s));
}

START_TEST(test_uid_assignment)
{
    struct ms_store *st = ms_store_create(42);
    struct ms_account *acc = ms_store_account(st, "alice", 1);
    ck_assert_ptr_nonnull(acc);
    ck_assert_ptr_eq(ms_store_account(st, "alice", 0), acc);
    ck_assert_ptr_null(ms_store_account(st, "bob", 0));
    struct ms_mailbox *inbox = ms_store_mailbox(acc, "inbox");
    ck_assert_ptr_nonnull(inbox);
    ck_assert_str_eq(inbox->name, "INBOX");
    ck_assert_uint_eq(inbox->uidvalidity, 42);
    ck_assert_uint_eq(inbox->uidnext, 1);

    struct ms_message *a = ms_store_append(inbox, blob("a"), 0, NULL, 0, 100, 0);
    struct ms_message *b = ms_store_append(inbox, blob("bb"), 0, NULL, 0, 100, 0);
    ck_assert_uint_eq(a->uid, 1);
    ck_assert_uint_eq(b->uid, 2);
    /* an explicit UID jumps ahead; later ones continue from it */
    struct ms_message *c = ms_store_append(inbox, blob("ccc"), 0, NULL, 0, 100, 10);
    ck_assert_uint_eq(c->uid, 10);
    ck_assert_uint_eq(ms_store_append(inbox, blob("d"), 0, NULL, 0, 100, 0)->uid, 11);
    /* below uidnext is refused (UIDs are never reused) */
    ck_assert_ptr_null(ms_store_append(inbox, blob("e"), 0, NULL, 0, 100, 5));
    ck_assert_uint_eq(inbox->uidnext, 12);
    ck_assert_uint_eq(inbox->n_msgs, 4);
    ck_assert_uint_eq(ms_store_mailbox_size(inbox), 7);
    ck_assert_int_eq(ms_store_find_uid(inbox, 10), 2);
    ck_assert_int_eq(ms_store_find_uid(inbox, 3), -1);
    ms_store_destroy(&st);
    ck_assert_ptr_null(st);
}
END_TEST

START_TEST(test_expunge_keeps_uidnext_and_bytes)
{
    struct ms_store *st = ms_store_create(1);
    struct ms_mailbox *inbox = ms_store_mailbox(ms_store_account(st, "u", 1), "INBOX");
    for (int i = 0; i < 5; i++)
        ms_store_append(inbox, blob("msg"), 0, NULL, 0, 0, 0);
    /* a session holding the bytes keeps them past the expunge */
    struct ms_blob *held = ms_blob_ref(inbox->msgs[4]->blob);
    ck_assert_int_eq(ms_store_expunge_uid(inbox, 5), MOCKSRV_OK);
    ck_assert_int_eq(ms_store_expunge_uid(inbox, 2), MOCKSRV_OK);
    ck_assert_int_eq(ms_store_expunge_uid(inbox, 2), MOCKSRV_ENOTFOUND);
    ck_assert_uint_eq(inbox->n_msgs, 3);
    ck_assert_uint_eq(inbox->msgs[0]->uid, 1);
    ck_assert_uint_eq(inbox->msgs[1]->uid, 3);
    ck_assert_uint_eq(inbox->msgs[2]->uid, 4);
    ck_assert_uint_eq(inbox->uidnext, 6);
    ck_assert_uint_eq(ms_store_append(inbox, blob("new"), 0, NULL, 0, 0, 0)->uid, 6);
    ck_assert_mem_eq(held->data, "msg", 3);
    ms_blob_unref(&held);
    ms_store_destroy(&st);
}
END_TEST

START_TEST(test_flags_and_change_log)
{
    struct ms_store *st = ms_store_create(1);
    struct ms_mailbox *inbox = ms_store_mailbox(ms_store_account(st, "u", 1), "INBOX");
    const char *kw[] = {"$Label1", "NonJunk", "$label1"};
    struct ms_message *m = ms_store_append(inbox, blob("x"), MS_FLAG_SEEN, kw, 3, 0, 0);
    ck_assert_uint_eq(m->n_keywords, 2); /* a set: $label1 repeats $Label1 */
    ck_assert(ms_message_has_keyword(m, "nonjunk"));
    ms_store_append(inbox, blob("y"), 0, NULL, 0, 0, 0);
    uint64_t seen = inbox->seq; /* a session has seen everything so far */
    ck_assert_uint_eq(seen, 2);

    /* setting the same flags changes nothing and logs nothing */
    const char *same[] = {"nonjunk", "$LABEL1"};
    ms_store_set_flags(inbox, m, MS_FLAG_SEEN, same, 2);
    ck_assert_uint_eq(inbox->seq, seen);
    /* its own keywords may be passed back in */
    ms_store_set_flags(inbox, m, MS_FLAG_SEEN | MS_FLAG_FLAGGED, (const char *const *)m->keywords,
                       1);
    ck_assert_uint_eq(m->flags, MS_FLAG_SEEN | MS_FLAG_FLAGGED);
    ck_assert_uint_eq(m->n_keywords, 1);
    ck_assert_str_eq(m->keywords[0], "$Label1");
    ck_assert_uint_eq(m->modseq, inbox->seq);
    ms_store_expunge_uid(inbox, 2);
    ms_store_append(inbox, blob("z"), 0, NULL, 0, 0, 0);

    size_t n;
    const struct ms_change *ch = ms_store_changes(inbox, seen, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(ch[0].kind, MS_CHANGE_FLAGS);
    ck_assert_uint_eq(ch[0].uid, 1);
    ck_assert_int_eq(ch[1].kind, MS_CHANGE_EXPUNGE);
    ck_assert_uint_eq(ch[1].uid, 2);
    ck_assert_int_eq(ch[2].kind, MS_CHANGE_EXISTS);
    ck_assert_uint_eq(ch[2].uid, 3);
    ck_assert_uint_eq(ch[2].seq, inbox->seq);
    ms_store_changes(inbox, inbox->seq, &n);
    ck_assert_uint_eq(n, 0);
    ms_store_destroy(&st);
}
END_TEST

START_TEST(test_mailboxes_and_flag_names)
{
    struct ms_store *st = ms_store_create(7);
    struct ms_account *acc = ms_store_account(st, "u", 1);
    ck_assert_ptr_null(ms_store_mailbox_create(st, acc, "Inbox", 0)); /* INBOX exists */
    struct ms_mailbox *a = ms_store_mailbox_create(st, acc, "Archive/2023", 99);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(a->uidvalidity, 99);
    ck_assert_ptr_eq(ms_store_mailbox(acc, "Archive/2023"), a);
    ck_assert_ptr_null(ms_store_mailbox(acc, "archive/2023")); /* only INBOX ignores case */
    ck_assert_uint_eq(acc->n_mailboxes, 2);
    ck_assert_uint_eq(ms_flag_from_name("\\seen"), MS_FLAG_SEEN);
    ck_assert_uint_eq(ms_flag_from_name("\\Deleted"), MS_FLAG_DELETED);
    ck_assert_uint_eq(ms_flag_from_name("$Label1"), 0);
    ck_assert_str_eq(ms_flag_name(MS_FLAG_ANSWERED), "\\Answered");
    ms_store_destroy(&st);
}
END_TEST

START_TEST(test_build_from_scenario)
{
    static const char yaml[] = "version: 1\n"
                               "users:\n"
                               "  alice:\n"
                               "    password: secret\n"
                               "    mailboxes:\n"
                               "      INBOX:\n"
                               "        uidvalidity: 1700000000\n"
                               "        messages:\n"
                               "          - raw: \"Subject: a\\n\\nbody\\n\"\n"
                               "            flags: ['\\Seen', '$Label1']\n"
                               "          - raw: \"Subject: b\\n\\nx\\n\"\n"
                               "            uid: 7\n"
                               "          - generate: { count: 3, size: 1KiB }\n"
                               "      Sent: { special_use: '\\Sent' }\n"
                               "  bob: { password: secret }\n";
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    int rc = ms_scenario_load_string(yaml, sizeof yaml - 1, "t.yaml", ".", &sc, &err);
    ck_assert_msg(rc == MOCKSRV_OK, "%s", err.message);
    struct ms_store *st = NULL, *again = NULL;
    ck_assert_int_eq(ms_store_load_scenario(sc, 5, &st, &err), MOCKSRV_OK);
    ck_assert_int_eq(ms_store_load_scenario(sc, 5, &again, &err), MOCKSRV_OK);
    struct ms_account *alice = ms_store_account(st, "alice", 0);
    ck_assert_ptr_nonnull(alice);
    ck_assert_ptr_nonnull(ms_store_account(st, "bob", 0));
    struct ms_mailbox *inbox = ms_store_mailbox(alice, "INBOX");
    ck_assert_uint_eq(inbox->uidvalidity, 1700000000u);
    ck_assert_uint_eq(inbox->n_msgs, 5);
    ck_assert_uint_eq(inbox->msgs[0]->uid, 1);
    ck_assert_uint_eq(inbox->msgs[0]->flags, MS_FLAG_SEEN);
    ck_assert(ms_message_has_keyword(inbox->msgs[0], "$Label1"));
    ck_assert_uint_eq(inbox->msgs[0]->blob->len, 20);
    ck_assert_mem_eq(inbox->msgs[0]->blob->data, "Subject: a\r\n\r\nbody\r\n", 20);
    ck_assert_uint_eq(inbox->msgs[1]->uid, 7);
    ck_assert_uint_eq(inbox->msgs[2]->uid, 8);
    ck_assert_uint_eq(inbox->msgs[4]->uid, 10);
    /* generated messages are deterministic from the seed */
    struct ms_mailbox *inbox2 = ms_store_mailbox(ms_store_account(again, "alice", 0), "INBOX");
    for (size_t i = 2; i < 5; i++) {
        ck_assert_uint_eq(inbox->msgs[i]->blob->len, inbox2->msgs[i]->blob->len);
        ck_assert_mem_eq(inbox->msgs[i]->blob->data, inbox2->msgs[i]->blob->data,
                         inbox->msgs[i]->blob->len);
    }
    ck_assert(inbox->msgs[2]->blob->len != inbox->msgs[3]->blob->len ||
              memcmp(inbox->msgs[2]->blob->data, inbox->msgs[3]->blob->data,
                     inbox->msgs[2]->blob->len) != 0);
    struct ms_mailbox *sent = ms_store_mailbox(alice, "Sent");
    ck_assert_ptr_nonnull(sent);
    ck_assert_str_eq(sent->special_use, "\\Sent");
    ms_store_destroy(&st);
    ms_store_destroy(&again);
    ms_scenario_destroy(&sc);
}
END_TEST

/* ---- memory per stored message ---- */

/* Resident bytes of this process. */
static size_t
rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(f);
    unsigned long size = 0, resident = 0;
    ck_assert_int_eq(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

static struct ms_store *
load_store(const char *yaml, struct ms_scenario **sc_r)
{
    struct mocksrv_error err = {0};
    ck_assert_msg(ms_scenario_load_string(yaml, strlen(yaml), "t.yaml", ".", sc_r, &err) ==
                      MOCKSRV_OK,
                  "%s", err.message);
    struct ms_store *st = NULL;
    ck_assert_msg(ms_store_load_scenario(*sc_r, 5, &st, &err) == MOCKSRV_OK, "%s", err.message);
    return st;
}

/* 5,000 generated 4 KiB messages grow RSS by at most 1.3x their bytes (kept at the capacity of
 * a buffer reserved with slack, they cost twice that). */
START_TEST(test_generated_memory)
{
    static const char yaml[] = "version: 1\n"
                               "users:\n"
                               "  alice:\n"
                               "    password: secret\n"
                               "    mailboxes:\n"
                               "      INBOX:\n"
                               "        messages:\n"
                               "          - generate: { count: 5000, size: 4KiB }\n";
    /* RSS in 4 KiB pages: with transparent huge pages, heaps and pools grow by 2 MiB */
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err = {0};
    ck_assert_msg(ms_scenario_load_string(yaml, sizeof yaml - 1, "t.yaml", ".", &sc, &err) ==
                      MOCKSRV_OK,
                  "%s", err.message);
    size_t before = rss_bytes();
    struct ms_store *st = NULL;
    ck_assert_msg(ms_store_load_scenario(sc, 5, &st, &err) == MOCKSRV_OK, "%s", err.message);
    size_t after = rss_bytes();
    struct ms_mailbox *inbox = ms_store_mailbox(ms_store_account(st, "alice", 0), "INBOX");
    ck_assert_uint_eq(inbox->n_msgs, 5000);
    uint64_t bytes = ms_store_mailbox_size(inbox);
    double ratio = after > before ? (double)(after - before) / (double)bytes : 0;
    ck_assert_msg(ratio <= 1.3,
                  "got %zu bytes of RSS for %llu bytes of messages (%.2fx), want <= 1.3x",
                  after - before, (unsigned long long)bytes, ratio);
    ms_store_destroy(&st);
    ms_scenario_destroy(&sc);
}
END_TEST

/* Every blob occupies its size (header and allocator rounding aside): a small generated batch
 * and inline messages (malloc'ed one by one) and a large batch (carved from pools). A blob
 * referenced elsewhere outlives the store that made it, pooled or not. */
START_TEST(test_blob_footprint)
{
    static const char yaml[] = "version: 1\n"
                               "users:\n"
                               "  alice:\n"
                               "    password: secret\n"
                               "    mailboxes:\n"
                               "      INBOX:\n"
                               "        messages:\n"
                               "          - raw: \"Subject: a\\n\\nbody\\n\"\n"
                               "          - generate: { count: 10, size: 4KiB }\n"
                               "          - generate: { count: 2000, size: 4KiB }\n";
    struct ms_scenario *sc = NULL;
    struct ms_store *st = load_store(yaml, &sc);
    struct ms_mailbox *inbox = ms_store_mailbox(ms_store_account(st, "alice", 0), "INBOX");
    ck_assert_uint_eq(inbox->n_msgs, 2011);
    for (size_t i = 0; i < inbox->n_msgs; i++) {
        const struct ms_blob *b = inbox->msgs[i]->blob;
        size_t exact = sizeof *b + b->len + 1;
        ck_assert_msg(ms_blob_footprint(b) >= exact && ms_blob_footprint(b) <= exact + 16,
                      "message %zu: got a footprint of %zu bytes, want %zu..%zu", i,
                      ms_blob_footprint(b), exact, exact + 16);
        ck_assert_int_eq(b->data[b->len], '\0');
    }
    /* the first pooled message, the last one, and a malloc'ed one outlive the store */
    struct ms_blob *kept[3] = {ms_blob_ref(inbox->msgs[11]->blob),
                               ms_blob_ref(inbox->msgs[2010]->blob),
                               ms_blob_ref(inbox->msgs[5]->blob)};
    char *copies[3];
    for (size_t i = 0; i < 3; i++)
        copies[i] = ms_strndup(kept[i]->data, kept[i]->len);
    ms_store_destroy(&st);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_mem_eq(kept[i]->data, copies[i], kept[i]->len);
        ms_blob_unref(&kept[i]);
        ck_assert_ptr_null(kept[i]);
        free(copies[i]);
    }
    ms_scenario_destroy(&sc);

    /* a buffer grown by doubling is stored at its length, not its capacity */
    struct ms_buf buf = {0};
    for (int i = 0; i < 4096; i++)
        ms_buf_putc(&buf, 'x');
    ck_assert_uint_ge(buf.cap, 8192);
    struct ms_blob *b = ms_blob_from_buf(&buf);
    ck_assert_ptr_null(buf.data);
    ck_assert_uint_eq(b->len, 4096);
    ck_assert_uint_le(ms_blob_footprint(b), sizeof *b + 4096 + 1 + 16);
    ms_blob_unref(&b);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_add_test(tc, test_uid_assignment);
    tcase_add_test(tc, test_expunge_keeps_uidnext_and_bytes);
    tcase_add_test(tc, test_flags_and_change_log);
    tcase_add_test(tc, test_mailboxes_and_flag_names);
    tcase_add_test(tc, test_build_from_scenario);
    tcase_add_test(tc, test_generated_memory);
    tcase_add_test(tc, test_blob_footprint);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
