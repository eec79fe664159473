/*
 * test_api.c - the public library API: a server started on its own thread and one stepped from
 * the caller's loop, talked to over loopback with a small SMTP client written here; received
 * messages read back through mocksrv_message_get; events through the callback; errors.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mocksrv.h"

static const char scenario[] = "version: 1\n"
                               "hostname: api.test\n"
                               "listeners:\n"
                               "  smtp: { protocol: smtp, port: 0 }\n"
                               "  lmtp: { protocol: lmtp, port: 0 }\n"
                               "users:\n"
                               "  alice: { password: secret, addresses: [alice@api.test] }\n";

static int
client_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Reads one complete reply (up to the line "NNN "). */
static void
client_reply(int fd, char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (;;) {
        ck_assert_msg(len + 1 < n, "reply too long");
        ssize_t r = read(fd, out + len, 1);
        ck_assert_msg(r == 1, "connection closed or timed out after \"%s\"", out);
        len++;
        out[len] = '\0';
        if (out[len - 1] == '\n') {
            const char *line = out + len - 2;
            while (line > out && line[-1] != '\n')
                line--;
            if (strlen(line) >= 4 && line[3] == ' ')
                return;
        }
    }
}

static void
client_cmd(int fd, const char *cmd, const char *want_prefix)
{
    char reply[2048];
    if (cmd)
        ck_assert_int_eq(write(fd, cmd, strlen(cmd)), (ssize_t)strlen(cmd));
    client_reply(fd, reply, sizeof reply);
    ck_assert_msg(strncmp(reply, want_prefix, strlen(want_prefix)) == 0,
                  "after %s got \"%s\", want \"%s...\"", cmd ? cmd : "(connect)", reply,
                  want_prefix);
}

static void
send_message(int port)
{
    int fd = client_connect(port);
    client_cmd(fd, NULL, "220 api.test ESMTP");
    client_cmd(fd, "EHLO client.test\r\n", "250-api.test");
    client_cmd(fd, "MAIL FROM:<bob@x.test> BODY=8BITMIME\r\n", "250 2.1.0");
    client_cmd(fd, "RCPT TO:<alice@api.test> NOTIFY=NEVER\r\n", "250 2.1.5");
    client_cmd(fd, "RCPT TO:<carol@y.test>\r\n", "250 2.1.5");
    client_cmd(fd, "DATA\r\n", "354");
    client_cmd(fd, "Subject: t\r\n\r\n..leading dot\r\n.\r\n", "250 2.0.0 Ok: queued as 000001");
    client_cmd(fd, "QUIT\r\n", "221");
    close(fd);
}

struct events {
    pthread_mutex_t lock;
    int opens, messages, closes;
};

static void
on_event(void *arg, const char *name, const char *json)
{
    struct events *e = arg;
    ck_assert_ptr_nonnull(strstr(json, "\"event\""));
    pthread_mutex_lock(&e->lock);
    if (strcmp(name, "session.open") == 0)
        e->opens++;
    else if (strcmp(name, "message") == 0)
        e->messages++;
    else if (strcmp(name, "session.close") == 0)
        e->closes++;
    pthread_mutex_unlock(&e->lock);
}

START_TEST(test_thread_mode)
{
    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    struct events ev = {.lock = PTHREAD_MUTEX_INITIALIZER};
    ck_assert_int_eq(mocksrv_load_string(srv, scenario, sizeof scenario - 1, "api", &err), 0);
    mocksrv_on_event(srv, on_event, &ev);
    mocksrv_set_ephemeral(srv, 1);
    ck_assert_int_eq(mocksrv_start(srv, &err), 0);
    int port = mocksrv_port(srv, "smtp");
    ck_assert_int_gt(port, 0);
    ck_assert_int_gt(mocksrv_port(srv, "lmtp"), 0);
    ck_assert_int_eq(mocksrv_port(srv, "nope"), MOCKSRV_ENOTFOUND);

    send_message(port);
    ck_assert_uint_eq(mocksrv_wait_messages(srv, 1, 5000), 1);
    ck_assert_uint_eq(mocksrv_message_count(srv), 1);
    struct mocksrv_message *m = mocksrv_message_get(srv, 0);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(m->id, 1);
    ck_assert_str_eq(m->listener, "smtp");
    ck_assert_str_eq(m->helo, "client.test");
    ck_assert_str_eq(m->mail_from, "bob@x.test");
    ck_assert_str_eq(m->mail_params, "BODY=8BITMIME");
    ck_assert_uint_eq(m->rcpt_count, 2);
    ck_assert_str_eq(m->rcpt_to[0], "alice@api.test");
    ck_assert_str_eq(m->rcpt_params[0], "NOTIFY=NEVER");
    ck_assert_str_eq(m->rcpt_to[1], "carol@y.test");
    ck_assert_ptr_null(m->auth_user);
    const char body[] = "Subject: t\r\n\r\n.leading dot\r\n";
    ck_assert_uint_eq(m->size, sizeof body - 1);
    ck_assert_mem_eq(m->data, body, sizeof body - 1);
    mocksrv_message_free(m);
    ck_assert_ptr_null(mocksrv_message_get(srv, 1));
    /* no second message arrives: the wait gives up at its timeout */
    ck_assert_uint_eq(mocksrv_wait_messages(srv, 2, 100), 1);

    ck_assert_int_eq(mocksrv_stop(srv), 0);
    ck_assert_int_eq(ev.opens, 1);
    ck_assert_int_eq(ev.messages, 1);
    ck_assert_int_eq(ev.closes, 1);
    mocksrv_free(srv);
}
END_TEST

/* mocksrv_stop returns the number of unmet expectations (SPEC 4): one message was expected
 * twice over, and no session at all on a listener nobody used. */
START_TEST(test_stop_returns_unmet_expectations)
{
    static const char text[] = "version: 1\n"
                               "hostname: api.test\n"
                               "listeners: { smtp: { protocol: smtp, port: 0 } }\n"
                               "expect:\n"
                               "  - { messages: 2 }\n"
                               "  - { messages: 1 }\n"
                               "  - { when: { listener: smtp }, sessions: 1 }\n";
    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    ck_assert_int_eq(mocksrv_load_string(srv, text, sizeof text - 1, "api", &err), 0);
    mocksrv_set_ephemeral(srv, 1);
    ck_assert_int_eq(mocksrv_start(srv, &err), 0);
    send_message(mocksrv_port(srv, "smtp"));
    ck_assert_uint_eq(mocksrv_wait_messages(srv, 1, 5000), 1);
    ck_assert_int_eq(mocksrv_stop(srv), 1); /* messages: 2 is the one not met */
    mocksrv_free(srv);
}
END_TEST

struct stepper {
    struct mocksrv *srv;
    int port;
};

static void *
client_thread(void *arg)
{
    struct stepper *st = arg;
    send_message(st->port);
    return NULL;
}

START_TEST(test_step_mode)
{
    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    ck_assert_int_eq(mocksrv_load_string(srv, scenario, sizeof scenario - 1, "api", &err), 0);
    mocksrv_set_ephemeral(srv, 1);
    ck_assert_int_eq(mocksrv_bind(srv, &err), 0);
    ck_assert_int_ge(mocksrv_fd(srv), 0);
    struct stepper st = {.srv = srv, .port = mocksrv_port(srv, "smtp")};
    pthread_t t;
    pthread_create(&t, NULL, client_thread, &st);
    /* The host's own poll loop: wait on mocksrv_fd, then step without blocking. */
    for (int i = 0; i < 10000 && mocksrv_message_count(srv) < 1; i++) {
        struct pollfd p = {.fd = mocksrv_fd(srv), .events = POLLIN};
        poll(&p, 1, 100);
        ck_assert_int_eq(mocksrv_step(srv, 0), 0);
    }
    ck_assert_uint_eq(mocksrv_message_count(srv), 1);
    for (int i = 0; i < 100; i++)
        mocksrv_step(srv, 10); /* let the client's QUIT be answered */
    pthread_join(t, NULL);
    ck_assert_int_eq(mocksrv_stop(srv), 0);
    ck_assert_int_eq(mocksrv_step(srv, 0), 1);
    mocksrv_free(srv);
}
END_TEST

START_TEST(test_shutdown_sends_421)
{
    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    ck_assert_int_eq(mocksrv_load_string(srv, scenario, sizeof scenario - 1, "api", &err), 0);
    mocksrv_set_ephemeral(srv, 1);
    ck_assert_int_eq(mocksrv_start(srv, &err), 0);
    int fd = client_connect(mocksrv_port(srv, "smtp"));
    client_cmd(fd, NULL, "220 ");
    client_cmd(fd, "EHLO x\r\n", "250");
    ck_assert_int_eq(mocksrv_stop(srv), 0);
    client_cmd(fd, NULL, "421 4.3.2 api.test Service shutting down");
    char c;
    ck_assert_int_eq(read(fd, &c, 1), 0); /* then closed */
    close(fd);
    mocksrv_free(srv);
}
END_TEST

START_TEST(test_bad_scenario_keeps_previous)
{
    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    const char bad[] = "version: 1\nsmtp:\n  max_sise: 10\n";
    ck_assert_int_eq(mocksrv_load_string(srv, bad, sizeof bad - 1, "bad.yaml", &err),
                     MOCKSRV_ESCENARIO);
    ck_assert_int_eq(err.line, 3);
    ck_assert_int_eq(err.column, 3);
    ck_assert_ptr_nonnull(strstr(err.message, "bad.yaml:3:3"));
    ck_assert_ptr_nonnull(strstr(err.message, "max_size"));
    ck_assert_str_eq(mocksrv_strerror(MOCKSRV_ESCENARIO), "scenario error");
    mocksrv_free(srv);
}
END_TEST

START_TEST(test_listen_override_and_errors)
{
    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    ck_assert_int_eq(mocksrv_listen(srv, "smtp=127.0.0.1:0", &err), 0);
    ck_assert_int_eq(mocksrv_listen(srv, "lmtp=0", &err), 0);
    ck_assert_int_eq(mocksrv_listen(srv, "smtp=127.0.0.1:99999", &err), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_listen(srv, "noequals", &err), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_bind(srv, &err), 0);
    ck_assert_int_gt(mocksrv_port(srv, "smtp"), 0);
    ck_assert_int_gt(mocksrv_port(srv, "lmtp"), 0); /* a standard listener added */
    char *ready = mocksrv_ready_json(srv);
    ck_assert_ptr_nonnull(strstr(ready, "\"name\":\"lmtp\""));
    free(ready);
    ck_assert_int_eq(mocksrv_stop(srv), 0);
    mocksrv_free(srv);

    srv = mocksrv_new();
    ck_assert_int_eq(mocksrv_listen(srv, "bogus=0", &err), 0);
    ck_assert_int_eq(mocksrv_bind(srv, &err), MOCKSRV_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "bogus"));
    mocksrv_free(srv);
}
END_TEST

static Suite *
api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_thread_mode);
    tcase_add_test(tc, test_step_mode);
    tcase_add_test(tc, test_shutdown_sends_421);
    tcase_add_test(tc, test_bad_scenario_keeps_previous);
    tcase_add_test(tc, test_listen_override_and_errors);
    tcase_add_test(tc, test_stop_returns_unmet_expectations);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(api_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
