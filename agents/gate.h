/*  gate - stage 5: the validator chain every model proposal must pass.
 *  Data path: event -> detect -> incident -> reason -> [gate] -> act -> record.
 *
 *  First a built-in check (the proposal is a JSON object, its "action" is one the
 *  agent allows, its "params" match the action's declared types, patterns, bounds
 *  and enums, no undeclared params), then every Lua rule: the global chain, then
 *  the agent's own.  All rules are evaluated, so the record and the reask carry
 *  every reason.  Only an explicit accept from every check passes (fail closed).
 *  The Lua side lives in lua/sandbox.c; no lua_State leaves lua/.
 */
#ifndef MESH_GATE_H
#define MESH_GATE_H

#include "config.h"
#include "fail.h"
#include <jansson.h>
#include <stdbool.h>

typedef struct _mesh_gate_t mesh_gate_t;

//  Compile the chain for AGENT.  Returns NULL and sets *err (caller frees; one line per
//  problem, "FILE:LINE: message") if any rule does not load.
mesh_gate_t *mesh_gate_new (const mesh_config_t *cfg, const mesh_agent_config_t *agent, char **err);
//  Destroy; sets *self_p to NULL; safe on NULL.
void mesh_gate_destroy (mesh_gate_t **self_p);
//  Check PROPOSAL (borrowed) with CTX (borrowed; what rules may depend on).  Appends one
//  object per check to the VERDICTS array: {"rule", "verdict": "accept"|"reject"|"error"|
//  "limit", "reason"}.  Returns true only if every check accepted; otherwise *fail_p is
//  the worst class seen (RULE_LIMIT > RULE_ERROR > RULE_REJECT).
bool mesh_gate_check (mesh_gate_t *self, json_t *proposal, json_t *ctx, json_t *verdicts,
                      mesh_fail_t *fail_p);
//  Hex SHA-256 over the names and contents of the rules in the chain, in order.
const char *mesh_gate_rules_hash (const mesh_gate_t *self);
//  Load one rule file in the sandbox only to see that it is a valid rule (for
//  --check-config and `meshctl rules check`).  0, or -1 with *err set (caller frees).
int mesh_gate_check_file (const char *path, const mesh_config_t *cfg, char **err);

#endif
