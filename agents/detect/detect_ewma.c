/*  detect_ewma - stage 2: the EWMA z-score detector family (detector.kind ewma).
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
 *  weight.
 *
 *  Robustness choices, each of which a unit test pins down:
 *  - A constant series has variance 0; the deviation is floored at a tiny fraction
 *    of the mean's magnitude, so the same value again scores 0 and any real change
 *    scores 1 instead of dividing by zero.  z is clamped so it is always finite
 *    (it goes into JSON, where inf and NaN do not exist).
 *  - A point scored as anomalous is folded in with a damped weight, so one spike
 *    does not drag the mean and inflate the variance for the next hundred points;
 *    the weight is not zero, so a lasting level shift is still learned.
 *
 *  detect.c does the rest (warm-up, NaN, the table, holdoff).  Not thread-safe:
 *  one consumer thread owns a detector.
 */
#include "detect.h"
#include "log.h"

#include <math.h>

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
} s_state_t;

static int
s_check (const mesh_detector_config_t *cfg)
{
    if (!(cfg->alpha > 0 && cfg->alpha <= 1)) {
        mesh_err ("detect: alpha %g is out of range, expected 0 < alpha <= 1", cfg->alpha);
        return -1;
    }
    return 0;
}

static size_t
s_state_size (const mesh_detector_config_t *cfg)
{
    return sizeof (s_state_t);
}

static double
s_update (const mesh_detector_config_t *cfg, void *state_, uint64_t n_, double value,
          int64_t ts_ms, mesh_detect_baseline_t *base)
{
    s_state_t *state = state_;
    double mean = state->mean, var = state->var;

    //  Score against the baseline of the points before this one.
    double z = 0, score = 0;
    if (n_ > 1) {
        double floor = S_STDDEV_FLOOR * fmax (1.0, fabs (mean));
        double sd = fmax (sqrt (var), floor);
        z = (value - mean) / sd;
        if (!(fabs (z) <= S_Z_MAX))             //  also catches an overflow to inf
            z = copysign (S_Z_MAX, value - mean);
        score = mesh_detect_z_score (z);
        base->surprise = mesh_detect_z_surprise (z);
    }

    //  Then fold the point in (West 1979, exponentially weighted form), with the
    //  spread averaged more slowly than the level.
    double n = (double) n_;
    double a = fmax (cfg->alpha, 1.0 / n);
    double av = fmax (cfg->alpha * S_VARIANCE_SLOWDOWN, 1.0 / n);
    bool warm = n_ > (uint64_t) (cfg->warmup < 2 ? 2 : cfg->warmup);
    if (warm && score >= cfg->threshold) {
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
    base->mean = mean;
    base->stddev = sqrt (var);
    base->z = z;
    return score;
}

const mesh_detect_family_t mesh_detect_ewma = {
    .name = "ewma", .check = s_check, .state_size = s_state_size, .update = s_update
};
