/*  backend_http - one model call to a real inference server over HTTP (kind openai).
 *  Data path: event -> detect -> incident -> [reason] -> gate -> act -> record.
 *
 *  The wire formats are wire.c's; this file is the transport and the policy:
 *
 *  Probe.  Once per probe_interval_s (and whenever the last probe did not answer) the
 *  server is asked what it is: flavour (for flavor: auto), context length, whether it
 *  lists our model, whether it is loading (llama.cpp /health, /props; vLLM /v1/models;
 *  TGI /info; Ollama /api/tags, /api/show).  The facts are shared by the agent's
 *  workers (health.h).  A probe that cannot connect changes nothing and the call goes
 *  on: its own connect failure is what gets retried.  All of a probe's requests share
 *  3 s, at most a quarter of the call's time.
 *
 *  Pre-checks, before any request: the circuit (health.h: an open circuit fails at
 *  once as model_unreachable), a model the server does not list (model_not_found), a
 *  prompt estimate + max_tokens over the context length (model_context_overflow).
 *
 *  Deadlines.  connect (connect_timeout_ms), first token (first_token_timeout_ms from
 *  the request's start: a streamed token, or any byte of a non-streamed answer; SSE
 *  comments do not count), idle (idle_timeout_ms between two chunks once bytes flow),
 *  and the whole call (timeout_ms, or the caller's earlier deadline) across every
 *  request and wait of the call.  They are checked in a curl multi loop that wakes at
 *  the nearest one.
 *
 *  Retries, with the same body, for transient failures only: not connected (refused,
 *  reset before the request was sent), 429, 503 busy or loading.  The wait is
 *  Retry-After when the server sent one (seconds or an HTTP date), else full-jitter
 *  exponential backoff (retry.base_ms * 2^n, capped at retry.max_ms); a wait that
 *  would pass the deadline is not taken.  A request the server received and did not
 *  answer is never re-sent here (it may have generated: the loop decides, under a new
 *  token grant).  A refused structured-output form (400/415/422 naming it) is retried
 *  at once with the next form (OpenAI -> TGI -> none for a generic server; the
 *  flavour's own form -> none otherwise), remembered until the next probe, within the
 *  same deadline, and recorded as schema_fallback, not as an error.
 *
 *  No hidden re-sends: one fresh connection per request (libcurl re-sends a request
 *  silently on a reused connection it finds dead), and every request is in the reply's
 *  requests_log.
 *
 *  The bearer token is read from api_key_file for every request (a rotated credential
 *  is picked up), wiped after use, never logged.
 */
#include "backend.h"
#include "health.h"
#include "log.h"
#include "wire.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_MAX_KEY           4096
#define S_MAX_CONTENT       (1024 * 1024)       //  content bytes of one answer (transport cap)
#define S_MAX_ERROR_BODY    (64 * 1024)         //  bytes of a non-2xx body kept
#define S_MAX_STREAM        (64 * 1024 * 1024)  //  raw bytes of one streamed answer: a
                                                //  token per event costs ~40x its text,
                                                //  so the content cap comes first
#define S_MAX_PROBE_BODY    (256 * 1024)
#define S_REASONING_KEPT    4096                //  reasoning bytes kept in the reply
#define S_MAX_FORM_CHANGES  2
#define S_PROBE_MS          3000                //  all the GETs of one probe

typedef struct {
    char *name;
    char *base;                     //  url without a trailing slash
    char *model;                    //  may be NULL
    char *api_key_file;             //  may be NULL
    char *keep_alive;
    char **stop;
    size_t stop_count;
    mesh_backend_flavor_t flavor_cfg;
    bool stream, seed, json_schema;
    long timeout_ms, connect_ms, ttft_ms, idle_ms, probe_interval_ms;
    int attempts;
    long base_ms, max_ms;
    long context_cfg;
    double temperature;
    size_t max_content;
    CURL *curl;
    CURLM *multi;
    mesh_health_t *health;
} s_http_t;

//  One HTTP exchange.
typedef struct {
    mesh_backend_flavor_t flavor;
    bool want_stream;
    size_t max_content;
    long started_ms;
    CURL *curl;
    //  what came
    long status;
    bool status_read;
    bool streaming;                 //  the 2xx answer is a stream (by content type)
    mesh_wire_stream_t reader;
    char *body;                     //  a whole answer (2xx non-stream, or an error body)
    size_t size, cap;
    size_t received;
    bool overflow, reader_stop;
    long first_byte_ms, first_token_ms, last_data_ms;
    char retry_after[80];
    char content_type[80];
} s_exchange_t;

static pthread_once_t s_curl_once = PTHREAD_ONCE_INIT;
static bool s_curl_ok;

static void
s_curl_init (void)
{
    s_curl_ok = curl_global_init (CURL_GLOBAL_DEFAULT) == CURLE_OK;
    if (sodium_init () < 0)
        s_curl_ok = false;
}

static void
s_destroy (void *state)
{
    s_http_t *self = state;
    if (!self)
        return;
    mesh_health_put (self->health);
    if (self->multi)
        curl_multi_cleanup (self->multi);
    if (self->curl)
        curl_easy_cleanup (self->curl);
    for (size_t i = 0; i < self->stop_count; i++)
        free (self->stop[i]);
    free (self->stop);
    free (self->name);
    free (self->base);
    free (self->model);
    free (self->api_key_file);
    free (self->keep_alive);
    free (self);
}

//  Read the bearer token into KEY (S_MAX_KEY bytes).  0, or -1 with a reason in ERR that
//  never contains the key.
static int
s_read_key (const char *path, char *key, char *err, size_t err_size)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        snprintf (err, err_size, "cannot open api_key_file %s: %s", path, strerror (errno));
        return -1;
    }
    size_t len = fread (key, 1, S_MAX_KEY - 1, file);
    bool too_long = len == S_MAX_KEY - 1 && fgetc (file) != EOF;
    bool failed = ferror (file);
    fclose (file);
    key[len] = 0;
    while (len > 0 && (key[len - 1] == '\n' || key[len - 1] == '\r'))
        key[--len] = 0;
    bool bad = failed || too_long || len == 0 || strlen (key) != len;
    for (size_t i = 0; !bad && i < len; i++)
        if ((unsigned char) key[i] < 0x20 || key[i] == 0x7f)
            bad = true;         //  a newline inside would inject a header
    if (bad) {
        sodium_memzero (key, S_MAX_KEY);
        snprintf (err, err_size, "api_key_file %s: %s", path,
                  failed ? "read error" : too_long ? "larger than 4 KiB"
                  : len == 0 ? "empty" : "contains control characters");
        return -1;
    }
    return 0;
}

static char *
s_strdup_or_null (const char *text, bool *oom)
{
    if (!text)
        return NULL;
    char *copy = strdup (text);
    if (!copy)
        *oom = true;
    return copy;
}

static void *
s_create (const mesh_backend_config_t *cfg)
{
    const char *name = cfg->name ? cfg->name : "unnamed";
    pthread_once (&s_curl_once, s_curl_init);
    if (!s_curl_ok) {
        mesh_err ("backend %s: libcurl or libsodium failed to initialise", name);
        return NULL;
    }
    if (!cfg->url || (strncmp (cfg->url, "http://", 7) && strncmp (cfg->url, "https://", 8))) {
        mesh_err ("backend %s: url must start with http:// or https://, got %s", name,
                  cfg->url ? cfg->url : "nothing");
        return NULL;
    }
    if (cfg->api_key_file) {
        //  A systemd credential exists only inside the service, so a key file missing
        //  here (meshd --check-config run by hand) is a warning; calls fail until it is
        //  readable.
        char key[S_MAX_KEY], err[512];
        int rc = s_read_key (cfg->api_key_file, key, err, sizeof err);
        sodium_memzero (key, sizeof key);
        if (rc)
            mesh_warn ("backend %s: %s; calls will fail until it is readable", name, err);
    }
    s_http_t *self = calloc (1, sizeof *self);
    if (!self)
        goto oom;
    bool oom = false;
    size_t url_len = strlen (cfg->url);
    while (url_len > 0 && cfg->url[url_len - 1] == '/')
        url_len--;
    self->base = strndup (cfg->url, url_len);
    self->name = strdup (name);
    self->model = s_strdup_or_null (cfg->model, &oom);
    self->api_key_file = s_strdup_or_null (cfg->api_key_file, &oom);
    self->keep_alive = s_strdup_or_null (cfg->keep_alive, &oom);
    if (cfg->stop_count) {
        self->stop = calloc (cfg->stop_count, sizeof *self->stop);
        for (size_t i = 0; self->stop && i < cfg->stop_count; i++)
            if ((self->stop[self->stop_count] = strdup (cfg->stop[i])))
                self->stop_count++;
        oom = oom || self->stop_count != cfg->stop_count;
    }
    self->curl = curl_easy_init ();
    self->multi = curl_multi_init ();
    self->health = mesh_health_get (cfg);
    if (oom || !self->base || !self->name || !self->curl || !self->multi || !self->health)
        goto oom;
    self->flavor_cfg = cfg->flavor;
    self->stream = cfg->stream;
    self->seed = cfg->seed;
    self->json_schema = cfg->json_schema;
    self->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
    self->connect_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 2000;
    self->ttft_ms = cfg->first_token_timeout_ms > 0 ? cfg->first_token_timeout_ms
                                                    : self->timeout_ms;
    self->idle_ms = cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms : self->timeout_ms;
    self->probe_interval_ms = (cfg->probe_interval_s > 0 ? cfg->probe_interval_s : 300) * 1000L;
    self->attempts = cfg->retry_attempts > 0 ? cfg->retry_attempts : 1;
    self->base_ms = cfg->retry_base_ms > 0 ? cfg->retry_base_ms : 250;
    self->max_ms = cfg->retry_max_ms > 0 ? cfg->retry_max_ms : 5000;
    self->context_cfg = cfg->context_tokens;
    self->temperature = cfg->temperature;
    //  The transport's cap; limits.max_bytes (at most this) is the loop's check, which
    //  records an excerpt of what it refuses.
    self->max_content = S_MAX_CONTENT;
    return self;
oom:
    mesh_err ("backend %s: out of memory", name);
    s_destroy (self);
    return NULL;
}

//  --- one exchange ---------------------------------------------------------------

static size_t
s_header (char *buffer, size_t size, size_t nitems, void *arg)
{
    s_exchange_t *ex = arg;
    size_t n = size * nitems;
    const char *names[] = { "retry-after:", "content-type:" };
    char *targets[] = { ex->retry_after, ex->content_type };
    for (int i = 0; i < 2; i++) {
        size_t len = strlen (names[i]);
        if (n > len && !strncasecmp (buffer, names[i], len)) {
            const char *value = buffer + len;
            size_t left = n - len;
            while (left && (*value == ' ' || *value == '\t'))
                value++, left--;
            while (left && (value[left - 1] == '\r' || value[left - 1] == '\n'
                            || value[left - 1] == ' '))
                left--;
            if (left >= sizeof ex->retry_after)
                left = sizeof ex->retry_after - 1;
            memcpy (targets[i], value, left);
            targets[i][left] = 0;
        }
    }
    return n;
}

//  Keep N bytes of a whole body, at most LIMIT in all.
static bool
s_keep (s_exchange_t *ex, const char *data, size_t n, size_t limit)
{
    if (ex->size + n > limit) {
        ex->overflow = true;
        return false;
    }
    if (ex->size + n + 1 > ex->cap) {
        size_t cap = ex->cap ? ex->cap : 4096;
        while (cap < ex->size + n + 1)
            cap *= 2;
        char *body = realloc (ex->body, cap);
        if (!body)
            return false;
        ex->body = body;
        ex->cap = cap;
    }
    memcpy (ex->body + ex->size, data, n);
    ex->size += n;
    ex->body[ex->size] = 0;
    return true;
}

static size_t
s_write (char *data, size_t size, size_t nmemb, void *arg)
{
    s_exchange_t *ex = arg;
    size_t n = size * nmemb;
    long now = mesh_health_now_ms ();
    ex->received += n;
    ex->last_data_ms = now;
    if (!ex->first_byte_ms)
        ex->first_byte_ms = now;
    if (!ex->status_read) {
        ex->status_read = true;
        curl_easy_getinfo (ex->curl, CURLINFO_RESPONSE_CODE, &ex->status);
        ex->streaming = ex->want_stream && ex->status >= 200 && ex->status <= 299
                        && (strcasestr (ex->content_type, "event-stream")
                            || strcasestr (ex->content_type, "ndjson")
                            || !strcasestr (ex->content_type, "json"));
        if (ex->streaming)
            mesh_wire_stream_init (&ex->reader, ex->flavor, ex->max_content);
    }
    if (ex->streaming) {
        if (ex->received > S_MAX_STREAM) {
            ex->overflow = true;
            return 0;
        }
        int tokens = mesh_wire_stream_feed (&ex->reader, data, n);
        if (tokens > 0 && !ex->first_token_ms)
            ex->first_token_ms = now;
        if (tokens < 0 || ex->reader.answer.content_overflow) {
            ex->reader_stop = true;
            return 0;
        }
        return n;
    }
    if (ex->status >= 200 && ex->status <= 299 && !ex->first_token_ms)
        ex->first_token_ms = now;
    size_t limit = ex->status >= 200 && ex->status <= 299 ? 2 * ex->max_content + 65536
                                                           : S_MAX_ERROR_BODY;
    return s_keep (ex, data, n, limit) ? n : 0;
}

typedef enum { S_DONE, S_TTFT, S_IDLE, S_DEADLINE, S_CONNECT } s_stop_t;

//  Perform one request (GET when PAYLOAD is NULL) to PATH, waiting at most until
//  DEADLINE.  Returns the curl code; *STOP says which of our deadlines ended it.
static CURLcode
s_perform (s_http_t *self, const char *path, const char *payload, const char *key,
           long deadline, long ttft_ms, long idle_ms, s_exchange_t *ex, s_stop_t *stop,
           bool *sent, char *errbuf)
{
    *stop = S_DONE;
    *sent = false;
    char url[2048];
    snprintf (url, sizeof url, "%s%s", self->base, path);
    struct curl_slist *headers = NULL;
    headers = curl_slist_append (headers, "Content-Type: application/json");
    headers = curl_slist_append (headers, ex->want_stream
                                 ? "Accept: text/event-stream, application/x-ndjson, application/json"
                                 : "Accept: application/json");
    headers = curl_slist_append (headers, "Expect:");
    if (key) {
        char auth[S_MAX_KEY + 32];
        snprintf (auth, sizeof auth, "Authorization: Bearer %s", key);
        headers = curl_slist_append (headers, auth);
        sodium_memzero (auth, sizeof auth);
    }
    CURL *curl = self->curl;
    curl_easy_reset (curl);
    long now = mesh_health_now_ms ();
    long left = deadline - now > 1 ? deadline - now : 1;
    curl_easy_setopt (curl, CURLOPT_URL, url);
    curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
    if (payload) {
        curl_easy_setopt (curl, CURLOPT_POST, 1L);
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen (payload));
    }
    //  Backstops only: the loop below enforces every deadline to the millisecond.
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, left + 1000);
    curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT_MS, self->connect_ms < left ? self->connect_ms
                                                                               : left);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, ex);
    curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, s_header);
    curl_easy_setopt (curl, CURLOPT_HEADERDATA, ex);
    curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt (curl, CURLOPT_USERAGENT, "meshd");
    //  One connection per request: libcurl re-sends a request silently when a reused
    //  keep-alive connection turns out dead, and the server may have generated for the
    //  first one.  Every request the server receives must be one we count.
    curl_easy_setopt (curl, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt (curl, CURLOPT_FORBID_REUSE, 1L);
    errbuf[0] = 0;
    ex->started_ms = now;
    ex->curl = curl;
    curl_multi_add_handle (self->multi, curl);
    CURLcode code = CURLE_OK;
    int running = 1;
    while (running) {
        CURLMcode mc = curl_multi_perform (self->multi, &running);
        if (mc != CURLM_OK) {
            code = CURLE_FAILED_INIT;
            snprintf (errbuf, CURL_ERROR_SIZE, "curl_multi_perform: %s", curl_multi_strerror (mc));
            break;
        }
        if (!running)
            break;
        now = mesh_health_now_ms ();
        long connected = 0;
        curl_easy_getinfo (curl, CURLINFO_CONNECT_TIME_T, &connected);
        //  The first token: a streamed token, or any byte of another answer.
        bool first = ex->first_token_ms || (ex->first_byte_ms && !ex->streaming);
        long until_ttft = first ? -1 : ex->started_ms + ttft_ms - now;
        long until_idle = ex->first_byte_ms ? ex->last_data_ms + idle_ms - now : -1;
        if (!connected && now - ex->started_ms >= self->connect_ms)
            *stop = S_CONNECT;
        else if (!first && until_ttft <= 0)
            *stop = S_TTFT;
        else if (ex->first_byte_ms && until_idle <= 0)
            *stop = S_IDLE;
        else if (now >= deadline)
            *stop = S_DEADLINE;
        if (*stop != S_DONE) {
            code = CURLE_OPERATION_TIMEDOUT;
            break;
        }
        long wait = deadline - now;
        if (until_ttft > 0 && until_ttft < wait)
            wait = until_ttft;
        if (until_idle > 0 && until_idle < wait)
            wait = until_idle;
        if (!connected && ex->started_ms + self->connect_ms - now < wait)
            wait = ex->started_ms + self->connect_ms - now;
        if (wait > 100)
            wait = 100;
        if (wait < 1)
            wait = 1;
        curl_multi_poll (self->multi, NULL, 0, (int) wait, NULL);
    }
    if (*stop == S_DONE) {
        int queued;
        CURLMsg *msg;
        while ((msg = curl_multi_info_read (self->multi, &queued)))
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == curl)
                code = msg->data.result;
    }
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &ex->status);
    curl_off_t uploaded = 0;
    curl_easy_getinfo (curl, CURLINFO_SIZE_UPLOAD_T, &uploaded);
    size_t payload_len = payload ? strlen (payload) : 0;
    long connected = 0;
    curl_easy_getinfo (curl, CURLINFO_CONNECT_TIME_T, &connected);
    //  Sent: the whole request went out (the server may be generating), or an answer came.
    *sent = ex->status > 0 || (connected && (size_t) uploaded >= payload_len);
    if (*stop == S_CONNECT || (*stop != S_DONE && !connected))
        *stop = S_CONNECT;
    curl_multi_remove_handle (self->multi, curl);
    for (struct curl_slist *h = headers; h; h = h->next)
        sodium_memzero (h->data, strlen (h->data));
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all (headers);
    return code;
}

static void
s_exchange_clear (s_exchange_t *ex)
{
    if (ex->streaming)
        mesh_wire_stream_clear (&ex->reader);
    free (ex->body);
    memset (ex, 0, sizeof *ex);
}

//  --- probe ----------------------------------------------------------------------

//  GET (or POST BODY to) PATH with a short deadline; the probe's reading of the answer
//  is merged into *SERVER.  Returns whether the server answered at all.
static bool
s_probe_one (s_http_t *self, const char *path, const char *post, long deadline,
             mesh_wire_probe_t *probe)
{
    s_exchange_t ex = { .flavor = MESH_FLAVOR_OPENAI, .want_stream = false,
                        .max_content = S_MAX_PROBE_BODY / 2 };
    char errbuf[CURL_ERROR_SIZE];
    s_stop_t stop;
    bool sent;
    long now = mesh_health_now_ms ();
    long limit = now + (self->connect_ms + 1000 < 3000 ? self->connect_ms + 1000 : 3000);
    if (limit > deadline)
        limit = deadline;
    CURLcode code = s_perform (self, path, post, NULL, limit, limit - now, limit - now, &ex,
                               &stop, &sent, errbuf);
    memset (probe, 0, sizeof *probe);
    bool answered = code == CURLE_OK && ex.status > 0;
    if (answered)
        mesh_wire_probe_read (path, ex.status, ex.body ? ex.body : "", ex.size, self->model,
                              probe);
    s_exchange_clear (&ex);
    return answered;
}

static void
s_merge (mesh_health_server_t *server, const mesh_wire_probe_t *probe, bool *loading,
         bool *listed, bool *list)
{
    if (server->flavor == MESH_FLAVOR_AUTO && probe->flavor != MESH_FLAVOR_AUTO)
        server->flavor = probe->flavor;
    if (!server->context_tokens && probe->context_tokens > 0)
        server->context_tokens = probe->context_tokens;
    *loading = *loading || probe->loading;
    if (probe->model_list) {
        *list = true;
        *listed = *listed || probe->model_listed;
    }
}

//  Ask the server what it is, if it is time.  Fills *SERVER either way.
static void
s_probe (s_http_t *self, long deadline, mesh_health_server_t *server)
{
    mesh_health_server (self->health, server);
    long now = mesh_health_now_ms ();
    if (server->probed && now - server->probed_at_ms < self->probe_interval_ms)
        return;
    mesh_health_server_t found = { .flavor = self->flavor_cfg };
    bool any = false, loading = false, listed = false, list = false;
    mesh_wire_probe_t probe;
    //  All of a probe's GETs share S_PROBE_MS (and at most a quarter of the call's time
    //  left): a server that accepts and never answers costs the call that much, once.
    long left = deadline - now;
    deadline = now + (left / 4 < S_PROBE_MS ? left / 4 : S_PROBE_MS);
    if (found.flavor == MESH_FLAVOR_AUTO) {
        static const char *order[] = { "/v1/models", "/props", "/info", "/api/version", NULL };
        for (int i = 0; order[i] && found.flavor == MESH_FLAVOR_AUTO
                        && mesh_health_now_ms () < deadline; i++)
            if (s_probe_one (self, order[i], NULL, deadline, &probe)) {
                any = true;
                s_merge (&found, &probe, &loading, &listed, &list);
            }
        if (!any)
            return;                     //  nothing answered: try again on the next call
        if (found.flavor == MESH_FLAVOR_AUTO)
            found.flavor = MESH_FLAVOR_OPENAI;
    }
    const char *paths[4] = { NULL };
    switch (found.flavor) {
        case MESH_FLAVOR_LLAMACPP: paths[0] = "/health"; paths[1] = "/props"; break;
        case MESH_FLAVOR_VLLM: paths[0] = "/v1/models"; break;
        case MESH_FLAVOR_TGI: paths[0] = "/info"; break;
        case MESH_FLAVOR_OLLAMA:
        case MESH_FLAVOR_OLLAMA_NATIVE: paths[0] = "/api/tags"; paths[1] = "/api/show"; break;
        default: paths[0] = "/v1/models"; break;
    }
    for (int i = 0; paths[i] && mesh_health_now_ms () < deadline; i++) {
        char *post = NULL;
        if (!strcmp (paths[i], "/api/show")) {
            json_t *body = json_pack ("{s:s}", "model", self->model ? self->model : "");
            post = body ? json_dumps (body, JSON_COMPACT) : NULL;
            json_decref (body);
        }
        if (s_probe_one (self, paths[i], post, deadline, &probe)) {
            any = true;
            s_merge (&found, &probe, &loading, &listed, &list);
        }
        free (post);
    }
    if (!any)
        return;
    if (self->context_cfg > 0)
        found.context_tokens = self->context_cfg;
    //  Only servers that route by model name refuse one they do not list.
    found.model_missing = list && !listed && self->model
                          && (found.flavor == MESH_FLAVOR_VLLM || found.flavor == MESH_FLAVOR_OLLAMA
                              || found.flavor == MESH_FLAVOR_OLLAMA_NATIVE);
    found.probed = true;
    found.probed_at_ms = mesh_health_now_ms ();
    found.schema_form = mesh_wire_schema_default (found.flavor);
    mesh_health_set_server (self->health, &found);
    if (loading)
        mesh_health_loading (self->health, found.probed_at_ms);
    *server = found;
}

//  --- the call -------------------------------------------------------------------

static int64_t
s_seed (const char *seed_key)
{
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (hash, (const unsigned char *) seed_key, strlen (seed_key));
    return (int64_t) (((uint32_t) hash[0] << 24 | (uint32_t) hash[1] << 16
                       | (uint32_t) hash[2] << 8 | hash[3]) & 0x7fffffff);
}

static mesh_wire_schema_t
s_next_form (mesh_backend_flavor_t flavor, mesh_wire_schema_t form)
{
    if (flavor == MESH_FLAVOR_OPENAI && form == MESH_WIRE_SCHEMA_OPENAI)
        return MESH_WIRE_SCHEMA_TGI;   //  an unknown server may be a TGI
    return MESH_WIRE_SCHEMA_NONE;
}

static int
s_fail (mesh_fail_t *why, char **detail, mesh_fail_t fail, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

static int
s_fail (mesh_fail_t *why, char **detail, mesh_fail_t fail, const char *format, ...)
{
    *why = fail;
    free (*detail);
    va_list args;
    va_start (args, format);
    if (vasprintf (detail, format, args) < 0)
        *detail = NULL;
    va_end (args);
    return -1;
}

//  Append a one-line request record to the reply's log.
static void
s_log_request (mesh_backend_reply_t *reply, const s_exchange_t *ex, mesh_fail_t fail,
               long ms, long wait_ms, long retry_after_ms, mesh_wire_schema_t form)
{
    if (!reply->requests_log)
        reply->requests_log = json_array ();
    json_t *entry = json_pack ("{s:i, s:I, s:s, s:I, s:I, s:s}", "n", reply->requests,
                               "status", (json_int_t) ex->status,
                               "class", fail == MESH_FAIL_NONE ? "ok" : mesh_fail_name (fail),
                               "ms", (json_int_t) ms, "bytes", (json_int_t) ex->received,
                               "structured", mesh_wire_schema_name (form));
    if (entry && wait_ms > 0)
        json_object_set_new (entry, "wait_ms", json_integer (wait_ms));
    if (entry && retry_after_ms >= 0)
        json_object_set_new (entry, "retry_after_ms", json_integer (retry_after_ms));
    json_array_append_new (reply->requests_log, entry);
}

static void
s_sleep_ms (long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
        ;
}

//  Move a 2xx answer into REPLY.  0, or -1 with the class.
static int
s_answer (s_http_t *self, const mesh_wire_answer_t *answer, bool streamed, long prompt_estimate,
          mesh_backend_reply_t *reply, mesh_fail_t *why, char **detail)
{
    if (answer->error) {
        mesh_fail_t fail = mesh_wire_classify (answer->error_status, answer->error_message,
                                               answer->error_type);
        reply->answered_error = answer->token_events == 0;
        return s_fail (why, detail, fail == MESH_FAIL_MODEL_MALFORMED ? MESH_FAIL_MODEL_ERROR
                                                                      : fail,
                       "error in the answer%s: %s", streamed ? " stream" : "",
                       answer->error_message ? answer->error_message : "?");
    }
    if (answer->content_overflow)
        return s_fail (why, detail, MESH_FAIL_MODEL_OVERSIZE,
                       "content larger than the transport cap of %zu bytes", self->max_content);
    if (answer->malformed)
        return s_fail (why, detail, MESH_FAIL_MODEL_MALFORMED, "%s",
                       answer->malformed_detail ? answer->malformed_detail : "malformed answer");
    if (answer->choices > 1)
        return s_fail (why, detail, MESH_FAIL_MODEL_MALFORMED,
                       "response has %zu choices; exactly one was asked for", answer->choices);
    if (streamed && !answer->done && !answer->finished)
        return s_fail (why, detail, MESH_FAIL_MODEL_PARTIAL,
                       "the stream ended without a finish (%zu events, %zu content bytes)",
                       answer->events, answer->content_len);
    if (!answer->content_seen || !answer->content)
        return s_fail (why, detail, MESH_FAIL_MODEL_MALFORMED, "%s",
                       answer->reasoning_bytes ? "the answer has reasoning but no content"
                       : streamed ? "the stream carried no content"
                       : "choices[0].message.content is missing or null");
    //  A leading <think> block is set aside: recorded, never parsed as the proposal.
    const char *think = NULL;
    size_t think_len = 0;
    const char *rest = mesh_wire_split_think (answer->content, &think, &think_len);
    reply->content = strdup (rest);
    const char *kept = think_len ? think : answer->reasoning;
    size_t kept_len = think_len ? think_len : answer->reasoning_len;
    reply->reasoning_bytes = think_len + answer->reasoning_bytes;
    if (kept && kept_len)
        reply->reasoning = strndup (kept, kept_len < S_REASONING_KEPT ? kept_len
                                                                      : S_REASONING_KEPT);
    reply->model = answer->model ? strdup (answer->model) : NULL;
    reply->finish_reason = answer->finish_reason ? strdup (answer->finish_reason) : NULL;
    reply->prompt_tokens = answer->prompt_tokens;
    reply->completion_tokens = answer->completion_tokens;
    if (reply->prompt_tokens < 0) {
        reply->prompt_tokens = prompt_estimate;
        reply->estimated = true;
    }
    if (reply->completion_tokens < 0) {
        //  Reasoning is generated too: it counts.
        reply->completion_tokens = mesh_backend_estimate_tokens (answer->content_len
                                                                 + answer->reasoning_bytes);
        reply->estimated = true;
    }
    if (!reply->content)
        return s_fail (why, detail, MESH_FAIL_MODEL_ERROR, "out of memory");
    return 0;
}

static int
s_call (void *state, json_t *messages, int max_tokens, json_t *schema, const char *seed_key,
        const mesh_backend_opts_t *opts, mesh_backend_reply_t *reply, mesh_fail_t *why,
        char **detail)
{
    s_http_t *self = state;
    long started = mesh_health_now_ms ();
    long deadline = started + self->timeout_ms;
    if (opts && opts->deadline_ms > 0 && opts->deadline_ms < deadline)
        deadline = opts->deadline_ms;
    long prompt_estimate = opts && opts->prompt_estimate > 0 ? opts->prompt_estimate
                                                             : mesh_backend_estimate_json (messages);
    reply->ttft_ms = -1;
    reply->streamed = self->stream;
    int rc = -1;
    char why_text[300];
    bool probe_call = false;
    if (!mesh_health_admit (self->health, started, &probe_call, why_text, sizeof why_text)) {
        reply->flavor = mesh_wire_flavor_name (self->flavor_cfg);
        reply->structured = mesh_wire_schema_name (MESH_WIRE_SCHEMA_NONE);
        return s_fail (why, detail, MESH_FAIL_MODEL_UNREACHABLE, "%s", why_text);
    }
    mesh_health_server_t server;
    s_probe (self, deadline, &server);
    mesh_backend_flavor_t flavor = server.flavor != MESH_FLAVOR_AUTO ? server.flavor
                                   : self->flavor_cfg != MESH_FLAVOR_AUTO ? self->flavor_cfg
                                   : MESH_FLAVOR_OPENAI;
    reply->flavor = mesh_wire_flavor_name (flavor);
    reply->context_tokens = self->context_cfg > 0 ? self->context_cfg : server.context_tokens;
    mesh_wire_schema_t form = schema && self->json_schema
                              ? (server.probed ? server.schema_form
                                               : mesh_wire_schema_default (flavor))
                              : MESH_WIRE_SCHEMA_NONE;
    reply->structured = mesh_wire_schema_name (form);
    if (server.model_missing) {
        rc = s_fail (why, detail, MESH_FAIL_MODEL_NOT_FOUND,
                     "the server (%s) does not list model '%s'", reply->flavor,
                     self->model ? self->model : "");
        goto done;
    }
    if (reply->context_tokens > 0 && prompt_estimate + max_tokens > reply->context_tokens) {
        rc = s_fail (why, detail, MESH_FAIL_MODEL_CONTEXT_OVERFLOW,
                     "prompt ~%ld tokens + max_tokens %d do not fit the server's context of "
                     "%ld tokens; not sent", prompt_estimate, max_tokens, reply->context_tokens);
        goto done;
    }
    int transient = 0, form_changes = 0;
    for (;;) {
        mesh_wire_schema_t sent_form = form;
        mesh_wire_request_t request = {
            .messages = messages, .model = self->model, .max_tokens = max_tokens,
            .temperature = self->temperature, .schema = schema, .schema_form = form,
            .stream = self->stream, .has_seed = self->seed && seed_key,
            .seed = self->seed && seed_key ? s_seed (seed_key) : 0,
            .stop = self->stop, .stop_count = self->stop_count, .keep_alive = self->keep_alive,
        };
        json_t *body = mesh_wire_request (flavor, &request);
        char *payload = body ? json_dumps (body, JSON_COMPACT) : NULL;
        json_decref (body);
        if (!payload) {
            rc = s_fail (why, detail, MESH_FAIL_MODEL_ERROR, "cannot serialise the request");
            break;
        }
        char key[S_MAX_KEY], key_error[512];
        if (self->api_key_file && s_read_key (self->api_key_file, key, key_error,
                                              sizeof key_error)) {
            free (payload);
            rc = s_fail (why, detail, MESH_FAIL_MODEL_ERROR, "%s", key_error);
            break;
        }
        s_exchange_t ex = { .flavor = flavor, .want_stream = self->stream,
                            .max_content = self->max_content };
        char errbuf[CURL_ERROR_SIZE];
        s_stop_t stop;
        bool sent;
        CURLcode code = s_perform (self, mesh_wire_path (flavor), payload,
                                   self->api_key_file ? key : NULL, deadline, self->ttft_ms,
                                   self->idle_ms, &ex, &stop, &sent, errbuf);
        sodium_memzero (key, sizeof key);
        free (payload);
        long now = mesh_health_now_ms ();
        reply->requests++;
        reply->sent = reply->sent || sent;
        reply->http_status = ex.status;
        reply->complete = code == CURLE_OK;
        reply->received_bytes += ex.received;
        reply->answered_error = false;
        if (ex.first_token_ms)
            reply->ttft_ms = ex.first_token_ms - ex.started_ms;
        long retry_after = ex.retry_after[0] ? mesh_wire_retry_after_ms (ex.retry_after,
                                                                         time (NULL)) : -1;
        bool again = false, changed_form = false;
        char *message = NULL, *type = NULL;
        mesh_fail_t fail = MESH_FAIL_NONE;
        if (stop == S_CONNECT || (code != CURLE_OK && !sent && ex.status == 0
                                  && code != CURLE_WRITE_ERROR)) {
            fail = MESH_FAIL_MODEL_UNREACHABLE;
            rc = s_fail (why, detail, fail, "cannot reach %s: %s", self->base,
                         stop == S_CONNECT ? "no connection within connect_timeout_ms"
                         : errbuf[0] ? errbuf : curl_easy_strerror (code));
            again = true;
        }
        else if (stop == S_TTFT)
            rc = s_fail (why, detail, fail = MESH_FAIL_MODEL_TIMEOUT,
                         "no first token within %ld ms (first_token_timeout_ms)", self->ttft_ms);
        else if (stop == S_IDLE)
            rc = s_fail (why, detail, fail = MESH_FAIL_MODEL_TIMEOUT,
                         "no data for %ld ms in the middle of the answer (idle_timeout_ms)",
                         self->idle_ms);
        else if (stop == S_DEADLINE || code == CURLE_OPERATION_TIMEDOUT)
            rc = s_fail (why, detail, fail = MESH_FAIL_MODEL_TIMEOUT,
                         "no complete answer within the call's deadline of %ld ms",
                         deadline - started);
        else if (ex.overflow)
            //  The server generated it: charged by what arrived, never 0.
            rc = s_fail (why, detail, fail = MESH_FAIL_MODEL_OVERSIZE,
                         "answer larger than the transport cap (%zu bytes read)", ex.received);
        else if (ex.status >= 300 || (ex.status > 0 && ex.status < 200)) {
            message = mesh_wire_error_text (ex.body ? ex.body : "", ex.size, &type);
            fail = mesh_wire_classify (ex.status, message, type);
            if (form != MESH_WIRE_SCHEMA_NONE && mesh_wire_schema_refused (ex.status, message)
                && form_changes < S_MAX_FORM_CHANGES) {
                mesh_wire_schema_t next = s_next_form (flavor, form);
                mesh_warn ("backend %s: the server refused structured output as %s (HTTP %ld: "
                           "%s); sending %s until the next probe", self->name,
                           mesh_wire_schema_name (form), ex.status, message ? message : "?",
                           mesh_wire_schema_name (next));
                mesh_health_schema_refused (self->health, form, next);
                reply->schema_fallback = true;
                changed_form = true;
                form_changes++;
                form = next;
                reply->structured = mesh_wire_schema_name (form);
                rc = s_fail (why, detail, fail, "HTTP %ld: %s (structured output refused)",
                             ex.status, message ? message : "(empty body)");
            }
            else {
                if (fail == MESH_FAIL_MODEL_MALFORMED)
                    fail = MESH_FAIL_MODEL_ERROR;   //  a refused request, not a bad answer
                if (fail == MESH_FAIL_MODEL_LOADING)
                    mesh_health_loading (self->health, now);
                rc = s_fail (why, detail, fail, "HTTP %ld: %s", ex.status,
                             message ? message : "(empty body)");
                again = mesh_wire_transient (fail);
            }
        }
        else if (code != CURLE_OK && !ex.reader_stop) {
            //  Cut: headers (or some of the body) came, then the connection died.
            rc = s_fail (why, detail, fail = MESH_FAIL_MODEL_PARTIAL, "%s after %zu bytes: %s",
                         ex.status ? "answer cut" : "connection closed before any answer",
                         ex.received, errbuf[0] ? errbuf : curl_easy_strerror (code));
        }
        else {
            mesh_wire_answer_t whole;
            const mesh_wire_answer_t *answer;
            if (ex.streaming) {
                mesh_wire_stream_end (&ex.reader);
                answer = &ex.reader.answer;
            }
            else {
                mesh_wire_read_body (flavor, ex.body ? ex.body : "", ex.size, self->max_content,
                                     &whole);
                answer = &whole;
            }
            reply->streamed = ex.streaming;
            rc = s_answer (self, answer, ex.streaming, prompt_estimate, reply, why, detail);
            fail = rc ? *why : MESH_FAIL_NONE;
            if (rc && mesh_wire_schema_refused (answer->error_status, answer->error_message)
                && form != MESH_WIRE_SCHEMA_NONE && form_changes < S_MAX_FORM_CHANGES
                && reply->answered_error) {
                mesh_health_schema_refused (self->health, form, s_next_form (flavor, form));
                form = s_next_form (flavor, form);
                reply->structured = mesh_wire_schema_name (form);
                reply->schema_fallback = changed_form = true;
                form_changes++;
            }
            if (!ex.streaming)
                mesh_wire_answer_clear (&whole);
        }
        if (changed_form) {
            s_log_request (reply, &ex, fail, now - ex.started_ms, 0, retry_after, sent_form);
            again = true;       //  the same request with the next structured-output form
        }
        else {
            long wait = 0;
            if (rc && again && transient + 1 < self->attempts) {
                wait = retry_after >= 0 ? retry_after
                       : mesh_wire_backoff_ms (transient, self->base_ms, self->max_ms,
                                               randombytes_random ());
                if (now + wait >= deadline) {
                    char *longer = NULL;
                    if (asprintf (&longer, "%s; a retry in %ld ms would pass the deadline",
                                  *detail ? *detail : "?", wait) >= 0) {
                        free (*detail);
                        *detail = longer;
                    }
                    again = false;
                    wait = 0;
                }
            }
            else
                again = false;
            s_log_request (reply, &ex, fail, now - ex.started_ms, wait, retry_after, sent_form);
            if (again) {
                s_sleep_ms (wait);
                transient++;
            }
        }
        free (message);
        free (type);
        s_exchange_clear (&ex);
        if (!again || mesh_health_now_ms () >= deadline)
            break;
        if (rc == 0)
            break;
    }
done:
    if (rc == 0) {
        //  An answer after a retry or a form change: what went wrong before is in the
        //  requests' log, not a failure of the call.
        free (*detail);
        *detail = NULL;
        *why = MESH_FAIL_NONE;
    }
    reply->latency_ms = mesh_health_now_ms () - started;
    if (rc == 0 && reply->ttft_ms >= 0 && reply->latency_ms > reply->ttft_ms)
        reply->tokens_per_s = (double) reply->completion_tokens * 1000.0
                              / (double) (reply->latency_ms - reply->ttft_ms);
    if (rc && !*detail)
        *detail = strdup ("out of memory");
    if (rc && *why == MESH_FAIL_NONE)
        *why = MESH_FAIL_MODEL_ERROR;
    if (reply->requests)
        mesh_health_result (self->health, mesh_health_now_ms (), rc ? *why : MESH_FAIL_NONE,
                            reply->latency_ms, reply->ttft_ms, rc ? *detail : NULL);
    else if (probe_call)
        mesh_health_release (self->health);     //  nothing was asked of the server
    return rc;
}

static bool
s_available (void *state)
{
    s_http_t *self = state;
    return mesh_health_available (self->health, mesh_health_now_ms ());
}

const mesh_backend_ops_t mesh_backend_http_ops = {
    .kind = "openai",
    .create = s_create,
    .destroy = s_destroy,
    .call = s_call,
    .available = s_available,
};
