/*
 * consumer.c - a test suite of a host project, as one would write it: it links mocksrv and
 * happens to define names the library uses inside (ms_now, ms_malloc) with other signatures and
 * meanings. Only mocksrv_* may be visible in the library, so this links and each side keeps its
 * own functions.
 *
 * It starts a server on an ephemeral port, reads the greeting over loopback and stops it.
 * Exit status 0 on success; a message on stderr otherwise.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mocksrv.h>

/* The host's own helpers, unrelated to mocksrv's. */
const char *
ms_now(int which)
{
    return which ? "the host's ms_now" : "";
}

int ms_malloc = 42;

static const char scenario[] = "version: 1\n"
                               "hostname: consumer.test\n"
                               "listeners: { smtp: { protocol: smtp, port: 0 } }\n";

static int
fail(const char *what, const char *detail)
{
    fprintf(stderr, "consumer: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return 1;
}

int
main(void)
{
    if (strcmp(ms_now(1), "the host's ms_now") != 0 || ms_malloc != 42)
        return fail("the host's own symbols were replaced", NULL);
    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    if (mocksrv_load_string(srv, scenario, sizeof scenario - 1, "consumer", &err) != MOCKSRV_OK)
        return fail("load", err.message);
    if (mocksrv_start(srv, &err) != MOCKSRV_OK)
        return fail("start", err.message);
    int port = mocksrv_port(srv, "smtp");
    if (port <= 0)
        return fail("no port", NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        return fail("connect", NULL);
    char greeting[256] = "";
    size_t len = 0;
    while (len + 1 < sizeof greeting && !memchr(greeting, '\n', len)) {
        ssize_t n = read(fd, greeting + len, sizeof greeting - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        greeting[len] = '\0';
    }
    if (strncmp(greeting, "220 consumer.test ", 18) != 0)
        return fail("unexpected greeting", greeting);
    if (write(fd, "QUIT\r\n", 6) != 6)
        return fail("write", NULL);
    close(fd);
    int unmet = mocksrv_stop(srv);
    mocksrv_free(srv);
    if (unmet != 0)
        return fail("mocksrv_stop did not return 0", NULL);
    printf("consumer: ok (%s, ms_malloc %d)\n", mocksrv_version(), ms_malloc);
    return 0;
}
