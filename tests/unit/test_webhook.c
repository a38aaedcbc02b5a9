/*  test_webhook - the signed webhook delivery (agents/act/webhook.c).
 *
 *  The signature against a fixed vector and two independent computations; the address
 *  check over every denied range, IPv4, IPv6 and IPv4-mapped, with allow_private on and
 *  off; deliveries against tests/helpers/webhook_sink started as a process per test
 *  (the real path: getaddrinfo, libcurl, sockets), using $WEBHOOK_SINK, else
 *  $B/tests/webhook_sink (B defaults to build), else a copy compiled into the test's
 *  temporary directory with tests/cc.sh.  Specs are filled by hand, as the config
 *  would fill them.  Run from the repository root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "webhook.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char s_dir[] = "/tmp/test_webhook.XXXXXX";
static char s_sink_path[4096];

#define S_SECRET "whsec-test-secret-0123456789"

//  --- helpers ---------------------------------------------------------------------------

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
s_write_file (const char *name, const char *text, size_t len)
{
    const char *path = s_path (name);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    assert_int_equal (fwrite (text, 1, len, file), len);
    fclose (file);
    return path;
}

static long
s_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1000L + now.tv_nsec / 1000000;
}

static void
s_find_sink (void)
{
    const char *env = getenv ("WEBHOOK_SINK");
    if (env && access (env, X_OK) == 0) {
        snprintf (s_sink_path, sizeof s_sink_path, "%s", env);
        return;
    }
    const char *build = getenv ("B") ? getenv ("B") : "build";
    snprintf (s_sink_path, sizeof s_sink_path, "%s/tests/webhook_sink", build);
    if (access (s_sink_path, X_OK) == 0)
        return;
    snprintf (s_sink_path, sizeof s_sink_path, "%s/webhook_sink", s_dir);
    char command[8500];
    snprintf (command, sizeof command, "tests/cc.sh %s tests/helpers/webhook_sink.c",
              s_sink_path);
    assert_int_equal (system (command), 0);
}

typedef struct {
    pid_t pid;
    int port;
    char log[4200];
    char secret[4200];
} s_sink_t;

//  Start webhook_sink in MODE with the secret in SECRET_FILE (NULL: the default secret
//  written afresh) and EXTRA arguments (NULL-terminated, may be NULL).
static void
s_sink_start (s_sink_t *sink, const char *mode, const char *secret_file, const char *const *extra)
{
    static int serial;
    char port_file[4200];
    snprintf (port_file, sizeof port_file, "%s/port.%d", s_dir, serial);
    snprintf (sink->log, sizeof sink->log, "%s/sink.%d.log", s_dir, serial);
    if (secret_file)
        snprintf (sink->secret, sizeof sink->secret, "%s", secret_file);
    else {
        char name[64];
        snprintf (name, sizeof name, "secret.%d", serial);
        snprintf (sink->secret, sizeof sink->secret, "%s",
                  s_write_file (name, S_SECRET "\n", strlen (S_SECRET) + 1));
    }
    serial++;
    unlink (port_file);
    unlink (sink->log);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        char *argv[32] = { s_sink_path, "--port-file", port_file, "--secret-file", sink->secret,
                           "--log", sink->log, "--mode", (char *) mode };
        int argc = 9;
        for (int i = 0; extra && extra[i] && argc < 31; i++)
            argv[argc++] = (char *) extra[i];
        argv[argc] = NULL;
        execv (s_sink_path, argv);
        _exit (127);
    }
    sink->pid = pid;
    //  Wait for the port file (a startup wait, not a timing assertion).
    for (int i = 0; i < 1000; i++) {
        FILE *file = fopen (port_file, "r");
        if (file) {
            int ok = fscanf (file, "%d", &sink->port);
            fclose (file);
            if (ok == 1 && sink->port > 0)
                return;
        }
        int status;
        assert_int_equal (waitpid (pid, &status, WNOHANG), 0);     //  still alive
        usleep (10000);
    }
    fail_msg ("webhook_sink did not start");
}

static void
s_sink_stop (s_sink_t *sink)
{
    kill (sink->pid, SIGTERM);
    int status = 0;
    assert_int_equal (waitpid (sink->pid, &status, 0), sink->pid);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
}

//  The sink's log as a JSON array (empty if it wrote nothing).
static json_t *
s_sink_log (const s_sink_t *sink)
{
    json_t *list = json_array ();
    FILE *file = fopen (sink->log, "r");
    if (!file)
        return list;
    char line[262144];
    while (fgets (line, sizeof line, file)) {
        json_t *entry = json_loads (line, 0, NULL);
        assert_non_null (entry);
        json_array_append_new (list, entry);
    }
    fclose (file);
    return list;
}

static char s_url[300];

static const char *
s_sink_url (const s_sink_t *sink, const char *host)
{
    snprintf (s_url, sizeof s_url, "http://%s:%d/hooks/meshd", host, sink->port);
    return s_url;
}

//  A spec as the config would fill it: loopback allowed (the sink is there), http
//  allowed (the sink has no TLS), short backoff.
static mesh_action_spec_t
s_spec (const char *url, const char *secret_file)
{
    mesh_action_spec_t spec;
    memset (&spec, 0, sizeof spec);
    spec.name = "notify";
    spec.kind = MESH_ACTION_WEBHOOK;
    spec.webhook.url = (char *) url;
    spec.webhook.allow_http = true;
    spec.webhook.allow_private = true;
    spec.webhook.secret_file = (char *) secret_file;
    spec.webhook.timeout_ms = 10000;
    spec.webhook.connect_timeout_ms = 3000;
    spec.webhook.attempts = 3;
    spec.webhook.retry_base_ms = 10;
    spec.webhook.retry_max_ms = 50;
    spec.webhook.excerpt_bytes = 1024;
    return spec;
}

static json_t *
s_body (const char *id)
{
    return json_pack ("{s:s, s:s, s:s, s:{s:s}, s:s, s:i}", "id", id, "agent", "payments",
                      "action", "notify", "params", "service", "checkout", "summary",
                      "error rate 12% over 5 min", "time", 1700000000);
}

static int
s_deliver (const mesh_action_spec_t *spec, const char *id, json_t **outcome)
{
    json_t *body = s_body (id);
    int rc = mesh_webhook_deliver (spec, id, body, outcome);
    json_decref (body);
    assert_non_null (*outcome);
    return rc;
}

static long
s_status (json_t *outcome)
{
    json_t *status = json_object_get (outcome, "status_code");
    return json_is_null (status) ? 0 : (long) json_integer_value (status);
}

static long
s_attempts (json_t *outcome)
{
    return (long) json_integer_value (json_object_get (outcome, "attempts"));
}

static const char *
s_detail (json_t *outcome)
{
    const char *detail = json_string_value (json_object_get (outcome, "detail"));
    assert_non_null (detail);
    assert_null (strchr (detail, '\n'));
    return detail;
}

//  Refused before any connection: -1, nothing sent, no address, no attempt.
static void
s_expect_refused (const mesh_action_spec_t *spec, const s_sink_t *sink, const char *needle)
{
    json_t *outcome = NULL;
    assert_int_equal (s_deliver (spec, "dec-refused", &outcome), -1);
    assert_int_equal (s_attempts (outcome), 0);
    assert_true (json_is_null (json_object_get (outcome, "status_code")));
    assert_true (json_is_null (json_object_get (outcome, "address")));
    assert_true (json_is_null (json_object_get (outcome, "response")));
    if (!strstr (s_detail (outcome), needle))
        fail_msg ("detail \"%s\" does not name \"%s\"", s_detail (outcome), needle);
    json_decref (outcome);
    if (sink) {
        json_t *log = s_sink_log (sink);
        assert_int_equal (json_array_size (log), 0);
        json_decref (log);
    }
}

//  HMAC-SHA256 written out from SHA-256 (RFC 2104), independent of libsodium's HMAC.
static void
s_hmac_by_hand (const unsigned char *key, size_t key_len, const unsigned char *data,
                size_t len, unsigned char mac[32])
{
    unsigned char block[64] = { 0 }, pad[64], inner[32];
    if (key_len > 64)
        crypto_hash_sha256 (block, key, key_len);
    else
        memcpy (block, key, key_len);
    crypto_hash_sha256_state state;
    for (int i = 0; i < 64; i++)
        pad[i] = block[i] ^ 0x36;
    crypto_hash_sha256_init (&state);
    crypto_hash_sha256_update (&state, pad, 64);
    crypto_hash_sha256_update (&state, data, len);
    crypto_hash_sha256_final (&state, inner);
    for (int i = 0; i < 64; i++)
        pad[i] = block[i] ^ 0x5c;
    crypto_hash_sha256_init (&state);
    crypto_hash_sha256_update (&state, pad, 64);
    crypto_hash_sha256_update (&state, inner, 32);
    crypto_hash_sha256_final (&state, mac);
}

//  --- the signature ---------------------------------------------------------------------

static void
test_sign_known_answer (void **state)
{
    (void) state;
    char out[65];
    //  Fixed vectors, computed outside this code base (Python's hmac module).
    const char *body = "{\"id\":\"d-1\",\"n\":1}";
    mesh_webhook_sign ((const unsigned char *) "whsec-test", 10, 1700000000, body,
                       strlen (body), out);
    assert_string_equal (out, "541b2b23f331a406147b0beb8583a9bd6d8e4f8ec2a173325cdf7a8f31f9e51a");
    const char *text = "what do ya want for nothing?";
    mesh_webhook_sign ((const unsigned char *) "Jefe", 4, 0, text, strlen (text), out);
    assert_string_equal (out, "37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc");

    //  A 32-byte key: libsodium's one-shot HMAC over the concatenation.
    unsigned char key[crypto_auth_hmacsha256_KEYBYTES];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (unsigned char) (i * 7 + 1);
    const char *payload = "{\"action\":\"notify\",\"id\":\"dec-42\"}";
    char joined[256];
    int joined_len = snprintf (joined, sizeof joined, "%ld.%s", 1712345678L, payload);
    unsigned char mac[32];
    crypto_auth_hmacsha256 (mac, (const unsigned char *) joined, (size_t) joined_len, key);
    char expected[65];
    sodium_bin2hex (expected, sizeof expected, mac, sizeof mac);
    mesh_webhook_sign (key, sizeof key, 1712345678L, payload, strlen (payload), out);
    assert_string_equal (out, expected);

    //  Keys of other lengths (short, and longer than SHA-256's block, which is hashed
    //  first): HMAC written out by hand.
    size_t lengths[] = { 1, 5, 64, 65, 200, 4096 };
    static unsigned char long_key[4096];
    for (size_t i = 0; i < sizeof long_key; i++)
        long_key[i] = (unsigned char) (i * 31 + 3);
    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
        s_hmac_by_hand (long_key, lengths[k], (const unsigned char *) joined,
                        (size_t) joined_len, mac);
        sodium_bin2hex (expected, sizeof expected, mac, sizeof mac);
        mesh_webhook_sign (long_key, lengths[k], 1712345678L, payload, strlen (payload), out);
        assert_string_equal (out, expected);
    }
    //  The format: 64 lowercase hex digits.
    assert_int_equal (strlen (out), 64);
    assert_int_equal (strspn (out, "0123456789abcdef"), 64);
    //  A different timestamp or body is a different signature.
    char other[65];
    mesh_webhook_sign (long_key, 200, 1712345679L, payload, strlen (payload), other);
    assert_string_not_equal (out, other);
    mesh_webhook_sign (long_key, 200, 1712345678L, payload, strlen (payload) - 1, other);
    assert_string_not_equal (out, other);
}

//  --- the address check -----------------------------------------------------------------

static bool
s_allowed (const char *text, bool allow_private)
{
    struct sockaddr_storage storage;
    memset (&storage, 0, sizeof storage);
    struct sockaddr_in *in = (struct sockaddr_in *) &storage;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &storage;
    if (inet_pton (AF_INET, text, &in->sin_addr) == 1)
        in->sin_family = AF_INET;
    else if (inet_pton (AF_INET6, text, &in6->sin6_addr) == 1)
        in6->sin6_family = AF_INET6;
    else
        fail_msg ("bad address in the test: %s", text);
    bool allowed = mesh_webhook_address_allowed ((struct sockaddr *) &storage, allow_private);
    //  The reason agrees with the verdict.
    assert_true (allowed
                 == (mesh_webhook_address_denied ((struct sockaddr *) &storage, allow_private)
                     == NULL));
    return allowed;
}

static void
test_address_ranges (void **state)
{
    (void) state;
    //  Denied even with allow_private.
    const char *never[] = {
        "0.0.0.0", "0.1.2.3", "0.255.255.255", "169.254.169.254", "169.254.0.1",
        "169.254.255.255", "100.100.100.200", "224.0.0.1", "239.255.255.250", "240.0.0.1",
        "255.255.255.255", "::", "fe80::1", "fe80::a9fe:a9fe", "febf:ffff::1", "fd00:ec2::254",
        "ff02::1", "ff05::2", "::ffff:169.254.169.254", "::ffff:0.0.0.0", "::ffff:0.1.2.3",
        "::ffff:100.100.100.200", "::ffff:224.0.0.251", "::169.254.169.254",
        "64:ff9b::a9fe:a9fe", "64:ff9b::100.100.100.200", NULL
    };
    for (int i = 0; never[i]; i++) {
        if (s_allowed (never[i], true) || s_allowed (never[i], false))
            fail_msg ("%s is allowed", never[i]);
    }
    //  Denied unless allow_private.
    const char *private[] = {
        "127.0.0.1", "127.255.255.254", "10.0.0.1", "10.255.255.255", "172.16.0.1",
        "172.31.255.255", "192.168.0.1", "192.168.255.255", "100.64.0.1", "100.127.255.255",
        "::1", "fc00::1", "fd12:3456:789a::1", "fdff:ffff::1", "fec0::1",
        "::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:172.20.0.1", "::ffff:192.168.1.1",
        "::ffff:100.64.0.1", "::127.0.0.1", "64:ff9b::10.0.0.1",
        "100.100.100.199", "100.100.100.201",       //  next to the metadata address, in CGNAT
        NULL
    };
    for (int i = 0; private[i]; i++) {
        if (s_allowed (private[i], false))
            fail_msg ("%s is allowed without allow_private", private[i]);
        if (!s_allowed (private[i], true))
            fail_msg ("%s is denied with allow_private", private[i]);
    }
    //  Public: allowed either way, including just outside each range.
    const char *public[] = {
        "8.8.8.8", "1.1.1.1", "1.0.0.0", "9.255.255.255", "11.0.0.0", "126.255.255.255",
        "128.0.0.0", "169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0",
        "192.167.255.255", "192.169.0.0", "100.63.255.255", "100.128.0.0",
        "223.255.255.255", "2606:4700:4700::1111",
        "2001:4860:4860::8888", "2a00:1450::1", "fbff::1", "fe00::1", "::ffff:8.8.8.8",
        "64:ff9b::808:808", "fd00:ec2::253", NULL
    };
    for (int i = 0; public[i]; i++) {
        bool expect_private_only = !strcmp (public[i], "fd00:ec2::253"); //  in fc00::/7
        if (!s_allowed (public[i], true))
            fail_msg ("%s is denied with allow_private", public[i]);
        if (s_allowed (public[i], false) == expect_private_only)
            fail_msg ("%s: wrong verdict without allow_private", public[i]);
    }
    //  Reasons name the range.
    struct sockaddr_in in = { .sin_family = AF_INET };
    inet_pton (AF_INET, "169.254.169.254", &in.sin_addr);
    assert_non_null (strstr (mesh_webhook_address_denied ((struct sockaddr *) &in, true),
                             "metadata"));
    inet_pton (AF_INET, "127.0.0.1", &in.sin_addr);
    assert_non_null (strstr (mesh_webhook_address_denied ((struct sockaddr *) &in, false),
                             "loopback"));
    //  Not an IP address at all.
    struct sockaddr unix_like = { .sa_family = AF_UNIX };
    assert_false (mesh_webhook_address_allowed (&unix_like, true));
}

//  --- deliveries ------------------------------------------------------------------------

static void
test_deliver_ok (void **state)
{
    (void) state;
    s_sink_t sink;
    s_sink_start (&sink, "ok", NULL, NULL);
    mesh_action_spec_t spec = s_spec (s_sink_url (&sink, "127.0.0.1"), sink.secret);
    char *headers[] = { "X-Team: ops", "X-Receiver-Route: blue" };
    spec.webhook.headers = headers;
    spec.webhook.header_count = 2;
    json_t *outcome = NULL;
    long before = (long) time (NULL);
    assert_int_equal (s_deliver (&spec, "dec-0001", &outcome), 0);
    long after = (long) time (NULL);
    assert_int_equal (s_status (outcome), 200);
    assert_int_equal (s_attempts (outcome), 1);
    assert_string_equal (json_string_value (json_object_get (outcome, "address")), "127.0.0.1");
    assert_string_equal (json_string_value (json_object_get (outcome, "response")),
                         "{\"received\":true}");
    assert_non_null (strstr (s_detail (outcome), "delivered: 200"));
    assert_null (strstr (s_detail (outcome), "/hooks/meshd"));     //  never the path
    json_decref (outcome);
    s_sink_stop (&sink);

    json_t *log = s_sink_log (&sink);
    assert_int_equal (json_array_size (log), 1);
    json_t *entry = json_array_get (log, 0);
    assert_true (json_is_true (json_object_get (entry, "ok")));
    assert_true (json_is_true (json_object_get (entry, "signature_ok")));
    assert_string_equal (json_string_value (json_object_get (entry, "idempotency_key")),
                         "dec-0001");
    assert_string_equal (json_string_value (json_object_get (entry, "decision")), "dec-0001");
    assert_string_equal (json_string_value (json_object_get (entry, "method")), "POST");
    assert_string_equal (json_string_value (json_object_get (entry, "path")), "/hooks/meshd");
    long ts = (long) json_integer_value (json_object_get (entry, "timestamp"));
    assert_true (ts >= before && ts <= after);
    json_t *body = s_body ("dec-0001");
    assert_true (json_equal (json_object_get (entry, "body"), body));
    json_decref (body);
    json_t *h = json_object_get (entry, "headers");
    assert_string_equal (json_string_value (json_object_get (h, "content-type")),
                         "application/json");
    assert_string_equal (json_string_value (json_object_get (h, "user-agent")), "meshd");
    assert_string_equal (json_string_value (json_object_get (h, "x-team")), "ops");
    assert_string_equal (json_string_value (json_object_get (h, "x-receiver-route")), "blue");
    assert_null (json_object_get (h, "expect"));
    const char *signature = json_string_value (json_object_get (h, "x-mesh-signature"));
    assert_non_null (signature);
    assert_int_equal (strlen (signature), 67);
    assert_memory_equal (signature, "v1=", 3);
    assert_int_equal (strspn (signature + 3, "0123456789abcdef"), 64);
    char ts_text[32];
    snprintf (ts_text, sizeof ts_text, "%ld", ts);
    assert_string_equal (json_string_value (json_object_get (h, "x-mesh-timestamp")), ts_text);
    json_decref (log);
}

//  "localhost" with allow_private: resolved by us, pinned, delivered.
static void
test_deliver_localhost_pinned (void **state)
{
    (void) state;
    s_sink_t sink;
    s_sink_start (&sink, "ok", NULL, NULL);
    mesh_action_spec_t spec = s_spec (s_sink_url (&sink, "localhost"), sink.secret);
    json_t *outcome = NULL;
    assert_int_equal (s_deliver (&spec, "dec-local", &outcome), 0);
    assert_int_equal (s_status (outcome), 200);
    assert_string_equal (json_string_value (json_object_get (outcome, "address")), "127.0.0.1");
    json_decref (outcome);
    s_sink_stop (&sink);
}

static void
test_deliver_fail_once (void **state)
{
    (void) state;
    s_sink_t sink;
    s_sink_start (&sink, "fail-once", NULL, NULL);
    mesh_action_spec_t spec = s_spec (s_sink_url (&sink, "127.0.0.1"), sink.secret);
    json_t *outcome = NULL;
    assert_int_equal (s_deliver (&spec, "dec-retry-7", &outcome), 0);
    assert_int_equal (s_status (outcome), 200);
    assert_int_equal (s_attempts (outcome), 2);
    json_decref (outcome);
    s_sink_stop (&sink);
    json_t *log = s_sink_log (&sink);
    assert_int_equal (json_array_size (log), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *entry = json_array_get (log, i);
        assert_true (json_is_true (json_object_get (entry, "signature_ok")));
        assert_string_equal (json_string_value (json_object_get (entry, "idempotency_key")),
                             "dec-retry-7");
        assert_int_equal (json_integer_value (json_object_get (entry, "n")), (json_int_t) i + 1);
    }
    json_decref (log);
}

static void
test_deliver_500_exhausts_attempts (void **state)
{
    (void) state;
    s_sink_t sink;
    s_sink_start (&sink, "500", NULL, NULL);
    mesh_action_spec_t spec = s_spec (s_sink_url (&sink, "127.0.0.1"), sink.secret);
    spec.webhook.attempts = 4;
    json_t *outcome = NULL;
    assert_int_equal (s_deliver (&spec, "dec-500", &outcome), -1);
    assert_int_equal (s_status (outcome), 500);
    assert_int_equal (s_attempts (outcome), 4);
    assert_string_equal (json_string_value (json_object_get (outcome, "response")),
                         "{\"error\":\"always 500\"}");
    assert_non_null (strstr (s_detail (outcome), "500"));
    assert_non_null (strstr (s_detail (outcome), "4 attempts"));
    json_decref (outcome);
    s_sink_stop (&sink);
    json_t *log = s_sink_log (&sink);
    assert_int_equal (json_array_size (log), 4);
    json_decref (log);
}

static void
test_deliver_redirect_not_followed (void **state)
{
    (void) state;
    s_sink_t sink;
    s_sink_start (&sink, "redirect", NULL, NULL);
    mesh_action_spec_t spec = s_spec (s_sink_url (&sink, "127.0.0.1"), sink.secret);
    json_t *outcome = NULL;
    assert_int_equal (s_deliver (&spec, "dec-302", &outcome), -1);
    assert_int_equal (s_status (outcome), 302);
    assert_int_equal (s_attempts (outcome), 1);
    assert_non_null (strstr (s_detail (outcome), "http://169.254.169.254/"));
    assert_non_null (strstr (s_detail (outcome), "not followed"));
    assert_string_equal (json_string_value (json_object_get (outcome, "address")), "127.0.0.1");
    json_decref (outcome);
    s_sink_stop (&sink);
    json_t *log = s_sink_log (&sink);
    assert_int_equal (json_array_size (log), 1);
    json_decref (log);
}

//  A 4xx is final: the wrong secret gets 401 once.
static void
test_deliver_wrong_secret_401_final (void **state)
{
    (void) state;
    s_sink_t sink;
    s_sink_start (&sink, "ok", NULL, NULL);
    const char *other = s_write_file ("other-secret", "not-the-sink's", 14);
    mesh_action_spec_t spec = s_spec (s_sink_url (&sink, "127.0.0.1"), other);
    json_t *outcome = NULL;
    assert_int_equal (s_deliver (&spec, "dec-401", &outcome), -1);
    assert_int_equal (s_status (outcome), 401);
    assert_int_equal (s_attempts (outcome), 1);
    assert_non_null (strstr (s_detail (outcome), "4xx is final"));
    json_decref (outcome);
    s_sink_stop (&sink);
    json_t *log = s_sink_log (&sink);
    assert_int_equal (json_array_size (log), 1);
    assert_true (json_is_false (json_object_get (json_array_get (log, 0), "signature_ok")));
    json_decref (log);
}

//  Closed without a reply: a connection error, retried.
static void
test_deliver_drop_retried (void **state)
{
    (void) state;
    s_sink_t sink;
    s_sink_start (&sink, "drop", NULL, NULL);
    mesh_action_spec_t spec = s_spec (s_sink_url (&sink, "127.0.0.1"), sink.secret);
    spec.webhook.attempts = 2;
    json_t *outcome = NULL;
    assert_int_equal (s_deliver (&spec, "dec-drop", &outcome), -1);
    assert_int_equal (s_attempts (outcome), 2);
    assert_true (json_is_null (json_object_get (outcome, "status_code")));
    assert_true (json_is_null (json_object_get (outcome, "response")));
    json_decref (outcome);
    s_sink_stop (&sink);
    json_t *log = s_sink_log (&sink);
    assert_int_equal (json_array_size (log), 2);
    assert_string_equal (json_string_value (json_object_get (json_array_get (log, 1),
                                                             "idempotency_key")), "dec-drop");
    json_decref (log);
}

//  A receiver slower than timeout_ms: each attempt times out, and the delivery ends.
static void
test_deliver_slow_times_out (void **state)
{
    (void) state;
    s_sink_t sink;
    const char *extra[] = { "--delay-ms", "20000", NULL };
    s_sink_start (&sink, "slow", NULL, extra);
    mesh_action_spec_t spec = s_spec (s_sink_url (&sink, "127.0.0.1"), sink.secret);
    spec.webhook.timeout_ms = 300;
    spec.webhook.attempts = 2;
    json_t *outcome = NULL;
    long started = s_now_ms ();
    assert_int_equal (s_deliver (&spec, "dec-slow", &outcome), -1);
    //  A wide-margin check that the timeout applies, not a performance figure.
    assert_true (s_now_ms () - started < 10000);
    assert_int_equal (s_attempts (outcome), 2);
    assert_true (json_is_null (json_object_get (outcome, "status_code")));
    assert_non_null (strcasestr (s_detail (outcome), "timed out"));
    json_decref (outcome);
    s_sink_stop (&sink);
}

//  Nobody listening: refused, retried up to attempts.
static void
test_deliver_connection_refused (void **state)
{
    (void) state;
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    assert_int_equal (bind (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    getsockname (fd, (struct sockaddr *) &addr, &len);
    close (fd);                 //  the port is now (very likely) closed
    char url[100];
    snprintf (url, sizeof url, "http://127.0.0.1:%d/", ntohs (addr.sin_port));
    const char *secret = s_write_file ("refused-secret", S_SECRET, strlen (S_SECRET));
    mesh_action_spec_t spec = s_spec (url, secret);
    json_t *outcome = NULL;
    assert_int_equal (s_deliver (&spec, "dec-nobody", &outcome), -1);
    assert_int_equal (s_attempts (outcome), 3);
    assert_true (json_is_null (json_object_get (outcome, "status_code")));
    json_decref (outcome);
}

//  --- refusals before any connection ----------------------------------------------------

static void
test_refuse_private_addresses (void **state)
{
    (void) state;
    s_sink_t sink;
    s_sink_start (&sink, "ok", NULL, NULL);
    mesh_action_spec_t spec = s_spec (s_sink_url (&sink, "127.0.0.1"), sink.secret);
    spec.webhook.allow_private = false;
    s_expect_refused (&spec, &sink, "127.0.0.1");
    s_expect_refused (&spec, &sink, "allow_private");
    //  A name resolving to loopback, the same.
    spec.webhook.url = (char *) s_sink_url (&sink, "localhost");
    s_expect_refused (&spec, &sink, "loopback");
    //  IPv4-mapped and other spellings of loopback.
    spec.webhook.url = (char *) s_sink_url (&sink, "[::ffff:127.0.0.1]");
    s_expect_refused (&spec, &sink, "loopback");
    spec.webhook.url = (char *) s_sink_url (&sink, "[::1]");
    s_expect_refused (&spec, &sink, "loopback");
    spec.webhook.url = (char *) s_sink_url (&sink, "2130706433");
    s_expect_refused (&spec, &sink, "loopback");
    spec.webhook.url = (char *) s_sink_url (&sink, "0x7f.1");
    s_expect_refused (&spec, &sink, "loopback");
    //  Cloud metadata: refused with allow_private too, by address and by name.
    spec.webhook.allow_private = true;
    spec.webhook.url = "http://169.254.169.254/latest/meta-data/";
    s_expect_refused (&spec, NULL, "metadata");
    spec.webhook.url = "http://[::ffff:169.254.169.254]/";
    s_expect_refused (&spec, NULL, "169.254");
    spec.webhook.url = "http://100.100.100.200/";
    s_expect_refused (&spec, NULL, "metadata");
    spec.webhook.url = "http://[fd00:ec2::254]/";
    s_expect_refused (&spec, NULL, "metadata");
    spec.webhook.url = "http://metadata.google.internal/computeMetadata/v1/";
    s_expect_refused (&spec, NULL, "metadata");
    spec.webhook.url = "http://METADATA.google.internal./";
    s_expect_refused (&spec, NULL, "metadata");
    spec.webhook.url = "http://0.0.0.0:8080/";
    s_expect_refused (&spec, NULL, "unspecified");
    spec.webhook.url = "http://[::]:8080/";
    s_expect_refused (&spec, NULL, "unspecified");
    spec.webhook.url = "http://[fe80::1%25lo]/";
    s_expect_refused (&spec, NULL, "zone");
    s_sink_stop (&sink);
}

static void
test_refuse_http_without_allow_http (void **state)
{
    (void) state;
    s_sink_t sink;
    s_sink_start (&sink, "ok", NULL, NULL);
    mesh_action_spec_t spec = s_spec (s_sink_url (&sink, "127.0.0.1"), sink.secret);
    spec.webhook.allow_http = false;
    s_expect_refused (&spec, &sink, "allow_http");
    spec.webhook.url = "ftp://127.0.0.1/";
    s_expect_refused (&spec, &sink, "https");
    spec.webhook.url = "file:///etc/passwd";
    s_expect_refused (&spec, &sink, "https");
    spec.webhook.url = "https://user:pass@127.0.0.1/";
    s_expect_refused (&spec, &sink, "credentials");
    spec.webhook.url = "not a url";
    s_expect_refused (&spec, &sink, "url");
    spec.webhook.url = NULL;
    s_expect_refused (&spec, &sink, "no url");
    s_sink_stop (&sink);
}

static void
test_refuse_bad_secret (void **state)
{
    (void) state;
    s_sink_t sink;
    s_sink_start (&sink, "ok", NULL, NULL);
    const char *missing = s_path ("no-such-secret");
    mesh_action_spec_t spec = s_spec (s_sink_url (&sink, "127.0.0.1"), missing);
    s_expect_refused (&spec, &sink, missing);
    s_expect_refused (&spec, &sink, "secret_file");
    spec.webhook.secret_file = (char *) s_write_file ("empty-secret", "\n", 1);
    s_expect_refused (&spec, &sink, "empty");
    static char big[MESH_WEBHOOK_SECRET_MAX + 1];
    memset (big, 'k', sizeof big);
    spec.webhook.secret_file = (char *) s_write_file ("big-secret", big, sizeof big);
    s_expect_refused (&spec, &sink, "4 KiB");
    spec.webhook.secret_file = s_dir;                               //  a directory
    s_expect_refused (&spec, &sink, "regular file");
    spec.webhook.secret_file = NULL;
    s_expect_refused (&spec, &sink, "never sent unsigned");
    //  systemd credentials.
    spec.webhook.secret_credential = "hook-secret";
    unsetenv ("CREDENTIALS_DIRECTORY");
    s_expect_refused (&spec, &sink, "CREDENTIALS_DIRECTORY");
    spec.webhook.secret_credential = "../hook-secret";
    setenv ("CREDENTIALS_DIRECTORY", s_dir, 1);
    s_expect_refused (&spec, &sink, "'/'");
    spec.webhook.secret_credential = "absent-credential";
    s_expect_refused (&spec, &sink, "absent-credential");
    //  ... and one that is there: delivered with it.
    s_write_file ("hook-secret", S_SECRET "\r\n", strlen (S_SECRET) + 2);
    spec.webhook.secret_credential = "hook-secret";
    json_t *outcome = NULL;
    assert_int_equal (s_deliver (&spec, "dec-credential", &outcome), 0);
    json_decref (outcome);
    unsetenv ("CREDENTIALS_DIRECTORY");
    s_sink_stop (&sink);
    json_t *log = s_sink_log (&sink);
    assert_int_equal (json_array_size (log), 1);
    assert_true (json_is_true (json_object_get (json_array_get (log, 0), "signature_ok")));
    json_decref (log);
}

static void
test_refuse_bad_headers_and_ids (void **state)
{
    (void) state;
    s_sink_t sink;
    s_sink_start (&sink, "ok", NULL, NULL);
    mesh_action_spec_t spec = s_spec (s_sink_url (&sink, "127.0.0.1"), sink.secret);
    const char *bad[] = { "X-Mesh-Signature: v1=forged", "Idempotency-Key: other",
                          "host: evil.example", "Content-Type: text/plain",
                          "Authorization: Bearer in-the-config", "cookie: a=b",
                          "Transfer-Encoding: chunked", "User-Agent: other",
                          "X-Ok: a\r\nX-Injected: 1", "NoColon", ": empty name",
                          "Bad Name: x", NULL };
    for (int i = 0; bad[i]; i++) {
        char *headers[] = { "X-Fine: 1", (char *) bad[i] };
        spec.webhook.headers = headers;
        spec.webhook.header_count = 2;
        s_expect_refused (&spec, &sink, "headers[1]");
    }
    spec.webhook.headers = NULL;
    spec.webhook.header_count = 0;
    json_t *body = s_body ("x");
    const char *ids[] = { "", "two words", "line\nbreak", NULL };
    for (int i = 0; ids[i]; i++) {
        json_t *outcome = NULL;
        assert_int_equal (mesh_webhook_deliver (&spec, ids[i], body, &outcome), -1);
        assert_non_null (strstr (s_detail (outcome), "decision id"));
        json_decref (outcome);
    }
    json_decref (body);
    s_sink_stop (&sink);
    json_t *log = s_sink_log (&sink);
    assert_int_equal (json_array_size (log), 0);
    json_decref (log);
}

//  --- what comes back ------------------------------------------------------------------

static void
test_response_excerpt_bounded (void **state)
{
    (void) state;
    s_sink_t sink;
    s_sink_start (&sink, "ok", NULL, NULL);
    mesh_action_spec_t spec = s_spec (s_sink_url (&sink, "127.0.0.1"), sink.secret);
    spec.webhook.excerpt_bytes = 5;
    json_t *outcome = NULL;
    assert_int_equal (s_deliver (&spec, "dec-ex1", &outcome), 0);
    assert_string_equal (json_string_value (json_object_get (outcome, "response")), "{\"rec");
    json_decref (outcome);
    s_sink_stop (&sink);

    //  64 KiB of text with invalid UTF-8: bounded, replaced, still a 2xx.
    s_sink_start (&sink, "junk", NULL, NULL);
    spec = s_spec (s_sink_url (&sink, "127.0.0.1"), sink.secret);
    spec.webhook.excerpt_bytes = 40;
    assert_int_equal (s_deliver (&spec, "dec-ex2", &outcome), 0);
    const char *response = json_string_value (json_object_get (outcome, "response"));
    assert_non_null (response);
    assert_true (strlen (response) <= 40);
    const char *expected = "junk ?? \xc3\xa9 ??? xxx";
    assert_memory_equal (response, expected, strlen (expected));
    json_decref (outcome);
    spec.webhook.excerpt_bytes = 1024;                              //  the config's default
    assert_int_equal (s_deliver (&spec, "dec-ex3", &outcome), 0);
    response = json_string_value (json_object_get (outcome, "response"));
    assert_int_equal (strlen (response), 1024);                     //  a '?' per bad byte
    json_decref (outcome);
    spec.webhook.excerpt_bytes = 0;                                 //  none kept
    assert_int_equal (s_deliver (&spec, "dec-ex0", &outcome), 0);
    assert_string_equal (json_string_value (json_object_get (outcome, "response")), "");
    json_decref (outcome);
    //  A cut in the middle of a character drops it rather than inventing a '?'.
    spec.webhook.excerpt_bytes = 9;                                 //  "junk \xff\xfe \xc3"
    assert_int_equal (s_deliver (&spec, "dec-ex4", &outcome), 0);
    assert_string_equal (json_string_value (json_object_get (outcome, "response")), "junk ?? ");
    json_decref (outcome);
    s_sink_stop (&sink);
}

//  The secret (and the extra headers' values) are never in a log line or an outcome; a
//  rotated secret is used by the next delivery without anything being reloaded.
static void
test_secret_never_logged_and_rotated (void **state)
{
    (void) state;
    const char *secret = s_write_file ("rotating", S_SECRET, strlen (S_SECRET));
    s_sink_t sink;
    s_sink_start (&sink, "500", secret, NULL);
    mesh_action_spec_t spec = s_spec (s_sink_url (&sink, "127.0.0.1"), secret);
    spec.webhook.attempts = 1;
    char *headers[] = { "X-Route-Token: header-token-xyz" };
    spec.webhook.headers = headers;
    spec.webhook.header_count = 1;
    fflush (stderr);
    int saved = dup (STDERR_FILENO);
    int fd = open (s_path ("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2 (fd, STDERR_FILENO);
    close (fd);
    json_t *outcome = NULL;
    assert_int_equal (s_deliver (&spec, "dec-secret", &outcome), -1);
    fflush (stderr);
    dup2 (saved, STDERR_FILENO);
    close (saved);
    char logged[65536] = "";
    FILE *file = fopen (s_path ("stderr.txt"), "r");
    size_t n = fread (logged, 1, sizeof logged - 1, file);
    logged[n] = 0;
    fclose (file);
    assert_non_null (strstr (logged, "dec-secret"));                //  it did log the failure
    assert_null (strstr (logged, S_SECRET));
    assert_null (strstr (logged, "header-token-xyz"));
    assert_null (strstr (logged, "/hooks/meshd"));
    char *dump = json_dumps (outcome, 0);
    assert_null (strstr (dump, S_SECRET));
    assert_null (strstr (dump, "header-token-xyz"));
    free (dump);
    json_decref (outcome);
    s_sink_stop (&sink);

    s_sink_start (&sink, "ok", secret, NULL);
    spec.webhook.url = (char *) s_sink_url (&sink, "127.0.0.1");
    spec.webhook.headers = NULL;
    spec.webhook.header_count = 0;
    assert_int_equal (s_deliver (&spec, "dec-rot-1", &outcome), 0);
    json_decref (outcome);
    s_write_file ("rotating", "a-new-secret\n", 13);                //  both sides read it anew
    assert_int_equal (s_deliver (&spec, "dec-rot-2", &outcome), 0);
    json_decref (outcome);
    s_sink_stop (&sink);
    json_t *log = s_sink_log (&sink);
    assert_int_equal (json_array_size (log), 2);
    assert_true (json_is_true (json_object_get (json_array_get (log, 1), "signature_ok")));
    json_decref (log);
}

static size_t
s_discard (char *data, size_t size, size_t nmemb, void *arg)
{
    (void) data;
    (void) arg;
    return size * nmemb;
}

//  The receiver's side of the replay window, on the sink: a correct signature over an old
//  timestamp is refused.
static void
test_sink_refuses_stale_timestamp (void **state)
{
    (void) state;
    s_sink_t sink;
    const char *extra[] = { "--tolerance-s", "60", NULL };
    s_sink_start (&sink, "ok", NULL, extra);
    const char *body = "{\"id\":\"dec-old\"}";
    long results[2];
    long stamps[2] = { (long) time (NULL) - 3600, (long) time (NULL) };
    for (int i = 0; i < 2; i++) {
        char signature[65], header[128], stamp[64], url[100];
        mesh_webhook_sign ((const unsigned char *) S_SECRET, strlen (S_SECRET), stamps[i], body,
                           strlen (body), signature);
        struct curl_slist *headers = NULL;
        snprintf (header, sizeof header, "X-Mesh-Signature: v1=%s", signature);
        headers = curl_slist_append (headers, header);
        snprintf (stamp, sizeof stamp, "X-Mesh-Timestamp: %ld", stamps[i]);
        headers = curl_slist_append (headers, stamp);
        headers = curl_slist_append (headers, "Content-Type: application/json");
        snprintf (url, sizeof url, "http://127.0.0.1:%d/", sink.port);
        CURL *curl = curl_easy_init ();
        curl_easy_setopt (curl, CURLOPT_URL, url);
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_discard);
        assert_int_equal (curl_easy_perform (curl), CURLE_OK);
        curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &results[i]);
        curl_easy_cleanup (curl);
        curl_slist_free_all (headers);
    }
    assert_int_equal (results[0], 401);
    assert_int_equal (results[1], 200);
    s_sink_stop (&sink);
    json_t *log = s_sink_log (&sink);
    assert_int_equal (json_array_size (log), 2);
    json_t *old = json_array_get (log, 0);
    assert_true (json_is_true (json_object_get (old, "signature_ok")));
    assert_true (json_is_false (json_object_get (old, "timestamp_ok")));
    assert_true (json_is_false (json_object_get (old, "ok")));
    assert_true (json_is_true (json_object_get (json_array_get (log, 1), "ok")));
    json_decref (log);
}

//  --- main ------------------------------------------------------------------------------

static int
s_setup (void **state)
{
    (void) state;
    if (!mkdtemp (s_dir))
        return -1;
    s_find_sink ();
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
    if (sodium_init () < 0)
        return 1;
    curl_global_init (CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_sign_known_answer),
        cmocka_unit_test (test_address_ranges),
        cmocka_unit_test (test_deliver_ok),
        cmocka_unit_test (test_deliver_localhost_pinned),
        cmocka_unit_test (test_deliver_fail_once),
        cmocka_unit_test (test_deliver_500_exhausts_attempts),
        cmocka_unit_test (test_deliver_redirect_not_followed),
        cmocka_unit_test (test_deliver_wrong_secret_401_final),
        cmocka_unit_test (test_deliver_drop_retried),
        cmocka_unit_test (test_deliver_slow_times_out),
        cmocka_unit_test (test_deliver_connection_refused),
        cmocka_unit_test (test_refuse_private_addresses),
        cmocka_unit_test (test_refuse_http_without_allow_http),
        cmocka_unit_test (test_refuse_bad_secret),
        cmocka_unit_test (test_refuse_bad_headers_and_ids),
        cmocka_unit_test (test_response_excerpt_bounded),
        cmocka_unit_test (test_secret_never_logged_and_rotated),
        cmocka_unit_test (test_sink_refuses_stale_timestamp),
    };
    return cmocka_run_group_tests_name ("webhook", tests, s_setup, s_teardown);
}
