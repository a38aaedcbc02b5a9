/*  sandbox - one validator rule, run in a Lua 5.4 sandbox (see sandbox.h).
 *
 *  The shape follows from what breaks Lua sandboxes in practice:
 *
 *  - A fresh lua_State per evaluation, made by lua_newstate with a counting allocator
 *    that refuses any allocation that would take the state over its memory cap (the
 *    request is compared before realloc is called, so string.rep("x", 2^40) is one
 *    refused request, not an attempt).  Nothing is shared between evaluations: a rule
 *    cannot leave a global, a poisoned metatable or a cached value for the next one.
 *  - A count hook every 1000 instructions adds to the instruction count and looks at
 *    the monotonic clock.  Once a limit is hit it re-arms itself to fire on every
 *    instruction and raises again each time, so nothing the rule runs afterwards (a
 *    __close handler, a loop around an erroring call) gets further.  Whether a limit
 *    was hit is read from this file's flags, never from an error message.  The
 *    wall clock is checked once more when the evaluation ends, so a long C call
 *    (pattern backtracking, which the hook cannot see) is still reported as a time
 *    limit, though it is not interrupted: that needs a killable worker (a later issue).
 *  - The rule's environment is built from an allow-list, never by deleting names from
 *    a full one.  The libraries in it are fresh tables holding only allowed functions,
 *    and the string metatable's __index points at that sandboxed string table (so
 *    ("").dump is nil as well) and is hidden behind __metatable.  No io, os, debug,
 *    package, require, load*, dofile, collectgarbage, print, coroutine, pcall, xpcall,
 *    rawget/rawset, string.dump, math.random.  setmetatable refuses metatables with
 *    __gc (finalizers run with hooks off, so nothing could stop one) or __mode (weak
 *    tables make results depend on the collector).
 *  - Rules are text only (luaL_loadbufferx mode "t"), at most 256 KiB, without NUL.
 *    The source is read once; each evaluation compiles it in its fresh state: tens of
 *    microseconds for a shipped rule, state and libraries included, and nothing
 *    compiled ever crosses from one state to another.
 *  - Inputs are converted from JSON into new tables in the evaluation's own state, so
 *    a rule that writes into proposal or ctx changes only its private copy.
 *  - Every Lua call that can raise runs inside one lua_pcall of s_main: a memory error
 *    while building the environment or converting inputs is a verdict, not a panic.
 */
#include "sandbox.h"
#include "log.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_HOOK_PERIOD   1000            //  instructions between two hook calls
#define S_MAX_DEPTH     100             //  nesting of JSON inputs
#define S_MAX_NAME      64              //  bytes of a rule name

struct _mesh_sandbox_t {
    char *path;                         //  as given, for messages
    char *chunkname;                    //  "@" + basename: what Lua prints in errors
    char *source;
    size_t size;
    char *name;
    char *description;
    mesh_sandbox_limits_t limits;
};

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

//  The accounting of one evaluation: the allocator's userdata, which the hook reaches
//  through lua_getallocf.
typedef struct {
    size_t used, cap;                   //  bytes live, bytes allowed
    bool refused;                       //  the allocator said no at least once
    long budget, executed;              //  instructions
    int period;                         //  hook period, <= S_HOOK_PERIOD
    int64_t deadline_ns;
    s_limit_t limit;                    //  sticky once set
} s_run_t;

//  What s_main is asked to do and what it found.
typedef struct {
    const mesh_sandbox_t *self;
    bool probe;                         //  at load: check the rule table, copy its fields
    json_t *proposal, *ctx;
    mesh_verdict_t verdict;
    char *reason;                       //  heap; set only after the last Lua call
    char *name, *description;           //  probe results, heap
} s_call_t;

//  --------------------------------------------------------------------------------
//  Small helpers

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char *
s_vformat (const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf (&s, fmt, ap) < 0)
        return NULL;
    return s;
}

static char *
s_format (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    char *s = s_vformat (fmt, ap);
    va_end (ap);
    return s;
}

//  Hand a load problem to the caller (or log it when the caller did not ask).
static void
s_fail (char **err, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    char *msg = s_vformat (fmt, ap);
    va_end (ap);
    if (err) {
        free (*err);
        *err = msg;
    }
    else {
        mesh_err ("%s", msg ? msg : "out of memory");
        free (msg);
    }
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

//  A copy of S that is valid UTF-8 without control characters (invalid bytes become
//  '?', control characters a space), cut at MESH_SANDBOX_MAX_REASON bytes with "...".
//  Every input byte gives at most one output byte, so the length is known up front.
static char *
s_clean (const char *s, size_t len)
{
    size_t max = MESH_SANDBOX_MAX_REASON;
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

static const char *
s_basename (const char *path)
{
    const char *slash = strrchr (path, '/');
    return slash ? slash + 1 : path;
}

static mesh_sandbox_limits_t
s_limits (const mesh_sandbox_limits_t *limits)
{
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
    return l;
}

//  --------------------------------------------------------------------------------
//  The allocator and the hook: the three limits

static void *
s_alloc (void *ud, void *ptr, size_t osize, size_t nsize)
{
    s_run_t *run = ud;
    size_t old = ptr ? osize : 0;       //  ptr == NULL: osize is a type tag
    if (nsize == 0) {
        free (ptr);
        run->used -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > run->cap - run->used) {
        run->refused = true;            //  Lua collects and may ask once more
        return NULL;
    }
    void *block = realloc (ptr, nsize);
    if (!block) {
        run->refused = true;
        return NULL;
    }
    run->used = run->used - old + nsize;
    return block;
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
    if (run->limit != S_LIMIT_NONE) {
        //  From now on, every instruction raises: nothing can catch its way past it.
        lua_sethook (L, s_hook, LUA_MASKCOUNT, 1);
        luaL_error (L, "%s", s_limit_names [run->limit]);
    }
}

//  --------------------------------------------------------------------------------
//  The environment

static const char *s_base_names[] = {
    "assert", "error", "getmetatable", "ipairs", "next", "pairs", "rawequal", "rawlen",
    "select", "tonumber", "tostring", "type", NULL
};
static const char *s_string_names[] = {
    "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower", "match", "rep",
    "reverse", "sub", "upper", NULL
};
static const char *s_table_names[] = {
    "concat", "insert", "move", "pack", "remove", "sort", "unpack", NULL
};
static const char *s_math_names[] = {
    "abs", "acos", "asin", "atan", "ceil", "cos", "deg", "exp", "floor", "fmod", "huge",
    "log", "max", "maxinteger", "min", "mininteger", "modf", "pi", "rad", "sin", "sqrt",
    "tan", "tointeger", "type", "ult", NULL
};
static const char *s_utf8_names[] = {
    "char", "charpattern", "codepoint", "codes", "len", "offset", NULL
};

//  Run a library's luaopen_ function and leave its table on the stack.
static int
s_open_library (lua_State *L, lua_CFunction open)
{
    lua_pushcfunction (L, open);
    lua_call (L, 0, 1);
    return lua_gettop (L);
}

static void
s_copy (lua_State *L, int from, int to, const char **names)
{
    for (; *names; names++) {
        lua_getfield (L, from, *names);
        lua_setfield (L, to, *names);
    }
}

//  A new table with the allowed fields of the library at FROM, stored in ENV[NAME];
//  leaves the new table on the stack.
static int
s_sandboxed (lua_State *L, int env, const char *name, int from, const char **names)
{
    lua_newtable (L);
    int to = lua_gettop (L);
    s_copy (L, from, to, names);
    lua_pushvalue (L, to);
    lua_setfield (L, env, name);
    return to;
}

//  setmetatable (t, mt), refusing metatables that would run code outside the hook's
//  reach (__gc) or make a result depend on the collector (__mode).
static int
s_setmetatable (lua_State *L)
{
    lua_settop (L, 2);
    if (lua_type (L, 2) == LUA_TTABLE) {
        static const char *refused[] = { "__gc", "__mode" };
        for (size_t i = 0; i < sizeof refused / sizeof refused [0]; i++) {
            lua_pushstring (L, refused [i]);
            if (lua_rawget (L, 2) != LUA_TNIL)
                return luaL_error (L, "setmetatable: a metatable with %s is not allowed in "
                                      "rules", refused [i]);
            lua_pop (L, 1);
        }
    }
    lua_pushvalue (L, lua_upvalueindex (1));
    lua_insert (L, 1);
    lua_call (L, 2, 1);
    return 1;
}

//  mesh.one_of (value, list): is VALUE (raw-)equal to an element of the sequence LIST?
static int
s_mesh_one_of (lua_State *L)
{
    luaL_checktype (L, 2, LUA_TTABLE);
    lua_Integer n = (lua_Integer) lua_rawlen (L, 2);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti (L, 2, i);
        bool equal = lua_rawequal (L, 1, -1);
        lua_pop (L, 1);
        if (equal) {
            lua_pushboolean (L, 1);
            return 1;
        }
    }
    lua_pushboolean (L, 0);
    return 1;
}

//  mesh.in_range (x, lo, hi): is X a number with lo <= x <= hi?  False for anything
//  that is not a number (no string coercion) and for NaN.
static int
s_mesh_in_range (lua_State *L)
{
    luaL_checktype (L, 2, LUA_TNUMBER);
    luaL_checktype (L, 3, LUA_TNUMBER);
    bool in = lua_type (L, 1) == LUA_TNUMBER
           && lua_compare (L, 2, 1, LUA_OPLE) && lua_compare (L, 1, 3, LUA_OPLE);
    lua_pushboolean (L, in);
    return 1;
}

//  mesh.matches (s, pattern): does the whole of S match the Lua pattern?  The pattern
//  is anchored here: "^" is added unless it starts with one, "$" unless it ends with
//  an unescaped one.  False when S is not a string.
static int
s_mesh_matches (lua_State *L)
{
    size_t len;
    luaL_checktype (L, 2, LUA_TSTRING);
    const char *pattern = lua_tolstring (L, 2, &len);
    if (lua_type (L, 1) != LUA_TSTRING) {
        lua_pushboolean (L, 0);
        return 1;
    }
    size_t escapes = 0;
    if (len > 0 && pattern [len - 1] == '$')
        while (escapes + 1 < len && pattern [len - 2 - escapes] == '%')
            escapes++;
    bool has_end = len > 0 && pattern [len - 1] == '$' && escapes % 2 == 0;
    luaL_Buffer b;
    luaL_buffinit (L, &b);
    if (len == 0 || pattern [0] != '^')
        luaL_addchar (&b, '^');
    luaL_addlstring (&b, pattern, len);
    if (!has_end)
        luaL_addchar (&b, '$');
    luaL_pushresult (&b);
    int anchored = lua_gettop (L);
    lua_pushvalue (L, lua_upvalueindex (1));        //  string.find
    lua_pushvalue (L, 1);
    lua_pushvalue (L, anchored);
    lua_call (L, 2, 1);
    lua_pushboolean (L, !lua_isnil (L, -1));
    return 1;
}

//  Order for sorted_keys: numbers (ascending) before strings (bytewise, so the order
//  does not depend on the locale).
static int
s_key_less (lua_State *L)
{
    int ta = lua_type (L, 1), tb = lua_type (L, 2);
    bool less;
    if (ta == LUA_TNUMBER && tb == LUA_TNUMBER)
        less = lua_compare (L, 1, 2, LUA_OPLT);
    else
    if (ta != tb)
        less = ta == LUA_TNUMBER;
    else {
        size_t la, lb;
        const char *a = lua_tolstring (L, 1, &la);
        const char *b = lua_tolstring (L, 2, &lb);
        int c = memcmp (a, b, la < lb ? la : lb);
        less = c < 0 || (c == 0 && la < lb);
    }
    lua_pushboolean (L, less);
    return 1;
}

//  mesh.sorted_keys (t): the keys of T as a sorted sequence.  pairs() order changes
//  from one state to the next; this does not.
static int
s_mesh_sorted_keys (lua_State *L)
{
    luaL_checktype (L, 1, LUA_TTABLE);
    lua_settop (L, 1);
    lua_newtable (L);
    lua_Integer n = 0;
    lua_pushnil (L);
    while (lua_next (L, 1)) {
        lua_pop (L, 1);
        int type = lua_type (L, -1);
        if (type != LUA_TNUMBER && type != LUA_TSTRING)
            return luaL_error (L, "sorted_keys: a %s key cannot be sorted",
                               lua_typename (L, type));
        lua_pushvalue (L, -1);
        lua_rawseti (L, 2, ++n);
    }
    lua_pushvalue (L, lua_upvalueindex (1));        //  table.sort
    lua_pushvalue (L, 2);
    lua_pushcfunction (L, s_key_less);
    lua_call (L, 2, 0);
    return 1;
}

//  Build the rule environment; leaves it on the stack and returns its index.
static int
s_open_env (lua_State *L)
{
    lua_newtable (L);
    int env = lua_gettop (L);

    int base = s_open_library (L, luaopen_base);
    s_copy (L, base, env, s_base_names);
    lua_getfield (L, base, "setmetatable");
    lua_pushcclosure (L, s_setmetatable, 1);
    lua_setfield (L, env, "setmetatable");

    int string = s_open_library (L, luaopen_string);
    int sstring = s_sandboxed (L, env, "string", string, s_string_names);
    //  The metatable every string shares: methods come from the sandboxed table,
    //  and getmetatable ("") shows nothing.
    lua_pushliteral (L, "");
    lua_getmetatable (L, -1);
    lua_pushvalue (L, sstring);
    lua_setfield (L, -2, "__index");
    lua_pushboolean (L, 0);
    lua_setfield (L, -2, "__metatable");
    lua_pop (L, 2);

    int table = s_open_library (L, luaopen_table);
    s_sandboxed (L, env, "table", table, s_table_names);
    s_sandboxed (L, env, "math", s_open_library (L, luaopen_math), s_math_names);
    s_sandboxed (L, env, "utf8", s_open_library (L, luaopen_utf8), s_utf8_names);

    lua_newtable (L);
    int mesh = lua_gettop (L);
    lua_pushcfunction (L, s_mesh_one_of);
    lua_setfield (L, mesh, "one_of");
    lua_pushcfunction (L, s_mesh_in_range);
    lua_setfield (L, mesh, "in_range");
    lua_getfield (L, string, "find");
    lua_pushcclosure (L, s_mesh_matches, 1);
    lua_setfield (L, mesh, "matches");
    lua_getfield (L, table, "sort");
    lua_pushcclosure (L, s_mesh_sorted_keys, 1);
    lua_setfield (L, mesh, "sorted_keys");
    lua_pushlightuserdata (L, NULL);
    lua_setfield (L, mesh, "null");
    lua_setfield (L, env, "mesh");

    lua_settop (L, env);
    return env;
}

//  --------------------------------------------------------------------------------
//  JSON in: a new table per value.  Object members that are null are absent (nil);
//  array elements that are null are mesh.null, so arrays keep their length.

static void
s_push_json (lua_State *L, json_t *value, int depth)
{
    if (depth > S_MAX_DEPTH)
        luaL_error (L, "input nested deeper than %d levels", S_MAX_DEPTH);
    luaL_checkstack (L, 4, "input nested too deeply");
    if (!value) {
        lua_pushnil (L);
        return;
    }
    switch (json_typeof (value)) {
        case JSON_OBJECT: {
            lua_createtable (L, 0, (int) json_object_size (value));
            const char *key;
            json_t *member;
            json_object_foreach (value, key, member) {
                if (json_is_null (member))
                    continue;
                lua_pushstring (L, key);
                s_push_json (L, member, depth + 1);
                lua_rawset (L, -3);
            }
            break;
        }
        case JSON_ARRAY: {
            size_t size = json_array_size (value);
            lua_createtable (L, size < 1000000 ? (int) size : 0, 0);
            for (size_t i = 0; i < size; i++) {
                json_t *item = json_array_get (value, i);
                if (json_is_null (item))
                    lua_pushlightuserdata (L, NULL);
                else
                    s_push_json (L, item, depth + 1);
                lua_rawseti (L, -2, (lua_Integer) i + 1);
            }
            break;
        }
        case JSON_STRING:
            lua_pushlstring (L, json_string_value (value), json_string_length (value));
            break;
        case JSON_INTEGER:
            lua_pushinteger (L, (lua_Integer) json_integer_value (value));
            break;
        case JSON_REAL:
            lua_pushnumber (L, (lua_Number) json_real_value (value));
            break;
        case JSON_TRUE:
            lua_pushboolean (L, 1);
            break;
        case JSON_FALSE:
            lua_pushboolean (L, 0);
            break;
        case JSON_NULL:
        default:
            lua_pushnil (L);
            break;
    }
}

//  --------------------------------------------------------------------------------
//  One evaluation (or the load probe), all inside lua_pcall

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

//  After a probe: check the fields of the rule table at RULE.  No heap copies are made
//  until the last Lua call is done, so an error raised here leaks nothing.
static int
s_probe (lua_State *L, s_call_t *call, int rule)
{
    size_t name_len = 0, desc_len = 0;
    if (lua_getfield (L, rule, "name") != LUA_TSTRING)
        return luaL_error (L, "the rule table needs name = \"...\" (a string), not %s",
                           luaL_typename (L, -1));
    int name = lua_gettop (L);
    if (lua_getfield (L, rule, "description") != LUA_TSTRING)
        return luaL_error (L, "the rule table needs description = \"...\" (a string), not %s",
                           luaL_typename (L, -1));
    int desc = lua_gettop (L);
    if (lua_getfield (L, rule, "check") != LUA_TFUNCTION)
        return luaL_error (L, "the rule table needs check = function (proposal, ctx), not %s",
                           luaL_typename (L, -1));
    const char *name_s = lua_tolstring (L, name, &name_len);
    if (!s_valid_name (name_s, name_len) || strcmp (name_s, "builtin") == 0)
        return luaL_error (L, "rule name must be 1 to %d characters of A-Z a-z 0-9 _ - . "
                              "and not \"builtin\"", S_MAX_NAME);
    const char *desc_s = lua_tolstring (L, desc, &desc_len);
    call->name = strndup (name_s, name_len);
    call->description = s_clean (desc_s, desc_len);
    call->verdict = MESH_VERDICT_ACCEPT;
    return 0;
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

static int
s_main (lua_State *L)
{
    s_call_t *call = lua_touserdata (L, 1);
    const mesh_sandbox_t *self = call->self;
    int env = s_open_env (L);
    if (luaL_loadbufferx (L, self->source, self->size, self->chunkname, "t") != LUA_OK)
        return lua_error (L);
    lua_pushvalue (L, env);
    if (!lua_setupvalue (L, -2, 1))
        lua_pop (L, 1);
    lua_call (L, 0, 1);
    if (lua_type (L, -1) != LUA_TTABLE)
        return luaL_error (L, "the rule must return a table {name, description, check}, "
                              "not %s", luaL_typename (L, -1));
    int rule = lua_gettop (L);
    if (call->probe)
        return s_probe (L, call, rule);

    if (lua_getfield (L, rule, "check") != LUA_TFUNCTION)
        return luaL_error (L, "the rule table has no check function");
    s_push_json (L, call->proposal, 0);
    s_push_json (L, call->ctx, 0);
    lua_call (L, 2, 2);

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
    return 0;
}

//  Run CALL in a fresh state under SELF's limits; always fills call->verdict and,
//  unless it accepts, call->reason.
static void
s_run (const mesh_sandbox_t *self, s_call_t *call)
{
    s_run_t run = {
        .cap = self->limits.memory,
        .budget = self->limits.instructions,
        .period = self->limits.instructions < S_HOOK_PERIOD
                ? (int) self->limits.instructions : S_HOOK_PERIOD,
        .deadline_ns = s_now_ns () + (int64_t) self->limits.time_ms * 1000000,
    };
    call->verdict = MESH_VERDICT_ERROR;
    lua_State *L = lua_newstate (s_alloc, &run);
    if (!L)
        run.limit = S_LIMIT_MEMORY;
    else {
        lua_sethook (L, s_hook, LUA_MASKCOUNT, run.period);
        lua_pushcfunction (L, s_main);
        lua_pushlightuserdata (L, call);
        int status = lua_pcall (L, 1, 0, 0);
        //  A failed evaluation during which the allocator refused is a memory limit even
        //  if what reached us is another error (a __close handler raising while the
        //  memory error unwinds).  The price: a rule that recovered from a refusal
        //  through Lua's emergency collection and then raised for its own reasons is
        //  reported as a memory limit too; both are refusals either way.
        if (status != LUA_OK && run.limit == S_LIMIT_NONE
        &&  (status == LUA_ERRMEM || run.refused))
            run.limit = S_LIMIT_MEMORY;
        if (status != LUA_OK && run.limit == S_LIMIT_NONE) {
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
        lua_close (L);
    }
    //  C functions run outside the hook's reach; what they overran is seen here.
    if (run.limit == S_LIMIT_NONE && s_now_ns () > run.deadline_ns)
        run.limit = S_LIMIT_TIME;
    if (run.limit != S_LIMIT_NONE) {
        call->verdict = MESH_VERDICT_LIMIT;
        free (call->reason);
        call->reason = strdup (s_limit_names [run.limit]);
    }
    if (call->verdict == MESH_VERDICT_ACCEPT) {
        free (call->reason);
        call->reason = NULL;
    }
}

//  --------------------------------------------------------------------------------
//  Loading

//  Lua prints the chunk as its basename; a load message names the file as configured.
static char *
s_load_message (const mesh_sandbox_t *self, const char *msg)
{
    const char *base = self->chunkname + 1;
    size_t len = strlen (base);
    if (strncmp (msg, base, len) == 0 && msg [len] == ':')
        return s_format ("%s%s", self->path, msg + len);
    return s_format ("%s: %s", self->path, msg);
}

mesh_sandbox_t *
mesh_sandbox_load_buffer (const char *path, const char *source, size_t size,
                          const mesh_sandbox_limits_t *limits, char **err)
{
    assert (path);
    if (err)
        *err = NULL;
    if (size > MESH_SANDBOX_MAX_SOURCE) {
        s_fail (err, "%s: rule file is larger than %d KiB", path, MESH_SANDBOX_MAX_SOURCE / 1024);
        return NULL;
    }
    if (memchr (source, 0, size)) {
        s_fail (err, "%s: rule file contains a NUL byte; rules are Lua text", path);
        return NULL;
    }
    mesh_sandbox_t *self = calloc (1, sizeof *self);
    if (!self) {
        s_fail (err, "%s: out of memory", path);
        return NULL;
    }
    self->path = strdup (path);
    self->chunkname = s_format ("@%s", s_basename (path));
    self->source = malloc (size + 1);
    if (!self->path || !self->chunkname || !self->source) {
        s_fail (err, "%s: out of memory", path);
        mesh_sandbox_destroy (&self);
        return NULL;
    }
    memcpy (self->source, source, size);
    self->source [size] = 0;
    self->size = size;
    self->limits = s_limits (limits);

    s_call_t call = { .self = self, .probe = true };
    s_run (self, &call);
    if (call.verdict == MESH_VERDICT_ACCEPT && call.name && call.description) {
        self->name = call.name;
        self->description = call.description;
        return self;
    }
    char *msg = NULL;
    if (call.verdict == MESH_VERDICT_LIMIT)
        msg = s_format ("%s: loading the rule hit its %s", path, call.reason);
    else
        msg = s_load_message (self, call.reason ? call.reason : "out of memory");
    s_fail (err, "%s", msg ? msg : "out of memory");
    free (msg);
    free (call.reason);
    free (call.name);
    free (call.description);
    mesh_sandbox_destroy (&self);
    return NULL;
}

mesh_sandbox_t *
mesh_sandbox_load (const char *path, const mesh_sandbox_limits_t *limits, char **err)
{
    assert (path);
    if (err)
        *err = NULL;
    //  O_NONBLOCK: a FIFO in place of a rule must not hang the loader.
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        s_fail (err, "%s: cannot open rule file: %s", path, strerror (errno));
        return NULL;
    }
    struct stat st;
    if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)) {
        s_fail (err, "%s: not a regular file", path);
        close (fd);
        return NULL;
    }
    if (st.st_mode & S_IWOTH) {
        s_fail (err, "%s: rule file is world-writable; anyone could change the gate "
                     "(chmod o-w)", path);
        close (fd);
        return NULL;
    }
    if (st.st_size > MESH_SANDBOX_MAX_SOURCE) {
        s_fail (err, "%s: rule file is larger than %d KiB", path, MESH_SANDBOX_MAX_SOURCE / 1024);
        close (fd);
        return NULL;
    }
    //  Read at most one byte more than allowed: the file may have grown since fstat.
    char *buffer = malloc (MESH_SANDBOX_MAX_SOURCE + 1);
    size_t size = 0;
    while (buffer && size <= MESH_SANDBOX_MAX_SOURCE) {
        ssize_t n = read (fd, buffer + size, MESH_SANDBOX_MAX_SOURCE + 1 - size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            s_fail (err, "%s: cannot read rule file: %s", path, strerror (errno));
            free (buffer);
            close (fd);
            return NULL;
        }
        if (n == 0)
            break;
        size += (size_t) n;
    }
    close (fd);
    if (!buffer) {
        s_fail (err, "%s: out of memory", path);
        return NULL;
    }
    mesh_sandbox_t *self = mesh_sandbox_load_buffer (path, buffer, size, limits, err);
    free (buffer);
    return self;
}

void
mesh_sandbox_destroy (mesh_sandbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mesh_sandbox_t *self = *self_p;
    free (self->path);
    free (self->chunkname);
    free (self->source);
    free (self->name);
    free (self->description);
    free (self);
    *self_p = NULL;
}

const char *
mesh_sandbox_name (const mesh_sandbox_t *self)
{
    assert (self);
    return self->name;
}

const char *
mesh_sandbox_description (const mesh_sandbox_t *self)
{
    assert (self);
    return self->description;
}

const char *
mesh_sandbox_path (const mesh_sandbox_t *self)
{
    assert (self);
    return self->path;
}

const char *
mesh_sandbox_source (const mesh_sandbox_t *self, size_t *size_p)
{
    assert (self);
    if (size_p)
        *size_p = self->size;
    return self->source;
}

mesh_verdict_t
mesh_sandbox_eval (mesh_sandbox_t *self, json_t *proposal, json_t *ctx, char **reason_p)
{
    assert (self);
    s_call_t call = { .self = self, .proposal = proposal, .ctx = ctx };
    s_run (self, &call);
    if (call.verdict != MESH_VERDICT_ACCEPT && !call.reason)
        call.reason = strdup ("out of memory");
    if (reason_p)
        *reason_p = call.reason;
    else
        free (call.reason);
    return call.verdict;
}

const char *
mesh_verdict_name (mesh_verdict_t verdict)
{
    switch (verdict) {
        case MESH_VERDICT_ACCEPT: return "accept";
        case MESH_VERDICT_REJECT: return "reject";
        case MESH_VERDICT_ERROR:  return "error";
        case MESH_VERDICT_LIMIT:  return "limit";
    }
    return "error";
}
