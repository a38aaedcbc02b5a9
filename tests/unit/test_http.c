/*  test_http - the HTTP listener's route API (daemon/http/http.c).
 *
 *  Usage example: make a listener on a free loopback port, register routes, serve it from
 *  a thread that calls mesh_http_wait as the main loop does, and ask it with libcurl: the
 *  longest prefix wins, "/" is the fallback, a handler's -1 is 404, the query reaches the
 *  handler raw, a route's CSP replaces the default, HEAD is served, other methods are 405
 *  with Allow, and every answer has the security headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <czmq.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    mesh_http_t *http;
    pthread_t thread;
    atomic_bool stop;
    int port;
    char seen_query[256];
    char seen_path[256];
} fixture_t;

static void *
s_serve (void *arg)
{
    fixture_t *fx = arg;
    while (!atomic_load (&fx->stop))
        mesh_http_wait (fx->http, NULL, 0, 20);
    return NULL;
}

//  Answers "<NAME> <path>" as text; NAME is the route's arg.
static int
s_named (void *arg, const char *path, const char *query, mesh_http_reply_t *reply)
{
    reply->status = 200;
    reply->content_type = "text/plain";
    reply->body = zsys_sprintf ("%s %s", (const char *) arg, path);
    reply->len = strlen (reply->body);
    return 0;
}

static fixture_t *s_fx;

static int
s_recorder (void *arg, const char *path, const char *query, mesh_http_reply_t *reply)
{
    snprintf (s_fx->seen_path, sizeof s_fx->seen_path, "%s", path);
    snprintf (s_fx->seen_query, sizeof s_fx->seen_query, "%s", query);
    reply->status = 202;
    reply->content_type = "application/json";
    reply->body = strdup ("{}");
    reply->len = 2;
    reply->csp = "default-src 'self'";
    return 0;
}

static int
s_not_mine (void *arg, const char *path, const char *query, mesh_http_reply_t *reply)
{
    return -1;
}

static int
s_setup (void **state)
{
    fixture_t *fx = calloc (1, sizeof *fx);
    mesh_config_t cfg = {0};
    cfg.http_address = "127.0.0.1";
    cfg.http_max_connections = 8;
    cfg.http_max_connections_per_ip = 8;
    cfg.http_timeout_s = 5;
    cfg.http_max_request_bytes = 4096;
    char why[256] = "";
    for (int attempt = 0; attempt < 20 && !fx->http; attempt++) {
        cfg.http_port = 20000 + (int) (randof (30000));
        fx->http = mesh_http_new (&cfg, why, sizeof why);
    }
    assert_non_null (fx->http);
    fx->port = cfg.http_port;
    s_fx = fx;
    *state = fx;
    return 0;
}

static void
s_start (fixture_t *fx)
{
    assert_int_equal (pthread_create (&fx->thread, NULL, s_serve, fx), 0);
}

static int
s_teardown (void **state)
{
    fixture_t *fx = *state;
    atomic_store (&fx->stop, true);
    pthread_join (fx->thread, NULL);
    mesh_http_destroy (&fx->http);
    assert_null (fx->http);
    free (fx);
    return 0;
}

typedef struct {
    char body[4096];
    size_t len;
    char headers[4096];
    size_t hlen;
} s_answer_t;

static size_t
s_body_cb (char *data, size_t size, size_t n, void *arg)
{
    s_answer_t *a = arg;
    size_t take = size * n;
    if (a->len + take < sizeof a->body) {
        memcpy (a->body + a->len, data, take);
        a->len += take;
        a->body[a->len] = 0;
    }
    return size * n;
}

static size_t
s_header_cb (char *data, size_t size, size_t n, void *arg)
{
    s_answer_t *a = arg;
    size_t take = size * n;
    if (a->hlen + take < sizeof a->headers) {
        memcpy (a->headers + a->hlen, data, take);
        a->hlen += take;
        a->headers[a->hlen] = 0;
    }
    return size * n;
}

//  METHOD (NULL: GET) on PATH: the status, with the answer in A.
static long
s_ask (fixture_t *fx, const char *method, const char *path, s_answer_t *a)
{
    memset (a, 0, sizeof *a);
    CURL *curl = curl_easy_init ();
    char url[512];
    snprintf (url, sizeof url, "http://127.0.0.1:%d%s", fx->port, path);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_body_cb);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, a);
    curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, s_header_cb);
    curl_easy_setopt (curl, CURLOPT_HEADERDATA, a);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, 5000L);
    if (method && !strcmp (method, "HEAD"))
        curl_easy_setopt (curl, CURLOPT_NOBODY, 1L);
    else
    if (method)
        curl_easy_setopt (curl, CURLOPT_CUSTOMREQUEST, method);
    long code = 0;
    if (curl_easy_perform (curl) == CURLE_OK)
        curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup (curl);
    return code;
}

static bool
s_has_header (const s_answer_t *a, const char *line)
{
    return strcasestr (a->headers, line) != NULL;
}

static void
test_routes (void **state)
{
    fixture_t *fx = *state;
    mesh_http_t *http = fx->http;
    assert_int_equal (mesh_http_route (http, "/", s_named, "root"), 0);
    assert_int_equal (mesh_http_route (http, "/metrics", s_named, "metrics"), 0);
    assert_int_equal (mesh_http_route (http, "/decision/", s_named, "decision"), 0);
    assert_int_equal (mesh_http_route (http, "/api", s_recorder, NULL), 0);
    assert_int_equal (mesh_http_route (http, "/none", s_not_mine, NULL), 0);
    assert_int_equal (mesh_http_route (http, "bad", s_named, "x"), -1);
    assert_int_equal (mesh_http_route (http, "/x", NULL, NULL), -1);
    //  The same prefix again replaces the handler.
    assert_int_equal (mesh_http_route (http, "/metrics", s_named, "metrics2"), 0);
    char bound[64];
    snprintf (bound, sizeof bound, "127.0.0.1:%d", fx->port);
    assert_string_equal (mesh_http_bound (http), bound);
    s_start (fx);

    s_answer_t a;
    assert_int_equal (s_ask (fx, NULL, "/metrics", &a), 200);
    assert_string_equal (a.body, "metrics2 /metrics");
    assert_true (s_has_header (&a, "X-Content-Type-Options: nosniff"));
    assert_true (s_has_header (&a, "Cache-Control: no-store"));
    assert_true (s_has_header (&a, "Content-Security-Policy: default-src 'none'"));
    //  Below a prefix: "/metrics/x" is /metrics's; "/metricsx" is not (the fallback's).
    assert_int_equal (s_ask (fx, NULL, "/metrics/x", &a), 200);
    assert_string_equal (a.body, "metrics2 /metrics/x");
    assert_int_equal (s_ask (fx, NULL, "/metricsx", &a), 200);
    assert_string_equal (a.body, "root /metricsx");
    assert_int_equal (s_ask (fx, NULL, "/decision/abc", &a), 200);
    assert_string_equal (a.body, "decision /decision/abc");
    assert_int_equal (s_ask (fx, NULL, "/", &a), 200);
    assert_string_equal (a.body, "root /");
    //  The raw query, the handler's status, type and CSP.
    assert_int_equal (s_ask (fx, NULL, "/api/v1?a=1&b=%20x", &a), 202);
    assert_string_equal (fx->seen_path, "/api/v1");
    assert_string_equal (fx->seen_query, "a=1&b=%20x");
    assert_true (s_has_header (&a, "Content-Type: application/json"));
    assert_true (s_has_header (&a, "Content-Security-Policy: default-src 'self'"));
    assert_int_equal (s_ask (fx, NULL, "/api", &a), 202);
    assert_string_equal (fx->seen_query, "");
    //  -1: 404.
    assert_int_equal (s_ask (fx, NULL, "/none", &a), 404);
    //  HEAD served, without a body; other methods 405 with Allow.
    assert_int_equal (s_ask (fx, "HEAD", "/metrics", &a), 200);
    assert_int_equal (a.len, 0);
    assert_int_equal (s_ask (fx, "POST", "/metrics", &a), 405);
    assert_true (s_has_header (&a, "Allow: GET, HEAD"));
    assert_int_equal (s_ask (fx, "DELETE", "/", &a), 405);

    mesh_http_stats_t stats;
    mesh_http_stats (http, &stats);
    assert_int_equal (stats.requests, 8);
    assert_int_equal (stats.refused, 3);
    assert_true (stats.connections >= 1);
}

static void
test_no_fallback_is_404 (void **state)
{
    fixture_t *fx = *state;
    assert_int_equal (mesh_http_route (fx->http, "/healthz", s_named, "h"), 0);
    s_start (fx);
    s_answer_t a;
    assert_int_equal (s_ask (fx, NULL, "/healthz", &a), 200);
    assert_int_equal (s_ask (fx, NULL, "/", &a), 404);
    assert_int_equal (s_ask (fx, NULL, "/other", &a), 404);
    assert_true (s_has_header (&a, "X-Content-Type-Options: nosniff"));
}

//  A taken port: NULL, and the reason names address:port.
static void
test_taken_port (void **state)
{
    fixture_t *fx = *state;
    s_start (fx);
    mesh_config_t cfg = {0};
    cfg.http_address = "127.0.0.1";
    cfg.http_port = fx->port;
    cfg.http_max_connections = 1;
    cfg.http_max_connections_per_ip = 1;
    cfg.http_timeout_s = 1;
    cfg.http_max_request_bytes = 1024;
    char why[256] = "";
    assert_null (mesh_http_new (&cfg, why, sizeof why));
    char want[64];
    snprintf (want, sizeof want, "cannot listen on 127.0.0.1:%d", fx->port);
    assert_non_null (strstr (why, want));
}

//  An IPv6 address: bound and served (skipped where the host has no IPv6 loopback).
static void
test_ipv6 (void **state)
{
    fixture_t *fx = *state;
    mesh_config_t cfg = {0};
    cfg.http_address = "::1";
    cfg.http_max_connections = 2;
    cfg.http_max_connections_per_ip = 2;
    cfg.http_timeout_s = 5;
    cfg.http_max_request_bytes = 4096;
    char why[256] = "";
    mesh_http_t *v6 = NULL;
    for (int attempt = 0; attempt < 20 && !v6; attempt++) {
        cfg.http_port = 20000 + (int) (randof (30000));
        v6 = mesh_http_new (&cfg, why, sizeof why);
        if (!v6 && strstr (why, "Cannot assign requested address"))
            skip ();
    }
    assert_non_null (v6);
    char bound[64];
    snprintf (bound, sizeof bound, "[::1]:%d", cfg.http_port);
    assert_string_equal (mesh_http_bound (v6), bound);
    //  Served by the fixture's thread in place of its own listener.
    atomic_store (&fx->stop, true);
    s_start (fx);
    pthread_join (fx->thread, NULL);
    mesh_http_destroy (&fx->http);
    fx->http = v6;
    atomic_store (&fx->stop, false);
    assert_int_equal (mesh_http_route (v6, "/healthz", s_named, "v6"), 0);
    s_start (fx);
    s_answer_t a;
    memset (&a, 0, sizeof a);
    CURL *curl = curl_easy_init ();
    char url[128];
    snprintf (url, sizeof url, "http://[::1]:%d/healthz", cfg.http_port);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_body_cb);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, 5000L);
    long code = 0;
    if (curl_easy_perform (curl) == CURLE_OK)
        curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup (curl);
    assert_int_equal (code, 200);
    assert_string_equal (a.body, "v6 /healthz");
}

int
main (void)
{
    curl_global_init (CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_routes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_no_fallback_is_404, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_taken_port, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_ipv6, s_setup, s_teardown),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    curl_global_cleanup ();
    return rc;
}
