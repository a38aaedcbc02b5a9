/*  detect - stage 2: streaming anomaly detection per series.
 *  Data path: event -> [detect] -> incident -> reason -> gate -> act -> record.
 *
 *  State per series lives in a bounded table (max_series, least-recently-used
 *  eviction, counted).  One pass, no look-ahead, constant memory per series.
 *  Scores are in [0,1] and mean the same on every stream.  Detection never waits
 *  for inference.
 *
 *  Several families share this interface (detector.kind): each is a table of
 *  three functions in its own detect_<family>.c, and detect.c does what they have
 *  in common (the table, warm-up, NaN, the recent window, holdoff), so a family
 *  only scores and learns one finite point of one series.  The ensemble is a
 *  family whose state holds the other families' states.
 */
#ifndef MESH_DETECT_H
#define MESH_DETECT_H

#include "config.h"
#include <stdint.h>

#define MESH_DETECT_WINDOW 16           //  recent values kept per series for context

typedef struct _mesh_detect_t mesh_detect_t;

//  What the detector knew when it scored a point; copied into the incident and the
//  decision record (so a replay sees what the rules saw).
typedef struct {
    double score;                       //  [0,1]
    double mean, stddev, z;             //  the baseline before this point
    uint64_t n;                         //  points seen for this series (including this one)
    bool warm;                          //  past warm-up
    int window_len;                     //  valid entries in window, oldest first, this point last
    double window[MESH_DETECT_WINDOW];
} mesh_detect_info_t;

//  Create; returns NULL (and logs why) if the detector config is unusable.
mesh_detect_t *mesh_detect_new (const mesh_detector_config_t *cfg);
//  Destroy; sets *self_p to NULL; safe on NULL.
void mesh_detect_destroy (mesh_detect_t **self_p);
//  Score one point of SERIES; fills *info (may be NULL).  Returns the score.
double mesh_detect_update (mesh_detect_t *self, const char *series, double value, int64_t ts_ms,
                           mesh_detect_info_t *info);
//  True when score is at or above the configured threshold.
bool mesh_detect_is_anomaly (const mesh_detect_t *self, double score);
//  Counters.
size_t mesh_detect_series (const mesh_detect_t *self);
uint64_t mesh_detect_evictions (const mesh_detect_t *self);
//  Detector name for records: the family ("ewma", "mad", "cusum", "seasonal", "knn",
//  "ensemble", "context", "bocpd").
const char *mesh_detect_name (const mesh_detect_t *self);
//  Bytes of detector state per series, table overhead and key excluded.
size_t mesh_detect_state_size (const mesh_detect_t *self);

//  --------------------------------------------------------------------------
//  For the families (detect_<family>.c), called by detect.c; not for other callers.

//  The baseline a family compared a point with, for mesh_detect_info_t, and the
//  point's surprise: -log10 of the probability that an in-control series scores
//  this high (score = 1 - 10^-surprise), unbounded where the score rounds to 1.
typedef struct {
    double mean, stddev, z;
    double surprise;
} mesh_detect_baseline_t;

typedef struct {
    const char *name;
    //  0 if the family's keys in CFG are usable, else -1 (logged).
    int (*check) (const mesh_detector_config_t *cfg);
    //  Bytes of state per series; a zeroed state means "nothing seen yet".
    size_t (*state_size) (const mesh_detector_config_t *cfg);
    //  Score the finite VALUE against STATE, then learn it.  N counts the series'
    //  finite points including this one.  Fills *base; returns a score in [0,1].
    double (*update) (const mesh_detector_config_t *cfg, void *state, uint64_t n,
                      double value, int64_t ts_ms, mesh_detect_baseline_t *base);
} mesh_detect_family_t;

extern const mesh_detect_family_t mesh_detect_ewma;
extern const mesh_detect_family_t mesh_detect_mad;
extern const mesh_detect_family_t mesh_detect_cusum;
extern const mesh_detect_family_t mesh_detect_seasonal;
extern const mesh_detect_family_t mesh_detect_knn;
extern const mesh_detect_family_t mesh_detect_ensemble;
extern const mesh_detect_family_t mesh_detect_context;
extern const mesh_detect_family_t mesh_detect_bocpd;

//  Shared arithmetic.
//  The two-sided normal mass inside |z|, erf (|z| / sqrt 2), in [0,1].
double mesh_detect_z_score (double z);
//  -log10 of the two-sided normal tail outside |z|, finite for every finite z.
double mesh_detect_z_surprise (double z);
//  Median of the N values in V (reordered), by selection; N > 0.
double mesh_detect_median (double *v, size_t n);

#endif
