/*  detect_props.h - what every detector family's unit test checks the same way,
 *  included by tests/unit/test_detect*.c (one translation unit each, so static).
 *
 *  A seeded splitmix64 and Box-Muller for synthetic streams, and the properties
 *  that hold for any family whatever its scores: non-finite points change nothing,
 *  extreme values keep every figure finite, the same input gives the same scores,
 *  and the config loader run on a YAML text.  Each takes the family's config and,
 *  where a stream is needed, a generator of its usual values.
 */
#ifndef MESH_TEST_DETECT_PROPS_H
#define MESH_TEST_DETECT_PROPS_H

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

static inline uint64_t
rng_next (rng_t *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double
rng_gauss (rng_t *r)
{
    double u1 = 1.0 - (double) (rng_next (r) >> 11) * 0x1.0p-53;
    double u2 = (double) (rng_next (r) >> 11) * 0x1.0p-53;
    return sqrt (-2.0 * log (u1)) * cos (2 * M_PI * u2);
}

#define PROPS_STEP_MS 60000             //  one minute between points

//  The usual value of point I of a stream, drawing its noise from R.
typedef double (props_gen_fn) (rng_t *r, int i);

//  NaN and infinities score 0 and change nothing: the scores of the finite points
//  are the same with and without them.
static inline void
props_non_finite_changes_nothing (const mesh_detector_config_t *cfg, props_gen_fn *gen)
{
    mesh_detect_t *a = mesh_detect_new (cfg), *b = mesh_detect_new (cfg);
    assert_non_null (a);
    assert_non_null (b);
    rng_t ra = { 6 }, rb = { 6 };
    for (int i = 0; i < 1500; i++) {
        double va = gen (&ra, i), vb = gen (&rb, i);
        if (i == 1200)
            va = vb = 500;
        if (i % 5 == 0) {
            assert_true (mesh_detect_update (b, "s", NAN, 0, NULL) == 0);
            assert_true (mesh_detect_update (b, "s", i % 2 ? INFINITY : -INFINITY, 0, NULL) == 0);
        }
        double sa = mesh_detect_update (a, "s", va, (int64_t) i * PROPS_STEP_MS, NULL);
        double sb = mesh_detect_update (b, "s", vb, (int64_t) i * PROPS_STEP_MS, NULL);
        assert_true (sa == sb);
    }
    mesh_detect_destroy (&a);
    mesh_detect_destroy (&b);
}

//  Extreme values: every score and every baseline figure stays finite, in range.
static inline void
props_extreme_values_stay_finite (const mesh_detector_config_t *family)
{
    static const double values[] = { 1e300, -1e300, 1.7e308, -1.7e308, 5e-324, 0, 1e-300,
                                     42, 1e300, 1e300, -1.7e308 };
    mesh_detector_config_t cfg = *family;
    cfg.warmup = 2;
    mesh_detect_t *d = mesh_detect_new (&cfg);
    assert_non_null (d);
    rng_t r = { 8 };
    mesh_detect_info_t info;
    for (int i = 0; i < 4000; i++) {
        double v = i % 3 == 0 ? values[(i / 3) % (sizeof values / sizeof values[0])]
                              : rng_gauss (&r) * pow (10, (double) (i % 17) - 8);
        double s = mesh_detect_update (d, "s", v, (int64_t) i * PROPS_STEP_MS, &info);
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

//  Two detectors fed the same points over 12 series, with eviction (8 kept), give
//  the same scores.
static inline void
props_same_input_same_scores (const mesh_detector_config_t *family, props_gen_fn *gen)
{
    mesh_detector_config_t cfg = *family;
    cfg.max_series = 8;
    mesh_detect_t *a = mesh_detect_new (&cfg), *b = mesh_detect_new (&cfg);
    assert_non_null (a);
    assert_non_null (b);
    rng_t r = { 9 };
    char series[16];
    for (int i = 0; i < 20000; i++) {
        double v = gen (&r, i) + (i % 997 == 0 ? 50 : 0);
        snprintf (series, sizeof series, "s%d", (int) (rng_next (&r) % 12));
        assert_true (mesh_detect_update (a, series, v, i, NULL)
                     == mesh_detect_update (b, series, v, i, NULL));
    }
    mesh_detect_destroy (&a);
    mesh_detect_destroy (&b);
}

//  Load the YAML TEXT with the config loader (from a private temporary directory,
//  as the loader wants); the problems go to *OUT_P.  Returns the loader's count.
static inline int
props_load (const char *text, mesh_config_t **cfg_p, char **out_p)
{
    char dir[] = "/tmp/test_detect_props.XXXXXX", path[64];
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

//  An agent's config around a detector: PROPS_BASE "    detector: {...}\n".
#define PROPS_BASE \
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

#endif
