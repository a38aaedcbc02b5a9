/*  test_ruletest - rule tests for authors (lua/ruletest.c): what `meshctl rules test`
 *  and `meshctl rules check` print and return.
 *
 *  Each test writes a rule and test files into a mkdtemp directory, runs them with the
 *  output captured in memory, and checks the lines, the counts and the exit codes,
 *  failures included: a wrong verdict, a wrong reason, a broken test file, a missing
 *  rule.  The shipped rules' own tests run through the same code at the end.  Run from
 *  the repository root.
 */
#include "ruletest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_dir[] = "/tmp/test_ruletest.XXXXXX";

//  The rule every test file here tests: rejects scale_out above 5 replicas, loops
//  forever on action "spin", raises on action "boom".
static const char *s_rule =
    "return { name = \"max5\", description = \"at most 5 replicas\",\n"
    "  check = function (p, ctx)\n"
    "    if p.action == \"spin\" then while true do end end\n"
    "    if p.action == \"boom\" then error(\"boom\") end\n"
    "    local limit = ctx and ctx.limit or 5\n"
    "    if limit < p.params.replicas then\n"
    "      return false, string.format(\"%d replicas is more than %d\", p.params.replicas,\n"
    "                                  limit)\n"
    "    end\n"
    "    return true\n"
    "  end }\n";

static const char *
s_write (const char *name, const char *text)
{
    static char path[512];
    snprintf (path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fputs (text, f);
    fclose (f);
    return path;
}

static void
s_remove (const char *name)
{
    char path[512];
    snprintf (path, sizeof path, "%s/%s", s_dir, name);
    assert_int_equal (unlink (path), 0);
}

//  Run the test file NAME (in the directory); returns the output (caller frees).
static char *
s_run_file (const char *name, int *passed, int *failed)
{
    char path[512];
    snprintf (path, sizeof path, "%s/%s", s_dir, name);
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    *passed = *failed = 0;
    mesh_ruletest_file (path, out, passed, failed);
    fclose (out);
    return text;
}

//  TEXT holds a line that starts with WANT (after the directory prefix is removed).
static void
s_has_line (const char *text, const char *want)
{
    char *copy = strdup (text);
    char prefix[64];
    snprintf (prefix, sizeof prefix, "%s/", s_dir);
    bool found = false;
    for (char *line = strtok (copy, "\n"); line && !found; line = strtok (NULL, "\n")) {
        char *p = strstr (line, prefix);
        char clean[2048];
        if (p)
            snprintf (clean, sizeof clean, "%.*s%s", (int) (p - line), line,
                      p + strlen (prefix));
        else
            snprintf (clean, sizeof clean, "%s", line);
        found = strncmp (clean, want, strlen (want)) == 0;
    }
    free (copy);
    if (!found)
        fail_msg ("no line starting with \"%s\" in:\n%s", want, text);
}

static int
s_setup (void **state)
{
    assert_non_null (mkdtemp (s_dir));
    s_write ("max5.lua", s_rule);
    return 0;
}

static int
s_teardown (void **state)
{
    s_remove ("max5.lua");
    assert_int_equal (rmdir (s_dir), 0);
    return 0;
}

//  --------------------------------------------------------------------------------

static void
test_passing_cases (void **state)
{
    s_write ("max5_test.lua",
        "local function scale(n) return { action = 'scale_out', params = { replicas = n } } end\n"
        "return { rule = 'max5.lua', ctx = { limit = 5 }, cases = {\n"
        "  { name = 'three', proposal = scale(3), expect = 'accept' },\n"
        "  { name = 'eight', proposal = scale(8), expect = 'reject', reason = '^8 replicas' },\n"
        "  { name = 'a tighter limit', proposal = scale(4), ctx = { limit = 3 },\n"
        "    expect = 'reject', reason = 'more than 3$' },\n"
        "  { name = 'raises', proposal = { action = 'boom' }, expect = 'error',\n"
        "    reason = 'boom' },\n"
        "  { name = 'spins', proposal = { action = 'spin' }, expect = 'limit',\n"
        "    reason = 'instruction limit' },\n"
        "  { name = 'no params', proposal = { action = 'x' }, expect = 'error',\n"
        "    reason = 'index a nil value' },\n"
        "} }\n");
    int passed, failed;
    char *out = s_run_file ("max5_test.lua", &passed, &failed);
    assert_int_equal (passed, 6);
    assert_int_equal (failed, 0);
    s_has_line (out, "PASS max5_test.lua: three");
    s_has_line (out, "PASS max5_test.lua: a tighter limit");
    s_has_line (out, "PASS max5_test.lua: spins");
    free (out);
    s_remove ("max5_test.lua");
}

static void
test_failing_cases (void **state)
{
    s_write ("max5_test.lua",
        "local nine = { action = 'scale_out', params = { replicas = 9 } }\n"
        "return { rule = 'max5.lua', cases = {\n"
        "  { name = 'wrong verdict', proposal = nine, expect = 'accept' },\n"
        "  { name = 'wrong reason', proposal = nine, expect = 'reject', reason = 'fewer' },\n"
        "  { name = 'bad pattern', proposal = nine, expect = 'reject', reason = '[unclosed' },\n"
        "  { name = 'right', proposal = { action = 'scale_out', params = { replicas = 1 } },\n"
        "    expect = 'accept' },\n"
        "} }\n");
    int passed, failed;
    char *out = s_run_file ("max5_test.lua", &passed, &failed);
    assert_int_equal (passed, 1);
    assert_int_equal (failed, 3);
    s_has_line (out, "FAIL max5_test.lua: wrong verdict: expected accept, got reject "
                     "(9 replicas is more than 5)");
    s_has_line (out, "FAIL max5_test.lua: wrong reason: expected reject with a reason matching "
                     "\"fewer\", got reject (9 replicas is more than 5)");
    s_has_line (out, "FAIL max5_test.lua: bad pattern: the reason pattern \"[unclosed\" is "
                     "unusable: ");
    free (out);
    s_remove ("max5_test.lua");
}

static void
test_broken_test_files (void **state)
{
    const struct {
        const char *text;
        const char *want;
    } files[] = {
        { "return {", "FAIL bad_test.lua: bad_test.lua:1: " },
        { "return 42", "FAIL bad_test.lua: a test file must return a table" },
        { "while true do end", "FAIL bad_test.lua: hit its instruction limit" },
        { "return { rule = 'nope.lua', cases = { { name = 'x', expect = 'accept' } } }",
          "FAIL bad_test.lua: " },
        { "return { cases = { { name = 'x', expect = 'accept' } } }",
          "FAIL bad_test.lua: rule = \"NAME.lua\" is missing" },
        { "return { rule = 'max5.lua', cases = {} }",
          "FAIL bad_test.lua: cases = { ... } is missing or empty" },
        { "return { rule = 'max5.lua', case = {} }",
          "FAIL bad_test.lua: the test table: unknown key \"case\"" },
        { "return { rule = 'max5.lua', cases = { { name = 'x', expects = 'accept' } } }",
          "FAIL bad_test.lua: cases[1]: unknown key \"expects\"" },
        { "return { rule = 'max5.lua', cases = { { expect = 'accept' } } }",
          "FAIL bad_test.lua: cases[1] needs name = \"...\"" },
        { "return { rule = 'max5.lua', cases = { { name = 'x', expect = 'maybe' } } }",
          "FAIL bad_test.lua: x: expect must be" },
        { "return { rule = 'max5.lua', cases = { { name = 'x', expect = 'accept', "
          "reason = 'y' } } }", "FAIL bad_test.lua: x: reason must be a Lua pattern, and only" },
        { "return { rule = 'max5.lua', cases = { { name = 'x', expect = 'accept' }, "
          "{ name = 'x', expect = 'accept' } } }",
          "FAIL bad_test.lua: cases[2]: the name \"x\" is used by cases[1] too" },
        { "return { rule = 'max5.lua', cases = { { name = 'x', expect = 'accept', "
          "proposal = { f = print or tostring } } } }",
          "FAIL bad_test.lua: the result.cases[1].proposal.f: a function has no JSON form" },
        { "return { rule = 'max5.lua', cases = { { name = 'x', expect = 'accept', "
          "proposal = { 1, a = 2 } } } }", "FAIL bad_test.lua: the result.cases[1].proposal[1]: "
          "a table mixing list items and named fields has no JSON form" },
        { "return { rule = 'max5.lua', limits = { instructions = 'many' }, cases = { "
          "{ name = 'x', expect = 'accept' } } }", NULL },
    };
    for (size_t i = 0; i < sizeof files / sizeof files [0]; i++) {
        s_write ("bad_test.lua", files [i].text);
        int passed, failed;
        char *out = s_run_file ("bad_test.lua", &passed, &failed);
        if (files [i].want) {
            assert_int_equal (passed, 0);
            if (failed < 1)
                fail_msg ("%s: no failure:\n%s", files [i].text, out);
            s_has_line (out, files [i].want);
        }
        free (out);
    }
    s_remove ("bad_test.lua");
}

static void
test_inputs_as_json (void **state)
{
    //  Cases reach the rule as JSON would: mesh.null is null (nil in an object, kept in
    //  an array), a nil field is absent, integers stay integers, ctx defaults merge
    //  key by key.
    s_write ("shape.lua",
        "return { name = 'shape', description = 'd', check = function (p, ctx)\n"
        "  assert(p.gone == nil and p.null_member == nil, 'absent')\n"
        "  assert(#p.list == 3 and p.list[2] == mesh.null, 'null kept in arrays')\n"
        "  assert(math.type(p.n) == 'integer' and math.type(p.x) == 'float', 'numbers')\n"
        "  assert(ctx.a == 1 and ctx.b == 'case' and ctx.c == 3, 'ctx merged')\n"
        "  return true end }\n");
    s_write ("shape_test.lua",
        "return { rule = 'shape.lua', ctx = { a = 1, b = 'default', c = 3 }, cases = {\n"
        "  { name = 'json', expect = 'accept', ctx = { b = 'case' },\n"
        "    proposal = { gone = nil, null_member = mesh.null, list = { 1, mesh.null, 3 },\n"
        "                 n = 2, x = 2.5 } } } }\n");
    int passed, failed;
    char *out = s_run_file ("shape_test.lua", &passed, &failed);
    if (passed != 1 || failed != 0)
        fail_msg ("%s", out);
    free (out);
    s_remove ("shape.lua");
    s_remove ("shape_test.lua");
}

static void
test_approval_cases (void **state)
{
    //  A rule that asks for approval above 3 replicas: an accept case says whether it
    //  expects the request (approval = a pattern of its reason) or not (no approval key).
    s_write ("ask.lua",
        "return { name = 'ask', description = 'd', check = function (p, ctx)\n"
        "  if p.params.replicas > 3 then\n"
        "    mesh.require_approval(string.format('%d replicas need a look', p.params.replicas))\n"
        "  end\n"
        "  if p.params.replicas > 8 then return false, 'too many' end\n"
        "  return true end }\n");
    s_write ("ask_test.lua",
        "local function scale(n) return { action = 'scale_out', params = { replicas = n } } end\n"
        "return { rule = 'ask.lua', cases = {\n"
        "  { name = 'asks', proposal = scale(5), expect = 'accept', approval = '^5 replicas' },\n"
        "  { name = 'does not ask', proposal = scale(2), expect = 'accept' },\n"
        "  { name = 'refuses', proposal = scale(9), expect = 'reject', reason = 'too many' },\n"
        "  { name = 'unexpected request', proposal = scale(4), expect = 'accept' },\n"
        "  { name = 'missing request', proposal = scale(1), expect = 'accept',\n"
        "    approval = 'replicas' },\n"
        "  { name = 'other reason', proposal = scale(6), expect = 'accept', approval = '^7' },\n"
        "  { name = 'bad pattern', proposal = scale(6), expect = 'accept', approval = '(' },\n"
        "} }\n");
    int passed, failed;
    char *out = s_run_file ("ask_test.lua", &passed, &failed);
    assert_int_equal (passed, 3);
    assert_int_equal (failed, 4);
    s_has_line (out, "PASS ask_test.lua: asks");
    s_has_line (out, "PASS ask_test.lua: does not ask");
    s_has_line (out, "PASS ask_test.lua: refuses");
    s_has_line (out, "FAIL ask_test.lua: unexpected request: expected accept, got accept "
                     "asking approval (4 replicas need a look)");
    s_has_line (out, "FAIL ask_test.lua: missing request: expected accept asking approval with "
                     "a reason matching \"replicas\", got accept without asking approval");
    s_has_line (out, "FAIL ask_test.lua: other reason: expected accept asking approval with a "
                     "reason matching \"^7\", got accept asking approval (6 replicas need a "
                     "look)");
    s_has_line (out, "FAIL ask_test.lua: bad pattern: the approval pattern \"(\" is unusable: ");
    free (out);
    //  approval is for accept cases only, and must be a pattern.
    s_write ("ask_test.lua",
        "return { rule = 'ask.lua', cases = {\n"
        "  { name = 'x', proposal = { params = { replicas = 9 } }, expect = 'reject',\n"
        "    approval = 'replicas' },\n"
        "  { name = 'y', proposal = { params = { replicas = 5 } }, expect = 'accept',\n"
        "    approval = true } } }\n");
    out = s_run_file ("ask_test.lua", &passed, &failed);
    assert_int_equal (passed, 0);
    assert_int_equal (failed, 2);
    s_has_line (out, "FAIL ask_test.lua: x: approval must be a Lua pattern, and only for a case "
                     "that expects accept");
    s_has_line (out, "FAIL ask_test.lua: y: approval must be a Lua pattern");
    free (out);
    s_remove ("ask.lua");
    s_remove ("ask_test.lua");
}

static void
test_limits_in_test_files (void **state)
{
    //  A test file may run its rule under tighter limits, to pin down its cost.
    s_write ("tight_test.lua",
        "return { rule = 'max5.lua', limits = { instructions = 10, memory = 1048576 },\n"
        "  cases = { { name = 'over budget', proposal = { action = 'scale_out',\n"
        "    params = { replicas = 9 } }, expect = 'limit', reason = 'instruction' } } }\n");
    int passed, failed;
    char *out = s_run_file ("tight_test.lua", &passed, &failed);
    if (passed != 1 || failed != 0)
        fail_msg ("%s", out);
    free (out);
    s_remove ("tight_test.lua");
}

static void
test_directories_and_main (void **state)
{
    s_write ("b_test.lua",
        "return { rule = 'max5.lua', cases = { { name = 'ok', expect = 'accept',\n"
        "  proposal = { action = 'scale_out', params = { replicas = 1 } } } } }\n");
    s_write ("a_test.lua",
        "return { rule = 'max5.lua', cases = { { name = 'fails', expect = 'accept',\n"
        "  proposal = { action = 'scale_out', params = { replicas = 6 } } } } }\n");
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    char *argv[] = { (char *) "test", s_dir };
    assert_int_equal (mesh_ruletest_main (2, argv, out, stderr), 1);
    fclose (out);
    //  In name order, and the summary last.
    char *a = strstr (text, "a_test.lua: fails"), *b = strstr (text, "b_test.lua: ok");
    assert_non_null (a);
    assert_non_null (b);
    assert_true (a < b);
    assert_non_null (strstr (text, "\n1 passed, 1 failed\n"));
    free (text);
    s_remove ("a_test.lua");
    //  All passing: exit 0.
    out = open_memstream (&text, &size);
    assert_int_equal (mesh_ruletest_main (2, argv, out, stderr), 0);
    fclose (out);
    assert_non_null (strstr (text, "1 passed, 0 failed"));
    free (text);
    s_remove ("b_test.lua");
    //  A directory without tests is a failure, not a silent success.
    out = open_memstream (&text, &size);
    assert_int_equal (mesh_ruletest_main (2, argv, out, stderr), 1);
    fclose (out);
    assert_non_null (strstr (text, "no *_test.lua files here"));
    free (text);
    //  Usage.
    FILE *err = fopen ("/dev/null", "w");
    char *bad[] = { (char *) "frobnicate" };
    assert_int_equal (mesh_ruletest_main (1, bad, stdout, err), 64);
    assert_int_equal (mesh_ruletest_main (0, bad, stdout, err), 64);
    char *check_nothing[] = { (char *) "check" };
    assert_int_equal (mesh_ruletest_main (1, check_nothing, stdout, err), 64);
    fclose (err);
}

static void
test_check (void **state)
{
    s_write ("broken.lua", "return { name = 'x',\n  description = 'd'\n  check = 1 }\n");
    s_write ("broken_test.lua", "this is a test file, not a rule: check skips it");
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    char path[512];
    snprintf (path, sizeof path, "%s/max5.lua", s_dir);
    char *argv[] = { (char *) "check", path, s_dir };
    assert_int_equal (mesh_ruletest_main (3, argv, out, stderr), 1);
    fclose (out);
    //  FILE:LINE: message for the broken one, nothing for the good ones.
    char want[600];
    snprintf (want, sizeof want, "%s/broken.lua:3: '}' expected (to close '{' at line 1)", s_dir);
    assert_non_null (strstr (text, want));
    assert_non_null (strstr (text, "3 rule files checked, 1 with problems"));
    free (text);
    s_remove ("broken.lua");
    s_remove ("broken_test.lua");
    int checked = 0;
    char *ok[] = { path };
    out = fopen ("/dev/null", "w");
    assert_int_equal (mesh_ruletest_check (ok, 1, out, &checked), 0);
    fclose (out);
    assert_int_equal (checked, 1);
}

static void
test_shipped_rules (void **state)
{
    //  What `make test` runs: every shipped rule's cases pass.
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    int passed = 0, failed = 0;
    mesh_ruletest_dir ("rules", out, &passed, &failed);
    fclose (out);
    if (failed || passed < 50)
        fail_msg ("%d passed, %d failed:\n%s", passed, failed, text);
    free (text);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_passing_cases),
        cmocka_unit_test (test_failing_cases),
        cmocka_unit_test (test_broken_test_files),
        cmocka_unit_test (test_inputs_as_json),
        cmocka_unit_test (test_approval_cases),
        cmocka_unit_test (test_limits_in_test_files),
        cmocka_unit_test (test_directories_and_main),
        cmocka_unit_test (test_check),
        cmocka_unit_test (test_shipped_rules),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
