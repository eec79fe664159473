/*
 * scenario_mail.c - users:, their mailboxes and messages: the tables of users, mailboxes and
 * messages, a message's raw, file and generate forms, flags and dates, and the checks on what
 * they add up to (limits.message_size, the count of messages, the memory estimate against
 * RLIMIT_AS and the cgroup).
 *
 * Not here: building the store (store.c copies the bytes read here). A message's `file:` is read
 * at load time, so that a bad one is an error with its position; for an embedded scenario it
 * names ms_embedded_files.
 *
 * Invariants:
 *   - ms_message_conf.bytes has its length (a raw string may hold a "\0"). A bare LF of a raw
 *     message, or of a file without any CR, becomes CRLF unless exact: is set.
 *   - User names and addresses are unique case-insensitively (ms_scenario_find_user finds a
 *     user that way). Given UIDs rise within a mailbox and stay at most SCENARIO_UID_MAX; uidnext
 *     is above the last.
 *   - The size checks run after the whole walk (scenario_check_top), since limits: may come
 *     after users: in the file.
 */
#include "scenario_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

#define SCENARIO_MAX_GENERATE 1000000u  /* generate.count */
#define SCENARIO_MIN_GENERATE_SIZE 64u  /* generate.size: room for a header and a body */
#define SCENARIO_MAX_MESSAGES 10000000u /* messages of all users and mailboxes together */
/* What the store holds besides a message's bytes: struct ms_message, the blob, malloc. */
#define SCENARIO_MESSAGE_OVERHEAD 256u
#define SCENARIO_MEMORY_ANY (64 * SCENARIO_MIB) /* mailboxes this small pass without a look */
#define SCENARIO_UID_MAX (UINT32_MAX - 1) /* RFC 3501 2.3.1.1: UIDs are 32-bit, uidnext above */

/* ---- mailboxes and messages ---- */

static const struct scenario_name scenario_special_uses[] = {
    /* RFC 6154 2 */
    {"\\All", 0},  {"\\Archive", 1}, {"\\Drafts", 2}, {"\\Flagged", 3},
    {"\\Junk", 4}, {"\\Sent", 5},    {"\\Trash", 6},
};

static void
scenario_message_fini(struct ms_message_conf *mc)
{
    free(mc->bytes);
    free(mc->file);
    scenario_strings_free(&mc->keywords, &mc->n_keywords);
}

void
scenario_mailbox_fini(struct ms_mailbox_conf *mb)
{
    for (size_t i = 0; i < mb->n_messages; i++)
        scenario_message_fini(&mb->messages[i]);
    free(mb->messages);
    free(mb->name);
    free(mb->special_use);
}

/* Collapses "." and ".." of a relative path in place; -1 when ".." climbs above its start. */
static int
scenario_normalize(char *path)
{
    char *copy = ms_strdup(path);
    char *out = path, *p = copy;
    int rc = 0;
    for (;;) {
        char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.')) {
            /* "//" and "/./" */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (out == path) {
                rc = -1;
                break;
            }
            out--; /* the '/' after the last component */
            while (out > path && out[-1] != '/')
                out--;
        } else {
            memcpy(out, p, n);
            out += n;
            *out++ = '/';
        }
        if (!end)
            break;
        p = end + 1;
    }
    if (out > path)
        out--; /* the last '/' */
    *out = '\0';
    free(copy);
    return rc;
}

/* Reads a whole regular file of at most max bytes; returns 0 or an errno value. */
static int
scenario_read_file(const char *path, size_t max, struct ms_buf *out)
{
    struct stat st;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return errno;
    if (fstat(fd, &st) != 0) {
        rc = errno;
    } else if (S_ISDIR(st.st_mode)) {
        rc = EISDIR;
    } else if (!S_ISREG(st.st_mode)) {
        rc = EINVAL; /* a FIFO or a device would block or never end */
    } else if ((uint64_t)st.st_size > max) {
        rc = EFBIG;
    }
    while (rc == 0) {
        ms_buf_reserve(out, 64 * 1024);
        ssize_t n = read(fd, out->data + out->len, out->cap - out->len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = errno;
        else if (n == 0)
            break;
        else if ((out->len += (size_t)n) > max)
            rc = EFBIG; /* it grew while we read */
        out->data[out->len] = '\0';
    }
    close(fd);
    return rc;
}

const struct ms_embedded_file *
ms_embedded_find(const char *name)
{
    for (size_t i = 0; name && i < ms_embedded_files_count; i++)
        if (strcmp(ms_embedded_files[i].name, name) == 0)
            return &ms_embedded_files[i];
    return NULL;
}

static int
scenario_parse_msg_file(struct scenario_ctx *ctx, const struct scenario_node *key,
                        const struct scenario_node *val, const char *path, void *base)
{
    struct ms_message_conf *mc = base;
    char text[SCENARIO_TEXT_MAX * 4 + 16];
    struct ms_buf data = {0};
    int rc;
    if ((rc = scenario_get_string(ctx, val, path, SC_NONEMPTY, &mc->file)) != MOCKSRV_OK)
        return rc;
    mc->source = MS_MSG_FILE;
    mc->src_pos = val->pos;
    scenario_describe(text, sizeof text, val);
    if (ctx->embedded_dir) {
        char *name = ms_asprintf("%s/%s", ctx->embedded_dir, mc->file);
        const struct ms_embedded_file *f = NULL;
        if (mc->file[0] != '/' && scenario_normalize(name) == 0)
            f = ms_embedded_find(name);
        free(name);
        if (!f)
            return scenario_fail(ctx, val->pos, path,
                                 "cannot read %s: not among the embedded files (add it to "
                                 "EMBED_INPUTS in CMakeLists.txt)",
                                 text);
        mc->bytes = ms_strndup((const char *)f->data, f->len);
        mc->len = f->len;
        return MOCKSRV_OK;
    }
    char *full = scenario_resolve(ctx->base_dir, mc->file);
    /* The largest limits.message_size: a larger file is refused whatever the limits say. */
    int e = scenario_read_file(full, SCENARIO_GIB, &data);
    if (e != 0) {
        char buf[128], where[SCENARIO_PATH_MAX + 8] = "";
        const char *reason = e == EFBIG    ? "larger than 1GiB"
                             : e == EINVAL ? "not a regular file"
                                           : strerror_r(e, buf, sizeof buf);
        if (strcmp(full, mc->file) != 0 && snprintf(where, sizeof where, " (%s)", full) < 0)
            where[0] = '\0';
        free(full);
        ms_buf_fini(&data);
        return scenario_fail(ctx, val->pos, path, "cannot read %s%s: %s", text, where, reason);
    }
    free(full);
    mc->bytes = ms_buf_steal(&data, &mc->len);
    return MOCKSRV_OK;
}

static int
scenario_parse_msg_raw(struct scenario_ctx *ctx, const struct scenario_node *key,
                       const struct scenario_node *val, const char *path, void *base)
{
    struct ms_message_conf *mc = base;
    /* Any string, even "" or one with a "\0" escape: the bytes have their length. */
    if (val->kind != SCENARIO_SCALAR || scenario_is_null(val))
        return scenario_fail_type(ctx, val, path, "a string (a literal block: raw: |)");
    mc->source = MS_MSG_RAW;
    mc->src_pos = val->pos;
    mc->bytes = ms_strndup(val->text, val->len);
    mc->len = val->len;
    return MOCKSRV_OK;
}

struct scenario_generate {
    unsigned count; /* 0 until given */
    size_t size;
};

static int
scenario_check_generate(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                        void *base)
{
    const struct scenario_generate *g = base;
    if (g->count == 0)
        return scenario_fail(ctx, map->pos, path, "missing count (1 .. %u)", SCENARIO_MAX_GENERATE);
    return MOCKSRV_OK;
}

static const struct scenario_field scenario_generate_fields[] = {
    F_NUM("count", SK_UINT, struct scenario_generate, count, 1, SCENARIO_MAX_GENERATE),
    /* At most limits.message_size, checked in scenario_check_top; 1GiB is its largest value. */
    F_NUM("size", SK_SIZE, struct scenario_generate, size, SCENARIO_MIN_GENERATE_SIZE,
          SCENARIO_GIB),
};
static const struct scenario_table scenario_generate_table =
    TABLE(scenario_generate_fields, scenario_check_generate);

static int
scenario_parse_msg_generate(struct scenario_ctx *ctx, const struct scenario_node *key,
                            const struct scenario_node *val, const char *path, void *base)
{
    struct ms_message_conf *mc = base;
    struct scenario_generate g = {.count = 0, .size = 4 * SCENARIO_KIB};
    int rc = scenario_walk(ctx, val, path, &scenario_generate_table, &g);
    if (rc != MOCKSRV_OK)
        return rc;
    const struct scenario_node *size = scenario_map_value(val, "size");
    mc->source = MS_MSG_GENERATE;
    mc->gen_count = g.count;
    mc->gen_size = g.size;
    mc->src_pos = size ? size->pos : val->pos;
    mc->gen_pos = key->pos;
    return MOCKSRV_OK;
}

/* System flags by name (RFC 3501 2.3.2), anything else a keyword (an atom). */
static int
scenario_parse_msg_flags(struct scenario_ctx *ctx, const struct scenario_node *key,
                         const struct scenario_node *val, const char *path, void *base)
{
    struct ms_message_conf *mc = base;
    char ipath[SCENARIO_PATH_MAX], got[SCENARIO_TEXT_MAX * 4 + 16];
    if (val->kind != SCENARIO_SEQ)
        return scenario_fail_type(ctx, val, path, "a list, like ['\\Seen', '$Label1']");
    mc->keywords = ms_calloc(val->n_kids, sizeof *mc->keywords);
    for (size_t i = 0; i < val->n_kids; i++) {
        const struct scenario_node *n = val->kids[i];
        scenario_path_index(ipath, path, i);
        if (n->kind != SCENARIO_SCALAR || scenario_is_null(n) || n->len == 0 ||
            strlen(n->text) != n->len)
            return scenario_fail_type(ctx, n, ipath, "a flag");
        scenario_describe(got, sizeof got, n);
        if (n->text[0] == '\\') {
            unsigned bit = ms_flag_from_name(n->text);
            if (bit == MS_FLAG_RECENT)
                return scenario_fail(ctx, n->pos, ipath,
                                     "\\Recent is set by the server, not by a scenario");
            if (bit == 0)
                return scenario_fail(ctx, n->pos, ipath,
                                     "unknown system flag %s (one of \\Seen, \\Answered, "
                                     "\\Flagged, \\Deleted, \\Draft; keywords have no \\)",
                                     got);
            mc->flags |= bit;
            continue;
        }
        /* RFC 3501 9: flag-keyword = atom */
        if (!scenario_text_ok(n->text, n->len, SC_ATOM))
            return scenario_fail(ctx, n->pos, ipath,
                                 "bad keyword %s (an IMAP atom: no blanks, control or 8-bit "
                                 "characters, or any of ( ) { %% * \" \\ ])",
                                 got);
        int dup = 0;
        for (size_t j = 0; j < mc->n_keywords && !dup; j++)
            dup = ms_strcaseeq(mc->keywords[j], n->text);
        if (!dup) /* keywords are a set, case-insensitively */
            mc->keywords[mc->n_keywords++] = ms_strndup(n->text, n->len);
    }
    return MOCKSRV_OK;
}

static int
scenario_parse_msg_date(struct scenario_ctx *ctx, const struct scenario_node *key,
                        const struct scenario_node *val, const char *path, void *base)
{
    struct ms_message_conf *mc = base;
    char got[SCENARIO_TEXT_MAX * 4 + 16];
    if (val->kind != SCENARIO_SCALAR || scenario_is_null(val))
        return scenario_fail_type(ctx, val, path, "a date (2024-05-01T09:00:00Z)");
    if (strlen(val->text) != val->len || ms_parse_date(val->text, &mc->date) != MOCKSRV_OK) {
        scenario_describe(got, sizeof got, val);
        return scenario_fail(ctx, val->pos, path,
                             "bad date %s (use 2024-05-01T09:00:00Z, 2024-05-01T11:00:00+02:00 "
                             "or 2024-05-01)",
                             got);
    }
    return MOCKSRV_OK;
}

/* "a\nb" -> "a\r\nb": every LF without a CR before it gets one. */
static void
scenario_crlf(struct ms_message_conf *mc)
{
    struct ms_buf out = {0};
    ms_buf_reserve(&out, mc->len + mc->len / 32);
    for (size_t i = 0; i < mc->len; i++) {
        if (mc->bytes[i] == '\n' && (i == 0 || mc->bytes[i - 1] != '\r'))
            ms_buf_putc(&out, '\r');
        ms_buf_putc(&out, mc->bytes[i]);
    }
    free(mc->bytes);
    mc->bytes = ms_buf_steal(&out, &mc->len);
}

static int
scenario_check_message(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                       void *base)
{
    struct ms_message_conf *mc = base;
    if (mc->exact && mc->source == MS_MSG_GENERATE) {
        char kpath[SCENARIO_PATH_MAX];
        const struct scenario_node *key = scenario_map_get(map, "exact");
        scenario_path_key(kpath, path, key);
        return scenario_fail(ctx, key->pos, kpath, "applies to file and raw, not generate");
    }
    if (mc->exact || mc->source == MS_MSG_GENERATE)
        return MOCKSRV_OK;
    /* A file with a CR anywhere is taken as it is: it knows its line ends. */
    if (mc->source == MS_MSG_RAW || !memchr(mc->bytes, '\r', mc->len))
        scenario_crlf(mc);
    return MOCKSRV_OK;
}

static const struct scenario_field scenario_message_fields[] = {
    F_CUSTOM("file", scenario_parse_msg_file),
    F_CUSTOM("raw", scenario_parse_msg_raw),
    F_CUSTOM("generate", scenario_parse_msg_generate),
    F_CUSTOM("flags", scenario_parse_msg_flags),
    F_CUSTOM("date", scenario_parse_msg_date),
    F_NUM("uid", SK_U32, struct ms_message_conf, uid, 1, SCENARIO_UID_MAX),
    F_BOOL("exact", struct ms_message_conf, exact),
};
static const struct scenario_table scenario_message_table =
    TABLE(scenario_message_fields, scenario_check_message);

/* The UID of the last message of a mailbox after all its entries (0: none). Only for
 * mailboxes whose UIDs were checked by scenario_parse_messages. */
static uint32_t
scenario_last_uid(const struct ms_mailbox_conf *mb)
{
    uint64_t last = 0;
    for (size_t i = 0; i < mb->n_messages; i++) {
        const struct ms_message_conf *mc = &mb->messages[i];
        uint64_t n = mc->source == MS_MSG_GENERATE ? mc->gen_count : 1;
        last = (mc->uid ? mc->uid - 1 : last) + n;
    }
    return (uint32_t)last;
}

static int
scenario_parse_messages(struct scenario_ctx *ctx, const struct scenario_node *key,
                        const struct scenario_node *val, const char *path, void *base)
{
    static const char *const sources[] = {"file", "raw", "generate"};
    struct ms_mailbox_conf *mb = base;
    char ipath[SCENARIO_PATH_MAX], kpath[SCENARIO_PATH_MAX];
    uint64_t last = 0; /* the UID of the previous message, as the store will assign it */
    int rc;
    if (scenario_is_null(val))
        return MOCKSRV_OK; /* "messages:" with nothing after it: none */
    if (val->kind != SCENARIO_SEQ)
        return scenario_fail_type(ctx, val, path, "a list of messages");
    mb->messages = ms_calloc(val->n_kids, sizeof *mb->messages);
    for (size_t i = 0; i < val->n_kids; i++) {
        const struct scenario_node *item = val->kids[i];
        const struct scenario_node *src = NULL;
        scenario_path_index(ipath, path, i);
        if (item->kind != SCENARIO_MAP)
            return scenario_fail_type(ctx, item, ipath,
                                      "a message (a mapping with file, raw "
                                      "or generate)");
        if ((rc = scenario_check_dups(ctx, item, ipath)) != MOCKSRV_OK)
            return rc;
        /* Exactly one source, checked before any file is read. */
        for (size_t k = 0; k + 1 < item->n_kids; k += 2) {
            for (size_t s = 0; s < MS_ARRAY_LEN(sources); s++) {
                const struct scenario_node *kn = item->kids[k];
                if (kn->len != strlen(sources[s]) || strcmp(kn->text, sources[s]) != 0)
                    continue;
                if (src) {
                    scenario_path_key(kpath, ipath, kn);
                    return scenario_fail(ctx, kn->pos, kpath,
                                         "a message has one of file, raw or generate "
                                         "(%s at %d:%d)",
                                         src->text, src->pos.line, src->pos.column);
                }
                src = kn;
            }
        }
        if (!src)
            return scenario_fail(ctx, item->pos, ipath,
                                 "a message needs one of file, raw or generate");
        struct ms_message_conf *mc = &mb->messages[mb->n_messages++];
        mc->pos = item->pos;
        if ((rc = scenario_walk(ctx, item, ipath, &scenario_message_table, mc)) != MOCKSRV_OK)
            return rc;
        /* RFC 3501 2.3.1.1: UIDs ascend; the store assigns last + 1 to a message without. */
        uint64_t n = mc->source == MS_MSG_GENERATE ? mc->gen_count : 1;
        const struct scenario_node *uid = scenario_map_value(item, "uid");
        if (mc->uid && mc->uid <= last) {
            scenario_path_key(kpath, ipath, scenario_map_get(item, "uid"));
            return scenario_fail(ctx, uid->pos, kpath,
                                 "uid %u is not above the previous message's %llu (UIDs "
                                 "ascend in file order)",
                                 mc->uid, (unsigned long long)last);
        }
        last = (mc->uid ? mc->uid - 1 : last) + n;
        if (last > SCENARIO_UID_MAX)
            return scenario_fail(ctx, uid ? uid->pos : item->pos, ipath,
                                 "UIDs run out: the last would be %llu (at most %u)",
                                 (unsigned long long)last, SCENARIO_UID_MAX);
    }
    return MOCKSRV_OK;
}

static int
scenario_parse_special_use(struct scenario_ctx *ctx, const struct scenario_node *key,
                           const struct scenario_node *val, const char *path, void *base)
{
    struct ms_mailbox_conf *mb = base;
    const struct scenario_field f = {.names = scenario_special_uses,
                                     .n_names = MS_ARRAY_LEN(scenario_special_uses),
                                     .what = "special-use attribute"};
    unsigned v;
    int rc = scenario_get_name(ctx, val, path, &f, &v);
    if (rc != MOCKSRV_OK)
        return rc;
    free(mb->special_use);
    mb->special_use = ms_strdup(scenario_special_uses[v].name);
    return MOCKSRV_OK;
}

static int
scenario_check_mailbox(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                       void *base)
{
    struct ms_mailbox_conf *mb = base;
    char kpath[SCENARIO_PATH_MAX];
    uint32_t last = scenario_last_uid(mb);
    if (mb->uidnext == 0 || mb->uidnext > last)
        return MOCKSRV_OK;
    const struct scenario_node *key = scenario_map_get(map, "uidnext");
    scenario_path_key(kpath, path, key);
    return scenario_fail(ctx, scenario_map_value(map, "uidnext")->pos, kpath,
                         "%u is not above the last message's UID %u", mb->uidnext, last);
}

static const struct scenario_field scenario_mailbox_fields[] = {
    F_NUM("uidvalidity", SK_U32, struct ms_mailbox_conf, uidvalidity, 1, UINT32_MAX),
    F_NUM("uidnext", SK_U32, struct ms_mailbox_conf, uidnext, 1, UINT32_MAX),
    F_CUSTOM("special_use", scenario_parse_special_use),
    F_BOOL("subscribed", struct ms_mailbox_conf, subscribed),
    F_CUSTOM("messages", scenario_parse_messages),
};
static const struct scenario_table scenario_mailbox_table =
    TABLE(scenario_mailbox_fields, scenario_check_mailbox);

/* RFC 3501 5.1: "/" is our hierarchy separator, so no empty level; * and % are LIST
 * wildcards, which a name cannot contain. */
static const char *
scenario_mailbox_name_problem(const struct scenario_node *name)
{
    const char *s = name->text;
    if (name->len == 0)
        return "empty";
    if (strlen(s) != name->len)
        return "a NUL character";
    for (size_t i = 0; i < name->len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return "a control character";
        if (c == '*' || c == '%')
            return "a wildcard (* or %)";
    }
    if (s[0] == '/' || s[name->len - 1] == '/')
        return "a leading or trailing /";
    if (strstr(s, "//"))
        return "an empty level (//)";
    return NULL;
}

static int
scenario_parse_mailboxes(struct scenario_ctx *ctx, const struct scenario_node *key,
                         const struct scenario_node *val, const char *path, void *base)
{
    struct ms_user *u = base;
    char mpath[SCENARIO_PATH_MAX];
    const struct scenario_node *inbox = NULL;
    int rc;
    if (scenario_is_null(val))
        return MOCKSRV_OK; /* nothing: just an INBOX (scenario_check_user) */
    if (val->kind != SCENARIO_MAP)
        return scenario_fail_type(ctx, val, path, "a mapping of mailboxes");
    if ((rc = scenario_check_dups(ctx, val, path)) != MOCKSRV_OK)
        return rc;
    /* One more for the INBOX that scenario_check_user may add. */
    u->mailboxes = ms_calloc(val->n_kids / 2 + 1, sizeof *u->mailboxes);
    for (size_t i = 0; i + 1 < val->n_kids; i += 2) {
        const struct scenario_node *name = val->kids[i];
        const char *problem = scenario_mailbox_name_problem(name);
        scenario_path_key(mpath, path, name);
        if (problem)
            return scenario_fail(ctx, name->pos, mpath, "bad mailbox name: %s", problem);
        int is_inbox = ms_strcaseeq(name->text, "INBOX");
        if (is_inbox && inbox)
            /* RFC 3501 5.1: INBOX is case-insensitive, so "inbox" and "INBOX" are one */
            return scenario_fail(ctx, name->pos, mpath, "INBOX is already at %d:%d",
                                 inbox->pos.line, inbox->pos.column);
        if (is_inbox)
            inbox = name;
        struct ms_mailbox_conf *mb = &u->mailboxes[u->n_mailboxes++];
        mb->name = is_inbox ? ms_strdup("INBOX") : ms_strndup(name->text, name->len);
        mb->subscribed = 1;
        mb->pos = name->pos;
        if ((rc = scenario_walk(ctx, val->kids[i + 1], mpath, &scenario_mailbox_table, mb)))
            return rc;
    }
    return MOCKSRV_OK;
}

/* Every user has an INBOX (RFC 3501 5.1): one not listed comes first, at the user's name. */
static int
scenario_check_user(struct scenario_ctx *ctx, const struct scenario_node *map, const char *path,
                    void *base)
{
    struct ms_user *u = base;
    for (size_t i = 0; i < u->n_mailboxes; i++)
        if (strcmp(u->mailboxes[i].name, "INBOX") == 0)
            return MOCKSRV_OK;
    if (!u->mailboxes)
        u->mailboxes = ms_calloc(1, sizeof *u->mailboxes);
    memmove(&u->mailboxes[1], &u->mailboxes[0], u->n_mailboxes * sizeof *u->mailboxes);
    memset(&u->mailboxes[0], 0, sizeof *u->mailboxes);
    u->mailboxes[0].name = ms_strdup("INBOX");
    u->mailboxes[0].subscribed = 1;
    u->mailboxes[0].pos = u->pos;
    u->n_mailboxes++;
    return MOCKSRV_OK;
}

/* limits.message_size may come after users: in the file, so it is checked at the end. */
int
scenario_check_sizes(struct scenario_ctx *ctx, const struct ms_scenario *sc)
{
    char path[SCENARIO_PATH_MAX * 2], got[32], lim[32];
    size_t max = sc->limits.message_size;
    for (size_t u = 0; u < sc->n_users; u++) {
        const struct ms_user *user = &sc->users[u];
        for (size_t k = 0; k < user->n_mailboxes; k++) {
            const struct ms_mailbox_conf *mb = &user->mailboxes[k];
            for (size_t i = 0; i < mb->n_messages; i++) {
                const struct ms_message_conf *mc = &mb->messages[i];
                size_t n = mc->source == MS_MSG_GENERATE ? mc->gen_size : mc->len;
                if (n <= max)
                    continue;
                const char *what = mc->source == MS_MSG_FILE  ? "file"
                                   : mc->source == MS_MSG_RAW ? "raw"
                                                              : "generate.size";
                if (snprintf(path, sizeof path, "users.%s.mailboxes.%s.messages[%zu].%s",
                             user->name, mb->name, i, what) < 0)
                    path[0] = '\0';
                scenario_format_size(lim, sizeof lim, max);
                if (mc->source == MS_MSG_GENERATE) {
                    scenario_format_size(got, sizeof got, n);
                    return scenario_fail(ctx, mc->src_pos, path,
                                         "%s is above limits.message_size (%s)", got, lim);
                }
                return scenario_fail(ctx, mc->src_pos, path,
                                     "the message has %zu bytes, above limits.message_size (%s)", n,
                                     lim);
            }
        }
    }
    return MOCKSRV_OK;
}

/* The memory.max of our cgroup (v2), or 0 when none is set or it cannot be read. */
static uint64_t
scenario_cgroup_max(void)
{
    char line[4096], path[4200], value[64];
    uint64_t max = 0;
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3) != 0)
            continue;
        line[strcspn(line, "\n")] = '\0';
        /* the namespace's root when the path is not visible (a container) */
        const char *rel = strcmp(line + 3, "/") == 0 ? "" : line + 3;
        for (int i = 0; i < 2 && max == 0; i++) {
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", i == 0 ? rel : "");
            FILE *m = fopen(path, "re");
            if (!m)
                continue;
            if (fgets(value, sizeof value, m) && isdigit((unsigned char)value[0]))
                max = strtoull(value, NULL, 10);
            fclose(m);
        }
        break;
    }
    fclose(f);
    return max;
}

/* How much the mailboxes of a scenario may hold: half of the smallest of physical memory,
 * RLIMIT_AS and the cgroup's memory.max (half: a reload builds the new store beside the old
 * one, and the sessions need the rest). *what_r says which one it is. */
static uint64_t
scenario_memory_limit(const char **what_r)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t limit = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
    *what_r = "physical memory";
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (uint64_t)rl.rlim_cur < limit) {
        limit = (uint64_t)rl.rlim_cur;
        *what_r = "RLIMIT_AS (ulimit -v)";
    }
    uint64_t cg = scenario_cgroup_max();
    if (cg > 0 && cg < limit) {
        limit = cg;
        *what_r = "the cgroup's memory.max";
    }
    return limit / 2;
}

/* Formats a large byte count for a message: "70.3GiB", "512.0MiB", "4096 bytes". */
static void
scenario_format_bytes(char *out, size_t cap, uint64_t n)
{
    if (n >= SCENARIO_GIB)
        snprintf(out, cap, "%.1fGiB", (double)n / (double)SCENARIO_GIB);
    else if (n >= SCENARIO_MIB)
        snprintf(out, cap, "%.1fMiB", (double)n / (double)SCENARIO_MIB);
    else
        snprintf(out, cap, "%llu bytes", (unsigned long long)n);
}

/* What the store will hold for one message entry (all the messages of a generate), estimated
 * as store.c builds it: the bytes of a file or raw message; for a generated one the size
 * asked plus the eighth store.c reserves beyond it and 1KiB, a small request filling about
 * 1KiB (a minimal message is larger than asked); plus SCENARIO_MESSAGE_OVERHEAD each. */
static uint64_t
scenario_entry_bytes(const struct ms_message_conf *mc, uint64_t *count_r)
{
    int gen = mc->source == MS_MSG_GENERATE;
    uint64_t n = gen ? mc->gen_count : 1;
    uint64_t each =
        gen ? MS_MAX((uint64_t)mc->gen_size, SCENARIO_KIB) + mc->gen_size / 8 + SCENARIO_KIB
            : mc->len;
    *count_r = n;
    return n * (each + SCENARIO_MESSAGE_OVERHEAD);
}

/* The totals of the scenario's messages in file order, stopping at the first entry past
 * max_count messages or max_bytes bytes: returns it and fills the path to it, or NULL. */
static const struct ms_message_conf *
scenario_sum_messages(const struct ms_scenario *sc, uint64_t max_count, uint64_t max_bytes,
                      uint64_t *count_r, uint64_t *bytes_r, char *path, size_t cap)
{
    uint64_t count = 0, bytes = 0, n;
    for (size_t u = 0; u < sc->n_users; u++) {
        const struct ms_user *user = &sc->users[u];
        for (size_t k = 0; k < user->n_mailboxes; k++) {
            const struct ms_mailbox_conf *mb = &user->mailboxes[k];
            for (size_t i = 0; i < mb->n_messages; i++) {
                const struct ms_message_conf *mc = &mb->messages[i];
                /* no overflow: an entry is under 2^51 bytes, and callers stop by 2^62 */
                bytes += scenario_entry_bytes(mc, &n);
                count += n;
                *count_r = count;
                *bytes_r = bytes;
                if (count <= max_count && bytes <= max_bytes)
                    continue;
                const char *key = mc->source == MS_MSG_FILE  ? "file"
                                  : mc->source == MS_MSG_RAW ? "raw"
                                                             : "generate";
                if (snprintf(path, cap, "users.%s.mailboxes.%s.messages[%zu].%s", user->name,
                             mb->name, i, key) < 0)
                    path[0] = '\0';
                return mc;
            }
        }
    }
    return NULL;
}

/* A scenario too large for the machine is refused here rather than by an out-of-memory abort
 * when the store is built (issue 10): past SCENARIO_MAX_MESSAGES messages, or when the bytes
 * the mailboxes would hold (scenario_entry_bytes) pass scenario_memory_limit, the entry at
 * which the running total passes the limit is named. The machine is asked only by a scenario
 * past SCENARIO_MEMORY_ANY. Nothing is allocated. */
int
scenario_check_memory(struct scenario_ctx *ctx, const struct ms_scenario *sc)
{
    char path[SCENARIO_PATH_MAX * 2], need[32], lim[32], one[32];
    uint64_t count = 0, bytes = 0, n;
    const struct ms_message_conf *mc;
    /* the first pass stops past 2^62 bytes, which no machine has, so the sum cannot wrap */
    scenario_sum_messages(sc, UINT64_MAX, (uint64_t)1 << 62, &count, &bytes, path, sizeof path);
    if (count > SCENARIO_MAX_MESSAGES) {
        mc = scenario_sum_messages(sc, SCENARIO_MAX_MESSAGES, UINT64_MAX, &count, &bytes, path,
                                   sizeof path);
        return scenario_fail(ctx, mc->source == MS_MSG_GENERATE ? mc->gen_pos : mc->src_pos, path,
                             "%llu messages up to here, above the limit of %u messages in a "
                             "scenario",
                             (unsigned long long)count, SCENARIO_MAX_MESSAGES);
    }
    if (bytes <= SCENARIO_MEMORY_ANY)
        return MOCKSRV_OK;
    const char *what = NULL;
    uint64_t limit = scenario_memory_limit(&what);
    if (bytes <= limit)
        return MOCKSRV_OK;
    mc = scenario_sum_messages(sc, UINT64_MAX, limit, &count, &bytes, path, sizeof path);
    scenario_format_bytes(need, sizeof need, bytes);
    scenario_format_bytes(lim, sizeof lim, limit);
    scenario_format_bytes(one, sizeof one, scenario_entry_bytes(mc, &n));
    return scenario_fail(ctx, mc->source == MS_MSG_GENERATE ? mc->gen_pos : mc->src_pos, path,
                         "the mailboxes would need about %s of memory up to here (%s for this "
                         "entry), above the limit of %s (%llu bytes: half of %s); lower count or "
                         "size",
                         need, one, lim, (unsigned long long)limit, what);
}

/* ---- users ---- */

static const struct scenario_field scenario_user_fields[] = {
    F_STRING("password", struct ms_user, password, SC_ANY),
    {.key = "addresses",
     .kind = SK_STRINGS,
     .offset = offsetof(struct ms_user, addresses),
     .offset2 = offsetof(struct ms_user, n_addresses),
     .check = SC_ADDRESS},
    F_CUSTOM("mailboxes", scenario_parse_mailboxes),
};
static const struct scenario_table scenario_user_table =
    TABLE(scenario_user_fields, scenario_check_user);

/* A user name or address, for the case-insensitive uniqueness check. */
struct scenario_ident {
    const struct scenario_node *node;
    size_t user;  /* index in sc->users */
    size_t index; /* in addresses[], or SIZE_MAX for the user name */
    size_t order; /* document order */
};

static int
scenario_ident_cmp(const void *a, const void *b)
{
    const struct scenario_ident *x = a, *y = b;
    const unsigned char *p = (const unsigned char *)x->node->text;
    const unsigned char *q = (const unsigned char *)y->node->text;
    for (; *p && tolower(*p) == tolower(*q); p++, q++)
        ;
    if (tolower(*p) != tolower(*q))
        return tolower(*p) < tolower(*q) ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Names and addresses find a user case-insensitively (ms_scenario_find_user), so they must be
 * unique that way; a user may list its own name as an address. */
static int
scenario_check_idents(struct scenario_ctx *ctx, const struct ms_scenario *sc,
                      const struct scenario_node *users, const char *path)
{
    char upath[SCENARIO_PATH_MAX], ipath[SCENARIO_PATH_MAX];
    size_t n = 0, k = 0;
    for (size_t u = 0; u < sc->n_users; u++)
        n += 1 + sc->users[u].n_addresses;
    struct scenario_ident *ids = ms_malloc(n * sizeof *ids);
    for (size_t u = 0; u < sc->n_users; u++) {
        const struct scenario_node *def = users->kids[2 * u + 1];
        ids[k] = (struct scenario_ident){users->kids[2 * u], u, SIZE_MAX, k};
        k++;
        const struct scenario_node *addrs = scenario_map_value(def, "addresses");
        for (size_t j = 0; addrs && j < addrs->n_kids; j++, k++)
            ids[k] = (struct scenario_ident){addrs->kids[j], u, j, k};
    }
    ms_assert(k == n);
    qsort(ids, n, sizeof *ids, scenario_ident_cmp);
    size_t bad = SIZE_MAX;
    for (size_t i = 1; i < n; i++)
        if (ids[i].user != ids[i - 1].user &&
            ms_strcaseeq(ids[i].node->text, ids[i - 1].node->text) &&
            (bad == SIZE_MAX || ids[i].order < ids[bad].order))
            bad = i;
    if (bad == SIZE_MAX) {
        free(ids);
        return MOCKSRV_OK;
    }
    /* ids[bad - 1] is the earlier occurrence: equal texts sort by document order. */
    struct scenario_ident later = ids[bad], first = ids[bad - 1];
    free(ids);
    scenario_path_key(upath, path, users->kids[2 * later.user]);
    if (later.index != SIZE_MAX) {
        char ap[SCENARIO_PATH_MAX];
        if (snprintf(ap, sizeof ap, "%s.addresses", upath) < 0)
            ap[0] = '\0';
        scenario_path_index(ipath, ap, later.index);
    } else {
        memcpy(ipath, upath, sizeof ipath);
    }
    return scenario_fail(ctx, later.node->pos, ipath,
                         "\"%s\" is already the %s of user %s at %d:%d (names and addresses "
                         "are matched case-insensitively)",
                         later.node->text, first.index == SIZE_MAX ? "name" : "address",
                         sc->users[first.user].name, first.node->pos.line, first.node->pos.column);
}

int
scenario_parse_users(struct scenario_ctx *ctx, const struct scenario_node *key,
                     const struct scenario_node *val, const char *path, void *base)
{
    struct ms_scenario *sc = base;
    char upath[SCENARIO_PATH_MAX];
    int rc;
    if (val->kind != SCENARIO_MAP)
        return scenario_fail_type(ctx, val, path, "a mapping of users");
    if (val->n_kids == 0)
        return scenario_fail(ctx, val->pos, path, "no users (leave the key out, or add one)");
    if ((rc = scenario_check_dups(ctx, val, path)) != MOCKSRV_OK)
        return rc;
    sc->users = ms_calloc(val->n_kids / 2, sizeof *sc->users);
    for (size_t i = 0; i + 1 < val->n_kids; i += 2) {
        const struct scenario_node *name = val->kids[i];
        scenario_path_key(upath, path, name);
        if (!scenario_text_ok(name->text, name->len, SC_HOST))
            return scenario_fail(ctx, name->pos, upath,
                                 "bad user name (no spaces or control characters)");
        struct ms_user *u = &sc->users[sc->n_users++];
        u->name = ms_strndup(name->text, name->len);
        u->pos = name->pos;
        if ((rc = scenario_walk(ctx, val->kids[i + 1], upath, &scenario_user_table, u)))
            return rc;
        if (!u->password)
            return scenario_fail(ctx, name->pos, upath, "missing password");
    }
    return scenario_check_idents(ctx, sc, val, path);
}
