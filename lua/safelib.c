/*  safelib - the standard library as rules see it: allow-listed, deterministic, and
 *  with every loop in C bounded.
 *
 *  Three kinds of trouble hide in Lua's own libraries, and each has its answer here:
 *
 *  - Escapes.  Only an allow-list reaches rules: from base assert error getmetatable
 *    ipairs next pairs pcall rawequal rawlen select setmetatable tonumber tostring
 *    type xpcall;
 *    string without dump, pack and unpack; table; math without random; utf8.  Each
 *    library is a read-only view (view.c), and the string metatable's __index is the
 *    view of the sandboxed string table, hidden behind __metatable, so ("").dump is
 *    nil and `getmetatable("").__index = ...` is an error.  setmetatable refuses
 *    __gc (a finalizer runs with hooks off, where no limit can stop it) and __mode
 *    (weak tables make results depend on the collector), and guards the metatable
 *    so that neither can be added afterwards.  pcall and xpcall are there, but a
 *    limit hit inside them is raised again: they catch errors, never limits.
 *  - Non-determinism.  A verdict must replay: `pairs` and `next` walk keys in one
 *    fixed order (numbers ascending, then strings bytewise; other key types are an
 *    error), because Debian's Lua seeds string hashing per state and the raw order
 *    changes from one state to the next.  We chose to replace `pairs` outright rather
 *    than only offer mesh.sorted_pairs: a rule author who forgets the sorted version
 *    would write a rule that flips its verdict at random, and nobody would notice
 *    until an audit replay disagreed.  The price is a sort per pairs() call, small
 *    for the tables rules walk.  `tostring` of a table or function says "table" or
 *    "function" without an address, string.format refuses %p and formats %s of such
 *    values the same way, and table.sort is a stable merge sort, so equal elements
 *    keep their order (Lua's quicksort picks a random pivot on large inputs).
 *  - C loops the count hook cannot see.  The hook runs between VM instructions, so a
 *    long call into C holds the worker until it returns.  Pattern matching runs in
 *    our own matcher (match.c), which charges every step and stops at a limit
 *    wherever it is; before it starts, a pattern gets a static bound
 *    (mesh_safelib_check_pattern), so that a hopeless one is an error that says
 *    why rather than a limit: a backtracking pattern with q
 *    repetitions that are followed by more pattern, matched at every start of an
 *    n-byte subject, may take (n+1)^(q+1) steps (^q when anchored), each `?` doubling
 *    that; above MESH_SANDBOX_PATTERN_STEPS the call is refused with an error before
 *    it starts.  A repetition at the very end is free: the matcher takes its longest
 *    (or shortest) run and never comes back to it.  Patterns without special
 *    characters and plain finds use memmem, which is linear.  Loops over counts a
 *    rule chooses (table.insert/remove/move/concat/unpack, string.rep, sorting,
 *    sorted iteration) charge their length to the instruction budget before they run
 *    (mesh_vm_charge), so `table.move({}, 1, 1e15, 2)` is an instruction limit, not
 *    a hang; functions that walk or copy bytes (upper, lower, reverse, sub, byte,
 *    rep, format %s, plain find, utf8.*) charge the bytes (mesh_vm_charge_bytes),
 *    and every charge looks at the clock.  Memory needs no such care: every
 *    allocation passes the state's capped allocator, so string.rep and format
 *    padding (at most 99 wide in 5.4) stop there.
 */
#include "internal.h"
#include "sandbox.h"

#include <lauxlib.h>
#include <lualib.h>

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

//  --------------------------------------------------------------------------------
//  Keys in the one order rules may rely on

typedef struct {
    int type;                           //  LUA_TNUMBER or LUA_TSTRING
    bool is_int;
    lua_Integer i;
    double d;
    const char *s;
    size_t len;
    lua_Integer pos;                    //  where the key sits in the unsorted list
} s_key_t;

//  Read the key at INDEX; false if it is neither a number nor a string.
static bool
s_key_read (lua_State *L, int index, s_key_t *key)
{
    key->type = lua_type (L, index);
    if (key->type == LUA_TNUMBER) {
        key->is_int = lua_isinteger (L, index);
        key->i = key->is_int ? lua_tointeger (L, index) : 0;
        key->d = lua_tonumber (L, index);
        return true;
    }
    if (key->type == LUA_TSTRING) {
        key->s = lua_tolstring (L, index, &key->len);
        return true;
    }
    return false;
}

static int
s_key_cmp (const s_key_t *a, const s_key_t *b)
{
    if (a->type != b->type)
        return a->type == LUA_TNUMBER ? -1 : 1;
    if (a->type == LUA_TNUMBER) {
        if (a->is_int && b->is_int)
            return a->i < b->i ? -1 : a->i > b->i;
        //  Float keys are never integral (tables normalise those), so comparing as
        //  doubles never makes two distinct keys equal.
        return a->d < b->d ? -1 : a->d > b->d;
    }
    int c = memcmp (a->s, b->s, a->len < b->len ? a->len : b->len);
    if (c)
        return c < 0 ? -1 : 1;
    return a->len < b->len ? -1 : a->len > b->len;
}

static int
s_key_qsort_cmp (const void *a, const void *b)
{
    return s_key_cmp (a, b);
}

static int
s_bad_key (lua_State *L, int index, const char *fn)
{
    return luaL_error (L, "%s: a %s key has no defined order; only number and string keys "
                          "can be iterated", fn, luaL_typename (L, index));
}

void
mesh_safelib_sorted_keys (lua_State *L, int index)
{
    index = lua_absindex (L, index);
    luaL_checkstack (L, 6, NULL);
    json_t *json = mesh_view_json (L, index);
    lua_Integer n = 0;
    if (json && json_is_array (json)) {
        size_t size = json_array_size (json);
        mesh_vm_charge (L, size);
        lua_createtable (L, size < INT_MAX ? (int) size : 0, 0);
        for (size_t i = 1; i <= size; i++) {
            lua_pushinteger (L, (lua_Integer) i);
            lua_rawseti (L, -2, (lua_Integer) i);
        }
        return;
    }
    lua_newtable (L);
    int keys = lua_gettop (L);
    if (json) {
        const char *key;
        size_t key_len;
        json_t *value;
        json_object_keylen_foreach (json, key, key_len, value) {
            if (json_is_null (value))
                continue;
            lua_pushlstring (L, key, key_len);
            lua_rawseti (L, keys, ++n);
        }
    }
    else {
        int source = index;
        if (mesh_view_is (L, index)) {
            mesh_view_push_data (L, index);
            source = lua_gettop (L);
        }
        lua_pushnil (L);
        while (lua_next (L, source)) {
            lua_pop (L, 1);
            int type = lua_type (L, -1);
            if (type != LUA_TNUMBER && type != LUA_TSTRING)
                s_bad_key (L, -1, "pairs");
            lua_pushvalue (L, -1);
            lua_rawseti (L, keys, ++n);
        }
        if (source != index)
            lua_pop (L, 1);
    }
    if (n < 2)
        return;
    mesh_vm_charge (L, (size_t) n * (size_t) (1 + log2 ((double) n)));
    s_key_t *list = lua_newuserdatauv (L, (size_t) n * sizeof (s_key_t), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti (L, keys, i);
        s_key_read (L, -1, &list [i - 1]);     //  strings stay alive in KEYS
        list [i - 1].pos = i;
        lua_pop (L, 1);
    }
    qsort (list, (size_t) n, sizeof (s_key_t), s_key_qsort_cmp);
    lua_createtable (L, (int) n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti (L, keys, list [i - 1].pos);
        lua_rawseti (L, -2, i);
    }
    lua_replace (L, keys);
    lua_pop (L, 1);
}

int
mesh_safelib_push_sorted_keys (lua_State *L, int index, int max)
{
    index = lua_absindex (L, index);
    luaL_checkstack (L, 2 * max + 4, NULL);
    int base = lua_gettop (L);
    int n = 0;
    json_t *json = mesh_view_json (L, index);
    if (json && json_is_array (json)) {
        size_t size = json_array_size (json);
        if (size > (size_t) max)
            return -1;
        for (size_t i = 1; i <= size; i++)
            lua_pushinteger (L, (lua_Integer) i);
        return (int) size;
    }
    if (json) {
        const char *key;
        size_t key_len;
        json_t *value;
        json_object_keylen_foreach (json, key, key_len, value) {
            if (json_is_null (value))
                continue;
            if (n == max) {
                lua_settop (L, base);
                return -1;
            }
            lua_pushlstring (L, key, key_len);
            n++;
        }
    }
    else {
        int source = index;
        if (mesh_view_is (L, index)) {
            mesh_view_push_data (L, index);
            source = lua_gettop (L);
            base++;
        }
        lua_pushnil (L);
        while (lua_next (L, source)) {
            lua_pop (L, 1);
            int type = lua_type (L, -1);
            if (type != LUA_TNUMBER && type != LUA_TSTRING)
                s_bad_key (L, -1, "pairs");
            if (n == max) {
                lua_settop (L, base);
                if (source != index)
                    lua_pop (L, 1);
                return -1;
            }
            lua_pushvalue (L, -1);
            lua_insert (L, -2);                 //  the copy below the walking key
            n++;
        }
        if (source != index) {
            lua_remove (L, source);
            base--;
        }
    }
    //  Insertion sort of the stack slots base+1 .. base+n.
    s_key_t keys[n > 0 ? n : 1];
    int order[n > 0 ? n : 1];
    for (int i = 0; i < n; i++) {
        s_key_read (L, base + 1 + i, &keys [i]);
        order [i] = i;
        for (int j = i; j > 0 && s_key_cmp (&keys [order [j]], &keys [order [j - 1]]) < 0; j--) {
            int swap = order [j];
            order [j] = order [j - 1];
            order [j - 1] = swap;
        }
    }
    for (int i = 0; i < n; i++)
        lua_pushvalue (L, base + 1 + order [i]);
    lua_rotate (L, base + 1, n);
    lua_settop (L, base + n);
    return n;
}

//  Push t[k] as a rule would read it: through the view, or raw.
static void
s_get (lua_State *L, int table, int key, bool view)
{
    lua_pushvalue (L, key);
    if (view)
        lua_gettable (L, table);
    else
        lua_rawget (L, table);
}

//  pairs' iterator; upvalues: the table, its sorted keys, the position.
static int
s_pairs_next (lua_State *L)
{
    lua_Integer pos = lua_tointeger (L, lua_upvalueindex (3));
    bool view = mesh_view_is (L, lua_upvalueindex (1));
    while (true) {
        pos++;
        if (lua_rawgeti (L, lua_upvalueindex (2), pos) == LUA_TNIL) {
            lua_pushinteger (L, pos - 1);
            lua_replace (L, lua_upvalueindex (3));
            return 1;
        }
        int key = lua_gettop (L);
        s_get (L, lua_upvalueindex (1), key, view);
        if (!lua_isnil (L, -1)) {               //  a key removed during the walk is skipped
            lua_pushinteger (L, pos);
            lua_replace (L, lua_upvalueindex (3));
            return 2;
        }
        lua_pop (L, 2);
    }
}

int
mesh_safelib_pairs (lua_State *L)
{
    luaL_checkany (L, 1);
    if (!mesh_view_is (L, 1) && luaL_getmetafield (L, 1, "__pairs") != LUA_TNIL) {
        lua_pushvalue (L, 1);
        lua_call (L, 1, 3);
        return 3;
    }
    luaL_checktype (L, 1, LUA_TTABLE);
    lua_settop (L, 1);
    mesh_safelib_sorted_keys (L, 1);
    lua_pushinteger (L, 0);
    lua_pushcclosure (L, s_pairs_next, 3);
    lua_pushvalue (L, 1);
    lua_pushnil (L);
    return 3;
}

//  next (t, k): the key after K in the rules' order (the first for nil), and its
//  value.  O(n) per call, charged, so a walk with next is O(n^2): pairs is cheaper.
static int
s_next (lua_State *L)
{
    luaL_checktype (L, 1, LUA_TTABLE);
    lua_settop (L, 2);
    s_key_t after, best, key;
    bool has_after = !lua_isnil (L, 2), has_best = false;
    if (has_after && !s_key_read (L, 2, &after))
        return luaL_error (L, "invalid key to 'next'");
    bool view = mesh_view_is (L, 1);
    json_t *json = mesh_view_json (L, 1);
    if (json && json_is_array (json)) {
        lua_Integer size = (lua_Integer) json_array_size (json);
        lua_Integer i = 1;
        if (has_after)
            i = after.type == LUA_TNUMBER && after.is_int ? after.i + 1 : size + 1;
        if (i < 1 || i > size) {
            lua_pushnil (L);
            return 1;
        }
        lua_pushinteger (L, i);
        s_get (L, 1, 3, true);
        return 2;
    }
    if (json) {
        const char *k;
        size_t k_len;
        json_t *value;
        mesh_vm_charge (L, json_object_size (json));
        json_object_keylen_foreach (json, k, k_len, value) {
            if (json_is_null (value))
                continue;
            key = (s_key_t) { .type = LUA_TSTRING, .s = k, .len = k_len };
            if ((!has_after || s_key_cmp (&key, &after) > 0)
            &&  (!has_best || s_key_cmp (&key, &best) < 0)) {
                best = key;
                has_best = true;
            }
        }
        if (!has_best) {
            lua_pushnil (L);
            return 1;
        }
        lua_pushlstring (L, best.s, best.len);
        s_get (L, 1, 3, true);
        return 2;
    }
    int source = 1;
    if (view) {
        mesh_view_push_data (L, 1);
        source = lua_gettop (L);
    }
    int best_slot = lua_gettop (L) + 1;
    lua_pushnil (L);                            //  best key
    size_t n = 0;
    lua_pushnil (L);
    while (lua_next (L, source)) {
        lua_pop (L, 1);
        n++;
        if (!s_key_read (L, -1, &key))
            s_bad_key (L, -1, "next");
        if ((!has_after || s_key_cmp (&key, &after) > 0)
        &&  (!has_best || s_key_cmp (&key, &best) < 0)) {
            lua_pushvalue (L, -1);
            lua_replace (L, best_slot);
            s_key_read (L, best_slot, &best);   //  anchored in its slot
            has_best = true;
        }
    }
    mesh_vm_charge (L, n);
    if (!has_best) {
        lua_pushnil (L);
        return 1;
    }
    lua_pushvalue (L, best_slot);
    lua_pushvalue (L, best_slot);
    lua_rawget (L, source);
    return 2;
}

//  --------------------------------------------------------------------------------
//  Base functions

const char *
mesh_safelib_tostring (lua_State *L, int index, size_t *len)
{
    index = lua_absindex (L, index);
    if (luaL_callmeta (L, index, "__tostring")) {
        if (!lua_isstring (L, -1))
            luaL_error (L, "'__tostring' must return a string");
    }
    else
    switch (lua_type (L, index)) {
        case LUA_TNUMBER:
        case LUA_TSTRING:
        case LUA_TBOOLEAN:
        case LUA_TNIL:
            luaL_tolstring (L, index, NULL);
            break;
        case LUA_TTABLE:
            lua_pushliteral (L, "table");
            break;
        case LUA_TFUNCTION:
            lua_pushliteral (L, "function");
            break;
        case LUA_TLIGHTUSERDATA:
            if (lua_touserdata (L, index) == NULL)
                lua_pushliteral (L, "null");
            else
                lua_pushliteral (L, "userdata");
            break;
        default:
            lua_pushstring (L, luaL_typename (L, index));
            break;
    }
    return lua_tolstring (L, -1, len);
}

static int
s_tostring (lua_State *L)
{
    luaL_checkany (L, 1);
    mesh_safelib_tostring (L, 1, NULL);
    return 1;
}

static int
s_rawlen (lua_State *L)
{
    int type = lua_type (L, 1);
    luaL_argexpected (L, type == LUA_TTABLE || type == LUA_TSTRING, 1, "table or string");
    json_t *json = mesh_view_json (L, 1);
    if (json)
        lua_pushinteger (L, json_is_array (json) ? (lua_Integer) json_array_size (json) : 0);
    else
    if (mesh_view_is (L, 1)) {
        mesh_view_push_data (L, 1);
        lua_pushinteger (L, (lua_Integer) lua_rawlen (L, -1));
    }
    else
        lua_pushinteger (L, (lua_Integer) lua_rawlen (L, 1));
    return 1;
}

//  pcall (f, ...) and xpcall (f, msgh, ...) as Lua's, except that a limit is never
//  caught: if the instruction, memory or time limit was hit inside, it is raised
//  again on the way out (the limit is sticky, so a message handler gets no further
//  than its first instruction either).
static int
s_finish_pcall (lua_State *L, int status, int extra)
{
    mesh_vm_rethrow_limit (L, status);
    if (status != LUA_OK) {
        lua_pushboolean (L, 0);
        lua_pushvalue (L, -2);
        return 2;
    }
    return lua_gettop (L) - extra;
}

static int
s_pcall (lua_State *L)
{
    luaL_checkany (L, 1);
    lua_pushboolean (L, 1);
    lua_insert (L, 1);
    int status = lua_pcall (L, lua_gettop (L) - 2, LUA_MULTRET, 0);
    return s_finish_pcall (L, status, 0);
}

//  xpcall's message handler: the rule's (upvalue 1), except once a limit was hit.
//  A limit is raised from inside the count hook, and Lua runs the message handler
//  before it leaves the hook, with hooks off: a rule's handler would run there
//  with nothing to stop it.  So after a limit the message passes unchanged.
static int
s_xpcall_handler (lua_State *L)
{
    if (mesh_vm_limit_hit (L))
        return 1;
    lua_pushvalue (L, lua_upvalueindex (1));
    lua_insert (L, 1);
    lua_call (L, lua_gettop (L) - 1, 1);
    return 1;
}

static int
s_xpcall (lua_State *L)
{
    int n = lua_gettop (L);
    luaL_checktype (L, 2, LUA_TFUNCTION);
    lua_pushvalue (L, 2);
    lua_pushcclosure (L, s_xpcall_handler, 1);
    lua_replace (L, 2);
    lua_pushboolean (L, 1);
    lua_pushvalue (L, 1);
    lua_rotate (L, 3, 2);
    int status = lua_pcall (L, n - 2, LUA_MULTRET, 2);
    return s_finish_pcall (L, status, 2);
}

//  A metatable's __mode is read at every collection, so setting it after
//  setmetatable would make a table weak after the check.  Every metatable a rule
//  installs therefore gets this guard as its own (hidden) metatable: new __mode or
//  __gc keys are refused, anything else is stored as Lua would.  (A __gc added
//  later would be ignored by Lua anyway; it is refused so the error says so.)
static const char s_key_guard = 0;

static int
s_guard_newindex (lua_State *L)
{
    if (lua_type (L, 2) == LUA_TSTRING) {
        const char *key = lua_tostring (L, 2);
        if (strcmp (key, "__mode") == 0 || strcmp (key, "__gc") == 0)
            return luaL_error (L, "%s cannot be set on a table already used as a metatable "
                                  "(it would change how tables are collected)", key);
    }
    lua_settop (L, 3);
    lua_rawset (L, 1);
    return 0;
}

//  Give the metatable at INDEX the guard, unless it has it; a metatable with a
//  metatable of its own cannot be guarded and is refused.
static void
s_guard (lua_State *L, int index)
{
    if (lua_getmetatable (L, index)) {
        lua_rawgetp (L, LUA_REGISTRYINDEX, &s_key_guard);
        bool guarded = lua_rawequal (L, -1, -2);
        lua_pop (L, 2);
        if (!guarded)
            luaL_error (L, "setmetatable: a table used as a metatable cannot have a "
                           "metatable of its own in rules");
        return;
    }
    lua_rawgetp (L, LUA_REGISTRYINDEX, &s_key_guard);
    lua_setmetatable (L, index);
}

static int
s_setmetatable (lua_State *L)
{
    luaL_checktype (L, 1, LUA_TTABLE);
    int type = lua_type (L, 2);
    luaL_argexpected (L, type == LUA_TNIL || type == LUA_TTABLE, 2, "nil or table");
    if (type == LUA_TTABLE) {
        if (lua_getfield (L, 2, "__gc") != LUA_TNIL)
            return luaL_error (L, "setmetatable: __gc is not allowed in rules (a finalizer "
                                  "runs where no limit can stop it)");
        if (lua_getfield (L, 2, "__mode") != LUA_TNIL)
            return luaL_error (L, "setmetatable: __mode is not allowed in rules (weak tables "
                                  "make results depend on the garbage collector)");
        lua_pop (L, 2);
    }
    if (luaL_getmetafield (L, 1, "__metatable") != LUA_TNIL)
        return luaL_error (L, "cannot change a protected metatable");
    lua_settop (L, 2);
    if (type == LUA_TTABLE)
        s_guard (L, 2);
    lua_setmetatable (L, 1);
    return 1;
}

//  --------------------------------------------------------------------------------
//  Patterns

static size_t
s_class_end (const char *p, size_t len, size_t i)
{
    i++;                                        //  past '['
    if (i < len && p [i] == '^')
        i++;
    do {
        if (i >= len)
            return len;
        if (p [i++] == '%' && i < len)
            i++;
    } while (i < len && p [i] != ']');
    return i < len ? i + 1 : len;
}

//  Count what makes a Lua pattern backtrack: REPEATS are the items matched a variable
//  number of times and followed by more pattern (x*, x+, x- before another item or
//  the end anchor; %b and back-references, whose cost grows with the subject, count
//  wherever they are); OPTIONALS the x? before another item.
static void
s_pattern_shape (const char *p, size_t len, bool caret_anchors, int *repeats, int *optionals)
{
    size_t i = 0;
    int r = 0, o = 0, pending_r = 0, pending_o = 0;
    if (caret_anchors && len > 0 && p [0] == '^')
        i = 1;
    while (i < len) {
        char c = p [i];
        if (c == '(' || c == ')') {
            i++;
            continue;
        }
        r += pending_r;
        o += pending_o;
        pending_r = pending_o = 0;
        if (c == '$' && i + 1 == len)
            break;
        if (c == '%') {
            if (i + 1 >= len)
                break;                          //  malformed: Lua says so
            char d = p [i + 1];
            if (d == 'b') {
                i += 4;
                r++;
                continue;
            }
            if (d == 'f') {
                i += 2;
                if (i < len && p [i] == '[')
                    i = s_class_end (p, len, i);
                continue;
            }
            if (d >= '0' && d <= '9') {
                i += 2;
                r++;
                continue;
            }
            i += 2;
        }
        else
        if (c == '[')
            i = s_class_end (p, len, i);
        else
            i++;
        if (i < len && (p [i] == '*' || p [i] == '+' || p [i] == '-')) {
            pending_r = 1;
            i++;
        }
        else
        if (i < len && p [i] == '?') {
            pending_o = 1;
            i++;
        }
    }
    *repeats = r;
    *optionals = o;
}

double
mesh_safelib_check_pattern (lua_State *L, const char *fn, size_t subject_len,
                            const char *pattern, size_t pattern_len, bool anchored)
{
    int repeats, optionals;
    s_pattern_shape (pattern, pattern_len, anchored, &repeats, &optionals);
    int exponent = repeats + (anchored ? 0 : 1);
    double bits = exponent * log2 ((double) subject_len + 1) + optionals;
    if (bits <= log2 (MESH_SANDBOX_PATTERN_STEPS))
        return exp2 (bits);
    char shown[48];
    size_t n = 0;
    for (size_t i = 0; i < pattern_len && n < 40; i++)
        shown [n++] = pattern [i] >= 0x20 && pattern [i] < 0x7f ? pattern [i] : '?';
    shown [n] = 0;
    char msg[512];
    snprintf (msg, sizeof msg, "%s: pattern \"%s%s\" on %zu bytes could take up to %.2g steps, "
              "more than %.0f (%d repetition%s followed by more pattern, %s, %d optional "
              "item%s); anchor it with ^, repeat less, or match a shorter string",
              fn, shown, pattern_len > n ? "..." : "", subject_len, exp2 (bits),
              (double) MESH_SANDBOX_PATTERN_STEPS, repeats, repeats == 1 ? "" : "s",
              anchored ? "anchored" : "tried at every position", optionals,
              optionals == 1 ? "" : "s");
    luaL_error (L, "%s", msg);
    return 0;
}

static bool
s_nospecials (const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (strchr ("^$*+?.([%-", p [i]) && p [i])
            return false;
    return true;
}

static lua_Integer
s_posrelat (lua_Integer pos, size_t len)
{
    if (pos > 0)
        return pos;
    if (pos == 0)
        return 1;
    if (pos < -(lua_Integer) len)
        return 1;
    return (lua_Integer) len + pos + 1;
}

//  Call the original library function (upvalue 1) on the same arguments.
static int
s_original (lua_State *L)
{
    return lua_tocfunction (L, lua_upvalueindex (1)) (L);
}

static int
s_find (lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring (L, 1, &ls);
    const char *p = luaL_checklstring (L, 2, &lp);
    if (lua_toboolean (L, 4) || s_nospecials (p, lp)) {
        size_t init = (size_t) s_posrelat (luaL_optinteger (L, 3, 1), ls) - 1;
        if (init > ls) {
            luaL_pushfail (L);
            return 1;
        }
        //  memmem is linear, but linear in 2 MiB is still work: charged up front.
        mesh_vm_charge_bytes (L, ls - init);
        const char *found = lp == 0 ? s + init : memmem (s + init, ls - init, p, lp);
        if (!found) {
            luaL_pushfail (L);
            return 1;
        }
        lua_pushinteger (L, (lua_Integer) (found - s) + 1);
        lua_pushinteger (L, (lua_Integer) (found - s + lp));
        return 2;
    }
    mesh_safelib_check_pattern (L, "string.find", ls, p, lp, p [0] == '^');
    return mesh_match_find (L, true);
}

//  Check the (subject, pattern) arguments of string function FN.  A leading ^
//  anchors unless ANCHORABLE is false (gmatch takes it literally).
static void
s_check_args (lua_State *L, const char *fn, bool anchorable)
{
    size_t ls, lp;
    luaL_checklstring (L, 1, &ls);
    const char *p = luaL_checklstring (L, 2, &lp);
    mesh_safelib_check_pattern (L, fn, ls, p, lp, anchorable && p [0] == '^');
}

static int
s_match (lua_State *L)
{
    s_check_args (L, "string.match", true);
    return mesh_match_find (L, false);
}

static int
s_gmatch (lua_State *L)
{
    s_check_args (L, "string.gmatch", false);
    return mesh_match_gmatch (L);
}

static int
s_gsub (lua_State *L)
{
    s_check_args (L, "string.gsub", true);
    return mesh_match_gsub (L);
}

static int
s_rep (lua_State *L)
{
    size_t l, lsep;
    luaL_checklstring (L, 1, &l);
    lua_Integer n = luaL_checkinteger (L, 2);
    luaL_optlstring (L, 3, "", &lsep);
    //  Lua loops n times even when nothing is copied: string.rep ("", 1e15) never ends.
    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral (L, "");
        return 1;
    }
    //  Each turn is a call of memcpy or two, worth an instruction for short pieces and
    //  their bytes for long ones, charged before they run; a result larger than the
    //  memory cap allows is left to the allocator, which refuses it before any copy.
    double total = (double) n * (double) (l + lsep);
    size_t per_turn = (l + lsep) / MESH_VM_BYTES_PER_UNIT;
    if (total <= (double) mesh_vm_memory_room (L))
        mesh_vm_charge (L, (size_t) n * (per_turn ? per_turn : 1));
    return s_original (L);
}

//  The bytes I..J (Lua's relative positions, J defaulting to DEFAULT_J) of a string
//  of LEN bytes: how many a function walking that range touches.
static size_t
s_range (lua_State *L, int i_arg, lua_Integer default_i, int j_arg, lua_Integer default_j,
         size_t len)
{
    lua_Integer i = lua_isinteger (L, i_arg) ? lua_tointeger (L, i_arg) : default_i;
    lua_Integer j = lua_isinteger (L, j_arg) ? lua_tointeger (L, j_arg) : default_j;
    if (i < 0)
        i = i < -(lua_Integer) len ? 1 : (lua_Integer) len + i + 1;
    if (j < 0)
        j = j < -(lua_Integer) len ? 0 : (lua_Integer) len + j + 1;
    if (i < 1)
        i = 1;
    if (j > (lua_Integer) len)
        j = (lua_Integer) len;
    return j >= i ? (size_t) (j - i + 1) : 0;
}

//  Functions whose C loop walks their whole first argument (upper, lower, reverse,
//  utf8.offset) or a range of it (sub, byte, utf8.len, utf8.codepoint): the bytes
//  are charged before the call.
static int
s_whole (lua_State *L)
{
    size_t len = 0;
    if (lua_type (L, 1) == LUA_TSTRING || lua_type (L, 1) == LUA_TNUMBER)
        lua_tolstring (L, 1, &len);
    mesh_vm_charge_bytes (L, len);
    return s_original (L);
}

static int
s_sub (lua_State *L)
{
    size_t len = 0;
    if (lua_type (L, 1) == LUA_TSTRING)
        lua_tolstring (L, 1, &len);
    mesh_vm_charge_bytes (L, s_range (L, 2, 1, 3, -1, len));
    return s_original (L);
}

//  Functions that push one value per element (string.byte, utf8.codepoint,
//  table.unpack) make Lua grow its stack for them, and the stack is reallocated and
//  shrunk again at the next collection: on a virtual machine half a million values
//  cost tens of milliseconds of page faults in one call that nothing can interrupt.
//  So a call pushes at most S_MAX_VALUES values (Lua's own bound is about a million);
//  longer ranges are walked in pieces.
#define S_MAX_VALUES 65536

static void
s_check_values (lua_State *L, const char *fn, size_t n)
{
    mesh_vm_charge (L, n);              //  beyond the budget: the instruction limit
    if (n > S_MAX_VALUES)
        luaL_error (L, "%s: at most %d values per call in rules (asked for %I); walk a "
                       "longer range in pieces", fn, S_MAX_VALUES, (lua_Integer) n);
}

static int
s_byte (lua_State *L)
{
    size_t len = 0;
    if (lua_type (L, 1) == LUA_TSTRING)
        lua_tolstring (L, 1, &len);
    lua_Integer i = lua_isinteger (L, 2) ? lua_tointeger (L, 2) : 1;
    s_check_values (L, "string.byte", s_range (L, 2, 1, 3, i, len));
    return s_original (L);
}

//  utf8.len (s, i, j), j defaulting to -1, and utf8.codepoint (s, i, j), j defaulting
//  to i, which also pushes a value per character.
static int
s_utf8_walk (lua_State *L, bool is_len)
{
    size_t len = 0;
    if (lua_type (L, 1) == LUA_TSTRING)
        lua_tolstring (L, 1, &len);
    lua_Integer i = lua_isinteger (L, 2) ? lua_tointeger (L, 2) : 1;
    size_t n = s_range (L, 2, 1, 3, is_len ? -1 : i, len);
    mesh_vm_charge_bytes (L, n);
    if (!is_len)
        s_check_values (L, "utf8.codepoint", n);
    return s_original (L);
}

static int
s_utf8_len (lua_State *L)
{
    return s_utf8_walk (L, true);
}

static int
s_utf8_codepoint (lua_State *L)
{
    return s_utf8_walk (L, false);
}

//  Functions whose C loop runs once per argument (string.char, utf8.char).
static int
s_per_argument (lua_State *L)
{
    mesh_vm_charge (L, (size_t) lua_gettop (L));
    return s_original (L);
}

//  string.format: no %p (an address), and %s of a table, function or userdata gives
//  what tostring gives.
static int
s_format (lua_State *L)
{
    size_t len;
    const char *f = luaL_checklstring (L, 1, &len);
    int top = lua_gettop (L), arg = 1;
    for (size_t i = 0; i < len; i++) {
        if (f [i] != '%')
            continue;
        if (++i < len && f [i] == '%')
            continue;
        while (i < len && strchr ("-+ #0123456789.", f [i]) && f [i])
            i++;
        if (i >= len)
            break;                              //  Lua reports the bad format
        arg++;
        if (f [i] == 'p')
            return luaL_error (L, "string.format: %%p is not available in rules (it shows a "
                                  "memory address)");
        if (f [i] == 's' && arg <= top) {
            if (lua_type (L, arg) == LUA_TSTRING)
                mesh_vm_charge_bytes (L, lua_rawlen (L, arg));
            int type = lua_type (L, arg);
            if (type != LUA_TSTRING && type != LUA_TNUMBER) {
                mesh_safelib_tostring (L, arg, NULL);
                lua_replace (L, arg);
            }
        }
    }
    return s_original (L);
}

//  --------------------------------------------------------------------------------
//  Tables: charge what the C loops will do, then let Lua do it

static int
s_concat (lua_State *L)
{
    luaL_checktype (L, 1, LUA_TTABLE);
    lua_Integer i = luaL_optinteger (L, 3, 1);
    lua_Integer j;
    if (lua_isnoneornil (L, 4)) {
        j = luaL_len (L, 1);
        lua_settop (L, 3);
        if (lua_isnone (L, 2))
            lua_pushliteral (L, "");            //  keep the separator's position
        if (lua_gettop (L) < 3)
            lua_pushinteger (L, 1);
        lua_pushinteger (L, j);
    }
    else
        j = luaL_checkinteger (L, 4);
    if (j >= i)
        mesh_vm_charge (L, (size_t) ((lua_Unsigned) j - (lua_Unsigned) i + 1));
    //  The bytes copied are known only once the pieces are: charged right after, so a
    //  loop of concatenations sees the clock at least once per call.
    int results = s_original (L);
    mesh_vm_charge_bytes (L, lua_rawlen (L, -1));
    return results;
}

static int
s_unpack (lua_State *L)
{
    lua_Integer i = luaL_optinteger (L, 2, 1);
    lua_Integer j;
    if (lua_isnoneornil (L, 3)) {
        j = luaL_len (L, 1);
        lua_settop (L, 2);
        if (lua_gettop (L) < 2)
            lua_pushinteger (L, 1);
        lua_pushinteger (L, j);
    }
    else
        j = luaL_checkinteger (L, 3);
    if (j >= i) {
        lua_Unsigned n = (lua_Unsigned) j - (lua_Unsigned) i + 1;
        s_check_values (L, "table.unpack", n > SIZE_MAX ? SIZE_MAX : (size_t) n);
    }
    return s_original (L);
}

static int
s_insert (lua_State *L)
{
    if (lua_gettop (L) == 3) {
        lua_Integer e = luaL_len (L, 1) + 1;
        lua_Integer pos = luaL_checkinteger (L, 2);
        if (pos < e && pos >= 1)
            mesh_vm_charge (L, (size_t) (e - pos));
    }
    return s_original (L);
}

static int
s_remove (lua_State *L)
{
    lua_Integer size = luaL_len (L, 1);
    lua_Integer pos = luaL_optinteger (L, 2, size);
    if (pos < size && pos >= 0)
        mesh_vm_charge (L, (size_t) (size - pos));
    return s_original (L);
}

static int
s_move (lua_State *L)
{
    lua_Integer f = luaL_checkinteger (L, 2);
    lua_Integer e = luaL_checkinteger (L, 3);
    if (e >= f)
        mesh_vm_charge (L, (size_t) ((lua_Unsigned) e - (lua_Unsigned) f + 1));
    return s_original (L);
}

//  a < b for sort, with the comparator at index 2 when there is one.
static bool
s_sort_less (lua_State *L, int a, int b, bool comparator)
{
    if (!comparator)
        return lua_compare (L, a, b, LUA_OPLT);
    lua_pushvalue (L, 2);
    lua_pushvalue (L, a);
    lua_pushvalue (L, b);
    lua_call (L, 2, 1);
    bool less = lua_toboolean (L, -1);
    lua_pop (L, 1);
    return less;
}

//  table.sort: a bottom-up merge sort, stable, so the result never depends on a
//  pivot, and an inconsistent comparator gives some order instead of an error.
static int
s_sort (lua_State *L)
{
    luaL_checktype (L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len (L, 1);
    if (n < 2)
        return 0;
    luaL_argcheck (L, n < INT_MAX, 1, "array too big");
    if (!lua_isnoneornil (L, 2))
        luaL_checktype (L, 2, LUA_TFUNCTION);
    lua_settop (L, 2);
    bool comparator = !lua_isnil (L, 2);
    mesh_vm_charge (L, (size_t) n * (size_t) (2 + log2 ((double) n)));
    luaL_checkstack (L, 8, NULL);
    lua_createtable (L, (int) n, 0);
    lua_createtable (L, (int) n, 0);
    int src = 3, dst = 4;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti (L, 1, i);
        lua_rawseti (L, src, i);
    }
    for (lua_Integer width = 1; width < n; width *= 2) {
        for (lua_Integer lo = 1; lo <= n; lo += 2 * width) {
            lua_Integer mid = lo + width <= n + 1 ? lo + width : n + 1;
            lua_Integer hi = lo + 2 * width <= n + 1 ? lo + 2 * width : n + 1;
            lua_Integer i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                lua_rawgeti (L, src, i);
                lua_rawgeti (L, src, j);
                int top = lua_gettop (L);
                if (s_sort_less (L, top, top - 1, comparator)) {
                    lua_rawseti (L, dst, k++);  //  right first: it is strictly less
                    lua_pop (L, 1);
                    j++;
                }
                else {
                    lua_pop (L, 1);
                    lua_rawseti (L, dst, k++);
                    i++;
                }
            }
            for (; i < mid; i++) {
                lua_rawgeti (L, src, i);
                lua_rawseti (L, dst, k++);
            }
            for (; j < hi; j++) {
                lua_rawgeti (L, src, j);
                lua_rawseti (L, dst, k++);
            }
        }
        int swap = src;
        src = dst;
        dst = swap;
    }
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti (L, src, i);
        lua_seti (L, 1, i);
    }
    return 0;
}

//  --------------------------------------------------------------------------------
//  Building the environment

typedef struct {
    const char *name;
    lua_CFunction wrapper;              //  NULL: copy the library's function as it is
} s_entry_t;

static const s_entry_t s_base[] = {
    { "assert", NULL }, { "error", NULL }, { "getmetatable", NULL }, { "ipairs", NULL },
    { "rawequal", NULL }, { "select", NULL }, { "tonumber", NULL }, { "type", NULL },
    { "_VERSION", NULL },
    { NULL, NULL }
};
static const s_entry_t s_string[] = {
    { "byte", s_byte }, { "char", s_per_argument }, { "len", NULL }, { "lower", s_whole },
    { "reverse", s_whole }, { "sub", s_sub }, { "upper", s_whole },
    { "find", s_find }, { "format", s_format }, { "gmatch", s_gmatch }, { "gsub", s_gsub },
    { "match", s_match }, { "rep", s_rep },
    { NULL, NULL }
};
static const s_entry_t s_table[] = {
    { "pack", NULL }, { "concat", s_concat }, { "insert", s_insert }, { "move", s_move },
    { "remove", s_remove }, { "unpack", s_unpack },
    { NULL, NULL }
};
static const s_entry_t s_math[] = {
    { "abs", NULL }, { "acos", NULL }, { "asin", NULL }, { "atan", NULL }, { "ceil", NULL },
    { "cos", NULL }, { "deg", NULL }, { "exp", NULL }, { "floor", NULL }, { "fmod", NULL },
    { "huge", NULL }, { "log", NULL }, { "max", NULL }, { "maxinteger", NULL },
    { "min", NULL }, { "mininteger", NULL }, { "modf", NULL }, { "pi", NULL },
    { "rad", NULL }, { "sin", NULL }, { "sqrt", NULL }, { "tan", NULL },
    { "tointeger", NULL }, { "type", NULL }, { "ult", NULL },
    { NULL, NULL }
};
static const s_entry_t s_utf8[] = {
    { "char", s_per_argument }, { "charpattern", NULL }, { "codepoint", s_utf8_codepoint },
    { "codes", NULL }, { "len", s_utf8_len }, { "offset", s_whole },
    { NULL, NULL }
};

//  Copy (or wrap, with the original as upvalue 1) the entries from the library at
//  FROM into the table at TO.
static void
s_fill (lua_State *L, int from, int to, const s_entry_t *entries)
{
    for (; entries->name; entries++) {
        lua_getfield (L, from, entries->name);
        if (entries->wrapper)
            lua_pushcclosure (L, entries->wrapper, 1);
        lua_setfield (L, to, entries->name);
    }
}

//  Open a library, copy its allowed entries into a new table, and store a view of it
//  as G[NAME].  Leaves the (raw) new table on the stack and returns its index.
static int
s_library (lua_State *L, int g, const char *name, lua_CFunction open, const s_entry_t *entries)
{
    lua_pushcfunction (L, open);
    lua_call (L, 0, 1);
    int from = lua_gettop (L);
    lua_newtable (L);
    s_fill (L, from, from + 1, entries);
    lua_remove (L, from);
    int table = lua_gettop (L);
    lua_pushvalue (L, table);
    mesh_view_wrap (L, -1);
    lua_setfield (L, g, name);
    return table;
}

void
mesh_safelib_open (lua_State *L)
{
    luaL_checkstack (L, 10, NULL);
    lua_newtable (L);
    int g = lua_gettop (L);

    lua_pushcfunction (L, luaopen_base);
    lua_call (L, 0, 1);
    s_fill (L, -1, g, s_base);
    lua_pop (L, 1);
    lua_pushcfunction (L, s_next);
    lua_setfield (L, g, "next");
    lua_pushcfunction (L, mesh_safelib_pairs);
    lua_setfield (L, g, "pairs");
    lua_pushcfunction (L, s_rawlen);
    lua_setfield (L, g, "rawlen");
    lua_pushcfunction (L, s_setmetatable);
    lua_setfield (L, g, "setmetatable");
    lua_pushcfunction (L, s_tostring);
    lua_setfield (L, g, "tostring");
    lua_pushcfunction (L, s_pcall);
    lua_setfield (L, g, "pcall");
    lua_pushcfunction (L, s_xpcall);
    lua_setfield (L, g, "xpcall");
    lua_createtable (L, 0, 2);                  //  the guard of rules' metatables
    lua_pushcfunction (L, s_guard_newindex);
    lua_setfield (L, -2, "__newindex");
    lua_pushboolean (L, 0);
    lua_setfield (L, -2, "__metatable");
    lua_rawsetp (L, LUA_REGISTRYINDEX, &s_key_guard);

    int string = s_library (L, g, "string", luaopen_string, s_string);
    //  Every string shares one metatable: its methods are the sandboxed ones, and it
    //  cannot be seen or replaced.
    lua_pushliteral (L, "");
    lua_getmetatable (L, -1);
    lua_getfield (L, g, "string");
    lua_setfield (L, -2, "__index");
    lua_pushboolean (L, 0);
    lua_setfield (L, -2, "__metatable");
    lua_pop (L, 2);
    lua_pop (L, 1);
    (void) string;

    int table = s_library (L, g, "table", luaopen_table, s_table);
    lua_pushcfunction (L, s_sort);
    lua_setfield (L, table, "sort");
    lua_pop (L, 1);
    s_library (L, g, "math", luaopen_math, s_math);
    lua_pop (L, 1);
    s_library (L, g, "utf8", luaopen_utf8, s_utf8);
    lua_pop (L, 1);
    lua_settop (L, g);
}
