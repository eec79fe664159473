/*
 * events.c - JSON-lines events, the transcript and log messages: the only code that prints.
 *
 * Invariant: every emitted line is one valid JSON object, whatever bytes a client sent; bytes
 * that are not UTF-8 are escaped as the four characters \xNN (as Python's backslashreplace).
 */
#include "events.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

void
ms_events_init(struct ms_events *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->verbosity = 1;
    ev->start_ms = ms_now();
    const char *no_color = getenv("NO_COLOR");
    ev->color = isatty(2) && !(no_color && *no_color);
}

void
ms_events_fini(struct ms_events *ev)
{
    if (ev->file) {
        fflush(ev->file);
        if (ev->close_file)
            fclose(ev->file);
    }
    ev->file = NULL;
}

int
ms_events_open(struct ms_events *ev, const char *path, struct mocksrv_error *err)
{
    FILE *f;
    if (strcmp(path, "-") == 0) {
        f = stdout;
    } else {
        f = fopen(path, "w");
        if (!f)
            return ms_error_set(err, MOCKSRV_EIO, "%s: cannot open events file: %s", path,
                                strerror(errno));
    }
    if (ev->file && ev->close_file)
        fclose(ev->file);
    ev->file = f;
    ev->close_file = f != stdout;
    return MOCKSRV_OK;
}

int
ms_events_wanted(const struct ms_events *ev)
{
    return ev->file != NULL || ev->fn != NULL;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 when it is not valid.
 * Rejects overlongs, surrogates and code points above U+10FFFF (RFC 3629 section 4). */
static size_t
events_utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return c == 0 ? 0 : 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return len;
}

void
ms_utf8_escape(struct ms_buf *out, const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        size_t len = events_utf8_len(u + i, n - i);
        if (len == 0) {
            ms_buf_printf(out, "\\x%02X", u[i]);
            i++;
        } else {
            ms_buf_append(out, p + i, len);
            i += len;
        }
    }
}

json_t *
ms_json_bytes(const char *p, size_t n)
{
    struct ms_buf b = {0};
    ms_utf8_escape(&b, p, n);
    json_t *s = json_stringn(b.data ? b.data : "", b.len);
    ms_buf_fini(&b);
    ms_assert(s != NULL);
    return s;
}

json_t *
ms_event_new(struct ms_events *ev, const char *name, unsigned session, const char *listener)
{
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string(name));
    json_object_set_new(o, "t", json_real((double)(ms_now() - ev->start_ms) / 1000.0));
    if (session)
        json_object_set_new(o, "session", json_integer(session));
    if (listener)
        json_object_set_new(o, "listener", json_string(listener));
    return o;
}

void
ms_event_emit(struct ms_events *ev, json_t *event)
{
    if (ev->file || ev->fn) {
        char *line = json_dumps(event, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        ms_assert(line != NULL);
        if (ev->file) {
            fputs(line, ev->file);
            fputc('\n', ev->file);
            fflush(ev->file);
        }
        if (ev->fn) {
            json_t *name = json_object_get(event, "event");
            ev->fn(ev->fn_arg, json_string_value(name), line);
        }
        free(line);
    }
    json_decref(event);
}

void
ms_transcript(struct ms_events *ev, unsigned session, const char *listener, char dir, const char *p,
              size_t n)
{
    if (ev->verbosity < 2)
        return;
    const char *on = "", *off = "";
    if (ev->color) {
        on = dir == '<' ? "\033[36m" : dir == '>' ? "\033[32m" : "\033[33m";
        off = "\033[0m";
    }
    struct ms_buf out = {0};
    size_t i = 0;
    while (i < n) {
        const char *lf = memchr(p + i, '\n', n - i);
        size_t end = lf ? (size_t)(lf - p) : n;
        size_t len = end - i;
        if (len > 0 && p[i + len - 1] == '\r')
            len--;
        ms_buf_printf(&out, "%s[%3u %s] %c ", on, session, listener ? listener : "-", dir);
        /* control bytes (a raw TLS alert, an ESC a client sent) as \xNN: the transcript goes
         * to a terminal */
        for (size_t k = i, run = i; k <= i + len; k++) {
            unsigned char ch = k < i + len ? (unsigned char)p[k] : 0;
            if (k < i + len && !(ch < 0x20 && ch != '\t') && ch != 0x7f)
                continue;
            ms_utf8_escape(&out, p + run, k - run);
            if (k < i + len)
                ms_buf_printf(&out, "\\x%02X", ch);
            run = k + 1;
        }
        ms_buf_printf(&out, "%s\n", off);
        i = lf ? end + 1 : n;
    }
    if (out.len)
        fwrite(out.data, 1, out.len, stderr);
    ms_buf_fini(&out);
}

static void events_log(struct ms_events *ev, const char *prefix, const char *fmt, va_list ap)
    MS_PRINTF(3, 0);

static void
events_log(struct ms_events *ev, const char *prefix, const char *fmt, va_list ap)
{
    struct ms_buf b = {0};
    ms_buf_printf(&b, "mocksrv: %s", prefix);
    ms_buf_vprintf(&b, fmt, ap);
    ms_buf_putc(&b, '\n');
    fwrite(b.data, 1, b.len, stderr);
    ms_buf_fini(&b);
    (void)ev;
}

void
ms_log_error(struct ms_events *ev, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    events_log(ev, "error: ", fmt, ap);
    va_end(ap);
}

void
ms_log_info(struct ms_events *ev, const char *fmt, ...)
{
    if (ev->verbosity < 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    events_log(ev, "", fmt, ap);
    va_end(ap);
}
