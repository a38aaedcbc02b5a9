/*  agent - one mesh-agent process: the data path, front to back.
 *
 *      Kafka -> event -> detect -> incident -> reason -> gate -> act -> record
 *
 *  The consumer thread runs event, detect and incident and never waits for a
 *  model; incidents go into a bounded queue; reasoning workers run reason, gate,
 *  record (decision), act, record (outcome), then hand the offset back to the
 *  consumer thread, which stores it.  When the queue is full the consumer stops
 *  polling until there is room (backpressure, nothing dropped).
 */
#ifndef MESH_AGENT_H
#define MESH_AGENT_H

#include "config.h"

typedef struct _mesh_agent_t mesh_agent_t;

//  Create agent AGENT_NAME of CFG (borrowed, outlives the agent) as INSTANCE, talking to the
//  supervisor at ENDPOINT and to Kafka at BROKERS.  NULL and logged if anything is unusable.
mesh_agent_t *mesh_agent_new (const mesh_config_t *cfg, const char *agent_name,
                              const char *instance, const char *endpoint, const char *brokers);
void mesh_agent_destroy (mesh_agent_t **self_p);
//  Poison messages (common/inflight.h): the area meshd gave this life, before run; the
//  agent takes ownership.  Its consumer thread (slot 0) and each reason worker (slot 1 +
//  its index) write there what they handle; quarantined positions are skipped.
typedef struct _mesh_inflight_t mesh_inflight_t;
void mesh_agent_set_inflight (mesh_agent_t *self, mesh_inflight_t **inflight_p);
//  Run until told to stop (SHUTDOWN from the supervisor, SIGTERM/SIGINT, or the supervisor
//  gone); drains in-flight incidents, stores offsets.  Returns the process exit code.
int mesh_agent_run (mesh_agent_t *self);

#endif
