/*  event_kafka - stage 1: the agent's Kafka consumer.
 *  Data path: [event] -> detect -> incident -> reason -> gate -> act -> record.
 *
 *  A librdkafka high-level consumer in the agent's consumer group.  Messages are
 *  JSON, decoded through the agent's field map into a mesh_event_t.  Offsets are
 *  stored (and auto-committed in the background) only once an event is fully
 *  handled: a message that opened an incident is "held" until its decision and
 *  outcome are recorded, and per partition the stored offset never passes the
 *  lowest held one (a watermark), so a crash re-delivers exactly what was not
 *  finished.  Malformed messages (anything beyond the agent's events: limits or
 *  window included) are counted by cause, logged at a bounded rate per cause,
 *  copied to the agent's dead_letter_topic (if any) with the cause in a header,
 *  and their offsets stored once the copy is acknowledged or has failed (within
 *  events.dead_letter_timeout_ms; the consumer never waits for it): garbage is
 *  "handled" by being counted, it never stalls a partition.  Not thread-safe: the consumer thread owns it; workers report
 *  completions through mesh_event_kafka_done called on that thread.
 */
#ifndef MESH_EVENT_KAFKA_H
#define MESH_EVENT_KAFKA_H

#include "config.h"
#include "event.h"

typedef struct _mesh_event_kafka_t mesh_event_kafka_t;

//  Create the consumer (and the dead-letter producer) with the settings of
//  common/kafka_conf.h, and learn the cluster id before returning: bounded by a quarter of
//  the liveness timeout (0.5 to 5 s).  NULL, with one log line that says why (no answer,
//  TLS or SASL failure, no cluster id, embedded broker without an incarnation).
mesh_event_kafka_t *mesh_event_kafka_new (const mesh_config_t *cfg,
                                          const mesh_agent_config_t *agent, const char *brokers,
                                          const char *instance);
//  What identifies the history of the partitions read, for decision ids: the brokers'
//  cluster id, and with the embedded broker the incarnation meshd drew at its start
//  (NULL with a real cluster).  Borrowed; valid until destroy.
const char *mesh_event_kafka_cluster_id (const mesh_event_kafka_t *self);
const char *mesh_event_kafka_incarnation (const mesh_event_kafka_t *self);
//  Commit what is stored, leave the group, destroy; sets *self_p to NULL; safe on NULL.
void mesh_event_kafka_destroy (mesh_event_kafka_t **self_p);
//  Wait up to TIMEOUT_MS for one message.  1: *event filled (valid until the next poll);
//  0: nothing; -1: a malformed message was consumed, or the guard skipped one
//  (mesh_event_kafka_set_guard): counted, its offset stored, or held until its
//  dead-letter copy is acknowledged or fails.
//  The caller must then call either mesh_event_kafka_done or mesh_event_kafka_hold.
int mesh_event_kafka_poll (mesh_event_kafka_t *self, int timeout_ms, mesh_event_t *event);
//  Decode one message body through AGENT's field map (used by poll; exposed for tests and
//  benchmarks): validate the whole message strictly (event_json.c) and fill series, value
//  and time.  No JSON tree is built: *json_p and event->json are NULL, and event->raw points
//  at PAYLOAD (which must outlive the event).  0, or -1 with *why set to a static reason.
int mesh_event_decode (const mesh_agent_config_t *agent, const char *payload, size_t len,
                       mesh_event_t *event, json_t **json_p, const char **why);

//  Why a message was not an event: one reason per cause, counted apart (heartbeat counters
//  malformed_<name>), named in the log line and in the dead-letter header meshd-reason.
//  Limits are the agent's `events:` keys (docs/configuration.md).
#define MESH_EVENT_REASONS(X)                                                                  \
    X (TRUNCATED, "truncated")          /*  the text ends inside a value                  */ \
    X (SYNTAX, "syntax")                /*  not JSON: a stray character, bad escape, ...  */ \
    X (INVALID_UTF8, "invalid_utf8")    /*  bad UTF-8, "\u0000" or a lone surrogate        */ \
    X (DUPLICATE_KEY, "duplicate_key")  /*  a key twice in one object                     */ \
    X (NON_FINITE, "non_finite")        /*  a real overflowing a double, an integer int64 */ \
    X (TOO_DEEP, "too_deep")            /*  nesting beyond events.max_depth               */ \
    X (TOO_LARGE, "too_large")          /*  more than events.max_bytes                    */ \
    X (TOO_MANY_KEYS, "too_many_keys")  /*  more than events.max_keys keys in all         */ \
    X (NOT_OBJECT, "not_object")        /*  JSON, or not, but not an object at the top    */ \
    X (TOMBSTONE, "tombstone")          /*  a null value (a compaction tombstone)         */ \
    X (MISSING_FIELD, "missing_field")  /*  a key field or the value field is absent      */ \
    X (BAD_FIELD, "bad_field")          /*  a mapped field of the wrong type or unusable  */ \
    X (OUT_OF_WINDOW, "out_of_window")  /*  event time beyond max_future_skew_s / max_age */ \
    X (QUARANTINED, "quarantined")      /*  it ended the agent quarantine_after times     */

typedef enum {
#define S_REASON_ENUM(tag, name) MESH_EVENT_##tag,
    MESH_EVENT_REASONS (S_REASON_ENUM)
#undef S_REASON_ENUM
    MESH_EVENT_REASON_COUNT_
} mesh_event_reason_t;

//  The stable lower-case name of REASON ("truncated", ...).
const char *mesh_event_reason_name (mesh_event_reason_t reason);
//  The reason behind a WHY given by mesh_event_decode / mesh_event_scan.
mesh_event_reason_t mesh_event_reason_of (const char *why);
//  Is EVENT_MS (epoch ms) within AGENT's window of event time around WALL_MS?  0, or -1
//  with *why set (reason MESH_EVENT_OUT_OF_WINDOW).
int mesh_event_check_time (const mesh_agent_config_t *agent, int64_t event_ms, int64_t wall_ms,
                           const char **why);
//  The whole message as a tree, parsed from event->raw on first use and kept in
//  event->json; the event's owner decrefs it (the agent, right after the incident stage).
//  NULL only on out-of-memory (a decoded event is valid JSON).
json_t *mesh_event_parse (mesh_event_t *event);

//  The scanner behind mesh_event_decode (event_json.c).  The time field is handed back
//  raw for the caller's parser.
typedef enum {
    MESH_EVENT_FIELD_ABSENT,
    MESH_EVENT_FIELD_NUMBER,
    MESH_EVENT_FIELD_STRING,
    MESH_EVENT_FIELD_OTHER
} mesh_event_field_kind_t;
typedef struct {
    mesh_event_field_kind_t kind;
    double number;
    char text[64];
} mesh_event_field_t;
int mesh_event_scan (const mesh_agent_config_t *agent, const char *payload, size_t len,
                     mesh_event_t *event, mesh_event_field_t *time_field, const char **why);
//  The why of a time field that does not parse.
extern const char mesh_event_why_time[];
//  The event at (topic, partition, offset) is in flight: do not store past it.
void mesh_event_kafka_hold (mesh_event_kafka_t *self, const char *topic, int32_t partition,
                            int64_t offset);
//  The event is handled: release it and store the partition's new watermark.
void mesh_event_kafka_done (mesh_event_kafka_t *self, const char *topic, int32_t partition,
                            int64_t offset);
uint64_t mesh_event_kafka_malformed (const mesh_event_kafka_t *self);
//  Malformed messages of one REASON.
uint64_t mesh_event_kafka_malformed_by (const mesh_event_kafka_t *self,
                                        mesh_event_reason_t reason);
//  Malformed messages copied to the dead-letter topic (acknowledged by its broker).
uint64_t mesh_event_kafka_dead_lettered (const mesh_event_kafka_t *self);
//  Malformed messages whose copy failed or was not acknowledged within
//  events.dead_letter_timeout_ms: each was logged with its topic, partition and offset.
uint64_t mesh_event_kafka_dead_letter_failed (const mesh_event_kafka_t *self);
//  Store the moved watermarks now (poll does it every 100 ms by itself).
void mesh_event_kafka_flush (mesh_event_kafka_t *self);
//  Backpressure: pause (or resume) every assigned partition, also ones assigned later.
//  Poll must still be called while paused: it serves rebalances and the group session.
void mesh_event_kafka_pause (mesh_event_kafka_t *self, bool pause);
bool mesh_event_kafka_paused (const mesh_event_kafka_t *self);
//  Messages on the assigned partitions not yet consumed (from cached watermarks; no broker
//  round trip).  -1 while it is not known: nothing is assigned, or a partition's high
//  watermark or position is not yet known (just after an assignment, before the first
//  fetch answered) - never 0 for "not yet looked".
int64_t mesh_event_kafka_lag (mesh_event_kafka_t *self);
//  The same per assigned partition, for /metrics: [{"topic","partition","lag"}], the MAX
//  largest lags (partitions whose lag is not known yet are left out).  Caller owns.
json_t *mesh_event_kafka_lag_partitions (mesh_event_kafka_t *self, size_t max);
//  Events held (in flight) right now.
size_t mesh_event_kafka_held (const mesh_event_kafka_t *self);
//  Poison messages: FN (ARG, topic, partition, offset) is called for every message before
//  it is decoded.  It returns NULL to go on, or a reason (static) to skip the message:
//  then it is copied to the dead-letter topic (if any) with that reason, its offset is
//  stored, and poll returns -1 (not counted as malformed).
typedef const char *(mesh_event_kafka_guard_fn) (void *arg, const char *topic,
                                                 int32_t partition, int64_t offset);
void mesh_event_kafka_set_guard (mesh_event_kafka_t *self, mesh_event_kafka_guard_fn *fn,
                                 void *arg);

#endif
