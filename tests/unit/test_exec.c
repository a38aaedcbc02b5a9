/*  test_exec - the exec runner (agents/act/exec.c): argv built from a template against
 *  hostile values, and runs of tests/helpers/exec_probe, which reports what it was
 *  given (argv, environment, descriptors, session, limits, no_new_privs, ...) and then
 *  behaves as its flags say.  No shell is run anywhere: the probe is executed directly,
 *  as an action's program is.
 *
 *  Times are checked as deadlines with wide margins (a run that should end at 300 ms
 *  must end after 300 ms and well before 10 s), never as performance.
 *  Run from the repository root; B selects the build directory (default build).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "exec.h"

static char s_probe [PATH_MAX];
static char s_dir [64];

static int
s_remove (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove (path);
}

static int
s_setup (void **state)
{
    const char *build = getenv ("B") ? getenv ("B") : "build";
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/tests/exec_probe", build);
    if (!realpath (path, s_probe)) {
        fprintf (stderr, "test_exec: %s: %s (build it first)\n", path, strerror (errno));
        return -1;
    }
    snprintf (s_dir, sizeof s_dir, "/tmp/test_exec.XXXXXX");
    if (!mkdtemp (s_dir))
        return -1;
    //  Orphans (the probe's grandchildren) come to us, so that a test can see how they end.
    return prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

static int
s_teardown (void **state)
{
    return nftw (s_dir, s_remove, 8, FTW_DEPTH | FTW_PHYS);
}

//  --------------------------------------------------------------------------
//  Specs built by hand, as the config loader would fill them.

static mesh_param_spec_t s_params [] = {
    { .name = (char *) "v", .type = MESH_PARAM_STRING, .required = true, .max_length = 1 << 20 },
    { .name = (char *) "d", .type = MESH_PARAM_STRING, .required = true, .allow_dash = true },
    { .name = (char *) "n", .type = MESH_PARAM_INTEGER, .required = true },
    { .name = (char *) "x", .type = MESH_PARAM_NUMBER, .required = true },
    { .name = (char *) "b", .type = MESH_PARAM_BOOLEAN, .required = true },
    { .name = (char *) "e", .type = MESH_PARAM_STRING, .required = true },
};

static char *s_env_default [] = { (char *) "PATH=/usr/bin:/bin", (char *) "LANG=C.UTF-8" };

//  Under AddressSanitizer (make asan) the probe reserves terabytes of shadow memory at
//  start, which any RLIMIT_AS refuses: there the address-space limit is left unset (0).
#ifdef __SANITIZE_ADDRESS__
#   define S_AS_BYTES   0L
#else
#   define S_AS_BYTES   (1L << 30)
#endif

//  A spec running PROGRAM with the template ARGV (COUNT elements), the defaults otherwise.
static mesh_action_spec_t
s_spec (const char *program, char **argv, size_t count)
{
    mesh_action_spec_t spec = {
        .name = (char *) "act", .kind = MESH_ACTION_EXEC,
        .params = s_params, .param_count = sizeof s_params / sizeof s_params [0],
    };
    spec.exec = (mesh_action_exec_t) {
        .program = (char *) program, .argv = argv, .argc = count,
        .env = s_env_default, .env_count = 2, .cwd = (char *) "/",
        .cpu_s = 10, .as_bytes = S_AS_BYTES, .nofile = 64, .nproc = 256,
        .timeout_ms = 10000, .kill_after_ms = 2000, .capture_bytes = 65536,
    };
    return spec;
}

static size_t
s_count (char **argv)
{
    size_t count = 0;
    while (argv [count])
        count++;
    return count;
}

//  argv from TEMPLATE (one element) and PARAMS (JSON text); 0 or -1 with *WHY_P.
static int
s_build (const char *element, const char *params_json, char ***argv_p, char *why, size_t size)
{
    char *template [] = { (char *) element };
    mesh_action_spec_t spec = s_spec ("/bin/true", template, 1);
    json_t *params = json_loads (params_json, JSON_ALLOW_NUL, NULL);
    assert_non_null (params);
    int rc = mesh_exec_argv (&spec, params, argv_p, why, size);
    json_decref (params);
    return rc;
}

//  --------------------------------------------------------------------------
//  argv building

static void
test_argv_template (void **state)
{
    char *template [] = { (char *) "restart", (char *) "--unit={v}", (char *) "{v}",
                          (char *) "{{v}}", (char *) "a}}b{{", (char *) "{v}:{e}",
                          (char *) "{n}{b}{x}" };
    mesh_action_spec_t spec = s_spec ("/usr/bin/systemctl", template, 7);
    json_t *params = json_pack ("{s:s, s:s, s:i, s:b, s:f}", "v", "web.service", "e", "",
                                "n", 42, "b", 1, "x", 2.5);
    char **argv = NULL;
    char why [256] = "";
    assert_int_equal (mesh_exec_argv (&spec, params, &argv, why, sizeof why), 0);
    assert_int_equal (s_count (argv), 8);
    assert_string_equal (argv [0], "/usr/bin/systemctl");
    assert_string_equal (argv [1], "restart");
    assert_string_equal (argv [2], "--unit=web.service");
    assert_string_equal (argv [3], "web.service");
    assert_string_equal (argv [4], "{v}");
    assert_string_equal (argv [5], "a}b{");
    assert_string_equal (argv [6], "web.service:");
    assert_string_equal (argv [7], "42true2.5");
    assert_null (argv [8]);
    mesh_exec_argv_free (argv);
    json_decref (params);
    mesh_exec_argv_free (NULL);
}

//  Every kind of value a shell would act on stays one argument, byte for byte.
static const char *const s_hostile [] = {
    "two words", "  padded  ", "'single'", "\"double\"", "$(id)", "`id`", "; rm -rf /",
    "a && b", "a || b", "a | b", "> /etc/passwd", "< /etc/shadow", "*", "?", "~root",
    "${HOME}", "$HOME", "\\", "a\nb", "line\r\nfeed", "tab\there", "{v}", "{{", "}",
    "x=--unit", "x -rf", "#comment", "!", "%s%n", "\xe2\x98\x83 snow", "", NULL
};

static void
test_argv_hostile (void **state)
{
    for (int i = 0; s_hostile [i]; i++) {
        json_t *params = json_pack ("{s:s}", "v", s_hostile [i]);
        char *template [] = { (char *) "{v}", (char *) "--unit={v}" };
        mesh_action_spec_t spec = s_spec ("/bin/true", template, 2);
        char **argv = NULL;
        char why [256] = "";
        assert_int_equal (mesh_exec_argv (&spec, params, &argv, why, sizeof why), 0);
        assert_int_equal (s_count (argv), 3);
        assert_string_equal (argv [1], s_hostile [i]);
        char *with;
        assert_true (asprintf (&with, "--unit=%s", s_hostile [i]) > 0);
        assert_string_equal (argv [2], with);
        free (with);
        mesh_exec_argv_free (argv);
        json_decref (params);
    }
}

static void
test_argv_dash (void **state)
{
    char **argv = NULL;
    char why [256] = "";
    //  A value that starts an argument with '-' would be read as an option.
    assert_int_equal (s_build ("{v}", "{\"v\": \"-rf\"}", &argv, why, sizeof why), -1);
    assert_null (argv);
    assert_non_null (strstr (why, "param v would start argument 1 with '-'"));
    assert_non_null (strstr (why, "allow_dash: true"));
    assert_null (strstr (why, "-rf"));  //  the value itself is never repeated
    assert_int_equal (s_build ("{v}", "{\"v\": \"--help\"}", &argv, why, sizeof why), -1);
    assert_int_equal (s_build ("{v}", "{\"v\": \"-\"}", &argv, why, sizeof why), -1);
    assert_int_equal (s_build ("{n}", "{\"n\": -5}", &argv, why, sizeof why), -1);
    assert_non_null (strstr (why, "param n would start argument 1 with '-'"));
    assert_int_equal (s_build ("{x}", "{\"x\": -0.5}", &argv, why, sizeof why), -1);
    //  An empty value before it does not hide the dash.
    assert_int_equal (s_build ("{e}{v}", "{\"e\": \"\", \"v\": \"-x\"}", &argv, why, sizeof why),
                      -1);
    assert_non_null (strstr (why, "param v"));
    //  allow_dash says it is meant.
    assert_int_equal (s_build ("{d}", "{\"d\": \"-rf\"}", &argv, why, sizeof why), 0);
    assert_string_equal (argv [1], "-rf");
    mesh_exec_argv_free (argv);
    //  Inside an element, after the template's own text, a dash is only a value.
    assert_int_equal (s_build ("--unit={v}", "{\"v\": \"-rf\"}", &argv, why, sizeof why), 0);
    assert_string_equal (argv [1], "--unit=-rf");
    mesh_exec_argv_free (argv);
    assert_int_equal (s_build ("x{v}", "{\"v\": \"-v\"}", &argv, why, sizeof why), 0);
    assert_string_equal (argv [1], "x-v");
    mesh_exec_argv_free (argv);
    assert_int_equal (s_build ("{v}-", "{\"v\": \"a\"}", &argv, why, sizeof why), 0);
    assert_string_equal (argv [1], "a-");
    mesh_exec_argv_free (argv);
    assert_int_equal (s_build ("{v}", "{\"v\": \"a-b\"}", &argv, why, sizeof why), 0);
    mesh_exec_argv_free (argv);
    //  The template's own leading dash is the operator's.
    assert_int_equal (s_build ("-{v}", "{\"v\": \"v\"}", &argv, why, sizeof why), 0);
    assert_string_equal (argv [1], "-v");
    mesh_exec_argv_free (argv);
}

static void
test_argv_refused (void **state)
{
    char **argv = NULL;
    char why [256] = "";
    //  A NUL would end the argument early (JSON can carry one: \u0000).
    assert_int_equal (s_build ("{v}", "{\"v\": \"web\\u0000.service\"}", &argv, why,
                               sizeof why), -1);
    assert_non_null (strstr (why, "param v holds a NUL byte"));
    assert_int_equal (s_build ("--unit={v}", "{\"v\": \"\\u0000\"}", &argv, why, sizeof why),
                      -1);
    //  Missing, null, or not a scalar.
    assert_int_equal (s_build ("{v}", "{}", &argv, why, sizeof why), -1);
    assert_non_null (strstr (why, "param v is missing"));
    assert_int_equal (s_build ("{v}", "{\"v\": null}", &argv, why, sizeof why), -1);
    assert_non_null (strstr (why, "param v is missing"));
    assert_int_equal (s_build ("{v}", "{\"v\": [1]}", &argv, why, sizeof why), -1);
    assert_non_null (strstr (why, "param v is not a string, number or boolean"));
    assert_int_equal (s_build ("{v}", "{\"v\": {\"a\": 1}}", &argv, why, sizeof why), -1);
    //  Templates that are not well formed (the config refuses them; a spec built by hand
    //  is checked again).
    assert_int_equal (s_build ("{nope}", "{\"nope\": \"x\"}", &argv, why, sizeof why), -1);
    assert_non_null (strstr (why, "{nope}, which is not a declared param"));
    assert_int_equal (s_build ("{", "{}", &argv, why, sizeof why), -1);
    assert_non_null (strstr (why, "not well formed"));
    assert_int_equal (s_build ("}", "{}", &argv, why, sizeof why), -1);
    assert_int_equal (s_build ("{v", "{\"v\": \"x\"}", &argv, why, sizeof why), -1);
    assert_int_equal (s_build ("{a b}", "{}", &argv, why, sizeof why), -1);
    assert_null (argv);
    //  No params at all: fine without placeholders, refused with one.
    char *plain [] = { (char *) "status" }, *holder [] = { (char *) "{v}" };
    mesh_action_spec_t spec = s_spec ("/bin/true", plain, 1);
    assert_int_equal (mesh_exec_argv (&spec, NULL, &argv, why, sizeof why), 0);
    assert_int_equal (s_count (argv), 2);
    mesh_exec_argv_free (argv);
    spec = s_spec ("/bin/true", holder, 1);
    assert_int_equal (mesh_exec_argv (&spec, NULL, &argv, why, sizeof why), -1);
    //  A relative program never becomes argv[0].
    spec = s_spec ("true", plain, 1);
    assert_int_equal (mesh_exec_argv (&spec, NULL, &argv, why, sizeof why), -1);
    assert_non_null (strstr (why, "absolute"));
}

static void
test_argv_sizes (void **state)
{
    char **argv = NULL;
    char why [256] = "";
    //  200 KB in one value: over what one argument may be.
    size_t big = 200 * 1024;
    char *value = malloc (big + 1);
    memset (value, 'a', big);
    value [big] = 0;
    char *template [] = { (char *) "{v}", (char *) "{v}", (char *) "{v}", (char *) "{v}",
                          (char *) "{v}", (char *) "{v}", (char *) "{v}", (char *) "{v}",
                          (char *) "{v}" };
    mesh_action_spec_t spec = s_spec ("/bin/true", template, 1);
    json_t *params = json_pack ("{s:s}", "v", value);
    assert_int_equal (mesh_exec_argv (&spec, params, &argv, why, sizeof why), -1);
    assert_non_null (strstr (why, "param v would make argument 1"));
    json_decref (params);
    //  131071 bytes (the kernel's limit, with the NUL) is the most.
    value [MESH_EXEC_ARG_MAX - 1] = 0;
    params = json_pack ("{s:s}", "v", value);
    assert_int_equal (mesh_exec_argv (&spec, params, &argv, why, sizeof why), 0);
    assert_int_equal (strlen (argv [1]), MESH_EXEC_ARG_MAX - 1);
    mesh_exec_argv_free (argv);
    json_decref (params);
    value [MESH_EXEC_ARG_MAX - 1] = 'a';
    value [MESH_EXEC_ARG_MAX] = 0;
    params = json_pack ("{s:s}", "v", value);
    assert_int_equal (mesh_exec_argv (&spec, params, &argv, why, sizeof why), -1);
    json_decref (params);
    //  Nine arguments of 120000 bytes are over 1 MiB in all.
    value [120000] = 0;
    params = json_pack ("{s:s}", "v", value);
    spec = s_spec ("/bin/true", template, 8);
    assert_int_equal (mesh_exec_argv (&spec, params, &argv, why, sizeof why), 0);
    mesh_exec_argv_free (argv);
    spec = s_spec ("/bin/true", template, 9);
    assert_int_equal (mesh_exec_argv (&spec, params, &argv, why, sizeof why), -1);
    assert_non_null (strstr (why, "more than 1048576 bytes in all"));
    json_decref (params);
    free (value);
}

static void
test_argv_types (void **state)
{
    char **argv = NULL;
    char why [256] = "";
    static const struct {
        const char *params, *element, *text;
    } cases [] = {
        { "{\"n\": 42}", "{n}", "42" },
        { "{\"n\": 9007199254740993}", "{n}", "9007199254740993" },
        { "{\"n\": 0}", "--n={n}", "--n=0" },
        { "{\"x\": 2.5}", "{x}", "2.5" },
        { "{\"x\": 0.1}", "{x}", "0.10000000000000001" },
        { "{\"x\": 1e300}", "{x}", "1.0000000000000001e+300" },
        { "{\"b\": true}", "{b}", "true" },
        { "{\"b\": false}", "--b={b}", "--b=false" },
        { "{\"v\": \"\"}", "{v}", "" },
        { NULL }
    };
    for (int i = 0; cases [i].params; i++) {
        assert_int_equal (s_build (cases [i].element, cases [i].params, &argv, why, sizeof why),
                          0);
        assert_string_equal (argv [1], cases [i].text);
        mesh_exec_argv_free (argv);
    }
}

//  --------------------------------------------------------------------------
//  Runs of the probe

//  The lines of the probe's report that start with "KEY ", in order (caller frees).
static char **
s_report (const char *out, const char *key, size_t *count_p)
{
    char **lines = calloc (4096, sizeof *lines);
    size_t count = 0, length = strlen (key);
    const char *p = out;
    while (p && *p && count < 4095) {
        const char *end = strchr (p, '\n');
        size_t line = end ? (size_t) (end - p) : strlen (p);
        if (line > length && !strncmp (p, key, length) && p [length] == ' ')
            lines [count++] = strndup (p + length + 1, line - length - 1);
        p = end ? end + 1 : NULL;
    }
    *count_p = count;
    return lines;
}

static void
s_lines_free (char **lines)
{
    for (size_t i = 0; lines [i]; i++)
        free (lines [i]);
    free (lines);
}

//  The one value of KEY in the report, or fail.
static char *
s_value (const char *out, const char *key)
{
    size_t count;
    char **lines = s_report (out, key, &count);
    if (count != 1)
        fail_msg ("expected one '%s' line, got %zu in:\n%s", key, count, out);
    char *value = strdup (lines [0]);
    s_lines_free (lines);
    return value;
}

static long
s_number (const char *out, const char *key)
{
    char *value = s_value (out, key);
    long number = strtol (value, NULL, 10);
    free (value);
    return number;
}

//  A JSON string the probe printed, decoded.
static char *
s_decode (const char *json)
{
    json_t *string = json_loads (json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_non_null (string);
    char *text = strndup (json_string_value (string), json_string_length (string));
    json_decref (string);
    return text;
}

//  Run SPEC with the probe flags FLAGS (NULL-terminated) as its whole template.
static int
s_run_flags (mesh_action_spec_t *spec, const char *const *flags, mesh_exec_result_t *result,
             char *why, size_t size)
{
    size_t count = 0;
    while (flags && flags [count])
        count++;
    spec->exec.argv = (char **) flags;
    spec->exec.argc = count;
    char **argv = NULL;
    assert_int_equal (mesh_exec_argv (spec, NULL, &argv, why, size), 0);
    int rc = mesh_exec_run (spec, argv, "d-1", "agent-1", NULL, 0, result, why, size);
    mesh_exec_argv_free (argv);
    return rc;
}

static void
test_run_argv_exact (void **state)
{
    //  Each hostile value, through the template and the runner, arrives as one argument
    //  holding exactly its bytes.
    char *template [] = { (char *) "--", (char *) "{v}", (char *) "--unit={v}",
                          (char *) "{{literal}}" };
    for (int i = 0; s_hostile [i]; i++) {
        mesh_action_spec_t spec = s_spec (s_probe, template, 4);
        json_t *params = json_pack ("{s:s}", "v", s_hostile [i]);
        char **argv = NULL;
        char why [256] = "";
        assert_int_equal (mesh_exec_argv (&spec, params, &argv, why, sizeof why), 0);
        mesh_exec_result_t result;
        assert_int_equal (mesh_exec_run (&spec, argv, "d-1", "agent-1", NULL, 0, &result, why,
                                         sizeof why), 0);
        assert_int_equal (result.exit_code, 0);
        size_t count;
        char **lines = s_report (result.out, "argv", &count);
        assert_int_equal (count, 5);
        char *arg;
        assert_string_equal ((arg = s_decode (lines [0])), s_probe);
        free (arg);
        assert_string_equal ((arg = s_decode (lines [1])), "--");
        free (arg);
        assert_string_equal ((arg = s_decode (lines [2])), s_hostile [i]);
        free (arg);
        char *with;
        assert_true (asprintf (&with, "--unit=%s", s_hostile [i]) > 0);
        assert_string_equal ((arg = s_decode (lines [3])), with);
        free (arg);
        free (with);
        assert_string_equal ((arg = s_decode (lines [4])), "{literal}");
        free (arg);
        s_lines_free (lines);
        //  The outcome names the argv as run.
        json_t *json = mesh_exec_result_json (&result, argv);
        assert_int_equal (json_array_size (json_object_get (json, "argv")), 5);
        assert_string_equal (json_string_value (json_array_get (json_object_get (json, "argv"),
                                                                2)), s_hostile [i]);
        json_decref (json);
        mesh_exec_result_clear (&result);
        mesh_exec_argv_free (argv);
        json_decref (params);
    }
}

static void
test_run_environment (void **state)
{
    setenv ("TEST_EXEC_PASSED", "from meshd", 1);
    setenv ("TEST_EXEC_SECRET", "never passed", 1);
    unsetenv ("TEST_EXEC_ABSENT");
    char *env [] = { (char *) "PATH=/usr/bin:/bin", (char *) "TEST_EXEC_PASSED",
                     (char *) "TEST_EXEC_ABSENT", (char *) "EMPTY=", (char *) "LANG=C.UTF-8" };
    mesh_action_spec_t spec = s_spec (s_probe, NULL, 0);
    spec.exec.env = env;
    spec.exec.env_count = 5;
    mesh_exec_result_t result;
    char why [256] = "";
    assert_int_equal (s_run_flags (&spec, NULL, &result, why, sizeof why), 0);
    size_t count;
    char **lines = s_report (result.out, "env", &count);
    static const char *const expected [] = {
        "PATH=/usr/bin:/bin", "TEST_EXEC_PASSED=from meshd", "EMPTY=", "LANG=C.UTF-8",
        "MESH_DECISION_ID=d-1", "MESH_ACTION=act", "MESH_AGENT=agent-1", NULL
    };
    assert_int_equal (count, 7);
    for (size_t i = 0; i < count; i++) {
        char *entry = s_decode (lines [i]);
        assert_string_equal (entry, expected [i]);
        free (entry);
    }
    s_lines_free (lines);
    mesh_exec_result_clear (&result);

    //  An empty list: meshd's own variables only; without an agent, no MESH_AGENT.
    spec.exec.env_count = 0;
    char **argv = NULL;
    assert_int_equal (mesh_exec_argv (&spec, NULL, &argv, why, sizeof why), 0);
    assert_int_equal (mesh_exec_run (&spec, argv, "d-2", NULL, NULL, 0, &result, why,
                                     sizeof why), 0);
    lines = s_report (result.out, "env", &count);
    assert_int_equal (count, 2);
    char *entry = s_decode (lines [0]);
    assert_string_equal (entry, "MESH_DECISION_ID=d-2");
    free (entry);
    s_lines_free (lines);
    mesh_exec_result_clear (&result);
    mesh_exec_argv_free (argv);
    unsetenv ("TEST_EXEC_PASSED");
    unsetenv ("TEST_EXEC_SECRET");
}

static void
test_run_confinement (void **state)
{
    //  Leave descriptors open (not close-on-exec), one high; block and ignore signals:
    //  none of it may reach the child.
    int extra = dup (1);
    int high = dup2 (extra, 777);
    assert_int_equal (high, 777);
    sigset_t block, old;
    sigemptyset (&block);
    sigaddset (&block, SIGUSR1);
    sigaddset (&block, SIGTERM);
    sigprocmask (SIG_BLOCK, &block, &old);
    struct sigaction ignore = { .sa_handler = SIG_IGN }, saved;
    sigaction (SIGUSR2, &ignore, &saved);

    mesh_action_spec_t spec = s_spec (s_probe, NULL, 0);
    spec.exec.cwd = s_dir;
    spec.exec.cpu_s = 7;
    spec.exec.as_bytes = S_AS_BYTES ? 512L << 20 : 0;
    spec.exec.nofile = 100;
    spec.exec.nproc = 50;
    mesh_exec_result_t result;
    char why [256] = "";
    assert_int_equal (s_run_flags (&spec, NULL, &result, why, sizeof why), 0);
    const char *out = result.out;
    char *text = s_value (out, "fds");
    assert_string_equal (text, "0,1,2");
    free (text);
    long pid = s_number (out, "pid");
    assert_int_equal (pid, result.pid);
    assert_int_equal (s_number (out, "sid"), pid);          //  its own session ...
    assert_int_equal (s_number (out, "pgid"), pid);         //  ... and process group
    assert_int_equal (s_number (out, "ppid"), getpid ());
    assert_int_equal (s_number (out, "nnp"), 1);
    assert_int_equal (s_number (out, "blocked"), 0);
    assert_int_equal (s_number (out, "ignored"), 0);
    char *cwd = s_decode ((text = s_value (out, "cwd")));
    assert_string_equal (cwd, s_dir);
    free (cwd);
    free (text);
    assert_string_equal ((text = s_value (out, "rlimit cpu")), "7 8");
    free (text);
    if (S_AS_BYTES) {
        assert_string_equal ((text = s_value (out, "rlimit as")), "536870912 536870912");
        free (text);
    }
    assert_string_equal ((text = s_value (out, "rlimit nofile")), "100 100");
    free (text);
    assert_string_equal ((text = s_value (out, "rlimit nproc")), "50 50");
    free (text);
    assert_string_equal ((text = s_value (out, "rlimit core")), "0 0");
    free (text);
    assert_int_equal (result.exit_code, 0);
    assert_int_equal (result.signal, 0);
    assert_false (result.timed_out);
    mesh_exec_result_clear (&result);

    //  The caller's own state is as it was.
    sigset_t now;
    sigprocmask (SIG_BLOCK, NULL, &now);
    assert_true (sigismember (&now, SIGUSR1));
    assert_false (sigismember (&now, SIGPIPE));
    sigprocmask (SIG_SETMASK, &old, NULL);
    sigaction (SIGUSR2, &saved, NULL);
    close (high);
    close (extra);
}

static void
test_run_exit_and_signals (void **state)
{
    mesh_action_spec_t spec = s_spec (s_probe, NULL, 0);
    mesh_exec_result_t result;
    char why [256] = "";
    static const char *const exit3 [] = { "--quiet", "--exit", "3", NULL };
    assert_int_equal (s_run_flags (&spec, exit3, &result, why, sizeof why), 0);
    assert_int_equal (result.exit_code, 3);
    assert_int_equal (result.signal, 0);
    json_t *json = mesh_exec_result_json (&result, NULL);
    assert_int_equal (json_integer_value (json_object_get (json, "exit")), 3);
    assert_true (json_is_null (json_object_get (json, "signal")));
    assert_true (json_is_false (json_object_get (json, "timed_out")));
    assert_true (json_is_false (json_object_get (json, "killed")));
    assert_null (json_object_get (json, "lingered"));
    json_decref (json);
    mesh_exec_result_clear (&result);

    static const char *const segv [] = { "--quiet", "--signal", "11", NULL };
    assert_int_equal (s_run_flags (&spec, segv, &result, why, sizeof why), 0);
    assert_int_equal (result.exit_code, -1);
    assert_int_equal (result.signal, SIGSEGV);
    json = mesh_exec_result_json (&result, NULL);
    assert_true (json_is_null (json_object_get (json, "exit")));
    assert_string_equal (json_string_value (json_object_get (json, "signal")), "SIGSEGV");
    json_decref (json);
    mesh_exec_result_clear (&result);

    static const char *const term [] = { "--quiet", "--signal", "15", NULL };
    assert_int_equal (s_run_flags (&spec, term, &result, why, sizeof why), 0);
    assert_int_equal (result.signal, SIGTERM);
    assert_false (result.timed_out);
    mesh_exec_result_clear (&result);

    //  RLIMIT_CPU: the soft limit's SIGXCPU ends a program that spins.
    static const char *const spin [] = { "--quiet", "--spin", NULL };
    spec.exec.cpu_s = 1;
    assert_int_equal (s_run_flags (&spec, spin, &result, why, sizeof why), 0);
    assert_true (result.signal == SIGXCPU || result.signal == SIGKILL);
    assert_false (result.timed_out);
    mesh_exec_result_clear (&result);
}

static void
test_run_timeout (void **state)
{
    mesh_action_spec_t spec = s_spec (s_probe, NULL, 0);
    spec.exec.timeout_ms = 300;
    spec.exec.kill_after_ms = 5000;
    mesh_exec_result_t result;
    char why [256] = "";
    static const char *const sleep [] = { "--quiet", "--sleep", "30000", NULL };
    assert_int_equal (s_run_flags (&spec, sleep, &result, why, sizeof why), 0);
    assert_true (result.timed_out);
    assert_false (result.killed);
    assert_int_equal (result.signal, SIGTERM);
    assert_int_equal (result.exit_code, -1);
    assert_true (result.duration_ms >= 300);
    assert_true (result.duration_ms < 10000);
    json_t *json = mesh_exec_result_json (&result, NULL);
    assert_true (json_is_true (json_object_get (json, "timed_out")));
    assert_string_equal (json_string_value (json_object_get (json, "signal")), "SIGTERM");
    json_decref (json);
    mesh_exec_result_clear (&result);

    //  It ignores SIGTERM: SIGKILL kill_after_ms later.
    spec.exec.timeout_ms = 200;
    spec.exec.kill_after_ms = 300;
    static const char *const stubborn [] = { "--quiet", "--ignore-term", "--sleep", "30000",
                                             NULL };
    assert_int_equal (s_run_flags (&spec, stubborn, &result, why, sizeof why), 0);
    assert_true (result.timed_out);
    assert_true (result.killed);
    assert_int_equal (result.signal, SIGKILL);
    assert_true (result.duration_ms >= 500);
    assert_true (result.duration_ms < 10000);
    mesh_exec_result_clear (&result);

    //  It closes its pipes and goes on: the timeout still applies.
    spec.exec.timeout_ms = 300;
    static const char *const closed [] = { "--quiet", "--close", "--sleep", "30000", NULL };
    assert_int_equal (s_run_flags (&spec, closed, &result, why, sizeof why), 0);
    assert_true (result.timed_out);
    assert_int_equal (result.signal, SIGTERM);
    assert_true (result.duration_ms >= 300);
    assert_true (result.duration_ms < 10000);
    mesh_exec_result_clear (&result);
}

//  Wait (at most 10 s) for the orphan PID, which came to us as subreaper; its status.
static int
s_reap_orphan (pid_t pid)
{
    int status = 0;
    for (int i = 0; i < 1000; i++) {
        pid_t done = waitpid (pid, &status, WNOHANG);
        if (done == pid)
            return status;
        assert_int_equal (done, 0);
        struct timespec pause = { 0, 10 * 1000000 };
        nanosleep (&pause, NULL);
    }
    fail_msg ("orphan %d still alive", (int) pid);
    return -1;
}

static void
test_run_grandchild (void **state)
{
    //  The program exits at once, but leaves a process holding its pipes for 30 s: the
    //  run ends at timeout_ms, and the leftover is killed with the group.
    mesh_action_spec_t spec = s_spec (s_probe, NULL, 0);
    spec.exec.timeout_ms = 500;
    mesh_exec_result_t result;
    char why [256] = "";
    static const char *const held [] = { "--grandchild", "30000", NULL };
    assert_int_equal (s_run_flags (&spec, held, &result, why, sizeof why), 0);
    assert_int_equal (result.exit_code, 0);
    assert_false (result.timed_out);
    assert_true (result.lingered);
    assert_true (result.duration_ms >= 500);
    assert_true (result.duration_ms < 10000);
    pid_t orphan = (pid_t) s_number (result.out, "grandchild");
    int status = s_reap_orphan (orphan);
    assert_true (WIFSIGNALED (status));
    assert_int_equal (WTERMSIG (status), SIGKILL);
    json_t *json = mesh_exec_result_json (&result, NULL);
    assert_true (json_is_true (json_object_get (json, "lingered")));
    assert_int_equal (json_integer_value (json_object_get (json, "exit")), 0);
    json_decref (json);
    mesh_exec_result_clear (&result);

    //  A leftover that lets go of the pipes in time is waited for, and is not lingering.
    spec.exec.timeout_ms = 10000;
    static const char *const brief [] = { "--grandchild", "200", NULL };
    assert_int_equal (s_run_flags (&spec, brief, &result, why, sizeof why), 0);
    assert_false (result.lingered);
    assert_false (result.timed_out);
    assert_true (result.duration_ms >= 200);
    assert_true (result.duration_ms < 9000);
    orphan = (pid_t) s_number (result.out, "grandchild");
    status = s_reap_orphan (orphan);
    assert_true (WIFEXITED (status));
    mesh_exec_result_clear (&result);
}

static void
test_run_capture (void **state)
{
    mesh_action_spec_t spec = s_spec (s_probe, NULL, 0);
    spec.exec.capture_bytes = 1000;
    mesh_exec_result_t result;
    char why [256] = "";
    static const char *const flood [] = { "--quiet", "--write", "1048576", "--write-err",
                                          "300000", NULL };
    assert_int_equal (s_run_flags (&spec, flood, &result, why, sizeof why), 0);
    assert_int_equal (result.exit_code, 0);
    assert_int_equal (result.out_len, 1000);
    assert_int_equal (strlen (result.out), 1000);
    assert_int_equal (strspn (result.out, "x"), 1000);
    assert_int_equal (result.out_total, 1048576);
    assert_true (result.out_truncated);
    assert_int_equal (result.err_len, 1000);
    assert_int_equal (result.err_total, 300000);
    assert_true (result.err_truncated);
    json_t *json = mesh_exec_result_json (&result, NULL);
    assert_int_equal (strlen (json_string_value (json_object_get (json, "stdout"))), 1000);
    assert_int_equal (json_integer_value (json_object_get (json, "stdout_bytes")), 1048576);
    assert_int_equal (json_integer_value (json_object_get (json, "stderr_bytes")), 300000);
    json_decref (json);
    mesh_exec_result_clear (&result);

    //  The default capture keeps all of a small output; the outcome the first 1024 bytes.
    spec.exec.capture_bytes = 65536;
    static const char *const some [] = { "--quiet", "--write", "5000", NULL };
    assert_int_equal (s_run_flags (&spec, some, &result, why, sizeof why), 0);
    assert_int_equal (result.out_len, 5000);
    assert_false (result.out_truncated);
    json = mesh_exec_result_json (&result, NULL);
    assert_int_equal (strlen (json_string_value (json_object_get (json, "stdout"))),
                      MESH_EXEC_EXCERPT);
    assert_int_equal (json_integer_value (json_object_get (json, "stdout_bytes")), 5000);
    json_decref (json);
    mesh_exec_result_clear (&result);

    //  capture_bytes 0: counted, nothing kept.
    spec.exec.capture_bytes = 0;
    assert_int_equal (s_run_flags (&spec, some, &result, why, sizeof why), 0);
    assert_int_equal (result.out_len, 0);
    assert_string_equal (result.out, "");
    assert_int_equal (result.out_total, 5000);
    mesh_exec_result_clear (&result);

    //  Bytes that are not UTF-8, and NUL, become '?' in the outcome.
    spec.exec.capture_bytes = 65536;
    static const char *const bytes [] = { "--quiet", "--bytes", "61ff62c3a963e29883640066c0af",
                                          NULL };
    assert_int_equal (s_run_flags (&spec, bytes, &result, why, sizeof why), 0);
    assert_int_equal (result.out_len, 14);
    json = mesh_exec_result_json (&result, NULL);
    assert_string_equal (json_string_value (json_object_get (json, "stdout")),
                         "a?b\xc3\xa9" "c\xe2\x98\x83" "d?f??");
    json_decref (json);
    mesh_exec_result_clear (&result);
}

static void
test_run_stdin (void **state)
{
    mesh_action_spec_t spec = s_spec (s_probe, NULL, 0);
    spec.exec.stdin_decision = true;
    static const char *const flags [] = { "--stdin", NULL };
    spec.exec.argv = (char **) flags;
    spec.exec.argc = 1;
    char **argv = NULL;
    char why [256] = "";
    assert_int_equal (mesh_exec_argv (&spec, NULL, &argv, why, sizeof why), 0);
    const char *decision = "{\"id\":\"d-1\",\"action\":{\"name\":\"act\"}}";
    mesh_exec_result_t result;
    assert_int_equal (mesh_exec_run (&spec, argv, "d-1", "a", decision, strlen (decision),
                                     &result, why, sizeof why), 0);
    char *text = s_value (result.out, "stdin");
    char *got = s_decode (text);
    assert_string_equal (got, decision);
    free (got);
    free (text);
    mesh_exec_result_clear (&result);

    //  stdin null: /dev/null, whatever data is given.
    spec.exec.stdin_decision = false;
    assert_int_equal (mesh_exec_run (&spec, argv, "d-1", "a", decision, strlen (decision),
                                     &result, why, sizeof why), 0);
    assert_string_equal ((text = s_value (result.out, "stdin")), "\"\"");
    free (text);
    mesh_exec_result_clear (&result);
    mesh_exec_argv_free (argv);

    //  4 MiB for a program that never reads it and exits: no SIGPIPE reaches us, and the
    //  run ends with the program.
    spec.exec.stdin_decision = true;
    static const char *const quiet [] = { "--quiet", "--exit", "4", NULL };
    spec.exec.argv = (char **) quiet;
    spec.exec.argc = 3;
    assert_int_equal (mesh_exec_argv (&spec, NULL, &argv, why, sizeof why), 0);
    size_t big = 4 << 20;
    char *data = malloc (big);
    memset (data, 'd', big);
    assert_int_equal (mesh_exec_run (&spec, argv, "d-1", "a", data, big, &result, why,
                                     sizeof why), 0);
    assert_int_equal (result.exit_code, 4);
    assert_true (result.duration_ms < 10000);
    sigset_t pending;
    sigpending (&pending);
    assert_false (sigismember (&pending, SIGPIPE));
    mesh_exec_result_clear (&result);
    mesh_exec_argv_free (argv);
    free (data);
}

static void
test_run_cannot_start (void **state)
{
    mesh_exec_result_t result;
    char why [256] = "";
    //  Not executable, missing: the child says why on stderr and exits 126.
    char *plain;
    assert_true (asprintf (&plain, "%s/plain", s_dir) > 0);
    FILE *file = fopen (plain, "w");
    fputs ("#!/bin/sh\nexit 0\n", file);
    fclose (file);
    chmod (plain, 0644);
    mesh_action_spec_t spec = s_spec (plain, NULL, 0);
    assert_int_equal (s_run_flags (&spec, NULL, &result, why, sizeof why), 0);
    assert_int_equal (result.exit_code, 126);
    assert_non_null (strstr (result.err, "meshd: cannot execute "));
    assert_non_null (strstr (result.err, "plain: Permission denied"));
    mesh_exec_result_clear (&result);

    spec = s_spec ("/nonexistent/program", NULL, 0);
    assert_int_equal (s_run_flags (&spec, NULL, &result, why, sizeof why), 0);
    assert_int_equal (result.exit_code, 126);
    assert_non_null (strstr (result.err, "meshd: cannot execute /nonexistent/program: No such "
                             "file or directory"));
    mesh_exec_result_clear (&result);

    spec = s_spec (s_probe, NULL, 0);
    spec.exec.cwd = (char *) "/nonexistent";
    assert_int_equal (s_run_flags (&spec, NULL, &result, why, sizeof why), 0);
    assert_int_equal (result.exit_code, 126);
    assert_non_null (strstr (result.err, "meshd: cannot change directory to /nonexistent: No "
                             "such file or directory"));
    mesh_exec_result_clear (&result);

    //  What cannot even start: -1, and nothing to free.
    char *argv [] = { (char *) "probe", NULL };
    spec = s_spec ("relative/probe", NULL, 0);
    memset (&result, 0xff, sizeof result);
    assert_int_equal (mesh_exec_run (&spec, argv, "d", "a", NULL, 0, &result, why, sizeof why),
                      -1);
    assert_non_null (strstr (why, "absolute"));
    assert_null (result.out);
    spec = s_spec (s_probe, NULL, 0);
    spec.exec.user = (char *) "no-such-user-here";
    assert_int_equal (mesh_exec_run (&spec, argv, "d", "a", NULL, 0, &result, why, sizeof why),
                      -1);
    assert_non_null (strstr (why, "user no-such-user-here"));
    spec.exec.user = (char *) "root";
    spec.exec.group = (char *) "no-such-group-here";
    assert_int_equal (mesh_exec_run (&spec, argv, "d", "a", NULL, 0, &result, why, sizeof why),
                      -1);
    assert_non_null (strstr (why, "group no-such-group-here"));
    free (plain);
}

static void
test_run_as_user (void **state)
{
    if (geteuid () != 0)
        skip ();                        //  switching user needs root
    struct passwd *nobody = getpwnam ("nobody");
    if (!nobody)
        skip ();
    uid_t uid = nobody->pw_uid;
    gid_t gid = nobody->pw_gid;
    mesh_action_spec_t spec = s_spec (s_probe, NULL, 0);
    spec.exec.user = (char *) "nobody";
    mesh_exec_result_t result;
    char why [256] = "";
    assert_int_equal (s_run_flags (&spec, NULL, &result, why, sizeof why), 0);
    if (result.exit_code == 126)
        fail_msg ("%s", result.err);    //  e.g. the probe is not reachable by nobody
    assert_int_equal (result.exit_code, 0);
    assert_int_equal (s_number (result.out, "uid"), uid);
    assert_int_equal (s_number (result.out, "gid"), gid);
    assert_int_equal (s_number (result.out, "nnp"), 1);
    char *groups = s_value (result.out, "groups");
    assert_null (strstr (groups, ",0,"));   //  root's group 0 is not kept
    assert_true (strncmp (groups, "0,", 2) && strcmp (groups, "0"));
    free (groups);
    mesh_exec_result_clear (&result);

    //  Not root: another user is refused before anything starts; its own user is no switch.
    pid_t pid = fork ();
    if (pid == 0) {
        if (setgroups (0, NULL) || setgid (gid) || setuid (uid))
            _exit (10);
        spec.exec.user = (char *) "root";
        char *argv [] = { s_probe, (char *) "--quiet", NULL };
        if (mesh_exec_run (&spec, argv, "d", "a", NULL, 0, &result, why, sizeof why) != -1
        ||  !strstr (why, "as user root needs meshd to run as root"))
            _exit (11);
        spec.exec.user = (char *) "nobody";
        if (mesh_exec_run (&spec, argv, "d", "a", NULL, 0, &result, why, sizeof why) != 0
        ||  result.exit_code != 0)
            _exit (12);
        mesh_exec_result_clear (&result);
        _exit (0);
    }
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
}

//  Runs from several threads at once (as meshd's executor does): each gets its own
//  child, its own output and its own outcome; none sees another's descriptors.
typedef struct {
    int index;
    int failures;
} s_worker_t;

static void *
s_worker (void *arg)
{
    s_worker_t *worker = arg;
    char *template [] = { (char *) "--", (char *) "{v}" };
    for (int round = 0; round < 5; round++) {
        mesh_action_spec_t spec = s_spec (s_probe, template, 2);
        char value [64];
        snprintf (value, sizeof value, "worker %d round %d", worker->index, round);
        json_t *params = json_pack ("{s:s}", "v", value);
        char **argv = NULL;
        char why [256] = "";
        mesh_exec_result_t result;
        if (mesh_exec_argv (&spec, params, &argv, why, sizeof why) != 0
        ||  mesh_exec_run (&spec, argv, value, "a", NULL, 0, &result, why, sizeof why) != 0) {
            worker->failures++;
            json_decref (params);
            mesh_exec_argv_free (argv);
            continue;
        }
        char *expect;
        if (asprintf (&expect, "argv \"%s\"\n", value) < 0)
            expect = NULL;
        if (result.exit_code != 0 || !expect || !strstr (result.out, expect)
        ||  !strstr (result.out, "\nfds 0,1,2\n"))
            worker->failures++;
        free (expect);
        mesh_exec_result_clear (&result);
        mesh_exec_argv_free (argv);
        json_decref (params);
    }
    return NULL;
}

static void
test_run_concurrent (void **state)
{
    enum { WORKERS = 6 };
    pthread_t threads [WORKERS];
    s_worker_t workers [WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        workers [i] = (s_worker_t) { .index = i };
        assert_int_equal (pthread_create (&threads [i], NULL, s_worker, &workers [i]), 0);
    }
    for (int i = 0; i < WORKERS; i++) {
        assert_int_equal (pthread_join (threads [i], NULL), 0);
        assert_int_equal (workers [i].failures, 0);
    }
}

//  The shipped example program, actions/restart-unit, run as meshd runs it, with the
//  probe standing in for systemctl: the unit arrives as one argument after "--"; a
//  value the param's pattern should have refused is refused again by the helper.
static void
test_run_restart_unit (void **state)
{
    char helper [PATH_MAX], *allow, *systemctl_env, *allow_env;
    assert_non_null (realpath ("actions/restart-unit", helper));
    assert_true (asprintf (&allow, "%s/restart-units.allow", s_dir) > 0);
    FILE *file = fopen (allow, "w");
    fputs ("# units meshd may restart\nweb.service\n", file);
    fclose (file);
    assert_true (asprintf (&systemctl_env, "SYSTEMCTL=%s", s_probe) > 0);
    assert_true (asprintf (&allow_env, "RESTART_UNIT_ALLOW=%s", allow) > 0);
    char *env [] = { (char *) "PATH=/usr/bin:/bin", systemctl_env, allow_env };
    char *template [] = { (char *) "{v}" };
    mesh_action_spec_t spec = s_spec (helper, template, 1);
    spec.exec.env = env;
    spec.exec.env_count = 3;
    static const struct {
        const char *unit;
        int exit_code;
    } cases [] = {
        { "web.service", 0 }, { "db.service", 77 }, { "web.service; reboot", 65 },
        { "$(reboot).service", 65 }, { "web.service\nreboot", 65 }, { NULL, 0 }
    };
    for (int i = 0; cases [i].unit; i++) {
        json_t *params = json_pack ("{s:s}", "v", cases [i].unit);
        char **argv = NULL;
        char why [256] = "";
        assert_int_equal (mesh_exec_argv (&spec, params, &argv, why, sizeof why), 0);
        mesh_exec_result_t result;
        assert_int_equal (mesh_exec_run (&spec, argv, "d-1", "a", NULL, 0, &result, why,
                                         sizeof why), 0);
        if (result.exit_code != cases [i].exit_code)
            fail_msg ("%s: exit %d, expected %d: %s", cases [i].unit, result.exit_code,
                      cases [i].exit_code, result.err);
        size_t count;
        char **lines = s_report (result.out, "argv", &count);
        if (cases [i].exit_code == 0) {
            static const char *const expected [] = { NULL, "restart", "--", "web.service" };
            assert_int_equal (count, 4);
            for (size_t j = 1; j < 4; j++) {
                char *arg = s_decode (lines [j]);
                assert_string_equal (arg, expected [j]);
                free (arg);
            }
        }
        else {
            assert_int_equal (count, 0);    //  systemctl never ran
            assert_non_null (strstr (result.err, "restart-unit: refused"));
        }
        s_lines_free (lines);
        mesh_exec_result_clear (&result);
        mesh_exec_argv_free (argv);
        json_decref (params);
    }
    free (allow);
    free (systemctl_env);
    free (allow_env);
}

//  The outcome of a run put together by hand: what the JSON keeps and how it is cut.
static void
test_result_json (void **state)
{
    char *long_arg = malloc (5001);
    memset (long_arg, 'a', 5000);
    long_arg [5000] = 0;
    char *argv [] = { (char *) "/usr/bin/prog", long_arg, (char *) "bad\xff\xfe", NULL };
    char out [] = "ok", err [] = "oops";
    mesh_exec_result_t result = {
        .pid = 42, .exit_code = -1, .signal = SIGKILL, .timed_out = true, .killed = true,
        .out = out, .out_len = 2, .out_total = 2000, .err = err, .err_len = 4, .err_total = 4,
        .duration_ms = 1234,
    };
    json_t *json = mesh_exec_result_json (&result, argv);
    assert_true (json_is_null (json_object_get (json, "exit")));
    assert_string_equal (json_string_value (json_object_get (json, "signal")), "SIGKILL");
    assert_true (json_is_true (json_object_get (json, "timed_out")));
    assert_true (json_is_true (json_object_get (json, "killed")));
    assert_int_equal (json_integer_value (json_object_get (json, "duration_ms")), 1234);
    assert_string_equal (json_string_value (json_object_get (json, "stdout")), "ok");
    assert_int_equal (json_integer_value (json_object_get (json, "stdout_bytes")), 2000);
    assert_string_equal (json_string_value (json_object_get (json, "stderr")), "oops");
    json_t *args = json_object_get (json, "argv");
    assert_int_equal (json_array_size (args), 3);
    const char *cut = json_string_value (json_array_get (args, 1));
    assert_int_equal (strlen (cut), 4096 + 3);
    assert_string_equal (cut + 4096, "...");
    assert_string_equal (json_string_value (json_array_get (args, 2)), "bad??");
    assert_null (json_object_get (json, "lingered"));
    assert_null (json_object_get (json, "status_unknown"));
    json_decref (json);

    //  Reaped elsewhere: neither an exit nor a signal is known.
    result = (mesh_exec_result_t) { .exit_code = -1, .status_unknown = true, .lingered = true };
    json = mesh_exec_result_json (&result, NULL);
    assert_true (json_is_null (json_object_get (json, "exit")));
    assert_true (json_is_null (json_object_get (json, "signal")));
    assert_string_equal (json_string_value (json_object_get (json, "stdout")), "");
    assert_int_equal (json_array_size (json_object_get (json, "argv")), 0);
    assert_true (json_is_true (json_object_get (json, "status_unknown")));
    assert_true (json_is_true (json_object_get (json, "lingered")));
    json_decref (json);
    mesh_exec_result_clear (NULL);
    free (long_arg);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_argv_template),
        cmocka_unit_test (test_argv_hostile),
        cmocka_unit_test (test_argv_dash),
        cmocka_unit_test (test_argv_refused),
        cmocka_unit_test (test_argv_sizes),
        cmocka_unit_test (test_argv_types),
        cmocka_unit_test (test_run_argv_exact),
        cmocka_unit_test (test_run_environment),
        cmocka_unit_test (test_run_confinement),
        cmocka_unit_test (test_run_exit_and_signals),
        cmocka_unit_test (test_run_timeout),
        cmocka_unit_test (test_run_grandchild),
        cmocka_unit_test (test_run_capture),
        cmocka_unit_test (test_run_stdin),
        cmocka_unit_test (test_run_cannot_start),
        cmocka_unit_test (test_run_as_user),
        cmocka_unit_test (test_run_concurrent),
        cmocka_unit_test (test_run_restart_unit),
        cmocka_unit_test (test_result_json),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
