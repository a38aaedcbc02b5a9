/*  wire - the four inference servers' wire formats, as pure functions.
 *  Data path: event -> detect -> incident -> [reason] -> gate -> act -> record
 *  (what backend_http.c sends and how it reads what comes back).
 *
 *  llama.cpp, vLLM, Ollama and TGI all speak "OpenAI chat completions", and each
 *  speaks it a little differently: where finish_reason goes, whether usage is null or
 *  absent, "data:" with or without a space, a stream error as a data event, as an
 *  "error:" line or as nothing at all, an error body nested, flat, a bare string or
 *  plain text.  This file is the one place that knows those differences, so that
 *  backend_http.c deals in requests, deadlines and retries only.
 *
 *  Everything here is a function of its arguments: no I/O, no globals, no clock (the
 *  caller passes "now").  Every reader is total on hostile bytes and bounded: a line
 *  is at most MESH_WIRE_LINE_MAX, content at most the caller's max_content, reasoning
 *  at most MESH_WIRE_REASONING_MAX, and any server text we keep (error messages, the
 *  model name, finish reasons) is one line of at most MESH_WIRE_TEXT_MAX bytes, valid
 *  UTF-8, cut on a character boundary, so that it can go into a log line or a JSON
 *  record as it is.
 *
 *  The stream reader takes each "data:" line as one event (every one of these servers
 *  writes one JSON object per line) rather than joining lines until a blank one as a
 *  browser would: a stream whose last event has no blank line after it is still read.
 *  Once an answer is malformed or carries an error, the reader keeps reading (usage
 *  and "[DONE]" may still come and are worth having) but feed returns -1 from then on
 *  and only the first problem is described.
 *
 *  Content and reasoning buffers grow in powers of two; their capacity is never stored
 *  because it follows from their length (s_capacity), which keeps the answer struct
 *  to what the caller needs.
 */
#include "wire.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_DAY_MS        (24L * 3600 * 1000)     //  the longest Retry-After we honour
#define S_SNIPPET       60                      //  bytes of a bad line quoted in a detail
#define S_INDEX_MAX     ((json_int_t) 1 << 30)  //  a choice index beyond this is clamped

//  --- names ----------------------------------------------------------------------------

static const char *s_flavor_names[MESH_FLAVOR_COUNT_] = {
    [MESH_FLAVOR_AUTO] = "auto",
    [MESH_FLAVOR_OPENAI] = "openai",
    [MESH_FLAVOR_LLAMACPP] = "llamacpp",
    [MESH_FLAVOR_VLLM] = "vllm",
    [MESH_FLAVOR_OLLAMA] = "ollama",
    [MESH_FLAVOR_OLLAMA_NATIVE] = "ollama-native",
    [MESH_FLAVOR_TGI] = "tgi",
};

const char *
mesh_wire_flavor_name (mesh_backend_flavor_t flavor)
{
    if ((unsigned) flavor >= MESH_FLAVOR_COUNT_)
        return "unknown";
    return s_flavor_names[flavor];
}

const char *
mesh_wire_path (mesh_backend_flavor_t flavor)
{
    return flavor == MESH_FLAVOR_OLLAMA_NATIVE ? "/api/chat" : "/v1/chat/completions";
}

const char *
mesh_wire_schema_name (mesh_wire_schema_t form)
{
    switch (form) {
        case MESH_WIRE_SCHEMA_NONE: return "none";
        case MESH_WIRE_SCHEMA_OPENAI: return "json_schema";
        case MESH_WIRE_SCHEMA_TGI: return "tgi_json";
        case MESH_WIRE_SCHEMA_FORMAT: return "format";
    }
    return "unknown";
}

mesh_wire_schema_t
mesh_wire_schema_default (mesh_backend_flavor_t flavor)
{
    if (flavor == MESH_FLAVOR_OLLAMA_NATIVE)
        return MESH_WIRE_SCHEMA_FORMAT;
    if (flavor == MESH_FLAVOR_TGI)
        return MESH_WIRE_SCHEMA_TGI;
    return MESH_WIRE_SCHEMA_OPENAI;
}

//  --- text helpers ---------------------------------------------------------------------

static bool
s_is_space (char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

//  Narrow [*p, *p + *n) to its text without surrounding white space.
static void
s_trim (const char **p, size_t *n)
{
    while (*n && s_is_space ((*p)[0])) {
        (*p)++;
        (*n)--;
    }
    while (*n && s_is_space ((*p)[*n - 1]))
        (*n)--;
}

//  Length of the valid UTF-8 sequence at P (LEFT bytes available), or 0 if it is not
//  one (overlong forms, surrogates and code points past U+10FFFF included).
static size_t
s_utf8_length (const unsigned char *p, size_t left)
{
    if (p[0] < 0x80)
        return 1;
    size_t n = p[0] >= 0xC2 && p[0] <= 0xDF ? 2
             : p[0] >= 0xE0 && p[0] <= 0xEF ? 3
             : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4 : 0;
    if (n == 0 || n > left)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] > 0x9F)
        || (p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] > 0x8F))
        return 0;
    return n;
}

//  A copy of server text fit for a log line or a record: one line (control characters,
//  C1 included, become spaces; bytes that are not UTF-8 become '?'), no surrounding
//  white space, at most MESH_WIRE_TEXT_MAX bytes cut on a character boundary.  NULL
//  only when out of memory.  Caller frees.
static char *
s_one_line (const char *text, size_t len)
{
    char *out = malloc (MESH_WIRE_TEXT_MAX + 1);
    if (!out)
        return NULL;
    const unsigned char *p = (const unsigned char *) (text ? text : "");
    if (!text)
        len = 0;
    size_t n = 0;
    for (size_t i = 0; i < len && n < MESH_WIRE_TEXT_MAX;) {
        size_t m = s_utf8_length (p + i, len - i);
        char c = 0;
        if (m == 0)
            c = '?';
        else if (m == 1)
            c = p[i] < 0x20 || p[i] == 0x7f ? ' ' : (char) p[i];
        else if (m == 2 && p[i] == 0xC2 && p[i + 1] < 0xA0)
            c = ' ';                                        //  U+0080..U+009F
        if (c) {
            if (c != ' ' || n > 0)                          //  no leading space
                out[n++] = c;
            i += m ? m : 1;
            continue;
        }
        if (n + m > MESH_WIRE_TEXT_MAX)
            break;
        memcpy (out + n, p + i, m);
        n += m;
        i += m;
    }
    while (n && out[n - 1] == ' ')
        n--;
    out[n] = 0;
    return out;
}

//  s_one_line of a JSON string (its NULs become spaces); NULL if VALUE is not a string
//  or holds no text.
static char *
s_one_line_json (json_t *value)
{
    if (!json_is_string (value))
        return NULL;
    char *text = s_one_line (json_string_value (value), json_string_length (value));
    if (text && !*text) {
        free (text);
        text = NULL;
    }
    return text;
}

static bool
s_has (const char *text, const char *needle)
{
    return text && strcasestr (text, needle) != NULL;
}

//  --- answers --------------------------------------------------------------------------

static void
s_answer_init (mesh_wire_answer_t *answer)
{
    memset (answer, 0, sizeof *answer);
    answer->prompt_tokens = -1;
    answer->completion_tokens = -1;
}

void
mesh_wire_answer_clear (mesh_wire_answer_t *answer)
{
    if (!answer)
        return;
    free (answer->content);
    free (answer->reasoning);
    free (answer->model);
    free (answer->finish_reason);
    free (answer->error_message);
    free (answer->error_type);
    free (answer->malformed_detail);
    memset (answer, 0, sizeof *answer);
}

//  Mark ANSWER malformed; the first problem's detail is kept, later ones dropped.
static void
s_malformed (mesh_wire_answer_t *answer, const char *format, ...)
{
    if (answer->malformed)
        return;
    answer->malformed = true;
    va_list args;
    va_start (args, format);
    char *detail = NULL;
    if (vasprintf (&detail, format, args) < 0)
        detail = NULL;
    va_end (args);
    if (detail)
        for (char *p = detail; *p; p++)
            if ((unsigned char) *p < 0x20 || *p == 0x7f)
                *p = ' ';
    answer->malformed_detail = detail;
}

//  What a JSON value is, for a detail ("an array").
static const char *
s_json_kind (json_t *value)
{
    switch (json_typeof (value)) {
        case JSON_OBJECT: return "an object";
        case JSON_ARRAY: return "an array";
        case JSON_STRING: return "a string";
        case JSON_INTEGER:
        case JSON_REAL: return "a number";
        case JSON_TRUE:
        case JSON_FALSE: return "a boolean";
        case JSON_NULL: return "null";
    }
    return "something else";
}

//  Parse TEXT as the JSON object one event, line or body must be; NULL (and ANSWER
//  malformed, the detail starting with WHAT) if it is not one.
static json_t *
s_load_object (mesh_wire_answer_t *answer, const char *text, size_t len, const char *what)
{
    json_error_t jerr;
    jerr.text[0] = 0;
    //  JSON_ALLOW_NUL: a content holding \u0000 is then refused by name, not as bad JSON.
    json_t *root = text && len ? json_loadb (text, len, JSON_ALLOW_NUL, &jerr) : NULL;
    if (json_is_object (root))
        return root;
    char *start = s_one_line (text, len < S_SNIPPET ? len : S_SNIPPET);
    s_malformed (answer, "%s is not a JSON object (%zu bytes; %s)%s%s", what, len,
                 root ? s_json_kind (root) : len == 0 ? "empty" : jerr.text,
                 start && *start ? ": " : "", start ? start : "");
    free (start);
    json_decref (root);
    return NULL;
}

//  Capacity of a content or reasoning buffer holding LEN bytes and its NUL.
static size_t
s_capacity (size_t len)
{
    size_t cap = 64;
    while (cap < len + 1)
        cap *= 2;
    return cap;
}

//  Append the N bytes at TEXT to *BUF (*LEN bytes so far) keeping at most MAX bytes;
//  what does not fit is dropped, cut on a UTF-8 boundary.  Returns true if all of it
//  was kept.
static bool
s_append (char **buf, size_t *len, size_t max, const char *text, size_t n)
{
    size_t room = *len < max ? max - *len : 0;
    size_t take = n <= room ? n : room;
    if (take < n)
        while (take > 0 && ((unsigned char) text[take] & 0xC0) == 0x80)
            take--;
    if (!*buf || s_capacity (*len + take) != s_capacity (*len)) {
        char *bigger = realloc (*buf, s_capacity (*len + take));
        if (!bigger)
            return false;
        *buf = bigger;
    }
    memcpy (*buf + *len, text, take);
    *len += take;
    (*buf)[*len] = 0;
    return take == n;
}

static void
s_add_content (mesh_wire_answer_t *answer, size_t max_content, const char *text, size_t n)
{
    answer->content_seen = true;
    if (answer->content_overflow)
        return;                             //  the rest is dropped
    if (!s_append (&answer->content, &answer->content_len, max_content, text, n))
        answer->content_overflow = true;
}

static void
s_add_reasoning (mesh_wire_answer_t *answer, const char *text, size_t n)
{
    bool cut = answer->reasoning_bytes > answer->reasoning_len;
    answer->reasoning_bytes += n;
    if (cut || n == 0)
        return;                             //  once cut, kept text stays contiguous
    size_t before = answer->reasoning_len;
    s_append (&answer->reasoning, &answer->reasoning_len, MESH_WIRE_REASONING_MAX, text, n);
    for (size_t i = before; i < answer->reasoning_len; i++)
        if (answer->reasoning[i] == 0)
            answer->reasoning[i] = ' ';     //  reasoning is kept as text, never parsed
}

//  Take the text fields of one delta or message object: content, and the reasoning
//  (THINKING: Ollama's "thinking"; else reasoning_content, or vLLM's newer "reasoning").
//  Returns 1 if it carried non-empty text.
static int
s_take_text (mesh_wire_answer_t *answer, size_t max_content, json_t *object, const char *where,
             bool thinking)
{
    if (!object || json_is_null (object))
        return 0;
    if (!json_is_object (object)) {
        s_malformed (answer, "%s is %s, not an object", where, s_json_kind (object));
        return 0;
    }
    int carried = 0;
    json_t *content = json_object_get (object, "content");
    if (json_is_string (content)) {
        const char *text = json_string_value (content);
        size_t n = json_string_length (content);
        if (memchr (text, 0, n))
            s_malformed (answer, "%s.content contains a NUL character", where);
        else {
            s_add_content (answer, max_content, text, n);
            carried = n > 0;
        }
    }
    else if (content && !json_is_null (content))
        s_malformed (answer, "%s.content is %s, not a string", where, s_json_kind (content));
    json_t *reasoning = NULL;
    if (thinking)
        reasoning = json_object_get (object, "thinking");
    else {
        //  vLLM has sent both names with the same text; take one.
        reasoning = json_object_get (object, "reasoning_content");
        if (!json_is_string (reasoning))
            reasoning = json_object_get (object, "reasoning");
    }
    if (json_is_string (reasoning) && json_string_length (reasoning) > 0) {
        s_add_reasoning (answer, json_string_value (reasoning), json_string_length (reasoning));
        carried = 1;
    }
    return carried;
}

static void
s_take_model (mesh_wire_answer_t *answer, json_t *root)
{
    if (!answer->model)
        answer->model = s_one_line_json (json_object_get (root, "model"));
}

static void
s_take_finish (mesh_wire_answer_t *answer, json_t *reason)
{
    if (!json_is_string (reason))
        return;
    answer->finished = true;
    if (!answer->finish_reason)
        answer->finish_reason = s_one_line_json (reason);
}

static long
s_count (json_t *value)
{
    if (!json_is_integer (value) || json_integer_value (value) < 0
        || json_integer_value (value) > LONG_MAX)
        return -1;
    return (long) json_integer_value (value);
}

//  Usage counts in OBJECT under PROMPT and COMPLETION; absent or null leaves them be.
static void
s_take_usage (mesh_wire_answer_t *answer, json_t *object, const char *prompt,
              const char *completion)
{
    if (!json_is_object (object))
        return;
    long n = s_count (json_object_get (object, prompt));
    if (n >= 0)
        answer->prompt_tokens = n;
    n = s_count (json_object_get (object, completion));
    if (n >= 0)
        answer->completion_tokens = n;
}

//  The parts of an error object in any server's shape (borrowed).
typedef struct {
    json_t *message;
    json_t *type;
    long status;
} s_error_t;

static long
s_status (json_t *value)
{
    if (!json_is_integer (value))
        return 0;
    json_int_t status = json_integer_value (value);
    return status > 0 && status < 100000 ? (long) status : 0;
}

static void
s_error_parts (json_t *root, s_error_t *parts)
{
    memset (parts, 0, sizeof *parts);
    json_t *error = json_object_get (root, "error");
    if (json_is_object (error)) {
        //  OpenAI, llama.cpp, vLLM >= 0.10.1, Ollama /v1; TGI in a stream
        //  ({"message", "http_status_code"}).
        parts->message = json_object_get (error, "message");
        json_t *type = json_object_get (error, "type");
        json_t *code = json_object_get (error, "code");
        parts->type = json_is_string (type) ? type : json_is_string (code) ? code : NULL;
        parts->status = s_status (code);
        if (!parts->status)
            parts->status = s_status (json_object_get (error, "http_status_code"));
    }
    else if (json_is_string (error)) {
        //  TGI ({"error", "error_type"}), Ollama native.
        parts->message = error;
        parts->type = json_object_get (root, "error_type");
    }
    else {
        //  vLLM < 0.10.1 flat {"object":"error","message","type","code"}, old llama.cpp's
        //  "error:" line, FastAPI {"detail"} (a string, or a list of {"msg"}).
        parts->message = json_object_get (root, "message");
        if (!json_is_string (parts->message))
            parts->message = json_object_get (root, "detail");
        if (json_is_array (parts->message))
            parts->message = json_object_get (json_array_get (parts->message, 0), "msg");
        parts->type = json_object_get (root, "type");
        if (!json_is_string (parts->type))
            parts->type = json_object_get (root, "error_type");
        parts->status = s_status (json_object_get (root, "code"));
    }
    if (!json_is_string (parts->message))
        parts->message = NULL;
    if (!json_is_string (parts->type))
        parts->type = NULL;
}

//  Set ANSWER's error from ROOT (may be NULL), the message falling back to RAW, the
//  text it was read from.  The first error is kept.
static void
s_take_error (mesh_wire_answer_t *answer, json_t *root, const char *raw, size_t raw_len)
{
    if (answer->error)
        return;
    answer->error = true;
    s_error_t parts;
    s_error_parts (root, &parts);
    answer->error_message = s_one_line_json (parts.message);
    if (!answer->error_message) {
        answer->error_message = s_one_line (raw, raw_len);
        if (answer->error_message && !*answer->error_message) {
            free (answer->error_message);
            answer->error_message = strdup ("error without a message");
        }
    }
    answer->error_type = s_one_line_json (parts.type);
    answer->error_status = parts.status;
}

static bool
s_is_error (json_t *root)
{
    json_t *error = json_object_get (root, "error");
    return error && !json_is_null (error);
}

//  --- requests ---------------------------------------------------------------------------

//  Build-time state: a body under construction and whether every part made it.
typedef struct {
    json_t *body;
    bool ok;
} s_build_t;

static void
s_put (s_build_t *build, json_t *object, const char *key, json_t *value)
{
    if (!value || json_object_set_new (object, key, value) != 0)
        build->ok = false;
}

//  A string for the request, or NULL (and nothing sent) if TEXT is not valid UTF-8.
static json_t *
s_string (const char *text)
{
    return text ? json_string (text) : NULL;
}

static json_t *
s_stop_array (const mesh_wire_request_t *request)
{
    json_t *array = json_array ();
    if (!array)
        return NULL;
    for (size_t i = 0; i < request->stop_count; i++) {
        json_t *stop = s_string (request->stop[i]);
        if (stop)
            json_array_append_new (array, stop);
    }
    return array;
}

//  Ollama reads keep_alive as a number of seconds or a Go duration string ("5m"); a
//  bare number in a string ("-1", "300") is not a Go duration, so it goes as a number.
static json_t *
s_keep_alive (const char *text)
{
    char *end = NULL;
    long long seconds = strtoll (text, &end, 10);
    if (end != text && *end == 0 && !s_is_space (text[0]))
        return json_integer (seconds);
    return json_string (text);
}

//  The structured-output part of a request for FORM (any flavour: the caller decides).
static void
s_put_schema (s_build_t *build, const mesh_wire_request_t *request)
{
    json_t *schema = request->schema;
    if (!schema)
        return;
    switch (request->schema_form) {
        case MESH_WIRE_SCHEMA_NONE:
            break;
        case MESH_WIRE_SCHEMA_OPENAI:
            s_put (build, build->body, "response_format",
                   json_pack ("{s:s, s:{s:s, s:O, s:b}}", "type", "json_schema", "json_schema",
                              "name", "proposal", "schema", schema, "strict", 1));
            break;
        case MESH_WIRE_SCHEMA_TGI:
            s_put (build, build->body, "response_format",
                   json_pack ("{s:s, s:O}", "type", "json", "value", schema));
            break;
        case MESH_WIRE_SCHEMA_FORMAT:
            s_put (build, build->body, "format", json_incref (schema));
            break;
    }
}

static json_int_t
s_seed (int64_t seed)
{
    return (json_int_t) (seed & 0x7fffffff);    //  0 .. 2^31-1, what every server takes
}

json_t *
mesh_wire_request (mesh_backend_flavor_t flavor, const mesh_wire_request_t *request)
{
    assert (request);
    s_build_t build = { .body = json_object (), .ok = true };
    if (!build.body)
        return NULL;
    json_t *body = build.body;
    const char *model = request->model;
    if (!model && flavor == MESH_FLAVOR_TGI)
        model = "tgi";                      //  any other name is taken as a LoRA adapter
    json_t *value = s_string (model);
    if (value)
        s_put (&build, body, "model", value);
    s_put (&build, body, "messages",
           request->messages ? json_incref (request->messages) : json_array ());
    json_t *temperature = isfinite (request->temperature) ? json_real (request->temperature)
                                                          : NULL;
    if (flavor == MESH_FLAVOR_OLLAMA_NATIVE) {
        //  stream defaults to true on /api/chat: always say which.
        s_put (&build, body, "stream", json_boolean (request->stream));
        json_t *options = json_object ();
        if (options) {
            s_put (&build, options, "num_predict", json_integer (request->max_tokens));
            if (temperature)
                s_put (&build, options, "temperature", temperature);
            temperature = NULL;
            if (request->has_seed)
                s_put (&build, options, "seed", json_integer (s_seed (request->seed)));
            if (request->stop_count)
                s_put (&build, options, "stop", s_stop_array (request));
        }
        s_put_schema (&build, request);
        s_put (&build, body, "options", options);
        if (request->keep_alive && (value = s_keep_alive (request->keep_alive)))
            s_put (&build, body, "keep_alive", value);
    }
    else {
        s_put (&build, body, "max_tokens", json_integer (request->max_tokens));
        if (temperature)
            s_put (&build, body, "temperature", temperature);
        temperature = NULL;
        s_put (&build, body, "stream", json_boolean (request->stream));
        //  Only with stream: vLLM answers 400 to stream_options on a plain request.
        if (request->stream)
            s_put (&build, body, "stream_options", json_pack ("{s:b}", "include_usage", 1));
        if (request->has_seed)
            s_put (&build, body, "seed", json_integer (s_seed (request->seed)));
        if (request->stop_count)
            s_put (&build, body, "stop", s_stop_array (request));   //  TGI: arrays only
        s_put_schema (&build, request);
    }
    json_decref (temperature);
    if (!build.ok) {
        json_decref (body);
        return NULL;
    }
    return body;
}

//  --- streams --------------------------------------------------------------------------

void
mesh_wire_stream_init (mesh_wire_stream_t *stream, mesh_backend_flavor_t flavor,
                       size_t max_content)
{
    assert (stream);
    memset (stream, 0, sizeof *stream);
    stream->flavor = flavor;
    stream->max_content = max_content;
    s_answer_init (&stream->answer);
}

void
mesh_wire_stream_clear (mesh_wire_stream_t *stream)
{
    if (!stream)
        return;
    free (stream->line);
    mesh_wire_answer_clear (&stream->answer);
    memset (stream, 0, sizeof *stream);
}

//  One chat.completion.chunk (or an error object) from an SSE data event.  Returns 1
//  if it carried text.
static int
s_sse_chunk (mesh_wire_stream_t *stream, const char *payload, size_t len)
{
    mesh_wire_answer_t *answer = &stream->answer;
    char what[48];
    snprintf (what, sizeof what, "event %zu", answer->events);
    json_t *root = s_load_object (answer, payload, len, what);
    if (!root)
        return 0;
    if (s_is_error (root)) {
        s_take_error (answer, root, payload, len);
        json_decref (root);
        return 0;
    }
    s_take_model (answer, root);
    s_take_usage (answer, json_object_get (root, "usage"), "prompt_tokens",
                  "completion_tokens");                 //  TGI: null on every chunk
    int carried = 0;
    json_t *choices = json_object_get (root, "choices");
    if (choices && !json_is_null (choices) && !json_is_array (choices))
        s_malformed (answer, "event %zu: choices is %s, not an array", answer->events,
                     s_json_kind (choices));
    size_t i;
    json_t *choice;
    json_array_foreach (choices, i, choice) {
        if (!json_is_object (choice)) {
            s_malformed (answer, "event %zu: choices[%zu] is %s, not an object",
                         answer->events, i, s_json_kind (choice));
            continue;
        }
        json_t *index = json_object_get (choice, "index");
        json_int_t at = json_is_integer (index) && json_integer_value (index) >= 0
                          ? json_integer_value (index) : (json_int_t) i;
        if (at > S_INDEX_MAX)
            at = S_INDEX_MAX;
        if ((size_t) at + 1 > answer->choices)
            answer->choices = (size_t) at + 1;
        if (at != 0)
            continue;                       //  only the first choice is read
        carried |= s_take_text (answer, stream->max_content, json_object_get (choice, "delta"),
                                "choices[0].delta", false);
        s_take_finish (answer, json_object_get (choice, "finish_reason"));
    }
    json_decref (root);
    return carried;
}

//  The old llama.cpp "error: {...}" line (its value after the colon).
static void
s_sse_error_line (mesh_wire_stream_t *stream, const char *value, size_t len)
{
    json_t *root = len ? json_loadb (value, len, JSON_ALLOW_NUL, NULL) : NULL;
    if (!json_is_object (root)) {
        json_decref (root);
        root = NULL;
    }
    s_take_error (&stream->answer, root, value, len);
    json_decref (root);
}

//  Whether line P (N bytes) is the SSE field NAME; *VALUE_AT is then where its value
//  starts (after the colon and one optional space).
static bool
s_field (const char *p, size_t n, const char *name, size_t *value_at)
{
    size_t len = strlen (name);
    if (n < len || memcmp (p, name, len))
        return false;
    if (n == len) {
        *value_at = n;
        return true;
    }
    if (p[len] != ':')
        return false;
    *value_at = len + 1 + (n > len + 1 && p[len + 1] == ' ');
    return true;
}

static int
s_sse_line (mesh_wire_stream_t *stream, const char *p, size_t n)
{
    mesh_wire_answer_t *answer = &stream->answer;
    if (n == 0 || p[0] == ':')
        return 0;                           //  event boundary, or a keep-alive comment
    size_t at;
    if (s_field (p, n, "data", &at)) {
        const char *payload = p + at;
        size_t len = n - at;
        s_trim (&payload, &len);
        if (len == 0)
            return 0;
        answer->events++;
        if (len == 6 && !memcmp (payload, "[DONE]", 6)) {
            answer->done = true;
            return 0;
        }
        return s_sse_chunk (stream, payload, len);
    }
    if (s_field (p, n, "error", &at)) {
        const char *value = p + at;
        size_t len = n - at;
        s_trim (&value, &len);
        answer->events++;
        s_sse_error_line (stream, value, len);
        return 0;
    }
    if (s_field (p, n, "event", &at) || s_field (p, n, "id", &at)
        || s_field (p, n, "retry", &at))
        return 0;
    char *start = s_one_line (p, n < S_SNIPPET ? n : S_SNIPPET);
    s_malformed (answer, "a line that is not server-sent events: %s", start ? start : "");
    free (start);
    return 0;
}

//  One line of Ollama's /api/chat stream.
static int
s_ndjson_line (mesh_wire_stream_t *stream, const char *p, size_t n)
{
    mesh_wire_answer_t *answer = &stream->answer;
    s_trim (&p, &n);
    if (n == 0)
        return 0;
    answer->events++;
    char what[48];
    snprintf (what, sizeof what, "line %zu", answer->events);
    json_t *root = s_load_object (answer, p, n, what);
    if (!root)
        return 0;
    if (s_is_error (root)) {
        s_take_error (answer, root, p, n);
        json_decref (root);
        return 0;
    }
    s_take_model (answer, root);
    int carried = 0;
    json_t *message = json_object_get (root, "message");
    if (message && !json_is_null (message)) {
        if (answer->choices < 1)
            answer->choices = 1;
        carried = s_take_text (answer, stream->max_content, message, "message", true);
    }
    if (json_is_true (json_object_get (root, "done")))
        answer->done = true;
    s_take_finish (answer, json_object_get (root, "done_reason"));
    s_take_usage (answer, root, "prompt_eval_count", "eval_count");
    json_decref (root);
    return carried;
}

//  One whole line (without its "\n").  Returns 1 if it carried text.
static int
s_line (mesh_wire_stream_t *stream, const char *p, size_t n)
{
    if (n && p[n - 1] == '\r')
        n--;
    if (n > MESH_WIRE_LINE_MAX) {
        s_malformed (&stream->answer, "a line over the limit of %d bytes", MESH_WIRE_LINE_MAX);
        return 0;
    }
    if (stream->flavor == MESH_FLAVOR_OLLAMA_NATIVE)
        return s_ndjson_line (stream, p, n);
    return s_sse_line (stream, p, n);
}

//  Keep N more bytes of the current line.  False if the line would be over the limit
//  (a "\r" before its "\n" allowed) or memory ran out: it is then malformed, dropped.
static bool
s_line_add (mesh_wire_stream_t *stream, const char *p, size_t n)
{
    if (stream->line_len + n > (size_t) MESH_WIRE_LINE_MAX + 1) {
        s_malformed (&stream->answer, "a line over the limit of %d bytes", MESH_WIRE_LINE_MAX);
        return false;
    }
    if (stream->line_len + n > stream->line_cap) {
        size_t cap = stream->line_cap ? stream->line_cap : 256;
        while (cap < stream->line_len + n)
            cap *= 2;
        if (cap > (size_t) MESH_WIRE_LINE_MAX + 1)
            cap = (size_t) MESH_WIRE_LINE_MAX + 1;
        char *bigger = realloc (stream->line, cap);
        if (!bigger) {
            s_malformed (&stream->answer, "out of memory for a line of %zu bytes",
                         stream->line_len + n);
            return false;
        }
        stream->line = bigger;
        stream->line_cap = cap;
    }
    memcpy (stream->line + stream->line_len, p, n);
    stream->line_len += n;
    return true;
}

int
mesh_wire_stream_feed (mesh_wire_stream_t *stream, const char *data, size_t len)
{
    assert (stream);
    assert (data || len == 0);
    int carried = 0;
    size_t at = 0;
    while (at < len) {
        const char *start = data + at;
        const char *newline = memchr (start, '\n', len - at);
        size_t piece = newline ? (size_t) (newline - start) : len - at;
        at += piece + (newline ? 1 : 0);
        if (stream->skipping) {
            //  Inside an over-long line: drop it up to its newline.
            if (newline)
                stream->skipping = false;
        }
        else if (newline && stream->line_len == 0)
            carried += s_line (stream, start, piece);      //  whole line, no copy
        else if (!s_line_add (stream, start, piece)) {
            stream->line_len = 0;
            stream->skipping = !newline;
        }
        else if (newline) {
            carried += s_line (stream, stream->line, stream->line_len);
            stream->line_len = 0;
        }
    }
    stream->answer.token_events += (size_t) carried;
    return stream->answer.malformed || stream->answer.error ? -1 : carried;
}

void
mesh_wire_stream_end (mesh_wire_stream_t *stream)
{
    assert (stream);
    if (!stream->skipping && stream->line_len > 0)
        stream->answer.token_events += (size_t) s_line (stream, stream->line, stream->line_len);
    stream->line_len = 0;
    stream->skipping = false;
}

//  --- whole bodies ---------------------------------------------------------------------

static void
s_read_openai (json_t *root, size_t max_content, mesh_wire_answer_t *answer)
{
    s_take_usage (answer, json_object_get (root, "usage"), "prompt_tokens",
                  "completion_tokens");
    json_t *choices = json_object_get (root, "choices");
    if (!json_is_array (choices)) {
        s_malformed (answer, "response has no choices array");
        return;
    }
    answer->choices = json_array_size (choices);
    if (answer->choices > 1) {
        //  We ask for one (no "n"): taking the first of several would be a guess.
        s_malformed (answer, "response has %zu choices; exactly one was asked for",
                     answer->choices);
        return;
    }
    json_t *choice = json_array_get (choices, 0);
    json_t *message = json_object_get (choice, "message");
    if (!json_is_object (message)) {
        s_malformed (answer, !choice ? "response has no choices[0]"
                             : !json_is_object (choice) ? "choices[0] is not an object"
                             : "choices[0] has no message object");
        return;
    }
    //  A null content (reasoning only, or tool calls) leaves content_seen false.
    s_take_text (answer, max_content, message, "choices[0].message", false);
    answer->done = true;
    s_take_finish (answer, json_object_get (choice, "finish_reason"));
}

static void
s_read_ollama (json_t *root, size_t max_content, mesh_wire_answer_t *answer)
{
    s_take_usage (answer, root, "prompt_eval_count", "eval_count");
    json_t *message = json_object_get (root, "message");
    if (!json_is_object (message)) {
        s_malformed (answer, "response has no message object");
        return;
    }
    answer->choices = 1;
    s_take_text (answer, max_content, message, "message", true);
    answer->done = json_is_true (json_object_get (root, "done"));
    s_take_finish (answer, json_object_get (root, "done_reason"));
}

void
mesh_wire_read_body (mesh_backend_flavor_t flavor, const char *body, size_t len,
                     size_t max_content, mesh_wire_answer_t *answer)
{
    assert (answer);
    s_answer_init (answer);
    json_t *root = s_load_object (answer, body, len, "response");
    if (!root)
        return;
    if (s_is_error (root))
        s_take_error (answer, root, body, len);
    else {
        s_take_model (answer, root);
        if (flavor == MESH_FLAVOR_OLLAMA_NATIVE)
            s_read_ollama (root, max_content, answer);
        else
            s_read_openai (root, max_content, answer);
    }
    json_decref (root);
}

char *
mesh_wire_error_text (const char *body, size_t len, char **type)
{
    if (type)
        *type = NULL;
    char *text = NULL;
    json_t *root = body && len ? json_loadb (body, len, JSON_ALLOW_NUL, NULL) : NULL;
    if (json_is_object (root)) {
        s_error_t parts;
        s_error_parts (root, &parts);
        text = s_one_line_json (parts.message);
        if (type)
            *type = s_one_line_json (parts.type);
    }
    json_decref (root);
    if (!text)
        text = s_one_line (body, len);      //  plain text, or JSON without a message
    if (text && !*text) {
        free (text);
        text = NULL;
    }
    return text ? text : strdup ("(empty body)");
}

//  --- failure classes -------------------------------------------------------------------

bool
mesh_wire_schema_refused (long status, const char *message)
{
    static const char *words[] = { "response_format", "json_schema", "grammar", "format",
                                   "schema", NULL };
    if (status != 400 && status != 415 && status != 422)
        return false;
    for (int i = 0; words[i]; i++)
        if (s_has (message, words[i]))
            return true;
    return false;
}

mesh_fail_t
mesh_wire_classify (long status, const char *message, const char *type)
{
    if (s_has (type, "exceed_context_size_error") || s_has (message, "context length")
        || s_has (message, "context size") || s_has (message, "maximum context length")
        || (s_has (message, "must be <=") && s_has (message, "tokens"))
        || s_has (message, "exceeds the available context")
        || s_has (message, "prompt is too long"))
        return MESH_FAIL_MODEL_CONTEXT_OVERFLOW;
    if (status == 404
        || (s_has (message, "model")
            && (s_has (message, "not found") || s_has (message, "does not exist"))))
        return MESH_FAIL_MODEL_NOT_FOUND;
    bool busy = s_has (message, "busy") || s_has (message, "overloaded")
                || s_has (message, "maximum pending");
    if (s_has (type, "overloaded") || ((status == 503 || status == 429) && busy))
        return MESH_FAIL_MODEL_OVERLOADED;
    if (status == 429)
        return MESH_FAIL_MODEL_RATE_LIMITED;
    if (status == 503 && s_has (message, "loading"))
        return MESH_FAIL_MODEL_LOADING;
    //  Any other 503 says "not now" (vLLM's empty one, TGI's unhealthy): retried within
    //  the deadline like an overload, and counted by the circuit if it lasts.
    if (status == 503)
        return MESH_FAIL_MODEL_OVERLOADED;
    if (mesh_wire_schema_refused (status, message))
        return MESH_FAIL_MODEL_MALFORMED;
    return MESH_FAIL_MODEL_ERROR;
}

bool
mesh_wire_transient (mesh_fail_t fail)
{
    return fail == MESH_FAIL_MODEL_RATE_LIMITED || fail == MESH_FAIL_MODEL_OVERLOADED
           || fail == MESH_FAIL_MODEL_LOADING || fail == MESH_FAIL_MODEL_UNREACHABLE;
}

//  --- Retry-After and backoff ---------------------------------------------------------

//  A cursor over an HTTP date.
typedef struct {
    const char *p;
    size_t left;
} s_scan_t;

static bool
s_scan_literal (s_scan_t *scan, const char *literal)
{
    size_t n = strlen (literal);
    if (scan->left < n || memcmp (scan->p, literal, n))
        return false;
    scan->p += n;
    scan->left -= n;
    return true;
}

//  Exactly DIGITS decimal digits (a leading space allowed for SPACED: asctime's day).
static bool
s_scan_number (s_scan_t *scan, int digits, bool spaced, int *value)
{
    if (scan->left < (size_t) digits)
        return false;
    int v = 0;
    for (int i = 0; i < digits; i++) {
        char c = scan->p[i];
        if (i == 0 && spaced && c == ' ')
            continue;
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    scan->p += digits;
    scan->left -= (size_t) digits;
    *value = v;
    return true;
}

//  One of NAMES; its index, or -1.
static int
s_scan_name (s_scan_t *scan, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (s_scan_literal (scan, names[i]))
            return i;
    return -1;
}

static const char *const s_days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const s_long_days[] = { "Sunday", "Monday", "Tuesday", "Wednesday",
                                           "Thursday", "Friday", "Saturday" };
static const char *const s_months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static bool
s_scan_time (s_scan_t *scan, struct tm *tm)
{
    return s_scan_number (scan, 2, false, &tm->tm_hour) && s_scan_literal (scan, ":")
           && s_scan_number (scan, 2, false, &tm->tm_min) && s_scan_literal (scan, ":")
           && s_scan_number (scan, 2, false, &tm->tm_sec);
}

//  An HTTP date (RFC 9110 5.6.7: IMF-fixdate, RFC 850, asctime) into *WHEN.
static bool
s_http_date (const char *text, size_t len, time_t now, time_t *when)
{
    struct tm tm;
    memset (&tm, 0, sizeof tm);
    int year = 0;
    s_scan_t scan = { text, len };
    bool ok = false;
    //  IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT"; the long day names share their
    //  first three letters, so RFC 850 is tried on a fresh cursor when this fails.
    if (s_scan_name (&scan, s_days, 7) >= 0 && s_scan_literal (&scan, ", ")) {
        ok = s_scan_number (&scan, 2, false, &tm.tm_mday) && s_scan_literal (&scan, " ")
             && (tm.tm_mon = s_scan_name (&scan, s_months, 12)) >= 0
             && s_scan_literal (&scan, " ") && s_scan_number (&scan, 4, false, &year)
             && s_scan_literal (&scan, " ") && s_scan_time (&scan, &tm)
             && s_scan_literal (&scan, " GMT") && scan.left == 0;
    }
    if (!ok) {
        //  RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT": a two-digit year more than 50
        //  years ahead of NOW is in the past century (RFC 9110).
        scan = (s_scan_t) { text, len };
        int yy = 0;
        ok = s_scan_name (&scan, s_long_days, 7) >= 0 && s_scan_literal (&scan, ", ")
             && s_scan_number (&scan, 2, false, &tm.tm_mday) && s_scan_literal (&scan, "-")
             && (tm.tm_mon = s_scan_name (&scan, s_months, 12)) >= 0
             && s_scan_literal (&scan, "-") && s_scan_number (&scan, 2, false, &yy)
             && s_scan_literal (&scan, " ") && s_scan_time (&scan, &tm)
             && s_scan_literal (&scan, " GMT") && scan.left == 0;
        if (ok) {
            struct tm today;
            int this_year = gmtime_r (&now, &today) ? today.tm_year + 1900 : 1970;
            year = this_year - this_year % 100 + yy;
            if (year > this_year + 50)
                year -= 100;
        }
    }
    if (!ok) {
        //  asctime "Sun Nov  6 08:49:37 1994".
        scan = (s_scan_t) { text, len };
        ok = s_scan_name (&scan, s_days, 7) >= 0 && s_scan_literal (&scan, " ")
             && (tm.tm_mon = s_scan_name (&scan, s_months, 12)) >= 0
             && s_scan_literal (&scan, " ") && s_scan_number (&scan, 2, true, &tm.tm_mday)
             && s_scan_literal (&scan, " ") && s_scan_time (&scan, &tm)
             && s_scan_literal (&scan, " ") && s_scan_number (&scan, 4, false, &year)
             && scan.left == 0;
    }
    if (!ok || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59
        || tm.tm_sec > 60 || year < 1900)
        return false;
    if (tm.tm_sec == 60)
        tm.tm_sec = 59;                     //  a leap second: near enough
    tm.tm_year = year - 1900;
    int mday = tm.tm_mday;
    time_t t = timegm (&tm);
    if (t == (time_t) -1 || tm.tm_mday != mday)
        return false;                       //  "31 Feb" is not a date
    *when = t;
    return true;
}

long
mesh_wire_retry_after_ms (const char *value, time_t now)
{
    if (!value)
        return -1;
    const char *p = value;
    size_t n = strlen (value);
    s_trim (&p, &n);
    if (n == 0)
        return -1;
    size_t digits = 0;
    while (digits < n && p[digits] >= '0' && p[digits] <= '9')
        digits++;
    if (digits == n) {
        //  delta-seconds; a huge one is capped, not refused.
        long seconds = 0;
        for (size_t i = 0; i < n && seconds <= S_DAY_MS / 1000; i++)
            seconds = seconds * 10 + (p[i] - '0');
        long ms = seconds * 1000;
        return ms < S_DAY_MS ? ms : S_DAY_MS;
    }
    time_t when;
    if (!s_http_date (p, n, now, &when))
        return -1;
    if (when <= now)
        return 0;
    double ms = difftime (when, now) * 1000.0;
    return ms < (double) S_DAY_MS ? (long) ms : S_DAY_MS;
}

long
mesh_wire_backoff_ms (int attempt, long base_ms, long cap_ms, uint32_t r)
{
    if (base_ms <= 0 || cap_ms <= 0)
        return 0;
    //  min(cap, base * 2^attempt), doubling only while under the cap: no overflow.
    long window = base_ms < cap_ms ? base_ms : cap_ms;
    for (int i = 0; i < attempt && window < cap_ms; i++)
        window = window > cap_ms / 2 ? cap_ms : window * 2;
    return (long) ((unsigned long long) r % ((unsigned long long) window + 1));
}

//  --- reasoning blocks ---------------------------------------------------------------

const char *
mesh_wire_split_think (const char *content, const char **think_start, size_t *think_len)
{
    static const char *const tags[] = { "think", "thinking", "reasoning" };
    if (think_start)
        *think_start = content;
    if (think_len)
        *think_len = 0;
    if (!content)
        return content;
    const char *p = content;
    while (s_is_space (*p))
        p++;
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        size_t len = strlen (tags[i]);
        if (p[0] != '<' || strncmp (p + 1, tags[i], len) || p[1 + len] != '>')
            continue;
        const char *inner = p + len + 2;
        char close[16];
        snprintf (close, sizeof close, "</%s>", tags[i]);
        const char *end = strstr (inner, close);
        size_t inner_len = end ? (size_t) (end - inner) : strlen (inner);
        if (think_start)
            *think_start = inner;
        if (think_len)
            *think_len = inner_len;
        if (!end)
            return inner + inner_len;       //  never closed: nothing left to parse
        const char *after = end + strlen (close);
        while (s_is_space (*after))
            after++;
        return after;
    }
    return content;
}

//  --- probes -----------------------------------------------------------------------------

//  Whether PATH (a query string ignored) ends with SUFFIX.
static bool
s_path_is (const char *path, const char *suffix)
{
    size_t n = strcspn (path, "?#");
    size_t m = strlen (suffix);
    return n >= m && !memcmp (path + n - m, suffix, m);
}

//  Whether LISTED names MODEL, a missing tag meaning ":latest" (Ollama).
static bool
s_model_match (const char *listed, const char *model)
{
    if (!listed || !model || !*model)
        return false;
    if (!strcmp (listed, model))
        return true;
    static const char latest[] = ":latest";
    size_t a = strlen (listed), b = strlen (model), l = sizeof latest - 1;
    if (a == b + l && !strncmp (listed, model, b) && !strcmp (listed + b, latest))
        return true;
    if (b == a + l && !strncmp (model, listed, a) && !strcmp (model + a, latest))
        return true;
    return false;
}

static long
s_context (json_t *value)
{
    long n = s_count (value);
    return n > 0 ? n : 0;
}

//  "/v1/models": vLLM (owned_by "vllm", max_model_len) and llama.cpp (owned_by
//  "llamacpp", meta.n_ctx_train) say who they are; Ollama and TGI do not.
static void
s_probe_models (json_t *root, const char *model, mesh_wire_probe_t *probe)
{
    json_t *data = json_object_get (root, "data");
    if (!json_is_array (data))
        return;
    probe->model_list = true;
    probe->ready = true;
    long first_context = 0, model_context = 0;
    size_t i;
    json_t *entry;
    json_array_foreach (data, i, entry) {
        const char *owner = json_string_value (json_object_get (entry, "owned_by"));
        long context = 0;
        if (owner && !strcmp (owner, "vllm")) {
            probe->flavor = MESH_FLAVOR_VLLM;
            context = s_context (json_object_get (entry, "max_model_len"));
        }
        else if (owner && !strcmp (owner, "llamacpp")) {
            probe->flavor = MESH_FLAVOR_LLAMACPP;
            context = s_context (json_object_get (json_object_get (entry, "meta"),
                                                  "n_ctx_train"));
        }
        bool listed = s_model_match (json_string_value (json_object_get (entry, "id")), model);
        if (listed)
            probe->model_listed = true;
        if (listed && context && !model_context)
            model_context = context;
        if (context && !first_context)
            first_context = context;
    }
    probe->context_tokens = model_context ? model_context : first_context;
}

//  "/api/tags" (every pulled model) and "/api/ps" (the loaded ones, with their context).
static void
s_probe_ollama_list (json_t *root, const char *model, bool loaded, mesh_wire_probe_t *probe)
{
    json_t *models = json_object_get (root, "models");
    if (!json_is_array (models))
        return;
    probe->flavor = MESH_FLAVOR_OLLAMA;
    probe->ready = true;
    probe->model_list = !loaded;
    size_t i;
    json_t *entry;
    json_array_foreach (models, i, entry) {
        bool match = s_model_match (json_string_value (json_object_get (entry, "name")), model)
                     || s_model_match (json_string_value (json_object_get (entry, "model")),
                                       model);
        if (!match)
            continue;
        if (loaded) {
            if (!probe->context_tokens)
                probe->context_tokens = s_context (json_object_get (entry, "context_length"));
        }
        else
            probe->model_listed = true;
    }
}

//  "/api/show": parameters "num_ctx N" (the context the model runs with), else
//  model_info "<arch>.context_length" (its trained maximum: an upper bound, as the
//  server's own default context may be smaller).
static void
s_probe_show (json_t *root, mesh_wire_probe_t *probe)
{
    json_t *info = json_object_get (root, "model_info");
    json_t *params = json_object_get (root, "parameters");
    if (!json_is_object (info) && !json_is_string (params))
        return;
    probe->flavor = MESH_FLAVOR_OLLAMA;
    probe->ready = true;
    const char *text = json_string_value (params);
    for (const char *line = text; line && *line && !probe->context_tokens;) {
        //  "num_ctx                        8192\nstop ..."
        if (!strncmp (line, "num_ctx", 7) && (line[7] == ' ' || line[7] == '\t')) {
            char *end = NULL;
            long n = strtol (line + 7, &end, 10);
            if (end != line + 7 && n > 0)
                probe->context_tokens = n;
        }
        line = strchr (line, '\n');
        if (line)
            line++;
    }
    const char *arch = json_string_value (json_object_get (info, "general.architecture"));
    if (arch && !probe->context_tokens) {
        char *key = NULL;
        if (asprintf (&key, "%s.context_length", arch) >= 0) {
            probe->context_tokens = s_context (json_object_get (info, key));
            free (key);
        }
    }
    if (!probe->context_tokens && json_is_object (info)) {
        const char *key;
        json_t *value;
        json_object_foreach (info, key, value) {
            size_t n = strlen (key), m = strlen (".context_length");
            if (n > m && !strcmp (key + n - m, ".context_length") && s_context (value)) {
                probe->context_tokens = s_context (value);
                break;
            }
        }
    }
}

void
mesh_wire_probe_read (const char *path, long status, const char *body, size_t len,
                      const char *model, mesh_wire_probe_t *probe)
{
    assert (probe);
    memset (probe, 0, sizeof *probe);
    probe->flavor = MESH_FLAVOR_AUTO;
    const char *text = body ? body : "";
    size_t text_len = body ? len : 0;
    s_trim (&text, &text_len);
    bool ok = status >= 200 && status <= 299;
    probe->answered = ok || (status == 503 && text_len > 0);
    if (!probe->answered || !path)
        return;
    json_t *root = text_len ? json_loadb (text, text_len, 0, NULL) : NULL;
    const char *state = json_string_value (json_object_get (root, "status"));
    if (!ok) {
        //  503: llama.cpp {"error":{"message":"Loading model"}} (older builds
        //  {"status":"loading model"}); TGI {"error":"unhealthy"}.
        char *message = mesh_wire_error_text (text, text_len, NULL);
        probe->loading = s_has (message, "loading") || s_has (state, "loading");
        free (message);
    }
    else if (s_path_is (path, "/health")) {
        //  llama.cpp {"status":"ok"}; vLLM and TGI an empty 200.
        if (state && strcasecmp (state, "ok"))
            probe->loading = s_has (state, "loading");
        else
            probe->ready = true;
    }
    else if (s_path_is (path, "/props")) {
        json_t *settings = json_object_get (root, "default_generation_settings");
        if (settings || json_object_get (root, "n_ctx") || json_object_get (root, "total_slots")
            || json_object_get (root, "build_info")) {
            probe->flavor = MESH_FLAVOR_LLAMACPP;
            probe->ready = true;
            probe->context_tokens = s_context (json_object_get (settings, "n_ctx"));
            if (!probe->context_tokens)
                probe->context_tokens = s_context (json_object_get (root, "n_ctx"));
        }
    }
    else if (s_path_is (path, "/models"))
        s_probe_models (root, model, probe);
    else if (s_path_is (path, "/info")) {
        long input = s_context (json_object_get (root, "max_input_tokens"));
        long total = s_context (json_object_get (root, "max_total_tokens"));
        const char *router = json_string_value (json_object_get (root, "router"));
        if (input || total || s_has (router, "text-generation")) {
            probe->flavor = MESH_FLAVOR_TGI;
            probe->ready = true;
            probe->context_tokens = input ? input : total;
        }
    }
    else if (s_path_is (path, "/api/version")) {
        if (json_is_string (json_object_get (root, "version"))) {
            probe->flavor = MESH_FLAVOR_OLLAMA;
            probe->ready = true;
        }
    }
    else if (s_path_is (path, "/api/tags"))
        s_probe_ollama_list (root, model, false, probe);
    else if (s_path_is (path, "/api/ps"))
        s_probe_ollama_list (root, model, true, probe);
    else if (s_path_is (path, "/api/show"))
        s_probe_show (root, probe);
    else if (text_len == 17 && !memcmp (text, "Ollama is running", 17)) {
        probe->flavor = MESH_FLAVOR_OLLAMA;             //  GET /
        probe->ready = true;
    }
    json_decref (root);
}
