/*
 * fuzz_scenario.c - libFuzzer target for the YAML scenario loader (ms_scenario_load_string) and
 * the scalar parsers it shares with the CLI (ms_parse_size, ms_parse_duration).
 *
 * Any bytes go in. What must hold:
 *   - the loader returns MOCKSRV_OK or MOCKSRV_ESCENARIO, never anything else, never crashes,
 *     never leaks (LeakSanitizer runs after every input that allocated more than it freed);
 *   - on error: code, file, a line and column >= 1, and a message that starts with
 *     "fuzz.yaml:LINE:COLUMN: " naming that same position;
 *   - on success: the model respects the ranges scenario.h documents (limits, ports, version,
 *     listener names), every user is found again by name and by each address, every listener by
 *     its name;
 *   - the scalar parsers return 0 or MOCKSRV_EINVAL on the first line of the input.
 * It is not a test of which documents are accepted: the unit suite has those tables.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

#define FUZZ_NAME "fuzz.yaml"

/* Reports a broken invariant with the message that explains it, then aborts so that libFuzzer
 * saves the input. */
static void fuzz_fail(const char *fmt, ...) MS_PRINTF(1, 2) MS_NORETURN;

static void
fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_scenario: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

static void
fuzz_check_error(int rc, const struct mocksrv_error *err)
{
    if (rc != MOCKSRV_ESCENARIO)
        fuzz_fail("loader returned %d, want 0 or MOCKSRV_ESCENARIO", rc);
    if (err->code != MOCKSRV_ESCENARIO)
        fuzz_fail("err.code %d, want MOCKSRV_ESCENARIO", err->code);
    if (err->line < 1 || err->column < 1)
        fuzz_fail("error position %d:%d, want both >= 1 (%s)", err->line, err->column,
                  err->message);
    if (strcmp(err->file, FUZZ_NAME) != 0)
        fuzz_fail("err.file \"%s\", want \"%s\"", err->file, FUZZ_NAME);
    if (memchr(err->message, '\0', sizeof err->message) == NULL)
        fuzz_fail("err.message is not NUL-terminated");
    char prefix[sizeof FUZZ_NAME + 32];
    snprintf(prefix, sizeof prefix, "%s:%d:%d: ", FUZZ_NAME, err->line, err->column);
    if (strncmp(err->message, prefix, strlen(prefix)) != 0 ||
        strlen(err->message) <= strlen(prefix))
        fuzz_fail("message \"%s\" does not start with \"%s\" followed by a problem", err->message,
                  prefix);
}

static int
fuzz_name_ok(const char *name)
{
    if (!*name)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return 0;
    return 1;
}

static void
fuzz_check_model(const struct ms_scenario *sc)
{
    const struct ms_limits *l = &sc->limits;
    if (sc->version != 1)
        fuzz_fail("version %d", sc->version);
    if (!sc->hostname || !sc->path || !sc->base_dir)
        fuzz_fail("hostname, path or base_dir is NULL");
    if (l->smtp_line_length < 512 || l->smtp_line_length > 65536)
        fuzz_fail("smtp_line_length %zu out of [512, 64KiB]", l->smtp_line_length);
    if (l->pop3_line_length < 255 || l->pop3_line_length > 65536)
        fuzz_fail("pop3_line_length %zu out of [255, 64KiB]", l->pop3_line_length);
    if (l->imap_line_length < 1024 || l->imap_line_length > 16u << 20)
        fuzz_fail("imap_line_length %zu out of [1KiB, 16MiB]", l->imap_line_length);
    if (l->message_size < 1 || l->message_size > 1u << 30)
        fuzz_fail("message_size %zu out of [1, 1GiB]", l->message_size);
    if (l->literal_size < 1 || l->literal_size > 1u << 30)
        fuzz_fail("literal_size %zu out of [1, 1GiB]", l->literal_size);
    if (l->sessions < 1 || l->sessions > 1000000)
        fuzz_fail("sessions %u out of [1, 1000000]", l->sessions);
    if (l->bad_commands < 1 || l->bad_commands > 1000000)
        fuzz_fail("bad_commands %u out of [1, 1000000]", l->bad_commands);
    if (l->idle_timeout_ms < 1 || l->idle_timeout_ms > 7 * 86400000LL)
        fuzz_fail("idle_timeout %lld ms out of [1 ms, 7 d]", (long long)l->idle_timeout_ms);
    if (sc->smtp.max_size < 1)
        fuzz_fail("smtp.max_size 0");
    if (sc->tls.min_version != 0 && (sc->tls.min_version < 0x0301 || sc->tls.min_version > 0x0304))
        fuzz_fail("tls.min_version 0x%x", sc->tls.min_version);

    for (size_t i = 0; i < sc->n_listeners; i++) {
        const struct ms_listener_conf *li = &sc->listeners[i];
        if (!fuzz_name_ok(li->name))
            fuzz_fail("listener name \"%s\" is not letters, digits, - and _", li->name);
        if (li->port < 0 || li->port > 65535)
            fuzz_fail("listener %s: port %d", li->name, li->port);
        if (ms_scenario_find_listener(sc, li->name) != li)
            fuzz_fail("listener %s not found by its name", li->name);
        for (size_t j = 0; j < i; j++) {
            const struct ms_listener_conf *lj = &sc->listeners[j];
            int same_host = (!li->host && !lj->host) ||
                            (li->host && lj->host && strcmp(li->host, lj->host) == 0);
            if (li->port != 0 && li->port == lj->port && same_host)
                fuzz_fail("listeners %s and %s share port %d", lj->name, li->name, li->port);
        }
    }
    for (size_t i = 0; i < sc->n_users; i++) {
        const struct ms_user *u = &sc->users[i];
        if (!u->name || !u->password)
            fuzz_fail("user %zu without name or password", i);
        if (ms_scenario_find_user(sc, u->name) != u)
            fuzz_fail("user \"%s\" not found by its name", u->name);
        for (size_t k = 0; k < u->n_addresses; k++) {
            const char *a = u->addresses[k];
            if (!strchr(a, '@') || strpbrk(a, " \t<>,;\""))
                fuzz_fail("user \"%s\": address \"%s\" is not local@domain", u->name, a);
            if (ms_scenario_find_user(sc, a) != u)
                fuzz_fail("user \"%s\" not found by its address \"%s\"", u->name, a);
        }
    }
}

/* The scalar parsers on the first line of the input, as a C string. */
static void
fuzz_scalars(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t n = nl ? (size_t)(nl - data) : size;
    if (n > 256)
        return;
    char s[257];
    memcpy(s, data, n);
    s[n] = '\0';
    size_t sz = 0;
    int64_t ms = 0;
    int rc = ms_parse_size(s, &sz);
    if (rc != 0 && rc != MOCKSRV_EINVAL)
        fuzz_fail("ms_parse_size(\"%s\") returned %d", s, rc);
    rc = ms_parse_duration(s, &ms);
    if (rc != 0 && rc != MOCKSRV_EINVAL)
        fuzz_fail("ms_parse_duration(\"%s\") returned %d", s, rc);
    if (rc == 0 && ms < 0)
        fuzz_fail("ms_parse_duration(\"%s\") gave %lld ms", s, (long long)ms);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ms_scenario *sc = NULL;
    struct mocksrv_error err;
    memset(&err, 0x5a, sizeof err); /* a loader that forgets a field is caught */
    int rc = ms_scenario_load_string((const char *)data, size, FUZZ_NAME, "/fuzz", &sc, &err);
    if (rc == MOCKSRV_OK) {
        if (!sc)
            fuzz_fail("MOCKSRV_OK without a scenario");
        fuzz_check_model(sc);
        ms_scenario_destroy(&sc);
        if (sc)
            fuzz_fail("ms_scenario_destroy did not clear the pointer");
    } else {
        fuzz_check_error(rc, &err);
        if (sc)
            fuzz_fail("error %d but *sc_r was set", rc);
        /* No diagnostics struct: the loader must cope as well. */
        if (ms_scenario_load_string((const char *)data, size, FUZZ_NAME, "/fuzz", &sc, NULL) != rc)
            fuzz_fail("the same input gave a different code without an error struct");
    }
    if (size > 0)
        fuzz_scalars(data, size);
    return 0;
}
