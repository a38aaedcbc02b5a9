/*  reason - stage 4: the bounded reasoning loop for one incident.
 *  Data path: event -> detect -> incident -> [reason] -> gate -> act -> record.
 *
 *  Render the prompt (fixed instructions, the allowed actions and their parameter
 *  schema, the incident as quoted untrusted data), check the token budget, call the
 *  backend, parse exactly one JSON object, pass it through the gate chain; on a
 *  refusal ask again with every reason, up to max_steps calls and within the
 *  incident's token cap.  If nothing is accepted, the agent's fallback action.  The
 *  result is the complete decision record (docs/reasoning.md lists its fields), ready
 *  for the ledger; nothing here acts.
 *
 *  One object per worker thread: it owns its backend (and so its HTTP handle) and
 *  borrows the config, the agent's config and the worker's gate chain, which must all
 *  outlive it, and copies the port to the token ledger (whose arg must outlive it).
 */
#ifndef MESH_REASON_H
#define MESH_REASON_H

#include "config.h"
#include "gate.h"
#include "incident.h"
#include "token_port.h"
#include <jansson.h>

typedef struct _mesh_reason_t mesh_reason_t;

//  Borrows cfg, agent and gate (all outlive it); TOKENS is copied.  NULL (logged) if the
//  agent's backend, actions or fallback are not in CFG or the backend cannot be created.
mesh_reason_t *mesh_reason_new (const mesh_config_t *cfg, const mesh_agent_config_t *agent,
                                mesh_gate_t *gate, const mesh_tokens_port_t *tokens);
//  Destroy; sets *self_p to NULL; safe on NULL.
void mesh_reason_destroy (mesh_reason_t **self_p);
//  Run the bounded loop for INCIDENT.  HISTORY: borrowed JSON array of the agent's recent
//  accepted actions ({"action","target","at"}), may be NULL.  Returns the decision record
//  (caller owns); NULL only when out of memory.
json_t *mesh_reason_run (mesh_reason_t *self, const mesh_incident_t *incident, json_t *history);

//  The JSON Schema of a proposal for the agent's allowed actions (borrowed; sent as
//  response_format, and shown to the model per action).
json_t *mesh_reason_schema (const mesh_reason_t *self);
//  Strip one ```json ... ``` (or ``` ... ```) fence around TEXT, as some models add.
//  Returns a new string (caller frees) and sets *stripped; NULL if out of memory.
char *mesh_reason_strip_fence (const char *text, bool *stripped);

#endif
