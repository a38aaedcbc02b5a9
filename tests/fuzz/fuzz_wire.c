/*  fuzz_wire - the inference servers' wire formats (agents/backend/wire.c) on any bytes.
 *
 *  Byte 0 of the input picks the flavour (bits 0-2; 7 is ollama-native again, so the
 *  NDJSON reader gets a fair share) and how the stream is cut (bits 3-7: 0 whole, else
 *  pieces of that many bytes); the rest is what the server sent.  It goes to the stream
 *  reader twice, whole and in pieces, and the two answers must be the same; then to
 *  mesh_wire_read_body, mesh_wire_error_text and mesh_wire_classify, mesh_wire_split_think,
 *  mesh_wire_probe_read for every probe path, mesh_wire_retry_after_ms and
 *  mesh_wire_request (its first bytes as model, stop and keep_alive).  No I/O: nothing
 *  of fuzz_common's world is used.  Besides what ASan and UBSan catch, the harness
 *  aborts when an answer breaks the header's promises: a content whose length is not
 *  content_len or that is not UTF-8, more reasoning kept than MESH_WIRE_REASONING_MAX,
 *  server text (error, type, model, finish reason) that holds a control character, is
 *  over MESH_WIRE_TEXT_MAX bytes or is not UTF-8, a malformed answer without a one-line
 *  detail, a probe context below 0, a Retry-After outside -1 .. 24 h.
 */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#define S_MAX_CONTENT   512             //  small, so that overflow is reached

//  Whether TEXT is one line of at most MESH_WIRE_TEXT_MAX bytes of UTF-8 (jansson refuses
//  a string that is not UTF-8).
static bool
s_one_line (const char *text)
{
    if (!text)
        return true;
    size_t len = strlen (text);
    if (len > MESH_WIRE_TEXT_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) text[i] < 0x20 || text[i] == 0x7f)
            return false;
    json_t *string = json_string (text);
    json_decref (string);
    return string != NULL;
}

static bool
s_utf8 (const char *text, size_t len)
{
    json_t *string = json_stringn (text, len);
    json_decref (string);
    return string != NULL;
}

static void
s_check (const mesh_wire_answer_t *a, size_t max_content)
{
    if (a->content && (strlen (a->content) != a->content_len || a->content_len > max_content
                       || !s_utf8 (a->content, a->content_len)))
        abort ();
    if (a->content && !a->content_seen)
        abort ();
    if (a->reasoning_len > MESH_WIRE_REASONING_MAX || a->reasoning_len > a->reasoning_bytes)
        abort ();
    if (a->reasoning && (strlen (a->reasoning) != a->reasoning_len
                         || !s_utf8 (a->reasoning, a->reasoning_len)))
        abort ();
    if (!a->reasoning && a->reasoning_len)
        abort ();
    if (!s_one_line (a->error_message) || !s_one_line (a->error_type) || !s_one_line (a->model)
        || !s_one_line (a->finish_reason))
        abort ();
    if (a->error && !a->error_message)
        abort ();
    if (a->malformed && (!a->malformed_detail || strpbrk (a->malformed_detail, "\r\n")))
        abort ();
    if (a->token_events > a->events || a->prompt_tokens < -1 || a->completion_tokens < -1)
        abort ();
}

static bool
s_same_string (const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp (a, b));
}

static bool
s_same (const mesh_wire_answer_t *a, const mesh_wire_answer_t *b)
{
    return s_same_string (a->content, b->content) && a->content_len == b->content_len
           && a->content_seen == b->content_seen && a->content_overflow == b->content_overflow
           && s_same_string (a->reasoning, b->reasoning) && a->reasoning_len == b->reasoning_len
           && a->reasoning_bytes == b->reasoning_bytes && s_same_string (a->model, b->model)
           && s_same_string (a->finish_reason, b->finish_reason)
           && a->prompt_tokens == b->prompt_tokens
           && a->completion_tokens == b->completion_tokens && a->done == b->done
           && a->finished == b->finished && a->choices == b->choices && a->error == b->error
           && s_same_string (a->error_message, b->error_message)
           && s_same_string (a->error_type, b->error_type)
           && a->error_status == b->error_status && a->malformed == b->malformed
           && s_same_string (a->malformed_detail, b->malformed_detail)
           && a->events == b->events && a->token_events == b->token_events;
}

//  Read DATA as a stream in pieces of SPLIT bytes (0: whole); feed's return must be -1
//  exactly when the answer is malformed or has an error, and stay so.
static void
s_stream (mesh_wire_stream_t *stream, mesh_backend_flavor_t flavor, const uint8_t *data,
          size_t size, size_t split)
{
    mesh_wire_stream_init (stream, flavor, S_MAX_CONTENT);
    bool failed = false;
    size_t at = 0;
    do {
        size_t n = split && split < size - at ? split : size - at;
        int rc = mesh_wire_stream_feed (stream, (const char *) data + at, n);
        bool bad = stream->answer.malformed || stream->answer.error;
        if ((rc < 0) != bad || (failed && rc >= 0))
            abort ();
        failed = rc < 0;
        at += n;
    } while (at < size);
    mesh_wire_stream_end (stream);
    s_check (&stream->answer, S_MAX_CONTENT);
}

static const mesh_backend_flavor_t s_flavors[8] = {
    MESH_FLAVOR_AUTO, MESH_FLAVOR_OPENAI, MESH_FLAVOR_LLAMACPP, MESH_FLAVOR_VLLM,
    MESH_FLAVOR_OLLAMA, MESH_FLAVOR_OLLAMA_NATIVE, MESH_FLAVOR_TGI, MESH_FLAVOR_OLLAMA_NATIVE,
};

static const char *s_paths[] = { "/health", "/props", "/v1/models", "/info", "/api/version",
                                 "/api/tags", "/api/ps", "/api/show", "/" };
static const long s_statuses[] = { 200, 503, 404, 429, 400, 422, 0, 500 };

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    mesh_backend_flavor_t flavor = s_flavors[data[0] & 7];
    size_t split = data[0] >> 3;
    const uint8_t *rest = data + 1;
    size_t len = size - 1;
    if (strcmp (mesh_wire_flavor_name (flavor), "unknown") == 0)
        abort ();

    //  The stream, whole and in pieces: the same answer.
    mesh_wire_stream_t whole, pieces;
    s_stream (&whole, flavor, rest, len, 0);
    s_stream (&pieces, flavor, rest, len, split ? split : 1);
    if (!s_same (&whole.answer, &pieces.answer))
        abort ();
    mesh_wire_stream_clear (&whole);
    mesh_wire_stream_clear (&pieces);

    //  The whole body.
    mesh_wire_answer_t answer;
    mesh_wire_read_body (flavor, (const char *) rest, len, S_MAX_CONTENT, &answer);
    s_check (&answer, S_MAX_CONTENT);
    if (answer.done && answer.choices != 1 && !answer.malformed)
        abort ();
    mesh_wire_answer_clear (&answer);

    //  The error text and its class.
    char *type = NULL;
    char *text = mesh_wire_error_text ((const char *) rest, len, &type);
    if (!text || !*text || !s_one_line (text) || !s_one_line (type))
        abort ();
    long status = s_statuses[split & 7];
    mesh_fail_t fail = mesh_wire_classify (status, text, type);
    if (fail != MESH_FAIL_MODEL_CONTEXT_OVERFLOW && fail != MESH_FAIL_MODEL_NOT_FOUND
        && fail != MESH_FAIL_MODEL_RATE_LIMITED && fail != MESH_FAIL_MODEL_OVERLOADED
        && fail != MESH_FAIL_MODEL_LOADING && fail != MESH_FAIL_MODEL_MALFORMED
        && fail != MESH_FAIL_MODEL_ERROR)
        abort ();
    if (fail == MESH_FAIL_MODEL_MALFORMED && !mesh_wire_schema_refused (status, text))
        abort ();
    free (text);
    free (type);

    //  As text: <think> blocks, Retry-After, request fields.
    char *copy = malloc (len + 1);
    if (!copy)
        return 0;
    memcpy (copy, rest, len);
    copy[len] = 0;
    size_t clen = strlen (copy);
    const char *think = NULL;
    size_t think_len = 0;
    const char *after = mesh_wire_split_think (copy, &think, &think_len);
    if (after < copy || after > copy + clen || think < copy || think + think_len > copy + clen)
        abort ();
    if (think == copy && after != copy)
        abort ();                           //  no block: nothing is skipped
    long retry = mesh_wire_retry_after_ms (copy, 1735689600);
    if (retry < -1 || retry > 24L * 3600 * 1000)
        abort ();
    long wait = mesh_wire_backoff_ms ((int) len, 250, 5000, (uint32_t) len * 2654435761u);
    if (wait < 0 || wait > 5000)
        abort ();
    if (clen > 64)
        copy[64] = 0;
    json_t *messages = json_pack ("[{s:s, s:s}]", "role", "user", "content", "hi");
    json_t *schema = json_pack ("{s:s}", "type", "object");
    char *stop[] = { copy };
    mesh_wire_request_t request = {
        .messages = messages, .model = copy, .max_tokens = 16, .temperature = 0.5,
        .schema = schema, .schema_form = (mesh_wire_schema_t) (split & 3),
        .stream = split & 4, .has_seed = true, .seed = (int64_t) len, .stop = stop,
        .stop_count = 1, .keep_alive = copy,
    };
    json_t *body = mesh_wire_request (flavor, &request);
    char *dump = body ? json_dumps (body, JSON_COMPACT) : NULL;
    if (!dump)
        abort ();
    free (dump);
    json_decref (body);
    json_decref (messages);
    json_decref (schema);

    //  Every probe path.
    for (size_t i = 0; i < sizeof s_paths / sizeof s_paths[0]; i++) {
        mesh_wire_probe_t probe;
        mesh_wire_probe_read (s_paths[i], status, (const char *) rest, len,
                              clen ? copy : NULL, &probe);
        if (probe.context_tokens < 0 || (probe.model_listed && !probe.model_list)
            || (unsigned) probe.flavor >= MESH_FLAVOR_COUNT_)
            abort ();
    }
    free (copy);
    return 0;
}
