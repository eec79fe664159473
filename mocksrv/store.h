/*
 * store.h - the mailbox store shared by every protocol and session: accounts, mailboxes,
 * messages, flags, UIDs, and a per-mailbox change log.
 *
 * What it is not: it knows no protocol syntax (no IMAP flag spelling beyond the names of the
 * system flags, no POP3 numbering) and no scenario format: ms_store_load_scenario builds a
 * store from the loaded model, and scenario_state.c writes one back as a scenario.
 *
 * Invariants:
 *   - Message bytes are immutable and reference-counted (struct ms_blob): a session that holds a
 *     reference keeps the bytes valid after an expunge or a reload; nothing copies them.
 *   - Within a mailbox, messages are ordered by strictly ascending UID; uidnext is greater than
 *     every UID ever assigned in it (RFC 3501 2.3.1.1), so UIDs are never reused.
 *   - Every change (a message added, expunged, or its flags changed) appends one record to the
 *     mailbox's change log with an increasing sequence number, so a session that remembers the
 *     last sequence it saw can learn what others did since.
 *   - INBOX is matched case-insensitively; other names exactly. "/" separates the hierarchy.
 */
#ifndef MS_STORE_H
#define MS_STORE_H

#include <stdint.h>
#include <stddef.h>

#include "base.h"

/* ---- immutable message bytes ---- */

/*
 * Message bytes cost their size: a blob is one allocation of its header and bytes with no
 * growth slack, since a mailbox of 100,000 messages holds that many for its lifetime. A large
 * generated batch is carved from pools (struct ms_blob_pool, store.c): one mapping of huge
 * pages for many blobs, unmapped when its last blob goes.
 */
struct ms_blob_pool;
struct ms_blob {
    unsigned refs;
    size_t len;
    struct ms_blob_pool *pool; /* NULL: allocated alone */
    char data[];               /* len bytes, then a NUL not counted in len */
};

/* A new blob holding a copy of p[0..n) with one reference. */
struct ms_blob *ms_blob_create(const char *p, size_t n);
/* A new blob of n bytes with one reference, to be filled by the caller before anyone else sees
 * it; data[n] is already NUL. */
struct ms_blob *ms_blob_alloc(size_t n);
/* A new blob with the bytes of buf (copied once, at their exact size); buf is left empty and
 * its memory freed, so a receive buffer grown by doubling is not kept at twice the size. */
struct ms_blob *ms_blob_from_buf(struct ms_buf *buf);
/* Bytes of memory the blob occupies, header included (for a blob allocated alone, what the
 * allocator reserved for it: malloc_usable_size). */
size_t ms_blob_footprint(const struct ms_blob *b);
struct ms_blob *ms_blob_ref(struct ms_blob *b);
void ms_blob_unref(struct ms_blob **b);

/* ---- messages ---- */

/* System flags (RFC 3501 2.3.2) as bits. */
enum {
    MS_FLAG_SEEN = 1u << 0,
    MS_FLAG_ANSWERED = 1u << 1,
    MS_FLAG_FLAGGED = 1u << 2,
    MS_FLAG_DELETED = 1u << 3,
    MS_FLAG_DRAFT = 1u << 4,
    MS_FLAG_RECENT = 1u << 5,
};

/* "\Seen" -> MS_FLAG_SEEN (case-insensitive), 0 when not a system flag. */
unsigned ms_flag_from_name(const char *name);
/* MS_FLAG_SEEN -> "\Seen". */
const char *ms_flag_name(unsigned flag);

struct ms_message {
    struct ms_blob *blob; /* one reference held */
    uint32_t uid;
    unsigned flags;  /* MS_FLAG_* */
    char **keywords; /* other flags, as given ("$Label1", "NonJunk") */
    size_t n_keywords;
    int64_t internaldate; /* seconds since the epoch, UTC */
    uint64_t modseq;      /* change-log sequence of the last change to this message */
};

/* 1 when the message has the keyword (case-insensitive, RFC 3501 flags are). */
int ms_message_has_keyword(const struct ms_message *m, const char *kw);

/* ---- mailboxes ---- */

enum ms_change_kind { MS_CHANGE_EXISTS, MS_CHANGE_EXPUNGE, MS_CHANGE_FLAGS };

struct ms_change {
    uint64_t seq;
    enum ms_change_kind kind;
    uint32_t uid;
};

struct ms_account;

struct ms_mailbox {
    struct ms_account *account;
    char *name;
    uint32_t uidvalidity;
    uint32_t uidnext;
    char *special_use; /* "\Sent" ..., or NULL */
    int subscribed;

    struct ms_message **msgs; /* ascending UID */
    size_t n_msgs;
    size_t cap_msgs;

    struct ms_change *log;
    size_t n_log;
    size_t cap_log;
    uint64_t seq; /* last sequence number used (0: nothing happened yet) */
};

struct ms_account {
    char *name;
    struct ms_mailbox **mailboxes; /* in creation order; INBOX always exists */
    size_t n_mailboxes;
    size_t cap_mailboxes;
    int pop3_locked; /* a POP3 session holds the maildrop (RFC 1939 section 8) */
};

struct ms_store {
    struct ms_account **accounts;
    size_t n_accounts;
    size_t cap_accounts;
    uint32_t default_uidvalidity; /* for mailboxes created without one */
};

struct ms_store *ms_store_create(uint32_t default_uidvalidity);
void ms_store_destroy(struct ms_store **store);

/* The account by name (exact), created with an empty INBOX when create is set. */
struct ms_account *ms_store_account(struct ms_store *store, const char *name, int create);

/* A mailbox by name (INBOX case-insensitive), or NULL. */
struct ms_mailbox *ms_store_mailbox(struct ms_account *acc, const char *name);
/* Creates a mailbox; uidvalidity 0 takes the store's default. Returns NULL if it exists. */
struct ms_mailbox *ms_store_mailbox_create(struct ms_store *store, struct ms_account *acc,
                                           const char *name, uint32_t uidvalidity);

/* Appends a message; takes over one reference of blob (also on failure). uid 0 assigns
 * uidnext; an explicit uid must be >= uidnext (else NULL: MOCKSRV_EINVAL). keywords are copied.
 * Logs MS_CHANGE_EXISTS. */
struct ms_message *ms_store_append(struct ms_mailbox *mb, struct ms_blob *blob, unsigned flags,
                                   const char *const *keywords, size_t n_keywords,
                                   int64_t internaldate, uint32_t uid);
/* Index of the message with this UID, or -1. */
ssize_t ms_store_find_uid(const struct ms_mailbox *mb, uint32_t uid);
/* Removes the message with this UID (logs MS_CHANGE_EXPUNGE). Returns 0, or MOCKSRV_ENOTFOUND. */
int ms_store_expunge_uid(struct ms_mailbox *mb, uint32_t uid);
/* Replaces a message's flags and keywords (logs MS_CHANGE_FLAGS when anything changed). */
void ms_store_set_flags(struct ms_mailbox *mb, struct ms_message *m, unsigned flags,
                        const char *const *keywords, size_t n_keywords);
/* Changes since sequence `since`: returns a pointer into the log and the count (borrowed until
 * the next change to this mailbox). */
const struct ms_change *ms_store_changes(const struct ms_mailbox *mb, uint64_t since, size_t *n_r);

/* Total size in bytes of the mailbox's messages. */
uint64_t ms_store_mailbox_size(const struct ms_mailbox *mb);

struct ms_scenario;

/* Builds a store from a scenario: an account with an INBOX for every user, the mailboxes and
 * messages it declares (generate entries expanded from seed). Returns MOCKSRV_OK or
 * MOCKSRV_ESCENARIO with err filled (e.g. an explicit UID below one already used). */
int ms_store_load_scenario(const struct ms_scenario *sc, uint64_t seed, struct ms_store **store_r,
                           struct mocksrv_error *err);

#endif
