/*  meshlib - the `mesh` table: helpers that make a common rule one line.
 *
 *  Everything is C, for two reasons.  Speed: a rule runs for every proposal of every
 *  agent, and a JSON-Schema check written in Lua would cost more than the rest of the
 *  rule.  Bounds: C work is invisible to the count hook, so each helper charges what
 *  it walks to the instruction budget (mesh_vm_charge), and everything that matches
 *  is bounded before it starts: Lua patterns by the same static bound as the string
 *  library (safelib.c), POSIX regular expressions by refusing what makes glibc slow
 *  (back-references; nested counted repetitions whose product exceeds 1000; patterns
 *  over 256 bytes; subjects over 4096 bytes).  Compiled regular expressions are kept
 *  in a small per-state cache, which is a cache of a pure function and so no state a
 *  rule could observe.
 *
 *  Helpers that judge return true, or false and a reason written for the decision
 *  log and the model's reask ("params.replicas: is 12, above the maximum 10").
 *  Predicates return a boolean.  Misuse (a wrong argument type, a schema with an
 *  unknown keyword) raises an error, so a typo in a rule is an `error` verdict, never
 *  a silent accept.  Inputs are read through their views (view.c); history walks go
 *  straight to the JSON behind a view instead of converting every entry.
 *
 *  Reference and examples: docs/rules.md.
 */
#include "internal.h"
#include "sandbox.h"

#include <lauxlib.h>

#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_REGEX_CACHE       16
#define S_REGEX_MAX         256         //  bytes of a POSIX pattern
#define S_REGEX_SUBJECT     4096        //  bytes of a subject matched against one
#define S_REGEX_REPEATS     1000        //  product of counted repetitions {m,n}
#define S_SCHEMA_DEPTH      32
#define S_ARG_MAX           1024        //  bytes of one exec argument
#define S_FILTER_MAX        32          //  actions in a history filter
#define S_SHOW_MAX          40          //  bytes of a value quoted in a reason

//  --------------------------------------------------------------------------------
//  Showing values in reasons

//  Push a short, printable rendering of the value at INDEX: strings quoted and cut,
//  other values as tostring would show them.
static const char *
s_show (lua_State *L, int index)
{
    index = lua_absindex (L, index);
    if (lua_type (L, index) != LUA_TSTRING)
        return mesh_safelib_tostring (L, index, NULL);
    size_t len;
    const char *s = lua_tolstring (L, index, &len);
    luaL_Buffer b;
    luaL_buffinit (L, &b);
    luaL_addchar (&b, '"');
    for (size_t i = 0; i < len && i < S_SHOW_MAX; i++) {
        unsigned char c = (unsigned char) s [i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            luaL_addchar (&b, (char) c);
        else {
            char hex[8];
            snprintf (hex, sizeof hex, "\\x%02x", c);
            luaL_addstring (&b, hex);
        }
    }
    luaL_addchar (&b, '"');
    if (len > S_SHOW_MAX)
        luaL_addstring (&b, "...");
    luaL_pushresult (&b);
    return lua_tostring (L, -1);
}

static const char *
s_article_type (lua_State *L, int index)
{
    switch (lua_type (L, index)) {
        case LUA_TNIL:      return "nothing (nil)";
        case LUA_TNONE:     return "nothing";
        case LUA_TBOOLEAN:  return "a boolean";
        case LUA_TNUMBER:   return lua_isinteger (L, index) ? "an integer" : "a number";
        case LUA_TSTRING:   return "a string";
        case LUA_TTABLE:    return "a table";
        case LUA_TFUNCTION: return "a function";
        case LUA_TLIGHTUSERDATA:
            return lua_touserdata (L, index) == NULL ? "null" : "a userdata";
        default:            return "a value of another type";
    }
}

//  --------------------------------------------------------------------------------
//  Membership and ranges

//  Is the value at VALUE in the sequence at LIST (raw equality)?
static bool
s_in_list (lua_State *L, int value, int list)
{
    if (lua_isnoneornil (L, value))
        return false;
    lua_Integer n = luaL_len (L, list);
    mesh_vm_charge (L, n > 0 ? (size_t) n : 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti (L, list, i);
        bool equal = lua_rawequal (L, value, -1);
        lua_pop (L, 1);
        if (equal)
            return true;
    }
    return false;
}

//  mesh.one_of (value, list): true if VALUE equals an element of LIST.
static int
s_one_of (lua_State *L)
{
    luaL_checktype (L, 2, LUA_TTABLE);
    lua_pushboolean (L, s_in_list (L, 1, 2));
    return 1;
}

//  mesh.allowed (value, list [, what]): true, or false and "WHAT "x" is not allowed;
//  allowed: a, b".
static int
s_allowed (lua_State *L)
{
    luaL_checktype (L, 2, LUA_TTABLE);
    const char *what = luaL_optstring (L, 3, "value");
    if (s_in_list (L, 1, 2)) {
        lua_pushboolean (L, 1);
        return 1;
    }
    lua_settop (L, 3);
    lua_pushboolean (L, 0);
    luaL_Buffer b;
    luaL_buffinit (L, &b);
    lua_pushfstring (L, "%s ", what);
    luaL_addvalue (&b);
    s_show (L, 1);
    luaL_addvalue (&b);
    luaL_addstring (&b, " is not allowed; allowed: ");
    lua_Integer n = luaL_len (L, 2);
    for (lua_Integer i = 1; i <= n && i <= 20; i++) {
        if (i > 1)
            luaL_addstring (&b, ", ");
        lua_geti (L, 2, i);
        mesh_safelib_tostring (L, -1, NULL);
        lua_remove (L, -2);
        luaL_addvalue (&b);
    }
    if (n > 20)
        luaL_addstring (&b, ", ...");
    if (n < 1)
        luaL_addstring (&b, "(none)");
    luaL_pushresult (&b);
    return 2;
}

//  mesh.in_range (x, lo, hi): x a number with lo <= x <= hi.
static int
s_in_range (lua_State *L)
{
    luaL_checktype (L, 2, LUA_TNUMBER);
    luaL_checktype (L, 3, LUA_TNUMBER);
    lua_Number lo = lua_tonumber (L, 2);
    lua_Number hi = lua_tonumber (L, 3);
    bool in = lua_type (L, 1) == LUA_TNUMBER && lua_tonumber (L, 1) >= lo
           && lua_tonumber (L, 1) <= hi;
    lua_pushboolean (L, in);
    return 1;
}

//  --------------------------------------------------------------------------------
//  Lua patterns

//  mesh.matches (s, pattern): the whole of S matches the Lua PATTERN.  Upvalue 1 is
//  the sandbox's string.find.
static int
s_matches (lua_State *L)
{
    size_t len;
    const char *pattern = luaL_checklstring (L, 2, &len);
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
    size_t alen;
    const char *apattern = lua_tolstring (L, anchored, &alen);
    mesh_safelib_check_pattern (L, "mesh.matches", lua_rawlen (L, 1), apattern, alen, true);
    lua_pushvalue (L, lua_upvalueindex (1));
    lua_pushvalue (L, 1);
    lua_pushvalue (L, anchored);
    lua_call (L, 2, 1);
    lua_pushboolean (L, !lua_isnil (L, -1));
    return 1;
}

//  --------------------------------------------------------------------------------
//  POSIX regular expressions

typedef struct {
    char *pattern;                      //  NULL: free slot
    size_t len;
    bool anchored;
    regex_t regex;
} s_regex_t;

typedef struct {
    s_regex_t slot[S_REGEX_CACHE];
    int next;                           //  replaced next, round robin
} s_regex_cache_t;

static int
s_regex_cache_gc (lua_State *L)
{
    s_regex_cache_t *cache = lua_touserdata (L, 1);
    for (int i = 0; i < S_REGEX_CACHE; i++)
        if (cache->slot [i].pattern) {
            regfree (&cache->slot [i].regex);
            free (cache->slot [i].pattern);
            cache->slot [i].pattern = NULL;
        }
    return 0;
}

//  Refuse what makes glibc's regex engine slow; raises naming FN.
static void
s_regex_vet (lua_State *L, const char *fn, const char *p, size_t len)
{
    if (len > S_REGEX_MAX)
        luaL_error (L, "%s: pattern longer than %d bytes", fn, S_REGEX_MAX);
    if (memchr (p, 0, len))
        luaL_error (L, "%s: pattern contains a NUL byte", fn);
    double product = 1;
    for (size_t i = 0; i < len; i++) {
        if (p [i] == '\\' && i + 1 < len && p [i + 1] >= '0' && p [i + 1] <= '9')
            luaL_error (L, "%s: back-references (\\%c) are not allowed: they make matching "
                           "exponential", fn, p [i + 1]);
        if (p [i] == '\\') {
            i++;
            continue;
        }
        if (p [i] == '{') {
            //  {m}, {m,}, {m,n}: the larger number given counts.
            long m = 0, n = -1;
            size_t j = i + 1;
            while (j < len && p [j] >= '0' && p [j] <= '9' && m < 100000)
                m = m * 10 + (p [j++] - '0');
            if (j < len && p [j] == ',') {
                j++;
                if (j < len && p [j] >= '0' && p [j] <= '9') {
                    n = 0;
                    while (j < len && p [j] >= '0' && p [j] <= '9' && n < 100000)
                        n = n * 10 + (p [j++] - '0');
                }
            }
            product *= (double) ((n > m ? n : m) + 1);
        }
    }
    if (product > S_REGEX_REPEATS)
        luaL_error (L, "%s: counted repetitions {m,n} multiply to more than %d", fn,
                    S_REGEX_REPEATS);
}

//  The compiled form of P (anchored: the whole subject must match), from the cache.
static regex_t *
s_regex_get (lua_State *L, s_regex_cache_t *cache, const char *fn, const char *p, size_t len,
             bool anchored)
{
    for (int i = 0; i < S_REGEX_CACHE; i++) {
        s_regex_t *slot = &cache->slot [i];
        if (slot->pattern && slot->len == len && slot->anchored == anchored
        &&  memcmp (slot->pattern, p, len) == 0)
            return &slot->regex;
    }
    s_regex_vet (L, fn, p, len);
    char text[S_REGEX_MAX + 8];
    snprintf (text, sizeof text, anchored ? "^(%.*s)$" : "%.*s", (int) len, p);
    regex_t regex;
    int rc = regcomp (&regex, text, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[128];
        regerror (rc, &regex, msg, sizeof msg);
        luaL_error (L, "%s: pattern \"%s\" is not a POSIX extended regular expression: %s",
                    fn, text, msg);
    }
    char *copy = malloc (len + 1);
    if (!copy) {
        regfree (&regex);
        luaL_error (L, "%s: out of memory", fn);
    }
    memcpy (copy, p, len);
    copy [len] = 0;
    s_regex_t *slot = &cache->slot [cache->next];
    cache->next = (cache->next + 1) % S_REGEX_CACHE;
    if (slot->pattern) {
        regfree (&slot->regex);
        free (slot->pattern);
    }
    slot->pattern = copy;
    slot->len = len;
    slot->anchored = anchored;
    slot->regex = regex;
    return &slot->regex;
}

//  0 match, 1 no match, or a reason the subject cannot be matched (static string).
static const char *
s_regex_run (lua_State *L, regex_t *regex, const char *s, size_t len, bool *matched)
{
    *matched = false;
    if (len > S_REGEX_SUBJECT)
        return "is longer than 4096 bytes, too long to match against a pattern";
    if (memchr (s, 0, len))
        return "contains a NUL byte";
    mesh_vm_charge (L, len);
    *matched = regexec (regex, s, 0, NULL, 0) == 0;
    return NULL;
}

//  mesh.regex (s, pattern): the whole of S matches the POSIX extended regular
//  expression PATTERN.  False for non-strings and strings with a NUL byte; an error
//  for subjects over 4096 bytes and for patterns refused by s_regex_vet.
static int
s_regex (lua_State *L)
{
    size_t plen, slen;
    const char *p = luaL_checklstring (L, 2, &plen);
    s_regex_cache_t *cache = lua_touserdata (L, lua_upvalueindex (1));
    regex_t *regex = s_regex_get (L, cache, "mesh.regex", p, plen, true);
    if (lua_type (L, 1) != LUA_TSTRING) {
        lua_pushboolean (L, 0);
        return 1;
    }
    const char *s = lua_tolstring (L, 1, &slen);
    bool matched;
    const char *why = s_regex_run (L, regex, s, slen, &matched);
    if (why && slen > S_REGEX_SUBJECT)
        return luaL_error (L, "mesh.regex: the subject %s", why);
    lua_pushboolean (L, matched);
    return 1;
}

//  --------------------------------------------------------------------------------
//  JSON-Schema subset

typedef struct {
    lua_State *L;
    s_regex_cache_t *cache;
    char path[512];
    size_t path_len;
    int depth;
} s_schema_t;

static const char *s_keywords[] = {
    "type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "pattern", "required", "properties", "additionalProperties",
    "items", "minItems", "maxItems", "description", "title", "default", "examples",
    "$comment", NULL
};

//  What JSON type the value at INDEX has, as JSON Schema names it; for tables
//  *object and *array say which shapes it fits (an empty table fits both).
static const char *
s_schema_type (lua_State *L, int index, bool *object, bool *array)
{
    *object = *array = false;
    switch (lua_type (L, index)) {
        case LUA_TNIL:
        case LUA_TNONE:
            return "nothing (nil)";
        case LUA_TBOOLEAN:
            return "a boolean";
        case LUA_TNUMBER: {
            if (lua_isinteger (L, index))
                return "an integer";
            lua_Number x = lua_tonumber (L, index);
            return x == floor (x) && isfinite (x) ? "an integer" : "a number";
        }
        case LUA_TSTRING:
            return "a string";
        case LUA_TLIGHTUSERDATA:
            return lua_touserdata (L, index) == NULL ? "null" : "a userdata";
        case LUA_TTABLE:
            break;
        default:
            return s_article_type (L, index);
    }
    json_t *json = mesh_view_json (L, index);
    if (json) {
        *object = json_is_object (json);
        *array = json_is_array (json);
        return *object ? "an object" : "an array";
    }
    if (mesh_view_is (L, index))
        return "a table";
    //  A plain table: an array if its keys are exactly 1..n, an object if they are all
    //  strings; an empty one is both.
    size_t count = 0, strings = 0;
    lua_pushnil (L);
    while (lua_next (L, index)) {
        lua_pop (L, 1);
        count++;
        if (lua_type (L, -1) == LUA_TSTRING)
            strings++;
    }
    mesh_vm_charge (L, count);
    *object = strings == count;
    *array = count == 0 || (strings == 0 && lua_rawlen (L, index) == count);
    if (*array && count)
        return "an array";
    if (*object && count)
        return "an object";
    return count ? "a table with mixed keys" : "an empty table";
}

static bool
s_type_fits (const char *want, const char *have, bool object, bool array)
{
    if (strcmp (want, "object") == 0)
        return object;
    if (strcmp (want, "array") == 0)
        return array;
    if (strcmp (want, "number") == 0)
        return strcmp (have, "a number") == 0 || strcmp (have, "an integer") == 0;
    if (strcmp (want, "integer") == 0)
        return strcmp (have, "an integer") == 0;
    if (strcmp (want, "string") == 0)
        return strcmp (have, "a string") == 0;
    if (strcmp (want, "boolean") == 0)
        return strcmp (have, "a boolean") == 0;
    if (strcmp (want, "null") == 0)
        return strcmp (have, "null") == 0;
    return false;
}

static const char *s_type_names[] = {
    "object", "array", "string", "number", "integer", "boolean", "null", NULL
};

static bool
s_known_type (const char *name)
{
    for (int i = 0; s_type_names [i]; i++)
        if (strcmp (s_type_names [i], name) == 0)
            return true;
    return false;
}

//  Raise an error about the schema itself.
static int
s_schema_bad (s_schema_t *S, const char *fmt, const char *detail)
{
    return luaL_error (S->L, "mesh.schema: schema for %s: %s %s", S->path, fmt, detail);
}

//  Push "PATH: message" and return false.
static bool
s_fail (s_schema_t *S, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    lua_pushfstring (S->L, "%s: ", S->path);
    lua_pushvfstring (S->L, fmt, ap);
    va_end (ap);
    lua_concat (S->L, 2);
    return false;
}

static void
s_path_push (s_schema_t *S, lua_State *L, int key, size_t *saved)
{
    *saved = S->path_len;
    size_t room = sizeof S->path - S->path_len;
    if (room < 8)
        return;
    int n;
    if (lua_type (L, key) == LUA_TNUMBER)
        n = snprintf (S->path + S->path_len, room, "[%lld]", (long long) lua_tointeger (L, key));
    else {
        size_t len;
        const char *k = lua_tolstring (L, key, &len);
        bool ident = len > 0 && len < 64 && !(k [0] >= '0' && k [0] <= '9');
        for (size_t i = 0; ident && i < len; i++)
            ident = (k [i] >= 'a' && k [i] <= 'z') || (k [i] >= 'A' && k [i] <= 'Z')
                 || (k [i] >= '0' && k [i] <= '9') || k [i] == '_';
        if (ident)
            n = snprintf (S->path + S->path_len, room, ".%.*s", (int) len, k);
        else
            n = snprintf (S->path + S->path_len, room, "[\"%.*s\"]", (int) (len < 32 ? len : 32),
                          k);
    }
    if (n > 0)
        S->path_len += (size_t) n < room ? (size_t) n : room - 1;
}

static void
s_path_pop (s_schema_t *S, size_t saved)
{
    S->path_len = saved;
    S->path [saved] = 0;
}

//  Deep equality of two Lua values as JSON values (tables by content).
static bool
s_equal (lua_State *L, int a, int b, int depth)
{
    a = lua_absindex (L, a);
    b = lua_absindex (L, b);
    if (lua_type (L, a) != LUA_TTABLE || lua_type (L, b) != LUA_TTABLE)
        return lua_rawequal (L, a, b);
    if (depth > S_SCHEMA_DEPTH)
        luaL_error (L, "mesh.schema: values nested deeper than %d", S_SCHEMA_DEPTH);
    mesh_safelib_sorted_keys (L, a);
    mesh_safelib_sorted_keys (L, b);
    int ka = lua_gettop (L) - 1, kb = ka + 1;
    lua_Integer n = (lua_Integer) lua_rawlen (L, ka);
    bool equal = n == (lua_Integer) lua_rawlen (L, kb);
    for (lua_Integer i = 1; equal && i <= n; i++) {
        lua_rawgeti (L, ka, i);
        lua_rawgeti (L, kb, i);
        equal = lua_rawequal (L, -1, -2);
        if (equal) {
            lua_gettable (L, b);                //  b[key]; pops the key
            lua_pushvalue (L, -2);
            lua_gettable (L, a);                //  a[key]
            equal = s_equal (L, -1, -2, depth + 1);
            lua_pop (L, 3);
        }
        else
            lua_pop (L, 2);
    }
    lua_pop (L, 2);
    return equal;
}

//  The number in field NAME of the schema at SCHEMA, if present; raises if it is
//  there and not a number.
static bool
s_schema_number (s_schema_t *S, int schema, const char *name, lua_Number *out)
{
    lua_State *L = S->L;
    int type = lua_getfield (L, schema, name);
    if (type == LUA_TNIL) {
        lua_pop (L, 1);
        return false;
    }
    if (type != LUA_TNUMBER)
        s_schema_bad (S, name, "must be a number");
    *out = lua_tonumber (L, -1);
    lua_pop (L, 1);
    return true;
}

static bool s_validate (s_schema_t *S, int value, int schema);

//  Check the keywords of the schema at SCHEMA; raises on one that is unknown.
static void
s_schema_keys (s_schema_t *S, int schema)
{
    lua_State *L = S->L;
    mesh_safelib_sorted_keys (L, schema);
    lua_Integer n = (lua_Integer) lua_rawlen (L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti (L, -1, i);
        const char *key = lua_tostring (L, -1);
        bool known = false;
        for (int k = 0; !known && key && s_keywords [k]; k++)
            known = strcmp (key, s_keywords [k]) == 0;
        if (!known)
            s_schema_bad (S, "has the unknown keyword", s_show (L, -1));
        lua_pop (L, 1);
    }
    lua_pop (L, 1);
}

static bool
s_validate_type (s_schema_t *S, int value, int schema, const char *have, bool object,
                 bool array)
{
    lua_State *L = S->L;
    int type = lua_getfield (L, schema, "type");
    if (type == LUA_TNIL) {
        lua_pop (L, 1);
        return true;
    }
    bool fits = false;
    if (type == LUA_TSTRING) {
        const char *want = lua_tostring (L, -1);
        if (!s_known_type (want))
            s_schema_bad (S, "type: unknown type", s_show (L, -1));
        fits = s_type_fits (want, have, object, array);
        if (!fits) {
            const char *article = strcmp (want, "integer") == 0 || strcmp (want, "object") == 0
                                || strcmp (want, "array") == 0 ? "an" : "a";
            if (strcmp (want, "null") == 0)
                article = "";
            s_fail (S, "must be %s%s%s, not %s", article, *article ? " " : "", want, have);
            lua_remove (L, -2);
            return false;
        }
    }
    else
    if (type == LUA_TTABLE) {
        int list = lua_gettop (L);
        lua_Integer n = luaL_len (L, list);
        luaL_Buffer b;
        for (lua_Integer i = 1; i <= n && !fits; i++) {
            lua_geti (L, list, i);
            const char *want = lua_tostring (L, -1);
            if (lua_type (L, -1) != LUA_TSTRING || !s_known_type (want))
                s_schema_bad (S, "type: unknown type", s_show (L, -1));
            fits = s_type_fits (want, have, object, array);
            lua_pop (L, 1);
        }
        if (!fits) {
            luaL_buffinit (L, &b);
            for (lua_Integer i = 1; i <= n; i++) {
                if (i > 1)
                    luaL_addstring (&b, i == n ? " or " : ", ");
                lua_geti (L, list, i);
                luaL_addvalue (&b);
            }
            luaL_pushresult (&b);
            const char *wants = lua_tostring (L, -1);
            s_fail (S, "must be %s, not %s", wants, have);
            lua_remove (L, -2);
            lua_remove (L, -2);
            return false;
        }
    }
    else
        s_schema_bad (S, "type", "must be a type name or a list of them");
    lua_pop (L, 1);
    return true;
}

static bool
s_validate_values (s_schema_t *S, int value, int schema)
{
    lua_State *L = S->L;
    if (lua_getfield (L, schema, "const") != LUA_TNIL) {
        if (!s_equal (L, value, -1, 0)) {
            const char *want = s_show (L, -1);
            s_fail (S, "must be %s", want);
            lua_remove (L, -2);
            lua_remove (L, -2);
            return false;
        }
    }
    lua_pop (L, 1);
    int type = lua_getfield (L, schema, "enum");
    if (type == LUA_TNIL) {
        lua_pop (L, 1);
        return true;
    }
    if (type != LUA_TTABLE)
        s_schema_bad (S, "enum", "must be a list of values");
    int list = lua_gettop (L);
    lua_Integer n = luaL_len (L, list);
    mesh_vm_charge (L, n > 0 ? (size_t) n : 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti (L, list, i);
        bool equal = s_equal (L, value, -1, 0);
        lua_pop (L, 1);
        if (equal) {
            lua_pop (L, 1);
            return true;
        }
    }
    luaL_Buffer b;
    luaL_buffinit (L, &b);
    for (lua_Integer i = 1; i <= n && i <= 20; i++) {
        if (i > 1)
            luaL_addstring (&b, ", ");
        lua_geti (L, list, i);
        s_show (L, -1);
        lua_remove (L, -2);
        luaL_addvalue (&b);
    }
    if (n > 20)
        luaL_addstring (&b, ", ...");
    luaL_pushresult (&b);
    s_fail (S, "must be one of: %s", lua_tostring (L, -1));
    lua_remove (L, -2);
    lua_remove (L, -2);
    return false;
}

static bool
s_validate_number (s_schema_t *S, int value, int schema)
{
    lua_State *L = S->L;
    if (lua_type (L, value) != LUA_TNUMBER)
        return true;
    lua_Number x = lua_tonumber (L, value), bound;
    const char *shown = NULL;
    bool ok = true;
    if (ok && s_schema_number (S, schema, "minimum", &bound) && !(x >= bound)) {
        ok = false;
        lua_pushnumber (L, bound);
        shown = "below the minimum";
    }
    if (ok && s_schema_number (S, schema, "maximum", &bound) && !(x <= bound)) {
        ok = false;
        lua_pushnumber (L, bound);
        shown = "above the maximum";
    }
    if (ok && s_schema_number (S, schema, "exclusiveMinimum", &bound) && !(x > bound)) {
        ok = false;
        lua_pushnumber (L, bound);
        shown = "must be greater than";
    }
    if (ok && s_schema_number (S, schema, "exclusiveMaximum", &bound) && !(x < bound)) {
        ok = false;
        lua_pushnumber (L, bound);
        shown = "must be less than";
    }
    if (ok)
        return true;
    //  Integral bounds print as integers ("10", not "10.0").
    if (bound == floor (bound) && fabs (bound) < 9e15) {
        lua_pop (L, 1);
        lua_pushinteger (L, (lua_Integer) bound);
    }
    int b = lua_gettop (L);
    const char *have = mesh_safelib_tostring (L, value, NULL);
    const char *limit = mesh_safelib_tostring (L, b, NULL);
    s_fail (S, "is %s, %s %s", have, shown, limit);
    lua_replace (L, b);
    lua_settop (L, b);
    return false;
}

static size_t
s_utf8_chars (const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char) s [i] & 0xc0) != 0x80)
            n++;
    return n;
}

static bool
s_validate_string (s_schema_t *S, int value, int schema)
{
    lua_State *L = S->L;
    if (lua_type (L, value) != LUA_TSTRING)
        return true;
    size_t len;
    const char *s = lua_tolstring (L, value, &len);
    size_t chars = s_utf8_chars (s, len);
    lua_Number bound;
    if (s_schema_number (S, schema, "minLength", &bound) && (lua_Number) chars < bound)
        return s_fail (S, "is %d characters long, shorter than the minimum %d", (int) chars,
                       (int) bound);
    if (s_schema_number (S, schema, "maxLength", &bound) && (lua_Number) chars > bound)
        return s_fail (S, "is %d characters long, longer than the maximum %d", (int) chars,
                       (int) bound);
    int type = lua_getfield (L, schema, "pattern");
    if (type == LUA_TNIL) {
        lua_pop (L, 1);
        return true;
    }
    if (type != LUA_TSTRING)
        s_schema_bad (S, "pattern", "must be a string (a POSIX extended regular expression)");
    size_t plen;
    const char *p = lua_tolstring (L, -1, &plen);
    regex_t *regex = s_regex_get (L, S->cache, "mesh.schema", p, plen, false);
    bool matched;
    const char *why = s_regex_run (L, regex, s, len, &matched);
    if (why) {
        lua_pop (L, 1);
        return s_fail (S, "%s", why);
    }
    if (!matched) {
        s_show (L, value);
        s_fail (S, "%s does not match the pattern %s", lua_tostring (L, -1), p);
        lua_replace (L, -3);
        lua_pop (L, 1);
        return false;
    }
    lua_pop (L, 1);
    return true;
}

static bool
s_validate_array (s_schema_t *S, int value, int schema)
{
    lua_State *L = S->L;
    lua_Integer n = luaL_len (L, value);
    lua_Number bound;
    if (s_schema_number (S, schema, "minItems", &bound) && (lua_Number) n < bound)
        return s_fail (S, "has %d items, fewer than the minimum %d", (int) n, (int) bound);
    if (s_schema_number (S, schema, "maxItems", &bound) && (lua_Number) n > bound)
        return s_fail (S, "has %d items, more than the maximum %d", (int) n, (int) bound);
    int type = lua_getfield (L, schema, "items");
    if (type == LUA_TNIL) {
        lua_pop (L, 1);
        return true;
    }
    if (type != LUA_TTABLE)
        s_schema_bad (S, "items", "must be a schema (a table)");
    int items = lua_gettop (L);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_pushinteger (L, i);
        size_t saved;
        s_path_push (S, L, -1, &saved);
        lua_gettable (L, value);
        bool ok = s_validate (S, lua_gettop (L), items);
        s_path_pop (S, saved);
        if (!ok) {
            lua_replace (L, items);             //  the message
            lua_settop (L, items);
            return false;
        }
        lua_pop (L, 1);
    }
    lua_pop (L, 1);
    return true;
}

static bool
s_validate_object (s_schema_t *S, int value, int schema)
{
    lua_State *L = S->L;
    int base = lua_gettop (L);
    int type = lua_getfield (L, schema, "required");
    if (type != LUA_TNIL && type != LUA_TTABLE)
        s_schema_bad (S, "required", "must be a list of property names");
    if (type == LUA_TTABLE) {
        lua_Integer n = luaL_len (L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_geti (L, base + 1, i) != LUA_TSTRING)
                s_schema_bad (S, "required", "must be a list of property names");
            lua_pushvalue (L, -1);
            bool present = lua_gettable (L, value) != LUA_TNIL;
            lua_pop (L, 1);
            if (!present) {
                size_t saved;
                s_path_push (S, L, -1, &saved);
                s_fail (S, "is missing (required)");
                s_path_pop (S, saved);
                lua_replace (L, base + 1);
                lua_settop (L, base + 1);
                return false;
            }
            lua_pop (L, 1);
        }
    }
    lua_settop (L, base);
    type = lua_getfield (L, schema, "properties");
    if (type != LUA_TNIL && type != LUA_TTABLE)
        s_schema_bad (S, "properties", "must be a table of schemas");
    int properties = base + 1;
    int extra = lua_getfield (L, schema, "additionalProperties");
    if (extra != LUA_TNIL && extra != LUA_TBOOLEAN && extra != LUA_TTABLE)
        s_schema_bad (S, "additionalProperties", "must be a boolean or a schema");
    int additional = base + 2;
    //  Walk the value's own keys once, in order: declared ones against their schema,
    //  the others against additionalProperties.
    mesh_safelib_sorted_keys (L, value);
    int keys = base + 3;
    lua_Integer n = (lua_Integer) lua_rawlen (L, keys);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti (L, keys, i);               //  base + 4: key
        int key = base + 4;
        int sub = LUA_TNIL;
        if (type == LUA_TTABLE && lua_type (L, key) == LUA_TSTRING) {
            lua_pushvalue (L, key);
            sub = lua_gettable (L, properties);
        }
        else
            lua_pushnil (L);                    //  base + 5: its schema, or nil
        if (sub == LUA_TNIL && extra == LUA_TBOOLEAN && !lua_toboolean (L, additional)) {
            size_t saved;
            s_path_push (S, L, key, &saved);
            s_fail (S, "is not allowed (not a declared property)");
            s_path_pop (S, saved);
            lua_replace (L, base + 1);
            lua_settop (L, base + 1);
            return false;
        }
        if (sub == LUA_TNIL && extra == LUA_TTABLE) {
            lua_pop (L, 1);
            lua_pushvalue (L, additional);
            sub = LUA_TTABLE;
        }
        if (sub != LUA_TNIL) {
            if (sub != LUA_TTABLE)
                s_schema_bad (S, "properties", "must be a table of schemas");
            size_t saved;
            s_path_push (S, L, key, &saved);
            lua_pushvalue (L, key);
            lua_gettable (L, value);            //  base + 6: the member
            bool ok = s_validate (S, base + 6, base + 5);
            s_path_pop (S, saved);
            if (!ok) {
                lua_replace (L, base + 1);
                lua_settop (L, base + 1);
                return false;
            }
        }
        lua_settop (L, keys);
    }
    lua_settop (L, base);
    return true;
}

//  Validate the value at VALUE against the schema at SCHEMA.  True, or false with
//  the message pushed.
static bool
s_validate (s_schema_t *S, int value, int schema)
{
    lua_State *L = S->L;
    value = lua_absindex (L, value);
    schema = lua_absindex (L, schema);
    if (lua_type (L, schema) != LUA_TTABLE)
        s_schema_bad (S, "is", "not a table");
    if (++S->depth > S_SCHEMA_DEPTH)
        s_schema_bad (S, "is nested", "too deeply");
    luaL_checkstack (L, 12, "schema nested too deeply");
    mesh_vm_charge (L, 1);
    s_schema_keys (S, schema);
    bool object, array;
    const char *have = s_schema_type (L, value, &object, &array);
    bool ok = s_validate_type (S, value, schema, have, object, array)
           && s_validate_values (S, value, schema)
           && s_validate_number (S, value, schema)
           && s_validate_string (S, value, schema)
           && (!array || s_validate_array (S, value, schema))
           && (!object || s_validate_object (S, value, schema));
    S->depth--;
    return ok;
}

//  mesh.schema (value, schema [, name]): true, or false and "NAME.path: message".
static int
s_schema (lua_State *L)
{
    luaL_checktype (L, 2, LUA_TTABLE);
    const char *name = luaL_optstring (L, 3, "value");
    lua_settop (L, 2);
    s_schema_t S = { .L = L, .cache = lua_touserdata (L, lua_upvalueindex (1)) };
    snprintf (S.path, sizeof S.path, "%.64s", name);
    S.path_len = strlen (S.path);
    if (s_validate (&S, 1, 2)) {
        lua_pushboolean (L, 1);
        return 1;
    }
    lua_pushboolean (L, 0);
    lua_insert (L, -2);
    return 2;
}

//  --------------------------------------------------------------------------------
//  Safe arguments for commands

//  NULL if S is a safe argument, otherwise what is wrong (static).
static const char *
s_arg_problem (const char *s, size_t len, char *which)
{
    if (len == 0)
        return "is empty";
    if (len > S_ARG_MAX)
        return "is longer than 1024 bytes";
    if (s [0] == '-')
        return "starts with '-' (it could be read as an option)";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s [i];
        if (c <= 0x20 || c >= 0x7f)
            return "contains a space, a control character or a non-ASCII byte (only "
                   "printable ASCII is allowed)";
        if (strchr ("|&;<>()$`\\\"'*?[]{}~!#", c)) {
            *which = (char) c;
            return "contains the shell metacharacter";
        }
    }
    if (memmem (s, len, "..", 2))
        return "contains '..'";
    return NULL;
}

//  Check the value at INDEX; true, or false with the reason pushed.
static bool
s_safe_arg_check (lua_State *L, int index, const char *label)
{
    if (lua_type (L, index) != LUA_TSTRING) {
        lua_pushfstring (L, "%s must be a string, not %s", label, s_article_type (L, index));
        return false;
    }
    size_t len;
    const char *s = lua_tolstring (L, index, &len);
    char which = 0;
    const char *problem = s_arg_problem (s, len, &which);
    if (!problem)
        return true;
    if (len == 0) {
        lua_pushfstring (L, "%s %s", label, problem);
        return false;
    }
    mesh_vm_charge (L, len);
    const char *shown = s_show (L, index);
    if (which)
        lua_pushfstring (L, "%s %s %s '%c'", label, shown, problem, which);
    else
        lua_pushfstring (L, "%s %s %s", label, shown, problem);
    lua_remove (L, -2);
    return false;
}

//  mesh.safe_arg (s [, label]): true, or false and why S is not a safe argument.
static int
s_safe_arg (lua_State *L)
{
    const char *label = luaL_optstring (L, 2, "argument");
    if (s_safe_arg_check (L, 1, label)) {
        lua_pushboolean (L, 1);
        return 1;
    }
    lua_pushboolean (L, 0);
    lua_insert (L, -2);
    return 2;
}

//  mesh.safe_args (list [, label]): every element a safe argument.
static int
s_safe_args (lua_State *L)
{
    const char *label = luaL_optstring (L, 2, "args");
    if (lua_type (L, 1) != LUA_TTABLE) {
        lua_pushboolean (L, 0);
        lua_pushfstring (L, "%s must be a list of strings, not %s", label,
                         s_article_type (L, 1));
        return 2;
    }
    lua_Integer n = luaL_len (L, 1);
    mesh_vm_charge (L, n > 0 ? (size_t) n : 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti (L, 1, i);
        char item[128];
        snprintf (item, sizeof item, "%.100s[%lld]", label, (long long) i);
        if (!s_safe_arg_check (L, lua_gettop (L), item)) {
            lua_pushboolean (L, 0);
            lua_insert (L, -2);
            return 2;
        }
        lua_pop (L, 1);
    }
    lua_pushboolean (L, 1);
    return 1;
}

//  --------------------------------------------------------------------------------
//  Recent actions, from ctx.history entries {action, target, at}

typedef struct {
    const char *actions[S_FILTER_MAX];  //  none: any action
    size_t action_count;
    const char *target;                 //  NULL: any target
    double from, to;                    //  at in [from, to]
} s_filter_t;

//  Read (ctx, span, filter) at 1, 2, 3 into F; FN names the helper in errors.  The
//  stack is then: 4 a table keeping the filter's strings alive, 5 ctx.history (nil
//  when absent).
static void
s_filter_read (lua_State *L, const char *fn, s_filter_t *f)
{
    luaL_checktype (L, 1, LUA_TTABLE);
    lua_Number span = luaL_checknumber (L, 2);
    luaL_argcheck (L, span >= 0, 2, "the span must not be negative");
    memset (f, 0, sizeof *f);
    int type = lua_type (L, 3);
    luaL_argexpected (L, type == LUA_TNONE || type == LUA_TNIL || type == LUA_TTABLE, 3,
                      "table or nil");
    lua_settop (L, 3);
    lua_createtable (L, 4, 1);                                      //  4
    if (type == LUA_TTABLE) {
        int atype = lua_getfield (L, 3, "action");
        if (atype == LUA_TSTRING) {
            f->actions [f->action_count++] = lua_tostring (L, -1);
            lua_rawseti (L, 4, 1);
        }
        else
        if (atype == LUA_TTABLE) {
            int list = lua_gettop (L);
            lua_Integer n = luaL_len (L, list);
            if (n > S_FILTER_MAX)
                luaL_error (L, "%s: at most %d actions in a filter", fn, S_FILTER_MAX);
            for (lua_Integer i = 1; i <= n; i++) {
                if (lua_geti (L, list, i) != LUA_TSTRING)
                    luaL_error (L, "%s: filter.action must be a string or a list of them", fn);
                f->actions [f->action_count++] = lua_tostring (L, -1);
                lua_rawseti (L, 4, i);
            }
            lua_pop (L, 1);
        }
        else
        if (atype != LUA_TNIL)
            luaL_error (L, "%s: filter.action must be a string or a list of them", fn);
        else
            lua_pop (L, 1);
        int ttype = lua_getfield (L, 3, "target");
        if (ttype == LUA_TSTRING) {
            f->target = lua_tostring (L, -1);
            lua_setfield (L, 4, "target");
        }
        else
        if (ttype != LUA_TNIL)
            luaL_error (L, "%s: filter.target must be a string", fn);
        else
            lua_pop (L, 1);
    }
    if (lua_getfield (L, 1, "now") != LUA_TNUMBER)
        luaL_error (L, "%s: ctx.now must be a number (the event time), not %s", fn,
                    s_article_type (L, -1));
    f->to = lua_tonumber (L, -1);
    f->from = f->to - span;
    lua_pop (L, 1);
    lua_getfield (L, 1, "history");                                //  5
}

static bool
s_filter_action (const s_filter_t *f, const char *action, size_t len)
{
    if (f->action_count == 0)
        return true;
    if (!action)
        return false;
    for (size_t i = 0; i < f->action_count; i++)
        if (strlen (f->actions [i]) == len && memcmp (f->actions [i], action, len) == 0)
            return true;
    return false;
}

//  Walk the history at index 5; for each entry that matches, call EACH with its
//  target (may be NULL).  Raises on a malformed entry.
typedef void (s_each_fn) (lua_State *L, const char *target, size_t len, void *arg);

static void
s_history_walk (lua_State *L, const char *fn, const s_filter_t *f, s_each_fn *each, void *arg)
{
    int history = 5;
    if (lua_isnil (L, history))
        return;
    if (lua_type (L, history) != LUA_TTABLE)
        luaL_error (L, "%s: ctx.history must be a list, not %s", fn,
                    s_article_type (L, history));
    json_t *json = mesh_view_json (L, history);
    if (json) {
        //  Straight from the JSON: no entry is converted to Lua.
        if (json_is_object (json) && json_object_size (json) == 0)
            return;
        if (!json_is_array (json))
            luaL_error (L, "%s: ctx.history must be a list", fn);
        size_t size = json_array_size (json);
        mesh_vm_charge (L, size);
        for (size_t i = 0; i < size; i++) {
            json_t *entry = json_array_get (json, i);
            json_t *at = json_object_get (entry, "at");
            if (!json_is_number (at))
                luaL_error (L, "%s: ctx.history[%d].at must be a number", fn, (int) i + 1);
            double t = json_number_value (at);
            if (t < f->from || t > f->to)
                continue;
            json_t *action = json_object_get (entry, "action");
            if (!s_filter_action (f, json_string_value (action), json_string_length (action)))
                continue;
            json_t *target = json_object_get (entry, "target");
            const char *ts = json_string_value (target);
            size_t tlen = json_string_length (target);
            if (f->target && !(ts && strlen (f->target) == tlen
                               && memcmp (f->target, ts, tlen) == 0))
                continue;
            each (L, ts, tlen, arg);
        }
        return;
    }
    lua_Integer n = luaL_len (L, history);
    mesh_vm_charge (L, n > 0 ? (size_t) n : 0);
    for (lua_Integer i = 1; i <= n; i++) {
        int top = lua_gettop (L);
        if (lua_geti (L, history, i) != LUA_TTABLE)
            luaL_error (L, "%s: ctx.history[%d] must be a table {action, target, at}", fn,
                        (int) i);
        int entry = top + 1;
        if (lua_getfield (L, entry, "at") != LUA_TNUMBER)
            luaL_error (L, "%s: ctx.history[%d].at must be a number", fn, (int) i);
        double t = lua_tonumber (L, -1);
        lua_getfield (L, entry, "action");
        lua_getfield (L, entry, "target");
        size_t alen = 0, tlen = 0;
        const char *action = lua_type (L, top + 3) == LUA_TSTRING
                           ? lua_tolstring (L, top + 3, &alen) : NULL;
        const char *target = lua_type (L, top + 4) == LUA_TSTRING
                           ? lua_tolstring (L, top + 4, &tlen) : NULL;
        if (t >= f->from && t <= f->to && s_filter_action (f, action, alen)
        &&  (!f->target || (target && strlen (f->target) == tlen
                            && memcmp (f->target, target, tlen) == 0)))
            each (L, target, tlen, arg);
        lua_settop (L, top);
    }
}

static void
s_count_each (lua_State *L, const char *target, size_t len, void *arg)
{
    (*(lua_Integer *) arg)++;
}

//  mesh.count_recent (ctx, span, filter): how many entries of ctx.history fall in
//  [ctx.now - span, ctx.now] and match FILTER {action = name or list, target = name}.
static int
s_count_recent (lua_State *L)
{
    s_filter_t f;
    s_filter_read (L, "mesh.count_recent", &f);
    lua_Integer count = 0;
    s_history_walk (L, "mesh.count_recent", &f, s_count_each, &count);
    lua_pushinteger (L, count);
    return 1;
}

static void
s_targets_each (lua_State *L, const char *target, size_t len, void *arg)
{
    if (!target)
        return;
    lua_pushlstring (L, target, len);
    lua_pushboolean (L, 1);
    lua_rawset (L, *(int *) arg);
}

//  mesh.distinct_targets (ctx, span, filter): the number of distinct targets in the
//  matching entries, and their sorted list.
static int
s_distinct_targets (lua_State *L)
{
    s_filter_t f;
    s_filter_read (L, "mesh.distinct_targets", &f);
    lua_newtable (L);                           //  6: the set of targets
    int set = 6;
    s_history_walk (L, "mesh.distinct_targets", &f, s_targets_each, &set);
    mesh_safelib_sorted_keys (L, set);
    lua_pushinteger (L, (lua_Integer) lua_rawlen (L, -1));
    lua_insert (L, -2);
    return 2;
}

//  --------------------------------------------------------------------------------
//  Time, from event time only

static int64_t
s_days_from_civil (int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void
s_civil_from_days (int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

//  mesh.utc (t): the UTC calendar fields of epoch seconds T: {year, month, day, hour,
//  min, sec, wday (1 = Monday ... 7 = Sunday), yday (1 = January 1st)}.
static int
s_utc (lua_State *L)
{
    lua_Number t = luaL_checknumber (L, 1);
    luaL_argcheck (L, fabs (t) < 1e12, 1, "not a plausible time in epoch seconds");
    int64_t secs = (int64_t) floor (t);
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400;
    int64_t y, m, d;
    s_civil_from_days (days, &y, &m, &d);
    lua_createtable (L, 0, 8);
    struct { const char *name; int64_t value; } fields[] = {
        { "year", y }, { "month", m }, { "day", d }, { "hour", rem / 3600 },
        { "min", rem % 3600 / 60 }, { "sec", rem % 60 },
        { "wday", ((days % 7) + 7 + 3) % 7 + 1 },
        { "yday", days - s_days_from_civil (y, 1, 1) + 1 },
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields [0]; i++) {
        lua_pushinteger (L, (lua_Integer) fields [i].value);
        lua_setfield (L, -2, fields [i].name);
    }
    return 1;
}

static bool
s_digits (const char *s, int n, int *out)
{
    *out = 0;
    for (int i = 0; i < n; i++) {
        if (s [i] < '0' || s [i] > '9')
            return false;
        *out = *out * 10 + (s [i] - '0');
    }
    return true;
}

//  mesh.time ("2025-12-24T18:00:00Z" or "2025-12-24"): epoch seconds, UTC.
static int
s_time (lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring (L, 1, &len);
    int y, mo, d, h = 0, mi = 0, se = 0;
    bool ok = (len == 10 || len == 20) && s_digits (s, 4, &y) && s [4] == '-'
           && s_digits (s + 5, 2, &mo) && s [7] == '-' && s_digits (s + 8, 2, &d);
    if (ok && len == 20)
        ok = s [10] == 'T' && s_digits (s + 11, 2, &h) && s [13] == ':'
          && s_digits (s + 14, 2, &mi) && s [16] == ':' && s_digits (s + 17, 2, &se)
          && s [19] == 'Z';
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    ok = ok && mo >= 1 && mo <= 12 && d >= 1 && d <= mdays [mo - 1] && h <= 23 && mi <= 59
       && se <= 59;
    bool leap = ok && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0);
    if (ok && mo == 2 && d == 29 && !leap)
        ok = false;
    if (!ok)
        return luaL_error (L, "mesh.time: %s is not a UTC time like 2025-12-24T18:00:00Z or "
                              "a date like 2025-12-24", s_show (L, 1));
    int64_t days = s_days_from_civil (y, mo, d);
    lua_pushinteger (L, (lua_Integer) (days * 86400 + h * 3600 + mi * 60 + se));
    return 1;
}

//  --------------------------------------------------------------------------------
//  Sorted iteration

static int
s_sorted_keys (lua_State *L)
{
    luaL_checktype (L, 1, LUA_TTABLE);
    mesh_safelib_sorted_keys (L, 1);
    return 1;
}

//  --------------------------------------------------------------------------------

void
mesh_meshlib_push (lua_State *L)
{
    int find = lua_gettop (L);                  //  the string.find to use, on top
    luaL_checkstack (L, 6, NULL);
    lua_createtable (L, 0, 20);
    int mesh = lua_gettop (L);

    s_regex_cache_t *cache = lua_newuserdatauv (L, sizeof (s_regex_cache_t), 0);
    memset (cache, 0, sizeof *cache);
    lua_createtable (L, 0, 1);
    lua_pushcfunction (L, s_regex_cache_gc);
    lua_setfield (L, -2, "__gc");
    lua_setmetatable (L, -2);
    int cache_index = lua_gettop (L);

    static const luaL_Reg plain[] = {
        { "one_of", s_one_of }, { "allowed", s_allowed }, { "in_range", s_in_range },
        { "safe_arg", s_safe_arg }, { "safe_args", s_safe_args },
        { "count_recent", s_count_recent }, { "distinct_targets", s_distinct_targets },
        { "utc", s_utc }, { "time", s_time }, { "sorted_keys", s_sorted_keys },
        { NULL, NULL }
    };
    for (const luaL_Reg *r = plain; r->name; r++) {
        lua_pushcfunction (L, r->func);
        lua_setfield (L, mesh, r->name);
    }
    lua_pushvalue (L, cache_index);
    lua_pushcclosure (L, s_regex, 1);
    lua_setfield (L, mesh, "regex");
    lua_pushvalue (L, cache_index);
    lua_pushcclosure (L, s_schema, 1);
    lua_setfield (L, mesh, "schema");
    lua_pushvalue (L, find);
    lua_pushcclosure (L, s_matches, 1);
    lua_setfield (L, mesh, "matches");
    lua_pushcfunction (L, mesh_safelib_pairs);
    lua_setfield (L, mesh, "sorted_pairs");
    mesh_view_push_null (L);
    lua_setfield (L, mesh, "null");
    lua_settop (L, mesh);
    lua_remove (L, find);
}
