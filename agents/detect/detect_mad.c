/*  detect_mad - stage 2: the robust windowed median / MAD detector (kind mad).
 *  Data path: event -> [detect] -> incident -> reason -> gate -> act -> record.
 *
 *  Per series we keep the last `mad.window` values.  A point is scored against
 *  the median of those values (not including itself), its spread measured by the
 *  median absolute deviation scaled to a standard deviation (1.4826 MAD, exact for
 *  Gaussian noise): z = (x - median) / (1.4826 MAD), score = erf (|z| / sqrt 2), so
 *  the score means what the EWMA's does.  Then the point enters the window.
 *
 *  Why beside the EWMA: a mean and a variance are dragged by the very outliers we
 *  look for (one spike inflates the EWMA's variance for a long time), while the
 *  median and the MAD ignore up to half the window being outliers.  A level shift
 *  is learned exactly when it fills half the window, then stops alarming.
 *
 *  Counts and quantised metrics often have a MAD of 0 (more than half the window
 *  holds one value).  The spread then falls back to the mean absolute deviation
 *  from the median (times 1.2533, its Gaussian scale), and if that is 0 too (a
 *  constant window), to a tiny fraction of the median's magnitude, as in the EWMA:
 *  the same value again scores 0, any other scores 1.
 *
 *  Memory: 8 bytes per window slot (512 bytes at the default 64) plus a few
 *  counters.  Cost: two selections over the window per point, O(window).
 */
#include "detect.h"
#include "log.h"

#include <math.h>
#include <string.h>

#define S_MAD_SCALE       1.4826        //  1 / Phi^-1 (3/4)
#define S_MEANAD_SCALE    1.2533        //  sqrt (pi / 2)
#define S_STDDEV_FLOOR    1e-9
#define S_Z_MAX           1e12
#define S_WINDOW_MAX      1023

typedef struct {
    uint32_t head, len;
    double ring[];                      //  mad.window values
} s_state_t;

static int
s_check (const mesh_detector_config_t *cfg)
{
    if (cfg->mad.window < 5 || cfg->mad.window > S_WINDOW_MAX) {
        mesh_err ("detect: mad.window %d is out of range, expected 5..%d", cfg->mad.window,
                  S_WINDOW_MAX);
        return -1;
    }
    return 0;
}

static size_t
s_state_size (const mesh_detector_config_t *cfg)
{
    return sizeof (s_state_t) + (size_t) cfg->mad.window * sizeof (double);
}

static double
s_update (const mesh_detector_config_t *cfg, void *state_, uint64_t n, double value,
          int64_t ts_ms, mesh_detect_baseline_t *base)
{
    s_state_t *state = state_;
    uint32_t window = (uint32_t) cfg->mad.window;
    double score = 0;
    if (state->len >= 3) {
        double scratch[S_WINDOW_MAX];
        memcpy (scratch, state->ring, state->len * sizeof (double));
        double median = mesh_detect_median (scratch, state->len);
        double sum = 0;
        for (uint32_t i = 0; i < state->len; i++) {
            scratch[i] = fabs (state->ring[i] - median);
            sum += scratch[i];
        }
        double spread = S_MAD_SCALE * mesh_detect_median (scratch, state->len);
        if (!(spread > 0))
            spread = S_MEANAD_SCALE * sum / state->len;
        spread = fmax (spread, S_STDDEV_FLOOR * fmax (1.0, fabs (median)));
        double z = (value - median) / spread;
        if (!(fabs (z) <= S_Z_MAX))
            z = copysign (S_Z_MAX, value - median);
        score = mesh_detect_z_score (z);
        base->surprise = mesh_detect_z_surprise (z);
        base->mean = median;
        base->stddev = spread;
        base->z = z;
    }
    state->ring[state->head] = value;
    state->head = (state->head + 1) % window;
    if (state->len < window)
        state->len++;
    return score;
}

const mesh_detect_family_t mesh_detect_mad = {
    .name = "mad", .check = s_check, .state_size = s_state_size, .update = s_update
};
