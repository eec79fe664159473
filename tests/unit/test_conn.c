/*
 * test_conn.c - the connection layer: line reads with limits, pipelined input, n-byte reads,
 * deadlines, peer close, counters, and output batching (replies flushed before a read waits).
 *
 * The server side runs in a coroutine on a real loop; the peer is the other end of a socketpair
 * driven by the test between loop steps.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"

struct fixture {
    struct ms_loop *loop;
    struct ms_conn conn;
    int peer;
    int done;
    /* results recorded by the coroutine */
    int rc[16];
    char lines[16][128];
    int bare_lf[16];
    int nul[16];
    int n;
    size_t limit;
    int64_t timeout_ms;
    int64_t elapsed_ms;
};

static void
fixture_setup(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    f->loop = ms_loop_create();
    ms_conn_init(&f->conn, f->loop, sv[0]);
    f->peer = sv[1];
    f->limit = 512;
    f->timeout_ms = 2000;
}

static void
fixture_teardown(struct fixture *f)
{
    ms_conn_fini(&f->conn);
    if (f->peer >= 0)
        close(f->peer);
    ms_loop_destroy(&f->loop);
}

static void
peer_send(struct fixture *f, const char *p, size_t n)
{
    ck_assert_int_eq(write(f->peer, p, n), (ssize_t)n);
}

/* Steps the loop until the coroutine is done (bounded in steps and time). */
static void
run_until_done(struct fixture *f)
{
    int64_t deadline = ms_now() + 5000;
    for (int i = 0; i < 100000 && !f->done && ms_now() < deadline; i++)
        ms_loop_step(f->loop, 10);
    ck_assert_msg(f->done, "coroutine did not finish");
}

/* Reads lines until an error or 16 results. */
static void
co_read_lines(void *arg)
{
    struct fixture *f = arg;
    while (f->n < 16) {
        struct ms_line line;
        int64_t start = ms_now();
        int rc = ms_conn_read_line(&f->conn, f->limit, ms_deadline_in(f->timeout_ms), &line);
        f->elapsed_ms = ms_now() - start;
        f->rc[f->n] = rc;
        if (rc == MOCKSRV_OK) {
            snprintf(f->lines[f->n], sizeof f->lines[0], "%.*s", (int)line.len, line.data);
            f->bare_lf[f->n] = line.bare_lf;
            f->nul[f->n] = line.nul;
        }
        f->n++;
        if (rc != MOCKSRV_OK && rc != MOCKSRV_ETOOLONG)
            break;
    }
    f->done = 1;
}

START_TEST(test_pipelined_lines)
{
    struct fixture f;
    fixture_setup(&f);
    peer_send(&f, "EHLO a\r\nMAIL FROM:<x>\r\nRCPT TO:<y>\nQUIT\r\n", 41);
    shutdown(f.peer, SHUT_WR);
    ms_loop_spawn(f.loop, co_read_lines, &f, 0);
    run_until_done(&f);
    const char *want[] = {"EHLO a", "MAIL FROM:<x>", "RCPT TO:<y>", "QUIT"};
    ck_assert_int_eq(f.n, 5);
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(f.rc[i] == MOCKSRV_OK, "line %d: got rc %d, want OK", i, f.rc[i]);
        ck_assert_msg(strcmp(f.lines[i], want[i]) == 0, "line %d: got \"%s\", want \"%s\"", i,
                      f.lines[i], want[i]);
    }
    ck_assert_int_eq(f.bare_lf[2], 1);
    ck_assert_int_eq(f.bare_lf[0], 0);
    ck_assert_int_eq(f.rc[4], MOCKSRV_ECLOSED);
    ck_assert_uint_eq(f.conn.bytes_in, 41);
    fixture_teardown(&f);
}
END_TEST

START_TEST(test_trickle_same_result)
{
    /* One byte per loop step must give exactly the lines of a one-shot write. */
    const char *input = "A1\r\nlonger line two\r\n\r\nx\x00y\r\nend\r\n";
    size_t len = 33;
    struct fixture f;
    fixture_setup(&f);
    ms_loop_spawn(f.loop, co_read_lines, &f, 0);
    for (size_t i = 0; i < len; i++) {
        peer_send(&f, input + i, 1);
        ms_loop_step(f.loop, 0);
        ms_loop_step(f.loop, 0);
    }
    shutdown(f.peer, SHUT_WR);
    run_until_done(&f);
    ck_assert_int_eq(f.n, 6);
    ck_assert_str_eq(f.lines[0], "A1");
    ck_assert_str_eq(f.lines[1], "longer line two");
    ck_assert_str_eq(f.lines[2], "");
    ck_assert_int_eq(f.nul[3], 1);
    ck_assert_int_eq(f.nul[2], 0);
    ck_assert_str_eq(f.lines[4], "end");
    ck_assert_int_eq(f.rc[5], MOCKSRV_ECLOSED);
    fixture_teardown(&f);
}
END_TEST

START_TEST(test_too_long_then_next)
{
    /* limit 10 includes CRLF: "12345678\r\n" fits, "123456789\r\n" does not. */
    struct fixture f;
    fixture_setup(&f);
    f.limit = 10;
    peer_send(&f, "12345678\r\n123456789\r\n", 21);
    ms_loop_spawn(f.loop, co_read_lines, &f, 0);
    /* an over-long line that arrives in pieces, longer than the limit before its LF */
    for (int i = 0; i < 5; i++) {
        ms_loop_step(f.loop, 0);
        peer_send(&f, "abcdefghij", 10);
    }
    peer_send(&f, "\r\nNEXT\r\n", 8);
    shutdown(f.peer, SHUT_WR);
    run_until_done(&f);
    ck_assert_int_eq(f.n, 5);
    ck_assert_int_eq(f.rc[0], MOCKSRV_OK);
    ck_assert_str_eq(f.lines[0], "12345678");
    ck_assert_int_eq(f.rc[1], MOCKSRV_ETOOLONG);
    ck_assert_int_eq(f.rc[2], MOCKSRV_ETOOLONG);
    ck_assert_int_eq(f.rc[3], MOCKSRV_OK);
    ck_assert_str_eq(f.lines[3], "NEXT");
    ck_assert_int_eq(f.rc[4], MOCKSRV_ECLOSED);
    fixture_teardown(&f);
}
END_TEST

START_TEST(test_deadline)
{
    struct fixture f;
    fixture_setup(&f);
    f.timeout_ms = 150;
    ms_loop_spawn(f.loop, co_read_lines, &f, 0);
    run_until_done(&f);
    ck_assert_int_eq(f.n, 1);
    ck_assert_int_eq(f.rc[0], MOCKSRV_ETIMEDOUT);
    ck_assert_msg(f.elapsed_ms >= 140, "timed out after %lld ms, want >= 150",
                  (long long)f.elapsed_ms);
    fixture_teardown(&f);
}
END_TEST

struct nread {
    struct fixture *f;
    struct ms_buf got;
    int rc;
    char rest[64];
};

static void
co_read_n(void *arg)
{
    struct nread *r = arg;
    r->rc = ms_conn_read_n(&r->f->conn, 10, &r->got, ms_deadline_in(2000));
    struct ms_line line;
    if (r->rc == MOCKSRV_OK &&
        ms_conn_read_line(&r->f->conn, 100, ms_deadline_in(2000), &line) == MOCKSRV_OK)
        snprintf(r->rest, sizeof r->rest, "%s", line.data);
    r->f->done = 1;
}

START_TEST(test_read_n_keeps_rest)
{
    struct fixture f;
    fixture_setup(&f);
    struct nread r = {.f = &f};
    ms_loop_spawn(f.loop, co_read_n, &r, 0);
    peer_send(&f, "0123", 4);
    ms_loop_step(f.loop, 0);
    peer_send(&f, "45\r\n\r\n89QUIT\r\n", 14);
    run_until_done(&f);
    ck_assert_int_eq(r.rc, MOCKSRV_OK);
    ck_assert_uint_eq(r.got.len, 10);
    ck_assert_mem_eq(r.got.data, "012345\r\n\r\n", 10);
    ck_assert_str_eq(r.rest, "89QUIT");
    ms_buf_fini(&r.got);
    fixture_teardown(&f);
}
END_TEST

static void
co_reply_batch(void *arg)
{
    struct fixture *f = arg;
    struct ms_line line;
    /* Three replies queued, then a read that must wait: they leave together. */
    ms_conn_puts(&f->conn, "250 one\r\n");
    ms_conn_puts(&f->conn, "250 two\r\n");
    ms_conn_printf(&f->conn, "250 %s\r\n", "three");
    f->rc[0] = ms_conn_read_line(&f->conn, 100, ms_deadline_in(2000), &line);
    f->done = 1;
}

START_TEST(test_replies_flushed_in_one_write)
{
    struct fixture f;
    fixture_setup(&f);
    ms_loop_spawn(f.loop, co_reply_batch, &f, 0);
    ms_loop_step(f.loop, 0);
    char buf[256];
    ssize_t n = read(f.peer, buf, sizeof buf);
    ck_assert_int_eq(n, 29);
    ck_assert_mem_eq(buf, "250 one\r\n250 two\r\n250 three\r\n", 29);
    ck_assert_uint_eq(f.conn.bytes_out, 29);
    peer_send(&f, "x\r\n", 3);
    run_until_done(&f);
    ck_assert_int_eq(f.rc[0], MOCKSRV_OK);
    fixture_teardown(&f);
}
END_TEST

START_TEST(test_discard_input)
{
    struct fixture f;
    fixture_setup(&f);
    peer_send(&f, "STARTTLS\r\nEHLO injected\r\n", 25);
    struct ms_line line;
    /* not in a coroutine: the data is there, so no wait happens */
    ms_loop_step(f.loop, 0);
    ck_assert_int_eq(ms_conn_fill(&f.conn, ms_deadline_in(100)), MOCKSRV_OK);
    ck_assert_int_eq(ms_conn_read_line(&f.conn, 100, ms_deadline_in(100), &line), MOCKSRV_OK);
    ck_assert_str_eq(line.data, "STARTTLS");
    ck_assert_int_eq(ms_conn_has_line(&f.conn), 1);
    ck_assert_uint_eq(ms_conn_discard_input(&f.conn), 15);
    ck_assert_int_eq(ms_conn_has_line(&f.conn), 0);
    fixture_teardown(&f);
}
END_TEST

static Suite *
conn_suite(void)
{
    Suite *s = suite_create("conn");
    TCase *tc = tcase_create("io");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_pipelined_lines);
    tcase_add_test(tc, test_trickle_same_result);
    tcase_add_test(tc, test_too_long_then_next);
    tcase_add_test(tc, test_deadline);
    tcase_add_test(tc, test_read_n_keeps_rest);
    tcase_add_test(tc, test_replies_flushed_in_one_write);
    tcase_add_test(tc, test_discard_input);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(conn_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
