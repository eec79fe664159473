/*
 * test_api.c - the public library API: a server started on its own thread and one stepped from
 * the caller's loop, talked to over loopback with a small SMTP client written here; received
 * messages read back through mocksrv_message_get; events through the callback; errors.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
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
}
END_TEST

/* ---- the library's edges (what using it found broken) ---- */

/* A waiter on another thread: mocksrv_wait_messages(srv, n, -1). The test joins it with a
 * deadline, so a wait that never returns fails the test instead of hanging it. */
struct waiter {
    struct mocksrv *srv;
    size_t n;
    size_t got;
    pthread_t thread;
};

static void *
waiter_main(void *arg)
{
    struct waiter *w = arg;
    w->got = mocksrv_wait_messages(w->srv, w->n, -1);
    return NULL;
}

static void
waiter_start(struct waiter *w, struct mocksrv *srv, size_t n)
{
    w->srv = srv;
    w->n = n;
    w->got = (size_t)-1;
    ck_assert_int_eq(pthread_create(&w->thread, NULL, waiter_main, w), 0);
}

/* 1 when the waiter returned within 10 s. */
static int
waiter_joined(struct waiter *w)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    return pthread_timedjoin_np(w->thread, NULL, &until) == 0;
}

/* Before start and after stop nothing can arrive: the wait returns the count at once. */
START_TEST(test_wait_messages_not_running)
{
    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    ck_assert_int_eq(mocksrv_load_string(srv, scenario, sizeof scenario - 1, "api", &err), 0);
    mocksrv_set_ephemeral(srv, 1);
    struct waiter w;
    waiter_start(&w, srv, 1);
    ck_assert_msg(waiter_joined(&w), "mocksrv_wait_messages(-1) before start did not return");
    ck_assert_uint_eq(w.got, 0);

    ck_assert_int_eq(mocksrv_start(srv, &err), 0);
    send_message(mocksrv_port(srv, "smtp"));
    ck_assert_uint_eq(mocksrv_wait_messages(srv, 1, 5000), 1);
    ck_assert_int_eq(mocksrv_stop(srv), 0);
    waiter_start(&w, srv, 2);
    ck_assert_msg(waiter_joined(&w), "mocksrv_wait_messages(-1) after stop did not return");
    ck_assert_uint_eq(w.got, 1);
    mocksrv_free(srv);
}
END_TEST

/* A waiter blocked while the server runs is woken by mocksrv_stop, and by mocksrv_shutdown
 * from another thread with the server's thread still running. */
START_TEST(test_wait_messages_woken_by_stop)
{
    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    ck_assert_int_eq(mocksrv_load_string(srv, scenario, sizeof scenario - 1, "api", &err), 0);
    mocksrv_set_ephemeral(srv, 1);
    ck_assert_int_eq(mocksrv_start(srv, &err), 0);
    struct waiter w;
    waiter_start(&w, srv, 1);
    ck_assert_int_eq(mocksrv_stop(srv), 0);
    ck_assert_msg(waiter_joined(&w), "a waiter was not woken by mocksrv_stop");
    ck_assert_uint_eq(w.got, 0);
    mocksrv_free(srv);

    /* stepped: the host asks for a shutdown; the waiter returns once the loop has stopped */
    srv = mocksrv_new();
    ck_assert_int_eq(mocksrv_load_string(srv, scenario, sizeof scenario - 1, "api", &err), 0);
    mocksrv_set_ephemeral(srv, 1);
    ck_assert_int_eq(mocksrv_bind(srv, &err), 0);
    waiter_start(&w, srv, 1);
    mocksrv_shutdown(srv);
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = mocksrv_step(srv, 100);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(waiter_joined(&w), "a waiter was not woken when the stepped loop stopped");
    ck_assert_uint_eq(w.got, 0);
    mocksrv_free(srv);
}
END_TEST

/* While mocksrv_start's thread runs, the calls that belong to the loop's thread or to a server
 * at rest are refused with MOCKSRV_ESTATE instead of racing with (or aborting) the loop. */
START_TEST(test_step_while_thread_runs)
{
    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    ck_assert_int_eq(mocksrv_load_string(srv, scenario, sizeof scenario - 1, "api", &err), 0);
    mocksrv_set_ephemeral(srv, 1);
    ck_assert_int_eq(mocksrv_start(srv, &err), 0);
    ck_assert_int_eq(mocksrv_step(srv, 0), MOCKSRV_ESTATE);
    ck_assert_int_eq(mocksrv_bind(srv, &err), MOCKSRV_ESTATE);
    ck_assert_int_eq(mocksrv_start(srv, &err), MOCKSRV_ESTATE);
    ck_assert_int_eq(mocksrv_load_string(srv, scenario, sizeof scenario - 1, "api", &err),
                     MOCKSRV_ESTATE);
    ck_assert_int_eq(mocksrv_fd(srv), MOCKSRV_ESTATE);
    err.code = 0;
    ck_assert_ptr_null(mocksrv_state_yaml(srv, &err));
    ck_assert_int_eq(err.code, MOCKSRV_ESTATE);
    char path[] = "/tmp/mocksrv-api-state-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(mocksrv_write_state(srv, path, &err), MOCKSRV_ESTATE);
    /* the thread still serves */
    send_message(mocksrv_port(srv, "smtp"));
    ck_assert_uint_eq(mocksrv_wait_messages(srv, 1, 5000), 1);
    ck_assert_int_eq(mocksrv_stop(srv), 0);
    /* after the stop the state is the caller's again */
    ck_assert_int_eq(mocksrv_write_state(srv, path, &err), 0);
    unlink(path);
    mocksrv_free(srv);
}
END_TEST

/* Every setting is refused once the server is bound (stepped) or its thread runs, and nothing
 * changes; after the stop they are accepted again, for the next run. */
static void
check_settings(struct mocksrv *srv, int want)
{
    struct mocksrv_error err = {0};
    ck_assert_int_eq(mocksrv_set_ephemeral(srv, 1), want);
    ck_assert_int_eq(mocksrv_set_bind_host(srv, "127.0.0.1"), want);
    ck_assert_int_eq(mocksrv_listen(srv, "smtp=127.0.0.1:0", &err), want);
    ck_assert_int_eq(mocksrv_set_seed(srv, 42), want);
    ck_assert_int_eq(mocksrv_set_spool(srv, "/tmp", &err), want);
    ck_assert_int_eq(mocksrv_set_events_file(srv, "/dev/null", &err), want);
    ck_assert_int_eq(mocksrv_set_cert(srv, "/nonexistent/cert.pem", NULL), want);
    ck_assert_int_eq(mocksrv_set_ca_out(srv, "/nonexistent/ca.pem"), want);
    ck_assert_int_eq(mocksrv_set_verbosity(srv, MOCKSRV_VERBOSITY_SILENT), want);
    ck_assert_int_eq(mocksrv_set_exit_after(srv, 0), want);
    ck_assert_int_eq(mocksrv_set_idle_exit(srv, 0), want);
    ck_assert_int_eq(mocksrv_on_event(srv, NULL, NULL), want);
    ck_assert_int_eq(mocksrv_load_string(srv, scenario, sizeof scenario - 1, "api", &err), want);
}

START_TEST(test_settings_refused_once_bound)
{
    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    ck_assert_int_eq(mocksrv_load_string(srv, scenario, sizeof scenario - 1, "api", &err), 0);
    ck_assert_int_eq(mocksrv_set_ephemeral(srv, 1), 0);
    ck_assert_int_eq(mocksrv_start(srv, &err), 0);
    uint64_t seed = mocksrv_seed(srv);
    check_settings(srv, MOCKSRV_ESTATE);
    ck_assert_uint_eq(mocksrv_seed(srv), seed);
    ck_assert_ptr_null(mocksrv_ca_file(srv)); /* set_cert changed nothing: no TLS listener */
    send_message(mocksrv_port(srv, "smtp"));  /* the thread still serves, without a spool */
    ck_assert_uint_eq(mocksrv_wait_messages(srv, 1, 5000), 1);
    struct mocksrv_message *m = mocksrv_message_get(srv, 0);
    ck_assert_ptr_null(m->spool_path);
    mocksrv_message_free(m);
    ck_assert_int_eq(mocksrv_stop(srv), 0);

    /* stepped */
    ck_assert_int_eq(mocksrv_bind(srv, &err), 0);
    check_settings(srv, MOCKSRV_ESTATE);
    ck_assert_int_eq(mocksrv_stop(srv), 0);
    check_settings(srv, 0);
    ck_assert_uint_eq(mocksrv_seed(srv), 42);
    /* bad values at rest */
    ck_assert_int_eq(mocksrv_set_verbosity(srv, 3), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_verbosity(srv, -2), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_idle_exit(srv, -1), MOCKSRV_EINVAL);
    mocksrv_free(srv);
}
END_TEST

/* Every pointer argument may be NULL without a crash: MOCKSRV_EINVAL, or the function's
 * "nothing" value where it returns no code. */
START_TEST(test_null_arguments)
{
    struct mocksrv_error err = {0};
    ck_assert_int_eq(mocksrv_load_file(NULL, "x.yaml", &err), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_load_string(NULL, "version: 1\n", 11, NULL, &err), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_bind_host(NULL, "127.0.0.1"), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_listen(NULL, "smtp=0", &err), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_spool(NULL, "/tmp", &err), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_events_file(NULL, "-", &err), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_cert(NULL, "c.pem", NULL), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_ca_out(NULL, "ca.pem"), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_ephemeral(NULL, 1), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_seed(NULL, 1), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_verbosity(NULL, 1), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_exit_after(NULL, 1), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_idle_exit(NULL, 1), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_on_event(NULL, NULL, NULL), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_bind(NULL, &err), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_fd(NULL), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_step(NULL, 0), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_reload(NULL, &err), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_start(NULL, &err), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_stop(NULL), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_port(NULL, "smtp"), MOCKSRV_EINVAL);
    ck_assert_ptr_null(mocksrv_ca_file(NULL));
    ck_assert_uint_eq(mocksrv_seed(NULL), 0);
    ck_assert_ptr_null(mocksrv_ready_json(NULL));
    ck_assert_int_eq(mocksrv_write_state(NULL, "/tmp/x", &err), MOCKSRV_EINVAL);
    ck_assert_ptr_null(mocksrv_state_yaml(NULL, &err));
    ck_assert_uint_eq(mocksrv_message_count(NULL), 0);
    ck_assert_uint_eq(mocksrv_wait_messages(NULL, 1, -1), 0);
    ck_assert_ptr_null(mocksrv_message_get(NULL, 0));
    mocksrv_message_free(NULL);
    mocksrv_shutdown(NULL);
    mocksrv_interrupt(NULL);
    mocksrv_free(NULL);
    ck_assert_ptr_nonnull(mocksrv_strerror(12345));

    struct mocksrv *srv = mocksrv_new();
    ck_assert_int_eq(mocksrv_load_file(srv, NULL, &err), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_load_string(srv, NULL, 3, "n", &err), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_load_string(srv, NULL, 0, "n", NULL), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_bind_host(srv, NULL), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_listen(srv, NULL, &err), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_listen(srv, NULL, NULL), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_spool(srv, NULL, &err), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_events_file(srv, NULL, &err), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_cert(srv, NULL, NULL), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_set_ca_out(srv, NULL), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_write_state(srv, NULL, &err), MOCKSRV_EINVAL);
    ck_assert_int_eq(mocksrv_bind(srv, NULL), 0);
    ck_assert_int_eq(mocksrv_port(srv, NULL), MOCKSRV_EINVAL);
    ck_assert_int_gt(mocksrv_port(srv, "smtp"), 0);
    ck_assert_int_eq(mocksrv_stop(srv), 0);
    mocksrv_free(srv);
}
END_TEST

/* mocksrv_start after mocksrv_stop binds again and serves; the messages of the first run are
 * kept and numbering goes on. The same for a stepped server bound again. */
START_TEST(test_restart_after_stop)
{
    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    ck_assert_int_eq(mocksrv_load_string(srv, scenario, sizeof scenario - 1, "api", &err), 0);
    mocksrv_set_ephemeral(srv, 1);
    ck_assert_int_eq(mocksrv_start(srv, &err), 0);
    send_message(mocksrv_port(srv, "smtp"));
    ck_assert_uint_eq(mocksrv_wait_messages(srv, 1, 5000), 1);
    ck_assert_int_eq(mocksrv_stop(srv), 0);

    ck_assert_msg(mocksrv_start(srv, &err) == 0, "restart: %s", err.message);
    int port = mocksrv_port(srv, "smtp");
    ck_assert_int_gt(port, 0);
    int fd = client_connect(port);
    client_cmd(fd, NULL, "220 api.test ESMTP");
    client_cmd(fd, "QUIT\r\n", "221");
    close(fd);
    fd = client_connect(port);
    client_cmd(fd, NULL, "220 api.test ESMTP");
    client_cmd(fd, "EHLO client.test\r\n", "250-api.test");
    client_cmd(fd, "MAIL FROM:<bob@x.test>\r\n", "250 2.1.0");
    client_cmd(fd, "RCPT TO:<alice@api.test>\r\n", "250 2.1.5");
    client_cmd(fd, "DATA\r\n", "354");
    client_cmd(fd, "Subject: 2\r\n\r\nsecond\r\n.\r\n", "250 2.0.0 Ok: queued as 000002");
    client_cmd(fd, "QUIT\r\n", "221");
    close(fd);
    ck_assert_uint_eq(mocksrv_wait_messages(srv, 2, 5000), 2);
    ck_assert_int_eq(mocksrv_stop(srv), 0);
    struct mocksrv_message *m = mocksrv_message_get(srv, 1);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(m->id, 2);
    mocksrv_message_free(m);

    /* stepped: bind again after the stop */
    ck_assert_msg(mocksrv_bind(srv, &err) == 0, "bind after stop: %s", err.message);
    ck_assert_int_ge(mocksrv_fd(srv), 0);
    ck_assert_int_eq(mocksrv_step(srv, 0), 0);
    ck_assert_int_eq(mocksrv_stop(srv), 0);
    ck_assert_int_eq(mocksrv_step(srv, 0), 1);
    mocksrv_free(srv);
}
END_TEST

/* A restart keeps the generated certificates (the CA file a client trusts stays valid); a new
 * scenario loaded in between makes new ones at the next bind. */
START_TEST(test_restart_keeps_certificates)
{
    static const char text[] = "version: 1\n"
                               "hostname: api.test\n"
                               "listeners: { smtps: { protocol: smtp, port: 0, tls: implicit } }\n";
    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    ck_assert_int_eq(mocksrv_load_string(srv, text, sizeof text - 1, "tls", &err), 0);
    ck_assert_int_eq(mocksrv_start(srv, &err), 0);
    ck_assert_ptr_nonnull(mocksrv_ca_file(srv));
    char *ca = strdup(mocksrv_ca_file(srv));
    ck_assert_int_eq(mocksrv_stop(srv), 0);
    ck_assert_int_eq(mocksrv_start(srv, &err), 0);
    ck_assert_str_eq(mocksrv_ca_file(srv), ca);
    ck_assert_int_eq(access(ca, R_OK), 0);
    ck_assert_int_eq(mocksrv_stop(srv), 0);
    ck_assert_int_eq(mocksrv_load_string(srv, text, sizeof text - 1, "tls", &err), 0);
    ck_assert_ptr_null(mocksrv_ca_file(srv));
    ck_assert_int_eq(mocksrv_start(srv, &err), 0);
    ck_assert_ptr_nonnull(mocksrv_ca_file(srv));
    ck_assert_int_eq(mocksrv_stop(srv), 0);
    mocksrv_free(srv);
    free(ca);
}
END_TEST

/* mocksrv_stop from an event callback would wait for its own thread: MOCKSRV_ESTATE, and the
 * server goes on. */
struct stop_from_callback {
    struct mocksrv *srv;
    int rc;
    int calls;
};

static void
stop_on_event(void *arg, const char *name, const char *json)
{
    struct stop_from_callback *c = arg;
    (void)json;
    if (strcmp(name, "session.open") == 0 && c->calls++ == 0)
        c->rc = mocksrv_stop(c->srv);
}

START_TEST(test_stop_from_callback_refused)
{
    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    struct stop_from_callback c = {.srv = srv, .rc = 1};
    ck_assert_int_eq(mocksrv_load_string(srv, scenario, sizeof scenario - 1, "api", &err), 0);
    ck_assert_int_eq(mocksrv_on_event(srv, stop_on_event, &c), 0);
    ck_assert_int_eq(mocksrv_start(srv, &err), 0);
    send_message(mocksrv_port(srv, "smtp"));
    ck_assert_uint_eq(mocksrv_wait_messages(srv, 1, 5000), 1);
    ck_assert_int_eq(mocksrv_stop(srv), 0);
    ck_assert_int_eq(c.calls, 1);
    ck_assert_int_eq(c.rc, MOCKSRV_ESTATE);
    mocksrv_free(srv);
}
END_TEST

/* Runs fn with file descriptor 2 on a temporary file; returns what was written there. */
static char *
capture_stderr(void (*fn)(int verbosity), int verbosity)
{
    char path[] = "/tmp/mocksrv-api-stderr-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(fd, 2), 2);
    fn(verbosity);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)len + 1);
    ck_assert_int_eq(pread(fd, text, (size_t)len, 0), (ssize_t)len);
    close(fd);
    return text;
}

/* A reload (stepped: synchronous), an unmet expectation and a failed reload: each writes a
 * line on stderr when the host asked for it. */
static void
noisy_run(int verbosity)
{
    static const char text[] = "version: 1\n"
                               "listeners: { smtp: { protocol: smtp, port: 0 } }\n"
                               "expect:\n"
                               "  - { messages: 1 }\n";
    char dir[] = "/tmp/mocksrv-api-noisy-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[sizeof dir + 16];
    snprintf(path, sizeof path, "%s/s.yaml", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);

    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    if (verbosity >= 0)
        mocksrv_set_verbosity(srv, verbosity);
    ck_assert_int_eq(mocksrv_load_file(srv, path, &err), 0);
    ck_assert_int_eq(mocksrv_bind(srv, &err), 0);
    ck_assert_int_eq(mocksrv_reload(srv, &err), 0);
    f = fopen(path, "w");
    fputs("version: 1\nsmtp: { max_sise: 1 }\n", f);
    fclose(f);
    ck_assert_int_eq(mocksrv_reload(srv, &err), MOCKSRV_ESCENARIO);
    ck_assert_int_eq(mocksrv_stop(srv), 1); /* messages: 1 unmet */
    mocksrv_free(srv);
    unlink(path);
    rmdir(dir);
}

START_TEST(test_silent_by_default)
{
    char *quiet = capture_stderr(noisy_run, -1);
    ck_assert_msg(quiet[0] == '\0', "the library wrote on stderr by itself: \"%s\"", quiet);
    free(quiet);
    char *normal = capture_stderr(noisy_run, 1);
    ck_assert_ptr_nonnull(strstr(normal, "reloaded the scenario"));
    ck_assert_ptr_nonnull(strstr(normal, "reload failed"));
    ck_assert_ptr_nonnull(strstr(normal, "expectation not met"));
    free(normal);
    char *errors = capture_stderr(noisy_run, 0);
    ck_assert_ptr_null(strstr(errors, "reloaded the scenario"));
    ck_assert_ptr_nonnull(strstr(errors, "reload failed"));
    ck_assert_ptr_nonnull(strstr(errors, "expectation not met"));
    free(errors);
}
END_TEST

/* IMAP is not served: a listener declaring it is refused at load with its position, and
 * --listen imap / imaps at the call; an unknown name at the call, not at start. */
START_TEST(test_imap_and_unknown_listeners_refused_early)
{
    static const char text[] = "version: 1\n"
                               "listeners:\n"
                               "  smtp: { protocol: smtp, port: 0 }\n"
                               "  mail: { protocol: imap, port: 0 }\n";
    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    ck_assert_int_eq(mocksrv_load_string(srv, text, sizeof text - 1, "imap.yaml", &err),
                     MOCKSRV_ESCENARIO);
    ck_assert_str_eq(err.file, "imap.yaml");
    ck_assert_int_eq(err.line, 4);
    ck_assert_int_eq(err.column, 3);
    ck_assert_msg(strstr(err.message, "imap.yaml:4:3") && strstr(err.message, "IMAP"), "got \"%s\"",
                  err.message);

    ck_assert_int_eq(mocksrv_load_string(srv, scenario, sizeof scenario - 1, "api", &err), 0);
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(mocksrv_listen(srv, "imap=0", &err), MOCKSRV_EUNSUPPORTED);
    ck_assert_msg(strstr(err.message, "IMAP is not served by this version") != NULL, "got \"%s\"",
                  err.message);
    ck_assert_int_eq(mocksrv_listen(srv, "imaps=127.0.0.1:0", &err), MOCKSRV_EUNSUPPORTED);
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(mocksrv_listen(srv, "bogus=0", &err), MOCKSRV_EINVAL);
    ck_assert_msg(strstr(err.message, "bogus") != NULL, "got \"%s\"", err.message);
    ck_assert_int_eq(mocksrv_listen(srv, "lmtp=0", &err), 0); /* in the scenario */
    ck_assert_int_eq(mocksrv_listen(srv, "pop3=0", &err), 0); /* a standard one */
    mocksrv_set_ephemeral(srv, 1);
    ck_assert_int_eq(mocksrv_start(srv, &err), 0);
    ck_assert_int_gt(mocksrv_port(srv, "pop3"), 0);
    ck_assert_int_eq(mocksrv_stop(srv), 0);
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
    tcase_add_test(tc, test_wait_messages_not_running);
    tcase_add_test(tc, test_wait_messages_woken_by_stop);
    tcase_add_test(tc, test_step_while_thread_runs);
    tcase_add_test(tc, test_null_arguments);
    tcase_add_test(tc, test_settings_refused_once_bound);
    tcase_add_test(tc, test_restart_after_stop);
    tcase_add_test(tc, test_restart_keeps_certificates);
    tcase_add_test(tc, test_stop_from_callback_refused);
    tcase_add_test(tc, test_silent_by_default);
    tcase_add_test(tc, test_imap_and_unknown_listeners_refused_early);
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
