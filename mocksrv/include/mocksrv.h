/*
 * mocksrv.h - the public API of mocksrv, a mock SMTP/LMTP (and later POP3, IMAP) server for tests.
 *
 * A server object holds a scenario (users, listeners, settings), the listeners it binds, the
 * sessions it serves and the messages it received. It runs one single-threaded event loop with one
 * coroutine per connection, either on a thread of its own (mocksrv_start) or stepped from the
 * host's loop (mocksrv_bind, mocksrv_fd, mocksrv_step).
 *
 * Conventions:
 *   - Functions returning int return MOCKSRV_OK (0) or a negative MOCKSRV_E* code; where a
 *     struct mocksrv_error * is taken (it may be NULL) it receives a message, and for scenario
 *     errors the file, line and column.
 *   - No function exits or aborts on bad input. Out of memory aborts the process.
 *   - Unless said otherwise, functions must be called from the thread that created the server,
 *     and not while mocksrv_start()'s thread runs, except those marked "any thread".
 *   - Strings returned as `const char *` are owned by the server and valid until mocksrv_free()
 *     unless said otherwise; `char *` results are the caller's to free().
 */
#ifndef MOCKSRV_H
#define MOCKSRV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MOCKSRV_BUILDING)
#define MOCKSRV_API __attribute__((visibility("default")))
#else
#define MOCKSRV_API
#endif

/* Error codes: X(name, value, text). MOCKSRV_OK is 0; errors are negative. */
#define MOCKSRV_ERRORS(X)                                                                          \
    X(MOCKSRV_OK, 0, "success")                                                                    \
    X(MOCKSRV_EINVAL, -1, "invalid argument")                                                      \
    X(MOCKSRV_ENOMEM, -2, "out of memory")                                                         \
    X(MOCKSRV_EIO, -3, "input/output error")                                                       \
    X(MOCKSRV_ETIMEDOUT, -4, "timed out")                                                          \
    X(MOCKSRV_ECLOSED, -5, "connection closed by peer")                                            \
    X(MOCKSRV_ETOOLONG, -6, "line or data too long")                                               \
    X(MOCKSRV_ESCENARIO, -7, "scenario error")                                                     \
    X(MOCKSRV_EBIND, -8, "cannot bind or listen")                                                  \
    X(MOCKSRV_ESTATE, -9, "not allowed in the current state")                                      \
    X(MOCKSRV_ENOTFOUND, -10, "not found")                                                         \
    X(MOCKSRV_ETLS, -11, "TLS error")                                                              \
    X(MOCKSRV_ECANCELED, -12, "canceled")                                                          \
    X(MOCKSRV_EUNSUPPORTED, -13, "not supported")                                                  \
    X(MOCKSRV_ESYS, -14, "system call failed")

enum mocksrv_status {
#define MOCKSRV_X_ENUM(name, value, text) name = value,
    MOCKSRV_ERRORS(MOCKSRV_X_ENUM)
#undef MOCKSRV_X_ENUM
};

/* Returns a static description of a MOCKSRV_* code. Any thread. */
MOCKSRV_API const char *mocksrv_strerror(int code);

/* Details of a failure. file is empty when the error is not about a scenario file. */
struct mocksrv_error {
    int code;
    char file[512];
    int line;           /* 1-based; 0 when unknown */
    int column;         /* 1-based; 0 when unknown */
    char message[1024]; /* "file:line:column: key.path: what is wrong" for scenario errors */
};

struct mocksrv;

/* Creates an empty server holding the embedded default scenario (loaded on first use unless a
 * scenario is loaded first). Never returns NULL. */
MOCKSRV_API struct mocksrv *mocksrv_new(void);

/* Stops the server if it runs, frees it and everything it returned as const. NULL is allowed. */
MOCKSRV_API void mocksrv_free(struct mocksrv *srv);

/* Loads a scenario from a YAML file or string, replacing the previous one. Only before
 * start/bind. name is used in error positions (may be NULL: "<string>"). On error the previous
 * scenario is kept, MOCKSRV_ESCENARIO returned and err filled. */
MOCKSRV_API int mocksrv_load_file(struct mocksrv *srv, const char *path, struct mocksrv_error *err);
MOCKSRV_API int mocksrv_load_string(struct mocksrv *srv, const char *yaml, size_t len,
                                    const char *name, struct mocksrv_error *err);

/* Settings, before start/bind. */
MOCKSRV_API void mocksrv_set_ephemeral(struct mocksrv *srv, int on);
/* Default listen address (default "127.0.0.1"). */
MOCKSRV_API int mocksrv_set_bind_host(struct mocksrv *srv, const char *host);
/* Overrides one listener's address like --listen "NAME=[HOST:]PORT". NAME is a listener of the
 * scenario or one of smtp smtps submission lmtp pop3 pop3s imap imaps to add it. */
MOCKSRV_API int mocksrv_listen(struct mocksrv *srv, const char *spec, struct mocksrv_error *err);
MOCKSRV_API void mocksrv_set_seed(struct mocksrv *srv, uint64_t seed);
/* Directory receiving NNNNNN.eml and NNNNNN.json for every accepted message (created if absent). */
MOCKSRV_API int mocksrv_set_spool(struct mocksrv *srv, const char *dir, struct mocksrv_error *err);
/* JSON-lines events to a file; "-" is stdout. */
MOCKSRV_API int mocksrv_set_events_file(struct mocksrv *srv, const char *path,
                                        struct mocksrv_error *err);
/* The server certificate chain and key (PEM files) for every TLS listener, instead of
 * tls.cert/tls.key or the generated ones (--cert/--key). key may be NULL when cert holds both. */
MOCKSRV_API int mocksrv_set_cert(struct mocksrv *srv, const char *cert, const char *key);
/* Where to write the generated CA certificate (--ca-out), instead of a private temporary
 * directory that is removed when the server is freed. */
MOCKSRV_API int mocksrv_set_ca_out(struct mocksrv *srv, const char *path);

/* 0 = errors only, 1 = normal (default), 2 = transcript of every session on stderr. */
MOCKSRV_API void mocksrv_set_verbosity(struct mocksrv *srv, int level);
/* Stop once n sessions have ended (0 = never). */
MOCKSRV_API void mocksrv_set_exit_after(struct mocksrv *srv, unsigned n);
/* Stop when no session has been open for timeout_ms (0 = never). */
MOCKSRV_API void mocksrv_set_idle_exit(struct mocksrv *srv, int64_t timeout_ms);

/* Binds every listener without starting a thread; the host then calls mocksrv_step. */
MOCKSRV_API int mocksrv_bind(struct mocksrv *srv, struct mocksrv_error *err);
/* A pollable descriptor, readable when mocksrv_step has work. Valid after bind. */
MOCKSRV_API int mocksrv_fd(struct mocksrv *srv);
/* Runs one loop iteration waiting at most timeout_ms (-1: until something happens).
 * Returns 0 while running, 1 once the server has stopped (after mocksrv_shutdown, --exit-after
 * or --idle-exit, with every session closed), or a negative code. */
MOCKSRV_API int mocksrv_step(struct mocksrv *srv, int timeout_ms);
/* Asks a graceful stop: listeners close, sessions get the protocol's shutdown reply.
 * Any thread. */
MOCKSRV_API void mocksrv_shutdown(struct mocksrv *srv);

/* Re-reads the scenario (the same file or string) and rebuilds the mailboxes and settings without
 * dropping listeners or sessions (SIGHUP in the CLI). New listeners in the scenario are not
 * opened. On error the previous state stays. In thread mode (mocksrv_start) the reload is done
 * asynchronously on the server's thread, any thread may call it, and errors are reported on
 * stderr and as a "reload" event; in stepped mode it is synchronous. */
MOCKSRV_API int mocksrv_reload(struct mocksrv *srv, struct mocksrv_error *err);

/* Makes a mocksrv_step that is blocked (or the next one) return soon, so the host can look at
 * its own state: e.g. flags set by its signal handlers. Async-signal-safe; any thread. */
MOCKSRV_API void mocksrv_interrupt(struct mocksrv *srv);

/* Binds, then runs the loop on a new thread; returns when every listener accepts. */
MOCKSRV_API int mocksrv_start(struct mocksrv *srv, struct mocksrv_error *err);
/* Graceful stop; waits for the loop to end (thread or stepped). Returns the number of unmet
 * expectations (>= 0) or a negative code. */
MOCKSRV_API int mocksrv_stop(struct mocksrv *srv);

/* Bound port of a listener by name, or a negative code. Any thread, after bind/start. */
MOCKSRV_API int mocksrv_port(struct mocksrv *srv, const char *listener);
/* The CA certificate file of the generated certificates, or NULL when there is none. */
MOCKSRV_API const char *mocksrv_ca_file(struct mocksrv *srv);
/* The seed in use (from --seed, the scenario, or drawn at random). */
MOCKSRV_API uint64_t mocksrv_seed(struct mocksrv *srv);
/* The ready line (JSON, no newline) describing every bound listener; caller frees. */
MOCKSRV_API char *mocksrv_ready_json(struct mocksrv *srv);

/* The final mailbox state (SPEC 2 --state-out) as a scenario document that loads back into the
 * same state: settings, users, mailboxes, messages with UIDs, flags and dates. Call it after
 * mocksrv_stop, or between steps in stepped mode.
 * mocksrv_write_state writes PATH (via a temporary file and a rename) and puts messages that
 * YAML cannot carry exactly into PATH.d/ as .eml files. mocksrv_state_yaml returns the document
 * (caller frees), or NULL with err filled when a message would need such a file. */
MOCKSRV_API int mocksrv_write_state(struct mocksrv *srv, const char *path,
                                    struct mocksrv_error *err);
MOCKSRV_API char *mocksrv_state_yaml(struct mocksrv *srv, struct mocksrv_error *err);

/* Number of messages accepted so far. Any thread. */
MOCKSRV_API size_t mocksrv_message_count(struct mocksrv *srv);
/* Blocks until at least n messages were accepted or timeout_ms passed (-1: forever).
 * Returns the count reached. Any thread other than the loop's. */
MOCKSRV_API size_t mocksrv_wait_messages(struct mocksrv *srv, size_t n, int timeout_ms);

/* A received message: a copy owned by the caller, freed with mocksrv_message_free. */
struct mocksrv_message {
    unsigned id;             /* 1-based, in acceptance order; also the spool file number */
    unsigned session;        /* session that sent it */
    const char *listener;    /* listener name */
    const char *helo;        /* EHLO/HELO/LHLO argument */
    const char *mail_from;   /* reverse path without < > ("" for the null sender) */
    const char *mail_params; /* MAIL FROM parameters as received (SIZE=, BODY=, RET=, ENVID= ...) */
    const char **rcpt_to;    /* forward paths without < > */
    const char **rcpt_params; /* RCPT TO parameters as received (NOTIFY=, ORCPT= ...) */
    size_t rcpt_count;
    const char *auth_user; /* NULL when not authenticated */
    int tls;               /* 1 when the session was encrypted */
    int64_t received_ms;   /* wall clock, milliseconds since the epoch */
    const char *data;      /* exact bytes after dot-unstuffing */
    size_t size;
    const char *spool_path; /* .eml path, or NULL without a spool */
};

/* Copy of message index (0-based), or NULL when out of range. Any thread. */
MOCKSRV_API struct mocksrv_message *mocksrv_message_get(struct mocksrv *srv, size_t index);
MOCKSRV_API void mocksrv_message_free(struct mocksrv_message *m);

/* Called on the server's thread for every event, with the JSON line (no newline). The JSON is
 * borrowed for the duration of the call. Set before start/bind. */
typedef void mocksrv_event_fn(void *arg, const char *event_name, const char *json);
MOCKSRV_API void mocksrv_on_event(struct mocksrv *srv, mocksrv_event_fn *fn, void *arg);

/* The library version string. Any thread. */
MOCKSRV_API const char *mocksrv_version(void);

#ifdef __cplusplus
}
#endif
#endif
