/*  detect_ewma - stage 2: the EWMA z-score detector.
 *  Data path: event -> [detect] -> incident -> reason -> gate -> act -> record.
 *
 *  Per series we keep an exponentially weighted mean and variance (West's
 *  incremental form), score each point by how far it lies from that baseline in
 *  standard deviations, and only then fold the point into the baseline, so a point
 *  is never compared with itself.  The score is the two-sided normal probability
 *  mass inside |z|:  score = erf (|z| / sqrt 2) = 1 - 2 (1 - Phi (|z|)).  It lies in
 *  [0,1] and means the same on every stream whatever its units: 0.99 is |z| = 2.58,
 *  0.999 is |z| = 3.29.
 *
 *  The mean's weight is alpha; the variance's is alpha / 4.  A variance averaged
 *  over as few points as the mean (about 2/alpha = 40) is itself so noisy that
 *  |z| has heavy tails: on plain Gaussian noise a 0.999 threshold then fires two to
 *  three times as often as it should.  The slower spread halves the false alarms
 *  at equal threshold on the demo's stream, and recall does not suffer (measured
 *  in docs/detection.md).
 *
 *  Start-up: each weight is at least 1/n, so the first points build the exact
 *  sample mean and variance and the EWMA takes over once 1/n falls below the
 *  weight; the first `warmup` points (never fewer than two) score 0.
 *
 *  Robustness choices, each of which a unit test pins down:
 *  - A constant series has variance 0; the deviation is floored at a tiny fraction
 *    of the mean's magnitude, so the same value again scores 0 and any real change
 *    scores 1 instead of dividing by zero.  z is clamped so it is always finite
 *    (it goes into JSON, where inf and NaN do not exist).
 *  - A point scored as anomalous is folded in with a damped weight, so one spike
 *    does not drag the mean and inflate the variance for the next hundred points;
 *    the weight is not zero, so a lasting level shift is still learned.
 *  - NaN and infinite values score 0 and leave the state untouched.
 *
 *  State per series lives in a series_table (bounded, LRU); see docs/detection.md
 *  for the memory it costs.  Not thread-safe: one consumer thread owns a detector.
 */
#include "detect.h"
#include "log.h"
#include "series_table.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

//  The variance's weight is alpha times this (see the top of the file).
#define S_VARIANCE_SLOWDOWN 0.25
//  Weight multiplier for a point that scored at or above the threshold.
#define S_ANOMALY_DAMPING 0.5
//  Relative floor of the standard deviation (guards a constant series).
#define S_STDDEV_FLOOR    1e-9
//  |z| is clamped here so that it is always a finite JSON number.
#define S_Z_MAX           1e12

typedef struct {
    double mean, var;                   //  baseline over the points folded in so far
    uint64_t n;                         //  finite points seen
    uint32_t head;                      //  next slot to write in ring
    uint32_t len;                       //  valid entries in ring
    double ring[MESH_DETECT_WINDOW];
} s_series_t;

struct _mesh_detect_t {
    double alpha;
    uint64_t warmup;                    //  effective: at least 2
    double threshold;
    mesh_series_table_t *table;
};

mesh_detect_t *
mesh_detect_new (const mesh_detector_config_t *cfg)
{
    assert (cfg);
    if (!cfg->kind || strcmp (cfg->kind, "ewma") != 0) {
        mesh_err ("detect: unknown detector kind '%s', expected 'ewma'",
                  cfg->kind ? cfg->kind : "(none)");
        return NULL;
    }
    if (!(cfg->alpha > 0 && cfg->alpha <= 1)) {
        mesh_err ("detect: alpha %g is out of range, expected 0 < alpha <= 1", cfg->alpha);
        return NULL;
    }
    if (cfg->warmup < 0) {
        mesh_err ("detect: warmup %d is negative, expected a number of points >= 0",
                  cfg->warmup);
        return NULL;
    }
    if (!(cfg->threshold > 0 && cfg->threshold <= 1)) {
        mesh_err ("detect: threshold %g is out of range, expected 0 < threshold <= 1",
                  cfg->threshold);
        return NULL;
    }
    if (cfg->max_series == 0) {
        mesh_err ("detect: max_series must be at least 1");
        return NULL;
    }
    mesh_detect_t *self = calloc (1, sizeof *self);
    if (!self) {
        mesh_err ("detect: out of memory");
        return NULL;
    }
    self->alpha = cfg->alpha;
    self->warmup = cfg->warmup < 2 ? 2 : (uint64_t) cfg->warmup;
    self->threshold = cfg->threshold;
    self->table = mesh_series_table_new (cfg->max_series, sizeof (s_series_t));
    if (!self->table) {
        free (self);
        return NULL;
    }
    return self;
}

void
mesh_detect_destroy (mesh_detect_t **self_p)
{
    assert (self_p);
    mesh_detect_t *self = *self_p;
    if (!self)
        return;
    mesh_series_table_destroy (&self->table);
    free (self);
    *self_p = NULL;
}

//  Describe STATE (may be NULL) into INFO, window oldest first.
static void
s_fill_info (mesh_detect_info_t *info, const mesh_detect_t *self, const s_series_t *state,
             double mean, double var, double z, double score)
{
    memset (info, 0, sizeof *info);
    info->score = score;
    info->mean = mean;
    info->stddev = sqrt (var);
    info->z = z;
    if (!state)
        return;
    info->n = state->n;
    info->warm = state->n > self->warmup;
    info->window_len = (int) state->len;
    uint32_t first = (state->head + MESH_DETECT_WINDOW - state->len) % MESH_DETECT_WINDOW;
    for (uint32_t i = 0; i < state->len; i++)
        info->window[i] = state->ring[(first + i) % MESH_DETECT_WINDOW];
}

double
mesh_detect_update (mesh_detect_t *self, const char *series, double value, int64_t ts_ms,
                    mesh_detect_info_t *info)
{
    assert (self);
    assert (series);
    if (!isfinite (value)) {
        //  Not a measurement: report what we know, change nothing.
        if (info) {
            const s_series_t *state = mesh_series_table_lookup (self->table, series);
            s_fill_info (info, self, state, state ? state->mean : 0, state ? state->var : 0,
                         0, 0);
        }
        return 0;
    }
    s_series_t *state = mesh_series_table_touch (self->table, series, NULL);
    if (!state) {
        if (info)
            s_fill_info (info, self, NULL, 0, 0, 0, 0);
        return 0;
    }
    double mean = state->mean, var = state->var;
    state->n++;
    state->ring[state->head] = value;
    state->head = (state->head + 1) % MESH_DETECT_WINDOW;
    if (state->len < MESH_DETECT_WINDOW)
        state->len++;

    //  Score against the baseline of the points before this one.
    double z = 0, score = 0;
    bool anomalous = false;
    if (state->n > self->warmup) {
        double floor = S_STDDEV_FLOOR * fmax (1.0, fabs (mean));
        double sd = fmax (sqrt (var), floor);
        z = (value - mean) / sd;
        if (!(fabs (z) <= S_Z_MAX))             //  also catches an overflow to inf
            z = copysign (S_Z_MAX, value - mean);
        score = erf (fabs (z) / M_SQRT2);
        if (score > 1)
            score = 1;
        anomalous = score >= self->threshold;
    }

    //  Then fold the point in (West 1979, exponentially weighted form), with the
    //  spread averaged more slowly than the level.
    double n = (double) state->n;
    double a = fmax (self->alpha, 1.0 / n);
    double av = fmax (self->alpha * S_VARIANCE_SLOWDOWN, 1.0 / n);
    if (anomalous) {
        a *= S_ANOMALY_DAMPING;
        av *= S_ANOMALY_DAMPING;
    }
    double diff = value - mean;
    double new_mean = mean + a * diff;
    double new_var = (1 - av) * (var + av * diff * diff);
    if (isfinite (new_mean) && isfinite (new_var)) {
        state->mean = new_mean;
        state->var = new_var;
    }
    else {
        //  Values near DBL_MAX overflowed the arithmetic: restart the baseline here.
        state->mean = value;
        state->var = 0;
    }
    if (info)
        s_fill_info (info, self, state, mean, var, z, score);
    (void) ts_ms;
    return score;
}

bool
mesh_detect_is_anomaly (const mesh_detect_t *self, double score)
{
    assert (self);
    return score >= self->threshold;
}

size_t
mesh_detect_series (const mesh_detect_t *self)
{
    assert (self);
    return mesh_series_table_size (self->table);
}

uint64_t
mesh_detect_evictions (const mesh_detect_t *self)
{
    assert (self);
    return mesh_series_table_evictions (self->table);
}

const char *
mesh_detect_name (const mesh_detect_t *self)
{
    assert (self);
    return "ewma";
}
