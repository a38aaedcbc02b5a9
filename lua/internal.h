/*  internal - what the files of lua/ share with each other and with nobody else.
 *
 *  Everything here takes a lua_State, so no header outside lua/ includes this one:
 *  vm.c owns the state and its limits, view.c the read-only views of inputs and
 *  libraries, safelib.c the standard library as rules see it (allow-listed,
 *  deterministic, with C work bounded), meshlib.c the `mesh` table.  The pieces meet
 *  here: a C helper charges its work to the evaluation's instruction budget, reads
 *  an input through its view, and iterates a table in the one order rules may rely on.
 */
#ifndef MESH_LUA_INTERNAL_H
#define MESH_LUA_INTERNAL_H

#include <jansson.h>
#include <lua.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  --- vm.c: the budget of the running evaluation ------------------------------------
//  In a plain lua_State (the bench's baseline) these do nothing.

//  Count UNITS of work done in C against the instruction budget; raises the
//  instruction limit (sticky, like the hook) when the budget is spent.
void mesh_vm_charge (lua_State *L, size_t units);
//  Count N bytes that C code is about to walk or copy: one unit per
//  MESH_VM_BYTES_PER_UNIT bytes (a VM instruction costs about what that many bytes of
//  memcpy or toupper do).  Call it before the work, so that the limit comes first.
#define MESH_VM_BYTES_PER_UNIT  8
void mesh_vm_charge_bytes (lua_State *L, size_t n);
//  Bytes the memory cap still allows (SIZE_MAX in a plain state).
size_t mesh_vm_memory_room (lua_State *L);
//  After a protected call inside rule code ended with STATUS: if a limit was hit (or
//  the allocator failed: LUA_ERRMEM), raise it again, so that no pcall can catch it.
void mesh_vm_rethrow_limit (lua_State *L, int status);
//  True once a limit was hit in this evaluation.
bool mesh_vm_limit_hit (lua_State *L);
//  Raise the time limit now if C work estimated at NS nanoseconds, about to run
//  where nothing can interrupt it, would end past the evaluation's deadline.
void mesh_vm_charge_time (lua_State *L, int64_t ns);
//  Raise the time limit if the evaluation's deadline has passed.
void mesh_vm_check_time (lua_State *L);
//  True in a sandbox state, false in a plain one.
bool mesh_vm_sandboxed (lua_State *L);
//  mesh.require_approval's half in the vm: keep REASON (LEN bytes, cleaned and cut to
//  MESH_SANDBOX_MAX_APPROVAL) as what the running check asks a human to approve,
//  unless it asked already (the first reason stands).  Raises outside a rule's check
//  (a top level, a test file, a plain state).
void mesh_vm_require_approval (lua_State *L, const char *reason, size_t len);

//  --- chunkscan.c: what a compiled chunk can change -----------------------------------

//  False only if no function in the Lua function at INDEX (nested ones included)
//  assigns to an upvalue; true when it may (or its bytecode was not understood).
bool mesh_chunk_sets_upvalues (lua_State *L, int index);

//  --- view.c: read-only views ------------------------------------------------------
//  A view is an empty table whose metatable (hidden: getmetatable gives false)
//  serves reads from its data and refuses writes.  Input views convert their JSON
//  lazily, member by member, on first access; table views front a table (a library,
//  or what a rule's top level built).

//  Create the shared metatable of input views (once per state, while building it).
void mesh_view_init (lua_State *L);
//  Push JSON VALUE as rules see it: nil for NULL or null, a view for an object or an
//  array, a Lua value otherwise.  VALUE must outlive every use of the view.
void mesh_view_push_json (lua_State *L, json_t *value);
//  The input views pushed so far are no longer reachable: reuse them.
void mesh_view_release (lua_State *L);
//  Replace the table at INDEX with a read-only view of it.
void mesh_view_wrap (lua_State *L, int index);
//  What the value at INDEX is: not a view, an input view (*json_p set to its JSON; may
//  be NULL), or a table view.
enum { MESH_VIEW_NONE, MESH_VIEW_INPUT, MESH_VIEW_TABLE };
int mesh_view_kind (lua_State *L, int index, json_t **json_p);
//  True if the value at INDEX is a view.
bool mesh_view_is (lua_State *L, int index);
//  The JSON behind the input view at INDEX, or NULL (not an input view).
json_t *mesh_view_json (lua_State *L, int index);
//  Push the table a table view fronts, or an input view's cache (nil for other
//  values).
void mesh_view_push_data (lua_State *L, int index);
//  Push the value JSON's null has inside arrays (mesh.null).
void mesh_view_push_null (lua_State *L);
bool mesh_view_is_null (lua_State *L, int index);
//  Push the Lua value of JSON member VALUE (what indexing a view gives).
void mesh_view_push_member (lua_State *L, json_t *value, bool in_array);

//  --- safelib.c: the standard library as rules see it --------------------------------

//  Push the table of globals rules see (libraries as views; without mesh, which the
//  caller adds) and point the string metatable at the sandboxed string table.
void mesh_safelib_open (lua_State *L);
//  Push a new sequence of the keys of the table (or view) at INDEX in the rules'
//  order: numbers ascending, then strings bytewise.  Raises on other key types.
void mesh_safelib_sorted_keys (lua_State *L, int index);
//  Push the keys of the table (or view) at INDEX onto the stack in that order and
//  return how many; -1 (nothing pushed) if there are more than MAX.
int mesh_safelib_push_sorted_keys (lua_State *L, int index, int max);
//  pairs (t): the keys of T in that order (honours __pairs on a rule's own tables).
int mesh_safelib_pairs (lua_State *L);
//  Raise an error naming FN if matching PATTERN against SUBJECT_LEN bytes could take
//  more than MESH_SANDBOX_PATTERN_STEPS steps; ANCHORED: matched at the start only.
//  Returns the bound (steps, at most the budget).
double mesh_safelib_check_pattern (lua_State *L, const char *fn, size_t subject_len,
                                   const char *pattern, size_t pattern_len, bool anchored);
//  The deterministic tostring: pushes the string for the value at INDEX.
const char *mesh_safelib_tostring (lua_State *L, int index, size_t *len);

//  --- match.c: Lua patterns with a step counter -------------------------------------
//  string.find (FIND true) or string.match, string.gmatch and string.gsub with the
//  arguments of Lua's own, the same results, and every step charged (match.c).

int mesh_match_find (lua_State *L, bool find);
int mesh_match_gmatch (lua_State *L);
int mesh_match_gsub (lua_State *L);

//  --- meshlib.c: the `mesh` table --------------------------------------------------

//  Push the mesh table (a plain table; the sandbox wraps it in a view) in place of the
//  string.find on the stack top, which mesh.matches calls.
void mesh_meshlib_push (lua_State *L);

#endif
