/*  test_silence - matchers (equality, inequality, regex, negated regex, missing fields),
 *  RFC 3339 times and durations, a set's add/match/expire/prune and its JSON, the file
 *  (round trip, a file that does not parse keeps the set, a bad entry is skipped,
 *  refresh follows changes and removal), and `meshctl silence add|list|expire`.
 *
 *  Usage example: an agent keeps a set, refreshes it from state_dir/silences.json
 *  every second, and asks mesh_silences_match with a callback that reads a field of
 *  the point and the wall clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "silence.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WALL 1800000000000LL            //  2027-01-15T08:00:00Z
#define SEC 1000LL

static char s_dir[64];

static int
s_rm (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove (path);
}

static int
s_setup (void **state)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/test_silence.XXXXXX");
    return mkdtemp (s_dir) ? 0 : -1;
}

static int
s_teardown (void **state)
{
    return nftw (s_dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
}

//  A point: NULL-terminated name, value pairs.
static const char *
s_field (void *arg, const char *name)
{
    const char **kv = arg;
    for (; kv[0]; kv += 2)
        if (!strcmp (kv[0], name))
            return kv[1];
    return NULL;
}

static void
test_matcher_syntax (void **state)
{
    char why[256];
    const char *good[] = { "host=web-1", "host!=web-1", "metric=~cpu.*", "metric!~(cpu|mem)",
                           "host=", "region=eu=west", "a.b-c_d=x" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal (mesh_silence_matcher_check (good[i], why, sizeof why), 0);
    const char *bad[] = { "host", "=web-1", "~x", "metric=~(cpu", "host=a\nb" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = 0;
        assert_int_equal (mesh_silence_matcher_check (bad[i], why, sizeof why), -1);
        assert_true (strlen (why) > 0);
    }
    mesh_silence_matcher_check ("metric=~(cpu", why, sizeof why);
    assert_non_null (strstr (why, "regular expression"));
    assert_true (mesh_silence_matcher_matches_empty ("host="));
    assert_true (mesh_silence_matcher_matches_empty ("host!=web-1"));
    assert_true (mesh_silence_matcher_matches_empty ("host=~.*"));
    assert_false (mesh_silence_matcher_matches_empty ("host=web-1"));
    assert_false (mesh_silence_matcher_matches_empty ("host=~.+"));
}

static void
test_times_and_durations (void **state)
{
    int64_t ms;
    assert_int_equal (mesh_silence_parse_time ("2027-01-15T08:00:00Z", &ms), 0);
    assert_int_equal (ms, WALL);
    assert_int_equal (mesh_silence_parse_time ("2027-01-15T10:00:00+02:00", &ms), 0);
    assert_int_equal (ms, WALL);
    assert_int_equal (mesh_silence_parse_time ("2027-01-15t07:30:00.250-00:30", &ms), 0);
    assert_int_equal (ms, WALL + 250);
    assert_int_equal (mesh_silence_parse_time ("1969-12-31T23:59:59Z", &ms), 0);
    assert_int_equal (ms, -1000);
    const char *bad[] = { "", "2027-01-15", "2027-01-15T08:00:00", "2027-02-30T00:00:00Z",
                          "2027-13-01T00:00:00Z", "2027-01-15T08:00:00Zjunk",
                          "2027-01-15T08:00:00.Z", "yesterday" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal (mesh_silence_parse_time (bad[i], &ms), -1);
    char buf[40];
    mesh_silence_format_time (WALL, buf, sizeof buf);
    assert_string_equal (buf, "2027-01-15T08:00:00Z");
    mesh_silence_format_time (WALL + 5, buf, sizeof buf);
    assert_string_equal (buf, "2027-01-15T08:00:00.005Z");

    assert_int_equal (mesh_silence_parse_duration ("2h", &ms), 0);
    assert_int_equal (ms, 2 * 3600 * SEC);
    assert_int_equal (mesh_silence_parse_duration ("1h30m", &ms), 0);
    assert_int_equal (ms, 5400 * SEC);
    assert_int_equal (mesh_silence_parse_duration ("90s", &ms), 0);
    assert_int_equal (ms, 90 * SEC);
    assert_int_equal (mesh_silence_parse_duration ("1w1d500ms", &ms), 0);
    assert_int_equal (ms, 8 * 86400 * SEC + 500);
    const char *bad_d[] = { "", "2", "h", "0s", "-1h", "2x", "1h 30m", "999999999d" };
    for (size_t i = 0; i < sizeof bad_d / sizeof bad_d[0]; i++)
        assert_int_equal (mesh_silence_parse_duration (bad_d[i], &ms), -1);
}

static void
test_set_match_expire_prune (void **state)
{
    mesh_silences_t *set = mesh_silences_new ();
    assert_non_null (set);
    char why[256];
    const char *m1[] = { "host=web-1" };
    const char *m2[] = { "metric=~cpu.*", "host!~db-.*" };
    const char *m3[] = { "host=web-9" };
    assert_non_null (mesh_silences_add (set, "one", m1, 1, 0, 0, NULL, 0, why, sizeof why));
    assert_non_null (mesh_silences_add (set, "two", m2, 2, WALL, WALL + 3600 * SEC, "noisy",
                                        WALL, why, sizeof why));
    //  Starts in an hour: pending until then.
    assert_non_null (mesh_silences_add (set, "three", m3, 1, WALL + 3600 * SEC, 0, NULL, WALL,
                                        why, sizeof why));
    //  Refused: a duplicate id, no matcher, a bad matcher, one that mutes everything,
    //  an end before the start, a bad id.
    assert_null (mesh_silences_add (set, "one", m1, 1, 0, 0, NULL, 0, why, sizeof why));
    assert_non_null (strstr (why, "exists"));
    assert_null (mesh_silences_add (set, "x", m1, 0, 0, 0, NULL, 0, why, sizeof why));
    const char *badm[] = { "host=~(" };
    assert_null (mesh_silences_add (set, "x", badm, 1, 0, 0, NULL, 0, why, sizeof why));
    const char *empty[] = { "host!=web-1", "metric=~.*" };
    assert_null (mesh_silences_add (set, "x", empty, 2, 0, 0, NULL, 0, why, sizeof why));
    assert_non_null (strstr (why, "mute everything"));
    assert_null (mesh_silences_add (set, "x", m1, 1, WALL, WALL, NULL, 0, why, sizeof why));
    assert_null (mesh_silences_add (set, "a b", m1, 1, 0, 0, NULL, 0, why, sizeof why));
    //  A fresh id when none is given.
    const char *fresh = mesh_silences_add (set, NULL, m1, 1, 0, WALL - SEC, NULL, 0, why,
                                           sizeof why);
    assert_non_null (fresh);
    assert_int_equal (strlen (fresh), 16);
    assert_int_equal (mesh_silences_size (set), 4);
    assert_int_equal (mesh_silences_active (set, WALL), 2);

    const char *web1[] = { "host", "web-1", "metric", "disk", NULL };
    const char *cpu[] = { "host", "web-2", "metric", "cpu_user", NULL };
    const char *dbcpu[] = { "host", "db-1", "metric", "cpu", NULL };
    const char *xcpu[] = { "host", "web-2", "metric", "xcpu", NULL };
    const char *nohost[] = { "metric", "cpu", NULL };
    const char *web9[] = { "host", "web-9", NULL };
    assert_string_equal (mesh_silences_match (set, s_field, web1, WALL), "one");
    assert_string_equal (mesh_silences_match (set, s_field, cpu, WALL), "two");
    assert_null (mesh_silences_match (set, s_field, dbcpu, WALL));      //  !~ excludes db-*
    assert_null (mesh_silences_match (set, s_field, xcpu, WALL));       //  anchored regex
    //  A missing field reads as empty: "" !~ db-.* holds.
    assert_string_equal (mesh_silences_match (set, s_field, nohost, WALL), "two");
    //  Time windows: two ends, three starts.
    assert_null (mesh_silences_match (set, s_field, cpu, WALL - 1));
    assert_null (mesh_silences_match (set, s_field, cpu, WALL + 3600 * SEC));
    assert_null (mesh_silences_match (set, s_field, web9, WALL));
    assert_string_equal (mesh_silences_match (set, s_field, web9, WALL + 3600 * SEC), "three");

    json_t *list = mesh_silences_json (set, WALL);
    assert_int_equal (json_array_size (list), 4);
    json_t *two = json_array_get (list, 1);
    assert_string_equal (json_string_value (json_object_get (two, "state")), "active");
    assert_string_equal (json_string_value (json_object_get (two, "ends_at")),
                         "2027-01-15T09:00:00Z");
    assert_string_equal (json_string_value (json_object_get (two, "comment")), "noisy");
    assert_true (json_is_null (json_object_get (json_array_get (list, 0), "ends_at")));
    assert_string_equal (json_string_value (json_object_get (json_array_get (list, 2),
                                                             "state")), "pending");
    assert_string_equal (json_string_value (json_object_get (json_array_get (list, 3),
                                                             "state")), "expired");
    json_decref (list);

    //  Expire by a unique prefix; an ambiguous or unknown one is refused.
    assert_int_equal (mesh_silences_expire (set, "t", WALL, why, sizeof why), -1);
    assert_non_null (strstr (why, "2 silences"));
    assert_int_equal (mesh_silences_expire (set, "nope", WALL, why, sizeof why), -1);
    assert_int_equal (mesh_silences_expire (set, "tw", WALL + 10 * SEC, why, sizeof why), 0);
    assert_null (mesh_silences_match (set, s_field, cpu, WALL + 10 * SEC));
    assert_int_equal (mesh_silences_expire (set, "two", WALL + 20 * SEC, why, sizeof why), -1);
    assert_non_null (strstr (why, "already ended"));
    //  A pending silence expires without ever starting.
    assert_int_equal (mesh_silences_expire (set, "three", WALL, why, sizeof why), 0);
    assert_null (mesh_silences_match (set, s_field, web9, WALL + 3600 * SEC));
    //  Prune: ended more than a minute ago (two, three and the fresh one); "one" stays.
    assert_int_equal (mesh_silences_prune (set, WALL + 30 * SEC, 60 * SEC), 0);
    assert_int_equal (mesh_silences_prune (set, WALL + 100 * SEC, 60 * SEC), 3);
    assert_int_equal (mesh_silences_size (set), 1);
    assert_string_equal (mesh_silences_match (set, s_field, web1, WALL + 100 * SEC), "one");
    mesh_silences_destroy (&set);
    assert_null (set);
    mesh_silences_destroy (&set);
}

static void
test_file_round_trip_and_refresh (void **state)
{
    char path[128];
    snprintf (path, sizeof path, "%s/silences.json", s_dir);
    mesh_silences_t *set = mesh_silences_new ();
    mesh_silences_t *reader = mesh_silences_new ();
    char why[256];
    //  No file: an empty set, nothing to refresh.
    assert_int_equal (mesh_silences_load (reader, path), 0);
    assert_int_equal (mesh_silences_refresh (reader, path), 0);
    const char *m[] = { "host=web-1", "metric=~cpu.*" };
    assert_non_null (mesh_silences_add (set, "abc", m, 2, WALL, WALL + 60 * SEC, "deploy", WALL,
                                        why, sizeof why));
    assert_int_equal (mesh_silences_save (set, path), 0);
    assert_int_equal (mesh_silences_refresh (reader, path), 1);
    assert_int_equal (mesh_silences_refresh (reader, path), 0);         //  unchanged
    assert_int_equal (mesh_silences_size (reader), 1);
    const char *p[] = { "host", "web-1", "metric", "cpu", NULL };
    assert_string_equal (mesh_silences_match (reader, s_field, p, WALL + SEC), "abc");
    json_t *a = mesh_silences_json (set, WALL), *b = mesh_silences_json (reader, WALL);
    assert_true (json_equal (a, b));
    json_decref (a);
    json_decref (b);

    //  A file that does not parse: the set stays as it was.
    FILE *f = fopen (path, "w");
    fputs ("{\"silences\": [", f);
    fclose (f);
    assert_int_equal (mesh_silences_refresh (reader, path), -1);
    assert_int_equal (mesh_silences_size (reader), 1);
    //  A bad entry is skipped, the good one kept.
    f = fopen (path, "w");
    fputs ("{\"version\": 1, \"silences\": ["
           "{\"id\": \"bad\", \"matchers\": [\"host=~(\"]},"
           "{\"id\": \"late\", \"matchers\": [\"host=web-1\"], \"ends_at\": \"tomorrow\"},"
           "{\"id\": \"good\", \"matchers\": [\"host=web-2\"], \"starts_at\": null,"
           " \"ends_at\": \"2027-01-15T09:00:00Z\"}]}", f);
    fclose (f);
    assert_int_equal (mesh_silences_load (reader, path), 0);
    assert_int_equal (mesh_silences_size (reader), 1);
    const char *w2[] = { "host", "web-2", NULL };
    assert_string_equal (mesh_silences_match (reader, s_field, w2, WALL), "good");
    //  Removed: the run-time silences are gone.
    assert_int_equal (mesh_silences_refresh (reader, path), 1);
    unlink (path);
    assert_int_equal (mesh_silences_refresh (reader, path), 1);
    assert_int_equal (mesh_silences_size (reader), 0);
    //  The lock is a plain exclusive lock beside the file.
    int fd = mesh_silences_lock (path);
    assert_true (fd >= 0);
    mesh_silences_unlock (fd);
    char bad[160];
    snprintf (bad, sizeof bad, "%s/missing/silences.json", s_dir);
    assert_int_equal (mesh_silences_lock (bad), -1);
    assert_int_equal (mesh_silences_save (set, bad), -1);
    mesh_silences_destroy (&set);
    mesh_silences_destroy (&reader);
}

//  Run `meshctl --state-dir DIR ARGS...`, output into OUT (a buffer).
static int
s_cli (char *out, size_t size, const char *args)
{
    char line[512];
    snprintf (line, sizeof line, "meshctl --state-dir %s %s", s_dir, args);
    char *argv[32];
    int argc = 0;
    for (char *tok = strtok (line, " "); tok && argc < 31; tok = strtok (NULL, " "))
        argv[argc++] = tok;
    argv[argc] = NULL;
    FILE *o = fmemopen (out, size, "w");
    FILE *e = fopen ("/dev/null", "w");
    int rc = mesh_silences_cli (argc, argv, o, e);
    fclose (o);
    fclose (e);
    return rc;
}

static void
test_meshctl_silence (void **state)
{
    char out[4096];
    assert_int_equal (s_cli (out, sizeof out, "silence list"), 0);
    assert_non_null (strstr (out, "no silences"));
    assert_int_equal (s_cli (out, sizeof out, "silence add --match host=web-1 "
                                              "--match metric=~cpu.* --for 2h --comment deploy"),
                      0);
    assert_non_null (strstr (out, "added"));
    assert_int_equal (s_cli (out, sizeof out, "--json silence add --match=host=web-2 "
                                              "--until 2999-01-01T00:00:00Z"), 0);
    json_t *added = json_loads (out, 0, NULL);
    assert_non_null (added);
    char id[32];
    snprintf (id, sizeof id, "%s", json_string_value (json_object_get (added, "id")));
    json_decref (added);
    assert_int_equal (strlen (id), 16);

    assert_int_equal (s_cli (out, sizeof out, "--json silence list"), 0);
    json_t *list = json_loads (out, 0, NULL);
    assert_int_equal (json_array_size (list), 2);
    json_t *first = json_array_get (list, 0);
    assert_string_equal (json_string_value (json_object_get (first, "state")), "active");
    assert_string_equal (json_string_value (json_array_get (json_object_get (first, "matchers"),
                                                            1)), "metric=~cpu.*");
    json_decref (list);
    assert_int_equal (s_cli (out, sizeof out, "silence list"), 0);
    assert_non_null (strstr (out, "host=web-1 metric=~cpu.*"));
    assert_non_null (strstr (out, "(deploy)"));

    //  The file is what agents read.
    char path[128];
    snprintf (path, sizeof path, "%s/silences.json", s_dir);
    mesh_silences_t *set = mesh_silences_new ();
    assert_int_equal (mesh_silences_load (set, path), 0);
    assert_int_equal (mesh_silences_size (set), 2);
    mesh_silences_destroy (&set);

    char args[96];
    snprintf (args, sizeof args, "silence expire %.6s", id);       //  a prefix will do
    assert_int_equal (s_cli (out, sizeof out, args), 0);
    assert_int_equal (s_cli (out, sizeof out, args), 1);           //  already ended
    assert_int_equal (s_cli (out, sizeof out, "silence expire nosuch"), 1);
    assert_int_equal (s_cli (out, sizeof out, "--json silence list"), 0);
    list = json_loads (out, 0, NULL);
    assert_int_equal (json_array_size (list), 1);
    json_decref (list);
    assert_int_equal (s_cli (out, sizeof out, "--json silence list --all"), 0);
    list = json_loads (out, 0, NULL);
    assert_int_equal (json_array_size (list), 2);
    json_decref (list);

    //  Usage errors.
    const char *usage[] = {
        "silence", "silence frob", "silence add --for 2h", "silence add --match host=a",
        "silence add --match host=a --for 2h --until 2999-01-01T00:00:00Z",
        "silence add --match host=a --for soon", "silence add --match host=~( --for 1h",
        "silence add --match host!=a --for 1h", "silence add --match host=a --for 1h extra",
        "silence expire", "silence list --match host=a", "silence add --match host=a "
        "--until 2001-01-01T00:00:00Z",
    };
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++)
        assert_int_equal (s_cli (out, sizeof out, usage[i]), 64);
    //  The command word, wherever the global options put it.
    char *cmd1[] = { "meshctl", "--json", "--config", "silence", "status", NULL };
    char *cmd2[] = { "meshctl", "--config=x.yaml", "silence", "list", NULL };
    char *cmd3[] = { "meshctl", "-c", "x.yaml", "--json", "silence", NULL };
    char *cmd4[] = { "meshctl", "audit", "list", "--agent", "silence", NULL };
    assert_false (mesh_silences_is_command (5, cmd1));
    assert_true (mesh_silences_is_command (4, cmd2));
    assert_true (mesh_silences_is_command (5, cmd3));
    assert_false (mesh_silences_is_command (5, cmd4));
    //  A config that does not load.
    char *argv[] = { "meshctl", "--config", "/nonexistent/meshd.yaml", "silence", "list", NULL };
    FILE *e = fopen ("/dev/null", "w");
    assert_int_equal (mesh_silences_cli (5, argv, e, e), 78);
    fclose (e);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_matcher_syntax),
        cmocka_unit_test (test_times_and_durations),
        cmocka_unit_test (test_set_match_expire_prune),
        cmocka_unit_test_setup_teardown (test_file_round_trip_and_refresh, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_meshctl_silence, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name ("silence", tests, NULL, NULL);
}
