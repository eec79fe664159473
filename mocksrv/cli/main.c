/*
 * main.c - the mocksrv command line (SPEC.md section 2), a client of the public API only.
 *
 * It parses options, loads the scenario, binds every listener, prints the ready line, optionally
 * runs `-- CMD` with the listeners in its environment, and steps the server; signal handlers
 * only set flags and interrupt the step (mocksrv_interrupt), and the loop acts on them:
 * SIGINT/SIGTERM stop gracefully, SIGHUP reloads the scenario, SIGCHLD ends CMD mode.
 *
 * Exit status: 0 clean stop, 1 runtime failure, 2 usage or scenario error, 3 an expectation not
 * met; with `-- CMD`, CMD's status when non-zero, else 3 on an unmet expectation, else 0.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mocksrv.h"

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_EXPECT = 3 };

struct cli {
    const char *scenario;
    int ephemeral;
    const char *bind_host;
    int ready_fd;
    const char *ready_file;
    const char *events;
    const char *spool;
    const char *state_out;
    const char *cert;
    const char *key;
    const char *ca_out;
    int verbosity;
    int check;
    long long seed;
    int seed_set;
    unsigned exit_after;
    long long idle_exit_ms;
    const char **listen;
    int n_listen;
    char **cmd;
};

/* Set by the signal handler, acted on by the main loop. */
static volatile sig_atomic_t cli_got_stop, cli_got_hup, cli_got_chld;
static struct mocksrv *cli_srv;

static void
cli_on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGCHLD)
        cli_got_chld = 1;
    else if (sig == SIGHUP)
        cli_got_hup = 1;
    else
        cli_got_stop = 1;
    if (cli_srv)
        mocksrv_interrupt(cli_srv);
    errno = saved;
}

static void
cli_usage(FILE *out)
{
    fputs("usage: mocksrv [OPTIONS] [SCENARIO.yaml] [-- CMD [ARGS...]]\n"
          "\n"
          "A mock SMTP, LMTP and POP3 server for tests (IMAP not yet). Without a scenario\n"
          "it serves the embedded default (SMTP on 127.0.0.1:3025, SMTPS 3465, POP3 3110,\n"
          "POP3S 3995; users alice and bob with password \"secret\").\n"
          "\n"
          "  --listen NAME=[HOST:]PORT  override or add a listener (PORT 0 = ephemeral)\n"
          "  --ephemeral                every listener on an ephemeral port\n"
          "  --bind HOST                default listen address (default 127.0.0.1)\n"
          "  --ready-fd N               write the ready line to fd N (default stdout)\n"
          "  --ready-file PATH          write the ready line to PATH (atomically)\n"
          "  --events PATH              JSON-lines events to PATH (- = stdout)\n"
          "  --spool DIR                write each received message to DIR/NNNNNN.eml + .json\n"
          "  --state-out PATH           at exit, write the final mailboxes as a scenario to PATH\n"
          "  --cert PEM --key PEM       server certificate and key (default: generated at start)\n"
          "  --ca-out PATH              write the generated CA certificate to PATH\n"
          "  --seed N                   seed for every random choice\n"
          "  -v, --verbose              transcript of every session on stderr\n"
          "  -q, --quiet                errors only\n"
          "  --check                    validate the scenario and exit\n"
          "  --exit-after N             stop after N sessions have ended\n"
          "  --idle-exit SECONDS        stop when no session has been open that long\n"
          "  --version, --help\n"
          "\n"
          "Exit status: 0 clean stop, 1 runtime failure, 2 usage or scenario error,\n"
          "3 an expectation not met; with -- CMD, CMD's status when non-zero.\n",
          out);
}

static int __attribute__((format(printf, 1, 2))) cli_fail_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mocksrv: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'mocksrv --help'.\n", stderr);
    return EXIT_USAGE;
}

static int
cli_parse_ull(const char *s, unsigned long long max, unsigned long long *out)
{
    if (!s || !*s || !isdigit((unsigned char)*s))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Seconds, possibly fractional ("2", "0.5"), to milliseconds. */
static int
cli_parse_seconds(const char *s, long long *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < 0 || v > 1e9)
        return -1;
    *ms = (long long)(v * 1000.0 + 0.5);
    return 0;
}

static int
cli_parse(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'L'},
        {"ephemeral", no_argument, NULL, 'E'},
        {"bind", required_argument, NULL, 'B'},
        {"ready-fd", required_argument, NULL, 'R'},
        {"ready-file", required_argument, NULL, 'F'},
        {"events", required_argument, NULL, 'e'},
        {"spool", required_argument, NULL, 's'},
        {"seed", required_argument, NULL, 'S'},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"check", no_argument, NULL, 'C'},
        {"exit-after", required_argument, NULL, 'X'},
        {"idle-exit", required_argument, NULL, 'I'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {"state-out", required_argument, NULL, 'O'},
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"ca-out", required_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    /* Split at "--" ourselves: everything after it is CMD, untouched by getopt. */
    int nopt = argc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            nopt = i;
            cli->cmd = argv + i + 1;
            if (!cli->cmd[0])
                return cli_fail_usage("%s", "-- needs a command");
            break;
        }
    }
    unsigned long long v;
    int c, idx;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(nopt, argv, ":vqh", opts, &idx)) != -1) {
        switch (c) {
        case 'L':
            cli->listen = realloc(cli->listen, sizeof *cli->listen * (size_t)(cli->n_listen + 1));
            if (!cli->listen)
                abort();
            cli->listen[cli->n_listen++] = optarg;
            break;
        case 'E':
            cli->ephemeral = 1;
            break;
        case 'B':
            cli->bind_host = optarg;
            break;
        case 'R':
            if (cli_parse_ull(optarg, 1u << 20, &v) != 0)
                return cli_fail_usage("--ready-fd: bad descriptor \"%s\"", optarg);
            cli->ready_fd = (int)v;
            break;
        case 'F':
            cli->ready_file = optarg;
            break;
        case 'e':
            cli->events = optarg;
            break;
        case 's':
            cli->spool = optarg;
            break;
        case 'O':
            cli->state_out = optarg;
            break;
        case 'c':
            cli->cert = optarg;
            break;
        case 'k':
            cli->key = optarg;
            break;
        case 'a':
            cli->ca_out = optarg;
            break;
        case 'S':
            if (cli_parse_ull(optarg, ~0ull >> 1, &v) != 0)
                return cli_fail_usage("--seed: bad number \"%s\"", optarg);
            cli->seed = (long long)v;
            cli->seed_set = 1;
            break;
        case 'v':
            cli->verbosity = 2;
            break;
        case 'q':
            cli->verbosity = 0;
            break;
        case 'C':
            cli->check = 1;
            break;
        case 'X':
            if (cli_parse_ull(optarg, 1u << 30, &v) != 0)
                return cli_fail_usage("--exit-after: bad count \"%s\"", optarg);
            cli->exit_after = (unsigned)v;
            break;
        case 'I':
            if (cli_parse_seconds(optarg, &cli->idle_exit_ms) != 0)
                return cli_fail_usage("--idle-exit: bad number of seconds \"%s\"", optarg);
            break;
        case 'V':
            printf("mocksrv %s\n", mocksrv_version());
            exit(0);
        case 'h':
            cli_usage(stdout);
            exit(0);
        case ':':
            return cli_fail_usage("%s needs an argument", argv[optind - 1]);
        default:
            return cli_fail_usage("unknown option %s", argv[optind - 1]);
        }
    }
    if (cli->key && !cli->cert)
        return cli_fail_usage("%s", "--key needs --cert");
    if (optind < nopt)
        cli->scenario = argv[optind++];
    if (optind < nopt)
        return cli_fail_usage("unexpected argument \"%s\"", argv[optind]);
    return 0;
}

static int
cli_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int
cli_write_ready(const struct cli *cli, const char *json)
{
    size_t len = strlen(json);
    char *line = malloc(len + 2);
    if (!line)
        abort();
    memcpy(line, json, len);
    line[len] = '\n';
    int rc = 0;
    if (cli->ready_file) {
        /* Written beside and renamed, so a reader never sees half a line. */
        size_t pl = strlen(cli->ready_file) + 16;
        char *tmp = malloc(pl);
        if (!tmp)
            abort();
        snprintf(tmp, pl, "%s.tmp", cli->ready_file);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        rc = fd < 0 || cli_write_all(fd, line, len + 1) != 0 || close(fd) != 0 ||
                     rename(tmp, cli->ready_file) != 0
                 ? -1
                 : 0;
        if (rc)
            fprintf(stderr, "mocksrv: error: --ready-file %s: %s\n", cli->ready_file,
                    strerror(errno));
        free(tmp);
    } else {
        int fd = cli->ready_fd >= 0 ? cli->ready_fd : 1;
        rc = cli_write_all(fd, line, len + 1);
        if (rc)
            fprintf(stderr, "mocksrv: error: cannot write the ready line: %s\n", strerror(errno));
    }
    free(line);
    return rc;
}

/* MOCKSRV_<NAME>_HOST / _PORT for every listener of the ready line, then exec. */
static pid_t
cli_spawn(const struct cli *cli, const char *ready_json)
{
    json_error_t jerr;
    json_t *ready = json_loads(ready_json, 0, &jerr);
    pid_t pid = fork();
    if (pid != 0) {
        json_decref(ready);
        return pid;
    }
    json_t *ls = json_object_get(ready, "listeners");
    size_t i;
    json_t *l;
    json_array_foreach(ls, i, l)
    {
        char name[128];
        snprintf(name, sizeof name, "%s", json_string_value(json_object_get(l, "name")));
        for (char *p = name; *p; p++)
            *p = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        char key[192], val[64];
        snprintf(key, sizeof key, "MOCKSRV_%s_HOST", name);
        setenv(key, json_string_value(json_object_get(l, "host")), 1);
        snprintf(key, sizeof key, "MOCKSRV_%s_PORT", name);
        snprintf(val, sizeof val, "%lld",
                 (long long)json_integer_value(json_object_get(l, "port")));
        setenv(key, val, 1);
    }
    if (cli->spool)
        setenv("MOCKSRV_SPOOL", cli->spool, 1);
    if (cli->events)
        setenv("MOCKSRV_EVENTS", cli->events, 1);
    json_t *ca = json_object_get(ready, "ca_file");
    if (json_is_string(ca))
        setenv("MOCKSRV_CA_FILE", json_string_value(ca), 1);
    signal(SIGPIPE, SIG_DFL);
    execvp(cli->cmd[0], cli->cmd);
    fprintf(stderr, "mocksrv: cannot run %s: %s\n", cli->cmd[0], strerror(errno));
    _exit(127);
}

int
main(int argc, char **argv)
{
    struct cli cli = {.ready_fd = -1, .verbosity = 1};
    int rc = cli_parse(&cli, argc, argv);
    if (rc)
        return rc;

    struct mocksrv *srv = mocksrv_new();
    struct mocksrv_error err = {0};
    int status = EXIT_RUNTIME;
    if (cli.scenario && mocksrv_load_file(srv, cli.scenario, &err) != MOCKSRV_OK) {
        fprintf(stderr, "mocksrv: %s\n", err.message);
        status = EXIT_USAGE;
        goto out;
    }

    mocksrv_set_verbosity(srv, cli.verbosity);
    mocksrv_set_ephemeral(srv, cli.ephemeral);
    if (cli.bind_host)
        mocksrv_set_bind_host(srv, cli.bind_host);
    if (cli.seed_set)
        mocksrv_set_seed(srv, (uint64_t)cli.seed);
    mocksrv_set_exit_after(srv, cli.exit_after);
    if (cli.cert)
        mocksrv_set_cert(srv, cli.cert, cli.key);
    if (cli.ca_out)
        mocksrv_set_ca_out(srv, cli.ca_out);
    mocksrv_set_idle_exit(srv, cli.idle_exit_ms);
    for (int i = 0; i < cli.n_listen; i++) {
        if (mocksrv_listen(srv, cli.listen[i], &err) != MOCKSRV_OK) {
            fprintf(stderr, "mocksrv: %s\n", err.message);
            status = EXIT_USAGE;
            goto out;
        }
    }
    /* --check validates what start would refuse without binding: the scenario and the
     * --listen names (an unknown one, or imap) */
    if (cli.check) {
        printf("%s: ok\n", cli.scenario ? cli.scenario : "<default>");
        status = 0;
        goto out;
    }
    if ((cli.spool && mocksrv_set_spool(srv, cli.spool, &err) != MOCKSRV_OK) ||
        (cli.events && mocksrv_set_events_file(srv, cli.events, &err) != MOCKSRV_OK)) {
        fprintf(stderr, "mocksrv: %s\n", err.message);
        status = EXIT_RUNTIME;
        goto out;
    }

    /* Signals set flags and interrupt the server's step; the loop below acts on them. */
    cli_srv = srv;
    struct sigaction sa = {.sa_handler = cli_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = mocksrv_bind(srv, &err);
    if (rc != MOCKSRV_OK) {
        fprintf(stderr, "mocksrv: %s\n", err.message);
        status = rc == MOCKSRV_EBIND || rc == MOCKSRV_ESYS ? EXIT_RUNTIME : EXIT_USAGE;
        goto out;
    }
    char *ready = mocksrv_ready_json(srv);
    if (cli_write_ready(&cli, ready) != 0) {
        free(ready);
        goto out;
    }
    if (cli.ready_fd > 2)
        close(cli.ready_fd);
    pid_t child = -1;
    int child_status = 0;
    if (cli.cmd)
        child = cli_spawn(&cli, ready);
    free(ready);

    int stopping = 0;
    for (;;) {
        if (cli_got_chld) {
            cli_got_chld = 0;
            int st;
            pid_t p;
            while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
                if (p == child) {
                    child_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                    child = 0;
                    mocksrv_shutdown(srv);
                }
            }
        }
        if (cli_got_hup) {
            cli_got_hup = 0;
            /* errors are reported by the server; the previous scenario stays */
            mocksrv_reload(srv, &err);
        }
        if (cli_got_stop && !stopping) {
            stopping = 1;
            mocksrv_shutdown(srv);
        }
        /* one epoll_wait per wake-up: a signal interrupts it through mocksrv_interrupt */
        if (mocksrv_step(srv, -1) != 0)
            break;
    }
    int unmet = mocksrv_stop(srv);
    if (cli.state_out && mocksrv_write_state(srv, cli.state_out, &err) != MOCKSRV_OK) {
        fprintf(stderr, "mocksrv: --state-out: %s\n", err.message);
        unmet = -1;
    }
    if (child > 0) {
        /* The server stopped on its own (--exit-after, --idle-exit): let CMD finish. */
        int st;
        if (waitpid(child, &st, 0) == child)
            child_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    if (cli.cmd && child_status != 0)
        status = child_status;
    else
        status = unmet < 0 ? EXIT_RUNTIME : unmet > 0 ? EXIT_EXPECT : 0;
out:
    /* The server is about to be freed: a late signal (a second SIGTERM) must not reach it. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    cli_srv = NULL;
    mocksrv_free(srv);
    free(cli.listen);
    return status;
}
