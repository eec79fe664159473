/*
 * fault.c - the fault engine: which rules fire at a session event (see fault.h, FAULTS.md).
 *
 * Per rule, the server keeps run counters (matches, firings, connections seen) and each session
 * keeps its own (matches, its ordinal among the connections the rule could apply to, a
 * per-session draw, the position in `replies`). Decisions are pure functions of those counters
 * and the seed, so a run replays from its seed.
 *
 * Not here: doing anything. The engines and session.c carry out the actions this returns.
 */
#include "fault.h"

#include <math.h>
#include <stdlib.h>

#include "server.h"

static const char *const fault_at_names[] = {
    [MS_AT_ACCEPT] = "accept",   [MS_AT_TLS] = "tls",   [MS_AT_GREETING] = "greeting",
    [MS_AT_COMMAND] = "command", [MS_AT_DATA] = "data", [MS_AT_WAITING] = "waiting",
    [MS_AT_END] = "end",
};

const char *
ms_fault_at_name(enum ms_fault_at at)
{
    return (size_t)at < MS_ARRAY_LEN(fault_at_names) ? fault_at_names[at] : "?";
}

static double
fault_unit(uint64_t x)
{
    return (double)(x >> 11) * 0x1.0p-53;
}

uint64_t
ms_fault_verb_hash(const char *verb)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *verb; verb++) {
        unsigned char c = (unsigned char)*verb;
        if (c >= 'a' && c <= 'z')
            c = (unsigned char)(c - 'a' + 'A');
        h = (h ^ c) * 0x100000001b3ull;
    }
    return h;
}

static int
fault_verb_cmp(const void *a, const void *b)
{
    const struct ms_fault_verb *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->rule < y->rule ? -1 : x->rule > y->rule;
}

static void
fault_index_build(struct ms_faults *f)
{
    struct ms_fault_index *ix = ms_calloc(1, sizeof *ix);
    for (int at = 0; at <= MS_AT_END; at++) {
        ix->any[at] = ms_calloc(f->n_rules ? f->n_rules : 1, sizeof *ix->any[at]);
        size_t nv = 0;
        for (size_t i = 0; i < f->n_rules; i++)
            if ((int)f->rules[i].at == at)
                nv += f->rules[i].n_commands;
        ix->verbs[at] = ms_calloc(nv ? nv : 1, sizeof *ix->verbs[at]);
        for (size_t i = 0; i < f->n_rules; i++) {
            const struct ms_fault_rule *r = &f->rules[i];
            if ((int)r->at != at)
                continue;
            if (!r->n_commands)
                ix->any[at][ix->n_any[at]++] = (uint32_t)i;
            for (size_t k = 0; k < r->n_commands; k++)
                ix->verbs[at][ix->n_verbs[at]++] =
                    (struct ms_fault_verb){ms_fault_verb_hash(r->commands[k]), (uint32_t)i};
        }
        qsort(ix->verbs[at], ix->n_verbs[at], sizeof *ix->verbs[at], fault_verb_cmp);
    }
    f->index = ix;
}

void
ms_fault_index_free(struct ms_fault_index **ixp)
{
    struct ms_fault_index *ix = *ixp;
    if (!ix)
        return;
    for (int at = 0; at <= MS_AT_END; at++) {
        free(ix->any[at]);
        free(ix->verbs[at]);
    }
    free(ix);
    *ixp = NULL;
}

void
ms_fault_run_init(struct ms_scenario *sc)
{
    if (sc->faults.run)
        return;
    sc->faults.run = ms_calloc(sc->faults.n_rules ? sc->faults.n_rules : 1, sizeof *sc->faults.run);
    fault_index_build(&sc->faults);
}

int
ms_session_selected(const struct ms_session *s, char *const *listeners, size_t n_listeners,
                    unsigned protocols)
{
    if (n_listeners) {
        int found = 0;
        for (size_t i = 0; i < n_listeners; i++)
            found |= strcmp(listeners[i], s->listener->name) == 0;
        if (!found)
            return 0;
    }
    return !protocols || (protocols & (1u << s->listener->protocol));
}

void
ms_fault_session_start(struct ms_session *s)
{
    struct ms_scenario *sc = s->srv->sc;
    size_t n = sc->faults.n_rules;
    ms_fault_run_init(sc);
    s->faults_sc = sc;
    s->fault = ms_calloc(n ? n : 1, sizeof *s->fault);
    for (size_t i = 0; i < n; i++) {
        /* the rule's n-th connection counts only connections it could apply to */
        const struct ms_fault_rule *r = &sc->faults.rules[i];
        if (ms_session_selected(s, r->listeners, r->n_listeners, r->protocols))
            s->fault[i].ordinal = ++sc->faults.run[i].sessions;
    }
}

void
ms_fault_session_end(struct ms_session *s)
{
    free(s->fault);
    s->fault = NULL;
}

static int
fault_command_matches(const struct ms_fault_rule *r, const char *verb)
{
    if (!r->n_commands)
        return 1;
    if (!verb)
        return 0;
    for (size_t i = 0; i < r->n_commands; i++)
        if (ms_strcaseeq(r->commands[i], verb))
            return 1;
    return 0;
}

static int
fault_counter_holds(const struct ms_fault_rule *r, uint64_t count)
{
    if (r->n_nth) {
        for (size_t i = 0; i < r->n_nth; i++)
            if (r->nth[i] == count)
                return 1;
        return 0;
    }
    if (r->every)
        return count % r->every == 0;
    if (r->after)
        return count > r->after;
    return 1;
}

/* A shaping key of a firing rule: it wins when no earlier rule took it (FAULTS.md 1). */
static void
fault_take(int given, struct ms_fault_pick *slot, const struct ms_fault_pick *pick, json_t *taken,
           const char *key)
{
    if (!given || slot->rule)
        return;
    *slot = *pick;
    json_array_append_new(taken, json_string(key));
}

int
ms_fault_at(struct ms_session *s, enum ms_fault_at at, const char *verb, const char *args,
            uint64_t received, struct ms_fault_actions *out)
{
    memset(out, 0, sizeof *out);
    const struct ms_scenario *sc = s->faults_sc;
    struct ms_server *srv = s->srv;
    if (!sc || !s->fault)
        return 0;
    /* the candidates, in file order: rules without a command filter, merged with the rules
     * that name this verb (found by hash; a collision is caught by the name check below) */
    const struct ms_fault_index *ix = sc->faults.index;
    const uint32_t *any = ix->any[at];
    size_t n_any = ix->n_any[at], a = 0;
    const struct ms_fault_verb *vs = ix->verbs[at];
    size_t lo = 0, hi = ix->n_verbs[at];
    if (verb && hi) {
        uint64_t h = ms_fault_verb_hash(verb);
        size_t l = 0, r = hi;
        while (l < r) { /* first entry with hash >= h */
            size_t m = l + (r - l) / 2;
            if (vs[m].hash < h)
                l = m + 1;
            else
                r = m;
        }
        lo = l;
        for (hi = lo; hi < ix->n_verbs[at] && vs[hi].hash == h; hi++) {
        }
    } else {
        lo = hi = 0;
    }
    size_t last = SIZE_MAX;
    while (a < n_any || lo < hi) {
        size_t i;
        if (lo < hi && (a >= n_any || vs[lo].rule < any[a]))
            i = vs[lo++].rule;
        else
            i = any[a++];
        if (i == last)
            continue; /* a rule that lists the same verb twice */
        last = i;
        const struct ms_fault_rule *r = &sc->faults.rules[i];
        struct ms_fault_sess *fs = &s->fault[i];
        struct ms_fault_runstate *run = &sc->faults.run[i];
        /* when: every given key must hold */
        if (r->at != at || fs->ordinal == 0)
            continue;
        if (r->session_lo && (fs->ordinal < r->session_lo || fs->ordinal > r->session_hi))
            continue;
        if (r->encrypted >= 0 && r->encrypted != s->tls)
            continue;
        if (r->user && !(s->auth_user && strcmp(r->user, s->auth_user) == 0))
            continue;
        if (!fault_command_matches(r, verb))
            continue;
        if (r->args && !ms_glob(r->args, args ? args : "", 1))
            continue;
        /* threshold rules (received at data, for at waiting; `received` carries the silence
         * in ms at waiting) match once per payload or silence period, when it is first reached */
        if (r->has_received || r->has_for) {
            uint64_t need = r->has_for ? (uint64_t)r->for_ms : r->received;
            if (received < need || fs->threshold_seen)
                continue;
            fs->threshold_seen = 1;
        }
        /* at data, a rule without `received` fires at the payload's start only */
        if (at == MS_AT_DATA && !r->has_received && received != 0)
            continue;
        /* a match: counters advance whether or not the rule then fires */
        uint64_t count = r->count_run ? ++run->matches : ++fs->matches;
        if (!fault_counter_holds(r, count))
            continue;
        if (r->times && run->fired >= r->times)
            continue;
        double drawn = -1;
        if (r->probability < 1.0) {
            uint64_t x = r->per_session ? ms_draw(srv->seed, i, fs->ordinal, 0, 0)
                                        : ms_draw(srv->seed, i, fs->ordinal, count, 0);
            drawn = fault_unit(x);
            if (drawn >= r->probability)
                continue;
        }
        /* fires: each action key goes to the first firing rule */
        run->fired++;
        json_t *taken = json_array();
        if ((r->has_reply || r->n_replies) && !out->has_reply && !out->raw) {
            const struct ms_fault_reply *rep = &r->reply;
            if (r->n_replies) {
                size_t k = r->count_run ? run->replies_used++ : fs->replies_used++;
                rep = k < r->n_replies ? &r->replies[k] : NULL; /* then normal behaviour */
            }
            if (rep && !rep->pass) {
                out->reply = rep;
                out->has_reply = 1;
                json_array_append_new(taken, json_string("reply"));
            } else if (rep) {
                out->pass = 1;
            }
        }
        if (r->has_raw && !out->raw && !out->has_reply) {
            out->raw = r->raw;
            out->raw_len = r->raw_len;
            json_array_append_new(taken, json_string("raw"));
        }
        if (r->send && !out->send) {
            out->send = r->send;
            json_array_append_new(taken, json_string("send"));
        }
        if (r->inject && !out->inject) {
            out->inject = r->inject;
            json_array_append_new(taken, json_string("inject"));
        }
        if (r->append && !out->append) {
            out->append = r->append;
            json_array_append_new(taken, json_string("append"));
        }
        if (r->n_hide && !out->hide) {
            out->hide = (const char *const *)r->hide;
            out->n_hide = r->n_hide;
            json_array_append_new(taken, json_string("hide"));
        }
        int64_t delay = -1;
        if (r->has_delay && !out->has_delay) {
            delay = r->delay_lo;
            if (r->delay_hi > r->delay_lo)
                delay += (int64_t)(ms_draw(srv->seed, i, fs->ordinal, count, 1) %
                                   (uint64_t)(r->delay_hi - r->delay_lo + 1));
            out->delay_ms = delay;
            out->has_delay = 1;
            json_array_append_new(taken, json_string("delay"));
        }
        struct ms_fault_pick pick = {r, (uint32_t)i, fs->ordinal, count};
        if (r->close_how != MS_CLOSE_NONE && out->close_how == MS_CLOSE_NONE) {
            out->close_how = r->close_how;
            out->close_after = r->has_close_after ? r->close_after_bytes : UINT64_MAX;
            out->close_delay_ms = r->close_delay_ms;
            out->close_from = r->close_from;
            out->close_pick = pick;
            json_array_append_new(taken, json_string("close"));
        }
        if (delay >= 0)
            out->delay_pick = pick;
        fault_take(r->has_split, &out->split, &pick, taken, "split");
        fault_take(r->bandwidth != 0, &out->bandwidth, &pick, taken, "bandwidth");
        fault_take(r->has_read, &out->read, &pick, taken, "read");
        fault_take(r->has_stall, &out->stall, &pick, taken, "stall");
        fault_take(r->has_tarpit, &out->tarpit, &pick, taken, "tarpit");
        if (r->tls && !out->tls) {
            out->tls = r->tls;
            out->tls_stall = r->tls_stall;
            out->tls_after_bytes = r->tls_after_bytes;
            out->has_tls_after = r->has_tls_after;
            json_array_append_new(taken, json_string("tls"));
        }
        out->fired++;
        if (srv->events.verbosity >= 2) {
            /* -v: the firing in the transcript, "fault rcpt3-451 (match 3): reply" */
            struct ms_buf t = {0};
            ms_buf_printf(&t, "fault %s (%s, match %llu):", r->name, ms_fault_at_name(at),
                          (unsigned long long)count);
            for (size_t k = 0; k < json_array_size(taken); k++)
                ms_buf_printf(&t, "%s %s", k ? "," : "",
                              json_string_value(json_array_get(taken, k)));
            ms_transcript(&srv->events, s->id, s->listener->name, '*', t.data, t.len);
            ms_buf_fini(&t);
        }
        if (ms_events_wanted(&srv->events)) {
            json_t *ev = ms_session_event(s, "fault");
            json_object_set_new(ev, "rule", json_string(r->name));
            json_object_set_new(ev, "at", json_string(ms_fault_at_name(at)));
            if (verb)
                json_object_set_new(ev, "command", ms_json_bytes(verb, strlen(verb)));
            json_t *counters = json_object();
            json_object_set_new(counters, "match", json_integer((json_int_t)count));
            json_object_set_new(counters, "session", json_integer(fs->ordinal));
            json_object_set_new(counters, "fired", json_integer((json_int_t)run->fired));
            json_object_set_new(ev, "counters", counters);
            json_t *drawn_v = json_object();
            if (drawn >= 0)
                json_object_set_new(drawn_v, "probability", json_real(drawn));
            if (delay >= 0)
                json_object_set_new(drawn_v, "delay_ms", json_integer(delay));
            json_object_set_new(ev, "drawn", drawn_v);
            json_object_set_new(ev, "actions", taken);
            ms_session_emit(s, ev);
        } else {
            json_decref(taken);
        }
    }
    return out->fired;
}

int
ms_fault_has_at(const struct ms_session *s, enum ms_fault_at at)
{
    const struct ms_scenario *sc = s->faults_sc;
    if (sc && sc->faults.index) /* built with the run state: no scan per command read */
        return sc->faults.index->n_any[at] || sc->faults.index->n_verbs[at];
    for (size_t i = 0; sc && i < sc->faults.n_rules; i++)
        if (sc->faults.rules[i].at == at)
            return 1;
    return 0;
}

void
ms_fault_period_start(struct ms_session *s, enum ms_fault_at at)
{
    const struct ms_scenario *sc = s->faults_sc;
    for (size_t i = 0; sc && s->fault && i < sc->faults.n_rules; i++)
        if (sc->faults.rules[i].at == at)
            s->fault[i].threshold_seen = 0;
}

int64_t
ms_fault_next_for(const struct ms_session *s, int64_t after_ms)
{
    const struct ms_scenario *sc = s->faults_sc;
    int64_t next = -1;
    for (size_t i = 0; sc && s->fault && i < sc->faults.n_rules; i++) {
        const struct ms_fault_rule *r = &sc->faults.rules[i];
        if (r->at != MS_AT_WAITING || !r->has_for || s->fault[i].ordinal == 0)
            continue;
        if (r->for_ms > after_ms && (next < 0 || r->for_ms < next))
            next = r->for_ms;
    }
    return next;
}

void
ms_fault_run_keep(struct ms_scenario *to, const struct ms_scenario *from)
{
    if (!from || !from->faults.run || !to->faults.run)
        return;
    /* each old rule gives its counters to at most one new rule: the first one, in file order,
     * with the same name and the same definition */
    unsigned char *used = ms_calloc(from->faults.n_rules ? from->faults.n_rules : 1, 1);
    for (size_t i = 0; i < to->faults.n_rules; i++) {
        const struct ms_fault_rule *r = &to->faults.rules[i];
        for (size_t j = 0; r->source && j < from->faults.n_rules; j++) {
            const struct ms_fault_rule *o = &from->faults.rules[j];
            if (used[j] || !o->source || strcmp(o->name, r->name) != 0 ||
                strcmp(o->source, r->source) != 0)
                continue;
            to->faults.run[i] = from->faults.run[j];
            used[j] = 1;
            break;
        }
    }
    free(used);
}

int
ms_faults_check_supported(const struct ms_scenario *sc, struct mocksrv_error *err)
{
    for (size_t i = 0; i < sc->faults.n_rules; i++) {
        const struct ms_fault_rule *r = &sc->faults.rules[i];
        const char *why = NULL;
        const char *bad = NULL; /* not "not supported yet": meaningless at this event */
        if (r->at == MS_AT_TLS && r->has_stall)
            bad = "stall at: tls would stop before the handshake; use tls: {stall: "
                  "after-client-hello | mid-server-flight | before-finished}";
        else if (r->at == MS_AT_DATA && (r->protocols & (1u << MS_PROTO_IMAP)))
            why = "at: data for imap (SMTP DATA/BDAT and SASL lines of SMTP and POP3 only)";
        else if ((r->at == MS_AT_DATA || r->at == MS_AT_WAITING) && r->n_hide)
            bad = r->at == MS_AT_DATA
                      ? "hide edits a capability list (EHLO, CAPA); a payload has none: use it "
                        "with command: EHLO or CAPA"
                      : "hide edits a capability list (EHLO, CAPA); at: waiting sends none: use "
                        "it with command: EHLO or CAPA";
        if (bad) {
            if (err) {
                snprintf(err->file, sizeof err->file, "%s", sc->path);
                err->line = r->line;
                err->column = r->column;
            }
            return ms_error_set(err, MOCKSRV_ESCENARIO, "%s:%d:%d: faults[%zu] (%s): at: %s: %s",
                                sc->path, r->line, r->column, i, r->name, ms_fault_at_name(r->at),
                                bad);
        }
        if (why) {
            if (err) {
                snprintf(err->file, sizeof err->file, "%s", sc->path);
                err->line = r->line;
                err->column = r->column;
            }
            return ms_error_set(err, MOCKSRV_ESCENARIO,
                                "%s:%d:%d: faults[%zu] (%s): %s: not supported yet by this "
                                "version",
                                sc->path, r->line, r->column, i, r->name, why);
        }
    }
    return MOCKSRV_OK;
}
