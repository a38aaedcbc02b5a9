/*  detect_bocpd - stage 2: Bayesian online change-point detection (kind bocpd).
 *  Data path: event -> [detect] -> incident -> reason -> gate -> act -> record.
 *
 *  After Adams and MacKay, "Bayesian Online Changepoint Detection" (2007).  A
 *  series is a sequence of runs; within a run the points are Normal with an
 *  unknown mean and variance, and a new run starts at each point with a constant
 *  probability, the hazard (`bocpd.hazard`; 1/hazard is the expected run length).
 *  Per series we keep the posterior over the length of the current run, cut to
 *  its `bocpd.hypotheses` most probable run lengths: for each one, its log
 *  weight and the sufficient statistics of the points since it started (count,
 *  mean, sum of squared deviations, Welford's form).
 *
 *  Each run length has a Normal-Gamma posterior (mean mu, kappa, alpha, beta)
 *  and its predictive for the next point is a Student t with 2 alpha degrees of
 *  freedom, centre mu and squared scale beta (kappa + 1) / (alpha kappa).  The
 *  prior of a new run is empirical and weak: centred on a slow average of the
 *  series (weight detector.alpha / 10), kappa0 = 1, alpha0 = 1 and beta0 the slow
 *  average squared deviation, so that a run of one point already predicts in the
 *  series' own units and a run of none predicts with very heavy tails (2 degrees
 *  of freedom: a fresh run never makes anything look extreme).
 *
 *  Score.  Before a point is learned, its two-sided tail probability under each
 *  hypothesis' Student t (converted to a normal deviate with Wallace's
 *  approximation, so only erfc is needed) is averaged with the hypotheses'
 *  weights: p = P(a point at least this far out | the run-length posterior), and
 *  score = 1 - p.  It means what the z-score families' score means, but the
 *  baseline is the posterior mixture: a level shift scores high on its first
 *  point, and after it the short run lengths take the weight within a few points,
 *  so the new level stops scoring long before an EWMA would forget the old one.
 *
 *  Update (in log space, so a very unlikely point underflows nothing): each
 *  hypothesis grows by one with weight w_r + log pdf_r (x) + log (1 - H), a new
 *  run of length zero gets log-sum-exp over r of (w_r + log pdf_r (x)) + log H,
 *  the weights are normalised, and when there are more than `hypotheses` the
 *  least probable old one is dropped (never the new run: it is the one a change
 *  needs).  Values are scaled by a power of two fixed at a series' first point
 *  (exact, keeps 1e300 near 1), and a statistic that still overflows restarts
 *  the series' state at that point, so finite inputs never give NaN.
 *
 *  Memory: 32 bytes per hypothesis plus 40 (424 bytes at 12).  Cost per
 *  hypothesis and point: a log1p, a log and three exp, and for the runs that
 *  carry weight a sqrt and an erfc; lgamma only for runs shorter than 30 points.
 */
#include "detect.h"
#include "log.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define S_MIN_HYPOTHESES  2
#define S_MAX_HYPOTHESES  24            //  keeps the state, with detect.c's, within 1 KiB
#define S_PRIOR_SLOW      0.1           //  the prior's weight is alpha times this
#define S_KAPPA0          1.0
#define S_ALPHA0          1.0
#define S_SCALE_FLOOR     1e-9          //  relative floor of a standard deviation
#define S_ROUNDING        1e-12         //  scores below this are rounding
#define S_NEGLIGIBLE      1e-9          //  run weights that do not count in the score

typedef struct {
    double weight;                      //  log posterior weight
    double count;                       //  points in the run
    double mean, m2;                    //  their mean and sum of squared deviations
} s_run_t;

typedef struct {
    int exponent;                       //  values are scaled by 2^-exponent
    uint32_t runs;                      //  hypotheses held
    double center, spread;              //  the prior: slow mean and mean squared deviation
    uint64_t seen;                      //  points since the state (re)started
    double pad;
    s_run_t run[];
} s_state_t;

static int
s_check (const mesh_detector_config_t *cfg)
{
    if (!(cfg->alpha > 0 && cfg->alpha <= 1)) {
        mesh_err ("detect: alpha %g is out of range, expected 0 < alpha <= 1", cfg->alpha);
        return -1;
    }
    if (!(cfg->bocpd.hazard > 0 && cfg->bocpd.hazard <= 0.5)) {
        mesh_err ("detect: bocpd.hazard %g is out of range, expected 0 < hazard <= 0.5",
                  cfg->bocpd.hazard);
        return -1;
    }
    if (cfg->bocpd.hypotheses < S_MIN_HYPOTHESES || cfg->bocpd.hypotheses > S_MAX_HYPOTHESES) {
        mesh_err ("detect: bocpd.hypotheses %d is out of range, expected %d..%d",
                  cfg->bocpd.hypotheses, S_MIN_HYPOTHESES, S_MAX_HYPOTHESES);
        return -1;
    }
    return 0;
}

static size_t
s_state_size (const mesh_detector_config_t *cfg)
{
    return sizeof (s_state_t) + (size_t) cfg->bocpd.hypotheses * sizeof (s_run_t);
}

//  lgamma (a + 1/2) - lgamma (a) for a >= 1: exact below 16, else the asymptotic
//  series (error below 1e-10 there), which saves two lgamma calls per run.
static double
s_lgamma_half (double a)
{
    if (a < 16)
        return lgamma (a + 0.5) - lgamma (a);
    double r = 1 / a, r2 = r * r;
    return 0.5 * log (a) - r / 8 + r * r2 / 192 + r * r2 * r2 / 640;
}

//  The predictive of RUN for X under the prior (CENTER, VAR0): its log density
//  and, when TAIL is not NULL, the two-sided tail probability of a point at least
//  as far out.
static void
s_predict (const s_run_t *run, double center, double var0, double x, double *log_pdf,
           double *tail)
{
    double kappa = S_KAPPA0 + run->count;
    double mu = (S_KAPPA0 * center + run->count * run->mean) / kappa;
    double alpha = S_ALPHA0 + run->count / 2;
    double d0 = run->mean - center;
    double beta = S_ALPHA0 * var0 + run->m2 / 2
                + S_KAPPA0 * run->count * d0 * d0 / (2 * kappa);
    double nu = 2 * alpha;
    double scale2 = beta * (kappa + 1) / (alpha * kappa);
    double t = (x - mu) / sqrt (scale2);
    double q = t * t / nu;
    //  log Student-t density: lgamma((nu+1)/2) - lgamma(nu/2) - log(pi nu scale2)/2
    //  - (nu+1)/2 log(1 + t^2/nu).
    double l = log1p (q);
    *log_pdf = s_lgamma_half (nu / 2) - 0.5 * log (M_PI * nu * scale2) - (nu + 1) / 2 * l;
    if (!tail)
        return;
    //  Wallace (1959): z = sqrt (nu log (1 + t^2/nu)) (8 nu + 1) / (8 nu + 3).
    double z = sqrt (nu * l) * (8 * nu + 1) / (8 * nu + 3);
    *tail = erfc (z / M_SQRT2);
}

//  Add X to RUN (Welford).
static void
s_learn (s_run_t *run, double x)
{
    run->count += 1;
    double d = x - run->mean;
    run->mean += d / run->count;
    run->m2 += d * (x - run->mean);
}

static double
s_update (const mesh_detector_config_t *cfg, void *state_, uint64_t n_, double value,
          int64_t ts_ms, mesh_detect_baseline_t *base)
{
    s_state_t *state = state_;
    uint32_t cap = (uint32_t) cfg->bocpd.hypotheses;
    double log_h = log (cfg->bocpd.hazard), log_1h = log1p (-cfg->bocpd.hazard);

    if (state->seen == 0) {
        //  (Re)start: a power of two that brings this value near 1, one empty run.
        memset (state, 0, sizeof *state + cap * sizeof (s_run_t));
        int exponent = 0;
        if (value != 0)
            frexp (value, &exponent);
        state->exponent = exponent;
        state->center = ldexp (value, -exponent);
        state->runs = 1;
    }
    double x = ldexp (value, -state->exponent);
    double center = state->center;
    double floor = S_SCALE_FLOOR * fmax (1.0, fabs (center));
    double var0 = fmax (state->spread, floor * floor);

    //  Score: the posterior-weighted tail probability; then the growth weights.
    double tail = 0, mass = 0, best = -INFINITY, map_mean = center, map_var = var0;
    double log_pdf[S_MAX_HYPOTHESES];
    bool ok = isfinite (x) && isfinite (var0);
    for (uint32_t i = 0; ok && i < state->runs; i++) {
        //  A run with a weight below S_NEGLIGIBLE cannot move the score: its tail
        //  is not computed (its density is: the update needs it).
        double w = exp (state->run[i].weight), t = 1;
        s_predict (&state->run[i], center, var0, x, &log_pdf[i],
                   w >= S_NEGLIGIBLE ? &t : NULL);
        if (!isfinite (log_pdf[i]) && log_pdf[i] != -INFINITY)
            ok = false;
        if (!(t >= 0 && t <= 1))
            t = t > 1 ? 1 : 0;
        if (w >= S_NEGLIGIBLE) {
            tail += w * t;
            mass += w;
        }
        if (state->run[i].weight > best) {
            best = state->run[i].weight;
            map_mean = state->run[i].count > 0 ? state->run[i].mean : center;
            map_var = state->run[i].count > 1 ? state->run[i].m2 / state->run[i].count : var0;
        }
    }
    double score = 0;
    if (ok && state->seen > 0) {
        tail = mass > 0 ? tail / mass : 1;
        tail = tail > 1 ? 1 : tail < 0 ? 0 : tail;
        score = 1 - tail;
        if (score < S_ROUNDING)
            score = 0;                  //  the same value again is not anomalous
        base->surprise = tail > DBL_MIN ? -log10 (tail) : -log10 (DBL_MIN);
        base->mean = ldexp (map_mean, state->exponent);
        base->stddev = ldexp (sqrt (map_var), state->exponent);
        double sd = sqrt (map_var);
        double z = sd > 0 ? (x - map_mean) / sd : 0;
        base->z = isfinite (z) ? fmax (-1e12, fmin (1e12, z)) : 0;
        if (!isfinite (base->mean) || !isfinite (base->stddev))
            base->mean = base->stddev = 0;
    }

    if (ok) {
        //  Change point: log-sum-exp of the joint over every run length, times H.
        double top = -INFINITY;
        for (uint32_t i = 0; i < state->runs; i++)
            top = fmax (top, state->run[i].weight + log_pdf[i]);
        double sum = 0;
        for (uint32_t i = 0; top > -INFINITY && i < state->runs; i++)
            sum += exp (state->run[i].weight + log_pdf[i] - top);
        double log_evidence = top > -INFINITY ? top + log (sum) : -INFINITY;
        if (!isfinite (log_evidence)) {
            //  Every hypothesis gives this point zero density (far beyond any
            //  scale): the change is certain; keep only the new run.
            state->runs = 0;
            log_evidence = 0;
        }
        //  Grow every run by this point, then add the new run at the front.
        for (uint32_t i = 0; i < state->runs; i++) {
            state->run[i].weight += log_pdf[i] + log_1h - log_evidence;
            s_learn (&state->run[i], x);
        }
        //  Drop the least probable old run if full (index 0 .. runs-1).
        if (state->runs == cap) {
            uint32_t worst = 0;
            for (uint32_t i = 1; i < state->runs; i++)
                if (state->run[i].weight < state->run[worst].weight)
                    worst = i;
            state->run[worst] = state->run[--state->runs];
        }
        state->run[state->runs++] = (s_run_t) { .weight = log_h, .count = 0 };
        //  Normalise (the drop removed a little mass; also guards rounding).
        top = -INFINITY;
        for (uint32_t i = 0; i < state->runs; i++)
            top = fmax (top, state->run[i].weight);
        sum = 0;
        for (uint32_t i = 0; i < state->runs; i++)
            sum += exp (state->run[i].weight - top);
        double norm = top + log (sum);
        for (uint32_t i = 0; i < state->runs; i++)
            state->run[i].weight -= norm;

        //  The prior follows the series slowly.
        state->seen++;
        double a = fmax (cfg->alpha * S_PRIOR_SLOW, 1.0 / (double) state->seen);
        double d = x - state->center;
        state->center += a * d;
        state->spread = (1 - a) * (state->spread + a * d * d);
    }
    //  Anything not finite now (a statistic overflowed): restart at the next point.
    bool finite = ok && isfinite (state->center) && isfinite (state->spread);
    for (uint32_t i = 0; finite && i < state->runs; i++)
        finite = isfinite (state->run[i].weight) && isfinite (state->run[i].mean)
                 && isfinite (state->run[i].m2);
    if (!finite)
        state->seen = 0;
    return score;
}

const mesh_detect_family_t mesh_detect_bocpd = {
    .name = "bocpd", .check = s_check, .state_size = s_state_size, .update = s_update
};
