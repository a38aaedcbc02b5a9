/*  budget - the agent's token budget: N tokens per fixed window, reserve then settle.
 *  Data path: event -> detect -> incident -> [reason] -> gate -> act -> record
 *  (the reasoning loop asks this module before every model call).
 *
 *  Before a call the loop reserves the worst case (prompt estimate + max_tokens); no
 *  grant means no call (fail closed).  After the call it settles the reservation with
 *  what the server reported and the rest is refunded.  Reserved-but-unsettled tokens
 *  count as used, so concurrent workers can never overshoot the limit between them.
 *
 *  Windows are fixed, of budget_window_s seconds, aligned to the first reservation.
 *  Reservations still outstanding when a window rolls over are carried into the new
 *  window (the tokens will be spent now, not then).  The budget lives in the agent
 *  process for now; a later issue moves it into the supervisor's ledger so that it
 *  survives restarts.  Thread-safe: one mutex.
 */
#ifndef MESH_BUDGET_H
#define MESH_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

typedef struct _mesh_budget_t mesh_budget_t;

//  A clock in milliseconds (any epoch; only differences matter).
typedef int64_t (mesh_budget_clock_fn) (void *arg);

//  Create a budget of TOKENS per WINDOW_S seconds.  NULL (logged) if either is < 1.
mesh_budget_t *mesh_budget_new (long tokens, int window_s);
//  Destroy; sets *self_p to NULL; safe on NULL.
void mesh_budget_destroy (mesh_budget_t **self_p);
//  Replace the monotonic clock (tests).  ARG is passed to FN.
void mesh_budget_set_clock (mesh_budget_t *self, mesh_budget_clock_fn *fn, void *arg);
//  Reserve N tokens (worst case: prompt estimate + max_tokens); false (no grant) if it
//  would exceed the limit in the current window, or if N < 0.
bool mesh_budget_reserve (mesh_budget_t *self, long n);
//  Settle a reservation of RESERVED with USED actually spent (refund the rest; USED may
//  exceed RESERVED if the server over-reports: the real figure counts).
void mesh_budget_settle (mesh_budget_t *self, long reserved, long used);
//  Tokens in the current window, settled + outstanding.
long mesh_budget_used (mesh_budget_t *self);
//  The limit per window.
long mesh_budget_limit (const mesh_budget_t *self);

#endif
