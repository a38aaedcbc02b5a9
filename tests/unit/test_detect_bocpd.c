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

#include "config.h"
#include "detect.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    uint64_t state;
} rng_t;

static uint64_t
rng_next (rng_t *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double
rng_gauss (rng_t *r)
{
    double u1 = 1.0 - (double) (rng_next (r) >> 11) * 0x1.0p-53;
    double u2 = (double) (rng_next (r) >> 11) * 0x1.0p-53;
    return sqrt (-2.0 * log (u1)) * cos (2 * M_PI * u2);
}

#define STEP_MS 60000

//  The shipped defaults (config/meshd.yaml) for the bocpd family.
static mesh_detector_config_t
config (void)
{
    mesh_detector_config_t cfg = {
        .kind = "bocpd", .alpha = 0.05, .warmup = 30, .threshold = 0.999,
        .max_series = 100, .holdoff = 0,
    };
    cfg.bocpd.hazard = 0.004;
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
        double s = mesh_detect_update (d, "s", 100 + rng_gauss (&r), (int64_t) i * STEP_MS, NULL);
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
        mesh_detect_update (d, "s", 100 + rng_gauss (&r), (int64_t) i * STEP_MS, NULL);
    int first = -1, late = 0;
    for (int i = 1000, j = 0; j < 200; j++, i++) {
        double s = mesh_detect_update (d, "s", 108 + rng_gauss (&r), (int64_t) i * STEP_MS, NULL);
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
        mesh_detect_update (d, "s", 100 + rng_gauss (&r), (int64_t) i * STEP_MS, NULL);
    int first = -1;
    for (int i = 1000, j = 0; j < 20 && first < 0; j++, i++) {
        double s = mesh_detect_update (d, "s", 100 + 10 * rng_gauss (&r), (int64_t) i * STEP_MS,
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
        double s = mesh_detect_update (d, "s", 42, (int64_t) i * STEP_MS, &info);
        if (s != 0)
            fail_msg ("point %d scored %.17g", i, s);
        assert_true (isfinite (info.mean) && isfinite (info.stddev) && isfinite (info.z));
    }
    double s = mesh_detect_update (d, "s", 43, 3000LL * STEP_MS, &info);
    assert_true (mesh_detect_is_anomaly (d, s));
    mesh_detect_destroy (&d);
}

//  NaN and infinities score 0 and change nothing: the scores of the finite
//  points are the same with and without them.
static void
test_non_finite_changes_nothing (void **state)
{
    mesh_detector_config_t cfg = config ();
    mesh_detect_t *a = mesh_detect_new (&cfg), *b = mesh_detect_new (&cfg);
    rng_t ra = { 6 }, rb = { 6 };
    for (int i = 0; i < 1500; i++) {
        double va = 100 + rng_gauss (&ra), vb = 100 + rng_gauss (&rb);
        if (i == 1200)
            va = vb = 500;
        if (i % 5 == 0) {
            assert_true (mesh_detect_update (b, "s", NAN, 0, NULL) == 0);
            assert_true (mesh_detect_update (b, "s", i % 2 ? INFINITY : -INFINITY, 0, NULL) == 0);
        }
        double sa = mesh_detect_update (a, "s", va, (int64_t) i * STEP_MS, NULL);
        double sb = mesh_detect_update (b, "s", vb, (int64_t) i * STEP_MS, NULL);
        assert_true (sa == sb);
    }
    mesh_detect_destroy (&a);
    mesh_detect_destroy (&b);
}

//  Extreme values: every score and every baseline figure stays finite, in range.
static void
test_extreme_values_stay_finite (void **state)
{
    static const double values[] = { 1e300, -1e300, 1.7e308, -1.7e308, 5e-324, 0, 1e-300,
                                     42, 1e300, 1e300, -1.7e308 };
    mesh_detector_config_t cfg = config ();
    cfg.warmup = 2;
    mesh_detect_t *d = mesh_detect_new (&cfg);
    rng_t r = { 8 };
    mesh_detect_info_t info;
    for (int i = 0; i < 4000; i++) {
        double v = i % 3 == 0 ? values[(i / 3) % (sizeof values / sizeof values[0])]
                              : rng_gauss (&r) * pow (10, (double) (i % 17) - 8);
        double s = mesh_detect_update (d, "s", v, (int64_t) i * STEP_MS, &info);
        assert_true (s >= 0 && s <= 1);
        assert_true (isfinite (info.mean) && isfinite (info.stddev) && isfinite (info.z));
    }
    //  Only huge values, of both signs.
    for (int i = 0; i < 500; i++) {
        double s = mesh_detect_update (d, "huge", i % 2 ? 1.7e308 : -1.7e308, 0, &info);
        assert_true (s >= 0 && s <= 1);
        assert_true (isfinite (info.mean) && isfinite (info.stddev));
    }
    mesh_detect_destroy (&d);
}

static void
test_same_input_same_scores (void **state)
{
    mesh_detector_config_t cfg = config ();
    cfg.max_series = 8;                 //  eviction included
    mesh_detect_t *a = mesh_detect_new (&cfg), *b = mesh_detect_new (&cfg);
    rng_t r = { 9 };
    char series[16];
    for (int i = 0; i < 20000; i++) {
        double v = 100 + rng_gauss (&r) + (i % 997 == 0 ? 50 : 0);
        snprintf (series, sizeof series, "s%d", (int) (rng_next (&r) % 12));
        assert_true (mesh_detect_update (a, series, v, i, NULL)
                     == mesh_detect_update (b, series, v, i, NULL));
    }
    mesh_detect_destroy (&a);
    mesh_detect_destroy (&b);
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

//  Load the YAML TEXT with the config loader (from a private temporary
//  directory, as the loader wants); the problems go to *OUT_P.
static int
load (const char *text, mesh_config_t **cfg_p, char **out_p)
{
    char dir[] = "/tmp/test_bocpd.XXXXXX", path[64];
    assert_non_null (mkdtemp (dir));
    snprintf (path, sizeof path, "%s/c.yaml", dir);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    assert_int_equal (fputs (text, file) >= 0, 1);
    fclose (file);
    size_t size;
    FILE *err = open_memstream (out_p, &size);
    int problems = mesh_config_load (path, cfg_p, err);
    fclose (err);
    unlink (path);
    rmdir (dir);
    return problems;
}

#define S_BASE \
    "kafka: {brokers: embedded}\n" \
    "backends: {b: {kind: scripted, file: r.jsonl}}\n" \
    "actions: {esc: {kind: log}}\n" \
    "agents:\n" \
    "  - name: a\n" \
    "    topics: [m]\n" \
    "    fields: {key: [host]}\n" \
    "    reason: {backend: b}\n" \
    "    actions: [esc]\n" \
    "    fallback: esc\n"

static void
test_config_loader (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    //  Defaults.
    if (load (S_BASE "    detector: {kind: bocpd}\n", &cfg, &out))
        fail_msg ("%s", out);
    const mesh_detector_config_t *det = &cfg->agents[0].detector;
    assert_string_equal (det->kind, "bocpd");
    assert_true (det->bocpd.hazard == 0.001);
    assert_int_equal (det->bocpd.hypotheses, 12);
    mesh_config_destroy (&cfg);
    free (out);
    //  Given keys.
    assert_int_equal (load (S_BASE "    detector: {kind: bocpd, bocpd: {hazard: 0.01, "
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
    assert_int_equal (load (S_BASE "    detector: {kind: bocpd, bocpd: {hazard: 0, "
                            "hypotheses: 100, prior: 2}}\n", &cfg, &out), 3);
    assert_null (cfg);
    assert_non_null (strstr (out, "detector.bocpd.hazard: must be in (0,0.5], got 0"));
    assert_non_null (strstr (out, "detector.bocpd.hypotheses: must be in [2,24], got 100"));
    assert_non_null (strstr (out, "prior"));
    free (out);
    assert_int_equal (load (S_BASE "    detector: {kind: bocpd, bocpd: {hazard: 0.9}}\n",
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
