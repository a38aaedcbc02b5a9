/*  event_kafka - stage 1: consume, decode, and keep the offset watermark.
 *  Data path: [event] -> detect -> incident -> reason -> gate -> act -> record.
 *
 *  At-least-once input: enable.auto.offset.store=false, and an offset is stored
 *  (offset + 1, as librdkafka wants) only when everything below it on that
 *  partition is handled.  Auto-commit then commits the stored offsets in the
 *  background.  A rebalance callback commits what is stored before partitions
 *  are revoked and forgets their watermarks; an event still in flight on a
 *  revoked partition is re-delivered to the new owner, whose ledger lookup finds
 *  the decision already recorded and does not repeat it.
 *
 *  Both clients here start from common/kafka_conf.c (TLS, SASL, kafka.properties).
 *  Before the consumer is handed over, it learns what identifies the history of the
 *  partitions it reads - the cluster id, and the embedded broker's incarnation -
 *  because decision ids derive from it and offsets alone repeat when a broker starts
 *  afresh.  The wait is bounded, and a client that cannot connect (wrong listener,
 *  TLS or SASL refused) fails here with librdkafka's most telling error, once.
 */
#include "event_kafka.h"
#include "kafka_conf.h"
#include "log.h"
#include "ratelog.h"

#include <czmq.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char *topic;
    int32_t partition;
    int64_t next;                   //  one past the highest offset seen
    int64_t *held;                  //  offsets in flight, unsorted (few)
    size_t held_count, held_cap;
    bool dirty;                     //  the watermark moved since the last store
    int64_t committed;              //  the group's offset when assigned (-1: none)
} s_partition_t;

struct _mesh_event_kafka_t {
    const mesh_agent_config_t *agent;
    rd_kafka_t *rk;
    rd_kafka_message_t *current;
    json_t *current_json;
    s_partition_t *parts;
    size_t part_count;
    uint64_t malformed;
    uint64_t malformed_by[MESH_EVENT_REASON_COUNT_];
    size_t held_total;
    mesh_ratelog_t *ratelog;        //  malformed messages, one kind per reason
    int64_t last_flush;             //  monotonic ms of the last offsets store
    bool paused;                    //  backpressure: every assigned partition is paused
    rd_kafka_t *dlq;                //  producer for dead_letter_topic, or NULL
    uint64_t dead_lettered, dead_letter_failed;
    size_t dead_letter_pending;     //  copies produced, not yet acknowledged or failed
    char *cluster_id;               //  the brokers' cluster id, known before the first poll
    char *incarnation;              //  the embedded broker's incarnation, or NULL
    bool starting;                  //  in the cluster id wait: errors are kept, not logged
    char last_error[512];           //  the most telling client error seen while starting
    bool telling;                   //  ... it says what failed, not just "Disconnected"
    mesh_event_kafka_guard_fn *guard;   //  poison messages: skip this one?
    void *guard_arg;
};

static s_partition_t *
s_partition (mesh_event_kafka_t *self, const char *topic, int32_t partition, bool create)
{
    for (size_t i = 0; i < self->part_count; i++)
        if (self->parts[i].partition == partition && strcmp (self->parts[i].topic, topic) == 0)
            return &self->parts[i];
    if (!create)
        return NULL;
    self->parts = realloc (self->parts, (self->part_count + 1) * sizeof *self->parts);
    s_partition_t *p = &self->parts[self->part_count++];
    *p = (s_partition_t) {.topic = strdup (topic), .partition = partition, .next = -1,
                          .committed = -1};
    return p;
}

static void
s_partition_forget (mesh_event_kafka_t *self, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < self->part_count; i++) {
        s_partition_t *p = &self->parts[i];
        if (p->partition == partition && strcmp (p->topic, topic) == 0) {
            self->held_total -= p->held_count;
            free (p->topic);
            free (p->held);
            self->parts[i] = self->parts[--self->part_count];
            return;
        }
    }
}

//  The watermark of P moved; it is stored with the next flush (every 100 ms, before a
//  revoke's commit and at close), so a busy partition costs one store per flush, not
//  one per message.
static void
s_store (mesh_event_kafka_t *self, s_partition_t *p)
{
    (void) self;
    if (p->next >= 0)
        p->dirty = true;
}

//  Store the watermark of every partition that moved: the lowest held offset, or one past
//  the last seen.
static void
s_flush (mesh_event_kafka_t *self)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new (4);
    for (size_t i = 0; i < self->part_count; i++) {
        s_partition_t *p = &self->parts[i];
        if (!p->dirty)
            continue;
        int64_t mark = p->next;
        for (size_t h = 0; h < p->held_count; h++)
            if (p->held[h] < mark)
                mark = p->held[h];
        rd_kafka_topic_partition_list_add (list, p->topic, p->partition)->offset = mark;
        p->dirty = false;
    }
    if (list->cnt > 0 && rd_kafka_offsets_store (self->rk, list) != 0) {
        for (int i = 0; i < list->cnt; i++) {
            //  __STATE: no longer assigned to us (revoked meanwhile); its new owner re-reads
            //  from the last commit, which is what at-least-once wants.
            rd_kafka_topic_partition_t *e = &list->elems[i];
            if (e->err && e->err != RD_KAFKA_RESP_ERR__STATE)
                mesh_warn ("event: cannot store offset %s[%d]@%lld: %s", e->topic, e->partition,
                           (long long) e->offset, rd_kafka_err2str (e->err));
        }
    }
    rd_kafka_topic_partition_list_destroy (list);
    self->last_flush = zclock_mono ();
}

void
mesh_event_kafka_flush (mesh_event_kafka_t *self)
{
    s_flush (self);
}

void
mesh_event_kafka_pause (mesh_event_kafka_t *self, bool pause)
{
    if (pause == self->paused)
        return;
    rd_kafka_topic_partition_list_t *list = NULL;
    if (rd_kafka_assignment (self->rk, &list) == 0 && list) {
        if (pause)
            rd_kafka_pause_partitions (self->rk, list);
        else
            rd_kafka_resume_partitions (self->rk, list);
        rd_kafka_topic_partition_list_destroy (list);
    }
    self->paused = pause;
    mesh_info ("event: %s consumption (reasoning queue %s)", pause ? "paused" : "resumed",
               pause ? "full" : "has room");
}

bool
mesh_event_kafka_paused (const mesh_event_kafka_t *self)
{
    return self->paused;
}

static void
s_rebalance (rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
             void *opaque)
{
    mesh_event_kafka_t *self = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        mesh_info ("event: assigned %d partition(s)", parts->cnt);
        for (int i = 0; i < parts->cnt; i++)
            s_partition_forget (self, parts->elems[i].topic, parts->elems[i].partition);
        //  Where the group stands on each partition: the consumer's position says nothing
        //  until a message arrives, and a partition already consumed to its end never
        //  sends one - without this its whole length would count as lag.
        rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_copy (parts);
        if (rd_kafka_committed (rk, committed, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
            for (int i = 0; i < committed->cnt; i++)
                s_partition (self, committed->elems[i].topic, committed->elems[i].partition,
                             true)->committed = committed->elems[i].offset;
        rd_kafka_topic_partition_list_destroy (committed);
        rd_kafka_assign (rk, parts);
        //  librdkafka keeps a partition's pause flag across a revoke and a new assignment:
        //  set it explicitly either way, or a partition paused before a rebalance stays
        //  paused for good.
        if (self->paused)
            rd_kafka_pause_partitions (rk, parts);
        else
            rd_kafka_resume_partitions (rk, parts);
    }
    else {
        mesh_info ("event: %d partition(s) revoked", parts->cnt);
        s_flush (self);
        if (!rd_kafka_assignment_lost (rk))
            rd_kafka_commit (rk, NULL, 0);      //  synchronously, what is stored
        for (int i = 0; i < parts->cnt; i++)
            s_partition_forget (self, parts->elems[i].topic, parts->elems[i].partition);
        rd_kafka_assign (rk, NULL);
    }
}

//  A dead-letter copy in flight: where its source message is, whose offset is held.
typedef struct {
    char *topic;
    int32_t partition;
    int64_t offset;
} s_letter_t;

static void
s_dead_letter_failed (mesh_event_kafka_t *self, const char *topic, int32_t partition,
                      int64_t offset, rd_kafka_resp_err_t err)
{
    //  Every one is logged with its coordinates: the line is what is left of the message
    //  once its offset moves on (the source topic still holds it until retention).
    self->dead_letter_failed++;
    mesh_err ("event: cannot dead-letter %s/%d/%lld to %s: %s; its offset moves on (counted "
              "as dead_letter_failed)", topic, partition, (long long) offset,
              self->agent->dead_letter_topic, rd_kafka_err2str (err));
}

//  The dead-letter broker acknowledged a copy, or it failed (at the latest after
//  events.dead_letter_timeout_ms): either way its source offset is released.  Runs on the
//  consumer thread, from rd_kafka_poll in mesh_event_kafka_poll or destroy.
static void
s_dlq_report (rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    (void) rk;
    mesh_event_kafka_t *self = opaque;
    s_letter_t *letter = msg->_private;
    if (!letter)
        return;
    if (msg->err)
        s_dead_letter_failed (self, letter->topic, letter->partition, letter->offset, msg->err);
    else
        self->dead_lettered++;
    self->dead_letter_pending--;
    mesh_event_kafka_done (self, letter->topic, letter->partition, letter->offset);
    free (letter->topic);
    free (letter);
}

//  Client-wide errors (transport, authentication, all brokers down).  While starting they
//  are kept for the one message that says why the cluster id never came; later they are
//  logged as they come, as they used to be when they arrived as consumer messages.
//  librdkafka's transport and authentication errors name brokers and mechanisms, never a
//  property value, so they are safe to log.
static void
s_client_error (rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    mesh_event_kafka_t *self = opaque;
    if (self->starting) {
        //  The first is the telling one ("SSL handshake failed: ... PLAINTEXT broker
        //  listener?"); what follows is "Disconnected" and "all brokers are down".
        bool telling = strcasestr (reason, "fail") || strcasestr (reason, "error")
                    || strcasestr (reason, "certificate");
        if (err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN
            && (!self->last_error[0] || (telling && !self->telling))) {
            snprintf (self->last_error, sizeof self->last_error, "%s", reason);
            self->telling = telling;
        }
        return;
    }
    mesh_warn ("event: consumer: %s", reason);
}

//  What identifies the history of the partitions read: the cluster id, and for the
//  embedded broker the incarnation meshd drew at its start.  The cluster id comes with the
//  first Metadata response (v2 and later), so one is asked for at once and the wait is
//  bounded; without it no decision id could be made, so the agent does not start.
static int
s_identify (mesh_event_kafka_t *self, const mesh_config_t *cfg, const char *brokers)
{
    if (cfg->embedded) {
        const char *incarnation = getenv (MESH_BROKER_INCARNATION_ENV);
        if (!incarnation || strlen (incarnation) != 32
            || strspn (incarnation, "0123456789abcdef") != 32) {
            mesh_err ("event: brokers is \"embedded\" but no broker incarnation was passed "
                      "(%s); mesh-agent is started by meshd, which runs the broker",
                      MESH_BROKER_INCARNATION_ENV);
            return -1;
        }
        self->incarnation = strdup (incarnation);
    }
    //  The agent sends no heartbeat before it runs: the wait, with the start-up before it
    //  (slow under a sanitizer), must end well within the liveness timeout, or the
    //  supervisor kills the agent before it could say why.
    int wait_ms = cfg->liveness_timeout_ms > 0 ? cfg->liveness_timeout_ms / 4 : 2500;
    if (wait_ms > 5000)
        wait_ms = 5000;
    if (wait_ms < 500)
        wait_ms = 500;
    int64_t deadline = zclock_mono () + wait_ms;
    bool answered = false;
    rd_kafka_resp_err_t failed = RD_KAFKA_RESP_ERR__TIMED_OUT;
    self->starting = true;
    char *id = NULL;
    while (!(id = rd_kafka_clusterid (self->rk, 0)) && !answered) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            break;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata (self->rk, 0, NULL, &md,
                                                     (int) (left < 500 ? left : 500));
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_metadata_destroy (md);
            answered = true;            //  a broker answered: the id is cached, or it has none
        }
        else
            failed = err;
        rd_kafka_poll (self->rk, err ? 100 : 0);   //  serves s_client_error
    }
    self->starting = false;
    if (!id) {
        if (answered)
            mesh_err ("event: the brokers at %s answered but report no cluster id (Kafka 0.10.1 "
                      "or later is needed): decision ids could repeat, so the agent does not "
                      "start", brokers);
        else {
            const char *hint = "check kafka.brokers and kafka.security against the brokers' "
                               "listeners";
            if (strstr (self->last_error, "SSL"))
                hint = "the TLS handshake failed: do these brokers' listeners speak TLS, and "
                       "is kafka.security.ssl.ca_file their CA?";
            else
            if (strstr (self->last_error, "SASL"))
                hint = "SASL authentication failed: check kafka.security.sasl (mechanism, "
                       "username, password file) against the brokers' listeners";
            mesh_err ("event: no usable connection to the brokers at %s within %d ms: %s (%s)",
                      brokers, wait_ms,
                      self->last_error[0] ? self->last_error : rd_kafka_err2str (failed), hint);
        }
        return -1;
    }
    self->cluster_id = strdup (id);
    rd_kafka_mem_free (self->rk, id);
    mesh_info ("event: cluster %s%s%s", self->cluster_id,
               self->incarnation ? ", embedded broker incarnation " : "",
               self->incarnation ? self->incarnation : "");
    return 0;
}

static bool
s_set (rd_kafka_conf_t *conf, const char *key, const char *value)
{
    char err[512];
    if (rd_kafka_conf_set (conf, key, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
        mesh_err ("event: kafka setting %s: %s", key, err);
        return false;
    }
    return true;
}

mesh_event_kafka_t *
mesh_event_kafka_new (const mesh_config_t *cfg, const mesh_agent_config_t *agent,
                      const char *brokers, const char *instance)
{
    char session[32], commit[32], prefetch[32];
    snprintf (session, sizeof session, "%d", cfg->session_timeout_ms);
    snprintf (commit, sizeof commit, "%d", cfg->commit_interval_ms);
    //  librdkafka 2.0.2 stops fetching for a fixed second whenever the consumer queue
    //  (all partitions together) holds queued.min.messages; at its default of 100,000
    //  small messages a consumer faster than that drains the queue in a tenth of a
    //  second and then waits, capping it near 100,000-200,000 messages per second.
    snprintf (prefetch, sizeof prefetch, "%d",
              cfg->prefetch_messages > 0 ? cfg->prefetch_messages : MESH_PREFETCH_DEFAULT);
    char *why = NULL;
    rd_kafka_conf_t *conf = mesh_kafka_conf_new (cfg, brokers, &why);
    if (!conf) {
        mesh_err ("event: %s", why);
        free (why);
        return NULL;
    }
    if (!s_set (conf, "group.id", agent->group)
        || !s_set (conf, "client.id", instance)
        || !s_set (conf, "enable.auto.offset.store", "false")
        || !s_set (conf, "enable.auto.commit", "true")
        || !s_set (conf, "auto.commit.interval.ms", commit)
        || !s_set (conf, "auto.offset.reset", "earliest")
        || !s_set (conf, "session.timeout.ms", session)
        || !s_set (conf, "queued.min.messages", prefetch)
        || !s_set (conf, "heartbeat.interval.ms", "500")
        || !s_set (conf, "partition.assignment.strategy", "range,roundrobin")) {
        rd_kafka_conf_destroy (conf);
        return NULL;
    }
    mesh_event_kafka_t *self = calloc (1, sizeof *self);
    self->agent = agent;
    self->ratelog = mesh_ratelog_new (10000);
    rd_kafka_conf_set_rebalance_cb (conf, s_rebalance);
    rd_kafka_conf_set_error_cb (conf, s_client_error);
    rd_kafka_conf_set_opaque (conf, self);
    char err[512];
    self->rk = rd_kafka_new (RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!self->rk) {
        rd_kafka_conf_destroy (conf);           //  librdkafka keeps it only on success
        mesh_err ("event: cannot create consumer: %s", err);
        free (self);
        return NULL;
    }
    //  Before the main queue is handed to the consumer: rd_kafka_poll serves errors.
    if (s_identify (self, cfg, brokers) != 0) {
        mesh_event_kafka_destroy (&self);
        return NULL;
    }
    rd_kafka_poll_set_consumer (self->rk);
    if (agent->dead_letter_topic) {
        rd_kafka_conf_t *pconf = mesh_kafka_conf_new (cfg, brokers, &why);
        if (!pconf) {
            mesh_err ("event: dead-letter producer: %s", why);
            free (why);
            mesh_event_kafka_destroy (&self);
            return NULL;
        }
        char timeout[32];
        snprintf (timeout, sizeof timeout, "%d",
                  agent->events.dead_letter_timeout_ms > 0 ? agent->events.dead_letter_timeout_ms
                                                           : 5000);
        //  message.timeout.ms bounds how long a copy holds its source offset back; the
        //  consumer thread itself never waits for the dead-letter broker.
        if (!s_set (pconf, "enable.idempotence", "true")
            || !s_set (pconf, "message.timeout.ms", timeout)) {
            rd_kafka_conf_destroy (pconf);
            mesh_event_kafka_destroy (&self);
            return NULL;
        }
        rd_kafka_conf_set_dr_msg_cb (pconf, s_dlq_report);
        rd_kafka_conf_set_opaque (pconf, self);
        self->dlq = rd_kafka_new (RD_KAFKA_PRODUCER, pconf, err, sizeof err);
        if (!self->dlq) {
            rd_kafka_conf_destroy (pconf);      //  librdkafka keeps it only on success
            mesh_err ("event: cannot create the dead-letter producer: %s", err);
            mesh_event_kafka_destroy (&self);
            return NULL;
        }
    }
    rd_kafka_topic_partition_list_t *topics =
        rd_kafka_topic_partition_list_new ((int) agent->topic_count);
    for (size_t i = 0; i < agent->topic_count; i++)
        rd_kafka_topic_partition_list_add (topics, agent->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t rc = rd_kafka_subscribe (self->rk, topics);
    rd_kafka_topic_partition_list_destroy (topics);
    if (rc) {
        mesh_err ("event: cannot subscribe: %s", rd_kafka_err2str (rc));
        mesh_event_kafka_destroy (&self);
        return NULL;
    }
    return self;
}

void
mesh_event_kafka_destroy (mesh_event_kafka_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mesh_event_kafka_t *self = *self_p;
    if (self->current)
        rd_kafka_message_destroy (self->current);
    json_decref (self->current_json);
    if (self->dlq) {
        //  Copies in flight: wait for them (within their own timeout), so that their
        //  offsets are stored below, or count and log what is left.
        int timeout = self->agent->events.dead_letter_timeout_ms;
        rd_kafka_flush (self->dlq, timeout > 0 ? timeout : 5000);
        rd_kafka_purge (self->dlq, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll (self->dlq, 0);
    }
    s_flush (self);
    rd_kafka_consumer_close (self->rk);     //  revokes (commits stored offsets), leaves
    rd_kafka_destroy (self->rk);
    if (self->dlq)
        rd_kafka_destroy (self->dlq);
    mesh_ratelog_destroy (&self->ratelog);
    while (self->part_count)
        s_partition_forget (self, self->parts[0].topic, self->parts[0].partition);
    free (self->parts);
    free (self->cluster_id);
    free (self->incarnation);
    free (self);
    *self_p = NULL;
}

//  Event time: a number is epoch seconds (or milliseconds when > 1e11); a string is
//  RFC 3339 "YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm)".
static int
s_time (const mesh_event_field_t *v, int64_t *ts_ms)
{
    if (v->kind == MESH_EVENT_FIELD_NUMBER) {
        double t = v->number;
        if (!isfinite (t) || t < 0 || t >= 9e18)    //  beyond int64 the cast is undefined
            return -1;
        *ts_ms = t > 1e11 ? (int64_t) t : (int64_t) llround (t * 1000.0);
        return 0;
    }
    if (v->kind != MESH_EVENT_FIELD_STRING)
        return -1;
    const char *s = v->text;
    struct tm tm = {0};
    const char *rest = strptime (s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        return -1;
    //  Fraction and offset are matched digit by digit: strtod would also take an
    //  exponent ("20.5e3Z"), and sscanf a one-digit or signed hour ("+1:00", "+-1:00"),
    //  after which skipping six characters would run past the end of the string.
    //  Digits beyond milliseconds are dropped.
    int64_t frac_ms = 0;
    if (*rest == '.') {
        size_t n = strspn (rest + 1, "0123456789");
        if (n == 0)
            return -1;
        for (size_t i = 1; i <= 3; i++)
            frac_ms = frac_ms * 10 + (i <= n ? rest[i] - '0' : 0);
        rest += 1 + n;
    }
    long offset_s = 0;
    if (*rest == 'Z')
        rest++;
    else
    if (*rest == '+' || *rest == '-') {
        if (strspn (rest + 1, "0123456789") != 2 || rest[3] != ':'
            || strspn (rest + 4, "0123456789") < 2)
            return -1;
        int hh = (rest[1] - '0') * 10 + (rest[2] - '0');
        int mm = (rest[4] - '0') * 10 + (rest[5] - '0');
        offset_s = (hh * 3600L + mm * 60L) * (*rest == '-' ? -1 : 1);
        rest += 6;
    }
    else
        return -1;
    if (*rest)
        return -1;
    *ts_ms = ((int64_t) timegm (&tm) - offset_s) * 1000 + frac_ms;
    return 0;
}

int
mesh_event_decode (const mesh_agent_config_t *agent, const char *payload, size_t len,
                   mesh_event_t *event, json_t **json_p, const char **why)
{
    *json_p = NULL;
    event->json = NULL;
    event->raw = payload;
    event->raw_len = len;
    mesh_event_field_t time_field;
    if (mesh_event_scan (agent, payload, len, event, &time_field, why) != 0)
        return -1;
    if (time_field.kind == MESH_EVENT_FIELD_ABSENT)
        event->ts_ms = -1;              //  the caller falls back to the broker timestamp
    else
    if (s_time (&time_field, &event->ts_ms) != 0) {
        *why = mesh_event_why_time;
        return -1;
    }
    return 0;
}

int
mesh_event_check_time (const mesh_agent_config_t *agent, int64_t event_ms, int64_t wall_ms,
                       const char **why)
{
    if (event_ms > wall_ms + (int64_t) agent->events.max_future_skew_s * 1000) {
        *why = "out_of_window: event time more than events.max_future_skew_s ahead of the "
               "wall clock";
        return -1;
    }
    if (agent->events.max_event_age_s > 0
        && event_ms < wall_ms - (int64_t) agent->events.max_event_age_s * 1000) {
        *why = "out_of_window: event time older than events.max_event_age_s";
        return -1;
    }
    return 0;
}

json_t *
mesh_event_parse (mesh_event_t *event)
{
    if (!event->json && event->raw) {
        json_error_t jerr;
        event->json = json_loadb (event->raw, event->raw_len, JSON_REJECT_DUPLICATES, &jerr);
    }
    return event->json;
}

//  Copy a malformed message to the dead-letter topic, with why and where it came from in
//  headers: meshd-reason (the reason's name), meshd-error (the whole why), meshd-origin
//  (topic/partition/offset).  The produce never waits: the source offset is held until
//  the copy is acknowledged or fails (s_dlq_report).  True if the offset is now held.
static bool
s_dead_letter (mesh_event_kafka_t *self, const rd_kafka_message_t *msg, const char *why,
               mesh_event_reason_t reason)
{
    if (!self->dlq)
        return false;
    const char *topic = rd_kafka_topic_name (msg->rkt);
    char origin[512];
    snprintf (origin, sizeof origin, "%s/%d/%lld", topic, msg->partition,
              (long long) msg->offset);
    rd_kafka_headers_t *headers = rd_kafka_headers_new (3);
    rd_kafka_header_add (headers, "meshd-reason", -1, mesh_event_reason_name (reason), -1);
    rd_kafka_header_add (headers, "meshd-error", -1, why, -1);
    rd_kafka_header_add (headers, "meshd-origin", -1, origin, -1);
    s_letter_t *letter = calloc (1, sizeof *letter);
    if (letter)
        *letter = (s_letter_t) {.topic = strdup (topic), .partition = msg->partition,
                                .offset = msg->offset};
    rd_kafka_resp_err_t err = !letter || !letter->topic ? RD_KAFKA_RESP_ERR__FAIL
        : rd_kafka_producev (
            self->dlq, RD_KAFKA_V_TOPIC (self->agent->dead_letter_topic),
            RD_KAFKA_V_KEY (msg->key, msg->key_len), RD_KAFKA_V_VALUE (msg->payload, msg->len),
            RD_KAFKA_V_MSGFLAGS (RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS (headers),
            RD_KAFKA_V_OPAQUE (letter), RD_KAFKA_V_END);
    if (err) {
        rd_kafka_headers_destroy (headers);
        if (letter)
            free (letter->topic);
        free (letter);
        s_dead_letter_failed (self, topic, msg->partition, msg->offset, err);
        return false;
    }
    mesh_event_kafka_hold (self, topic, msg->partition, msg->offset);
    self->dead_letter_pending++;
    return true;
}

uint64_t
mesh_event_kafka_dead_lettered (const mesh_event_kafka_t *self)
{
    return self->dead_lettered;
}

uint64_t
mesh_event_kafka_dead_letter_failed (const mesh_event_kafka_t *self)
{
    return self->dead_letter_failed;
}

uint64_t
mesh_event_kafka_malformed_by (const mesh_event_kafka_t *self, mesh_event_reason_t reason)
{
    return (unsigned) reason < MESH_EVENT_REASON_COUNT_ ? self->malformed_by[reason] : 0;
}

//  A message that is no event: counted under its reason, logged (at most one line per
//  reason and 10 s, then a summary), copied to the dead-letter topic, its offset stored.
static void
s_malformed (mesh_event_kafka_t *self, const rd_kafka_message_t *msg, s_partition_t *p,
             const char *why)
{
    static const char *const kinds[] = {
#define S_REASON_KIND(tag, name) "event: malformed message (" name ")",
        MESH_EVENT_REASONS (S_REASON_KIND)
#undef S_REASON_KIND
    };
    mesh_event_reason_t reason = mesh_event_reason_of (why);
    self->malformed++;
    self->malformed_by[reason]++;
    mesh_ratelog_hit (self->ratelog, kinds[reason], "%s[%d]@%lld skipped: %s",
                      rd_kafka_topic_name (msg->rkt), msg->partition, (long long) msg->offset,
                      why);
    if (!s_dead_letter (self, msg, why, reason))
        s_store (self, p);
}

void
mesh_event_kafka_set_guard (mesh_event_kafka_t *self, mesh_event_kafka_guard_fn *fn, void *arg)
{
    self->guard = fn;
    self->guard_arg = arg;
}

//  The guard's word on MSG, before anything reads its bytes: a quarantined message is
//  counted as malformed (quarantined), dead-lettered and its offset stored, unhandled.  True if it was skipped.
static bool
s_guarded (mesh_event_kafka_t *self, const rd_kafka_message_t *msg, s_partition_t *p)
{
    if (!self->guard)
        return false;
    const char *why = self->guard (self->guard_arg, p->topic, msg->partition, msg->offset);
    if (!why)
        return false;
    mesh_warn ("event: message %s[%d]@%lld skipped: %s", p->topic, msg->partition,
               (long long) msg->offset, why);
    self->malformed++;
    self->malformed_by[MESH_EVENT_QUARANTINED]++;
    if (!s_dead_letter (self, msg, why, MESH_EVENT_QUARANTINED))
        s_store (self, p);
    return true;
}

int
mesh_event_kafka_poll (mesh_event_kafka_t *self, int timeout_ms, mesh_event_t *event)
{
    if (self->current)
        rd_kafka_message_destroy (self->current);
    self->current = NULL;
    json_decref (self->current_json);
    self->current_json = NULL;

    if (self->dead_letter_pending)
        rd_kafka_poll (self->dlq, 0);   //  acknowledgements: release their offsets
    if (zclock_mono () - self->last_flush >= 100) {
        s_flush (self);
        mesh_ratelog_tick (self->ratelog);
    }
    rd_kafka_message_t *msg = rd_kafka_consumer_poll (self->rk, timeout_ms);
    if (!msg)
        return 0;
    if (msg->err) {
        if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            mesh_warn ("event: consumer: %s", rd_kafka_message_errstr (msg));
        rd_kafka_message_destroy (msg);
        return 0;
    }
    self->current = msg;
    const char *topic = rd_kafka_topic_name (msg->rkt);
    s_partition_t *p = s_partition (self, topic, msg->partition, true);
    if (msg->offset + 1 > p->next)
        p->next = msg->offset + 1;
    if (s_guarded (self, msg, p))
        return -1;
    memset (event, 0, sizeof *event);
    event->topic = topic;
    event->partition = msg->partition;
    event->offset = msg->offset;
    const char *why = "?";
    if (mesh_event_decode (self->agent, msg->payload, msg->len, event, &self->current_json, &why)
        != 0) {
        s_malformed (self, msg, p, why);
        return -1;
    }
    if (event->ts_ms < 0) {
        rd_kafka_timestamp_type_t tstype;
        int64_t ts = rd_kafka_message_timestamp (msg, &tstype);
        event->ts_ms = ts >= 0 ? ts : 0;
    }
    //  An event time the wall clock does not believe never reaches the incident clock.
    if (mesh_event_check_time (self->agent, event->ts_ms, zclock_time (), &why) != 0) {
        s_malformed (self, msg, p, why);
        return -1;
    }
    return 1;
}

void
mesh_event_kafka_hold (mesh_event_kafka_t *self, const char *topic, int32_t partition,
                       int64_t offset)
{
    s_partition_t *p = s_partition (self, topic, partition, true);
    if (p->held_count == p->held_cap) {
        p->held_cap = p->held_cap ? p->held_cap * 2 : 8;
        p->held = realloc (p->held, p->held_cap * sizeof *p->held);
    }
    p->held[p->held_count++] = offset;
    self->held_total++;
}

void
mesh_event_kafka_done (mesh_event_kafka_t *self, const char *topic, int32_t partition,
                       int64_t offset)
{
    s_partition_t *p = s_partition (self, topic, partition, false);
    if (!p)
        return;                         //  revoked meanwhile: the new owner re-reads it
    for (size_t i = 0; i < p->held_count; i++)
        if (p->held[i] == offset) {
            p->held[i] = p->held[--p->held_count];
            self->held_total--;
            break;
        }
    s_store (self, p);
}

uint64_t
mesh_event_kafka_malformed (const mesh_event_kafka_t *self)
{
    return self->malformed;
}

int64_t
mesh_event_kafka_lag (mesh_event_kafka_t *self)
{
    rd_kafka_topic_partition_list_t *list = NULL;
    if (rd_kafka_assignment (self->rk, &list) != 0 || !list || list->cnt == 0) {
        if (list)
            rd_kafka_topic_partition_list_destroy (list);
        return -1;
    }
    int64_t lag = 0;
    rd_kafka_position (self->rk, list);
    for (int i = 0; i < list->cnt; i++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_get_watermark_offsets (self->rk, list->elems[i].topic,
                                            list->elems[i].partition, &lo, &hi) != 0
            || hi < 0) {
            lag = -1;               //  no fetch answered yet: unknown, not "caught up"
            break;
        }
        s_partition_t *p = s_partition (self, list->elems[i].topic, list->elems[i].partition,
                                        false);
        int64_t pos = list->elems[i].offset >= 0         ? list->elems[i].offset
                      : p && p->committed >= 0 ? p->committed
                                               : lo > 0 ? lo : 0;
        if (hi > pos)
            lag += hi - pos;
    }
    rd_kafka_topic_partition_list_destroy (list);
    return lag;
}

static int
s_by_lag (const void *a, const void *b)
{
    json_int_t x = json_integer_value (json_object_get (*(json_t *const *) a, "lag"));
    json_int_t y = json_integer_value (json_object_get (*(json_t *const *) b, "lag"));
    return x < y ? 1 : x > y ? -1 : 0;
}

json_t *
mesh_event_kafka_lag_partitions (mesh_event_kafka_t *self, size_t max)
{
    json_t *out = json_array ();
    rd_kafka_topic_partition_list_t *list = NULL;
    if (rd_kafka_assignment (self->rk, &list) != 0 || !list || list->cnt == 0) {
        if (list)
            rd_kafka_topic_partition_list_destroy (list);
        return out;
    }
    rd_kafka_position (self->rk, list);
    json_t **items = calloc ((size_t) list->cnt, sizeof *items);
    size_t n = 0;
    for (int i = 0; items && i < list->cnt; i++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_get_watermark_offsets (self->rk, list->elems[i].topic,
                                            list->elems[i].partition, &lo, &hi) != 0
            || hi < 0)
            continue;
        s_partition_t *p = s_partition (self, list->elems[i].topic, list->elems[i].partition,
                                        false);
        int64_t pos = list->elems[i].offset >= 0         ? list->elems[i].offset
                      : p && p->committed >= 0 ? p->committed
                                               : lo > 0 ? lo : 0;
        items[n++] = json_pack ("{ss si sI}", "topic", list->elems[i].topic, "partition",
                                (int) list->elems[i].partition, "lag",
                                (json_int_t) (hi > pos ? hi - pos : 0));
    }
    rd_kafka_topic_partition_list_destroy (list);
    if (items)
        qsort (items, n, sizeof *items, s_by_lag);
    for (size_t i = 0; i < n; i++) {
        if (i < max && items[i])
            json_array_append_new (out, items[i]);
        else
            json_decref (items[i]);
    }
    free (items);
    return out;
}

size_t
mesh_event_kafka_held (const mesh_event_kafka_t *self)
{
    return self->held_total;
}

const char *
mesh_event_kafka_cluster_id (const mesh_event_kafka_t *self)
{
    return self->cluster_id;
}

const char *
mesh_event_kafka_incarnation (const mesh_event_kafka_t *self)
{
    return self->incarnation;
}
