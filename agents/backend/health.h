/*  health - what an agent process knows about each backend server, shared by its
 *  reasoning workers: the circuit breaker, the server's probed facts (flavour, context
 *  length, structured-output form) and latency figures for `meshctl status`.
 *  Data path: event -> detect -> incident -> [reason] -> gate -> act -> record.
 *
 *  Circuit breaker (per backend name, per agent process):
 *      closed      calls go through; a call that fails at the server (unreachable,
 *                  timeout, partial, rate limited, overloaded, loading, a 5xx) adds one
 *                  to a count of consecutive failures, any answer resets it
 *      open        after `circuit.failures` consecutive failures: no call is made for
 *                  `circuit.open_ms` (a call fails at once as model_unreachable, costs no
 *                  token and no queueing; a cascade goes to the next backend)
 *      half-open   after that, one call is let through as the probe; its success
 *                  closes the circuit, its failure opens it again for open_ms
 *  Any answer resets the count, even one whose content is unusable (malformed,
 *  truncated, oversize, a context-overflow refusal): the server is up.  A call that
 *  sent nothing (a pre-check refused it) does not count.  A model the server does not
 *  serve marks the backend misconfigured (shown in status, not a circuit failure)
 *  until a call succeeds.
 *
 *  Entries are kept per backend name and url, at most 64 (held ones first); all
 *  functions are thread-safe.
 */
#ifndef MESH_HEALTH_H
#define MESH_HEALTH_H

#include "config.h"
#include "fail.h"
#include "wire.h"
#include <jansson.h>
#include <stdbool.h>

typedef struct _mesh_health_t mesh_health_t;

//  What a backend server is known to be.
typedef struct {
    bool probed;                    //  a probe answered (the fields below are from it)
    long probed_at_ms;              //  monotonic ms of that probe
    mesh_backend_flavor_t flavor;   //  detected (or configured) flavour
    long context_tokens;            //  0 unknown
    mesh_wire_schema_t schema_form; //  the structured-output form to send now
    bool model_missing;             //  the server lists models and ours is not among them
} mesh_health_server_t;

//  The entry for CFG's backend (its name and url; created on first use with CFG's
//  circuit settings), held until mesh_health_put.  An entry no backend holds keeps
//  what it knows until its place is needed.  NULL only when out of memory or when 64
//  entries are held.
mesh_health_t *mesh_health_get (const mesh_backend_config_t *cfg);
//  Let go of an entry (a backend object is destroyed); safe on NULL.
void mesh_health_put (mesh_health_t *self);
//  May a call go now?  true (and *PROBE says whether it is the half-open probe), or
//  false with a one-line reason in WHY.
bool mesh_health_admit (mesh_health_t *self, long now_ms, bool *probe, char *why, size_t size);
//  Whether a call would be admitted now, without taking the half-open probe slot.
bool mesh_health_available (mesh_health_t *self, long now_ms);
//  The result of one call: FAIL (NONE for an answer), its latency and time to first
//  token (-1 if none), the one-line DETAIL of a failure (may be NULL).
void mesh_health_result (mesh_health_t *self, long now_ms, mesh_fail_t fail, long latency_ms,
                         long ttft_ms, const char *detail);
//  A half-open probe slot taken by a call that sent nothing: give it back.
void mesh_health_release (mesh_health_t *self);
//  The server's probed facts: read (a copy) and write.
void mesh_health_server (mesh_health_t *self, mesh_health_server_t *out);
void mesh_health_set_server (mesh_health_t *self, const mesh_health_server_t *server);
//  The server refused FORM: from now until the next probe, send NEXT instead.
void mesh_health_schema_refused (mesh_health_t *self, mesh_wire_schema_t form,
                                 mesh_wire_schema_t next);
//  The server said it is loading (a probe or an answer).
void mesh_health_loading (mesh_health_t *self, long now_ms);

//  Every backend this process holds, for the heartbeat and `meshctl status`:
//  {name: {state: ready|loading|open|half_open|misconfigured|down|unknown, detail,
//  flavor, context_tokens, calls, failures, consecutive_failures, latency_ms: {p50,
//  p95, p99}, ttft_ms: {p50, p95, p99}, open_until_s}} over the last 512 calls.
json_t *mesh_health_json (long now_ms);
//  Every backend's model call and time-to-first-token histograms (common/hist.h) of this
//  process: {"model_call_seconds": {name: [...]}, "model_ttft_seconds": {name: [...]}}.
json_t *mesh_health_hist_json (void);
//  Monotonic milliseconds (the clock every function above takes).
long mesh_health_now_ms (void);

#endif
