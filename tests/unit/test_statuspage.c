/*  test_statuspage - the status page's handler called directly: its assets, its JSON
 *  (valid, bounded, hostile strings escaped), its errors (bad query -> 400 JSON, unknown
 *  path -> not mine), the series ring, and a decision as `meshctl audit show` reads it.
 *
 *  The daemon's state is made up here (the status callback); the decision log is a temp
 *  file of records in the log's shape (the reader is the tolerant one: no chain needed).
 */
#include "statuspage.h"
#include "audit.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOSTILE "</script><img src=x onerror=alert(1)>\"'\\\n\x01"

typedef struct {
    char dir[64];
    char log[128];
    json_int_t events, charged;         //  what the made-up daemon reports
    mesh_statuspage_t *page;
} fixture_t;

static json_t *
s_status (void *arg)
{
    fixture_t *f = arg;
    return json_pack (
        "{s:{s:s s:b s:I s:s} s:[{s:s s:s s:i s:s s:i s:{s:I s:I s:i} s:{s:{s:s s:s s:i}}}]"
        " s:{s:[{s:s s:i s:i s:i s:i s:i}] s:{s:I}}}",
        "daemon", "version", "0.1.0", "ready", 1, "uptime_s", (json_int_t) 5, "storage", "up",
        "agents", "name", "ops", "agent", "ops", "pid", 4242, "state", "running", "restarts", 1,
        "counters", "events", f->events, "malformed", (json_int_t) 0, "incidents", 3,
        "backends", "scripted", "state", "open", "detail", HOSTILE, "calls", 7,
        "budget", "scopes", "scope", "agent:ops", "used", 500, "reserved", 0, "limit", 1000,
        "remaining", 500, "burn_per_min", 12, "run", "charged", f->charged);
}

static void
s_write_log (fixture_t *f, int decisions, const char *agent)
{
    FILE *out = fopen (f->log, "w");
    assert_non_null (out);
    for (int i = 1; i <= decisions; i++) {
        json_t *d = json_pack (
            "{s:i s:I s:s s:s s:s s:s s:{s:s s:{s:s}} s:i s:{s:s s:f}}", "seq", 2 * i - 1, "ts",
            (json_int_t) 1700000000000 + i, "type", "decision", "id", "", "agent", agent,
            "verdict", i % 2 ? "accepted" : "rejected", "action", "name", "escalate", "params",
            "summary", HOSTILE, "tokens", 10 * i, "incident", "series", "web-1/cpu", "value",
            1.5);
        char id[65];
        snprintf (id, sizeof id, "%064x", i);
        json_object_set_new (d, "id", json_string (id));
        json_t *o = json_pack ("{s:i s:s s:s s:s s:s}", "seq", 2 * i, "type", "outcome", "id",
                               id, "action", "escalate", "status", "done");
        char *a = json_dumps (d, JSON_COMPACT), *b = json_dumps (o, JSON_COMPACT);
        fprintf (out, "%s\n%s\n", a, b);
        free (a);
        free (b);
        json_decref (d);
        json_decref (o);
    }
    fclose (out);
}

static int
s_setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    snprintf (f->dir, sizeof f->dir, "/tmp/test_statuspage.XXXXXX");
    assert_non_null (mkdtemp (f->dir));
    snprintf (f->log, sizeof f->log, "%s/decisions.jsonl", f->dir);
    s_write_log (f, 30, "ops");
    f->page = mesh_statuspage_new (f->log, f->dir, s_status, f);
    assert_non_null (f->page);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *f = *state;
    mesh_statuspage_destroy (&f->page);
    char cmd[128];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal (system (cmd), 0);
    free (f);
    return 0;
}

//  GET PATH?QUERY: the status, and the body parsed as JSON (NULL if not JSON).
static int
s_get (fixture_t *f, const char *path, const char *query, json_t **json_p,
       mesh_http_reply_t *out)
{
    mesh_http_reply_t reply = { 0 };
    int rc = mesh_statuspage_handle (f->page, path, query, &reply);
    if (rc != 0)
        return -1;
    assert_non_null (reply.body);
    assert_non_null (reply.content_type);
    assert_non_null (reply.csp);
    assert_non_null (strstr (reply.csp, "script-src 'self'"));
    if (json_p) {
        assert_string_equal (reply.content_type, "application/json");
        json_error_t error;
        *json_p = json_loadb (reply.body, reply.len, JSON_REJECT_DUPLICATES, &error);
        if (!*json_p)
            fail_msg ("%s: not JSON (%s): %.*s", path, error.text, (int) reply.len, reply.body);
    }
    if (out)
        *out = reply;
    else
        free (reply.body);
    return reply.status;
}

static void
test_assets (void **state)
{
    fixture_t *f = *state;
    mesh_http_reply_t r;
    assert_int_equal (s_get (f, "/", "", NULL, &r), 200);
    assert_non_null (strstr (r.content_type, "text/html"));
    assert_non_null (memmem (r.body, r.len, "<script src=\"app.js\"", 20));
    //  no inline script: every <script has a src
    for (const char *p = r.body; (p = memmem (p, r.len - (size_t) (p - r.body), "<script", 7));
         p++)
        assert_true (!strncmp (p, "<script src=", 12));
    free (r.body);
    assert_int_equal (s_get (f, "/app.js", "", NULL, &r), 200);
    assert_non_null (strstr (r.content_type, "javascript"));
    assert_null (memmem (r.body, r.len, "innerHTML", 9));      //  data only as text
    free (r.body);
    assert_int_equal (s_get (f, "/app.css", "", NULL, &r), 200);
    assert_non_null (strstr (r.content_type, "text/css"));
    free (r.body);
    //  not mine: the listener's 404
    assert_int_equal (s_get (f, "/favicon.ico", "", NULL, NULL), -1);
    assert_int_equal (s_get (f, "/metrics", "", NULL, NULL), -1);
    assert_int_equal (s_get (f, "/../etc/passwd", "", NULL, NULL), -1);
    assert_int_equal (s_get (f, "/statuspage.c", "", NULL, NULL), -1);
    //  under /api/ everything is mine: unknown -> 404 JSON
    json_t *j;
    assert_int_equal (s_get (f, "/api/nope", "", &j, NULL), 404);
    assert_true (json_is_string (json_object_get (j, "error")));
    json_decref (j);
}

static void
test_status (void **state)
{
    fixture_t *f = *state;
    json_t *j;
    mesh_http_reply_t r;
    assert_int_equal (s_get (f, "/api/status", "", &j, &r), 200);
    //  the hostile detail is escaped in the JSON text (quotes, backslash, control
    //  characters) and comes back intact; it is served as application/json, and the page
    //  puts it in with textContent (test_assets: no innerHTML)
    assert_null (memmem (r.body, r.len, "\n", 1));
    assert_null (memmem (r.body, r.len, "\x01", 1));
    assert_non_null (memmem (r.body, r.len, "\\\"'\\\\\\n\\u0001", 13));
    free (r.body);
    json_t *a = json_array_get (json_object_get (j, "agents"), 0);
    assert_string_equal (json_string_value (json_object_get (a, "name")), "ops");
    assert_string_equal (json_string_value (json_object_get (a, "state")), "running");
    assert_int_equal (json_integer_value (json_object_get (a, "pid")), 4242);
    assert_int_equal (json_integer_value (json_object_get (a, "incidents")), 3);
    json_t *b = json_array_get (json_object_get (j, "backends"), 0);
    assert_string_equal (json_string_value (json_object_get (b, "state")), "open");
    assert_string_equal (json_string_value (json_object_get (b, "detail")), HOSTILE);
    json_t *s = json_array_get (json_object_get (j, "budgets"), 0);
    assert_string_equal (json_string_value (json_object_get (s, "scope")), "agent:ops");
    assert_int_equal (json_integer_value (json_object_get (s, "remaining")), 500);
    json_decref (j);
    assert_int_equal (s_get (f, "/api/status", "x=1", &j, NULL), 400);
    json_decref (j);
}

static void
test_decisions (void **state)
{
    fixture_t *f = *state;
    json_t *j;
    mesh_http_reply_t r;
    assert_int_equal (s_get (f, "/api/decisions", "", &j, &r), 200);
    assert_null (memmem (r.body, r.len, "\x01", 1));
    free (r.body);
    json_t *list = json_object_get (j, "decisions");
    assert_int_equal (json_array_size (list), 20);          //  the default
    json_t *first = json_array_get (list, 0);               //  newest first
    char id[65];
    snprintf (id, sizeof id, "%064x", 30);
    assert_string_equal (json_string_value (json_object_get (first, "id")), id);
    assert_string_equal (json_string_value (json_object_get (first, "verdict")), "rejected");
    assert_string_equal (json_string_value (json_object_get (first, "action")), "escalate");
    assert_string_equal (json_string_value (json_object_get (first, "outcome")), "done");
    assert_string_equal (json_string_value (json_object_get (first, "series")), "web-1/cpu");
    json_decref (j);
    assert_int_equal (s_get (f, "/api/decisions", "limit=3", &j, NULL), 200);
    assert_int_equal (json_array_size (json_object_get (j, "decisions")), 3);
    json_decref (j);
    assert_int_equal (s_get (f, "/api/decisions", "limit=100", &j, NULL), 200);
    assert_int_equal (json_array_size (json_object_get (j, "decisions")), 30);
    json_decref (j);
    static const char *const bad[] = { "limit=0", "limit=101", "limit=-1", "limit=abc",
                                       "limit=", "limit=5&limit=6", "limit=99999999999999999999",
                                       "other=1", "limit=5%00", "limit=1;rm", NULL };
    for (int i = 0; bad[i]; i++) {
        assert_int_equal (s_get (f, "/api/decisions", bad[i], &j, NULL), 400);
        assert_true (json_is_string (json_object_get (j, "error")));
        json_decref (j);
    }
}

//  The list reads only the tail of the log: bounded however long the log grows.
static void
test_decisions_bounded_tail (void **state)
{
    fixture_t *f = *state;
    s_write_log (f, 6000, "ops");          //  about 2 MiB: past the 1 MiB window
    struct stat st;
    assert_int_equal (stat (f->log, &st), 0);
    assert_true (st.st_size > 2 * 1024 * 1024 - 200000);
    json_t *j;
    assert_int_equal (s_get (f, "/api/decisions", "limit=100", &j, NULL), 200);
    json_t *list = json_object_get (j, "decisions");
    assert_int_equal (json_array_size (list), 100);
    char id[65];
    snprintf (id, sizeof id, "%064x", 6000);
    assert_string_equal (json_string_value (json_object_get (json_array_get (list, 0), "id")),
                         id);
    json_decref (j);
    //  the oldest decision is outside the detail's window too: 404, saying why
    s_write_log (f, 16000, "ops");         //  past the 4 MiB detail window
    snprintf (id, sizeof id, "%064x", 1);
    assert_int_equal (s_get (f, "/api/decision", "", &j, NULL), 400);
    json_decref (j);
    char q[90];
    snprintf (q, sizeof q, "id=%s", id);
    assert_int_equal (s_get (f, "/api/decision", q, &j, NULL), 404);
    assert_non_null (strstr (json_string_value (json_object_get (j, "error")), "meshctl"));
    json_decref (j);
    snprintf (q, sizeof q, "id=%064x", 16000);
    assert_int_equal (s_get (f, "/api/decision", q, &j, NULL), 200);
    json_decref (j);
}

//  The list follows the log: what was appended since the last request, a line being
//  written only once whole, and a new file after a rotation.
static void
test_decisions_follow (void **state)
{
    fixture_t *f = *state;
    json_t *j;
    assert_int_equal (s_get (f, "/api/decisions", "limit=1", &j, NULL), 200);
    char id[65];
    snprintf (id, sizeof id, "%064x", 30);
    assert_string_equal (json_string_value (json_object_get (json_array_get (
                             json_object_get (j, "decisions"), 0), "id")), id);
    json_decref (j);
    FILE *out = fopen (f->log, "a");
    const char *rec = "{\"seq\":61,\"ts\":1,\"type\":\"decision\",\"id\":\"00000000000000000000"
                      "000000000000000000000000000000000000000000ab\",\"agent\":\"ops\","
                      "\"verdict\":\"shed\"}";
    fprintf (out, "%.40s", rec);            //  half a line: not read yet
    fflush (out);
    assert_int_equal (s_get (f, "/api/decisions", "limit=1", &j, NULL), 200);
    assert_string_equal (json_string_value (json_object_get (json_array_get (
                             json_object_get (j, "decisions"), 0), "id")), id);
    json_decref (j);
    fprintf (out, "%s\n{\"type\":\"outcome\",\"id\":\"%.64s\",\"status\":\"failed\"}\n",
             rec + 40, strstr (rec, "0000"));
    fclose (out);
    assert_int_equal (s_get (f, "/api/decisions", "limit=2", &j, NULL), 200);
    json_t *first = json_array_get (json_object_get (j, "decisions"), 0);
    assert_string_equal (json_string_value (json_object_get (first, "verdict")), "shed");
    assert_string_equal (json_string_value (json_object_get (first, "outcome")), "failed");
    assert_string_equal (json_string_value (json_object_get (json_array_get (
                             json_object_get (j, "decisions"), 1), "id")), id);
    json_decref (j);
    //  a rotation: the log moved aside, a new one in its place
    char aside[160];
    snprintf (aside, sizeof aside, "%s.1", f->log);
    assert_int_equal (rename (f->log, aside), 0);
    s_write_log (f, 2, "fresh");
    assert_int_equal (s_get (f, "/api/decisions", "limit=100", &j, NULL), 200);
    first = json_array_get (json_object_get (j, "decisions"), 0);
    assert_string_equal (json_string_value (json_object_get (first, "agent")), "fresh");
    assert_int_equal (json_array_size (json_object_get (j, "decisions")), 33);
    json_decref (j);
}

static void
test_decision (void **state)
{
    fixture_t *f = *state;
    char id[65], q[90];
    snprintf (id, sizeof id, "%064x", 7);
    snprintf (q, sizeof q, "id=%s", id);
    json_t *j;
    assert_int_equal (s_get (f, "/api/decision", q, &j, NULL), 200);
    //  the same object as `meshctl --json audit show ID`
    json_t *want = NULL;
    char why[256];
    assert_int_equal (mesh_audit_show_find (f->log, id, 0, &want, why, sizeof why), 0);
    assert_true (json_equal (j, want));
    json_decref (want);
    json_t *d = json_object_get (j, "decision");
    assert_string_equal (json_string_value (json_object_get (d, "id")), id);
    assert_string_equal (json_string_value (json_object_get (d, "verdict")), "accepted");
    assert_string_equal (json_string_value (json_object_get (json_object_get (j, "outcome"),
                                                              "status")), "done");
    json_t *params = json_object_get (json_object_get (d, "action"), "params");
    assert_string_equal (json_string_value (json_object_get (params, "summary")), HOSTILE);
    json_decref (j);
    //  a unique prefix of 8 works; ambiguous and unknown are 404
    snprintf (q, sizeof q, "id=%.8s", id);
    assert_int_equal (s_get (f, "/api/decision", q, &j, NULL), 404);  //  all share 00000000
    json_decref (j);
    assert_int_equal (s_get (f, "/api/decision", "id=ffffffffffff", &j, NULL), 404);
    json_decref (j);
    static const char *const bad[] = { "", "id=", "id=1234567", "id=xyz12345678",
                                       "id=../../etc/passwd", "id=%3Cscript%3E",
                                       "id=0000000000000000000000000000000000000000000000000000000000000000000",
                                       "id=00000007&id=00000008", "ids=00000007", NULL };
    for (int i = 0; bad[i]; i++) {
        assert_int_equal (s_get (f, "/api/decision", bad[i], &j, NULL), 400);
        assert_true (json_is_string (json_object_get (j, "error")));
        json_decref (j);
    }
    //  a log that cannot be read: 503, still JSON
    unlink (f->log);
    assert_int_equal (s_get (f, "/api/decision", "id=0000000000000007", &j, NULL), 503);
    json_decref (j);
    assert_int_equal (s_get (f, "/api/decisions", "", &j, NULL), 503);
    json_decref (j);
}

static void
test_incidents (void **state)
{
    fixture_t *f = *state;
    char path[256];
    snprintf (path, sizeof path, "%s/incidents", f->dir);
    assert_int_equal (mkdir (path, 0700), 0);
    snprintf (path, sizeof path, "%s/incidents/ops.json", f->dir);
    FILE *out = fopen (path, "w");
    fprintf (out, "{\"groups\":[{\"key\":\"web-1/cpu\",\"alive\":true,\"members\":2,"
                  "\"points\":5,\"first_ms\":1,\"last_ms\":2},{\"key\":\"old\",\"alive\":false},"
                  "{\"key\":\"%s\",\"alive\":true}]}", "<b>x</b>");
    fclose (out);
    json_t *j;
    assert_int_equal (s_get (f, "/api/incidents", "", &j, NULL), 200);
    json_t *list = json_object_get (j, "incidents");
    assert_int_equal (json_array_size (list), 2);
    assert_string_equal (json_string_value (json_object_get (json_array_get (list, 0), "key")),
                         "web-1/cpu");
    assert_string_equal (json_string_value (json_object_get (json_array_get (list, 0),
                                                             "agent")), "ops");
    json_decref (j);
    //  a file that is not JSON, or too large: no incidents, still 200
    out = fopen (path, "w");
    fprintf (out, "not json");
    fclose (out);
    assert_int_equal (s_get (f, "/api/incidents", "", &j, NULL), 200);
    assert_int_equal (json_array_size (json_object_get (j, "incidents")), 0);
    json_decref (j);
}

static void
test_series (void **state)
{
    fixture_t *f = *state;
    json_t *j;
    assert_int_equal (s_get (f, "/api/series", "", &j, NULL), 200);
    assert_int_equal (json_array_size (json_object_get (j, "samples")), 0);
    json_decref (j);
    int64_t t = 1700000000000;
    f->events = 0, f->charged = 0;
    mesh_statuspage_tick (f->page, t);                  //  the baseline
    f->events = 500, f->charged = 600;
    mesh_statuspage_tick (f->page, t + 5000);           //  not yet due: nothing
    mesh_statuspage_tick (f->page, t + 10000);
    assert_int_equal (s_get (f, "/api/series", "", &j, NULL), 200);
    json_t *samples = json_object_get (j, "samples");
    assert_int_equal (json_array_size (samples), 1);
    json_t *s = json_array_get (samples, 0);
    assert_true (json_real_value (json_object_get (s, "events_per_s")) == 50.0);
    assert_true (json_real_value (json_object_get (s, "tokens_per_min")) == 3600.0);
    json_decref (j);
    //  a counter that fell (a reset) gives 0, not a negative rate; the ring is bounded
    f->events = 10;
    for (int i = 2; i < 1000; i++) {
        mesh_statuspage_tick (f->page, t + 10000 * i);
        f->events += 10;
    }
    assert_int_equal (s_get (f, "/api/series", "", &j, NULL), 200);
    samples = json_object_get (j, "samples");
    assert_int_equal (json_array_size (samples), 360);
    assert_int_equal (json_integer_value (json_object_get (json_array_get (samples, 359), "t")),
                      t + 10000 * 999);
    for (size_t i = 0; i < json_array_size (samples); i++)
        assert_true (json_real_value (json_object_get (json_array_get (samples, i),
                                                       "events_per_s")) >= 0);
    json_decref (j);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_assets, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_status, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_decisions, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_decisions_bounded_tail, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_decisions_follow, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_decision, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_incidents, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_series, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
