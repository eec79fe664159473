/*
 * store.c - accounts, mailboxes, messages and change logs (see store.h for the invariants).
 *
 * Plain arrays: mailboxes hold at most a few hundred thousand messages in a test, appends go to
 * the end (UIDs ascend), lookups by UID are binary searches, an expunge is one memmove.
 */
#include "store.h"

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "gen.h"
#include "scenario.h"

/* ---- blobs ---- */

struct ms_blob *
ms_blob_alloc(size_t n)
{
    ms_assert(n < SIZE_MAX - sizeof(struct ms_blob) - 1);
    struct ms_blob *b = ms_malloc(sizeof *b + n + 1);
    b->refs = 1;
    b->len = n;
    b->pool = NULL;
    b->data[n] = '\0';
    return b;
}

struct ms_blob *
ms_blob_create(const char *p, size_t n)
{
    struct ms_blob *b = ms_blob_alloc(n);
    if (n)
        memcpy(b->data, p, n);
    return b;
}

struct ms_blob *
ms_blob_from_buf(struct ms_buf *buf)
{
    struct ms_blob *b = ms_blob_create(buf->data, buf->len);
    ms_buf_fini(buf);
    return b;
}

/*
 * A pool: one anonymous mapping holding this header, then blobs packed back to back (8-byte
 * aligned). Loading 10,000 generated messages one malloc each costs a page fault per 4 KiB
 * page touched, which dominates the load; a pool asks for transparent huge pages (one fault
 * per 2 MiB where the kernel allows it, plain pages otherwise). The pool counts its blobs
 * plus one reference for the loader filling it; a blob freed early frees nothing until the
 * whole pool goes, which suits messages loaded from a scenario and replaced as a whole.
 */
struct ms_blob_pool {
    size_t refs;
    size_t size; /* of the mapping */
    size_t used; /* bytes handed out, this header included */
};

#define STORE_POOL_ALIGN 8
#define STORE_POOL_HUGE ((size_t)2 << 20)

static size_t
store_pool_round(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* A pool of at least size bytes, or NULL when the mapping fails (the caller then mallocs). */
static struct ms_blob_pool *
store_pool_create(size_t size)
{
    size = store_pool_round(size, STORE_POOL_HUGE);
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    /* advice only: refused (THP disabled) it changes nothing */
    (void)madvise(map, size, MADV_HUGEPAGE);
    struct ms_blob_pool *pool = map;
    pool->refs = 1;
    pool->size = size;
    pool->used = store_pool_round(sizeof *pool, STORE_POOL_ALIGN);
    return pool;
}

static void
store_pool_unref(struct ms_blob_pool **pp)
{
    struct ms_blob_pool *pool = *pp;
    *pp = NULL;
    if (!pool || --pool->refs > 0)
        return;
    if (munmap(pool, pool->size) != 0)
        ms_die("munmap of a message pool failed: %s", strerror(errno));
}

/* A blob of n bytes carved from pool, or NULL when it does not fit. */
static struct ms_blob *
store_pool_blob(struct ms_blob_pool *pool, size_t n)
{
    size_t need = store_pool_round(sizeof(struct ms_blob) + n + 1, STORE_POOL_ALIGN);
    if (n > pool->size || need > pool->size - pool->used)
        return NULL;
    struct ms_blob *b = (struct ms_blob *)((char *)pool + pool->used);
    pool->used += need;
    pool->refs++;
    b->refs = 1;
    b->len = n;
    b->pool = pool;
    b->data[n] = '\0';
    return b;
}

size_t
ms_blob_footprint(const struct ms_blob *b)
{
    if (b->pool)
        return store_pool_round(sizeof *b + b->len + 1, STORE_POOL_ALIGN);
    return malloc_usable_size((void *)b);
}

struct ms_blob *
ms_blob_ref(struct ms_blob *b)
{
    b->refs++;
    return b;
}

void
ms_blob_unref(struct ms_blob **bp)
{
    struct ms_blob *b = *bp;
    *bp = NULL;
    if (!b || --b->refs > 0)
        return;
    if (b->pool)
        store_pool_unref(&b->pool);
    else
        free(b);
}

/* ---- flags ---- */

static const struct {
    unsigned bit;
    const char *name;
} store_flags[] = {
    {MS_FLAG_SEEN, "\\Seen"},       {MS_FLAG_ANSWERED, "\\Answered"},
    {MS_FLAG_FLAGGED, "\\Flagged"}, {MS_FLAG_DELETED, "\\Deleted"},
    {MS_FLAG_DRAFT, "\\Draft"},     {MS_FLAG_RECENT, "\\Recent"},
};

unsigned
ms_flag_from_name(const char *name)
{
    for (size_t i = 0; i < MS_ARRAY_LEN(store_flags); i++)
        if (ms_strcaseeq(name, store_flags[i].name))
            return store_flags[i].bit;
    return 0;
}

const char *
ms_flag_name(unsigned flag)
{
    for (size_t i = 0; i < MS_ARRAY_LEN(store_flags); i++)
        if (store_flags[i].bit == flag)
            return store_flags[i].name;
    return NULL;
}

int
ms_message_has_keyword(const struct ms_message *m, const char *kw)
{
    for (size_t i = 0; i < m->n_keywords; i++)
        if (ms_strcaseeq(m->keywords[i], kw))
            return 1;
    return 0;
}

static void
store_message_free(struct ms_message *m)
{
    ms_blob_unref(&m->blob);
    for (size_t i = 0; i < m->n_keywords; i++)
        free(m->keywords[i]);
    free(m->keywords);
    free(m);
}

/* ---- change log ---- */

static uint64_t
store_log(struct ms_mailbox *mb, enum ms_change_kind kind, uint32_t uid)
{
    ms_grow((void **)&mb->log, &mb->cap_log, mb->n_log + 1, sizeof *mb->log);
    struct ms_change *c = &mb->log[mb->n_log++];
    c->seq = ++mb->seq;
    c->kind = kind;
    c->uid = uid;
    return c->seq;
}

const struct ms_change *
ms_store_changes(const struct ms_mailbox *mb, uint64_t since, size_t *n_r)
{
    /* Sequences are dense and start at 1: entry i has seq i + 1. */
    if (since >= mb->seq) {
        *n_r = 0;
        return NULL;
    }
    *n_r = (size_t)(mb->seq - since);
    return &mb->log[since];
}

/* ---- store, accounts, mailboxes ---- */

struct ms_store *
ms_store_create(uint32_t default_uidvalidity)
{
    struct ms_store *st = ms_calloc(1, sizeof *st);
    st->default_uidvalidity = default_uidvalidity ? default_uidvalidity : 1;
    return st;
}

static void
store_mailbox_free(struct ms_mailbox *mb)
{
    for (size_t i = 0; i < mb->n_msgs; i++)
        store_message_free(mb->msgs[i]);
    free(mb->msgs);
    free(mb->log);
    free(mb->name);
    free(mb->special_use);
    free(mb);
}

void
ms_store_destroy(struct ms_store **stp)
{
    struct ms_store *st = *stp;
    *stp = NULL;
    if (!st)
        return;
    for (size_t i = 0; i < st->n_accounts; i++) {
        struct ms_account *acc = st->accounts[i];
        for (size_t k = 0; k < acc->n_mailboxes; k++)
            store_mailbox_free(acc->mailboxes[k]);
        free(acc->mailboxes);
        free(acc->name);
        free(acc);
    }
    free(st->accounts);
    free(st);
}

static int
store_is_inbox(const char *name)
{
    return ms_strcaseeq(name, "INBOX");
}

struct ms_mailbox *
ms_store_mailbox(struct ms_account *acc, const char *name)
{
    int inbox = store_is_inbox(name);
    for (size_t i = 0; i < acc->n_mailboxes; i++) {
        struct ms_mailbox *mb = acc->mailboxes[i];
        if (inbox ? store_is_inbox(mb->name) : strcmp(mb->name, name) == 0)
            return mb;
    }
    return NULL;
}

struct ms_mailbox *
ms_store_mailbox_create(struct ms_store *st, struct ms_account *acc, const char *name,
                        uint32_t uidvalidity)
{
    if (ms_store_mailbox(acc, name))
        return NULL;
    struct ms_mailbox *mb = ms_calloc(1, sizeof *mb);
    mb->account = acc;
    mb->name = ms_strdup(store_is_inbox(name) ? "INBOX" : name);
    mb->uidvalidity = uidvalidity ? uidvalidity : st->default_uidvalidity;
    mb->uidnext = 1;
    mb->subscribed = 1;
    ms_grow((void **)&acc->mailboxes, &acc->cap_mailboxes, acc->n_mailboxes + 1,
            sizeof *acc->mailboxes);
    acc->mailboxes[acc->n_mailboxes++] = mb;
    return mb;
}

struct ms_account *
ms_store_account(struct ms_store *st, const char *name, int create)
{
    for (size_t i = 0; i < st->n_accounts; i++)
        if (strcmp(st->accounts[i]->name, name) == 0)
            return st->accounts[i];
    if (!create)
        return NULL;
    struct ms_account *acc = ms_calloc(1, sizeof *acc);
    acc->name = ms_strdup(name);
    ms_grow((void **)&st->accounts, &st->cap_accounts, st->n_accounts + 1, sizeof *st->accounts);
    st->accounts[st->n_accounts++] = acc;
    ms_store_mailbox_create(st, acc, "INBOX", 0);
    return acc;
}

/* ---- messages ---- */

static void
store_set_keywords(struct ms_message *m, const char *const *keywords, size_t n)
{
    for (size_t i = 0; i < m->n_keywords; i++)
        free(m->keywords[i]);
    free(m->keywords);
    m->keywords = NULL;
    m->n_keywords = 0;
    if (n == 0)
        return;
    m->keywords = ms_calloc(n, sizeof *m->keywords);
    for (size_t i = 0; i < n; i++) {
        /* keywords are a set: drop repeats (case-insensitive) */
        if (ms_message_has_keyword(m, keywords[i]))
            continue;
        m->keywords[m->n_keywords++] = ms_strdup(keywords[i]);
    }
}

struct ms_message *
ms_store_append(struct ms_mailbox *mb, struct ms_blob *blob, unsigned flags,
                const char *const *keywords, size_t n_keywords, int64_t internaldate, uint32_t uid)
{
    if (uid == 0)
        uid = mb->uidnext;
    if (uid < mb->uidnext || uid == UINT32_MAX) {
        ms_blob_unref(&blob);
        return NULL;
    }
    struct ms_message *m = ms_calloc(1, sizeof *m);
    m->blob = blob;
    m->uid = uid;
    m->flags = flags;
    m->internaldate = internaldate;
    store_set_keywords(m, keywords, n_keywords);
    ms_grow((void **)&mb->msgs, &mb->cap_msgs, mb->n_msgs + 1, sizeof *mb->msgs);
    mb->msgs[mb->n_msgs++] = m;
    mb->uidnext = uid + 1;
    m->modseq = store_log(mb, MS_CHANGE_EXISTS, uid);
    return m;
}

ssize_t
ms_store_find_uid(const struct ms_mailbox *mb, uint32_t uid)
{
    size_t lo = 0, hi = mb->n_msgs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t u = mb->msgs[mid]->uid;
        if (u == uid)
            return (ssize_t)mid;
        if (u < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int
ms_store_expunge_uid(struct ms_mailbox *mb, uint32_t uid)
{
    ssize_t i = ms_store_find_uid(mb, uid);
    if (i < 0)
        return MOCKSRV_ENOTFOUND;
    store_message_free(mb->msgs[i]);
    memmove(&mb->msgs[i], &mb->msgs[i + 1], (mb->n_msgs - (size_t)i - 1) * sizeof *mb->msgs);
    mb->n_msgs--;
    store_log(mb, MS_CHANGE_EXPUNGE, uid);
    return MOCKSRV_OK;
}

void
ms_store_set_flags(struct ms_mailbox *mb, struct ms_message *m, unsigned flags,
                   const char *const *keywords, size_t n_keywords)
{
    int same = m->flags == flags && m->n_keywords == n_keywords;
    for (size_t i = 0; same && i < n_keywords; i++)
        same = ms_message_has_keyword(m, keywords[i]);
    if (same)
        return;
    /* copy first: keywords may point into m->keywords */
    char **copy = ms_calloc(n_keywords ? n_keywords : 1, sizeof *copy);
    for (size_t i = 0; i < n_keywords; i++)
        copy[i] = ms_strdup(keywords[i]);
    store_set_keywords(m, (const char *const *)copy, n_keywords);
    for (size_t i = 0; i < n_keywords; i++)
        free(copy[i]);
    free(copy);
    m->flags = flags;
    m->modseq = store_log(mb, MS_CHANGE_FLAGS, m->uid);
}

uint64_t
ms_store_mailbox_size(const struct ms_mailbox *mb)
{
    uint64_t total = 0;
    for (size_t i = 0; i < mb->n_msgs; i++)
        total += mb->msgs[i]->blob->len;
    return total;
}

/* ---- building from a scenario ---- */

/* A generated batch below these sizes is malloc'ed message by message: a pool maps huge pages,
 * so a small one would cost more memory than it saves. */
#define STORE_POOL_MIN_COUNT 64
#define STORE_POOL_MIN_BYTES ((size_t)4 << 20)
#define STORE_POOL_MAX_BYTES ((size_t)256 << 20)

static int
store_add_conf(struct ms_mailbox *mb, const struct ms_scenario *sc,
               const struct ms_message_conf *mc, uint64_t gen_seed, struct mocksrv_error *err)
{
    const char *const *kw = (const char *const *)mc->keywords;
    if (mc->source != MS_MSG_GENERATE) {
        struct ms_blob *b = ms_blob_create(mc->bytes, mc->len);
        if (!ms_store_append(mb, b, mc->flags, kw, mc->n_keywords, mc->date, mc->uid))
            goto bad_uid;
        return MOCKSRV_OK;
    }
    /* Each message is generated into one scratch buffer, reused, and stored at its exact size
     * (allocated once, no doubling). A large batch goes to pools (see ms_blob_pool). */
    struct ms_buf out = {0};
    ms_buf_reserve(&out, mc->gen_size + mc->gen_size / 8 + 1024);
    size_t per_msg = MS_MAX(mc->gen_size, (size_t)MS_GEN_MIN_SIZE) + sizeof(struct ms_blob) + 64;
    int pooled =
        mc->gen_count >= STORE_POOL_MIN_COUNT && mc->gen_count * per_msg >= STORE_POOL_MIN_BYTES;
    struct ms_blob_pool *pool = NULL;
    int uid_refused = 0;
    for (size_t i = 0; i < mc->gen_count; i++) {
        int64_t date = 0;
        ms_buf_clear(&out);
        ms_gen_message(gen_seed, i, mc->gen_size, &date, &out);
        struct ms_blob *b = pool ? store_pool_blob(pool, out.len) : NULL;
        if (!b && pooled) {
            /* sized for the rest of the batch (the generator stays within 10% of the size
             * asked; a pool that ends up short is followed by another), at most 256 MiB */
            size_t left = mc->gen_count - i;
            size_t want = MS_MIN(left * per_msg + left * per_msg / 8, STORE_POOL_MAX_BYTES);
            store_pool_unref(&pool);
            pool = store_pool_create(MS_MAX(want, out.len + 4096));
            b = pool ? store_pool_blob(pool, out.len) : NULL;
        }
        if (b)
            memcpy(b->data, out.data, out.len);
        else
            b = ms_blob_create(out.data, out.len);
        uint32_t uid = mc->uid ? mc->uid + (uint32_t)i : 0;
        if (!ms_store_append(mb, b, mc->flags, kw, mc->n_keywords, mc->date ? mc->date : date,
                             uid)) {
            uid_refused = 1;
            break;
        }
    }
    store_pool_unref(&pool);
    ms_buf_fini(&out);
    if (uid_refused)
        goto bad_uid;
    return MOCKSRV_OK;
bad_uid:
    if (err) {
        err->line = mc->pos.line;
        err->column = mc->pos.column;
        snprintf(err->file, sizeof err->file, "%s", sc->path);
    }
    return ms_error_set(err, MOCKSRV_ESCENARIO,
                        "%s:%d:%d: mailbox %s: uid %u is not above the UIDs already used", sc->path,
                        mc->pos.line, mc->pos.column, mb->name, mc->uid);
}

int
ms_store_load_scenario(const struct ms_scenario *sc, uint64_t seed, struct ms_store **store_r,
                       struct mocksrv_error *err)
{
    /* A fixed default UIDVALIDITY derived from the seed keeps runs reproducible. */
    uint32_t uv = (uint32_t)(ms_splitmix64(seed) % 2000000000u) + 1;
    struct ms_store *st = ms_store_create(uv);
    for (size_t u = 0; u < sc->n_users; u++) {
        const struct ms_user *user = &sc->users[u];
        struct ms_account *acc = ms_store_account(st, user->name, 1);
        for (size_t k = 0; k < user->n_mailboxes; k++) {
            const struct ms_mailbox_conf *mc = &user->mailboxes[k];
            struct ms_mailbox *mb = ms_store_mailbox(acc, mc->name);
            if (!mb)
                mb = ms_store_mailbox_create(st, acc, mc->name, mc->uidvalidity);
            else if (mc->uidvalidity)
                mb->uidvalidity = mc->uidvalidity;
            free(mb->special_use);
            mb->special_use = mc->special_use ? ms_strdup(mc->special_use) : NULL;
            mb->subscribed = mc->subscribed;
            for (size_t i = 0; i < mc->n_messages; i++) {
                uint64_t gen_seed = ms_splitmix64(
                    seed ^ ms_splitmix64(((uint64_t)u << 40) ^ ((uint64_t)k << 20) ^ i));
                int rc = store_add_conf(mb, sc, &mc->messages[i], gen_seed, err);
                if (rc != MOCKSRV_OK) {
                    ms_store_destroy(&st);
                    return rc;
                }
            }
            if (mc->uidnext > mb->uidnext)
                mb->uidnext = mc->uidnext; /* as a --state-out document records it */
        }
    }
    *store_r = st;
    return MOCKSRV_OK;
}
