/*  sandbox - one validator rule, loaded and checked, and the Lua 5.4 sandbox's contract.
 *  Data path: event -> detect -> incident -> reason -> [gate] -> act -> record.
 *
 *  A rule is a Lua file that returns { name, description, check = function (proposal,
 *  ctx) ... end }.  The file is read once (at most 256 KiB, no NUL byte, text only) and
 *  run once at load, in a state of its own, to see that it is a valid rule.  Rules are
 *  evaluated in vms (vm.h): one Lua state per chain and thread, every rule compiled
 *  and its top level run once, what that built frozen, and for every evaluation a
 *  fresh environment for check; inputs are read-only views of the JSON; libraries are
 *  read-only and deterministic (safelib.c); nothing a rule stores survives into the
 *  next evaluation.  mesh_sandbox_eval evaluates one rule alone, for tests.
 *
 *  Verdicts: ACCEPT only when check's first result is exactly the boolean true; REJECT
 *  when it is false followed by a non-empty reason string; ERROR for anything else (an
 *  error raised, another type, a truthy non-true value, a missing reason); LIMIT when
 *  the instruction, memory or time limit was hit, decided from host-side flags and
 *  never from an error message.  No lua_State ever leaves lua/.
 *
 *  Approval: check may call mesh.require_approval (reason) and still accept; the
 *  evaluation then reports that reason beside the ACCEPT (mesh_sandbox_eval_ex, vm.h),
 *  and the gate asks for a human's approval of the proposal.  A request from a check
 *  that does not accept is dropped: the proposal is refused anyway.
 */
#ifndef MESH_SANDBOX_H
#define MESH_SANDBOX_H

#include <jansson.h>
#include <stddef.h>

#define MESH_SANDBOX_MAX_SOURCE         (256 * 1024)        //  bytes of one rule file
#define MESH_SANDBOX_MAX_REASON         512                 //  bytes of a returned reason
#define MESH_SANDBOX_MAX_APPROVAL       300                 //  bytes of an approval reason
#define MESH_SANDBOX_DEFAULT_INSTRUCTIONS 1000000L
#define MESH_SANDBOX_DEFAULT_MEMORY     ((size_t) 8 << 20)
#define MESH_SANDBOX_DEFAULT_TIME_MS    50
//  The most steps a Lua pattern match may be able to take (see safelib.c): a match
//  whose static bound is higher is refused with an error before it starts.
#define MESH_SANDBOX_PATTERN_STEPS      1000000.0

//  Per rule evaluation (running the rule's top level and its check).  A field that is
//  zero or negative means its default.
typedef struct {
    long instructions;              //  Lua VM instructions, and C work charged to them
    size_t memory;                  //  bytes live beyond the state as built (libraries
                                    //  and compiled rules)
    int time_ms;                    //  wall clock (CLOCK_MONOTONIC)
} mesh_sandbox_limits_t;

typedef enum {
    MESH_VERDICT_ACCEPT,
    MESH_VERDICT_REJECT,
    MESH_VERDICT_ERROR,
    MESH_VERDICT_LIMIT,
} mesh_verdict_t;

typedef struct _mesh_sandbox_t mesh_sandbox_t;

//  Load the rule at PATH.  LIMITS may be NULL (defaults).  Returns NULL and sets *err
//  (caller frees; may be NULL, then the problem is logged) to one line
//  "FILE:LINE: message" (or "FILE: message" when there is no line).
mesh_sandbox_t *mesh_sandbox_load (const char *path, const mesh_sandbox_limits_t *limits,
                                   char **err);
//  The same from a buffer already in memory; PATH names it in messages and in the
//  rules hash.  SOURCE is copied.
mesh_sandbox_t *mesh_sandbox_load_buffer (const char *path, const char *source, size_t size,
                                          const mesh_sandbox_limits_t *limits, char **err);
//  Destroy; sets *self_p to NULL; safe on NULL.
void mesh_sandbox_destroy (mesh_sandbox_t **self_p);

//  The rule's name and description as the rule declared them, and the path it was
//  loaded from (borrowed).
const char *mesh_sandbox_name (const mesh_sandbox_t *self);
const char *mesh_sandbox_description (const mesh_sandbox_t *self);
const char *mesh_sandbox_path (const mesh_sandbox_t *self);
//  The source text as loaded (borrowed; *size_p set when not NULL).
const char *mesh_sandbox_source (const mesh_sandbox_t *self, size_t *size_p);
//  The limits the rule was loaded with (defaults filled in; borrowed).
const mesh_sandbox_limits_t *mesh_sandbox_limits (const mesh_sandbox_t *self);

//  Evaluate the rule alone: check (PROPOSAL, CTX); both borrowed, either may be NULL
//  (nil in Lua).  Thread-safe.
//  *reason_p (may be NULL) is set for every verdict but ACCEPT, where it is NULL: the
//  rule's reason, the error, or the limit named ("instruction limit", "memory limit",
//  "time limit").  Reasons are valid UTF-8 without control characters and at most
//  MESH_SANDBOX_MAX_REASON bytes; the caller frees them.
mesh_verdict_t mesh_sandbox_eval (mesh_sandbox_t *self, json_t *proposal, json_t *ctx,
                                  char **reason_p);
//  The same, and *approval_p (may be NULL) set to the reason check gave
//  mesh.require_approval (the first, if it called it more than once) when the verdict
//  is ACCEPT and check asked, else NULL: one line of valid UTF-8, control characters
//  as spaces, at most MESH_SANDBOX_MAX_APPROVAL bytes; the caller frees it.
mesh_verdict_t mesh_sandbox_eval_ex (mesh_sandbox_t *self, json_t *proposal, json_t *ctx,
                                     char **reason_p, char **approval_p);

//  "accept", "reject", "error", "limit".
const char *mesh_verdict_name (mesh_verdict_t verdict);

#endif
