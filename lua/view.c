/*  view - read-only views of the rules' inputs and of the libraries they share.
 *
 *  One Lua state serves many evaluations (see vm.c), so whatever a rule can reach
 *  and keep must either be made fresh for its evaluation or be impossible to change.
 *  Inputs and libraries are the second kind: a rule sees them through views.
 *
 *  A view is an empty table P holding one private entry, P[K] = D, where K is a
 *  light userdata no rule can make (the address of a static here).  Its metatable
 *  answers reads and refuses writes, and hides itself (__metatable = false), so
 *  setmetatable cannot strip it.  P stays empty to every function a rule can call:
 *  `next` and `pairs` are replaced by sorted versions that know views (safelib.c),
 *  rawget and rawset are not offered, and rawlen counts no hash entries.
 *
 *  Every view's metatable (one per view, hidden) has __index = D, so a read is two
 *  table lookups in the interpreter and no C call when D holds the key.
 *
 *  - An input view's D is a cache: D[K] is the jansson value (borrowed, valid for
 *    the evaluation), and D's own metatable (shared) converts a member on its first
 *    read and keeps it in D, so a rule that reads proposal.action pays for that
 *    string only, and the next read - by this rule or the next in the chain - is a
 *    table lookup.  A nested object or array becomes a view itself.  JSON null is
 *    nil inside objects and mesh.null (NULL light userdata) inside arrays, so arrays
 *    keep their length; `#` of an array view is its JSON length.  Input views
 *    come from a pool the state keeps (P, its metatable and D, up to S_POOL_MAX):
 *    making three tables and four metamethod entries per view cost more than the C
 *    calls saved, and their garbage kept the collector busy.  A view taken from the
 *    pool has D emptied and pointed at the new JSON (one whose D had grown past
 *    S_CACHE_KEEP entries is replaced instead).  vm.c returns the views to the
 *    pool when an evaluation's views are out of reach (mesh_view_release).
 *  - A table view's D is the table itself - a library, or a table a rule's top level
 *    built (vm.c freezes those), made once per state; __len gives D's length.
 *
 *  A view of an earlier evaluation's JSON would be a dangling pointer, and a pooled
 *  view would show a later evaluation's input, so vm.c never keeps a reference to
 *  an input view past the evaluation that made it, and nothing a rule can write to
 *  outlives the evaluation either (test_sandbox's hostile_leak corpus).
 */
#include "internal.h"

#include <lauxlib.h>

#include <string.h>

static const char s_private = 0;        //  K: the key of a view's data
static const char s_input_mt = 0;       //  registry key of the caches' metatable
static const char s_pool = 0;           //  registry key of the pool of views

//  Views kept per state: a chain of the shipped rules uses five per evaluation.
#define S_POOL_MAX 64
//  Entries a pooled view's cache may have had and still be emptied for reuse.
#define S_CACHE_KEEP 64

#define S_K ((void *) &s_private)

static int
s_readonly (lua_State *L)
{
    luaL_where (L, 1);
    lua_pushliteral (L, "attempt to change a read-only table (inputs, libraries and the "
                        "tables a rule's top level built are read-only; make a table of "
                        "your own inside check)");
    lua_concat (L, 2);
    return lua_error (L);
}

//  The JSON behind the input view at INDEX (absolute), or NULL.
static json_t *
s_json (lua_State *L, int index)
{
    json_t *json = NULL;
    if (lua_rawgetp (L, index, S_K) == LUA_TTABLE) {
        if (lua_rawgetp (L, -1, S_K) == LUA_TLIGHTUSERDATA)
            json = lua_touserdata (L, -1);
        lua_pop (L, 1);
    }
    lua_pop (L, 1);
    return json;
}

static void s_push_view (lua_State *L, json_t *json);

void
mesh_view_push_member (lua_State *L, json_t *value, bool in_array)
{
    switch (json_typeof (value)) {
        case JSON_OBJECT:
        case JSON_ARRAY:
            s_push_view (L, value);
            break;
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
            if (in_array)
                lua_pushlightuserdata (L, NULL);
            else
                lua_pushnil (L);
            break;
    }
}

//  __index of an input view's cache D, called when D lacks KEY: convert the member
//  from the JSON and keep it in D, where the next read finds it without a C call.
static int
s_miss (lua_State *L)
{
    lua_rawgetp (L, 1, S_K);
    json_t *json = lua_touserdata (L, -1);
    lua_pop (L, 1);
    json_t *member = NULL;
    bool in_array = false;
    if (json_is_object (json) && lua_type (L, 2) == LUA_TSTRING) {
        size_t len;
        const char *key = lua_tolstring (L, 2, &len);
        member = json_object_getn (json, key, len);
    }
    else
    if (json_is_array (json) && lua_type (L, 2) == LUA_TNUMBER) {
        int exact = 0;
        lua_Integer i = lua_tointegerx (L, 2, &exact);
        if (exact && i >= 1 && (lua_Unsigned) i <= json_array_size (json))
            member = json_array_get (json, (size_t) i - 1);
        in_array = true;
    }
    if (!member || (json_is_null (member) && !in_array)) {
        lua_pushnil (L);
        return 1;
    }
    mesh_view_push_member (L, member, in_array);
    lua_pushvalue (L, 2);
    lua_pushvalue (L, -2);
    lua_rawset (L, 1);
    return 1;
}

static int
s_len (lua_State *L)
{
    json_t *json = s_json (L, 1);
    lua_pushinteger (L, json_is_array (json) ? (lua_Integer) json_array_size (json) : 0);
    return 1;
}

//  __len of a table view: the length of the table it fronts.
static int
s_data_len (lua_State *L)
{
    lua_rawgetp (L, 1, S_K);
    lua_pushinteger (L, (lua_Integer) lua_rawlen (L, -1));
    return 1;
}

//  Make the table at the top the data D of a new view P, which replaces it: P's
//  metatable (one per view) reads D, refuses writes, and answers # with LEN.
static void
s_make_view (lua_State *L, lua_CFunction len)
{
    lua_createtable (L, 0, 1);                  //  P
    lua_pushvalue (L, -2);
    lua_rawsetp (L, -2, S_K);                   //  P[K] = D
    lua_createtable (L, 0, 4);                  //  its metatable
    lua_pushvalue (L, -3);
    lua_setfield (L, -2, "__index");
    lua_pushcfunction (L, s_readonly);
    lua_setfield (L, -2, "__newindex");
    lua_pushcfunction (L, len);
    lua_setfield (L, -2, "__len");
    lua_pushboolean (L, 0);
    lua_setfield (L, -2, "__metatable");
    lua_setmetatable (L, -2);
    lua_replace (L, -2);
}

//  Empty the table at INDEX; how many entries it had.  Its keys stay in place with
//  no value, so the same members converted again land in the same slots without
//  growing it.
static size_t
s_clear (lua_State *L, int index)
{
    size_t count = 0;
    lua_pushnil (L);
    while (lua_next (L, index)) {
        lua_pop (L, 1);
        lua_pushvalue (L, -1);
        lua_pushnil (L);
        lua_rawset (L, index);
        count++;
    }
    return count;
}

//  Push a new, empty cache for JSON, with the metatable that converts misses.
static void
s_new_cache (lua_State *L, json_t *json)
{
    size_t size = json_is_array (json) ? json_array_size (json) : json_object_size (json);
    if (json_is_array (json))
        lua_createtable (L, size <= 64 ? (int) size : 0, 1);
    else
        lua_createtable (L, 0, size <= 8 ? (int) size + 1 : 8);
    lua_rawgetp (L, LUA_REGISTRYINDEX, &s_input_mt);
    lua_setmetatable (L, -2);
}

//  A new input view of JSON: a view from the pool, its cache emptied, or one made
//  the first time the pool runs short.
static void
s_push_view (lua_State *L, json_t *json)
{
    luaL_checkstack (L, 8, "input nested too deeply");
    lua_rawgetp (L, LUA_REGISTRYINDEX, &s_pool);
    int pool = lua_gettop (L);
    lua_rawgeti (L, pool, 0);
    lua_Integer used = lua_tointeger (L, -1) + 1;
    lua_pop (L, 1);
    //  Past S_POOL_MAX (a rule walking thousands of nested inputs) views are garbage
    //  after the evaluation, not kept for every later one.
    bool pooled = used <= S_POOL_MAX, reused = false;
    if (pooled && lua_rawgeti (L, pool, used) == LUA_TTABLE) {
        lua_rawgetp (L, -1, S_K);               //  P, D
        //  A cache that grew large would stay large and be walked at every reuse:
        //  its view is replaced instead.
        reused = s_clear (L, lua_gettop (L)) <= S_CACHE_KEEP;
        if (!reused)
            lua_pop (L, 2);
    }
    else
    if (pooled)
        lua_pop (L, 1);
    if (!reused) {
        s_new_cache (L, json);                  //  D
        lua_pushvalue (L, -1);
        s_make_view (L, s_len);                 //  P
        if (pooled) {
            lua_pushvalue (L, -1);
            lua_rawseti (L, pool, used);
        }
        lua_insert (L, -2);                     //  P, D
    }
    lua_pushlightuserdata (L, json);
    lua_rawsetp (L, -2, S_K);                   //  D[K] = JSON
    lua_pop (L, 1);
    if (pooled) {
        lua_pushinteger (L, used);
        lua_rawseti (L, pool, 0);
    }
    lua_replace (L, pool);
}

void
mesh_view_init (lua_State *L)
{
    lua_createtable (L, 0, 1);
    lua_pushcfunction (L, s_miss);
    lua_setfield (L, -2, "__index");
    lua_rawsetp (L, LUA_REGISTRYINDEX, &s_input_mt);
    lua_createtable (L, 8, 1);
    lua_pushinteger (L, 0);
    lua_rawseti (L, -2, 0);
    lua_rawsetp (L, LUA_REGISTRYINDEX, &s_pool);
}

//  The input views made so far are done with: they go back to the pool.  No
//  allocation (POOL[0] exists), so it cannot raise.
void
mesh_view_release (lua_State *L)
{
    if (lua_rawgetp (L, LUA_REGISTRYINDEX, &s_pool) == LUA_TTABLE) {
        lua_pushinteger (L, 0);
        lua_rawseti (L, -2, 0);
    }
    lua_pop (L, 1);
}

void
mesh_view_push_json (lua_State *L, json_t *value)
{
    if (!value)
        lua_pushnil (L);
    else
        mesh_view_push_member (L, value, false);
}

void
mesh_view_wrap (lua_State *L, int index)
{
    index = lua_absindex (L, index);
    lua_pushvalue (L, index);
    s_make_view (L, s_data_len);
    lua_replace (L, index);
}

//  Only views hold the key K (no rule can make it), so P[K] tells a view from any other
//  table, and its data tells the kinds apart: an input view's cache holds the JSON
//  under K, a table view's data never does.
int
mesh_view_kind (lua_State *L, int index, json_t **json_p)
{
    if (json_p)
        *json_p = NULL;
    if (lua_type (L, index) != LUA_TTABLE)
        return MESH_VIEW_NONE;
    if (lua_rawgetp (L, index, S_K) != LUA_TTABLE) {
        lua_pop (L, 1);
        return MESH_VIEW_NONE;
    }
    int kind = MESH_VIEW_TABLE;
    if (lua_rawgetp (L, -1, S_K) == LUA_TLIGHTUSERDATA) {
        kind = MESH_VIEW_INPUT;
        if (json_p)
            *json_p = lua_touserdata (L, -1);
    }
    lua_pop (L, 2);
    return kind;
}

bool
mesh_view_is (lua_State *L, int index)
{
    return mesh_view_kind (L, index, NULL) != MESH_VIEW_NONE;
}

json_t *
mesh_view_json (lua_State *L, int index)
{
    json_t *json;
    mesh_view_kind (L, index, &json);
    return json;
}

void
mesh_view_push_data (lua_State *L, int index)
{
    if (lua_type (L, index) != LUA_TTABLE || lua_rawgetp (L, index, S_K) != LUA_TTABLE) {
        if (lua_type (L, index) == LUA_TTABLE)
            lua_pop (L, 1);
        lua_pushnil (L);
    }
}

void
mesh_view_push_null (lua_State *L)
{
    lua_pushlightuserdata (L, NULL);
}

bool
mesh_view_is_null (lua_State *L, int index)
{
    return lua_type (L, index) == LUA_TLIGHTUSERDATA && lua_touserdata (L, index) == NULL;
}
