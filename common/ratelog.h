/*  ratelog - count repeated problems by kind and log them at a bounded rate.
 *
 *  A peer that floods a socket with bad messages must not flood the journal too.
 *  Each kind ("unauthenticated", "bad_auth", ...) logs its first occurrence as one
 *  line with the detail, then stays quiet: at most one summary line per interval
 *  says how many more came and the last detail.  Counts are kept for status.
 */
#ifndef MESH_RATELOG_H
#define MESH_RATELOG_H

#include <jansson.h>
#include <stdint.h>

typedef struct _mesh_ratelog_t mesh_ratelog_t;

//  INTERVAL_MS between lines of one kind (10000 in meshd).  Caller owns the result.
mesh_ratelog_t *mesh_ratelog_new (int interval_ms);
void mesh_ratelog_destroy (mesh_ratelog_t **self_p);
//  One occurrence of KIND (a static string; at most 16 kinds) with a detail line.
//  Logs at warning priority when the kind has been quiet for an interval, else counts.
void mesh_ratelog_hit (mesh_ratelog_t *self, const char *kind, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
//  Log the summary of every kind whose interval is over and that has unlogged hits.
void mesh_ratelog_tick (mesh_ratelog_t *self);
//  {kind: total} (caller owns).
json_t *mesh_ratelog_counts (mesh_ratelog_t *self);
//  Total of KIND so far (0 if never seen).
int64_t mesh_ratelog_total (mesh_ratelog_t *self, const char *kind);

#endif
