/*  detect_knn - stage 2: k-nearest-neighbour novelty of recent patterns (kind knn).
 *  Data path: event -> [detect] -> incident -> reason -> gate -> act -> record.
 *
 *  The learned family, after KNN-CAD (Burnaev and Ishimtsev, "Conformalized
 *  density- and distance-based anomaly detection in time-series data", 2016) and
 *  the novelty view of ARTime: a point is anomalous when the *pattern* it ends -
 *  the last `knn.window` values - is unlike every pattern the series has shown
 *  before, whatever the value itself.  A spike density that doubles, a daily
 *  bump that does not come, a flat line where there was noise: none of these is
 *  an outlier value, all of them are new patterns.
 *
 *  Per series:
 *  - a robust scale: the values are centred on a slow EWMA of the values and
 *    divided by a slow EWMA of the absolute deviation from it (weights
 *    detector.alpha / 10), so patterns compare in the series' own units and a
 *    move of the level is itself a new pattern until it is remembered;
 *  - a memory of `knn.memory` patterns (floats): every pattern is offered to it,
 *    and it keeps a uniform sample of all the patterns offered so far (reservoir
 *    sampling), so it spans the whole history in bounded memory;
 *  - the nonconformity of a pattern: the root mean square distance to its
 *    `knn.k` nearest remembered patterns;
 *  - a calibration of that distance: an EWMA of its mean and variance (weight
 *    detector.alpha / 4).  z = (d - mean) / stddev and score =
 *    erf (max (z, 0) / sqrt 2): only more novel than usual is anomalous, and the
 *    score means what the z-score families' does, on any stream.  (The logarithm
 *    of d calibrated worse: 27.5 against 34.3 on NAB, and it let a new pattern
 *    hide among the spread of ordinary ones.)
 *
 *  Memory: 4 x window x (memory + 2) bytes plus a few counters: 4.2 KB at the
 *  defaults (8 x 128).  Cost: memory x window multiply-adds per point.
 */
#include "detect.h"
#include "log.h"

#include <math.h>
#include <string.h>

#define S_CENTER_SLOW     0.1           //  the scale's weight is alpha times this
#define S_CAL_SLOW        0.25          //  the calibration's weight is alpha times this
#define S_SCALE_FLOOR     1e-9
#define S_Z_MAX           1e12

typedef struct {
    double center, scale;
    double dmean, dvar;                 //  calibration of the distance
    uint32_t cal_n;                     //  distances folded into the calibration
    uint32_t stored;                    //  patterns in memory
    uint64_t offered;                   //  patterns offered to the memory
    uint32_t head, len;                 //  ring of recent values
    float data[];                       //  recent[window], memory[memory][window]
} s_state_t;

static int
s_check (const mesh_detector_config_t *cfg)
{
    if (!(cfg->alpha > 0 && cfg->alpha <= 1)) {
        mesh_err ("detect: alpha %g is out of range, expected 0 < alpha <= 1", cfg->alpha);
        return -1;
    }
    if (cfg->knn.window < 2 || cfg->knn.window > 64) {
        mesh_err ("detect: knn.window %d is out of range, expected 2..64", cfg->knn.window);
        return -1;
    }
    if (cfg->knn.memory < 8 || cfg->knn.memory > 4096) {
        mesh_err ("detect: knn.memory %d is out of range, expected 8..4096", cfg->knn.memory);
        return -1;
    }
    if (cfg->knn.k < 1 || cfg->knn.k > cfg->knn.memory) {
        mesh_err ("detect: knn.k %d is out of range, expected 1..knn.memory (%d)", cfg->knn.k,
                  cfg->knn.memory);
        return -1;
    }
    return 0;
}

static size_t
s_state_size (const mesh_detector_config_t *cfg)
{
    return sizeof (s_state_t)
           + (size_t) cfg->knn.window * ((size_t) cfg->knn.memory + 1) * sizeof (float);
}

static double
s_update (const mesh_detector_config_t *cfg, void *state_, uint64_t n_, double value,
          int64_t ts_ms, mesh_detect_baseline_t *base)
{
    s_state_t *state = state_;
    uint32_t window = (uint32_t) cfg->knn.window;
    uint32_t memory = (uint32_t) cfg->knn.memory;
    uint32_t k = (uint32_t) cfg->knn.k;
    float *recent = state->data;
    float *mem = state->data + window;
    double n = (double) n_;

    //  Scale first, so the pattern is in the current units.
    if (n_ == 1)
        state->center = value;
    double a = fmax (cfg->alpha * S_CENTER_SLOW, 1.0 / n);
    double dev = fabs (value - state->center);
    state->scale = n_ == 1 ? 0 : state->scale + a * (dev - state->scale);
    state->center += a * (value - state->center);
    if (!isfinite (state->center) || !isfinite (state->scale)) {
        state->center = value;
        state->scale = 0;
    }
    double scale = fmax (state->scale, S_SCALE_FLOOR * fmax (1.0, fabs (state->center)));

    //  Recent raw values (as floats relative to nothing: the pattern is built below).
    recent[state->head] = (float) value;
    state->head = (state->head + 1) % window;
    if (state->len < window)
        state->len++;
    base->mean = state->center;
    base->stddev = scale;
    if (state->len < window)
        return 0;

    float pattern[64];
    for (uint32_t i = 0; i < window; i++) {
        double v = ((double) recent[(state->head + i) % window] - state->center) / scale;
        pattern[i] = (float) fmax (-1e6, fmin (1e6, v));
    }

    double score = 0;
    if (state->stored >= k) {
        double best[4096];
        uint32_t nbest = 0;
        for (uint32_t j = 0; j < state->stored; j++) {
            const float *p = mem + (size_t) j * window;
            float sum = 0;
            for (uint32_t i = 0; i < window; i++) {
                float d = pattern[i] - p[i];
                sum += d * d;
            }
            double d2 = sum;
            if (nbest < k)
                best[nbest++] = d2;
            else
            if (d2 >= best[k - 1])
                continue;
            else
                best[k - 1] = d2;
            for (uint32_t i = nbest - 1; i > 0 && best[i] < best[i - 1]; i--) {
                double t = best[i];
                best[i] = best[i - 1];
                best[i - 1] = t;
            }
        }
        double sum = 0;
        for (uint32_t i = 0; i < k; i++)
            sum += sqrt (best[i] / window);
        double d = sum / k;
        if (state->cal_n >= 2) {
            double sd = sqrt (state->dvar);
            double z = sd > 0 ? (d - state->dmean) / sd : (d > state->dmean ? S_Z_MAX : 0);
            if (!(z <= S_Z_MAX))
                z = S_Z_MAX;
            base->z = z;
            score = z > 0 ? mesh_detect_z_score (z) : 0;
            base->surprise = z > 0 ? mesh_detect_z_surprise (z) : 0;
        }
        state->cal_n++;
        double ac = fmax (cfg->alpha * S_CAL_SLOW, 1.0 / state->cal_n);
        double diff = d - state->dmean;
        if (state->cal_n == 1)
            state->dmean = d;
        else {
            state->dmean += ac * diff;
            state->dvar = (1 - ac) * (state->dvar + ac * diff * diff);
        }
    }
    {
        //  Reservoir sampling (Vitter's algorithm R): every pattern offered so far
        //  has the same chance to be in memory, so "never seen" means never in the
        //  whole history, not just lately.  The draw is a hash of the count, so a
        //  replay of the same stream gives the same scores.
        state->offered++;
        uint64_t slot = state->stored;
        if (state->stored < memory)
            state->stored++;
        else {
            uint64_t z = state->offered * 0x9E3779B97F4A7C15ull;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            slot = (z ^ (z >> 31)) % state->offered;
        }
        if (slot < memory)
            memcpy (mem + slot * window, pattern, window * sizeof (float));
    }
    return score;
}

const mesh_detect_family_t mesh_detect_knn = {
    .name = "knn", .check = s_check, .state_size = s_state_size, .update = s_update
};
