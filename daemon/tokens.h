/*  tokens - the supervisor's token ledger: budgets at every scope, reservations, charges.
 *
 *  meshd holds the one ledger of tokens, as it is the one writer of decisions.  Before
 *  each model call a worker asks for a reservation (common/token_port.h); it is granted
 *  atomically against every scope that applies, or refused naming the scope:
 *
 *      daemon              budget:                      (the whole host)
 *      agent:NAME          agents[].reason.budget       (or budget_tokens/_window_s)
 *      backend:NAME        backends.NAME.budget
 *      action:NAME         actions.NAME.budget          (a reask about that action)
 *      incident:ID         agents[].reason.incident_token_cap, for the incident's life
 *
 *  A scope's window is rolling (the last window_s seconds, in 60 slots: a charge leaves
 *  the window between window_s * 59/60 and window_s after it was made) or the calendar
 *  day in a named time zone.  Reserved tokens count as spent until settled; a scope's
 *  `reserve` is kept for high-priority incidents.  A settle charges what the call cost
 *  (the charging rules are the agent's, agents/backend/charge.h); a reservation held by
 *  an instance that dies is charged in full.
 *
 *  Durable: every grant and charge is appended to a journal (<state_dir>/tokens.jsonl),
 *  which a syncer thread fdatasyncs whenever lines were written (group commit: one sync
 *  for every line written meanwhile); the caller answers a grant once its line is
 *  written or, with daemon.token_sync each_grant, once it is synced.  A restarted meshd
 *  has what it had: grants without a charge are charged in full at start (the server
 *  may have generated).  A charge is not waited for: lost with the page cache, its
 *  grant is charged in full instead (more, never less).  The journal is compacted
 *  at start and when it grows past 16 MiB.  The API is for one thread (the
 *  supervisor's main loop); only the syncer runs beside it.
 */
#ifndef MESH_TOKENS_H
#define MESH_TOKENS_H

#include "config.h"
#include "token_port.h"
#include <czmq.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _mesh_tokens_t mesh_tokens_t;

//  Open the ledger for CFG (borrowed only during the call), recovering JOURNAL (created if
//  missing).  NULL with why in WHY when the journal cannot be read or written.
mesh_tokens_t *mesh_tokens_new (const mesh_config_t *cfg, const char *journal, char *why,
                                size_t why_size);
void mesh_tokens_destroy (mesh_tokens_t **self_p);
//  The wall clock in epoch ms (tests); ARG is passed to FN.  NULL restores the real one.
typedef int64_t (mesh_tokens_clock_fn) (void *arg);
void mesh_tokens_set_clock (mesh_tokens_t *self, mesh_tokens_clock_fn *fn, void *arg);
//  Where `budget` records go (a scope crossed 50, 80 or 100 % of its window): FN (ARG,
//  RECORD), RECORD borrowed.
typedef void (mesh_tokens_record_fn) (void *arg, json_t *record);
void mesh_tokens_set_recorder (mesh_tokens_t *self, mesh_tokens_record_fn *fn, void *arg);
//  Take the scopes of a new config: limits, windows and reserves change, what was used
//  stays (a scope whose window changed keeps its current use as one charge made now).
void mesh_tokens_reconfigure (mesh_tokens_t *self, const mesh_config_t *cfg);

//  Reserve for INSTANCE (an authenticated agent instance; ASK->agent its agent).  0 with
//  *grant filled (granted, or refused with the scope and why); -1 when the journal
//  could not be written (refused, fail closed).
int mesh_tokens_reserve (mesh_tokens_t *self, const char *instance, const mesh_tokens_ask_t *ask,
                         mesh_tokens_grant_t *grant);
//  Settle GRANT (INSTANCE's) with CHARGE.  0, and *budget (caller owns; may be NULL) the
//  agent's scope; -1 if INSTANCE holds no such grant (charged already: never twice).
int mesh_tokens_settle (mesh_tokens_t *self, const char *instance, int64_t grant,
                        const mesh_tokens_charge_t *charge, json_t **budget);
//  INSTANCE died: every reservation it held is charged in full.  Returns how many.
size_t mesh_tokens_release (mesh_tokens_t *self, const char *instance);
//  Make what was appended durable (fdatasync, or wait for the syncer's) if anything was.
//  0, or -1 (logged) when a sync failed.
int mesh_tokens_flush (mesh_tokens_t *self);
//  Group commit for the main loop: a thread that syncs the journal whenever lines were
//  written, one fdatasync for all of them, and then signals the returned socket (the
//  main loop polls it and reads the signal).  Replies that must wait for the sync are
//  tagged with mesh_tokens_written () and sent once mesh_tokens_synced () reaches it.
//  NULL if the thread cannot start (then every flush syncs in the caller).
zsock_t *mesh_tokens_start_syncer (mesh_tokens_t *self);
//  The main loop saw the syncer's socket readable: read its word (one at most is in
//  flight; the next sync sends another).
void mesh_tokens_woken (mesh_tokens_t *self);
//  Lines written to the journal so far, and lines known durable (with the syncs that
//  failed, in *errors_p if not NULL).
uint64_t mesh_tokens_written (mesh_tokens_t *self);
uint64_t mesh_tokens_synced (mesh_tokens_t *self, uint64_t *errors_p);
//  Compact the journal if it grew past its bound (the main loop calls it now and then).
void mesh_tokens_maintain (mesh_tokens_t *self);

//  meshctl budget: {scopes: [{scope, limit, used, reserved, remaining, reserve, window,
//  window_s | time_zone, burn_per_min, resets_at, level}], reserved, outstanding, run}.
json_t *mesh_tokens_status (mesh_tokens_t *self);
//  One scope as in the status (NULL if unknown).  Caller owns.
json_t *mesh_tokens_scope (mesh_tokens_t *self, const char *key);
//  Tokens reserved and not settled, over every grant.
long mesh_tokens_reserved (const mesh_tokens_t *self);

//  An in-process port (tests, benches): the ledger itself, as INSTANCE.  Each call
//  flushes.  Both must outlive the port's use.
typedef struct {
    mesh_tokens_t *tokens;
    const char *instance;
} mesh_tokens_local_t;
mesh_tokens_port_t mesh_tokens_local_port (mesh_tokens_local_t *local);

#endif
