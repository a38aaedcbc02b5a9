/*  broker - librdkafka's mock cluster as the embedded broker.
 *
 *  The mock cluster hangs off a client handle; a producer handle that never
 *  produces is the cheapest host.  Topics the agents consume are created up
 *  front with a fixed partition count so that keyed messages spread the same way
 *  on every run.  Every start draws a random incarnation id (broker.h says why) and
 *  puts it in the environment before any agent is spawned: the agents' command line
 *  stays as it is, and a test that runs the broker in-process gets it too.
 */
#include "broker.h"
#include "log.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct _mesh_broker_t {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mcluster;
    char *bootstraps;
    char incarnation[33];
};

mesh_broker_t *
mesh_broker_new (const mesh_config_t *cfg)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    //  The host handle never connects anywhere; silence its "no bootstrap.servers" notice.
    rd_kafka_conf_set (conf, "log_level", "3", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new (RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        mesh_err ("broker: %s", err);
        return NULL;
    }
    rd_kafka_mock_cluster_t *mcluster = rd_kafka_mock_cluster_new (rk, 1);
    if (!mcluster) {
        mesh_err ("broker: cannot start the embedded mock cluster");
        rd_kafka_destroy (rk);
        return NULL;
    }
    for (size_t i = 0; i < cfg->embedded_topic_count; i++) {
        rd_kafka_resp_err_t rc = rd_kafka_mock_topic_create (
            mcluster, cfg->embedded_topics[i], cfg->embedded_partitions, 1);
        if (rc)
            mesh_warn ("broker: topic %s: %s", cfg->embedded_topics[i], rd_kafka_err2str (rc));
    }
    mesh_broker_t *self = calloc (1, sizeof *self);
    self->rk = rk;
    self->mcluster = mcluster;
    self->bootstraps = strdup (rd_kafka_mock_cluster_bootstraps (mcluster));
    unsigned char epoch[16];
    if (sodium_init () < 0) {
        mesh_err ("broker: libsodium cannot start");
        mesh_broker_destroy (&self);
        return NULL;
    }
    randombytes_buf (epoch, sizeof epoch);
    sodium_bin2hex (self->incarnation, sizeof self->incarnation, epoch, sizeof epoch);
    if (setenv (MESH_BROKER_INCARNATION_ENV, self->incarnation, 1) != 0) {
        mesh_err ("broker: cannot publish the incarnation: %s", strerror (errno));
        mesh_broker_destroy (&self);
        return NULL;
    }
    mesh_notice ("embedded broker listening on %s (%zu topics, %d partitions each), "
                 "incarnation %s", self->bootstraps, cfg->embedded_topic_count,
                 cfg->embedded_partitions, self->incarnation);
    return self;
}

void
mesh_broker_destroy (mesh_broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mesh_broker_t *self = *self_p;
    rd_kafka_mock_cluster_destroy (self->mcluster);
    rd_kafka_destroy (self->rk);
    free (self->bootstraps);
    free (self);
    *self_p = NULL;
}

const char *
mesh_broker_bootstraps (const mesh_broker_t *self)
{
    return self->bootstraps;
}

const char *
mesh_broker_incarnation (const mesh_broker_t *self)
{
    return self->incarnation;
}

json_t *
mesh_broker_record (const mesh_broker_t *self)
{
    return json_pack ("{s:s, s:s, s:b, s:s, s:s}", "type", "broker", "event", "start",
                      "embedded", 1, "incarnation", self->incarnation, "bootstraps",
                      self->bootstraps);
}
