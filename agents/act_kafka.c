/*  act_kafka - stage 6, kind "kafka": produce one JSON message to a topic.
 *  Data path: event -> detect -> incident -> reason -> gate -> [act] -> record.
 *
 *  The message is keyed by the decision id (the idempotency key: a consumer can
 *  drop a repeat), produced with acks=all and idempotence, and the call waits
 *  for its delivery report so that "done" in the outcome record means the broker
 *  has it.  One producer per agent process, shared by the reasoning workers
 *  (librdkafka producers are thread-safe); each call waits for its own report.
 */
#include "act.h"
#include "kafka_conf.h"
#include "log.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <czmq.h>
#include <string.h>

struct _mesh_act_kafka_t {
    rd_kafka_t *rk;
};

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t done;
    bool finished;
    rd_kafka_resp_err_t err;
} s_delivery_t;

static void
s_delivered (rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    s_delivery_t *d = msg->_private;
    if (!d)
        return;
    pthread_mutex_lock (&d->lock);
    d->err = msg->err;
    d->finished = true;
    pthread_cond_signal (&d->done);
    pthread_mutex_unlock (&d->lock);
}

mesh_act_kafka_t *
mesh_act_kafka_new (const mesh_config_t *cfg, const char *brokers)
{
    char err[512];
    char *why = NULL;
    rd_kafka_conf_t *conf = mesh_kafka_conf_new (cfg, brokers, &why);    //  TLS, SASL, properties
    if (!conf) {
        mesh_err ("act_kafka: %s", why);
        free (why);
        return NULL;
    }
    if (rd_kafka_conf_set (conf, "enable.idempotence", "true", err, sizeof err)
               != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set (conf, "message.timeout.ms", "10000", err, sizeof err)
               != RD_KAFKA_CONF_OK) {
        mesh_err ("act_kafka: %s", err);
        rd_kafka_conf_destroy (conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb (conf, s_delivered);
    rd_kafka_t *rk = rd_kafka_new (RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy (conf);           //  librdkafka keeps it only on success
        mesh_err ("act_kafka: cannot create producer: %s", err);
        return NULL;
    }
    mesh_act_kafka_t *self = calloc (1, sizeof *self);
    self->rk = rk;
    return self;
}

void
mesh_act_kafka_destroy (mesh_act_kafka_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mesh_act_kafka_t *self = *self_p;
    rd_kafka_flush (self->rk, 5000);
    rd_kafka_destroy (self->rk);
    free (self);
    *self_p = NULL;
}

int
mesh_act_kafka_run (mesh_act_kafka_t *self, const char *topic, const char *key, json_t *message,
                    char **detail)
{
    if (!self) {
        *detail = strdup ("no producer");
        return -1;
    }
    char *payload = json_dumps (message, JSON_COMPACT | JSON_PRESERVE_ORDER);
    s_delivery_t d = {.finished = false};
    pthread_mutex_init (&d.lock, NULL);
    pthread_cond_init (&d.done, NULL);
    rd_kafka_resp_err_t err = rd_kafka_producev (
        self->rk, RD_KAFKA_V_TOPIC (topic), RD_KAFKA_V_KEY (key, strlen (key)),
        RD_KAFKA_V_VALUE (payload, strlen (payload)), RD_KAFKA_V_MSGFLAGS (RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE (&d), RD_KAFKA_V_END);
    free (payload);
    if (err) {
        *detail = strdup (rd_kafka_err2str (err));
        pthread_mutex_destroy (&d.lock);
        pthread_cond_destroy (&d.done);
        return -1;
    }
    //  rd_kafka_poll serves delivery reports; several workers may poll at once, each
    //  waits until its own report is marked finished.  message.timeout.ms bounds the
    //  wait: librdkafka always reports, with an error once that time is up.
    while (true) {
        pthread_mutex_lock (&d.lock);
        bool finished = d.finished;
        pthread_mutex_unlock (&d.lock);
        if (finished)
            break;
        rd_kafka_poll (self->rk, 50);
    }
    int rc = 0;
    if (d.err) {
        *detail = strdup (rd_kafka_err2str (d.err));
        rc = -1;
    }
    else
        *detail = zsys_sprintf ("produced to %s", topic);
    pthread_mutex_destroy (&d.lock);
    pthread_cond_destroy (&d.done);
    return rc;
}
