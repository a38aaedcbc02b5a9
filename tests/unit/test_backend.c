/*  test_backend - the scripted and the openai backends.
 *
 *  scripted: the choice is a pure function of the seed key, the load refuses every
 *  kind of bad line and names FILE:LINE.  openai: against tests/helpers/fake_llm,
 *  started as a separate process per mode (the real HTTP path: libcurl, sockets,
 *  timeouts), using $FAKE_LLM, else $B/tests/fake_llm (B defaults to build), else a
 *  copy compiled into the test's temporary directory with tests/cc.sh.  Run from the
 *  repository root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "backend.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char s_dir[] = "/tmp/test_backend.XXXXXX";
static char s_fake_llm[4096];

//  --- helpers ---------------------------------------------------------------------

static char *
s_path (const char *name)
{
    static char path[8][4200];
    static int next;
    char *p = path[next++ % 8];
    snprintf (p, sizeof path[0], "%s/%s", s_dir, name);
    return p;
}

static const char *
s_write_file (const char *name, const char *text)
{
    const char *path = s_path (name);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs (text, file);
    fclose (file);
    return path;
}

//  Capture what the code under test logs between start and end (end returns it; caller
//  frees).
static void
s_capture_stderr_start (int *saved)
{
    fflush (stderr);
    *saved = dup (STDERR_FILENO);
    int fd = open (s_path ("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2 (fd, STDERR_FILENO);
    close (fd);
}

static char *
s_capture_stderr_end (int saved)
{
    fflush (stderr);
    dup2 (saved, STDERR_FILENO);
    close (saved);
    FILE *file = fopen (s_path ("stderr.txt"), "r");
    char *text = calloc (1, 65536);
    size_t n = fread (text, 1, 65535, file);
    text[n] = 0;
    fclose (file);
    return text;
}

static json_t *
s_messages (void)
{
    return json_pack ("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content",
                      "You are an operations agent.", "role", "user", "content",
                      "```incident\n{\"series\":\"web-1/cpu\"}\n```");
}

static json_t *
s_schema (void)
{
    return json_pack ("{s:s, s:[s,s], s:{s:{s:s}, s:{s:s}}}", "type", "object", "required",
                      "action", "params", "properties", "action", "type", "string",
                      "params", "type", "object");
}

//  --- the fake server ----------------------------------------------------------------

#include "fake_llm_server.h"

static mesh_backend_config_t
s_openai_config (const char *url)
{
    return (mesh_backend_config_t) {
        .name = "local", .kind = MESH_BACKEND_OPENAI, .url = (char *) url,
        .model = "test-model", .timeout_ms = 5000, .connect_timeout_ms = 2000,
        .temperature = 0.0, .json_schema = true,
        //  The tests share the name "local": a circuit opened by one must not close the
        //  next one's server (test_backend_faults.c tests the circuit).
        .circuit_failures = 1000, .retry_attempts = 1,
    };
}

//  --- scripted -------------------------------------------------------------------------

static const char *s_five =
  "# five canned outputs\n"
  "{\"content\": \"{\\\"action\\\":\\\"escalate\\\"}\"}\n"
  "\n"
  "{\"content\": \"one\", \"completion_tokens\": 42}\n"
  "   # an indented comment\n"
  "{\"content\": \"two\"}\n"
  "{\"content\": \"three three three\"}\n"
  "{\"content\": \"\"}\n";

static void
test_scripted_deterministic (void **state)
{
    (void) state;
    mesh_backend_config_t cfg = { .name = "canned", .kind = MESH_BACKEND_SCRIPTED,
                                  .file = (char *) s_write_file ("five.jsonl", s_five) };
    mesh_backend_t *a = mesh_backend_new (&cfg);
    mesh_backend_t *b = mesh_backend_new (&cfg);
    assert_non_null (a);
    assert_non_null (b);
    assert_string_equal (mesh_backend_name (a), "canned");
    json_t *messages = s_messages ();
    bool seen[5] = { false };
    const char *contents[] = { "{\"action\":\"escalate\"}", "one", "two", "three three three", "" };
    for (int i = 0; i < 40; i++) {
        char key[80];
        snprintf (key, sizeof key, "%064d/%d", i, 1 + i % 3);
        mesh_backend_reply_t ra, rb;
        mesh_fail_t why;
        char *detail;
        assert_int_equal (mesh_backend_call (a, messages, 256, NULL, key, &ra, &why, &detail), 0);
        assert_int_equal (mesh_backend_call (b, messages, 256, NULL, key, &rb, &why, &detail), 0);
        assert_string_equal (ra.content, rb.content);          //  same key, same output
        assert_true (ra.estimated);
        assert_int_equal (ra.prompt_tokens, mesh_backend_estimate_json (messages));
        assert_string_equal (ra.model, "scripted");
        int which = -1;
        for (int k = 0; k < 5; k++)
            if (!strcmp (ra.content, contents[k]))
                which = k;
        assert_true (which >= 0);
        seen[which] = true;
        long expected = which == 1 ? 42 : (long) (strlen (contents[which]) + 3) / 4;
        assert_int_equal (ra.completion_tokens, expected);
        mesh_backend_reply_clear (&ra);
        mesh_backend_reply_clear (&rb);
        assert_null (ra.content);
    }
    int distinct = 0;
    for (int k = 0; k < 5; k++)
        distinct += seen[k];
    assert_true (distinct >= 3);                                //  keys spread over outputs
    json_decref (messages);
    mesh_backend_destroy (&a);
    mesh_backend_destroy (&b);
    assert_null (a);
}

//  The steps of one incident draw independently: with two outputs, step 1 and step 2
//  pick the same line about half the time (a weak hash makes that always or never).
static void
test_scripted_steps_independent (void **state)
{
    (void) state;
    mesh_backend_config_t cfg = { .name = "canned", .kind = MESH_BACKEND_SCRIPTED,
                                  .file = (char *) s_write_file ("two.jsonl",
                                                                 "{\"content\": \"a\"}\n"
                                                                 "{\"content\": \"b\"}\n") };
    mesh_backend_t *backend = mesh_backend_new (&cfg);
    json_t *messages = s_messages ();
    int same12 = 0, same13 = 0, a = 0;
    for (int i = 0; i < 400; i++) {
        char line[3][2];
        for (int step = 1; step <= 3; step++) {
            char key[80];
            snprintf (key, sizeof key, "%064x/%d", i * 2654435761u, step);
            mesh_backend_reply_t reply;
            mesh_fail_t why;
            char *detail;
            assert_int_equal (mesh_backend_call (backend, messages, 8, NULL, key, &reply, &why,
                                                 &detail), 0);
            snprintf (line[step - 1], 2, "%s", reply.content);
            mesh_backend_reply_clear (&reply);
        }
        same12 += line[0][0] == line[1][0];
        same13 += line[0][0] == line[2][0];
        a += line[0][0] == 'a';
    }
    assert_in_range (a, 120, 280);
    assert_in_range (same12, 120, 280);
    assert_in_range (same13, 120, 280);
    json_decref (messages);
    mesh_backend_destroy (&backend);
}

static void
test_scripted_bad_files (void **state)
{
    (void) state;
    struct {
        const char *text;
        const char *where;          //  expected in the log
    } cases[] = {
        { "{\"content\": \"ok\"}\nnot json\n", "bad.jsonl:2:" },
        { "{\"content\": \"ok\"}\n\n[\"content\"]\n", "bad.jsonl:3:" },
        { "{\"contents\": \"typo\"}\n", "bad.jsonl:1: unknown key 'contents'" },
        { "{\"completion_tokens\": 3}\n", "bad.jsonl:1: \"content\" must be a string" },
        { "{\"content\": 7}\n", "bad.jsonl:1: \"content\" must be a string" },
        { "{\"content\": \"x\", \"completion_tokens\": -1}\n", "bad.jsonl:1:" },
        { "{\"content\": \"x\", \"completion_tokens\": 1.5}\n", "bad.jsonl:1:" },
        { "{\"content\": \"x\", \"content\": \"y\"}\n", "bad.jsonl:1:" },
        { "{\"content\": \"a\\u0000b\"}\n", "bad.jsonl:1:" },
        { "{\"content\": \"x\"} trailing\n", "bad.jsonl:1:" },
        { "# only a comment\n\n", "no responses" },
        { "", "no responses" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mesh_backend_config_t cfg = { .name = "bad", .kind = MESH_BACKEND_SCRIPTED,
                                      .file = (char *) s_write_file ("bad.jsonl", cases[i].text) };
        int saved;
        s_capture_stderr_start (&saved);
        mesh_backend_t *backend = mesh_backend_new (&cfg);
        char *log = s_capture_stderr_end (saved);
        assert_null (backend);
        if (!strstr (log, cases[i].where))
            fail_msg ("case %zu: expected '%s' in: %s", i, cases[i].where, log);
        free (log);
    }
    mesh_backend_config_t missing = { .name = "bad", .kind = MESH_BACKEND_SCRIPTED,
                                      .file = s_path ("does-not-exist.jsonl") };
    assert_null (mesh_backend_new (&missing));
    mesh_backend_config_t nofile = { .name = "bad", .kind = MESH_BACKEND_SCRIPTED };
    assert_null (mesh_backend_new (&nofile));
}

static void
test_call_contract (void **state)
{
    (void) state;
    mesh_backend_config_t cfg = { .name = "canned", .kind = MESH_BACKEND_SCRIPTED,
                                  .file = (char *) s_write_file ("one.jsonl",
                                                                 "{\"content\":\"x\"}\n") };
    mesh_backend_t *backend = mesh_backend_new (&cfg);
    json_t *not_array = json_object ();
    mesh_backend_reply_t reply;
    mesh_fail_t why;
    char *detail;
    assert_int_equal (mesh_backend_call (backend, not_array, 10, NULL, "k", &reply, &why,
                                         &detail), -1);
    assert_int_equal (why, MESH_FAIL_MODEL_ERROR);
    assert_non_null (detail);
    assert_null (reply.content);
    free (detail);
    json_t *messages = s_messages ();
    assert_int_equal (mesh_backend_call (backend, messages, 0, NULL, "k", &reply, &why, &detail),
                      -1);
    free (detail);
    //  A NULL seed key is allowed and deterministic.
    assert_int_equal (mesh_backend_call (backend, messages, 5, NULL, NULL, &reply, &why,
                                         &detail), 0);
    assert_string_equal (reply.content, "x");
    mesh_backend_reply_clear (&reply);
    assert_int_equal (mesh_backend_estimate_tokens (0), 0);
    assert_int_equal (mesh_backend_estimate_tokens (1), 1);
    assert_int_equal (mesh_backend_estimate_tokens (4), 1);
    assert_int_equal (mesh_backend_estimate_tokens (5), 2);
    json_decref (messages);
    json_decref (not_array);
    mesh_backend_destroy (&backend);
}

//  --- openai ------------------------------------------------------------------------------

static void
test_openai_bad_config (void **state)
{
    (void) state;
    mesh_backend_config_t cfg = s_openai_config (NULL);
    assert_null (mesh_backend_new (&cfg));
    cfg = s_openai_config ("ftp://127.0.0.1:1");
    assert_null (mesh_backend_new (&cfg));
}

//  A key file that cannot be used: the backend is created (a systemd credential exists
//  only inside the service), every call fails before anything is sent, and the detail
//  names the file but never shows its content.
static void
test_openai_bad_key_file (void **state)
{
    (void) state;
    s_server_t server;
    s_server_start (&server, "ok", NULL);
    struct {
        const char *file, *text, *why;
    } cases[] = {
        { "no-such-key", NULL, "cannot open" },
        { "empty-key", "\n", "empty" },
        { "two-line-key", "abc-secret\nInjected: header\n", "control characters" },
    };
    json_t *messages = s_messages ();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mesh_backend_config_t cfg = s_openai_config (server.url);
        cfg.api_key_file = cases[i].text ? (char *) s_write_file (cases[i].file, cases[i].text)
                                         : s_path (cases[i].file);
        mesh_backend_t *backend = mesh_backend_new (&cfg);
        assert_non_null (backend);
        mesh_backend_reply_t reply;
        mesh_fail_t why;
        char *detail = NULL;
        assert_int_equal (mesh_backend_call (backend, messages, 16, NULL, "k", &reply, &why,
                                             &detail), -1);
        assert_int_equal (why, MESH_FAIL_MODEL_ERROR);
        assert_non_null (strstr (detail, cases[i].file));
        assert_non_null (strstr (detail, cases[i].why));
        assert_null (strstr (detail, "abc-secret"));
        free (detail);
        mesh_backend_destroy (&backend);
    }
    json_t *requests = s_requests (&server);
    assert_int_equal (json_array_size (requests), 0);           //  nothing was sent
    json_decref (requests);
    json_decref (messages);
    s_server_stop (&server);
}

static void
test_openai_ok (void **state)
{
    (void) state;
    const char *responses = s_write_file ("ok.jsonl",
      "{\"content\": \"{\\\"action\\\":\\\"scale_out\\\"}\", \"completion_tokens\": 11}\n");
    s_server_t server;
    s_server_start (&server, "ok", responses);
    mesh_backend_config_t cfg = s_openai_config (server.url);
    cfg.api_key_file = (char *) s_write_file ("key", "sekret-token\n");
    cfg.temperature = 0.25;
    //  A trailing slash on the URL is fine.
    char url[80];
    snprintf (url, sizeof url, "%s/", server.url);
    cfg.url = url;
    mesh_backend_t *backend = mesh_backend_new (&cfg);
    assert_non_null (backend);
    json_t *messages = s_messages ();
    json_t *schema = s_schema ();
    mesh_backend_reply_t reply;
    mesh_fail_t why = MESH_FAIL_NONE;
    char *detail = NULL;
    int rc = mesh_backend_call (backend, messages, 128, schema, "id/1", &reply, &why, &detail);
    if (rc)
        fail_msg ("call failed: %s", detail);
    assert_string_equal (reply.content, "{\"action\":\"scale_out\"}");
    assert_string_equal (reply.model, "test-model");
    assert_string_equal (reply.finish_reason, "stop");
    assert_false (reply.estimated);
    assert_int_equal (reply.completion_tokens, 11);
    assert_true (reply.prompt_tokens > 0);
    assert_true (reply.latency_ms >= 0);
    mesh_backend_reply_clear (&reply);

    //  What went over the wire.
    json_t *requests = s_requests (&server);
    assert_int_equal (json_array_size (requests), 1);
    json_t *entry = json_array_get (requests, 0);
    assert_string_equal (json_string_value (json_object_get (entry, "authorization")),
                         "Bearer sekret-token");
    json_t *body = json_object_get (entry, "body");
    assert_string_equal (json_string_value (json_object_get (body, "model")), "test-model");
    assert_int_equal (json_integer_value (json_object_get (body, "max_tokens")), 128);
    assert_true (json_real_value (json_object_get (body, "temperature")) == 0.25);
    assert_true (json_is_false (json_object_get (body, "stream")));
    assert_true (json_equal (json_object_get (body, "messages"), messages));
    json_t *format = json_object_get (body, "response_format");
    assert_string_equal (json_string_value (json_object_get (format, "type")), "json_schema");
    json_t *js = json_object_get (format, "json_schema");
    assert_string_equal (json_string_value (json_object_get (js, "name")), "proposal");
    assert_true (json_is_true (json_object_get (js, "strict")));
    assert_true (json_equal (json_object_get (js, "schema"), schema));
    json_decref (requests);

    //  Without a schema (or with json_schema off) no response_format is sent.
    assert_int_equal (mesh_backend_call (backend, messages, 64, NULL, "id/2", &reply, &why,
                                         &detail), 0);
    mesh_backend_reply_clear (&reply);
    requests = s_requests (&server);
    assert_int_equal (json_array_size (requests), 2);
    assert_null (json_object_get (json_object_get (json_array_get (requests, 1), "body"),
                                  "response_format"));
    json_decref (requests);

    json_decref (messages);
    json_decref (schema);
    mesh_backend_destroy (&backend);
    s_server_stop (&server);
}

static void
s_expect_failure (const char *mode, int timeout_ms, mesh_fail_t expected, const char *in_detail)
{
    s_server_t server;
    s_server_start (&server, mode, NULL);
    mesh_backend_config_t cfg = s_openai_config (server.url);
    if (timeout_ms)
        cfg.timeout_ms = timeout_ms;
    mesh_backend_t *backend = mesh_backend_new (&cfg);
    assert_non_null (backend);
    json_t *messages = s_messages ();
    mesh_backend_reply_t reply;
    mesh_fail_t why = MESH_FAIL_NONE;
    char *detail = NULL;
    assert_int_equal (mesh_backend_call (backend, messages, 64, NULL, "id/1", &reply, &why,
                                         &detail), -1);
    assert_int_equal (why, expected);
    assert_non_null (detail);
    if (!strstr (detail, in_detail))
        fail_msg ("mode %s: expected '%s' in detail '%s'", mode, in_detail, detail);
    assert_null (reply.content);
    assert_null (reply.model);
    assert_true (reply.latency_ms >= 0);
    mesh_backend_reply_clear (&reply);
    free (detail);
    json_decref (messages);
    mesh_backend_destroy (&backend);
    s_server_stop (&server);
}

static void
test_openai_500 (void **state)
{
    (void) state;
    s_expect_failure ("500", 0, MESH_FAIL_MODEL_ERROR,
                      "HTTP 500: fake_llm: simulated server error");
}

static void
test_openai_tgi_error_shape (void **state)
{
    (void) state;
    s_expect_failure ("tgi-error", 0, MESH_FAIL_MODEL_ERROR,
                      "HTTP 422: Input validation error: simulated by fake_llm");
}

static void
test_openai_timeout (void **state)
{
    (void) state;
    s_expect_failure ("timeout", 300, MESH_FAIL_MODEL_TIMEOUT, "300 ms");
}

static void
test_openai_malformed (void **state)
{
    (void) state;
    s_expect_failure ("malformed", 0, MESH_FAIL_MODEL_MALFORMED, "not a JSON object");
}

static void
test_openai_connection_refused (void **state)
{
    (void) state;
    //  An ephemeral port that was just free: nothing listens there now.
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    socklen_t len = sizeof addr;
    assert_int_equal (bind (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    assert_int_equal (getsockname (fd, (struct sockaddr *) &addr, &len), 0);
    close (fd);
    char url[64];
    snprintf (url, sizeof url, "http://127.0.0.1:%d", ntohs (addr.sin_port));
    mesh_backend_config_t cfg = s_openai_config (url);
    mesh_backend_t *backend = mesh_backend_new (&cfg);
    json_t *messages = s_messages ();
    mesh_backend_reply_t reply;
    mesh_fail_t why;
    char *detail;
    assert_int_equal (mesh_backend_call (backend, messages, 64, NULL, NULL, &reply, &why,
                                         &detail), -1);
    assert_int_equal (why, MESH_FAIL_MODEL_UNREACHABLE);
    assert_false (reply.sent);
    assert_non_null (detail);
    mesh_backend_reply_clear (&reply);
    free (detail);
    json_decref (messages);
    mesh_backend_destroy (&backend);
}

static void
test_openai_no_usage_estimated (void **state)
{
    (void) state;
    const char *responses = s_write_file ("nu.jsonl", "{\"content\": \"123456789\"}\n");
    s_server_t server;
    s_server_start (&server, "no-usage", responses);
    mesh_backend_config_t cfg = s_openai_config (server.url);
    mesh_backend_t *backend = mesh_backend_new (&cfg);
    json_t *messages = s_messages ();
    mesh_backend_reply_t reply;
    mesh_fail_t why;
    char *detail = NULL;
    assert_int_equal (mesh_backend_call (backend, messages, 64, NULL, "k", &reply, &why, &detail),
                      0);
    assert_true (reply.estimated);
    assert_int_equal (reply.completion_tokens, 3);              //  9 bytes -> 3
    assert_int_equal (reply.prompt_tokens, mesh_backend_estimate_json (messages));
    mesh_backend_reply_clear (&reply);
    json_decref (messages);
    mesh_backend_destroy (&backend);
    s_server_stop (&server);
}

static void
test_openai_reject_schema_retry (void **state)
{
    (void) state;
    const char *responses = s_write_file ("rs.jsonl", "{\"content\": \"fine\"}\n");
    s_server_t server;
    s_server_start (&server, "reject-schema", responses);
    mesh_backend_config_t cfg = s_openai_config (server.url);
    mesh_backend_t *backend = mesh_backend_new (&cfg);
    json_t *messages = s_messages ();
    json_t *schema = s_schema ();
    mesh_backend_reply_t reply;
    mesh_fail_t why;
    char *detail = NULL;
    int rc = mesh_backend_call (backend, messages, 64, schema, "k/1", &reply, &why, &detail);
    if (rc)
        fail_msg ("call failed: %s", detail);
    assert_string_equal (reply.content, "fine");
    assert_true (reply.schema_fallback);
    assert_string_equal (reply.structured, "none");
    mesh_backend_reply_clear (&reply);
    //  An unknown (generic) server: OpenAI's json_schema refused, then TGI's own shape
    //  refused, then the request without response_format, all in the one call.
    json_t *requests = s_requests (&server);
    assert_int_equal (json_array_size (requests), 3);
    json_t *first = json_object_get (json_object_get (json_array_get (requests, 0), "body"),
                                     "response_format");
    json_t *second = json_object_get (json_object_get (json_array_get (requests, 1), "body"),
                                      "response_format");
    assert_string_equal (json_string_value (json_object_get (first, "type")), "json_schema");
    assert_string_equal (json_string_value (json_object_get (second, "type")), "json");
    assert_non_null (json_object_get (second, "value"));
    assert_null (json_object_get (json_object_get (json_array_get (requests, 2), "body"),
                                  "response_format"));
    assert_true (json_is_null (json_object_get (json_array_get (requests, 0), "authorization")));
    json_decref (requests);
    //  Remembered until the next probe: the next call goes straight without it.
    assert_int_equal (mesh_backend_call (backend, messages, 64, schema, "k/2", &reply, &why,
                                         &detail), 0);
    assert_false (reply.schema_fallback);
    mesh_backend_reply_clear (&reply);
    requests = s_requests (&server);
    assert_int_equal (json_array_size (requests), 4);
    assert_null (json_object_get (json_object_get (json_array_get (requests, 3), "body"),
                                  "response_format"));
    json_decref (requests);
    json_decref (messages);
    json_decref (schema);
    mesh_backend_destroy (&backend);
    s_server_stop (&server);
}

//  --- model output: one choice, the transport cap, the limits ---------------------------

//  A NUL or a byte that is not UTF-8 in the content: a reason that says so.
static void
test_openai_nul_and_bad_utf8 (void **state)
{
    (void) state;
    s_expect_failure ("nul", 0, MESH_FAIL_MODEL_MALFORMED, "contains a NUL character");
    s_expect_failure ("bad-utf8", 0, MESH_FAIL_MODEL_MALFORMED, "unable to decode byte 0xff");
}

static void
test_openai_two_choices (void **state)
{
    (void) state;
    s_expect_failure ("two-choices", 0, MESH_FAIL_MODEL_MALFORMED,
                      "response has 2 choices; exactly one was asked for");
}

//  A body over the transport cap is its own class and keeps what arrived, for charging.
static void
test_openai_huge_charged (void **state)
{
    (void) state;
    s_server_t server;
    s_server_start (&server, "huge", NULL);
    mesh_backend_config_t cfg = s_openai_config (server.url);
    mesh_backend_t *backend = mesh_backend_new (&cfg);
    json_t *messages = s_messages ();
    mesh_backend_reply_t reply;
    mesh_fail_t why = MESH_FAIL_NONE;
    char *detail = NULL;
    assert_int_equal (mesh_backend_call (backend, messages, 64, NULL, "id/1", &reply, &why,
                                         &detail), -1);
    assert_int_equal (why, MESH_FAIL_MODEL_OVERSIZE);
    assert_non_null (strstr (detail, "transport cap"));
    assert_true (reply.received_bytes > 1024 * 1024);
    assert_null (reply.content);
    mesh_backend_reply_clear (&reply);
    free (detail);
    json_decref (messages);
    mesh_backend_destroy (&backend);
    s_server_stop (&server);
}

static void
test_openai_finish_reason_kept (void **state)
{
    (void) state;
    s_server_t server;
    s_server_start (&server, "length", NULL);
    mesh_backend_config_t cfg = s_openai_config (server.url);
    mesh_backend_t *backend = mesh_backend_new (&cfg);
    json_t *messages = s_messages ();
    mesh_backend_reply_t reply;
    mesh_fail_t why = MESH_FAIL_NONE;
    char *detail = NULL;
    assert_int_equal (mesh_backend_call (backend, messages, 64, NULL, "id/1", &reply, &why,
                                         &detail), 0);
    assert_string_equal (reply.finish_reason, "length");
    assert_false (mesh_backend_finished (reply.finish_reason));
    mesh_backend_reply_clear (&reply);
    json_decref (messages);
    mesh_backend_destroy (&backend);
    s_server_stop (&server);
}

static void
test_finished (void **state)
{
    (void) state;
    assert_true (mesh_backend_finished (NULL));
    assert_true (mesh_backend_finished ("stop"));
    assert_true (mesh_backend_finished ("stop_sequence"));
    assert_true (mesh_backend_finished ("eos_token"));
    assert_true (mesh_backend_finished ("eos"));
    assert_false (mesh_backend_finished ("length"));
    assert_false (mesh_backend_finished ("content_filter"));
    assert_false (mesh_backend_finished ("abort"));
    assert_false (mesh_backend_finished ("Stop"));
}

//  TEXT scanned under LIMITS: the class, and (if not NONE) a word the detail must hold.
static void
s_expect_scan (const char *text, size_t len, mesh_output_limits_t limits, mesh_fail_t expected,
               const char *in_detail)
{
    char *detail = NULL;
    mesh_fail_t got = mesh_backend_scan (text, len, &limits, &detail);
    if (got != expected)
        fail_msg ("scan of %.40s: expected %d, got %d (%s)", text, expected, got,
                  detail ? detail : "no detail");
    if (expected == MESH_FAIL_NONE)
        assert_null (detail);
    else if (!detail || !strstr (detail, in_detail))
        fail_msg ("scan of %.40s: expected '%s' in '%s'", text, in_detail,
                  detail ? detail : "(null)");
    free (detail);
}

static char *
s_nested (int depth)
{
    char *text = malloc (2 * (size_t) depth + 1);
    for (int i = 0; i < depth; i++) {
        text[i] = '[';
        text[2 * depth - 1 - i] = ']';
    }
    text[2 * depth] = 0;
    return text;
}

static void
test_scan_limits (void **state)
{
    (void) state;
    mesh_output_limits_t none = { 0 };          //  the defaults
    const char *ok = "{\"action\":\"escalate\",\"params\":{\"summary\":\"a \\\" b\"}}";
    s_expect_scan (ok, strlen (ok), none, MESH_FAIL_NONE, NULL);
    //  Not JSON is the parser's business, not the scan's.
    s_expect_scan ("not json", 8, none, MESH_FAIL_NONE, NULL);

    //  Depth: 32 passes, 33 and 2,000 do not (and the scan stops at the limit).
    char *deep = s_nested (32);
    s_expect_scan (deep, strlen (deep), none, MESH_FAIL_NONE, NULL);
    free (deep);
    deep = s_nested (33);
    s_expect_scan (deep, strlen (deep), none, MESH_FAIL_MODEL_OVERSIZE, "limits.max_depth");
    free (deep);
    deep = s_nested (2000);
    s_expect_scan (deep, strlen (deep), none, MESH_FAIL_MODEL_OVERSIZE, "deeper than 32");
    free (deep);
    //  Brackets inside strings are not nesting.
    s_expect_scan ("{\"a\":\"[[[[[[\"}", 14, (mesh_output_limits_t) { .max_depth = 1 },
                   MESH_FAIL_NONE, NULL);

    //  Bytes: 64 KiB by default, before anything is scanned.
    size_t big = 65537;
    char *text = malloc (big + 1);
    memset (text, ' ', big);
    text[big] = 0;
    s_expect_scan (text, big, none, MESH_FAIL_MODEL_OVERSIZE, "limits.max_bytes");
    s_expect_scan (text, 65536, none, MESH_FAIL_NONE, NULL);
    s_expect_scan (text, 100, (mesh_output_limits_t) { .max_bytes = 99 },
                   MESH_FAIL_MODEL_OVERSIZE, "100 bytes, over the limit of 99");
    free (text);

    //  Keys: colons outside strings; one inside a string is not a key.
    s_expect_scan ("{\"a\":1,\"b\":2,\"c\":\":::\"}", 23,
                   (mesh_output_limits_t) { .max_keys = 3 }, MESH_FAIL_NONE, NULL);
    s_expect_scan ("{\"a\":1,\"b\":2,\"c\":3,\"d\":4}", 25,
                   (mesh_output_limits_t) { .max_keys = 3 }, MESH_FAIL_MODEL_OVERSIZE,
                   "more than 3 object keys");

    //  Strings, as written.
    s_expect_scan ("[\"abcd\"]", 8, (mesh_output_limits_t) { .max_string = 4 }, MESH_FAIL_NONE,
                   NULL);
    s_expect_scan ("[\"abcde\"]", 9, (mesh_output_limits_t) { .max_string = 4 },
                   MESH_FAIL_MODEL_OVERSIZE, "string of 5 bytes");

    //  Bytes the parser would refuse with a less useful message.
    s_expect_scan ("{\"a\":\"x\0y\"}", 11, none, MESH_FAIL_MODEL_MALFORMED, "NUL byte at offset 7");
    s_expect_scan ("{\"a\":\"\xff\"}", 9, none, MESH_FAIL_MODEL_MALFORMED,
                   "not valid UTF-8 at byte offset 6");
    s_expect_scan ("\xc0\x80", 2, none, MESH_FAIL_MODEL_MALFORMED, "not valid UTF-8");
    s_expect_scan ("\xed\xa0\x80", 3, none, MESH_FAIL_MODEL_MALFORMED, "not valid UTF-8");
    s_expect_scan ("{\"a\":\"\\u0000\"}", 14, none, MESH_FAIL_MODEL_MALFORMED,
                   "escaped NUL");
    s_expect_scan ("{\"a\":\"caf\xc3\xa9\"}", 13, none, MESH_FAIL_NONE, NULL);
}

//  --- main ------------------------------------------------------------------------------

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
    char command[200];
    snprintf (command, sizeof command, "rm -rf '%s'", s_dir);
    return system (command) == 0 ? 0 : -1;
}

int
main (void)
{
    signal (SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_scripted_deterministic),
        cmocka_unit_test (test_scripted_steps_independent),
        cmocka_unit_test (test_scripted_bad_files),
        cmocka_unit_test (test_call_contract),
        cmocka_unit_test (test_openai_bad_config),
        cmocka_unit_test (test_openai_bad_key_file),
        cmocka_unit_test (test_openai_ok),
        cmocka_unit_test (test_openai_500),
        cmocka_unit_test (test_openai_tgi_error_shape),
        cmocka_unit_test (test_openai_timeout),
        cmocka_unit_test (test_openai_malformed),
        cmocka_unit_test (test_openai_connection_refused),
        cmocka_unit_test (test_openai_no_usage_estimated),
        cmocka_unit_test (test_openai_reject_schema_retry),
        cmocka_unit_test (test_openai_two_choices),
        cmocka_unit_test (test_openai_nul_and_bad_utf8),
        cmocka_unit_test (test_openai_huge_charged),
        cmocka_unit_test (test_openai_finish_reason_kept),
        cmocka_unit_test (test_finished),
        cmocka_unit_test (test_scan_limits),
    };
    return cmocka_run_group_tests_name ("backend", tests, s_setup, s_teardown);
}
