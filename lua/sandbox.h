/*  sandbox - one validator rule, run in a Lua 5.4 sandbox.
 *  Data path: event -> detect -> incident -> reason -> [gate] -> act -> record.
 *
 *  A rule is a Lua file that returns { name, description, check = function (proposal,
 *  ctx) ... end }.  The file is read once (at most 256 KiB, no NUL byte, text only) and
 *  compiled once at load to see that it is a valid rule; every evaluation then builds a
 *  fresh lua_State with a capped allocator, an allow-listed environment and a sticky
 *  instruction/time hook, compiles the source in it, converts the JSON inputs to Lua
 *  tables, calls check and closes the state.  Nothing survives from one evaluation to
 *  the next, so no rule can leak state into a later decision, and a loaded sandbox is
 *  immutable: evaluations of one sandbox from several threads are safe.
 *
 *  Verdicts: ACCEPT only when check's first result is exactly the boolean true; REJECT
 *  when it is false followed by a non-empty reason string; ERROR for anything else (an
 *  error raised, another type, a truthy non-true value, a missing reason); LIMIT when
 *  the instruction, memory or time limit was hit, decided from host-side flags and
 *  never from an error message.  No lua_State ever leaves lua/.
 */
#ifndef MESH_SANDBOX_H
#define MESH_SANDBOX_H

#include <jansson.h>
#include <stddef.h>

#define MESH_SANDBOX_MAX_SOURCE         (256 * 1024)        //  bytes of one rule file
#define MESH_SANDBOX_MAX_REASON         512                 //  bytes of a returned reason
#define MESH_SANDBOX_DEFAULT_INSTRUCTIONS 1000000L
#define MESH_SANDBOX_DEFAULT_MEMORY     ((size_t) 8 << 20)
#define MESH_SANDBOX_DEFAULT_TIME_MS    50

//  Per evaluation (compiling the rule, running its chunk and its check).  A field that
//  is zero or negative means its default.
typedef struct {
    long instructions;              //  Lua VM instructions
    size_t memory;                  //  bytes live in the Lua state, the libraries included
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

//  Evaluate check (PROPOSAL, CTX); both borrowed, either may be NULL (nil in Lua).
//  *reason_p (may be NULL) is set for every verdict but ACCEPT, where it is NULL: the
//  rule's reason, the error, or the limit named ("instruction limit", "memory limit",
//  "time limit").  Reasons are valid UTF-8 without control characters and at most
//  MESH_SANDBOX_MAX_REASON bytes; the caller frees them.
mesh_verdict_t mesh_sandbox_eval (mesh_sandbox_t *self, json_t *proposal, json_t *ctx,
                                  char **reason_p);

//  "accept", "reject", "error", "limit".
const char *mesh_verdict_name (mesh_verdict_t verdict);

#endif
