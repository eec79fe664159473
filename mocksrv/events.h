/*
 * events.h - the single sink of everything mocksrv reports: JSON-lines events (to a file and to
 * the library callback), the human transcript on stderr (-v), and error messages.
 *
 * Every event is a JSON object with "event", "t" (seconds since the server started) and, for a
 * session, "session" and "listener". Bytes that are not valid UTF-8 are escaped as the text
 * \xNN so every line is valid JSON whatever a client sent. Nothing else in mocksrv prints, and
 * this prints on stderr only at the verbosity the host set (none by default).
 */
#ifndef MS_EVENTS_H
#define MS_EVENTS_H

#include <jansson.h>
#include <stdio.h>

#include "base.h"

struct ms_events {
    FILE *file;     /* JSON lines, or NULL */
    int close_file; /* we opened it */
    mocksrv_event_fn *fn;
    void *fn_arg;
    int verbosity;    /* -1 nothing (the default), 0 errors only, 1 normal, 2 transcript */
    int color;        /* ANSI colours on stderr */
    int64_t start_ms; /* ms_now() at start: "t" is relative to it */
};

void ms_events_init(struct ms_events *ev);
void ms_events_fini(struct ms_events *ev);
/* Opens path ("-" = stdout) for JSON lines. */
int ms_events_open(struct ms_events *ev, const char *path, struct mocksrv_error *err);
/* 1 when someone consumes JSON events (a file or a callback). */
int ms_events_wanted(const struct ms_events *ev);

/* Starts an event object with "event" and "t"; session 0 and listener NULL are left out. */
json_t *ms_event_new(struct ms_events *ev, const char *name, unsigned session,
                     const char *listener);
/* Writes the event (and calls the callback), then frees it. */
void ms_event_emit(struct ms_events *ev, json_t *event);

/* A JSON string from arbitrary bytes (invalid UTF-8 and NUL escaped as \xNN text). New ref. */
json_t *ms_json_bytes(const char *p, size_t n);
/* Same, into a buffer (no quotes). */
void ms_utf8_escape(struct ms_buf *out, const char *p, size_t n);

/* Transcript line on stderr at verbosity 2: "[  1 smtp] < EHLO x" (dir '<' in, '>' out,
 * '*' note). Each line of p is printed on its own, without its CRLF. */
void ms_transcript(struct ms_events *ev, unsigned session, const char *listener, char dir,
                   const char *p, size_t n);
/* Messages on stderr: errors at verbosity >= 0, info at >= 1; nothing at -1 (the library's
 * default: only a host that sets a verbosity, like the CLI, gets lines on stderr). */
void ms_log_error(struct ms_events *ev, const char *fmt, ...) MS_PRINTF(2, 3);
void ms_log_info(struct ms_events *ev, const char *fmt, ...) MS_PRINTF(2, 3);

#endif
