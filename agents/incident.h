/*  incident - stage 3: de-duplication before any token is spent.
 *  Data path: event -> detect -> [incident] -> reason -> gate -> act -> record.
 *
 *  Alertmanager's model over anomalous points, in event time: points are grouped
 *  by some of the key fields (group_by); a group fires once it has min_points
 *  points within min_points_span_s, after group_wait_s; a notified group fires
 *  again after group_interval_s when it gained a series, after repeat_interval_s
 *  when it is still firing unchanged, never closer than cooldown_s; a group with
 *  no anomalous point for resolve_s is resolved and forgotten.  Silences mute
 *  points by their key fields in wall-clock time.  "Fire" = open one incident =
 *  one reasoning loop.  Every anomalous point that opens no incident is counted
 *  under exactly one reason.  docs/incidents.md has the whole model.
 *
 *  mesh_incident_t is the unit handed to the reasoning workers: self-contained,
 *  owned by whoever holds it, freed with mesh_incident_destroy.
 */
#ifndef MESH_INCIDENT_H
#define MESH_INCIDENT_H

#include "config.h"
#include "detect.h"
#include "event.h"
#include <jansson.h>

//  What identifies the history of the partitions an agent reads: offsets repeat when a
//  broker starts afresh (the embedded one at every meshd start) or a cluster is rebuilt, so
//  a decision id names the history too.  Both NULL: unknown (unit tests only).
typedef struct {
    const char *cluster_id;             //  the brokers' cluster id (rd_kafka_clusterid)
    const char *incarnation;            //  the embedded broker's incarnation; NULL otherwise
} mesh_incident_history_t;

typedef struct {
    char id[65];                        //  decision id: see mesh_incident_decision_id
    char *cluster_id;                   //  the history it was opened in (NULL: unknown)
    char *incarnation;
    char *agent;
    char *topic;
    int32_t partition;
    int64_t offset;
    char *series;
    double value;
    int64_t ts_ms;                      //  event time of the triggering point
    char *detector;
    mesh_detect_info_t info;
    json_t *event;                      //  the triggering message (owned reference)
    json_t *group;                      //  the group it speaks for (owned), or NULL; see below
} mesh_incident_t;

//  Build an incident from the triggering event (copies everything it needs), opened in
//  HISTORY (may be NULL: unknown).
mesh_incident_t *mesh_incident_new (const char *agent, const mesh_incident_history_t *history,
                                    const mesh_event_t *event, const char *detector,
                                    const mesh_detect_info_t *info);
void mesh_incident_destroy (mesh_incident_t **self_p);
//  The incident as JSON (series, value, score, detector, stats, window, started_at, trigger,
//  and group when it has one).  Caller owns the result.
json_t *mesh_incident_json (const mesh_incident_t *self);
//  The decision's trigger: {topic, partition, offset, cluster_id?, incarnation?}, the last
//  two when known.  Caller owns.
json_t *mesh_incident_trigger_json (const mesh_incident_t *self);
//  The decision id into out[65]: hex SHA-256 of (agent, topic, partition, offset) and, when
//  HISTORY is given, its cluster id and incarnation, so that the same offset in another
//  broker incarnation or cluster never has the same id.  HISTORY NULL (or both fields
//  NULL) gives the id of the first releases, over the coordinates alone.
void mesh_incident_decision_id (const mesh_incident_history_t *history, const char *agent,
                                const char *topic, int32_t partition, int64_t offset,
                                char out[65]);

//  Why an anomalous point opened no incident.  Each point is counted once, under the
//  reason that held it when it stopped being a candidate.
typedef enum {
    MESH_SUPPRESS_SILENCED,             //  an active silence matched it
    MESH_SUPPRESS_BELOW_MIN,            //  its group had fewer than min_points in the span
    MESH_SUPPRESS_WAITING,              //  a newer point replaced it during group_wait
    MESH_SUPPRESS_GROUPED,              //  merged into a notified group within group_interval
    MESH_SUPPRESS_REPEAT,               //  its group was notified, unchanged, within repeat
    MESH_SUPPRESS_COOLDOWN,             //  due, but within cooldown_s of the last incident
    MESH_SUPPRESS_EVICTED,              //  waiting in a group that the bounded table evicted
    MESH_SUPPRESS_COUNT_
} mesh_suppress_t;

//  Stable lower-case name ("silenced", "below_min", ...).
const char *mesh_suppress_name (mesh_suppress_t reason);

//  The de-duplication table of one agent instance.  Not thread-safe: the consumer
//  thread owns it.
typedef struct _mesh_incidents_t mesh_incidents_t;

//  Create for AGENT.  With STATE_DIR, group state is loaded from and saved to
//  STATE_DIR/incidents/<INSTANCE>.json (a missing file starts empty; a corrupt one
//  is set aside as .corrupt and the table starts empty, with a warning), and the
//  run-time silences in STATE_DIR/silences.json are followed.  STATE_DIR NULL: no
//  persistence, config silences only (tests).  NULL (logged) if the config is
//  unusable or out of memory.
mesh_incidents_t *mesh_incidents_new (const mesh_agent_config_t *agent, const char *state_dir,
                                      const char *instance);
//  The history of the partitions from now on (copied): the ids of the incidents opened
//  after this call derive from it.  Call once, before the first update.  A state file
//  written under another history (or none) speaks of offsets in a log that no longer
//  exists: its groups and remembered incidents are dropped, with a warning, so that a
//  fresh broker's offsets never reopen an old incident.  0, or -1 (out of memory).
int mesh_incidents_set_history (mesh_incidents_t *self, const char *cluster_id,
                                const char *incarnation);
//  Save the state (with a state dir) and destroy; sets *self_p to NULL; safe on NULL.
void mesh_incidents_destroy (mesh_incidents_t **self_p);
//  Feed every consumed EVENT (ANOMALOUS or not: every event moves event time on - unless
//  it is stamped beyond the wall clock plus events.max_future_skew_s: counted, ignored - and a
//  re-delivered trigger of an incident opened before a restart opens it again).  INFO
//  and DETECTOR describe the score (may be NULL when not anomalous).  Returns how many
//  incidents this event opened; the caller must hold the event's offset once for each
//  and take them with mesh_incidents_next.
size_t mesh_incidents_update (mesh_incidents_t *self, const mesh_event_t *event,
                              bool anomalous, const char *detector,
                              const mesh_detect_info_t *info);
//  Call periodically (every loop is fine) with the wall clock in epoch ms: follows the
//  silences file, moves event time on while the stream is idle (at least a second
//  without events: by the wall time since the last event), and writes the state when
//  due.  Returns how many incidents opened; they hold no offset.  The wall clock given
//  here is also the one silences are judged by.
size_t mesh_incidents_tick (mesh_incidents_t *self, int64_t wall_ms);
//  The next opened incident, oldest first, or NULL.  Caller owns it.
mesh_incident_t *mesh_incidents_next (mesh_incidents_t *self);
//  Opened incidents not yet taken.
size_t mesh_incidents_ready (const mesh_incidents_t *self);
//  Write the state now (no-op without a state dir).  0, or -1 (logged).
int mesh_incidents_save (mesh_incidents_t *self);

//  Counters.
uint64_t mesh_incidents_suppressed (const mesh_incidents_t *self);
uint64_t mesh_incidents_suppressed_by (const mesh_incidents_t *self, mesh_suppress_t reason);
uint64_t mesh_incidents_opened (const mesh_incidents_t *self);
size_t mesh_incidents_groups (const mesh_incidents_t *self);     //  live groups now
size_t mesh_incidents_pending (const mesh_incidents_t *self);    //  points awaiting a verdict
uint64_t mesh_incidents_resolved (const mesh_incidents_t *self);
uint64_t mesh_incidents_evictions (const mesh_incidents_t *self);
//  The counters for the heartbeat, flat integers: suppressed, suppressed_<reason> for
//  each reason, incident_groups, incident_pending (gauges), groups_resolved,
//  group_evictions, member_evictions, incidents_refired, silences_active (gauge),
//  state_errors, incident_out_of_window (events stamped beyond the wall clock plus
//  events.max_future_skew_s: ignored, they move nothing).  Caller owns the object.
json_t *mesh_incidents_counters (const mesh_incidents_t *self);

#endif
