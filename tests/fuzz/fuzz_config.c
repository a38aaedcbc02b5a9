/*  fuzz_config - the config loader (common/config.c) on any file.
 *
 *  The input is written as a file (0600, in a private directory) and loaded with
 *  mesh_config_load, as `meshd --check-config` and a reload do.  Besides what ASan
 *  and UBSan catch, the harness aborts if the result and the count disagree (0 problems
 *  but no config, or a config despite problems), or if a problem is printed as
 *  anything but "FILE:..." naming the file loaded.
 */
#include "config.h"
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        fuzz_quiet ();
        ready = true;
    }
    const char *path = fuzz_file ("meshd.yaml", data, size);
    char *errors = NULL;
    size_t errors_len = 0;
    FILE *err = open_memstream (&errors, &errors_len);
    mesh_config_t *cfg = NULL;
    int problems = mesh_config_load (path, &cfg, err);
    fclose (err);
    if ((problems == 0) != (cfg != NULL) || problems < 0)
        abort ();
    if (cfg) {
        //  Walk what the rest of meshd walks.
        for (size_t a = 0; a < cfg->agent_count; a++)
            if (!mesh_config_agent (cfg, cfg->agents[a].name))
                abort ();
        for (size_t a = 0; a < cfg->action_count; a++) {
            const mesh_action_spec_t *action = mesh_config_action (cfg, cfg->actions[a].name);
            for (size_t p = 0; action && p < action->param_count; p++)
                json_decref (mesh_config_param_json (&action->params[p]));
        }
    }
    size_t path_len = strlen (path);
    for (char *line = errors; line && *line;) {
        if (strncmp (line, path, path_len) || line[path_len] != ':')
            abort ();
        char *nl = strchr (line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    free (errors);
    mesh_config_destroy (&cfg);
    return 0;
}
