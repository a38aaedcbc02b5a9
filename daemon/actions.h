/*  actions - meshd's side of acting: what an agent may not, or should not, do alone.
 *  Data path: event -> detect -> incident -> reason -> gate -> [act] -> record.
 *
 *  Before an agent carries out a recorded decision it asks meshd (ACT {id}).  meshd
 *  takes the decision from its own ledger, not from the agent's word: it must be
 *  there, be that agent's, and name one of that agent's actions (or its fallback).
 *  Then, in order:
 *
 *      paused        `meshctl pause` covers this agent or this action: nothing runs,
 *                    the outcome says "paused" (the decision is still recorded)
 *      rate_limited  the action's `rate` (N per window, across all agents) is spent:
 *                    the agent takes its fallback instead and records both
 *      run           log and kafka actions: the agent carries them out itself
 *      done/failed   exec and webhook actions: meshd carries them out, in executor
 *                    threads (the agents are sandboxed: no execve, no secrets), and
 *                    answers with the outcome
 *
 *  Exactly once, as far as meshd can: an exec or webhook execution is journalled
 *  (state_dir/actions.jsonl, fdatasync'd) as started before it runs and with its
 *  outcome after; a second ACT for the same decision (the agent was killed and
 *  recovers it) gets the recorded outcome, and one still running gets the outcome when
 *  it ends.  Only if meshd itself dies between "started" and "done" does a recovery run
 *  it again: at least once, with the decision id in MESH_DECISION_ID and in the
 *  webhook's Idempotency-Key so the program or the receiver can tell (docs/actions.md).
 *
 *  The pause state is journalled too and survives restarts.  Rate-limit windows are in
 *  memory (a restart forgets what was spent; documented).  Everything here runs in
 *  meshd's main thread but the executions.
 */
#ifndef MESH_ACTIONS_H
#define MESH_ACTIONS_H

#include "config.h"
#include "ledger.h"
#include <czmq.h>
#include <jansson.h>

typedef struct _mesh_actions_t mesh_actions_t;
typedef void (mesh_actions_send_fn) (void *arg, const char *to, json_t *reply);

//  Open the journal in CFG's state_dir (replayed, then compacted) and start the
//  executors.  LEDGER is borrowed (decisions are looked up in it).  NULL with WHY.
mesh_actions_t *mesh_actions_new (const mesh_config_t *cfg, mesh_ledger_t *ledger, char *why,
                                  size_t size);
//  At stop: wait for what runs (the queue included), then collect it (journalled, meshd's
//  own outcomes recorded, waiting agents told through SEND).
void mesh_actions_drain (mesh_actions_t *self, mesh_actions_send_fn *send, void *arg);
//  Stop the executors (waiting for what runs) and close; sets *self_p to NULL.
void mesh_actions_destroy (mesh_actions_t **self_p);
//  The config in force changed (a reload): actions and their limits are read from it.
//  CFG must outlive the next call.
void mesh_actions_reconfigure (mesh_actions_t *self, const mesh_config_t *cfg);
//  The socket to poll: readable when an execution ended (then mesh_actions_collect).
zsock_t *mesh_actions_sock (mesh_actions_t *self);

//  An ACT request {id} from AGENT at routing id FROM.  Returns the reply to send now
//  ({id, verdict, detail?, outcome?, fallback?}), or NULL when the reply comes later
//  through mesh_actions_collect (an execution was started or is running).
json_t *mesh_actions_request (mesh_actions_t *self, const char *from, const char *agent,
                              json_t *body);
//  Take the ended executions: SEND (routing id, reply) for each caller waiting.
void mesh_actions_collect (mesh_actions_t *self, mesh_actions_send_fn *send, void *arg);

//  meshctl pause / resume: AGENT and ACTION may be NULL (all).  Returns the pause state
//  after it ({"all", "agents": [...], "actions": [...]}), or NULL with *ERROR (caller
//  frees) when the journal cannot be written (nothing changed then).
json_t *mesh_actions_pause (mesh_actions_t *self, const char *agent, const char *action,
                            bool pause, char **error);
//  For `meshctl status`: {paused: {...}, running, executed, rate: {action: {used, limit,
//  window_s}}, pending_approvals}.
json_t *mesh_actions_status (mesh_actions_t *self);

//  Approvals.  An action with `approval: required`, or a decision a rule asked approval
//  for (its "approval": {"required": true, "reason"}), is not carried out when its agent
//  asks: it is held here (journalled; it survives restarts), the agent is told
//  "pending_approval" and moves on (it records no outcome: the decision stays decided).
//  `meshctl approve` has meshd carry it out then, `meshctl deny` closes it, and after
//  the action's approval_timeout_s the agent's fallback is carried out instead; in each
//  case meshd records the outcome itself, with who decided and their comment.
typedef void (mesh_actions_record_fn) (void *arg, json_t *record);
//  Where meshd's own outcome records go (the ledger, through main.c's recorder).
void mesh_actions_set_recorder (mesh_actions_t *self, mesh_actions_record_fn *fn, void *arg);
//  The pending approvals: [{id, agent, action, params, reason, requested_at, expires_at,
//  would_run: {argv} | {url}}], oldest first.
json_t *mesh_actions_approvals (mesh_actions_t *self);
//  Approve or deny ID (or a unique prefix of at least 8 hex digits) as BY ({uid, user},
//  borrowed) with COMMENT (may be NULL).  The resolved entry, or NULL with *ERROR.
json_t *mesh_actions_resolve (mesh_actions_t *self, const char *id, bool approve, json_t *by,
                              const char *comment, char **error);
//  Expire what waited longer than its approval_timeout_s (the fallback runs).
void mesh_actions_tick (mesh_actions_t *self);

#endif
