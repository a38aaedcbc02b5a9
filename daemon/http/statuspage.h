/*  statuspage - the read-only status page on meshd's HTTP listener, and its JSON.
 *
 *      GET /                   index.html   (the page: plain HTML, CSS and JavaScript,
 *      GET /app.js             app.js        embedded in the binary from daemon/http/statuspage/,
 *      GET /app.css            app.css       no external assets, no inline script)
 *      GET /api/status         agents (state, pid, restarts, counters), backends (health,
 *                              circuit), budgets (used, limit, remaining, burn), daemon
 *      GET /api/decisions?limit=N   the latest N (1..100, default 20) decisions of the log
 *      GET /api/decision?id=ID      one decision as `meshctl --json audit show ID` has it
 *                              (the audit module's reader); the page draws its timeline
 *      GET /api/incidents      open incident groups, from the agents' incident state files
 *      GET /api/series         events/s and tokens/min, one sample per 10 s, last hour
 *
 *  Handlers run on meshd's own thread, so every cost is bounded: the log is read from its
 *  tail only (S_TAIL_BYTES for the list, S_DETAIL_BYTES for one decision), an incident
 *  state file only up to a size, a reply only up to a size (else a 500 JSON error); the
 *  series is a fixed ring.  Bad query parameters give a 400 JSON error.  Nothing here
 *  changes state: the page only reads (and the listener serves only GET).
 *
 *  The daemon's state comes through a callback (mesh_statuspage_status_fn) so that this
 *  module reads it without knowing the main loop's structures, and a test can give it a
 *  made-up state.
 */
#ifndef MESH_STATUSPAGE_H
#define MESH_STATUSPAGE_H

#include "http.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _mesh_statuspage_t mesh_statuspage_t;

//  A snapshot of the daemon for the page (caller owns it), as `meshctl --json status` and
//  `budget` show it: {"daemon": {...}, "agents": [what mesh_supervise_status returns],
//  "budget": what mesh_tokens_status returns}.  Any part may be missing or null.
typedef json_t *(mesh_statuspage_status_fn) (void *arg);

//  The Content-Security-Policy of every reply: nothing from elsewhere, no inline script.
#define MESH_STATUSPAGE_CSP                                                                   \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "         \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//  Create for the decision log DECISION_LOG and the incident state files under
//  STATE_DIR/incidents (both copied); STATUS (with ARG) gives the daemon's state.
mesh_statuspage_t *mesh_statuspage_new (const char *decision_log, const char *state_dir,
                                        mesh_statuspage_status_fn *status, void *arg);
//  Destroy; sets *self_p to NULL; safe on NULL.
void mesh_statuspage_destroy (mesh_statuspage_t **self_p);

//  On the daemon's timer: every 10 s (NOW_MS, wall clock) takes one sample of the events
//  consumed and tokens charged so far and keeps the rates in a ring of the last hour.
//  Cheap when it is not time yet.
void mesh_statuspage_tick (mesh_statuspage_t *self, int64_t now_ms);

//  The route handler (mesh_http_handler_fn), ARG the mesh_statuspage_t: 0 and REPLY filled
//  for the page's paths and everything under /api/ (unknown there: 404 JSON), -1 for any
//  other path.
int mesh_statuspage_handle (void *arg, const char *path, const char *query,
                            mesh_http_reply_t *reply);

#endif
