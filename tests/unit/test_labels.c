/*  test_labels - loading a labels file and scoring incidents against it.
 *
 *  Usage example: load the generator's labels, begin a score, add every incident
 *  (series, event time), end, read precision and recall.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "labels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char dir[64];
    char path[128];
} fixture_t;

static int
setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    if (!f)
        return -1;
    strcpy (f->dir, "/tmp/test_labels.XXXXXX");
    if (!mkdtemp (f->dir)) {
        free (f);
        return -1;
    }
    snprintf (f->path, sizeof f->path, "%s/labels.json", f->dir);
    *state = f;
    return 0;
}

static int
teardown (void **state)
{
    fixture_t *f = *state;
    unlink (f->path);
    rmdir (f->dir);
    free (f);
    return 0;
}

static void
write_file (const fixture_t *f, const char *text)
{
    FILE *file = fopen (f->path, "w");
    assert_non_null (file);
    assert_int_equal (fputs (text, file) >= 0, 1);
    assert_int_equal (fclose (file), 0);
}

//  Three windows, one step = 60 s, so the tolerance is 180000 ms.  Listed out of
//  order on purpose: the loader sorts them.
static const char *s_good =
    "{\"step_s\": 60, \"events\": 8640, \"malformed\": 3, \"anomalies\": ["
    " {\"series\": \"web-2/rps\", \"kind\": \"drift\", \"start_ms\": 500000,"
    "  \"end_ms\": 2240000, \"sigmas\": 8},"
    " {\"series\": \"web-1/cpu\", \"kind\": \"level_shift\", \"start_ms\": 2000000,"
    "  \"end_ms\": 2600000},"
    " {\"series\": \"web-1/cpu\", \"kind\": \"spike\", \"start_ms\": 1000000,"
    "  \"end_ms\": 1000000}]}";

static void
test_load_and_score (void **state)
{
    fixture_t *f = *state;
    write_file (f, s_good);
    mesh_labels_t *labels = mesh_labels_load (f->path);
    assert_non_null (labels);
    assert_int_equal (mesh_labels_events (labels), 8640);
    assert_int_equal (mesh_labels_malformed (labels), 3);
    assert_int_equal (mesh_labels_windows (labels), 3);
    assert_int_equal (mesh_labels_tolerance_ms (labels), 180000);

    mesh_labels_score_t s;
    memset (&s, 0xff, sizeof s);
    mesh_labels_score_begin (labels, &s);
    assert_int_equal (s.incidents, 0);
    //  true: the spike; true: its last millisecond of tolerance; false: too late; too early
    mesh_labels_score_add (labels, &s, "web-1/cpu", 1000000);
    mesh_labels_score_add (labels, &s, "web-1/cpu", 1000000 + 180000);
    mesh_labels_score_add (labels, &s, "web-1/cpu", 1000000 + 180001);
    mesh_labels_score_add (labels, &s, "web-1/cpu", 999999);
    //  false: an unlabelled series
    mesh_labels_score_add (labels, &s, "web-3/cpu", 1000000);
    //  false: before the drift; true: a step after its end
    mesh_labels_score_add (labels, &s, "web-2/rps", 400000);
    mesh_labels_score_add (labels, &s, "web-2/rps", 2240000 + 60000);
    //  false: a prefix of a series is not the series
    mesh_labels_score_add (labels, &s, "web-2/rp", 600000);
    mesh_labels_score_end (labels, &s);
    assert_int_equal (s.incidents, 8);
    assert_int_equal (s.true_incidents, 3);
    assert_int_equal (s.windows, 3);
    assert_int_equal (s.windows_hit, 2);            //  the level shift was missed
    assert_true (s.precision == 3.0 / 8.0);
    assert_true (s.recall == 2.0 / 3.0);

    //  A new scoring starts from nothing: the hits of the last one are forgotten.
    mesh_labels_score_begin (labels, &s);
    mesh_labels_score_add (labels, &s, "web-1/cpu", 2300000);
    mesh_labels_score_end (labels, &s);
    assert_int_equal (s.incidents, 1);
    assert_int_equal (s.true_incidents, 1);
    assert_int_equal (s.windows_hit, 1);
    assert_true (s.precision == 1.0);
    assert_true (s.recall == 1.0 / 3.0);

    //  No incidents at all: precision is defined as 0, not NaN.
    mesh_labels_score_begin (labels, &s);
    mesh_labels_score_end (labels, &s);
    assert_int_equal (s.incidents, 0);
    assert_true (s.precision == 0.0);
    assert_true (s.recall == 0.0);
    mesh_labels_destroy (&labels);
    assert_null (labels);
    mesh_labels_destroy (&labels);
}

static void
test_overlapping_windows_both_hit (void **state)
{
    fixture_t *f = *state;
    write_file (f, "{\"step_s\": 1, \"events\": 10, \"anomalies\": ["
                   " {\"series\": \"s\", \"kind\": \"drift\","
                   "  \"start_ms\": 0, \"end_ms\": 5000},"
                   " {\"series\": \"s\", \"kind\": \"spike\","
                   "  \"start_ms\": 4000, \"end_ms\": 4000}]}");
    mesh_labels_t *labels = mesh_labels_load (f->path);
    assert_non_null (labels);
    assert_int_equal (mesh_labels_malformed (labels), 0);      //  optional, defaults to 0
    mesh_labels_score_t s;
    mesh_labels_score_begin (labels, &s);
    mesh_labels_score_add (labels, &s, "s", 4500);
    mesh_labels_score_end (labels, &s);
    assert_int_equal (s.true_incidents, 1);
    assert_int_equal (s.windows_hit, 2);
    assert_true (s.recall == 1.0);
    mesh_labels_destroy (&labels);
}

static void
test_no_windows (void **state)
{
    fixture_t *f = *state;
    write_file (f, "{\"step_s\": 60, \"events\": 0, \"anomalies\": []}");
    mesh_labels_t *labels = mesh_labels_load (f->path);
    assert_non_null (labels);
    mesh_labels_score_t s;
    mesh_labels_score_begin (labels, &s);
    mesh_labels_score_add (labels, &s, "s", 0);
    mesh_labels_score_end (labels, &s);
    assert_int_equal (s.incidents, 1);
    assert_int_equal (s.true_incidents, 0);
    assert_true (s.precision == 0.0);
    assert_true (s.recall == 0.0);                      //  no windows: 0, not NaN
    mesh_labels_destroy (&labels);
}

static void
test_bad_files (void **state)
{
    fixture_t *f = *state;
    //  Missing.
    char missing[160];
    snprintf (missing, sizeof missing, "%s/nope.json", f->dir);
    assert_null (mesh_labels_load (missing));
    const char *bad[] = {
        "not json",
        "[]",
        "{\"step_s\": 60, \"events\": 1}",                                  //  no anomalies
        "{\"step_s\": 60, \"events\": 1, \"anomalies\": {}}",
        "{\"events\": 1, \"anomalies\": []}",                               //  no step
        "{\"step_s\": 0, \"events\": 1, \"anomalies\": []}",
        "{\"step_s\": 60.5, \"events\": 1, \"anomalies\": []}",
        "{\"step_s\": 60, \"events\": -1, \"anomalies\": []}",
        "{\"step_s\": 60, \"events\": \"8\", \"anomalies\": []}",
        "{\"step_s\": 60, \"events\": 1, \"malformed\": \"x\", \"anomalies\": []}",
        "{\"step_s\": 60, \"step_s\": 30, \"events\": 1, \"anomalies\": []}",
        "{\"step_s\": 60, \"events\": 1, \"anomalies\": [3]}",
        "{\"step_s\": 60, \"events\": 1, \"anomalies\": [{\"series\": 1, \"kind\": \"spike\","
        " \"start_ms\": 1, \"end_ms\": 1}]}",
        "{\"step_s\": 60, \"events\": 1, \"anomalies\": [{\"series\": \"s\","
        " \"start_ms\": 1, \"end_ms\": 1}]}",
        "{\"step_s\": 60, \"events\": 1, \"anomalies\": [{\"series\": \"s\", \"kind\": \"spike\","
        " \"start_ms\": 2, \"end_ms\": 1}]}",
        "{\"step_s\": 60, \"events\": 1, \"anomalies\": [{\"series\": \"s\", \"kind\": \"spike\","
        " \"start_ms\": 1}]}",
        "{\"step_s\": 60, \"events\": 1, \"anomalies\": [{\"series\": \"s\", \"kind\": \"spike\","
        " \"start_ms\": 1, \"end_ms\": 2}, {\"series\": \"t\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file (f, bad[i]);
        mesh_labels_t *labels = mesh_labels_load (f->path);
        if (labels)
            fail_msg ("accepted bad labels file #%zu: %s", i, bad[i]);
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_load_and_score, setup, teardown),
        cmocka_unit_test_setup_teardown (test_overlapping_windows_both_hit, setup, teardown),
        cmocka_unit_test_setup_teardown (test_no_windows, setup, teardown),
        cmocka_unit_test_setup_teardown (test_bad_files, setup, teardown),
    };
    return cmocka_run_group_tests_name ("labels", tests, NULL, NULL);
}
