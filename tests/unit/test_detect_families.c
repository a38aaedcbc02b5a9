/*  test_detect_families - every detector family behind detect.h (agents/detect*.c).
 *
 *  Usage example: fill a mesh_detector_config_t (kind and the family's keys), create
 *  a detector, feed it (series, value, ts_ms) points; each family must keep the
 *  contract the agent relies on: warm-up scores 0, scores in [0,1], a spike and a
 *  level shift score high, NaN changes nothing, the state per series is bounded
 *  and the table evicts.  Noise comes from a fixed-seed splitmix64 + Box-Muller.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "detect.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detect_props.h"     //  rng_t, rng_next, rng_gauss

static const char *const s_kinds[] = { "ewma", "mad", "cusum", "seasonal", "knn", "ensemble" };
#define KINDS (sizeof s_kinds / sizeof s_kinds[0])

//  The shipped defaults (config/meshd.yaml), with KIND.
static mesh_detector_config_t
config (const char *kind)
{
    mesh_detector_config_t cfg = {
        .kind = (char *) kind, .alpha = 0.05, .warmup = 30, .threshold = 0.999,
        .max_series = 100, .holdoff = 0,
    };
    cfg.mad.window = 64;
    cfg.cusum.k = 0.5;
    cfg.cusum.h = 8;
    cfg.seasonal.period_s = 86400;
    cfg.seasonal.bins = 48;
    cfg.seasonal.alpha = 0.1;
    cfg.knn.window = 8;
    cfg.knn.memory = 128;
    cfg.knn.k = 3;
    return cfg;
}

#define STEP_MS 300000                  //  five minutes between points

//  Feed N points of noise (mean 100, sd 1) to SERIES from point FIRST; returns the
//  highest score.
static double
feed_noise (mesh_detect_t *d, const char *series, rng_t *r, int first, int n)
{
    double high = 0;
    for (int i = first; i < first + n; i++) {
        double s = mesh_detect_update (d, series, 100 + rng_gauss (r), (int64_t) i * STEP_MS,
                                       NULL);
        high = fmax (high, s);
    }
    return high;
}

static void
test_every_kind_is_created_and_named (void **state)
{
    for (size_t k = 0; k < KINDS; k++) {
        mesh_detector_config_t cfg = config (s_kinds[k]);
        mesh_detect_t *d = mesh_detect_new (&cfg);
        assert_non_null (d);
        assert_string_equal (mesh_detect_name (d), s_kinds[k]);
        assert_true (mesh_detect_state_size (d) > 0);
        mesh_detect_destroy (&d);
        assert_null (d);
    }
}

static void
test_bad_family_keys_are_refused (void **state)
{
    mesh_detector_config_t cfg;
    cfg = config ("mad"), cfg.mad.window = 4;
    assert_null (mesh_detect_new (&cfg));
    cfg = config ("mad"), cfg.mad.window = 2000;
    assert_null (mesh_detect_new (&cfg));
    cfg = config ("cusum"), cfg.cusum.h = 0;
    assert_null (mesh_detect_new (&cfg));
    cfg = config ("cusum"), cfg.cusum.k = -1;
    assert_null (mesh_detect_new (&cfg));
    cfg = config ("seasonal"), cfg.seasonal.bins = 1;
    assert_null (mesh_detect_new (&cfg));
    cfg = config ("seasonal"), cfg.seasonal.alpha = 0;
    assert_null (mesh_detect_new (&cfg));
    cfg = config ("seasonal"), cfg.seasonal.period_s = 0;
    assert_null (mesh_detect_new (&cfg));
    cfg = config ("knn"), cfg.knn.k = 200;              //  more than memory
    assert_null (mesh_detect_new (&cfg));
    cfg = config ("knn"), cfg.knn.window = 1;
    assert_null (mesh_detect_new (&cfg));
    cfg = config ("ensemble"), cfg.knn.memory = 4;       //  a member's key
    assert_null (mesh_detect_new (&cfg));
    cfg = config ("ewma"), cfg.holdoff = -1;
    assert_null (mesh_detect_new (&cfg));
    //  Keys of other families are not checked: mad with a broken knn is fine.
    cfg = config ("mad"), cfg.knn.k = 0;
    mesh_detect_t *d = mesh_detect_new (&cfg);
    assert_non_null (d);
    mesh_detect_destroy (&d);
}

static void
test_warmup_scores_zero (void **state)
{
    for (size_t k = 0; k < KINDS; k++) {
        mesh_detector_config_t cfg = config (s_kinds[k]);
        cfg.warmup = 40;
        mesh_detect_t *d = mesh_detect_new (&cfg);
        mesh_detect_info_t info;
        for (int i = 0; i < 40; i++) {
            //  Wild values: anything would score high if it were scored.
            double v = i % 2 ? 1e6 : -1e6 * i;
            assert_true (mesh_detect_update (d, "s", v, (int64_t) i * STEP_MS, &info) == 0);
            assert_false (info.warm);
        }
        mesh_detect_update (d, "s", 0, 40 * STEP_MS, &info);
        assert_true (info.warm);
        assert_int_equal (info.n, 41);
        mesh_detect_destroy (&d);
    }
}

static void
test_scores_always_in_unit_interval (void **state)
{
    static const double values[] = { 0, 1, -1, 1e300, -1e300, 1e-300, 5e-324, 1.7e308,
                                     -1.7e308, 42, 42, 42, 1e9, -3 };
    for (size_t k = 0; k < KINDS; k++) {
        mesh_detector_config_t cfg = config (s_kinds[k]);
        cfg.warmup = 2;
        mesh_detect_t *d = mesh_detect_new (&cfg);
        rng_t r = { 7 };
        mesh_detect_info_t info;
        for (int i = 0; i < 3000; i++) {
            double v = i % 7 == 0 ? values[(i / 7) % (sizeof values / sizeof values[0])]
                                  : rng_gauss (&r) * pow (10, (double) (i % 13) - 6);
            double s = mesh_detect_update (d, "s", v, (int64_t) i * STEP_MS, &info);
            assert_true (s >= 0 && s <= 1);
            assert_true (info.score == s);
            assert_true (isfinite (info.z) && isfinite (info.mean));
        }
        mesh_detect_destroy (&d);
    }
}

//  After 600 points of noise, one point 12 sigma away scores at or above the
//  threshold for every family but cusum (which looks for persistent change and
//  clips single points by design).
static void
test_spike_scores_high (void **state)
{
    for (size_t k = 0; k < KINDS; k++) {
        if (!strcmp (s_kinds[k], "cusum"))
            continue;
        mesh_detector_config_t cfg = config (s_kinds[k]);
        mesh_detect_t *d = mesh_detect_new (&cfg);
        rng_t r = { 11 };
        feed_noise (d, "s", &r, 0, 600);
        double s = mesh_detect_update (d, "s", 112, 600LL * STEP_MS, NULL);
        if (!mesh_detect_is_anomaly (d, s))
            fail_msg ("%s: a 12-sigma spike scored %.9f", s_kinds[k], s);
        mesh_detect_destroy (&d);
    }
}

//  Noise alone rarely alarms: at most 1 % of 2,000 points at threshold 0.999.
static void
test_noise_has_few_false_alarms (void **state)
{
    for (size_t k = 0; k < KINDS; k++) {
        mesh_detector_config_t cfg = config (s_kinds[k]);
        mesh_detect_t *d = mesh_detect_new (&cfg);
        rng_t r = { 5 };
        int alarms = 0;
        for (int i = 0; i < 2000; i++) {
            double s = mesh_detect_update (d, "s", 100 + rng_gauss (&r), (int64_t) i * STEP_MS,
                                           NULL);
            alarms += mesh_detect_is_anomaly (d, s);
        }
        if (alarms > 20)
            fail_msg ("%s: %d alarms on 2000 points of noise", s_kinds[k], alarms);
        mesh_detect_destroy (&d);
    }
}

//  A lasting level shift of 5 sigma is found within 20 points by every family.
static void
test_level_shift_is_found (void **state)
{
    for (size_t k = 0; k < KINDS; k++) {
        mesh_detector_config_t cfg = config (s_kinds[k]);
        mesh_detect_t *d = mesh_detect_new (&cfg);
        rng_t r = { 13 };
        feed_noise (d, "s", &r, 0, 600);
        int found = -1;
        for (int i = 0; i < 20 && found < 0; i++) {
            double s = mesh_detect_update (d, "s", 105 + rng_gauss (&r),
                                           (int64_t) (600 + i) * STEP_MS, NULL);
            if (mesh_detect_is_anomaly (d, s))
                found = i;
        }
        if (found < 0)
            fail_msg ("%s: a 5-sigma level shift went unnoticed for 20 points", s_kinds[k]);
        mesh_detect_destroy (&d);
    }
}

//  A slow drift (0.25 sigma per point) is what CUSUM is for: it finds it before the
//  drift has moved 6 sigma, where a z-score still sees a lagging but ordinary point.
static void
test_cusum_finds_a_drift (void **state)
{
    mesh_detector_config_t cfg = config ("cusum");
    mesh_detect_t *d = mesh_detect_new (&cfg);
    rng_t r = { 17 };
    feed_noise (d, "s", &r, 0, 600);
    int found = -1;
    for (int i = 0; i < 24 && found < 0; i++) {
        double s = mesh_detect_update (d, "s", 100 + 0.25 * i + rng_gauss (&r),
                                       (int64_t) (600 + i) * STEP_MS, NULL);
        if (mesh_detect_is_anomaly (d, s))
            found = i;
    }
    assert_true (found >= 0);
    mesh_detect_destroy (&d);
}

//  A daily cycle of 20 sigma: the seasonal baseline learns it and stays quiet on
//  the fourth day, while a point normal for noon but at midnight is anomalous.
static void
test_seasonal_learns_the_cycle (void **state)
{
    mesh_detector_config_t cfg = config ("seasonal");
    mesh_detect_t *d = mesh_detect_new (&cfg);
    rng_t r = { 19 };
    int day = 288, alarms = 0;
    mesh_detect_info_t info;
    for (int i = 0; i < 4 * day; i++) {
        double truth = 100 + 20 * sin (2 * M_PI * i / day);
        double s = mesh_detect_update (d, "s", truth + rng_gauss (&r), (int64_t) i * STEP_MS,
                                       &info);
        if (i >= 3 * day) {
            alarms += mesh_detect_is_anomaly (d, s);
        }
    }
    assert_true (alarms <= 3);
    //  Point 4 * day + 3 * day / 4 is the cycle's low (80); send its high (120).
    for (int i = 4 * day; i < 4 * day + 3 * day / 4; i++)
        mesh_detect_update (d, "s", 100 + 20 * sin (2 * M_PI * i / day) + rng_gauss (&r),
                            (int64_t) i * STEP_MS, NULL);
    double s = mesh_detect_update (d, "s", 120, (int64_t) (4 * day + 3 * day / 4) * STEP_MS,
                                   NULL);
    assert_true (mesh_detect_is_anomaly (d, s));
    mesh_detect_destroy (&d);
}

//  The pattern detector: a square wave, then the same values in a new order (every
//  value seen before, the pattern never).
static void
test_knn_finds_a_new_pattern (void **state)
{
    mesh_detector_config_t cfg = config ("knn");
    mesh_detect_t *d = mesh_detect_new (&cfg);
    rng_t r = { 23 };
    int i = 0;
    double high = 0;
    for (; i < 1600; i++) {
        double v = ((i / 16) % 2 ? 10 : 0) + 0.1 * rng_gauss (&r);
        high = fmax (high, mesh_detect_update (d, "s", v, (int64_t) i * STEP_MS, NULL));
    }
    int found = -1;
    for (int j = 0; j < 32 && found < 0; j++, i++) {
        double v = (j % 2 ? 10 : 0) + 0.1 * rng_gauss (&r);     //  period 2, not 32
        double s = mesh_detect_update (d, "s", v, (int64_t) i * STEP_MS, NULL);
        if (mesh_detect_is_anomaly (d, s))
            found = j;
    }
    assert_true (found >= 0);
    mesh_detect_destroy (&d);
}

//  A constant series: MAD is 0, the spread falls back and nothing divides by zero.
static void
test_mad_on_a_constant_series (void **state)
{
    mesh_detector_config_t cfg = config ("mad");
    mesh_detect_t *d = mesh_detect_new (&cfg);
    mesh_detect_info_t info;
    for (int i = 0; i < 100; i++)
        assert_true (mesh_detect_update (d, "s", 7, (int64_t) i * STEP_MS, &info) == 0 || i < 30);
    assert_true (info.score == 0);
    assert_true (info.mean == 7);
    double s = mesh_detect_update (d, "s", 7.5, 100LL * STEP_MS, &info);
    assert_true (s == 1);
    assert_true (isfinite (info.z));
    mesh_detect_destroy (&d);
}

static void
test_nan_and_inf_change_nothing (void **state)
{
    for (size_t k = 0; k < KINDS; k++) {
        mesh_detector_config_t cfg = config (s_kinds[k]);
        mesh_detect_t *a = mesh_detect_new (&cfg);
        mesh_detect_t *b = mesh_detect_new (&cfg);
        rng_t r1 = { 29 }, r2 = { 29 };
        for (int i = 0; i < 300; i++) {
            double v1 = 100 + rng_gauss (&r1), v2 = 100 + rng_gauss (&r2);
            double s1 = mesh_detect_update (a, "s", v1, (int64_t) i * STEP_MS, NULL);
            mesh_detect_info_t info;
            //  B also sees garbage between the real points.
            assert_true (mesh_detect_update (b, "s", NAN, (int64_t) i * STEP_MS, &info) == 0);
            assert_true (mesh_detect_update (b, "s", INFINITY, (int64_t) i * STEP_MS, NULL) == 0);
            assert_true (mesh_detect_update (b, "s", -INFINITY, (int64_t) i * STEP_MS, NULL) == 0);
            double s2 = mesh_detect_update (b, "s", v2, (int64_t) i * STEP_MS, &info);
            assert_true (s1 == s2);
            assert_int_equal (info.n, i + 1);
        }
        //  A series seen only with NaN is not created.
        mesh_detect_update (b, "only-nan", NAN, 0, NULL);
        assert_int_equal (mesh_detect_series (b), 1);
        mesh_detect_destroy (&a);
        mesh_detect_destroy (&b);
    }
}

//  The state per series does not grow with the points seen, and stays within the
//  documented bounds at the defaults.
static void
test_memory_is_bounded (void **state)
{
    static const size_t bound[] = { 256, 768, 256, 1024, 8192, 16384 };
    for (size_t k = 0; k < KINDS; k++) {
        mesh_detector_config_t cfg = config (s_kinds[k]);
        mesh_detect_t *d = mesh_detect_new (&cfg);
        size_t before = mesh_detect_state_size (d);
        rng_t r = { 31 };
        feed_noise (d, "s", &r, 0, 5000);
        assert_int_equal (mesh_detect_state_size (d), before);
        if (before > bound[k])
            fail_msg ("%s: %zu bytes per series, more than %zu", s_kinds[k], before, bound[k]);
        mesh_detect_destroy (&d);
    }
    //  The window keys scale it as documented.
    mesh_detector_config_t cfg = config ("mad");
    cfg.mad.window = 128;
    mesh_detect_t *big = mesh_detect_new (&cfg);
    cfg.mad.window = 64;
    mesh_detect_t *small = mesh_detect_new (&cfg);
    assert_int_equal (mesh_detect_state_size (big) - mesh_detect_state_size (small),
                      64 * sizeof (double));
    mesh_detect_destroy (&big);
    mesh_detect_destroy (&small);
}

static void
test_lru_eviction (void **state)
{
    for (size_t k = 0; k < KINDS; k++) {
        mesh_detector_config_t cfg = config (s_kinds[k]);
        cfg.max_series = 3;
        mesh_detect_t *d = mesh_detect_new (&cfg);
        mesh_detect_info_t info;
        char key[16];
        for (int i = 0; i < 5; i++) {
            snprintf (key, sizeof key, "s%d", i);
            for (int j = 0; j < 10; j++)
                mesh_detect_update (d, key, j, (int64_t) j * STEP_MS, NULL);
        }
        assert_int_equal (mesh_detect_series (d), 3);
        assert_int_equal (mesh_detect_evictions (d), 2);
        //  s0 was evicted: it starts again.
        mesh_detect_update (d, "s0", 1, 0, &info);
        assert_int_equal (info.n, 1);
        assert_int_equal (mesh_detect_evictions (d), 3);
        //  s4 was kept.
        mesh_detect_update (d, "s4", 1, 0, &info);
        assert_int_equal (info.n, 11);
        mesh_detect_destroy (&d);
    }
}

//  Holdoff: after a peak, only a higher score counts; after holdoff points the
//  series may alarm again.
static void
test_holdoff_reports_one_alarm_per_excursion (void **state)
{
    mesh_detector_config_t cfg = config ("ewma");
    cfg.holdoff = 50;
    mesh_detect_t *d = mesh_detect_new (&cfg);
    cfg.holdoff = 0;
    mesh_detect_t *plain = mesh_detect_new (&cfg);
    rng_t r = { 37 };
    int i = 0, alarms = 0, plain_alarms = 0;
    for (; i < 600; i++) {
        double v = 100 + rng_gauss (&r);
        mesh_detect_update (d, "s", v, (int64_t) i * STEP_MS, NULL);
        mesh_detect_update (plain, "s", v, (int64_t) i * STEP_MS, NULL);
    }
    //  Five identical spikes in a row: one alarm with holdoff, several without.
    for (int j = 0; j < 5; j++, i++) {
        alarms += mesh_detect_is_anomaly (d, mesh_detect_update (d, "s", 150,
                                                                 (int64_t) i * STEP_MS, NULL));
        plain_alarms += mesh_detect_is_anomaly (plain,
                                                mesh_detect_update (plain, "s", 150,
                                                                    (int64_t) i * STEP_MS, NULL));
    }
    assert_int_equal (alarms, 1);
    assert_true (plain_alarms > 1);
    //  Quiet for longer than the holdoff, then another spike alarms again.
    for (int j = 0; j < 300; j++, i++)
        mesh_detect_update (d, "s", 100 + rng_gauss (&r), (int64_t) i * STEP_MS, NULL);
    assert_true (mesh_detect_is_anomaly (d, mesh_detect_update (d, "s", 200,
                                                                (int64_t) i * STEP_MS, NULL)));
    mesh_detect_destroy (&d);
    mesh_detect_destroy (&plain);
}

//  The ensemble's score is calibrated on the series' own history: a stream with
//  heavy tails (a burst every 50 points) does not alarm on its routine bursts,
//  but does on a value beyond any it has shown.
static void
test_ensemble_calibrates_heavy_tails (void **state)
{
    mesh_detector_config_t cfg = config ("ensemble");
    mesh_detect_t *d = mesh_detect_new (&cfg);
    mesh_detector_config_t ecfg = config ("ewma");
    mesh_detect_t *e = mesh_detect_new (&ecfg);
    rng_t r = { 41 };
    int alarms = 0, ewma_alarms = 0, i = 0;
    for (; i < 3000; i++) {
        double v = 100 + rng_gauss (&r) + (i % 50 == 0 ? 20 + 10 * fabs (rng_gauss (&r)) : 0);
        double s = mesh_detect_update (d, "s", v, (int64_t) i * STEP_MS, NULL);
        double t = mesh_detect_update (e, "s", v, (int64_t) i * STEP_MS, NULL);
        if (i >= 1000) {
            alarms += mesh_detect_is_anomaly (d, s);
            ewma_alarms += mesh_detect_is_anomaly (e, t);
        }
    }
    assert_true (ewma_alarms >= 20);
    assert_true (alarms <= 3);
    double s = mesh_detect_update (d, "s", 1000, (int64_t) i * STEP_MS, NULL);
    assert_true (mesh_detect_is_anomaly (d, s));
    mesh_detect_destroy (&d);
    mesh_detect_destroy (&e);
}

static int
cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static void
test_median_matches_sorting (void **state)
{
    rng_t r = { 43 };
    for (size_t n = 1; n < 200; n++) {
        double v[200], sorted[200];
        for (size_t i = 0; i < n; i++)
            v[i] = sorted[i] = (double) (rng_next (&r) % 20);     //  many ties
        qsort (sorted, n, sizeof sorted[0], cmp_double);
        double expect = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
        assert_true (mesh_detect_median (v, n) == expect);
    }
}

static void
test_z_surprise_is_finite_and_monotone (void **state)
{
    double last = -1;
    for (double z = 0; z < 1e6; z = z * 1.5 + 0.1) {
        double s = mesh_detect_z_surprise (z);
        assert_true (isfinite (s));
        assert_true (s >= last);
        last = s;
    }
    //  -log10 (1 - erf (3.29 / sqrt 2)) is about 3 (1 in 1000).
    assert_true (fabs (mesh_detect_z_surprise (3.2905) - 3) < 0.01);
    assert_true (fabs (mesh_detect_z_score (3.2905) - 0.999) < 1e-4);
    assert_true (mesh_detect_z_surprise (NAN) == 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_every_kind_is_created_and_named),
        cmocka_unit_test (test_bad_family_keys_are_refused),
        cmocka_unit_test (test_warmup_scores_zero),
        cmocka_unit_test (test_scores_always_in_unit_interval),
        cmocka_unit_test (test_spike_scores_high),
        cmocka_unit_test (test_noise_has_few_false_alarms),
        cmocka_unit_test (test_level_shift_is_found),
        cmocka_unit_test (test_cusum_finds_a_drift),
        cmocka_unit_test (test_seasonal_learns_the_cycle),
        cmocka_unit_test (test_knn_finds_a_new_pattern),
        cmocka_unit_test (test_mad_on_a_constant_series),
        cmocka_unit_test (test_nan_and_inf_change_nothing),
        cmocka_unit_test (test_memory_is_bounded),
        cmocka_unit_test (test_lru_eviction),
        cmocka_unit_test (test_holdoff_reports_one_alarm_per_excursion),
        cmocka_unit_test (test_ensemble_calibrates_heavy_tails),
        cmocka_unit_test (test_median_matches_sorting),
        cmocka_unit_test (test_z_surprise_is_finite_and_monotone),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
