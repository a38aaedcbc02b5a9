/*  broker - the embedded Kafka broker (librdkafka's mock cluster) for the
 *  embedded default: `kafka: { brokers: embedded }`.
 *
 *  It speaks the real Kafka protocol on a loopback port, consumer groups and
 *  offset commits included, and lives inside the meshd process (in librdkafka's
 *  threads), so it lives and dies with the daemon; its data is in memory only.
 *  For demos and tests; production points `brokers` at a real cluster.
 */
#ifndef MESH_BROKER_H
#define MESH_BROKER_H

#include "config.h"

typedef struct _mesh_broker_t mesh_broker_t;

//  Start a one-broker mock cluster and create cfg->embedded_topics with
//  cfg->embedded_partitions partitions each.  NULL and logged on failure.
mesh_broker_t *mesh_broker_new (const mesh_config_t *cfg);
void mesh_broker_destroy (mesh_broker_t **self_p);
//  The bootstrap address ("127.0.0.1:PORT"), borrowed.
const char *mesh_broker_bootstraps (const mesh_broker_t *self);

#endif
