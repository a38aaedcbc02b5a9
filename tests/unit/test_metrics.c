/*  test_metrics - the Prometheus exposition of daemon/http/metrics.c.
 *
 *  Usage example: build a status tree as main.c does (daemon, agents with counters over
 *  two replicas, budget scopes, histograms), render it, and read the text: every metric of
 *  the table has its HELP and TYPE lines, counters are summed per agent, label values are
 *  escaped, histograms have cumulative _bucket lines ending in le="+Inf", _sum and _count.
 *  And docs/metrics.md lists exactly the table's metrics, with the same type and labels.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hist.h"
#include "metrics.h"
#include "version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *
s_status (void)
{
    mesh_hist_t gate = {0};
    mesh_hist_observe (&gate, 0.0004);  //  first bucket
    mesh_hist_observe (&gate, 0.003);   //  le 0.005
    mesh_hist_observe (&gate, 100);     //  above every bound
    json_t *hist = json_pack ("{so s{so}}", "gate_seconds", mesh_hist_json (&gate),
                              "model_call_seconds", "llm", mesh_hist_json (&gate));
    json_t *status = json_pack (
        "{s{sb ss sI sI s{si}} s[{ss ss si ss s{sI sI sI sI sI} si s{s{ss sI sI}} so"
        " s[{ss si sI}]}"
        " {ss ss si ss s{sI sI sI} si s{}}]"
        " s{sI s[{ss sI sI sI sI sf}]} s{sI sI sI}}",
        "daemon", "ready", 1, "storage", "up", "uptime_s", (json_int_t) 12, "ledger_seq",
        (json_int_t) 40, "dropped", "unauthenticated", 3,
        "agents",
        "name", "ops-0", "agent", "ops", "restarts", 1, "state", "running", "counters",
        "events", (json_int_t) 100, "accepted", (json_int_t) 4, "malformed_syntax",
        (json_int_t) 2, "suppressed_cooldown", (json_int_t) 5, "lag", (json_int_t) 9,
        "quarantined", 1, "backends", "llm", "state", "open", "calls", (json_int_t) 7,
        "failures", (json_int_t) 6, "hist", hist, "lag_partitions", "topic", "metrics",
        "partition", 3, "lag", (json_int_t) 9,
        "name", "ops-1", "agent", "ops", "restarts", 2, "state", "backoff", "counters",
        "events", (json_int_t) 50, "accepted", (json_int_t) 1, "malformed_syntax",
        (json_int_t) 1, "quarantined", 0, "backends",
        "budget", "reserved", (json_int_t) 30, "scopes", "scope", "agent:ops", "limit",
        (json_int_t) 1000, "used", (json_int_t) 400, "reserved", (json_int_t) 30, "remaining",
        (json_int_t) 570, "burn_per_min", 2.5,
        "http", "requests", (json_int_t) 5, "refused", (json_int_t) 1, "connections",
        (json_int_t) 6);
    assert_non_null (status);
    return status;
}

//  Rendered text for the standard status (caller frees).
static char *
s_render (mesh_metrics_t *metrics, json_t *status)
{
    size_t len = 0;
    char *text = mesh_metrics_render (metrics, status, "9.9.9", &len);
    assert_non_null (text);
    assert_int_equal (strlen (text), len);
    return text;
}

static bool
s_has_line (const char *text, const char *line)
{
    size_t n = strlen (line);
    for (const char *p = text; (p = strstr (p, line)); p += n)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

static void
test_every_metric_declared (void **state)
{
    mesh_metrics_t *metrics = mesh_metrics_new ();
    json_t *status = s_status ();
    char *text = s_render (metrics, status);
    assert_true (mesh_metrics_count () >= 30);
    for (size_t i = 0; i < mesh_metrics_count (); i++) {
        const mesh_metric_info_t *m = mesh_metrics_info (i);
        char line[512];
        assert_int_equal (strncmp (m->name, "meshd_", 6), 0);
        bool counter = !strcmp (m->type, "counter");
        size_t n = strlen (m->name);
        //  Naming conventions: counters end in _total, nothing else does.
        assert_true (counter == (n > 6 && !strcmp (m->name + n - 6, "_total")));
        snprintf (line, sizeof line, "# HELP %s %s", m->name, m->help);
        assert_true (s_has_line (text, line));
        snprintf (line, sizeof line, "# TYPE %s %s", m->name, m->type);
        assert_true (s_has_line (text, line));
    }
    assert_null (mesh_metrics_info (mesh_metrics_count ()));
    free (text);
    json_decref (status);
    mesh_metrics_destroy (&metrics);
}

static void
test_samples (void **state)
{
    mesh_metrics_t *metrics = mesh_metrics_new ();
    mesh_metrics_outcome (metrics, "scale_out", "done");
    mesh_metrics_outcome (metrics, "scale_out", "done");
    mesh_metrics_outcome (metrics, "scale_out", "no such status");
    mesh_metrics_outcome (metrics, "bad name\"{}", "failed");
    //  Bounded: a flood of distinct names ends in "other".
    for (int i = 0; i < 2000; i++) {
        char name[32];
        snprintf (name, sizeof name, "a%d", i);
        mesh_metrics_outcome (metrics, name, "done");
    }
    json_t *status = s_status ();
    char *text = s_render (metrics, status);
    assert_true (s_has_line (text, "meshd_action_outcomes_total{action=\"scale_out\",outcome=\"done\"} 2"));
    assert_true (s_has_line (text, "meshd_action_outcomes_total{action=\"scale_out\",outcome=\"other\"} 1"));
    assert_true (s_has_line (text, "meshd_action_outcomes_total{action=\"other\",outcome=\"failed\"} 1"));
    int series = 0;
    for (const char *p = text; (p = strstr (p, "\nmeshd_action_outcomes_total{")); p++)
        series++;
    assert_true (series <= 512);
    assert_non_null (strstr (text, "meshd_action_outcomes_total{action=\"other\",outcome=\"done\"} "));
    //  Summed over the agent's two replicas; one series per agent, not per instance.
    assert_true (s_has_line (text, "meshd_events_consumed_total{agent=\"ops\"} 150"));
    assert_null (strstr (text, "ops-0"));
    assert_true (s_has_line (text, "meshd_events_malformed_total{agent=\"ops\",reason=\"syntax\"} 3"));
    assert_true (s_has_line (text, "meshd_incidents_suppressed_total{agent=\"ops\",reason=\"cooldown\"} 5"));
    assert_true (s_has_line (text, "meshd_decisions_total{agent=\"ops\",verdict=\"accepted\"} 5"));
    assert_true (s_has_line (text, "meshd_decisions_total{agent=\"ops\",verdict=\"shed\"} 0"));
    assert_true (s_has_line (text, "meshd_agent_restarts_total{agent=\"ops\"} 3"));
    assert_true (s_has_line (text, "meshd_quarantined_messages{agent=\"ops\"} 1"));
    assert_true (s_has_line (text, "meshd_agent_instances{agent=\"ops\",state=\"running\"} 1"));
    assert_true (s_has_line (text, "meshd_agent_instances{agent=\"ops\",state=\"backoff\"} 1"));
    char build[128];
    snprintf (build, sizeof build,
              "meshd_build_info{version=\"9.9.9\",protocol=\"%d\",commit=\"%s\"} 1",
              MESH_PROTO_VERSION, mesh_version_commit ());
    assert_true (s_has_line (text, build));
    assert_true (s_has_line (text, "meshd_ready 1"));
    assert_true (s_has_line (text, "meshd_storage_up 1"));
    assert_true (s_has_line (text, "meshd_decision_log_records 40"));
    assert_true (s_has_line (text, "meshd_budget_remaining_tokens{scope=\"agent:ops\"} 570"));
    assert_true (s_has_line (text, "meshd_budget_burn_tokens_per_minute{scope=\"agent:ops\"} 2.5"));
    assert_true (s_has_line (text, "meshd_tokens_reserved 30"));
    assert_true (s_has_line (text, "meshd_backend_circuit_state{agent=\"ops\",backend=\"llm\",state=\"open\"} 1"));
    assert_true (s_has_line (text, "meshd_backend_circuit_state{agent=\"ops\",backend=\"llm\",state=\"closed\"} 0"));
    assert_true (s_has_line (text, "meshd_backend_failures_total{agent=\"ops\",backend=\"llm\"} 6"));
    assert_true (s_has_line (text, "meshd_consumer_lag_messages{agent=\"ops\",topic=\"metrics\",partition=\"3\"} 9"));
    assert_true (s_has_line (text, "meshd_dropped_messages_total{reason=\"unauthenticated\"} 3"));
    assert_true (s_has_line (text, "meshd_http_requests_total 5"));
    free (text);
    json_decref (status);
    mesh_metrics_destroy (&metrics);
}

static void
test_histograms (void **state)
{
    mesh_metrics_t *metrics = mesh_metrics_new ();
    mesh_metrics_ledger_fsync (metrics, 0.002);
    mesh_metrics_ledger_fsync (metrics, 0.02);
    json_t *status = s_status ();
    char *text = s_render (metrics, status);
    //  Cumulative buckets, +Inf last, equal to _count.
    assert_true (s_has_line (text, "meshd_ledger_fsync_seconds_bucket{le=\"0.001\"} 0"));
    assert_true (s_has_line (text, "meshd_ledger_fsync_seconds_bucket{le=\"0.0025\"} 1"));
    assert_true (s_has_line (text, "meshd_ledger_fsync_seconds_bucket{le=\"0.025\"} 2"));
    assert_true (s_has_line (text, "meshd_ledger_fsync_seconds_bucket{le=\"60\"} 2"));
    assert_true (s_has_line (text, "meshd_ledger_fsync_seconds_bucket{le=\"+Inf\"} 2"));
    assert_true (s_has_line (text, "meshd_ledger_fsync_seconds_count 2"));
    assert_true (s_has_line (text, "meshd_ledger_fsync_seconds_sum 0.022"));
    //  The agent's: 3 observations, one above every bound.
    assert_true (s_has_line (text, "meshd_gate_evaluation_seconds_bucket{agent=\"ops\",le=\"0.001\"} 1"));
    assert_true (s_has_line (text, "meshd_gate_evaluation_seconds_bucket{agent=\"ops\",le=\"0.005\"} 2"));
    assert_true (s_has_line (text, "meshd_gate_evaluation_seconds_bucket{agent=\"ops\",le=\"60\"} 2"));
    assert_true (s_has_line (text, "meshd_gate_evaluation_seconds_bucket{agent=\"ops\",le=\"+Inf\"} 3"));
    assert_true (s_has_line (text, "meshd_gate_evaluation_seconds_count{agent=\"ops\"} 3"));
    assert_true (s_has_line (text, "meshd_model_call_duration_seconds_count{agent=\"ops\",backend=\"llm\"} 3"));
    assert_true (s_has_line (text, "meshd_model_call_duration_seconds_bucket{agent=\"ops\",backend=\"llm\",le=\"+Inf\"} 3"));
    //  A histogram carried wrong is not added.
    mesh_hist_t h;
    json_t *bad = json_pack ("[iii]", 1, 2, 3);
    assert_int_equal (mesh_hist_from_json (&h, bad), -1);
    json_decref (bad);
    bad = mesh_hist_json (&(mesh_hist_t) {0});
    json_array_set_new (bad, 2, json_integer (-1));
    assert_int_equal (mesh_hist_from_json (&h, bad), -1);
    json_decref (bad);
    free (text);
    json_decref (status);
    mesh_metrics_destroy (&metrics);
}

static void
test_escaping (void **state)
{
    char out[64];
    mesh_metrics_escape ("a\"b\\c\nd", out, sizeof out);
    assert_string_equal (out, "a\\\"b\\\\c\\nd");
    mesh_metrics_escape ("abcdefgh", out, 5);
    assert_true (strlen (out) < 5);
    //  An agent name with the three characters, rendered escaped.
    mesh_metrics_t *metrics = mesh_metrics_new ();
    json_t *status = json_pack ("{s[{ss ss s{sI}}]}", "agents", "name", "x", "agent",
                                "we\"ird\\na\nme", "counters", "events", (json_int_t) 1);
    char *text = s_render (metrics, status);
    assert_true (s_has_line (text, "meshd_events_consumed_total{agent=\"we\\\"ird\\\\na\\nme\"} 1"));
    free (text);
    json_decref (status);
    //  An empty status: only HELP and TYPE lines (and no crash).
    status = json_object ();
    text = s_render (metrics, status);
    for (char *line = strtok (text, "\n"); line; line = strtok (NULL, "\n"))
        assert_true (line[0] == '#' || !strncmp (line, "meshd_build_info", 16)
                     || !strncmp (line, "meshd_ledger_fsync_seconds", 26));
    free (text);
    json_decref (status);
    mesh_metrics_destroy (&metrics);
}

//  docs/metrics.md: rows "| `name` | type | labels | help |"; each table metric once, with
//  its type and labels, and no row for a metric the table lacks.
static void
test_docs_match (void **state)
{
    FILE *f = fopen ("docs/metrics.md", "r");
    assert_non_null (f);
    size_t count = mesh_metrics_count ();
    int *seen = calloc (count, sizeof *seen);
    char line[1024];
    int rows = 0;
    while (fgets (line, sizeof line, f)) {
        if (strncmp (line, "| `meshd_", 9) != 0)
            continue;
        rows++;
        char name[128], type[32], labels[128];
        int n = sscanf (line, "| `%127[^`]` | %31[^ |] | %127[^ |] |", name, type, labels);
        assert_int_equal (n, 3);
        size_t i = 0;
        while (i < count && strcmp (mesh_metrics_info (i)->name, name) != 0)
            i++;
        if (i == count)
            fail_msg ("docs/metrics.md lists %s, which daemon/http/metrics.c does not export", name);
        const mesh_metric_info_t *m = mesh_metrics_info (i);
        seen[i]++;
        assert_string_equal (type, m->type);
        assert_string_equal (labels, m->labels[0] ? m->labels : "-");
    }
    fclose (f);
    for (size_t i = 0; i < count; i++)
        if (seen[i] != 1)
            fail_msg ("%s is listed %d times in docs/metrics.md (expected once)",
                      mesh_metrics_info (i)->name, seen[i]);
    assert_int_equal (rows, (int) count);
    free (seen);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_every_metric_declared),
        cmocka_unit_test (test_samples),
        cmocka_unit_test (test_histograms),
        cmocka_unit_test (test_escaping),
        cmocka_unit_test (test_docs_match),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
