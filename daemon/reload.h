/*  reload - decide what a new configuration means for the running daemon.
 *
 *  SIGHUP and `meshctl reload` read the config file again.  Nothing changes
 *  unless the whole new config, every rule it names and every agent's rule chain
 *  validate; on any problem the running config and rules stay in force and the
 *  problems are reported (log, `meshctl status`, meshctl's exit code).
 *
 *  What a valid new config changes:
 *    - only rules (rule files' contents, `gates.rules`, agents' `rules:`, gate
 *      limits): every agent swaps its rule chain in place, between decisions;
 *    - an agent's own section otherwise, or `backends`/`actions`: that agent
 *      (every agent, for backends/actions) drains and restarts with the new config;
 *    - `daemon`/`kafka`, or the set of agents: refused, with a message saying
 *      that meshd must be restarted for that (the old config stays).
 */
#ifndef MESH_RELOAD_H
#define MESH_RELOAD_H

#include "config.h"
#include <jansson.h>

//  Compare the config file as loaded at start (OLD_TREE: its config's tree) with the
//  file now at PATH.  On success returns 0, *new_p (caller owns) and *plan_p (caller owns:
//  {"restart": [agent names], "reload": [agent names]}), and *tree_p (the new config's tree,
//  from the loader's one parse; caller owns a reference).  On failure returns -1 and *error_p (caller frees): every problem, one per
//  line, FILE:LINE:COL where known.
int mesh_reload_plan (const char *path, json_t *old_tree, mesh_config_t **new_p,
                      json_t **plan_p, json_t **tree_p, char **error_p);

//  Validate the parts of CFG the config loader does not: every rule file loads in the
//  sandbox, every agent's chain builds, every backend can be created.  Problems are
//  printed to OUT as FILE:LINE:COL: lines; returns their number.
int mesh_reload_check_parts (const mesh_config_t *cfg, FILE *out);

#endif
