/*  match - Lua's pattern matching (string.find, match, gmatch, gsub), written again
 *  with a step counter, so that one call into C cannot outrun the evaluation's limits.
 *
 *  Lua's own matcher (lstrlib.c) is a backtracking matcher that the count hook cannot
 *  see: one string.find with a long character class, or a backtracking pattern on a
 *  2 MiB subject, ran for seconds against a 50 ms limit.  We cannot patch the
 *  statically linked library, so rules get this matcher instead: the same language
 *  and the same results (the same captures, positions, errors and messages, the same
 *  200-deep recursion limit and 32 captures), written from the manual's description
 *  of patterns and the 5.4 reference behaviour.  What differs is cost accounting:
 *  every step - a call of the matcher, an item tried at a position, a character of
 *  a [class] compared, a byte of a %b walk or of a back-reference compared - counts,
 *  and every S_BATCH steps the count goes to the instruction budget (mesh_vm_charge,
 *  S_STEPS_PER_UNIT steps per instruction), which also looks at the clock.  A match
 *  therefore ends with the instruction or time limit within a few microseconds of
 *  the limit, wherever in the recursion it is; the error unwinds through the C
 *  frames with longjmp, which is safe because the matcher holds nothing but C stack.
 *  gsub charges the bytes it copies too.  In a plain lua_State (the bench baseline)
 *  the charges do nothing and this is just a matcher.
 *
 *  Known difference: none in results.  Where Lua reads the NUL that terminates
 *  every Lua string (a pattern ending in the middle of an item, %b at the end of the
 *  subject), this file checks the bound instead; the outcome is the same.
 */
#include "internal.h"

#include <lauxlib.h>

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#define S_MAX_CAPTURES      32          //  as LUA_MAXCAPTURES
#define S_MAX_DEPTH         200         //  as MAXCCALLS: "pattern too complex"
#define S_CAP_UNFINISHED    (-1)
#define S_CAP_POSITION      (-2)
#define S_BATCH             4096        //  steps between two charges
#define S_STEPS_PER_UNIT    4           //  matcher steps per instruction of the budget

typedef struct {
    const char *src_init, *src_end;
    const char *p_end;
    lua_State *L;
    int depth;                          //  recursion left
    int level;                          //  captures open or closed
    size_t steps;                       //  not yet charged
    struct {
        const char *init;
        ptrdiff_t len;
    } capture[S_MAX_CAPTURES];
} s_state_t;

//  Charge the steps counted so far (raises the instruction or time limit).
static void
s_flush (s_state_t *ms)
{
    size_t units = ms->steps / S_STEPS_PER_UNIT;
    ms->steps -= units * S_STEPS_PER_UNIT;
    mesh_vm_charge (ms->L, units ? units : 0);
    mesh_vm_check_time (ms->L);
}

static inline void
s_step (s_state_t *ms, size_t n)
{
    ms->steps += n;
    if (ms->steps >= S_BATCH)
        s_flush (ms);
}

//  The end of the single-character item at P (a %x, a [set] or a character).
static const char *
s_item_end (s_state_t *ms, const char *p)
{
    char c = *p++;
    if (c == '%') {
        if (p >= ms->p_end)
            luaL_error (ms->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (p < ms->p_end && *p == '^')
            p++;
        //  The first character after [ (or [^) is part of the set, even ']'.
        do {
            if (p >= ms->p_end)
                luaL_error (ms->L, "malformed pattern (missing ']')");
            c = *p++;
            if (c == '%' && p < ms->p_end)
                p++;
        } while (p >= ms->p_end || *p != ']');
        return p + 1;
    }
    return p;
}

//  C against the class letter CL (%a, %d, ..., %z; upper case negates; any other
//  character stands for itself).
static bool
s_class (int c, int cl)
{
    bool yes;
    switch (tolower (cl)) {
        case 'a': yes = isalpha (c); break;
        case 'c': yes = iscntrl (c); break;
        case 'd': yes = isdigit (c); break;
        case 'g': yes = isgraph (c); break;
        case 'l': yes = islower (c); break;
        case 'p': yes = ispunct (c); break;
        case 's': yes = isspace (c); break;
        case 'u': yes = isupper (c); break;
        case 'w': yes = isalnum (c); break;
        case 'x': yes = isxdigit (c); break;
        case 'z': yes = c == 0; break;      //  deprecated in Lua, still accepted
        default: return cl == c;
    }
    if (isupper (cl))
        yes = !yes;
    return yes;
}

//  C against the set from P ('[') to EC (its ']'); each member looked at is a step.
static bool
s_set (s_state_t *ms, int c, const char *p, const char *ec)
{
    bool match = true;
    const char *start = p;
    if (p [1] == '^') {
        match = false;
        p++;
    }
    bool found = false;
    while (++p < ec) {
        if (*p == '%') {
            p++;
            if (s_class (c, (unsigned char) *p)) {
                found = true;
                break;
            }
        }
        else
        if (p [1] == '-' && p + 2 < ec) {
            p += 2;
            if ((unsigned char) p [-2] <= c && c <= (unsigned char) *p) {
                found = true;
                break;
            }
        }
        else
        if ((unsigned char) *p == c) {
            found = true;
            break;
        }
    }
    s_step (ms, (size_t) (p - start));
    return found ? match : !match;
}

//  Does the character at S match the item from P to EP?
static bool
s_single (s_state_t *ms, const char *s, const char *p, const char *ep)
{
    if (s >= ms->src_end)
        return false;
    int c = (unsigned char) *s;
    switch (*p) {
        case '.': return true;
        case '%': return s_class (c, (unsigned char) p [1]);
        case '[': return s_set (ms, c, p, ep - 1);
        default:  return (unsigned char) *p == c;
    }
}

static const char *s_match (s_state_t *ms, const char *s, const char *p);

//  %bxy at S.
static const char *
s_balance (s_state_t *ms, const char *s, const char *p)
{
    if (p + 1 >= ms->p_end)
        luaL_error (ms->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ms->src_end || *s != p [0])
        return NULL;
    char open = p [0], close = p [1];
    int count = 1;
    const char *start = s;
    while (++s < ms->src_end) {
        if (*s == close) {
            if (--count == 0) {
                s_step (ms, (size_t) (s - start));
                return s + 1;
            }
        }
        else
        if (*s == open)
            count++;
    }
    s_step (ms, (size_t) (s - start));
    return NULL;
}

//  The longest run of the item P..EP from S, then shorter ones, each followed by
//  the rest of the pattern.
static const char *
s_max_expand (s_state_t *ms, const char *s, const char *p, const char *ep)
{
    ptrdiff_t i = 0;
    while (s_single (ms, s + i, p, ep)) {
        i++;
        s_step (ms, 1);
    }
    while (i >= 0) {
        const char *res = s_match (ms, s + i, ep + 1);
        if (res)
            return res;
        i--;
    }
    return NULL;
}

//  The shortest run first (x-).
static const char *
s_min_expand (s_state_t *ms, const char *s, const char *p, const char *ep)
{
    while (true) {
        const char *res = s_match (ms, s, ep + 1);
        if (res)
            return res;
        if (!s_single (ms, s, p, ep))
            return NULL;
        s++;
        s_step (ms, 1);
    }
}

static const char *
s_start_capture (s_state_t *ms, const char *s, const char *p, ptrdiff_t what)
{
    if (ms->level >= S_MAX_CAPTURES)
        luaL_error (ms->L, "too many captures");
    ms->capture [ms->level].init = s;
    ms->capture [ms->level].len = what;
    ms->level++;
    const char *res = s_match (ms, s, p);
    if (!res)
        ms->level--;
    return res;
}

static const char *
s_end_capture (s_state_t *ms, const char *s, const char *p)
{
    int l = -1;
    for (int i = ms->level - 1; i >= 0; i--)
        if (ms->capture [i].len == S_CAP_UNFINISHED) {
            l = i;
            break;
        }
    if (l < 0)
        luaL_error (ms->L, "invalid pattern capture");
    ms->capture [l].len = s - ms->capture [l].init;
    const char *res = s_match (ms, s, p);
    if (!res)
        ms->capture [l].len = S_CAP_UNFINISHED;
    return res;
}

//  The index of the closed capture %L (a digit), or an error.
static int
s_capture_index (s_state_t *ms, int l)
{
    l -= '1';
    if (l < 0 || l >= ms->level || ms->capture [l].len == S_CAP_UNFINISHED)
        luaL_error (ms->L, "invalid capture index %%%d", l + 1);
    return l;
}

static const char *
s_back_reference (s_state_t *ms, const char *s, int l)
{
    l = s_capture_index (ms, l);
    size_t len = (size_t) ms->capture [l].len;
    s_step (ms, len);
    if ((size_t) (ms->src_end - s) >= len && memcmp (ms->capture [l].init, s, len) == 0)
        return s + len;
    return NULL;
}

static const char *
s_match (s_state_t *ms, const char *s, const char *p)
{
    if (ms->depth-- == 0)
        luaL_error (ms->L, "pattern too complex");
    s_step (ms, 1);
    while (p != ms->p_end) {
        if (*p == '(') {
            if (p + 1 < ms->p_end && p [1] == ')')
                s = s_start_capture (ms, s, p + 2, S_CAP_POSITION);
            else
                s = s_start_capture (ms, s, p + 1, S_CAP_UNFINISHED);
            break;
        }
        if (*p == ')') {
            s = s_end_capture (ms, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == ms->p_end) {
            s = s == ms->src_end ? s : NULL;
            break;
        }
        if (*p == '%' && p + 1 < ms->p_end && p [1] == 'b') {
            s = s_balance (ms, s, p + 2);
            if (!s)
                break;
            p += 4;
            continue;
        }
        if (*p == '%' && p + 1 < ms->p_end && p [1] == 'f') {
            p += 2;
            if (p >= ms->p_end || *p != '[')
                luaL_error (ms->L, "missing '[' after '%%f' in pattern");
            const char *ep = s_item_end (ms, p);
            int previous = s == ms->src_init ? 0 : (unsigned char) s [-1];
            int current = s < ms->src_end ? (unsigned char) *s : 0;
            if (!s_set (ms, previous, p, ep - 1) && s_set (ms, current, p, ep - 1)) {
                p = ep;
                continue;
            }
            s = NULL;
            break;
        }
        if (*p == '%' && p + 1 < ms->p_end && isdigit ((unsigned char) p [1])) {
            s = s_back_reference (ms, s, (unsigned char) p [1]);
            if (!s)
                break;
            p += 2;
            continue;
        }
        const char *ep = s_item_end (ms, p);
        char suffix = ep < ms->p_end ? *ep : 0;
        if (!s_single (ms, s, p, ep)) {
            if (suffix == '*' || suffix == '?' || suffix == '-') {
                p = ep + 1;             //  zero occurrences are fine
                continue;
            }
            s = NULL;
            break;
        }
        if (suffix == '?') {
            const char *res = s_match (ms, s + 1, ep + 1);
            if (res) {
                s = res;
                break;
            }
            p = ep + 1;
            continue;
        }
        if (suffix == '+') {
            s = s_max_expand (ms, s + 1, p, ep);
            break;
        }
        if (suffix == '*') {
            s = s_max_expand (ms, s, p, ep);
            break;
        }
        if (suffix == '-') {
            s = s_min_expand (ms, s, p, ep);
            break;
        }
        s++;
        p = ep;
    }
    ms->depth++;
    return s;
}

//  --------------------------------------------------------------------------------
//  Captures and the library functions

static void
s_prepare (s_state_t *ms, lua_State *L, const char *s, size_t ls, const char *p, size_t lp)
{
    ms->L = L;
    ms->src_init = s;
    ms->src_end = s + ls;
    ms->p_end = p + lp;
    ms->steps = 0;
}

static void
s_restart (s_state_t *ms)
{
    ms->level = 0;
    ms->depth = S_MAX_DEPTH;
}

//  Push capture I (or the whole match S..E when there are none); its length.
static size_t
s_push_capture (s_state_t *ms, int i, const char *s, const char *e)
{
    if (i >= ms->level) {
        if (i != 0)
            luaL_error (ms->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring (ms->L, s, (size_t) (e - s));
        return (size_t) (e - s);
    }
    ptrdiff_t len = ms->capture [i].len;
    if (len == S_CAP_UNFINISHED)
        luaL_error (ms->L, "unfinished capture");
    if (len == S_CAP_POSITION) {
        lua_pushinteger (ms->L, (ms->capture [i].init - ms->src_init) + 1);
        return 0;
    }
    lua_pushlstring (ms->L, ms->capture [i].init, (size_t) len);
    return (size_t) len;
}

//  Push every capture (S NULL: only real captures); how many.
static int
s_push_captures (s_state_t *ms, const char *s, const char *e)
{
    int n = ms->level == 0 && s ? 1 : ms->level;
    luaL_checkstack (ms->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        s_push_capture (ms, i, s, e);
    return n;
}

//  Lua's relative start position (1-based, negative from the end), as 0-based.
static size_t
s_start (lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t) pos - 1;
    if (pos == 0 || pos < -(lua_Integer) len)
        return 0;
    return (size_t) ((lua_Integer) len + pos);
}

int
mesh_match_find (lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring (L, 1, &ls);
    const char *p = luaL_checklstring (L, 2, &lp);
    size_t init = s_start (luaL_optinteger (L, 3, 1), ls);
    if (init > ls) {
        luaL_pushfail (L);
        return 1;
    }
    s_state_t ms;
    s_prepare (&ms, L, s, ls, p, lp);
    bool anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        ms.p_end = p + lp - 1;
    }
    const char *s1 = s + init;
    do {
        s_restart (&ms);
        const char *e = s_match (&ms, s1, p);
        if (e) {
            s_flush (&ms);
            if (find) {
                lua_pushinteger (L, (s1 - s) + 1);
                lua_pushinteger (L, e - s);
                return s_push_captures (&ms, NULL, 0) + 2;
            }
            return s_push_captures (&ms, s1, e);
        }
    } while (s1++ < ms.src_end && !anchor);
    s_flush (&ms);
    luaL_pushfail (L);
    return 1;
}

//  gmatch's iterator; upvalues: the subject, the pattern, the state (userdata).
typedef struct {
    const char *src;                    //  where the next search starts
    const char *lastmatch;              //  end of the last match (no empty match there)
    s_state_t ms;
} s_gmatch_t;

static int
s_gmatch_next (lua_State *L)
{
    s_gmatch_t *gm = lua_touserdata (L, lua_upvalueindex (3));
    size_t lp;
    const char *p = lua_tolstring (L, lua_upvalueindex (2), &lp);
    gm->ms.L = L;
    for (const char *src = gm->src; src <= gm->ms.src_end; src++) {
        s_restart (&gm->ms);
        const char *e = s_match (&gm->ms, src, p);
        if (e && e != gm->lastmatch) {
            gm->src = gm->lastmatch = e;
            s_flush (&gm->ms);
            return s_push_captures (&gm->ms, src, e);
        }
    }
    gm->src = gm->ms.src_end + 1;
    s_flush (&gm->ms);
    return 0;
}

int
mesh_match_gmatch (lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring (L, 1, &ls);
    const char *p = luaL_checklstring (L, 2, &lp);
    size_t init = s_start (luaL_optinteger (L, 3, 1), ls);
    if (init > ls)
        init = ls + 1;                  //  start after the end: no match
    lua_settop (L, 2);
    s_gmatch_t *gm = lua_newuserdatauv (L, sizeof (s_gmatch_t), 0);
    s_prepare (&gm->ms, L, s, ls, p, lp);
    gm->src = s + init;
    gm->lastmatch = NULL;
    lua_pushcclosure (L, s_gmatch_next, 3);
    return 1;
}

//  Append the replacement string (argument 3) for the match S..E, with %0-%9.
static void
s_add_string (s_state_t *ms, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = ms->L;
    size_t l;
    const char *news = lua_tolstring (L, 3, &l);
    const char *end = news + l;
    const char *p;
    while ((p = memchr (news, '%', (size_t) (end - news)))) {
        luaL_addlstring (b, news, (size_t) (p - news));
        p++;
        if (p < end && *p == '%')
            luaL_addchar (b, '%');
        else
        if (p < end && *p == '0')
            luaL_addlstring (b, s, (size_t) (e - s));
        else
        if (p < end && isdigit ((unsigned char) *p)) {
            s_push_capture (ms, *p - '1', s, e);
            luaL_tolstring (L, -1, NULL);
            lua_remove (L, -2);
            luaL_addvalue (b);
        }
        else
            luaL_error (L, "invalid use of '%%' in replacement string");
        news = p + 1;
    }
    luaL_addlstring (b, news, (size_t) (end - news));
    s_step (ms, l);
}

//  Append the replacement for the match S..E; false when the match is kept as it was.
static bool
s_add_value (s_state_t *ms, luaL_Buffer *b, const char *s, const char *e, int tr)
{
    lua_State *L = ms->L;
    if (tr == LUA_TFUNCTION) {
        lua_pushvalue (L, 3);
        int n = s_push_captures (ms, s, e);
        lua_call (L, n, 1);
    }
    else
    if (tr == LUA_TTABLE) {
        s_push_capture (ms, 0, s, e);
        lua_gettable (L, 3);
    }
    else {
        s_add_string (ms, b, s, e);
        return true;
    }
    if (!lua_toboolean (L, -1)) {
        lua_pop (L, 1);
        luaL_addlstring (b, s, (size_t) (e - s));
        return false;
    }
    if (!lua_isstring (L, -1))
        return luaL_error (L, "invalid replacement value (a %s)", luaL_typename (L, -1));
    luaL_addvalue (b);
    return true;
}

int
mesh_match_gsub (lua_State *L)
{
    size_t srcl, lp;
    const char *src = luaL_checklstring (L, 1, &srcl);
    const char *p = luaL_checklstring (L, 2, &lp);
    const char *lastmatch = NULL;
    int tr = lua_type (L, 3);
    lua_Integer max_s = luaL_optinteger (L, 4, (lua_Integer) srcl + 1);
    luaL_argexpected (L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION
                      || tr == LUA_TTABLE, 3, "string/function/table");
    bool anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    luaL_Buffer b;
    luaL_buffinit (L, &b);
    s_state_t ms;
    s_prepare (&ms, L, src, srcl, p, lp);
    lua_Integer n = 0;
    bool changed = false;
    while (n < max_s) {
        s_restart (&ms);
        const char *e = s_match (&ms, src, p);
        if (e && e != lastmatch) {
            n++;
            changed |= s_add_value (&ms, &b, src, e, tr);
            s_step (&ms, (size_t) (e - src));
            src = lastmatch = e;
        }
        else
        if (src < ms.src_end) {
            luaL_addchar (&b, *src++);
            s_step (&ms, 1);
        }
        else
            break;
        if (anchor)
            break;
    }
    s_flush (&ms);
    if (!changed)
        lua_pushvalue (L, 1);
    else {
        luaL_addlstring (&b, src, (size_t) (ms.src_end - src));
        s_step (&ms, (size_t) (ms.src_end - src));
        s_flush (&ms);
        luaL_pushresult (&b);
    }
    lua_pushinteger (L, n);
    return 2;
}
