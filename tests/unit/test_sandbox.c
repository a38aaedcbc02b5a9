/*  test_sandbox - the Lua rule sandbox (lua/): the verdict contract, loading, the
 *  limits, the vm that keeps one state per chain, the read-only views of inputs and
 *  libraries, the deterministic library, the mesh helpers, and a corpus of hostile
 *  rules (tests/unit/rules/hostile_*.lua).
 *
 *  After every hostile evaluation a normal rule is evaluated again and must still
 *  accept: nothing a rule does may break the sandbox for the next one.  Run from the
 *  repository root.  Limits here are generous on time so that a slow (sanitised)
 *  build never turns a verdict into a time limit; the time limit has its own test.
 */
#include "internal.h"
#include "sandbox.h"
#include "vm.h"

#include <lauxlib.h>
#include <lualib.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RULES "tests/unit/rules/"

static const mesh_sandbox_limits_t s_limits = { 1000000, 8 << 20, 5000 };
static mesh_sandbox_t *s_accept;            //  the normal rule evaluated after each hostile one

static mesh_sandbox_t *
s_load (const char *name, const mesh_sandbox_limits_t *limits)
{
    char path[256];
    snprintf (path, sizeof path, RULES "%s", name);
    char *err = NULL;
    mesh_sandbox_t *rule = mesh_sandbox_load (path, limits ? limits : &s_limits, &err);
    if (!rule)
        fail_msg ("%s: %s", path, err);
    assert_null (err);
    return rule;
}

//  Evaluate RULE on the JSON texts (NULL: nil in Lua); *reason_p set as by the sandbox.
static mesh_verdict_t
s_eval (mesh_sandbox_t *rule, const char *proposal, const char *ctx, char **reason_p)
{
    json_error_t error;
    json_t *p = proposal ? json_loads (proposal, JSON_DECODE_ANY, &error) : NULL;
    json_t *c = ctx ? json_loads (ctx, JSON_DECODE_ANY, &error) : NULL;
    if ((proposal && !p) || (ctx && !c))
        fail_msg ("bad test JSON: %s", error.text);
    mesh_verdict_t verdict = mesh_sandbox_eval (rule, p, c, reason_p);
    json_decref (p);
    json_decref (c);
    return verdict;
}

static void
s_assert_healthy (void)
{
    char *reason = (char *) "unset";
    assert_int_equal (s_eval (s_accept, "{\"action\":\"note\"}", "{}", &reason),
                      MESH_VERDICT_ACCEPT);
    assert_null (reason);
}

//  Evaluate and check the verdict and that the reason contains WANT.
static void
s_expect (mesh_sandbox_t *rule, const char *proposal, mesh_verdict_t verdict, const char *want)
{
    char *reason = NULL;
    mesh_verdict_t got = s_eval (rule, proposal, "{}", &reason);
    if (got != verdict || (want && (!reason || !strstr (reason, want))))
        fail_msg ("%s on %s: got %s \"%s\", want %s \"%s\"", mesh_sandbox_name (rule),
                  proposal, mesh_verdict_name (got), reason ? reason : "(null)",
                  mesh_verdict_name (verdict), want ? want : "");
    free (reason);
    s_assert_healthy ();
}

//  Load PATH and expect failure with an error starting with PREFIX and containing WANT.
static void
s_expect_load_error (const char *path, const char *prefix, const char *want)
{
    char *err = NULL;
    mesh_sandbox_t *rule = mesh_sandbox_load (path, &s_limits, &err);
    assert_null (rule);
    assert_non_null (err);
    if (strncmp (err, prefix, strlen (prefix)) != 0 || (want && !strstr (err, want)))
        fail_msg ("loading %s: got \"%s\", want \"%s...%s...\"", path, err, prefix,
                  want ? want : "");
    assert_null (strchr (err, '\n'));
    free (err);
}

static int
s_setup (void **state)
{
    s_accept = s_load ("accept.lua", NULL);
    return 0;
}

static int
s_teardown (void **state)
{
    mesh_sandbox_destroy (&s_accept);
    assert_null (s_accept);
    return 0;
}

static const char *
s_proposal_text (void)
{
    return "{\"action\":\"scale_out\",\"params\":{\"service\":\"web\",\"replicas\":3},"
           "\"confidence\":0.82,\"rationale\":\"cpu\",\"absent\":null}";
}

static const char *
s_ctx_text (void)
{
    return "{\"agent\":\"cpu-watch\",\"now\":1700000000,\"incident\":{\"window\":[1.5,null,3],"
           "\"flags\":{\"up\":true,\"down\":false},\"score\":0.97}}";
}

//  --------------------------------------------------------------------------------

static void
test_accept_and_reject (void **state)
{
    assert_string_equal (mesh_sandbox_name (s_accept), "accept");
    assert_string_equal (mesh_sandbox_description (s_accept), "always accepts");
    assert_string_equal (mesh_sandbox_path (s_accept), RULES "accept.lua");
    s_assert_healthy ();
    //  NULL inputs are nil to the rule.
    assert_int_equal (mesh_sandbox_eval (s_accept, NULL, NULL, NULL), MESH_VERDICT_ACCEPT);

    mesh_sandbox_t *rule = s_load ("reject.lua", NULL);
    char *reason = NULL;
    assert_int_equal (s_eval (rule, "{\"action\":\"scale_out\"}", "{}", &reason),
                      MESH_VERDICT_REJECT);
    assert_string_equal (reason, "not today: scale_out");
    free (reason);
    //  The rule indexes a nil proposal: an error, not a crash.
    s_expect (rule, "null", MESH_VERDICT_ERROR, "attempt to index a nil value");
    mesh_sandbox_destroy (&rule);
    mesh_sandbox_destroy (&rule);               //  safe on NULL
}

static void
test_wrong_return_types (void **state)
{
    mesh_sandbox_t *rule = s_load ("returns.lua", NULL);
    s_expect (rule, "{\"kind\":\"nil\"}", MESH_VERDICT_ERROR, "check returned nil");
    s_expect (rule, "{\"kind\":\"nothing\"}", MESH_VERDICT_ERROR, "check returned nil");
    s_expect (rule, "{\"kind\":\"one\"}", MESH_VERDICT_ERROR, "check returned a number");
    s_expect (rule, "{\"kind\":\"string_true\"}", MESH_VERDICT_ERROR, "check returned a string");
    s_expect (rule, "{\"kind\":\"table\"}", MESH_VERDICT_ERROR, "check returned a table");
    s_expect (rule, "{\"kind\":\"false_no_reason\"}", MESH_VERDICT_ERROR, "false with nil");
    s_expect (rule, "{\"kind\":\"false_empty_reason\"}", MESH_VERDICT_ERROR, "false with a string");
    s_expect (rule, "{\"kind\":\"false_number_reason\"}", MESH_VERDICT_ERROR,
              "false with a number");
    s_expect (rule, "{\"kind\":\"true_extra\"}", MESH_VERDICT_ACCEPT, NULL);
    mesh_sandbox_destroy (&rule);
}

static void
test_reasons_are_clean (void **state)
{
    mesh_sandbox_t *rule = s_load ("returns.lua", NULL);
    char *reason = NULL;
    //  2000 bytes of two-byte characters: cut on a character boundary, marked.
    assert_int_equal (s_eval (rule, "{\"kind\":\"long_reason\"}", NULL, &reason),
                      MESH_VERDICT_REJECT);
    size_t len = strlen (reason);
    assert_true (len <= MESH_SANDBOX_MAX_REASON);
    assert_true (len > MESH_SANDBOX_MAX_REASON - 8);
    assert_string_equal (reason + len - 3, "...");
    assert_true ((unsigned char) reason [len - 4] == 0xa9);    //  last byte of a whole "é"
    json_t *j = json_string (reason);                           //  valid UTF-8
    assert_non_null (j);
    json_decref (j);
    free (reason);
    //  Control characters and NUL become spaces, an invalid byte becomes '?'.
    assert_int_equal (s_eval (rule, "{\"kind\":\"control_reason\"}", NULL, &reason),
                      MESH_VERDICT_REJECT);
    assert_string_equal (reason, "line1 line2 end?");
    free (reason);
    mesh_sandbox_destroy (&rule);
}

static void
test_errors_raised (void **state)
{
    mesh_sandbox_t *rule = s_load ("returns.lua", NULL);
    s_expect (rule, "{\"kind\":\"error_string\"}", MESH_VERDICT_ERROR, "returns.lua:");
    s_expect (rule, "{\"kind\":\"error_string\"}", MESH_VERDICT_ERROR, "boom");
    s_expect (rule, "{\"kind\":\"error_table\"}", MESH_VERDICT_ERROR, "error raised with a table");
    s_expect (rule, "{\"kind\":\"error_nil\"}", MESH_VERDICT_ERROR, "error raised with nil");
    //  An unknown kind calls nil: also an error.
    s_expect (rule, "{\"kind\":\"no-such\"}", MESH_VERDICT_ERROR, "attempt to call");
    mesh_sandbox_destroy (&rule);
}

static void
test_load_errors (void **state)
{
    s_expect_load_error (RULES "syntax_error.lua", RULES "syntax_error.lua:3:", "expected");
    s_expect_load_error (RULES "toplevel_error.lua", RULES "toplevel_error.lua:2:",
                         "arithmetic on a nil value");
    s_expect_load_error (RULES "not_table.lua", RULES "not_table.lua: ", "must return a table");
    s_expect_load_error (RULES "no_check.lua", RULES "no_check.lua: ", "check = function");
    s_expect_load_error (RULES "bad_name.lua", RULES "bad_name.lua: ", "rule name");
    s_expect_load_error (RULES "no_such_rule.lua", RULES "no_such_rule.lua: ", "cannot open");
    s_expect_load_error (RULES, RULES ": ", "not a regular file");
    //  Without an err pointer the problem is logged and NULL returned.
    assert_null (mesh_sandbox_load (RULES "no_such_rule.lua", NULL, NULL));
    //  A chunk whose top level loops is stopped at load too.
    const char *loop = "while true do end";
    char *err = NULL;
    assert_null (mesh_sandbox_load_buffer ("loop.lua", loop, strlen (loop), &s_limits, &err));
    assert_string_equal (err, "loop.lua: loading the rule hit its instruction limit");
    free (err);
}

//  Write SIZE bytes of DATA (repeated) to DIR/NAME; returns the path (static buffer).
static const char *
s_write (const char *dir, const char *name, const char *data, size_t len, mode_t mode)
{
    static char path[512];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true (fd >= 0);
    assert_int_equal (write (fd, data, len), (ssize_t) len);
    close (fd);
    assert_int_equal (chmod (path, mode), 0);
    return path;
}

static void
test_load_file_checks (void **state)
{
    char dir[] = "/tmp/test_sandbox.XXXXXX";
    assert_non_null (mkdtemp (dir));
    const char *rule = "return { name = \"ok\", description = \"d\", "
                       "check = function () return true end }\n";
    size_t rule_len = strlen (rule);
    char path[600];

    //  Exactly 256 KiB loads; one byte more does not.
    size_t max = MESH_SANDBOX_MAX_SOURCE;
    char *big = malloc (max + 1);
    memcpy (big, rule, rule_len);
    memset (big + rule_len, '-', max + 1 - rule_len);
    big [rule_len] = '\n';
    snprintf (path, sizeof path, "%s", s_write (dir, "max.lua", big, max, 0644));
    char *err = NULL;
    mesh_sandbox_t *ok = mesh_sandbox_load (path, &s_limits, &err);
    assert_non_null (ok);
    assert_null (err);
    size_t size = 0;
    assert_non_null (mesh_sandbox_source (ok, &size));
    assert_int_equal (size, max);
    mesh_sandbox_destroy (&ok);
    snprintf (path, sizeof path, "%s", s_write (dir, "big.lua", big, max + 1, 0644));
    s_expect_load_error (path, path, "larger than 256 KiB");
    assert_null (mesh_sandbox_load_buffer ("big.lua", big, max + 1, NULL, &err));
    assert_non_null (strstr (err, "larger than"));
    free (err);
    free (big);

    //  A NUL byte anywhere.
    char with_nul[200];
    memcpy (with_nul, rule, rule_len);
    with_nul [rule_len] = 0;
    memcpy (with_nul + rule_len + 1, "--x", 3);
    snprintf (path, sizeof path, "%s", s_write (dir, "nul.lua", with_nul, rule_len + 4, 0644));
    s_expect_load_error (path, path, "NUL byte");

    //  A binary chunk (the signature, then no NUL so that only the mode refuses it).
    const char *binary = "\x1bLuaT\x01\x19\x93\r\n\x1a\n return 1";
    snprintf (path, sizeof path, "%s", s_write (dir, "binary.lua", binary, strlen (binary),
                                                0644));
    s_expect_load_error (path, path, "binary chunk");

    //  World-writable: anyone could rewrite the gate.
    snprintf (path, sizeof path, "%s", s_write (dir, "open.lua", rule, rule_len, 0666));
    s_expect_load_error (path, path, "world-writable");
    assert_int_equal (chmod (path, 0644), 0);
    ok = mesh_sandbox_load (path, &s_limits, NULL);
    assert_non_null (ok);
    assert_string_equal (mesh_sandbox_name (ok), "ok");
    mesh_sandbox_destroy (&ok);

    //  The memory limit is what an evaluation may add to the state as built: a small
    //  one still loads a small rule, and stops a rule that needs more.
    mesh_sandbox_limits_t tiny = { 1000000, 4096, 5000 };
    ok = mesh_sandbox_load (path, &tiny, &err);
    assert_non_null (ok);
    assert_int_equal (mesh_sandbox_limits (ok)->memory, 4096);
    assert_int_equal (mesh_sandbox_eval (ok, NULL, NULL, NULL), MESH_VERDICT_ACCEPT);
    mesh_sandbox_destroy (&ok);
    const char *greedy = "local t = {} for i = 1, 2000 do t[i] = i end\n"
                         "return { name = \"g\", description = \"d\", "
                         "check = function () return true end }";
    assert_null (mesh_sandbox_load_buffer ("greedy.lua", greedy, strlen (greedy), &tiny, &err));
    assert_string_equal (err, "greedy.lua: loading the rule hit its memory limit");
    free (err);

    const char *names[] = { "max.lua", "big.lua", "nul.lua", "binary.lua", "open.lua" };
    for (size_t i = 0; i < sizeof names / sizeof names [0]; i++) {
        snprintf (path, sizeof path, "%s/%s", dir, names [i]);
        assert_int_equal (unlink (path), 0);
    }
    assert_int_equal (rmdir (dir), 0);
}

static void
test_instruction_limit (void **state)
{
    mesh_sandbox_t *rule = s_load ("hostile_loop.lua", NULL);
    s_expect (rule, "{}", MESH_VERDICT_LIMIT, "instruction limit");
    mesh_sandbox_destroy (&rule);
    //  A budget smaller than the hook period still counts.
    mesh_sandbox_limits_t small = { 10, 8 << 20, 5000 };
    mesh_sandbox_t *accept = s_load ("accept.lua", &small);
    assert_int_equal (s_eval (accept, "{}", NULL, NULL), MESH_VERDICT_ACCEPT);
    mesh_sandbox_destroy (&accept);
    //  helpers.lua loads (its chunk is small) but its check needs far more than 10.
    mesh_sandbox_t *helpers = s_load ("helpers.lua", &small);
    s_expect (helpers, "{}", MESH_VERDICT_LIMIT, "instruction limit");
    mesh_sandbox_destroy (&helpers);
}

static void
test_time_limit (void **state)
{
    mesh_sandbox_limits_t limits = { LONG_MAX, 8 << 20, 20 };
    mesh_sandbox_t *rule = s_load ("hostile_loop.lua", &limits);
    s_expect (rule, "{}", MESH_VERDICT_LIMIT, "time limit");
    mesh_sandbox_destroy (&rule);
}

static void
test_pcall_cannot_swallow (void **state)
{
    //  pcall is there, but a limit inside it still ends the evaluation.
    mesh_sandbox_t *rule = s_load ("hostile_pcall_loop.lua", NULL);
    s_expect (rule, "{}", MESH_VERDICT_LIMIT, "instruction limit");
    mesh_sandbox_destroy (&rule);

    mesh_sandbox_limits_t limits = { 1000000, 1 << 20, 5000 };
    rule = s_load ("pcall.lua", &limits);
    const struct {
        const char *probe;
        mesh_verdict_t verdict;
        const char *reason;
    } probes[] = {
        { "caught", MESH_VERDICT_ACCEPT, NULL },
        { "caught_values", MESH_VERDICT_ACCEPT, NULL },
        { "xpcall_caught", MESH_VERDICT_ACCEPT, NULL },
        { "read_only", MESH_VERDICT_ACCEPT, NULL },
        { "instructions", MESH_VERDICT_LIMIT, "instruction limit" },
        { "loop_around", MESH_VERDICT_LIMIT, "instruction limit" },
        { "memory", MESH_VERDICT_LIMIT, "memory limit" },
        { "memory_table", MESH_VERDICT_LIMIT, "memory limit" },
        { "xpcall_limit", MESH_VERDICT_LIMIT, "instruction limit" },
    };
    for (size_t i = 0; i < sizeof probes / sizeof probes [0]; i++) {
        char proposal[64];
        snprintf (proposal, sizeof proposal, "{\"probe\":\"%s\"}", probes [i].probe);
        s_expect (rule, proposal, probes [i].verdict, probes [i].reason);
    }
    mesh_sandbox_destroy (&rule);
    //  The time limit, with instructions to spare.
    limits = (mesh_sandbox_limits_t) { 4000000000L, 1 << 20, 30 };
    rule = s_load ("pcall.lua", &limits);
    s_expect (rule, "{\"probe\":\"instructions\"}", MESH_VERDICT_LIMIT, "time limit");
    mesh_sandbox_destroy (&rule);

    rule = s_load ("hostile_error_loop.lua", NULL);
    s_expect (rule, "{}", MESH_VERDICT_ERROR, "inner failure");
    //  A __close handler that loops while the error unwinds is stopped by the hook...
    s_expect (rule, "{\"kind\":\"close\"}", MESH_VERDICT_LIMIT, "instruction limit");
    //  ... and one that runs after the limit was hit gets no further.
    s_expect (rule, "{\"kind\":\"close_after_limit\"}", MESH_VERDICT_LIMIT, "instruction limit");
    mesh_sandbox_destroy (&rule);
}

//  Every rule error names FILE:LINE, also those raised from C (a write to a
//  read-only view, a bad argument, a stack overflow) or without a position.
static void
test_error_positions (void **state)
{
    //  Memory enough for Lua's own stack limit to come first.
    mesh_sandbox_limits_t limits = { 20000000, 256 << 20, 5000 };
    mesh_sandbox_t *rule = s_load ("positions.lua", &limits);
    const struct {
        const char *probe, *reason;
    } probes[] = {
        { "read_only", "positions.lua:4: attempt to change a read-only table" },
        { "bad_argument", "positions.lua:5: bad argument" },
        { "stack", "positions.lua:2: stack overflow" },
        { "c_stack", "positions.lua:8: " },
        { "level0", "positions.lua:11: no position" },
        { "library", "positions.lua:12: bad argument" },
    };
    for (size_t i = 0; i < sizeof probes / sizeof probes [0]; i++) {
        char proposal[64];
        snprintf (proposal, sizeof proposal, "{\"probe\":\"%s\"}", probes [i].probe);
        s_expect (rule, proposal, MESH_VERDICT_ERROR, probes [i].reason);
    }
    mesh_sandbox_destroy (&rule);
}

//  Functions that push a value per element push at most 65,536 per call.
static void
test_values_per_call (void **state)
{
    const char *src =
        "return { name = 'v', description = 'd', check = function (p)\n"
        "  local s = string.rep('a', 70000)\n"
        "  local t = {} for i = 1, 70000 do t[i] = i end\n"
        "  if p.f == 'ok' then return select('#', s:byte(1, 65536)) == 65536 and\n"
        "    select('#', utf8.codepoint(s, 1, 65536)) == 65536 and\n"
        "    select('#', table.unpack(t, 1, 65536)) == 65536 end\n"
        "  if p.f == 'byte' then return s:byte(1, -1) end\n"
        "  if p.f == 'codepoint' then return utf8.codepoint(s, 1, -1) end\n"
        "  return table.unpack(t)\n"
        "end }\n";
    mesh_sandbox_limits_t limits = { 10000000, 8 << 20, 5000 };
    mesh_sandbox_t *rule = mesh_sandbox_load_buffer ("v.lua", src, strlen (src), &limits, NULL);
    assert_non_null (rule);
    s_expect (rule, "{\"f\":\"ok\"}", MESH_VERDICT_ACCEPT, NULL);
    s_expect (rule, "{\"f\":\"byte\"}", MESH_VERDICT_ERROR,
              "v.lua:7: string.byte: at most 65536 values per call in rules (asked for 70000)");
    s_expect (rule, "{\"f\":\"codepoint\"}", MESH_VERDICT_ERROR, "v.lua:8: utf8.codepoint");
    s_expect (rule, "{\"f\":\"unpack\"}", MESH_VERDICT_ERROR, "v.lua:9: table.unpack");
    mesh_sandbox_destroy (&rule);
}

//  A metatable cannot be made weak after setmetatable: the same verdict, for the
//  same input, 1,000 times.
static void
test_metatable_guard (void **state)
{
    mesh_sandbox_t *rule = s_load ("hostile_weak_late.lua", NULL);
    for (int i = 0; i < 1000; i++)
        s_expect (rule, "{}", MESH_VERDICT_ERROR, "hostile_weak_late.lua:9: __mode cannot be "
                                                  "set on a table already used as a metatable");
    mesh_sandbox_destroy (&rule);
}

static void
test_memory_limit (void **state)
{
    //  Instructions and time generous: the memory cap must be what stops these.
    mesh_sandbox_limits_t limits = { 200000000, 8 << 20, 60000 };
    mesh_sandbox_t *rule = s_load ("hostile_memory.lua", &limits);
    const char *kinds[] = {
        "concat", "rep", "rep_method", "rep_sep", "table", "concat_table", "recursion"
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds [0]; i++) {
        char proposal[64];
        snprintf (proposal, sizeof proposal, "{\"kind\":\"%s\"}", kinds [i]);
        s_expect (rule, proposal, MESH_VERDICT_LIMIT, "memory limit");
    }
    mesh_sandbox_destroy (&rule);
}

static void
test_escapes_are_closed (void **state)
{
    mesh_sandbox_t *rule = s_load ("hostile_escape.lua", NULL);
    const char *probes[] = {
        "os", "io", "require", "package", "load", "loadstring", "loadfile", "dofile", "debug",
        "collectgarbage", "print", "coroutine", "rawset", "rawget",
        "string_dump", "string_meta_dump", "string_metatable", "string_metatable_poison",
        "string_pack", "math_random", "math_randomseed", "gc_metatable", "weak_metatable",
        "global_G", "env_os", "binary_chunk",
    };
    for (size_t i = 0; i < sizeof probes / sizeof probes [0]; i++) {
        char proposal[64];
        snprintf (proposal, sizeof proposal, "{\"probe\":\"%s\"}", probes [i]);
        s_expect (rule, proposal, MESH_VERDICT_ERROR, "hostile_escape.lua:");
    }
    s_expect (rule, "{\"probe\":\"gc_metatable\"}", MESH_VERDICT_ERROR, "__gc");
    s_expect (rule, "{\"probe\":\"weak_metatable\"}", MESH_VERDICT_ERROR, "__mode");
    s_expect (rule, "{\"probe\":\"string_meta_dump\"}", MESH_VERDICT_ERROR, "field 'dump'");
    mesh_sandbox_destroy (&rule);
}

//  vm.c skips putting top-level locals back for chunks whose bytecode never assigns
//  an upvalue; the scan must find an assignment however deep it is, and must walk
//  every kind of constant and nested function without giving up (a scan that gave up
//  would answer "assigns" for all, and the false cases below would fail).
static void
test_chunk_scan (void **state)
{
    const struct { const char *source; bool sets; } cases[] = {
        { "return function (p) return p end", false },
        { "local n = 0 n = n + 1 return function () return n end", false },
        { "local n = 0 return function () n = n + 1 return n end", true },
        { "local n return function () return function () n = 1 end end", true },
        { "local t = {} return function () t.x = 1 end", false },
        { "return function () _ENV = {} end", true },
        { "local a, b, c, d = nil, true, false, 3 local e, f = 2.5, 'short' "
          "local g = 'a long string constant, longer than forty characters, to be sure' "
          "local h = math.mininteger "
          "return function () local function i () return a, b, c, d, e, f, g, h end "
          "return function () return i, -0.0, 1e300, 'x', 7 end end", false },
        { "local n = 0 "
          "local function deep () return function () return function () "
          "return function () n = n + 1 end end end end "
          "return deep", true },
    };
    lua_State *L = luaL_newstate ();
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        assert_int_equal (luaL_loadstring (L, cases [i].source), LUA_OK);
        if (mesh_chunk_sets_upvalues (L, -1) != cases [i].sets)
            fail_msg ("case %zu: expected %s: %s", i, cases [i].sets ? "true" : "false",
                      cases [i].source);
        lua_pop (L, 1);
    }
    lua_pushcfunction (L, luaopen_base);        //  not Lua bytecode: assume it assigns
    assert_true (mesh_chunk_sets_upvalues (L, -1));
    lua_close (L);

    //  End to end: a local only a closure made during check assigns is back to its
    //  top-level value at the next evaluation.
    const char *src = "local n = 0 return { name = 'inner', description = 'd', "
                      "check = function () local bump = function () n = n + 1 end bump() "
                      "if n == 1 then return true end return false, 'n is ' .. n end }";
    char *err = NULL;
    mesh_sandbox_t *rule = mesh_sandbox_load_buffer ("inner.lua", src, strlen (src),
                                                     &s_limits, &err);
    assert_non_null (rule);
    for (int i = 0; i < 3; i++) {
        char *reason = NULL;
        assert_int_equal (s_eval (rule, "{}", "{}", &reason), MESH_VERDICT_ACCEPT);
        free (reason);
    }
    mesh_sandbox_destroy (&rule);
}

//  Input views are reused from one evaluation to the next (view.c): each evaluation
//  must read its own input, also past the pool's size, when a smaller input follows a
//  larger one, and when a cache that grew past S_CACHE_KEEP entries (150 items read)
//  is replaced instead of emptied.
static void
test_views_per_evaluation (void **state)
{
    //  Item i of round r is {v = "r<r>-<i>", tags = a list of 2 or 0}; the rule checks
    //  every item against ctx.round, so a view showing an earlier round's item fails.
    const char *src =
        "return { name = 'items', description = 'd', check = function (p, ctx) "
        "if #p.items ~= ctx.count then return false, 'count ' .. #p.items end "
        "for i = 1, #p.items do local item = p.items[i] "
        "local v = string.format('r%d-%d', ctx.round, i - 1) "
        "local tags = (i - 1 + ctx.round) % 2 == 1 and 2 or 0 "
        "if item.v ~= v or #item.tags ~= tags then "
        "return false, string.format('item %d: %s with %d tags, want %s with %d', "
        "i, tostring(item.v), #item.tags, v, tags) end end return true end }";
    char *err = NULL;
    mesh_sandbox_t *rule = mesh_sandbox_load_buffer ("items.lua", src, strlen (src),
                                                     &s_limits, &err);
    assert_non_null (rule);
    const int sizes[] = { 3, 150, 2, 150, 1, 70 };
    for (int round = 0; round < (int) (sizeof sizes / sizeof sizes [0]); round++) {
        size_t cap = 64 + (size_t) sizes [round] * 64, p = 0;
        char *proposal = malloc (cap);
        p += (size_t) snprintf (proposal, cap, "{\"items\":[");
        for (int i = 0; i < sizes [round]; i++)
            p += (size_t) snprintf (proposal + p, cap - p, "%s{\"v\":\"r%d-%d\",\"tags\":[%s]}",
                                    i ? "," : "", round, i, (i + round) % 2 ? "1,2" : "");
        snprintf (proposal + p, cap - p, "]}");
        char ctx[64];
        snprintf (ctx, sizeof ctx, "{\"round\":%d,\"count\":%d}", round, sizes [round]);
        char *reason = NULL;
        mesh_verdict_t verdict = s_eval (rule, proposal, ctx, &reason);
        if (verdict != MESH_VERDICT_ACCEPT)
            fail_msg ("round %d (%d items): %s %s", round, sizes [round],
                      mesh_verdict_name (verdict), reason ? reason : "");
        free (reason);
        free (proposal);
    }
    mesh_sandbox_destroy (&rule);
}

static void
test_no_state_between_evaluations (void **state)
{
    //  Globals, upvalues (also one only a helper assigns), a table put in a top-level
    //  local, _ENV: the same every time; a top-level table cannot be written.
    mesh_sandbox_t *rule = s_load ("hostile_leak.lua", NULL);
    for (int i = 0; i < 3; i++) {
        s_expect (rule, "{\"action\":\"x\"}", MESH_VERDICT_REJECT,
                  "loaded=1 upvalue=1 calls=1 env=1 last=0 hidden=1 function");
        s_expect (rule, "{\"action\":\"x\",\"write_cache\":true}", MESH_VERDICT_ERROR,
                  "read-only");
    }
    mesh_sandbox_destroy (&rule);
    //  What the top level builds is frozen, so some shapes are refused at load.
    const char *bad[][2] = {
        { "local t = setmetatable({}, {}) return { name = \"m\", description = \"d\", "
          "check = function () return t end }", "has a metatable" },
        { "local k = {} local t = { [k] = 1 } return { name = \"k\", description = \"d\", "
          "check = function () return t end }", "uses a table as a key" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        char *err = NULL;
        assert_null (mesh_sandbox_load_buffer ("bad.lua", bad [i][0], strlen (bad [i][0]),
                                               &s_limits, &err));
        assert_non_null (strstr (err, bad [i][1]));
        free (err);
    }
}

static void
test_inputs_and_libraries_are_read_only (void **state)
{
    json_t *proposal = json_loads (s_proposal_text (), 0, NULL);
    json_t *ctx = json_loads (s_ctx_text (), 0, NULL);
    json_t *proposal_before = json_deep_copy (proposal);
    json_t *ctx_before = json_deep_copy (ctx);
    mesh_sandbox_t *inputs = s_load ("inputs.lua", NULL);
    mesh_sandbox_t *mutate = s_load ("hostile_mutate.lua", NULL);
    const char *kinds[][2] = {
        { "proposal", "read-only" }, { "params", "read-only" }, { "new_key", "read-only" },
        { "ctx", "read-only" }, { "ctx_nil", "read-only" }, { "array", "read-only" },
        { "insert", "read-only" }, { "sort", "read-only" }, { "string", "read-only" },
        { "table", "read-only" }, { "mesh", "read-only" }, { "math", "read-only" },
        { "utf8", "read-only" }, { "setmetatable_input", "protected metatable" },
        { "setmetatable_library", "protected metatable" },
        { "setmetatable_env", "protected metatable" },
        { "string_metatable", "index a boolean value" },
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds [0]; i++) {
        json_object_set_new (proposal, "kind", json_string (kinds [i][0]));
        char *reason = NULL;
        mesh_verdict_t verdict = mesh_sandbox_eval (mutate, proposal, ctx, &reason);
        if (verdict != MESH_VERDICT_ERROR || !strstr (reason, kinds [i][1]))
            fail_msg ("write %s: got %s \"%s\"", kinds [i][0], mesh_verdict_name (verdict),
                      reason);
        free (reason);
        json_object_del (proposal, "kind");
        //  The next rule sees everything as it was.
        assert_int_equal (mesh_sandbox_eval (inputs, proposal, ctx, &reason),
                          MESH_VERDICT_ACCEPT);
        assert_null (reason);
    }
    assert_true (json_equal (proposal, proposal_before));
    assert_true (json_equal (ctx, ctx_before));
    mesh_sandbox_destroy (&inputs);
    mesh_sandbox_destroy (&mutate);
    json_decref (proposal);
    json_decref (ctx);
    json_decref (proposal_before);
    json_decref (ctx_before);
    s_assert_healthy ();
}

static void
test_determinism (void **state)
{
    //  Five loads, five states, five string-hash seeds: one reason.
    char *first = NULL;
    for (int i = 0; i < 5; i++) {
        mesh_sandbox_t *rule = s_load ("hostile_determinism.lua", NULL);
        char *reason = NULL;
        assert_int_equal (s_eval (rule, "{}", "{}", &reason), MESH_VERDICT_REJECT);
        if (!first)
            first = reason;
        else {
            assert_string_equal (reason, first);
            free (reason);
        }
        mesh_sandbox_destroy (&rule);
    }
    //  Keys in order (numbers, then strings bytewise), the stable sort keeps ids in
    //  their order within a group, and no address anywhere.
    assert_true (strncmp (first, "1.5,3,key1,key10,key11,", 23) == 0);
    assert_non_null (strstr (first, ",key9 | 1.5 | 3,6,9,12,15,18,21,24,27,30,33,36 | "
                                    "table function table | null"));
    assert_null (strstr (first, "0x"));
    free (first);
}

static void
test_hostile_probes (void **state)
{
    mesh_sandbox_t *rule = s_load ("hostile_probes.lua", NULL);
    const struct {
        const char *probe;
        mesh_verdict_t verdict;
        const char *reason;
    } probes[] = {
        { "format_p", MESH_VERDICT_ERROR, "%p is not available in rules" },
        { "os_time", MESH_VERDICT_ERROR, "global 'os'" },
        { "os_clock", MESH_VERDICT_ERROR, "global 'os'" },
        { "error_object", MESH_VERDICT_ERROR, "error raised with a table instead of a message" },
        { "error_tostring_loop", MESH_VERDICT_LIMIT, "instruction limit" },
        { "backtracking", MESH_VERDICT_ERROR, "string.find: pattern \".-.-.-.-b$\" on 20000 "
                                              "bytes could take up to" },
        { "backtracking_match", MESH_VERDICT_ERROR, "string.match: pattern" },
        { "backtracking_gsub", MESH_VERDICT_ERROR, "string.gsub: pattern" },
        { "backtracking_gmatch", MESH_VERDICT_ERROR, "string.gmatch: pattern" },
        { "backtracking_matches", MESH_VERDICT_ERROR, "mesh.matches: pattern" },
        { "rep_empty", MESH_VERDICT_ACCEPT, NULL },
        { "move", MESH_VERDICT_LIMIT, "instruction limit" },
        { "insert_len", MESH_VERDICT_LIMIT, "instruction limit" },
        { "remove_len", MESH_VERDICT_LIMIT, "instruction limit" },
        { "concat_len", MESH_VERDICT_LIMIT, "instruction limit" },
        { "unpack", MESH_VERDICT_LIMIT, "instruction limit" },
        { "format_width", MESH_VERDICT_ERROR, "invalid conversion" },
        { "next_big", MESH_VERDICT_LIMIT, "instruction limit" },
        { "coroutine_wrap", MESH_VERDICT_ERROR, "global 'coroutine'" },
        { "close_hijack", MESH_VERDICT_ERROR, "unwinding" },
        { "gc_late", MESH_VERDICT_ERROR, "hostile_probes.lua:61: __gc cannot be set on a "
                                         "table already used as a metatable" },
        { "regex_backref", MESH_VERDICT_ERROR, "back-references" },
        { "regex_nested", MESH_VERDICT_ERROR, "multiply to more than 1000" },
        { "schema_typo", MESH_VERDICT_ERROR, "schema for value.a: has the unknown keyword "
                                             "\"maximun\"" },
    };
    for (size_t i = 0; i < sizeof probes / sizeof probes [0]; i++) {
        char proposal[64];
        snprintf (proposal, sizeof proposal, "{\"probe\":\"%s\"}", probes [i].probe);
        s_expect (rule, proposal, probes [i].verdict, probes [i].reason);
    }
    mesh_sandbox_destroy (&rule);
}

static void
test_pattern_bound (void **state)
{
    //  Ordinary patterns on ordinary strings pass; the bound refuses by shape and size.
    const char *src =
        "return { name = \"p\", description = \"d\", check = function (p) "
        "local s = string.rep(p.c, p.n) "
        "if p.f == \"find\" then return s:find(p.pat) ~= nil or true end "
        "if p.f == \"matches\" then return mesh.matches(s, p.pat) or true end "
        "return s:gsub(p.pat, \"\") and true end }";
    mesh_sandbox_t *rule = mesh_sandbox_load_buffer ("p.lua", src, strlen (src), &s_limits, NULL);
    assert_non_null (rule);
    const struct {
        const char *json;
        mesh_verdict_t verdict;
    } cases[] = {
        //  a trailing repetition is free: linear
        { "{\"f\":\"gsub\",\"c\":\" \",\"n\":500000,\"pat\":\"%s+\"}", MESH_VERDICT_ACCEPT },
        //  one repetition followed by more, unanchored: (n+1)^2 <= 1e6 up to n = 999
        { "{\"f\":\"find\",\"c\":\"a\",\"n\":999,\"pat\":\"a*b\"}", MESH_VERDICT_ACCEPT },
        { "{\"f\":\"find\",\"c\":\"a\",\"n\":1000,\"pat\":\"a*b\"}", MESH_VERDICT_ERROR },
        //  anchored, the same pattern may look at far more bytes (the matcher's steps
        //  and string.rep's turns are charged too: this costs about 600k instructions)
        { "{\"f\":\"find\",\"c\":\"a\",\"n\":400000,\"pat\":\"^a*b\"}", MESH_VERDICT_ACCEPT },
        //  mesh.matches anchors both ends: [a-z]+ before $ is one repetition
        { "{\"f\":\"matches\",\"c\":\"a\",\"n\":100000,\"pat\":\"[a-z]+\"}",
          MESH_VERDICT_ACCEPT },
        //  no special characters, or plain: memmem, any length
        { "{\"f\":\"find\",\"c\":\"ab\",\"n\":400000,\"pat\":\"abc\"}", MESH_VERDICT_ACCEPT },
        //  each ? doubles: 21 of them before more pattern exceed the budget on any string
        { "{\"f\":\"find\",\"c\":\"a\",\"n\":0,\"pat\":\"^a?a?a?a?a?a?a?a?a?a?a?a?a?a?"
          "a?a?a?a?a?a?a?b\"}", MESH_VERDICT_ERROR },
        { "{\"f\":\"find\",\"c\":\"a\",\"n\":0,\"pat\":\"^a?a?a?a?a?a?a?a?a?a?a?a?a?a?"
          "a?a?a?a?a?b\"}", MESH_VERDICT_ACCEPT },
        //  %b and back-references count wherever they are
        { "{\"f\":\"find\",\"c\":\"(\",\"n\":2000,\"pat\":\"%b()\"}", MESH_VERDICT_ERROR },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        char *reason = NULL;
        mesh_verdict_t got = s_eval (rule, cases [i].json, NULL, &reason);
        if (got != cases [i].verdict)
            fail_msg ("%s: got %s \"%s\"", cases [i].json, mesh_verdict_name (got), reason);
        free (reason);
    }
    mesh_sandbox_destroy (&rule);
}

static const char *s_history_ctx =
    "{\"now\":1700000000,\"history\":["
    "{\"action\":\"scale_out\",\"target\":\"web\",\"at\":1699999900},"
    "{\"action\":\"scale_out\",\"target\":\"web\",\"at\":1699996000},"
    "{\"action\":\"scale_out\",\"target\":\"api\",\"at\":1699999950.5},"
    "{\"action\":\"restart_service\",\"target\":\"db\",\"at\":1699999990},"
    "{\"action\":\"escalate\",\"at\":1699999995},"
    "{\"action\":\"scale_out\",\"target\":\"web\",\"at\":1700000010}]}";

static void
test_mesh_library (void **state)
{
    mesh_sandbox_t *rule = s_load ("mesh_lib.lua", NULL);
    const char *parts[] = {
        "membership", "patterns", "schema", "safe_args", "history", "time", "sorted"
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts [0]; i++) {
        char proposal[128];
        snprintf (proposal, sizeof proposal, "{\"part\":\"%s\",\"action\":\"x\"}",
                  parts [i]);
        char *reason = NULL;
        mesh_verdict_t got = s_eval (rule, proposal, s_history_ctx, &reason);
        if (got != MESH_VERDICT_ACCEPT)
            fail_msg ("mesh_lib %s: %s \"%s\"", parts [i], mesh_verdict_name (got), reason);
    }
    char *reason = NULL;
    assert_int_equal (s_eval (rule, "{\"part\":\"history_malformed\"}", s_history_ctx,
                              &reason), MESH_VERDICT_ERROR);
    assert_non_null (strstr (reason, "mesh.count_recent: ctx.history[1].at must be a number"));
    free (reason);
    assert_int_equal (s_eval (rule, "{\"part\":\"history_no_now\"}", s_history_ctx,
                              &reason), MESH_VERDICT_ERROR);
    assert_non_null (strstr (reason, "ctx.now must be a number (the event time), not nothing"));
    free (reason);
    mesh_sandbox_destroy (&rule);
}

static void
test_inputs (void **state)
{
    json_t *proposal = json_loads (s_proposal_text (), 0, NULL);
    json_t *ctx = json_loads (s_ctx_text (), 0, NULL);
    mesh_sandbox_t *inputs = s_load ("inputs.lua", NULL);
    char *reason = NULL;
    assert_int_equal (mesh_sandbox_eval (inputs, proposal, ctx, &reason), MESH_VERDICT_ACCEPT);
    assert_null (reason);
    //  And the inputs rule does check: a different proposal fails one of its asserts.
    json_object_set_new (proposal, "action", json_string ("note"));
    assert_int_equal (mesh_sandbox_eval (inputs, proposal, ctx, &reason), MESH_VERDICT_ERROR);
    assert_non_null (strstr (reason, "action"));
    free (reason);
    mesh_sandbox_destroy (&inputs);
    json_decref (proposal);
    json_decref (ctx);
}

static void
test_deep_input (void **state)
{
    //  Inputs are converted a level at a time, on access: 2000 nested arrays cost
    //  nothing until a rule walks them, and walking them is an ordinary loop.
    size_t depth = 2000;
    char *deep = malloc (2 * depth + 1);
    memset (deep, '[', depth);
    memset (deep + depth, ']', depth);
    deep [2 * depth] = 0;
    s_expect (s_accept, deep, MESH_VERDICT_ACCEPT, NULL);
    const char *src = "return { name = \"walk\", description = \"d\", check = function (p) "
                      "local n = 0 while type(p) == \"table\" do p = p[1] n = n + 1 end "
                      "return false, tostring(n) end }";
    mesh_sandbox_t *walk = mesh_sandbox_load_buffer ("walk.lua", src, strlen (src), &s_limits,
                                                     NULL);
    s_expect (walk, deep, MESH_VERDICT_REJECT, "2000");
    mesh_sandbox_destroy (&walk);
    free (deep);
}

static void
test_mesh_helpers (void **state)
{
    mesh_sandbox_t *rule = s_load ("helpers.lua", NULL);
    s_expect (rule, "{}", MESH_VERDICT_ACCEPT, NULL);
    mesh_sandbox_destroy (&rule);
    //  Misuse is an error, not a crash.
    const char *src = "return { name = \"misuse\", description = \"d\", check = function (p) "
                      "if p.k == 1 then return mesh.one_of(1, nil) end "
                      "if p.k == 2 then return mesh.sorted_keys({ [true] = 1 }) end "
                      "if p.k == 3 then return mesh.matches(\"x\", nil) end "
                      "return mesh.in_range(1, \"0\", 2) end }";
    rule = mesh_sandbox_load_buffer ("misuse.lua", src, strlen (src), &s_limits, NULL);
    assert_non_null (rule);
    s_expect (rule, "{\"k\":1}", MESH_VERDICT_ERROR, "table expected");
    s_expect (rule, "{\"k\":2}", MESH_VERDICT_ERROR, "a boolean key has no defined order");
    s_expect (rule, "{\"k\":3}", MESH_VERDICT_ERROR, "string expected");
    s_expect (rule, "{\"k\":4}", MESH_VERDICT_ERROR, "number expected");
    mesh_sandbox_destroy (&rule);
}


//  mesh.require_approval, one rule alone and in a chain: the reason comes back beside an
//  accept only, and nothing carries over into the next evaluation.
static void
test_require_approval (void **state)
{
    mesh_sandbox_t *rule = s_load ("approval.lua", NULL);
    json_t *ask = json_loads ("{\"action\":\"note\",\"rationale\":\"ask\"}", 0, NULL);
    json_t *plain = json_loads ("{\"action\":\"note\",\"rationale\":\"no\"}", 0, NULL);
    json_t *refuse = json_loads ("{\"action\":\"note\",\"rationale\":\"ask reject\"}", 0,
                                 NULL);
    char *reason = NULL, *approval = NULL;
    assert_int_equal (mesh_sandbox_eval_ex (rule, ask, NULL, &reason, &approval),
                      MESH_VERDICT_ACCEPT);
    assert_null (reason);
    assert_string_equal (approval, "a human looks at note");
    free (approval);
    approval = (char *) "unset";
    assert_int_equal (mesh_sandbox_eval_ex (rule, plain, NULL, &reason, &approval),
                      MESH_VERDICT_ACCEPT);
    assert_null (approval);
    approval = (char *) "unset";
    assert_int_equal (mesh_sandbox_eval_ex (rule, refuse, NULL, &reason, &approval),
                      MESH_VERDICT_REJECT);
    assert_string_equal (reason, "refused anyway");
    assert_null (approval);
    free (reason);
    //  Not wanted: freed by the sandbox (the leak checkers would say otherwise).
    assert_int_equal (mesh_sandbox_eval (rule, ask, NULL, NULL), MESH_VERDICT_ACCEPT);
    assert_int_equal (mesh_sandbox_eval_ex (rule, ask, NULL, NULL, NULL), MESH_VERDICT_ACCEPT);

    //  In a chain: one slot per rule, set only for the rule that asked.
    mesh_sandbox_t *rules[3] = { s_load ("accept.lua", NULL), rule, s_load ("error.lua", NULL) };
    mesh_vm_t *vm = mesh_vm_new (rules, 3, &s_limits);
    mesh_verdict_t verdicts[3];
    char *reasons[3], *approvals[3];
    for (int round = 0; round < 2; round++) {
        mesh_vm_eval (vm, round ? plain : ask, NULL, verdicts, reasons, approvals);
        assert_int_equal (verdicts [1], MESH_VERDICT_ACCEPT);
        assert_null (approvals [0]);
        if (round)
            assert_null (approvals [1]);
        else
            assert_string_equal (approvals [1], "a human looks at note");
        assert_int_equal (verdicts [2], MESH_VERDICT_ERROR);
        assert_null (approvals [2]);
        free (approvals [1]);
        free (reasons [2]);
    }
    mesh_vm_eval (vm, ask, NULL, verdicts, reasons, NULL);      //  approvals not wanted
    free (reasons [2]);
    mesh_vm_destroy (&vm);

    //  Only check may ask: a top level that asks does not load, and a test file that
    //  asks does not run.
    char *err = NULL;
    const char *top = "mesh.require_approval('now')\n"
                      "return { name = 'top', description = 'd', check = function () "
                      "return true end }\n";
    assert_null (mesh_sandbox_load_buffer ("top.lua", top, strlen (top), &s_limits, &err));
    assert_non_null (strstr (err, "top.lua:1: mesh.require_approval: only a rule's check"));
    free (err);
    vm = mesh_vm_new (NULL, 0, &s_limits);
    const char *test = "mesh.require_approval('now') return {}";
    assert_null (mesh_vm_run_json (vm, "@x_test.lua", test, strlen (test), &err));
    assert_non_null (strstr (err, "only a rule's check may ask"));
    free (err);
    mesh_vm_destroy (&vm);
    mesh_sandbox_destroy (&rules [0]);
    mesh_sandbox_destroy (&rules [2]);
    mesh_sandbox_destroy (&rule);
    json_decref (ask);
    json_decref (plain);
    json_decref (refuse);
}

static void
test_vm (void **state)
{
    //  A chain in one state: verdicts in order, a failing rule costs one rebuild and
    //  leaves its neighbours alone.
    mesh_sandbox_t *rules[4] = {
        s_load ("accept.lua", NULL), s_load ("error.lua", NULL), s_load ("reject.lua", NULL),
        s_load ("hostile_loop.lua", NULL),
    };
    mesh_vm_t *vm = mesh_vm_new (rules, 4, &s_limits);
    assert_non_null (vm);
    assert_int_equal (mesh_vm_builds (vm), 0);
    assert_int_equal (mesh_vm_memory (vm), 0);
    json_t *p = json_loads ("{\"action\":\"note\"}", 0, NULL);
    mesh_verdict_t verdicts[4];
    char *reasons[4];
    for (int round = 1; round <= 2; round++) {
        mesh_vm_eval (vm, p, NULL, verdicts, reasons, NULL);
        assert_int_equal (verdicts [0], MESH_VERDICT_ACCEPT);
        assert_null (reasons [0]);
        assert_int_equal (verdicts [1], MESH_VERDICT_ERROR);
        assert_string_equal (reasons [1], "error.lua:6: rule bug");
        assert_int_equal (verdicts [2], MESH_VERDICT_REJECT);
        assert_string_equal (reasons [2], "not today: note");
        assert_int_equal (verdicts [3], MESH_VERDICT_LIMIT);
        assert_string_equal (reasons [3], "instruction limit");
        for (int i = 1; i < 4; i++)
            free (reasons [i]);
        //  Built at the start of each round and again after the error; the limit
        //  closed the state, which is built again when next needed.
        assert_int_equal (mesh_vm_builds (vm), (size_t) (2 * round));
    }
    assert_true (mesh_vm_baseline (vm) > 0);
    char *reason = NULL;
    assert_int_equal (mesh_vm_eval_one (vm, 0, p, NULL, &reason, NULL), MESH_VERDICT_ACCEPT);
    assert_true (mesh_vm_memory (vm) >= mesh_vm_collect (vm));
    //  Probe: the rule's own name and description.
    char *name = NULL, *description = NULL, *err = NULL;
    assert_int_equal (mesh_vm_probe (vm, 2, &name, &description, &err), 0);
    assert_string_equal (name, "reject");
    assert_string_equal (description, "always rejects");
    free (name);
    free (description);
    //  Patterns for reason tests, with the sandbox's bound.
    assert_int_equal (mesh_vm_find (vm, "not today: note", 15, "^not today", &err), 1);
    assert_int_equal (mesh_vm_find (vm, "not today: note", 15, "tomorrow", &err), 0);
    assert_int_equal (mesh_vm_find (vm, "x", 1, "[unclosed", &err), -1);
    assert_non_null (strstr (err, "malformed pattern"));
    free (err);
    //  A chunk's result as JSON.
    const char *src = "return { a = 1, b = { 2.5, mesh.null, 'x' }, c = {} }";
    json_t *j = mesh_vm_run_json (vm, "=t", src, strlen (src), &err);
    assert_non_null (j);
    json_t *want = json_loads ("{\"a\":1,\"b\":[2.5,null,\"x\"],\"c\":{}}", 0, NULL);
    assert_true (json_equal (j, want));
    json_decref (j);
    json_decref (want);
    assert_null (mesh_vm_run_json (vm, "=t", "return 0/0", 10, &err));
    assert_non_null (strstr (err, "inf and nan have no JSON form"));
    free (err);
    json_decref (p);
    mesh_vm_destroy (&vm);
    mesh_vm_destroy (&vm);
    for (int i = 0; i < 4; i++)
        mesh_sandbox_destroy (&rules [i]);
}

static void
s_thread_eval (mesh_sandbox_t *rule, int *accepted)
{
    for (int i = 0; i < 200; i++)
        *accepted += mesh_sandbox_eval (rule, NULL, NULL, NULL) == MESH_VERDICT_ACCEPT;
}

typedef struct {
    mesh_sandbox_t *rule;
    int accepted;
} s_thread_t;

static void *
s_thread (void *arg)
{
    s_thread_t *t = arg;
    s_thread_eval (t->rule, &t->accepted);
    return NULL;
}

static void
test_threads (void **state)
{
    //  One sandbox evaluated from several threads at once.
    s_thread_t t[4];
    pthread_t id[4];
    for (int i = 0; i < 4; i++) {
        t [i] = (s_thread_t) { s_accept, 0 };
        assert_int_equal (pthread_create (&id [i], NULL, s_thread, &t [i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join (id [i], NULL);
        assert_int_equal (t [i].accepted, 200);
    }
}

static void
test_verdict_names (void **state)
{
    assert_string_equal (mesh_verdict_name (MESH_VERDICT_ACCEPT), "accept");
    assert_string_equal (mesh_verdict_name (MESH_VERDICT_REJECT), "reject");
    assert_string_equal (mesh_verdict_name (MESH_VERDICT_ERROR), "error");
    assert_string_equal (mesh_verdict_name (MESH_VERDICT_LIMIT), "limit");
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_accept_and_reject),
        cmocka_unit_test (test_wrong_return_types),
        cmocka_unit_test (test_reasons_are_clean),
        cmocka_unit_test (test_errors_raised),
        cmocka_unit_test (test_load_errors),
        cmocka_unit_test (test_load_file_checks),
        cmocka_unit_test (test_instruction_limit),
        cmocka_unit_test (test_time_limit),
        cmocka_unit_test (test_pcall_cannot_swallow),
        cmocka_unit_test (test_memory_limit),
        cmocka_unit_test (test_error_positions),
        cmocka_unit_test (test_metatable_guard),
        cmocka_unit_test (test_values_per_call),
        cmocka_unit_test (test_escapes_are_closed),
        cmocka_unit_test (test_no_state_between_evaluations),
        cmocka_unit_test (test_inputs_and_libraries_are_read_only),
        cmocka_unit_test (test_inputs),
        cmocka_unit_test (test_deep_input),
        cmocka_unit_test (test_determinism),
        cmocka_unit_test (test_hostile_probes),
        cmocka_unit_test (test_pattern_bound),
        cmocka_unit_test (test_mesh_library),
        cmocka_unit_test (test_mesh_helpers),
        cmocka_unit_test (test_require_approval),
        cmocka_unit_test (test_vm),
        cmocka_unit_test (test_chunk_scan),
        cmocka_unit_test (test_views_per_evaluation),
        cmocka_unit_test (test_threads),
        cmocka_unit_test (test_verdict_names),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
