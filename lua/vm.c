/*  vm - one Lua state holding a chain of compiled rules, evaluated under limits.
 *
 *  Building a state and compiling every rule for each evaluation is safe but costs
 *  tens of microseconds per rule; a chain has to run in a few (docs/perf/gates.md).
 *  So a vm builds its state once and keeps it, and isolation comes from what the
 *  state lets a rule reach rather than from throwing the state away:
 *
 *  - Each rule is compiled once (luaL_loadbufferx, mode "t": text only), and its top
 *    level runs once, under the limits, when the state is built.  Everything that top
 *    level built and check can reach is then frozen (see "Freezing" below): tables
 *    become read-only views, and the upvalues of the rule's functions are recorded.
 *  - Each evaluation puts those upvalues back to their recorded values, gives the
 *    rule a fresh _ENV (in the _ENV cell every function of the rule shares; an _ENV
 *    the last evaluation left empty is as fresh as a new one and is reused), and calls
 *    check.  Globals check sets land in that _ENV and die with it; a top-level local
 *    it assigns is back next time; a top-level table cannot be written.
 *  - _ENV's missing keys resolve through a metatable, per rule and hidden
 *    (__metatable = false), whose __index holds the safe globals (safelib.c) and
 *    the globals the top level set.  No rule can name that table: there is no _G, no
 *    getmetatable that shows it, no rawget, no debug.  Every table in it - string,
 *    table, math, utf8, mesh, the top level's - is a read-only view (view.c), and the
 *    string metatable points at the string view and is hidden too.  Inputs are
 *    read-only views made for the chain evaluation.  The registry is out of reach
 *    without debug.  So a rule can write only to tables it made in this evaluation,
 *    and those are unreachable once it returns: nothing it stores survives, and the
 *    next rule, or the next decision, starts from the same state.  The hostile corpus
 *    (tests/unit/rules/) tries every road we know of: globals, upvalues, a table kept
 *    in a local, library and string-metatable poisoning, writes to inputs, metatables
 *    on shared tables, __gc, weak tables, coroutines.
 *  - Limits per rule evaluation, decided from this file's flags, never from an
 *    error message.  Memory: the allocator refuses a request that would take the
 *    state more than `memory` bytes over what it held when built, comparing before it
 *    allocates, so string.rep ("x", 2^40) is one refused request; Lua then collects
 *    and retries once, so garbage from earlier evaluations never counts.
 *    Instructions and wall clock: a count hook every 1000 instructions adds up and
 *    looks at the (coarse) monotonic clock; once a limit is hit it re-arms itself for
 *    every instruction and raises each time, so nothing the rule runs afterwards (a
 *    __close handler, a loop around an erroring call) gets further.  C helpers charge
 *    their loops and bytes to the same budget (mesh_vm_charge), and a charge looks
 *    at the clock as often as the hook would; pcall cannot catch a limit
 *    (mesh_vm_rethrow_limit).  Every protected call that runs rule code has a
 *    message handler (s_where) that gives an error raised from C the file and line
 *    of the rule code that caused it.
 *  - A chain runs in one protected call.  A rule that raises or hits a limit ends it:
 *    the state is closed and built again, and the chain resumes with the next rule.
 *    Lua survives its own errors, so the rebuild is not needed for correctness we
 *    know of; it is there so that we never have to argue that a state that ran out of
 *    memory halfway through a library call is clean.  It costs a few hundred
 *    evaluations' worth of time, and only on the failure path.
 *
 *  Every Lua call that can raise - building the state, running a top level, making
 *  input views, running a rule - runs inside lua_pcall, so a memory error there is a
 *  verdict, not a panic.
 */
#include "vm.h"
#include "internal.h"

#include <lauxlib.h>
#include <lua.h>

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_HOOK_PERIOD   1000            //  instructions between two hook calls
#define S_MAX_NAME      64              //  bytes of a rule name
#define S_JSON_DEPTH    64              //  nesting of a value run_json converts

typedef enum {
    S_LIMIT_NONE,
    S_LIMIT_INSTRUCTIONS,
    S_LIMIT_MEMORY,
    S_LIMIT_TIME,
} s_limit_t;

static const char *s_limit_names[] = {
    [S_LIMIT_NONE] = "no limit",
    [S_LIMIT_INSTRUCTIONS] = "instruction limit",
    [S_LIMIT_MEMORY] = "memory limit",
    [S_LIMIT_TIME] = "time limit",
};

//  Small blocks come from per-size free lists carved out of slabs: a state allocates
//  and frees a few dozen small objects per rule evaluation, and glibc's malloc was a
//  fifth of the cost of a trivial one.  Slabs go back to malloc when the state closes.
#define S_SMALL_STEP    16
#define S_SMALL_MAX     256             //  larger blocks: malloc/realloc
#define S_CLASSES       (S_SMALL_MAX / S_SMALL_STEP)
#define S_SLAB          (64 * 1024)

typedef struct s_slab_t {
    struct s_slab_t *next;
    max_align_t align[];
} s_slab_t;

//  The accounting of one state: the allocator's userdata, which the hook and the C
//  helpers reach through lua_getallocf.
typedef struct {
    void *free[S_CLASSES];              //  free blocks of each size class, linked
    s_slab_t *slabs;
    char *carve, *carve_end;            //  the unused rest of the newest slab
    size_t used, cap;                   //  bytes live, bytes allowed
    bool refused;                       //  the allocator said no during this evaluation
    long budget, executed;              //  instructions
    long clock_at;                      //  charges look at the clock when executed
                                        //  passes this
    int period;                         //  hook period, <= S_HOOK_PERIOD
    int64_t deadline_ns;
    s_limit_t limit;                    //  sticky once set
    bool in_check;                      //  a rule's check is running
    char *approval;                     //  what that check asked a human to approve
                                        //  (mesh.require_approval), heap, or NULL
} s_run_t;

struct _mesh_vm_t {
    size_t building;                    //  the rule whose top level is running
    bool build_failed;                  //  in the chain evaluation under way
    mesh_sandbox_t **rules;
    size_t rule_count;
    mesh_sandbox_limits_t limits;
    lua_State *L;                       //  NULL until built, and after a failure
    s_run_t run;
    size_t baseline;
    size_t builds;
    json_t *proposal, *ctx;             //  of the chain evaluation under way
};

//  Registry keys (addresses of statics).
static const char s_key_rules = 0;      //  the compiled chunks, a sequence
static const char s_key_env_mt = 0;     //  the metatable of every _ENV
static const char s_key_find = 0;       //  the sandbox's string.find

//  --------------------------------------------------------------------------------
//  Small helpers

//  The coarse clock is a memory read (the precise one cost a tenth of a trivial rule
//  evaluation on a virtual machine); its few milliseconds of resolution are well
//  inside a time limit of tens of milliseconds.
static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char *
s_format (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    char *s = NULL;
    if (vasprintf (&s, fmt, ap) < 0)
        s = NULL;
    va_end (ap);
    return s;
}

//  Length of the valid UTF-8 sequence at S (at most LEN bytes), 0 if invalid.
static size_t
s_utf8_len (const unsigned char *s, size_t len)
{
    unsigned char c = s [0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    }
    else
    if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    }
    else
    if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    }
    else
        return 0;
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s [i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s [i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))
    ||  (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static bool
s_valid_utf8 (const char *s, size_t len)
{
    for (size_t i = 0, n; i < len; i += n)
        if (!(n = s_utf8_len ((const unsigned char *) s + i, len - i)))
            return false;
    return true;
}

//  A copy of S that is valid UTF-8 without control characters (invalid bytes become
//  '?', control characters a space), cut to at most MAX bytes, "..." included.
//  Every input byte gives at most one output byte, so the length is known up front.
static char *
s_clean_max (const char *s, size_t len, size_t max)
{
    size_t room = len <= max ? len : max - 3;
    char *out = malloc (room + 4);
    if (!out)
        return NULL;
    const unsigned char *in = (const unsigned char *) s;
    size_t i = 0, o = 0;
    while (i < len) {
        size_t n = s_utf8_len (in + i, len - i);
        if (o + (n ? n : 1) > room)
            break;
        if (n == 0)
            out [o++] = '?';
        else
        if (n == 1 && (in [i] < 0x20 || in [i] == 0x7f))
            out [o++] = ' ';
        else
            memcpy (out + o, in + i, n), o += n;
        i += n ? n : 1;
    }
    if (i < len) {
        memcpy (out + o, "...", 3);
        o += 3;
    }
    out [o] = 0;
    return out;
}

static char *
s_clean (const char *s, size_t len)
{
    return s_clean_max (s, len, MESH_SANDBOX_MAX_REASON);
}

static const char *
s_basename (const char *path)
{
    const char *slash = strrchr (path, '/');
    return slash ? slash + 1 : path;
}

static const char *
s_what (lua_State *L, int index)
{
    switch (lua_type (L, index)) {
        case LUA_TNIL:      return "nil";
        case LUA_TNONE:     return "nothing";
        case LUA_TNUMBER:   return "a number";
        case LUA_TSTRING:   return "a string";
        case LUA_TTABLE:    return "a table";
        case LUA_TFUNCTION: return "a function";
        case LUA_TBOOLEAN:  return lua_toboolean (L, index) ? "true" : "false";
        default:            return "a value of another type";
    }
}

//  --------------------------------------------------------------------------------
//  The allocator, the hook and the charges: the three limits

static size_t
s_class (size_t size)
{
    return (size + S_SMALL_STEP - 1) / S_SMALL_STEP - 1;
}

static void *
s_small_alloc (s_run_t *run, size_t class)
{
    void *block = run->free [class];
    if (block) {
        run->free [class] = *(void **) block;
        return block;
    }
    size_t size = (class + 1) * S_SMALL_STEP;
    //  No slab yet: carve is NULL, and NULL plus an offset is undefined behaviour.
    if (!run->carve || run->carve + size > run->carve_end) {
        //  The rest of the old slab goes to the free lists, largest classes first.
        while (run->carve && run->carve + S_SMALL_STEP <= run->carve_end) {
            size_t rest = (size_t) (run->carve_end - run->carve);
            size_t c = s_class (rest > S_SMALL_MAX ? S_SMALL_MAX : rest);
            if ((c + 1) * S_SMALL_STEP > rest)
                c--;
            *(void **) run->carve = run->free [c];
            run->free [c] = run->carve;
            run->carve += (c + 1) * S_SMALL_STEP;
        }
        s_slab_t *slab = malloc (sizeof (s_slab_t) + S_SLAB);
        if (!slab)
            return NULL;
        slab->next = run->slabs;
        run->slabs = slab;
        run->carve = (char *) slab->align;
        run->carve_end = run->carve + S_SLAB;
    }
    block = run->carve;
    run->carve += size;
    return block;
}

static void
s_small_free (s_run_t *run, void *block, size_t class)
{
    *(void **) block = run->free [class];
    run->free [class] = block;
}

static void
s_slabs_free (s_run_t *run)
{
    while (run->slabs) {
        s_slab_t *next = run->slabs->next;
        free (run->slabs);
        run->slabs = next;
    }
}

//  What a block of SIZE bytes counts for.
static size_t
s_charged (size_t size)
{
    return size <= S_SMALL_MAX ? (s_class (size) + 1) * S_SMALL_STEP : size;
}

static void *
s_alloc (void *ud, void *ptr, size_t osize, size_t nsize)
{
    s_run_t *run = ud;
    size_t old = ptr ? s_charged (osize) : 0;   //  ptr == NULL: osize is a type tag
    if (nsize == 0) {
        if (ptr && osize <= S_SMALL_MAX)
            s_small_free (run, ptr, s_class (osize));
        else
            free (ptr);
        run->used -= old;
        return NULL;
    }
    size_t new = s_charged (nsize);
    if (ptr && osize <= S_SMALL_MAX && nsize <= S_SMALL_MAX
    &&  s_class (osize) == s_class (nsize))
        return ptr;                             //  the same block fits
    if (new > old && new - old > run->cap - run->used) {
        run->refused = true;            //  Lua collects and may ask once more
        return NULL;
    }
    void *block;
    if (nsize <= S_SMALL_MAX) {
        block = s_small_alloc (run, s_class (nsize));
        if (block && ptr) {
            memcpy (block, ptr, osize < nsize ? osize : nsize);
            if (osize <= S_SMALL_MAX)
                s_small_free (run, ptr, s_class (osize));
            else
                free (ptr);
        }
    }
    else
    if (ptr && osize <= S_SMALL_MAX) {
        block = malloc (nsize);
        if (block) {
            memcpy (block, ptr, osize);
            s_small_free (run, ptr, s_class (osize));
        }
    }
    else
        block = realloc (ptr, nsize);
    if (!block) {
        run->refused = true;
        return NULL;
    }
    run->used = run->used - old + new;
    return block;
}

static void s_hook (lua_State *L, lua_Debug *ar);

//  Raise the limit now recorded in RUN, and make every later instruction raise it too.
static void
s_raise_limit (lua_State *L, s_run_t *run)
{
    lua_sethook (L, s_hook, LUA_MASKCOUNT, 1);
    luaL_error (L, "%s", s_limit_names [run->limit]);
}

static void
s_hook (lua_State *L, lua_Debug *ar)
{
    void *ud;
    lua_getallocf (L, &ud);
    s_run_t *run = ud;
    if (run->limit == S_LIMIT_NONE) {
        run->executed += run->period;
        if (run->executed >= run->budget)
            run->limit = S_LIMIT_INSTRUCTIONS;
        else
        if (s_now_ns () >= run->deadline_ns)
            run->limit = S_LIMIT_TIME;
    }
    if (run->limit != S_LIMIT_NONE)
        s_raise_limit (L, run);
}

//  The accounting of L, or NULL when L is not a sandbox state.
static s_run_t *
s_run_of (lua_State *L)
{
    void *ud;
    lua_Alloc alloc = lua_getallocf (L, &ud);
    return alloc == s_alloc ? ud : NULL;
}

bool
mesh_vm_sandboxed (lua_State *L)
{
    return s_run_of (L) != NULL;
}

void
mesh_vm_charge (lua_State *L, size_t units)
{
    s_run_t *run = s_run_of (L);
    if (!run || units == 0)
        return;
    if (run->limit == S_LIMIT_NONE) {
        if (units >= (size_t) (run->budget - run->executed))
            run->limit = S_LIMIT_INSTRUCTIONS;
        else
            run->executed += (long) units;
    }
    //  Work done in C is time the hook does not see: look at the clock as often as
    //  the hook would for the same count.
    if (run->limit == S_LIMIT_NONE && run->executed >= run->clock_at) {
        run->clock_at = run->executed + S_HOOK_PERIOD;
        if (s_now_ns () >= run->deadline_ns)
            run->limit = S_LIMIT_TIME;
    }
    if (run->limit != S_LIMIT_NONE)
        s_raise_limit (L, run);
}

void
mesh_vm_charge_bytes (lua_State *L, size_t n)
{
    mesh_vm_charge (L, n / MESH_VM_BYTES_PER_UNIT);
    //  Half a nanosecond a byte: a copy that could not end before the deadline does
    //  not start (what a time limit is for), rather than overrunning it by its length.
    if (n >= 65536)
        mesh_vm_charge_time (L, (int64_t) (n / 2));
}

size_t
mesh_vm_memory_room (lua_State *L)
{
    s_run_t *run = s_run_of (L);
    if (!run)
        return SIZE_MAX;
    return run->cap > run->used ? run->cap - run->used : 0;
}

void
mesh_vm_rethrow_limit (lua_State *L, int status)
{
    s_run_t *run = s_run_of (L);
    if (!run)
        return;
    if (run->limit == S_LIMIT_NONE && status == LUA_ERRMEM)
        run->limit = S_LIMIT_MEMORY;
    if (run->limit != S_LIMIT_NONE)
        s_raise_limit (L, run);
}

void
mesh_vm_charge_time (lua_State *L, int64_t ns)
{
    s_run_t *run = s_run_of (L);
    if (!run)
        return;
    if (run->limit == S_LIMIT_NONE && s_now_ns () + ns > run->deadline_ns)
        run->limit = S_LIMIT_TIME;
    if (run->limit != S_LIMIT_NONE)
        s_raise_limit (L, run);
}

bool
mesh_vm_limit_hit (lua_State *L)
{
    s_run_t *run = s_run_of (L);
    return run && run->limit != S_LIMIT_NONE;
}

void
mesh_vm_require_approval (lua_State *L, const char *reason, size_t len)
{
    s_run_t *run = s_run_of (L);
    if (!run || !run->in_check)
        luaL_error (L, "mesh.require_approval: only a rule's check may ask for approval "
                       "(not its top level, nor a test file)");
    size_t max = MESH_SANDBOX_MAX_APPROVAL;
    mesh_vm_charge_bytes (L, len < max ? len : max);
    if (run->approval)
        return;                         //  the first reason stands
    run->approval = s_clean_max (reason, len, max);
    if (!run->approval)
        luaL_error (L, "mesh.require_approval: out of memory");
}

//  Forget what the last piece of rule code asked approval for.
static void
s_approval_drop (s_run_t *run)
{
    free (run->approval);
    run->approval = NULL;
    run->in_check = false;
}

//  True if MSG already starts with a position, "chunk:line:".
static bool
s_has_position (const char *msg)
{
    const char *colon = strchr (msg, ':');
    if (!colon || colon == msg || memchr (msg, ' ', (size_t) (colon - msg)))
        return false;
    const char *d = colon + 1;
    while (*d >= '0' && *d <= '9')
        d++;
    return d > colon + 1 && *d == ':';
}

//  The message handler of every protected call that runs rule code: an error raised
//  from C (a write to a read-only view, a bad argument to a library function, a
//  stack overflow inside a C function) names no position; give it the file and line
//  of the innermost rule code on the stack, so that every rule error says where.
//  Limits are left alone: they are decided from flags, and a memory refusal must not
//  allocate here.
static int
s_where (lua_State *L)
{
    s_run_t *run = s_run_of (L);
    if ((run && (run->limit != S_LIMIT_NONE || run->refused))
    ||  lua_type (L, 1) != LUA_TSTRING || s_has_position (lua_tostring (L, 1)))
        return 1;
    lua_Debug ar;
    for (int level = 1; lua_getstack (L, level, &ar); level++) {
        if (!lua_getinfo (L, "Sl", &ar) || ar.currentline <= 0)
            continue;
        lua_pushfstring (L, "%s:%d: %s", ar.short_src, ar.currentline, lua_tostring (L, 1));
        return 1;
    }
    return 1;
}

void
mesh_vm_check_time (lua_State *L)
{
    s_run_t *run = s_run_of (L);
    if (!run)
        return;
    if (run->limit == S_LIMIT_NONE && s_now_ns () >= run->deadline_ns)
        run->limit = S_LIMIT_TIME;
    if (run->limit != S_LIMIT_NONE)
        s_raise_limit (L, run);
}

//  --------------------------------------------------------------------------------
//  Building the state

//  Arm the limits for one piece of rule code: budgets from zero, the memory cap at
//  what the state holds now plus the limit, the hook on.
static void
s_arm (mesh_vm_t *self, lua_State *L)
{
    s_run_t *run = &self->run;
    s_approval_drop (run);
    run->limit = S_LIMIT_NONE;
    run->refused = false;
    run->executed = 0;
    run->clock_at = 0;
    run->budget = self->limits.instructions;
    run->period = self->limits.instructions < S_HOOK_PERIOD
                ? (int) self->limits.instructions : S_HOOK_PERIOD;
    run->deadline_ns = s_now_ns () + (int64_t) self->limits.time_ms * 1000000;
    lua_sethook (L, s_hook, LUA_MASKCOUNT, run->period);
}

static void
s_disarm (mesh_vm_t *self, lua_State *L)
{
    lua_sethook (L, NULL, 0, 0);
}

//  --------------------------------------------------------------------------------
//  Freezing what a rule's top level built
//
//  A rule's top level runs once, when the state is built.  Everything it made that
//  check can reach - the rule table, tables in it, the locals check closes over,
//  the globals it set, the functions among them - is then frozen: every table is
//  replaced by a read-only view (view.c), and every upvalue of every such function
//  is recorded, so that each evaluation starts by putting those values back.  So
//  check cannot change a table it did not make in this evaluation, and a local it
//  assigns is back to its top-level value next time: nothing survives.  Tables made
//  at the top level may not have metatables (a metamethod would get the unfrozen
//  table as its argument) nor serve as keys (the key would stay reachable).

typedef struct {
    int map;                            //  table -> its view; function -> true (walked)
    int seen;                           //  upvalue id -> true
    int snaps;                          //  {function, n, value, ...}
    lua_Integer snap_count;
    void *env_cell;                     //  the chunk's _ENV upvalue: swapped, not kept
    const char *rule;                   //  for messages
} s_freeze_t;

static void s_freeze (lua_State *L, s_freeze_t *F, int depth);

//  A function's record in the snapshots: the function, the number M of its upvalues,
//  then for each upvalue 1..M its value to put back, or the snapshots table itself
//  where there is nothing to put back (_ENV, or a cell another record resets).
static void
s_freeze_function (lua_State *L, s_freeze_t *F, int f, int depth)
{
    lua_pushvalue (L, f);
    if (lua_rawget (L, F->map) != LUA_TNIL) {
        lua_pop (L, 1);
        return;
    }
    lua_pop (L, 1);
    lua_pushvalue (L, f);
    lua_pushboolean (L, 1);
    lua_rawset (L, F->map);
    if (lua_iscfunction (L, f))
        return;                         //  ours: rules cannot make C closures
    lua_newtable (L);                   //  this function's values, appended at the end
    int values = lua_gettop (L);
    int m = 0, kept = 0;
    for (int n = 1; lua_getupvalue (L, f, n); n++) {
        m = n;
        void *id = lua_upvalueid (L, f, n);
        lua_pushlightuserdata (L, id);
        bool skip = id == F->env_cell || lua_rawget (L, F->seen) != LUA_TNIL;
        lua_pop (L, 1);
        if (skip) {
            lua_pop (L, 1);
            lua_pushvalue (L, F->snaps);
            lua_rawseti (L, values, n);
            continue;
        }
        lua_pushlightuserdata (L, id);
        lua_pushboolean (L, 1);
        lua_rawset (L, F->seen);
        s_freeze (L, F, depth + 1);
        lua_pushvalue (L, -1);
        lua_setupvalue (L, f, n);
        lua_rawseti (L, values, n);
        kept++;
    }
    if (kept) {
        lua_pushvalue (L, f);
        lua_rawseti (L, F->snaps, ++F->snap_count);
        lua_pushinteger (L, m);
        lua_rawseti (L, F->snaps, ++F->snap_count);
        for (int n = 1; n <= m; n++) {
            lua_rawgeti (L, values, n);
            lua_rawseti (L, F->snaps, ++F->snap_count);
        }
    }
    lua_pop (L, 1);
}

//  Replace the value on the stack top by its frozen form.
static void
s_freeze (lua_State *L, s_freeze_t *F, int depth)
{
    luaL_checkstack (L, 10, "rule data nested too deeply");
    if (depth > 200)
        luaL_error (L, "%s: what the top level builds is nested too deeply", F->rule);
    int v = lua_gettop (L);
    int type = lua_type (L, v);
    if (type == LUA_TFUNCTION) {
        s_freeze_function (L, F, v, depth);
        return;
    }
    if (type != LUA_TTABLE || mesh_view_is (L, v))
        return;
    lua_pushvalue (L, v);
    if (lua_rawget (L, F->map) != LUA_TNIL) {
        lua_replace (L, v);
        return;
    }
    lua_pop (L, 1);
    if (lua_getmetatable (L, v))
        luaL_error (L, "%s: a table made at the top level has a metatable; set metatables "
                       "inside check (what the top level builds is frozen)", F->rule);
    mesh_vm_charge (L, 1);
    lua_pushvalue (L, v);
    mesh_view_wrap (L, v + 1);                  //  v + 1: the view
    lua_pushvalue (L, v);
    lua_pushvalue (L, v + 1);
    lua_rawset (L, F->map);
    lua_pushnil (L);
    while (lua_next (L, v)) {                   //  v + 2: key, v + 3: value
        int kt = lua_type (L, v + 2), vt = lua_type (L, v + 3);
        if (kt == LUA_TTABLE)
            luaL_error (L, "%s: a table made at the top level uses a table as a key; "
                           "use strings or numbers", F->rule);
        if (kt == LUA_TFUNCTION) {
            lua_pushvalue (L, v + 2);
            s_freeze (L, F, depth + 1);
            lua_pop (L, 1);
        }
        mesh_vm_charge (L, 1);
        if (vt == LUA_TTABLE || vt == LUA_TFUNCTION) {
            lua_pushvalue (L, v + 3);
            s_freeze (L, F, depth + 1);         //  v + 4
            if (vt == LUA_TTABLE) {
                lua_pushvalue (L, v + 2);
                lua_pushvalue (L, v + 4);
                lua_rawset (L, v);              //  an existing key: allowed while walking
            }
        }
        lua_settop (L, v + 2);
    }
    lua_replace (L, v);
}

//  --------------------------------------------------------------------------------
//  Building the state

//  Each rule's record in the registry's rules sequence.
enum { R_CHUNK = 1, R_CHECK, R_ENV_MT, R_SNAPS, R_RULE, R_SNAP_COUNT, R_ENV };

static bool
s_valid_name (const char *name, size_t len)
{
    if (len == 0 || len > S_MAX_NAME)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name [i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

//  Check the rule table at RULE: {name, description, check}.
static void
s_check_rule_table (lua_State *L, int rule)
{
    if (lua_type (L, rule) != LUA_TTABLE)
        luaL_error (L, "the rule must return a table {name, description, check}, not %s",
                    luaL_typename (L, rule));
    if (lua_getfield (L, rule, "name") != LUA_TSTRING)
        luaL_error (L, "the rule table needs name = \"...\" (a string), not %s",
                    luaL_typename (L, -1));
    size_t len;
    const char *name = lua_tolstring (L, -1, &len);
    if (!s_valid_name (name, len) || strcmp (name, "builtin") == 0)
        luaL_error (L, "rule name must be 1 to %d characters of A-Z a-z 0-9 _ - . "
                       "and not \"builtin\"", S_MAX_NAME);
    if (lua_getfield (L, rule, "description") != LUA_TSTRING)
        luaL_error (L, "the rule table needs description = \"...\" (a string), not %s",
                    luaL_typename (L, -1));
    if (lua_getfield (L, rule, "check") != LUA_TFUNCTION)
        luaL_error (L, "the rule table needs check = function (proposal, ctx), not %s",
                    luaL_typename (L, -1));
    lua_pop (L, 3);
}

static int
s_build_main (lua_State *L)
{
    mesh_vm_t *self = lua_touserdata (L, 1);
    mesh_view_init (L);
    mesh_safelib_open (L);
    int g = lua_gettop (L);
    lua_getfield (L, g, "string");
    lua_getfield (L, -1, "find");
    lua_remove (L, -2);
    lua_pushvalue (L, -1);
    lua_rawsetp (L, LUA_REGISTRYINDEX, &s_key_find);
    mesh_meshlib_push (L);
    mesh_view_wrap (L, -1);
    lua_setfield (L, g, "mesh");

    lua_createtable (L, 0, 2);                  //  the environment of top levels
    lua_pushvalue (L, g);
    lua_setfield (L, -2, "__index");
    lua_pushboolean (L, 0);
    lua_setfield (L, -2, "__metatable");
    int env_mt = lua_gettop (L);
    lua_pushvalue (L, env_mt);
    lua_rawsetp (L, LUA_REGISTRYINDEX, &s_key_env_mt);

    lua_createtable (L, (int) self->rule_count, 0);
    int rules = lua_gettop (L);
    for (size_t i = 0; i < self->rule_count; i++) {
        self->building = i;
        int base = lua_gettop (L);
        size_t size;
        const char *source = mesh_sandbox_source (self->rules [i], &size);
        const char *file = s_basename (mesh_sandbox_path (self->rules [i]));
        lua_pushfstring (L, "@%s", file);
        if (luaL_loadbufferx (L, source, size, lua_tostring (L, -1), "t") != LUA_OK)
            return lua_error (L);
        int chunk = base + 2;
        //  Without upvalue assignments there is nothing to put back before check runs.
        bool sets_upvalues = mesh_chunk_sets_upvalues (L, chunk);
        lua_createtable (L, 0, 0);              //  base + 3: E0, the top level's _ENV
        int e0 = base + 3;
        lua_pushvalue (L, env_mt);
        lua_setmetatable (L, e0);
        lua_pushvalue (L, e0);
        lua_setupvalue (L, chunk, 1);

        //  The top level is rule code: it runs under the limits.
        self->run.cap = self->run.used + self->limits.memory;
        if (self->run.cap < self->run.used)
            self->run.cap = SIZE_MAX;
        s_arm (self, L);
        lua_pushvalue (L, chunk);
        lua_call (L, 0, 1);                     //  base + 4: the rule table
        s_disarm (self, L);
        self->run.cap = SIZE_MAX;
        int rule = base + 4;
        s_check_rule_table (L, rule);

        lua_createtable (L, R_SNAP_COUNT, 0);   //  base + 5: the record
        int rec = base + 5;
        lua_newtable (L);                       //  base + 6: map
        lua_newtable (L);                       //  base + 7: seen
        lua_newtable (L);                       //  base + 8: snaps
        s_freeze_t F = {
            .map = base + 6, .seen = base + 7, .snaps = base + 8,
            .env_cell = lua_upvalueid (L, chunk, 1), .rule = file
        };
        //  The globals the top level set, then the rule table.
        lua_pushnil (L);
        while (lua_next (L, e0)) {
            int vt = lua_type (L, -1);
            if (vt == LUA_TTABLE || vt == LUA_TFUNCTION) {
                s_freeze (L, &F, 0);
                lua_pushvalue (L, -2);
                lua_insert (L, -2);
                lua_rawset (L, e0);
            }
            else
                lua_pop (L, 1);
        }
        lua_pushvalue (L, rule);
        s_freeze (L, &F, 0);
        lua_rawseti (L, rec, R_RULE);
        lua_getfield (L, rule, "check");
        lua_rawseti (L, rec, R_CHECK);
        lua_pushvalue (L, chunk);
        lua_rawseti (L, rec, R_CHUNK);
        lua_pushvalue (L, F.snaps);
        lua_rawseti (L, rec, R_SNAPS);
        lua_pushinteger (L, sets_upvalues ? F.snap_count : 0);
        lua_rawseti (L, rec, R_SNAP_COUNT);
        //  Each evaluation's _ENV: misses go to one table holding the libraries and,
        //  over them, the globals the top level set (one lookup, not a chain of two).
        lua_createtable (L, 0, 32);
        int merged = lua_gettop (L);
        lua_pushnil (L);
        while (lua_next (L, g)) {
            lua_pushvalue (L, -2);
            lua_insert (L, -2);
            lua_rawset (L, merged);
        }
        lua_pushnil (L);
        while (lua_next (L, e0)) {
            lua_pushvalue (L, -2);
            lua_insert (L, -2);
            lua_rawset (L, merged);
        }
        lua_createtable (L, 0, 2);
        lua_pushvalue (L, merged);
        lua_setfield (L, -2, "__index");
        lua_pushboolean (L, 0);
        lua_setfield (L, -2, "__metatable");
        lua_rawseti (L, rec, R_ENV_MT);
        lua_pushnil (L);
        lua_setupvalue (L, chunk, 1);
        lua_pushvalue (L, rec);
        lua_rawseti (L, rules, (lua_Integer) i + 1);
        lua_settop (L, base);
    }
    lua_rawsetp (L, LUA_REGISTRYINDEX, &s_key_rules);
    return 0;
}

static void
s_close (mesh_vm_t *self)
{
    if (self->L)
        lua_close (self->L);
    s_approval_drop (&self->run);
    s_slabs_free (&self->run);
    self->L = NULL;
}

//  Build the state; 0, or -1 with *err_p set (caller frees): the message of what
//  failed, or "the rule hit its LIMIT" when a top level hit a limit.
static int
s_build (mesh_vm_t *self, char **err_p)
{
    s_close (self);
    memset (&self->run, 0, sizeof self->run);
    self->run.cap = SIZE_MAX;
    lua_State *L = lua_newstate (s_alloc, &self->run);
    if (!L) {
        *err_p = strdup ("cannot create a Lua state: out of memory");
        return -1;
    }
    lua_pushcfunction (L, s_where);
    lua_pushcfunction (L, s_build_main);
    lua_pushlightuserdata (L, self);
    int status = lua_pcall (L, 1, 0, 1);
    if (status != LUA_OK) {
        s_run_t *run = &self->run;
        if (run->limit == S_LIMIT_NONE && (status == LUA_ERRMEM || run->refused))
            run->limit = S_LIMIT_MEMORY;
        if (run->limit != S_LIMIT_NONE && self->rule_count == 1)
            *err_p = s_format ("the rule hit its %s", s_limit_names [run->limit]);
        else
        if (run->limit != S_LIMIT_NONE)
            *err_p = s_format ("%s: the rule hit its %s", s_basename (mesh_sandbox_path (
                               self->rules [self->building])), s_limit_names [run->limit]);
        else {
            size_t len = 0;
            const char *msg = lua_type (L, -1) == LUA_TSTRING ? lua_tolstring (L, -1, &len)
                                                               : "out of memory";
            *err_p = s_clean (msg, len ? len : strlen (msg));
        }
        lua_close (L);
        s_slabs_free (&self->run);
        return -1;
    }
    lua_gc (L, LUA_GCCOLLECT);
    lua_gc (L, LUA_GCINC, 1000, 400, 0);   //  few, quick cycles: a state is small
    self->baseline = self->run.used;
    self->run.cap = self->baseline + self->limits.memory;
    if (self->run.cap < self->baseline)
        self->run.cap = SIZE_MAX;
    self->L = L;
    self->builds++;
    return 0;
}

//  --------------------------------------------------------------------------------
//  One evaluation, inside lua_pcall

typedef enum { S_EVAL, S_CHAIN, S_PROBE, S_RUN_JSON, S_FIND } s_mode_t;

typedef struct {
    mesh_vm_t *self;
    s_mode_t mode;
    size_t index;
    mesh_verdict_t verdict;
    char *reason;                       //  heap; set only after the last Lua call
    char *approval;                     //  heap: what an accepting check asked approval for
    char *name, *description;           //  probe results, heap
    const char *chunkname, *source;     //  run_json
    size_t size;
    const char *subject, *pattern;      //  find
    size_t subject_len;
    json_t *json;                       //  run_json result
    int found;
    mesh_verdict_t *verdicts;           //  chain: one per rule, from index on
    char **reasons;
    char **approvals;                   //  chain: NULL when the caller does not want them
} s_call_t;

//  Push a fresh _ENV whose misses go to the libraries.
static void
s_push_env (lua_State *L)
{
    lua_createtable (L, 0, 0);
    lua_rawgetp (L, LUA_REGISTRYINDEX, &s_key_env_mt);
    lua_setmetatable (L, -2);
}

//  Lua value at INDEX as JSON (new reference); raises with the path on what JSON
//  cannot hold.
static json_t *s_to_json (lua_State *L, int index, char *path, size_t path_len, int depth);

static void s_eval_rule (lua_State *L, s_call_t *call);

//  Where s_eval_main keeps, for the rules it evaluates, the compiled rules and the
//  input views (made once per run, so the rules of a chain share their conversions).
enum { S_SLOT_RULES = 2, S_SLOT_PROPOSAL, S_SLOT_CTX };

static int
s_eval_main (lua_State *L)
{
    s_call_t *call = lua_touserdata (L, 1);
    mesh_vm_t *self = call->self;
    if (call->mode == S_CHAIN || call->mode == S_EVAL || call->mode == S_PROBE) {
        lua_settop (L, 1);
        mesh_view_release (L);          //  an earlier run's views are out of reach
        lua_rawgetp (L, LUA_REGISTRYINDEX, &s_key_rules);
        mesh_view_push_json (L, call->mode == S_PROBE ? NULL : self->proposal);
        mesh_view_push_json (L, call->mode == S_PROBE ? NULL : self->ctx);
    }
    if (call->mode == S_CHAIN) {
        //  Every rule from call->index on, in this one protected call: a rule that
        //  raises ends it, and call->index names that rule.
        for (; call->index < self->rule_count; call->index++) {
            s_arm (self, L);
            s_eval_rule (L, call);
            //  C functions run outside the hook's reach; what they overran is seen here.
            if (self->run.limit == S_LIMIT_NONE && s_now_ns () > self->run.deadline_ns) {
                call->verdict = MESH_VERDICT_LIMIT;
                free (call->reason);
                call->reason = strdup (s_limit_names [S_LIMIT_TIME]);
            }
            call->verdicts [call->index] = call->verdict;
            call->reasons [call->index] = call->reason;
            call->reason = NULL;
            if (call->verdict == MESH_VERDICT_ACCEPT && call->approvals)
                call->approvals [call->index] = call->approval;
            else
                free (call->approval);
            call->approval = NULL;
            lua_settop (L, S_SLOT_CTX);
        }
        return 0;
    }
    if (call->mode == S_FIND) {
        lua_rawgetp (L, LUA_REGISTRYINDEX, &s_key_find);
        lua_pushlstring (L, call->subject, call->subject_len);
        lua_pushstring (L, call->pattern);
        lua_call (L, 2, 1);
        call->found = !lua_isnil (L, -1);
        call->verdict = MESH_VERDICT_ACCEPT;
        return 0;
    }
    if (call->mode == S_RUN_JSON) {
        if (luaL_loadbufferx (L, call->source, call->size, call->chunkname, "t") != LUA_OK)
            return lua_error (L);
        s_push_env (L);
        lua_setupvalue (L, -2, 1);
        lua_call (L, 0, 1);
        char path[256] = "the result";
        call->json = s_to_json (L, lua_gettop (L), path, strlen (path), 0);
        call->verdict = MESH_VERDICT_ACCEPT;
        return 0;
    }
    s_eval_rule (L, call);
    return 0;
}

//  Evaluate (or, for a probe, describe) the rule at call->index; sets call->verdict
//  and call->reason, or raises.
static void
s_eval_rule (lua_State *L, s_call_t *call)
{
    lua_rawgeti (L, S_SLOT_RULES, (lua_Integer) call->index + 1);
    int rec = lua_gettop (L);
    if (call->mode == S_PROBE) {
        //  Built means the top level ran and returned a valid rule table.
        lua_rawgeti (L, rec, R_RULE);
        lua_getfield (L, -1, "name");
        lua_getfield (L, -2, "description");
        size_t name_len, desc_len;
        const char *name = lua_tolstring (L, -2, &name_len);
        const char *desc = lua_tolstring (L, -1, &desc_len);
        call->name = strndup (name, name_len);
        call->description = s_clean (desc, desc_len);
        call->verdict = MESH_VERDICT_ACCEPT;
        return;
    }
    //  The top-level locals check sees, back to what the top level left them (none
    //  to put back when the chunk never assigns an upvalue: see chunkscan.c).
    lua_rawgeti (L, rec, R_SNAPS);
    int snaps = rec + 1;
    lua_rawgeti (L, rec, R_SNAP_COUNT);
    lua_Integer count = lua_tointeger (L, -1);
    lua_pop (L, 1);
    for (lua_Integer j = 1; j < count; ) {
        lua_rawgeti (L, snaps, j++);            //  the function
        lua_rawgeti (L, snaps, j++);
        int m = (int) lua_tointeger (L, -1);
        lua_pop (L, 1);
        for (int n = 1; n <= m; n++) {
            lua_rawgeti (L, snaps, j++);        //  its value, or SNAPS: nothing to do
            if (lua_rawequal (L, -1, snaps))
                lua_pop (L, 1);
            else
                lua_setupvalue (L, -2, n);
        }
        lua_pop (L, 1);
    }
    //  A fresh _ENV, in the cell every function of the rule shares.  The last one is
    //  kept when the rule left it empty: an empty table with the same hidden
    //  metatable is as fresh as a new one, and nothing can hold on to it.
    lua_rawgeti (L, rec, R_CHUNK);
    int chunk = lua_gettop (L);
    if (lua_rawgeti (L, rec, R_ENV) != LUA_TTABLE) {
        lua_pop (L, 1);
        lua_createtable (L, 0, 0);
        lua_rawgeti (L, rec, R_ENV_MT);
        lua_setmetatable (L, -2);
    }
    int env = lua_gettop (L);
    lua_pushnil (L);
    lua_rawseti (L, rec, R_ENV);                //  taken: a failed rule leaves none
    lua_pushvalue (L, env);
    lua_setupvalue (L, chunk, 1);
    lua_rawgeti (L, rec, R_CHECK);
    lua_pushvalue (L, S_SLOT_PROPOSAL);
    lua_pushvalue (L, S_SLOT_CTX);
    s_run_t *run = &call->self->run;
    run->in_check = true;               //  mesh.require_approval works from here...
    lua_call (L, 2, 2);
    run->in_check = false;              //  ...to here
    lua_pushnil (L);
    if (!lua_next (L, env)) {
        lua_pushvalue (L, env);                 //  still empty: the next one
        lua_rawseti (L, rec, R_ENV);
    }
    else
        lua_pop (L, 2);

    //  Only the exact boolean true accepts; false needs a reason.
    int first = lua_gettop (L) - 1, second = first + 1;
    if (lua_type (L, first) == LUA_TBOOLEAN && lua_toboolean (L, first))
        call->verdict = MESH_VERDICT_ACCEPT;
    else
    if (lua_type (L, first) == LUA_TBOOLEAN
    &&  lua_type (L, second) == LUA_TSTRING && lua_rawlen (L, second) > 0) {
        size_t len;
        const char *reason = lua_tolstring (L, second, &len);
        call->verdict = MESH_VERDICT_REJECT;
        call->reason = s_clean (reason, len);
    }
    else
    if (lua_type (L, first) == LUA_TBOOLEAN) {
        call->verdict = MESH_VERDICT_ERROR;
        call->reason = s_format ("check returned false with %s instead of a reason; "
                                 "return false, \"why\"", s_what (L, second));
    }
    else {
        call->verdict = MESH_VERDICT_ERROR;
        call->reason = s_format ("check returned %s; a rule must return true, or false "
                                 "and a reason", s_what (L, first));
    }
    //  An approval asked for counts only with an accept: a refused proposal is not held.
    if (call->verdict == MESH_VERDICT_ACCEPT) {
        call->approval = run->approval;
        run->approval = NULL;
    }
    s_approval_drop (run);
}

//  Run CALL under the limits; always fills call->verdict and, unless it accepts,
//  call->reason.  A failed run closes the state.
static void
s_run (mesh_vm_t *self, s_call_t *call)
{
    call->verdict = MESH_VERDICT_ERROR;
    if (!self->L && self->build_failed) {
        call->reason = strdup ("cannot build the rule state (see the first rule's reason)");
        return;
    }
    if (!self->L) {
        char *err = NULL;
        if (s_build (self, &err) != 0) {
            //  A chain's rules all loaded once, so there this is a shortage of memory or
            //  time; for a probe it is the rule's own problem.
            if (call->mode == S_EVAL || call->mode == S_CHAIN) {
                call->reason = s_format ("cannot build the rule state: %s", err ? err : "");
                self->build_failed = true;
            }
            else {
                call->reason = err;
                err = NULL;
            }
            free (err);
            if (!call->reason)
                call->reason = strdup ("out of memory");
            return;
        }
    }
    lua_State *L = self->L;
    s_run_t *run = &self->run;
    s_arm (self, L);
    lua_settop (L, 0);
    lua_pushcfunction (L, s_where);
    lua_pushcfunction (L, s_eval_main);
    lua_pushlightuserdata (L, call);
    int status = lua_pcall (L, 1, 0, 1);
    //  A failed evaluation during which the allocator refused is a memory limit even
    //  if what reached us is another error (a __close handler raising while the
    //  memory error unwinds).  The price: a rule that recovered from a refusal
    //  through Lua's emergency collection and then raised for its own reasons is
    //  reported as a memory limit too; both are refusals either way.
    if (status != LUA_OK && run->limit == S_LIMIT_NONE
    &&  (status == LUA_ERRMEM || run->refused))
        run->limit = S_LIMIT_MEMORY;
    if (status != LUA_OK && run->limit == S_LIMIT_NONE) {
        call->verdict = MESH_VERDICT_ERROR;
        free (call->reason);
        if (lua_type (L, -1) == LUA_TSTRING) {
            size_t len;
            const char *msg = lua_tolstring (L, -1, &len);
            call->reason = s_clean (msg, len);
        }
        else
            call->reason = s_format ("error raised with %s instead of a message",
                                     s_what (L, -1));
    }
    if (status != LUA_OK)
        s_close (self);
    else
        s_disarm (self, L);
    if (call->mode == S_CHAIN && status == LUA_OK)
        return;                         //  every verdict stored as it came
    //  C functions run outside the hook's reach; what they overran is seen here.
    if (run->limit == S_LIMIT_NONE && s_now_ns () > run->deadline_ns)
        run->limit = S_LIMIT_TIME;
    if (run->limit != S_LIMIT_NONE) {
        call->verdict = MESH_VERDICT_LIMIT;
        free (call->reason);
        call->reason = strdup (s_limit_names [run->limit]);
    }
    if (call->verdict == MESH_VERDICT_ACCEPT) {
        free (call->reason);
        call->reason = NULL;
    }
    else {
        if (!call->reason)
            call->reason = strdup ("out of memory");
        free (call->approval);
        call->approval = NULL;
    }
}

//  --------------------------------------------------------------------------------
//  Lua to JSON (run_json)

static json_t *
s_json_fail (lua_State *L, const char *path, const char *what)
{
    luaL_error (L, "%s: %s", path, what);
    return NULL;
}

//  Append KEY to PATH (256 bytes, in place); returns the new length.
static size_t
s_json_path (lua_State *L, int key, char *path, size_t len)
{
    size_t room = 256 - len;
    int n;
    if (lua_type (L, key) == LUA_TNUMBER)
        n = snprintf (path + len, room, "[%lld]", (long long) lua_tointeger (L, key));
    else
        n = snprintf (path + len, room, ".%.40s", lua_tostring (L, key));
    if (n < 0 || room < 2)
        return len;
    return len + ((size_t) n < room ? (size_t) n : room - 1);
}

//  The finalizer of a box holding a JSON value under construction: if an error
//  unwinds past it, the partial value is freed when the box is collected.
static int
s_box_gc (lua_State *L)
{
    json_t **box = lua_touserdata (L, 1);
    json_decref (*box);
    *box = NULL;
    return 0;
}

static json_t *
s_to_json (lua_State *L, int index, char *path, size_t path_len, int depth)
{
    luaL_checkstack (L, 8, "value nested too deeply");
    mesh_vm_charge (L, 1);
    switch (lua_type (L, index)) {
        case LUA_TNIL:
            return json_null ();
        case LUA_TBOOLEAN:
            return json_boolean (lua_toboolean (L, index));
        case LUA_TNUMBER:
            if (lua_isinteger (L, index))
                return json_integer ((json_int_t) lua_tointeger (L, index));
            if (!isfinite (lua_tonumber (L, index)))
                return s_json_fail (L, path, "inf and nan have no JSON form");
            return json_real (lua_tonumber (L, index));
        case LUA_TSTRING: {
            size_t len;
            const char *s = lua_tolstring (L, index, &len);
            json_t *j = json_stringn (s, len);
            if (!j)
                return s_json_fail (L, path, "a string that is not valid UTF-8");
            return j;
        }
        case LUA_TLIGHTUSERDATA:
            if (lua_touserdata (L, index) == NULL)
                return json_null ();
            return s_json_fail (L, path, "a userdata has no JSON form");
        case LUA_TTABLE:
            break;
        default:
            return s_json_fail (L, path, lua_pushfstring (L, "a %s has no JSON form",
                                                          luaL_typename (L, index)));
    }
    if (depth > S_JSON_DEPTH)
        return s_json_fail (L, path, "nested too deeply");
    json_t *view = mesh_view_json (L, index);
    if (view)
        return json_deep_copy (view);
    //  Keys in order, so that a failure names the same member every time.
    mesh_safelib_sorted_keys (L, index);
    int keys = lua_gettop (L);
    lua_Integer n = (lua_Integer) lua_rawlen (L, keys);
    bool array = n > 0;
    for (lua_Integer i = 1; array && i <= n; i++) {
        lua_rawgeti (L, keys, i);
        array = lua_isinteger (L, -1) && lua_tointeger (L, -1) == i;
        lua_pop (L, 1);
    }
    for (lua_Integer i = 1; !array && i <= n; i++) {
        lua_rawgeti (L, keys, i);
        if (lua_type (L, -1) != LUA_TSTRING) {
            s_json_path (L, lua_gettop (L), path, path_len);
            return s_json_fail (L, path, "a table mixing list items and named fields has "
                                         "no JSON form");
        }
        lua_pop (L, 1);
    }
    json_t *out = array ? json_array () : json_object ();
    if (!out)
        return s_json_fail (L, path, "out of memory");
    json_t **box = lua_newuserdatauv (L, sizeof (json_t *), 0);
    *box = out;
    lua_createtable (L, 0, 1);
    lua_pushcfunction (L, s_box_gc);
    lua_setfield (L, -2, "__gc");
    lua_setmetatable (L, -2);
    int boxed = lua_gettop (L);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti (L, keys, i);
        int key = lua_gettop (L);
        lua_pushvalue (L, key);
        lua_gettable (L, index);
        size_t plen = s_json_path (L, key, path, path_len);
        json_t *member = s_to_json (L, lua_gettop (L), path, plen, depth + 1);
        path [path_len] = 0;
        if (array)
            json_array_append_new (out, member);
        else {
            size_t klen;
            const char *k = lua_tolstring (L, key, &klen);
            if (!s_valid_utf8 (k, klen) || memchr (k, 0, klen)) {
                json_decref (member);
                s_json_path (L, key, path, path_len);
                return s_json_fail (L, path, "a key that is not valid UTF-8");
            }
            json_object_setn_new (out, k, klen, member);
        }
        lua_settop (L, boxed);
    }
    *box = NULL;                        //  the caller's now: the finalizer lets go
    lua_settop (L, keys - 1);
    return out;
}

//  --------------------------------------------------------------------------------
//  The API

mesh_vm_t *
mesh_vm_new (mesh_sandbox_t *const *rules, size_t count, const mesh_sandbox_limits_t *limits)
{
    mesh_vm_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->rules = calloc (count ? count : 1, sizeof (mesh_sandbox_t *));
    if (!self->rules) {
        free (self);
        return NULL;
    }
    for (size_t i = 0; i < count; i++)
        self->rules [i] = rules [i];
    self->rule_count = count;
    mesh_sandbox_limits_t l = {
        MESH_SANDBOX_DEFAULT_INSTRUCTIONS, MESH_SANDBOX_DEFAULT_MEMORY,
        MESH_SANDBOX_DEFAULT_TIME_MS
    };
    if (limits && limits->instructions > 0)
        l.instructions = limits->instructions;
    if (limits && limits->memory > 0)
        l.memory = limits->memory;
    if (limits && limits->time_ms > 0)
        l.time_ms = limits->time_ms;
    self->limits = l;
    return self;
}

void
mesh_vm_destroy (mesh_vm_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mesh_vm_t *self = *self_p;
    s_close (self);
    free (self->rules);
    free (self);
    *self_p = NULL;
}

//  Forget the inputs of a chain evaluation (their views died with its runs).
static void
s_end (mesh_vm_t *self)
{
    self->proposal = self->ctx = NULL;
}

void
mesh_vm_eval (mesh_vm_t *self, json_t *proposal, json_t *ctx, mesh_verdict_t *verdicts,
              char **reasons, char **approvals)
{
    assert (self);
    for (size_t i = 0; approvals && i < self->rule_count; i++)
        approvals [i] = NULL;
    s_end (self);
    self->proposal = proposal;
    self->ctx = ctx;
    self->build_failed = false;
    size_t next = 0;
    while (next < self->rule_count) {
        s_call_t call = {
            .self = self, .mode = S_CHAIN, .index = next, .verdicts = verdicts,
            .reasons = reasons, .approvals = approvals
        };
        s_run (self, &call);
        if (call.index >= self->rule_count)
            break;                      //  all evaluated in one go
        //  The rule at call.index raised, hit a limit, or the state could not be built:
        //  that is its verdict; the state was closed and the next rule starts afresh.
        verdicts [call.index] = call.verdict;
        reasons [call.index] = call.reason;
        free (call.approval);           //  not an accept: nothing to approve
        next = call.index + 1;
    }
    s_end (self);
}

mesh_verdict_t
mesh_vm_eval_one (mesh_vm_t *self, size_t index, json_t *proposal, json_t *ctx,
                  char **reason_p, char **approval_p)
{
    assert (self);
    assert (index < self->rule_count);
    s_end (self);
    self->proposal = proposal;
    self->ctx = ctx;
    self->build_failed = false;
    s_call_t call = { .self = self, .mode = S_EVAL, .index = index };
    s_run (self, &call);
    s_end (self);
    if (reason_p)
        *reason_p = call.reason;
    else
        free (call.reason);
    if (approval_p)
        *approval_p = call.approval;
    else
        free (call.approval);
    return call.verdict;
}

int
mesh_vm_probe (mesh_vm_t *self, size_t index, char **name_p, char **description_p,
               char **err_p)
{
    assert (self);
    assert (index < self->rule_count);
    *name_p = *description_p = *err_p = NULL;
    s_end (self);
    self->build_failed = false;
    s_call_t call = { .self = self, .mode = S_PROBE, .index = index };
    s_run (self, &call);
    if (call.verdict == MESH_VERDICT_ACCEPT && call.name && call.description) {
        *name_p = call.name;
        *description_p = call.description;
        return 0;
    }
    *err_p = call.reason ? strdup (call.reason) : strdup ("out of memory");
    free (call.reason);
    free (call.name);
    free (call.description);
    return -1;
}

json_t *
mesh_vm_run_json (mesh_vm_t *self, const char *chunkname, const char *source, size_t size,
                  char **err_p)
{
    assert (self);
    *err_p = NULL;
    s_end (self);
    s_call_t call = {
        .self = self, .mode = S_RUN_JSON, .chunkname = chunkname, .source = source,
        .size = size
    };
    s_run (self, &call);
    if (call.verdict == MESH_VERDICT_ACCEPT && call.json)
        return call.json;
    json_decref (call.json);
    if (call.verdict == MESH_VERDICT_LIMIT)
        *err_p = s_format ("hit its %s", call.reason);
    else
        *err_p = call.reason ? strdup (call.reason) : strdup ("out of memory");
    free (call.reason);
    return NULL;
}

int
mesh_vm_find (mesh_vm_t *self, const char *subject, size_t len, const char *pattern,
              char **err_p)
{
    assert (self);
    *err_p = NULL;
    s_end (self);
    s_call_t call = {
        .self = self, .mode = S_FIND, .subject = subject, .subject_len = len,
        .pattern = pattern
    };
    s_run (self, &call);
    if (call.verdict != MESH_VERDICT_ACCEPT) {
        *err_p = call.reason;
        return -1;
    }
    return call.found;
}

size_t
mesh_vm_memory (const mesh_vm_t *self)
{
    assert (self);
    return self->L ? self->run.used : 0;
}

size_t
mesh_vm_collect (mesh_vm_t *self)
{
    assert (self);
    if (!self->L)
        return 0;
    lua_gc (self->L, LUA_GCCOLLECT);
    return self->run.used;
}

size_t
mesh_vm_baseline (const mesh_vm_t *self)
{
    assert (self);
    return self->baseline;
}

size_t
mesh_vm_builds (const mesh_vm_t *self)
{
    assert (self);
    return self->builds;
}
