/*  detect - stage 2: what every detector family has in common.
 *  Data path: event -> [detect] -> incident -> reason -> gate -> act -> record.
 *
 *  detector.kind picks a family (a table of check / state_size / update in its
 *  own detect_<family>.c).  This file owns everything else, so that each family
 *  stays a pure "score this point, then learn it" and every family gets the same
 *  guarantees:
 *
 *  - one bounded series table (max_series, LRU, evictions counted); each entry is
 *    a common header followed by the family's state, one allocation per series;
 *  - NaN and infinities score 0 and change nothing (not even the point count);
 *  - the first `warmup` points of a series (never fewer than two) score 0, though
 *    the family learns from them;
 *  - the last MESH_DETECT_WINDOW values, for the incident and the decision record;
 *  - holdoff: after a peak score, for `holdoff` points only a higher score counts
 *    (the others are reported as 0).  An anomaly usually lasts several points and
 *    all of them score high; one alarm per excursion is what an operator (and NAB)
 *    wants, and it does not depend on the threshold, so a threshold chosen later
 *    sees the same alarms.  A rising excursion still alarms at each new high.
 *
 *  A score outside [0,1] or NaN from a family would be a bug; it is clamped here
 *  so that nothing downstream ever sees one.
 */
#include "detect.h"
#include "log.h"
#include "series_table.h"

#include <assert.h>
#include <math.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t n;                         //  finite points seen
    double peak;                        //  holdoff: the last reported peak
    uint32_t since_peak;                //  holdoff: points since it
    uint32_t head, len;                 //  ring of recent values
    double ring[MESH_DETECT_WINDOW];
} s_common_t;

//  The family's state starts here, aligned for any type.
#define S_COMMON_SIZE \
    ((sizeof (s_common_t) + alignof (max_align_t) - 1) / alignof (max_align_t) \
     * alignof (max_align_t))

struct _mesh_detect_t {
    mesh_detector_config_t cfg;         //  kind points at the family's name
    const mesh_detect_family_t *family;
    uint64_t warmup;                    //  effective: at least 2
    size_t state_size;
    mesh_series_table_t *table;
};

static const mesh_detect_family_t *const s_families[] = {
    &mesh_detect_ewma, &mesh_detect_mad, &mesh_detect_cusum, &mesh_detect_seasonal,
    &mesh_detect_knn, &mesh_detect_ensemble, &mesh_detect_context, &mesh_detect_bocpd, NULL
};

mesh_detect_t *
mesh_detect_new (const mesh_detector_config_t *cfg)
{
    assert (cfg);
    const mesh_detect_family_t *family = NULL;
    for (size_t i = 0; cfg->kind && s_families[i] && !family; i++)
        if (!strcmp (cfg->kind, s_families[i]->name))
            family = s_families[i];
    if (!family) {
        mesh_err ("detect: unknown detector kind '%s', expected ewma, mad, cusum, seasonal, "
                  "knn, ensemble, context or bocpd", cfg->kind ? cfg->kind : "(none)");
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
    if (cfg->holdoff < 0) {
        mesh_err ("detect: holdoff %d is negative, expected a number of points >= 0",
                  cfg->holdoff);
        return NULL;
    }
    if (family->check (cfg))
        return NULL;
    mesh_detect_t *self = calloc (1, sizeof *self);
    if (!self) {
        mesh_err ("detect: out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    self->cfg.kind = (char *) family->name;
    self->family = family;
    self->warmup = cfg->warmup < 2 ? 2 : (uint64_t) cfg->warmup;
    self->state_size = family->state_size (cfg);
    self->table = mesh_series_table_new (cfg->max_series, S_COMMON_SIZE + self->state_size);
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

//  Describe COMMON (may be NULL) into INFO, window oldest first.
static void
s_fill_info (mesh_detect_info_t *info, const mesh_detect_t *self, const s_common_t *common,
             const mesh_detect_baseline_t *base, double score)
{
    memset (info, 0, sizeof *info);
    info->score = score;
    if (base) {
        info->mean = base->mean;
        info->stddev = base->stddev;
        info->z = base->z;
    }
    if (!common)
        return;
    info->n = common->n;
    info->warm = common->n > self->warmup;
    info->window_len = (int) common->len;
    uint32_t first = (common->head + MESH_DETECT_WINDOW - common->len) % MESH_DETECT_WINDOW;
    for (uint32_t i = 0; i < common->len; i++)
        info->window[i] = common->ring[(first + i) % MESH_DETECT_WINDOW];
}

double
mesh_detect_update (mesh_detect_t *self, const char *series, double value, int64_t ts_ms,
                    mesh_detect_info_t *info)
{
    assert (self);
    assert (series);
    if (!isfinite (value)) {
        //  Not a measurement: report what we know, change nothing.
        if (info)
            s_fill_info (info, self, mesh_series_table_lookup (self->table, series), NULL, 0);
        return 0;
    }
    s_common_t *common = mesh_series_table_touch (self->table, series, NULL);
    if (!common) {
        if (info)
            s_fill_info (info, self, NULL, NULL, 0);
        return 0;
    }
    common->n++;
    common->ring[common->head] = value;
    common->head = (common->head + 1) % MESH_DETECT_WINDOW;
    if (common->len < MESH_DETECT_WINDOW)
        common->len++;

    mesh_detect_baseline_t base = { 0, 0, 0, 0 };
    double score = self->family->update (&self->cfg, (char *) common + S_COMMON_SIZE,
                                         common->n, value, ts_ms, &base);
    if (!(score >= 0))                  //  also NaN
        score = 0;
    if (score > 1)
        score = 1;
    if (common->n <= self->warmup)
        score = 0;
    if (self->cfg.holdoff > 0) {
        if (common->since_peak < UINT32_MAX)
            common->since_peak++;
        if (common->since_peak > (uint32_t) self->cfg.holdoff)
            common->peak = 0;
        if (score > common->peak) {
            common->peak = score;
            common->since_peak = 0;
        }
        else
            score = 0;
    }
    if (info)
        s_fill_info (info, self, common, &base, score);
    return score;
}

bool
mesh_detect_is_anomaly (const mesh_detect_t *self, double score)
{
    assert (self);
    return score >= self->cfg.threshold;
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
    return self->family->name;
}

size_t
mesh_detect_state_size (const mesh_detect_t *self)
{
    assert (self);
    return S_COMMON_SIZE + self->state_size;
}

double
mesh_detect_z_score (double z)
{
    double score = erf (fabs (z) / M_SQRT2);
    return score >= 0 && score <= 1 ? score : score > 1 ? 1 : 0;
}

double
mesh_detect_z_surprise (double z)
{
    double x = fabs (z) / M_SQRT2;
    if (!(x < 26))
        //  erfc (x) ~ exp (-x^2) / (x sqrt pi) where it would underflow.
        return x != x ? 0 : (x * x + log (x * sqrt (M_PI))) / M_LN10;
    return -log10 (erfc (x));
}

//  Hoare's selection (quickselect), middle pivot: expected O(n).
static double
s_select (double *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        double pivot = v[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                double t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else
        if (k >= i)
            lo = i;
        else
            break;
    }
    return v[k];
}

double
mesh_detect_median (double *v, size_t n)
{
    assert (n > 0);
    double upper = s_select (v, n, n / 2);
    if (n % 2)
        return upper;
    //  Even count: the mean of the two middle values; the lower one is the
    //  largest of the lower half, which selection left below n / 2.
    double lower = v[0];
    for (size_t i = 1; i < n / 2; i++)
        if (v[i] > lower)
            lower = v[i];
    return (lower + upper) / 2;
}
