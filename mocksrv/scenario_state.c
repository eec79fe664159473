/*
 * scenario_state.c - state out (--state-out): ms_scenario_format_state writes a store back as a
 * scenario with libyaml's emitter, choosing for each message between an inline `raw` literal
 * block and a file beside the document, so that loading it again gives the same bytes.
 *
 * Not here: reading a scenario (the other scenario_*.c files); this file only shares their name
 * tables and value formats, so that what it writes reads back.
 *
 * Invariants:
 *   - Loading the document written gives the same bytes for every message.
 *   - The first error is kept (struct scenario_emit.rc); later events are dropped.
 */
#include "scenario_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "store.h"

#define MOCKSRV_EAGAIN_TABS 1 /* internal to ms_scenario_format_state */

/* ---- state out (--state-out): a store written back as a scenario ---- */

struct scenario_emit {
    yaml_emitter_t em;
    struct ms_buf *out;
    int rc; /* the first error; later events are dropped */
    struct mocksrv_error *err;
    /* message files */
    const char *out_path; /* may be NULL */
    char *dir;            /* "<out_path>.d", created on first use */
    char *dir_rel;        /* its name relative to out_path's directory */
    int dir_made;
    /* Tabs: libyaml's emitter refuses them in a literal block (it reads a tab as a special
     * character and falls back to a quoted scalar), though every parser reads them there as
     * content. So with tabs set, a tab of an inline message is emitted as SCENARIO_TAB_MARK
     * and put back in the output; n_tabs counts them. */
    int tabs;
    size_t n_tabs;
};

/* U+E000, a private-use character: printable for libyaml, never in an inline message (ASCII
 * only); if a name elsewhere in the document has one, the count differs and the document is
 * made again without the trick. */
#define SCENARIO_TAB_MARK "\xee\x80\x80"

static int
scenario_emit_write(void *data, unsigned char *buffer, size_t size)
{
    ms_buf_append(data, buffer, size);
    return 1;
}

static void
scenario_emit_fail_yaml(struct scenario_emit *e, const char *what)
{
    if (e->rc != MOCKSRV_OK)
        return;
    if (e->em.error == YAML_MEMORY_ERROR)
        ms_die("out of memory (libyaml)");
    e->rc = ms_error_set(e->err, MOCKSRV_EINVAL, "state: cannot write %s as YAML: %s", what,
                         e->em.problem ? e->em.problem : "not valid UTF-8");
}

/* Hands an event to the emitter, which owns it from then on, failed or not. */
static void
scenario_emit_event(struct scenario_emit *e, yaml_event_t *ev, int made, const char *what)
{
    if (!made) {
        /* yaml_*_event_initialize refuses text that is not UTF-8 */
        if (e->rc == MOCKSRV_OK)
            e->rc = ms_error_set(e->err, MOCKSRV_EINVAL,
                                 "state: cannot write %s as YAML: not valid UTF-8", what);
        return;
    }
    if (e->rc != MOCKSRV_OK) {
        yaml_event_delete(ev);
        return;
    }
    if (!yaml_emitter_emit(&e->em, ev))
        scenario_emit_fail_yaml(e, what);
}

static void
scenario_emit_scalar(struct scenario_emit *e, const char *text, size_t len,
                     yaml_scalar_style_t style)
{
    yaml_event_t ev;
    int made =
        yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)len, 1, 1, style);
    scenario_emit_event(e, &ev, made, text);
}

/* Plain when the loader and any YAML reader see the same string (a letter first, no null or
 * boolean word), else double-quoted, which carries any UTF-8 text exactly. */
static void
scenario_emit_str(struct scenario_emit *e, const char *s)
{
    static const char *const words[] = {"null", "true", "false", "yes", "no",
                                        "on",   "off",  "y",     "n"};
    int plain = isalpha((unsigned char)s[0]);
    for (const char *p = s; plain && *p; p++)
        plain = isalnum((unsigned char)*p) || strchr("._@/+-", *p);
    for (size_t i = 0; plain && i < MS_ARRAY_LEN(words); i++)
        plain = !ms_strcaseeq(s, words[i]);
    scenario_emit_scalar(e, s, strlen(s),
                         plain ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

static void
scenario_emit_plain(struct scenario_emit *e, const char *s)
{
    scenario_emit_scalar(e, s, strlen(s), YAML_PLAIN_SCALAR_STYLE);
}

static void
scenario_emit_u64(struct scenario_emit *e, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    scenario_emit_plain(e, buf);
}

static void
scenario_emit_bool(struct scenario_emit *e, int v)
{
    scenario_emit_plain(e, v ? "true" : "false");
}

static void
scenario_emit_map_start(struct scenario_emit *e, int flow)
{
    yaml_event_t ev;
    int made = yaml_mapping_start_event_initialize(
        &ev, NULL, NULL, 1, flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
    scenario_emit_event(e, &ev, made, "a mapping");
}

static void
scenario_emit_map_end(struct scenario_emit *e)
{
    yaml_event_t ev;
    scenario_emit_event(e, &ev, yaml_mapping_end_event_initialize(&ev), "a mapping");
}

static void
scenario_emit_seq_start(struct scenario_emit *e, int flow)
{
    yaml_event_t ev;
    int made = yaml_sequence_start_event_initialize(
        &ev, NULL, NULL, 1, flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
    scenario_emit_event(e, &ev, made, "a list");
}

static void
scenario_emit_seq_end(struct scenario_emit *e)
{
    yaml_event_t ev;
    scenario_emit_event(e, &ev, yaml_sequence_end_event_initialize(&ev), "a list");
}

/* [PLAIN, LOGIN]: the names of the bits set, in table order. */
static void
scenario_emit_names(struct scenario_emit *e, const char *key, unsigned bits,
                    const struct scenario_name *names, size_t n)
{
    scenario_emit_plain(e, key);
    scenario_emit_seq_start(e, 1);
    for (size_t i = 0; i < n; i++)
        if (bits & names[i].value)
            scenario_emit_plain(e, names[i].name);
    scenario_emit_seq_end(e);
}

static void
scenario_emit_size(struct scenario_emit *e, const char *key, uint64_t v)
{
    char buf[32];
    scenario_format_size(buf, sizeof buf, v);
    scenario_emit_plain(e, key);
    scenario_emit_plain(e, buf);
}

/* A path of the scenario, absolute so that it still works from out_path's directory. */
static void
scenario_emit_path(struct scenario_emit *e, const char *key, const char *p)
{
    char cwd[4096];
    if (!p)
        return;
    scenario_emit_plain(e, key);
    if (p[0] == '/' || !getcwd(cwd, sizeof cwd)) {
        scenario_emit_str(e, p);
        return;
    }
    char *abs = ms_asprintf("%s/%s", cwd, p);
    scenario_emit_str(e, abs);
    free(abs);
}

/* A message is inline when YAML carries it exactly as a literal block and the loader's LF ->
 * CRLF gives the bytes back: printable ASCII lines (and tabs, when allowed) ended by CRLF, no
 * blank before a line end or at the end (YAML would keep it, but libyaml writes such text
 * double-quoted), no tab first. Bare CR or LF, NUL, other control and 8-bit bytes go to a
 * file. */
static int
scenario_inline_ok(const char *p, size_t n, int tabs)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r') {
            if (i + 1 >= n || p[i + 1] != '\n' || (i > 0 && (p[i - 1] == ' ' || p[i - 1] == '\t')))
                return 0;
            i++; /* the LF */
        } else if ((c < 0x20 && !(c == '\t' && tabs)) || c > 0x7e) {
            return 0;
        }
    }
    /* A tab first: a reader that detects the block's indentation from its first line takes it
     * for indentation and fails (libyaml writes an explicit indentation only before a space
     * or a line end). */
    return n == 0 || (p[n - 1] != ' ' && p[n - 1] != '\t' && p[0] != '\t');
}

/* Letters, digits, '.', '@' and '+' as they are, anything else _XX: injective, so two
 * mailboxes never share a file, and '-' stays free as the separator. */
static void
scenario_file_part(struct ms_buf *b, const char *s, const char *alt, size_t alt_n)
{
    size_t start = b->len;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '.' || *p == '@' || *p == '+')
            ms_buf_putc(b, (char)*p);
        else
            ms_buf_printf(b, "_%02x", *p);
    }
    if (b->len - start > 80) {
        /* NAME_MAX is 255: an index instead ("_" then a letter is never an escape) */
        b->len = start;
        ms_buf_printf(b, "_%s%zu", alt, alt_n);
    }
}

static int
scenario_fail_write(struct scenario_emit *e, const char *path, int errnum)
{
    char buf[128];
    const char *reason = strerror_r(errnum, buf, sizeof buf);
    if (e->err) {
        memset(e->err, 0, sizeof *e->err);
        if (snprintf(e->err->file, sizeof e->err->file, "%s", path) < 0)
            e->err->file[0] = '\0';
    }
    return ms_error_set(e->err, MOCKSRV_EIO, "%s: cannot write: %s", path, reason);
}

/* The exact bytes, in one file (replaced if it exists). */
static int
scenario_write_file(struct scenario_emit *e, const char *path, const char *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666);
    if (fd < 0)
        return scenario_fail_write(e, path, errno);
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int saved = errno;
            close(fd);
            return scenario_fail_write(e, path, saved);
        }
        p += w;
        n -= (size_t)w;
    }
    if (close(fd) != 0)
        return scenario_fail_write(e, path, errno);
    return MOCKSRV_OK;
}

static void
scenario_emit_message(struct scenario_emit *e, const struct ms_account *acc, size_t acc_i,
                      const struct ms_mailbox *mb, size_t mb_i, const struct ms_message *m)
{
    char date[40];
    const char *bytes = m->blob->data;
    size_t len = m->blob->len;

    scenario_emit_map_start(e, 0);
    scenario_emit_plain(e, "uid");
    scenario_emit_u64(e, m->uid);
    /* \Recent belongs to the sessions that saw the message arrive (RFC 3501 2.3.2) */
    unsigned flags = m->flags & ~(unsigned)MS_FLAG_RECENT;
    if (flags || m->n_keywords) {
        scenario_emit_plain(e, "flags");
        scenario_emit_seq_start(e, 1);
        for (unsigned bit = 1; bit <= MS_FLAG_DRAFT; bit <<= 1)
            if (flags & bit)
                scenario_emit_scalar(e, ms_flag_name(bit), strlen(ms_flag_name(bit)),
                                     YAML_SINGLE_QUOTED_SCALAR_STYLE);
        for (size_t i = 0; i < m->n_keywords; i++)
            scenario_emit_scalar(e, m->keywords[i], strlen(m->keywords[i]),
                                 YAML_SINGLE_QUOTED_SCALAR_STYLE);
        scenario_emit_seq_end(e);
    }
    if (m->internaldate != 0) {
        scenario_format_date(date, sizeof date, m->internaldate);
        scenario_emit_plain(e, "date");
        scenario_emit_plain(e, date);
    }
    if (scenario_inline_ok(bytes, len, e->tabs)) {
        /* YAML strings carry LF: drop the CRs, the loader puts them back */
        struct ms_buf text = {0};
        ms_buf_reserve(&text, len);
        for (size_t i = 0; i < len; i++) {
            if (bytes[i] == '\t') {
                ms_buf_puts(&text, SCENARIO_TAB_MARK);
                e->n_tabs++;
            } else if (bytes[i] != '\r') {
                ms_buf_putc(&text, bytes[i]);
            }
        }
        scenario_emit_plain(e, "raw");
        scenario_emit_scalar(e, text.data, text.len, YAML_LITERAL_SCALAR_STYLE);
        ms_buf_fini(&text);
        scenario_emit_map_end(e);
        return;
    }
    if (e->rc != MOCKSRV_OK)
        return;
    if (!e->out_path) {
        e->rc = ms_error_set(e->err, MOCKSRV_EINVAL,
                             "state: message %u of %s/%s needs a file (its bytes are not "
                             "plain CRLF text) and no output path was given",
                             m->uid, acc->name, mb->name);
        return;
    }
    if (!e->dir_made) {
        if (mkdir(e->dir, 0777) != 0 && errno != EEXIST) {
            e->rc = scenario_fail_write(e, e->dir, errno);
            return;
        }
        e->dir_made = 1;
    }
    struct ms_buf name = {0};
    scenario_file_part(&name, acc->name, "u", acc_i);
    ms_buf_putc(&name, '-');
    scenario_file_part(&name, mb->name, "m", mb_i);
    ms_buf_printf(&name, "-%u.eml", m->uid);
    char *full = ms_asprintf("%s/%s", e->dir, name.data);
    char *rel = ms_asprintf("%s/%s", e->dir_rel, name.data);
    e->rc = scenario_write_file(e, full, bytes, len);
    scenario_emit_plain(e, "file");
    scenario_emit_str(e, rel);
    if (!memchr(bytes, '\r', len) && memchr(bytes, '\n', len)) {
        /* the loader would turn these LFs into CRLF */
        scenario_emit_plain(e, "exact");
        scenario_emit_bool(e, 1);
    }
    scenario_emit_map_end(e);
    free(full);
    free(rel);
    ms_buf_fini(&name);
}

static void
scenario_emit_mailboxes(struct scenario_emit *e, const struct ms_account *acc, size_t acc_i)
{
    scenario_emit_plain(e, "mailboxes");
    scenario_emit_map_start(e, 0);
    for (size_t k = 0; k < acc->n_mailboxes; k++) {
        const struct ms_mailbox *mb = acc->mailboxes[k];
        scenario_emit_str(e, mb->name);
        scenario_emit_map_start(e, 0);
        scenario_emit_plain(e, "uidvalidity");
        scenario_emit_u64(e, mb->uidvalidity);
        scenario_emit_plain(e, "uidnext");
        scenario_emit_u64(e, mb->uidnext);
        if (mb->special_use) {
            scenario_emit_plain(e, "special_use");
            scenario_emit_scalar(e, mb->special_use, strlen(mb->special_use),
                                 YAML_SINGLE_QUOTED_SCALAR_STYLE);
        }
        scenario_emit_plain(e, "subscribed");
        scenario_emit_bool(e, mb->subscribed);
        if (mb->n_msgs) {
            scenario_emit_plain(e, "messages");
            scenario_emit_seq_start(e, 0);
            for (size_t i = 0; i < mb->n_msgs; i++)
                scenario_emit_message(e, acc, acc_i, mb, k, mb->msgs[i]);
            scenario_emit_seq_end(e);
        }
        scenario_emit_map_end(e);
    }
    scenario_emit_map_end(e);
}

/* listeners.NAME.script, one flow mapping per step: send lines as written (the loader adds
 * the same CRLFs again), raw bytes and globs double-quoted, which carries any text exactly
 * (a NUL as "\0"); `reset` comes back as rst. */
static void
scenario_emit_script(struct scenario_emit *e, const struct ms_listener_conf *l)
{
    char buf[32];
    scenario_emit_plain(e, "script");
    scenario_emit_seq_start(e, 0);
    for (size_t i = 0; i < l->n_script; i++) {
        const struct ms_script_step *st = &l->script[i];
        scenario_emit_map_start(e, 1);
        switch (st->op) {
        case MS_SCRIPT_SEND:
            if (st->raw) {
                scenario_emit_plain(e, "raw");
                scenario_emit_scalar(e, st->bytes, st->len, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
                break;
            }
            scenario_emit_plain(e, "send");
            if (st->n_lines > 1)
                scenario_emit_seq_start(e, 1);
            for (size_t k = 0; k < st->n_lines; k++)
                scenario_emit_scalar(e, st->lines[k], strlen(st->lines[k]),
                                     YAML_DOUBLE_QUOTED_SCALAR_STYLE);
            if (st->n_lines > 1)
                scenario_emit_seq_end(e);
            break;
        case MS_SCRIPT_EXPECT:
            scenario_emit_plain(e, "expect");
            scenario_emit_scalar(e, st->bytes, st->len, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
            break;
        case MS_SCRIPT_DELAY:
            scenario_format_duration(buf, sizeof buf, (uint64_t)st->delay_ms);
            scenario_emit_plain(e, "delay");
            scenario_emit_plain(e, buf);
            break;
        case MS_SCRIPT_CLOSE:
            scenario_emit_plain(e, "close");
            scenario_emit_plain(e, st->how == MS_CLOSE_RST    ? "rst"
                                   : st->how == MS_CLOSE_HALF ? "half"
                                                              : "fin");
            break;
        case MS_SCRIPT_STARTTLS:
            scenario_emit_plain(e, "starttls");
            scenario_emit_bool(e, 1);
            break;
        }
        scenario_emit_map_end(e);
    }
    scenario_emit_seq_end(e);
}

/* The settings of the scenario. faults: is deliberately not written back: the state document
 * records the mail store, and a fault plan replayed on a reload of the state would fire again
 * against a run it was not written for. Keep the fault rules in their own scenario file. */
static void
scenario_emit_settings(struct scenario_emit *e, const struct ms_scenario *sc)
{
    char buf[64];
    scenario_emit_plain(e, "version");
    scenario_emit_u64(e, 1);
    if (sc->has_seed) {
        scenario_emit_plain(e, "seed");
        scenario_emit_u64(e, sc->seed);
    }
    scenario_emit_plain(e, "hostname");
    scenario_emit_str(e, sc->hostname);

    scenario_emit_plain(e, "listeners");
    scenario_emit_map_start(e, 0);
    for (size_t i = 0; i < sc->n_listeners; i++) {
        const struct ms_listener_conf *l = &sc->listeners[i];
        scenario_emit_str(e, l->name);
        scenario_emit_map_start(e, l->n_script == 0);
        scenario_emit_plain(e, "protocol");
        scenario_emit_plain(e, ms_proto_name(l->protocol));
        scenario_emit_plain(e, "port");
        scenario_emit_u64(e, (uint64_t)l->port);
        scenario_emit_plain(e, "tls");
        scenario_emit_plain(e, ms_tls_mode_name(l->tls));
        if (l->host) {
            scenario_emit_plain(e, "host");
            scenario_emit_str(e, l->host);
        }
        if (l->window)
            scenario_emit_size(e, "window", l->window);
        if (l->n_script)
            scenario_emit_script(e, l);
        scenario_emit_map_end(e);
    }
    scenario_emit_map_end(e);

    if (sc->tls.cert || sc->tls.client_ca || sc->tls.min_version) {
        scenario_emit_plain(e, "tls");
        scenario_emit_map_start(e, 0);
        scenario_emit_path(e, "cert", sc->tls.cert);
        scenario_emit_path(e, "key", sc->tls.key);
        scenario_emit_path(e, "client_ca", sc->tls.client_ca);
        for (size_t i = 0; i < MS_ARRAY_LEN(scenario_tls_versions); i++) {
            if (scenario_tls_versions[i].value != (unsigned)sc->tls.min_version)
                continue;
            scenario_emit_plain(e, "min_version");
            scenario_emit_scalar(e, scenario_tls_versions[i].name,
                                 strlen(scenario_tls_versions[i].name),
                                 YAML_DOUBLE_QUOTED_SCALAR_STYLE);
        }
        scenario_emit_map_end(e);
    }

    scenario_emit_plain(e, "smtp");
    scenario_emit_map_start(e, 0);
    scenario_emit_size(e, "max_size", sc->smtp.max_size);
    scenario_emit_names(e, "auth", sc->smtp.auth, scenario_mechanisms,
                        MS_ARRAY_LEN(scenario_mechanisms));
    scenario_emit_plain(e, "require_auth");
    scenario_emit_bool(e, sc->smtp.require_auth);
    scenario_emit_names(e, "extensions", sc->smtp.extensions, scenario_extensions,
                        MS_ARRAY_LEN(scenario_extensions));
    scenario_emit_plain(e, "deliver");
    scenario_emit_bool(e, sc->smtp.deliver);
    scenario_emit_map_end(e);

    scenario_emit_plain(e, "pop3");
    scenario_emit_map_start(e, 0);
    scenario_emit_names(e, "auth", sc->pop3.auth, scenario_mechanisms,
                        MS_ARRAY_LEN(scenario_mechanisms));
    scenario_emit_plain(e, "apop");
    scenario_emit_bool(e, sc->pop3.apop);
    scenario_emit_map_end(e);

    scenario_emit_plain(e, "imap");
    scenario_emit_map_start(e, 0);
    scenario_emit_plain(e, "capabilities");
    if (!sc->imap.capabilities) {
        scenario_emit_plain(e, "default");
    } else {
        scenario_emit_seq_start(e, 1);
        for (size_t i = 0; i < sc->imap.n_capabilities; i++)
            scenario_emit_str(e, sc->imap.capabilities[i]);
        scenario_emit_seq_end(e);
    }
    scenario_emit_names(e, "auth", sc->imap.auth, scenario_mechanisms,
                        MS_ARRAY_LEN(scenario_mechanisms));
    scenario_emit_map_end(e);

    scenario_emit_plain(e, "limits");
    scenario_emit_map_start(e, 0);
    scenario_emit_size(e, "smtp_line_length", sc->limits.smtp_line_length);
    scenario_emit_size(e, "pop3_line_length", sc->limits.pop3_line_length);
    scenario_emit_size(e, "imap_line_length", sc->limits.imap_line_length);
    scenario_emit_size(e, "message_size", sc->limits.message_size);
    scenario_emit_size(e, "literal_size", sc->limits.literal_size);
    scenario_emit_plain(e, "sessions");
    scenario_emit_u64(e, sc->limits.sessions);
    scenario_format_duration(buf, sizeof buf, (uint64_t)sc->limits.idle_timeout_ms);
    scenario_emit_plain(e, "idle_timeout");
    scenario_emit_plain(e, buf);
    scenario_emit_plain(e, "bad_commands");
    scenario_emit_u64(e, sc->limits.bad_commands);
    scenario_emit_map_end(e);
}

static void
scenario_emit_user(struct scenario_emit *e, const char *name, const struct ms_user *u,
                   const struct ms_account *acc, size_t acc_i)
{
    scenario_emit_str(e, name);
    scenario_emit_map_start(e, 0);
    scenario_emit_plain(e, "password");
    scenario_emit_str(e, u ? u->password : "");
    if (u && u->n_addresses) {
        scenario_emit_plain(e, "addresses");
        scenario_emit_seq_start(e, 1);
        for (size_t i = 0; i < u->n_addresses; i++)
            scenario_emit_str(e, u->addresses[i]);
        scenario_emit_seq_end(e);
    }
    if (acc)
        scenario_emit_mailboxes(e, acc, acc_i);
    scenario_emit_map_end(e);
}

/* Puts the tabs back: SCENARIO_TAB_MARK -> '\t' in out[start..]. Returns the number of marks
 * replaced. */
static size_t
scenario_put_tabs(struct ms_buf *out, size_t start)
{
    const size_t mark = sizeof SCENARIO_TAB_MARK - 1;
    size_t r = start, w = start, n = 0;
    while (r < out->len) {
        if (r + mark <= out->len && memcmp(out->data + r, SCENARIO_TAB_MARK, mark) == 0) {
            out->data[w++] = '\t';
            r += mark;
            n++;
        } else {
            out->data[w++] = out->data[r++];
        }
    }
    out->len = w;
    out->data[w] = '\0';
    return n;
}

static size_t
scenario_count_marks(const struct ms_buf *out, size_t start)
{
    size_t n = 0;
    const char *p = out->data + start, *end = out->data + out->len;
    while ((p = memmem(p, (size_t)(end - p), SCENARIO_TAB_MARK, sizeof SCENARIO_TAB_MARK - 1))) {
        n++;
        p += sizeof SCENARIO_TAB_MARK - 1;
    }
    return n;
}

static int
scenario_format_state_pass(const struct ms_scenario *sc, const struct ms_store *store,
                           const char *out_path, struct ms_buf *yaml_out, int tabs,
                           struct mocksrv_error *err)
{
    struct scenario_emit e = {
        .out = yaml_out, .rc = MOCKSRV_OK, .err = err, .out_path = out_path, .tabs = tabs};
    size_t start = yaml_out->len;
    yaml_event_t ev;

    if (out_path) {
        const char *slash = strrchr(out_path, '/');
        e.dir = ms_asprintf("%s.d", out_path);
        e.dir_rel = ms_asprintf("%s.d", slash ? slash + 1 : out_path);
    }
    if (!yaml_emitter_initialize(&e.em))
        ms_die("out of memory (libyaml)");
    yaml_emitter_set_output(&e.em, scenario_emit_write, yaml_out);
    yaml_emitter_set_unicode(&e.em, 1);
    yaml_emitter_set_width(&e.em, -1); /* no folding of long quoted lines */
    yaml_emitter_set_indent(&e.em, 2);
    ms_buf_puts(yaml_out,
                "# mocksrv state: the scenario with its mailboxes as they were at exit.\n");

    scenario_emit_event(&e, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING),
                        "the stream");
    scenario_emit_event(&e, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1),
                        "the document");
    scenario_emit_map_start(&e, 0);
    scenario_emit_settings(&e, sc);

    /* Users of the scenario in its order, each with its account (same name); then accounts
     * without a user, with an empty password (none today: accounts are made for users). */
    size_t n_store = store ? store->n_accounts : 0;
    size_t *user_of = ms_calloc(n_store, sizeof *user_of); /* account -> user + 1, 0: none */
    size_t n_extra = n_store;
    for (size_t k = 0; k < n_store; k++)
        for (size_t i = 0; i < sc->n_users && !user_of[k]; i++)
            if (strcmp(store->accounts[k]->name, sc->users[i].name) == 0) {
                user_of[k] = i + 1;
                n_extra--;
            }
    if (sc->n_users || n_extra) {
        scenario_emit_plain(&e, "users");
        scenario_emit_map_start(&e, 0);
        for (size_t i = 0; i < sc->n_users; i++) {
            size_t k = 0;
            while (k < n_store && user_of[k] != i + 1)
                k++;
            scenario_emit_user(&e, sc->users[i].name, &sc->users[i],
                               k < n_store ? store->accounts[k] : NULL, k);
        }
        for (size_t k = 0; k < n_store; k++)
            if (!user_of[k])
                scenario_emit_user(&e, store->accounts[k]->name, NULL, store->accounts[k], k);
        scenario_emit_map_end(&e);
    }
    free(user_of);

    scenario_emit_map_end(&e);
    scenario_emit_event(&e, &ev, yaml_document_end_event_initialize(&ev, 1), "the document");
    scenario_emit_event(&e, &ev, yaml_stream_end_event_initialize(&ev), "the stream");
    if (e.rc == MOCKSRV_OK && !yaml_emitter_flush(&e.em))
        scenario_emit_fail_yaml(&e, "the document");
    yaml_emitter_delete(&e.em);
    free(e.dir);
    free(e.dir_rel);
    if (e.rc == MOCKSRV_OK && e.n_tabs && scenario_count_marks(yaml_out, start) != e.n_tabs)
        e.rc = MOCKSRV_EAGAIN_TABS; /* a mark that is not a tab of ours: again without */
    else if (e.rc == MOCKSRV_OK && e.n_tabs)
        ms_assert(scenario_put_tabs(yaml_out, start) == e.n_tabs);
    if (e.rc != MOCKSRV_OK) {
        yaml_out->len = start;
        if (yaml_out->data)
            yaml_out->data[start] = '\0';
    }
    return e.rc;
}

int
ms_scenario_format_state(const struct ms_scenario *sc, const struct ms_store *store,
                         const char *out_path, struct ms_buf *yaml_out, struct mocksrv_error *err)
{
    int rc = scenario_format_state_pass(sc, store, out_path, yaml_out, 1, err);
    if (rc == MOCKSRV_EAGAIN_TABS)
        rc = scenario_format_state_pass(sc, store, out_path, yaml_out, 0, err);
    return rc;
}
