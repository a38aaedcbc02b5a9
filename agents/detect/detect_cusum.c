/*  detect_cusum - stage 2: the two-sided CUSUM change-point detector (kind cusum).
 *  Data path: event -> [detect] -> incident -> reason -> gate -> act -> record.
 *
 *  Page's CUSUM accumulates small, persistent deviations that no single point
 *  shows: a drift of half a standard deviation per point is invisible to a
 *  z-score but adds up here.  Per series we keep an in-control baseline (mean and
 *  variance, exponentially weighted with a quarter of detector.alpha, so it
 *  remembers about 8/alpha points) and standardise each point against it,
 *  u = (x - mean) / stddev, clipped to [-4, 4] so that one spike (the z-score
 *  detectors' business) cannot carry the sums.  Then
 *
 *      S+ = max (0, S+ + u - k)        S- = max (0, S- - u - k)        S = max (S+, S-)
 *
 *  The score says how rarely an in-control series reaches S.  Siegmund's
 *  approximation gives the average run length of a one-sided CUSUM to reach b:
 *  ARL (b) = (exp (2 k b') - 2 k b' - 1) / (2 k^2) with b' = b + 1.166 (b'^2 for
 *  k = 0); two sides halve it, and score = 1 - 1 / ARL2 (S), floored at 0.  So a
 *  score of 0.9995 means "an in-control series gets this far once in 2,000
 *  points", the same meaning as the z-score families' 0.9995.
 *
 *  When S reaches the decision interval h, a change has been found: the sums
 *  restart and the baseline jumps to the recent level (a fast EWMA kept for the
 *  purpose), so a series that moved to a new level is in control there, and a
 *  second change can be found.  While S is above h / 2 the baseline does not
 *  learn, so a slow drift cannot hide itself by dragging the baseline along.
 *
 *  Memory: seven doubles per series.
 */
#include "detect.h"
#include "log.h"

#include <math.h>

#define S_CLIP            4.0
#define S_SLOW            0.25          //  the baseline's weight is alpha times this
#define S_FAST            0.2           //  weight of the recent level
#define S_STDDEV_FLOOR    1e-9

typedef struct {
    double mean, var;                   //  in-control baseline
    double recent;                      //  fast EWMA of the values
    double up, down;                    //  S+ and S-
} s_state_t;

static int
s_check (const mesh_detector_config_t *cfg)
{
    if (!(cfg->alpha > 0 && cfg->alpha <= 1)) {
        mesh_err ("detect: alpha %g is out of range, expected 0 < alpha <= 1", cfg->alpha);
        return -1;
    }
    if (!(cfg->cusum.k >= 0 && cfg->cusum.k <= 10)) {
        mesh_err ("detect: cusum.k %g is out of range, expected 0..10", cfg->cusum.k);
        return -1;
    }
    if (!(cfg->cusum.h > 0 && cfg->cusum.h <= 1000)) {
        mesh_err ("detect: cusum.h %g is out of range, expected 0 < h <= 1000", cfg->cusum.h);
        return -1;
    }
    return 0;
}

static size_t
s_state_size (const mesh_detector_config_t *cfg)
{
    return sizeof (s_state_t);
}

//  log10 of Siegmund's average run length of a two-sided CUSUM to reach B with
//  slack K; finite for every finite B.
static double
s_log_arl (double k, double b)
{
    double bb = b + 1.166;
    if (k < 1e-6)
        return log10 (bb * bb / 2);
    double x = 2 * k * bb;
    if (x > 30)                         //  exp (x) dominates
        return (x - log (4 * k * k)) / M_LN10;
    return log10 ((exp (x) - x - 1) / (4 * k * k));
}

static double
s_update (const mesh_detector_config_t *cfg, void *state_, uint64_t n_, double value,
          int64_t ts_ms, mesh_detect_baseline_t *base)
{
    s_state_t *state = state_;
    double k = cfg->cusum.k, h = cfg->cusum.h;
    double mean = state->mean, var = state->var;
    double sd = fmax (sqrt (var), S_STDDEV_FLOOR * fmax (1.0, fabs (mean)));
    double score = 0, u = 0;
    if (n_ > 2) {
        u = (value - mean) / sd;
        if (!(u <= S_CLIP))
            u = u != u ? 0 : S_CLIP;
        if (u < -S_CLIP)
            u = -S_CLIP;
        state->up = fmax (0, state->up + u - k);
        state->down = fmax (0, state->down - u - k);
        double s = fmax (state->up, state->down);
        double log_arl = s_log_arl (k, s);
        score = log_arl > 0 ? 1 - pow (10, -log_arl) : 0;
        base->surprise = fmax (0, log_arl);
        base->z = state->up >= state->down ? s : -s;
    }
    base->mean = mean;
    base->stddev = sqrt (var);
    state->recent = n_ == 1 ? value : state->recent + S_FAST * (value - state->recent);
    double s = fmax (state->up, state->down);
    if (s >= h) {
        //  A change: restart in control at the recent level.
        state->up = state->down = 0;
        state->mean = state->recent;
    }
    else
    if (s < h / 2 || n_ <= 2) {
        double n = (double) n_;
        double a = fmax (cfg->alpha * S_SLOW, 1.0 / n);
        double diff = value - mean;
        double new_mean = mean + a * diff;
        double new_var = (1 - a) * (var + a * diff * diff);
        if (isfinite (new_mean) && isfinite (new_var)) {
            state->mean = new_mean;
            state->var = new_var;
        }
        else {
            state->mean = value;
            state->var = 0;
        }
    }
    return score;
}

const mesh_detect_family_t mesh_detect_cusum = {
    .name = "cusum", .check = s_check, .state_size = s_state_size, .update = s_update
};
