/*  test_ratelog - repeated problems cost two log lines per interval, whatever their number.
 *
 *  The log goes to stderr; the test points stderr at a temporary file and counts the
 *  lines each step adds.
 */
#include "ratelog.h"
#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_path[64];

//  Lines in the captured log that contain NEEDLE.
static int
s_lines (const char *needle)
{
    FILE *file = fopen (s_path, "r");
    assert_non_null (file);
    char line[4096];
    int n = 0;
    while (fgets (line, sizeof line, file))
        n += strstr (line, needle) != NULL;
    fclose (file);
    return n;
}

static void
test_flood_is_two_lines (void **state)
{
    mesh_ratelog_t *log = mesh_ratelog_new (300);
    for (int i = 0; i < 10000; i++)
        mesh_ratelog_hit (log, "unauthenticated", "dropped hello from 'ops/%d'", i);
    mesh_ratelog_tick (log);                //  interval not over: quiet
    assert_int_equal (s_lines ("unauthenticated:"), 1);
    assert_int_equal (s_lines ("'ops/0'"), 1);
    assert_int_equal (mesh_ratelog_total (log, "unauthenticated"), 10000);
    zclock_sleep (350);
    mesh_ratelog_tick (log);
    assert_int_equal (s_lines ("unauthenticated:"), 2);
    assert_int_equal (s_lines ("9999 more"), 1);
    assert_int_equal (s_lines ("(total 10000); last: dropped hello from 'ops/9999'"), 1);
    mesh_ratelog_tick (log);                //  nothing new: no line
    zclock_sleep (350);
    mesh_ratelog_tick (log);
    assert_int_equal (s_lines ("unauthenticated:"), 2);
    //  Quiet for an interval: the next one is logged at once again.
    mesh_ratelog_hit (log, "unauthenticated", "again");
    assert_int_equal (s_lines ("unauthenticated: again"), 1);

    //  Kinds are separate; counts are reported by kind.
    mesh_ratelog_hit (log, "bad_auth", "wrong token");
    mesh_ratelog_hit (log, "bad_auth", "wrong token");
    assert_int_equal (s_lines ("bad_auth:"), 1);
    json_t *counts = mesh_ratelog_counts (log);
    assert_int_equal (json_integer_value (json_object_get (counts, "unauthenticated")), 10001);
    assert_int_equal (json_integer_value (json_object_get (counts, "bad_auth")), 2);
    assert_int_equal (json_object_size (counts), 2);
    json_decref (counts);
    assert_int_equal (mesh_ratelog_total (log, "never"), 0);
    mesh_ratelog_destroy (&log);
    assert_null (log);
    mesh_ratelog_destroy (&log);
    mesh_ratelog_destroy (NULL);
}

static void
test_many_kinds_are_bounded (void **state)
{
    static const char *kinds[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9",
                                  "k10", "k11", "k12", "k13", "k14", "k15", "k16", "k17"};
    mesh_ratelog_t *log = mesh_ratelog_new (10000);
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        mesh_ratelog_hit (log, kinds[i], "x");
    json_t *counts = mesh_ratelog_counts (log);
    assert_int_equal (json_object_size (counts), 16);      //  the last slot pools the rest
    json_decref (counts);
    mesh_ratelog_destroy (&log);
}

int
main (void)
{
    snprintf (s_path, sizeof s_path, "/tmp/test_ratelog.XXXXXX");
    int fd = mkstemp (s_path);
    if (fd < 0)
        return 1;
    int saved = dup (STDERR_FILENO);
    dup2 (fd, STDERR_FILENO);
    close (fd);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_flood_is_two_lines),
        cmocka_unit_test (test_many_kinds_are_bounded),
    };
    int rc = cmocka_run_group_tests_name ("ratelog", tests, NULL, NULL);
    dup2 (saved, STDERR_FILENO);
    if (rc != 0) {                          //  cmocka's failure details went to the file
        FILE *file = fopen (s_path, "r");
        char line[4096];
        while (file && fgets (line, sizeof line, file))
            fputs (line, stderr);
        if (file)
            fclose (file);
    }
    unlink (s_path);
    return rc;
}
