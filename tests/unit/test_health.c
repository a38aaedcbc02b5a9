/*  test_health - the per-backend circuit breaker, server facts and latency figures
 *  (agents/backend/health.c).  Time is passed in, so the circuit's windows are crossed
 *  without waiting.
 */
#include "health.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static mesh_backend_config_t
s_config (const char *name, int failures, int open_ms)
{
    return (mesh_backend_config_t) {.name = (char *) name, .kind = MESH_BACKEND_OPENAI,
                                    .circuit_failures = failures, .circuit_open_ms = open_ms,
                                    .flavor = MESH_FLAVOR_AUTO};
}

static const char *
s_state (const char *name, long now)
{
    static char state[32];
    json_t *all = mesh_health_json (now);
    const char *value = json_string_value (json_object_get (json_object_get (all, name), "state"));
    snprintf (state, sizeof state, "%s", value ? value : "(none)");
    json_decref (all);
    return state;
}

static void
test_circuit_opens_and_probes (void **state)
{
    (void) state;
    mesh_backend_config_t cfg = s_config ("circuit", 3, 1000);
    mesh_health_t *h = mesh_health_get (&cfg);
    assert_non_null (h);
    assert_ptr_equal (mesh_health_get (&cfg), h);       //  one entry per name and url
    mesh_health_put (h);
    char why[256];
    bool probe;
    long t = 10000;
    assert_string_equal (s_state ("circuit", t), "unknown");
    //  Two failures: still closed.
    for (int i = 0; i < 2; i++) {
        assert_true (mesh_health_admit (h, t, &probe, why, sizeof why));
        assert_false (probe);
        mesh_health_result (h, t, MESH_FAIL_MODEL_UNREACHABLE, 5, -1, "refused");
    }
    assert_string_equal (s_state ("circuit", t), "down");
    //  An answer resets the count.
    mesh_health_result (h, t, MESH_FAIL_NONE, 20, 5, NULL);
    assert_string_equal (s_state ("circuit", t), "ready");
    //  An answer with unusable content is still an answer: it resets the count too.
    for (int i = 0; i < 2; i++)
        mesh_health_result (h, t, MESH_FAIL_MODEL_TIMEOUT, 100, -1, "slow");
    mesh_health_result (h, t, MESH_FAIL_MODEL_MALFORMED, 10, 2, "not JSON");
    for (int i = 0; i < 2; i++)
        mesh_health_result (h, t, MESH_FAIL_MODEL_TIMEOUT, 100, -1, "slow");
    assert_true (mesh_health_available (h, t));
    mesh_health_result (h, t, MESH_FAIL_MODEL_TIMEOUT, 100, -1, "slow");
    //  The third consecutive server failure opens it.
    assert_string_equal (s_state ("circuit", t), "open");
    assert_false (mesh_health_admit (h, t + 10, &probe, why, sizeof why));
    assert_non_null (strstr (why, "circuit open after 3 consecutive failures"));
    assert_false (mesh_health_available (h, t + 999));
    //  After open_ms: one probe, and only one.
    assert_true (mesh_health_available (h, t + 1000));
    assert_true (mesh_health_admit (h, t + 1000, &probe, why, sizeof why));
    assert_true (probe);
    assert_false (mesh_health_admit (h, t + 1001, &probe, why, sizeof why));
    assert_non_null (strstr (why, "half-open"));
    assert_string_equal (s_state ("circuit", t + 1001), "half_open");
    //  The probe fails: open again for open_ms.
    mesh_health_result (h, t + 1002, MESH_FAIL_MODEL_OVERLOADED, 3, -1, "busy");
    assert_false (mesh_health_admit (h, t + 1500, &probe, why, sizeof why));
    assert_true (mesh_health_admit (h, t + 2002, &probe, why, sizeof why));
    assert_true (probe);
    //  A probe that sent nothing gives its slot back.
    mesh_health_release (h);
    assert_true (mesh_health_admit (h, t + 2003, &probe, why, sizeof why));
    assert_true (probe);
    //  The probe succeeds: closed.
    mesh_health_result (h, t + 2010, MESH_FAIL_NONE, 30, 10, NULL);
    assert_true (mesh_health_admit (h, t + 2011, &probe, why, sizeof why));
    assert_false (probe);
    assert_string_equal (s_state ("circuit", t + 2011), "ready");
}

static void
test_misconfigured_and_facts (void **state)
{
    (void) state;
    mesh_backend_config_t cfg = s_config ("facts", 5, 1000);
    mesh_health_t *h = mesh_health_get (&cfg);
    mesh_health_result (h, 1, MESH_FAIL_MODEL_NOT_FOUND, 3, -1, "model 'x' not found");
    assert_string_equal (s_state ("facts", 2), "misconfigured");
    //  A config error does not open the circuit: nothing is wrong with the server.
    assert_true (mesh_health_available (h, 2));
    mesh_health_server_t server = {.probed = true, .probed_at_ms = 5,
                                   .flavor = MESH_FLAVOR_TGI, .context_tokens = 4096,
                                   .schema_form = MESH_WIRE_SCHEMA_TGI};
    mesh_health_set_server (h, &server);
    mesh_health_schema_refused (h, MESH_WIRE_SCHEMA_OPENAI, MESH_WIRE_SCHEMA_NONE);
    mesh_health_server_t read;
    mesh_health_server (h, &read);
    assert_int_equal (read.schema_form, MESH_WIRE_SCHEMA_TGI);     //  not the form refused
    mesh_health_schema_refused (h, MESH_WIRE_SCHEMA_TGI, MESH_WIRE_SCHEMA_NONE);
    mesh_health_server (h, &read);
    assert_int_equal (read.schema_form, MESH_WIRE_SCHEMA_NONE);
    assert_int_equal (read.context_tokens, 4096);
    mesh_health_result (h, 6, MESH_FAIL_NONE, 3, 1, NULL);
    json_t *all = mesh_health_json (7);
    json_t *entry = json_object_get (all, "facts");
    assert_string_equal (json_string_value (json_object_get (entry, "state")), "ready");
    assert_string_equal (json_string_value (json_object_get (entry, "flavor")), "tgi");
    assert_int_equal (json_integer_value (json_object_get (entry, "context_tokens")), 4096);
    json_decref (all);
}

static void
test_percentiles (void **state)
{
    (void) state;
    mesh_backend_config_t cfg = s_config ("latency", 5, 1000);
    mesh_health_t *h = mesh_health_get (&cfg);
    //  1..1000 ms: only the last 512 are kept (489..1000).
    for (long i = 1; i <= 1000; i++)
        mesh_health_result (h, i, MESH_FAIL_NONE, i, i / 10, NULL);
    json_t *all = mesh_health_json (2000);
    json_t *latency = json_object_get (json_object_get (all, "latency"), "latency_ms");
    long p50 = (long) json_integer_value (json_object_get (latency, "p50"));
    long p99 = (long) json_integer_value (json_object_get (latency, "p99"));
    assert_in_range (p50, 740, 750);
    assert_in_range (p99, 990, 1000);
    assert_int_equal (json_integer_value (json_object_get (json_object_get (all, "latency"),
                                                           "calls")), 1000);
    json_decref (all);
}

//  At most 64 entries are held; one no backend holds makes room for a new server, and
//  the same name at another url is another server.
static void
test_registry_bounded (void **state)
{
    (void) state;
    mesh_health_t *held[80];
    char names[80][24];
    int count = 0;
    for (int i = 0; i < 80; i++) {
        snprintf (names[i], sizeof names[i], "many-%d", i);
        mesh_backend_config_t cfg = s_config (names[i], 5, 1000);
        held[i] = mesh_health_get (&cfg);
        if (!held[i])
            break;
        count++;
    }
    //  The other tests hold 3: 61 more fit, the next does not.
    assert_int_equal (count, 61);
    mesh_backend_config_t extra = s_config ("extra", 5, 1000);
    assert_null (mesh_health_get (&extra));
    mesh_health_put (held[0]);
    mesh_health_t *taken = mesh_health_get (&extra);
    assert_non_null (taken);
    json_t *all = mesh_health_json (1);
    assert_null (json_object_get (all, "many-0"));      //  let go of: not reported
    assert_non_null (json_object_get (all, "extra"));
    json_decref (all);
    //  Same name, another url: another entry (once there is room).
    mesh_health_put (held[1]);
    mesh_backend_config_t moved = s_config ("extra", 5, 1000);
    moved.url = "http://127.0.0.1:9999";
    mesh_health_t *other = mesh_health_get (&moved);
    assert_non_null (other);
    assert_ptr_not_equal (other, taken);
    for (int i = 2; i < count; i++)
        mesh_health_put (held[i]);
    mesh_health_put (taken);
    mesh_health_put (other);
}

//  Run RESULTS (fail, time) through a fresh entry with stderr in a file; the lines logged.
static char *
s_logged (const char *name, const mesh_fail_t *fails, const long *times, int count)
{
    char path[] = "/tmp/test_health.XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    fflush (stderr);
    int saved = dup (STDERR_FILENO);
    dup2 (fd, STDERR_FILENO);
    mesh_backend_config_t cfg = s_config (name, 1000, 1000);
    mesh_health_t *h = mesh_health_get (&cfg);
    assert_non_null (h);
    for (int i = 0; i < count; i++)
        mesh_health_result (h, times[i], fails[i], 5, -1, "connect: refused");
    mesh_health_put (h);
    dup2 (saved, STDERR_FILENO);
    close (saved);
    static char text[8192];
    ssize_t got = pread (fd, text, sizeof text - 1, 0);
    text[got > 0 ? got : 0] = 0;
    close (fd);
    unlink (path);
    return text;
}

static int
s_count (const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr (p, needle)); p++)
        n++;
    return n;
}

//  A failing server is logged at warning once when it starts failing and once when
//  it recovers, not per call, and a server that flaps is logged at most every 10 s.
static void
test_state_changes_logged (void **state)
{
    (void) state;
    mesh_fail_t down = MESH_FAIL_MODEL_UNREACHABLE, ok = MESH_FAIL_NONE;
    mesh_fail_t fails[] = { ok, down, down, down, down, down, ok, ok };
    long times[] = { 1000, 2000, 2100, 2200, 2300, 2400, 20000, 20100 };
    char *text = s_logged ("logged", fails, times, 8);
    assert_int_equal (s_count (text, "failing: model_unreachable: connect: refused"), 1);
    assert_int_equal (s_count (text, "recovered (5 calls failed"), 1);
    assert_int_equal (s_count (text, "\n"), 2);
    assert_non_null (strstr (text, "<4>"));     //  warning priority
    //  Flapping every 100 ms for 30 s: a handful of lines, not 300.
    mesh_fail_t flap[300];
    long at[300];
    for (int i = 0; i < 300; i++) {
        flap[i] = i % 2 ? ok : down;
        at[i] = 1000 + 100L * i;
    }
    text = s_logged ("flapping", flap, at, 300);
    int lines = s_count (text, "\n");
    assert_true (lines >= 2 && lines <= 4);
    //  A model that is missing on a live server is a failure too.
    mesh_fail_t missing[] = { MESH_FAIL_MODEL_NOT_FOUND, MESH_FAIL_MODEL_NOT_FOUND };
    long t2[] = { 1000, 1100 };
    text = s_logged ("missing", missing, t2, 2);
    assert_int_equal (s_count (text, "failing: model_not_found"), 1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_circuit_opens_and_probes),
        cmocka_unit_test (test_misconfigured_and_facts),
        cmocka_unit_test (test_percentiles),
        cmocka_unit_test (test_registry_bounded),
        cmocka_unit_test (test_state_changes_logged),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
