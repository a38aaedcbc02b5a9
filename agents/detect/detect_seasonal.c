/*  detect_seasonal - stage 2: a seasonal baseline (kind seasonal).
 *  Data path: event -> [detect] -> incident -> reason -> gate -> act -> record.
 *
 *  Real metrics follow the clock: traffic at 3 am is not traffic at 3 pm.  An
 *  EWMA lags such a cycle and counts the lag as noise (docs/detection.md: with a
 *  cycle of 5 sigma it missed a quarter of the spikes).  This family is additive
 *  Holt-Winters with the season held in bins:
 *
 *      expected = level + offset[phase]        residual r = x - expected
 *
 *  The phase is the position in the cycle, cut into `seasonal.bins` bins: from
 *  the event time (period_s seconds, a day by default), or from the point count
 *  when `seasonal.period` (points) is set.  `level` is the deseasonalised level,
 *  an EWMA with detector.alpha; each bin's offset is an EWMA of x - level over
 *  the visits to that bin, with a weight chosen so that one whole cycle weighs
 *  `seasonal.alpha` (per visit alpha divided by the visits a bin gets per cycle,
 *  itself measured as the average run of consecutive points in one bin).  Until a
 *  bin has been visited in an earlier cycle its offset is unknown and counts as 0.
 *  The residual's spread is an EWMA of r^2 with a quarter of detector.alpha;
 *  z = r / spread and score = erf (|z| / sqrt 2), as in the EWMA, and points at
 *  or above the threshold are learned with half the weight.
 *
 *  Memory: 16 bytes per bin (768 bytes at the default 48) plus a few counters.
 */
#include "detect.h"
#include "log.h"

#include <math.h>

#define S_SLOW            0.25
#define S_ANOMALY_DAMPING 0.5
#define S_STDDEV_FLOOR    1e-9
#define S_Z_MAX           1e12

typedef struct {
    double offset;
    uint32_t visits;                    //  points folded into offset
    uint32_t first_cycle;               //  the cycle of its first visit
} s_bin_t;

typedef struct {
    double level, var;
    double run_mean;                    //  average consecutive points per bin visit
    uint32_t run;                       //  points in the current run
    int32_t last_bin;                   //  -1 before the first point
    uint32_t cycles;                    //  cycles that began since the first point
    int64_t last_cycle;
    s_bin_t bins[];
} s_state_t;

static int
s_check (const mesh_detector_config_t *cfg)
{
    if (!(cfg->alpha > 0 && cfg->alpha <= 1)) {
        mesh_err ("detect: alpha %g is out of range, expected 0 < alpha <= 1", cfg->alpha);
        return -1;
    }
    if (cfg->seasonal.bins < 2 || cfg->seasonal.bins > 1024) {
        mesh_err ("detect: seasonal.bins %d is out of range, expected 2..1024",
                  cfg->seasonal.bins);
        return -1;
    }
    if (cfg->seasonal.period < 0 || (cfg->seasonal.period == 0 && cfg->seasonal.period_s < 2)) {
        mesh_err ("detect: seasonal needs period_s >= 2 or period > 0 (got %d and %d)",
                  cfg->seasonal.period_s, cfg->seasonal.period);
        return -1;
    }
    if (!(cfg->seasonal.alpha > 0 && cfg->seasonal.alpha <= 1)) {
        mesh_err ("detect: seasonal.alpha %g is out of range, expected 0 < alpha <= 1",
                  cfg->seasonal.alpha);
        return -1;
    }
    return 0;
}

static size_t
s_state_size (const mesh_detector_config_t *cfg)
{
    return sizeof (s_state_t) + (size_t) cfg->seasonal.bins * sizeof (s_bin_t);
}

static double
s_update (const mesh_detector_config_t *cfg, void *state_, uint64_t n_, double value,
          int64_t ts_ms, mesh_detect_baseline_t *base)
{
    s_state_t *state = state_;
    int bins = cfg->seasonal.bins;
    //  Which cycle and which bin of it.
    int64_t cycle, pos, len;
    if (cfg->seasonal.period > 0 || ts_ms < 0) {
        len = cfg->seasonal.period > 0 ? cfg->seasonal.period : 1;
        cycle = (int64_t) ((n_ - 1) / (uint64_t) len);
        pos = (int64_t) ((n_ - 1) % (uint64_t) len);
    }
    else {
        len = (int64_t) cfg->seasonal.period_s * 1000;
        cycle = ts_ms / len;
        pos = ts_ms % len;
    }
    int bin = (int) (pos * bins / len);
    if (n_ == 1) {
        state->last_bin = -1;
        state->last_cycle = cycle;
        state->level = value;
    }
    if (cycle != state->last_cycle) {
        state->cycles++;
        state->last_cycle = cycle;
    }
    if (bin == state->last_bin)
        state->run++;
    else {
        if (state->last_bin >= 0)
            state->run_mean = state->run_mean > 0
                              ? state->run_mean + 0.1 * (state->run - state->run_mean)
                              : state->run;
        state->run = 1;
        state->last_bin = bin;
    }

    s_bin_t *b = &state->bins[bin];
    bool known = b->visits > 0 && b->first_cycle != state->cycles;
    double offset = known ? b->offset : 0;
    double expected = state->level + offset;
    double r = value - expected;
    double var = state->var;
    double sd = fmax (sqrt (var), S_STDDEV_FLOOR * fmax (1.0, fabs (expected)));
    double z = 0, score = 0;
    if (n_ > 2) {
        z = r / sd;
        if (!(fabs (z) <= S_Z_MAX))
            z = copysign (S_Z_MAX, r);
        score = mesh_detect_z_score (z);
        base->surprise = mesh_detect_z_surprise (z);
    }
    base->mean = expected;
    base->stddev = sqrt (var);
    base->z = z;

    //  Learn: the level from the deseasonalised value, the bin's offset from the
    //  value less the level, the spread from the residual.
    bool warm = n_ > (uint64_t) (cfg->warmup < 2 ? 2 : cfg->warmup);
    double damp = warm && score >= cfg->threshold ? S_ANOMALY_DAMPING : 1;
    double n = (double) n_;
    double a = fmax (cfg->alpha, 1.0 / n) * damp;
    double av = fmax (cfg->alpha * S_SLOW, 1.0 / n) * damp;
    double level = state->level + a * (value - offset - state->level);
    double per_visit = cfg->seasonal.alpha / fmax (1.0, state->run_mean);
    double ab = fmax (per_visit, 1.0 / (b->visits + 1.0)) * damp;
    double new_offset = b->offset + ab * (value - state->level - b->offset);
    double new_var = (1 - av) * (var + av * r * r);
    if (isfinite (level) && isfinite (new_offset) && isfinite (new_var)) {
        state->level = level;
        b->offset = new_offset;
        state->var = new_var;
    }
    else {
        state->level = value;
        b->offset = 0;
        state->var = 0;
    }
    if (b->visits == 0)
        b->first_cycle = state->cycles;
    if (b->visits < UINT32_MAX)
        b->visits++;
    return score;
}

const mesh_detect_family_t mesh_detect_seasonal = {
    .name = "seasonal", .check = s_check, .state_size = s_state_size, .update = s_update
};
