/*  fake_llm - a test inference server speaking the OpenAI chat-completions format.
 *
 *      fake_llm --port P | --port-file F  [--responses FILE]  [--mode MODE]
 *               [--hang-ms N] [--delay-ms N] [--requests LOG]
 *
 *  Serves, on 127.0.0.1 only:
 *      POST /v1/chat/completions   the next canned output, cycling through FILE
 *                                  (same format as config/demo-responses.jsonl)
 *      GET  /v1/models             one model, "fake-model"
 *      GET  /health                {"status":"ok"}
 *
 *  MODE simulates what real servers do to a client:
 *      ok             a normal answer with usage (prompt tokens = request bytes / 4)
 *      500            HTTP 500 with the OpenAI/llama.cpp error shape
 *      timeout        hangs --hang-ms (default 10000) before answering
 *      malformed      HTTP 200 with a body that is not JSON (nor UTF-8)
 *      no-usage       a normal answer without "usage"
 *      reject-schema  HTTP 400 naming response_format when the request has one
 *                     (as a server without structured output would); normal otherwise
 *      tgi-error      HTTP 422 with TGI's flat {"error","error_type"} shape
 *      two-choices    a normal answer with the output twice in "choices"
 *      length         a normal answer with finish_reason "length" (a cut-short answer)
 *      huge           a normal answer whose content is padded past 1 MiB (2 MiB of
 *                     spaces after the output), as a server ignoring max_tokens would
 *      nul            a normal answer whose content has a NUL (\u0000) in the middle
 *      bad-utf8       HTTP 200 whose content holds a byte that is not UTF-8
 *      max-usage      a normal answer whose usage.completion_tokens is the request's
 *                     max_tokens exactly (else max_completion_tokens; with neither,
 *                     the usual estimate); prompt tokens as in ok
 *      over-usage     as max-usage, but every 3rd completion request received (n = 3,
 *                     6, 9, ... in the request log) reports max_tokens + 50, as a
 *                     server that does not honour max_tokens would
 *      loading        HTTP 503 with llama.cpp's shape while it loads a model:
 *                     {"error":{"code":503,"message":"Loading model",
 *                     "type":"unavailable_error"}}  (/health and /v1/models stay 200)
 *      rate-limited   HTTP 429 with OpenAI's error shape: {"error":{"message":...,
 *                     "type":"requests","param":null,"code":"rate_limit_exceeded"}}
 *                     (no Retry-After header)
 *      cut            HTTP 200 whose Content-Length is the whole answer's length, but
 *                     only the first half of the (JSON) answer is sent before the
 *                     connection is closed: a body cut mid-transfer
 *      drop           reads the whole request, then closes the connection without
 *                     sending anything (the client sees an empty reply)
 *      resend-probe   normal answers, but after each response the server closes the
 *                     connection (shutdown of the socket) although the response had no
 *                     "Connection: close": a client reusing the connection for its
 *                     next request finds it dead and must send that request again on a
 *                     new one.  A request the client wrote on the old connection before
 *                     the close reached it is not handled, logged nor counted (the
 *                     connection is dropped), so each request is counted once whichever
 *                     way that race goes
 *
 *  loading, rate-limited and drop behave so whatever the request body; the other
 *  modes first check it (413 past 1 MiB, 400 without a non-empty "messages").
 *  --delay-ms N (default 0) waits N ms before answering each completion request, in
 *  every mode (before the mode's own behaviour, so timeout waits delay + hang), so a
 *  test can kill a client in the middle of a call.
 *
 *  --port 0 (or --port-file alone) binds an ephemeral port and writes it to the
 *  port file (written to a temporary name and renamed, so a reader never sees half a
 *  number).  --requests appends one JSON line per completion request received,
 *  written as soon as the request is read (before any delay, and in every mode, the
 *  failing ones and refused bodies included):
 *  {"authorization": header or null, "body": the request (null if it was not JSON or
 *  was too large), "n": 1-based count of completion requests this process received},
 *  so tests can see what the client sent and how many HTTP requests reached the
 *  server.  The process exits on SIGTERM/SIGINT, or when its parent dies.
 *
 *  Not covered: streaming (SSE), tool calls, real tokenisation (usage is a byte
 *  estimate), context-length errors, the servers' many other endpoints and quirks.
 *  It is a test double for the client's request/response handling, not a model.
 */
#include <jansson.h>
#include <microhttpd.h>

#include <arpa/inet.h>
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

#define S_MAX_UPLOAD (1024 * 1024)

typedef enum {
    S_OK, S_500, S_TIMEOUT, S_MALFORMED, S_NO_USAGE, S_REJECT_SCHEMA, S_TGI, S_TWO_CHOICES,
    S_LENGTH, S_HUGE, S_NUL, S_BAD_UTF8, S_MAX_USAGE, S_OVER_USAGE, S_LOADING, S_RATE_LIMITED,
    S_CUT, S_DROP, S_RESEND_PROBE
} s_mode_t;

static const char *s_mode_names[] = {
    "ok", "500", "timeout", "malformed", "no-usage", "reject-schema", "tgi-error",
    "two-choices", "length", "huge", "nul", "bad-utf8", "max-usage", "over-usage", "loading",
    "rate-limited", "cut", "drop", "resend-probe", NULL
};

typedef struct {
    char *content;
    long completion_tokens;         //  -1: estimate
} s_output_t;

static s_output_t *s_outputs;
static size_t s_output_count;
static atomic_size_t s_next;
static s_mode_t s_mode = S_OK;
static long s_hang_ms = 10000;
static long s_delay_ms = 0;
static long s_received;             //  completion requests received; under s_log_mutex
static const char *s_requests_path;
static pthread_mutex_t s_log_mutex = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool s_stopping;

typedef struct {
    char *data;
    size_t size;
    bool too_big;
} s_upload_t;

//  Per connection (libmicrohttpd's socket context): resend-probe has answered on it.
typedef struct {
    bool answered;
} s_socket_t;

static int
s_load_responses (const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        fprintf (stderr, "fake_llm: %s: %s\n", path, strerror (errno));
        return -1;
    }
    char *line = NULL;
    size_t size = 0;
    ssize_t len;
    int lineno = 0;
    while ((len = getline (&line, &size, file)) >= 0) {
        lineno++;
        size_t lead = strspn (line, " \t\r\n");
        if (line[lead] == 0 || line[lead] == '#')
            continue;
        json_error_t err;
        json_t *obj = json_loadb (line, (size_t) len, JSON_REJECT_DUPLICATES, &err);
        json_t *content = json_object_get (obj, "content");
        json_t *tokens = json_object_get (obj, "completion_tokens");
        if (!json_is_string (content) || (tokens && !json_is_integer (tokens))) {
            fprintf (stderr, "fake_llm: %s:%d: expected {\"content\": string}\n", path, lineno);
            json_decref (obj);
            free (line);
            fclose (file);
            return -1;
        }
        s_outputs = realloc (s_outputs, (s_output_count + 1) * sizeof *s_outputs);
        s_outputs[s_output_count].content = strdup (json_string_value (content));
        s_outputs[s_output_count].completion_tokens =
          tokens ? (long) json_integer_value (tokens) : -1;
        s_output_count++;
        json_decref (obj);
    }
    free (line);
    fclose (file);
    return 0;
}

static enum MHD_Result
s_send (struct MHD_Connection *connection, unsigned int status, const char *body,
        const char *content_type)
{
    struct MHD_Response *response =
      MHD_create_response_from_buffer (strlen (body), (void *) body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header (response, "Content-Type", content_type);
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

static enum MHD_Result
s_send_json (struct MHD_Connection *connection, unsigned int status, json_t *value)
{
    char *text = json_dumps (value, JSON_COMPACT);
    json_decref (value);
    enum MHD_Result rc = s_send (connection, status, text ? text : "{}", "application/json");
    free (text);
    return rc;
}

static enum MHD_Result
s_openai_error (struct MHD_Connection *connection, unsigned int status, const char *message,
                const char *type)
{
    return s_send_json (connection, status,
                        json_pack ("{s:{s:i, s:s, s:s}}", "error", "code", (int) status,
                                   "message", message, "type", type));
}

//  Counts a completion request and logs it; body may be NULL (not JSON, too large).
//  Numbered and written under the lock, so the log's lines are in order of "n".
static long
s_note_request (struct MHD_Connection *connection, json_t *body)
{
    pthread_mutex_lock (&s_log_mutex);
    long n = ++s_received;
    if (s_requests_path) {
        const char *auth =
          MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "Authorization");
        json_t *entry = json_pack ("{s:o, s:O, s:I}", "authorization",
                                   auth ? json_string (auth) : json_null (), "body",
                                   body ? body : json_null (), "n", (json_int_t) n);
        char *line = json_dumps (entry, JSON_COMPACT);
        json_decref (entry);
        int fd = line ? open (s_requests_path, O_WRONLY | O_CREAT | O_APPEND, 0600) : -1;
        if (fd >= 0) {
            size_t len = strlen (line);
            line[len] = '\n';
            ssize_t rc = write (fd, line, len + 1);
            (void) rc;
            close (fd);
        }
        free (line);
    }
    pthread_mutex_unlock (&s_log_mutex);
    return n;
}

//  Sleeps ms milliseconds, or less if the process is stopping.
static void
s_sleep_ms (long ms)
{
    for (long waited = 0; waited < ms && !atomic_load (&s_stopping); waited += 10)
        usleep (10000);
}

//  The cut mode's body: the first `send` bytes of `text`, then an error, which makes
//  libmicrohttpd close the connection short of the announced Content-Length.
typedef struct {
    char *text;
    size_t send;
} s_cut_t;

static ssize_t
s_cut_reader (void *cls, uint64_t pos, char *buf, size_t max)
{
    s_cut_t *cut = cls;
    if (pos >= cut->send)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t len = cut->send - (size_t) pos;
    if (len > max)
        len = max;
    memcpy (buf, cut->text + pos, len);
    return (ssize_t) len;
}

static void
s_cut_free (void *cls)
{
    s_cut_t *cut = cls;
    free (cut->text);
    free (cut);
}

static enum MHD_Result
s_send_cut (struct MHD_Connection *connection, json_t *value)
{
    s_cut_t *cut = calloc (1, sizeof *cut);
    cut->text = json_dumps (value, JSON_COMPACT);
    json_decref (value);
    if (!cut->text) {
        free (cut);
        return MHD_NO;
    }
    size_t total = strlen (cut->text);
    cut->send = total / 2;
    struct MHD_Response *response =
      MHD_create_response_from_callback (total, 4096, s_cut_reader, cut, s_cut_free);
    if (!response) {
        s_cut_free (cut);
        return MHD_NO;
    }
    MHD_add_response_header (response, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response (connection, 200, response);
    MHD_destroy_response (response);
    return rc;
}

//  The request's token cap: max_tokens, else max_completion_tokens, else -1.
static long
s_max_tokens (json_t *body)
{
    json_t *cap = json_object_get (body, "max_tokens");
    if (!json_is_integer (cap))
        cap = json_object_get (body, "max_completion_tokens");
    return json_is_integer (cap) ? (long) json_integer_value (cap) : -1;
}

static enum MHD_Result
s_completion (struct MHD_Connection *connection, s_upload_t *upload)
{
    json_error_t err;
    json_t *body = upload->too_big ? NULL
                 : json_loadb (upload->data ? upload->data : "", upload->size, 0, &err);
    long n = s_note_request (connection, body);
    s_sleep_ms (s_delay_ms);
    switch (s_mode) {
        case S_DROP:
            //  Refusing the request makes libmicrohttpd close the connection at once,
            //  without a status line.
            json_decref (body);
            return MHD_NO;
        case S_LOADING:
            json_decref (body);
            return s_openai_error (connection, 503, "Loading model", "unavailable_error");
        case S_RATE_LIMITED:
            json_decref (body);
            return s_send_json (connection, 429,
                                json_pack ("{s:{s:s, s:s, s:n, s:s}}", "error", "message",
                                           "Rate limit reached for requests: simulated by "
                                           "fake_llm", "type", "requests", "param", "code",
                                           "rate_limit_exceeded"));
        default:
            break;
    }
    if (upload->too_big)
        return s_openai_error (connection, 413, "request body too large",
                               "invalid_request_error");
    json_t *messages = json_object_get (body, "messages");
    if (!json_is_array (messages) || json_array_size (messages) == 0) {
        json_decref (body);
        return s_openai_error (connection, 400, "'messages' must be a non-empty array",
                               "invalid_request_error");
    }
    bool has_schema = json_object_get (body, "response_format") != NULL;
    const char *model = json_string_value (json_object_get (body, "model"));
    json_t *reply = NULL;
    unsigned int status = 200;
    switch (s_mode) {
        case S_500:
            json_decref (body);
            return s_openai_error (connection, 500, "fake_llm: simulated server error",
                                   "server_error");
        case S_TGI:
            json_decref (body);
            return s_send_json (connection, 422,
                                json_pack ("{s:s, s:s}", "error",
                                           "Input validation error: simulated by fake_llm",
                                           "error_type", "validation"));
        case S_BAD_UTF8:
            json_decref (body);
            return s_send (connection, 200, "{\"choices\":[{\"index\":0,\"message\":{\"role\":"
                           "\"assistant\",\"content\":\"caf\xff\"},\"finish_reason\":\"stop\"}]}",
                           "application/json");
        case S_MALFORMED:
            json_decref (body);
            //  Not JSON, and not even UTF-8 (the \xff): clients must cope with both.
            return s_send (connection, 200, "<html>this is not JSON \xff</html>", "text/html");
        case S_REJECT_SCHEMA:
            if (has_schema) {
                json_decref (body);
                return s_openai_error (connection, 400,
                                       "response_format is not supported by this server",
                                       "invalid_request_error");
            }
            break;
        case S_TIMEOUT:
            s_sleep_ms (s_hang_ms);
            break;
        default:
            break;
    }
    const char *content = "{\"action\":\"escalate\",\"params\":{},\"confidence\":0.9,"
                          "\"rationale\":\"fake_llm default output\"}";
    long completion_tokens = -1;
    if (s_output_count) {
        size_t index = atomic_fetch_add (&s_next, 1) % s_output_count;
        content = s_outputs[index].content;
        completion_tokens = s_outputs[index].completion_tokens;
    }
    if (completion_tokens < 0)
        completion_tokens = (long) (strlen (content) + 3) / 4;
    if ((s_mode == S_MAX_USAGE || s_mode == S_OVER_USAGE) && s_max_tokens (body) >= 0) {
        completion_tokens = s_max_tokens (body);
        if (s_mode == S_OVER_USAGE && n % 3 == 0)
            completion_tokens += 50;
    }
    char *prompt = json_dumps (messages, JSON_COMPACT);
    long prompt_tokens = prompt ? (long) (strlen (prompt) + 3) / 4 : 0;
    free (prompt);
    char id[64];
    snprintf (id, sizeof id, "chatcmpl-fake%zu", atomic_load (&s_next));
    reply = json_pack ("{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s}, s:s}]}", "id", id,
                       "object", "chat.completion", "created", (json_int_t) time (NULL),
                       "model", model ? model : "fake-model", "choices", "index", 0,
                       "message", "role", "assistant", "content", content,
                       "finish_reason", "stop");
    json_t *choices = json_object_get (reply, "choices");
    if (s_mode == S_TWO_CHOICES)
        json_array_append_new (choices, json_deep_copy (json_array_get (choices, 0)));
    if (s_mode == S_LENGTH)
        json_object_set_new (json_array_get (choices, 0), "finish_reason", json_string ("length"));
    if (s_mode == S_NUL)
        json_object_set_new (json_object_get (json_array_get (choices, 0), "message"),
                             "content", json_stringn ("{\"action\":\"x\0\"}", 15));
    if (s_mode == S_HUGE) {
        size_t len = strlen (content), pad = 2 * 1024 * 1024;
        char *big = malloc (len + pad + 1);
        memcpy (big, content, len);
        memset (big + len, ' ', pad);
        big[len + pad] = 0;
        json_object_set_new (json_object_get (json_array_get (choices, 0), "message"),
                             "content", json_string (big));
        free (big);
    }
    if (s_mode != S_NO_USAGE)
        json_object_set_new (reply, "usage",
                             json_pack ("{s:I, s:I, s:I}", "prompt_tokens",
                                        (json_int_t) prompt_tokens, "completion_tokens",
                                        (json_int_t) completion_tokens, "total_tokens",
                                        (json_int_t) (prompt_tokens + completion_tokens)));
    json_decref (body);
    if (s_mode == S_CUT)
        return s_send_cut (connection, reply);
    return s_send_json (connection, status, reply);
}

static enum MHD_Result
s_handler (void *cls, struct MHD_Connection *connection, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size,
           void **con_cls)
{
    (void) cls;
    (void) version;
    if (!*con_cls) {
        if (s_mode == S_RESEND_PROBE) {
            //  The connection was shut after its response, but the client's next
            //  request got in first (Linux still delivers what was queued): treat it as
            //  arriving on a closed socket, unread and unanswered.
            const union MHD_ConnectionInfo *info =
              MHD_get_connection_info (connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
            s_socket_t *sock = info ? info->socket_context : NULL;
            if (sock && sock->answered)
                return MHD_NO;
        }
        *con_cls = calloc (1, sizeof (s_upload_t));
        return *con_cls ? MHD_YES : MHD_NO;
    }
    s_upload_t *upload = *con_cls;
    if (*upload_data_size) {
        if (upload->size + *upload_data_size > S_MAX_UPLOAD)
            upload->too_big = true;
        else {
            upload->data = realloc (upload->data, upload->size + *upload_data_size + 1);
            memcpy (upload->data + upload->size, upload_data, *upload_data_size);
            upload->size += *upload_data_size;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!strcmp (method, "POST") && !strcmp (url, "/v1/chat/completions"))
        return s_completion (connection, upload);
    if (!strcmp (method, "GET") && !strcmp (url, "/v1/models"))
        return s_send_json (connection, 200,
                            json_pack ("{s:s, s:[{s:s, s:s, s:i, s:s}]}", "object", "list",
                                       "data", "id", "fake-model", "object", "model",
                                       "created", 0, "owned_by", "fake_llm"));
    if (!strcmp (method, "GET") && !strcmp (url, "/health"))
        return s_send (connection, 200, "{\"status\":\"ok\"}", "application/json");
    return s_openai_error (connection, 404, "not found", "not_found_error");
}

static void
s_completed (void *cls, struct MHD_Connection *connection, void **con_cls,
             enum MHD_RequestTerminationCode code)
{
    (void) cls;
    //  resend-probe: the response went out whole and without "Connection: close";
    //  shut the socket now so the client's next request on it finds it closed.
    //  (libmicrohttpd has no call for this; shutdown, not close, leaves the descriptor
    //  to it.)
    if (s_mode == S_RESEND_PROBE && code == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        const union MHD_ConnectionInfo *info =
          MHD_get_connection_info (connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        s_socket_t *sock = info ? info->socket_context : NULL;
        if (sock)
            sock->answered = true;
        info = MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (info)
            shutdown (info->connect_fd, SHUT_RDWR);
    }
    s_upload_t *upload = *con_cls;
    if (upload) {
        free (upload->data);
        free (upload);
        *con_cls = NULL;
    }
}

static void
s_connection (void *cls, struct MHD_Connection *connection, void **socket_context,
              enum MHD_ConnectionNotificationCode code)
{
    (void) cls;
    (void) connection;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        *socket_context = calloc (1, sizeof (s_socket_t));
    else {
        free (*socket_context);
        *socket_context = NULL;
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
    fprintf (stderr, "usage: fake_llm --port P | --port-file F [--responses FILE] "
                     "[--mode ok|500|timeout|malformed|no-usage|reject-schema|tgi-error|two-choices|length|huge|nul|bad-utf8"
                     "|max-usage|over-usage|loading|rate-limited|cut|drop|resend-probe] "
                     "[--hang-ms N] [--delay-ms N] [--requests LOG]\n");
    exit (2);
}

int
main (int argc, char **argv)
{
    long port = -1;
    const char *port_file = NULL, *responses = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!value)
            s_usage ();
        i++;
        if (!strcmp (arg, "--port"))
            port = strtol (value, NULL, 10);
        else if (!strcmp (arg, "--port-file"))
            port_file = value;
        else if (!strcmp (arg, "--responses"))
            responses = value;
        else if (!strcmp (arg, "--hang-ms"))
            s_hang_ms = strtol (value, NULL, 10);
        else if (!strcmp (arg, "--delay-ms"))
            s_delay_ms = strtol (value, NULL, 10);
        else if (!strcmp (arg, "--requests"))
            s_requests_path = value;
        else if (!strcmp (arg, "--mode")) {
            int m = 0;
            while (s_mode_names[m] && strcmp (s_mode_names[m], value))
                m++;
            if (!s_mode_names[m])
                s_usage ();
            s_mode = (s_mode_t) m;
        }
        else
            s_usage ();
    }
    if (port < 0 && !port_file)
        s_usage ();
    if (port < 0)
        port = 0;
    if (port > 65535)
        s_usage ();
    if (responses && s_load_responses (responses))
        return 1;

    //  Die with the test that started us; take signals only in the main thread.
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGTERM);
    sigaddset (&signals, SIGINT);
    pthread_sigmask (SIG_BLOCK, &signals, NULL);
    signal (SIGPIPE, SIG_IGN);

    struct sockaddr_in addr = { 0 };
    addr.sin_family = AF_INET;
    addr.sin_port = htons ((uint16_t) port);
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    struct MHD_Daemon *daemon =
      MHD_start_daemon (MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD
                          | MHD_USE_ERROR_LOG,
                        0, NULL, NULL, s_handler, NULL,
                        MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &addr,
                        MHD_OPTION_NOTIFY_COMPLETED, s_completed, NULL,
                        MHD_OPTION_NOTIFY_CONNECTION, s_connection, NULL,
                        MHD_OPTION_END);
    if (!daemon) {
        fprintf (stderr, "fake_llm: cannot listen on 127.0.0.1:%ld\n", port);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_BIND_PORT);
    unsigned bound = info ? info->port : (unsigned) port;
    if (port_file && s_write_port_file (port_file, bound)) {
        fprintf (stderr, "fake_llm: cannot write %s: %s\n", port_file, strerror (errno));
        MHD_stop_daemon (daemon);
        return 1;
    }
    int sig = 0;
    sigwait (&signals, &sig);
    atomic_store (&s_stopping, true);
    MHD_stop_daemon (daemon);
    for (size_t i = 0; i < s_output_count; i++)
        free (s_outputs[i].content);
    free (s_outputs);
    return 0;
}
