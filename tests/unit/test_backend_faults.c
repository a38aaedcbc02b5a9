/*  test_backend_faults - every flavour against every fault: what meshd's openai
 *  backend (agents/backend/backend_http.c) does, one cell per test.
 *
 *      build/tests/test_backend_faults            run every cell
 *      build/tests/test_backend_faults --table    print the table of docs/reasoning.md
 *
 *  Each cell starts tests/helpers/fake_llm as that server (--flavor) with that fault
 *  (--mode and its options), makes one call through mesh_backend_call_ex as a
 *  reasoning worker does, and checks the failure class, the number of HTTP requests
 *  the server received (its own request log, not the client's count), and what the
 *  cell's check says (the content, the timing fields, the charge).  The table in
 *  docs/reasoning.md is this program's --table output, so no cell of it is untested.
 *  Then a few behaviours that are not a cell: the circuit breaker, a server restart
 *  (connection refused, then up), the structured-output form of each flavour, seed
 *  and stop, the context pre-check, a model the server does not list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "backend.h"
#include "charge.h"
#include "health.h"
#include "wire.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static char s_dir[] = "/tmp/test_backend_faults.XXXXXX";
static char s_fake_llm[4096];

#include "fake_llm_server.h"

#define S_OUTPUT "{\"action\":\"escalate\",\"params\":{},\"confidence\":0.9,\"rationale\":\"r\"}"

static const char *s_flavors[] = { "llamacpp", "vllm", "ollama", "ollama-native", "tgi", NULL };

//  One fault: how the fake is started, how the backend is configured, what it does.
typedef struct {
    const char *name;               //  the row's name in the table
    const char *mode;               //  fake_llm --mode
    const char *args[8];            //  more fake_llm arguments
    bool stream;                    //  backends.X.stream
    int timeout_ms, ttft_ms, idle_ms, attempts;
    const char *does;               //  what meshd does next (the table's last column)
} s_fault_t;

static const s_fault_t s_faults[] = {
    { "ok, streamed", "ok", {NULL}, true, 5000, 0, 0, 3,
      "the answer, with TTFT, tokens/s, usage from the stream" },
    { "ok, not streamed", "ok", {NULL}, false, 5000, 0, 0, 3,
      "the answer, usage from the body" },
    { "drop before headers", "drop-before-headers", {NULL}, true, 5000, 0, 0, 3,
      "`model_partial`, not re-sent (it may have generated), reservation charged" },
    { "drop after headers", "drop-after-headers", {NULL}, true, 5000, 0, 0, 3,
      "`model_partial`, reservation charged" },
    { "drop mid-stream", "drop-mid-stream", {NULL}, true, 5000, 0, 0, 3,
      "`model_partial` (no finish, no `[DONE]`), reservation charged" },
    { "hang", "hang", {"--hang-ms", "5000", NULL}, true, 3000, 300, 0, 3,
      "`model_timeout` at `first_token_timeout_ms`, reservation charged" },
    { "slow drip", "slow-drip", {"--drip-ms", "400", NULL}, true, 5000, 0, 150, 3,
      "`model_timeout` at `idle_timeout_ms` between chunks" },
    { "garbage", "garbage", {NULL}, true, 5000, 0, 0, 3,
      "`model_malformed`, reservation charged" },
    { "429, no Retry-After", "rate-limited", {NULL}, true, 5000, 0, 0, 3,
      "retried with full-jitter backoff, then `model_rate_limited`; nothing charged" },
    { "429 once, Retry-After: 1", "rate-limited-once", {"--retry-after", "1", NULL}, true,
      5000, 0, 0, 3, "waits the 1 s it was told, then the answer" },
    { "429, Retry-After past the deadline", "rate-limited-after", {"--retry-after", "30", NULL},
      true, 2000, 0, 0, 3, "no wait past the deadline: `model_rate_limited` at once" },
    { "overloaded once", "overloaded-once", {"--fail-count", "1", NULL}, true, 5000, 0, 0, 3,
      "retried after a backoff (llama.cpp and vLLM queue instead: answered late)" },
    { "loading, then ready", "loading-then-ready", {"--fail-count", "1", NULL}, true, 5000, 0,
      0, 3, "retried after a backoff, then the answer (Ollama loads on demand: answered "
      "late)" },
    { "context overflow", "context-overflow", {NULL}, true, 5000, 0, 0, 3,
      "`model_context_overflow`, never re-sent; nothing charged" },
    { "model not found", "model-not-found", {NULL}, true, 5000, 0, 0, 3,
      "`model_not_found` (status: misconfigured), no retry; TGI serves its base model "
      "instead (the answer's `model` says which)" },
    { "truncated by length", "length", {NULL}, true, 5000, 0, 0, 3,
      "the answer with finish `length`: the loop records `model_truncated`, charges the "
      "reservation" },
    { "error inside the stream", "in-stream-error", {NULL}, true, 5000, 0, 0, 3,
      "the server's error class (Ollama /v1 just ends the stream: `model_partial`)" },
    { "`<think>` block", "think", {NULL}, true, 5000, 0, 0, 3,
      "the block set aside (recorded as `reasoning`), the rest parsed" },
};
#define S_FAULTS (sizeof s_faults / sizeof s_faults[0])

//  What a cell must give: the class ("ok" for a reply), how many HTTP requests the
//  server received (-1: at least 2).
typedef struct {
    const char *klass;
    int requests;
} s_expect_t;

static bool
s_is (const char *a, const char *b)
{
    return !strcmp (a, b);
}

static s_expect_t
s_expected (const char *flavor, const s_fault_t *fault)
{
    const char *m = fault->mode;
    bool queues = s_is (flavor, "llamacpp") || s_is (flavor, "vllm");
    if (s_is (m, "ok") || s_is (m, "length") || s_is (m, "think"))
        return (s_expect_t) {"ok", 1};
    if (s_is (m, "drop-before-headers") || s_is (m, "drop-after-headers")
        || s_is (m, "drop-mid-stream"))
        return (s_expect_t) {"model_partial", 1};
    if (s_is (m, "hang") || s_is (m, "slow-drip"))
        return (s_expect_t) {"model_timeout", 1};
    if (s_is (m, "garbage"))
        return (s_expect_t) {"model_malformed", 1};
    if (s_is (m, "rate-limited"))
        return (s_expect_t) {"model_rate_limited", 3};
    if (s_is (m, "rate-limited-once"))
        return (s_expect_t) {"ok", 2};
    if (s_is (m, "rate-limited-after"))
        return (s_expect_t) {"model_rate_limited", 1};
    if (s_is (m, "overloaded-once"))
        return (s_expect_t) {"ok", queues ? 1 : 2};
    if (s_is (m, "loading-then-ready"))
        return (s_expect_t) {"ok", s_is (flavor, "ollama") || s_is (flavor, "ollama-native")
                                   ? 1 : 2};
    if (s_is (m, "context-overflow"))
        return (s_expect_t) {"model_context_overflow", 1};
    if (s_is (m, "model-not-found"))
        //  TGI takes an unknown model for a LoRA adapter id and serves its base model.
        return (s_expect_t) {s_is (flavor, "tgi") ? "ok" : "model_not_found", 1};
    if (s_is (m, "in-stream-error"))
        return (s_expect_t) {s_is (flavor, "ollama") ? "model_partial" : "model_error", 1};
    return (s_expect_t) {"?", 0};
}

static json_t *
s_messages (void)
{
    return json_pack ("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content",
                      "You are a test.", "role", "user", "content", "Propose one action.");
}

static json_t *
s_schema (void)
{
    return json_pack ("{s:s, s:{s:{s:s}}, s:[s]}", "type", "object", "properties", "action",
                      "type", "string", "required", "action");
}

static const char *
s_responses (void)
{
    static char path[4200];
    snprintf (path, sizeof path, "%s/responses.jsonl", s_dir);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    json_t *line = json_pack ("{s:s}", "content", S_OUTPUT);
    json_dumpf (line, file, JSON_COMPACT);
    fputc ('\n', file);
    json_decref (line);
    fclose (file);
    return path;
}

static mesh_backend_config_t
s_config (const char *name, const char *url, mesh_backend_flavor_t flavor, const s_fault_t *f)
{
    mesh_backend_config_t cfg = {
        .name = (char *) name, .kind = MESH_BACKEND_OPENAI, .url = (char *) url,
        .model = "fake-model", .timeout_ms = f->timeout_ms, .connect_timeout_ms = 1000,
        .json_schema = true, .flavor = flavor, .stream = f->stream,
        .first_token_timeout_ms = f->ttft_ms ? f->ttft_ms : f->timeout_ms,
        .idle_timeout_ms = f->idle_ms ? f->idle_ms : f->timeout_ms,
        .retry_attempts = f->attempts, .retry_base_ms = 20, .retry_max_ms = 200,
        .circuit_failures = 1000, .circuit_open_ms = 1000, .probe_interval_s = 300,
        .seed = true,
    };
    mesh_config_output_limits_default (&cfg.limits);
    return cfg;
}

static mesh_backend_flavor_t
s_flavor (const char *name)
{
    for (int f = 0; f < MESH_FLAVOR_COUNT_; f++)
        if (s_is (mesh_wire_flavor_name ((mesh_backend_flavor_t) f), name))
            return (mesh_backend_flavor_t) f;
    fail_msg ("unknown flavour %s", name);
    return MESH_FLAVOR_AUTO;
}

//  The fake's arguments for FLAVOR and FAULT (a NULL-terminated list in ARGS).
static void
s_fake_args (const char *flavor, const s_fault_t *fault, const char **args)
{
    int n = 0;
    args[n++] = "--flavor";
    args[n++] = flavor;
    for (int i = 0; fault->args[i]; i++)
        args[n++] = fault->args[i];
    args[n] = NULL;
}

//  Run one cell; fail with a message naming it if it does not hold.
static void
s_cell (const char *flavor, const s_fault_t *fault)
{
    s_expect_t expect = s_expected (flavor, fault);
    const char *args[16];
    s_fake_args (flavor, fault, args);
    s_server_t server;
    s_server_start_with (&server, fault->mode, s_responses (), args);
    char name[96];
    snprintf (name, sizeof name, "%s.%s", flavor, fault->mode);
    mesh_backend_config_t cfg = s_config (name, server.url, s_flavor (flavor), fault);
    mesh_backend_t *backend = mesh_backend_new (&cfg);
    assert_non_null (backend);
    json_t *messages = s_messages (), *schema = s_schema ();
    mesh_backend_reply_t reply;
    mesh_fail_t why = MESH_FAIL_NONE;
    char *detail = NULL;
    int rc = mesh_backend_call_ex (backend, messages, 64, schema, "cell/1", NULL, &reply, &why,
                                   &detail);
    const char *got = rc == 0 ? "ok" : mesh_fail_name (why);
    json_t *requests = s_requests (&server);
    int received = (int) json_array_size (requests);
    char where[256];
    snprintf (where, sizeof where, "%s × %s: got %s after %d request(s): %s", flavor,
              fault->name, got, received, detail ? detail : "");
    if (!s_is (got, expect.klass))
        fail_msg ("%s; expected %s", where, expect.klass);
    if (received != expect.requests)
        fail_msg ("%s; expected %d request(s)", where, expect.requests);
    //  The client's count of HTTP requests is the server's: no hidden re-sends.
    if (reply.requests != received)
        fail_msg ("%s; the reply counts %d request(s)", where, reply.requests);
    assert_string_equal (reply.flavor, flavor);
    if (rc == 0) {
        assert_null (detail);                           //  a retry before it is no failure
        assert_int_equal (why, MESH_FAIL_NONE);
        assert_string_equal (reply.content, S_OUTPUT);  //  a <think> block is set aside
        assert_true (reply.ttft_ms >= 0);
        assert_true (reply.latency_ms >= reply.ttft_ms);
        assert_true (reply.completion_tokens > 0);
    }
    const char *m = fault->mode;
    if (s_is (m, "ok")) {
        assert_int_equal (reply.streamed, fault->stream);
        assert_false (reply.estimated);                 //  usage from the server
        assert_string_equal (reply.finish_reason, s_is (flavor, "tgi") ? "stop" : "stop");
    }
    if (s_is (m, "think")) {
        assert_true (reply.reasoning_bytes > 0);
        assert_non_null (reply.reasoning);
    }
    if (s_is (m, "length"))
        assert_false (mesh_backend_finished (reply.finish_reason));
    if (s_is (m, "hang"))
        assert_non_null (strstr (detail, "first token"));
    if (s_is (m, "slow-drip"))
        assert_non_null (strstr (detail, "idle_timeout_ms"));
    if (s_is (m, "rate-limited-once")) {
        json_t *first = json_array_get (reply.requests_log, 0);
        assert_int_equal (json_integer_value (json_object_get (first, "retry_after_ms")), 1000);
        assert_int_equal (json_integer_value (json_object_get (first, "wait_ms")), 1000);
    }
    if (s_is (m, "rate-limited-after"))
        assert_non_null (strstr (detail, "would pass the deadline"));
    //  The charge: nothing when nothing can have been generated.
    mesh_charge_t charge = mesh_charge (rc, why, &reply, false, 10, 74);
    bool free_of_charge = s_is (got, "model_rate_limited") || s_is (got, "model_not_found")
                          || s_is (got, "model_context_overflow");
    if (free_of_charge && charge.charged != 0)
        fail_msg ("%s; charged %ld (%s), expected nothing", where, charge.charged, charge.rule);
    if ((s_is (got, "model_partial") || s_is (got, "model_timeout")
         || s_is (got, "model_malformed")) && charge.charged < 74)
        fail_msg ("%s; charged %ld (%s), expected the reservation", where, charge.charged,
                  charge.rule);
    free (detail);
    json_decref (requests);
    json_decref (messages);
    json_decref (schema);
    mesh_backend_reply_clear (&reply);
    mesh_backend_destroy (&backend);
    s_server_stop (&server);
}

static void
test_table (void **state)
{
    (void) state;
    for (int f = 0; s_flavors[f]; f++)
        for (size_t i = 0; i < S_FAULTS; i++)
            s_cell (s_flavors[f], &s_faults[i]);
}

//  The request body each flavour sends: its structured-output form, seed, stop.
static void
test_request_shapes (void **state)
{
    (void) state;
    for (int f = 0; s_flavors[f]; f++) {
        const char *flavor = s_flavors[f];
        const s_fault_t *ok = &s_faults[0];
        const char *args[16];
        s_fake_args (flavor, ok, args);
        s_server_t server;
        s_server_start_with (&server, "ok", s_responses (), args);
        char name[64];
        snprintf (name, sizeof name, "shape.%s", flavor);
        mesh_backend_config_t cfg = s_config (name, server.url, s_flavor (flavor), ok);
        char *stop[] = { "\n\n\n", "END" };
        cfg.stop = stop;
        cfg.stop_count = 2;
        mesh_backend_t *backend = mesh_backend_new (&cfg);
        json_t *messages = s_messages (), *schema = s_schema ();
        mesh_backend_reply_t reply;
        mesh_fail_t why;
        char *detail = NULL;
        int rc = mesh_backend_call_ex (backend, messages, 64, schema, "shape/1", NULL, &reply,
                                       &why, &detail);
        if (rc)
            fail_msg ("%s: %s", flavor, detail);
        json_t *requests = s_requests (&server);
        json_t *body = json_object_get (json_array_get (requests, 0), "body");
        bool native = s_is (flavor, "ollama-native");
        json_t *options = native ? json_object_get (body, "options") : body;
        assert_true (json_is_integer (json_object_get (options, "seed")));
        assert_int_equal (json_array_size (json_object_get (options, "stop")), 2);
        assert_true (json_is_true (json_object_get (body, "stream")));
        if (native) {
            assert_true (json_is_object (json_object_get (body, "format")));
            assert_int_equal (json_integer_value (json_object_get (options, "num_predict")), 64);
        }
        else {
            json_t *format = json_object_get (body, "response_format");
            const char *type = json_string_value (json_object_get (format, "type"));
            if (s_is (flavor, "tgi")) {
                assert_string_equal (type, "json");
                assert_true (json_is_object (json_object_get (format, "value")));
                assert_null (json_object_get (body, "top_p"));
            }
            else {
                assert_string_equal (type, "json_schema");
                assert_true (json_is_object (json_object_get (json_object_get (format,
                                                                               "json_schema"),
                                                              "schema")));
            }
            assert_true (json_is_true (json_object_get (json_object_get (body, "stream_options"),
                                                        "include_usage")));
            assert_int_equal (json_integer_value (json_object_get (body, "max_tokens")), 64);
        }
        assert_string_equal (reply.structured, mesh_wire_schema_name (
                                                 mesh_wire_schema_default (s_flavor (flavor))));
        json_decref (requests);
        json_decref (messages);
        json_decref (schema);
        mesh_backend_reply_clear (&reply);
        mesh_backend_destroy (&backend);
        s_server_stop (&server);
    }
}

//  flavor: auto finds out which server it is from its probe endpoints.
static void
test_auto_detect (void **state)
{
    (void) state;
    for (int f = 0; s_flavors[f]; f++) {
        const char *flavor = s_flavors[f];
        if (s_is (flavor, "ollama-native"))
            continue;                   //  auto speaks /v1 to an Ollama: flavor ollama
        const char *args[] = { "--flavor", flavor, NULL };
        s_server_t server;
        s_server_start_with (&server, "ok", s_responses (), args);
        char name[64];
        snprintf (name, sizeof name, "auto.%s", flavor);
        mesh_backend_config_t cfg = s_config (name, server.url, MESH_FLAVOR_AUTO, &s_faults[0]);
        mesh_backend_t *backend = mesh_backend_new (&cfg);
        json_t *messages = s_messages ();
        mesh_backend_reply_t reply;
        mesh_fail_t why;
        char *detail = NULL;
        int rc = mesh_backend_call_ex (backend, messages, 64, NULL, "auto/1", NULL, &reply, &why,
                                       &detail);
        if (rc)
            fail_msg ("auto × %s: %s", flavor, detail);
        if (!s_is (reply.flavor, flavor))
            fail_msg ("auto × %s: detected %s", flavor, reply.flavor);
        assert_true (reply.context_tokens > 0);         //  read from the server
        free (detail);
        json_decref (messages);
        mesh_backend_reply_clear (&reply);
        mesh_backend_destroy (&backend);
        s_server_stop (&server);
    }
}

//  The context pre-check: a prompt that cannot fit is never sent.
static void
test_context_precheck (void **state)
{
    (void) state;
    for (int f = 0; s_flavors[f]; f++) {
        const char *flavor = s_flavors[f];
        const char *args[] = { "--flavor", flavor, "--ctx", "40", NULL };
        s_server_t server;
        s_server_start_with (&server, "ok", s_responses (), args);
        char name[64];
        snprintf (name, sizeof name, "ctx.%s", flavor);
        mesh_backend_config_t cfg = s_config (name, server.url, s_flavor (flavor), &s_faults[0]);
        mesh_backend_t *backend = mesh_backend_new (&cfg);
        json_t *messages = s_messages ();
        mesh_backend_reply_t reply;
        mesh_fail_t why;
        char *detail = NULL;
        assert_int_equal (mesh_backend_call_ex (backend, messages, 64, NULL, "ctx/1", NULL,
                                                &reply, &why, &detail), -1);
        if (why != MESH_FAIL_MODEL_CONTEXT_OVERFLOW)
            fail_msg ("%s: %s: %s", flavor, mesh_fail_name (why), detail);
        assert_non_null (strstr (detail, "not sent"));
        json_t *requests = s_requests (&server);
        assert_int_equal (json_array_size (requests), 0);
        assert_int_equal (reply.requests, 0);
        json_decref (requests);
        free (detail);
        json_decref (messages);
        mesh_backend_reply_clear (&reply);
        mesh_backend_destroy (&backend);
        s_server_stop (&server);
    }
}

//  vLLM and Ollama route by model name: one they do not list is a config error, found
//  by the probe, and no request is sent.
static void
test_model_not_listed (void **state)
{
    (void) state;
    const char *flavors[] = { "vllm", "ollama", "ollama-native", NULL };
    for (int f = 0; flavors[f]; f++) {
        const char *args[] = { "--flavor", flavors[f], "--model", "another-model", NULL };
        s_server_t server;
        s_server_start_with (&server, "ok", s_responses (), args);
        char name[64];
        snprintf (name, sizeof name, "unlisted.%s", flavors[f]);
        mesh_backend_config_t cfg = s_config (name, server.url, s_flavor (flavors[f]),
                                              &s_faults[0]);
        mesh_backend_t *backend = mesh_backend_new (&cfg);
        json_t *messages = s_messages ();
        mesh_backend_reply_t reply;
        mesh_fail_t why;
        char *detail = NULL;
        assert_int_equal (mesh_backend_call_ex (backend, messages, 64, NULL, "nl/1", NULL,
                                                &reply, &why, &detail), -1);
        assert_int_equal (why, MESH_FAIL_MODEL_NOT_FOUND);
        assert_int_equal (reply.requests, 0);
        json_t *all = mesh_health_json (mesh_health_now_ms ());
        assert_string_equal (json_string_value (json_object_get (json_object_get (all, name),
                                                                 "state")), "misconfigured");
        json_decref (all);
        free (detail);
        json_decref (messages);
        mesh_backend_reply_clear (&reply);
        mesh_backend_destroy (&backend);
        s_server_stop (&server);
    }
}

//  A free port: nothing listens there now.
static int
s_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    socklen_t len = sizeof addr;
    assert_int_equal (bind (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    assert_int_equal (getsockname (fd, (struct sockaddr *) &addr, &len), 0);
    close (fd);
    return ntohs (addr.sin_port);
}

//  The circuit: a dead server opens it after circuit.failures calls; then calls fail at
//  once, without a connection attempt, until open_ms has passed.
static void
test_circuit (void **state)
{
    (void) state;
    char url[64];
    snprintf (url, sizeof url, "http://127.0.0.1:%d", s_free_port ());
    s_fault_t quick = s_faults[0];
    quick.attempts = 1;
    mesh_backend_config_t cfg = s_config ("circuit", url, MESH_FLAVOR_LLAMACPP, &quick);
    cfg.circuit_failures = 3;
    cfg.circuit_open_ms = 400;
    mesh_backend_t *backend = mesh_backend_new (&cfg);
    json_t *messages = s_messages ();
    for (int i = 0; i < 5; i++) {
        mesh_backend_reply_t reply;
        mesh_fail_t why;
        char *detail = NULL;
        assert_int_equal (mesh_backend_call_ex (backend, messages, 64, NULL, "c/1", NULL, &reply,
                                                &why, &detail), -1);
        assert_int_equal (why, MESH_FAIL_MODEL_UNREACHABLE);
        //  Calls 4 and 5 find the circuit open: no request at all.
        assert_int_equal (reply.requests, i < 3 ? 1 : 0);
        if (i >= 3)
            assert_non_null (strstr (detail, "circuit open"));
        assert_int_equal (mesh_backend_available (backend), i < 2);
        free (detail);
        mesh_backend_reply_clear (&reply);
    }
    usleep (450 * 1000);                //  past open_ms: the next call is the probe
    assert_true (mesh_backend_available (backend));
    json_decref (messages);
    mesh_backend_destroy (&backend);
}

//  A server restarting: connection refused, retried with backoff, answered once it is up.
static void
test_server_restart (void **state)
{
    (void) state;
    int port = s_free_port ();
    char port_text[16], url[64];
    snprintf (port_text, sizeof port_text, "%d", port);
    snprintf (url, sizeof url, "http://127.0.0.1:%d", port);
    pid_t starter = fork ();
    assert_true (starter >= 0);
    if (starter == 0) {
        usleep (300 * 1000);            //  down for the first 300 ms
        execl (s_fake_llm, s_fake_llm, "--port", port_text, "--flavor", "vllm", "--responses",
               s_responses (), (char *) NULL);
        _exit (127);
    }
    s_fault_t patient = s_faults[0];
    patient.attempts = 8;
    mesh_backend_config_t cfg = s_config ("restart", url, MESH_FLAVOR_VLLM, &patient);
    cfg.retry_base_ms = 100;
    cfg.retry_max_ms = 400;
    mesh_backend_t *backend = mesh_backend_new (&cfg);
    json_t *messages = s_messages ();
    mesh_backend_reply_t reply;
    mesh_fail_t why;
    char *detail = NULL;
    int rc = mesh_backend_call_ex (backend, messages, 64, NULL, "r/1", NULL, &reply, &why,
                                   &detail);
    if (rc)
        fail_msg ("restart: %s", detail);
    assert_true (reply.requests >= 2);
    json_t *first = json_array_get (reply.requests_log, 0);
    assert_string_equal (json_string_value (json_object_get (first, "class")),
                         "model_unreachable");
    assert_true (json_integer_value (json_object_get (first, "wait_ms")) >= 0);
    mesh_backend_reply_clear (&reply);
    json_decref (messages);
    mesh_backend_destroy (&backend);
    kill (starter, SIGTERM);
    waitpid (starter, NULL, 0);
}

//  A black hole: a server that accepts connections and never answers.  The probe (four
//  GETs for flavor auto) shares a quarter of the call's time, so the call still ends at
//  its first-token deadline, not after the probes' own timeouts.
static void
test_black_hole (void **state)
{
    (void) state;
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    socklen_t len = sizeof addr;
    assert_int_equal (bind (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    assert_int_equal (listen (fd, 64), 0);         //  the kernel accepts; nobody reads
    assert_int_equal (getsockname (fd, (struct sockaddr *) &addr, &len), 0);
    char url[64];
    snprintf (url, sizeof url, "http://127.0.0.1:%d", ntohs (addr.sin_port));
    s_fault_t quick = s_faults[0];
    quick.timeout_ms = 6000;
    quick.ttft_ms = 1000;
    mesh_backend_config_t cfg = s_config ("black-hole", url, MESH_FLAVOR_AUTO, &quick);
    mesh_backend_t *backend = mesh_backend_new (&cfg);
    json_t *messages = s_messages ();
    mesh_backend_reply_t reply;
    mesh_fail_t why;
    char *detail = NULL;
    assert_int_equal (mesh_backend_call_ex (backend, messages, 64, NULL, "bh/1", NULL, &reply,
                                            &why, &detail), -1);
    assert_int_equal (why, MESH_FAIL_MODEL_TIMEOUT);
    assert_non_null (strstr (detail, "first token"));
    //  The probe (at most 1.5 s here) and the first-token deadline (1 s), not the whole
    //  call's 6 s nor four probe timeouts of 3 s: a deadline check, with a wide margin.
    if (reply.latency_ms >= 5000)
        fail_msg ("the call took %ld ms: %s", reply.latency_ms, detail);
    free (detail);
    mesh_backend_reply_clear (&reply);
    json_decref (messages);
    mesh_backend_destroy (&backend);
    close (fd);
}

static int
s_setup (void **state)
{
    (void) state;
    if (!mkdtemp (s_dir))
        return -1;
    s_find_fake_llm ();
    return 0;
}

static int
s_teardown (void **state)
{
    (void) state;
    char command[4200];
    snprintf (command, sizeof command, "rm -rf '%s'", s_dir);
    return system (command) == 0 ? 0 : -1;
}

//  The table of docs/reasoning.md: one row per fault, one column per flavour, each cell
//  the class and the HTTP requests the server received.
static void
s_print_table (void)
{
    printf ("| fault |");
    for (int f = 0; s_flavors[f]; f++)
        printf (" %s |", s_flavors[f]);
    printf (" what meshd does |\n|---|");
    for (int f = 0; s_flavors[f]; f++)
        printf ("---|");
    printf ("---|\n");
    for (size_t i = 0; i < S_FAULTS; i++) {
        printf ("| %s |", s_faults[i].name);
        for (int f = 0; s_flavors[f]; f++) {
            s_expect_t e = s_expected (s_flavors[f], &s_faults[i]);
            printf (" %s, %d req |", s_is (e.klass, "ok") ? "answer" : e.klass, e.requests);
        }
        printf (" %s |\n", s_faults[i].does);
    }
}

int
main (int argc, char **argv)
{
    if (argc > 1 && s_is (argv[1], "--table")) {
        s_print_table ();
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_table),
        cmocka_unit_test (test_request_shapes),
        cmocka_unit_test (test_auto_detect),
        cmocka_unit_test (test_context_precheck),
        cmocka_unit_test (test_model_not_listed),
        cmocka_unit_test (test_circuit),
        cmocka_unit_test (test_server_restart),
        cmocka_unit_test (test_black_hole),
    };
    return cmocka_run_group_tests_name ("backend_faults", tests, s_setup, s_teardown);
}
