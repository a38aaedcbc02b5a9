/*  broker - the embedded Kafka broker (librdkafka's mock cluster) for the
 *  embedded default: `kafka: { brokers: embedded }`.
 *
 *  It speaks the real Kafka protocol on a loopback port, consumer groups and
 *  offset commits included, and lives inside the meshd process (in librdkafka's
 *  threads), so it lives and dies with the daemon; its data is in memory only.
 *  For demos and tests; production points `brokers` at a real cluster.
 *
 *  Each start is a new incarnation: a fresh broker whose offsets begin at 0 again.  Its
 *  random incarnation id goes into every decision id the agents derive (agents/incident.c),
 *  so that a restarted broker's offsets never repeat the ids of decisions already in the
 *  log.  The mock cluster's own cluster id cannot serve: it is "mockCluster" and the
 *  address of its struct, the same whenever the allocator or a disabled ASLR puts it at
 *  the same place.
 */
#ifndef MESH_BROKER_H
#define MESH_BROKER_H

#include "config.h"
#include "kafka_conf.h"                 //  MESH_BROKER_INCARNATION_ENV
#include <jansson.h>

typedef struct _mesh_broker_t mesh_broker_t;

//  Start a one-broker mock cluster and create cfg->embedded_topics with
//  cfg->embedded_partitions partitions each.  Draws a new incarnation id and publishes it
//  in this process's environment (MESH_BROKER_INCARNATION_ENV), which the agents spawned
//  afterwards inherit.  NULL and logged on failure.
mesh_broker_t *mesh_broker_new (const mesh_config_t *cfg);
void mesh_broker_destroy (mesh_broker_t **self_p);
//  The bootstrap address ("127.0.0.1:PORT"), borrowed.
const char *mesh_broker_bootstraps (const mesh_broker_t *self);
//  The incarnation id: 32 hex digits, random per start.  Borrowed.
const char *mesh_broker_incarnation (const mesh_broker_t *self);
//  The decision-log record of this start: {"type":"broker","event":"start","embedded":true,
//  "incarnation":..., "bootstraps":...}.  Caller owns.
json_t *mesh_broker_record (const mesh_broker_t *self);

#endif
