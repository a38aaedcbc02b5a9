/*  metrics - GET /metrics: meshd in the Prometheus text exposition format 0.0.4.
 *
 *  One table (metrics.c) names every metric: name, type, labels, help, and how its samples
 *  come out of the status tree meshd already keeps for `meshctl --json status` (the agents'
 *  heartbeat counters summed over their lives and replicas, the token ledger's scopes, the
 *  supervisor's restarts) plus the histograms measured where the work happens.  docs/metrics.md
 *  lists the same table; tests/unit/test_metrics.c checks both ways, so neither drifts.
 *
 *  Label values come from the config (agent, backend, action names, budget scopes) or from
 *  fixed vocabularies (verdict, outcome, reason, state): never a series key or a decision id,
 *  so the number of series is bounded by the config.  Rendering only reads.
 */
#ifndef MESH_METRICS_H
#define MESH_METRICS_H

#include "hist.h"
#include "proto.h"
#include <jansson.h>
#include <stddef.h>

#define MESH_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
//  A reply is cut (and says so in a comment line) past this many bytes.
#define MESH_METRICS_MAX_BYTES (4u << 20)
//  Consumer lag series per agent: at most this many topic-partitions (the largest lags).
#define MESH_METRICS_MAX_PARTITIONS MESH_PROTO_MAX_LAG_PARTITIONS

typedef struct _mesh_metrics_t mesh_metrics_t;

//  One row of the table.  LABELS: comma-separated label names ("" for none).
typedef struct {
    const char *name;
    const char *type;                   //  "counter", "gauge" or "histogram"
    const char *labels;
    const char *help;
} mesh_metric_info_t;

size_t mesh_metrics_count (void);
const mesh_metric_info_t *mesh_metrics_info (size_t index);

mesh_metrics_t *mesh_metrics_new (void);
void mesh_metrics_destroy (mesh_metrics_t **self_p);

//  The daemon's own measurements.
void mesh_metrics_ledger_fsync (mesh_metrics_t *self, double seconds);
//  An outcome record written to the decision log: ACTION (a name of at most 64 characters
//  [A-Za-z0-9_.-], else counted as "other") and STATUS (the outcome statuses of
//  docs/audit.md, else "other").  At most 512 (action, outcome) series; past them, new
//  actions count as "other".
void mesh_metrics_outcome (mesh_metrics_t *self, const char *action, const char *status);

//  The exposition for STATUS ({"daemon", "agents", "budget", "http"} as main.c builds it;
//  any part may be missing) and VERSION: a malloc'd text and its length, or NULL.
char *mesh_metrics_render (mesh_metrics_t *self, const json_t *status, const char *version,
                           size_t *len_p);

//  A Prometheus label value escaped (\\, \", \n) into OUT of SIZE bytes (cut, terminated).
void mesh_metrics_escape (const char *value, char *out, size_t size);

#endif
