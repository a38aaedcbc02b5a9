/*  labels - the ground truth of a synthetic stream, and scoring incidents against it.
 *
 *  tools/mesh-gen writes a labels file (JSON) beside the stream it produces:
 *      {"step_s":60,"events":N,"malformed":M,
 *       "anomalies":[{"series":"web-1/cpu","kind":"spike","start_ms":..,"end_ms":..},..]}
 *  The demo summary loads it and scores the incidents the agents opened.
 *
 *  An incident (series, ts_ms) is true if its series has a window with
 *  start_ms <= ts_ms <= end_ms + 3 steps (a detection a little late still counts).
 *  precision = true incidents / incidents, and 0 when there are no incidents;
 *  recall = windows with at least one true incident / windows, and 0 when there
 *  are no windows.  Neither is ever NaN.
 *
 *  One scoring at a time per labels object (it keeps which windows were hit).
 */
#ifndef MESH_LABELS_H
#define MESH_LABELS_H

#include <stdint.h>

typedef struct _mesh_labels_t mesh_labels_t;

typedef struct {
    uint64_t incidents, true_incidents, windows, windows_hit;
    double precision, recall;
} mesh_labels_score_t;

//  Load PATH; NULL (and logged, with what is wrong) if it cannot be read or is not
//  a well-formed labels file.
mesh_labels_t *mesh_labels_load (const char *path);
//  Destroy; sets *self_p to NULL; safe on NULL.
void mesh_labels_destroy (mesh_labels_t **self_p);

//  Reset score, then feed incidents one by one, then finish.
void mesh_labels_score_begin (mesh_labels_t *self, mesh_labels_score_t *s);
void mesh_labels_score_add (mesh_labels_t *self, mesh_labels_score_t *s, const char *series,
                            int64_t ts_ms);
void mesh_labels_score_end (mesh_labels_t *self, mesh_labels_score_t *s);

//  Valid events in the stream ("events").
uint64_t mesh_labels_events (const mesh_labels_t *self);
//  Malformed messages in the stream ("malformed", 0 when absent).
uint64_t mesh_labels_malformed (const mesh_labels_t *self);
//  Labelled anomaly windows.
uint64_t mesh_labels_windows (const mesh_labels_t *self);
//  Lateness still credited to a window, in milliseconds (3 steps).
int64_t mesh_labels_tolerance_ms (const mesh_labels_t *self);

#endif
