/*  act - stage 6: carry out an accepted (or fallback) decision.
 *  Data path: event -> detect -> incident -> reason -> gate -> [act] -> record.
 *
 *  Only actions declared in config exist; the decision names one and carries its
 *  already-validated params.  Every action carries an idempotency key: the
 *  decision id (the Kafka message key, the log line's id), so a repeat after a
 *  crash is recognisable downstream, and recovery (mesh_act_recover) looks for it on
 *  the action topic before producing again.  In observe mode nothing is executed and
 *  the outcome says "observed".  One file per kind: act_kafka.c, act_log.c.
 */
#ifndef MESH_ACT_H
#define MESH_ACT_H

#include "config.h"
#include <jansson.h>

typedef struct _mesh_act_t mesh_act_t;

//  Create for AGENT; BROKERS is the Kafka bootstrap list (for kafka actions).  Thread-safe
//  once created (the producer is).  NULL and logged on failure.
mesh_act_t *mesh_act_new (const mesh_config_t *cfg, const mesh_agent_config_t *agent,
                          const char *brokers);
void mesh_act_destroy (mesh_act_t **self_p);
typedef struct _mesh_record_t mesh_record_t;

//  Carry out DECISION's action, asking meshd first over RECORD (a worker's socket; NULL:
//  no asking, as in unit tests): it may answer paused, rate_limited (the fallback is
//  taken instead, when it is a log or kafka action), or carry out an exec or webhook
//  action itself.  Returns the outcome record (caller owns): {"type":"outcome", "id",
//  "agent", "action", "status": done|failed|observed|paused|outcome_unknown|skipped,
//  "detail", and meshd's exec or webhook fields, "rate_limited" when the fallback ran}.
//  Status pending_approval (meshd holds it for a human) or resolved (meshd decided and
//  records the outcome itself): the caller records no outcome (mesh_act_owes_outcome).
json_t *mesh_act_run (mesh_act_t *self, json_t *decision, mesh_record_t *record);
//  The same for a decision a previous life recorded and may already have carried out
//  (recovery).  A kafka action is produced only if its topic holds no message keyed by
//  the decision id written since the decision's "ts" (ms, set by the ledger) minus
//  MESH_ACT_SCAN_MARGIN_MS: found -> status "done", detail "already produced at P/O",
//  nothing produced; the topic could not be checked -> status "outcome_unknown",
//  nothing produced (logged as an error: a human must look).  Other kinds as
//  mesh_act_run (a log action repeats a notice line, which is harmless).
json_t *mesh_act_recover (mesh_act_t *self, json_t *decision, mesh_record_t *record);
//  Whether OUTCOME is for the agent to record (false when meshd holds or closed it).
bool mesh_act_owes_outcome (json_t *outcome);

#define MESH_ACT_SCAN_MARGIN_MS     60000       //  clock skew between ledger and broker
#define MESH_ACT_SCAN_TIMEOUT_MS    15000       //  the whole check, metadata to last fetch
#define MESH_ACT_SCAN_MAX_MESSAGES  200000      //  messages read in one check

//  Kind-specific executors (act_kafka.c, act_log.c): 0 done, -1 failed with *detail set
//  (caller frees).
typedef struct _mesh_act_kafka_t mesh_act_kafka_t;
mesh_act_kafka_t *mesh_act_kafka_new (const mesh_config_t *cfg, const char *brokers);
void mesh_act_kafka_destroy (mesh_act_kafka_t **self_p);
int mesh_act_kafka_run (mesh_act_kafka_t *self, const char *topic, const char *key,
                        json_t *message, char **detail);
//  Is a message keyed KEY on TOPIC, written at or after SINCE_MS (epoch ms)?  Reads with
//  a consumer of its own (no group, read_committed) the partitions' ranges from that
//  time (rd_kafka_offsets_for_times) to the high watermark, within TIMEOUT_MS and
//  MAX_MESSAGES.  1 found (*detail "already produced at P/O"), 0 not there (*detail
//  NULL), -1 the check could not finish (*detail says why).  Caller frees *detail.
int mesh_act_kafka_find (mesh_act_kafka_t *self, const char *topic, const char *key,
                         int64_t since_ms, int timeout_ms, long max_messages, char **detail);
int mesh_act_log_run (const char *agent, const char *id, json_t *action, char **detail);

#endif
