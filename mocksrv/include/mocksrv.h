/*
 * mocksrv.h - the public API of mocksrv, a mock SMTP, LMTP and POP3 server for tests (IMAP is
 * not served yet).
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
 *   - No function exits or aborts on bad input: a NULL server, string or output where one is
 *     needed gives MOCKSRV_EINVAL (or NULL / 0 where the function returns no code). Out of
 *     memory aborts the process.
 *   - Lifecycle: a server is "at rest" when new, and again after mocksrv_stop (or, stepped,
 *     once mocksrv_step returned 1). Loads and settings are accepted only at rest; while it is
 *     bound or mocksrv_start's thread runs they return MOCKSRV_ESTATE and change nothing.
 *     mocksrv_bind / mocksrv_start after a stop bind again (a restart, see mocksrv_start).
 *   - Threads: unless marked "any thread", a function must be called from one thread at a time,
 *     the host's (normally the one that created the server); while mocksrv_start's thread runs,
 *     those that would race with it return MOCKSRV_ESTATE. "Any thread" functions may be called
 *     from any thread, also while the server's thread runs, but not concurrently with
 *     mocksrv_bind, mocksrv_start, mocksrv_stop or mocksrv_free, nor after mocksrv_free.
 *   - Strings returned as `const char *` are owned by the server and valid until mocksrv_free()
 *     unless said otherwise; `char *` results are the caller's to free().
 *   - The library prints nothing unless asked: see mocksrv_set_verbosity.
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
 * scenario is loaded first), at rest, silent. Never returns NULL. */
MOCKSRV_API struct mocksrv *mocksrv_new(void);

/* Stops the server if it runs (as mocksrv_stop), frees it and everything it returned as const.
 * NULL is allowed. Not from an event callback. */
MOCKSRV_API void mocksrv_free(struct mocksrv *srv);

/* Loads a scenario from a YAML file or string, replacing the previous one. At rest only
 * (MOCKSRV_ESTATE otherwise); after a stop the next bind builds the mailboxes and certificates
 * from the new scenario (the received messages stay). name is used in error positions (may be
 * NULL: "<string>"). On error the previous scenario is kept, MOCKSRV_ESCENARIO returned and err
 * filled; a listener with protocol: imap is such an error (IMAP is not served by this version),
 * at the listener's position. */
MOCKSRV_API int mocksrv_load_file(struct mocksrv *srv, const char *path, struct mocksrv_error *err);
MOCKSRV_API int mocksrv_load_string(struct mocksrv *srv, const char *yaml, size_t len,
                                    const char *name, struct mocksrv_error *err);

/* Settings. Each is accepted at rest only: it returns MOCKSRV_OK, or MOCKSRV_ESTATE while the
 * server is bound or its thread runs (nothing changes then), MOCKSRV_EINVAL for a NULL server
 * or a bad value. Settings made after a stop apply from the next bind. */

/* on != 0: every listener of the scenario on an ephemeral port (port 0), whatever the scenario
 * says; ports given with mocksrv_listen still apply. */
MOCKSRV_API int mocksrv_set_ephemeral(struct mocksrv *srv, int on);
/* Default listen address (default "127.0.0.1"). */
MOCKSRV_API int mocksrv_set_bind_host(struct mocksrv *srv, const char *host);
/* Overrides one listener's address like --listen "NAME=[HOST:]PORT". NAME is a listener of the
 * scenario (load it first; the default scenario when none is loaded) or one of the standard
 * smtp smtps submission lmtp pop3 pop3s to add it. An unknown NAME is MOCKSRV_EINVAL, imap and
 * imaps MOCKSRV_EUNSUPPORTED (IMAP is not served by this version), at this call. */
MOCKSRV_API int mocksrv_listen(struct mocksrv *srv, const char *spec, struct mocksrv_error *err);
/* The seed of every random draw, instead of the scenario's or a random one: 0 to 2^63-1
 * (MOCKSRV_EINVAL above; a scenario's seed and a drawn one stay in that range too). */
MOCKSRV_API int mocksrv_set_seed(struct mocksrv *srv, uint64_t seed);
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

/* What the library writes on stderr. By default nothing at all: a library is silent unless its
 * host asks. The CLI sets MOCKSRV_VERBOSITY_NORMAL (-q: ERRORS, -v: TRANSCRIPT). */
enum mocksrv_verbosity {
    MOCKSRV_VERBOSITY_SILENT = -1, /* nothing (the default) */
    MOCKSRV_VERBOSITY_ERRORS = 0,  /* errors: a failed reload or spool write, unmet expectations */
    MOCKSRV_VERBOSITY_NORMAL = 1,  /* and notes: "reloaded the scenario", idle exit */
    MOCKSRV_VERBOSITY_TRANSCRIPT = 2, /* and every session's transcript */
};
/* level is a MOCKSRV_VERBOSITY_* value; others are MOCKSRV_EINVAL. */
MOCKSRV_API int mocksrv_set_verbosity(struct mocksrv *srv, int level);
/* Stop once n sessions of the run have ended (0 = never). */
MOCKSRV_API int mocksrv_set_exit_after(struct mocksrv *srv, unsigned n);
/* Stop when no session has been open for timeout_ms (0 = never; negative: MOCKSRV_EINVAL). */
MOCKSRV_API int mocksrv_set_idle_exit(struct mocksrv *srv, int64_t timeout_ms);

/* Binds every listener without starting a thread; the host then calls mocksrv_step. At rest
 * only: MOCKSRV_ESTATE while bound or while the thread runs. After a stop it binds again, like
 * mocksrv_start. */
MOCKSRV_API int mocksrv_bind(struct mocksrv *srv, struct mocksrv_error *err);
/* A pollable descriptor, readable when mocksrv_step has work. Valid from bind until the next
 * bind (a restart makes a new one); MOCKSRV_ESTATE before the first bind and while the thread
 * runs. */
MOCKSRV_API int mocksrv_fd(struct mocksrv *srv);
/* Runs one loop iteration waiting at most timeout_ms (-1: until something happens).
 * Returns 0 while running, 1 once the server has stopped (after mocksrv_shutdown, --exit-after
 * or --idle-exit, with every session closed), or a negative code: MOCKSRV_ESTATE when not
 * bound, or while mocksrv_start's thread runs (that thread steps the loop). */
MOCKSRV_API int mocksrv_step(struct mocksrv *srv, int timeout_ms);
/* Asks a graceful stop: listeners close, sessions get the protocol's shutdown reply; the loop
 * stops once every session has ended. mocksrv_wait_messages calls return at once. Any thread
 * (not in a signal handler: use mocksrv_interrupt there). */
MOCKSRV_API void mocksrv_shutdown(struct mocksrv *srv);

/* Re-reads the scenario (the same file or string) and rebuilds the mailboxes and settings without
 * dropping listeners or sessions (SIGHUP in the CLI). New listeners in the scenario are not
 * opened. On error the previous state stays. In thread mode (mocksrv_start) the reload is done
 * asynchronously on the server's thread, any thread may call it (MOCKSRV_ESTATE once a
 * shutdown was asked), and errors are reported as a "reload" event (and on stderr at
 * MOCKSRV_VERBOSITY_ERRORS and up); in stepped mode, and after a stop, it is synchronous.
 * MOCKSRV_ESTATE before the first bind. */
MOCKSRV_API int mocksrv_reload(struct mocksrv *srv, struct mocksrv_error *err);

/* Makes a mocksrv_step that is blocked (or the next one) return soon, so the host can look at
 * its own state: e.g. flags set by its signal handlers. Async-signal-safe; any thread; does
 * nothing before the first bind. */
MOCKSRV_API void mocksrv_interrupt(struct mocksrv *srv);

/* Binds, then runs the loop on a new thread; returns when every listener accepts. At rest only:
 * MOCKSRV_ESTATE while bound or while the thread runs.
 * Restart: after mocksrv_stop, mocksrv_start (or mocksrv_bind) binds every listener again and
 * serves. The run goes on where the previous one ended: the scenario, the mailboxes, the
 * received messages (mocksrv_message_count, ids, spool numbers), session numbers, fault counters
 * and the generated certificates are kept (unless a load or a certificate setting came in
 * between). Ephemeral ports may differ from the previous run; mocksrv_fd changes. */
MOCKSRV_API int mocksrv_start(struct mocksrv *srv, struct mocksrv_error *err);
/* Graceful stop; waits for the loop to end (thread or stepped) and leaves the server at rest.
 * Returns the number of unmet expectations of the run (>= 0): those of its sessions, and the
 * counted ones (messages:, sessions:) checked over everything since the server was created; or
 * a negative code (MOCKSRV_ESTATE when never bound, or when called from an event callback on
 * the server's thread). Calling it again returns the same count. */
MOCKSRV_API int mocksrv_stop(struct mocksrv *srv);

/* Bound port of a listener by name, MOCKSRV_ENOTFOUND, or MOCKSRV_EINVAL for NULL. The ports of
 * the last bind stay readable after a stop. Any thread. */
MOCKSRV_API int mocksrv_port(struct mocksrv *srv, const char *listener);
/* The CA certificate file of the generated certificates, or NULL when there is none (yet).
 * Valid until mocksrv_free, or until a load, mocksrv_set_cert or mocksrv_set_ca_out after a
 * stop (the next bind makes new certificates). Any thread. */
MOCKSRV_API const char *mocksrv_ca_file(struct mocksrv *srv);
/* The seed in use (from mocksrv_set_seed, the scenario, or drawn at random at bind). While the
 * thread runs: the seed of this run's bind (a reload that changes it shows after the stop).
 * Any thread. */
MOCKSRV_API uint64_t mocksrv_seed(struct mocksrv *srv);
/* The ready line (JSON, no newline) describing every bound listener; caller frees. NULL for a
 * NULL server. Any thread. */
MOCKSRV_API char *mocksrv_ready_json(struct mocksrv *srv);

/* The final mailbox state (SPEC 2 --state-out) as a scenario document that loads back into the
 * same state: settings, users, mailboxes, messages with UIDs, flags and dates. Call it after
 * mocksrv_stop, or between steps in stepped mode; MOCKSRV_ESTATE (NULL from
 * mocksrv_state_yaml, err filled) while mocksrv_start's thread runs.
 * mocksrv_write_state writes PATH (via a temporary file and a rename) and puts messages that
 * YAML cannot carry exactly into PATH.d/ as .eml files. mocksrv_state_yaml returns the document
 * (caller frees), or NULL with err filled when a message would need such a file. */
MOCKSRV_API int mocksrv_write_state(struct mocksrv *srv, const char *path,
                                    struct mocksrv_error *err);
MOCKSRV_API char *mocksrv_state_yaml(struct mocksrv *srv, struct mocksrv_error *err);

/* Number of messages accepted so far (over every run: a restart keeps them). Any thread. */
MOCKSRV_API size_t mocksrv_message_count(struct mocksrv *srv);
/* Blocks until at least n messages were accepted, timeout_ms passed (-1: no limit), or the
 * server cannot accept more: it returns at once when the server is not serving (before
 * bind/start, after mocksrv_shutdown or mocksrv_stop, once the loop stopped by itself), and a
 * blocked wait returns when that happens. Returns the count reached (0 for a NULL server).
 * Any thread other than the loop's (not from an event callback or between steps of the
 * thread that steps the server: nothing could arrive). */
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
/* NULL is allowed. Any thread. */
MOCKSRV_API void mocksrv_message_free(struct mocksrv_message *m);

/* Called on the server's thread for every event, with the JSON line (no newline). The JSON is
 * borrowed for the duration of the call. A setting: at rest only (MOCKSRV_ESTATE otherwise);
 * fn NULL removes the callback. From the callback, only "any thread" functions may be called
 * (not mocksrv_stop, mocksrv_free or mocksrv_wait_messages). */
typedef void mocksrv_event_fn(void *arg, const char *event_name, const char *json);
MOCKSRV_API int mocksrv_on_event(struct mocksrv *srv, mocksrv_event_fn *fn, void *arg);

/* The library version string. Any thread. */
MOCKSRV_API const char *mocksrv_version(void);

#ifdef __cplusplus
}
#endif
#endif
