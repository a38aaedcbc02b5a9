/*  record - stage 7: the agent's side of the decision ledger.
 *  Data path: event -> detect -> incident -> reason -> gate -> act -> [record].
 *
 *  One DEALER socket to the supervisor's agents.ipc per thread that records (ZeroMQ
 *  sockets are not thread-safe).  Every call is a request that waits for its reply:
 *  a decision is durable (written and fsync'd by the supervisor) only when
 *  mesh_record_decision returns 0, and the agent acts only after that.
 */
#ifndef MESH_RECORD_H
#define MESH_RECORD_H

#include "proto.h"
#include "token_port.h"
#include <czmq.h>
#include <jansson.h>
#include <stdint.h>

typedef struct _mesh_record_t mesh_record_t;

//  What a record sent to the ledger may be, well below what the supervisor accepts (a
//  body of MESH_PROTO_MAX_BODY bytes, JSON nested at most 2048 deep by its parser).
#define MESH_RECORD_MAX_BYTES (MESH_PROTO_MAX_BODY - 65536)
#define MESH_RECORD_MAX_DEPTH 128

//  NULL when RECORD (serialised compact) is at most MESH_RECORD_MAX_BYTES and nested at
//  most MESH_RECORD_MAX_DEPTH deep; otherwise why not ("N bytes, over ..."), written to
//  WHY (WHY_SIZE bytes) and returned.
const char *mesh_record_check (json_t *record, char *why, size_t why_size);

typedef enum { MESH_RECORD_NONE, MESH_RECORD_DECIDED, MESH_RECORD_COMPLETE } mesh_record_state_t;

//  The process's credentials for the supervisor: INSTANCE and the token meshd handed over
//  (--auth-fd).  Set once, before any socket is opened; both are copied.
void mesh_record_auth_set (const char *instance, const uint8_t *token, size_t size);
//  Send AUTH {instance, token} on SOCK (a DEALER just connected to agents.ipc), so that
//  the supervisor listens to it.  0, or -1 when no credentials were set or the send failed.
int mesh_record_auth_send (zsock_t *sock);

//  Connect to ENDPOINT with routing id IDENTITY ("<instance>/<n>") plus a random suffix
//  ("<instance>/<n>.<16 hex>": a closed socket's routing id is never used again), cap
//  frames at the protocol's limit, and authenticate.  NULL on failure.
mesh_record_t *mesh_record_new (const char *endpoint, const char *identity, int timeout_ms);
void mesh_record_destroy (mesh_record_t **self_p);
//  Append a decision (borrowed); 0 once the supervisor acknowledged it durable (*seq_p set),
//  -1 on timeout or refusal (logged).  A record that fails mesh_record_check is never
//  sent: its content is replaced, in place, by a minimal one ({type, id, agent,
//  trigger, tokens, verdict "record_refused", action null, record_refused: {why, bytes,
//  sha256}}; trigger and tokens when the decision had them) that
//  is sent instead, so the caller acts on what was recorded: nothing.
int mesh_record_decision (mesh_record_t *self, json_t *decision, int64_t *seq_p);
//  Append the outcome of decision ID; same contract.
int mesh_record_outcome (mesh_record_t *self, json_t *outcome, int64_t *seq_p);
//  What the ledger knows of ID.  *decision_p set (caller owns) when DECIDED and the ledger
//  returned the record.  -1 when the supervisor did not answer.
int mesh_record_lookup (mesh_record_t *self, const char *id, mesh_record_state_t *state_p,
                        json_t **decision_p);

//  The decisions of AGENT that the ledger holds without an outcome (*decisions_p: a JSON
//  array, caller owns).  -1 when the supervisor did not answer.
int mesh_record_pending (mesh_record_t *self, const char *agent, json_t **decisions_p);
//  Ask meshd whether decision ID may act, and have it carry out an exec or webhook
//  action (daemon/actions.h): 0 with *REPLY_P (caller owns: {id, verdict, detail?,
//  outcome?}), or -1 when meshd did not answer within TIMEOUT_MS (at least the socket's
//  own timeout).
int mesh_record_act (mesh_record_t *self, const char *id, int timeout_ms, json_t **reply_p);

//  The token ledger's port over this socket (meshd answers RESERVE and SETTLE): the
//  calls wait up to the socket's timeout; no answer is -1 (the loop makes no call).
mesh_tokens_port_t mesh_record_tokens (mesh_record_t *self);

#endif
