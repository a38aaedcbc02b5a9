/*  act - stage 6: carry out an accepted (or fallback) decision.
 *  Data path: event -> detect -> incident -> reason -> gate -> [act] -> record.
 *
 *  Only actions declared in config exist; the decision names one and carries its
 *  already-validated params.  Every action carries an idempotency key: the
 *  decision id (the Kafka message key, the log line's id), so a repeat after a
 *  crash is recognisable downstream.  In observe mode nothing is executed and the
 *  outcome says "observed".  One file per kind: act_kafka.c, act_log.c.
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
//  Carry out DECISION's action.  Returns the outcome record (caller owns):
//  {"type":"outcome","id","agent","action","status":"done"|"failed"|"observed","detail"}.
json_t *mesh_act_run (mesh_act_t *self, json_t *decision);

//  Kind-specific executors (act_kafka.c, act_log.c): 0 done, -1 failed with *detail set
//  (caller frees).
typedef struct _mesh_act_kafka_t mesh_act_kafka_t;
mesh_act_kafka_t *mesh_act_kafka_new (const mesh_config_t *cfg, const char *brokers);
void mesh_act_kafka_destroy (mesh_act_kafka_t **self_p);
int mesh_act_kafka_run (mesh_act_kafka_t *self, const char *topic, const char *key,
                        json_t *message, char **detail);
int mesh_act_log_run (const char *agent, const char *id, json_t *action, char **detail);

#endif
