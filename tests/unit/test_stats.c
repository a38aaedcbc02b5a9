/*  test_stats - `meshctl audit stats` (audit/stats.c): counts, tokens, waste by cause,
 *  latency percentiles, rule refusals, groups, the time window and the three formats.
 *
 *  The logs are plain JSON lines: the views read records without checking the chain
 *  (test_audit.c covers that), so these tests write only the fields that matter.
 */
#include "audit.h"
#include "audit_cli.h"
#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_dir[64], s_path[128];

static int
s_setup (void **state)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/test_stats.XXXXXX");
    if (!mkdtemp (s_dir))
        return -1;
    snprintf (s_path, sizeof s_path, "%s/decisions.jsonl", s_dir);
    return 0;
}

static int
s_teardown (void **state)
{
    unlink (s_path);
    rmdir (s_dir);
    return 0;
}

static void
s_write (const char *text)
{
    FILE *file = fopen (s_path, "w");
    assert_non_null (file);
    fputs (text, file);
    fclose (file);
}

//  Run stats with O and return what it printed (caller frees); *rc_p its return.
static char *
s_run (mesh_audit_cli_t o, int *rc_p)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream (&text, &len);
    o.log = s_path;
    *rc_p = mesh_audit_stats_cli (&o, out);
    fclose (out);
    return text;
}

static json_t *
s_run_json (mesh_audit_cli_t o)
{
    int rc;
    o.json = true;
    char *text = s_run (o, &rc);
    assert_int_equal (rc, 0);
    json_t *res = json_loads (text, 0, NULL);
    assert_non_null (res);
    free (text);
    return res;
}

static json_int_t
s_int (json_t *o, const char *path)
{
    //  "a.b.c"
    char key[64];
    const char *p = path;
    while (o && *p) {
        size_t n = strcspn (p, ".");
        snprintf (key, sizeof key, "%.*s", (int) n, p);
        o = json_object_get (o, key);
        p += n + (p[n] == '.');
    }
    if (!json_is_integer (o))
        fail_msg ("%s is not an integer", path);
    return json_integer_value (o);
}

//  Four decisions and an outcome: one accepted after an escalation, one refused by the
//  gates, one stopped by the budget, one whose model timed out.
static const char *s_log =
    "{\"seq\":1,\"ts\":1000,\"type\":\"decision\",\"id\":\"d1\",\"agent\":\"a\","
    "\"verdict\":\"accepted\",\"fallback\":false,\"action\":{\"name\":\"restart\"},"
    "\"tokens\":100,\"attempts\":["
    "{\"backend\":\"small\",\"charged\":40,\"latency_ms\":10,\"accepted\":false,"
    "\"escalated\":\"rejected\",\"verdicts\":[{\"rule\":\"builtin\",\"verdict\":\"accept\"},"
    "{\"rule\":\"floor\",\"verdict\":\"reject\",\"reason\":\"low\"}]},"
    "{\"backend\":\"big\",\"charged\":60,\"latency_ms\":100,\"accepted\":true,"
    "\"verdicts\":[{\"rule\":\"builtin\",\"verdict\":\"accept\"},"
    "{\"rule\":\"floor\",\"verdict\":\"accept\"}]}]}\n"
    "{\"seq\":2,\"ts\":1500,\"type\":\"outcome\",\"id\":\"d1\",\"status\":\"done\"}\n"
    "not json\n"
    "{\"seq\":3,\"ts\":2000,\"type\":\"decision\",\"id\":\"d2\",\"agent\":\"b,\\\"x\\\"\","
    "\"verdict\":\"rejected\",\"fallback\":true,\"action\":{\"name\":\"escalate\"},"
    "\"tokens\":50,\"attempts\":[{\"backend\":\"small\",\"charged\":50,\"latency_ms\":20,"
    "\"accepted\":false,\"error\":\"rule_reject\",\"verdicts\":[{\"rule\":\"builtin\","
    "\"verdict\":\"reject\",\"reason\":\"no\"}]}]}\n"
    "{\"seq\":4,\"ts\":3000,\"type\":\"decision\",\"id\":\"d3\",\"agent\":\"a\","
    "\"verdict\":\"budget_exhausted\",\"fallback\":true,\"tokens\":0,\"attempts\":[]}\n"
    "{\"seq\":5,\"ts\":4000,\"type\":\"decision\",\"id\":\"d4\",\"agent\":\"a\","
    "\"verdict\":\"model_failed\",\"fallback\":true,\"tokens\":30,\"attempts\":["
    "{\"backend\":\"big\",\"charged\":30,\"latency_ms\":5000,\"error\":\"model_timeout\","
    "\"accepted\":false}]}\n"
    "{\"seq\":6,\"ts\":4500,\"type\":\"decision\"}\n";

static void
test_totals_and_waste (void **state)
{
    s_write (s_log);
    json_t *res = s_run_json ((mesh_audit_cli_t) {0});
    json_t *t = json_object_get (res, "total");
    assert_int_equal (s_int (t, "decisions"), 5);
    assert_int_equal (s_int (t, "verdicts.accepted"), 1);
    assert_int_equal (s_int (t, "verdicts.rejected"), 1);
    assert_int_equal (s_int (t, "verdicts.budget_exhausted"), 1);
    assert_int_equal (s_int (t, "verdicts.model_failed"), 1);
    assert_int_equal (s_int (t, "verdicts.other"), 1);          //  the one with no verdict
    assert_int_equal (s_int (t, "fallback"), 3);
    assert_int_equal (s_int (t, "attempts"), 4);
    assert_int_equal (s_int (t, "tokens"), 180);
    assert_true (json_real_value (json_object_get (t, "tokens_per_accepted")) == 180.0);
    assert_int_equal (s_int (t, "waste"), 120);
    assert_int_equal (s_int (t, "waste_by_cause.rejected"), 50);
    assert_int_equal (s_int (t, "waste_by_cause.model_failed"), 30);
    assert_int_equal (s_int (t, "waste_by_cause.budget_exhausted"), 0);
    assert_int_equal (s_int (t, "waste_by_cause.escalated"), 40);
    assert_int_equal (s_int (t, "waste_by_cause.retried"), 0);
    assert_int_equal (s_int (t, "latency_ms.calls"), 4);
    assert_int_equal (s_int (t, "refusals"), 2);
    assert_int_equal (s_int (res, "rule_refusals.floor"), 1);
    assert_int_equal (s_int (res, "rule_refusals.builtin"), 1);
    assert_int_equal (s_int (res, "outcomes.done"), 1);
    assert_null (json_object_get (res, "groups"));
    json_decref (res);

    //  The human form says the same.
    int rc;
    char *text = s_run ((mesh_audit_cli_t) {0}, &rc);
    assert_int_equal (rc, 0);
    assert_non_null (strstr (text, "decisions      5: accepted 1, rejected 1"));
    assert_non_null (strstr (text, "per accepted decision 180.0"));
    assert_non_null (strstr (text, "waste          120 tokens: rejected 50, model_failed 30"));
    assert_non_null (strstr (text, "rule refusals  floor 1, builtin 1"));
    free (text);
}

static void
test_groups_and_window (void **state)
{
    s_write (s_log);
    //  By backend: a decision counts in every backend it called, with those calls only.
    json_t *res = s_run_json ((mesh_audit_cli_t) {.by = "backend"});
    json_t *groups = json_object_get (res, "groups");
    assert_int_equal (json_array_size (groups), 2);
    json_t *small = json_array_get (groups, 0), *big = json_array_get (groups, 1);
    assert_string_equal (json_string_value (json_object_get (small, "group")), "small");
    assert_int_equal (s_int (small, "decisions"), 2);
    assert_int_equal (s_int (small, "tokens"), 90);
    assert_int_equal (s_int (small, "waste_by_cause.escalated"), 40);
    assert_int_equal (s_int (big, "decisions"), 2);
    assert_int_equal (s_int (big, "tokens"), 90);
    assert_int_equal (s_int (big, "latency_ms.calls"), 2);
    json_decref (res);

    //  By rule: each rule's own refusals.
    res = s_run_json ((mesh_audit_cli_t) {.by = "rule"});
    groups = json_object_get (res, "groups");
    assert_int_equal (json_array_size (groups), 2);
    assert_string_equal (json_string_value (json_object_get (json_array_get (groups, 1), "group")),
                         "floor");
    assert_int_equal (s_int (json_array_get (groups, 1), "refusals"), 1);
    assert_int_equal (s_int (json_array_get (groups, 1), "decisions"), 1);
    json_decref (res);

    //  By verdict, in a window: since inclusive, until exclusive.
    res = s_run_json ((mesh_audit_cli_t) {.by = "verdict", .since_ms = 2000, .until_ms = 4000});
    assert_int_equal (s_int (res, "total.decisions"), 2);
    assert_int_equal (s_int (res, "since_ms"), 2000);
    groups = json_object_get (res, "groups");
    assert_int_equal (json_array_size (groups), 2);
    assert_string_equal (json_string_value (json_object_get (json_array_get (groups, 0), "group")),
                         "rejected");
    assert_int_equal (s_int (res, "outcomes.done"), 0);
    json_decref (res);

    //  CSV by agent: a header and one row per group, RFC 4180 quoting.
    int rc;
    char *text = s_run ((mesh_audit_cli_t) {.by = "agent", .csv = true}, &rc);
    assert_int_equal (rc, 0);
    assert_true (strncmp (text, "group,decisions,accepted,", 25) == 0);
    assert_non_null (strstr (text, "\r\na,3,1,0,1,1,0,2,3,130,130.0,70,0,30,0,40,0,0,3,"));
    assert_non_null (strstr (text, "\r\n\"b,\"\"x\"\"\",1,0,1,0,0,0,1,1,50,,50,50,"));
    assert_non_null (strstr (text, "\r\n-,1,0,0,0,0,1,"));     //  no agent: "-"
    int rows = 0;
    for (char *p = text; (p = strstr (p, "\r\n")); p += 2)
        rows++;
    assert_int_equal (rows, 1 + 3);
    free (text);

    //  Without --by the CSV has one row, "all".
    text = s_run ((mesh_audit_cli_t) {.csv = true}, &rc);
    assert_non_null (strstr (text, "\r\nall,5,1,1,1,1,1,3,4,180,180.0,120,"));
    free (text);

    //  The human table names the key.
    text = s_run ((mesh_audit_cli_t) {.by = "action"}, &rc);
    assert_non_null (strstr (text, "\nACTION "));
    assert_non_null (strstr (text, "\nrestart "));
    free (text);
}

static void
test_percentiles (void **state)
{
    //  One decision with 100 calls of 1..100 ms, one with 10 calls of 1..10 ms.
    char *log = NULL;
    size_t len = 0;
    FILE *f = open_memstream (&log, &len);
    fprintf (f, "{\"ts\":1,\"type\":\"decision\",\"agent\":\"wide\",\"verdict\":\"accepted\","
                "\"attempts\":[");
    for (int i = 1; i <= 100; i++)
        fprintf (f, "%s{\"backend\":\"x\",\"charged\":1,\"latency_ms\":%d}", i > 1 ? "," : "",
                 101 - i);
    fprintf (f, "]}\n{\"ts\":2,\"type\":\"decision\",\"agent\":\"narrow\",\"verdict\":"
                "\"accepted\",\"attempts\":[");
    for (int i = 1; i <= 10; i++)
        fprintf (f, "%s{\"latency_ms\":%d}", i > 1 ? "," : "", i);
    fprintf (f, ",{\"latency_ms\":-3},{\"latency_ms\":\"slow\"}]}\n");
    fclose (f);
    s_write (log);
    free (log);
    json_t *res = s_run_json ((mesh_audit_cli_t) {.by = "agent"});
    json_t *wide = json_array_get (json_object_get (res, "groups"), 0);
    json_t *narrow = json_array_get (json_object_get (res, "groups"), 1);
    static const int ps[] = {50, 90, 99};
    static const char *names[] = {"latency_ms.p50", "latency_ms.p90", "latency_ms.p99"};
    for (int i = 0; i < 3; i++) {
        double got = (double) s_int (wide, names[i]);
        double want = ps[i];        //  nearest rank of 1..100
        assert_true (got >= want * (1 - 1.0 / 32) && got <= want * (1 + 1.0 / 32));
    }
    //  Exact below 16 ms; values that are not latencies are left out.
    assert_int_equal (s_int (narrow, "latency_ms.calls"), 10);
    assert_int_equal (s_int (narrow, "latency_ms.p50"), 5);
    assert_int_equal (s_int (narrow, "latency_ms.p90"), 9);
    assert_int_equal (s_int (narrow, "latency_ms.p99"), 10);
    assert_int_equal (s_int (res, "total.latency_ms.calls"), 110);
    json_decref (res);

    //  No calls at all: null percentiles, not zeros.
    s_write ("{\"ts\":1,\"type\":\"decision\"}\n");
    res = s_run_json ((mesh_audit_cli_t) {0});
    assert_true (json_is_null (json_object_get (
        json_object_get (json_object_get (res, "total"), "latency_ms"), "p50")));
    assert_true (json_is_null (json_object_get (json_object_get (res, "total"),
                                                "tokens_per_accepted")));
    json_decref (res);
}

static void
test_group_cap (void **state)
{
    //  More agents than groups: the rest go to "other".
    FILE *f = fopen (s_path, "w");
    for (int i = 0; i < 1100; i++)
        fprintf (f, "{\"ts\":1,\"type\":\"decision\",\"agent\":\"agent-%d\",\"tokens\":1}\n", i);
    fclose (f);
    json_t *res = s_run_json ((mesh_audit_cli_t) {.by = "agent"});
    json_t *groups = json_object_get (res, "groups");
    assert_int_equal (json_array_size (groups), 1025);
    json_t *other = json_array_get (groups, 1024);
    assert_string_equal (json_string_value (json_object_get (other, "group")), "other");
    assert_int_equal (s_int (other, "decisions"), 1100 - 1024);
    assert_int_equal (s_int (res, "total.tokens"), 1100);
    json_decref (res);
}

static void
test_usage_errors (void **state)
{
    s_write (s_log);
    int rc;
    char *text = s_run ((mesh_audit_cli_t) {.by = "colour"}, &rc);
    assert_int_equal (rc, 64);
    assert_string_equal (text, "");
    free (text);
    text = s_run ((mesh_audit_cli_t) {.json = true, .csv = true}, &rc);
    assert_int_equal (rc, 64);
    free (text);
    text = s_run ((mesh_audit_cli_t) {.since_ms = 5000, .until_ms = 4000}, &rc);
    assert_int_equal (rc, 64);
    free (text);
    char *argv[] = {"extra"};
    text = s_run ((mesh_audit_cli_t) {.argc = 1, .argv = argv}, &rc);
    assert_int_equal (rc, 64);
    free (text);
    unlink (s_path);
    text = s_run ((mesh_audit_cli_t) {0}, &rc);
    assert_int_equal (rc, 2);
    free (text);
}

int
main (void)
{
    if (!getenv ("MESH_LOG_LEVEL"))
        mesh_log_set_level (MESH_LOG_ERR - 1);      //  the failure paths log on purpose
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_totals_and_waste, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_groups_and_window, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_percentiles, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_group_cap, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_usage_errors, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name ("stats", tests, NULL, NULL);
}
