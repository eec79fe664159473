/*
 * server.h - the server object: listeners, sessions, lifecycle, received messages, events.
 *
 * One server = one loop = one thread. Sessions are coroutines spawned on accept; each runs its
 * listener's protocol engine (smtp.c, later pop3.c, imap.c, script.c) to the end, then the
 * server closes the connection and reports session.close. A graceful stop closes listeners and
 * wakes every session, whose blocked read then returns MOCKSRV_ECANCELED: the engine sends its
 * protocol's shutdown reply and ends.
 *
 * The only state shared with other threads is the received-message list (mutex + condition
 * variable) and the request eventfd (shutdown).
 */
#ifndef MS_SERVER_H
#define MS_SERVER_H

#include <pthread.h>

#include "conn.h"
#include "events.h"
#include "fault.h"
#include "runtime.h"
#include "scenario.h"
#include "store.h"

struct ms_server;
struct ms_expect_session;

struct ms_listener {
    struct ms_server *srv;
    char *name;
    enum ms_proto protocol;
    enum ms_tls_mode tls;
    char *host;    /* as configured or overridden */
    int port;      /* asked for (0 = ephemeral), then the bound port */
    size_t window; /* SO_RCVBUF before listen(), 0: default */
    int fd;
    struct ms_io *watch;
    unsigned sessions; /* accepted on this listener */
    /* accept failed for want of descriptors or memory: the clients wait in the backlog, which
     * no new edge of the listener announces; a timer retries (sooner when a session ends) */
    uint64_t retry_timer;    /* 0: not armed */
    int64_t failure_log_ms;  /* when the last failure was logged (ms_now), 0: never */
    unsigned failures_quiet; /* failures since, not logged */
};

/* Why a session ended (session.close "reason"). */
enum ms_close_reason {
    MS_CLOSE_QUIT,
    MS_CLOSE_PEER,
    MS_CLOSE_TIMEOUT,
    MS_CLOSE_FAULT,
    MS_CLOSE_ERROR,
    MS_CLOSE_SHUTDOWN,
    MS_CLOSE_LIMIT,
};

struct ms_session {
    struct ms_server *srv;
    struct ms_listener *listener;
    unsigned id; /* 1-based, in accept order across the server */
    struct ms_conn conn;
    struct ms_coro *co;
    char peer[64];
    enum ms_close_reason close_reason;
    int closing; /* the server is stopping: end at the next read */
    unsigned bad_commands;
    int tls;          /* the connection is encrypted */
    char *tls_client; /* subject of the client certificate, or NULL */
    /* the scenario this session started with (ms_fault_session_start): its rules, settings,
     * users and script, for the whole session; a reload does not change a dialogue in progress.
     * A replaced scenario stays alive while a session points to it (server.c) */
    struct ms_scenario *faults_sc;
    /* faults: the session's counters, what waits for its reply */
    struct ms_fault_sess *fault;
    struct ms_fault_actions pending;
    int fault_closed; /* a close action ended the connection: the engine stops */
    char *auth_user;  /* authenticated user name, or NULL */
    /* expectations: this session's state for the entries of the scenario it started with
     * (expect.c); NULL when the scenario has none */
    struct ms_expect_session *expect;
    struct ms_session *prev, *next;
};

/* A received message, as kept by the server (immutable once added). */
struct ms_msg {
    unsigned id;
    unsigned session;
    char *listener;
    char *helo;
    char *mail_from;
    char *mail_params;
    char **rcpt_to;
    char **rcpt_params;
    size_t rcpt_count;
    char *auth_user;
    int tls;
    char *tls_client; /* client certificate subject, or NULL */
    int64_t received_ms;
    struct ms_blob *blob; /* the exact bytes, shared with the recipients' INBOXes */
    char *spool_path;
};

struct ms_listen_override {
    char *name;
    char *host; /* NULL: keep */
    int port;
};

struct ms_server {
    /* configuration, fixed once bound (the scenario and store are replaced by a reload) */
    struct ms_scenario *sc;
    struct ms_store *store; /* built from sc at bind and at each reload */
    char *scenario_path;    /* file the scenario came from, for reloads (NULL: not a file) */
    char *scenario_text;    /* or the string it came from */
    size_t scenario_len;
    char *scenario_name;
    /* scenarios replaced by a reload that open sessions still use (their faults_sc): each is
     * destroyed when the last session that uses it ends. A replaced store is destroyed at once:
     * no session keeps a pointer into the store across a wait (POP3 holds blob references and
     * looks its account up by name in srv->store at each use) */
    struct ms_scenario **retired_sc;
    size_t n_retired_sc;
    int ephemeral;
    char *bind_host;
    uint64_t seed;
    int seed_set;
    char *spool_dir;
    char *cert_file; /* --cert / mocksrv_set_cert: override tls.cert */
    char *key_file;
    char *ca_out; /* --ca-out: where the generated CA goes */
    unsigned exit_after;
    int64_t idle_exit_ms;
    struct ms_listen_override *overrides;
    size_t n_overrides;

    /* runtime, loop thread only */
    struct ms_loop *loop;
    struct ms_events events;
    struct ms_tls_ctx *tls_ctx; /* when a listener uses TLS */
    struct ms_listener *listeners;
    size_t n_listeners;
    struct ms_session *sessions; /* open sessions, newest first */
    unsigned n_open;
    unsigned n_accepted;
    unsigned n_ended;
    int64_t last_activity; /* ms_now() when the last session ended (for idle exit) */
    uint64_t idle_timer;
    int bound;
    int stopping;
    int stopped;
    int request_fd; /* eventfd: requests from other threads */
    struct ms_io *request_watch;
    char *ready_json;
    unsigned expect_failures; /* expect.fail events so far (exit status 3, mocksrv_stop) */

    /* received messages: shared with other threads under lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct ms_msg **msgs;
    size_t n_msgs;
    size_t cap_msgs;
    unsigned next_msg_id; /* loop thread only */

    /* thread mode */
    pthread_t thread;
    int thread_running;
    volatile int shutdown_requested;
    volatile int reload_requested;
};

/* Fills srv->sc with the default scenario if none was loaded. */
int ms_server_ensure_scenario(struct ms_server *srv, struct mocksrv_error *err);
int ms_server_bind(struct ms_server *srv, struct mocksrv_error *err);
void ms_server_begin_shutdown(struct ms_server *srv);
void ms_server_unbind(struct ms_server *srv);
/* Re-reads the scenario (file or string) and rebuilds the store; listeners and sessions stay.
 * The old store is destroyed at once; open sessions go on with the scenario they started with,
 * which is destroyed when the last of them ends. On error the previous state is kept. Loop
 * thread only. */
int ms_server_reload(struct ms_server *srv, struct mocksrv_error *err);
/* Frees the scenario, the store and the replaced scenarios (after the loop is destroyed). */
void ms_server_free_model(struct ms_server *srv);

/* Records an accepted message: spool files written and renamed, list updated, event emitted.
 * Takes ownership of m. Returns MOCKSRV_OK or MOCKSRV_EIO (spool write failed: m is freed). */
int ms_server_add_message(struct ms_server *srv, struct ms_msg *m, struct mocksrv_error *err);
void ms_msg_free(struct ms_msg *m);

/* Session helpers for the engines. */
json_t *ms_session_event(struct ms_session *s, const char *name);
void ms_session_emit(struct ms_session *s, json_t *event);
/* Emits a "command" event for a received line (payload shown as received). */
void ms_session_command_event(struct ms_session *s, const char *line, size_t len);
/* Read deadline for the next command: now + limits.idle_timeout. */
int64_t ms_session_deadline(struct ms_session *s);

/* Reports an unmet expectation: an "expect.fail" event (fields "expectation" and "seen"), a line
 * on stderr (even with -q) and one more srv->expect_failures. s may be NULL (run-wide checks at
 * stop). expectation names it ("expect[0].sequence", "script[3]"); seen says what happened. */
void ms_server_expect_fail(struct ms_server *srv, struct ms_session *s, const char *expectation,
                           const char *seen);

/* Writes a reply (one or more CRLF lines) and emits its "reply" event with at most event_lines
 * lines (0 = all; the rest counted as more_bytes: a RETR body is not copied into events). */
void ms_session_reply(struct ms_session *s, const char *p, size_t n, size_t event_lines);
/* The same without the pending fault actions. */
void ms_session_reply_raw(struct ms_session *s, const char *p, size_t n, size_t event_lines);
/* Starts TLS on the session's connection (implicit TLS at accept, or after the protocol's
 * STARTTLS go-ahead was queued): tls.start, then tls.done or tls.fail events. Returns
 * MOCKSRV_OK, or an error after which the session must end (close_reason is set). */
int ms_session_starttls(struct ms_session *s);
/* The same with the tls: fault of a STARTTLS/STLS command (cmd from ms_session_tls_take, or
 * NULL). Both run the at: tls rules once per handshake (FAULTS.md 1). A handshake a fault
 * breaks (close, alert, garbage, stall, at: tls close) emits tls.fail "fault: ...", stalls
 * as told and closes the connection: the result is then MOCKSRV_ETLS with s->fault_closed set
 * and close_reason fault. A delay alone gives a late but normal handshake. */
int ms_session_starttls_fault(struct ms_session *s, const struct ms_fault_actions *cmd);
/* For STARTTLS/STLS, before the engine answers: the tls: action of the pending fault actions
 * (MS_FTLS_NONE: none), moved into *tls_r. With close, alert, garbage and stall the pending
 * close goes along (it ends the broken handshake, not the go-ahead). The engine answers
 * refuse with its "TLS not available" reply, plaintext with the go-ahead and no handshake,
 * the others with the go-ahead and ms_session_starttls_fault(s, tls_r). */
enum ms_fault_tls ms_session_tls_take(struct ms_session *s, struct ms_fault_actions *tls_r);
/* 1 when the listener offers STARTTLS/STLS now (starttls or required, not yet encrypted). */
int ms_session_can_starttls(const struct ms_session *s);
/* 1 when the listener requires TLS and the session is not encrypted yet. */
int ms_session_needs_tls(const struct ms_session *s);

/* An "auth" event; mech 0 means USER/PASS or LOGIN-style plain credentials. */
void ms_session_auth_event(struct ms_session *s, const char *user, unsigned mech, int ok);

enum ms_sasl_outcome {
    MS_SASL_SUCCESS,   /* *user_r is the authenticated user */
    MS_SASL_FAILURE,   /* wrong credentials */
    MS_SASL_CANCELED,  /* the client sent "*" */
    MS_SASL_MALFORMED, /* bad base64 or a malformed message */
    MS_SASL_TOO_LONG,  /* a continuation line over line_limit */
    MS_SASL_TRANSPORT, /* the connection ended or timed out: *rc_r says how */
};

/* Runs a SASL exchange for mech (MS_AUTH_*) after the protocol's own checks: challenges are sent
 * as PREFIX + base64 (SMTP "334 ", POP3 and IMAP "+ "), continuation lines read with line_limit
 * and reported as command events, the credentials checked against the scenario's users. The
 * engine sends the final reply. */
enum ms_sasl_outcome ms_session_sasl(struct ms_session *s, unsigned mech, const char *initial,
                                     const char *prefix, size_t line_limit,
                                     const struct ms_user **user_r, int *rc_r);

/* ---- faults (fault.c, session.c) ---- */

void ms_fault_run_init(struct ms_scenario *sc);
/* The loader parses every rule of FAULTS.md; this refuses, with the rule's position, what the
 * engine cannot carry out yet (shaping at: tls, at: data for IMAP) and what means nothing at its
 * event (hide at data or waiting), so nothing is silently ignored. */
int ms_faults_check_supported(const struct ms_scenario *sc, struct mocksrv_error *err);
void ms_fault_session_start(struct ms_session *s);
void ms_fault_session_end(struct ms_session *s);
/* 1 when a session is on one of the listeners named (none: any) and speaks one of the protocols
 * (bits 1 << enum ms_proto; 0: any): the `when` of a fault rule or an expectation. */
int ms_session_selected(const struct ms_session *s, char *const *listeners, size_t n_listeners,
                        unsigned protocols);
/* The actions that fire at this event (verb upper-case or NULL; args the rest of the line;
 * received: payload bytes so far at `data`). Emits a "fault" event per firing rule. Returns
 * the number of rules that fired. */
int ms_fault_at(struct ms_session *s, enum ms_fault_at at, const char *verb, const char *args,
                uint64_t received, struct ms_fault_actions *out);
/* 1 when some rule of the session listens at this event (saves work on hot paths). */
int ms_fault_has_at(const struct ms_session *s, enum ms_fault_at at);
/* A new payload (at data: a DATA body, a BDAT chunk, an AUTH exchange) or silence period (at
 * waiting) starts: threshold rules (received / for) of that event may match again. */
void ms_fault_period_start(struct ms_session *s, enum ms_fault_at at);
/* The smallest `for` (ms) of the session's waiting rules that is greater than after_ms, or -1. */
int64_t ms_fault_next_for(const struct ms_session *s, int64_t after_ms);
/* Reload (FAULTS.md 5): each rule of `to` whose name and definition (source) equal a rule of
 * `from` takes over that rule's run counters; the others start from zero. Both run states must
 * be allocated (ms_fault_run_init); does nothing when `from` never ran. */
void ms_fault_run_keep(struct ms_scenario *to, const struct ms_scenario *from);
/* 1 when the actions replace the normal reply (reply, raw, or a bare close). */
int ms_fault_replaces(const struct ms_fault_actions *fa);
/* Sends the replacement output of fa (reply lines formatted for the protocol, or raw), with
 * inject/append/delay/close around it. */
void ms_session_fault_output(struct ms_session *s, const struct ms_fault_actions *fa,
                             const char *tag);
/* At accept/end: delay, send, close. Returns 1 when the connection was closed. */
int ms_session_fault_event(struct ms_session *s, enum ms_fault_at at);
/* The same at `data` (verb: the command the payload belongs to; received: bytes so far). */
int ms_session_fault_event_at(struct ms_session *s, enum ms_fault_at at, const char *verb,
                              uint64_t received);
/* At an event that has no reply of its own (accept, data, waiting, end): carries out what fires
 * (stall, shaping, delay, then as unsolicited output inject + the reply lines or raw bytes +
 * send + append, cut by close.after_bytes, then close). received: payload bytes at data, the
 * silence in ms at waiting. *replaced_r (may be NULL) is set to 1 when a reply or raw fired:
 * at data that is an early answer to the payload's command. Returns 1 when the connection was
 * closed (s->fault_closed). */
int ms_session_fault_unsolicited(struct ms_session *s, enum ms_fault_at at, const char *verb,
                                 uint64_t received, int *replaced_r);
/* Reads the next command line like ms_conn_read_line with the idle deadline; while waiting,
 * carries out the session's `at: waiting` rules each time the client's silence reaches their
 * `for` (verb: the last command received, NULL before any). Returns ms_conn_read_line's codes;
 * MOCKSRV_ECLOSED with s->fault_closed set when a rule closed the connection. */
int ms_session_read_command(struct ms_session *s, size_t limit, const char *verb,
                            struct ms_line *line_r);
/* At a greeting or command: when the rules replace the reply, sends the replacement and returns
 * 1 (the engine must not run the command); otherwise keeps the actions for the engine's reply
 * (ms_session_reply applies them) and returns 0. Check s->fault_closed afterwards. */
int ms_session_fault_command(struct ms_session *s, enum ms_fault_at at, const char *verb,
                             const char *args, uint64_t received);
/* 1 when keyword (an EHLO/CAPA line's first word) is hidden by the pending actions. */
int ms_session_hidden(const struct ms_session *s, const char *keyword, size_t len);

/* Protocol engines: run in the session's coroutine; return when the session is over. */
void ms_smtp_session(struct ms_session *s);
void ms_pop3_session(struct ms_session *s);
/* protocol: script (SPEC 3.4): the listener's steps, from the scenario the session started with
 * (s->faults_sc). */
void ms_script_session(struct ms_session *s);

#endif
