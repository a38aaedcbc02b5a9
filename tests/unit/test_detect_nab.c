/*  test_detect_nab - the NAB scorer and runner (tools/mesh-nab.c, run as $B/mesh-nab).
 *
 *  Usage example: lay out a corpus in NAB's format (data/, labels/, results/),
 *  run `mesh-nab score ROOT RESULTS DETECTOR` and read "NAME standard low_fp low_fn
 *  threshold".  A hand-computed case pins the rules; the published detectors in
 *  ../shared/nab (when present) must score as the corpus README says.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_root[64];

static const char *
s_bin (void)
{
    static char path[512];
    const char *b = getenv ("B");
    snprintf (path, sizeof path, "%s/mesh-nab", b && *b ? b : "build");
    return path;
}

static void
s_write (const char *rel, const char *text)
{
    char path[512];
    snprintf (path, sizeof path, "%s/%s", s_root, rel);
    for (char *p = path + strlen (s_root) + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir (path, 0755);
            *p = '/';
        }
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fputs (text, f);
    assert_int_equal (fclose (f), 0);
}

//  Run the scorer; returns its exit status and the first line in LINE.
static int
s_score (const char *detector, char *line, size_t size)
{
    char cmd[1024];
    snprintf (cmd, sizeof cmd, "%s score %s %s/results %s 2>/dev/null", s_bin (), s_root,
              s_root, detector);
    FILE *p = popen (cmd, "r");
    assert_non_null (p);
    line[0] = 0;
    if (!fgets (line, (int) size, p))
        line[0] = 0;
    char rest[256];
    while (fgets (rest, sizeof rest, p))
        ;
    int status = pclose (p);
    return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

//  20 rows, a window on rows 10..13 (width 4), probation floor (0.15 * 20) = 3.
static void
s_corpus (const char *scores_name, const double *scores)
{
    char data[4096] = "timestamp,value\n", result[4096] = "timestamp,value,anomaly_score\n";
    for (int i = 0; i < 20; i++) {
        char row[128];
        snprintf (row, sizeof row, "2020-01-01 00:%02d:00,%d\n", i, i);
        strcat (data, row);
        snprintf (row, sizeof row, "2020-01-01 00:%02d:00,%d,%g\n", i, i, scores[i]);
        strcat (result, row);
    }
    s_write ("data/cat/f.csv", data);
    s_write ("labels/combined_windows.json",
             "{\"cat/f.csv\": [[\"2020-01-01 00:10:00.000000\", "
             "\"2020-01-01 00:13:00.000000\"]]}");
    char rel[256];
    snprintf (rel, sizeof rel, "results/%s/cat/%s_f.csv", scores_name, scores_name);
    s_write (rel, result);
}

static int
setup (void **state)
{
    snprintf (s_root, sizeof s_root, "/tmp/test_detect_nab.XXXXXX");
    assert_non_null (mkdtemp (s_root));
    return 0;
}

static int
teardown (void **state)
{
    char cmd[256];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_root);
    assert_int_equal (system (cmd), 0);
    return 0;
}

static void
test_hand_computed_case (void **state)
{
    if (access (s_bin (), X_OK)) {
        skip ();
        return;
    }
    //  Row 1 (probation: free, never a detection), row 11 (in the window), row 16
    //  (3 rows after the window: an FP of 0.11 sigma (3 / (4 - 1)) = -0.1085).
    double scores[20] = { 0 };
    scores[1] = 1.0;
    scores[11] = 0.9;
    scores[16] = 0.8;
    s_corpus ("hand", scores);
    char line[256];
    assert_int_equal (s_score ("hand", line, sizeof line), 0);
    char name[64];
    double std, low_fp, low_fn, threshold;
    assert_int_equal (sscanf (line, "%63s %lf %lf %lf %lf", name, &std, &low_fp, &low_fn,
                              &threshold), 5);
    //  TP at row 11: sigma (-(13 - 11 + 1) / 4) / sigma (-1) = 0.966989.
    //  standard: 100 (0.966989 + 1) / 2; low FN: 100 (0.966989 + 2) / 3.
    assert_string_equal (name, "hand");
    assert_true (fabs (std - 98.35) < 0.006);
    assert_true (fabs (low_fp - 98.35) < 0.006);
    assert_true (fabs (low_fn - 98.90) < 0.006);
    assert_true (threshold == 0.9);

    //  Only an FP above 0: the best threshold is 0, where every scored row detects:
    //  the window's first row (+1), rows 3..9 before any window (7 x -0.11) and rows
    //  14..19 after it (0.11 sigma (d / 3), d = 1..6: -0.6156), raw -0.3856.  With
    //  FPs at 0.22 detecting nothing (-1) is better.
    double none[20] = { 0 };
    none[16] = 0.8;
    s_corpus ("none", none);
    assert_int_equal (s_score ("none", line, sizeof line), 0);
    assert_int_equal (sscanf (line, "%63s %lf %lf %lf %lf", name, &std, &low_fp, &low_fn,
                              &threshold), 5);
    assert_true (fabs (std - 30.72) < 0.006);
    assert_true (low_fp == 0);
    assert_true (fabs (low_fn - 53.81) < 0.006);
    assert_true (threshold == 0);

    //  Detection at the window's first row: perfect.
    double first[20] = { 0 };
    first[10] = 0.5;
    s_corpus ("first", first);
    assert_int_equal (s_score ("first", line, sizeof line), 0);
    assert_int_equal (sscanf (line, "%63s %lf", name, &std), 2);
    assert_true (fabs (std - 100) < 1e-9);
}

static void
test_missing_or_short_results_fail (void **state)
{
    if (access (s_bin (), X_OK)) {
        skip ();
        return;
    }
    double scores[20] = { 0 };
    s_corpus ("ok", scores);
    char line[256];
    assert_int_equal (s_score ("absent", line, sizeof line), 1);
    s_write ("results/short/cat/short_f.csv", "timestamp,value,anomaly_score\nx,1,0\n");
    assert_int_equal (s_score ("short", line, sizeof line), 1);
}

//  The published detectors of the developer set score as published (README).
static void
test_reproduces_published_detectors (void **state)
{
    const char *nab = "../shared/nab";
    char probe[256];
    snprintf (probe, sizeof probe, "%s/results/numenta", nab);
    if (access (s_bin (), X_OK) || access (probe, R_OK)) {
        skip ();
        return;
    }
    char cmd[1024];         //  the binary's path (up to 511) and the rest
    snprintf (cmd, sizeof cmd, "%s score %s %s/results numenta knncad windowedGaussian",
              s_bin (), nab, nab);
    FILE *p = popen (cmd, "r");
    assert_non_null (p);
    static const struct {
        const char *name;
        double std, low_fp, low_fn;
    } expect[] = {
        { "numenta", 71.04, 64.68, 75.25 },
        { "knncad", 55.41, 39.37, 63.32 },
        { "windowedGaussian", 36.31, 19.35, 43.22 },
    };
    for (size_t i = 0; i < 3; i++) {
        char line[256], name[64];
        double std, low_fp, low_fn;
        assert_non_null (fgets (line, sizeof line, p));
        assert_int_equal (sscanf (line, "%63s %lf %lf %lf", name, &std, &low_fp, &low_fn), 4);
        assert_string_equal (name, expect[i].name);
        assert_true (fabs (std - expect[i].std) <= 0.05);
        assert_true (fabs (low_fp - expect[i].low_fp) <= 0.05);
        assert_true (fabs (low_fn - expect[i].low_fn) <= 0.05);
    }
    assert_int_equal (pclose (p), 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_hand_computed_case, setup, teardown),
        cmocka_unit_test_setup_teardown (test_missing_or_short_results_fail, setup, teardown),
        cmocka_unit_test (test_reproduces_published_detectors),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
