/*  webhook_sink - a test receiver for meshd's webhooks (agents/act/webhook.c).
 *
 *      webhook_sink --port-file F --secret-file F [--log F] [--mode MODE]
 *                   [--fail-count N] [--delay-ms N] [--tolerance-s N]
 *
 *  It does what docs/actions.md ("webhook") asks of a receiver: every request's
 *  X-Mesh-Signature is recomputed over "<X-Mesh-Timestamp>.<body>" with the secret (the
 *  file read for each request, trailing CR/LF removed, as meshd reads it) and compared in
 *  constant time; a timestamp further than --tolerance-s seconds (default 300) from now
 *  is refused.  A request failing either gets 401 {"error": why}, in every mode but drop.
 *
 *  --log F appends one JSON line per request, written once the whole body is read and
 *  before any wait: {"ok": signature and timestamp good, "signature_ok", "timestamp_ok",
 *  "idempotency_key", "decision" (X-Mesh-Decision), "timestamp" (the header as a number,
 *  or null), "body": the JSON body or null, "n": 1-based count of requests received,
 *  "method", "path", "headers": {lowercased name: value}}.
 *
 *  Modes (--mode, default ok)
 *      ok         200 {"received":true}
 *      500        500 {"error":"always 500"}, every time
 *      fail-once  the first --fail-count N requests (default 1) 503 {"error":"fail-once"},
 *                 then as ok
 *      redirect   302, Location: http://169.254.169.254/
 *      slow       waits --delay-ms (default 10000) before answering as ok
 *      drop       reads the request, then closes the connection without a reply
 *      junk       200 with a 64 KiB body that is not JSON and holds invalid UTF-8
 *  --delay-ms applies in every mode (before the answer).
 *
 *  It listens on 127.0.0.1, an ephemeral port, written to --port-file (to a temporary
 *  name, then renamed).  It exits on SIGTERM or SIGINT, or when its parent dies.
 */
#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_UPLOAD    (1024 * 1024)
#define S_SECRET_MAX    4096

typedef enum { M_OK, M_500, M_FAIL_ONCE, M_REDIRECT, M_SLOW, M_DROP, M_JUNK } s_mode_t;

static const struct {
    const char *name;
    s_mode_t mode;
} s_modes[] = {
    { "ok", M_OK }, { "500", M_500 }, { "fail-once", M_FAIL_ONCE },
    { "redirect", M_REDIRECT }, { "slow", M_SLOW }, { "drop", M_DROP }, { "junk", M_JUNK },
    { NULL, M_OK }
};

static s_mode_t s_mode = M_OK;
static const char *s_secret_path;
static const char *s_log_path;
static long s_fail_count = 1;
static long s_delay_ms = -1;
static long s_tolerance_s = 300;
static long s_received;                 //  under s_mutex
static pthread_mutex_t s_mutex = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool s_stopping;

typedef struct {
    char *data;
    size_t size;
    bool too_big;
} s_upload_t;

static void
s_sleep_ms (long ms)
{
    for (long waited = 0; waited < ms && !atomic_load (&s_stopping); waited += 10)
        usleep (10000);
}

//  The secret, as meshd reads it.  Length, or -1.
static long
s_read_secret (unsigned char *secret)
{
    FILE *file = fopen (s_secret_path, "rb");
    if (!file)
        return -1;
    size_t n = fread (secret, 1, S_SECRET_MAX + 1, file);
    fclose (file);
    if (n > S_SECRET_MAX)
        return -1;
    while (n > 0 && (secret[n - 1] == '\n' || secret[n - 1] == '\r'))
        n--;
    return n ? (long) n : -1;
}

//  Whether SIGNATURE ("v1=<64 hex digits>") is HMAC-SHA256(secret, TIMESTAMP "." BODY),
//  compared in constant time.
static bool
s_signature_ok (const char *signature, const char *timestamp, const char *body, size_t size)
{
    if (!signature || !timestamp || strncmp (signature, "v1=", 3) || strlen (signature) != 67)
        return false;
    unsigned char given[crypto_auth_hmacsha256_BYTES];
    size_t given_len = 0;
    if (sodium_hex2bin (given, sizeof given, signature + 3, 64, NULL, &given_len, NULL)
        || given_len != sizeof given)
        return false;
    unsigned char secret[S_SECRET_MAX + 1];
    long secret_len = s_read_secret (secret);
    if (secret_len < 0)
        return false;
    unsigned char expected[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state state;
    crypto_auth_hmacsha256_init (&state, secret, (size_t) secret_len);
    crypto_auth_hmacsha256_update (&state, (const unsigned char *) timestamp, strlen (timestamp));
    crypto_auth_hmacsha256_update (&state, (const unsigned char *) ".", 1);
    crypto_auth_hmacsha256_update (&state, (const unsigned char *) body, size);
    crypto_auth_hmacsha256_final (&state, expected);
    sodium_memzero (secret, sizeof secret);
    return sodium_memcmp (expected, given, sizeof expected) == 0;
}

//  A decimal number of seconds within the tolerance of now; *VALUE set when it is one.
static bool
s_timestamp_ok (const char *timestamp, long long *value, bool *number)
{
    *number = false;
    if (!timestamp || !*timestamp || strlen (timestamp) > 18)
        return false;
    for (const char *p = timestamp; *p; p++)
        if (!isdigit ((unsigned char) *p))
            return false;
    *value = strtoll (timestamp, NULL, 10);
    *number = true;
    long long skew = (long long) time (NULL) - *value;
    return skew <= s_tolerance_s && -skew <= s_tolerance_s;
}

static enum MHD_Result
s_collect_header (void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void) kind;
    json_t *headers = cls;
    char name[256];
    size_t i = 0;
    for (; key[i] && i + 1 < sizeof name; i++)
        name[i] = (char) tolower ((unsigned char) key[i]);
    name[i] = 0;
    json_t *text = value ? json_string (value) : NULL;
    json_object_set_new (headers, name, text ? text : json_null ());
    return MHD_YES;
}

static void
s_log (json_t *entry)
{
    if (!s_log_path)
        return;
    char *line = json_dumps (entry, JSON_COMPACT);
    FILE *file = line ? fopen (s_log_path, "a") : NULL;
    if (file) {
        fprintf (file, "%s\n", line);
        fclose (file);
    }
    free (line);
}

static enum MHD_Result
s_reply (struct MHD_Connection *connection, unsigned int status, const char *body, size_t len,
         const char *location)
{
    struct MHD_Response *response =
      MHD_create_response_from_buffer (len, (void *) body, MHD_RESPMEM_MUST_COPY);
    if (!response)
        return MHD_NO;
    MHD_add_response_header (response, "Content-Type",
                             s_mode == M_JUNK && status == 200 ? "text/plain"
                                                               : "application/json");
    if (location)
        MHD_add_response_header (response, "Location", location);
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

static enum MHD_Result
s_json (struct MHD_Connection *connection, unsigned int status, const char *body)
{
    return s_reply (connection, status, body, strlen (body), NULL);
}

static enum MHD_Result
s_handler (void *cls, struct MHD_Connection *connection, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size,
           void **con_cls)
{
    (void) cls;
    (void) version;
    if (!*con_cls) {
        *con_cls = calloc (1, sizeof (s_upload_t));
        return *con_cls ? MHD_YES : MHD_NO;
    }
    s_upload_t *upload = *con_cls;
    if (*upload_data_size) {
        if (upload->size + *upload_data_size > S_MAX_UPLOAD)
            upload->too_big = true;
        else {
            char *grown = realloc (upload->data, upload->size + *upload_data_size + 1);
            if (!grown)
                return MHD_NO;
            upload->data = grown;
            memcpy (upload->data + upload->size, upload_data, *upload_data_size);
            upload->size += *upload_data_size;
            upload->data[upload->size] = 0;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    const char *signature = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                         "X-Mesh-Signature");
    const char *timestamp = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                         "X-Mesh-Timestamp");
    const char *key = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                   "Idempotency-Key");
    const char *decision = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                        "X-Mesh-Decision");
    const char *data = upload->data ? upload->data : "";
    long long ts = 0;
    bool ts_number = false;
    bool ts_ok = s_timestamp_ok (timestamp, &ts, &ts_number);
    bool sig_ok = !upload->too_big && s_signature_ok (signature, timestamp, data, upload->size);
    bool ok = ts_ok && sig_ok;

    json_t *headers = json_object ();
    MHD_get_connection_values (connection, MHD_HEADER_KIND, s_collect_header, headers);
    json_t *body = upload->size && !upload->too_big
                   ? json_loadb (data, upload->size, JSON_DECODE_ANY, NULL) : NULL;
    pthread_mutex_lock (&s_mutex);
    long n = ++s_received;
    json_t *entry = json_object ();
    json_object_set_new (entry, "ok", json_boolean (ok));
    json_object_set_new (entry, "signature_ok", json_boolean (sig_ok));
    json_object_set_new (entry, "timestamp_ok", json_boolean (ts_ok));
    json_object_set_new (entry, "idempotency_key", key ? json_string (key) : json_null ());
    json_object_set_new (entry, "decision", decision ? json_string (decision) : json_null ());
    json_object_set_new (entry, "timestamp", ts_number ? json_integer (ts) : json_null ());
    json_object_set_new (entry, "body", body ? body : json_null ());
    json_object_set_new (entry, "n", json_integer (n));
    json_object_set_new (entry, "method", json_string (method));
    json_object_set_new (entry, "path", json_string (url));
    json_object_set_new (entry, "headers", headers);
    s_log (entry);
    json_decref (entry);
    pthread_mutex_unlock (&s_mutex);

    long delay = s_delay_ms >= 0 ? s_delay_ms : s_mode == M_SLOW ? 10000 : 0;
    s_sleep_ms (delay);
    if (s_mode == M_DROP)
        return MHD_NO;          //  libmicrohttpd closes the connection without a reply
    if (!sig_ok)
        return s_json (connection, 401, "{\"error\":\"bad or missing signature\"}");
    if (!ts_ok)
        return s_json (connection, 401, "{\"error\":\"timestamp outside the tolerance\"}");
    switch (s_mode) {
        case M_500:
            return s_json (connection, 500, "{\"error\":\"always 500\"}");
        case M_FAIL_ONCE:
            if (n <= s_fail_count)
                return s_json (connection, 503, "{\"error\":\"fail-once\"}");
            break;
        case M_REDIRECT:
            return s_reply (connection, 302, "", 0, "http://169.254.169.254/");
        case M_JUNK: {
            static char junk[65536];
            memset (junk, 'x', sizeof junk);
            static const char head[] = "junk \xff\xfe \xc3\xa9 \xed\xa0\x80 ";
            memcpy (junk, head, sizeof head - 1);
            return s_reply (connection, 200, junk, sizeof junk, NULL);
        }
        default:
            break;
    }
    return s_json (connection, 200, "{\"received\":true}");
}

static void
s_completed (void *cls, struct MHD_Connection *connection, void **con_cls,
             enum MHD_RequestTerminationCode code)
{
    (void) cls;
    (void) connection;
    (void) code;
    s_upload_t *upload = *con_cls;
    if (upload) {
        free (upload->data);
        free (upload);
        *con_cls = NULL;
    }
}

static int
s_write_port_file (const char *path, unsigned port)
{
    char tmp[4096];
    snprintf (tmp, sizeof tmp, "%s.tmp", path);
    FILE *file = fopen (tmp, "w");
    if (!file)
        return -1;
    fprintf (file, "%u\n", port);
    if (fclose (file) != 0)
        return -1;
    return rename (tmp, path);
}

static void
s_usage (void)
{
    fprintf (stderr, "usage: webhook_sink --port-file F --secret-file F [--log F] [--mode MODE] "
                     "[--fail-count N] [--delay-ms N] [--tolerance-s N]\n  modes:");
    for (int m = 0; s_modes[m].name; m++)
        fprintf (stderr, " %s", s_modes[m].name);
    fprintf (stderr, "\n");
    exit (2);
}

static long
s_number (const char *value)
{
    char *end = NULL;
    errno = 0;
    long number = strtol (value, &end, 10);
    if (errno || end == value || *end || number < 0)
        s_usage ();
    return number;
}

int
main (int argc, char **argv)
{
    const char *port_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[++i] : NULL;
        if (!value)
            s_usage ();
        if (!strcmp (arg, "--port-file"))
            port_file = value;
        else if (!strcmp (arg, "--secret-file"))
            s_secret_path = value;
        else if (!strcmp (arg, "--log"))
            s_log_path = value;
        else if (!strcmp (arg, "--fail-count"))
            s_fail_count = s_number (value);
        else if (!strcmp (arg, "--delay-ms"))
            s_delay_ms = s_number (value);
        else if (!strcmp (arg, "--tolerance-s"))
            s_tolerance_s = s_number (value);
        else if (!strcmp (arg, "--mode")) {
            int m = 0;
            while (s_modes[m].name && strcmp (s_modes[m].name, value))
                m++;
            if (!s_modes[m].name)
                s_usage ();
            s_mode = s_modes[m].mode;
        }
        else
            s_usage ();
    }
    if (!port_file || !s_secret_path)
        s_usage ();
    if (sodium_init () < 0)
        return 1;

    //  Die with the test that started us (and if it is already gone, now); take signals
    //  only in the main thread.
    pid_t parent = getppid ();
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    if (getppid () != parent)
        return 0;
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGTERM);
    sigaddset (&signals, SIGINT);
    pthread_sigmask (SIG_BLOCK, &signals, NULL);
    signal (SIGPIPE, SIG_IGN);

    struct sockaddr_in addr = { 0 };
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    struct MHD_Daemon *daemon =
      MHD_start_daemon (MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD
                          | MHD_USE_ERROR_LOG,
                        0, NULL, NULL, s_handler, NULL,
                        MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &addr,
                        MHD_OPTION_NOTIFY_COMPLETED, s_completed, NULL,
                        MHD_OPTION_END);
    if (!daemon) {
        fprintf (stderr, "webhook_sink: cannot listen on 127.0.0.1\n");
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || s_write_port_file (port_file, info->port)) {
        fprintf (stderr, "webhook_sink: cannot write %s: %s\n", port_file, strerror (errno));
        MHD_stop_daemon (daemon);
        return 1;
    }
    int sig = 0;
    sigwait (&signals, &sig);
    atomic_store (&s_stopping, true);
    MHD_stop_daemon (daemon);
    return 0;
}
