/*  incident - stage 3: de-duplication before any token is spent.
 *  Data path: event -> detect -> [incident] -> reason -> gate -> act -> record.
 *
 *  Two things live here.  mesh_incident_t is the self-contained unit handed to a
 *  reasoning worker: it copies every string and deep-copies the triggering message
 *  (jansson reference counts are not a safe way to share a tree across threads),
 *  so it outlives the Kafka message it came from.  Its decision id is the SHA-256
 *  of (agent, topic, partition, offset), the key that makes a re-delivered event
 *  find its earlier decision.
 *
 *  mesh_incidents_t is the cooldown table, Alertmanager's repeat_interval in event
 *  time: an anomalous point opens an incident if its series has none open, or if
 *  at least cooldown_s have passed (by the events' own timestamps) since the last
 *  incident it opened; otherwise it is suppressed and counted.  Suppressed points
 *  do not extend the cooldown, so a series that stays anomalous gets one incident
 *  per cooldown, not one ever.  Event time, not wall-clock time, makes the result
 *  the same on a replay or a backlog as live.  The table is a bounded series_table:
 *  evicting a series forgets its cooldown, which at worst admits one extra incident.
 */
#include "incident.h"
#include "log.h"
#include "series_table.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
mesh_incident_decision_id (const char *agent, const char *topic, int32_t partition,
                           int64_t offset, char out[65])
{
    assert (agent);
    assert (topic);
    char part[16], off[24];
    snprintf (part, sizeof part, "%" PRId32, partition);
    snprintf (off, sizeof off, "%" PRId64, offset);
    //  "agent\0topic\0partition\0offset": the NULs keep ("ab","c") apart from ("a","bc").
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init (&st);
    crypto_hash_sha256_update (&st, (const unsigned char *) agent, strlen (agent) + 1);
    crypto_hash_sha256_update (&st, (const unsigned char *) topic, strlen (topic) + 1);
    crypto_hash_sha256_update (&st, (const unsigned char *) part, strlen (part) + 1);
    crypto_hash_sha256_update (&st, (const unsigned char *) off, strlen (off));
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (&st, digest);
    sodium_bin2hex (out, 65, digest, sizeof digest);
}

mesh_incident_t *
mesh_incident_new (const char *agent, const mesh_event_t *event, const char *detector,
                   const mesh_detect_info_t *info)
{
    assert (agent);
    assert (event);
    assert (detector);
    assert (info);
    mesh_incident_t *self = calloc (1, sizeof *self);
    if (!self) {
        mesh_err ("incident: out of memory");
        return NULL;
    }
    const char *topic = event->topic ? event->topic : "";
    self->agent = strdup (agent);
    self->topic = strdup (topic);
    self->series = strndup (event->series, sizeof event->series);
    self->detector = strdup (detector);
    if (event->json)
        self->event = json_deep_copy (event->json);
    if (!self->agent || !self->topic || !self->series || !self->detector
        || (event->json && !self->event)) {
        mesh_err ("incident: out of memory");
        mesh_incident_destroy (&self);
        return NULL;
    }
    self->partition = event->partition;
    self->offset = event->offset;
    self->value = event->value;
    self->ts_ms = event->ts_ms;
    self->info = *info;
    mesh_incident_decision_id (agent, topic, event->partition, event->offset, self->id);
    return self;
}

void
mesh_incident_destroy (mesh_incident_t **self_p)
{
    assert (self_p);
    mesh_incident_t *self = *self_p;
    if (!self)
        return;
    free (self->agent);
    free (self->topic);
    free (self->series);
    free (self->detector);
    json_decref (self->event);
    free (self);
    *self_p = NULL;
}

//  JSON has no inf or NaN; jansson refuses them.  Such a number becomes null.
static json_t *
s_number (double v)
{
    return isfinite (v) ? json_real (v) : json_null ();
}

//  Floor division, so that an event before 1970 still gets the second it fell in.
static int64_t
s_seconds (int64_t ms)
{
    return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

json_t *
mesh_incident_json (const mesh_incident_t *self)
{
    assert (self);
    json_t *window = json_array ();
    int len = self->info.window_len;
    if (len < 0)
        len = 0;
    if (len > MESH_DETECT_WINDOW)
        len = MESH_DETECT_WINDOW;
    for (int i = 0; i < len; i++)
        json_array_append_new (window, s_number (self->info.window[i]));
    json_t *root = json_pack (
        "{s:s, s:o, s:o, s:s, s:o, s:o, s:o, s:I, s:o, s:I, s:I, s:{s:s, s:i, s:I}}",
        "series", self->series,
        "value", s_number (self->value),
        "score", s_number (self->info.score),
        "detector", self->detector,
        "mean", s_number (self->info.mean),
        "stddev", s_number (self->info.stddev),
        "z", s_number (self->info.z),
        "n", (json_int_t) self->info.n,
        "window", window,
        "started_at", (json_int_t) s_seconds (self->ts_ms),
        "ts_ms", (json_int_t) self->ts_ms,
        "trigger", "topic", self->topic, "partition", (int) self->partition,
        "offset", (json_int_t) self->offset);
    if (!root)
        mesh_err ("incident: cannot build the JSON of incident %s", self->id);
    return root;
}

//  --- the cooldown table ----------------------------------------------------------

typedef struct {
    int64_t last_admitted_ms;           //  event time of the series' last incident
    bool open;                          //  an incident has been admitted
} s_cooldown_t;

struct _mesh_incidents_t {
    int64_t cooldown_ms;
    uint64_t suppressed;
    mesh_series_table_t *table;
};

mesh_incidents_t *
mesh_incidents_new (const mesh_incident_config_t *cfg, size_t max_series)
{
    assert (cfg);
    if (cfg->cooldown_s < 0) {
        mesh_err ("incident: cooldown_s %d is negative, expected seconds >= 0", cfg->cooldown_s);
        return NULL;
    }
    mesh_incidents_t *self = calloc (1, sizeof *self);
    if (!self) {
        mesh_err ("incident: out of memory");
        return NULL;
    }
    self->cooldown_ms = (int64_t) cfg->cooldown_s * 1000;
    self->table = mesh_series_table_new (max_series, sizeof (s_cooldown_t));
    if (!self->table) {
        free (self);
        return NULL;
    }
    return self;
}

void
mesh_incidents_destroy (mesh_incidents_t **self_p)
{
    assert (self_p);
    mesh_incidents_t *self = *self_p;
    if (!self)
        return;
    mesh_series_table_destroy (&self->table);
    free (self);
    *self_p = NULL;
}

bool
mesh_incidents_admit (mesh_incidents_t *self, const char *series, int64_t ts_ms)
{
    assert (self);
    assert (series);
    s_cooldown_t *entry = mesh_series_table_touch (self->table, series, NULL);
    if (!entry)
        return true;                    //  out of memory: better a duplicate than a miss
    //  An unsigned difference, so that extreme timestamps cannot overflow.
    if (!entry->open
        || (ts_ms >= entry->last_admitted_ms
            && (uint64_t) ts_ms - (uint64_t) entry->last_admitted_ms
                   >= (uint64_t) self->cooldown_ms)) {
        entry->open = true;
        entry->last_admitted_ms = ts_ms;
        return true;
    }
    self->suppressed++;
    return false;
}

uint64_t
mesh_incidents_suppressed (const mesh_incidents_t *self)
{
    assert (self);
    return self->suppressed;
}
