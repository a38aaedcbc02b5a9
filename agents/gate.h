/*  gate - stage 5: the validator chain every model proposal must pass.
 *  Data path: event -> detect -> incident -> reason -> [gate] -> act -> record.
 *
 *  First a built-in check (the proposal is a JSON object, its "action" is one the
 *  agent allows, its "params" match the action's declared types, patterns, bounds
 *  and enums, no undeclared params), then every Lua rule: the global chain, then
 *  the agent's own.  All rules are evaluated, so the record and the reask carry
 *  every reason.  Only an explicit accept from every check passes (fail closed); a
 *  rule that accepts may ask for a human's approval as well (mesh_gate_approval).
 *  The Lua side lives in lua/ (sandbox.c, vm.c); no lua_State leaves lua/.
 *
 *  For reload and replay, a rule set in force is named by its hash, described by a
 *  manifest, and archived under the state directory by mesh_gate_archive.
 */
#ifndef MESH_GATE_H
#define MESH_GATE_H

#include "config.h"
#include "fail.h"
#include "sandbox.h"
#include <jansson.h>
#include <stdbool.h>

typedef struct _mesh_gate_t mesh_gate_t;

//  Compile the chain for AGENT: from the rule set archived as agent->rules_hash when it is
//  set (mesh_gate_from_archive; an agent meshd started), else from the files.  Returns NULL
//  and sets *err (caller frees; one line per problem, "FILE:LINE: message") if any rule does
//  not load.
mesh_gate_t *mesh_gate_new (const mesh_config_t *cfg, const mesh_agent_config_t *agent, char **err);
//  Destroy; sets *self_p to NULL; safe on NULL.
void mesh_gate_destroy (mesh_gate_t **self_p);
//  Check PROPOSAL (borrowed) with CTX (borrowed; what rules may depend on).  Appends one
//  object per check to the VERDICTS array: {"rule", "verdict": "accept"|"reject"|"error"|
//  "limit", "reason"}, and "approval": the reason, on the accept of a rule that called
//  mesh.require_approval.  Returns true only if every check accepted; otherwise *fail_p
//  is the worst class seen (RULE_LIMIT > RULE_ERROR > RULE_REJECT).  Thread-safe: each
//  concurrent caller evaluates in a Lua state of its own from the gate's pool.
bool mesh_gate_check (mesh_gate_t *self, json_t *proposal, json_t *ctx, json_t *verdicts,
                      mesh_fail_t *fail_p);
//  What VERDICTS (as mesh_gate_check appends them; borrowed) ask of a human: NULL when
//  no accept verdict carries an "approval", else (caller owns) {"required": true,
//  "reason": the first such verdict's approval, "rules": [the names of every rule that
//  asked, in chain order]}.  A decision is held for approval only when its proposal was
//  accepted; the caller decides that (reason.c).
json_t *mesh_gate_approval (json_t *verdicts);
//  Hex SHA-256 over the names and contents of the rules in the chain, in order.
const char *mesh_gate_rules_hash (const mesh_gate_t *self);
//  Load one rule file in the sandbox only to see that it is a valid rule (for
//  --check-config and `meshctl rules check`).  0, or -1 with *err set (caller frees).
int mesh_gate_check_file (const char *path, const mesh_config_t *cfg, char **err);

//  The rule set as JSON, for a decision-log record (caller owns):
//  {"hash": rules hash, "rules": [{"name": rule name, "file": "NN-basename" (its name in
//  the archive, NN its position from 01), "basename": the file's own name (what the
//  hash covers), "sha256": of its content}, ...]}.
json_t *mesh_gate_manifest (const mesh_gate_t *self);
//  Archive the rule set as STATE_DIR/rules/<hash>/: each rule file as NN-basename and
//  manifest.json.  Written to a temporary directory, fsync'd and renamed into place,
//  so the directory is either complete or absent; an existing one is kept as it is
//  (its name is the hash of its content).  0 and *dir_p (may be NULL; caller frees)
//  set to the directory, or -1 (logged).
int mesh_gate_archive (const mesh_gate_t *self, const char *state_dir, char **dir_p);
//  The rule set archived as STATE_DIR/rules/RULES_HASH/, with AGENT's actions as CFG
//  declares them now (the built-in check is today's).  The manifest must name that
//  hash, each file must be its NN-basename with the manifest's sha256, and the chain
//  built from them must hash to RULES_HASH again (each rule loaded under its original
//  basename).  Returns NULL with *err set (caller frees) if anything is missing,
//  altered or does not load.  Limits from CFG.
mesh_gate_t *mesh_gate_from_archive (const mesh_config_t *cfg, const mesh_agent_config_t *agent,
                                     const char *state_dir, const char *rules_hash, char **err);
//  The built-in check alone (no rule runs): NULL when PROPOSAL has the declared shape,
//  otherwise every problem found (caller frees).
char *mesh_gate_builtin (mesh_gate_t *self, json_t *proposal);
//  The declared spec of action NAME as rules see it in ctx.action ({name, kind, params}),
//  borrowed; NULL if NAME is not one of the agent's actions.
json_t *mesh_gate_action_spec (const mesh_gate_t *self, const char *name);
//  What a decision record needs, beyond the proposal and ctx, to replay this gate's
//  verdicts (caller owns): {"limits": [instructions, memory bytes, time ms] (defaults
//  filled in), "actions": [the agent's action names, in order]}.  The spec of a proposed
//  action is recorded per attempt (ctx_action).
json_t *mesh_gate_inputs (const mesh_gate_t *self);
//  The "limits" of mesh_gate_inputs read back into *OUT; -1 if LIMITS is not such a list.
int mesh_gate_limits_json (json_t *limits, mesh_sandbox_limits_t *out);
//  A gate for replay, with no actions of its own, evaluating under LIMITS.  RULES_HASH
//  set: DIR is an archive (mesh_gate_archive's layout) of that rule set; a file whose
//  content differs from the manifest, or a chain that does not hash to RULES_HASH, is
//  loaded all the same and described in *ALTERED_P (may be NULL; caller frees; NULL when
//  intact).  RULES_HASH NULL: DIR is a candidate set, every *.lua file in it but
//  *_test.lua, in byte order of name.  NULL and *err set (caller frees) when the
//  directory or manifest cannot be read or a rule does not load.
mesh_gate_t *mesh_gate_replay_new (const char *dir, const char *rules_hash,
                                   const mesh_sandbox_limits_t *limits, char **altered_p,
                                   char **err);
//  mesh_gate_check as the agent ran it, with the built-in check's actions from the
//  record: ALLOWED the agent's action names (mesh_gate_inputs), SPEC the proposed
//  action's spec (the attempt's ctx_action; null when it is not allowed).  0 with
//  *accepted_p set, or -1 and *why set (caller frees) when the record cannot be
//  replayed (ALLOWED or SPEC malformed or missing).  Not thread-safe (a cache of specs).
int mesh_gate_replay_check (mesh_gate_t *self, json_t *allowed, json_t *spec, json_t *proposal,
                            json_t *ctx, json_t *verdicts, mesh_fail_t *fail_p,
                            bool *accepted_p, char **why);
//  Bytes held by the largest of the gate's idle Lua states (0 before the first check):
//  the memory one evaluating thread costs.
size_t mesh_gate_state_memory (const mesh_gate_t *self);

#endif
