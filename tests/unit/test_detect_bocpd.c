/*  test_detect_bocpd - the bocpd family (agents/detect/detect_bocpd.c).
 *
 *  Usage example: detector.kind bocpd, keys bocpd.{hazard, hypotheses}; feed
 *  (series, value, ts_ms) points.  Synthetic streams with known answers: a level
 *  shift and a jump of the variance are flagged within a few points, a steady
 *  noisy stream is not, and after a shift the new level is learned within a few
 *  points; a constant series, NaN and infinities and extreme values keep every
 *  score finite and in [0,1]; the state is at most 1 KiB; the same input gives
 *  the same scores; bad keys are refused by the family and by the config loader,
 *  with the key named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "detect_props.h"

//  The shipped defaults (config/meshd.yaml) for the bocpd family.
static mesh_detector_config_t
config (void)
{
    mesh_detector_config_t cfg = {
        .kind = "bocpd", .alpha = 0.05, .warmup = 30, .threshold = 0.999,
        .max_series = 100, .holdoff = 0,
    };
    cfg.bocpd.hazard = 0.001;
    cfg.bocpd.hypotheses = 12;
    return cfg;
}

static void
test_state_is_bounded (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *d = mesh_detect_new (&cfg);
    assert_non_null (d);
    assert_string_equal (mesh_detect_name (d), "bocpd");
    assert_true (mesh_detect_state_size (d) <= 1024);
    mesh_detect_destroy (&d);
    //  The largest keys allowed still fit.
    cfg.bocpd.hypotheses = 24;
    d = mesh_detect_new (&cfg);
    assert_non_null (d);
    assert_true (mesh_detect_state_size (d) <= 1024);
    mesh_detect_destroy (&d);
}

//  5,000 points of noise: false alarms at 0.999 about as often as the threshold
//  says (at most 10, i.e. 0.2 %).
static void
test_steady_noise_is_quiet (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *d = mesh_detect_new (&cfg);
    rng_t r = { 3 };
    int alarms = 0;
    for (int i = 0; i < 5000; i++) {
        double s = mesh_detect_update (d, "s", 100 + rng_gauss (&r), (int64_t) i * PROPS_STEP_MS, NULL);
        alarms += mesh_detect_is_anomaly (d, s);
    }
    if (alarms > 10)
        fail_msg ("%d alarms on steady noise", alarms);
    mesh_detect_destroy (&d);
}

//  A shift of 8 standard deviations is flagged at once, and learned: a few
//  points later the new level no longer alarms.
static void
test_level_shift_is_flagged_and_learned (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *d = mesh_detect_new (&cfg);
    rng_t r = { 4 };
    for (int i = 0; i < 1000; i++)
        mesh_detect_update (d, "s", 100 + rng_gauss (&r), (int64_t) i * PROPS_STEP_MS, NULL);
    int first = -1, late = 0;
    for (int i = 1000, j = 0; j < 200; j++, i++) {
        double s = mesh_detect_update (d, "s", 108 + rng_gauss (&r), (int64_t) i * PROPS_STEP_MS, NULL);
        if (first < 0 && mesh_detect_is_anomaly (d, s))
            first = j;
        if (j >= 10)
            late += mesh_detect_is_anomaly (d, s);
    }
    if (first < 0 || first > 2)
        fail_msg ("level shift flagged at point %d", first);
    if (late > 1)
        fail_msg ("%d alarms on the new level after 10 points", late);
    mesh_detect_destroy (&d);
}

//  The spread jumps tenfold at the same level: flagged within a few points.
static void
test_variance_jump_is_flagged (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *d = mesh_detect_new (&cfg);
    rng_t r = { 5 };
    for (int i = 0; i < 1000; i++)
        mesh_detect_update (d, "s", 100 + rng_gauss (&r), (int64_t) i * PROPS_STEP_MS, NULL);
    int first = -1;
    for (int i = 1000, j = 0; j < 20 && first < 0; j++, i++) {
        double s = mesh_detect_update (d, "s", 100 + 10 * rng_gauss (&r), (int64_t) i * PROPS_STEP_MS,
                                       NULL);
        if (mesh_detect_is_anomaly (d, s))
            first = j;
    }
    if (first < 0 || first > 5)
        fail_msg ("variance jump flagged at point %d", first);
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
        if (s != 0)
            fail_msg ("point %d scored %.17g", i, s);
        assert_true (isfinite (info.mean) && isfinite (info.stddev) && isfinite (info.z));
    }
    double s = mesh_detect_update (d, "s", 43, 3000LL * PROPS_STEP_MS, &info);
    assert_true (mesh_detect_is_anomaly (d, s));
    mesh_detect_destroy (&d);
}

//  Steady noise around 100.
static double
noise (rng_t *r, int i)
{
    return 100 + rng_gauss (r);
}

static void
test_non_finite_changes_nothing (void **state)
{
    mesh_detector_config_t cfg = config ();
    props_non_finite_changes_nothing (&cfg, noise);
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
    props_same_input_same_scores (&cfg, noise);
}

static void
test_family_refuses_bad_keys (void **state)
{
    mesh_detector_config_t cfg;
    cfg = config (), cfg.bocpd.hazard = 0;
    assert_null (mesh_detect_new (&cfg));
    cfg = config (), cfg.bocpd.hazard = 0.6;
    assert_null (mesh_detect_new (&cfg));
    cfg = config (), cfg.bocpd.hazard = NAN;
    assert_null (mesh_detect_new (&cfg));
    cfg = config (), cfg.bocpd.hypotheses = 1;
    assert_null (mesh_detect_new (&cfg));
    cfg = config (), cfg.bocpd.hypotheses = 25;
    assert_null (mesh_detect_new (&cfg));
    cfg = config (), cfg.alpha = 0;
    assert_null (mesh_detect_new (&cfg));
}

static void
test_config_loader (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    //  Defaults.
    if (props_load (PROPS_BASE "    detector: {kind: bocpd}\n", &cfg, &out))
        fail_msg ("%s", out);
    const mesh_detector_config_t *det = &cfg->agents[0].detector;
    assert_string_equal (det->kind, "bocpd");
    assert_true (det->bocpd.hazard == 0.001);
    assert_int_equal (det->bocpd.hypotheses, 12);
    mesh_config_destroy (&cfg);
    free (out);
    //  Given keys.
    assert_int_equal (props_load (PROPS_BASE "    detector: {kind: bocpd, bocpd: {hazard: 0.01, "
                            "hypotheses: 20}}\n", &cfg, &out), 0);
    det = &cfg->agents[0].detector;
    assert_true (det->bocpd.hazard == 0.01);
    assert_int_equal (det->bocpd.hypotheses, 20);
    mesh_detect_t *d = mesh_detect_new (det);
    assert_non_null (d);
    mesh_detect_destroy (&d);
    mesh_config_destroy (&cfg);
    free (out);
    //  Out of range and unknown keys, each named.
    assert_int_equal (props_load (PROPS_BASE "    detector: {kind: bocpd, bocpd: {hazard: 0, "
                            "hypotheses: 100, prior: 2}}\n", &cfg, &out), 3);
    assert_null (cfg);
    assert_non_null (strstr (out, "detector.bocpd.hazard: must be in (0,0.5], got 0"));
    assert_non_null (strstr (out, "detector.bocpd.hypotheses: must be in [2,24], got 100"));
    assert_non_null (strstr (out, "prior"));
    free (out);
    assert_int_equal (props_load (PROPS_BASE "    detector: {kind: bocpd, bocpd: {hazard: 0.9}}\n",
                            &cfg, &out), 1);
    assert_non_null (strstr (out, "detector.bocpd.hazard"));
    free (out);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_state_is_bounded),
        cmocka_unit_test (test_steady_noise_is_quiet),
        cmocka_unit_test (test_level_shift_is_flagged_and_learned),
        cmocka_unit_test (test_variance_jump_is_flagged),
        cmocka_unit_test (test_constant_series),
        cmocka_unit_test (test_non_finite_changes_nothing),
        cmocka_unit_test (test_extreme_values_stay_finite),
        cmocka_unit_test (test_same_input_same_scores),
        cmocka_unit_test (test_family_refuses_bad_keys),
        cmocka_unit_test (test_config_loader),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
