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
/*
 *  Checking rules means running their top levels, which only the sandbox's limits
 *  bound, so it never runs in the supervisor's main loop: a check job forks a child
 *  that loads the config, checks every rule and chain, and works out the plan and
 *  the rule-set records (archiving the files), then reports one JSON document on a
 *  pipe.  The main loop polls the job between its other work; the child is killed if
 *  it takes longer than MESH_RELOAD_CHECK_MS, and a crash or a kill is a refused
 *  reload, never a supervisor that stops answering.
 */
#ifndef MESH_RELOAD_H
#define MESH_RELOAD_H

#include "config.h"
#include <jansson.h>
#include <stdio.h>
#include <sys/types.h>

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

//  Wall-clock bound of one check job, and the address-space cap of its child.
#define MESH_RELOAD_CHECK_MS    20000
#define MESH_RELOAD_CHECK_AS    ((size_t) 2 << 30)

typedef struct _mesh_reload_job_t mesh_reload_job_t;

//  Start checking the config at PATH in a child process.  With OLD_TREE (a reload),
//  the child runs mesh_reload_plan against it; without (the start), it loads and
//  checks the file.  Either way it then writes the snapshot of the bytes it checked to
//  RUNTIME (mesh_config_snapshot) and archives every agent's rules, shared with GROUP
//  ((gid_t) -1: none), and computes the rule-set records for EVENT ("start", "reload":
//  see mesh_reload_rules_records).  RUNTIME NULL: only check (no snapshot, no archive,
//  no records).  NULL if fork failed (logged).
mesh_reload_job_t *mesh_reload_job_start (const char *path, json_t *old_tree, const char *event,
                                          const char *runtime, gid_t group);
//  Non-blocking: NULL while the child runs; then its result (caller owns), once:
//  {"ok": true, "plan": {...} or null, "sha256": HEX, "snapshot": FILE, "records": [...]}
//  or {"ok": false, "error": "one problem per line"}.  The caller loads the snapshot
//  (mesh_config_load_snapshot with SHA256): exactly the bytes that were checked.
json_t *mesh_reload_job_poll (mesh_reload_job_t *self);
//  Wait for the result (at most MESH_RELOAD_CHECK_MS).
json_t *mesh_reload_job_wait (mesh_reload_job_t *self);
//  Destroy; kills and reaps a child still running; sets *self_p to NULL; safe on NULL.
void mesh_reload_job_destroy (mesh_reload_job_t **self_p);

//  The rule-set record of every agent of CFG for EVENT: what its chain's hash is, the
//  files, the manifest, the archive of the files under the state directory (shared with
//  GROUP, see mesh_reload_job_start) and the config snapshot.  NULL, with the problem on
//  OUT, if a chain cannot be built or archived.  Loads every rule: run it in a check job.
json_t *mesh_reload_rules_records (const mesh_config_t *cfg, const char *event, gid_t group,
                                   FILE *out);

#endif
