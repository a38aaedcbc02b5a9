/*  meshlib - the `mesh` table: helpers that make a common rule one line.
 *
 *  Everything is C, for two reasons.  Speed: a rule runs for every proposal of every
 *  agent, and a JSON-Schema check written in Lua would cost more than the rest of the
 *  rule.  Bounds: C work is invisible to the count hook, so each helper charges what
 *  it walks to the instruction budget (mesh_vm_charge), and everything that matches
 *  is bounded: Lua patterns by the string library's matcher and its static bound
 *  (match.c, safelib.c), POSIX regular expressions by refusing what makes glibc slow
 *  (back-references; nested counted repetitions whose product exceeds 1000; patterns
 *  over 256 bytes; subjects over 4096 bytes) and by paying each regexec's estimated
 *  cost - instructions, time left, memory - before it runs (s_regex_run).  Compiled
 *  regular expressions are kept in a small per-state cache, which is a cache of a
 *  pure function and so no state a rule could observe.
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
//  What one estimated regexec step costs (measured on glibc 2.36: a pattern whose
//  repetitions multiply to 900 takes 250 ms and 30 MB on 4096 bytes).
#define S_REGEX_STEPS_PER_UNIT  3       //  steps per instruction of the budget
#define S_REGEX_NS_PER_STEP     4.0
#define S_REGEX_BYTES_PER_STEP  0.5
#define S_REGEX_COMPILE_NS      150.0   //  per (pattern byte x repetition): 3 ms above
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
    if (mesh_view_kind (L, list, NULL) == MESH_VIEW_TABLE) {
        //  A frozen list (the usual case: a constant at a rule's top level).
        mesh_view_push_data (L, list);
        lua_Integer n = (lua_Integer) lua_rawlen (L, -1);
        mesh_vm_charge (L, (size_t) n);
        bool found = false;
        for (lua_Integer i = 1; i <= n && !found; i++) {
            lua_rawgeti (L, -1, i);
            found = lua_rawequal (L, value, -1);
            lua_pop (L, 1);
        }
        lua_pop (L, 1);
        return found;
    }
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

//  The product of P's counted repetitions {m,n} (the larger number given counts):
//  how many times the compiled automaton repeats parts of the pattern.
static double
s_regex_repeats (const char *p, size_t len)
{
    double product = 1;
    for (size_t i = 0; i < len; i++) {
        if (p [i] == '\\') {
            i++;
            continue;
        }
        if (p [i] == '{') {
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
    return product;
}

//  Refuse what makes glibc's regex engine slow; raises naming FN.
static void
s_regex_vet (lua_State *L, const char *fn, const char *p, size_t len)
{
    if (len > S_REGEX_MAX)
        luaL_error (L, "%s: pattern longer than %d bytes", fn, S_REGEX_MAX);
    if (memchr (p, 0, len))
        luaL_error (L, "%s: pattern contains a NUL byte", fn);
    for (size_t i = 0; i < len; i++) {
        if (p [i] == '\\' && i + 1 < len && p [i + 1] >= '0' && p [i + 1] <= '9')
            luaL_error (L, "%s: back-references (\\%c) are not allowed: they make matching "
                           "exponential", fn, p [i + 1]);
        if (p [i] == '\\')
            i++;
    }
    if (s_regex_repeats (p, len) > S_REGEX_REPEATS)
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
    //  Compiling expands the counted repetitions: its time, too, is held against the
    //  time left before it starts.
    mesh_vm_charge_time (L, (int64_t) (((double) len + 4) * s_regex_repeats (p, len)
                                       * S_REGEX_COMPILE_NS));
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
//  regexec is one call into glibc that nothing can interrupt, so its cost is
//  estimated and paid before it runs: about (pattern bytes x counted repetitions x
//  subject bytes) automaton steps, charged to the instruction budget, held against
//  the time left (the time limit comes now if the call could not finish in time),
//  and, as memory, reserved in the state's allocator for the call (glibc's state
//  sets grow with the same product), so the memory cap refuses it too.
static const char *
s_regex_run (lua_State *L, regex_t *regex, const char *p, size_t plen, const char *s,
             size_t len, bool *matched)
{
    *matched = false;
    if (len > S_REGEX_SUBJECT)
        return "is longer than 4096 bytes, too long to match against a pattern";
    if (memchr (s, 0, len))
        return "contains a NUL byte";
    double steps = ((double) plen + 4) * s_regex_repeats (p, plen) * ((double) len + 1);
    mesh_vm_charge (L, (size_t) (steps / S_REGEX_STEPS_PER_UNIT) + len);
    mesh_vm_charge_time (L, (int64_t) (steps * S_REGEX_NS_PER_STEP));
    lua_newuserdatauv (L, (size_t) (steps * S_REGEX_BYTES_PER_STEP), 0);
    lua_pop (L, 1);
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
    const char *why = s_regex_run (L, regex, p, plen, s, slen, &matched);
    if (why && slen > S_REGEX_SUBJECT)
        return luaL_error (L, "mesh.regex: the subject %s", why);
    lua_pushboolean (L, matched);
    return 1;
}

//  --------------------------------------------------------------------------------
//  JSON-Schema subset
//
//  A schema is compiled into nodes (userdata, C structs), then the value is checked
//  against the nodes.  A schema a rule's top level built is frozen (vm.c), so it can
//  never change: its nodes are cached for the life of the state, and checking a
//  proposal against it is a walk over C structs.  A schema made inside check is
//  compiled on every call.  Compiling reports every problem of the schema itself
//  (an unknown keyword, a keyword of the wrong type) as an error, whether or not the
//  value reaches that part; the first unknown keyword in key order is the one named.
//  Checks run in a fixed order - type, const, enum, numbers, strings, arrays, objects
//  (required in list order, then members in key order) - and the first failure wins,
//  so the message is the same on every run.

enum {
    K_TYPE, K_CONST, K_ENUM, K_MINIMUM, K_MAXIMUM, K_XMINIMUM, K_XMAXIMUM, K_MINLENGTH,
    K_MAXLENGTH, K_PATTERN, K_MINITEMS, K_MAXITEMS, K_ITEMS, K_REQUIRED, K_PROPERTIES,
    K_ADDITIONAL, K_COUNT,
    K_IGNORED = -1, K_UNKNOWN = -2
};

static const char *s_keyword_names[K_COUNT] = {
    "type", "const", "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "pattern", "minItems", "maxItems", "items", "required",
    "properties", "additionalProperties",
};

static const char *s_ignored_keywords[] = {
    "description", "title", "default", "examples", "$comment", NULL
};

static int
s_keyword (const char *key, size_t len)
{
    if (len == 0)
        return K_UNKNOWN;
    for (int k = 0; k < K_COUNT; k++)
        if (s_keyword_names [k][0] == key [0] && strlen (s_keyword_names [k]) == len
        &&  memcmp (s_keyword_names [k], key, len) == 0)
            return k;
    for (int k = 0; s_ignored_keywords [k]; k++)
        if (strlen (s_ignored_keywords [k]) == len
        &&  memcmp (s_ignored_keywords [k], key, len) == 0)
            return K_IGNORED;
    return K_UNKNOWN;
}

//  JSON types as bits; "number" is both numeric bits.
enum {
    T_NULL = 1, T_BOOLEAN = 2, T_INTEGER = 4, T_FRACTION = 8, T_STRING = 16, T_ARRAY = 32,
    T_OBJECT = 64
};

static const struct {
    const char *name, *article;
    unsigned bits;
} s_types[] = {
    { "object", "an ", T_OBJECT }, { "array", "an ", T_ARRAY }, { "string", "a ", T_STRING },
    { "number", "a ", T_INTEGER | T_FRACTION }, { "integer", "an ", T_INTEGER },
    { "boolean", "a ", T_BOOLEAN }, { "null", "", T_NULL },
};

static unsigned
s_type_bits (const char *name)
{
    for (size_t i = 0; i < sizeof s_types / sizeof s_types [0]; i++)
        if (strcmp (s_types [i].name, name) == 0)
            return s_types [i].bits;
    return 0;
}

typedef struct s_node_t s_node_t;

typedef struct {
    const char *name;                   //  anchored in the node's references
    size_t len;
    s_node_t *node;
    int ref;                            //  the node's userdata among the references
} s_prop_t;

enum { A_ANY, A_NONE, A_SCHEMA };
enum { N_MINIMUM = 1, N_MAXIMUM = 2, N_XMINIMUM = 4, N_XMAXIMUM = 8, N_MINLENGTH = 16,
       N_MAXLENGTH = 32, N_MINITEMS = 64, N_MAXITEMS = 128 };

struct s_node_t {
    unsigned types;                     //  0: any type
    unsigned has;                       //  N_ bits
    double minimum, maximum, xminimum, xmaximum;
    double minlength, maxlength, minitems, maxitems;
    int type_text;                      //  reference: "an integer", "string or null"
    int constant, enumeration;          //  references, 0 when absent
    int pattern;                        //  reference to the pattern's text, 0 when absent
    regex_t *regex;                     //  owned when the node is cached
    int required;                       //  reference to a list of names, 0 when absent
    int additional;                     //  A_
    s_node_t *additional_node, *items;
    int additional_ref, items_ref;      //  their userdata among the references
    size_t prop_count;
    s_prop_t prop[];                    //  by name, in byte order
};

typedef struct {
    lua_State *L;
    s_regex_cache_t *cache;
    int node_mt;                        //  stack index of the nodes' metatable
    int nodes;                          //  stack index of the cache: frozen schema -> node
    char path[512];
    size_t path_len;
    int depth;
} s_schema_t;

//  Raise an error about the schema itself.
static int
s_schema_bad (s_schema_t *S, const char *what, const char *detail)
{
    return luaL_error (S->L, "mesh.schema: schema for %s: %s %s", S->path, what, detail);
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

//  Keep the value on the stack top (a message) at TOP + 1 and drop the rest above TOP.
static void
s_keep_top (lua_State *L, int top)
{
    if (lua_gettop (L) > top + 1)
        lua_replace (L, top + 1);
    lua_settop (L, top + 1);
}

static void
s_path_push (s_schema_t *S, lua_State *L, int key, size_t *saved)
{
    *saved = S->path_len;
    size_t room = sizeof S->path - S->path_len;
    if (room < 48)
        return;                         //  a path that long is cut
    char *out = S->path + S->path_len;
    size_t n;
    if (key == 0) {
        memcpy (out, "[]", 3);
        n = 2;
    }
    else
    if (lua_type (L, key) == LUA_TNUMBER) {
        //  By hand: this runs for every item a schema walks, and snprintf is most of its cost.
        char digits[24];
        long long v = (long long) lua_tointeger (L, key);
        unsigned long long u = v < 0 ? 0ULL - (unsigned long long) v : (unsigned long long) v;
        size_t d = 0;
        do
            digits[d++] = (char) ('0' + u % 10);
        while ((u /= 10) != 0);
        n = 0;
        out[n++] = '[';
        if (v < 0)
            out[n++] = '-';
        while (d)
            out[n++] = digits[--d];
        out[n++] = ']';
        out[n] = 0;
    }
    else {
        size_t len;
        const char *k = lua_tolstring (L, key, &len);
        bool ident = len > 0 && len < 40 && !(k [0] >= '0' && k [0] <= '9');
        for (size_t i = 0; ident && i < len; i++)
            ident = (k [i] >= 'a' && k [i] <= 'z') || (k [i] >= 'A' && k [i] <= 'Z')
                 || (k [i] >= '0' && k [i] <= '9') || k [i] == '_';
        if (ident) {
            out [0] = '.';
            memcpy (out + 1, k, len);
            out [len + 1] = 0;
            n = len + 1;
        }
        else
            n = (size_t) snprintf (out, room, "[\"%.*s\"]", (int) (len < 32 ? len : 32), k);
    }
    S->path_len += n < room ? n : room - 1;
}

static void
s_path_pop (s_schema_t *S, size_t saved)
{
    S->path_len = saved;
    S->path [saved] = 0;
}

//  --- compiling ------------------------------------------------------------------------

//  Put the value of every keyword of the schema at SCHEMA in a stack slot: K_COUNT
//  values pushed, the first at the returned index (nil where absent).
static int
s_schema_read (s_schema_t *S, int schema)
{
    lua_State *L = S->L;
    luaL_checkstack (L, K_COUNT + 8, "schema nested too deeply");
    int base = lua_gettop (L) + 1;
    lua_settop (L, base + K_COUNT - 1);
    json_t *json;
    int kind = mesh_view_kind (L, schema, &json);
    if (kind == MESH_VIEW_INPUT) {
        if (!json_is_object (json))
            s_schema_bad (S, "is", "not a table of keywords");
        const char *key;
        size_t len;
        json_t *value;
        //  JSON objects keep their keys in order of arrival: find the least unknown.
        const char *unknown = NULL;
        size_t unknown_len = 0;
        json_object_keylen_foreach (json, key, len, value) {
            int k = s_keyword (key, len);
            if (k >= 0) {
                lua_getfield (L, schema, key);
                lua_replace (L, base + k);
            }
            else
            if (k == K_UNKNOWN) {
                int c = unknown ? memcmp (key, unknown, len < unknown_len ? len : unknown_len)
                                : -1;
                if (!unknown || c < 0 || (c == 0 && len < unknown_len)) {
                    unknown = key;
                    unknown_len = len;
                }
            }
        }
        if (unknown) {
            lua_pushlstring (L, unknown, unknown_len);
            s_schema_bad (S, "has the unknown keyword", s_show (L, -1));
        }
        return base;
    }
    int table = schema;
    if (kind == MESH_VIEW_TABLE) {
        mesh_view_push_data (L, schema);        //  a frozen table: walk what it fronts
        table = lua_gettop (L);
    }
    int unknown = lua_gettop (L) + 1;           //  the least unknown key, if any
    lua_pushnil (L);
    lua_pushnil (L);
    while (lua_next (L, table)) {
        if (lua_type (L, -2) != LUA_TSTRING)
            s_schema_bad (S, "has a key that is not a string:", s_show (L, -2));
        size_t len;
        const char *key = lua_tolstring (L, -2, &len);
        int k = s_keyword (key, len);
        if (k >= 0)
            lua_copy (L, -1, base + k);
        else
        if (k == K_UNKNOWN) {
            size_t blen = 0;
            const char *best = lua_tolstring (L, unknown, &blen);
            int c = best ? memcmp (key, best, len < blen ? len : blen) : -1;
            if (!best || c < 0 || (c == 0 && len < blen))
                lua_copy (L, -2, unknown);
        }
        lua_pop (L, 1);
    }
    if (!lua_isnil (L, unknown))
        s_schema_bad (S, "has the unknown keyword", s_show (L, unknown));
    lua_settop (L, base + K_COUNT - 1);
    return base;
}

//  Store the value on the stack top among the node's references (the table at REFS);
//  returns its index there.
static int
s_ref (lua_State *L, int refs)
{
    int n = (int) lua_rawlen (L, refs) + 1;
    lua_rawseti (L, refs, n);
    return n;
}

static double
s_kw_number (s_schema_t *S, int slot, int k, unsigned *has, unsigned bit)
{
    int type = lua_type (S->L, slot);
    if (type == LUA_TNIL)
        return 0;
    if (type != LUA_TNUMBER)
        s_schema_bad (S, s_keyword_names [k], "must be a number");
    *has |= bit;
    return lua_tonumber (S->L, slot);
}

static int
s_node_gc (lua_State *L)
{
    s_node_t *node = lua_touserdata (L, 1);
    if (node->regex) {
        regfree (node->regex);
        free (node->regex);
        node->regex = NULL;
    }
    return 0;
}

static s_node_t *s_compile (s_schema_t *S, int schema);

//  Compile the schema at SLOT (a subschema) under the path step KEY (0: "[]"); leaves
//  the node on the stack and stores it in REFS, at *REF_P.
static s_node_t *
s_compile_sub (s_schema_t *S, int slot, int key, int refs, int *ref_p)
{
    size_t saved;
    s_path_push (S, S->L, key, &saved);
    s_node_t *node = s_compile (S, slot);
    s_path_pop (S, saved);
    lua_pushvalue (S->L, -1);
    *ref_p = s_ref (S->L, refs);
    return node;
}

//  Compile the schema at SCHEMA: pushes its node and returns it.
static s_node_t *
s_compile (s_schema_t *S, int schema)
{
    lua_State *L = S->L;
    schema = lua_absindex (L, schema);
    if (lua_type (L, schema) != LUA_TTABLE)
        s_schema_bad (S, "is", "not a table");
    //  Frozen tables never change, so their nodes can be kept.  (So can any table in a
    //  plain, unprotected state - the bench's baseline - which trusts its rules.)
    bool frozen = mesh_view_kind (L, schema, NULL) == MESH_VIEW_TABLE || !mesh_vm_sandboxed (L);
    if (frozen) {
        lua_pushvalue (L, schema);
        if (lua_rawget (L, S->nodes) == LUA_TUSERDATA)
            return lua_touserdata (L, -1);
        lua_pop (L, 1);
    }
    else
        mesh_vm_charge (L, 1);
    if (++S->depth > S_SCHEMA_DEPTH)
        s_schema_bad (S, "is nested", "too deeply");
    int top = lua_gettop (L);
    int kw = s_schema_read (S, schema);

    //  The properties, by name.
    int props = kw + K_PROPERTIES;
    int ptype = lua_type (L, props);
    if (ptype != LUA_TNIL && ptype != LUA_TTABLE)
        s_schema_bad (S, "properties", "must be a table of schemas");
    size_t count = 0;
    int names = 0;
    if (ptype == LUA_TTABLE) {
        mesh_safelib_sorted_keys (L, props);
        names = lua_gettop (L);
        count = lua_rawlen (L, names);
        for (size_t i = 1; i <= count; i++)
            if (lua_rawgeti (L, names, (lua_Integer) i) != LUA_TSTRING)
                s_schema_bad (S, "properties", "must be named by strings");
            else
                lua_pop (L, 1);
    }
    s_node_t *node = lua_newuserdatauv (L, sizeof (s_node_t) + count * sizeof (s_prop_t), 1);
    memset (node, 0, sizeof (s_node_t) + count * sizeof (s_prop_t));
    int self = lua_gettop (L);
    lua_pushvalue (L, S->node_mt);
    lua_setmetatable (L, self);
    lua_newtable (L);
    int refs = lua_gettop (L);
    lua_pushvalue (L, refs);
    lua_setiuservalue (L, self, 1);

    //  type
    int slot = kw + K_TYPE;
    int type = lua_type (L, slot);
    if (type == LUA_TSTRING) {
        const char *name = lua_tostring (L, slot);
        if (!(node->types = s_type_bits (name)))
            s_schema_bad (S, "type: unknown type", s_show (L, slot));
        for (size_t i = 0; i < sizeof s_types / sizeof s_types [0]; i++)
            if (strcmp (s_types [i].name, name) == 0)
                lua_pushfstring (L, "%s%s", s_types [i].article, name);
        node->type_text = s_ref (L, refs);
    }
    else
    if (type == LUA_TTABLE) {
        lua_Integer n = luaL_len (L, slot);
        luaL_Buffer b;
        luaL_buffinit (L, &b);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti (L, slot, i);
            unsigned bits = lua_type (L, -1) == LUA_TSTRING ? s_type_bits (lua_tostring (L, -1))
                                                             : 0;
            if (!bits)
                s_schema_bad (S, "type: unknown type", s_show (L, -1));
            node->types |= bits;
            if (i > 1)
                luaL_addstring (&b, i == n ? " or " : ", ");
            luaL_addvalue (&b);
        }
        luaL_pushresult (&b);
        node->type_text = s_ref (L, refs);
        if (n == 0)
            s_schema_bad (S, "type", "must name at least one type");
    }
    else
    if (type != LUA_TNIL)
        s_schema_bad (S, "type", "must be a type name or a list of them");

    //  const, enum
    if (!lua_isnil (L, kw + K_CONST)) {
        lua_pushvalue (L, kw + K_CONST);
        node->constant = s_ref (L, refs);
    }
    type = lua_type (L, kw + K_ENUM);
    if (type == LUA_TTABLE) {
        lua_pushvalue (L, kw + K_ENUM);
        node->enumeration = s_ref (L, refs);
    }
    else
    if (type != LUA_TNIL)
        s_schema_bad (S, "enum", "must be a list of values");

    //  numbers and lengths
    node->minimum = s_kw_number (S, kw + K_MINIMUM, K_MINIMUM, &node->has, N_MINIMUM);
    node->maximum = s_kw_number (S, kw + K_MAXIMUM, K_MAXIMUM, &node->has, N_MAXIMUM);
    node->xminimum = s_kw_number (S, kw + K_XMINIMUM, K_XMINIMUM, &node->has, N_XMINIMUM);
    node->xmaximum = s_kw_number (S, kw + K_XMAXIMUM, K_XMAXIMUM, &node->has, N_XMAXIMUM);
    node->minlength = s_kw_number (S, kw + K_MINLENGTH, K_MINLENGTH, &node->has, N_MINLENGTH);
    node->maxlength = s_kw_number (S, kw + K_MAXLENGTH, K_MAXLENGTH, &node->has, N_MAXLENGTH);
    node->minitems = s_kw_number (S, kw + K_MINITEMS, K_MINITEMS, &node->has, N_MINITEMS);
    node->maxitems = s_kw_number (S, kw + K_MAXITEMS, K_MAXITEMS, &node->has, N_MAXITEMS);

    //  pattern
    type = lua_type (L, kw + K_PATTERN);
    if (type == LUA_TSTRING) {
        size_t plen;
        const char *p = lua_tolstring (L, kw + K_PATTERN, &plen);
        //  Compiles (and vets) it, or raises; a cached node keeps a copy of its own.
        regex_t *regex = s_regex_get (L, S->cache, "mesh.schema", p, plen, false);
        if (frozen) {
            node->regex = malloc (sizeof (regex_t));
            char text[S_REGEX_MAX + 1];
            memcpy (text, p, plen);
            text [plen] = 0;
            if (!node->regex || regcomp (node->regex, text, REG_EXTENDED | REG_NOSUB) != 0) {
                free (node->regex);
                node->regex = NULL;
                luaL_error (L, "mesh.schema: out of memory");
            }
        }
        (void) regex;
        lua_pushvalue (L, kw + K_PATTERN);
        node->pattern = s_ref (L, refs);
    }
    else
    if (type != LUA_TNIL)
        s_schema_bad (S, "pattern", "must be a string (a POSIX extended regular expression)");

    //  items
    type = lua_type (L, kw + K_ITEMS);
    if (type == LUA_TTABLE) {
        node->items = s_compile_sub (S, kw + K_ITEMS, 0, refs, &node->items_ref);
        lua_pop (L, 1);
    }
    else
    if (type != LUA_TNIL)
        s_schema_bad (S, "items", "must be a schema (a table)");

    //  required
    type = lua_type (L, kw + K_REQUIRED);
    if (type == LUA_TTABLE) {
        lua_Integer n = luaL_len (L, kw + K_REQUIRED);
        lua_createtable (L, (int) n, 0);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_geti (L, kw + K_REQUIRED, i) != LUA_TSTRING)
                s_schema_bad (S, "required", "must be a list of property names");
            lua_rawseti (L, -2, i);
        }
        node->required = s_ref (L, refs);
    }
    else
    if (type != LUA_TNIL)
        s_schema_bad (S, "required", "must be a list of property names");

    //  properties, additionalProperties
    for (size_t i = 0; i < count; i++) {
        lua_rawgeti (L, names, (lua_Integer) i + 1);
        int name = lua_gettop (L);
        lua_pushvalue (L, name);
        node->prop [i].name = lua_tolstring (L, name, &node->prop [i].len);
        s_ref (L, refs);                        //  keeps the name alive
        lua_pushvalue (L, name);
        if (lua_gettable (L, props) != LUA_TTABLE)
            s_schema_bad (S, "properties", "must be a table of schemas");
        node->prop [i].node = s_compile_sub (S, lua_gettop (L), name, refs, &node->prop [i].ref);
        lua_settop (L, name - 1);
    }
    node->prop_count = count;
    type = lua_type (L, kw + K_ADDITIONAL);
    if (type == LUA_TBOOLEAN)
        node->additional = lua_toboolean (L, kw + K_ADDITIONAL) ? A_ANY : A_NONE;
    else
    if (type == LUA_TTABLE) {
        node->additional = A_SCHEMA;
        lua_pushliteral (L, "*");
        node->additional_node = s_compile_sub (S, kw + K_ADDITIONAL, lua_gettop (L), refs,
                                               &node->additional_ref);
        lua_pop (L, 2);
    }
    else
    if (type != LUA_TNIL)
        s_schema_bad (S, "additionalProperties", "must be a boolean or a schema");

    if (frozen) {
        lua_pushvalue (L, schema);
        lua_pushvalue (L, self);
        lua_rawset (L, S->nodes);
    }
    lua_pushvalue (L, self);
    s_keep_top (L, top);
    S->depth--;
    return node;
}

//  --- checking ---------------------------------------------------------------------

//  The JSON type of the value at INDEX, as bits and as words for messages.
static unsigned
s_value_type (lua_State *L, int index, const char **have)
{
    switch (lua_type (L, index)) {
        case LUA_TNIL:
        case LUA_TNONE:
            *have = "nothing (nil)";
            return 0;
        case LUA_TBOOLEAN:
            *have = "a boolean";
            return T_BOOLEAN;
        case LUA_TNUMBER: {
            lua_Number x = lua_tonumber (L, index);
            if (lua_isinteger (L, index) || (x == floor (x) && isfinite (x))) {
                *have = "an integer";
                return T_INTEGER;
            }
            *have = "a number";
            return T_FRACTION;
        }
        case LUA_TSTRING:
            *have = "a string";
            return T_STRING;
        case LUA_TLIGHTUSERDATA:
            *have = lua_touserdata (L, index) == NULL ? "null" : "a userdata";
            return lua_touserdata (L, index) == NULL ? T_NULL : 0;
        case LUA_TTABLE:
            break;
        default:
            *have = s_article_type (L, index);
            return 0;
    }
    json_t *json;
    int kind = mesh_view_kind (L, index, &json);
    if (kind == MESH_VIEW_INPUT) {
        *have = json_is_object (json) ? "an object" : "an array";
        return json_is_object (json) ? T_OBJECT : T_ARRAY;
    }
    int table = index;
    if (kind == MESH_VIEW_TABLE) {
        mesh_view_push_data (L, index);         //  a frozen table: its contents
        table = lua_gettop (L);
    }
    //  A plain table: an array if its keys are exactly 1..n, an object if they are all
    //  strings; an empty one is both.
    size_t count = 0, strings = 0;
    lua_pushnil (L);
    while (lua_next (L, table)) {
        lua_pop (L, 1);
        count++;
        if (lua_type (L, -1) == LUA_TSTRING)
            strings++;
    }
    mesh_vm_charge (L, count);
    unsigned bits = 0;
    if (strings == count)
        bits |= T_OBJECT;
    if (count == 0 || (strings == 0 && lua_rawlen (L, table) == count))
        bits |= T_ARRAY;
    if (table != index)
        lua_pop (L, 1);
    *have = count == 0 ? "an empty table" : bits == T_ARRAY ? "an array"
          : bits == T_OBJECT ? "an object" : "a table with mixed keys";
    return bits;
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

//  Push reference REF of NODE (the userdata at SELF).
static void
s_push_ref (lua_State *L, int self, int ref)
{
    lua_getiuservalue (L, self, 1);
    lua_rawgeti (L, -1, ref);
    lua_remove (L, -2);
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

static bool s_check (s_schema_t *S, s_node_t *node, int self, int value);

static bool
s_check_number (s_schema_t *S, s_node_t *node, int value)
{
    lua_State *L = S->L;
    lua_Number x = lua_tonumber (L, value), bound = 0;
    const char *shown = NULL;
    if ((node->has & N_MINIMUM) && !(x >= node->minimum))
        shown = "below the minimum", bound = node->minimum;
    else
    if ((node->has & N_MAXIMUM) && !(x <= node->maximum))
        shown = "above the maximum", bound = node->maximum;
    else
    if ((node->has & N_XMINIMUM) && !(x > node->xminimum))
        shown = "must be greater than", bound = node->xminimum;
    else
    if ((node->has & N_XMAXIMUM) && !(x < node->xmaximum))
        shown = "must be less than", bound = node->xmaximum;
    if (!shown)
        return true;
    //  Integral bounds print as integers ("10", not "10.0").
    if (bound == floor (bound) && fabs (bound) < 9e15)
        lua_pushinteger (L, (lua_Integer) bound);
    else
        lua_pushnumber (L, bound);
    int b = lua_gettop (L);
    const char *have = mesh_safelib_tostring (L, value, NULL);
    const char *limit = mesh_safelib_tostring (L, b, NULL);
    s_fail (S, "is %s, %s %s", have, shown, limit);
    lua_replace (L, b);
    lua_settop (L, b);
    return false;
}

static bool
s_check_string (s_schema_t *S, s_node_t *node, int self, int value)
{
    lua_State *L = S->L;
    size_t len;
    const char *s = lua_tolstring (L, value, &len);
    if (node->has & (N_MINLENGTH | N_MAXLENGTH)) {
        size_t chars = s_utf8_chars (s, len);
        if ((node->has & N_MINLENGTH) && (lua_Number) chars < node->minlength)
            return s_fail (S, "is %d characters long, shorter than the minimum %d",
                           (int) chars, (int) node->minlength);
        if ((node->has & N_MAXLENGTH) && (lua_Number) chars > node->maxlength)
            return s_fail (S, "is %d characters long, longer than the maximum %d",
                           (int) chars, (int) node->maxlength);
    }
    if (!node->pattern)
        return true;
    s_push_ref (L, self, node->pattern);
    size_t plen;
    const char *p = lua_tolstring (L, -1, &plen);
    regex_t *regex = node->regex ? node->regex
                   : s_regex_get (L, S->cache, "mesh.schema", p, plen, false);
    bool matched;
    const char *why = s_regex_run (L, regex, p, plen, s, len, &matched);
    if (why || matched) {
        lua_pop (L, 1);
        return why ? s_fail (S, "%s", why) : true;
    }
    s_fail (S, "%s does not match the pattern %s", s_show (L, value), p);
    lua_replace (L, -3);
    lua_pop (L, 1);
    return false;
}

static bool
s_check_array (s_schema_t *S, s_node_t *node, int self, int value)
{
    lua_State *L = S->L;
    lua_Integer n = luaL_len (L, value);
    if ((node->has & N_MINITEMS) && (lua_Number) n < node->minitems)
        return s_fail (S, "has %d items, fewer than the minimum %d", (int) n,
                       (int) node->minitems);
    if ((node->has & N_MAXITEMS) && (lua_Number) n > node->maxitems)
        return s_fail (S, "has %d items, more than the maximum %d", (int) n,
                       (int) node->maxitems);
    if (!node->items)
        return true;
    int top = lua_gettop (L);
    s_push_ref (L, self, node->items_ref);      //  top + 1: the items' node
    for (lua_Integer i = 1; i <= n; i++) {
        lua_pushinteger (L, i);
        size_t saved;
        s_path_push (S, L, -1, &saved);
        lua_gettable (L, value);                //  top + 2: the item
        bool ok = s_check (S, node->items, top + 1, top + 2);
        s_path_pop (S, saved);
        if (!ok) {
            s_keep_top (L, top);
            return false;
        }
        lua_settop (L, top + 1);
    }
    lua_settop (L, top);
    return true;
}

//  The node for member KEY (NULL: none applies) and its reference in *REF_P;
//  *refused when the member may not be there.
static s_node_t *
s_member_node (s_node_t *node, lua_State *L, int key, bool *refused, int *ref_p)
{
    *refused = false;
    if (lua_type (L, key) == LUA_TSTRING && node->prop_count) {
        size_t len;
        const char *k = lua_tolstring (L, key, &len);
        size_t lo = 0, hi = node->prop_count;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            s_prop_t *p = &node->prop [mid];
            int c = memcmp (k, p->name, len < p->len ? len : p->len);
            if (c == 0)
                c = len < p->len ? -1 : len > p->len;
            if (c == 0) {
                *ref_p = p->ref;
                return p->node;
            }
            if (c < 0)
                hi = mid;
            else
                lo = mid + 1;
        }
    }
    if (node->additional == A_NONE)
        *refused = true;
    *ref_p = node->additional_ref;
    return node->additional == A_SCHEMA ? node->additional_node : NULL;
}

static bool
s_check_object (s_schema_t *S, s_node_t *node, int self, int value)
{
    lua_State *L = S->L;
    int top = lua_gettop (L);
    if (node->required) {
        s_push_ref (L, self, node->required);
        int required = top + 1;
        lua_Integer n = (lua_Integer) lua_rawlen (L, required);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti (L, required, i);
            lua_pushvalue (L, -1);
            bool present = lua_gettable (L, value) != LUA_TNIL;
            lua_pop (L, 1);
            if (!present) {
                size_t saved;
                s_path_push (S, L, -1, &saved);
                s_fail (S, "is missing (required)");
                s_path_pop (S, saved);
                s_keep_top (L, top);
                return false;
            }
            lua_pop (L, 1);
        }
        lua_settop (L, top);
    }
    if (node->prop_count == 0 && node->additional != A_NONE && node->additional != A_SCHEMA)
        return true;
    //  The value's own keys, in order: declared ones against their schema, the others
    //  against additionalProperties.
    int n = mesh_safelib_push_sorted_keys (L, value, 16);
    int keys = 0;
    if (n < 0) {
        mesh_safelib_sorted_keys (L, value);
        keys = top + 1;
        n = (int) lua_rawlen (L, keys);
    }
    int first = lua_gettop (L) + 1;
    for (int i = 1; i <= n; i++) {
        int key = keys ? first : top + i;
        if (keys)
            lua_rawgeti (L, keys, i);
        bool refused;
        int ref = 0;
        s_node_t *sub = s_member_node (node, L, key, &refused, &ref);
        size_t saved;
        if (refused) {
            s_path_push (S, L, key, &saved);
            s_fail (S, "is not allowed (not a declared property)");
            s_path_pop (S, saved);
            s_keep_top (L, top);
            return false;
        }
        if (sub) {
            s_path_push (S, L, key, &saved);
            s_push_ref (L, self, ref);
            lua_pushvalue (L, key);
            lua_gettable (L, value);
            bool ok = s_check (S, sub, lua_gettop (L) - 1, lua_gettop (L));
            s_path_pop (S, saved);
            if (!ok) {
                s_keep_top (L, top);
                return false;
            }
        }
        lua_settop (L, keys ? first - 1 : top + n);
    }
    lua_settop (L, top);
    return true;
}

//  Check the value at VALUE against NODE, whose userdata is at SELF (its references
//  hold what a check pushes: texts, const and enum values, child nodes); true, or
//  false with the message pushed.
static bool
s_check (s_schema_t *S, s_node_t *node, int self, int value)
{
    lua_State *L = S->L;
    value = lua_absindex (L, value);
    if (++S->depth > S_SCHEMA_DEPTH)
        luaL_error (L, "mesh.schema: values nested deeper than %d", S_SCHEMA_DEPTH);
    luaL_checkstack (L, 24, "value nested too deeply");
    mesh_vm_charge (L, 1);
    int top = lua_gettop (L);
    const char *have;
    unsigned bits = s_value_type (L, value, &have);
    bool ok = true;
    if (node->types && !(bits & node->types)) {
        s_push_ref (L, self, node->type_text);
        ok = s_fail (S, "must be %s, not %s", lua_tostring (L, -1), have);
        lua_remove (L, -2);
    }
    if (ok && node->constant) {
        s_push_ref (L, self, node->constant);
        if (!s_equal (L, value, -1, 0)) {
            ok = s_fail (S, "must be %s", s_show (L, -1));
            lua_replace (L, -3);
            lua_pop (L, 1);
        }
        else
            lua_pop (L, 1);
    }
    if (ok && node->enumeration) {
        s_push_ref (L, self, node->enumeration);
        int list = lua_gettop (L);
        lua_Integer n = luaL_len (L, list);
        mesh_vm_charge (L, n > 0 ? (size_t) n : 0);
        bool found = false;
        for (lua_Integer i = 1; i <= n && !found; i++) {
            lua_geti (L, list, i);
            found = s_equal (L, value, -1, 0);
            lua_pop (L, 1);
        }
        if (!found) {
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
            ok = s_fail (S, "must be one of: %s", lua_tostring (L, -1));
            lua_remove (L, -2);
        }
        lua_remove (L, list);
    }
    if (ok && (bits & (T_INTEGER | T_FRACTION)))
        ok = s_check_number (S, node, value);
    if (ok && (bits & T_STRING))
        ok = s_check_string (S, node, self, value);
    if (ok && (bits & T_ARRAY))
        ok = s_check_array (S, node, self, value);
    if (ok && (bits & T_OBJECT))
        ok = s_check_object (S, node, self, value);
    S->depth--;
    if (ok)
        lua_settop (L, top);
    else {
        s_keep_top (L, top);
    }
    return ok;
}

//  mesh.schema (value, schema [, name]): true, or false and "NAME.path: message".
//  Upvalues: the regex cache, the node cache, the nodes' metatable.
static int
s_schema (lua_State *L)
{
    luaL_checktype (L, 2, LUA_TTABLE);
    const char *name = luaL_optstring (L, 3, "value");
    lua_settop (L, 2);
    lua_pushvalue (L, lua_upvalueindex (2));    //  3
    lua_pushvalue (L, lua_upvalueindex (3));    //  4
    s_schema_t S = {
        .L = L, .cache = lua_touserdata (L, lua_upvalueindex (1)), .nodes = 3, .node_mt = 4
    };
    S.path_len = strnlen (name, 64);            //  (not snprintf: this runs per check)
    memcpy (S.path, name, S.path_len);
    S.path [S.path_len] = 0;
    s_node_t *node = s_compile (&S, 2);         //  5
    S.depth = 0;
    if (s_check (&S, node, 5, 1)) {
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
//  filter's strings stay alive on the stack above 3 (the filter may hand out new
//  ones through a metamethod); ctx.history (nil when absent) is then pushed and moved
//  to index 5, with index 4 keeping the filter's strings' count.
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
    lua_pushnil (L);                                                //  4: placeholder
    luaL_checkstack (L, S_FILTER_MAX + 8, NULL);
    if (type == LUA_TTABLE) {
        int atype = lua_getfield (L, 3, "action");
        if (atype == LUA_TSTRING)
            f->actions [f->action_count++] = lua_tostring (L, -1);
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
            }
        }
        else
        if (atype != LUA_TNIL)
            luaL_error (L, "%s: filter.action must be a string or a list of them", fn);
        int ttype = lua_getfield (L, 3, "target");
        if (ttype == LUA_TSTRING)
            f->target = lua_tostring (L, -1);
        else
        if (ttype != LUA_TNIL)
            luaL_error (L, "%s: filter.target must be a string", fn);
    }
    if (lua_getfield (L, 1, "now") != LUA_TNUMBER)
        luaL_error (L, "%s: ctx.now must be a number (the event time), not %s", fn,
                    s_article_type (L, -1));
    f->to = lua_tonumber (L, -1);
    f->from = f->to - span;
    lua_pop (L, 1);
    //  The strings stay where they are; history goes to 5 and the strings above it.
    lua_getfield (L, 1, "history");
    lua_insert (L, 5);
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

//  A history entry as the walks need it; the strings point into the JSON (or into
//  Lua strings kept alive by the history table).  From JSON, only `at` is read up
//  front: most entries fall outside the window, and their other members are never
//  looked at.
typedef struct {
    double at;
    json_t *json;                       //  the entry, until action and target are read
    const char *action, *target;        //  NULL when absent or not a string
    size_t action_len, target_len;
} s_entry_t;

typedef struct {
    size_t count;
    s_entry_t entry[];
} s_history_t;

static const char s_history_key = 0;    //  where a history view caches its parsed form

static void
s_entry_string (json_t *value, const char **s, size_t *len)
{
    *s = json_string_value (value);
    *len = *s ? json_string_length (value) : 0;
}

//  The history at index 5 as a sequence of entries (a userdata the caller leaves on
//  the stack top, or NULL, with nil pushed, when there is no history).  A history
//  that is an input view is parsed once per chain evaluation and kept in the view's
//  cache, so the rules of a chain that look at it pay once.  Raises on an entry
//  without a numeric `at`.
static s_history_t *
s_history (lua_State *L, const char *fn)
{
    int history = 5;
    if (lua_isnil (L, history)) {
        lua_pushnil (L);
        return NULL;
    }
    if (lua_type (L, history) != LUA_TTABLE)
        luaL_error (L, "%s: ctx.history must be a list, not %s", fn,
                    s_article_type (L, history));
    json_t *json;
    if (mesh_view_kind (L, history, &json) == MESH_VIEW_INPUT) {
        mesh_view_push_data (L, history);
        if (lua_rawgetp (L, -1, &s_history_key) == LUA_TUSERDATA) {
            lua_remove (L, -2);
            return lua_touserdata (L, -1);
        }
        lua_pop (L, 1);
        if (json_is_object (json) && json_object_size (json) == 0) {
            lua_pop (L, 1);
            lua_pushnil (L);
            return NULL;
        }
        if (!json_is_array (json))
            luaL_error (L, "%s: ctx.history must be a list", fn);
        size_t size = json_array_size (json);
        mesh_vm_charge (L, size);
        s_history_t *h = lua_newuserdatauv (L, sizeof (s_history_t) + size * sizeof (s_entry_t),
                                            0);
        h->count = size;
        for (size_t i = 0; i < size; i++) {
            s_entry_t *e = &h->entry [i];
            memset (e, 0, sizeof *e);
            e->json = json_array_get (json, i);
            json_t *at = json_object_getn (e->json, "at", 2);
            if (!json_is_number (at))
                luaL_error (L, "%s: ctx.history[%d].at must be a number", fn, (int) i + 1);
            e->at = json_number_value (at);
        }
        lua_pushvalue (L, -1);
        lua_rawsetp (L, -3, &s_history_key);
        lua_remove (L, -2);
        return h;
    }
    //  A plain table (a rule's own): parse it now, keep nothing.
    lua_Integer n = luaL_len (L, history);
    if (n < 0)
        n = 0;
    mesh_vm_charge (L, (size_t) n);
    s_history_t *h = lua_newuserdatauv (L, sizeof (s_history_t) + (size_t) n * sizeof (s_entry_t),
                                        0);
    h->count = (size_t) n;
    for (lua_Integer i = 1; i <= n; i++) {
        s_entry_t *e = &h->entry [i - 1];
        memset (e, 0, sizeof *e);
        int top = lua_gettop (L);
        if (lua_geti (L, history, i) != LUA_TTABLE)
            luaL_error (L, "%s: ctx.history[%d] must be a table {action, target, at}", fn,
                        (int) i);
        if (lua_getfield (L, top + 1, "at") != LUA_TNUMBER)
            luaL_error (L, "%s: ctx.history[%d].at must be a number", fn, (int) i);
        e->at = lua_tonumber (L, -1);
        //  The strings stay alive in the entry, which stays alive in the history.
        if (lua_getfield (L, top + 1, "action") == LUA_TSTRING)
            e->action = lua_tolstring (L, -1, &e->action_len);
        if (lua_getfield (L, top + 1, "target") == LUA_TSTRING)
            e->target = lua_tolstring (L, -1, &e->target_len);
        lua_settop (L, top);
    }
    return h;
}

//  Does entry E fall in F?  Reads its action and target the first time they matter.
static bool
s_matches_filter (const s_filter_t *f, s_entry_t *e)
{
    if (e->at < f->from || e->at > f->to)
        return false;
    if (e->json) {
        s_entry_string (json_object_getn (e->json, "action", 6), &e->action, &e->action_len);
        s_entry_string (json_object_getn (e->json, "target", 6), &e->target, &e->target_len);
        e->json = NULL;
    }
    if (!s_filter_action (f, e->action, e->action_len))
        return false;
    return !f->target || (e->target && strlen (f->target) == e->target_len
                          && memcmp (f->target, e->target, e->target_len) == 0);
}

//  mesh.count_recent (ctx, span, filter): how many entries of ctx.history fall in
//  [ctx.now - span, ctx.now] and match FILTER {action = name or list, target = name}.
static int
s_count_recent (lua_State *L)
{
    s_filter_t f;
    s_filter_read (L, "mesh.count_recent", &f);
    s_history_t *h = s_history (L, "mesh.count_recent");
    lua_Integer count = 0;
    for (size_t i = 0; h && i < h->count; i++)
        count += s_matches_filter (&f, &h->entry [i]);
    lua_pushinteger (L, count);
    return 1;
}

static int
s_target_cmp (const void *a, const void *b)
{
    const s_entry_t *x = *(const s_entry_t *const *) a, *y = *(const s_entry_t *const *) b;
    int c = memcmp (x->target, y->target, x->target_len < y->target_len ? x->target_len
                                                                        : y->target_len);
    if (c)
        return c;
    return x->target_len < y->target_len ? -1 : x->target_len > y->target_len;
}

//  mesh.distinct_targets (ctx, span, filter): the number of distinct targets in the
//  matching entries, and their list in byte order.
static int
s_distinct_targets (lua_State *L)
{
    s_filter_t f;
    s_filter_read (L, "mesh.distinct_targets", &f);
    s_history_t *h = s_history (L, "mesh.distinct_targets");
    size_t count = h ? h->count : 0, n = 0;
    const s_entry_t **found = lua_newuserdatauv (L, (count ? count : 1) * sizeof (void *), 0);
    for (size_t i = 0; i < count; i++)
        if (s_matches_filter (&f, &h->entry [i]) && h->entry [i].target)
            found [n++] = &h->entry [i];
    qsort (found, n, sizeof (void *), s_target_cmp);
    lua_createtable (L, (int) n, 0);
    lua_Integer distinct = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || s_target_cmp (&found [i - 1], &found [i]) != 0) {
            lua_pushlstring (L, found [i]->target, found [i]->target_len);
            lua_rawseti (L, -2, ++distinct);
        }
    lua_pushinteger (L, distinct);
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
//  Text

//  mesh.words (s): how many words S has - runs of letters, digits and non-ASCII
//  characters (so words in any script count), separated by anything else.
static int
s_words (lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring (L, 1, &len);
    lua_Integer words = 0;
    bool in_word = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s [i];
        bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                 || c >= 0x80;
        words += word && !in_word;
        in_word = word;
    }
    lua_pushinteger (L, words);
    return 1;
}

//  --------------------------------------------------------------------------------
//  Asking for a human

//  mesh.require_approval (reason): the proposal, if every check accepts it, is held for
//  a human's approval with REASON.  Judges nothing and returns nothing: the rule still
//  returns its verdict.  Only a string is a reason (no number coerced), and not an
//  empty one.
static int
s_require_approval (lua_State *L)
{
    if (lua_type (L, 1) != LUA_TSTRING)
        return luaL_error (L, "mesh.require_approval: the reason must be a string, not %s",
                           s_article_type (L, 1));
    size_t len;
    const char *reason = lua_tolstring (L, 1, &len);
    if (len == 0)
        return luaL_error (L, "mesh.require_approval: the reason is empty; say what the "
                              "human is to look at");
    mesh_vm_require_approval (L, reason, len);
    return 0;
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
        { "words", s_words }, { "require_approval", s_require_approval },
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
    lua_newtable (L);                           //  frozen schema -> compiled node
    lua_createtable (L, 0, 1);                  //  the nodes' metatable
    lua_pushcfunction (L, s_node_gc);
    lua_setfield (L, -2, "__gc");
    lua_pushcclosure (L, s_schema, 3);
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
