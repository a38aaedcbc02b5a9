/*  test_incident - incidents, their decision ids and JSON, and the de-duplication
 *  table: grouping, group_wait, group_interval, repeat_interval, cooldown, min_points
 *  in a span, resolution, silences (config and file, equality and regex, expiry),
 *  persistence across a restart, a corrupt state file, eviction, and the accounting
 *  that leaves no anomalous point uncounted.
 *
 *  Usage example: every consumed event goes through mesh_incidents_update (anomalous
 *  or not: event time moves on with every event); what it opened is taken with
 *  mesh_incidents_next.  All times are explicit event times, so nothing here depends
 *  on the clock except where a test sets the wall clock through mesh_incidents_tick.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "incident.h"
#include "silence.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

static void
test_decision_id_is_stable_and_distinct (void **state)
{
    char a[65], b[65], c[65];
    mesh_incident_decision_id (NULL, "agent-a", "metrics", 3, 42, a);
    //  SHA-256 of "agent-a\0metrics\0" "3\0" "42", computed independently.
    assert_string_equal (a, "c23d6e411c90832a30982483dd7f5f2ad282ce09c5928291f7bbf711ba79e433");
    mesh_incident_decision_id (NULL, "agent-a", "metrics", 3, 42, b);
    assert_string_equal (a, b);
    mesh_incident_decision_id (NULL, "agent-a", "metrics", 3, 43, b);
    assert_string_not_equal (a, b);
    mesh_incident_decision_id (NULL, "agent-a", "metrics", 4, 42, b);
    assert_string_not_equal (a, b);
    mesh_incident_decision_id (NULL, "agent-b", "metrics", 3, 42, b);
    assert_string_not_equal (a, b);
    //  The separators keep the fields apart: ("ab","c") is not ("a","bc"), and
    //  partition 1 offset 23 is not partition 12 offset 3.
    mesh_incident_decision_id (NULL, "ab", "c", 0, 0, b);
    mesh_incident_decision_id (NULL, "a", "bc", 0, 0, c);
    assert_string_not_equal (b, c);
    mesh_incident_decision_id (NULL, "a", "b", 1, 23, b);
    mesh_incident_decision_id (NULL, "a", "b", 12, 3, c);
    assert_string_not_equal (b, c);
    mesh_incident_decision_id (NULL, "", "", 0, 0, b);
    assert_string_equal (b, "92af716cfde77d0f2e3c666941b1933ca4b5349236b7148b74fa6ad7ba60ea89");
    assert_int_equal (strlen (b), 64);
}

static mesh_detect_info_t
sample_info (void)
{
    mesh_detect_info_t info = { .score = 0.9999, .mean = 45.5, .stddev = 3.25, .z = 8.5,
                                .n = 120, .warm = true, .window_len = 3,
                                .window = { 44, 46, 73.125 } };
    return info;
}

static void
test_incident_copies_everything (void **state)
{
    json_t *msg = json_pack ("{s:s, s:s, s:f, s:I}", "host", "web-1", "metric", "cpu", "value",
                             73.125, "ts", (json_int_t) 1767225660);
    char topic[] = "metrics";
    mesh_event_t ev = { .topic = topic, .partition = 2, .offset = 1234, .value = 73.125,
                        .ts_ms = 1767225660000LL, .json = msg };
    strcpy (ev.series, "web-1/cpu");
    char agent[] = "cpu-watch";
    char detector[] = "ewma";
    mesh_detect_info_t info = sample_info ();
    mesh_incident_t *inc = mesh_incident_new (agent, NULL, &ev, detector, &info);
    assert_non_null (inc);
    //  Scribble over every source: the incident must not notice.
    strcpy (agent, "XXXXXXXXX");
    strcpy (topic, "XXXXXXX");
    strcpy (detector, "XXXX");
    strcpy (ev.series, "XXXX");
    json_object_set_new (msg, "host", json_string ("changed"));
    json_decref (msg);
    info.score = 0;

    char id[65];
    mesh_incident_decision_id (NULL, "cpu-watch", "metrics", 2, 1234, id);
    assert_string_equal (inc->id, id);
    assert_string_equal (inc->agent, "cpu-watch");
    assert_string_equal (inc->topic, "metrics");
    assert_string_equal (inc->series, "web-1/cpu");
    assert_string_equal (inc->detector, "ewma");
    assert_int_equal (inc->partition, 2);
    assert_int_equal (inc->offset, 1234);
    assert_true (inc->value == 73.125);
    assert_int_equal (inc->ts_ms, 1767225660000LL);
    assert_true (inc->info.score == 0.9999);
    assert_non_null (inc->event);
    assert_string_equal (json_string_value (json_object_get (inc->event, "host")), "web-1");
    mesh_incident_destroy (&inc);
    assert_null (inc);
    mesh_incident_destroy (&inc);

    //  No message attached is allowed (a test or a replay may have none).
    ev.json = NULL;
    strcpy (ev.series, "s");
    inc = mesh_incident_new ("a", NULL, &ev, "ewma", &info);
    assert_non_null (inc);
    assert_null (inc->event);
    mesh_incident_destroy (&inc);
}

static void
test_incident_json_fields (void **state)
{
    mesh_event_t ev = { .topic = "metrics", .partition = 1, .offset = 77, .value = 73.125,
                        .ts_ms = 1767225660500LL, .json = NULL };
    strcpy (ev.series, "web-1/cpu");
    mesh_detect_info_t info = sample_info ();
    mesh_incident_t *inc = mesh_incident_new ("cpu-watch", NULL, &ev, "ewma", &info);
    json_t *j = mesh_incident_json (inc);
    assert_non_null (j);
    assert_string_equal (json_string_value (json_object_get (j, "series")), "web-1/cpu");
    assert_true (json_number_value (json_object_get (j, "value")) == 73.125);
    assert_true (json_number_value (json_object_get (j, "score")) == 0.9999);
    assert_string_equal (json_string_value (json_object_get (j, "detector")), "ewma");
    assert_true (json_number_value (json_object_get (j, "mean")) == 45.5);
    assert_true (json_number_value (json_object_get (j, "stddev")) == 3.25);
    assert_true (json_number_value (json_object_get (j, "z")) == 8.5);
    assert_int_equal (json_integer_value (json_object_get (j, "n")), 120);
    json_t *window = json_object_get (j, "window");
    assert_true (json_is_array (window));
    assert_int_equal (json_array_size (window), 3);
    assert_true (json_number_value (json_array_get (window, 2)) == 73.125);
    assert_true (json_is_integer (json_object_get (j, "started_at")));
    assert_int_equal (json_integer_value (json_object_get (j, "started_at")), 1767225660);
    assert_int_equal (json_integer_value (json_object_get (j, "ts_ms")), 1767225660500LL);
    json_t *trigger = json_object_get (j, "trigger");
    assert_string_equal (json_string_value (json_object_get (trigger, "topic")), "metrics");
    assert_int_equal (json_integer_value (json_object_get (trigger, "partition")), 1);
    assert_int_equal (json_integer_value (json_object_get (trigger, "offset")), 77);
    //  The event travels separately (incident->event), not inside this object.
    assert_null (json_object_get (j, "event"));
    json_decref (j);
    mesh_incident_destroy (&inc);

    //  Numbers JSON cannot carry become null; times before 1970 floor to the second.
    info.mean = NAN;
    info.z = INFINITY;
    info.window_len = 1;
    info.window[0] = NAN;
    ev.ts_ms = -1500;
    inc = mesh_incident_new ("cpu-watch", NULL, &ev, "ewma", &info);
    j = mesh_incident_json (inc);
    assert_non_null (j);
    assert_true (json_is_null (json_object_get (j, "mean")));
    assert_true (json_is_null (json_object_get (j, "z")));
    assert_true (json_is_null (json_array_get (json_object_get (j, "window"), 0)));
    assert_int_equal (json_integer_value (json_object_get (j, "started_at")), -2);
    char *text = json_dumps (j, 0);
    assert_non_null (text);
    free (text);
    json_decref (j);
    mesh_incident_destroy (&inc);
}

//  --- the de-duplication table --------------------------------------------------------

#define T0 1767225600000LL              //  2026-01-01T00:00:00Z
#define SEC 1000LL

static char *s_key_fields[] = { "host", "metric" };
static char *s_by_host[] = { "host" };

//  An agent "ops" keyed by host/metric, every incident default as in meshd.yaml but
//  small tables.
static void
s_agent (mesh_agent_config_t *a)
{
    memset (a, 0, sizeof *a);
    a->name = "ops";
    a->key_fields = s_key_fields;
    a->key_field_count = 2;
    a->detector.max_series = 100;
    a->reason.queue_size = 8;
    a->reason.workers = 1;
    mesh_incident_config_t *c = &a->incident;
    c->group_by = s_key_fields;
    c->group_by_count = 2;
    c->group_wait_s = 0;
    c->group_interval_s = 300;
    c->repeat_interval_s = 3600;
    c->cooldown_s = 300;
    c->min_points = 1;
    c->min_points_span_s = 300;
    c->resolve_s = 300;
    c->max_groups = 100;
    c->persist_interval_s = 5;
}

//  One event of HOST/METRIC at TS on metrics[PARTITION]@OFFSET through the table.
static size_t
s_feed (mesh_incidents_t *t, const char *host, const char *metric, int64_t ts,
        int32_t partition, int64_t offset, bool anomalous)
{
    json_t *msg = json_pack ("{s:s, s:s, s:f, s:I}", "host", host, "metric", metric, "value",
                             99.5, "ts", (json_int_t) (ts / 1000));
    mesh_event_t ev = { .topic = "metrics", .partition = partition, .offset = offset,
                        .value = 99.5, .ts_ms = ts, .json = msg };
    snprintf (ev.series, sizeof ev.series, "%s/%s", host, metric);
    mesh_detect_info_t info = sample_info ();
    size_t opened = mesh_incidents_update (t, &ev, anomalous, "ewma",
                                           anomalous ? &info : NULL);
    json_decref (msg);
    return opened;
}

//  The next incident: its series, decision id (of metrics[id_part]@id_off), trigger
//  offset and group notification; returned for more checks (caller destroys).
static mesh_incident_t *
s_expect (mesh_incidents_t *t, const char *series, int32_t id_part, int64_t id_off,
          int64_t trigger_off, int notification, const char *why)
{
    mesh_incident_t *inc = mesh_incidents_next (t);
    assert_non_null (inc);
    assert_string_equal (inc->series, series);
    char id[65];
    mesh_incident_decision_id (NULL, "ops", "metrics", id_part, id_off, id);
    assert_string_equal (inc->id, id);
    assert_int_equal (inc->offset, trigger_off);
    assert_non_null (inc->group);
    assert_int_equal (json_integer_value (json_object_get (inc->group, "notification")),
                      notification);
    assert_string_equal (json_string_value (json_object_get (inc->group, "why")), why);
    json_t *point = json_object_get (inc->group, "point");
    assert_int_equal (json_integer_value (json_object_get (point, "offset")), id_off);
    return inc;
}

static void
s_expect_done (mesh_incidents_t *t, const char *series, int32_t id_part, int64_t id_off,
               int64_t trigger_off, int notification, const char *why)
{
    mesh_incident_t *inc = s_expect (t, series, id_part, id_off, trigger_off, notification,
                                     why);
    mesh_incident_destroy (&inc);
}

//  Every anomalous point is an incident, a count, or still a candidate.
static void
s_accounted (mesh_incidents_t *t, uint64_t anomalous)
{
    assert_int_equal (mesh_incidents_opened (t) + mesh_incidents_suppressed (t)
                      + mesh_incidents_pending (t), anomalous);
}

static void
test_first_point_opens_at_once (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    mesh_incidents_t *t = mesh_incidents_new (&a, NULL, NULL);
    assert_non_null (t);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 0, 10, false), 0);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + SEC, 0, 11, true), 1);
    assert_int_equal (mesh_incidents_ready (t), 1);
    mesh_incident_t *inc = s_expect (t, "web-1/cpu", 0, 11, 11, 1, "first");
    assert_string_equal (inc->topic, "metrics");
    assert_int_equal (inc->ts_ms, T0 + SEC);
    json_t *g = inc->group;
    assert_string_equal (json_string_value (json_object_get (g, "key")), "web-1/cpu");
    assert_int_equal (json_integer_value (json_object_get (g, "members")), 1);
    assert_int_equal (json_integer_value (json_object_get (g, "points")), 1);
    assert_int_equal (json_integer_value (json_object_get (g, "first_ms")), T0 + SEC);
    assert_string_equal (json_string_value (json_object_get (g, "first_at")),
                         "2026-01-01T00:00:01Z");
    assert_string_equal (json_string_value (json_object_get (json_object_get (g, "labels"),
                                                             "metric")), "cpu");
    //  The group travels in the incident's JSON, for the rules and the model.
    json_t *j = mesh_incident_json (inc);
    assert_string_equal (json_string_value (json_object_get (json_object_get (j, "group"),
                                                             "key")), "web-1/cpu");
    json_decref (j);
    mesh_incident_destroy (&inc);
    assert_null (mesh_incidents_next (t));
    //  The same series again within repeat_interval: a candidate held by "repeat".
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 60 * SEC, 0, 12, true), 0);
    assert_int_equal (mesh_incidents_pending (t), 1);
    //  Another series is another group and opens its own.
    assert_int_equal (s_feed (t, "web-2", "cpu", T0 + 61 * SEC, 1, 5, true), 1);
    s_expect_done (t, "web-2/cpu", 1, 5, 5, 1, "first");
    assert_int_equal (mesh_incidents_groups (t), 2);
    //  A newer point replaces the candidate; the old one is counted as repeat.
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 90 * SEC, 0, 13, true), 0);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_REPEAT), 1);
    assert_int_equal (mesh_incidents_suppressed (t), 1);
    s_accounted (t, 4);
    json_t *c = mesh_incidents_counters (t);
    assert_int_equal (json_integer_value (json_object_get (c, "suppressed_repeat")), 1);
    assert_int_equal (json_integer_value (json_object_get (c, "incident_pending")), 1);
    assert_int_equal (json_integer_value (json_object_get (c, "incident_groups")), 2);
    json_decref (c);
    mesh_incidents_destroy (&t);
    assert_null (t);
    mesh_incidents_destroy (&t);
}

static void
test_group_wait_collects_then_any_event_fires (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    a.incident.group_by = s_by_host;
    a.incident.group_by_count = 1;
    a.incident.group_wait_s = 30;
    mesh_incidents_t *t = mesh_incidents_new (&a, NULL, NULL);
    assert_non_null (t);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 0, 100, true), 0);
    assert_int_equal (s_feed (t, "web-1", "mem", T0 + 10 * SEC, 1, 200, true), 0);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 29 * SEC, 0, 101, false), 0);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_WAITING), 1);
    assert_int_equal (mesh_incidents_pending (t), 1);
    //  An out-of-order older point does not replace the newer candidate.
    assert_int_equal (s_feed (t, "web-1", "disk", T0 + 5 * SEC, 2, 300, true), 0);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_WAITING), 2);
    //  group_wait ends with an event of any series: the group's newest point opens the
    //  incident (its id), riding on the event that moved time past the wait.
    assert_int_equal (s_feed (t, "db-9", "io", T0 + 30 * SEC, 3, 400, false), 1);
    mesh_incident_t *inc = s_expect (t, "web-1/mem", 1, 200, 400, 1, "first");
    assert_int_equal (inc->partition, 3);
    assert_string_equal (json_string_value (json_object_get (inc->group, "key")), "web-1");
    assert_int_equal (json_integer_value (json_object_get (inc->group, "members")), 3);
    assert_int_equal (json_integer_value (json_object_get (inc->group, "points")), 3);
    assert_int_equal (json_integer_value (json_object_get (inc->group, "first_ms")), T0);
    assert_int_equal (json_integer_value (json_object_get (inc->group, "last_ms")),
                      T0 + 10 * SEC);
    assert_true (json_is_null (json_object_get (json_object_get (inc->group, "labels"),
                                                "metric")) == false);
    mesh_incident_destroy (&inc);
    s_accounted (t, 3);
    mesh_incidents_destroy (&t);
}

static void
test_one_event_fires_several_groups (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    a.incident.group_wait_s = 60;
    mesh_incidents_t *t = mesh_incidents_new (&a, NULL, NULL);
    assert_int_equal (s_feed (t, "a", "cpu", T0, 0, 1, true), 0);
    assert_int_equal (s_feed (t, "b", "cpu", T0 + SEC, 1, 1, true), 0);
    //  Both waits end on this one event: two incidents, two ids, one offset to hold
    //  twice, earliest deadline first.
    assert_int_equal (s_feed (t, "c", "cpu", T0 + 120 * SEC, 2, 9, false), 2);
    s_expect_done (t, "a/cpu", 0, 1, 9, 1, "first");
    s_expect_done (t, "b/cpu", 1, 1, 9, 1, "first");
    assert_null (mesh_incidents_next (t));
    mesh_incidents_destroy (&t);
}

static void
test_group_interval_for_new_series (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    a.incident.group_by = s_by_host;
    a.incident.group_by_count = 1;
    a.incident.group_interval_s = 300;
    a.incident.cooldown_s = 0;
    mesh_incidents_t *t = mesh_incidents_new (&a, NULL, NULL);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 0, 1, true), 1);
    s_expect_done (t, "web-1/cpu", 0, 1, 1, 1, "first");
    //  The known series again: held by repeat.  A new series: the group changed, held
    //  by group_interval; the older candidate is counted as repeat.
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 10 * SEC, 0, 2, true), 0);
    assert_int_equal (s_feed (t, "web-1", "mem", T0 + 20 * SEC, 0, 3, true), 0);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_REPEAT), 1);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 30 * SEC, 0, 4, true), 0);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_GROUPED), 1);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 299 * SEC, 0, 5, false), 0);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 300 * SEC, 0, 6, false), 1);
    mesh_incident_t *inc = s_expect (t, "web-1/cpu", 0, 4, 6, 2, "changed");
    assert_int_equal (json_integer_value (json_object_get (inc->group, "members")), 2);
    mesh_incident_destroy (&inc);
    //  Still firing (a known series at +320), and a third series after the interval:
    //  opens at once.
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 320 * SEC, 0, 7, true), 0);
    assert_int_equal (s_feed (t, "web-1", "disk", T0 + 601 * SEC, 0, 8, true), 1);
    s_expect_done (t, "web-1/disk", 0, 8, 8, 3, "changed");
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_REPEAT), 2);
    s_accounted (t, 6);
    mesh_incidents_destroy (&t);
}

static void
test_repeat_interval_while_firing (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    a.incident.repeat_interval_s = 3600;
    mesh_incidents_t *t = mesh_incidents_new (&a, NULL, NULL);
    int64_t off = 0;
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 0, off++, true), 1);
    s_expect_done (t, "web-1/cpu", 0, 0, 0, 1, "first");
    //  Anomalous every minute: one incident per repeat_interval, the rest counted.
    for (int m = 1; m < 60; m++)
        assert_int_equal (s_feed (t, "web-1", "cpu", T0 + m * 60 * SEC, 0, off++, true), 0);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_REPEAT), 58);
    //  The deadline is met before the point that meets it is applied: the candidate
    //  then (from minute 59) opens the incident, on this event's offset; this point is
    //  the next candidate.  A replay, or an idle stream's tick, gives the same.
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 3600 * SEC, 0, off, true), 1);
    s_expect_done (t, "web-1/cpu", 0, off - 1, off, 2, "repeat");
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_REPEAT), 58);
    assert_int_equal (mesh_incidents_pending (t), 1);
    s_accounted (t, 61);
    mesh_incidents_destroy (&t);
}

static void
test_repeat_needs_the_group_still_firing (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    a.incident.repeat_interval_s = 600;
    a.incident.resolve_s = 300;
    mesh_incidents_t *t = mesh_incidents_new (&a, NULL, NULL);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 0, 1, true), 1);
    mesh_incident_t *inc = mesh_incidents_next (t);
    mesh_incident_destroy (&inc);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 100 * SEC, 0, 2, true), 0);
    //  Quiet after that: resolved at +400, before the repeat would be due at +600.
    assert_int_equal (s_feed (t, "web-2", "cpu", T0 + 700 * SEC, 0, 3, false), 0);
    assert_int_equal (mesh_incidents_groups (t), 0);
    assert_int_equal (mesh_incidents_resolved (t), 1);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_REPEAT), 1);
    s_accounted (t, 2);
    //  With a point within resolve_s of the repeat time it does repeat (by the deadline,
    //  on the next event of any series).
    assert_int_equal (s_feed (t, "web-3", "cpu", T0 + 1000 * SEC, 1, 1, true), 1);
    inc = mesh_incidents_next (t);
    mesh_incident_destroy (&inc);
    assert_int_equal (s_feed (t, "web-3", "cpu", T0 + 1200 * SEC, 1, 2, true), 0);
    assert_int_equal (s_feed (t, "web-3", "cpu", T0 + 1400 * SEC, 1, 3, true), 0);
    assert_int_equal (s_feed (t, "web-9", "cpu", T0 + 1700 * SEC, 1, 4, false), 1);
    s_expect_done (t, "web-3/cpu", 1, 3, 4, 2, "repeat");
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_REPEAT), 2);
    s_accounted (t, 5);
    mesh_incidents_destroy (&t);
}

static void
test_min_points_within_span (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    a.incident.min_points = 3;
    a.incident.min_points_span_s = 60;
    mesh_incidents_t *t = mesh_incidents_new (&a, NULL, NULL);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 0, 1, true), 0);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 50 * SEC, 0, 2, true), 0);
    //  Three points, but spread over 100 s: still below.
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 100 * SEC, 0, 3, true), 0);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_BELOW_MIN), 3);
    assert_int_equal (mesh_incidents_pending (t), 0);
    //  The last three within 60 s (50, 100, 110): fires, with this point.
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 110 * SEC, 0, 4, true), 1);
    mesh_incident_t *inc = s_expect (t, "web-1/cpu", 0, 4, 4, 1, "first");
    assert_int_equal (json_integer_value (json_object_get (inc->group, "points")), 4);
    mesh_incident_destroy (&inc);
    //  A lone blip on another series never fires; it resolves, counted below_min.
    assert_int_equal (s_feed (t, "web-2", "cpu", T0 + 120 * SEC, 0, 5, true), 0);
    assert_int_equal (s_feed (t, "web-2", "cpu", T0 + 900 * SEC, 0, 6, false), 0);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_BELOW_MIN), 4);
    assert_int_equal (mesh_incidents_groups (t), 0);
    s_accounted (t, 5);
    mesh_incidents_destroy (&t);
}

static void
test_resolution_and_cooldown (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    a.incident.resolve_s = 60;
    a.incident.cooldown_s = 300;
    mesh_incidents_t *t = mesh_incidents_new (&a, NULL, NULL);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 0, 1, true), 1);
    s_expect_done (t, "web-1/cpu", 0, 1, 1, 1, "first");
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 61 * SEC, 0, 2, false), 0);
    assert_int_equal (mesh_incidents_resolved (t), 1);
    assert_int_equal (mesh_incidents_groups (t), 0);
    //  Back within the cooldown: a new life, but held until cooldown_s after the last
    //  incident; replaced points are counted as cooldown.
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 120 * SEC, 0, 3, true), 0);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 130 * SEC, 0, 4, true), 0);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_COOLDOWN), 1);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 300 * SEC, 0, 5, false), 1);
    s_expect_done (t, "web-1/cpu", 0, 4, 5, 1, "first");
    //  Resolved again and back after the cooldown: opens at once, a fresh group.
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 1000 * SEC, 0, 6, true), 1);
    mesh_incident_t *inc = s_expect (t, "web-1/cpu", 0, 6, 6, 1, "first");
    assert_int_equal (json_integer_value (json_object_get (inc->group, "points")), 1);
    mesh_incident_destroy (&inc);
    assert_int_equal (mesh_incidents_resolved (t), 2);
    s_accounted (t, 4);
    mesh_incidents_destroy (&t);
}

static void
test_silences_in_config (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    char *m1[] = { "host=web-1" };
    char *m2[] = { "metric=~cpu.*", "host!=web-3" };
    char *m3[] = { "agent=ops", "metric=disk" };
    mesh_silence_config_t silences[] = {
        { .matchers = m1, .matcher_count = 1 },
        { .matchers = m2, .matcher_count = 2, .comment = "cpu is noisy" },
        { .matchers = m3, .matcher_count = 2 },
    };
    a.incident.silences = silences;
    a.incident.silence_count = 3;
    mesh_incidents_t *t = mesh_incidents_new (&a, NULL, NULL);
    assert_non_null (t);
    assert_int_equal (s_feed (t, "web-1", "mem", T0, 0, 1, true), 0);       //  equality
    assert_int_equal (s_feed (t, "web-2", "cpu_user", T0, 0, 2, true), 0);  //  regex
    assert_int_equal (s_feed (t, "web-2", "disk", T0, 0, 3, true), 0);      //  agent name
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_SILENCED), 3);
    assert_int_equal (mesh_incidents_groups (t), 0);
    //  != excludes web-3; the regex matches whole values only.
    assert_int_equal (s_feed (t, "web-3", "cpu", T0, 0, 4, true), 1);
    assert_int_equal (s_feed (t, "web-2", "xcpu", T0, 0, 5, true), 1);
    s_expect_done (t, "web-3/cpu", 0, 4, 4, 1, "first");
    s_expect_done (t, "web-2/xcpu", 0, 5, 5, 1, "first");
    json_t *c = mesh_incidents_counters (t);
    assert_int_equal (json_integer_value (json_object_get (c, "silences_active")), 3);
    json_decref (c);
    s_accounted (t, 5);
    mesh_incidents_destroy (&t);

    //  A silence that could mute everything is refused.
    char *m4[] = { "host!=nothing" };
    mesh_silence_config_t bad[] = { { .matchers = m4, .matcher_count = 1 } };
    a.incident.silences = bad;
    a.incident.silence_count = 1;
    assert_null (mesh_incidents_new (&a, NULL, NULL));
}

static void
test_silence_window_by_wall_clock (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    char *m[] = { "host=web-1" };
    int64_t wall = 1800000000000LL;
    mesh_silence_config_t silences[] = {
        { .matchers = m, .matcher_count = 1, .starts_ms = wall + 60 * SEC,
          .ends_ms = wall + 120 * SEC },
    };
    a.incident.silences = silences;
    a.incident.silence_count = 1;
    a.incident.repeat_interval_s = 0;
    a.incident.cooldown_s = 0;
    mesh_incidents_t *t = mesh_incidents_new (&a, NULL, NULL);
    //  Event time is years before the wall clock: silences go by the wall clock.
    mesh_incidents_tick (t, wall);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 0, 1, true), 1);
    mesh_incidents_tick (t, wall + 60 * SEC);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + SEC, 0, 2, true), 0);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_SILENCED), 1);
    mesh_incidents_tick (t, wall + 120 * SEC);     //  ended: not silenced any more
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 2 * SEC, 0, 3, true), 1);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_SILENCED), 1);
    while (mesh_incidents_ready (t)) {
        mesh_incident_t *inc = mesh_incidents_next (t);
        mesh_incident_destroy (&inc);
    }
    mesh_incidents_destroy (&t);
}

static char s_dir[64];

static int
s_rm (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove (path);
}

static int
s_mkdtemp (void **state)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/test_incident.XXXXXX");
    return mkdtemp (s_dir) ? 0 : -1;
}

static int
s_rmtree (void **state)
{
    return nftw (s_dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
}

static void
test_silences_file_followed (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    a.incident.repeat_interval_s = 0;
    a.incident.cooldown_s = 0;
    char path[128];
    snprintf (path, sizeof path, "%s/silences.json", s_dir);
    int64_t wall = 1800000000000LL;
    mesh_silences_t *set = mesh_silences_new ();
    const char *matchers[] = { "host=~web-[12]", "metric=cpu" };
    char why[256];
    const char *id = mesh_silences_add (set, NULL, matchers, 2, wall, wall + 3600 * SEC,
                                        "deploy", wall, why, sizeof why);
    assert_non_null (id);
    char saved_id[32];
    snprintf (saved_id, sizeof saved_id, "%s", id);
    assert_int_equal (mesh_silences_save (set, path), 0);

    mesh_incidents_t *t = mesh_incidents_new (&a, s_dir, "ops");
    assert_non_null (t);
    mesh_incidents_tick (t, wall);
    assert_int_equal (s_feed (t, "web-2", "cpu", T0, 0, 1, true), 0);
    assert_int_equal (s_feed (t, "web-3", "cpu", T0, 0, 2, true), 1);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_SILENCED), 1);
    //  Expired in the file: followed at the next look (at most a second later).
    assert_int_equal (mesh_silences_expire (set, saved_id, wall + 400, why, sizeof why), 0);
    assert_int_equal (mesh_silences_save (set, path), 0);
    mesh_incidents_tick (t, wall + 500);
    assert_int_equal (s_feed (t, "web-2", "cpu", T0 + SEC, 0, 3, true), 0);
    mesh_incidents_tick (t, wall + 1000);
    assert_int_equal (s_feed (t, "web-2", "cpu", T0 + 2 * SEC, 0, 4, true), 1);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_SILENCED), 2);
    //  The file removed: no run-time silences.
    unlink (path);
    mesh_silences_destroy (&set);
    mesh_incidents_destroy (&t);
}

static void
test_state_survives_restart (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    a.incident.group_by = s_by_host;
    a.incident.group_by_count = 1;
    a.incident.group_wait_s = 60;
    mesh_incidents_t *t = mesh_incidents_new (&a, s_dir, "ops");
    assert_non_null (t);
    //  A notified group with two members, and one still waiting.
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 0, 1, true), 0);
    assert_int_equal (s_feed (t, "web-1", "mem", T0 + SEC, 0, 2, true), 0);
    assert_int_equal (s_feed (t, "web-9", "cpu", T0 + 61 * SEC, 0, 3, false), 1);
    s_expect_done (t, "web-1/mem", 0, 2, 3, 1, "first");
    assert_int_equal (s_feed (t, "web-2", "cpu", T0 + 70 * SEC, 1, 1, true), 0);
    uint64_t waiting = mesh_incidents_suppressed_by (t, MESH_SUPPRESS_WAITING);
    mesh_incidents_destroy (&t);        //  drains: writes the state

    char path[128];
    snprintf (path, sizeof path, "%s/incidents/ops.json", s_dir);
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    t = mesh_incidents_new (&a, s_dir, "ops");
    assert_non_null (t);
    assert_int_equal (mesh_incidents_groups (t), 2);
    assert_int_equal (mesh_incidents_pending (t), 1);
    //  A known member of the notified group is a repeat, not a change.
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 100 * SEC, 0, 4, true), 0);
    //  The waiting group fires when its wait ends, with the point from before.
    assert_int_equal (s_feed (t, "web-9", "cpu", T0 + 130 * SEC, 0, 5, false), 1);
    s_expect_done (t, "web-2/cpu", 1, 1, 5, 1, "first");
    //  web-1: repeat_interval after its incident at +61 s; the candidate from +100 s.
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + 3000 * SEC, 0, 6, false), 0);
    assert_int_equal (mesh_incidents_groups (t), 0);    //  both resolved meanwhile
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_REPEAT), 1);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_WAITING), 0);
    assert_int_equal (waiting, 1);
    mesh_incidents_destroy (&t);
}

//  The wall clock now, in epoch ms.
static int64_t
s_wall_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

//  One event stamped in the year 3000 (or microseconds read as milliseconds) used to move
//  the clock forward for good: every group then resolved at once and every later point
//  opened a new incident.  Now it is counted and moves nothing: de-duplication holds.
static void
test_future_event_keeps_dedup (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    a.events.max_future_skew_s = 300;
    mesh_incidents_t *t = mesh_incidents_new (&a, NULL, NULL);
    assert_non_null (t);
    int64_t now = s_wall_ms () - 600 * SEC;
    assert_int_equal (s_feed (t, "web-1", "cpu", now, 0, 1, true), 1);
    mesh_incident_t *inc = mesh_incidents_next (t);
    mesh_incident_destroy (&inc);
    assert_int_equal (s_feed (t, "web-1", "cpu", now + SEC, 0, 2, true), 0);
    //  Year 3000, then microseconds since the epoch read as milliseconds.
    assert_int_equal (s_feed (t, "web-1", "cpu", 32503680000000LL, 0, 3, true), 0);
    assert_int_equal (s_feed (t, "web-2", "cpu", (now + 2 * SEC) * 1000, 0, 4, true), 0);
    json_t *c = mesh_incidents_counters (t);
    assert_int_equal (json_integer_value (json_object_get (c, "incident_out_of_window")), 2);
    json_decref (c);
    //  Anomalous points of the same series go on being grouped: no new incident.
    for (int i = 0; i < 20; i++)
        assert_int_equal (s_feed (t, "web-1", "cpu", now + (3 + i) * SEC, 0, 5 + i, true), 0);
    assert_int_equal (mesh_incidents_opened (t), 1);
    assert_int_equal (mesh_incidents_groups (t), 1);
    //  Just within the skew moves the clock as any event does.
    assert_int_equal (s_feed (t, "web-3", "cpu", s_wall_ms () + 200 * SEC, 0, 30, true), 1);
    mesh_incidents_destroy (&t);
}

//  A persisted clock beyond wall clock + skew (written by an older release, or under a
//  wrong wall clock) is clamped on load, and the clamp is written back.
static void
test_future_clock_clamped_on_load (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    a.events.max_future_skew_s = 300;
    mesh_incidents_t *t = mesh_incidents_new (&a, s_dir, "ops");
    assert_non_null (t);
    int64_t now = s_wall_ms () - 600 * SEC;
    assert_int_equal (s_feed (t, "web-1", "cpu", now, 0, 1, true), 1);
    mesh_incident_t *inc = mesh_incidents_next (t);
    mesh_incident_destroy (&inc);
    mesh_incidents_destroy (&t);
    char path[128];
    snprintf (path, sizeof path, "%s/incidents/ops.json", s_dir);
    json_error_t jerr;
    json_t *saved = json_load_file (path, 0, &jerr);
    assert_non_null (saved);
    json_object_set_new (saved, "watermark_ms", json_integer (32503680000000LL));
    json_object_set_new (saved, "event_watermark_ms", json_integer (32503680000000LL));
    json_t *group = json_array_get (json_object_get (saved, "groups"), 0);
    assert_non_null (group);
    json_object_set_new (group, "last_notify_ms", json_integer (32503680000000LL));
    assert_int_equal (json_dump_file (saved, path, 0), 0);
    json_decref (saved);

    t = mesh_incidents_new (&a, s_dir, "ops");
    assert_non_null (t);
    int64_t limit = s_wall_ms () + 300 * SEC;
    assert_int_equal (mesh_incidents_save (t), 0);
    saved = json_load_file (path, 0, &jerr);
    assert_non_null (saved);
    assert_true (json_integer_value (json_object_get (saved, "watermark_ms")) <= limit);
    assert_true (json_integer_value (json_object_get (saved, "event_watermark_ms")) <= limit);
    group = json_array_get (json_object_get (saved, "groups"), 0);
    assert_true (json_integer_value (json_object_get (group, "last_notify_ms")) <= limit);
    json_decref (saved);
    //  The group is still there and de-duplicates as before.
    assert_int_equal (mesh_incidents_groups (t), 1);
    assert_int_equal (s_feed (t, "web-1", "cpu", now + SEC, 0, 2, true), 0);
    assert_int_equal (mesh_incidents_opened (t), 0);
    mesh_incidents_destroy (&t);
}

static void
test_refire_after_restart (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    mesh_incidents_t *t = mesh_incidents_new (&a, s_dir, "ops");
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 2, 40, true), 1);
    mesh_incident_t *first = s_expect (t, "web-1/cpu", 2, 40, 40, 1, "first");
    assert_int_equal (mesh_incidents_save (t), 0);
    mesh_incidents_destroy (&t);        //  a crash after the save is the same

    t = mesh_incidents_new (&a, s_dir, "ops");
    //  The event is re-delivered (its offset was held): the incident opens again, same id,
    //  even though the detector, starting cold, does not call it anomalous this time.
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 2, 40, false), 1);
    mesh_incident_t *again = mesh_incidents_next (t);
    assert_non_null (again);
    assert_string_equal (again->id, first->id);
    assert_int_equal (again->offset, 40);
    assert_non_null (again->group);
    assert_non_null (again->event);
    json_t *c = mesh_incidents_counters (t);
    assert_int_equal (json_integer_value (json_object_get (c, "incidents_refired")), 1);
    json_decref (c);
    mesh_incident_destroy (&again);
    //  Only once per life: a second delivery in this life is this life's business.
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 2, 40, false), 0);
    mesh_incidents_destroy (&t);

    //  After another restart, an event past it on its partition means it was done.
    t = mesh_incidents_new (&a, s_dir, "ops");
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + SEC, 2, 41, false), 0);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 2, 40, false), 0);
    mesh_incidents_destroy (&t);
    mesh_incident_destroy (&first);
}

static void
test_idle_stream_fires_by_wall_clock (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    a.incident.group_wait_s = 30;
    mesh_incidents_t *t = mesh_incidents_new (&a, s_dir, "ops");
    int64_t wall = 1800000000000LL;
    mesh_incidents_tick (t, wall);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 0, 7, true), 0);
    assert_int_equal (mesh_incidents_tick (t, wall + 900), 0);     //  not idle yet
    assert_int_equal (mesh_incidents_tick (t, wall + 29 * SEC), 0);
    //  Idle for 30 s of wall time: event time moves on by as much; the wait is over.
    assert_int_equal (mesh_incidents_tick (t, wall + 30 * SEC), 1);
    //  No event carried it: its trigger is the point itself.
    s_expect_done (t, "web-1/cpu", 0, 7, 7, 1, "first");
    assert_int_equal (mesh_incidents_save (t), 0);
    mesh_incidents_destroy (&t);
    //  It rode on no offset, so the next life opens it again at once (the ledger skips
    //  it if it was finished).
    t = mesh_incidents_new (&a, s_dir, "ops");
    assert_int_equal (mesh_incidents_ready (t), 1);
    s_expect_done (t, "web-1/cpu", 0, 7, 7, 1, "first");
    mesh_incidents_destroy (&t);
    t = mesh_incidents_new (&a, s_dir, "ops");
    assert_int_equal (mesh_incidents_ready (t), 0);
    mesh_incidents_destroy (&t);
}

static void
test_restart_waits_longer_before_idle (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    a.incident.group_wait_s = 10;
    mesh_incidents_t *t = mesh_incidents_new (&a, s_dir, "ops");
    int64_t wall = 1800000000000LL;
    mesh_incidents_tick (t, wall);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 0, 7, true), 0);
    mesh_incidents_destroy (&t);
    //  Restarted: a backlog may be on its way while the consumer joins its group, so the
    //  wall clock moves event time only after 30 s without any event ...
    t = mesh_incidents_new (&a, s_dir, "ops");
    assert_int_equal (mesh_incidents_pending (t), 1);
    assert_int_equal (mesh_incidents_tick (t, wall + 100 * SEC), 0);
    assert_int_equal (mesh_incidents_tick (t, wall + 129 * SEC), 0);
    assert_int_equal (mesh_incidents_tick (t, wall + 130 * SEC), 1);
    s_expect_done (t, "web-1/cpu", 0, 7, 7, 1, "first");
    mesh_incidents_destroy (&t);
    //  ... and an event in the meantime is simply the next event.
    t = mesh_incidents_new (&a, s_dir, "ops");
    assert_int_equal (mesh_incidents_ready (t), 1);     //  the tick's, opened again
    mesh_incident_t *inc = mesh_incidents_next (t);
    mesh_incident_destroy (&inc);
    mesh_incidents_tick (t, wall);
    assert_int_equal (s_feed (t, "web-2", "cpu", T0 + 100 * SEC, 0, 8, true), 0);
    assert_int_equal (mesh_incidents_tick (t, wall + 500), 0);
    assert_int_equal (s_feed (t, "web-3", "cpu", T0 + 110 * SEC, 0, 9, false), 1);
    s_expect_done (t, "web-2/cpu", 0, 8, 9, 1, "first");
    mesh_incidents_destroy (&t);
}

static void
test_corrupt_state_starts_fresh (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    char dir[128], path[160], aside[180];
    snprintf (dir, sizeof dir, "%s/incidents", s_dir);
    mkdir (dir, 0750);
    snprintf (path, sizeof path, "%s/ops.json", dir);
    snprintf (aside, sizeof aside, "%s.corrupt", path);
    const char *bad[] = {
        "{\"version\": 1, \"groups\": [",                       //  does not parse
        "[1, 2, 3]",                                            //  not a state
        "{\"version\": 1, \"agent\": \"ops\", \"group_by\": [\"host\", \"metric\"], "
        "\"next_epoch\": 3, \"watermark_ms\": 5, \"groups\": [{\"key\": \"x\"}], "
        "\"members\": [], \"fired\": []}",                      //  a group that does not check
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen (path, "w");
        assert_non_null (f);
        fputs (bad[i], f);
        fclose (f);
        unlink (aside);
        mesh_incidents_t *t = mesh_incidents_new (&a, s_dir, "ops");
        assert_non_null (t);
        assert_int_equal (mesh_incidents_groups (t), 0);
        json_t *c = mesh_incidents_counters (t);
        assert_int_equal (json_integer_value (json_object_get (c, "state_errors")), 1);
        json_decref (c);
        struct stat st;
        assert_int_equal (stat (aside, &st), 0);        //  kept for a look
        //  and it works as usual
        assert_int_equal (s_feed (t, "web-1", "cpu", T0, 0, 1, true), 1);
        mesh_incident_t *inc = mesh_incidents_next (t);
        mesh_incident_destroy (&inc);
        mesh_incidents_destroy (&t);
        unlink (path);
    }
}

static void
test_groups_bounded_evictions_counted (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    a.incident.max_groups = 2;
    a.incident.group_wait_s = 60;
    mesh_incidents_t *t = mesh_incidents_new (&a, NULL, NULL);
    assert_int_equal (s_feed (t, "a", "cpu", T0, 0, 1, true), 0);
    assert_int_equal (s_feed (t, "b", "cpu", T0 + SEC, 0, 2, true), 0);
    assert_int_equal (s_feed (t, "a", "cpu", T0 + 2 * SEC, 0, 3, true), 0);   //  a is recent
    assert_int_equal (s_feed (t, "c", "cpu", T0 + 3 * SEC, 0, 4, true), 0);   //  evicts b
    assert_int_equal (mesh_incidents_evictions (t), 1);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_EVICTED), 1);
    assert_int_equal (mesh_incidents_groups (t), 2);
    assert_int_equal (s_feed (t, "z", "cpu", T0 + 100 * SEC, 0, 5, false), 2);
    s_expect_done (t, "a/cpu", 0, 3, 5, 1, "first");
    s_expect_done (t, "c/cpu", 0, 4, 5, 1, "first");
    s_accounted (t, 4);
    mesh_incidents_destroy (&t);
}

static void
test_every_point_accounted (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    a.incident.group_by = s_by_host;
    a.incident.group_by_count = 1;
    a.incident.group_wait_s = 20;
    a.incident.group_interval_s = 60;
    a.incident.repeat_interval_s = 240;
    a.incident.cooldown_s = 90;
    a.incident.min_points = 2;
    a.incident.min_points_span_s = 30;
    a.incident.resolve_s = 120;
    a.incident.max_groups = 3;
    a.detector.max_series = 5;
    char *m[] = { "host=h3", "metric=m1" };
    mesh_silence_config_t silences[] = { { .matchers = m, .matcher_count = 2 } };
    a.incident.silences = silences;
    a.incident.silence_count = 1;
    mesh_incidents_t *t = mesh_incidents_new (&a, NULL, NULL);
    uint64_t x = 88172645463325252ULL, anomalous = 0, opened = 0;
    int64_t ts = T0;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;           //  xorshift: same run every time
        char host[8], metric[8];
        snprintf (host, sizeof host, "h%d", (int) (x % 5));
        snprintf (metric, sizeof metric, "m%d", (int) ((x >> 8) % 3));
        bool anom = (x >> 16) % 4 == 0;
        ts += (int64_t) ((x >> 24) % 20) * SEC - 3 * SEC;  //  some out of order
        anomalous += anom;
        opened += s_feed (t, host, metric, ts, 0, i, anom);
        while (mesh_incidents_ready (t)) {
            mesh_incident_t *inc = mesh_incidents_next (t);
            mesh_incident_destroy (&inc);
        }
    }
    assert_true (opened > 10);
    assert_int_equal (opened, mesh_incidents_opened (t));
    s_accounted (t, anomalous);
    for (int r = 0; r < MESH_SUPPRESS_COUNT_; r++)
        assert_true (mesh_incidents_suppressed_by (t, r) > 0);
    mesh_incidents_destroy (&t);
}

//  The incident section of a config, loaded, checked and used.
static int
s_load (const char *agent_yaml, mesh_config_t **cfg_p, char *problems, size_t size)
{
    char path[128];
    snprintf (path, sizeof path, "%s/meshd.yaml", s_dir);
    FILE *f = fopen (path, "w");
    fprintf (f, "kafka: {brokers: embedded}\n"
                "backends: {b: {kind: scripted, file: r.jsonl}}\n"
                "actions: {esc: {kind: log}}\n"
                "agents:\n"
                "  - name: ops\n"
                "    topics: [m]\n"
                "    fields: {key: [host, metric]}\n"
                "    reason: {backend: b}\n"
                "    actions: [esc]\n"
                "    fallback: esc\n"
                "%s", agent_yaml);
    fclose (f);
    FILE *err = fmemopen (problems, size, "w");
    int n = mesh_config_load (path, cfg_p, err);
    fclose (err);
    return n;
}

static void
test_config_section (void **state)
{
    mesh_config_t *cfg = NULL;
    char problems[4096] = "";
    //  Defaults: group by every key field, fire at once, repeat hourly.
    assert_int_equal (s_load ("", &cfg, problems, sizeof problems), 0);
    const mesh_incident_config_t *c = &cfg->agents[0].incident;
    assert_int_equal (c->group_by_count, 2);
    assert_string_equal (c->group_by[1], "metric");
    assert_int_equal (c->group_wait_s, 0);
    assert_int_equal (c->group_interval_s, 300);
    assert_int_equal (c->repeat_interval_s, 3600);
    assert_int_equal (c->cooldown_s, 300);
    assert_int_equal (c->min_points, 1);
    assert_int_equal (c->resolve_s, 300);
    assert_int_equal (c->max_groups, 10000);
    assert_int_equal (c->persist_interval_s, 5);
    assert_int_equal (c->silence_count, 0);
    mesh_config_destroy (&cfg);

    assert_int_equal (s_load ("    incident:\n"
                              "      group_by: [host]\n"
                              "      group_wait_s: 30\n"
                              "      min_points: 2\n"
                              "      min_points_span_s: 60\n"
                              "      silences:\n"
                              "        - matchers: [\"host=web-1\", \"metric=~cpu.*\"]\n"
                              "          starts: 2026-01-01T00:00:00Z\n"
                              "          ends: 2026-01-01T02:00:00+01:00\n"
                              "          comment: deploy\n", &cfg, problems, sizeof problems),
                      0);
    c = &cfg->agents[0].incident;
    assert_int_equal (c->group_by_count, 1);
    assert_int_equal (c->group_wait_s, 30);
    assert_int_equal (c->silence_count, 1);
    assert_int_equal (c->silences[0].matcher_count, 2);
    assert_int_equal (c->silences[0].starts_ms, T0);
    assert_int_equal (c->silences[0].ends_ms, T0 + 3600 * SEC);
    assert_string_equal (c->silences[0].comment, "deploy");
    //  ... and the table made from it silences by it (wall clock inside the window).
    mesh_incidents_t *t = mesh_incidents_new (&cfg->agents[0], NULL, NULL);
    assert_non_null (t);
    mesh_incidents_tick (t, T0 + 60 * SEC);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 0, 1, true), 0);
    assert_int_equal (mesh_incidents_suppressed_by (t, MESH_SUPPRESS_SILENCED), 1);
    mesh_incidents_destroy (&t);
    mesh_config_destroy (&cfg);

    //  Each mistake at its place, saying what would be right.
    assert_int_equal (s_load ("    incident:\n"                              //  11
                              "      group_by: [host, region]\n"             //  12
                              "      min_points: 0\n"                        //  13
                              "      silences:\n"                            //  14
                              "        - matchers: [\"host=~(\"]\n"          //  15
                              "        - matchers: [\"host!=x\"]\n"          //  16
                              "          ends: tomorrow\n"                   //  17
                              "        - matchers: [\"host=a\"]\n"           //  18
                              "          starts: 2026-01-02T00:00:00Z\n"     //  19
                              "          ends: 2026-01-01T00:00:00Z\n",      //  20
                              &cfg, problems, sizeof problems), 6);
    assert_null (cfg);
    assert_non_null (strstr (problems, ":12:24: agents[0].incident.group_by[1]: 'region' is "
                                       "not one of this agent's key fields (host, metric)"));
    assert_non_null (strstr (problems, ":13:19: agents[0].incident.min_points: must be in "
                                       "[1,1000]"));
    assert_non_null (strstr (problems, ":15:22: agents[0].incident.silences[0].matchers[0]: "
                                       "'(' is not a POSIX extended regular expression"));
    assert_non_null (strstr (problems, ":16:21: agents[0].incident.silences[1].matchers: "
                                       "every matcher matches an empty field"));
    assert_non_null (strstr (problems, ":17:17: agents[0].incident.silences[1].ends: expected "
                                       "an RFC 3339 time"));
    assert_non_null (strstr (problems, ":20:17: agents[0].incident.silences[2].ends: must be "
                                       "after starts"));
}

static void
test_bad_config_refused (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    a.incident.min_points = 0;
    assert_null (mesh_incidents_new (&a, NULL, NULL));
    s_agent (&a);
    a.incident.max_groups = 0;
    assert_null (mesh_incidents_new (&a, NULL, NULL));
    s_agent (&a);
    a.incident.cooldown_s = -1;
    assert_null (mesh_incidents_new (&a, NULL, NULL));
    assert_string_equal (mesh_suppress_name (MESH_SUPPRESS_BELOW_MIN), "below_min");
    assert_string_equal (mesh_suppress_name (MESH_SUPPRESS_COUNT_), "unknown");
}


//  The history of the partition goes into the id: the same coordinates in another broker
//  incarnation or cluster are another decision.
static void
test_decision_id_by_history (void **state)
{
    char legacy[65], a[65], b[65], c[65];
    mesh_incident_decision_id (NULL, "agent-a", "metrics", 3, 42, legacy);
    mesh_incident_history_t none = { NULL, NULL };
    mesh_incident_decision_id (&none, "agent-a", "metrics", 3, 42, a);
    assert_string_equal (a, legacy);
    char zeros[33];
    memset (zeros, '0', 32);
    zeros[32] = 0;
    mesh_incident_history_t h1 = { "mockCluster1", zeros };
    mesh_incident_decision_id (&h1, "agent-a", "metrics", 3, 42, a);
    //  SHA-256 of "agent-a\0metrics\0" "3\0" "42\0" "mockCluster1\0" and 32 zeros,
    //  computed independently.
    assert_string_equal (a, "e4ab6334510e6f3b68abe3b8b5aed62453ee8232c0d5770dcf7fafdc74d984ea");
    assert_string_not_equal (a, legacy);
    mesh_incident_decision_id (&h1, "agent-a", "metrics", 3, 42, b);
    assert_string_equal (a, b);
    //  Another incarnation of the same (mock) cluster id: another id.
    mesh_incident_history_t h2 = { "mockCluster1", "00000000000000000000000000000001" };
    mesh_incident_decision_id (&h2, "agent-a", "metrics", 3, 42, b);
    assert_string_not_equal (a, b);
    //  Another cluster, no incarnation (a real cluster): another id.
    mesh_incident_history_t h3 = { "lkc-abc", NULL };
    mesh_incident_history_t h4 = { "lkc-abd", NULL };
    mesh_incident_decision_id (&h3, "agent-a", "metrics", 3, 42, b);
    mesh_incident_decision_id (&h4, "agent-a", "metrics", 3, 42, c);
    assert_string_not_equal (b, c);
    assert_string_not_equal (b, legacy);
    //  The separator keeps cluster and incarnation apart.
    mesh_incident_history_t h5 = { "ab", "c" }, h6 = { "a", "bc" };
    mesh_incident_decision_id (&h5, "x", "t", 0, 0, b);
    mesh_incident_decision_id (&h6, "x", "t", 0, 0, c);
    assert_string_not_equal (b, c);

    //  An incident opened in a history carries it in its id and its trigger.
    mesh_event_t ev = { .topic = "metrics", .partition = 3, .offset = 42, .value = 1 };
    strcpy (ev.series, "web-1/cpu");
    mesh_detect_info_t info = sample_info ();
    mesh_incident_t *inc = mesh_incident_new ("agent-a", &h1, &ev, "ewma", &info);
    assert_non_null (inc);
    assert_string_equal (inc->id, a);
    json_t *trigger = mesh_incident_trigger_json (inc);
    assert_string_equal (json_string_value (json_object_get (trigger, "cluster_id")),
                         "mockCluster1");
    assert_string_equal (json_string_value (json_object_get (trigger, "incarnation")), zeros);
    assert_int_equal (json_integer_value (json_object_get (trigger, "offset")), 42);
    json_decref (trigger);
    json_t *j = mesh_incident_json (inc);
    assert_string_equal (json_string_value (json_object_get (json_object_get (j, "trigger"),
                                                             "incarnation")), zeros);
    json_decref (j);
    mesh_incident_destroy (&inc);
    //  Without a history the trigger has neither key.
    inc = mesh_incident_new ("agent-a", NULL, &ev, "ewma", &info);
    trigger = mesh_incident_trigger_json (inc);
    assert_null (json_object_get (trigger, "cluster_id"));
    assert_null (json_object_get (trigger, "incarnation"));
    json_decref (trigger);
    mesh_incident_destroy (&inc);
}

//  A state file written under another broker incarnation speaks of offsets that no longer
//  exist: it is dropped, so the fresh broker's offset 40 opens a new incident with a new
//  id instead of reopening (and then skipping as a duplicate) the old one.
static void
test_new_history_drops_old_state (void **state)
{
    mesh_agent_config_t a;
    s_agent (&a);
    mesh_incidents_t *t = mesh_incidents_new (&a, s_dir, "ops");
    assert_int_equal (mesh_incidents_set_history (t, "mockCluster1", "i1"), 0);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 2, 40, true), 1);
    mesh_incident_t *first = mesh_incidents_next (t);
    assert_non_null (first);
    assert_string_equal (first->incarnation, "i1");
    assert_int_equal (mesh_incidents_save (t), 0);
    mesh_incidents_destroy (&t);

    //  The same history (an agent restart under the same broker): the state is kept and
    //  the re-delivered event reopens its incident with the old id.
    t = mesh_incidents_new (&a, s_dir, "ops");
    assert_int_equal (mesh_incidents_set_history (t, "mockCluster1", "i1"), 0);
    assert_int_equal (mesh_incidents_groups (t), 1);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 2, 40, false), 1);
    mesh_incident_t *again = mesh_incidents_next (t);
    assert_string_equal (again->id, first->id);
    mesh_incident_destroy (&again);
    mesh_incidents_destroy (&t);

    //  A new incarnation with the same cluster id (the mock cluster's can repeat): dropped.
    t = mesh_incidents_new (&a, s_dir, "ops");
    assert_int_equal (mesh_incidents_groups (t), 1);
    assert_int_equal (mesh_incidents_set_history (t, "mockCluster1", "i2"), 0);
    assert_int_equal (mesh_incidents_groups (t), 0);
    assert_int_equal (mesh_incidents_ready (t), 0);
    //  The fresh broker's offset 40 is a new event: not reopened, but anomalous it opens a
    //  new incident at once (no cooldown from the old life), under a new id.
    assert_int_equal (s_feed (t, "web-1", "cpu", T0, 2, 40, false), 0);
    assert_int_equal (s_feed (t, "web-1", "cpu", T0 + SEC, 2, 41, true), 1);
    mesh_incident_t *fresh = mesh_incidents_next (t);
    assert_non_null (fresh);
    assert_string_not_equal (fresh->id, first->id);
    assert_string_equal (fresh->incarnation, "i2");
    mesh_incident_destroy (&fresh);
    mesh_incidents_destroy (&t);

    //  What was saved since is the new incarnation's: kept under it.
    t = mesh_incidents_new (&a, s_dir, "ops");
    assert_int_equal (mesh_incidents_set_history (t, "mockCluster1", "i2"), 0);
    assert_int_equal (mesh_incidents_groups (t), 1);
    mesh_incidents_destroy (&t);
    mesh_incident_destroy (&first);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_decision_id_is_stable_and_distinct),
        cmocka_unit_test (test_incident_copies_everything),
        cmocka_unit_test (test_incident_json_fields),
        cmocka_unit_test (test_decision_id_by_history),
        cmocka_unit_test_setup_teardown (test_new_history_drops_old_state, s_mkdtemp, s_rmtree),
        cmocka_unit_test (test_first_point_opens_at_once),
        cmocka_unit_test (test_group_wait_collects_then_any_event_fires),
        cmocka_unit_test (test_one_event_fires_several_groups),
        cmocka_unit_test (test_group_interval_for_new_series),
        cmocka_unit_test (test_repeat_interval_while_firing),
        cmocka_unit_test (test_repeat_needs_the_group_still_firing),
        cmocka_unit_test (test_min_points_within_span),
        cmocka_unit_test (test_resolution_and_cooldown),
        cmocka_unit_test (test_silences_in_config),
        cmocka_unit_test (test_silence_window_by_wall_clock),
        cmocka_unit_test_setup_teardown (test_silences_file_followed, s_mkdtemp, s_rmtree),
        cmocka_unit_test_setup_teardown (test_state_survives_restart, s_mkdtemp, s_rmtree),
        cmocka_unit_test_setup_teardown (test_refire_after_restart, s_mkdtemp, s_rmtree),
        cmocka_unit_test_setup_teardown (test_idle_stream_fires_by_wall_clock, s_mkdtemp,
                                         s_rmtree),
        cmocka_unit_test_setup_teardown (test_restart_waits_longer_before_idle, s_mkdtemp,
                                         s_rmtree),
        cmocka_unit_test_setup_teardown (test_corrupt_state_starts_fresh, s_mkdtemp, s_rmtree),
        cmocka_unit_test (test_groups_bounded_evictions_counted),
        cmocka_unit_test (test_every_point_accounted),
        cmocka_unit_test (test_bad_config_refused),
        cmocka_unit_test (test_future_event_keeps_dedup),
        cmocka_unit_test_setup_teardown (test_future_clock_clamped_on_load, s_mkdtemp, s_rmtree),
        cmocka_unit_test_setup_teardown (test_config_section, s_mkdtemp, s_rmtree),
    };
    return cmocka_run_group_tests_name ("incident", tests, NULL, NULL);
}
