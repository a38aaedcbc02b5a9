/*  test_match - the bounded pattern matcher (lua/match.c) against Lua's own.
 *
 *  In a plain Lua state (no limits) the matcher's find, match, gmatch and gsub must
 *  give what string.find, match, gmatch and gsub give - results, captures, positions
 *  and error messages - on a table of patterns and subjects chosen to reach every
 *  branch of the matcher.  Then, in the sandbox, a single call that Lua's matcher
 *  would run for seconds ends at the time or instruction limit.
 */
#include "internal.h"
#include "sandbox.h"

#include <lauxlib.h>
#include <lualib.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  string.find with the plain-search shortcut the sandbox's find takes (safelib.c)
//  for patterns without special characters.
static int
s_find (lua_State *L)
{
    size_t lp;
    const char *p = luaL_checklstring (L, 2, &lp);
    if (lp == strcspn (p, "^$*+?.([%-")) {
        lua_getglobal (L, "string");
        lua_getfield (L, -1, "find");
        lua_insert (L, 1);
        lua_pop (L, 1);
        lua_call (L, lua_gettop (L) - 1, LUA_MULTRET);
        return lua_gettop (L);
    }
    return mesh_match_find (L, true);
}

static int
s_match (lua_State *L)
{
    return mesh_match_find (L, false);
}

//  The comparison, in Lua: every (subject, pattern[, init]) through both matchers.
static const char *s_script =
    "local cases = {\n"
    "  {'hello world', 'o'}, {'hello world', 'o', 6}, {'hello world', 'o', -3},\n"
    "  {'hello world', 'l+'}, {'hello world', 'l*'}, {'hello world', 'l-o'},\n"
    "  {'hello world', 'x?h'}, {'hello', '^h'}, {'hello', '^e'}, {'hello', 'o$'},\n"
    "  {'hello', 'l$'}, {'a$b', 'a$b'}, {'hello', ''}, {'', ''}, {'', 'a*'},\n"
    "  {'hello', '', 10}, {'hello', '', 6}, {'hello', '.-', 2},\n"
    "  {'key = value', '(%w+)%s*=%s*(%w+)'}, {'key = value', '()(%w+)()'},\n"
    "  {'THE (quick) fox', '%((%a+)%)'}, {'f(a(b)c)d', '%b()'}, {'f(a(b c', '%b()'},\n"
    "  {'THE (quick) fox', '%f[%a]%a+'}, {'hello', '%f[%l]'}, {'x', '%f[%z]'},\n"
    "  {'abcabc', '(abc)%1'}, {'abcab', '(abc)%1'}, {'aaa', '(a)(a)%2'},\n"
    "  {'x = [[a]]', '%[(=*)%['}, {'a.b-c', '[%.%-]'}, {'a]b', '[]]'}, {'a^b', '[%^]'},\n"
    "  {'a-b', '[a-]'}, {'abc', '[^a]+'}, {'abc', '[^]'}, {'1.5e10', '^[+-]?%d+%.?%d*[eE]?%d*$'},\n"
    "  {'\\0a\\0b', '%z'}, {'tab\\there', '%c'}, {'A1_b', '%W'}, {'AbC', '%u%l%u'},\n"
    "  {'  x  ', '^%s*(.-)%s*$'}, {'x', '(()'}, {'x', '%'}, {'x', '[a'}, {'x', '[a%'},\n"
    "  {'x', '(x'}, {'x', 'x)'}, {'x', '%1'}, {'xx', '(x)%2'}, {'x', '%b'}, {'x', '%bx'},\n"
    "  {'x', '%f'}, {'x', '%fx'}, {'xyz', '(x)(y)(z)'}, {'aaab', 'a-b'}, {'aaab', '^a-$'},\n"
    "  {'hello', '[%a-z]'}, {'hello', '[z-a]'}, {'-', '[a%-z]'}, {'hello', 'h.-$'},\n"
    "  {string.rep('a', 300), string.rep('a?', 300) .. string.rep('a', 1)},\n"
    "  {string.rep('(', 40) .. string.rep(')', 40), string.rep('(', 33) .. 'x' .. string.rep(')', 33)},\n"
    "}\n"
    "local function pack (ok, ...) return {ok = ok, n = select('#', ...), ...} end\n"
    "local function same (a, b)\n"
    "  if a.ok ~= b.ok or a.n ~= b.n then return false end\n"
    "  for i = 1, a.n do if a[i] ~= b[i] then return false end end\n"
    "  return true\n"
    "end\n"
    "local function show (r)\n"
    "  local t = {}\n"
    "  for i = 1, r.n do t[#t + 1] = tostring(r[i]) end\n"
    "  return tostring(r.ok) .. ':' .. table.concat(t, ',')\n"
    "end\n"
    "local function gm (f, s, p, i)\n"
    "  local out = {}\n"
    "  for a, b in f(s, p, i) do out[#out + 1] = tostring(a) .. '|' .. tostring(b) end\n"
    "  return table.concat(out, ';')\n"
    "end\n"
    "local bad = {}\n"
    "local function check (name, a, b, c)\n"
    "  if not same(a, b) then bad[#bad + 1] = name .. ' ' .. c .. ': lua ' .. show(a) .. ' ours ' .. show(b) end\n"
    "end\n"
    "local repl = {'<%0>', '%2%1', '%%', '%', '%9', {hello = 'HI', l = false}, function (x) return x:upper() end,\n"
    "              function () return {} end, 7}\n"
    "for k, c in ipairs(cases) do\n"
    "  local s, p, i = c[1], c[2], c[3]\n"
    "  check('find', pack(pcall(string.find, s, p, i)), pack(pcall(mfind, s, p, i)), k)\n"
    "  check('match', pack(pcall(string.match, s, p, i)), pack(pcall(mmatch, s, p, i)), k)\n"
    "  check('gmatch', pack(pcall(gm, string.gmatch, s, p, i)), pack(pcall(gm, mgmatch, s, p, i)), k)\n"
    "  for r, rv in ipairs(repl) do\n"
    "    check('gsub' .. r, pack(pcall(string.gsub, s, p, rv)), pack(pcall(mgsub, s, p, rv)), k)\n"
    "    check('gsub1-' .. r, pack(pcall(string.gsub, s, p, rv, 1)), pack(pcall(mgsub, s, p, rv, 1)), k)\n"
    "  end\n"
    "end\n"
    "return table.concat(bad, '\\n')\n";

static void
test_same_as_lua (void **state)
{
    lua_State *L = luaL_newstate ();
    luaL_openlibs (L);
    lua_register (L, "mfind", s_find);
    lua_register (L, "mmatch", s_match);
    lua_register (L, "mgmatch", mesh_match_gmatch);
    lua_register (L, "mgsub", mesh_match_gsub);
    if (luaL_dostring (L, s_script) != LUA_OK)
        fail_msg ("script: %s", lua_tostring (L, -1));
    const char *bad = lua_tostring (L, -1);
    if (bad && *bad)
        fail_msg ("differences:\n%s", bad);
    lua_close (L);
}

static double
s_ms_since (const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime (CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1e3 + (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

//  Calls that ran for seconds in Lua's matcher end at the limit, within 2 x time_ms
//  + 5 ms.  Instructions are unbounded here, so the clock is what must stop them.
//  Each pattern passes the static bound (one step per position, or anchored): what
//  costs is the 201-member class compared at every byte.
static void
test_single_call_is_bounded (void **state)
{
    const char *src =
        "local miss = '[' .. string.rep('b', 200) .. ']'\n"
        "local hit = '[' .. string.rep('b', 200) .. 'a]'\n"
        "return { name = 'm', description = 'd', check = function (p)\n"
        "  local big, mid = p.big, p.big:sub(1, 999990)\n"
        "  if p.f == 'class' then return mid:find(miss) == nil end\n"
        "  if p.f == 'gsub' then return mid:gsub(hit, '') and true end\n"
        "  if p.f == 'gmatch' then for _ in mid:gmatch(hit) do end return true end\n"
        "  if p.f == 'match' then return big:match('^' .. hit .. '*') == nil end\n"
        "end }\n";
    mesh_sandbox_limits_t limits = { 2000000000L, 64 << 20, 30 };
    char *err = NULL;
    mesh_sandbox_t *rule = mesh_sandbox_load_buffer ("m.lua", src, strlen (src), &limits, &err);
    if (!rule)
        fail_msg ("%s", err);
    size_t size = 2 * 1024 * 1024;
    char *big = malloc (size);
    memset (big, 'a', size);
    const char *kinds[] = { "class", "gsub", "gmatch", "match" };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds [0]; i++) {
        json_t *p = json_pack ("{ss}", "f", kinds [i]);
        json_object_set_new (p, "big", json_stringn (big, size));
        struct timespec t0;
        clock_gettime (CLOCK_MONOTONIC, &t0);
        char *reason = NULL;
        mesh_verdict_t v = mesh_sandbox_eval (rule, p, NULL, &reason);
        double ms = s_ms_since (&t0);
        json_decref (p);
        if (v != MESH_VERDICT_LIMIT || strcmp (reason, "time limit") != 0)
            fail_msg ("%s: %s \"%s\"", kinds [i], mesh_verdict_name (v), reason);
        //  Generous under a loaded or sanitised build; the bench measures tightly.
        if (ms > 2 * limits.time_ms + 5 + 100)
            fail_msg ("%s: took %.1f ms against a %d ms limit", kinds [i], ms, limits.time_ms);
        free (reason);
    }
    free (big);
    mesh_sandbox_destroy (&rule);
}

//  mesh.regex: a pattern glibc takes 250 ms and 30 MB to match on 4096 bytes ends
//  at the time limit in time, at the instruction limit under the default budget,
//  and at the memory limit under a small cap.
static void
test_regex_is_bounded (void **state)
{
    const char *src =
        "return { name = 'r', description = 'd', check = function (p)\n"
        "  return mesh.regex(string.rep('a', 4096), '(a{1,30}){1,30}')\n"
        "end }\n";
    const struct {
        mesh_sandbox_limits_t limits;
        const char *reason;
    } cases[] = {
        { { 2000000000L, 256 << 20, 30 }, "time limit" },
        { { 1000000, 256 << 20, 5000 }, "instruction limit" },
        { { 2000000000L, 4 << 20, 5000 }, "memory limit" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        char *err = NULL;
        mesh_sandbox_t *rule = mesh_sandbox_load_buffer ("r.lua", src, strlen (src),
                                                         &cases [i].limits, &err);
        if (!rule)
            fail_msg ("%s", err);
        struct timespec t0;
        clock_gettime (CLOCK_MONOTONIC, &t0);
        char *reason = NULL;
        mesh_verdict_t v = mesh_sandbox_eval (rule, NULL, NULL, &reason);
        double ms = s_ms_since (&t0);
        if (v != MESH_VERDICT_LIMIT || strcmp (reason, cases [i].reason) != 0)
            fail_msg ("case %zu: %s \"%s\"", i, mesh_verdict_name (v), reason);
#if !defined (__SANITIZE_ADDRESS__)
        //  glibc's compiler and matcher are not instrumented, but ASan's malloc under
        //  them is several times slower: the time is asserted in plain builds only.
        if (ms > 2 * cases [i].limits.time_ms + 5 + 100)
            fail_msg ("case %zu: took %.1f ms", i, ms);
#else
        (void) ms;
#endif
        free (reason);
        mesh_sandbox_destroy (&rule);
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_same_as_lua),
        cmocka_unit_test (test_single_call_is_bounded),
        cmocka_unit_test (test_regex_is_bounded),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
