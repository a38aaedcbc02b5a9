/*  hist - a fixed-bucket latency histogram, in seconds, as Prometheus exposes one.
 *
 *  One bucket layout for every histogram meshd exports (MESH_HIST_BOUNDS: 1 ms to 60 s),
 *  so an agent's counts travel in its heartbeat as a plain array and the daemon adds them
 *  up without agreeing on anything else.  Counts are cumulative per bucket only when
 *  rendered; here each slot counts the observations <= its bound and > the previous one,
 *  the last slot those above every bound.
 */
#ifndef MESH_HIST_H
#define MESH_HIST_H

#include <jansson.h>
#include <stdint.h>

#define MESH_HIST_BUCKETS 15            //  finite bounds; one more slot for +Inf
extern const double mesh_hist_bounds[MESH_HIST_BUCKETS];

typedef struct {
    uint64_t slot[MESH_HIST_BUCKETS + 1];
    double sum;                         //  seconds
} mesh_hist_t;

//  Count one observation of SECONDS (negative and NaN count as 0).
void mesh_hist_observe (mesh_hist_t *self, double seconds);
//  Every observation of OTHER added to SELF.
void mesh_hist_add (mesh_hist_t *self, const mesh_hist_t *other);
uint64_t mesh_hist_count (const mesh_hist_t *self);
//  As carried in a heartbeat: [slot0, ..., slotN, sum] (caller owns).
json_t *mesh_hist_json (const mesh_hist_t *self);
//  Back from that form: 0, or -1 (not an array of MESH_HIST_BUCKETS + 2 numbers >= 0).
int mesh_hist_from_json (mesh_hist_t *self, const json_t *array);

//  Process-wide histograms of an agent (any thread; one lock): what its heartbeat carries
//  under "hist" beside the backends' own (agents/backend/health.c).
typedef enum { MESH_HIST_GATE, MESH_HIST_RESERVATION, MESH_HIST_GLOBAL_COUNT_ } mesh_hist_global_t;
//  The heartbeat key of each: "gate_seconds", "reservation_seconds".
const char *mesh_hist_global_name (mesh_hist_global_t which);
void mesh_hist_global_observe (mesh_hist_global_t which, double seconds);
//  {"gate_seconds": [...], "reservation_seconds": [...]} (caller owns).
json_t *mesh_hist_global_json (void);
//  Seconds on the monotonic clock, for measuring.
double mesh_hist_now (void);

#endif
