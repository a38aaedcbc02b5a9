/*  act_log - stage 6, kind "log": the action is the record itself.
 *  Data path: event -> detect -> incident -> reason -> gate -> [act] -> record.
 *
 *  Used for escalation: the decision (with its summary) is already in the
 *  decision log; this adds one notice line to the diagnostics so the operator's
 *  journal shows that a human is being asked.  Nothing here can fail.
 */
#include "act.h"
#include "log.h"

#include <string.h>

int
mesh_act_log_run (const char *agent, const char *id, json_t *action, char **detail)
{
    const char *name = json_string_value (json_object_get (action, "name"));
    const char *summary =
        json_string_value (json_object_get (json_object_get (action, "params"), "summary"));
    mesh_notice ("act: %s for decision %.12s%s%s", name ? name : "?", id ? id : "?",
                 summary ? ": " : "", summary ? summary : "");
    *detail = strdup ("logged");
    return 0;
}
