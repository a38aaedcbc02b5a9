/*  control - answers meshctl's requests (see control.h).
 *
 *  Kept apart from main.c so that the command set grows here (pause, resume,
 *  reload, budget in later issues) without touching the main loop.
 */
#include "control.h"

#include <string.h>

json_t *
mesh_control_reply (json_t *request, json_t *daemon_status, json_t *agents)
{
    const char *cmd = json_string_value (json_object_get (request, "cmd"));
    if (strcmp (cmd, "ping") == 0)
        return json_pack ("{sb ss}", "ok", 1, "result", "pong");
    if (strcmp (cmd, "status") == 0)
        return json_pack ("{sb s{sO sO}}", "ok", 1, "result", "daemon", daemon_status, "agents",
                          agents);
    return json_pack ("{sb ss}", "ok", 0, "error", "unknown command (expected status or ping)");
}
