/*
 * fault_conf.c - the lifetime of the fault model (struct ms_faults of fault.h): what the
 * scenario loader (scenario_faults.c parses `faults:`) builds, freed in one call.
 *
 * Not here: parsing (scenario_faults.c; <yaml.h> stays in the loader) and deciding what fires
 * (fault.c, which also names the events: ms_fault_at_name).
 *
 * Invariants:
 *   - Every pointer of a rule is either NULL or owned by the rule; counts match their arrays.
 *   - ms_faults_fini leaves a zeroed struct, so calling it twice is harmless.
 */
#include "fault.h"

#include <stdlib.h>
#include <string.h>

static void
fault_conf_strings_free(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static void
fault_conf_reply_fini(struct ms_fault_reply *r)
{
    fault_conf_strings_free(r->lines, r->n_lines);
    memset(r, 0, sizeof *r);
}

static void
fault_conf_rule_fini(struct ms_fault_rule *r)
{
    free(r->name);
    fault_conf_strings_free(r->listeners, r->n_listeners);
    free(r->user);
    fault_conf_strings_free(r->commands, r->n_commands);
    free(r->args);
    free(r->nth);
    fault_conf_reply_fini(&r->reply);
    for (size_t i = 0; i < r->n_replies; i++)
        fault_conf_reply_fini(&r->replies[i]);
    free(r->replies);
    free(r->raw);
    free(r->send);
    free(r->inject);
    free(r->append);
    fault_conf_strings_free(r->hide, r->n_hide);
    free(r->split.offsets);
    free(r->source);
    memset(r, 0, sizeof *r);
}

void
ms_faults_fini(struct ms_faults *f)
{
    for (size_t i = 0; i < f->n_rules; i++)
        fault_conf_rule_fini(&f->rules[i]);
    free(f->rules);
    free(f->run); /* the engine's run counters (fault.c), allocated once the server binds */
    ms_fault_index_free(&f->index);
    memset(f, 0, sizeof *f);
}
