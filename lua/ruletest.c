/*  ruletest - tests for rule authors: `meshctl rules test` and `meshctl rules check`.
 *
 *  The shape follows `opa test`: test files beside the rules, cases as data, one line
 *  per case, a summary line, and an exit code a CI job can use.  Two choices matter:
 *
 *  - The test file runs in the sandbox like a rule (text only, allow-listed
 *    libraries, limits), so a test file cannot do anything a rule cannot, and its
 *    author can build cases with loops and helper functions.  What it returns is
 *    converted to JSON (vm.c, mesh_vm_run_json), and each case's proposal and ctx
 *    reach the rule from JSON through mesh_sandbox_eval - the same path, views and
 *    all, as a proposal parsed from a model's answer.  A case therefore tests what
 *    production will see: a Lua table the test wrote with a nil in it has no such
 *    key, and mesh.null becomes JSON null.
 *  - Everything wrong with a test file is a failure with a message naming the file
 *    and the case, never a crash or a silent skip: a missing rule, an unknown key in
 *    a case (a typo like "expects"), a duplicate case name, a reason pattern on a
 *    case that expects accept.
 *  - An accept that asks for a human's approval (mesh.require_approval) is not the
 *    accept a case expects unless the case says so: "approval" is a pattern the
 *    approval's reason must contain, and a case without it expects no request.  A
 *    rule that starts asking, or stops, fails its tests rather than changing what
 *    runs unattended without anyone noticing.
 *
 *  Reason and approval patterns are Lua patterns, matched with string.find in a sandbox state of
 *  their own, so they get the same backtracking bound as rules.
 */
#include "ruletest.h"
#include "sandbox.h"
#include "vm.h"

#include <jansson.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAX_TEST_FILE     (1024 * 1024)

//  Test files may build many cases: more room than a rule evaluation.
static const mesh_sandbox_limits_t s_test_file_limits = { 20000000, 64 << 20, 5000 };

static bool
s_ends_with (const char *s, const char *suffix)
{
    size_t n = strlen (s), m = strlen (suffix);
    return n >= m && strcmp (s + n - m, suffix) == 0;
}

static const char *
s_basename (const char *path)
{
    const char *slash = strrchr (path, '/');
    return slash ? slash + 1 : path;
}

//  Read a regular file of at most MAX bytes; NULL and *err set (caller frees).
static char *
s_read (const char *path, size_t max, size_t *size_p, char **err)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (asprintf (err, "cannot open: %s", strerror (errno)) < 0)
            *err = NULL;
        return NULL;
    }
    struct stat st;
    if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode) || (size_t) st.st_size > max) {
        if (asprintf (err, "not a regular file of at most %zu KiB", max / 1024) < 0)
            *err = NULL;
        close (fd);
        return NULL;
    }
    char *data = malloc (max + 1);
    size_t size = 0;
    while (data && size <= max) {
        ssize_t n = read (fd, data + size, max + 1 - size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size += (size_t) n;
    }
    close (fd);
    if (!data || size > max || memchr (data, 0, size)) {
        if (asprintf (err, "%s", !data ? "out of memory" : size > max ? "file too large"
                                : "contains a NUL byte") < 0)
            *err = NULL;
        free (data);
        return NULL;
    }
    data [size] = 0;
    *size_p = size;
    return data;
}

static void
s_line (FILE *out, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vfprintf (out, fmt, ap);
    va_end (ap);
    fputc ('\n', out);
    fflush (out);
}

//  --------------------------------------------------------------------------------
//  One test file

typedef struct {
    const char *path;
    FILE *out;
    int *passed, *failed;
    mesh_vm_t *vm;                      //  runs the file, matches reason patterns
} s_file_t;

static void
s_file_fail (s_file_t *F, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start (ap, fmt);
    if (vasprintf (&msg, fmt, ap) < 0)
        msg = NULL;
    va_end (ap);
    s_line (F->out, "FAIL %s: %s", F->path, msg ? msg : "out of memory");
    free (msg);
    (*F->failed)++;
}

static bool
s_only_keys (s_file_t *F, json_t *object, const char *where, const char **allowed)
{
    const char *key;
    json_t *value;
    json_object_foreach (object, key, value) {
        bool known = false;
        for (const char **a = allowed; *a && !known; a++)
            known = strcmp (*a, key) == 0;
        if (!known) {
            char list[256] = "";
            for (const char **a = allowed; *a; a++)
                snprintf (list + strlen (list), sizeof list - strlen (list), "%s%s",
                          a == allowed ? "" : ", ", *a);
            s_file_fail (F, "%s: unknown key \"%s\" (known: %s)", where, key, list);
            return false;
        }
    }
    return true;
}

static bool
s_limits_from (s_file_t *F, json_t *limits, mesh_sandbox_limits_t *out)
{
    memset (out, 0, sizeof *out);
    if (!limits)
        return true;
    static const char *keys[] = { "instructions", "memory", "time_ms", NULL };
    if (!json_is_object (limits)) {
        s_file_fail (F, "limits must be a table {instructions, memory, time_ms}");
        return false;
    }
    if (!s_only_keys (F, limits, "limits", keys))
        return false;
    json_t *v;
    if ((v = json_object_get (limits, "instructions")) && json_is_integer (v))
        out->instructions = (long) json_integer_value (v);
    if ((v = json_object_get (limits, "memory")) && json_is_integer (v))
        out->memory = (size_t) json_integer_value (v);
    if ((v = json_object_get (limits, "time_ms")) && json_is_integer (v))
        out->time_ms = (int) json_integer_value (v);
    return true;
}

static const char *
s_verdict_from (const char *name, mesh_verdict_t *verdict)
{
    static const mesh_verdict_t all[] = {
        MESH_VERDICT_ACCEPT, MESH_VERDICT_REJECT, MESH_VERDICT_ERROR, MESH_VERDICT_LIMIT
    };
    for (size_t i = 0; name && i < 4; i++)
        if (strcmp (name, mesh_verdict_name (all [i])) == 0) {
            *verdict = all [i];
            return name;
        }
    return NULL;
}

//  Check the cases' shape before running any: every problem found is one failure.
static bool
s_cases_valid (s_file_t *F, json_t *cases)
{
    static const char *keys[] = { "name", "proposal", "ctx", "expect", "reason", "approval",
                                  NULL };
    bool ok = true;
    size_t i;
    json_t *c;
    json_array_foreach (cases, i, c) {
        char where[64];
        snprintf (where, sizeof where, "cases[%zu]", i + 1);
        if (!json_is_object (c)) {
            s_file_fail (F, "%s must be a table", where);
            ok = false;
            continue;
        }
        if (!s_only_keys (F, c, where, keys)) {
            ok = false;
            continue;
        }
        json_t *name = json_object_get (c, "name");
        if (!json_is_string (name) || json_string_length (name) == 0) {
            s_file_fail (F, "%s needs name = \"...\"", where);
            ok = false;
            continue;
        }
        for (size_t j = 0; j < i; j++)
            if (json_equal (name, json_object_get (json_array_get (cases, j), "name"))) {
                s_file_fail (F, "%s: the name \"%s\" is used by cases[%zu] too", where,
                             json_string_value (name), j + 1);
                ok = false;
            }
        mesh_verdict_t verdict;
        json_t *expect = json_object_get (c, "expect");
        if (!s_verdict_from (json_string_value (expect), &verdict)) {
            s_file_fail (F, "%s: expect must be \"accept\", \"reject\", \"error\" or \"limit\"",
                         json_string_value (name));
            ok = false;
            continue;
        }
        json_t *reason = json_object_get (c, "reason");
        if (reason && (!json_is_string (reason) || verdict == MESH_VERDICT_ACCEPT)) {
            s_file_fail (F, "%s: reason must be a Lua pattern, and only for a case that "
                            "does not expect accept", json_string_value (name));
            ok = false;
        }
        json_t *approval = json_object_get (c, "approval");
        if (approval && (!json_is_string (approval) || verdict != MESH_VERDICT_ACCEPT)) {
            s_file_fail (F, "%s: approval must be a Lua pattern, and only for a case that "
                            "expects accept", json_string_value (name));
            ok = false;
        }
        json_t *ctx = json_object_get (c, "ctx");
        if (ctx && !json_is_object (ctx)) {
            s_file_fail (F, "%s: ctx must be a table", json_string_value (name));
            ok = false;
        }
    }
    return ok;
}

//  Does TEXT contain the Lua PATTERN (the case's WHAT pattern)?  1 yes, 0 no, -1 (a
//  FAIL line printed for case NAME) when the pattern is unusable.
static int
s_contains (s_file_t *F, const char *name, const char *what, const char *text,
            const char *pattern)
{
    char *why = NULL;
    int found = mesh_vm_find (F->vm, text ? text : "", text ? strlen (text) : 0, pattern, &why);
    if (found < 0) {
        s_line (F->out, "FAIL %s: %s: the %s pattern \"%s\" is unusable: %s", F->path, name,
                what, pattern, why ? why : "?");
        (*F->failed)++;
    }
    free (why);
    return found;
}

static void
s_run_case (s_file_t *F, mesh_sandbox_t *rule, json_t *c, json_t *ctx_defaults)
{
    const char *name = json_string_value (json_object_get (c, "name"));
    mesh_verdict_t want = MESH_VERDICT_ERROR;
    s_verdict_from (json_string_value (json_object_get (c, "expect")), &want);
    const char *pattern = json_string_value (json_object_get (c, "reason"));
    const char *asks = json_string_value (json_object_get (c, "approval"));
    json_t *proposal = json_object_get (c, "proposal");
    json_t *ctx = json_object_get (c, "ctx");
    json_t *merged = NULL;
    if (ctx_defaults) {
        merged = json_copy (ctx_defaults);
        if (ctx)
            json_object_update (merged, ctx);
        ctx = merged;
    }
    if (json_is_null (proposal))
        proposal = NULL;
    char *reason = NULL, *approval = NULL;
    mesh_verdict_t got = mesh_sandbox_eval_ex (rule, proposal, ctx, &reason, &approval);
    json_decref (merged);
    bool pass = got == want;
    if (pass && pattern) {
        int found = s_contains (F, name, "reason", reason, pattern);
        if (found < 0)
            goto done;
        pass = found == 1;
    }
    //  An accept: asking for approval, or not, is part of what was expected.
    if (pass && asks) {
        int found = approval ? s_contains (F, name, "approval", approval, asks) : 0;
        if (found < 0)
            goto done;
        pass = found == 1;
    }
    if (pass && !asks)
        pass = approval == NULL;
    if (pass) {
        s_line (F->out, "PASS %s: %s", F->path, name);
        (*F->passed)++;
        goto done;
    }
    //  expected X[ asking approval][ with a reason matching "P"], got Y[ ...] (text)
    char expected[600], got_text[64];
    snprintf (expected, sizeof expected, "%s%s%s%s%s", mesh_verdict_name (want),
              asks ? " asking approval" : "", asks || pattern ? " with a reason matching \"" : "",
              asks ? asks : pattern ? pattern : "", asks || pattern ? "\"" : "");
    snprintf (got_text, sizeof got_text, "%s%s", mesh_verdict_name (got),
              approval ? " asking approval" : asks && got == MESH_VERDICT_ACCEPT
                                              ? " without asking approval" : "");
    const char *shown = approval ? approval : reason;
    s_line (F->out, "FAIL %s: %s: expected %s, got %s%s%s%s", F->path, name, expected,
            got_text, shown ? " (" : "", shown ? shown : "", shown ? ")" : "");
    (*F->failed)++;

done:
    free (reason);
    free (approval);
}

void
mesh_ruletest_file (const char *path, FILE *out, int *passed, int *failed)
{
    s_file_t F = { .path = path, .out = out, .passed = passed, .failed = failed };
    char *err = NULL, *source = NULL, *chunkname = NULL, *rule_path = NULL;
    json_t *test = NULL;
    mesh_sandbox_t *rule = NULL;
    size_t size = 0;
    if (!(source = s_read (path, S_MAX_TEST_FILE, &size, &err))) {
        s_file_fail (&F, "%s", err ? err : "cannot read");
        goto done;
    }
    F.vm = mesh_vm_new (NULL, 0, &s_test_file_limits);
    if (!F.vm || asprintf (&chunkname, "@%s", s_basename (path)) < 0) {
        chunkname = NULL;
        s_file_fail (&F, "out of memory");
        goto done;
    }
    test = mesh_vm_run_json (F.vm, chunkname, source, size, &err);
    if (!test) {
        s_file_fail (&F, "%s", err ? err : "cannot run");
        goto done;
    }
    static const char *keys[] = { "rule", "cases", "ctx", "limits", NULL };
    if (!json_is_object (test) || !s_only_keys (&F, test, "the test table", keys)) {
        if (!json_is_object (test))
            s_file_fail (&F, "a test file must return a table { rule = \"NAME.lua\", cases = "
                             "{ ... } }");
        goto done;
    }
    json_t *rule_name = json_object_get (test, "rule");
    json_t *cases = json_object_get (test, "cases");
    json_t *ctx_defaults = json_object_get (test, "ctx");
    if (!json_is_string (rule_name)) {
        s_file_fail (&F, "rule = \"NAME.lua\" is missing (the rule file, relative to the "
                         "test file)");
        goto done;
    }
    if (!json_is_array (cases) || json_array_size (cases) == 0) {
        s_file_fail (&F, "cases = { ... } is missing or empty");
        goto done;
    }
    if (ctx_defaults && !json_is_object (ctx_defaults)) {
        s_file_fail (&F, "ctx must be a table (defaults for every case's ctx)");
        goto done;
    }
    mesh_sandbox_limits_t limits;
    if (!s_limits_from (&F, json_object_get (test, "limits"), &limits))
        goto done;
    const char *slash = strrchr (path, '/');
    const char *name = json_string_value (rule_name);
    int rc = name [0] == '/' || !slash
           ? asprintf (&rule_path, "%s", name)
           : asprintf (&rule_path, "%.*s/%s", (int) (slash - path), path, name);
    if (rc < 0) {
        rule_path = NULL;
        s_file_fail (&F, "out of memory");
        goto done;
    }
    if (!(rule = mesh_sandbox_load (rule_path, &limits, &err))) {
        s_file_fail (&F, "%s", err ? err : "the rule does not load");
        goto done;
    }
    if (!s_cases_valid (&F, cases))
        goto done;
    size_t i;
    json_t *c;
    json_array_foreach (cases, i, c)
        s_run_case (&F, rule, c, ctx_defaults);

done:
    mesh_sandbox_destroy (&rule);
    mesh_vm_destroy (&F.vm);
    json_decref (test);
    free (rule_path);
    free (chunkname);
    free (source);
    free (err);
}

static int
s_compare_names (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

//  The names in DIR that end with SUFFIX (and, with EXCEPT, do not end with it),
//  sorted; NULL-terminated (caller frees each and the array).  NULL if DIR cannot be
//  read.
static char **
s_list (const char *dir, const char *suffix, const char *except, size_t *count_p)
{
    DIR *d = opendir (dir);
    if (!d)
        return NULL;
    size_t count = 0, max = 16;
    char **names = calloc (max + 1, sizeof (char *));
    struct dirent *e;
    while (names && (e = readdir (d))) {
        if (e->d_name [0] == '.' || !s_ends_with (e->d_name, suffix)
        ||  (except && s_ends_with (e->d_name, except)))
            continue;
        if (count == max) {
            char **more = realloc (names, (2 * max + 1) * sizeof (char *));
            if (!more)
                break;
            names = more;
            max *= 2;
        }
        names [count++] = strdup (e->d_name);
        names [count] = NULL;
    }
    closedir (d);
    if (names)
        qsort (names, count, sizeof (char *), s_compare_names);
    *count_p = count;
    return names;
}

static void
s_list_free (char **names)
{
    for (char **n = names; n && *n; n++)
        free (*n);
    free (names);
}

void
mesh_ruletest_dir (const char *dir, FILE *out, int *passed, int *failed)
{
    size_t count = 0;
    char **names = s_list (dir, "_test.lua", NULL, &count);
    if (!names || count == 0) {
        s_line (out, "FAIL %s: %s", dir, names ? "no *_test.lua files here"
                                               : "cannot read the directory");
        (*failed)++;
        s_list_free (names);
        return;
    }
    for (size_t i = 0; i < count; i++) {
        char *path = NULL;
        if (asprintf (&path, "%s%s%s", dir, s_ends_with (dir, "/") ? "" : "/", names [i]) < 0)
            continue;
        mesh_ruletest_file (path, out, passed, failed);
        free (path);
    }
    s_list_free (names);
}

static bool
s_is_dir (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 && S_ISDIR (st.st_mode);
}

static bool
s_check_one (const char *path, FILE *out)
{
    char *err = NULL;
    mesh_sandbox_t *rule = mesh_sandbox_load (path, NULL, &err);
    if (rule) {
        mesh_sandbox_destroy (&rule);
        return true;
    }
    s_line (out, "%s", err ? err : "out of memory");
    free (err);
    return false;
}

int
mesh_ruletest_check (char **paths, int count, FILE *out, int *checked)
{
    int problems = 0;
    *checked = 0;
    for (int i = 0; i < count; i++) {
        if (!s_is_dir (paths [i])) {
            (*checked)++;
            problems += !s_check_one (paths [i], out);
            continue;
        }
        size_t n = 0;
        char **names = s_list (paths [i], ".lua", "_test.lua", &n);
        if (!names) {
            s_line (out, "%s: cannot read the directory", paths [i]);
            problems++;
            continue;
        }
        for (size_t j = 0; j < n; j++) {
            char *path = NULL;
            if (asprintf (&path, "%s%s%s", paths [i], s_ends_with (paths [i], "/") ? "" : "/",
                          names [j]) < 0)
                continue;
            (*checked)++;
            problems += !s_check_one (path, out);
            free (path);
        }
        s_list_free (names);
    }
    return problems;
}

int
mesh_ruletest_main (int argc, char **argv, FILE *out, FILE *err)
{
    if (argc >= 1 && strcmp (argv [0], "test") == 0) {
        int passed = 0, failed = 0;
        if (argc == 1)
            mesh_ruletest_dir ("rules", out, &passed, &failed);
        for (int i = 1; i < argc; i++) {
            if (s_is_dir (argv [i]))
                mesh_ruletest_dir (argv [i], out, &passed, &failed);
            else
                mesh_ruletest_file (argv [i], out, &passed, &failed);
        }
        s_line (out, "%d passed, %d failed", passed, failed);
        return failed ? 1 : 0;
    }
    if (argc >= 2 && strcmp (argv [0], "check") == 0) {
        int checked = 0;
        int problems = mesh_ruletest_check (argv + 1, argc - 1, out, &checked);
        s_line (out, "%d rule file%s checked, %d with problems", checked,
                checked == 1 ? "" : "s", problems);
        return problems ? 1 : 0;
    }
    fprintf (err, "usage: meshctl rules test [DIR|FILE]...   run the *_test.lua cases "
                  "(default: rules/)\n"
                  "       meshctl rules check FILE|DIR...     load rules in the sandbox, "
                  "report FILE:LINE: message\n");
    return 64;
}
