/*  incident - stage 3: de-duplication before any token is spent.
 *  Data path: event -> detect -> [incident] -> reason -> gate -> act -> record.
 *
 *  A cooldown per series, in event time: the first anomalous point of a series
 *  opens an incident; later anomalous points within cooldown_s are suppressed and
 *  counted.  One incident -> at most one reasoning loop.
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

typedef struct {
    char id[65];                        //  decision id: hex SHA-256 of agent/topic/partition/offset
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
} mesh_incident_t;

//  Build an incident from the triggering event (copies everything it needs).
mesh_incident_t *mesh_incident_new (const char *agent, const mesh_event_t *event,
                                    const char *detector, const mesh_detect_info_t *info);
void mesh_incident_destroy (mesh_incident_t **self_p);
//  The incident as JSON (series, value, score, detector, stats, window, started_at, trigger,
//  event).  Caller owns the result.
json_t *mesh_incident_json (const mesh_incident_t *self);
//  The decision id for (agent, topic, partition, offset) into out[65].
void mesh_incident_decision_id (const char *agent, const char *topic, int32_t partition,
                                int64_t offset, char out[65]);

//  The de-duplication table.
typedef struct _mesh_incidents_t mesh_incidents_t;
mesh_incidents_t *mesh_incidents_new (const mesh_incident_config_t *cfg, size_t max_series);
void mesh_incidents_destroy (mesh_incidents_t **self_p);
//  An anomalous point of SERIES at TS_MS: true if it opens a new incident, false if it
//  is suppressed (and counted).
bool mesh_incidents_admit (mesh_incidents_t *self, const char *series, int64_t ts_ms);
uint64_t mesh_incidents_suppressed (const mesh_incidents_t *self);

#endif
