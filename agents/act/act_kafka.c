/*  act_kafka - stage 6, kind "kafka": produce one JSON message to a topic.
 *  Data path: event -> detect -> incident -> reason -> gate -> [act] -> record.
 *
 *  The message is keyed by the decision id (the idempotency key: a consumer can
 *  drop a repeat), produced with acks=all and idempotence, and the call waits
 *  for its delivery report so that "done" in the outcome record means the broker
 *  has it.  One producer per agent process, shared by the reasoning workers
 *  (librdkafka producers are thread-safe); each call waits for its own report.
 *
 *  Recovery (mesh_act_kafka_find): before a decision from a previous life is produced
 *  again, the topic is read for its key from the decision's time on, by a consumer of
 *  its own, bounded in time and messages; "cannot tell" is an answer of its own, and
 *  the caller then produces nothing (docs/recovery.md).
 *
 *  TEST ONLY: MESH_TEST_KILL_AFTER_ACT=<file>.  After a successful produce, if the file
 *  holds a number above 0, it is decremented (the file rewritten and fsync'd) and the
 *  process ends with _exit (137) before the outcome can be recorded: the crash that
 *  tests/integration/exactly_once.sh repeats 50 times.  Never set it in production.
 */
#include "act.h"
#include "kafka_conf.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_SCAN_PARTITIONS_MAX 10000     //  partitions of one action topic we check

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

//  Test only (see the top of the file): MESH_TEST_KILL_AFTER_ACT names a file holding a
//  count; while it is above 0, every successful produce decrements it and ends the
//  process with 137 before the outcome can be recorded.  One thread at a time, and the
//  one that decrements is the one that exits, so the count is the number of deaths.
static void
s_test_kill_after_act (void)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    const char *path = getenv ("MESH_TEST_KILL_AFTER_ACT");
    if (!path || !*path)
        return;
    pthread_mutex_lock (&lock);
    FILE *file = fopen (path, "r+");
    static bool warned;
    if (!file && !warned) {
        warned = true;          //  a hook that silently does nothing would pass a crash test
        mesh_warn ("test hook MESH_TEST_KILL_AFTER_ACT: cannot open %s: %s", path,
                   strerror (errno));
    }
    long count = 0;
    if (file && fscanf (file, "%ld", &count) == 1 && count > 0) {
        rewind (file);
        if (ftruncate (fileno (file), 0) == 0 && fprintf (file, "%ld\n", count - 1) > 0
            && fflush (file) == 0 && fsync (fileno (file)) == 0) {
            mesh_warn ("test hook MESH_TEST_KILL_AFTER_ACT: exiting after a produce "
                       "(%ld more)", count - 1);
            _exit (137);
        }
    }
    if (file)
        fclose (file);
    pthread_mutex_unlock (&lock);
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
    else {
        s_test_kill_after_act ();
        *detail = zsys_sprintf ("produced to %s", topic);
    }
    pthread_mutex_destroy (&d.lock);
    pthread_cond_destroy (&d.done);
    return rc;
}

//  --- the check before a recovery produces again -------------------------------------

typedef struct {
    int32_t partition;
    int64_t low, high;                  //  watermarks
    int64_t start;                      //  first offset to read
    bool probe;                         //  reading only high - 1 (see mesh_act_kafka_find)
    bool done;
    bool seen;                          //  a message was read
    int64_t last_ts;                    //  the last one's timestamp, -1 when it has none
} s_part_t;

static int
s_left (int64_t deadline)
{
    int64_t left = deadline - zclock_mono ();
    return left > 0 ? (int) left : 0;
}

//  librdkafka's messages about the checking consumer, at their syslog level, except its
//  remarks on the producer's topic settings it inherits and does not use.
static void
s_scan_log (const rd_kafka_t *rk, int level, const char *facility, const char *text)
{
    if (strcmp (facility, "CONFWARN") != 0)
        mesh_log (level, "act: checking consumer: %s: %s", facility, text);
}

//  A consumer for the check: a copy of the producer's configuration (so the same
//  brokers and the same security settings), without what only a producer has, plus
//  what the check needs.  No group is joined: partitions are assigned, nothing is
//  committed or subscribed (librdkafka 2.0 refuses assign without a group.id, so one
//  is set, named after the decision; it never has members or offsets).
static rd_kafka_t *
s_scan_consumer (mesh_act_kafka_t *self, const char *key, char *err, size_t size)
{
    static const char *producer_only[] = {
        "enable.idempotence", "message.timeout.ms", "delivery.timeout.ms", "dr_msg_cb",
        "dr_cb", "acks",
        "request.required.acks", "linger.ms", "queue.buffering.max.ms"
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_dup_filter (
        rd_kafka_conf (self->rk), sizeof producer_only / sizeof *producer_only, producer_only);
    if (conf)
        rd_kafka_conf_set_log_cb (conf, s_scan_log);
    char group[96];
    snprintf (group, sizeof group, "meshd.recover-check.%.16s", key);
    const char *set[][2] = {
        {"group.id", group},                {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"}, {"enable.partition.eof", "true"},
        {"isolation.level", "read_committed"}, {"auto.offset.reset", "earliest"},
    };
    for (size_t i = 0; conf && i < sizeof set / sizeof *set; i++)
        if (rd_kafka_conf_set (conf, set[i][0], set[i][1], err, size) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy (conf);
            return NULL;
        }
    if (!conf) {
        snprintf (err, size, "out of memory");
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new (RD_KAFKA_CONSUMER, conf, err, size);
    if (!rk)
        rd_kafka_conf_destroy (conf);
    return rk;
}

//  Read every partition not yet done from its start to its high watermark (or its end
//  as read_committed sees it).  1 found (*detail set), 0 read to the end, -1 failed
//  (*detail set): timeout, an error, or more than *budget messages.
static int
s_read (rd_kafka_t *rk, const char *topic, const char *key, s_part_t *parts, size_t count,
        int64_t deadline, long *budget, char **detail)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new ((int) count);
    size_t open = 0;
    for (size_t i = 0; i < count; i++)
        if (!parts[i].done) {
            rd_kafka_topic_partition_list_add (list, topic, parts[i].partition)->offset =
                parts[i].start;
            open++;
        }
    rd_kafka_resp_err_t err = open ? rd_kafka_assign (rk, list) : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy (list);
    if (err) {
        *detail = zsys_sprintf ("cannot assign %s: %s", topic, rd_kafka_err2str (err));
        return -1;
    }
    size_t key_len = strlen (key);
    int rc = 0;
    while (open > 0 && rc == 0) {
        int left = s_left (deadline);
        if (left == 0) {
            *detail = zsys_sprintf ("%s not read to its end in %d ms", topic,
                                    MESH_ACT_SCAN_TIMEOUT_MS);
            rc = -1;
            break;
        }
        rd_kafka_message_t *msg = rd_kafka_consumer_poll (rk, left < 100 ? left : 100);
        if (!msg)
            continue;
        s_part_t *part = NULL;
        for (size_t i = 0; i < count && !part; i++)
            if (parts[i].partition == msg->partition)
                part = &parts[i];
        if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (part && !part->done) {
                part->done = true;
                open--;
            }
        }
        else
        if (msg->err) {
            *detail = zsys_sprintf ("reading %s: %s", topic, rd_kafka_message_errstr (msg));
            rc = -1;
        }
        else
        if (part && !part->done) {
            rd_kafka_timestamp_type_t type;
            int64_t ts = rd_kafka_message_timestamp (msg, &type);
            part->seen = true;
            part->last_ts = type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
            if (--*budget < 0) {
                *detail = zsys_sprintf ("more than %d messages to read in %s",
                                        MESH_ACT_SCAN_MAX_MESSAGES, topic);
                rc = -1;
            }
            else
            if (msg->key && msg->key_len == key_len && memcmp (msg->key, key, key_len) == 0) {
                *detail = zsys_sprintf ("already produced at %" PRId32 "/%" PRId64,
                                        msg->partition, msg->offset);
                rc = 1;
            }
            else
            if (part->probe || msg->offset + 1 >= part->high) {
                part->done = true;
                open--;
            }
        }
        rd_kafka_message_destroy (msg);
    }
    rd_kafka_assign (rk, NULL);
    return rc;
}

int
mesh_act_kafka_find (mesh_act_kafka_t *self, const char *topic, const char *key,
                     int64_t since_ms, int timeout_ms, long max_messages, char **detail)
{
    *detail = NULL;
    if (!self) {
        *detail = strdup ("no producer");
        return -1;
    }
    int64_t deadline = zclock_mono () + timeout_ms;
    char err[512];
    rd_kafka_t *rk = s_scan_consumer (self, key, err, sizeof err);
    if (!rk) {
        *detail = zsys_sprintf ("cannot create the checking consumer: %s", err);
        return -1;
    }
    int rc = -1;
    s_part_t *parts = NULL;
    size_t count = 0;
    rd_kafka_topic_partition_list_t *list = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new (rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rkt ? rd_kafka_metadata (rk, 0, rkt, &md, s_left (deadline))
                                : rd_kafka_last_error ();
    if (!e && (md->topic_cnt != 1 || md->topics[0].err))
        e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    if (e) {
        *detail = zsys_sprintf ("metadata of %s: %s", topic, rd_kafka_err2str (e));
        goto done;
    }
    count = (size_t) md->topics[0].partition_cnt;
    if (count == 0 || count > S_SCAN_PARTITIONS_MAX) {
        *detail = zsys_sprintf ("%s has %zu partitions (1 to %d can be checked)", topic, count,
                                S_SCAN_PARTITIONS_MAX);
        goto done;
    }
    parts = calloc (count, sizeof *parts);
    list = rd_kafka_topic_partition_list_new ((int) count);
    for (size_t i = 0; i < count; i++) {
        parts[i].partition = md->topics[0].partitions[i].id;
        parts[i].last_ts = -1;
        e = rd_kafka_query_watermark_offsets (rk, topic, parts[i].partition, &parts[i].low,
                                              &parts[i].high, s_left (deadline));
        if (e) {
            *detail = zsys_sprintf ("watermarks of %s/%" PRId32 ": %s", topic,
                                    parts[i].partition, rd_kafka_err2str (e));
            goto done;
        }
        rd_kafka_topic_partition_list_add (list, topic, parts[i].partition)->offset = since_ms;
    }
    //  Where each partition's range starts: the first offset written at or after SINCE_MS.
    e = rd_kafka_offsets_for_times (rk, list, s_left (deadline));
    for (int i = 0; !e && i < list->cnt; i++)
        e = list->elems[i].err;
    if (e) {
        *detail = zsys_sprintf ("offsets of %s by time: %s", topic, rd_kafka_err2str (e));
        goto done;
    }
    for (int i = 0; i < list->cnt; i++) {
        s_part_t *part = NULL;
        for (size_t j = 0; j < count && !part; j++)
            if (parts[j].partition == list->elems[i].partition)
                part = &parts[j];
        if (!part)
            continue;
        int64_t offset = list->elems[i].offset;
        if (part->high <= part->low)
            part->done = true;                  //  empty
        else
        if (offset >= 0) {
            part->start = offset > part->low ? offset : part->low;
            part->done = part->start >= part->high;
        }
        else {
            //  "Nothing at or after that time."  Taken only if the last message is older:
            //  a broker that cannot look up by time (librdkafka's mock cluster, a topic
            //  without timestamps) answers so for every lookup; then the whole partition
            //  is read, bounded like the rest.
            part->probe = true;
            part->start = part->high - 1;
        }
    }
    long budget = max_messages;
    rc = s_read (rk, topic, key, parts, count, deadline, &budget, detail);
    bool again = false;
    for (size_t i = 0; rc == 0 && i < count; i++)
        if (parts[i].probe) {
            parts[i].probe = false;
            if (!(parts[i].seen && parts[i].last_ts >= 0 && parts[i].last_ts < since_ms)) {
                parts[i].done = false;
                parts[i].start = parts[i].low;
                again = true;
            }
        }
    if (again)
        rc = s_read (rk, topic, key, parts, count, deadline, &budget, detail);

done:
    if (md)
        rd_kafka_metadata_destroy (md);
    if (list)
        rd_kafka_topic_partition_list_destroy (list);
    if (rkt)
        rd_kafka_topic_destroy (rkt);
    free (parts);
    rd_kafka_consumer_close (rk);
    rd_kafka_destroy (rk);
    return rc;
}
