/*  backend_openai - POST {url}/v1/chat/completions with libcurl.
 *  Data path: event -> detect -> incident -> [reason] -> gate -> act -> record.
 *
 *  One request shape that llama.cpp server, vLLM, Ollama (/v1) and TGI all accept:
 *  {model, messages, max_tokens, temperature, stream:false} and, when the config asks
 *  for it and the caller has a schema, OpenAI's response_format json_schema (with the
 *  "name" vLLM requires).  Servers that refuse response_format (TGI wants its own
 *  shape and answers 422; others 400) get the request once more without it, and the
 *  backend remembers that for the rest of its life.  Server-side JSON modes are a
 *  convenience, never a control: the gates judge whatever comes back.
 *
 *  Failure classes: no answer within timeout_ms -> MODEL_TIMEOUT; transport errors,
 *  non-2xx answers and 200s carrying an "error" -> MODEL_ERROR with the server's own
 *  message (nested {"error":{"message"}}, TGI/Ollama {"error":"..."}, old vLLM flat
 *  {"message"}, FastAPI {"detail"}, or plain text); a 200 that is not JSON or has no
 *  choices[0].message.content string (null content with only reasoning_content
 *  included), or more than one choice -> MODEL_MALFORMED; a body over the 1 MiB
 *  transport cap -> MODEL_OVERSIZE, with the bytes read kept in the reply so the
 *  caller can charge them.  Missing usage is estimated from bytes.
 *
 *  The bearer token is read from api_key_file for every request (so a rotated
 *  credential is picked up), wiped with sodium_memzero after use, never logged.  Its
 *  copy inside libcurl's request buffer is outside our reach.  An unreadable key file
 *  is a warning at creation (a systemd credential exists only inside the service) and
 *  a MODEL_ERROR on every call until it can be read.
 *
 *  One curl handle per backend object, and a backend object per worker thread, so
 *  connections are reused and nothing is shared between threads.
 */
#include "backend.h"
#include "log.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_MAX_RESPONSE  (1024 * 1024)
#define S_MAX_KEY       4096
#define S_MAX_DETAIL    300

typedef struct {
    char *name;
    char *endpoint;                 //  {url}/v1/chat/completions
    char *model;                    //  may be NULL: not sent
    char *api_key_file;             //  may be NULL
    long timeout_ms, connect_timeout_ms;
    double temperature;
    bool json_schema;               //  config: send response_format
    bool schema_refused;            //  the server said no once; stop sending it
    CURL *curl;
} s_openai_t;

typedef struct {
    char *data;
    size_t size;
    size_t received;                //  bytes offered by libcurl, kept or not
    bool overflow;
} s_buffer_t;

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
    s_openai_t *self = state;
    if (!self)
        return;
    if (self->curl)
        curl_easy_cleanup (self->curl);
    free (self->name);
    free (self->endpoint);
    free (self->model);
    free (self->api_key_file);
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
    s_openai_t *self = calloc (1, sizeof *self);
    if (!self)
        goto oom;
    size_t url_len = strlen (cfg->url);
    while (url_len > 0 && cfg->url[url_len - 1] == '/')
        url_len--;
    if (asprintf (&self->endpoint, "%.*s/v1/chat/completions", (int) url_len, cfg->url) < 0) {
        self->endpoint = NULL;
        goto oom;
    }
    self->name = strdup (name);
    self->model = cfg->model ? strdup (cfg->model) : NULL;
    self->api_key_file = cfg->api_key_file ? strdup (cfg->api_key_file) : NULL;
    self->curl = curl_easy_init ();
    if (!self->name || (cfg->model && !self->model)
        || (cfg->api_key_file && !self->api_key_file) || !self->curl)
        goto oom;
    self->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
    self->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 2000;
    self->temperature = cfg->temperature;
    self->json_schema = cfg->json_schema;
    return self;
oom:
    mesh_err ("backend %s: out of memory", name);
    s_destroy (self);
    return NULL;
}

static size_t
s_write (char *ptr, size_t size, size_t nmemb, void *arg)
{
    s_buffer_t *buffer = arg;
    size_t n = size * nmemb;
    buffer->received += n;
    if (buffer->size + n > S_MAX_RESPONSE) {
        buffer->overflow = true;
        return 0;               //  libcurl stops with CURLE_WRITE_ERROR
    }
    char *data = realloc (buffer->data, buffer->size + n + 1);
    if (!data)
        return 0;
    memcpy (data + buffer->size, ptr, n);
    buffer->data = data;
    buffer->size += n;
    buffer->data[buffer->size] = 0;
    return n;
}

static long
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  A one-line, length-capped copy of TEXT for details and logs: server text is data.
static char *
s_one_line (const char *text, size_t len)
{
    if (len > S_MAX_DETAIL) {
        len = S_MAX_DETAIL;
        while (len > 0 && ((unsigned char) text[len] & 0xC0) == 0x80)
            len--;              //  do not cut a UTF-8 character in two
    }
    char *copy = strndup (text, len);
    if (!copy)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char) *p < 0x20 || *p == 0x7f)
            *p = ' ';
    return copy;
}

//  The error message in an error body, in any of the shapes the servers use; NULL if
//  there is none.  Caller frees.
static char *
s_error_message (json_t *root)
{
    const char *text = NULL;
    json_t *error = json_object_get (root, "error");
    if (json_is_object (error))
        text = json_string_value (json_object_get (error, "message"));   //  OpenAI, llama.cpp,
                                                                          //  vLLM, Ollama /v1
    else if (json_is_string (error))
        text = json_string_value (error);                                 //  TGI, Ollama native
    if (!text && json_is_string (json_object_get (root, "message")))
        text = json_string_value (json_object_get (root, "message"));   //  vLLM < 0.10.1
    if (!text && json_is_string (json_object_get (root, "detail")))
        text = json_string_value (json_object_get (root, "detail"));    //  FastAPI
    if (!text && error)
        return strdup ("error without a message");
    return text ? s_one_line (text, strlen (text)) : NULL;
}

//  Describe a non-2xx answer: "HTTP 500: message".  Caller frees.
static char *
s_http_error (long status, const s_buffer_t *body)
{
    char *message = NULL;
    json_t *root = body->data ? json_loadb (body->data, body->size, 0, NULL) : NULL;
    if (root)
        message = s_error_message (root);
    json_decref (root);
    if (!message && body->size)
        message = s_one_line (body->data, body->size);                  //  plain text
    char *detail = NULL;
    if (asprintf (&detail, "HTTP %ld: %s", status, message ? message : "(empty body)") < 0)
        detail = NULL;
    free (message);
    return detail;
}

static bool
s_mentions_response_format (const char *text)
{
    return text && strcasestr (text, "response_format") != NULL;
}

static json_t *
s_request_body (s_openai_t *self, json_t *messages, int max_tokens, json_t *schema,
                bool with_schema)
{
    json_t *body = json_object ();
    if (self->model)
        json_object_set_new (body, "model", json_string (self->model));
    json_object_set (body, "messages", messages);
    json_object_set_new (body, "max_tokens", json_integer (max_tokens));
    json_object_set_new (body, "temperature", json_real (self->temperature));
    json_object_set_new (body, "stream", json_false ());
    if (with_schema)
        json_object_set_new (body, "response_format",
                             json_pack ("{s:s, s:{s:s, s:O, s:b}}", "type", "json_schema",
                                        "json_schema", "name", "proposal", "schema", schema,
                                        "strict", 1));
    return body;
}

//  One HTTP exchange.  Returns the curl code; *status and BODY filled.
//  KEY (may be NULL) is the bearer token; the caller wipes it.
static CURLcode
s_post (s_openai_t *self, const char *payload, size_t payload_len, const char *key,
        long *status, bool *sent, s_buffer_t *body, char *errbuf)
{
    struct curl_slist *headers = NULL;
    headers = curl_slist_append (headers, "Content-Type: application/json");
    headers = curl_slist_append (headers, "Accept: application/json");
    headers = curl_slist_append (headers, "Expect:");
    if (key) {
        char auth[S_MAX_KEY + 32];
        snprintf (auth, sizeof auth, "Authorization: Bearer %s", key);
        headers = curl_slist_append (headers, auth);
        sodium_memzero (auth, sizeof auth);
    }
    CURL *curl = self->curl;
    curl_easy_reset (curl);
    curl_easy_setopt (curl, CURLOPT_URL, self->endpoint);
    curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (curl, CURLOPT_POST, 1L);
    curl_easy_setopt (curl, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) payload_len);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, self->timeout_ms);
    curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT_MS, self->connect_timeout_ms);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, body);
    curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt (curl, CURLOPT_USERAGENT, "meshd");
    //  One connection per request: libcurl re-sends a request silently when a reused
    //  keep-alive connection turns out dead, and the server may have generated for the
    //  first one.  Every request the server receives must be one we count.
    curl_easy_setopt (curl, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt (curl, CURLOPT_FORBID_REUSE, 1L);
    errbuf[0] = 0;
    CURLcode code = curl_easy_perform (curl);
    *status = 0;
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, status);
    //  Sent: the whole request went out (the server may be generating), or an answer came.
    curl_off_t uploaded = 0;
    curl_easy_getinfo (curl, CURLINFO_SIZE_UPLOAD_T, &uploaded);
    *sent = *status > 0 || (uploaded > 0 && (size_t) uploaded >= payload_len);
    //  Wipe our copies of the credential header before freeing them.
    for (struct curl_slist *h = headers; h; h = h->next)
        sodium_memzero (h->data, strlen (h->data));
    curl_easy_setopt (curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all (headers);
    return code;
}

static long
s_usage (json_t *usage, const char *key)
{
    json_t *value = json_object_get (usage, key);
    return json_is_integer (value) && json_integer_value (value) >= 0
             ? (long) json_integer_value (value) : -1;
}

//  Parse a 2xx body into REPLY.  0, or -1 with *why and *detail.
static int
s_parse_ok (const s_buffer_t *body, json_t *messages, mesh_backend_reply_t *reply,
            mesh_fail_t *why, char **detail)
{
    json_error_t jerr;
    //  JSON_ALLOW_NUL: a content with \u0000 is then refused below, by name.
    jerr.text[0] = 0;
    json_t *root = body->data ? json_loadb (body->data, body->size, JSON_ALLOW_NUL, &jerr)
                              : NULL;
    if (!json_is_object (root)) {
        json_decref (root);
        *why = MESH_FAIL_MODEL_MALFORMED;
        char *start = s_one_line (body->data ? body->data : "", body->size < 80 ? body->size : 80);
        //  jansson names invalid UTF-8 ("unable to decode byte 0xff") and its offset.
        if (asprintf (detail, "response is not a JSON object (%zu bytes%s%s): %s", body->size,
                      root || !jerr.text[0] ? "" : "; ", root ? "" : jerr.text,
                      start ? start : "") < 0)
            *detail = NULL;
        free (start);
        return -1;
    }
    if (json_object_get (root, "error")) {
        char *message = s_error_message (root);
        *why = MESH_FAIL_MODEL_ERROR;
        if (asprintf (detail, "error in a 2xx answer: %s", message ? message : "?") < 0)
            *detail = NULL;
        free (message);
        json_decref (root);
        return -1;
    }
    json_t *choices = json_object_get (root, "choices");
    if (json_is_array (choices) && json_array_size (choices) > 1) {
        //  We asked for one (no "n"): taking the first of several would be a guess.
        *why = MESH_FAIL_MODEL_MALFORMED;
        if (asprintf (detail, "response has %zu choices; exactly one was asked for",
                      json_array_size (choices)) < 0)
            *detail = NULL;
        json_decref (root);
        return -1;
    }
    json_t *choice = json_array_get (choices, 0);
    json_t *message = json_object_get (choice, "message");
    json_t *content = json_object_get (message, "content");
    if (!json_is_string (content)) {
        *why = MESH_FAIL_MODEL_MALFORMED;
        *detail = strdup (!choice ? "response has no choices[0]"
                          : !message ? "choices[0] has no message"
                          : json_is_null (content) || !content
                            ? "choices[0].message.content is missing or null"
                            : "choices[0].message.content is not a string");
        json_decref (root);
        return -1;
    }
    if (strlen (json_string_value (content)) != json_string_length (content)) {
        *why = MESH_FAIL_MODEL_MALFORMED;
        *detail = strdup ("choices[0].message.content contains a NUL character");
        json_decref (root);
        return -1;
    }
    reply->content = strdup (json_string_value (content));
    const char *model = json_string_value (json_object_get (root, "model"));
    reply->model = model ? s_one_line (model, strlen (model)) : NULL;
    const char *finish = json_string_value (json_object_get (choice, "finish_reason"));
    reply->finish_reason = finish ? s_one_line (finish, strlen (finish)) : NULL;
    json_t *usage = json_object_get (root, "usage");
    reply->prompt_tokens = s_usage (usage, "prompt_tokens");
    reply->completion_tokens = s_usage (usage, "completion_tokens");
    if (reply->prompt_tokens < 0) {
        reply->prompt_tokens = mesh_backend_estimate_json (messages);
        reply->estimated = true;
    }
    if (reply->completion_tokens < 0) {
        reply->completion_tokens =
          reply->content ? mesh_backend_estimate_tokens (strlen (reply->content)) : 0;
        reply->estimated = true;
    }
    json_decref (root);
    if (!reply->content) {
        *why = MESH_FAIL_MODEL_ERROR;
        *detail = strdup ("out of memory");
        return -1;
    }
    return 0;
}

static int
s_call (void *state, json_t *messages, int max_tokens, json_t *schema, const char *seed_key,
        mesh_backend_reply_t *reply, mesh_fail_t *why, char **detail)
{
    (void) seed_key;
    s_openai_t *self = state;
    long started = s_now_ms ();
    int rc = -1;
    for (int round = 0; round < 2; round++) {
        bool with_schema = self->json_schema && schema && !self->schema_refused;
        json_t *request = s_request_body (self, messages, max_tokens, schema, with_schema);
        char *payload = json_dumps (request, JSON_COMPACT);
        json_decref (request);
        if (!payload) {
            *why = MESH_FAIL_MODEL_ERROR;
            *detail = strdup ("cannot serialise the request");
            break;
        }
        char key[S_MAX_KEY], key_error[512];
        if (self->api_key_file && s_read_key (self->api_key_file, key, key_error,
                                              sizeof key_error)) {
            free (payload);
            *why = MESH_FAIL_MODEL_ERROR;
            *detail = strdup (key_error);
            break;
        }
        s_buffer_t body = { 0 };
        char errbuf[CURL_ERROR_SIZE];
        long status = 0;
        bool sent = false;
        CURLcode code = s_post (self, payload, strlen (payload),
                                self->api_key_file ? key : NULL, &status, &sent, &body, errbuf);
        reply->requests++;
        reply->sent = reply->sent || sent;
        reply->http_status = status;
        reply->complete = code == CURLE_OK;
        sodium_memzero (key, sizeof key);
        free (payload);
        reply->latency_ms = s_now_ms () - started;
        reply->received_bytes = body.received;
        bool retry = false;
        if (code == CURLE_OPERATION_TIMEDOUT) {
            *why = MESH_FAIL_MODEL_TIMEOUT;
            if (asprintf (detail, "no answer within %ld ms", self->timeout_ms) < 0)
                *detail = NULL;
        }
        else if (code == CURLE_WRITE_ERROR && body.overflow) {
            //  The server generated it: charged by what arrived (reason.c), never 0.
            *why = MESH_FAIL_MODEL_OVERSIZE;
            if (asprintf (detail, "response larger than the transport cap of %d bytes "
                          "(%zu read)", S_MAX_RESPONSE, body.received) < 0)
                *detail = NULL;
        }
        else if (code != CURLE_OK) {
            *why = MESH_FAIL_MODEL_ERROR;
            if (asprintf (detail, "%s: %s", curl_easy_strerror (code),
                          errbuf[0] ? errbuf : "no details") < 0)
                *detail = NULL;
        }
        else if (status < 200 || status > 299) {
            *why = MESH_FAIL_MODEL_ERROR;
            *detail = s_http_error (status, &body);
            if (with_schema && (status == 400 || status == 422)
                && s_mentions_response_format (*detail)) {
                //  Remember it: this server will not take response_format from us.
                mesh_warn ("backend %s: server refused response_format (%s); "
                           "sending requests without it from now on", self->name,
                           *detail ? *detail : "?");
                self->schema_refused = true;
                free (*detail);
                *detail = NULL;
                retry = true;
            }
        }
        else
            rc = s_parse_ok (&body, messages, reply, why, detail);
        free (body.data);
        if (!retry)
            break;
    }
    if (rc && !*detail)
        *detail = strdup ("out of memory");
    return rc;
}

const mesh_backend_ops_t mesh_backend_openai_ops = {
    .kind = "openai",
    .create = s_create,
    .destroy = s_destroy,
    .call = s_call,
};
