/*  detect - stage 2: streaming anomaly detection per series.
 *  Data path: event -> [detect] -> incident -> reason -> gate -> act -> record.
 *
 *  State per series lives in a bounded table (max_series, least-recently-used
 *  eviction, counted).  One pass, no look-ahead, constant memory per series.
 *  Scores are in [0,1] and mean the same on every stream.  Detection never waits
 *  for inference.
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
//  Detector name for records ("ewma").
const char *mesh_detect_name (const mesh_detect_t *self);

#endif
