/*
 * test_smtp.c - the SMTP/LMTP engine against golden transcripts in fixtures/transcripts.
 *
 * A transcript is a dialogue: consecutive "C: " lines are sent together in one write (so a group
 * of them is a pipelined batch), then consecutive "S: " lines must be exactly what the server
 * sends back, line by line. "# listener: NAME" picks the listener; other "#" lines are comments.
 * The server runs in-process (library, own thread) on the scenario below.
 *
 * The memory case checks what a stored message costs in resident memory (RSS of this process,
 * where the server thread runs): a message kept at the size its receive buffer grew to (by
 * doubling) costs twice its bytes.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mocksrv.h"

static const char scenario[] = "version: 1\n"
                               "seed: 7\n"
                               "hostname: mx.test\n"
                               "listeners:\n"
                               "  smtp: { protocol: smtp, port: 0 }\n"
                               "  lmtp: { protocol: lmtp, port: 0 }\n"
                               "  strict: { protocol: smtp, port: 0 }\n"
                               "smtp:\n"
                               "  max_size: 1KiB\n"
                               "users:\n"
                               "  alice: { password: secret, addresses: [alice@mx.test] }\n"
                               "  bob: { password: hunter2 }\n"
                               "limits:\n"
                               "  bad_commands: 50\n";

struct reader {
    int fd;
    char buf[65536];
    size_t len;
};

/* Reads one line (without CRLF) into out; returns 0, or -1 on EOF/timeout. */
static int
reader_line(struct reader *r, char *out, size_t n)
{
    for (;;) {
        char *lf = memchr(r->buf, '\n', r->len);
        if (lf) {
            size_t l = (size_t)(lf - r->buf);
            size_t copy = l > 0 && r->buf[l - 1] == '\r' ? l - 1 : l;
            if (copy >= n)
                copy = n - 1;
            memcpy(out, r->buf, copy);
            out[copy] = '\0';
            memmove(r->buf, lf + 1, r->len - l - 1);
            r->len -= l + 1;
            return 0;
        }
        if (r->len == sizeof r->buf)
            return -1;
        ssize_t got = read(r->fd, r->buf + r->len, sizeof r->buf - r->len);
        if (got <= 0)
            return -1;
        r->len += (size_t)got;
    }
}

static int
connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Plays one transcript file; returns the number of server lines compared. */
static int
play(struct mocksrv *srv, const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    struct reader r = {.fd = -1};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, compared = 0;
    char batch[65536];
    size_t blen = 0;
    char listener[64] = "smtp";
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (sscanf(line, "# listener: %63s", listener) == 1 || line[0] == '#' || len == 0)
            continue;
        if (r.fd < 0)
            r.fd = connect_port(mocksrv_port(srv, listener));
        if (strncmp(line, "C: ", 3) == 0 || strcmp(line, "C:") == 0) {
            const char *text = len > 3 ? line + 3 : "";
            size_t tl = strlen(text);
            ck_assert(blen + tl + 2 < sizeof batch);
            memcpy(batch + blen, text, tl);
            memcpy(batch + blen + tl, "\r\n", 2);
            blen += tl + 2;
            continue;
        }
        ck_assert_msg(strncmp(line, "S: ", 3) == 0, "%s:%d: line must start with C: or S:", path,
                      lineno);
        if (blen) {
            ck_assert_int_eq(write(r.fd, batch, blen), (ssize_t)blen);
            blen = 0;
        }
        char got[4096];
        int rc = reader_line(&r, got, sizeof got);
        ck_assert_msg(rc == 0, "%s:%d: connection ended, want \"%s\"", path, lineno, line + 3);
        ck_assert_msg(strcmp(got, line + 3) == 0, "%s:%d: got \"%s\", want \"%s\"", path, lineno,
                      got, line + 3);
        compared++;
    }
    if (blen)
        ck_assert_int_eq(write(r.fd, batch, blen), (ssize_t)blen);
    free(line);
    fclose(f);
    if (r.fd >= 0)
        close(r.fd);
    return compared;
}

START_TEST(test_transcripts)
{
    const char *fixtures = getenv("MOCKSRV_FIXTURES");
    ck_assert_msg(fixtures != NULL, "MOCKSRV_FIXTURES is not set");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/transcripts", fixtures);

    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    ck_assert_msg(n >= 0, "no %s", dir);
    int files = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        size_t len = strlen(name);
        if (len > 4 && strcmp(name + len - 4, ".txt") == 0 &&
            (strncmp(name, "smtp", 4) == 0 || strncmp(name, "lmtp", 4) == 0)) {
            /* A fresh server per transcript: message numbers start at 000001. */
            struct mocksrv *srv = mocksrv_new();
            struct mocksrv_error err = {0};
            ck_assert_msg(mocksrv_load_string(srv, scenario, sizeof scenario - 1, "test", &err) ==
                              0,
                          "%s", err.message);
            mocksrv_set_ephemeral(srv, 1);
            ck_assert_int_eq(mocksrv_start(srv, &err), 0);
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", dir, name);
            int compared = play(srv, path);
            ck_assert_msg(compared > 0, "%s compared nothing", path);
            mocksrv_stop(srv);
            mocksrv_free(srv);
            files++;
        }
        free(names[i]);
    }
    free(names);
    ck_assert_int_ge(files, 5);
}
END_TEST

/* ---- memory per stored message ---- */

static const char memory_scenario[] = "version: 1\n"
                                      "hostname: mx.test\n"
                                      "listeners:\n"
                                      "  smtp: { protocol: smtp, port: 0 }\n"
                                      "smtp:\n"
                                      "  max_size: 1MiB\n"
                                      "  deliver: true\n"
                                      "users:\n"
                                      "  alice: { password: secret, addresses: [alice@mx.test] }\n";

#define MEMORY_MSG_SIZE 4096
#define MEMORY_MSGS 2000

/* Resident bytes of this process (the server runs on a thread of it). */
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

static void
expect_reply(struct reader *r, const char *code)
{
    char line[512];
    do {
        ck_assert_msg(reader_line(r, line, sizeof line) == 0, "connection ended, want %s", code);
    } while (line[3] == '-');
    ck_assert_msg(strncmp(line, code, 3) == 0, "got \"%s\", want %s", line, code);
}

static void
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        ck_assert_msg(w > 0, "write failed");
        p += w;
        n -= (size_t)w;
    }
}

/* Sends count messages of MEMORY_MSG_SIZE bytes (plus the final ".\r\n" or in two BDAT
 * chunks), each acknowledged with 250 before the next. */
static void
send_messages(struct reader *r, size_t count, int bdat)
{
    static char body[MEMORY_MSG_SIZE + 3];
    memset(body, 'x', sizeof body);
    for (size_t i = 78; i + 2 <= MEMORY_MSG_SIZE; i += 80)
        memcpy(body + i, "\r\n", 2);
    memcpy(body + MEMORY_MSG_SIZE - 2, "\r\n.\r\n", 5);
    const char *env = "MAIL FROM:<a@mx.test>\r\nRCPT TO:<alice@mx.test>\r\n";
    for (size_t i = 0; i < count; i++) {
        write_all(r->fd, env, strlen(env));
        expect_reply(r, "250");
        expect_reply(r, "250");
        if (bdat) {
            /* one write for both chunks: small writes would wait for delayed ACKs (Nagle) */
            static char chunks[MEMORY_MSG_SIZE + 64];
            size_t half = MEMORY_MSG_SIZE / 2;
            int n = snprintf(chunks, sizeof chunks, "BDAT %zu\r\n", half);
            memcpy(chunks + n, body, half);
            n += (int)half;
            n += snprintf(chunks + n, sizeof chunks - (size_t)n, "BDAT %zu LAST\r\n",
                          (size_t)MEMORY_MSG_SIZE - half);
            memcpy(chunks + n, body + half, MEMORY_MSG_SIZE - half);
            write_all(r->fd, chunks, (size_t)n + MEMORY_MSG_SIZE - half);
            expect_reply(r, "250");
        } else {
            write_all(r->fd, "DATA\r\n", 6);
            expect_reply(r, "354");
            write_all(r->fd, body, MEMORY_MSG_SIZE + 3);
        }
        expect_reply(r, "250");
    }
}

/* RSS growth per stored 4 KiB message, received with DATA (_i == 0) or BDAT (_i == 1): at most
 * 1.3x its size (bytes, envelope, store entry, INBOX entry). Kept at the capacity its buffer
 * doubled to, a 4 KiB message costs over 8 KiB. */
START_TEST(test_memory_per_message)
{
    int bdat = _i;
    /* RSS in 4 KiB pages: with transparent huge pages on "always", heaps would grow by 2 MiB */
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    ck_assert_msg(
        mocksrv_load_string(srv, memory_scenario, sizeof memory_scenario - 1, "test", &err) == 0,
        "%s", err.message);
    mocksrv_set_ephemeral(srv, 1);
    ck_assert_int_eq(mocksrv_start(srv, &err), 0);
    static struct reader r;
    r.fd = connect_port(mocksrv_port(srv, "smtp"));
    r.len = 0;
    expect_reply(&r, "220");
    write_all(r.fd, "EHLO client.test\r\n", 18);
    expect_reply(&r, "250");
    /* warm-up: the session's buffers, the message list and the allocator's arena exist */
    send_messages(&r, 50, bdat);
    size_t before = rss_bytes();
    send_messages(&r, MEMORY_MSGS, bdat);
    size_t after = rss_bytes();
    ck_assert_uint_eq(mocksrv_message_count(srv), 50 + MEMORY_MSGS);
    struct mocksrv_message *m = mocksrv_message_get(srv, 50);
    ck_assert_uint_eq(m->size, MEMORY_MSG_SIZE);
    mocksrv_message_free(m);
    double per_msg = after > before ? (double)(after - before) / MEMORY_MSGS : 0;
#ifdef MOCKSRV_ASAN
    /* AddressSanitizer's allocator adds redzones, shadow memory and a quarantine of freed
     * blocks (the receive buffers): RSS says nothing about the store there */
    per_msg = 0;
#endif
    ck_assert_msg(per_msg <= 1.3 * MEMORY_MSG_SIZE,
                  "%s: got %.0f bytes of RSS per stored %d-byte message (%.2fx), want <= 1.3x",
                  bdat ? "BDAT" : "DATA", per_msg, MEMORY_MSG_SIZE, per_msg / MEMORY_MSG_SIZE);
    close(r.fd);
    mocksrv_stop(srv);
    mocksrv_free(srv);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("smtp");
    TCase *tc = tcase_create("transcripts");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_transcripts);
    suite_add_tcase(s, tc);
    TCase *mem = tcase_create("memory");
    tcase_set_timeout(mem, 60);
    tcase_add_loop_test(mem, test_memory_per_message, 0, 2);
    suite_add_tcase(s, mem);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
