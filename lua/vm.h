/*  vm - one Lua state holding a chain of compiled rules, evaluated under limits.
 *  Data path: event -> detect -> incident -> reason -> [gate] -> act -> record.
 *
 *  The gate keeps one vm per thread that evaluates (agents/gate.c pools them); a vm
 *  is not thread-safe.  Each rule is compiled once, when the state is built; each
 *  evaluation gives it a brand-new environment, so nothing a rule stores survives
 *  into the next decision (see vm.c for why that holds).  No lua_State leaves lua/.
 */
#ifndef MESH_VM_H
#define MESH_VM_H

#include "sandbox.h"

#include <jansson.h>
#include <stddef.h>

typedef struct _mesh_vm_t mesh_vm_t;

//  Create a vm for RULES (COUNT of them; the array is copied, the rules are borrowed
//  and must outlive the vm) under LIMITS (NULL: defaults).  The state is built on
//  first use.  NULL only when out of memory.
mesh_vm_t *mesh_vm_new (mesh_sandbox_t *const *rules, size_t count,
                        const mesh_sandbox_limits_t *limits);
//  Destroy; sets *self_p to NULL; safe on NULL.
void mesh_vm_destroy (mesh_vm_t **self_p);

//  Evaluate every rule, in order, on PROPOSAL and CTX (borrowed; NULL is nil).
//  VERDICTS and REASONS have one slot per rule; each reason is NULL on accept and
//  otherwise a clean string (sandbox.h) the caller frees.  APPROVALS (NULL: not
//  wanted) has one slot per rule too: the reason the rule gave mesh.require_approval
//  when it accepted and asked (sandbox.h, mesh_sandbox_eval_ex), else NULL; the caller
//  frees them.  A rule that raised or hit a limit costs a rebuild of the state before
//  the next rule runs.
void mesh_vm_eval (mesh_vm_t *self, json_t *proposal, json_t *ctx, mesh_verdict_t *verdicts,
                   char **reasons, char **approvals);
//  The same for the rule at INDEX alone; APPROVAL_P may be NULL.
mesh_verdict_t mesh_vm_eval_one (mesh_vm_t *self, size_t index, json_t *proposal, json_t *ctx,
                                 char **reason_p, char **approval_p);

//  Run the rule at INDEX's top level and check the table it returns: 0 and *name_p,
//  *description_p set (caller frees), or -1 and *err_p set ("FILE:LINE: message" as
//  Lua names the chunk; "the rule hit its LIMIT" for a limit).
int mesh_vm_probe (mesh_vm_t *self, size_t index, char **name_p, char **description_p,
                   char **err_p);

//  Run the Lua text SOURCE (chunk name CHUNKNAME, "@file" style) in a fresh sandbox
//  environment and return its result as JSON (caller owns): tables whose keys are
//  1..n become arrays, other tables objects (an empty table is {}), mesh.null null.
//  NULL and *err_p set on a compile error, an error raised, a limit, or a value
//  JSON cannot hold (a function, a mixed table, invalid UTF-8, nan).
json_t *mesh_vm_run_json (mesh_vm_t *self, const char *chunkname, const char *source,
                          size_t size, char **err_p);
//  1 if the Lua PATTERN is found in SUBJECT (string.find, with the sandbox's bounds),
//  0 if not, -1 with *err_p set (malformed or too costly a pattern).
int mesh_vm_find (mesh_vm_t *self, const char *subject, size_t len, const char *pattern,
                  char **err_p);

//  Bytes the state holds now, and right after it was built (libraries and compiled
//  rules, after a full collection); 0 before the first build.
size_t mesh_vm_memory (const mesh_vm_t *self);
size_t mesh_vm_baseline (const mesh_vm_t *self);
//  Collect the garbage now and return the bytes still live (0 before the first build).
size_t mesh_vm_collect (mesh_vm_t *self);
//  How many times the state was built (1 after the first use; one more after every
//  evaluation that raised or hit a limit).
size_t mesh_vm_builds (const mesh_vm_t *self);

#endif
