/*  incident - stage 3: de-duplication before any token is spent.
 *  Data path: event -> detect -> [incident] -> reason -> gate -> act -> record.
 *
 *  Two things live here.  mesh_incident_t is the self-contained unit handed to a
 *  reasoning worker: it copies every string and deep-copies the triggering message
 *  (jansson reference counts are not a safe way to share a tree across threads),
 *  so it outlives the Kafka message it came from.  Its decision id is the SHA-256
 *  of (agent, topic, partition, offset) of the anomalous point it speaks for and of
 *  the history of that partition (the cluster id, and the embedded broker's
 *  incarnation): the key that makes a re-delivered event find its earlier decision,
 *  and that a fresh broker's offset 0 cannot share with the old broker's.
 *
 *  mesh_incidents_t is Alertmanager's dispatcher over anomalous points, driven by
 *  event time so that a replay of the stream opens the same incidents as the live
 *  run did.  "Now" is the watermark: the greatest event time seen.  A group (the
 *  points whose group_by fields agree) holds at most one candidate point, the
 *  newest; when the group is due, that point becomes the incident, so each
 *  incident has its own trigger and its own decision id even when several groups
 *  fall due on the same event.  A point that is replaced, or whose group resolves
 *  first, is counted under the reason that held it: each anomalous point ends as
 *  one incident or one count, never nothing.  Groups wait in a min-heap ordered by
 *  their next deadline (due or resolve), so an event costs O(1) when nothing is
 *  due and O(log groups) per deadline met.
 *
 *  When several groups fall due while one event is consumed, their incidents ride
 *  on that event's offset (the caller holds it once per incident, and the
 *  incident's trigger coordinates are that event's), so a crash before they finish
 *  re-delivers it.  Each such incident is kept in a small ring that is persisted
 *  with the groups; after a restart, a re-delivered event that carried incidents
 *  opens them again with their old ids, and the ledger decides whether anything is
 *  left to do.  On an idle stream the wall clock moves event time on (tick), and an
 *  incident opened there has no offset to ride on: it is kept in the ring too and
 *  opened again once at the next start (the ledger skips it if it was finished).
 *
 *  Event time is believed only up to the wall clock plus events.max_future_skew_s:
 *  an event stamped beyond it (the year 3000, microseconds read as milliseconds)
 *  would move "now" forward for good - every later point would then open a new
 *  incident and a model call - so it is counted (out_of_window) and moves nothing.
 *  The consumer refuses such events before they come here (event_kafka.c); this is
 *  the table's own guarantee.  Idle time never moves the clock past that bound
 *  either, and a persisted clock beyond it (written before the bound existed, or
 *  under a wall clock that was wrong) is clamped on load, with a warning.
 *
 *  Group state (groups, members, the ring) is written atomically to
 *  state_dir/incidents/<instance>.json every persist_interval_s while it changes,
 *  soon after every incident, and at drain; a crash loses at most that interval of
 *  changes.  Both tables are bounded and evict the least recently active entry,
 *  counted.
 */
#include "incident.h"
#include "log.h"
#include "silence.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_NEVER INT64_MIN               //  "no such time"
#define S_IDLE_MS 1000                  //  no event for this long: the wall clock moves time
#define S_IDLE_START_MS 30000           //  ... before the first event of this life (a backlog
                                        //  may be on its way while the group is joined)
#define S_SILENCE_CHECK_MS 1000         //  the silences file is looked at this often
#define S_URGENT_SAVE_MS 200            //  after an incident, state is written this soon
#define S_FIRED_SLACK 64                //  ring entries beyond queue_size + workers
#define S_STATE_VERSION 1

void
mesh_incident_decision_id (const mesh_incident_history_t *history, const char *agent,
                           const char *topic, int32_t partition, int64_t offset, char out[65])
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
    //  "\0cluster\0incarnation" after it: the old id had nothing after the offset, so the
    //  two forms never hash the same bytes.
    if (history && (history->cluster_id || history->incarnation)) {
        const char *cluster = history->cluster_id ? history->cluster_id : "";
        const char *incarnation = history->incarnation ? history->incarnation : "";
        crypto_hash_sha256_update (&st, (const unsigned char *) "", 1);
        crypto_hash_sha256_update (&st, (const unsigned char *) cluster, strlen (cluster) + 1);
        crypto_hash_sha256_update (&st, (const unsigned char *) incarnation,
                                   strlen (incarnation));
    }
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (&st, digest);
    sodium_bin2hex (out, 65, digest, sizeof digest);
}

mesh_incident_t *
mesh_incident_new (const char *agent, const mesh_incident_history_t *history,
                   const mesh_event_t *event, const char *detector,
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
    if (history && history->cluster_id)
        self->cluster_id = strdup (history->cluster_id);
    if (history && history->incarnation)
        self->incarnation = strdup (history->incarnation);
    if (!self->agent || !self->topic || !self->series || !self->detector
        || (event->json && !self->event) || (history && history->cluster_id && !self->cluster_id)
        || (history && history->incarnation && !self->incarnation)) {
        mesh_err ("incident: out of memory");
        mesh_incident_destroy (&self);
        return NULL;
    }
    self->partition = event->partition;
    self->offset = event->offset;
    self->value = event->value;
    self->ts_ms = event->ts_ms;
    self->info = *info;
    mesh_incident_decision_id (history, agent, topic, event->partition, event->offset,
                               self->id);
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
    free (self->cluster_id);
    free (self->incarnation);
    json_decref (self->event);
    json_decref (self->group);
    free (self);
    *self_p = NULL;
}

//  JSON has no inf or NaN; jansson refuses them.  Such a number becomes null.
static json_t *
s_number (double v)
{
    return isfinite (v) ? json_real (v) : json_null ();
}

static json_int_t
s_int (json_t *j, const char *key)
{
    return json_integer_value (json_object_get (j, key));
}

static double
s_double (json_t *v)
{
    return json_is_number (v) ? json_number_value (v) : NAN;
}

//  Floor division, so that an event before 1970 still gets the second it fell in.
static int64_t
s_seconds (int64_t ms)
{
    return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

static json_t *
s_window_json (const mesh_detect_info_t *info)
{
    json_t *window = json_array ();
    int len = info->window_len;
    if (len < 0)
        len = 0;
    if (len > MESH_DETECT_WINDOW)
        len = MESH_DETECT_WINDOW;
    for (int i = 0; i < len; i++)
        json_array_append_new (window, s_number (info->window[i]));
    return window;
}

json_t *
mesh_incident_json (const mesh_incident_t *self)
{
    assert (self);
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
        "window", s_window_json (&self->info),
        "started_at", (json_int_t) s_seconds (self->ts_ms),
        "ts_ms", (json_int_t) self->ts_ms,
        "trigger", "topic", self->topic, "partition", (int) self->partition,
        "offset", (json_int_t) self->offset);
    json_t *trigger = root ? json_object_get (root, "trigger") : NULL;
    if (trigger && self->cluster_id)
        json_object_set_new (trigger, "cluster_id", json_string (self->cluster_id));
    if (trigger && self->incarnation)
        json_object_set_new (trigger, "incarnation", json_string (self->incarnation));
    if (root && self->group)
        json_object_set_new (root, "group", json_deep_copy (self->group));
    if (!root)
        mesh_err ("incident: cannot build the JSON of incident %s", self->id);
    return root;
}

json_t *
mesh_incident_trigger_json (const mesh_incident_t *self)
{
    assert (self);
    json_t *trigger = json_pack ("{s:s, s:i, s:I}", "topic", self->topic ? self->topic : "",
                                 "partition", (int) self->partition, "offset",
                                 (json_int_t) self->offset);
    if (trigger && self->cluster_id)
        json_object_set_new (trigger, "cluster_id", json_string (self->cluster_id));
    if (trigger && self->incarnation)
        json_object_set_new (trigger, "incarnation", json_string (self->incarnation));
    return trigger;
}

//  --- detect info and incidents, whole, for the state file -------------------------

static json_t *
s_info_json (const mesh_detect_info_t *info)
{
    return json_pack ("{s:o, s:o, s:o, s:o, s:I, s:b, s:o}", "score", s_number (info->score),
                      "mean", s_number (info->mean), "stddev", s_number (info->stddev),
                      "z", s_number (info->z), "n", (json_int_t) info->n, "warm", info->warm,
                      "window", s_window_json (info));
}

static void
s_info_from (json_t *j, mesh_detect_info_t *info)
{
    memset (info, 0, sizeof *info);
    info->score = s_double (json_object_get (j, "score"));
    info->mean = s_double (json_object_get (j, "mean"));
    info->stddev = s_double (json_object_get (j, "stddev"));
    info->z = s_double (json_object_get (j, "z"));
    info->n = (uint64_t) json_integer_value (json_object_get (j, "n"));
    info->warm = json_is_true (json_object_get (j, "warm"));
    json_t *window = json_object_get (j, "window");
    size_t len = json_array_size (window);
    if (len > MESH_DETECT_WINDOW)
        len = MESH_DETECT_WINDOW;
    for (size_t i = 0; i < len; i++)
        info->window[i] = s_double (json_array_get (window, i));
    info->window_len = (int) len;
}

//  Everything mesh_incident_t holds, to build it again after a restart.
static json_t *
s_incident_save (const mesh_incident_t *inc)
{
    json_t *saved = json_pack ("{s:s, s:s, s:s, s:i, s:I, s:s, s:o, s:I, s:s, s:o, s:O?, s:O?}",
                      "id", inc->id, "agent", inc->agent, "topic", inc->topic,
                      "partition", (int) inc->partition, "offset", (json_int_t) inc->offset,
                      "series", inc->series, "value", s_number (inc->value),
                      "ts_ms", (json_int_t) inc->ts_ms, "detector", inc->detector,
                      "info", s_info_json (&inc->info), "event", inc->event,
                      "group", inc->group);
    if (saved && inc->cluster_id)
        json_object_set_new (saved, "cluster_id", json_string (inc->cluster_id));
    if (saved && inc->incarnation)
        json_object_set_new (saved, "incarnation", json_string (inc->incarnation));
    return saved;
}

static mesh_incident_t *
s_incident_load (json_t *j)
{
    const char *id = json_string_value (json_object_get (j, "id"));
    const char *agent = json_string_value (json_object_get (j, "agent"));
    const char *topic = json_string_value (json_object_get (j, "topic"));
    const char *series = json_string_value (json_object_get (j, "series"));
    const char *detector = json_string_value (json_object_get (j, "detector"));
    json_t *event = json_object_get (j, "event");
    json_t *group = json_object_get (j, "group");
    if (!id || strlen (id) != 64 || !agent || !topic || !series || !detector
        || !json_is_integer (json_object_get (j, "partition"))
        || !json_is_integer (json_object_get (j, "offset"))
        || !json_is_integer (json_object_get (j, "ts_ms"))
        || strlen (series) >= MESH_SERIES_KEY_MAX)
        return NULL;
    mesh_event_t ev = { .topic = topic,
                        .partition = (int32_t) s_int (j, "partition"),
                        .offset = json_integer_value (json_object_get (j, "offset")),
                        .value = s_double (json_object_get (j, "value")),
                        .ts_ms = json_integer_value (json_object_get (j, "ts_ms")),
                        .json = json_is_object (event) ? event : NULL };
    snprintf (ev.series, sizeof ev.series, "%s", series);
    mesh_detect_info_t info;
    s_info_from (json_object_get (j, "info"), &info);
    mesh_incident_history_t history = {
        .cluster_id = json_string_value (json_object_get (j, "cluster_id")),
        .incarnation = json_string_value (json_object_get (j, "incarnation")) };
    mesh_incident_t *inc = mesh_incident_new (agent, &history, &ev, detector, &info);
    if (!inc)
        return NULL;
    memcpy (inc->id, id, 64);           //  the id of the point it speaks for, as recorded
    inc->id[64] = 0;
    if (json_is_object (group))
        inc->group = json_deep_copy (group);
    return inc;
}

//  --- a bounded string table with LRU order ------------------------------------------

typedef struct _s_node_t s_node_t;
struct _s_node_t {
    s_node_t *hnext;                    //  hash chain
    s_node_t *prev, *next;              //  recency: head is the most recent
    uint64_t hash;
    char *key;
};

typedef struct {
    s_node_t **buckets;
    size_t nbuckets, size, max;
    s_node_t *head, *tail;
    uint64_t evictions;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
} s_lru_t;

static int
s_lru_init (s_lru_t *lru, size_t max)
{
    memset (lru, 0, sizeof *lru);
    lru->max = max;
    lru->nbuckets = 64;
    lru->buckets = calloc (lru->nbuckets, sizeof *lru->buckets);
    randombytes_buf (lru->hash_key, sizeof lru->hash_key);
    return lru->buckets ? 0 : -1;
}

//  Keys come from input data: SipHash with a random key keeps chains short.
static uint64_t
s_lru_hash (const s_lru_t *lru, const char *key)
{
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash (out, (const unsigned char *) key, strlen (key), lru->hash_key);
    uint64_t h;
    memcpy (&h, out, sizeof h);
    return h;
}

static s_node_t *
s_lru_find (const s_lru_t *lru, const char *key)
{
    uint64_t hash = s_lru_hash (lru, key);
    for (s_node_t *n = lru->buckets[hash & (lru->nbuckets - 1)]; n; n = n->hnext)
        if (n->hash == hash && !strcmp (n->key, key))
            return n;
    return NULL;
}

static void
s_list_unlink (s_lru_t *lru, s_node_t *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        lru->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        lru->tail = n->prev;
    n->prev = n->next = NULL;
}

static void
s_list_push (s_lru_t *lru, s_node_t *n)
{
    n->prev = NULL;
    n->next = lru->head;
    if (lru->head)
        lru->head->prev = n;
    lru->head = n;
    if (!lru->tail)
        lru->tail = n;
}

static void
s_lru_touch (s_lru_t *lru, s_node_t *n)
{
    if (lru->head != n) {
        s_list_unlink (lru, n);
        s_list_push (lru, n);
    }
}

//  N (key set) becomes the most recent entry.  The caller made room.
static void
s_lru_insert (s_lru_t *lru, s_node_t *n)
{
    if (lru->size >= lru->nbuckets) {   //  load factor 1: double the buckets
        size_t nb = lru->nbuckets * 2;
        s_node_t **buckets = calloc (nb, sizeof *buckets);
        if (buckets) {
            for (size_t i = 0; i < lru->nbuckets; i++)
                for (s_node_t *m = lru->buckets[i], *next; m; m = next) {
                    next = m->hnext;
                    m->hnext = buckets[m->hash & (nb - 1)];
                    buckets[m->hash & (nb - 1)] = m;
                }
            free (lru->buckets);
            lru->buckets = buckets;
            lru->nbuckets = nb;
        }                               //  out of memory: longer chains, still correct
    }
    n->hash = s_lru_hash (lru, n->key);
    s_node_t **head = &lru->buckets[n->hash & (lru->nbuckets - 1)];
    n->hnext = *head;
    *head = n;
    s_list_push (lru, n);
    lru->size++;
}

static void
s_lru_remove (s_lru_t *lru, s_node_t *n)
{
    s_node_t **link = &lru->buckets[n->hash & (lru->nbuckets - 1)];
    while (*link && *link != n)
        link = &(*link)->hnext;
    if (*link)
        *link = n->hnext;
    s_list_unlink (lru, n);
    lru->size--;
}

//  --- points, groups, members ---------------------------------------------------------

//  An anomalous point kept as its group's candidate.
typedef struct {
    char *series, *topic, *detector;
    int32_t partition;
    int64_t offset, ts_ms;
    double value;
    mesh_detect_info_t info;
    json_t *event;                      //  deep copy, or NULL
    mesh_suppress_t reason;             //  what holds it back now
} s_point_t;

typedef struct {
    s_node_t node;                      //  key = group key; first member
    size_t heap_at;                     //  index in the heap, SIZE_MAX when not in it
    int64_t wake_ms;                    //  the next deadline (due or resolve)
    uint64_t epoch;                     //  this life of the group (members refer to it)
    bool alive;                         //  false: resolved, kept only for its cooldown
    bool eligible;                      //  reached min_points in the span in this life
    bool changed;                       //  gained a series since its last incident
    uint32_t notified;                  //  incidents in this life
    uint64_t points;                    //  anomalous points in this life (not silenced)
    uint64_t members;                   //  series in this life
    int64_t first_ms, last_ms;          //  event times of its first and last points
    int64_t wait_until_ms;              //  eligible at + group_wait
    int64_t last_notify_ms;             //  when its last incident opened (any life)
    int64_t *times;                     //  the last min_points point times (a ring)
    int times_len, times_head;
    s_point_t *pending;                 //  the candidate, or NULL
} s_group_t;

typedef struct {
    s_node_t node;                      //  key = series
    uint64_t epoch;                     //  the group life it last joined
} s_member_t;

//  An incident opened recently, kept to open it again after a restart.
typedef struct {
    bool held;                          //  rides on the offset of (topic, partition, offset)
    bool previous;                      //  loaded from the state file, not opened in this life
    char *topic;
    int32_t partition;
    int64_t offset;
    json_t *incident;                   //  s_incident_save form
} s_fired_t;

typedef enum { S_KIND_FIRST, S_KIND_CHANGED, S_KIND_REPEAT } s_kind_t;

struct _mesh_incidents_t {
    const mesh_agent_config_t *agent;
    const mesh_incident_config_t *cfg;
    int64_t group_wait, group_interval, repeat, cooldown, span, resolve;   //  ms
    int min_points;
    bool group_is_series;               //  group_by = the key fields, in order

    s_lru_t groups, members;
    s_group_t **heap;
    size_t heap_len, heap_alloc;
    uint64_t next_epoch;
    size_t alive, pending;

    int64_t watermark;                  //  greatest event time seen (or moved on by idle)
    int64_t event_watermark;            //  ... as the events alone left it
    int64_t wall_ms;                    //  the wall clock as the last tick gave it
    int64_t last_event_wall;            //  wall clock at the last event
    bool have_time;
    bool event_seen;                    //  an event came in this life

    mesh_incident_t **ready;            //  opened, not yet taken (a FIFO)
    size_t ready_head, ready_len, ready_alloc;
    s_fired_t *fired;                   //  ring of recent incidents, oldest first
    size_t fired_len, fired_cap, fired_previous;

    mesh_silences_t *config_silences, *file_silences;
    char *silences_path;
    int64_t silences_checked;

    char *state_path;
    bool dirty, urgent;
    int64_t last_save;

    char *cluster_id, *incarnation;     //  the history now (mesh_incidents_set_history)
    bool state_loaded;                  //  a state file was loaded ...
    char *loaded_cluster_id, *loaded_incarnation;   //  ... written under this history

    uint64_t suppressed[MESH_SUPPRESS_COUNT_];
    uint64_t opened, resolved, refired, state_errors;
    uint64_t out_of_window;             //  events stamped beyond wall clock + skew
    uint64_t clamped;                   //  times beyond that bound in the loaded state
};

static const char *const s_reason_names[MESH_SUPPRESS_COUNT_] = {
    "silenced", "below_min", "waiting", "grouped", "repeat", "cooldown", "evicted"
};

const char *
mesh_suppress_name (mesh_suppress_t reason)
{
    return reason >= 0 && reason < MESH_SUPPRESS_COUNT_ ? s_reason_names[reason] : "unknown";
}

static int
s_reason_from (const char *name)
{
    for (int i = 0; name && i < MESH_SUPPRESS_COUNT_; i++)
        if (!strcmp (name, s_reason_names[i]))
            return i;
    return -1;
}

//  The latest event time believed: the wall clock plus events.max_future_skew_s.
static int64_t
s_time_limit (const mesh_incidents_t *self)
{
    return self->wall_ms + (int64_t) self->agent->events.max_future_skew_s * 1000;
}

//  Bring a loaded time *T back to the bound (counted); S_NEVER stays.
static void
s_clamp (mesh_incidents_t *self, int64_t *t)
{
    int64_t limit = s_time_limit (self);
    if (*t != S_NEVER && *t > limit) {
        *t = limit;
        self->clamped++;
    }
}

//  A + B, saturating; S_NEVER stays S_NEVER.
static int64_t
s_after (int64_t a, int64_t b)
{
    if (a == S_NEVER)
        return S_NEVER;
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    return a + b;
}

static int64_t
s_max (int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static void
s_point_destroy (s_point_t **p_p)
{
    s_point_t *p = *p_p;
    if (!p)
        return;
    free (p->series);
    free (p->topic);
    free (p->detector);
    json_decref (p->event);
    free (p);
    *p_p = NULL;
}

static s_point_t *
s_point_new (const mesh_event_t *event, const char *detector, const mesh_detect_info_t *info)
{
    s_point_t *p = calloc (1, sizeof *p);
    if (!p)
        return NULL;
    p->series = strndup (event->series, sizeof event->series);
    p->topic = strdup (event->topic ? event->topic : "");
    p->detector = strdup (detector ? detector : "?");
    p->event = event->json ? json_deep_copy (event->json) : NULL;
    if (!p->series || !p->topic || !p->detector || (event->json && !p->event)) {
        s_point_destroy (&p);
        return NULL;
    }
    p->partition = event->partition;
    p->offset = event->offset;
    p->ts_ms = event->ts_ms;
    p->value = event->value;
    if (info)
        p->info = *info;
    return p;
}

//  Count a point that will not open an incident, under REASON.
static void
s_count (mesh_incidents_t *self, mesh_suppress_t reason)
{
    self->suppressed[reason]++;
    self->dirty = true;
}

static void
s_drop_pending (mesh_incidents_t *self, s_group_t *g)
{
    if (g->pending) {
        s_count (self, g->pending->reason);
        s_point_destroy (&g->pending);
        self->pending--;
    }
}

//  --- the heap of deadlines --------------------------------------------------------

static void
s_heap_swap (mesh_incidents_t *self, size_t i, size_t j)
{
    s_group_t *t = self->heap[i];
    self->heap[i] = self->heap[j];
    self->heap[j] = t;
    self->heap[i]->heap_at = i;
    self->heap[j]->heap_at = j;
}

static void
s_heap_up (mesh_incidents_t *self, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (self->heap[parent]->wake_ms <= self->heap[i]->wake_ms)
            break;
        s_heap_swap (self, i, parent);
        i = parent;
    }
}

static void
s_heap_down (mesh_incidents_t *self, size_t i)
{
    while (true) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < self->heap_len && self->heap[l]->wake_ms < self->heap[m]->wake_ms)
            m = l;
        if (r < self->heap_len && self->heap[r]->wake_ms < self->heap[m]->wake_ms)
            m = r;
        if (m == i)
            break;
        s_heap_swap (self, i, m);
        i = m;
    }
}

static void
s_heap_remove (mesh_incidents_t *self, s_group_t *g)
{
    if (g->heap_at == SIZE_MAX)
        return;
    size_t i = g->heap_at;
    self->heap_len--;
    if (i != self->heap_len) {
        self->heap[i] = self->heap[self->heap_len];
        self->heap[i]->heap_at = i;
        s_heap_down (self, i);
        s_heap_up (self, i);
    }
    g->heap_at = SIZE_MAX;
}

//  Put G in the heap at WAKE_MS (S_NEVER: take it out).  -1 if out of memory.
static int
s_heap_set (mesh_incidents_t *self, s_group_t *g, int64_t wake_ms)
{
    if (wake_ms == S_NEVER) {
        s_heap_remove (self, g);
        return 0;
    }
    if (g->heap_at == SIZE_MAX) {
        if (self->heap_len == self->heap_alloc) {
            size_t alloc = self->heap_alloc ? self->heap_alloc * 2 : 64;
            s_group_t **heap = realloc (self->heap, alloc * sizeof *heap);
            if (!heap)
                return -1;
            self->heap = heap;
            self->heap_alloc = alloc;
        }
        g->wake_ms = wake_ms;
        g->heap_at = self->heap_len;
        self->heap[self->heap_len++] = g;
        s_heap_up (self, g->heap_at);
        return 0;
    }
    int64_t old = g->wake_ms;
    g->wake_ms = wake_ms;
    if (wake_ms < old)
        s_heap_up (self, g->heap_at);
    else
        s_heap_down (self, g->heap_at);
    return 0;
}

//  --- the rules --------------------------------------------------------------------

static s_kind_t
s_kind (const s_group_t *g)
{
    return g->notified == 0 ? S_KIND_FIRST : g->changed ? S_KIND_CHANGED : S_KIND_REPEAT;
}

//  When G may open its next incident.
static int64_t
s_due (const mesh_incidents_t *self, const s_group_t *g)
{
    int64_t due;
    switch (s_kind (g)) {
        case S_KIND_FIRST:
            due = g->wait_until_ms;
            break;
        case S_KIND_CHANGED:
            due = s_after (g->last_notify_ms, self->group_interval);
            break;
        default:
            due = s_after (g->last_notify_ms, self->repeat);
            break;
    }
    if (g->last_notify_ms != S_NEVER)
        due = s_max (due, s_after (g->last_notify_ms, self->cooldown));
    return due;
}

//  What holds G's candidate back at NOW (now < due).
static mesh_suppress_t
s_holding (const mesh_incidents_t *self, const s_group_t *g, int64_t now)
{
    switch (s_kind (g)) {
        case S_KIND_FIRST:
            return now < g->wait_until_ms ? MESH_SUPPRESS_WAITING : MESH_SUPPRESS_COOLDOWN;
        case S_KIND_CHANGED:
            return now < s_after (g->last_notify_ms, self->group_interval)
                   ? MESH_SUPPRESS_GROUPED : MESH_SUPPRESS_COOLDOWN;
        default:
            return now < s_after (g->last_notify_ms, self->repeat)
                   ? MESH_SUPPRESS_REPEAT : MESH_SUPPRESS_COOLDOWN;
    }
}

//  When G resolves if no point comes.  A group whose first incident, or whose
//  incident about a new series, is pending stays until that incident is due: the
//  wait always ends in a notification.  A repeat needs the group still firing.
static int64_t
s_resolve_at (const mesh_incidents_t *self, const s_group_t *g)
{
    int64_t at = s_after (g->last_ms, self->resolve);
    if (g->pending && s_kind (g) != S_KIND_REPEAT)
        at = s_max (at, s_due (self, g));
    return at;
}

static void
s_schedule (mesh_incidents_t *self, s_group_t *g)
{
    int64_t wake;
    if (!g->alive)
        wake = s_after (g->last_notify_ms, self->cooldown);
    else {
        wake = s_resolve_at (self, g);
        if (g->pending) {
            int64_t due = s_due (self, g);
            if (due < wake)
                wake = due;
        }
    }
    if (s_heap_set (self, g, wake) != 0)
        mesh_warn ("incident: out of memory scheduling group %s", g->node.key);
}

static void
s_group_free (mesh_incidents_t *self, s_group_t *g)
{
    s_heap_remove (self, g);
    s_lru_remove (&self->groups, &g->node);
    if (g->alive)
        self->alive--;
    if (g->pending) {
        s_point_destroy (&g->pending);
        self->pending--;
    }
    free (g->times);
    free (g->node.key);
    free (g);
}

//  Start a new life of G (a new group, or one that resolved and came back).
static void
s_group_begin (mesh_incidents_t *self, s_group_t *g)
{
    if (!g->alive)
        self->alive++;
    g->alive = true;
    g->epoch = ++self->next_epoch;
    g->eligible = false;
    g->changed = false;
    g->notified = 0;
    g->points = g->members = 0;
    g->first_ms = g->last_ms = S_NEVER;
    g->wait_until_ms = S_NEVER;
    g->times_len = g->times_head = 0;
}

//  Resolve G: its candidate is counted, and it is forgotten, or kept as a husk while
//  its cooldown runs.
static void
s_resolve (mesh_incidents_t *self, s_group_t *g, int64_t now)
{
    s_drop_pending (self, g);
    self->resolved++;
    self->dirty = true;
    if (g->last_notify_ms != S_NEVER && self->cooldown > 0
        && s_after (g->last_notify_ms, self->cooldown) > now) {
        g->alive = false;
        self->alive--;
        s_schedule (self, g);
    }
    else
        s_group_free (self, g);
}

static s_group_t *
s_group_new (mesh_incidents_t *self, const char *key)
{
    if (self->groups.size >= self->groups.max) {
        s_group_t *victim = (s_group_t *) self->groups.tail;
        if (victim->pending) {
            victim->pending->reason = MESH_SUPPRESS_EVICTED;
            s_drop_pending (self, victim);
        }
        s_group_free (self, victim);
        self->groups.evictions++;
    }
    s_group_t *g = calloc (1, sizeof *g);
    if (!g)
        return NULL;
    g->node.key = strdup (key);
    if (self->min_points > 1)
        g->times = calloc ((size_t) self->min_points, sizeof *g->times);
    if (!g->node.key || (self->min_points > 1 && !g->times)) {
        free (g->node.key);
        free (g->times);
        free (g);
        return NULL;
    }
    g->heap_at = SIZE_MAX;
    g->last_notify_ms = S_NEVER;
    s_lru_insert (&self->groups, &g->node);
    s_group_begin (self, g);
    return g;
}

//  True if SERIES is new to the current life of G (it is then recorded).
static bool
s_join (mesh_incidents_t *self, s_group_t *g, const char *series)
{
    s_member_t *m = (s_member_t *) s_lru_find (&self->members, series);
    if (m) {
        s_lru_touch (&self->members, &m->node);
        if (m->epoch == g->epoch)
            return false;
        m->epoch = g->epoch;
        return true;
    }
    if (self->members.size >= self->members.max) {
        s_member_t *victim = (s_member_t *) self->members.tail;
        s_lru_remove (&self->members, &victim->node);
        free (victim->node.key);
        free (victim);
        self->members.evictions++;
    }
    m = calloc (1, sizeof *m);
    if (m && (m->node.key = strdup (series))) {
        m->epoch = g->epoch;
        s_lru_insert (&self->members, &m->node);
    }
    else
        free (m);                       //  out of memory: counted as new, at worst twice
    return true;
}

//  Record a point time in G's ring; true once min_points fall within the span.
static bool
s_enough (mesh_incidents_t *self, s_group_t *g, int64_t ts)
{
    int n = self->min_points;
    g->times[g->times_head] = ts;
    g->times_head = (g->times_head + 1) % n;
    if (g->times_len < n)
        g->times_len++;
    if (g->times_len < n)
        return false;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (int i = 0; i < n; i++) {
        lo = g->times[i] < lo ? g->times[i] : lo;
        hi = g->times[i] > hi ? g->times[i] : hi;
    }
    return (uint64_t) hi - (uint64_t) lo <= (uint64_t) self->span;
}

//  --- silences ------------------------------------------------------------------------

typedef struct {
    const mesh_incidents_t *self;
    json_t *event;
    char buf[64];
} s_fields_t;

static const char *
s_field_text (json_t *v, char *buf, size_t size)
{
    if (json_is_string (v))
        return json_string_value (v);
    if (json_is_integer (v)) {
        snprintf (buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value (v));
        return buf;
    }
    return NULL;
}

//  Silences see the agent's key fields, and "agent" (the agent's name) unless that
//  is a key field itself.
static const char *
s_silence_field (void *arg, const char *name)
{
    s_fields_t *f = arg;
    const mesh_agent_config_t *agent = f->self->agent;
    for (size_t i = 0; i < agent->key_field_count; i++)
        if (!strcmp (agent->key_fields[i], name))
            return s_field_text (json_object_get (f->event, name), f->buf, sizeof f->buf);
    return !strcmp (name, "agent") ? agent->name : NULL;
}

static const char *
s_silenced (mesh_incidents_t *self, const mesh_event_t *event)
{
    if (!event->json)
        return NULL;
    s_fields_t f = { .self = self, .event = event->json };
    const char *id = mesh_silences_match (self->config_silences, s_silence_field, &f,
                                          self->wall_ms);
    if (!id && self->file_silences)
        id = mesh_silences_match (self->file_silences, s_silence_field, &f, self->wall_ms);
    return id;
}

//  --- opening incidents ----------------------------------------------------------------

//  The group key of EVENT: its group_by values joined with '/', like the series key.
static void
s_group_key (const mesh_incidents_t *self, const mesh_event_t *event, char *key, size_t size)
{
    if (self->group_is_series || !event->json) {
        snprintf (key, size, "%s", self->group_is_series ? event->series : "");
        return;
    }
    size_t used = 0;
    key[0] = 0;
    for (size_t i = 0; i < self->cfg->group_by_count && used < size; i++) {
        char buf[64];
        const char *v = s_field_text (json_object_get (event->json, self->cfg->group_by[i]),
                                      buf, sizeof buf);
        int n = snprintf (key + used, size - used, "%s%s", i ? "/" : "", v ? v : "");
        used = n < 0 ? size : used + (size_t) n;
    }
}

static json_t *
s_time_json (int64_t ms)
{
    char buf[40];
    mesh_silence_format_time (ms, buf, sizeof buf);
    return json_string (buf);
}

static json_t *
s_group_json (const mesh_incidents_t *self, const s_group_t *g, const s_point_t *p,
              s_kind_t kind)
{
    static const char *const why[] = { "first", "changed", "repeat" };
    json_t *by = json_array (), *labels = json_object ();
    for (size_t i = 0; i < self->cfg->group_by_count; i++) {
        const char *name = self->cfg->group_by[i];
        char buf[64];
        const char *v = p->event ? s_field_text (json_object_get (p->event, name), buf,
                                                 sizeof buf) : NULL;
        json_array_append_new (by, json_string (name));
        json_object_set_new (labels, name, v ? json_string (v) : json_null ());
    }
    return json_pack ("{s:s, s:o, s:o, s:I, s:I, s:I, s:I, s:o, s:o, s:i, s:s, "
                      "s:{s:s, s:i, s:I}}",
                      "key", g->node.key, "by", by, "labels", labels,
                      "members", (json_int_t) g->members, "points", (json_int_t) g->points,
                      "first_ms", (json_int_t) g->first_ms, "last_ms", (json_int_t) g->last_ms,
                      "first_at", s_time_json (g->first_ms), "last_at", s_time_json (g->last_ms),
                      "notification", (int) g->notified + 1, "why", why[kind],
                      "point", "topic", p->topic, "partition", (int) p->partition,
                      "offset", (json_int_t) p->offset);
}

static int
s_ready_push (mesh_incidents_t *self, mesh_incident_t *inc)
{
    if (self->ready_len == self->ready_alloc) {
        size_t alloc = self->ready_alloc ? self->ready_alloc * 2 : 16;
        mesh_incident_t **ring = malloc (alloc * sizeof *ring);
        if (!ring)
            return -1;
        for (size_t i = 0; i < self->ready_len; i++)
            ring[i] = self->ready[(self->ready_head + i) % self->ready_alloc];
        free (self->ready);
        self->ready = ring;
        self->ready_alloc = alloc;
        self->ready_head = 0;
    }
    self->ready[(self->ready_head + self->ready_len) % self->ready_alloc] = inc;
    self->ready_len++;
    return 0;
}

static void
s_fired_free (s_fired_t *f)
{
    free (f->topic);
    json_decref (f->incident);
}

//  Remember INC in the ring (HOLD: the event whose offset it rides on, or NULL).
static void
s_fired_add (mesh_incidents_t *self, const mesh_incident_t *inc, const mesh_event_t *hold)
{
    size_t cap = self->fired_cap + self->ready_len;
    if (self->fired_len >= cap && self->fired_len > 0) {
        if (self->fired[0].previous)
            self->fired_previous--;
        s_fired_free (&self->fired[0]);
        memmove (self->fired, self->fired + 1, (self->fired_len - 1) * sizeof *self->fired);
        self->fired_len--;
    }
    s_fired_t *grown = realloc (self->fired, (self->fired_len + 1) * sizeof *grown);
    if (!grown)
        return;                         //  out of memory: it just is not remembered
    self->fired = grown;
    s_fired_t *f = &self->fired[self->fired_len];
    *f = (s_fired_t) { .held = hold != NULL, .partition = inc->partition,
                       .offset = inc->offset };
    f->topic = strdup (inc->topic);
    f->incident = s_incident_save (inc);
    if (!f->topic || !f->incident) {
        s_fired_free (f);
        return;
    }
    self->fired_len++;
}

//  G opens an incident for its candidate P (owned here) at NOTIFY_MS.  With HOLD the
//  incident rides on that event's offset.  Returns 1 if opened.
static size_t
s_fire (mesh_incidents_t *self, s_group_t *g, s_point_t *p, const mesh_event_t *hold,
        int64_t notify_ms)
{
    s_kind_t kind = s_kind (g);
    mesh_event_t ev = { .topic = p->topic, .partition = p->partition, .offset = p->offset,
                        .value = p->value, .ts_ms = p->ts_ms, .json = p->event };
    snprintf (ev.series, sizeof ev.series, "%s", p->series);
    mesh_incident_history_t history = { self->cluster_id, self->incarnation };
    mesh_incident_t *inc = mesh_incident_new (self->agent->name, &history, &ev, p->detector,
                                              &p->info);
    if (inc)
        inc->group = s_group_json (self, g, p, kind);
    if (inc && hold) {                  //  the id stays the point's; the offset is HOLD's
        char *topic = strdup (hold->topic ? hold->topic : "");
        if (topic) {
            free (inc->topic);
            inc->topic = topic;
            inc->partition = hold->partition;
            inc->offset = hold->offset;
        }
        else
            hold = NULL;
    }
    g->notified++;
    g->last_notify_ms = notify_ms;
    g->changed = false;
    self->dirty = self->urgent = true;
    if (!inc || !inc->group || s_ready_push (self, inc) != 0) {
        mesh_err ("incident: out of memory opening an incident for group %s; point counted "
                  "as %s", g->node.key, mesh_suppress_name (p->reason));
        mesh_incident_destroy (&inc);
        s_count (self, p->reason);
        s_point_destroy (&p);
        return 0;
    }
    s_fired_add (self, inc, hold);
    s_point_destroy (&p);
    self->opened++;
    return 1;
}

//  Act on every deadline up to NOW.  Returns incidents opened.
static size_t
s_advance (mesh_incidents_t *self, int64_t now, const mesh_event_t *hold)
{
    size_t opened = 0;
    while (self->heap_len && self->heap[0]->wake_ms <= now) {
        s_group_t *g = self->heap[0];
        if (!g->alive) {                //  a husk whose cooldown ran out
            s_group_free (self, g);
            continue;
        }
        int64_t due = g->pending ? s_due (self, g) : S_NEVER;
        if (g->pending && due <= now
            && (s_kind (g) != S_KIND_REPEAT || due <= s_after (g->last_ms, self->resolve))) {
            s_point_t *p = g->pending;
            g->pending = NULL;
            self->pending--;
            opened += s_fire (self, g, p, hold, due);
            s_schedule (self, g);
        }
        else
        if (s_resolve_at (self, g) <= now)
            s_resolve (self, g, now);
        else {
            s_schedule (self, g);       //  not reached: every deadline is one of the above
            if (g->heap_at != SIZE_MAX && g->wake_ms <= now)
                s_heap_remove (self, g);
        }
    }
    return opened;
}

//  An anomalous point of EVENT at NOW.  Returns incidents opened (0 or 1).
static size_t
s_point (mesh_incidents_t *self, const mesh_event_t *event, const char *detector,
         const mesh_detect_info_t *info, int64_t now)
{
    if (s_silenced (self, event)) {
        s_count (self, MESH_SUPPRESS_SILENCED);
        return 0;
    }
    char key[MESH_SERIES_KEY_MAX];
    s_group_key (self, event, key, sizeof key);
    s_group_t *g = (s_group_t *) s_lru_find (&self->groups, key);
    if (g) {
        s_lru_touch (&self->groups, &g->node);
        if (!g->alive)
            s_group_begin (self, g);
    }
    else
    if (!(g = s_group_new (self, key))) {
        mesh_err ("incident: out of memory for group %s; point counted as waiting", key);
        s_count (self, MESH_SUPPRESS_WAITING);
        return 0;
    }
    self->dirty = true;
    g->points++;
    int64_t ts = event->ts_ms;
    g->first_ms = g->first_ms == S_NEVER || ts < g->first_ms ? ts : g->first_ms;
    g->last_ms = g->last_ms == S_NEVER || ts > g->last_ms ? ts : g->last_ms;
    if (s_join (self, g, event->series)) {
        g->members++;
        if (g->notified)
            g->changed = true;
    }
    if (!g->eligible) {
        if (self->min_points > 1 && !s_enough (self, g, ts)) {
            s_count (self, MESH_SUPPRESS_BELOW_MIN);
            s_schedule (self, g);
            return 0;
        }
        g->eligible = true;
        g->wait_until_ms = s_after (now, self->group_wait);
    }
    s_point_t *p = s_point_new (event, detector, info);
    if (!p) {
        mesh_err ("incident: out of memory keeping a point of %s; counted", event->series);
        s_count (self, s_holding (self, g, now));
        s_schedule (self, g);
        return 0;
    }
    int64_t due = s_due (self, g);
    if (now >= due) {                   //  due now: this point opens the incident
        p->reason = MESH_SUPPRESS_WAITING;     //  (only if opening fails)
        s_drop_pending (self, g);
        size_t opened = s_fire (self, g, p, event, now);
        s_schedule (self, g);
        return opened;
    }
    p->reason = s_holding (self, g, now);
    if (g->pending && g->pending->ts_ms > p->ts_ms) {
        s_count (self, p->reason);      //  an older point arriving late: the newer one stays
        s_point_destroy (&p);
    }
    else {
        s_drop_pending (self, g);
        g->pending = p;
        self->pending++;
    }
    s_schedule (self, g);
    return 0;
}

//  After a restart: a re-delivered event that carried incidents opens them again.
static size_t
s_refire (mesh_incidents_t *self, const mesh_event_t *event)
{
    size_t opened = 0;
    const char *topic = event->topic ? event->topic : "";
    for (size_t i = 0; i < self->fired_len && self->fired_previous; i++) {
        s_fired_t *f = &self->fired[i];
        if (!f->previous || f->partition != event->partition || strcmp (f->topic, topic))
            continue;
        if (f->offset < event->offset) {    //  passed by: it was done before the restart
            f->previous = false;
            self->fired_previous--;
        }
        else
        if (f->offset == event->offset) {
            f->previous = false;
            self->fired_previous--;
            mesh_incident_t *inc = s_incident_load (f->incident);
            if (inc && s_ready_push (self, inc) == 0) {
                mesh_info ("incident %.12s: its event came again after a restart; reopened",
                           inc->id);
                self->refired++;
                opened++;
            }
            else
                mesh_incident_destroy (&inc);
        }
    }
    return opened;
}

//  --- public ---------------------------------------------------------------------------

size_t
mesh_incidents_update (mesh_incidents_t *self, const mesh_event_t *event, bool anomalous,
                       const char *detector, const mesh_detect_info_t *info)
{
    assert (self);
    assert (event);
    if (event->ts_ms > s_time_limit (self)) {
        //  The tick's wall clock may be a batch old: the consumer judged by a fresher one.
        struct timespec wall;
        clock_gettime (CLOCK_REALTIME, &wall);
        int64_t wall_ms = (int64_t) wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
        if (event->ts_ms > wall_ms + (int64_t) self->agent->events.max_future_skew_s * 1000) {
            self->out_of_window++;      //  never moves the clock (see the top of this file)
            return 0;
        }
    }
    size_t opened = self->fired_previous ? s_refire (self, event) : 0;
    if (!self->have_time || event->ts_ms > self->event_watermark)
        self->event_watermark = event->ts_ms;
    if (!self->have_time || event->ts_ms > self->watermark)
        self->watermark = event->ts_ms;
    self->have_time = self->event_seen = true;
    self->last_event_wall = self->wall_ms;
    int64_t now = self->watermark;
    opened += s_advance (self, now, event);
    if (anomalous)
        opened += s_point (self, event, detector, info, now);
    return opened;
}

size_t
mesh_incidents_tick (mesh_incidents_t *self, int64_t wall_ms)
{
    assert (self);
    self->wall_ms = wall_ms;
    if (self->silences_path && (self->silences_checked == S_NEVER
                                || wall_ms - self->silences_checked >= S_SILENCE_CHECK_MS
                                || wall_ms < self->silences_checked)) {
        self->silences_checked = wall_ms;
        if (mesh_silences_refresh (self->file_silences, self->silences_path) == 1)
            mesh_info ("incident: silences reloaded from %s (%zu, %zu active)",
                       self->silences_path, mesh_silences_size (self->file_silences),
                       mesh_silences_active (self->file_silences, wall_ms));
    }
    size_t opened = 0;
    if (self->last_event_wall == S_NEVER)
        self->last_event_wall = wall_ms;
    int64_t idle = wall_ms - self->last_event_wall;
    if (self->have_time && idle >= (self->event_seen ? S_IDLE_MS : S_IDLE_START_MS)) {
        int64_t now = s_after (self->event_watermark, idle);
        if (now > s_time_limit (self))
            now = s_time_limit (self);
        if (now > self->watermark) {
            self->watermark = now;
            opened = s_advance (self, now, NULL);
        }
    }
    if (self->state_path && self->dirty
        && ((self->urgent && wall_ms - self->last_save >= S_URGENT_SAVE_MS)
            || wall_ms - self->last_save >= (int64_t) self->cfg->persist_interval_s * 1000
            || wall_ms < self->last_save))
        mesh_incidents_save (self);
    return opened;
}

mesh_incident_t *
mesh_incidents_next (mesh_incidents_t *self)
{
    assert (self);
    if (!self->ready_len)
        return NULL;
    mesh_incident_t *inc = self->ready[self->ready_head];
    self->ready_head = (self->ready_head + 1) % self->ready_alloc;
    self->ready_len--;
    return inc;
}

size_t
mesh_incidents_ready (const mesh_incidents_t *self)
{
    assert (self);
    return self->ready_len;
}

uint64_t
mesh_incidents_suppressed (const mesh_incidents_t *self)
{
    assert (self);
    uint64_t total = 0;
    for (int i = 0; i < MESH_SUPPRESS_COUNT_; i++)
        total += self->suppressed[i];
    return total;
}

uint64_t
mesh_incidents_suppressed_by (const mesh_incidents_t *self, mesh_suppress_t reason)
{
    assert (self);
    return reason >= 0 && reason < MESH_SUPPRESS_COUNT_ ? self->suppressed[reason] : 0;
}

uint64_t
mesh_incidents_opened (const mesh_incidents_t *self)
{
    assert (self);
    return self->opened;
}

size_t
mesh_incidents_groups (const mesh_incidents_t *self)
{
    assert (self);
    return self->alive;
}

size_t
mesh_incidents_pending (const mesh_incidents_t *self)
{
    assert (self);
    return self->pending;
}

uint64_t
mesh_incidents_resolved (const mesh_incidents_t *self)
{
    assert (self);
    return self->resolved;
}

uint64_t
mesh_incidents_evictions (const mesh_incidents_t *self)
{
    assert (self);
    return self->groups.evictions;
}

json_t *
mesh_incidents_counters (const mesh_incidents_t *self)
{
    assert (self);
    json_t *c = json_object ();
    json_object_set_new (c, "suppressed", json_integer ((json_int_t) mesh_incidents_suppressed
                                                        (self)));
    for (int i = 0; i < MESH_SUPPRESS_COUNT_; i++) {
        char key[48];
        snprintf (key, sizeof key, "suppressed_%s", s_reason_names[i]);
        json_object_set_new (c, key, json_integer ((json_int_t) self->suppressed[i]));
    }
    size_t active = mesh_silences_active (self->config_silences, self->wall_ms)
                  + (self->file_silences ? mesh_silences_active (self->file_silences,
                                                                 self->wall_ms) : 0);
    json_object_set_new (c, "incident_groups", json_integer ((json_int_t) self->alive));
    json_object_set_new (c, "incident_pending", json_integer ((json_int_t) self->pending));
    json_object_set_new (c, "groups_resolved", json_integer ((json_int_t) self->resolved));
    json_object_set_new (c, "group_evictions", json_integer ((json_int_t)
                                                             self->groups.evictions));
    json_object_set_new (c, "member_evictions", json_integer ((json_int_t)
                                                              self->members.evictions));
    json_object_set_new (c, "incidents_refired", json_integer ((json_int_t) self->refired));
    json_object_set_new (c, "silences_active", json_integer ((json_int_t) active));
    json_object_set_new (c, "state_errors", json_integer ((json_int_t) self->state_errors));
    json_object_set_new (c, "incident_out_of_window",
                         json_integer ((json_int_t) self->out_of_window));
    return c;
}

//  --- the state file ---------------------------------------------------------------------

static json_t *
s_ms_json (int64_t ms)
{
    return ms == S_NEVER ? json_null () : json_integer ((json_int_t) ms);
}

static bool
s_ms_from (json_t *v, int64_t *ms)
{
    if (json_is_null (v)) {
        *ms = S_NEVER;
        return true;
    }
    if (!json_is_integer (v))
        return false;
    *ms = json_integer_value (v);
    return true;
}

static json_t *
s_point_save (const s_point_t *p)
{
    return json_pack ("{s:s, s:s, s:s, s:i, s:I, s:I, s:o, s:o, s:O?, s:s}",
                      "series", p->series, "topic", p->topic, "detector", p->detector,
                      "partition", (int) p->partition, "offset", (json_int_t) p->offset,
                      "ts_ms", (json_int_t) p->ts_ms, "value", s_number (p->value),
                      "info", s_info_json (&p->info), "event", p->event,
                      "reason", s_reason_names[p->reason]);
}

static s_point_t *
s_point_load (json_t *j)
{
    const char *series = json_string_value (json_object_get (j, "series"));
    const char *topic = json_string_value (json_object_get (j, "topic"));
    const char *detector = json_string_value (json_object_get (j, "detector"));
    int reason = s_reason_from (json_string_value (json_object_get (j, "reason")));
    json_t *event = json_object_get (j, "event");
    if (!series || strlen (series) >= MESH_SERIES_KEY_MAX || !topic || !detector || reason < 0
        || !json_is_integer (json_object_get (j, "partition"))
        || !json_is_integer (json_object_get (j, "offset"))
        || !json_is_integer (json_object_get (j, "ts_ms")))
        return NULL;
    mesh_event_t ev = { .topic = topic,
                        .partition = (int32_t) s_int (j, "partition"),
                        .offset = json_integer_value (json_object_get (j, "offset")),
                        .ts_ms = json_integer_value (json_object_get (j, "ts_ms")),
                        .value = s_double (json_object_get (j, "value")),
                        .json = json_is_object (event) ? event : NULL };
    snprintf (ev.series, sizeof ev.series, "%s", series);
    mesh_detect_info_t info;
    s_info_from (json_object_get (j, "info"), &info);
    s_point_t *p = s_point_new (&ev, detector, &info);
    if (p)
        p->reason = (mesh_suppress_t) reason;
    return p;
}

static json_t *
s_strings_json (char **list, size_t count)
{
    json_t *array = json_array ();
    for (size_t i = 0; i < count; i++)
        json_array_append_new (array, json_string (list[i]));
    return array;
}

static json_t *
s_state_json (const mesh_incidents_t *self)
{
    json_t *groups = json_array ();
    //  Oldest first, so that loading in order rebuilds the same recency.
    for (s_node_t *n = self->groups.tail; n; n = n->prev) {
        const s_group_t *g = (const s_group_t *) n;
        json_t *times = json_array ();
        for (int i = 0; i < g->times_len; i++) {
            int at = (g->times_head - g->times_len + i + self->min_points) % self->min_points;
            json_array_append_new (times, json_integer ((json_int_t) g->times[at]));
        }
        json_array_append_new (groups, json_pack (
            "{s:s, s:I, s:b, s:b, s:b, s:i, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o}",
            "key", n->key, "epoch", (json_int_t) g->epoch, "alive", g->alive,
            "eligible", g->eligible, "changed", g->changed, "notified", (int) g->notified,
            "points", (json_int_t) g->points, "members", (json_int_t) g->members,
            "first_ms", s_ms_json (g->first_ms), "last_ms", s_ms_json (g->last_ms),
            "wait_until_ms", s_ms_json (g->wait_until_ms),
            "last_notify_ms", s_ms_json (g->last_notify_ms), "times", times,
            "pending", g->pending ? s_point_save (g->pending) : json_null ()));
    }
    json_t *members = json_array ();
    for (s_node_t *n = self->members.tail; n; n = n->prev)
        json_array_append_new (members, json_pack ("[s, I]", n->key,
                                                   (json_int_t) ((s_member_t *) n)->epoch));
    json_t *fired = json_array ();
    for (size_t i = 0; i < self->fired_len; i++) {
        const s_fired_t *f = &self->fired[i];
        json_array_append_new (fired, json_pack ("{s:b, s:s, s:i, s:I, s:O}", "held", f->held,
                                                 "topic", f->topic, "partition",
                                                 (int) f->partition, "offset",
                                                 (json_int_t) f->offset, "incident",
                                                 f->incident));
    }
    json_t *counts = json_object ();
    for (int i = 0; i < MESH_SUPPRESS_COUNT_; i++)
        json_object_set_new (counts, s_reason_names[i],
                             json_integer ((json_int_t) self->suppressed[i]));
    return json_pack ("{s:i, s:s, s:s?, s:s?, s:o, s:i, s:o, s:o, s:I, s:o, s:o, s:o, s:o}",
                      "version", S_STATE_VERSION, "agent", self->agent->name,
                      "cluster_id", self->cluster_id, "incarnation", self->incarnation,
                      "group_by", s_strings_json (self->cfg->group_by,
                                                  self->cfg->group_by_count),
                      "min_points", self->min_points,
                      "watermark_ms", self->have_time ? json_integer (self->watermark)
                                                      : json_null (),
                      "event_watermark_ms", self->have_time
                                            ? json_integer (self->event_watermark)
                                            : json_null (),
                      "next_epoch", (json_int_t) self->next_epoch,
                      "groups", groups, "members", members, "fired", fired,
                      "suppressed_at_save", counts);
}

static int
s_write_file (const char *path, const char *text)
{
    char tmp[4200];
    snprintf (tmp, sizeof tmp, "%s.tmp", path);
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    int rc = fd < 0 ? -1 : 0;
    size_t len = strlen (text), done = 0;
    while (rc == 0 && done < len) {
        ssize_t n = write (fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = -1;
        else
            done += (size_t) n;
    }
    if (rc == 0)
        rc = fsync (fd);
    if (fd >= 0 && close (fd) != 0)
        rc = -1;
    if (rc == 0)
        rc = rename (tmp, path);
    if (rc != 0) {
        int saved = errno;
        unlink (tmp);
        errno = saved;
        return -1;
    }
    //  The rename is durable once the directory is.
    char dir[4200];
    snprintf (dir, sizeof dir, "%s", path);
    char *slash = strrchr (dir, '/');
    if (slash) {
        *slash = 0;
        int dfd = open (*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync (dfd);
            close (dfd);
        }
    }
    return 0;
}

int
mesh_incidents_save (mesh_incidents_t *self)
{
    assert (self);
    if (!self->state_path)
        return 0;
    self->last_save = self->wall_ms;
    json_t *state = s_state_json (self);
    char *text = state ? json_dumps (state, JSON_COMPACT) : NULL;
    json_decref (state);
    int rc = text ? s_write_file (self->state_path, text) : -1;
    free (text);
    if (rc != 0) {
        self->state_errors++;
        if (self->state_errors == 1 || self->state_errors % 100 == 0)
            mesh_err ("incident: cannot write %s: %s (%" PRIu64 " failures so far)",
                      self->state_path, text ? strerror (errno) : "out of memory",
                      self->state_errors);
        return -1;
    }
    self->dirty = self->urgent = false;
    return 0;
}

//  Rebuild one group from its saved form; false if it does not check.
static bool
s_load_group (mesh_incidents_t *self, json_t *j)
{
    const char *key = json_string_value (json_object_get (j, "key"));
    json_t *times = json_object_get (j, "times");
    json_t *pending = json_object_get (j, "pending");
    int64_t first, last, wait, notify;
    if (!key || strlen (key) >= MESH_SERIES_KEY_MAX || s_lru_find (&self->groups, key)
        || !json_is_integer (json_object_get (j, "epoch"))
        || !json_is_boolean (json_object_get (j, "alive"))
        || !json_is_integer (json_object_get (j, "notified"))
        || !s_ms_from (json_object_get (j, "first_ms"), &first)
        || !s_ms_from (json_object_get (j, "last_ms"), &last)
        || !s_ms_from (json_object_get (j, "wait_until_ms"), &wait)
        || !s_ms_from (json_object_get (j, "last_notify_ms"), &notify)
        || !json_is_array (times) || !(json_is_null (pending) || json_is_object (pending)))
        return false;
    s_point_t *p = json_is_object (pending) ? s_point_load (pending) : NULL;
    if (json_is_object (pending) && !p)
        return false;
    s_group_t *g = s_group_new (self, key);
    if (!g) {
        s_point_destroy (&p);
        return false;
    }
    g->epoch = (uint64_t) json_integer_value (json_object_get (j, "epoch"));
    if (!json_is_true (json_object_get (j, "alive"))) {
        g->alive = false;
        self->alive--;
    }
    g->eligible = json_is_true (json_object_get (j, "eligible"));
    g->changed = json_is_true (json_object_get (j, "changed"));
    g->notified = (uint32_t) json_integer_value (json_object_get (j, "notified"));
    g->points = (uint64_t) json_integer_value (json_object_get (j, "points"));
    g->members = (uint64_t) json_integer_value (json_object_get (j, "members"));
    s_clamp (self, &first);
    s_clamp (self, &last);
    s_clamp (self, &wait);
    s_clamp (self, &notify);
    g->first_ms = first;
    g->last_ms = last;
    g->wait_until_ms = wait;
    g->last_notify_ms = notify;
    size_t i;
    json_t *t;
    json_array_foreach (times, i, t)
        if (self->min_points > 1 && json_is_integer (t)) {
            g->times[g->times_head] = json_integer_value (t);
            g->times_head = (g->times_head + 1) % self->min_points;
            if (g->times_len < self->min_points)
                g->times_len++;
        }
    if (p && g->alive) {
        g->pending = p;
        self->pending++;
    }
    else
        s_point_destroy (&p);
    if (g->alive && (g->last_ms == S_NEVER || (g->eligible && g->wait_until_ms == S_NEVER)
                     || (g->pending && !g->eligible)))
        return false;
    if (!g->alive && g->last_notify_ms == S_NEVER)
        return false;
    s_schedule (self, g);
    return true;
}

static bool
s_same_strings (json_t *array, char **list, size_t count)
{
    if (!json_is_array (array) || json_array_size (array) != count)
        return false;
    for (size_t i = 0; i < count; i++) {
        const char *s = json_string_value (json_array_get (array, i));
        if (!s || strcmp (s, list[i]))
            return false;
    }
    return true;
}

//  Forget everything loaded so far (a state file that turned out not to check).
static void
s_clear (mesh_incidents_t *self)
{
    while (self->groups.tail)
        s_group_free (self, (s_group_t *) self->groups.tail);
    while (self->members.tail) {
        s_member_t *m = (s_member_t *) self->members.tail;
        s_lru_remove (&self->members, &m->node);
        free (m->node.key);
        free (m);
    }
    for (size_t i = 0; i < self->fired_len; i++)
        s_fired_free (&self->fired[i]);
    self->fired_len = self->fired_previous = 0;
    while (self->ready_len) {
        mesh_incident_t *inc = mesh_incidents_next (self);
        mesh_incident_destroy (&inc);
    }
    self->have_time = false;
    self->next_epoch = 0;
}

//  0: loaded (or no file); 1: the file did not check (the caller sets it aside).
static int
s_load (mesh_incidents_t *self)
{
    json_error_t jerr;
    json_t *root = json_load_file (self->state_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (access (self->state_path, F_OK) != 0 && errno == ENOENT)
            return 0;
        mesh_warn ("incident: %s does not parse (%s, line %d); starting with no groups",
                   self->state_path, jerr.text, jerr.line);
        return 1;
    }
    const char *why = NULL;
    json_t *groups = json_object_get (root, "groups");
    json_t *members = json_object_get (root, "members");
    json_t *fired = json_object_get (root, "fired");
    json_t *wm = json_object_get (root, "watermark_ms");
    json_t *ewm = json_object_get (root, "event_watermark_ms");
    if (json_integer_value (json_object_get (root, "version")) != S_STATE_VERSION)
        why = "unknown version";
    else
    if (!json_is_array (groups) || !json_is_array (members) || !json_is_array (fired)
        || !json_is_integer (json_object_get (root, "next_epoch"))
        || !(json_is_null (wm) || json_is_integer (wm))
        || !(json_is_null (ewm) || json_is_integer (ewm)))
        why = "not an incident state file";
    else
    if (!s_same_strings (json_object_get (root, "group_by"), self->cfg->group_by,
                         self->cfg->group_by_count)) {
        //  Different groups: the old state speaks of keys that no longer exist.
        mesh_warn ("incident: %s was written for another group_by; starting with no groups",
                   self->state_path);
        json_decref (root);
        return 0;
    }
    self->next_epoch = (uint64_t) json_integer_value (json_object_get (root, "next_epoch"));
    if (json_is_integer (wm)) {
        self->have_time = true;
        self->watermark = json_integer_value (wm);
        self->event_watermark = json_is_integer (ewm) ? json_integer_value (ewm)
                                                      : self->watermark;
        s_clamp (self, &self->watermark);
        s_clamp (self, &self->event_watermark);
    }
    size_t i;
    json_t *j;
    json_array_foreach (groups, i, j)
        if (!why && !s_load_group (self, j))
            why = "a group does not check";
    json_array_foreach (members, i, j) {
        const char *series = json_string_value (json_array_get (j, 0));
        json_t *epoch = json_array_get (j, 1);
        if (why)
            break;
        if (!series || !json_is_integer (epoch) || s_lru_find (&self->members, series)) {
            why = "a member does not check";
            break;
        }
        if (self->members.size >= self->members.max)
            continue;
        s_member_t *m = calloc (1, sizeof *m);
        if (!m || !(m->node.key = strdup (series))) {
            free (m);
            why = "out of memory";
            break;
        }
        m->epoch = (uint64_t) json_integer_value (epoch);
        s_lru_insert (&self->members, &m->node);
    }
    json_array_foreach (fired, i, j) {
        if (why)
            break;
        const char *topic = json_string_value (json_object_get (j, "topic"));
        json_t *incident = json_object_get (j, "incident");
        mesh_incident_t *inc = json_is_object (incident) ? s_incident_load (incident) : NULL;
        if (!topic || !inc || !json_is_integer (json_object_get (j, "offset"))) {
            mesh_incident_destroy (&inc);
            why = "a remembered incident does not check";
            break;
        }
        if (!json_is_true (json_object_get (j, "held"))) {
            //  Opened while the stream was idle: it rode on no offset, so nothing will
            //  bring it back.  Open it again now; the ledger skips it if it was finished.
            if (s_ready_push (self, inc) == 0) {
                mesh_info ("incident %.12s: opened before the restart with no event to "
                           "ride on; reopened", inc->id);
                self->refired++;
                inc = NULL;
            }
        }
        else {
            s_fired_t *grown = realloc (self->fired, (self->fired_len + 1) * sizeof *grown);
            if (grown) {
                self->fired = grown;
                self->fired[self->fired_len] = (s_fired_t) {
                    .held = true, .previous = true, .topic = strdup (topic),
                    .partition = (int32_t) json_integer_value (json_object_get (j, "partition")),
                    .offset = json_integer_value (json_object_get (j, "offset")),
                    .incident = json_incref (incident) };
                self->fired_len++;
                self->fired_previous++;
            }
        }
        mesh_incident_destroy (&inc);
    }
    const char *cluster = json_string_value (json_object_get (root, "cluster_id"));
    const char *incarnation = json_string_value (json_object_get (root, "incarnation"));
    if (!why && ((cluster && !(self->loaded_cluster_id = strdup (cluster)))
                 || (incarnation && !(self->loaded_incarnation = strdup (incarnation)))))
        why = "out of memory";
    json_decref (root);
    if (why) {
        mesh_warn ("incident: %s: %s; starting with no groups", self->state_path, why);
        s_clear (self);
        return 1;
    }
    mesh_info ("incident: state loaded from %s: %zu groups (%zu with a candidate), %zu members",
               self->state_path, self->alive, self->pending, self->members.size);
    self->state_loaded = true;
    return 0;
}

static int
s_mkdir (const char *path)
{
    if (mkdir (path, 0750) == 0 || errno == EEXIST)
        return 0;
    mesh_err ("incident: cannot create %s: %s", path, strerror (errno));
    return -1;
}

mesh_incidents_t *
mesh_incidents_new (const mesh_agent_config_t *agent, const char *state_dir,
                    const char *instance)
{
    assert (agent);
    const mesh_incident_config_t *cfg = &agent->incident;
    if (cfg->min_points < 1 || cfg->group_wait_s < 0 || cfg->group_interval_s < 0
        || cfg->repeat_interval_s < 0 || cfg->cooldown_s < 0 || cfg->min_points_span_s < 0
        || cfg->resolve_s < 1 || cfg->max_groups < 1 || cfg->persist_interval_s < 1
        || agent->detector.max_series < 1) {
        mesh_err ("incident: the incident config of %s is out of range (see meshd.yaml(5))",
                  agent->name);
        return NULL;
    }
    if (sodium_init () < 0) {
        mesh_err ("incident: libsodium cannot start");
        return NULL;
    }
    mesh_incidents_t *self = calloc (1, sizeof *self);
    if (!self) {
        mesh_err ("incident: out of memory");
        return NULL;
    }
    self->agent = agent;
    self->cfg = cfg;
    self->group_wait = (int64_t) cfg->group_wait_s * 1000;
    self->group_interval = (int64_t) cfg->group_interval_s * 1000;
    self->repeat = (int64_t) cfg->repeat_interval_s * 1000;
    self->cooldown = (int64_t) cfg->cooldown_s * 1000;
    self->span = (int64_t) cfg->min_points_span_s * 1000;
    self->resolve = (int64_t) cfg->resolve_s * 1000;
    self->min_points = cfg->min_points;
    self->group_is_series = cfg->group_by_count == agent->key_field_count;
    for (size_t i = 0; self->group_is_series && i < cfg->group_by_count; i++)
        self->group_is_series = !strcmp (cfg->group_by[i], agent->key_fields[i]);
    self->fired_cap = (size_t) (agent->reason.queue_size > 0 ? agent->reason.queue_size : 0)
                    + (size_t) (agent->reason.workers > 0 ? agent->reason.workers : 0)
                    + S_FIRED_SLACK;
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    self->wall_ms = (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
    self->last_event_wall = S_NEVER;    //  idle time counts from the first tick
    self->last_save = self->wall_ms;
    self->silences_checked = S_NEVER;
    self->watermark = self->event_watermark = S_NEVER;
    bool ok = s_lru_init (&self->groups, cfg->max_groups) == 0
           && s_lru_init (&self->members, agent->detector.max_series) == 0
           && (self->config_silences = mesh_silences_new ()) != NULL;
    for (size_t i = 0; ok && i < cfg->silence_count; i++) {
        const mesh_silence_config_t *s = &cfg->silences[i];
        char id[32], why[256];
        snprintf (id, sizeof id, "config-%zu", i);
        if (!mesh_silences_add (self->config_silences, id, (const char *const *) s->matchers,
                                s->matcher_count, s->starts_ms, s->ends_ms, s->comment, 0, why,
                                sizeof why)) {
            mesh_err ("incident: %s: silence %zu: %s", agent->name, i, why);
            ok = false;
        }
    }
    if (ok && state_dir) {
        char dir[4096];
        snprintf (dir, sizeof dir, "%s/incidents", state_dir);
        char name[256];
        snprintf (name, sizeof name, "%s", instance ? instance : agent->name);
        for (char *c = name; *c; c++)
            if (*c == '/')
                *c = '_';
        ok = asprintf (&self->state_path, "%s/%s.json", dir, name) > 0
             && asprintf (&self->silences_path, "%s/silences.json", state_dir) > 0
             && (self->file_silences = mesh_silences_new ()) != NULL
             && s_mkdir (dir) == 0;
        if (ok && s_load (self) != 0) {
            char aside[4200];
            snprintf (aside, sizeof aside, "%s.corrupt", self->state_path);
            if (rename (self->state_path, aside) == 0)
                mesh_warn ("incident: the unreadable state was kept as %s", aside);
            self->state_errors++;
        }
        if (ok && self->clamped) {
            mesh_warn ("incident: %s held %llu time(s) beyond the wall clock plus "
                       "events.max_future_skew_s (%d s); clamped to it", self->state_path,
                       (unsigned long long) self->clamped, agent->events.max_future_skew_s);
            self->dirty = true;
        }
    }
    if (!ok) {
        mesh_incidents_destroy (&self);
        return NULL;
    }
    return self;
}

static bool
s_same (const char *a, const char *b)
{
    return a == b || (a && b && !strcmp (a, b));
}

int
mesh_incidents_set_history (mesh_incidents_t *self, const char *cluster_id,
                            const char *incarnation)
{
    assert (self);
    free (self->cluster_id);
    free (self->incarnation);
    self->cluster_id = cluster_id ? strdup (cluster_id) : NULL;
    self->incarnation = incarnation ? strdup (incarnation) : NULL;
    if ((cluster_id && !self->cluster_id) || (incarnation && !self->incarnation)) {
        mesh_err ("incident: out of memory");
        return -1;
    }
    if (self->state_loaded && (!s_same (cluster_id, self->loaded_cluster_id)
                               || !s_same (incarnation, self->loaded_incarnation))) {
        mesh_warn ("incident: %s was written for %s %s, not for %s %s (a new broker or "
                   "cluster: its offsets start afresh); its groups and remembered incidents "
                   "are dropped", self->state_path,
                   self->loaded_incarnation ? "broker incarnation" : "cluster",
                   self->loaded_incarnation ? self->loaded_incarnation
                   : self->loaded_cluster_id ? self->loaded_cluster_id : "(unknown)",
                   incarnation ? "broker incarnation" : "cluster",
                   incarnation ? incarnation : cluster_id ? cluster_id : "(unknown)");
        s_clear (self);
        self->dirty = true;
    }
    self->state_loaded = false;         //  compared once; what is saved from now is ours
    return 0;
}

void
mesh_incidents_destroy (mesh_incidents_t **self_p)
{
    assert (self_p);
    mesh_incidents_t *self = *self_p;
    if (!self)
        return;
    if (self->state_path && self->groups.buckets && self->members.buckets)
        mesh_incidents_save (self);
    if (self->groups.buckets && self->members.buckets)
        s_clear (self);
    free (self->groups.buckets);
    free (self->members.buckets);
    free (self->heap);
    free (self->ready);
    free (self->fired);
    mesh_silences_destroy (&self->config_silences);
    mesh_silences_destroy (&self->file_silences);
    free (self->silences_path);
    free (self->state_path);
    free (self->cluster_id);
    free (self->incarnation);
    free (self->loaded_cluster_id);
    free (self->loaded_incarnation);
    free (self);
    *self_p = NULL;
}
