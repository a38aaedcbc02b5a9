/*  test_wire - the inference servers' wire formats (agents/backend/wire.c).
 *
 *  Pure functions, so no server: request bodies per flavour, the streams each server
 *  writes (taken from its own source, see the research notes on inference backends)
 *  read whole, a byte at a time and in random pieces with the same answer, whole
 *  bodies, error texts in every shape, the failure classes with the servers' own
 *  messages, Retry-After, backoff, <think> blocks and the probe endpoints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wire.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  --- helpers ---------------------------------------------------------------------

static uint32_t
s_random (uint32_t *state)
{
    //  xorshift32: reproducible splits and draws on every machine.
    uint32_t x = *state ? *state : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

typedef struct {
    int tokens;                     //  the sum of feed's non-negative returns
    bool failed;                    //  a feed returned -1
} s_feed_t;

//  Read TEXT as a stream of FLAVOR in pieces of SPLIT bytes (0: all at once; negative:
//  random sizes 1..64 drawn from SEED), then end it.  Returns the answer (caller
//  clears it).
static mesh_wire_answer_t
s_read (mesh_backend_flavor_t flavor, const char *text, size_t max_content, int split,
        uint32_t seed, s_feed_t *feed)
{
    mesh_wire_stream_t stream;
    mesh_wire_stream_init (&stream, flavor, max_content);
    s_feed_t local = { 0, false };
    size_t len = strlen (text);
    for (size_t at = 0; at < len;) {
        size_t n = split == 0 ? len : split > 0 ? (size_t) split : 1 + s_random (&seed) % 64;
        if (n > len - at)
            n = len - at;
        int rc = mesh_wire_stream_feed (&stream, text + at, n);
        if (rc < 0)
            local.failed = true;
        else
            local.tokens += rc;
        at += n;
    }
    mesh_wire_stream_end (&stream);
    mesh_wire_answer_t answer = stream.answer;
    memset (&stream.answer, 0, sizeof stream.answer);
    mesh_wire_stream_clear (&stream);
    if (feed)
        *feed = local;
    return answer;
}

static void
s_same_string (const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal (a, b);
    else
        assert_string_equal (a, b);
}

static void
s_same (const mesh_wire_answer_t *a, const mesh_wire_answer_t *b)
{
    s_same_string (a->content, b->content);
    assert_int_equal (a->content_len, b->content_len);
    assert_int_equal (a->content_seen, b->content_seen);
    assert_int_equal (a->content_overflow, b->content_overflow);
    s_same_string (a->reasoning, b->reasoning);
    assert_int_equal (a->reasoning_len, b->reasoning_len);
    assert_int_equal (a->reasoning_bytes, b->reasoning_bytes);
    s_same_string (a->model, b->model);
    s_same_string (a->finish_reason, b->finish_reason);
    assert_int_equal (a->prompt_tokens, b->prompt_tokens);
    assert_int_equal (a->completion_tokens, b->completion_tokens);
    assert_int_equal (a->done, b->done);
    assert_int_equal (a->finished, b->finished);
    assert_int_equal (a->choices, b->choices);
    assert_int_equal (a->error, b->error);
    s_same_string (a->error_message, b->error_message);
    s_same_string (a->error_type, b->error_type);
    assert_int_equal (a->error_status, b->error_status);
    assert_int_equal (a->malformed, b->malformed);
    s_same_string (a->malformed_detail, b->malformed_detail);
    assert_int_equal (a->events, b->events);
    assert_int_equal (a->token_events, b->token_events);
}

//  The same answer whole, a byte at a time, in pieces of 2, 3 and 7, and in 50 random
//  splittings.
static void
s_expect_any_split (mesh_backend_flavor_t flavor, const char *text, size_t max_content)
{
    s_feed_t whole_feed, feed;
    mesh_wire_answer_t whole = s_read (flavor, text, max_content, 0, 0, &whole_feed);
    int splits[] = { 1, 2, 3, 7 };
    for (size_t i = 0; i < sizeof splits / sizeof splits[0]; i++) {
        mesh_wire_answer_t answer = s_read (flavor, text, max_content, splits[i], 0, &feed);
        s_same (&whole, &answer);
        assert_int_equal (feed.tokens, whole_feed.tokens);
        assert_int_equal (feed.failed, whole_feed.failed);
        mesh_wire_answer_clear (&answer);
    }
    for (uint32_t seed = 1; seed <= 50; seed++) {
        mesh_wire_answer_t answer = s_read (flavor, text, max_content, -1, seed, &feed);
        s_same (&whole, &answer);
        assert_int_equal (feed.failed, whole_feed.failed);
        mesh_wire_answer_clear (&answer);
    }
    mesh_wire_answer_clear (&whole);
}

//  TEXT with every "\n" made "\r\n" (caller frees).
static char *
s_crlf (const char *text)
{
    char *out = malloc (2 * strlen (text) + 1);
    char *p = out;
    for (; *text; text++) {
        if (*text == '\n')
            *p++ = '\r';
        *p++ = *text;
    }
    *p = 0;
    return out;
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
    return json_pack ("{s:s, s:[s]}", "type", "object", "required", "action");
}

static char *const s_stops[] = { "</proposal>", "\n\n\n" };

static mesh_wire_request_t
s_request (json_t *messages, json_t *schema, mesh_wire_schema_t form, bool stream)
{
    return (mesh_wire_request_t) {
        .messages = messages, .model = "qwen2.5:7b", .max_tokens = 256, .temperature = 0.2,
        .schema = schema, .schema_form = form, .stream = stream, .has_seed = true,
        .seed = 12345, .stop = s_stops, .stop_count = 2, .keep_alive = "5m",
    };
}

static const char *
s_get_string (json_t *object, const char *key)
{
    json_t *value = json_object_get (object, key);
    assert_true (json_is_string (value));
    return json_string_value (value);
}

//  --- the streams, as each server writes them ------------------------------------------

//  llama.cpp: a role chunk with content null, keep-alive comments, the finish on a chunk
//  with delta {}, the usage chunk with choices [] and timings.
static const char s_llamacpp[] =
  "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"role\":\"assistant\","
  "\"content\":null}}],\"created\":1735689600,\"id\":\"chatcmpl-Q3x9\",\"model\":"
  "\"qwen2.5-7b-instruct-q4_k_m.gguf\",\"system_fingerprint\":\"b4500-1b8a5f2\","
  "\"object\":\"chat.completion.chunk\"}\n"
  "\n"
  ": ping\n"
  "\n"
  "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":"
  "\"{\\\"action\\\":\"}}],\"created\":1735689600,\"id\":\"chatcmpl-Q3x9\",\"model\":"
  "\"qwen2.5-7b-instruct-q4_k_m.gguf\",\"object\":\"chat.completion.chunk\"}\n"
  "\n"
  "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":"
  "\" \\\"scale_out\\\"}\"}}],\"created\":1735689600,\"id\":\"chatcmpl-Q3x9\",\"model\":"
  "\"qwen2.5-7b-instruct-q4_k_m.gguf\",\"object\":\"chat.completion.chunk\"}\n"
  "\n"
  ": ping\n"
  "\n"
  "data: {\"choices\":[{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{}}],\"created\":"
  "1735689600,\"id\":\"chatcmpl-Q3x9\",\"model\":\"qwen2.5-7b-instruct-q4_k_m.gguf\","
  "\"object\":\"chat.completion.chunk\"}\n"
  "\n"
  "data: {\"choices\":[],\"created\":1735689600,\"id\":\"chatcmpl-Q3x9\",\"model\":"
  "\"qwen2.5-7b-instruct-q4_k_m.gguf\",\"object\":\"chat.completion.chunk\",\"usage\":"
  "{\"completion_tokens\":6,\"prompt_tokens\":143,\"total_tokens\":149},\"timings\":"
  "{\"cache_n\":0,\"prompt_n\":143,\"prompt_ms\":61.2,\"prompt_per_token_ms\":0.43,"
  "\"prompt_per_second\":2336.6,\"predicted_n\":6,\"predicted_ms\":74.9,"
  "\"predicted_per_token_ms\":12.5,\"predicted_per_second\":80.1}}\n"
  "\n"
  "data: [DONE]\n"
  "\n";

//  vLLM: the first chunk's content is "", finish_reason (and stop_reason) on the last
//  content chunk, then the usage chunk.
static const char s_vllm[] =
  "data: {\"id\":\"chatcmpl-2f0c\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,"
  "\"model\":\"Qwen/Qwen2.5-7B-Instruct\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
  "\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n"
  "\n"
  "data: {\"id\":\"chatcmpl-2f0c\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,"
  "\"model\":\"Qwen/Qwen2.5-7B-Instruct\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
  "\"Hel\"},\"logprobs\":null,\"finish_reason\":null}]}\n"
  "\n"
  "data: {\"id\":\"chatcmpl-2f0c\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,"
  "\"model\":\"Qwen/Qwen2.5-7B-Instruct\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
  "\"lo\"},\"logprobs\":null,\"finish_reason\":\"stop\",\"stop_reason\":null}]}\n"
  "\n"
  "data: {\"id\":\"chatcmpl-2f0c\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,"
  "\"model\":\"Qwen/Qwen2.5-7B-Instruct\",\"choices\":[],\"usage\":{\"prompt_tokens\":31,"
  "\"total_tokens\":33,\"completion_tokens\":2}}\n"
  "\n"
  "data: [DONE]\n"
  "\n";

//  Ollama /v1 since v0.32.6: role and first text together, a separate finish chunk.
static const char s_ollama_new[] =
  "data: {\"id\":\"chatcmpl-417\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,"
  "\"model\":\"llama3.2\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,"
  "\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n"
  "\n"
  "data: {\"id\":\"chatcmpl-417\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,"
  "\"model\":\"llama3.2\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,"
  "\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n"
  "\n"
  "data: {\"id\":\"chatcmpl-417\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,"
  "\"model\":\"llama3.2\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,"
  "\"delta\":{},\"finish_reason\":\"stop\"}]}\n"
  "\n"
  "data: {\"id\":\"chatcmpl-417\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,"
  "\"model\":\"llama3.2\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[],\"usage\":"
  "{\"prompt_tokens\":26,\"completion_tokens\":2,\"total_tokens\":28}}\n"
  "\n"
  "data: [DONE]\n"
  "\n";

//  Ollama /v1 up to v0.32.5: every chunk repeats the role; the finish on a last chunk
//  with content "".
static const char s_ollama_old[] =
  "data: {\"id\":\"chatcmpl-88\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,"
  "\"model\":\"llama3.2\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,"
  "\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n"
  "\n"
  "data: {\"id\":\"chatcmpl-88\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,"
  "\"model\":\"llama3.2\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,"
  "\"delta\":{\"role\":\"assistant\",\"content\":\"lo\"},\"finish_reason\":null}]}\n"
  "\n"
  "data: {\"id\":\"chatcmpl-88\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,"
  "\"model\":\"llama3.2\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,"
  "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":\"stop\"}]}\n"
  "\n"
  "data: [DONE]\n"
  "\n";

//  Ollama /v1 when the model run fails: the stream just stops.
static const char s_ollama_cut[] =
  "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,"
  "\"model\":\"llama3.2\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,"
  "\"delta\":{\"role\":\"assistant\",\"content\":\"{\\\"act\"},\"finish_reason\":null}]}\n"
  "\n"
  "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1735689600,"
  "\"model\":\"llama3.2\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,"
  "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n"
  "\n";

//  Ollama /api/chat: NDJSON, usage on the done line.
static const char s_ollama_native[] =
  "{\"model\":\"llama3.2\",\"created_at\":\"2025-01-01T00:00:00.1Z\",\"message\":{\"role\":"
  "\"assistant\",\"content\":\"Hel\"},\"done\":false}\n"
  "{\"model\":\"llama3.2\",\"created_at\":\"2025-01-01T00:00:00.2Z\",\"message\":{\"role\":"
  "\"assistant\",\"content\":\"lo\"},\"done\":false}\n"
  "{\"model\":\"llama3.2\",\"created_at\":\"2025-01-01T00:00:00.3Z\",\"message\":{\"role\":"
  "\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"total_duration\":"
  "5191566416,\"load_duration\":2154458,\"prompt_eval_count\":26,\"prompt_eval_duration\":"
  "383809000,\"eval_count\":298,\"eval_duration\":4799921000}\n";

//  The same with the prompt served from cache: prompt_eval_count left out (omitempty).
static const char s_ollama_native_cached[] =
  "{\"model\":\"llama3.2\",\"created_at\":\"2025-01-01T00:00:00.1Z\",\"message\":{\"role\":"
  "\"assistant\",\"content\":\"ok\"},\"done\":false}\n"
  "{\"model\":\"llama3.2\",\"created_at\":\"2025-01-01T00:00:00.3Z\",\"message\":{\"role\":"
  "\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"length\",\"total_duration\":"
  "91566416,\"load_duration\":2154458,\"eval_count\":1,\"eval_duration\":99921000}\n";

//  TGI: "data:" without a space, usage null on every chunk, stop_sequence.
static const char s_tgi[] =
  "data:{\"object\":\"chat.completion.chunk\",\"id\":\"\",\"created\":1735689600,\"model\":"
  "\"meta-llama/Llama-3.1-8B-Instruct\",\"system_fingerprint\":\"3.0.1-sha-8f326c9\","
  "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},"
  "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
  "\n"
  ":\n"
  "\n"
  "data:{\"object\":\"chat.completion.chunk\",\"id\":\"\",\"created\":1735689600,\"model\":"
  "\"meta-llama/Llama-3.1-8B-Instruct\",\"system_fingerprint\":\"3.0.1-sha-8f326c9\","
  "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"lo\"},"
  "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
  "\n"
  "data:{\"object\":\"chat.completion.chunk\",\"id\":\"\",\"created\":1735689600,\"model\":"
  "\"meta-llama/Llama-3.1-8B-Instruct\",\"system_fingerprint\":\"3.0.1-sha-8f326c9\","
  "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
  "\"logprobs\":null,\"finish_reason\":\"stop_sequence\"}],\"usage\":null}\n"
  "\n"
  "data:{\"object\":\"chat.completion.chunk\",\"id\":\"\",\"created\":1735689600,\"model\":"
  "\"meta-llama/Llama-3.1-8B-Instruct\",\"system_fingerprint\":\"3.0.1-sha-8f326c9\","
  "\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":3,\"total_tokens\":43}}\n"
  "\n"
  "data:[DONE]\n"
  "\n";

//  TGI: a validation error after the request was accepted (HTTP 200).
static const char s_tgi_error[] =
  "data:{\"error\":{\"message\":\"Input validation error: `inputs` tokens + `max_new_tokens` "
  "must be <= 4096. Given: 4000 `inputs` tokens and 200 `max_new_tokens`\","
  "\"http_status_code\":422}}\n"
  "\n"
  "data:[DONE]\n"
  "\n";

//  --- names, paths, forms ------------------------------------------------------------

static void
test_names (void **state)
{
    (void) state;
    assert_string_equal (mesh_wire_flavor_name (MESH_FLAVOR_AUTO), "auto");
    assert_string_equal (mesh_wire_flavor_name (MESH_FLAVOR_OPENAI), "openai");
    assert_string_equal (mesh_wire_flavor_name (MESH_FLAVOR_LLAMACPP), "llamacpp");
    assert_string_equal (mesh_wire_flavor_name (MESH_FLAVOR_VLLM), "vllm");
    assert_string_equal (mesh_wire_flavor_name (MESH_FLAVOR_OLLAMA), "ollama");
    assert_string_equal (mesh_wire_flavor_name (MESH_FLAVOR_OLLAMA_NATIVE), "ollama-native");
    assert_string_equal (mesh_wire_flavor_name (MESH_FLAVOR_TGI), "tgi");
    assert_string_equal (mesh_wire_path (MESH_FLAVOR_OLLAMA_NATIVE), "/api/chat");
    assert_string_equal (mesh_wire_path (MESH_FLAVOR_OLLAMA), "/v1/chat/completions");
    assert_string_equal (mesh_wire_path (MESH_FLAVOR_TGI), "/v1/chat/completions");
    assert_string_equal (mesh_wire_path (MESH_FLAVOR_AUTO), "/v1/chat/completions");
    assert_string_equal (mesh_wire_schema_name (MESH_WIRE_SCHEMA_NONE), "none");
    assert_string_equal (mesh_wire_schema_name (MESH_WIRE_SCHEMA_OPENAI), "json_schema");
    assert_string_equal (mesh_wire_schema_name (MESH_WIRE_SCHEMA_TGI), "tgi_json");
    assert_string_equal (mesh_wire_schema_name (MESH_WIRE_SCHEMA_FORMAT), "format");
    assert_int_equal (mesh_wire_schema_default (MESH_FLAVOR_OLLAMA_NATIVE),
                      MESH_WIRE_SCHEMA_FORMAT);
    assert_int_equal (mesh_wire_schema_default (MESH_FLAVOR_TGI), MESH_WIRE_SCHEMA_TGI);
    assert_int_equal (mesh_wire_schema_default (MESH_FLAVOR_OLLAMA), MESH_WIRE_SCHEMA_OPENAI);
    assert_int_equal (mesh_wire_schema_default (MESH_FLAVOR_LLAMACPP), MESH_WIRE_SCHEMA_OPENAI);
    assert_int_equal (mesh_wire_schema_default (MESH_FLAVOR_AUTO), MESH_WIRE_SCHEMA_OPENAI);
}

//  --- request bodies ------------------------------------------------------------------

static void
test_request_openai_stream (void **state)
{
    (void) state;
    json_t *messages = s_messages (), *schema = s_schema ();
    mesh_wire_request_t request = s_request (messages, schema, MESH_WIRE_SCHEMA_OPENAI, true);
    mesh_backend_flavor_t flavors[] = { MESH_FLAVOR_OPENAI, MESH_FLAVOR_LLAMACPP,
                                        MESH_FLAVOR_VLLM, MESH_FLAVOR_OLLAMA, MESH_FLAVOR_AUTO };
    for (size_t i = 0; i < sizeof flavors / sizeof flavors[0]; i++) {
        json_t *body = mesh_wire_request (flavors[i], &request);
        assert_non_null (body);
        assert_string_equal (s_get_string (body, "model"), "qwen2.5:7b");
        assert_true (json_equal (json_object_get (body, "messages"), messages));
        assert_int_equal (json_integer_value (json_object_get (body, "max_tokens")), 256);
        assert_true (json_real_value (json_object_get (body, "temperature")) == 0.2);
        assert_true (json_is_true (json_object_get (body, "stream")));
        json_t *options = json_object_get (body, "stream_options");
        assert_true (json_is_true (json_object_get (options, "include_usage")));
        assert_int_equal (json_integer_value (json_object_get (body, "seed")), 12345);
        json_t *stop = json_object_get (body, "stop");
        assert_true (json_is_array (stop));
        assert_int_equal (json_array_size (stop), 2);
        assert_string_equal (json_string_value (json_array_get (stop, 0)), "</proposal>");
        assert_string_equal (json_string_value (json_array_get (stop, 1)), "\n\n\n");
        json_t *format = json_object_get (body, "response_format");
        assert_string_equal (s_get_string (format, "type"), "json_schema");
        json_t *inner = json_object_get (format, "json_schema");
        assert_string_equal (s_get_string (inner, "name"), "proposal");
        assert_true (json_equal (json_object_get (inner, "schema"), schema));
        assert_true (json_is_true (json_object_get (inner, "strict")));
        //  Never sent on these flavours.
        assert_null (json_object_get (body, "top_p"));
        assert_null (json_object_get (body, "keep_alive"));
        assert_null (json_object_get (body, "options"));
        assert_null (json_object_get (body, "format"));
        json_decref (body);
    }
    //  AUTO is openai.
    json_t *a = mesh_wire_request (MESH_FLAVOR_AUTO, &request);
    json_t *b = mesh_wire_request (MESH_FLAVOR_OPENAI, &request);
    assert_true (json_equal (a, b));
    json_decref (a);
    json_decref (b);
    json_decref (messages);
    json_decref (schema);
}

static void
test_request_not_streamed (void **state)
{
    (void) state;
    json_t *messages = s_messages ();
    mesh_wire_request_t request = s_request (messages, NULL, MESH_WIRE_SCHEMA_OPENAI, false);
    request.model = NULL;
    request.has_seed = false;
    request.stop_count = 0;
    json_t *body = mesh_wire_request (MESH_FLAVOR_VLLM, &request);
    //  vLLM answers 400 to stream_options without stream: never sent then.
    assert_true (json_is_false (json_object_get (body, "stream")));
    assert_null (json_object_get (body, "stream_options"));
    assert_null (json_object_get (body, "model"));
    assert_null (json_object_get (body, "seed"));
    assert_null (json_object_get (body, "stop"));
    assert_null (json_object_get (body, "response_format"));      //  no schema
    json_decref (body);
    //  A schema with form NONE is not sent either.
    json_t *schema = s_schema ();
    request.schema = schema;
    request.schema_form = MESH_WIRE_SCHEMA_NONE;
    body = mesh_wire_request (MESH_FLAVOR_OPENAI, &request);
    assert_null (json_object_get (body, "response_format"));
    assert_null (json_object_get (body, "format"));
    json_decref (body);
    //  One stop string is still an array; seeds within 0 .. 2^31-1 go as they are.
    request.stop_count = 1;
    request.has_seed = true;
    request.seed = 2147483647;
    body = mesh_wire_request (MESH_FLAVOR_LLAMACPP, &request);
    assert_true (json_is_array (json_object_get (body, "stop")));
    assert_int_equal (json_array_size (json_object_get (body, "stop")), 1);
    assert_int_equal (json_integer_value (json_object_get (body, "seed")), 2147483647);
    json_decref (body);
    request.seed = 0;
    body = mesh_wire_request (MESH_FLAVOR_LLAMACPP, &request);
    assert_int_equal (json_integer_value (json_object_get (body, "seed")), 0);
    json_decref (body);
    json_decref (schema);
    json_decref (messages);
}

static void
test_request_tgi (void **state)
{
    (void) state;
    json_t *messages = s_messages (), *schema = s_schema ();
    mesh_wire_request_t request = s_request (messages, schema, MESH_WIRE_SCHEMA_TGI, true);
    request.model = NULL;
    request.stop_count = 1;
    json_t *body = mesh_wire_request (MESH_FLAVOR_TGI, &request);
    //  Any model name but "tgi" is taken as a LoRA adapter id.
    assert_string_equal (s_get_string (body, "model"), "tgi");
    json_t *format = json_object_get (body, "response_format");
    assert_int_equal (json_object_size (format), 2);
    assert_string_equal (s_get_string (format, "type"), "json");
    assert_true (json_equal (json_object_get (format, "value"), schema));
    assert_null (json_object_get (format, "json_schema"));
    json_t *stop = json_object_get (body, "stop");
    assert_true (json_is_array (stop));
    assert_int_equal (json_array_size (stop), 1);
    assert_null (json_object_get (body, "top_p"));         //  TGI refuses top_p 1.0
    assert_true (json_is_true (json_object_get (json_object_get (body, "stream_options"),
                                                "include_usage")));
    assert_int_equal (json_integer_value (json_object_get (body, "max_tokens")), 256);
    json_decref (body);

    //  A model that is named is sent as named.
    request.model = "meta-llama/Llama-3.1-8B-Instruct";
    body = mesh_wire_request (MESH_FLAVOR_TGI, &request);
    assert_string_equal (s_get_string (body, "model"), "meta-llama/Llama-3.1-8B-Instruct");
    json_decref (body);

    //  The OpenAI form on tgi is built as asked (the caller decides).
    request.schema_form = MESH_WIRE_SCHEMA_OPENAI;
    body = mesh_wire_request (MESH_FLAVOR_TGI, &request);
    format = json_object_get (body, "response_format");
    assert_string_equal (s_get_string (format, "type"), "json_schema");
    assert_non_null (json_object_get (format, "json_schema"));
    assert_null (json_object_get (format, "value"));
    json_decref (body);

    //  And TGI's form on another flavour.
    request.schema_form = MESH_WIRE_SCHEMA_TGI;
    body = mesh_wire_request (MESH_FLAVOR_LLAMACPP, &request);
    assert_string_equal (s_get_string (json_object_get (body, "response_format"), "type"),
                         "json");
    json_decref (body);
    json_decref (messages);
    json_decref (schema);
}

static void
test_request_ollama_native (void **state)
{
    (void) state;
    json_t *messages = s_messages (), *schema = s_schema ();
    mesh_wire_request_t request = s_request (messages, schema, MESH_WIRE_SCHEMA_FORMAT, false);
    json_t *body = mesh_wire_request (MESH_FLAVOR_OLLAMA_NATIVE, &request);
    assert_non_null (body);
    assert_string_equal (s_get_string (body, "model"), "qwen2.5:7b");
    assert_true (json_equal (json_object_get (body, "messages"), messages));
    //  stream defaults to true on /api/chat: false is said.
    assert_true (json_is_false (json_object_get (body, "stream")));
    assert_true (json_equal (json_object_get (body, "format"), schema));
    json_t *options = json_object_get (body, "options");
    assert_int_equal (json_integer_value (json_object_get (options, "num_predict")), 256);
    assert_true (json_real_value (json_object_get (options, "temperature")) == 0.2);
    assert_int_equal (json_integer_value (json_object_get (options, "seed")), 12345);
    json_t *stop = json_object_get (options, "stop");
    assert_true (json_is_array (stop));
    assert_int_equal (json_array_size (stop), 2);
    assert_string_equal (s_get_string (body, "keep_alive"), "5m");
    //  Nothing of the OpenAI shape.
    assert_null (json_object_get (body, "max_tokens"));
    assert_null (json_object_get (body, "temperature"));
    assert_null (json_object_get (body, "seed"));
    assert_null (json_object_get (body, "stop"));
    assert_null (json_object_get (body, "stream_options"));
    assert_null (json_object_get (body, "response_format"));
    assert_null (json_object_get (body, "top_p"));
    json_decref (body);

    //  Streaming; no seed, stop or keep_alive; "-1" (forever) is not a Go duration
    //  string, so it goes as the number Ollama reads as seconds.
    request.stream = true;
    request.has_seed = false;
    request.stop_count = 0;
    request.keep_alive = "-1";
    body = mesh_wire_request (MESH_FLAVOR_OLLAMA_NATIVE, &request);
    assert_true (json_is_true (json_object_get (body, "stream")));
    assert_null (json_object_get (body, "stream_options"));
    options = json_object_get (body, "options");
    assert_null (json_object_get (options, "seed"));
    assert_null (json_object_get (options, "stop"));
    assert_true (json_is_integer (json_object_get (body, "keep_alive")));
    assert_int_equal (json_integer_value (json_object_get (body, "keep_alive")), -1);
    json_decref (body);

    //  keep_alive NULL: not sent; keep_alive is never sent on the OpenAI layer.
    request.keep_alive = NULL;
    body = mesh_wire_request (MESH_FLAVOR_OLLAMA_NATIVE, &request);
    assert_null (json_object_get (body, "keep_alive"));
    json_decref (body);
    request.keep_alive = "5m";
    request.schema_form = MESH_WIRE_SCHEMA_OPENAI;
    body = mesh_wire_request (MESH_FLAVOR_OLLAMA, &request);
    assert_null (json_object_get (body, "keep_alive"));
    assert_null (json_object_get (body, "format"));
    json_decref (body);

    //  FORMAT asked for on the OpenAI layer: sent as asked, top-level format.
    request.schema_form = MESH_WIRE_SCHEMA_FORMAT;
    body = mesh_wire_request (MESH_FLAVOR_OLLAMA, &request);
    assert_true (json_equal (json_object_get (body, "format"), schema));
    assert_null (json_object_get (body, "response_format"));
    json_decref (body);
    json_decref (messages);
    json_decref (schema);
}

//  --- streams ----------------------------------------------------------------------------

static void
test_stream_llamacpp (void **state)
{
    (void) state;
    s_feed_t feed;
    mesh_wire_answer_t a = s_read (MESH_FLAVOR_LLAMACPP, s_llamacpp, 4096, 0, 0, &feed);
    assert_false (a.malformed);
    assert_false (a.error);
    assert_string_equal (a.content, "{\"action\": \"scale_out\"}");
    assert_int_equal (a.content_len, strlen (a.content));
    assert_true (a.content_seen);
    assert_false (a.content_overflow);
    assert_null (a.reasoning);
    assert_string_equal (a.model, "qwen2.5-7b-instruct-q4_k_m.gguf");
    assert_string_equal (a.finish_reason, "stop");
    assert_true (a.finished);
    assert_true (a.done);
    assert_int_equal (a.prompt_tokens, 143);
    assert_int_equal (a.completion_tokens, 6);
    assert_int_equal (a.choices, 1);
    assert_int_equal (a.events, 6);             //  comments are not events
    assert_int_equal (a.token_events, 2);
    assert_int_equal (feed.tokens, 2);
    assert_false (feed.failed);
    mesh_wire_answer_clear (&a);
    s_expect_any_split (MESH_FLAVOR_LLAMACPP, s_llamacpp, 4096);
}

static void
test_stream_vllm (void **state)
{
    (void) state;
    mesh_wire_answer_t a = s_read (MESH_FLAVOR_VLLM, s_vllm, 4096, 0, 0, NULL);
    assert_false (a.malformed);
    assert_string_equal (a.content, "Hello");
    assert_string_equal (a.finish_reason, "stop");
    assert_true (a.finished);
    assert_true (a.done);
    assert_string_equal (a.model, "Qwen/Qwen2.5-7B-Instruct");
    assert_int_equal (a.prompt_tokens, 31);
    assert_int_equal (a.completion_tokens, 2);
    assert_int_equal (a.token_events, 2);       //  the first chunk's "" is no token
    mesh_wire_answer_clear (&a);
    s_expect_any_split (MESH_FLAVOR_VLLM, s_vllm, 4096);
}

static void
test_stream_ollama (void **state)
{
    (void) state;
    const char *streams[] = { s_ollama_new, s_ollama_old };
    for (int i = 0; i < 2; i++) {
        mesh_wire_answer_t a = s_read (MESH_FLAVOR_OLLAMA, streams[i], 4096, 0, 0, NULL);
        assert_false (a.malformed);
        assert_false (a.error);
        assert_string_equal (a.content, "Hello");
        assert_string_equal (a.finish_reason, "stop");
        assert_true (a.finished);
        assert_true (a.done);
        assert_string_equal (a.model, "llama3.2");
        assert_int_equal (a.prompt_tokens, i == 0 ? 26 : -1);
        assert_int_equal (a.completion_tokens, i == 0 ? 2 : -1);
        assert_int_equal (a.choices, 1);
        mesh_wire_answer_clear (&a);
        s_expect_any_split (MESH_FLAVOR_OLLAMA, streams[i], 4096);
    }
    //  A failure in the model run: the stream ends without a finish or [DONE].
    mesh_wire_answer_t a = s_read (MESH_FLAVOR_OLLAMA, s_ollama_cut, 4096, 0, 0, NULL);
    assert_false (a.malformed);
    assert_false (a.error);
    assert_string_equal (a.content, "{\"act");
    assert_false (a.done);
    assert_false (a.finished);
    assert_null (a.finish_reason);
    mesh_wire_answer_clear (&a);
    s_expect_any_split (MESH_FLAVOR_OLLAMA, s_ollama_cut, 4096);
}

static void
test_stream_ollama_native (void **state)
{
    (void) state;
    s_feed_t feed;
    mesh_wire_answer_t a = s_read (MESH_FLAVOR_OLLAMA_NATIVE, s_ollama_native, 4096, 0, 0,
                                   &feed);
    assert_false (a.malformed);
    assert_string_equal (a.content, "Hello");
    assert_true (a.done);
    assert_true (a.finished);
    assert_string_equal (a.finish_reason, "stop");
    assert_int_equal (a.prompt_tokens, 26);
    assert_int_equal (a.completion_tokens, 298);
    assert_string_equal (a.model, "llama3.2");
    assert_int_equal (a.events, 3);
    assert_int_equal (a.token_events, 2);
    assert_int_equal (feed.tokens, 2);
    mesh_wire_answer_clear (&a);
    s_expect_any_split (MESH_FLAVOR_OLLAMA_NATIVE, s_ollama_native, 4096);

    //  prompt_eval_count left out: unknown, not 0.
    a = s_read (MESH_FLAVOR_OLLAMA_NATIVE, s_ollama_native_cached, 4096, 0, 0, NULL);
    assert_int_equal (a.prompt_tokens, -1);
    assert_int_equal (a.completion_tokens, 1);
    assert_string_equal (a.finish_reason, "length");
    assert_true (a.done);
    mesh_wire_answer_clear (&a);

    //  Not done: no finish.
    a = s_read (MESH_FLAVOR_OLLAMA_NATIVE,
                "{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"x\"},"
                "\"done\":false}\n", 4096, 0, 0, NULL);
    assert_false (a.done);
    assert_false (a.finished);
    mesh_wire_answer_clear (&a);

    //  An error line mid-stream (the status stays 200).
    a = s_read (MESH_FLAVOR_OLLAMA_NATIVE,
                "{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"x\"},"
                "\"done\":false}\n{\"error\":\"an error was encountered while running the "
                "model: unexpected EOF\"}\n", 4096, 0, 0, &feed);
    assert_true (a.error);
    assert_true (feed.failed);
    assert_string_equal (a.error_message,
                         "an error was encountered while running the model: unexpected EOF");
    assert_null (a.error_type);
    assert_int_equal (a.error_status, 0);
    mesh_wire_answer_clear (&a);

    //  Thinking models: message.thinking is reasoning, and counts as a token.
    a = s_read (MESH_FLAVOR_OLLAMA_NATIVE,
                "{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"Hmm\"},"
                "\"done\":false}\n"
                "{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\", ok\"},"
                "\"done\":false}\n"
                "{\"message\":{\"role\":\"assistant\",\"content\":\"{}\"},\"done\":false}\n",
                4096, 0, 0, &feed);
    assert_string_equal (a.reasoning, "Hmm, ok");
    assert_int_equal (a.reasoning_len, 7);
    assert_int_equal (a.reasoning_bytes, 7);
    assert_string_equal (a.content, "{}");
    assert_int_equal (feed.tokens, 3);
    mesh_wire_answer_clear (&a);

    //  SSE on the NDJSON flavour is not its format.
    a = s_read (MESH_FLAVOR_OLLAMA_NATIVE, s_vllm, 4096, 0, 0, &feed);
    assert_true (a.malformed);
    assert_true (feed.failed);
    assert_non_null (strstr (a.malformed_detail, "line 1 is not a JSON object"));
    mesh_wire_answer_clear (&a);
}

static void
test_stream_tgi (void **state)
{
    (void) state;
    mesh_wire_answer_t a = s_read (MESH_FLAVOR_TGI, s_tgi, 4096, 0, 0, NULL);
    assert_false (a.malformed);
    assert_false (a.error);
    assert_string_equal (a.content, "Hello");
    assert_string_equal (a.finish_reason, "stop_sequence");
    assert_true (a.finished);
    assert_true (a.done);
    assert_string_equal (a.model, "meta-llama/Llama-3.1-8B-Instruct");
    assert_int_equal (a.prompt_tokens, 40);     //  the usage: null chunks do not erase it
    assert_int_equal (a.completion_tokens, 3);
    mesh_wire_answer_clear (&a);
    s_expect_any_split (MESH_FLAVOR_TGI, s_tgi, 4096);

    //  The in-stream error, and its class.
    s_feed_t feed;
    a = s_read (MESH_FLAVOR_TGI, s_tgi_error, 4096, 0, 0, &feed);
    assert_true (a.error);
    assert_true (feed.failed);
    assert_false (a.malformed);
    assert_string_equal (a.error_message,
                         "Input validation error: `inputs` tokens + `max_new_tokens` must be "
                         "<= 4096. Given: 4000 `inputs` tokens and 200 `max_new_tokens`");
    assert_int_equal (a.error_status, 422);
    assert_null (a.error_type);
    assert_true (a.done);                       //  [DONE] followed; still read
    assert_int_equal (mesh_wire_classify (0, a.error_message, a.error_type),
                      MESH_FAIL_MODEL_CONTEXT_OVERFLOW);
    mesh_wire_answer_clear (&a);
    s_expect_any_split (MESH_FLAVOR_TGI, s_tgi_error, 4096);
}

static void
test_stream_errors (void **state)
{
    (void) state;
    //  Current llama.cpp and vLLM: an error data event, then [DONE].
    s_feed_t feed;
    mesh_wire_answer_t a = s_read (
      MESH_FLAVOR_LLAMACPP,
      "data: {\"error\":{\"code\":500,\"message\":\"Failed to parse input\",\"type\":"
      "\"server_error\"}}\n\ndata: [DONE]\n\n", 4096, 0, 0, &feed);
    assert_true (a.error);
    assert_true (feed.failed);
    assert_string_equal (a.error_message, "Failed to parse input");
    assert_string_equal (a.error_type, "server_error");
    assert_int_equal (a.error_status, 500);
    mesh_wire_answer_clear (&a);

    //  llama.cpp before September 2025: an "error:" line, the object unwrapped ...
    a = s_read (MESH_FLAVOR_LLAMACPP,
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n"
                "error: {\"code\":400,\"message\":\"the request exceeds the available context "
                "size, try increasing the context size or enable context shift\",\"type\":"
                "\"invalid_request_error\"}\n\n", 4096, 0, 0, &feed);
    assert_true (a.error);
    assert_true (feed.failed);
    assert_int_equal (a.error_status, 400);
    assert_string_equal (a.error_type, "invalid_request_error");
    assert_int_equal (mesh_wire_classify (a.error_status, a.error_message, a.error_type),
                      MESH_FAIL_MODEL_CONTEXT_OVERFLOW);
    assert_string_equal (a.content, "x");
    mesh_wire_answer_clear (&a);
    //  ... or wrapped, or not JSON at all.
    a = s_read (MESH_FLAVOR_LLAMACPP,
                "error: {\"error\":{\"code\":503,\"message\":\"Loading model\",\"type\":"
                "\"unavailable_error\"}}\n", 4096, 0, 0, NULL);
    assert_string_equal (a.error_message, "Loading model");
    assert_int_equal (a.error_status, 503);
    mesh_wire_answer_clear (&a);
    a = s_read (MESH_FLAVOR_LLAMACPP, "error: slot unavailable\n", 4096, 0, 0, NULL);
    assert_true (a.error);
    assert_string_equal (a.error_message, "slot unavailable");
    mesh_wire_answer_clear (&a);

    //  The first error is kept.
    a = s_read (MESH_FLAVOR_VLLM,
                "data: {\"error\":{\"message\":\"first\",\"type\":\"A\",\"code\":500}}\n"
                "data: {\"error\":{\"message\":\"second\",\"type\":\"B\",\"code\":400}}\n",
                4096, 0, 0, NULL);
    assert_string_equal (a.error_message, "first");
    assert_string_equal (a.error_type, "A");
    mesh_wire_answer_clear (&a);

    //  TGI's string shape in a stream, with its type.
    a = s_read (MESH_FLAVOR_TGI,
                "data:{\"error\":\"Model is overloaded\",\"error_type\":\"overloaded\"}\n",
                4096, 0, 0, NULL);
    assert_string_equal (a.error_message, "Model is overloaded");
    assert_string_equal (a.error_type, "overloaded");
    assert_int_equal (mesh_wire_classify (0, a.error_message, a.error_type),
                      MESH_FAIL_MODEL_OVERLOADED);
    mesh_wire_answer_clear (&a);

    //  "error": null is no error.
    a = s_read (MESH_FLAVOR_OPENAI,
                "data: {\"error\":null,\"choices\":[{\"index\":0,\"delta\":"
                "{\"content\":\"y\"}}]}\n",
                4096, 0, 0, &feed);
    assert_false (a.error);
    assert_false (feed.failed);
    assert_string_equal (a.content, "y");
    mesh_wire_answer_clear (&a);
}

static void
test_stream_crlf (void **state)
{
    (void) state;
    const char *streams[] = { s_llamacpp, s_vllm, s_ollama_new, s_tgi };
    for (int i = 0; i < 4; i++) {
        char *crlf = s_crlf (streams[i]);
        mesh_wire_answer_t a = s_read (MESH_FLAVOR_OPENAI, streams[i], 4096, 0, 0, NULL);
        mesh_wire_answer_t b = s_read (MESH_FLAVOR_OPENAI, crlf, 4096, 0, 0, NULL);
        s_same (&a, &b);
        assert_false (b.malformed);
        assert_true (b.done);
        mesh_wire_answer_clear (&a);
        mesh_wire_answer_clear (&b);
        s_expect_any_split (MESH_FLAVOR_OPENAI, crlf, 4096);
        free (crlf);
    }
    char *crlf = s_crlf (s_ollama_native);
    mesh_wire_answer_t a = s_read (MESH_FLAVOR_OLLAMA_NATIVE, crlf, 4096, 0, 0, NULL);
    assert_false (a.malformed);
    assert_string_equal (a.content, "Hello");
    assert_true (a.done);
    mesh_wire_answer_clear (&a);
    free (crlf);
}

//  A data line whose payload is exactly PAYLOAD bytes: a chunk with a padded content
//  of *CONTENT bytes; then [DONE].  Caller frees.
static char *
s_long_line (size_t payload, const char *eol, size_t *content)
{
    const char *head = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"";
    const char *tail = "\"}}]}";
    size_t fixed = strlen ("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"") + strlen (tail);
    size_t pad = payload - fixed;
    if (content)
        *content = pad;
    char *line = malloc (strlen (head) + pad + strlen (tail) + strlen (eol) + 64);
    char *p = line + sprintf (line, "%s", head);
    memset (p, 'a', pad);
    p += pad;
    sprintf (p, "%s%sdata: [DONE]%s", tail, eol, eol);
    return line;
}

static void
test_stream_line_limit (void **state)
{
    (void) state;
    //  A line of exactly MESH_WIRE_LINE_MAX bytes ("data: " included) is read, with "\n"
    //  or "\r\n", whole or in pieces.
    const char *eols[] = { "\n", "\r\n" };
    for (int i = 0; i < 2; i++) {
        size_t content = 0;
        char *text = s_long_line (MESH_WIRE_LINE_MAX - 6, eols[i], &content);
        int splits[] = { 0, 4096, 65536 };
        for (int k = 0; k < 3; k++) {
            mesh_wire_answer_t a = s_read (MESH_FLAVOR_VLLM, text, 2 * MESH_WIRE_LINE_MAX,
                                           splits[k], 0, NULL);
            assert_false (a.malformed);
            assert_true (a.done);
            assert_int_equal (a.content_len, content);
            mesh_wire_answer_clear (&a);
        }
        free (text);
    }
    //  One byte more: malformed, skipped to its newline; what follows is still read.
    char *text = s_long_line (MESH_WIRE_LINE_MAX - 5, "\n", NULL);
    int splits[] = { 0, 1000, 65536 };
    for (int k = 0; k < 3; k++) {
        s_feed_t feed;
        mesh_wire_answer_t a = s_read (MESH_FLAVOR_VLLM, text, 2 * MESH_WIRE_LINE_MAX,
                                       splits[k], 0, &feed);
        assert_true (a.malformed);
        assert_true (feed.failed);
        assert_non_null (strstr (a.malformed_detail, "over the limit of 1048576"));
        assert_null (a.content);
        assert_true (a.done);
        mesh_wire_answer_clear (&a);
    }
    free (text);
    //  An over-long NDJSON line.
    size_t big = MESH_WIRE_LINE_MAX + 100;
    char *ndjson = malloc (big + 64);
    memset (ndjson, ' ', big);
    strcpy (ndjson + big, "\n{\"done\":true}\n");
    mesh_wire_answer_t a = s_read (MESH_FLAVOR_OLLAMA_NATIVE, ndjson, 4096, 8192, 0, NULL);
    assert_true (a.malformed);
    assert_true (a.done);
    mesh_wire_answer_clear (&a);
    //  An over-long last line without a newline.
    ndjson[big] = 0;
    a = s_read (MESH_FLAVOR_OLLAMA_NATIVE, ndjson, 4096, 8192, 0, NULL);
    assert_true (a.malformed);
    mesh_wire_answer_clear (&a);
    free (ndjson);
}

static void
test_stream_malformed (void **state)
{
    (void) state;
    //  A data line that is not JSON; feed keeps returning -1 afterwards.
    mesh_wire_stream_t stream;
    mesh_wire_stream_init (&stream, MESH_FLAVOR_OPENAI, 4096);
    const char *bad = "data: hello world\n\n";
    assert_int_equal (mesh_wire_stream_feed (&stream, bad, strlen (bad)), -1);
    assert_true (stream.answer.malformed);
    assert_non_null (strstr (stream.answer.malformed_detail, "event 1 is not a JSON object"));
    assert_non_null (strstr (stream.answer.malformed_detail, "hello world"));
    const char *good = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n";
    assert_int_equal (mesh_wire_stream_feed (&stream, good, strlen (good)), -1);
    assert_int_equal (mesh_wire_stream_feed (&stream, "", 0), -1);
    //  Only the first problem is described.
    assert_int_equal (mesh_wire_stream_feed (&stream, "data: [1]\n", 10), -1);
    assert_non_null (strstr (stream.answer.malformed_detail, "event 1"));
    mesh_wire_stream_clear (&stream);

    struct {
        const char *text;
        const char *detail;
    } cases[] = {
        { "data: [1,2]\n", "event 1 is not a JSON object (5 bytes; an array): [1,2]" },
        { "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\\u0000b\"}}]}\n",
          "choices[0].delta.content contains a NUL character" },
        { "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":7}}]}\n",
          "choices[0].delta.content is a number, not a string" },
        { "data: {\"choices\":{\"index\":0}}\n", "choices is an object, not an array" },
        { "data: {\"choices\":[\"x\"]}\n", "choices[0] is a string, not an object" },
        { "data: {\"choices\":[{\"index\":0,\"delta\":\"x\"}]}\n",
          "choices[0].delta is a string, not an object" },
        { "<html><body>502 Bad Gateway</body></html>\n",
          "not server-sent events: <html><body>502 Bad Gateway" },
        { "data: {\"a\":1\n", "event 1 is not a JSON object" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_feed_t feed;
        mesh_wire_answer_t a = s_read (MESH_FLAVOR_OPENAI, cases[i].text, 4096, 0, 0, &feed);
        assert_true (a.malformed);
        assert_true (feed.failed);
        assert_non_null (a.malformed_detail);
        if (!strstr (a.malformed_detail, cases[i].detail))
            fail_msg ("case %zu: \"%s\" lacks \"%s\"", i, a.malformed_detail, cases[i].detail);
        assert_null (strpbrk (a.malformed_detail, "\r\n"));
        mesh_wire_answer_clear (&a);
    }
    //  A NUL in reasoning is not parsed, only kept: a space.
    mesh_wire_answer_t a = s_read (
      MESH_FLAVOR_VLLM,
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"a\\u0000b\"}}]}\n",
      4096, 0, 0, NULL);
    assert_false (a.malformed);
    assert_string_equal (a.reasoning, "a b");
    mesh_wire_answer_clear (&a);
}

static void
test_stream_sse_details (void **state)
{
    (void) state;
    //  Fields that are not data are ignored; "data:" with and without a space; [DONE]
    //  is the whole trimmed payload; a content of "[DONE]" is content.
    const char *text =
      "retry: 3000\n"
      "id: 7\n"
      "event: message\n"
      "data:{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"[DONE]\"}}]}\n"
      "\n"
      "data:    {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" x\"}}]}   \n"
      "data\n"
      "data: \n"
      "data:  [DONE]  \n";
    mesh_wire_answer_t a = s_read (MESH_FLAVOR_OPENAI, text, 4096, 0, 0, NULL);
    assert_false (a.malformed);
    assert_string_equal (a.content, "[DONE] x");
    assert_true (a.done);
    assert_int_equal (a.events, 3);
    mesh_wire_answer_clear (&a);
    s_expect_any_split (MESH_FLAVOR_OPENAI, text, 4096);

    //  "[DONE]" inside JSON is not the end.
    a = s_read (MESH_FLAVOR_OPENAI, "data: [DONE] x\n", 4096, 0, 0, NULL);
    assert_false (a.done);
    assert_true (a.malformed);
    mesh_wire_answer_clear (&a);

    //  The last line without its newline is read when the body ends.
    a = s_read (MESH_FLAVOR_OPENAI,
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},"
                "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]", 4096, 0, 0, NULL);
    assert_true (a.done);
    assert_true (a.finished);
    mesh_wire_answer_clear (&a);

    //  The model: the first non-empty one.
    a = s_read (MESH_FLAVOR_OPENAI,
                "data: {\"model\":\"\",\"choices\":[]}\n"
                "data: {\"model\":\"m1\",\"choices\":[]}\n"
                "data: {\"model\":\"m2\",\"choices\":[]}\n", 4096, 0, 0, NULL);
    assert_string_equal (a.model, "m1");
    mesh_wire_answer_clear (&a);

    //  A model name is one line.
    a = s_read (MESH_FLAVOR_OPENAI, "data: {\"model\":\"a\\nb\\u0000c\",\"choices\":[]}\n",
                4096, 0, 0, NULL);
    assert_string_equal (a.model, "a b c");
    mesh_wire_answer_clear (&a);
}

static void
test_stream_feed_returns (void **state)
{
    (void) state;
    mesh_wire_stream_t stream;
    mesh_wire_stream_init (&stream, MESH_FLAVOR_VLLM, 4096);
    const char *role = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                       "\"content\":\"\"}}]}\n\n";
    assert_int_equal (mesh_wire_stream_feed (&stream, role, strlen (role)), 0);
    assert_int_equal (mesh_wire_stream_feed (&stream, ": keep-alive\n\n", 14), 0);
    const char *two = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
                      "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"r\"}}]}\n\n";
    assert_int_equal (mesh_wire_stream_feed (&stream, two, strlen (two)), 2);
    //  Half a line: nothing yet; the rest: one.
    const char *one = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n";
    assert_int_equal (mesh_wire_stream_feed (&stream, one, 20), 0);
    assert_int_equal (mesh_wire_stream_feed (&stream, one + 20, strlen (one) - 20), 1);
    assert_int_equal (mesh_wire_stream_feed (&stream, "data: [DONE]\n", 13), 0);
    assert_true (stream.answer.done);
    assert_int_equal (stream.answer.token_events, 3);
    assert_int_equal (stream.answer.events, 5);
    assert_string_equal (stream.answer.content, "ab");
    assert_string_equal (stream.answer.reasoning, "r");
    mesh_wire_stream_end (&stream);
    mesh_wire_stream_end (&stream);             //  twice is harmless
    mesh_wire_stream_clear (&stream);
    mesh_wire_stream_clear (&stream);
}

static void
test_stream_choices (void **state)
{
    (void) state;
    //  Two choices in one chunk, or a second index in a later one: counted, and only the
    //  first is read (the caller refuses more than one).
    mesh_wire_answer_t a = s_read (
      MESH_FLAVOR_VLLM,
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}},"
      "{\"index\":1,\"delta\":{\"content\":\"b\"}}]}\n", 4096, 0, 0, NULL);
    assert_int_equal (a.choices, 2);
    assert_string_equal (a.content, "a");
    mesh_wire_answer_clear (&a);
    a = s_read (MESH_FLAVOR_VLLM,
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n"
                "data: {\"choices\":[{\"index\":3,\"delta\":{\"content\":\"d\"},"
                "\"finish_reason\":\"stop\"}]}\n", 4096, 0, 0, NULL);
    assert_int_equal (a.choices, 4);
    assert_string_equal (a.content, "a");
    assert_false (a.finished);                  //  choice 3's finish is not ours
    mesh_wire_answer_clear (&a);
    //  Without an index, the position counts.
    a = s_read (MESH_FLAVOR_VLLM,
                "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}},{\"delta\":{}}]}\n",
                4096, 0, 0, NULL);
    assert_int_equal (a.choices, 2);
    assert_string_equal (a.content, "a");
    mesh_wire_answer_clear (&a);
    //  A usage-only stream has no choice at all.
    a = s_read (MESH_FLAVOR_VLLM, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n",
                4096, 0, 0, NULL);
    assert_int_equal (a.choices, 0);
    assert_false (a.content_seen);
    assert_null (a.content);
    assert_int_equal (a.prompt_tokens, 1);
    assert_int_equal (a.completion_tokens, -1);
    mesh_wire_answer_clear (&a);
}

static void
test_stream_bounds (void **state)
{
    (void) state;
    //  Content past max_content is dropped, the cut on a character boundary, and the
    //  rest of the stream dropped too.
    const char *text =
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abcdefgh\"}}]}\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xc3\xa9\xc3\xa9\"}}]}\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"i\"}}]}\n"
      "data: [DONE]\n";
    mesh_wire_answer_t a = s_read (MESH_FLAVOR_OPENAI, text, 11, 0, 0, NULL);
    assert_true (a.content_overflow);
    assert_false (a.malformed);
    assert_string_equal (a.content, "abcdefgh\xc3\xa9");
    assert_int_equal (a.content_len, 10);
    assert_true (a.done);
    assert_int_equal (a.token_events, 3);
    mesh_wire_answer_clear (&a);
    s_expect_any_split (MESH_FLAVOR_OPENAI, text, 11);
    //  One byte short, then exactly max_content (no overflow).
    a = s_read (MESH_FLAVOR_OPENAI, text, 12, 0, 0, NULL);
    assert_true (a.content_overflow);
    assert_string_equal (a.content, "abcdefgh\xc3\xa9\xc3\xa9");
    mesh_wire_answer_clear (&a);
    a = s_read (MESH_FLAVOR_OPENAI, text, 13, 0, 0, NULL);
    assert_false (a.content_overflow);
    assert_string_equal (a.content, "abcdefgh\xc3\xa9\xc3\xa9i");
    mesh_wire_answer_clear (&a);
    //  max_content 0 keeps an empty content when one was seen.
    a = s_read (MESH_FLAVOR_OPENAI,
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"}}]}\n", 0, 0, 0,
                NULL);
    assert_true (a.content_seen);
    assert_false (a.content_overflow);
    assert_string_equal (a.content, "");
    mesh_wire_answer_clear (&a);

    //  Reasoning: at most MESH_WIRE_REASONING_MAX kept, all of it counted.
    size_t piece = 1000;
    size_t count = MESH_WIRE_REASONING_MAX / piece + 5;
    char *chunk = malloc (piece + 128);
    int n = sprintf (chunk, "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"");
    memset (chunk + n, 'r', piece);
    strcpy (chunk + n + piece, "\"}}]}\n");
    mesh_wire_stream_t stream;
    mesh_wire_stream_init (&stream, MESH_FLAVOR_VLLM, 4096);
    for (size_t i = 0; i < count; i++)
        assert_int_equal (mesh_wire_stream_feed (&stream, chunk, strlen (chunk)), 1);
    mesh_wire_stream_end (&stream);
    assert_int_equal (stream.answer.reasoning_len, MESH_WIRE_REASONING_MAX);
    assert_int_equal (strlen (stream.answer.reasoning), MESH_WIRE_REASONING_MAX);
    assert_int_equal (stream.answer.reasoning_bytes, count * piece);
    assert_false (stream.answer.content_seen);
    mesh_wire_stream_clear (&stream);
    free (chunk);

    //  Once reasoning is cut (here a 2-byte character one byte short of the limit), a
    //  later piece that would fit is not kept either: what is kept has no hole.
    chunk = malloc (MESH_WIRE_REASONING_MAX + 128);
    n = sprintf (chunk, "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"");
    memset (chunk + n, 'r', MESH_WIRE_REASONING_MAX - 1);
    strcpy (chunk + n + MESH_WIRE_REASONING_MAX - 1, "\"}}]}\n");
    mesh_wire_stream_init (&stream, MESH_FLAVOR_VLLM, 4096);
    assert_int_equal (mesh_wire_stream_feed (&stream, chunk, strlen (chunk)), 1);
    const char *tail = "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":"
                       "\"\xc3\xa9\"}}]}\n"
                       "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"x\"}}]}\n";
    assert_int_equal (mesh_wire_stream_feed (&stream, tail, strlen (tail)), 2);
    assert_int_equal (stream.answer.reasoning_len, MESH_WIRE_REASONING_MAX - 1);
    assert_int_equal (stream.answer.reasoning_bytes, MESH_WIRE_REASONING_MAX + 2);
    assert_null (strchr (stream.answer.reasoning, 'x'));
    mesh_wire_stream_clear (&stream);
    free (chunk);

    //  reasoning_content and vLLM's newer "reasoning" with the same text: taken once.
    a = s_read (MESH_FLAVOR_VLLM,
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"ab\","
                "\"reasoning\":\"ab\"}}]}\n"
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"cd\"}}]}\n",
                4096, 0, 0, NULL);
    assert_string_equal (a.reasoning, "abcd");
    assert_int_equal (a.reasoning_bytes, 4);
    mesh_wire_answer_clear (&a);
}

//  --- whole bodies -------------------------------------------------------------------

static void
test_body_openai (void **state)
{
    (void) state;
    const char *body =
      "{\"choices\":[{\"finish_reason\":\"stop\",\"index\":0,\"message\":{\"role\":\"assistant\","
      "\"content\":\"{\\\"action\\\":\\\"escalate\\\"}\"}}],\"created\":1735689600,\"model\":"
      "\"qwen2.5-7b-instruct-q4_k_m.gguf\",\"system_fingerprint\":\"b4500-1b8a5f2\",\"object\":"
      "\"chat.completion\",\"usage\":{\"completion_tokens\":8,\"prompt_tokens\":143,"
      "\"total_tokens\":151,\"prompt_tokens_details\":{\"cached_tokens\":0}},\"id\":"
      "\"chatcmpl-Q3x9\",\"timings\":{\"cache_n\":0,\"prompt_n\":143,\"predicted_n\":8}}";
    mesh_wire_answer_t a;
    mesh_wire_read_body (MESH_FLAVOR_LLAMACPP, body, strlen (body), 4096, &a);
    assert_false (a.malformed);
    assert_false (a.error);
    assert_string_equal (a.content, "{\"action\":\"escalate\"}");
    assert_int_equal (a.content_len, strlen (a.content));
    assert_true (a.content_seen);
    assert_true (a.done);
    assert_true (a.finished);
    assert_string_equal (a.finish_reason, "stop");
    assert_string_equal (a.model, "qwen2.5-7b-instruct-q4_k_m.gguf");
    assert_int_equal (a.prompt_tokens, 143);
    assert_int_equal (a.completion_tokens, 8);
    assert_int_equal (a.choices, 1);
    mesh_wire_answer_clear (&a);

    //  vLLM: content null, only reasoning: content_seen false, not malformed.
    body = "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"Qwen/QwQ-32B\","
           "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"
           "\"reasoning_content\":\"Let me think.\",\"refusal\":null},\"logprobs\":null,"
           "\"finish_reason\":\"length\",\"stop_reason\":null}],\"usage\":{\"prompt_tokens\":9,"
           "\"total_tokens\":265,\"completion_tokens\":256}}";
    mesh_wire_read_body (MESH_FLAVOR_VLLM, body, strlen (body), 4096, &a);
    assert_false (a.malformed);
    assert_false (a.content_seen);
    assert_null (a.content);
    assert_string_equal (a.reasoning, "Let me think.");
    assert_int_equal (a.reasoning_bytes, 13);
    assert_string_equal (a.finish_reason, "length");
    assert_true (a.done);
    mesh_wire_answer_clear (&a);

    //  No finish_reason (Ollama /v1 when the runner gave none): done, not finished.
    body = "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"x\"},"
           "\"finish_reason\":null}],\"model\":\"llama3.2\"}";
    mesh_wire_read_body (MESH_FLAVOR_OLLAMA, body, strlen (body), 4096, &a);
    assert_true (a.done);
    assert_false (a.finished);
    assert_null (a.finish_reason);
    assert_int_equal (a.prompt_tokens, -1);
    mesh_wire_answer_clear (&a);

    //  Over max_content.
    mesh_wire_read_body (MESH_FLAVOR_OPENAI, body, strlen (body), 0, &a);
    assert_true (a.content_overflow);
    assert_string_equal (a.content, "");
    mesh_wire_answer_clear (&a);
}

static void
test_body_malformed (void **state)
{
    (void) state;
    struct {
        const char *body;
        size_t len;
        const char *detail;
    } cases[] = {
        { "<html>bad gateway</html>", 24, "response is not a JSON object (24 bytes; '[' or '{' "
                                          "expected near '<'): <html>bad gateway</html>" },
        { "[1,2]", 5, "response is not a JSON object (5 bytes; an array)" },
        { "", 0, "response is not a JSON object (0 bytes; empty)" },
        { "{\"a\":\"\xff\"}", 9, "response is not a JSON object (9 bytes; unable to decode "
                                 "byte 0xff" },
        { "{\"choices\":[{\"message\":{\"content\":\"a\"}},{\"message\":{\"content\":\"b\"}}]}",
          0, "response has 2 choices; exactly one was asked for" },
        { "{\"choices\":[]}", 0, "response has no choices[0]" },
        { "{\"object\":\"chat.completion\"}", 0, "response has no choices array" },
        { "{\"choices\":[{\"index\":0}]}", 0, "choices[0] has no message object" },
        { "{\"choices\":[7]}", 0, "choices[0] is not an object" },
        { "{\"choices\":[{\"message\":{\"content\":\"a\\u0000b\"}}]}", 0,
          "choices[0].message.content contains a NUL character" },
        { "{\"choices\":[{\"message\":{\"content\":[{\"type\":\"text\"}]}}]}", 0,
          "choices[0].message.content is an array, not a string" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mesh_wire_answer_t a;
        size_t len = cases[i].len ? cases[i].len : strlen (cases[i].body);
        mesh_wire_read_body (MESH_FLAVOR_OPENAI, cases[i].body, len, 4096, &a);
        assert_true (a.malformed);
        assert_false (a.done && a.choices > 1);
        if (!strstr (a.malformed_detail, cases[i].detail))
            fail_msg ("case %zu: \"%s\" lacks \"%s\"", i, a.malformed_detail, cases[i].detail);
        mesh_wire_answer_clear (&a);
    }
    mesh_wire_answer_t a;
    const char *two = "{\"choices\":[{\"message\":{\"content\":\"a\"}},{\"message\":{}}]}";
    mesh_wire_read_body (MESH_FLAVOR_VLLM, two, strlen (two), 4096, &a);
    assert_int_equal (a.choices, 2);
    assert_false (a.done);
    mesh_wire_answer_clear (&a);
    mesh_wire_read_body (MESH_FLAVOR_VLLM, NULL, 0, 4096, &a);
    assert_true (a.malformed);
    mesh_wire_answer_clear (&a);
    mesh_wire_answer_clear (NULL);
}

static void
test_body_error (void **state)
{
    (void) state;
    mesh_wire_answer_t a;
    const char *body = "{\"error\":{\"message\":\"Unable to generate\",\"type\":\"server_error\","
                       "\"code\":500}}";
    mesh_wire_read_body (MESH_FLAVOR_OPENAI, body, strlen (body), 4096, &a);
    assert_true (a.error);
    assert_false (a.malformed);
    assert_string_equal (a.error_message, "Unable to generate");
    assert_string_equal (a.error_type, "server_error");
    assert_int_equal (a.error_status, 500);
    mesh_wire_answer_clear (&a);
    //  An error without a message: the body itself, as one line.
    body = "{\"error\":{\"code\":500}}";
    mesh_wire_read_body (MESH_FLAVOR_OPENAI, body, strlen (body), 4096, &a);
    assert_true (a.error);
    assert_string_equal (a.error_message, body);
    assert_int_equal (a.error_status, 500);
    mesh_wire_answer_clear (&a);
    //  Ollama native.
    body = "{\"error\":\"model requires more system memory (8.4 GiB) than is available\"}";
    mesh_wire_read_body (MESH_FLAVOR_OLLAMA_NATIVE, body, strlen (body), 4096, &a);
    assert_true (a.error);
    assert_string_equal (a.error_message,
                         "model requires more system memory (8.4 GiB) than is available");
    mesh_wire_answer_clear (&a);
}

static void
test_body_ollama_native (void **state)
{
    (void) state;
    const char *body =
      "{\"model\":\"qwen3:8b\",\"created_at\":\"2025-01-01T00:00:00Z\",\"message\":{\"role\":"
      "\"assistant\",\"content\":\"{\\\"action\\\":\\\"escalate\\\"}\",\"thinking\":\"The CPU "
      "is high.\"},\"done\":true,\"done_reason\":\"stop\",\"total_duration\":5191566416,"
      "\"load_duration\":2154458,\"prompt_eval_count\":26,\"prompt_eval_duration\":383809000,"
      "\"eval_count\":298,\"eval_duration\":4799921000}";
    mesh_wire_answer_t a;
    mesh_wire_read_body (MESH_FLAVOR_OLLAMA_NATIVE, body, strlen (body), 4096, &a);
    assert_false (a.malformed);
    assert_string_equal (a.content, "{\"action\":\"escalate\"}");
    assert_string_equal (a.reasoning, "The CPU is high.");
    assert_true (a.done);
    assert_true (a.finished);
    assert_string_equal (a.finish_reason, "stop");
    assert_int_equal (a.prompt_tokens, 26);
    assert_int_equal (a.completion_tokens, 298);
    assert_string_equal (a.model, "qwen3:8b");
    assert_int_equal (a.choices, 1);
    mesh_wire_answer_clear (&a);

    body = "{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"x\"},"
           "\"done\":true,\"done_reason\":\"length\",\"eval_count\":1}";
    mesh_wire_read_body (MESH_FLAVOR_OLLAMA_NATIVE, body, strlen (body), 4096, &a);
    assert_int_equal (a.prompt_tokens, -1);
    assert_int_equal (a.completion_tokens, 1);
    assert_string_equal (a.finish_reason, "length");
    mesh_wire_answer_clear (&a);

    //  The OpenAI shape is not this flavour's.
    body = "{\"choices\":[{\"message\":{\"content\":\"x\"}}]}";
    mesh_wire_read_body (MESH_FLAVOR_OLLAMA_NATIVE, body, strlen (body), 4096, &a);
    assert_true (a.malformed);
    assert_string_equal (a.malformed_detail, "response has no message object");
    mesh_wire_answer_clear (&a);
}

//  --- error texts ------------------------------------------------------------------------

static void
s_expect_error_text (const char *body, const char *text, const char *type)
{
    char *got_type = (char *) "unset";
    char *got = mesh_wire_error_text (body, body ? strlen (body) : 0, &got_type);
    assert_string_equal (got, text);
    s_same_string (got_type, type);
    free (got);
    free (got_type);
}

static void
test_error_text (void **state)
{
    (void) state;
    //  llama.cpp (nested, with its own type).
    s_expect_error_text (
      "{\"error\":{\"code\":400,\"message\":\"request (13392 tokens) exceeds the available "
      "context size (8192 tokens), try increasing it\",\"type\":\"exceed_context_size_error\","
      "\"n_prompt_tokens\":13392,\"n_ctx\":8192}}",
      "request (13392 tokens) exceeds the available context size (8192 tokens), try "
      "increasing it", "exceed_context_size_error");
    //  vLLM >= 0.10.1 (nested) and older (flat).
    s_expect_error_text ("{\"error\":{\"message\":\"The model `x` does not exist.\",\"type\":"
                         "\"NotFoundError\",\"param\":null,\"code\":404}}",
                         "The model `x` does not exist.", "NotFoundError");
    s_expect_error_text ("{\"object\":\"error\",\"message\":\"This model's maximum context "
                         "length is 2048 tokens.\",\"type\":\"BadRequestError\",\"param\":null,"
                         "\"code\":400}",
                         "This model's maximum context length is 2048 tokens.",
                         "BadRequestError");
    //  Ollama /v1 and native.
    s_expect_error_text ("{\"error\":{\"message\":\"model \\\"x\\\" not found, try pulling it "
                         "first\",\"type\":\"not_found_error\",\"param\":null,\"code\":null}}",
                         "model \"x\" not found, try pulling it first", "not_found_error");
    s_expect_error_text ("{\"error\":\"model 'x' not found\"}", "model 'x' not found", NULL);
    //  TGI.
    s_expect_error_text ("{\"error\":\"Model is overloaded\",\"error_type\":\"overloaded\"}",
                         "Model is overloaded", "overloaded");
    //  FastAPI (a string, or a validation list).
    s_expect_error_text ("{\"detail\":\"Not Found\"}", "Not Found", NULL);
    s_expect_error_text ("{\"detail\":[{\"loc\":[\"body\",\"messages\"],\"msg\":\"field "
                         "required\",\"type\":\"value_error.missing\"}]}", "field required",
                         NULL);
    //  Plain text (TGI's body-shape failures), one line.
    s_expect_error_text ("Failed to deserialize the JSON body into the target type: stop: "
                         "invalid type: string \"x\", expected a sequence at line 1 column 9\n",
                         "Failed to deserialize the JSON body into the target type: stop: "
                         "invalid type: string \"x\", expected a sequence at line 1 column 9",
                         NULL);
    s_expect_error_text ("line one\r\nline\ttwo\n", "line one  line two", NULL);
    //  JSON without a known field: the body itself.
    s_expect_error_text ("{\"status\":\"bad\"}", "{\"status\":\"bad\"}", NULL);
    //  Nothing.
    s_expect_error_text ("", "(empty body)", NULL);
    s_expect_error_text (NULL, "(empty body)", NULL);
    s_expect_error_text ("  \r\n ", "(empty body)", NULL);
    s_expect_error_text ("{\"error\":\"\"}", "{\"error\":\"\"}", NULL);
    //  NUL and control characters inside a message, bytes that are not UTF-8.
    s_expect_error_text ("{\"error\":\"a\\u0000b\\u001bc\"}", "a b c", NULL);
    s_expect_error_text ("bad \xff byte \xc2\x85 C1", "bad ? byte   C1", NULL);
    //  TYPE may be NULL.
    char *text = mesh_wire_error_text ("{\"error\":\"x\"}", 13, NULL);
    assert_string_equal (text, "x");
    free (text);

    //  Long texts: at most MESH_WIRE_TEXT_MAX bytes, cut on a character boundary.
    char body[2000];
    strcpy (body, "{\"error\":\"");
    for (int i = 0; i < 400; i++)
        strcat (body, "\xc3\xa9");                      //  2 bytes each
    strcat (body, "\"}");
    text = mesh_wire_error_text (body, strlen (body), NULL);
    assert_true (strlen (text) <= MESH_WIRE_TEXT_MAX);
    assert_int_equal (strlen (text), MESH_WIRE_TEXT_MAX);
    free (text);
    memset (body, 'x', sizeof body);
    memcpy (body + MESH_WIRE_TEXT_MAX - 1, "\xe2\x82\xac", 3);     //  a euro sign across the cut
    text = mesh_wire_error_text (body, sizeof body, NULL);
    assert_int_equal (strlen (text), MESH_WIRE_TEXT_MAX - 1);
    free (text);
}

//  --- failure classes ----------------------------------------------------------------

static void
s_expect_class (long status, const char *body, mesh_fail_t expected)
{
    char *type = NULL;
    char *message = mesh_wire_error_text (body, strlen (body), &type);
    mesh_fail_t got = mesh_wire_classify (status, message, type);
    if (got != expected)
        fail_msg ("%ld %s: %s, expected %s", status, body, mesh_fail_name (got),
                  mesh_fail_name (expected));
    free (message);
    free (type);
}

static void
test_classify (void **state)
{
    (void) state;
    //  context_overflow
    s_expect_class (400, "{\"error\":{\"code\":400,\"message\":\"request (13392 tokens) "
                    "exceeds the available context size (8192 tokens), try increasing it\","
                    "\"type\":\"exceed_context_size_error\",\"n_prompt_tokens\":13392,"
                    "\"n_ctx\":8192}}", MESH_FAIL_MODEL_CONTEXT_OVERFLOW);
    s_expect_class (400, "{\"error\":{\"code\":400,\"message\":\"x\",\"type\":"
                    "\"exceed_context_size_error\"}}", MESH_FAIL_MODEL_CONTEXT_OVERFLOW);
    s_expect_class (400, "{\"error\":{\"code\":400,\"message\":\"the request exceeds the "
                    "available context size, try increasing it\",\"type\":"
                    "\"invalid_request_error\"}}", MESH_FAIL_MODEL_CONTEXT_OVERFLOW);
    s_expect_class (400, "{\"error\":{\"message\":\"This model's maximum context length is "
                    "2048 tokens. However, you requested 2723 tokens (1699 in the messages, "
                    "1024 in the completion). Please reduce the length of the messages or "
                    "completion.\",\"type\":\"BadRequestError\",\"param\":null,\"code\":400}}",
                    MESH_FAIL_MODEL_CONTEXT_OVERFLOW);
    s_expect_class (422, "{\"error\":\"Input validation error: `inputs` tokens + "
                    "`max_new_tokens` must be <= 4096. Given: 4000 `inputs` tokens and 200 "
                    "`max_new_tokens`\",\"error_type\":\"validation\"}",
                    MESH_FAIL_MODEL_CONTEXT_OVERFLOW);
    s_expect_class (400, "{\"error\":{\"message\":\"the prompt is longer than the context "
                    "length currently available to the model; try a shorter prompt\","
                    "\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}",
                    MESH_FAIL_MODEL_CONTEXT_OVERFLOW);
    s_expect_class (400, "{\"error\":\"prompt is too long\"}", MESH_FAIL_MODEL_CONTEXT_OVERFLOW);
    //  not_found
    s_expect_class (404, "{\"error\":{\"message\":\"The model `x` does not exist.\",\"type\":"
                    "\"NotFoundError\",\"param\":null,\"code\":404}}", MESH_FAIL_MODEL_NOT_FOUND);
    s_expect_class (404, "{\"error\":\"model 'x' not found\"}", MESH_FAIL_MODEL_NOT_FOUND);
    s_expect_class (404, "{\"detail\":\"Not Found\"}", MESH_FAIL_MODEL_NOT_FOUND);
    s_expect_class (400, "{\"error\":\"model 'x' not found, try pulling it first\"}",
                    MESH_FAIL_MODEL_NOT_FOUND);
    //  overloaded
    s_expect_class (503, "{\"error\":{\"message\":\"server busy, please try again.  maximum "
                    "pending requests exceeded\",\"type\":\"api_error\",\"param\":null,"
                    "\"code\":null}}", MESH_FAIL_MODEL_OVERLOADED);
    s_expect_class (503, "{\"error\":\"server busy, please try again.  maximum pending "
                    "requests exceeded\"}", MESH_FAIL_MODEL_OVERLOADED);
    s_expect_class (429, "{\"error\":\"Model is overloaded\",\"error_type\":\"overloaded\"}",
                    MESH_FAIL_MODEL_OVERLOADED);
    assert_int_equal (mesh_wire_classify (422, "anything", "overloaded"),
                      MESH_FAIL_MODEL_OVERLOADED);
    //  rate_limited
    s_expect_class (429, "{\"error\":{\"message\":\"Rate limit reached\",\"type\":"
                    "\"rate_limit_error\"}}", MESH_FAIL_MODEL_RATE_LIMITED);
    s_expect_class (429, "", MESH_FAIL_MODEL_RATE_LIMITED);
    //  loading
    s_expect_class (503, "{\"error\":{\"code\":503,\"message\":\"Loading model\",\"type\":"
                    "\"unavailable_error\"}}", MESH_FAIL_MODEL_LOADING);
    //  malformed: the structured-output form refused
    s_expect_class (422, "Failed to deserialize the JSON body into the target type: "
                    "response_format: unknown variant `json_schema`, expected one of `json`, "
                    "`regex`, `json_object` at line 1 column 300", MESH_FAIL_MODEL_MALFORMED);
    s_expect_class (400, "{\"error\":{\"code\":400,\"message\":\"JSON schema conversion failed"
                    "\",\"type\":\"invalid_request_error\"}}", MESH_FAIL_MODEL_MALFORMED);
    s_expect_class (400, "{\"error\":{\"message\":\"Either json_schema or grammar can be "
                    "specified, but not both\"}}", MESH_FAIL_MODEL_MALFORMED);
    s_expect_class (415, "unsupported response_format", MESH_FAIL_MODEL_MALFORMED);
    //  model_error
    s_expect_class (400, "{\"error\":{\"message\":\"[] is too short - 'messages'\",\"type\":"
                    "\"invalid_request_error\"}}", MESH_FAIL_MODEL_ERROR);
    s_expect_class (401, "{\"error\":\"Unauthorized\"}", MESH_FAIL_MODEL_ERROR);
    s_expect_class (403, "", MESH_FAIL_MODEL_ERROR);
    s_expect_class (500, "{\"error\":{\"code\":500,\"message\":\"Internal\",\"type\":"
                    "\"server_error\"}}", MESH_FAIL_MODEL_ERROR);
    s_expect_class (503, "", MESH_FAIL_MODEL_OVERLOADED);      //  "not now": retried
    s_expect_class (503, "{\"error\":\"unhealthy\",\"error_type\":\"healthcheck\"}",
                    MESH_FAIL_MODEL_OVERLOADED);
    s_expect_class (500, "{\"error\":\"response_format is bad\"}", MESH_FAIL_MODEL_ERROR);
    assert_int_equal (mesh_wire_classify (0, NULL, NULL), MESH_FAIL_MODEL_ERROR);
    assert_int_equal (mesh_wire_classify (0, "loading", NULL), MESH_FAIL_MODEL_ERROR);
}

static void
test_schema_refused_transient (void **state)
{
    (void) state;
    assert_true (mesh_wire_schema_refused (400, "Unsupported response_format type"));
    assert_true (mesh_wire_schema_refused (422, "Failed to deserialize: json_schema"));
    assert_true (mesh_wire_schema_refused (415, "GRAMMAR error"));
    assert_true (mesh_wire_schema_refused (400, "invalid format: expected \"json\" or a JSON "
                                           "schema"));
    assert_true (mesh_wire_schema_refused (400, "bad Schema"));
    assert_false (mesh_wire_schema_refused (500, "response_format"));
    assert_false (mesh_wire_schema_refused (404, "json_schema"));
    assert_false (mesh_wire_schema_refused (400, "messages must be an array"));
    assert_false (mesh_wire_schema_refused (400, NULL));

    assert_true (mesh_wire_transient (MESH_FAIL_MODEL_RATE_LIMITED));
    assert_true (mesh_wire_transient (MESH_FAIL_MODEL_OVERLOADED));
    assert_true (mesh_wire_transient (MESH_FAIL_MODEL_LOADING));
    assert_true (mesh_wire_transient (MESH_FAIL_MODEL_UNREACHABLE));
    assert_false (mesh_wire_transient (MESH_FAIL_MODEL_ERROR));
    assert_false (mesh_wire_transient (MESH_FAIL_MODEL_CONTEXT_OVERFLOW));
    assert_false (mesh_wire_transient (MESH_FAIL_MODEL_NOT_FOUND));
    assert_false (mesh_wire_transient (MESH_FAIL_MODEL_MALFORMED));
    assert_false (mesh_wire_transient (MESH_FAIL_MODEL_TIMEOUT));
    assert_false (mesh_wire_transient (MESH_FAIL_MODEL_PARTIAL));
    assert_false (mesh_wire_transient (MESH_FAIL_NONE));
}

//  --- Retry-After and backoff ---------------------------------------------------------

static void
test_retry_after (void **state)
{
    (void) state;
    //  1994-11-06 08:49:07 UTC: 30 s before the RFC's example date.
    struct tm tm = { .tm_year = 94, .tm_mon = 10, .tm_mday = 6, .tm_hour = 8, .tm_min = 49,
                     .tm_sec = 7 };
    time_t now = timegm (&tm);
    assert_int_equal (mesh_wire_retry_after_ms ("120", now), 120000);
    assert_int_equal (mesh_wire_retry_after_ms ("0", now), 0);
    assert_int_equal (mesh_wire_retry_after_ms (" 5 ", now), 5000);
    assert_int_equal (mesh_wire_retry_after_ms ("86400", now), 86400000);
    assert_int_equal (mesh_wire_retry_after_ms ("86401", now), 86400000);
    assert_int_equal (mesh_wire_retry_after_ms ("99999999999999999999999999", now), 86400000);
    assert_int_equal (mesh_wire_retry_after_ms ("Sun, 06 Nov 1994 08:49:37 GMT", now), 30000);
    assert_int_equal (mesh_wire_retry_after_ms ("Sunday, 06-Nov-94 08:49:37 GMT", now), 30000);
    assert_int_equal (mesh_wire_retry_after_ms ("Sun Nov  6 08:49:37 1994", now), 30000);
    assert_int_equal (mesh_wire_retry_after_ms ("Sun Nov 06 08:49:37 1994", now), 30000);
    //  A date passed: 0; far ahead: 24 h.
    assert_int_equal (mesh_wire_retry_after_ms ("Sun, 06 Nov 1994 08:49:07 GMT", now), 0);
    assert_int_equal (mesh_wire_retry_after_ms ("Sat, 01 Jan 1994 00:00:00 GMT", now), 0);
    assert_int_equal (mesh_wire_retry_after_ms ("Fri, 01 Jan 2100 00:00:00 GMT", now),
                      86400000);
    //  Absent, garbage, negative.
    const char *bad[] = { NULL, "", "   ", "-5", "+5", "1.5", "5s", "soon", "0x10",
                          "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 UTC",
                          "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
                          "Sun, 06 Nov 1994 25:49:37 GMT", "Xyz, 06 Nov 1994 08:49:37 GMT",
                          "Sun, 6 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-1994 08:49:37 GMT",
                          "Sun Nov  6 08:49:37 1994 GMT", "Sun, 06 Nov 1994 08:49:37 GMT x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (mesh_wire_retry_after_ms (bad[i], now) != -1)
            fail_msg ("\"%s\" was read", bad[i] ? bad[i] : "(null)");
    //  RFC 850's two-digit year: more than 50 years ahead means the past century.
    tm = (struct tm) { .tm_year = 126, .tm_mon = 0, .tm_mday = 1 };
    now = timegm (&tm);
    assert_int_equal (mesh_wire_retry_after_ms ("Thursday, 01-Jan-26 00:00:10 GMT", now),
                      10000);
    assert_int_equal (mesh_wire_retry_after_ms ("Sunday, 06-Nov-94 08:49:37 GMT", now), 0);
}

static void
test_backoff (void **state)
{
    (void) state;
    //  Windows: base * 2^attempt up to the cap.
    long windows[] = { 250, 500, 1000, 2000, 4000, 5000, 5000 };
    uint32_t seed = 42;
    for (int attempt = 0; attempt < 7; attempt++) {
        double sum = 0;
        long max = 0;
        for (int i = 0; i < 10000; i++) {
            long ms = mesh_wire_backoff_ms (attempt, 250, 5000, s_random (&seed));
            assert_true (ms >= 0 && ms <= windows[attempt]);
            sum += (double) ms;
            if (ms > max)
                max = ms;
        }
        double mean = sum / 10000;
        assert_true (mean > windows[attempt] * 0.45 && mean < windows[attempt] * 0.55);
        assert_true (max > windows[attempt] * 0.95);
    }
    //  The ends of the draw.
    assert_int_equal (mesh_wire_backoff_ms (0, 250, 5000, 0), 0);
    assert_int_equal (mesh_wire_backoff_ms (0, 250, 5000, 250), 250);
    assert_int_equal (mesh_wire_backoff_ms (0, 250, 5000, 251), 0);
    //  No overflow however large the attempt or the cap.
    assert_true (mesh_wire_backoff_ms (1000, 250, 5000, UINT32_MAX) <= 5000);
    assert_true (mesh_wire_backoff_ms (INT_MAX, 250, 5000, UINT32_MAX) <= 5000);
    assert_true (mesh_wire_backoff_ms (INT_MAX, LONG_MAX / 2, LONG_MAX, UINT32_MAX) >= 0);
    assert_int_equal (mesh_wire_backoff_ms (INT_MAX, 1, LONG_MAX, UINT32_MAX), UINT32_MAX);
    //  A base over the cap is the cap; a negative attempt is attempt 0; nothing to wait
    //  when base or cap is not positive.
    assert_true (mesh_wire_backoff_ms (0, 9000, 5000, 4999) == 4999);
    assert_true (mesh_wire_backoff_ms (0, 9000, 5000, 5001) == 0);
    assert_true (mesh_wire_backoff_ms (-3, 250, 5000, 250) == 250);
    assert_int_equal (mesh_wire_backoff_ms (3, 0, 5000, 77), 0);
    assert_int_equal (mesh_wire_backoff_ms (3, 250, 0, 77), 0);
    assert_int_equal (mesh_wire_backoff_ms (3, -1, -1, 77), 0);
}

//  --- <think> blocks ----------------------------------------------------------------

static void
s_expect_think (const char *content, const char *rest, const char *think)
{
    const char *start = NULL;
    size_t len = 99;
    const char *after = mesh_wire_split_think (content, &start, &len);
    assert_string_equal (after, rest);
    if (!think) {
        assert_ptr_equal (after, content);
        assert_int_equal (len, 0);
    }
    else {
        assert_int_equal (len, strlen (think));
        assert_memory_equal (start, think, len);
    }
}

static void
test_split_think (void **state)
{
    (void) state;
    s_expect_think ("{\"action\":\"escalate\"}", "{\"action\":\"escalate\"}", NULL);
    s_expect_think ("", "", NULL);
    s_expect_think ("<think>CPU is high.</think>{\"a\":1}", "{\"a\":1}", "CPU is high.");
    s_expect_think ("\n  <think>\nstep 1\nstep 2\n</think>\n\n{\"a\":1}", "{\"a\":1}",
                    "\nstep 1\nstep 2\n");
    s_expect_think ("<thinking>x</thinking> {}", "{}", "x");
    s_expect_think ("<reasoning>y</reasoning>{}", "{}", "y");
    s_expect_think ("<think></think>{}", "{}", "");
    //  Never closed: nothing left to parse, all of it is thinking.
    s_expect_think ("<think>I was cut off", "", "I was cut off");
    //  A block later in the text is the model's answer, not a leading block.
    s_expect_think ("{\"a\":1} <think>x</think>", "{\"a\":1} <think>x</think>", NULL);
    s_expect_think ("Answer: <think>x</think>{}", "Answer: <think>x</think>{}", NULL);
    //  Mismatched or unknown tags.
    s_expect_think ("<think>x</thinking>{}", "", "x</thinking>{}");
    s_expect_think ("<thought>x</thought>{}", "<thought>x</thought>{}", NULL);
    s_expect_think ("<think", "<think", NULL);
    //  The out parameters may be NULL.
    assert_string_equal (mesh_wire_split_think ("<think>a</think>b", NULL, NULL), "b");
    assert_null (mesh_wire_split_think (NULL, NULL, NULL));
}

//  --- probes -----------------------------------------------------------------------------

static mesh_wire_probe_t
s_probe (const char *path, long status, const char *body, const char *model)
{
    mesh_wire_probe_t probe;
    mesh_wire_probe_read (path, status, body, body ? strlen (body) : 0, model, &probe);
    return probe;
}

static void
test_probe_health (void **state)
{
    (void) state;
    //  llama.cpp ready and loading.
    mesh_wire_probe_t p = s_probe ("/health", 200, "{\"status\":\"ok\"}", NULL);
    assert_true (p.answered && p.ready);
    assert_false (p.loading);
    assert_int_equal (p.flavor, MESH_FLAVOR_AUTO);
    p = s_probe ("/health", 503, "{\"error\":{\"code\":503,\"message\":\"Loading model\","
                 "\"type\":\"unavailable_error\"}}", NULL);
    assert_true (p.answered && p.loading);
    assert_false (p.ready);
    p = s_probe ("/health", 503, "{\"status\":\"loading model\"}", NULL);     //  older builds
    assert_true (p.answered && p.loading);
    //  vLLM and TGI: an empty 200.
    p = s_probe ("/health", 200, "", NULL);
    assert_true (p.answered && p.ready);
    //  vLLM with a dead engine: an empty 503 is no answer.
    p = s_probe ("/health", 503, "", NULL);
    assert_false (p.answered || p.ready || p.loading);
    //  TGI unhealthy.
    p = s_probe ("/health", 503, "{\"error\":\"unhealthy\",\"error_type\":\"healthcheck\"}",
                 NULL);
    assert_true (p.answered);
    assert_false (p.ready || p.loading);
    //  No such endpoint (Ollama).
    p = s_probe ("/health", 404, "404 page not found", NULL);
    assert_false (p.answered || p.ready);
    //  Ollama's root.
    p = s_probe ("/", 200, "Ollama is running", NULL);
    assert_true (p.ready);
    assert_int_equal (p.flavor, MESH_FLAVOR_OLLAMA);
}

static void
test_probe_llamacpp (void **state)
{
    (void) state;
    mesh_wire_probe_t p = s_probe (
      "/props", 200,
      "{\"default_generation_settings\":{\"id\":0,\"n_ctx\":8192,\"params\":{\"n_predict\":-1}},"
      "\"total_slots\":1,\"model_path\":\"/models/qwen.gguf\",\"chat_template\":\"...\","
      "\"build_info\":\"b4500-1b8a5f2\"}", NULL);
    assert_true (p.answered && p.ready);
    assert_int_equal (p.flavor, MESH_FLAVOR_LLAMACPP);
    assert_int_equal (p.context_tokens, 8192);
    p = s_probe ("/props", 200, "{\"n_ctx\":4096}", NULL);
    assert_int_equal (p.flavor, MESH_FLAVOR_LLAMACPP);
    assert_int_equal (p.context_tokens, 4096);
    p = s_probe ("/props", 200, "{}", NULL);
    assert_int_equal (p.flavor, MESH_FLAVOR_AUTO);
    p = s_probe ("/props", 404, "{\"detail\":\"Not Found\"}", NULL);
    assert_false (p.answered);
    assert_int_equal (p.flavor, MESH_FLAVOR_AUTO);

    p = s_probe ("/v1/models", 200,
                 "{\"object\":\"list\",\"data\":[{\"id\":\"qwen2.5-7b-instruct-q4_k_m.gguf\","
                 "\"object\":\"model\",\"created\":1735689600,\"owned_by\":\"llamacpp\",\"meta\":"
                 "{\"vocab_type\":2,\"n_vocab\":152064,\"n_ctx_train\":32768,\"n_embd\":3584,"
                 "\"n_params\":7615616512,\"size\":4677120000}}]}",
                 "qwen2.5-7b-instruct-q4_k_m.gguf");
    assert_true (p.model_list && p.model_listed && p.ready);
    assert_int_equal (p.flavor, MESH_FLAVOR_LLAMACPP);
    assert_int_equal (p.context_tokens, 32768);
    //  meta null while loading.
    p = s_probe ("/v1/models", 200, "{\"object\":\"list\",\"data\":[{\"id\":\"m\",\"owned_by\":"
                 "\"llamacpp\",\"meta\":null}]}", "other");
    assert_int_equal (p.flavor, MESH_FLAVOR_LLAMACPP);
    assert_int_equal (p.context_tokens, 0);
    assert_true (p.model_list);
    assert_false (p.model_listed);
}

static void
test_probe_vllm_tgi (void **state)
{
    (void) state;
    const char *models =
      "{\"object\":\"list\",\"data\":[{\"id\":\"Qwen/Qwen2.5-7B-Instruct\",\"object\":\"model\","
      "\"created\":1735689600,\"owned_by\":\"vllm\",\"root\":\"Qwen/Qwen2.5-7B-Instruct\","
      "\"parent\":null,\"max_model_len\":32768,\"permission\":[]},{\"id\":\"sql-lora\","
      "\"object\":\"model\",\"owned_by\":\"vllm\",\"root\":\"/adapters/sql\",\"parent\":"
      "\"Qwen/Qwen2.5-7B-Instruct\",\"max_model_len\":16384}]}";
    mesh_wire_probe_t p = s_probe ("/v1/models", 200, models, "sql-lora");
    assert_int_equal (p.flavor, MESH_FLAVOR_VLLM);
    assert_true (p.model_list && p.model_listed);
    assert_int_equal (p.context_tokens, 16384);         //  the named model's
    p = s_probe ("/v1/models", 200, models, "gpt-4");
    assert_false (p.model_listed);
    assert_int_equal (p.context_tokens, 32768);         //  the first
    p = s_probe ("/v1/models", 200, models, NULL);
    assert_false (p.model_listed);

    //  TGI.
    p = s_probe ("/v1/models", 200, "{\"object\":\"list\",\"data\":[{\"id\":"
                 "\"meta-llama/Llama-3.1-8B-Instruct\",\"object\":\"model\",\"created\":0,"
                 "\"owned_by\":\"meta-llama/Llama-3.1-8B-Instruct\"}]}", "tgi");
    assert_int_equal (p.flavor, MESH_FLAVOR_AUTO);
    assert_true (p.model_list);
    assert_false (p.model_listed);
    p = s_probe ("/info", 200, "{\"model_id\":\"meta-llama/Llama-3.1-8B-Instruct\","
                 "\"model_sha\":\"0e9e39f\",\"model_dtype\":\"torch.bfloat16\","
                 "\"max_concurrent_requests\":128,\"max_best_of\":2,\"max_stop_sequences\":4,"
                 "\"max_input_tokens\":4095,\"max_total_tokens\":4096,\"validation_workers\":2,"
                 "\"max_client_batch_size\":4,\"router\":\"text-generation-router\","
                 "\"version\":\"3.0.1\",\"sha\":\"8f326c9\"}", NULL);
    assert_int_equal (p.flavor, MESH_FLAVOR_TGI);
    assert_int_equal (p.context_tokens, 4095);
    assert_true (p.ready);
    p = s_probe ("/info", 200, "{\"max_total_tokens\":8192}", NULL);
    assert_int_equal (p.flavor, MESH_FLAVOR_TGI);
    assert_int_equal (p.context_tokens, 8192);
    p = s_probe ("/info", 200, "<html></html>", NULL);
    assert_int_equal (p.flavor, MESH_FLAVOR_AUTO);
}

static void
test_probe_ollama (void **state)
{
    (void) state;
    mesh_wire_probe_t p = s_probe ("/api/version", 200, "{\"version\":\"0.5.7\"}", NULL);
    assert_int_equal (p.flavor, MESH_FLAVOR_OLLAMA);
    assert_true (p.ready);
    p = s_probe ("/api/version", 404, "{\"detail\":\"Not Found\"}", NULL);
    assert_int_equal (p.flavor, MESH_FLAVOR_AUTO);

    const char *tags =
      "{\"models\":[{\"name\":\"llama3.2:latest\",\"model\":\"llama3.2:latest\",\"modified_at\":"
      "\"2025-01-01T00:00:00Z\",\"size\":2019393189,\"digest\":\"a80c4f17\",\"details\":"
      "{\"format\":\"gguf\",\"family\":\"llama\",\"parameter_size\":\"3.2B\"}},{\"name\":"
      "\"qwen2.5:7b\",\"model\":\"qwen2.5:7b\",\"size\":4683087332}]}";
    const char *listed[] = { "llama3.2", "llama3.2:latest", "qwen2.5:7b" };
    for (int i = 0; i < 3; i++) {
        p = s_probe ("/api/tags", 200, tags, listed[i]);
        assert_int_equal (p.flavor, MESH_FLAVOR_OLLAMA);
        assert_true (p.model_list && p.model_listed);
    }
    const char *unlisted[] = { "qwen2.5", "llama3.2:1b", "llama3", "", NULL };
    for (int i = 0; i < 5; i++) {
        p = s_probe ("/api/tags", 200, tags, unlisted[i]);
        assert_true (p.model_list);
        assert_false (p.model_listed);
    }
    //  Ollama's /v1/models: names with ":latest", owned_by "library".
    p = s_probe ("/v1/models", 200, "{\"object\":\"list\",\"data\":[{\"id\":\"llama3.2:latest\","
                 "\"object\":\"model\",\"created\":1735689600,\"owned_by\":\"library\"}]}",
                 "llama3.2");
    assert_true (p.model_list && p.model_listed);
    assert_int_equal (p.flavor, MESH_FLAVOR_AUTO);

    const char *ps =
      "{\"models\":[{\"name\":\"llama3.2:latest\",\"model\":\"llama3.2:latest\",\"size\":"
      "3619777536,\"digest\":\"a80c4f17\",\"expires_at\":\"2025-01-01T00:05:00Z\","
      "\"size_vram\":3619777536,\"context_length\":4096}]}";
    p = s_probe ("/api/ps", 200, ps, "llama3.2");
    assert_int_equal (p.flavor, MESH_FLAVOR_OLLAMA);
    assert_int_equal (p.context_tokens, 4096);
    assert_false (p.model_list);            //  loaded models, not the list of models
    p = s_probe ("/api/ps", 200, ps, "qwen2.5:7b");
    assert_int_equal (p.context_tokens, 0);
    p = s_probe ("/api/ps", 200, "{\"models\":[]}", "llama3.2");
    assert_int_equal (p.context_tokens, 0);

    p = s_probe ("/api/show", 200,
                 "{\"license\":\"...\",\"modelfile\":\"FROM x\",\"parameters\":\"num_ctx "
                 "                       8192\\nstop                           "
                 "\\\"<|eot_id|>\\\"\","
                 "\"template\":\"...\",\"details\":{\"family\":\"llama\"},\"model_info\":"
                 "{\"general.architecture\":\"llama\",\"general.parameter_count\":3212749888,"
                 "\"llama.context_length\":131072,\"llama.embedding_length\":3072}}", "llama3.2");
    assert_int_equal (p.flavor, MESH_FLAVOR_OLLAMA);
    assert_int_equal (p.context_tokens, 8192);     //  num_ctx: what it runs with
    p = s_probe ("/api/show", 200,
                 "{\"parameters\":\"stop                           \\\"<|im_end|>\\\"\\n"
                 "num_ctx                        8192\"}", "qwen2.5:7b");
    assert_int_equal (p.context_tokens, 8192);
    p = s_probe ("/api/show", 200, "{\"model_info\":{\"qwen2.context_length\":32768}}",
                 "qwen2.5:7b");
    assert_int_equal (p.context_tokens, 32768);
    p = s_probe ("/api/show", 404, "{\"error\":\"model 'x' not found\"}", "x");
    assert_false (p.answered);
    assert_int_equal (p.context_tokens, 0);
}

static void
test_probe_hostile (void **state)
{
    (void) state;
    const char *paths[] = { "/health", "/props", "/v1/models", "/info", "/api/version",
                            "/api/tags", "/api/ps", "/api/show", "/", "/unknown" };
    const char *bodies[] = { "", "null", "[]", "{}", "\"x\"", "{\"data\":7}",
                             "{\"data\":[1,null,{}]}", "{\"models\":[7,{\"name\":1}]}",
                             "{\"model_info\":[],\"parameters\":7}",
                             "{\"parameters\":\"num_ctx\"}", "{\"parameters\":\"num_ctx -5\"}",
                             "{\"default_generation_settings\":7,\"n_ctx\":-1}",
                             "{\"max_input_tokens\":-3,\"max_total_tokens\":1e99}", "\xff\xfe" };
    long statuses[] = { 200, 204, 503, 404, 0, -1 };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        for (size_t j = 0; j < sizeof bodies / sizeof bodies[0]; j++)
            for (size_t k = 0; k < sizeof statuses / sizeof statuses[0]; k++) {
                mesh_wire_probe_t p = s_probe (paths[i], statuses[k], bodies[j], "m");
                assert_true (p.context_tokens >= 0);
                assert_false (p.model_listed);
            }
    mesh_wire_probe_t p;
    mesh_wire_probe_read (NULL, 200, NULL, 0, NULL, &p);
    assert_true (p.answered);
    assert_false (p.ready);
}

//  --- main ------------------------------------------------------------------------------

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_names),
        cmocka_unit_test (test_request_openai_stream),
        cmocka_unit_test (test_request_not_streamed),
        cmocka_unit_test (test_request_tgi),
        cmocka_unit_test (test_request_ollama_native),
        cmocka_unit_test (test_stream_llamacpp),
        cmocka_unit_test (test_stream_vllm),
        cmocka_unit_test (test_stream_ollama),
        cmocka_unit_test (test_stream_ollama_native),
        cmocka_unit_test (test_stream_tgi),
        cmocka_unit_test (test_stream_errors),
        cmocka_unit_test (test_stream_crlf),
        cmocka_unit_test (test_stream_line_limit),
        cmocka_unit_test (test_stream_malformed),
        cmocka_unit_test (test_stream_sse_details),
        cmocka_unit_test (test_stream_feed_returns),
        cmocka_unit_test (test_stream_choices),
        cmocka_unit_test (test_stream_bounds),
        cmocka_unit_test (test_body_openai),
        cmocka_unit_test (test_body_malformed),
        cmocka_unit_test (test_body_error),
        cmocka_unit_test (test_body_ollama_native),
        cmocka_unit_test (test_error_text),
        cmocka_unit_test (test_classify),
        cmocka_unit_test (test_schema_refused_transient),
        cmocka_unit_test (test_retry_after),
        cmocka_unit_test (test_backoff),
        cmocka_unit_test (test_split_think),
        cmocka_unit_test (test_probe_health),
        cmocka_unit_test (test_probe_llamacpp),
        cmocka_unit_test (test_probe_vllm_tgi),
        cmocka_unit_test (test_probe_ollama),
        cmocka_unit_test (test_probe_hostile),
    };
    return cmocka_run_group_tests_name ("wire", tests, NULL, NULL);
}
