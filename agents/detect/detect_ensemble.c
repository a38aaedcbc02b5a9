/*  detect_ensemble - stage 2: several views of a point, calibrated (kind ensemble).
 *  Data path: event -> [detect] -> incident -> reason -> gate -> act -> record.
 *
 *  Each family sees one kind of anomaly well and is blind to another.  The
 *  ensemble asks three questions of every point, each with its own state laid one
 *  after the other in the series' entry:
 *
 *  - range: is the value outside everything this series has ever shown?  The
 *    excess beyond the lowest or highest value seen, in tenths of that range.
 *    ("Spatial" anomalies in Numenta's detector; most labelled incidents in NAB
 *    are values a series never took before.)
 *  - seasonal (detect_seasonal.c): is the value wrong for its time of day?  Its
 *    level is an EWMA, so off the cycle it is the EWMA detector.
 *  - knn (detect_knn.c): is the pattern the point ends unlike any remembered?
 *
 *  Raw scores do not compare across streams: on a bursty stream a 6-sigma z is
 *  weekly routine.  So each view is calibrated on the series' own history: a
 *  histogram of its surprise (-log10 of its tail probability, in bins of 1/8
 *  decade) gives p = the share of earlier points at least as surprising, the point
 *  itself included (a conformal p-value, never below 1 / (n + 1)); beyond the
 *  highest surprise seen the tail is extended by a factor 10 per decade of excess.
 *  Points in warm-up are not counted.  Under an in-control (exchangeable) series,
 *  P(p <= a) <= a whatever the stream's distribution: the same meaning on every
 *  stream, and a natural warm-up (a young series cannot produce a small p).
 *
 *  The views are combined by a weighted Bonferroni bound, p = min_i (p_i / w_i)
 *  with weights summing to 1, score = 1 - p; so P(score >= 1 - a) <= a still holds
 *  under the null.  The weights encode which view is trusted: range 1, seasonal
 *  and knn 0.01 each (before normalising), i.e. a seasonal or pattern anomaly must
 *  be a hundred times less likely than a range break to count the same.  Measured
 *  on the NAB developer files (docs/detection.md): range alone 60.5, with seasonal
 *  and knn 69.9 (standard profile); equal weights 51; adding the EWMA, MAD and
 *  CUSUM families as further views lowered the score (their calibrated tails are
 *  full of routine bursts), so they are not members.
 *
 *  Memory: the members' states plus 3 x 520 bytes of histograms (about 6 KB at
 *  the defaults; docs/perf/detection.md has the measured figure).
 */
#include "detect.h"
#include "log.h"

#include <math.h>
#include <stdalign.h>
#include <stddef.h>

static const mesh_detect_family_t *const s_members[] = {
    &mesh_detect_seasonal, &mesh_detect_knn
};
#define S_MEMBERS (sizeof s_members / sizeof s_members[0])
#define S_VIEWS   (S_MEMBERS + 1)       //  the members, then range

//  Prior weights of the views (normalised in s_update): seasonal, knn, range.
static const double s_weights[S_VIEWS] = { 0.01, 0.01, 1.0 };

//  Range: the excess beyond the range seen, in units of a tenth of that range.
#define S_RANGE_UNIT      0.1

//  Calibration histogram of one view's surprise: bins of 1/8 decade up to 16.
#define S_BIN_WIDTH 0.125
#define S_BINS      128

typedef struct {
    float count[S_BINS];
    float total;
    float max;                          //  highest surprise counted
} s_calib_t;

typedef struct {
    s_calib_t calib[S_VIEWS];
    double lo, hi;                      //  range: lowest and highest value seen
} s_head_t;

static size_t
s_align (size_t size)
{
    return (size + alignof (max_align_t) - 1) / alignof (max_align_t) * alignof (max_align_t);
}

static int
s_check (const mesh_detector_config_t *cfg)
{
    for (size_t i = 0; i < S_MEMBERS; i++)
        if (s_members[i]->check (cfg))
            return -1;
    return 0;
}

static size_t
s_state_size (const mesh_detector_config_t *cfg)
{
    size_t size = s_align (sizeof (s_head_t));
    for (size_t i = 0; i < S_MEMBERS; i++)
        size += s_align (s_members[i]->state_size (cfg));
    return size;
}

static int
s_bin (double s)
{
    double pos = s / S_BIN_WIDTH;
    return pos >= S_BINS - 1 ? S_BINS - 1 : (int) pos;
}

//  log10 of the calibrated p-value of surprise S (>= 0), then S is counted.
static double
s_calibrate (s_calib_t *calib, double s)
{
    double log_p;
    if (s > calib->max)
        log_p = -log10 (calib->total + 1) - (calib->total > 0 ? s - calib->max : 0);
    else {
        int bin = s_bin (s);
        double frac = bin == S_BINS - 1 ? 0 : s / S_BIN_WIDTH - bin;
        double above = calib->count[bin] * (1 - frac);
        for (int i = bin + 1; i < S_BINS; i++)
            above += calib->count[i];
        log_p = log10 ((above + 1) / (calib->total + 1));
    }
    calib->count[s_bin (s)] += 1;
    calib->total += 1;
    if (s > calib->max)
        calib->max = (float) s;
    return log_p;
}

static double
s_update (const mesh_detector_config_t *cfg, void *state, uint64_t n, double value,
          int64_t ts_ms, mesh_detect_baseline_t *base)
{
    s_head_t *head = state;
    char *at = (char *) state + s_align (sizeof (s_head_t));
    bool warm = n > (uint64_t) (cfg->warmup < 2 ? 2 : cfg->warmup);
    double surprise[S_VIEWS];
    mesh_detect_baseline_t member[S_MEMBERS];
    for (size_t i = 0; i < S_MEMBERS; i++) {
        member[i] = (mesh_detect_baseline_t) { 0, 0, 0, 0 };
        s_members[i]->update (cfg, at, n, value, ts_ms, &member[i]);
        surprise[i] = member[i].surprise;
        at += s_align (s_members[i]->state_size (cfg));
    }
    if (n == 1)
        head->lo = head->hi = value;
    double width = head->hi - head->lo;
    double excess = value > head->hi ? value - head->hi
                  : value < head->lo ? head->lo - value : 0;
    surprise[S_MEMBERS] = width > 0 ? excess / (S_RANGE_UNIT * width) : excess > 0 ? 1 : 0;
    head->lo = fmin (head->lo, value);
    head->hi = fmax (head->hi, value);

    double weight_sum = 0;
    for (size_t i = 0; i < S_VIEWS; i++)
        weight_sum += s_weights[i];
    double best = 0;                    //  log10 of the combined p, at most 0
    size_t best_view = 0;
    for (size_t i = 0; i < S_VIEWS; i++) {
        double s = isfinite (surprise[i]) && surprise[i] > 0 ? surprise[i] : 0;
        if (!warm)
            continue;
        double log_p = s_calibrate (&head->calib[i], s) - log10 (s_weights[i] / weight_sum);
        if (log_p < best) {
            best = log_p;
            best_view = i;
        }
    }
    //  The baseline reported is the seasonal one (the expected value and spread),
    //  unless knn made the call.
    *base = member[best_view == 1 ? 1 : 0];
    base->surprise = -best;
    return 1 - pow (10, best);
}

const mesh_detect_family_t mesh_detect_ensemble = {
    .name = "ensemble", .check = s_check, .state_size = s_state_size, .update = s_update
};
