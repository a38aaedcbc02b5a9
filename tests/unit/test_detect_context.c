/*  test_detect_context - the context family (agents/detect/detect_context.c).
 *
 *  Usage example: detector.kind context, keys context.{levels, length, slots};
 *  feed (series, value, ts_ms) points.  Synthetic streams with known answers: a
 *  level shift and a new pattern inside the known range are flagged within a few
 *  points, a steady periodic stream is not; a constant series, NaN and infinities
 *  and extreme values keep every score finite and in [0,1]; the state is at most
 *  1 KiB; the same input gives the same scores; bad keys are refused by the
 *  family and by the config loader, with the key named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "detect_props.h"

//  The shipped defaults (config/meshd.yaml) for the context family.
static mesh_detector_config_t
config (void)
{
    mesh_detector_config_t cfg = {
        .kind = "context", .alpha = 0.05, .warmup = 30, .threshold = 0.99,
        .max_series = 100, .holdoff = 0,
    };
    cfg.context.levels = 8;
    cfg.context.length = 3;
    cfg.context.slots = 176;
    return cfg;
}

//  A daily-like cycle of 48 points with a little noise (NOISE; 0.2 unless set).
static double s_noise = 0.2;

static double
periodic (rng_t *r, int i)
{
    return 100 + 20 * sin (2 * M_PI * i / 48.0) + s_noise * rng_gauss (r);
}

static void
test_state_is_bounded (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *d = mesh_detect_new (&cfg);
    assert_non_null (d);
    assert_string_equal (mesh_detect_name (d), "context");
    assert_true (mesh_detect_state_size (d) <= 1024);
    mesh_detect_destroy (&d);
    //  The largest keys allowed still fit.
    cfg.context.levels = 64, cfg.context.length = 8, cfg.context.slots = 176;
    d = mesh_detect_new (&cfg);
    assert_non_null (d);
    assert_true (mesh_detect_state_size (d) <= 1024);
    mesh_detect_destroy (&d);
}

//  2,000 points of a steady cycle: almost no alarm at 0.99 (at most 2, 0.1 %).
static void
test_steady_cycle_is_quiet (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *d = mesh_detect_new (&cfg);
    rng_t r = { 3 };
    int alarms = 0;
    for (int i = 0; i < 2000; i++) {
        double s = mesh_detect_update (d, "s", periodic (&r, i), (int64_t) i * PROPS_STEP_MS, NULL);
        if (i >= 500)
            alarms += mesh_detect_is_anomaly (d, s);
    }
    if (alarms > 2)
        fail_msg ("%d alarms on a steady cycle", alarms);
    mesh_detect_destroy (&d);
}

//  Feed 2,000 points of the cycle; returns the highest score of the last 1,500.
static double
learn_cycle (mesh_detect_t *d, rng_t *r)
{
    double high = 0;
    for (int i = 0; i < 2000; i++) {
        double s = mesh_detect_update (d, "s", periodic (r, i), (int64_t) i * PROPS_STEP_MS, NULL);
        if (i >= 500)
            high = fmax (high, s);
    }
    return high;
}

//  Flagged: above every score of the steady cycle, and at least 0.5.  (A
//  score is the fraction of novel sub-contexts times a Good-Turing probability:
//  a new level's is set by how often the series left its range while it was
//  learned, a few percent in the first cycles; a new pattern of known levels is
//  new in 2 of 3 sub-contexts at most.)
static bool
flagged (double score, double steady)
{
    return score > steady && score >= 0.5;
}

//  A level shift far out of the learned range is flagged at once.
static void
test_level_shift_is_flagged (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *d = mesh_detect_new (&cfg);
    rng_t r = { 4 };
    double steady = learn_cycle (d, &r);
    int first = -1;
    for (int i = 2000, j = 0; j < 10 && first < 0; j++, i++) {
        double s = mesh_detect_update (d, "s", periodic (&r, i) + 100, (int64_t) i * PROPS_STEP_MS,
                                       NULL);
        if (flagged (s, steady))
            first = j;
    }
    if (first < 0 || first > 2)
        fail_msg ("level shift flagged at point %d", first);
    mesh_detect_destroy (&d);
}

//  A new pattern inside the known range: the cycle stops and the series stays
//  in the middle of its range (a stuck sensor, a hung job), each value an
//  ordinary one.  The context "flat in the middle" was never seen.
static void
test_new_pattern_is_flagged (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *d = mesh_detect_new (&cfg);
    rng_t r = { 5 };
    //  A strictly periodic stream: every context recurs each cycle, so after the
    //  first cycles nothing is new - if the table holds them all: a cycle of 48
    //  points has up to 48 contexts of each length, so the largest table.  (At
    //  128 slots some are evicted and come back as new, about as novel as the
    //  stuck series then.)
    mesh_detect_destroy (&d);
    cfg.context.slots = 176;
    d = mesh_detect_new (&cfg);
    s_noise = 0;
    double steady = learn_cycle (d, &r);
    s_noise = 0.2;
    //  At point 2000 the cycle is near its bottom; it holds 102.5 instead, the
    //  middle of a level it only ever crossed.
    int first = -1;
    for (int i = 2000, j = 0; j < 10 && first < 0; j++, i++) {
        double s = mesh_detect_update (d, "s", 102.5,
                                       (int64_t) i * PROPS_STEP_MS, NULL);
        if (flagged (s, steady))
            first = j;
    }
    if (first < 0 || first > 4)
        fail_msg ("new pattern flagged at point %d (steady %.6f)", first, steady);
    mesh_detect_destroy (&d);
}

//  A constant series scores 0 throughout, and a change of it is flagged.
static void
test_constant_series (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *d = mesh_detect_new (&cfg);
    mesh_detect_info_t info;
    for (int i = 0; i < 3000; i++) {
        double s = mesh_detect_update (d, "s", 42, (int64_t) i * PROPS_STEP_MS, &info);
        assert_true (s == 0);
        assert_true (isfinite (info.mean) && isfinite (info.stddev) && isfinite (info.z));
    }
    double s = mesh_detect_update (d, "s", 43, 3000LL * PROPS_STEP_MS, &info);
    assert_true (mesh_detect_is_anomaly (d, s));
    mesh_detect_destroy (&d);
}

static void
test_non_finite_changes_nothing (void **state)
{
    mesh_detector_config_t cfg = config ();
    props_non_finite_changes_nothing (&cfg, periodic);
}

static void
test_extreme_values_stay_finite (void **state)
{
    mesh_detector_config_t cfg = config ();
    props_extreme_values_stay_finite (&cfg);
}

static void
test_same_input_same_scores (void **state)
{
    mesh_detector_config_t cfg = config ();
    props_same_input_same_scores (&cfg, periodic);
}

static void
test_family_refuses_bad_keys (void **state)
{
    mesh_detector_config_t cfg;
    cfg = config (), cfg.context.levels = 1;
    assert_null (mesh_detect_new (&cfg));
    cfg = config (), cfg.context.levels = 65;
    assert_null (mesh_detect_new (&cfg));
    cfg = config (), cfg.context.length = 0;
    assert_null (mesh_detect_new (&cfg));
    cfg = config (), cfg.context.length = 9;
    assert_null (mesh_detect_new (&cfg));
    cfg = config (), cfg.context.slots = 15;
    assert_null (mesh_detect_new (&cfg));
    cfg = config (), cfg.context.slots = 177;
    assert_null (mesh_detect_new (&cfg));
}

static void
test_config_loader (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    //  Defaults.
    if (props_load (PROPS_BASE "    detector: {kind: context}\n", &cfg, &out))
        fail_msg ("%s", out);
    const mesh_detector_config_t *det = &cfg->agents[0].detector;
    assert_string_equal (det->kind, "context");
    assert_int_equal (det->context.levels, 8);
    assert_int_equal (det->context.length, 3);
    assert_int_equal (det->context.slots, 176);
    mesh_config_destroy (&cfg);
    free (out);
    //  Given keys.
    assert_int_equal (props_load (PROPS_BASE "    detector: {kind: context, context: {levels: 16, "
                            "length: 4, slots: 160}}\n", &cfg, &out), 0);
    det = &cfg->agents[0].detector;
    assert_int_equal (det->context.levels, 16);
    assert_int_equal (det->context.length, 4);
    assert_int_equal (det->context.slots, 160);
    mesh_detect_t *d = mesh_detect_new (det);
    assert_non_null (d);
    mesh_detect_destroy (&d);
    mesh_config_destroy (&cfg);
    free (out);
    //  Out of range and unknown keys, each named.
    assert_int_equal (props_load (PROPS_BASE "    detector: {kind: context, context: {levels: 1, "
                            "length: 9, slots: 1000, depth: 2}}\n", &cfg, &out), 4);
    assert_null (cfg);
    assert_non_null (strstr (out, "detector.context.levels: must be in [2,64], got 1"));
    assert_non_null (strstr (out, "detector.context.length: must be in [1,8], got 9"));
    assert_non_null (strstr (out, "detector.context.slots: must be in [16,176], got 1000"));
    assert_non_null (strstr (out, "depth"));
    free (out);
    //  A kind that does not exist.
    assert_int_equal (props_load (PROPS_BASE "    detector: {kind: contexts}\n", &cfg, &out), 1);
    assert_non_null (strstr (out, "detector.kind"));
    free (out);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_state_is_bounded),
        cmocka_unit_test (test_steady_cycle_is_quiet),
        cmocka_unit_test (test_level_shift_is_flagged),
        cmocka_unit_test (test_new_pattern_is_flagged),
        cmocka_unit_test (test_constant_series),
        cmocka_unit_test (test_non_finite_changes_nothing),
        cmocka_unit_test (test_extreme_values_stay_finite),
        cmocka_unit_test (test_same_input_same_scores),
        cmocka_unit_test (test_family_refuses_bad_keys),
        cmocka_unit_test (test_config_loader),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
