/*  test_detect - the EWMA z-score detector (agents/detect/detect_ewma.c).
 *
 *  Usage example: create a detector from its config, feed it (series, value)
 *  points, compare the score with the threshold through mesh_detect_is_anomaly.
 *  Noise comes from a fixed-seed splitmix64 + Box-Muller, so every run sees the
 *  same numbers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "detect.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "detect_props.h"     //  rng_t, rng_next, rng_gauss

static mesh_detector_config_t
config (void)
{
    return (mesh_detector_config_t) { .kind = "ewma", .alpha = 0.05, .warmup = 30,
                                      .threshold = 0.99, .max_series = 100 };
}

static void
test_new_rejects_bad_config (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *d = mesh_detect_new (&cfg);
    assert_non_null (d);
    assert_string_equal (mesh_detect_name (d), "ewma");
    assert_int_equal (mesh_detect_series (d), 0);
    mesh_detect_destroy (&d);
    assert_null (d);
    mesh_detect_destroy (&d);

    struct {
        const char *kind;
        double alpha, threshold;
        int warmup;
        size_t max_series;
    } bad[] = {
        { "zscore", 0.05, 0.99, 30, 10 },
        { NULL, 0.05, 0.99, 30, 10 },
        { "ewma", 0, 0.99, 30, 10 },
        { "ewma", 1.5, 0.99, 30, 10 },
        { "ewma", NAN, 0.99, 30, 10 },
        { "ewma", 0.05, 0, 30, 10 },
        { "ewma", 0.05, 1.01, 30, 10 },
        { "ewma", 0.05, NAN, 30, 10 },
        { "ewma", 0.05, 0.99, -1, 10 },
        { "ewma", 0.05, 0.99, 30, 0 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mesh_detector_config_t c = { .kind = (char *) bad[i].kind, .alpha = bad[i].alpha,
                                     .threshold = bad[i].threshold, .warmup = bad[i].warmup,
                                     .max_series = bad[i].max_series };
        assert_null (mesh_detect_new (&c));
    }
    //  Edge values that are valid.
    mesh_detector_config_t edge = { .kind = "ewma", .alpha = 1, .threshold = 1, .warmup = 0,
                                    .max_series = 1 };
    d = mesh_detect_new (&edge);
    assert_non_null (d);
    mesh_detect_destroy (&d);
}

static void
test_warmup_scores_zero (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *d = mesh_detect_new (&cfg);
    mesh_detect_info_t info;
    //  Wild values during warm-up: still 0.
    for (int i = 0; i < 30; i++) {
        double v = (i % 2) ? 1e6 : -1e6;
        assert_true (mesh_detect_update (d, "s", v, i * 1000, &info) == 0.0);
        assert_false (info.warm);
        assert_int_equal (info.n, (uint64_t) i + 1);
        assert_true (info.score == 0.0);
    }
    //  Point 31 is scored; a value at the mean scores low.
    double score = mesh_detect_update (d, "s", 0, 31000, &info);
    assert_true (info.warm);
    assert_int_equal (info.n, 31);
    assert_true (score < 0.5);
    mesh_detect_destroy (&d);
}

static void
test_noise_has_few_false_alarms (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *d = mesh_detect_new (&cfg);
    rng_t rng = { 1 };
    int scored = 0, alarms = 0;
    for (int i = 0; i < 10000; i++) {
        mesh_detect_info_t info;
        double score = mesh_detect_update (d, "web-1/cpu", 100 + 5 * rng_gauss (&rng),
                                           i * 60000LL, &info);
        if (!info.warm)
            continue;
        scored++;
        if (mesh_detect_is_anomaly (d, score))
            alarms++;
    }
    double fraction = (double) alarms / scored;
    print_message ("false alarms at 0.99: %.3f%% of %d points\n", 100 * fraction, scored);
    assert_int_equal (scored, 10000 - 30);
    assert_true (fraction < 0.02);
    //  ... and the detector does score: Gaussian tails do cross 0.99 (|z| >= 2.58).
    assert_true (fraction > 0.002);
    mesh_detect_destroy (&d);
}

static void
test_spike_scores_high_and_does_not_poison (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *d = mesh_detect_new (&cfg);
    rng_t rng = { 7 };
    for (int i = 0; i < 500; i++)
        mesh_detect_update (d, "s", 100 + 5 * rng_gauss (&rng), i, NULL);
    mesh_detect_info_t info;
    double score = mesh_detect_update (d, "s", 100 + 50, 500, &info);
    assert_true (score >= 0.99);
    assert_true (mesh_detect_is_anomaly (d, score));
    assert_true (info.z > 6 && info.z < 14);
    assert_true (fabs (info.mean - 100) < 3);
    assert_true (info.stddev > 3 && info.stddev < 7);
    assert_int_equal (info.n, 501);
    assert_int_equal (info.window_len, MESH_DETECT_WINDOW);
    assert_true (info.window[MESH_DETECT_WINDOW - 1] == 150);
    //  The same spike downwards scores the same way (two-sided).
    score = mesh_detect_update (d, "s", 100 - 50, 501, &info);
    assert_true (score >= 0.99);
    assert_true (info.z < -6);
    //  The baseline was damped, not dragged: ordinary points are ordinary again.
    score = mesh_detect_update (d, "s", 100, 502, &info);
    assert_false (mesh_detect_is_anomaly (d, score));
    assert_true (fabs (info.mean - 100) < 3);
    mesh_detect_destroy (&d);
}

static void
test_constant_then_jump (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *d = mesh_detect_new (&cfg);
    mesh_detect_info_t info;
    for (int i = 0; i < 50; i++) {
        double score = mesh_detect_update (d, "c", 7.25, i, &info);
        assert_true (score == 0.0);
    }
    assert_true (info.warm);
    assert_true (info.stddev == 0.0);
    double score = mesh_detect_update (d, "c", 7.5, 50, &info);
    assert_false (isnan (score));
    assert_true (isfinite (info.z));
    assert_true (info.z > 0);
    assert_true (score >= 0.99);
    //  A series of zeros, then a tiny change: still a change.
    for (int i = 0; i < 40; i++)
        mesh_detect_update (d, "zero", 0, i, NULL);
    score = mesh_detect_update (d, "zero", -1e-3, 40, &info);
    assert_true (score >= 0.99);
    assert_true (isfinite (info.z) && info.z < 0);
    //  After the jump the baseline learns the new level instead of alarming forever.
    int alarms = 0;
    for (int i = 51; i < 200; i++)
        if (mesh_detect_is_anomaly (d, mesh_detect_update (d, "c", 7.5, i, NULL)))
            alarms++;
    assert_true (alarms > 0);
    assert_true (alarms < 100);
    assert_false (mesh_detect_is_anomaly (d, mesh_detect_update (d, "c", 7.5, 200, NULL)));
    mesh_detect_destroy (&d);
}

static void
test_nan_and_inf_score_zero_and_change_nothing (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *with = mesh_detect_new (&cfg);
    mesh_detect_t *without = mesh_detect_new (&cfg);
    mesh_detect_info_t info;
    //  Unknown series: no entry is created.
    assert_true (mesh_detect_update (with, "x", NAN, 0, &info) == 0.0);
    assert_int_equal (info.n, 0);
    assert_int_equal (info.window_len, 0);
    assert_int_equal (mesh_detect_series (with), 0);
    rng_t rng = { 3 };
    const double bad[] = { NAN, INFINITY, -INFINITY };
    for (int i = 0; i < 300; i++) {
        double v = 10 + rng_gauss (&rng) + (i == 250 ? 20 : 0);
        if (i % 7 == 0) {
            uint64_t n_before = info.n;
            assert_true (mesh_detect_update (with, "x", bad[i % 3], i, &info) == 0.0);
            assert_true (info.score == 0.0);
            assert_int_equal (info.n, n_before);
        }
        double a = mesh_detect_update (with, "x", v, i, &info);
        double b = mesh_detect_update (without, "x", v, i, NULL);
        assert_true (a == b);
    }
    assert_int_equal (info.n, 300);
    mesh_detect_destroy (&with);
    mesh_detect_destroy (&without);
}

static void
test_lru_eviction (void **state)
{
    mesh_detector_config_t cfg = config ();
    cfg.max_series = 3;
    mesh_detect_t *d = mesh_detect_new (&cfg);
    mesh_detect_info_t info;
    mesh_detect_update (d, "a", 1, 0, NULL);
    mesh_detect_update (d, "a", 1, 1, NULL);
    mesh_detect_update (d, "b", 1, 0, NULL);
    mesh_detect_update (d, "c", 1, 0, NULL);
    mesh_detect_update (d, "a", 1, 2, NULL);            //  b is now the oldest
    assert_int_equal (mesh_detect_series (d), 3);
    assert_int_equal (mesh_detect_evictions (d), 0);
    mesh_detect_update (d, "d", 1, 0, NULL);
    assert_int_equal (mesh_detect_series (d), 3);
    assert_int_equal (mesh_detect_evictions (d), 1);
    //  a (most recent) kept its history; b starts again from nothing.
    mesh_detect_update (d, "a", 1, 3, &info);
    assert_int_equal (info.n, 4);
    mesh_detect_update (d, "b", 1, 1, &info);
    assert_int_equal (info.n, 1);
    assert_int_equal (mesh_detect_evictions (d), 2);   //  ... which pushed out c
    mesh_detect_update (d, "d", 1, 1, &info);
    assert_int_equal (info.n, 2);
    mesh_detect_destroy (&d);
}

static void
test_window_keeps_the_recent_values_in_order (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *d = mesh_detect_new (&cfg);
    mesh_detect_info_t info;
    mesh_detect_update (d, "w", 1, 0, &info);
    assert_int_equal (info.window_len, 1);
    assert_true (info.window[0] == 1);
    for (int i = 2; i <= 40; i++)
        mesh_detect_update (d, "w", i, i, &info);
    assert_int_equal (info.window_len, MESH_DETECT_WINDOW);
    for (int i = 0; i < MESH_DETECT_WINDOW; i++)
        assert_true (info.window[i] == 40 - MESH_DETECT_WINDOW + 1 + i);
    mesh_detect_destroy (&d);
}

static void
test_scores_always_in_unit_interval (void **state)
{
    mesh_detector_config_t cfg = config ();
    cfg.warmup = 2;
    mesh_detect_t *d = mesh_detect_new (&cfg);
    rng_t rng = { 11 };
    const double extremes[] = { 1e300, -1e300, 1.7e308, -1.7e308, 5e-324, 0, -0.0, 1e-300,
                                42, 1e15, -1e15 };
    char series[8];
    for (int i = 0; i < 20000; i++) {
        double v;
        uint64_t pick = rng_next (&rng) % 4;
        if (pick == 0)
            v = extremes[rng_next (&rng) % (sizeof extremes / sizeof extremes[0])];
        else if (pick == 1)
            v = rng_gauss (&rng) * 1e6;
        else
            v = rng_gauss (&rng);
        snprintf (series, sizeof series, "s%d", (int) (rng_next (&rng) % 5));
        mesh_detect_info_t info;
        double score = mesh_detect_update (d, series, v, i, &info);
        assert_true (score >= 0.0 && score <= 1.0);
        assert_true (info.score == score);
        assert_true (isfinite (info.z));
        assert_false (isnan (info.mean));
        assert_false (isnan (info.stddev));
    }
    mesh_detect_destroy (&d);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_new_rejects_bad_config),
        cmocka_unit_test (test_warmup_scores_zero),
        cmocka_unit_test (test_noise_has_few_false_alarms),
        cmocka_unit_test (test_spike_scores_high_and_does_not_poison),
        cmocka_unit_test (test_constant_then_jump),
        cmocka_unit_test (test_nan_and_inf_score_zero_and_change_nothing),
        cmocka_unit_test (test_lru_eviction),
        cmocka_unit_test (test_window_keeps_the_recent_values_in_order),
        cmocka_unit_test (test_scores_always_in_unit_interval),
    };
    return cmocka_run_group_tests_name ("detect", tests, NULL, NULL);
}
