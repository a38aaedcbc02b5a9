/*  broker - librdkafka's mock cluster as the embedded broker.
 *
 *  The mock cluster hangs off a client handle; a producer handle that never
 *  produces is the cheapest host.  Topics the agents consume are created up
 *  front with a fixed partition count so that keyed messages spread the same way
 *  on every run.
 */
#include "broker.h"
#include "log.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdlib.h>
#include <string.h>

struct _mesh_broker_t {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mcluster;
    char *bootstraps;
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
    mesh_notice ("embedded broker listening on %s (%zu topics, %d partitions each)",
                 self->bootstraps, cfg->embedded_topic_count, cfg->embedded_partitions);
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
