/*  test_incident - incidents, their decision ids and JSON, and the cooldown table.
 *
 *  Usage example: an anomalous point goes through mesh_incidents_admit; if it opens
 *  an incident, mesh_incident_new copies what the reasoning worker needs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "incident.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void
test_decision_id_is_stable_and_distinct (void **state)
{
    char a[65], b[65], c[65];
    mesh_incident_decision_id ("agent-a", "metrics", 3, 42, a);
    //  SHA-256 of "agent-a\0metrics\0" "3\0" "42", computed independently.
    assert_string_equal (a, "c23d6e411c90832a30982483dd7f5f2ad282ce09c5928291f7bbf711ba79e433");
    mesh_incident_decision_id ("agent-a", "metrics", 3, 42, b);
    assert_string_equal (a, b);
    mesh_incident_decision_id ("agent-a", "metrics", 3, 43, b);
    assert_string_not_equal (a, b);
    mesh_incident_decision_id ("agent-a", "metrics", 4, 42, b);
    assert_string_not_equal (a, b);
    mesh_incident_decision_id ("agent-b", "metrics", 3, 42, b);
    assert_string_not_equal (a, b);
    //  The separators keep the fields apart: ("ab","c") is not ("a","bc"), and
    //  partition 1 offset 23 is not partition 12 offset 3.
    mesh_incident_decision_id ("ab", "c", 0, 0, b);
    mesh_incident_decision_id ("a", "bc", 0, 0, c);
    assert_string_not_equal (b, c);
    mesh_incident_decision_id ("a", "b", 1, 23, b);
    mesh_incident_decision_id ("a", "b", 12, 3, c);
    assert_string_not_equal (b, c);
    mesh_incident_decision_id ("", "", 0, 0, b);
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
    mesh_incident_t *inc = mesh_incident_new (agent, &ev, detector, &info);
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
    mesh_incident_decision_id ("cpu-watch", "metrics", 2, 1234, id);
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
    inc = mesh_incident_new ("a", &ev, "ewma", &info);
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
    mesh_incident_t *inc = mesh_incident_new ("cpu-watch", &ev, "ewma", &info);
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
    inc = mesh_incident_new ("cpu-watch", &ev, "ewma", &info);
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

static void
test_cooldown_admits_suppresses_readmits (void **state)
{
    mesh_incident_config_t cfg = { .cooldown_s = 300 };
    mesh_incidents_t *t = mesh_incidents_new (&cfg, 100);
    assert_non_null (t);
    int64_t t0 = 1767225600000LL;
    assert_true (mesh_incidents_admit (t, "web-1/cpu", t0));
    assert_false (mesh_incidents_admit (t, "web-1/cpu", t0 + 60000));
    assert_false (mesh_incidents_admit (t, "web-1/cpu", t0 + 299999));
    //  Another series has its own cooldown.
    assert_true (mesh_incidents_admit (t, "web-2/cpu", t0 + 60000));
    //  An out-of-order earlier point is within the cooldown too.
    assert_false (mesh_incidents_admit (t, "web-1/cpu", t0 - 60000));
    assert_int_equal (mesh_incidents_suppressed (t), 3);
    //  Exactly cooldown later: admitted; and the cooldown restarts from there
    //  (suppressed points did not extend it).
    assert_true (mesh_incidents_admit (t, "web-1/cpu", t0 + 300000));
    assert_false (mesh_incidents_admit (t, "web-1/cpu", t0 + 540000));
    assert_true (mesh_incidents_admit (t, "web-1/cpu", t0 + 600000));
    assert_int_equal (mesh_incidents_suppressed (t), 4);
    //  Extreme timestamps do not overflow into an admission.
    assert_true (mesh_incidents_admit (t, "edge", INT64_MIN));
    assert_true (mesh_incidents_admit (t, "edge", INT64_MAX));
    assert_false (mesh_incidents_admit (t, "edge", INT64_MAX - 1));
    mesh_incidents_destroy (&t);
    assert_null (t);
    mesh_incidents_destroy (&t);
}

static void
test_cooldown_zero_and_bad_config (void **state)
{
    mesh_incident_config_t cfg = { .cooldown_s = 0 };
    mesh_incidents_t *t = mesh_incidents_new (&cfg, 10);
    assert_true (mesh_incidents_admit (t, "s", 1000));
    assert_true (mesh_incidents_admit (t, "s", 1000));
    assert_int_equal (mesh_incidents_suppressed (t), 0);
    mesh_incidents_destroy (&t);
    cfg.cooldown_s = -1;
    assert_null (mesh_incidents_new (&cfg, 10));
    cfg.cooldown_s = 300;
    assert_null (mesh_incidents_new (&cfg, 0));
}

static void
test_cooldown_table_is_bounded (void **state)
{
    mesh_incident_config_t cfg = { .cooldown_s = 300 };
    mesh_incidents_t *t = mesh_incidents_new (&cfg, 2);
    assert_true (mesh_incidents_admit (t, "a", 0));
    assert_true (mesh_incidents_admit (t, "b", 0));
    assert_false (mesh_incidents_admit (t, "a", 1000));   //  a is now the most recent
    assert_true (mesh_incidents_admit (t, "c", 0));       //  evicts b
    assert_false (mesh_incidents_admit (t, "a", 2000));   //  a kept its cooldown
    assert_true (mesh_incidents_admit (t, "b", 3000));    //  b forgot its cooldown
    mesh_incidents_destroy (&t);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_decision_id_is_stable_and_distinct),
        cmocka_unit_test (test_incident_copies_everything),
        cmocka_unit_test (test_incident_json_fields),
        cmocka_unit_test (test_cooldown_admits_suppresses_readmits),
        cmocka_unit_test (test_cooldown_zero_and_bad_config),
        cmocka_unit_test (test_cooldown_table_is_bounded),
    };
    return cmocka_run_group_tests_name ("incident", tests, NULL, NULL);
}
