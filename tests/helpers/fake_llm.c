/*  fake_llm - a test inference server that impersonates the servers the agent talks to:
 *  a plain OpenAI-compatible one, llama.cpp's llama-server, vLLM, Ollama (its OpenAI layer
 *  and its native /api/chat) and Hugging Face TGI, streaming and not, with faults.
 *
 *      fake_llm --port P | --port-file F  [--flavor F] [--legacy] [--model NAME] [--ctx N]
 *               [--responses FILE] [--mode MODE] [--fail-count N] [--retry-after V]
 *               [--hang-ms N] [--delay-ms N] [--drip-ms N] [--keepalive-ms N]
 *               [--load-ms N] [--chunk-bytes N] [--requests LOG] [--probes LOG]
 *
 *  The shapes follow the servers' own source as the project's research notes on inference
 *  backends record them.  Each request is decided first (s_plan: faults that ignore the
 *  body, the flavour's checks, faults on a valid request, the context, the answer) and
 *  sent last (s_finish), so every wait can sit before the status line or, in a stream with
 *  keep-alive comments, after it.  Streams are lists of prepared events sent by a
 *  libmicrohttpd content reader, in the connection's own thread (one per connection:
 *  a hanging or dripping answer holds up no other client).
 *
 *  Options
 *      --flavor F        openai (default: exactly the server this file always was),
 *                        llamacpp, vllm, ollama, ollama-native, tgi.  ollama and
 *                        ollama-native are one server (Ollama serves both endpoints);
 *                        the name only says which one a test means.
 *      --legacy          older formats still in the field: Ollama /v1 streams as before
 *                        v0.32.6 (every chunk repeats role, the last has content "" and
 *                        the finish); llama.cpp (builds before September 2025) reports
 *                        mid-stream errors as a non-standard "error: {...}" line and a
 *                        context overflow with its older type and text, inside a stream.
 *      --model NAME      the served model, default "fake-model" (see "model" below).
 *      --ctx N           the context in tokens: reported by the probes (default 4096) and,
 *                        only when given, enforced (see Context).
 *      --responses FILE  canned outputs, cycled, in the format of
 *                        config/demo-responses.jsonl: {"content": string,
 *                        "completion_tokens": optional integer} per line.
 *      --mode MODE       the fault to simulate (see Modes); default ok.
 *      --fail-count N    how many completion requests (n <= N in the request log) the
 *                        *-once modes and loading-then-ready fail; default 1.
 *      --retry-after V   the Retry-After value (seconds or an HTTP date) for
 *                        rate-limited-after (default "1") and rate-limited-once (none).
 *      --hang-ms N       timeout's and hang's wait; default 10000.
 *      --delay-ms N      every completion request waits N ms before its answer, in every
 *                        mode, before the mode's own behaviour (timeout waits delay +
 *                        hang); default 0.  With --keepalive-ms a llamacpp or tgi stream
 *                        sends its headers first and spends the wait in keep-alives.
 *      --drip-ms N       slow-drip's gap between events; default 500.
 *      --keepalive-ms N  llamacpp sends ": keep-alive" and tgi ":" (SSE comment lines)
 *                        every N ms while a stream waits (delay, timeout, slow-drip gaps);
 *                        default 0, none.  The other servers send none.
 *      --load-ms N       loading-then-ready: llama.cpp, vLLM and TGI are also ready N ms
 *                        after start; Ollama's load takes N ms (default 2000).
 *      --chunk-bytes N   content bytes per streamed chunk, about two tokens by default (8),
 *                        cut on a UTF-8 boundary; more for a text that would take over
 *                        2048 chunks (an 880 KB output: 440 bytes), 64 KiB for huge.
 *      --requests LOG    appends one JSON line per completion request received, written
 *                        as soon as it is read (before any wait, in every mode, refused
 *                        bodies included): {"authorization": header or null, "path": the
 *                        URL (not in openai, whose lines are as they always were), "body":
 *                        the request or null if it was not JSON or too large, "n": 1-based
 *                        count of completion requests this process received}.
 *      --probes LOG      appends {"method","path"} per other request (health, models, ...).
 *
 *  --port 0 (or --port-file alone) binds an ephemeral port on 127.0.0.1 and writes it to
 *  the port file (written to a temporary name and renamed, so a reader never sees half a
 *  number).  The process exits on SIGTERM/SIGINT, or when its parent dies.
 *
 *  Endpoints (anything else: the server's own 404)
 *      openai    POST /v1/chat/completions; GET /v1/models (NAME, owned_by fake_llm);
 *                GET /health {"status":"ok"}; 404 {"error":{"code":404,"message":
 *                "not found","type":"not_found_error"}}
 *      llamacpp  POST /v1/chat/completions and /chat/completions; GET /health,
 *                /v1/health {"status":"ok"}; GET /props (default_generation_settings.n_ctx
 *                and n_ctx = ctx); GET /v1/models, /models (owned_by llamacpp,
 *                meta.n_ctx_train 131072, the model's not the slot's); 404 {"error":
 *                {"code":404,"message":"File Not Found","type":"not_found_error"}}
 *      vllm      POST /v1/chat/completions; GET /health, /ping (200, empty); GET
 *                /v1/models (owned_by vllm, max_model_len = ctx); GET /version; 404
 *                {"detail":"Not Found"}, 405 {"detail":"Method Not Allowed"}
 *      ollama    POST /v1/chat/completions (OpenAI layer), POST /api/chat (NDJSON); GET
 *                and HEAD / "Ollama is running"; GET /api/version; GET /api/tags
 *                (NAME:latest); GET /api/ps (context_length = ctx, and empty until a
 *                completion request has loaded the model); POST /api/show (model_info
 *                llama.context_length = ctx); GET /v1/models, /v1/models/NAME; 404
 *                text "404 page not found".  No /health.
 *      tgi       POST /v1/chat/completions; GET /health, /, /ping (200, empty); GET /info
 *                (model_id, max_input_tokens = ctx - 1, max_total_tokens = ctx); GET
 *                /v1/models (created 0, owned_by the model id); empty 404 and 405
 *
 *  Answers.  A request streams when it has "stream": true (/api/chat: unless "stream":
 *  false); else it gets one JSON answer.  Usage: prompt tokens = (bytes of the request's
 *  "messages" as compact JSON + 3) / 4; completion tokens = the response line's
 *  "completion_tokens", else (bytes of the output + 3) / 4.
 *      openai    as always: {"id":"chatcmpl-fakeN","object","created","model" (the
 *                request's, else NAME),"choices":[{"index","message","finish_reason"}],
 *                "usage"}.  Stream: delta {role, content ""}, content deltas, a finish
 *                chunk with delta {}, with stream_options.include_usage a usage chunk
 *                (choices []), "data: [DONE]".
 *      llamacpp  model = the alias (NAME if --model is given, else "fake-model.gguf");
 *                id chatcmpl-<32 alnum>; system_fingerprint "b6500-fakellm"; usage with
 *                prompt_tokens_details; timings.  Stream: first delta {role, content
 *                null}; the finish in a chunk of its own with delta {}; only with
 *                include_usage a chunk with choices [], usage and timings (else timings
 *                ride on the finish chunk); "data: [DONE]".
 *      vllm      model = the request's, else NAME (another name: 404); message with
 *                refusal, annotations, audio, function_call, tool_calls [],
 *                reasoning_content; stop_reason; system_fingerprint null.  Stream: first
 *                delta {role, content ""}; finish_reason and stop_reason on the last
 *                content chunk; a usage chunk whenever stream_options is given
 *                (include_usage defaults to true there); "data: [DONE]".
 *      ollama    /v1: model = the request's (required; another name: 404); id
 *                chatcmpl-<0..998>; system_fingerprint "fp_ollama".  Stream: role on the
 *                first chunk only, the finish in a chunk of its own with delta {}, a usage
 *                chunk with include_usage, "data: [DONE]" (--legacy: see above).
 *                /api/chat: {"model","created_at","message":{role, content},"done":false}
 *                lines (application/x-ndjson), the last with content "", done true,
 *                done_reason, total/load/prompt_eval/eval durations (ns),
 *                prompt_eval_count, eval_count; stream false: one such object with the
 *                whole content.  "format" and "keep_alive" are accepted and ignored; no
 *                messages: the load answer (done_reason "load").
 *      tgi       model = the served id ("fake/tgi-model", or NAME); id ""; system_
 *                fingerprint "3.3.6-native".  Stream: "data:" WITHOUT a space; every chunk
 *                carries role, one piece of content and "usage":null; the end of sequence
 *                is a chunk with content "" and finish "stop" ("length" and "stop_sequence"
 *                ride on the last piece instead); a usage chunk with include_usage;
 *                "data:[DONE]".
 *  The server flavours (not openai) also act on the request as the servers do: a stop
 *  string found in the output ends it there (finish "stop", vLLM's stop_reason names it;
 *  TGI keeps the stop text and says "stop_sequence"), and generation stops at the token
 *  cap (llama.cpp n_predict, else max_completion_tokens, else max_tokens; vLLM
 *  max_completion_tokens, else max_tokens; Ollama /v1 max_tokens only; /api/chat
 *  options.num_predict; TGI max_tokens or max_completion_tokens): the output is cut at
 *  cap * 4 bytes and finishes "length".
 *
 *  Checks, before any mode that looks at the body (413 past 1 MiB for all):
 *      openai    400 unless "messages" is a non-empty array (a body that is not JSON too)
 *      llamacpp  500 for a body that is not JSON (nlohmann's parse error); 400 as openai
 *      vllm      400 not JSON; 404 {"error":{"message":"The model `x` does not exist.",
 *                "type":"NotFoundError","param":null,"code":404}} for a model other than
 *                NAME; 400 without messages; 400 "Stream options can only be defined when
 *                `stream=True`." for stream_options without "stream": true
 *      ollama    400 not JSON; 400 "model is required"; 404 "model 'x' not found" for
 *                a model other than NAME (NAME and NAME:latest are one model), /v1:
 *                {"error":{"message":...,"type":"not_found_error","param":null,"code":
 *                null}}, /api/chat: {"error":"model 'x' not found"}; /v1: 400 "[] is too
 *                short - 'messages'"
 *      tgi       415 text/plain without Content-Type: application/json; 400 text/plain
 *                for a body that is not JSON; 422 text/plain "Failed to deserialize the
 *                JSON body into the target type: ..." when messages or stop is not an
 *                array, when response_format has no "value" (the OpenAI shape
 *                {"type":"json_schema","json_schema":...} gets "response_format: missing
 *                field `value`") or an unknown type (TGI's own adds " at line L column C");
 *                422 {"error":"Input validation error: ...","error_type":"validation"}
 *                for empty messages, top_p not strictly inside (0, 1) ("`top_p` must be >
 *                0.0 and < 1.0"), temperature < 0, frequency_penalty outside [-2, 2],
 *                more than 4 stop strings.
 *
 *  Context (with --ctx N; P = the prompt estimate above, C = the token cap or 0):
 *      llamacpp  P >= N: 400 {"error":{"code":400,"message":"request (P tokens) exceeds
 *                the available context size (N tokens), try increasing it","type":
 *                "exceed_context_size_error","n_prompt_tokens":P,"n_ctx":N}} (--legacy:
 *                type invalid_request_error, the older text, and as an "error:" line in a
 *                200 stream when streaming); a prompt that fits with too little room for
 *                the answer: the answer is cut where the context is full, "length".
 *      vllm      P + C > N (P >= N without a cap): 400 BadRequestError "This model's
 *                maximum context length is N tokens. However, you requested P+C tokens (P
 *                in the messages, C in the completion). Please reduce the length of the
 *                messages or completion."  openai: the same text in OpenAI's shape,
 *                param "messages", code "context_length_exceeded".
 *      ollama    P >= N: 400 "the prompt is longer than the context length currently
 *                available to the model" (/v1 and /api/chat shapes); cut as llama.cpp.
 *      tgi       P > N - 1: "Input validation error: `inputs` must have less than N-1
 *                tokens. Given: P"; P + C > N: "Input validation error: `inputs` tokens +
 *                `max_new_tokens` must be <= N. Given: P `inputs` tokens and C
 *                `max_new_tokens`": 422 validation, or, streaming, inside a 200 stream as
 *                data:{"error":{"message":...,"http_status_code":422}} then data:[DONE].
 *  So "prompt + cap over N is an error" holds for vLLM, TGI and openai only: llama.cpp and
 *  Ollama refuse just a prompt that does not fit, as those servers do.
 *
 *  Modes.  Each works for every flavour, streaming and not, in that flavour's shapes;
 *  drop, hang, loading, loading-then-ready, rate-limited*, overloaded* act whatever the
 *  body (on the requests they fail); the others first run the checks above.
 *      ok             a normal answer
 *      500            HTTP 500 "fake_llm: simulated server error" in the flavour's error
 *                     shape (openai, llamacpp {"error":{"code","message","type":
 *                     "server_error"}}; vllm InternalServerError; ollama /v1 api_error,
 *                     /api/chat {"error":...}; tgi error_type incomplete_generation)
 *      timeout        waits --hang-ms before answering (in keep-alives, see --delay-ms)
 *      hang           sends nothing at all for --hang-ms, then closes the connection
 *                     without a reply (timeout, by contrast, answers)
 *      malformed      HTTP 200 that is not JSON (nor UTF-8, a \xff): text/html when not
 *                     streaming; streaming, the flavour's framing (data: lines, NDJSON
 *                     lines, [DONE]) around payloads that are not JSON
 *      garbage        HTTP 200 with text/event-stream (/api/chat: application/x-ndjson)
 *                     when streaming, else the flavour's JSON Content-Type, and a body of
 *                     garbage lines: not JSON, no framing, some not UTF-8
 *      no-usage       a normal answer without usage, streaming too (llamacpp: nor
 *                     timings; /api/chat: no prompt_eval_count nor eval_count)
 *      stream-usage-missing  streaming: no usage even when asked (as no-usage);
 *                     not streaming: a normal answer
 *      reject-schema  with response_format (/api/chat: format) in the request, HTTP 400
 *                     naming it in the flavour's shape (tgi: 422 "Input validation error:
 *                     grammar is not supported", as --disable-grammar-support); else ok
 *      tgi-error      HTTP 422 with TGI's {"error":"Input validation error: simulated by
 *                     fake_llm","error_type":"validation"}, in every flavour
 *      two-choices    the output twice in "choices" (openai: both index 0, as always; the
 *                     others index 0 and 1; streaming: both in every chunk); /api/chat has
 *                     no choices: a normal answer
 *      length         finish_reason "length" (/api/chat: done_reason)
 *      huge           the content padded past 1 MiB (2 MiB of spaces after the output), as
 *                     a server ignoring max_tokens would
 *      nul            the content {"action":"x\u0000"}: a NUL in the middle
 *      bad-utf8       the content "caf" and a raw 0xff byte (openai not streaming: a bare
 *                     {"choices":[...]} answer, as always)
 *      think          reasoning first: inline "<think>\nI should look at the
 *                     series...\n</think>\n\n" before the content for openai, llamacpp, tgi
 *                     (servers without a reasoning parser); apart for vllm
 *                     (reasoning_content), ollama /v1 (reasoning), /api/chat
 *                     (message.thinking), streamed as chunks of their own before the
 *                     content; counted in the completion tokens
 *      max-usage      usage.completion_tokens (/api/chat eval_count) is the token cap
 *                     exactly (openai: max_tokens, else max_completion_tokens; the others
 *                     as they read it); with none, the usual estimate
 *      over-usage     as max-usage, but every 3rd completion request received (n = 3, 6,
 *                     9, ... in the request log) reports cap + 50
 *      context-overflow  the flavour's context error (see Context) for every request
 *      model-not-found   the flavour's unknown-model 404 for every request: vllm and
 *                     ollama as in Checks; llamacpp {"error":{"code":404,"message":"model
 *                     'x' not found","type":"not_found_error"}} (only router mode has one);
 *                     openai OpenAI's "The model `x` does not exist or you do not have
 *                     access to it." code model_not_found; tgi a normal answer (TGI serves
 *                     an unknown model id with its base model)
 *      in-stream-error  streaming: 200, the opening chunk and 3 pieces of content, then
 *                     the flavour's mid-stream error: llamacpp data: {"error":{"code":500,
 *                     "message":...,"type":"server_error"}} (--legacy: error: {...}) then
 *                     data: [DONE]; vllm data: {"error":{..."InternalServerError"...}} then
 *                     [DONE]; openai the same with type server_error; ollama /v1: the
 *                     stream just ends (no finish, no [DONE]); /api/chat: an {"error":...}
 *                     line; tgi data:{"error":{"message":"Request failed during generation:
 *                     ...","http_status_code":422}} then data:[DONE].  Not streaming: the
 *                     flavour's generation failure: HTTP 500 (tgi: 424, error_type
 *                     generation)
 *      loading        HTTP 503 with llama.cpp's shape {"error":{"code":503,"message":
 *                     "Loading model","type":"unavailable_error"}} in every flavour
 *                     (the probes stay 200)
 *      loading-then-ready  the server is loading until it has refused --fail-count
 *                     completion requests (or --load-ms has passed), then ready.  While
 *                     loading: llamacpp (and openai) 503 "Loading model" to completions
 *                     and to every probe (openai: /health); vllm and tgi answer
 *                     completions and every probe with 503 as their /health does then
 *                     (vllm empty, tgi {"error":"unhealthy","error_type":"healthcheck"});
 *                     a real one may not be listening at all yet (connection refused:
 *                     start the fake late).  Ollama loads on demand instead (its 503
 *                     "server busy" is overload, not loading): the first --fail-count
 *                     requests wait --load-ms (default 2000) and then answer,
 *                     load_duration saying so
 *      rate-limited   HTTP 429 with OpenAI's shape {"error":{"message":...,"type":
 *                     "requests","param":null,"code":"rate_limit_exceeded"}}, no
 *                     Retry-After, in every flavour (none of the servers rate-limits; a
 *                     gateway in front of one does)
 *      rate-limited-after  the same with Retry-After: --retry-after (default "1")
 *      rate-limited-once   the first --fail-count requests rate-limited (Retry-After only
 *                     with --retry-after), then normal answers
 *      overloaded     ollama 503 "server busy, please try again.  maximum pending requests
 *                     exceeded" (/v1 type api_error; /api/chat {"error":...}); tgi 429
 *                     {"error":"Model is overloaded","error_type":"overloaded"}; openai 503
 *                     "The engine is currently overloaded, please try again later";
 *                     llamacpp and vllm queue rather than refuse: a normal answer after
 *                     --delay-ms (give one)
 *      overloaded-once  the first --fail-count requests overloaded, then normal answers
 *      cut            HTTP 200 whose Content-Length is the whole answer's, but only its
 *                     first half is sent before the connection is closed; streaming: as
 *                     drop-mid-stream
 *      drop, drop-before-headers  reads the whole request, then closes the connection
 *                     without sending anything (the client sees an empty reply)
 *      drop-after-headers  status 200 and headers (chunked when streaming, else the whole
 *                     answer's Content-Length), then the connection closed before a byte
 *                     of the body
 *      drop-mid-stream  streaming: the first half of the events, then the connection
 *                     closed (no [DONE], no done line, no end chunk); not streaming: cut
 *      slow-drip      streaming: one event every --drip-ms; not streaming: the body in
 *                     eight pieces --drip-ms apart
 *      resend-probe   normal answers, but after each response the server closes the
 *                     connection (shutdown of the socket) although the response had no
 *                     "Connection: close": a client reusing the connection for its next
 *                     request finds it dead and must send that request again on a new one.
 *                     A request the client wrote on the old connection before the close
 *                     reached it is not handled, logged nor counted (the connection is
 *                     dropped), so each request is counted once whichever way that race goes
 *
 *  Not covered: real tokenisation (every count is a byte estimate) and real timing
 *  (timings, durations and the pace of chunks are made up); batching, queues and slots
 *  (each request is answered at once, in its own thread); tool calls, logprobs, n,
 *  images; structured output (response_format and format are checked as TGI does or
 *  accepted, never enforced: the output is the canned text); sampling parameters;
 *  vLLM's continuous_usage_stats and guided_* fields, Ollama's options other than
 *  num_predict and stop (num_ctx is not read: the context is --ctx), keep_alive unloads
 *  and silent chat-history truncation, llama.cpp's context shift, /completion, /slots,
 *  /metrics and router mode (beyond its 404), TGI's /generate, /metrics and x-compute-*
 *  headers; the flat error shape of vLLM before 0.10.1; TLS, authentication (the
 *  Authorization header is only logged), HTTP/2, compression.  It is a test double for
 *  the client's request/response handling, not a model.
 */
#include <jansson.h>
#include <microhttpd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_UPLOAD (1024 * 1024)
#define S_BLOCK (64 * 1024)             //  libmicrohttpd's buffer for a callback response
#define S_MAX_PIECES 2048               //  content chunks per streamed answer, at most
#define S_THINK_INLINE "<think>\nI should look at the series...\n</think>\n\n"
#define S_THINK_APART "I should look at the series..."
#define S_GEN_ERROR "fake_llm: simulated error during generation"
#define S_OLLAMA_BUSY "server busy, please try again.  maximum pending requests exceeded"
#define S_OLLAMA_CTX "the prompt is longer than the context length currently available to the model"
#define S_TGI_DESERIALIZE "Failed to deserialize the JSON body into the target type: "

//  --- configuration -------------------------------------------------------------------

typedef enum { F_OPENAI, F_LLAMACPP, F_VLLM, F_OLLAMA, F_OLLAMA_NATIVE, F_TGI } s_flavor_t;

static const char *s_flavor_names[] = {
    "openai", "llamacpp", "vllm", "ollama", "ollama-native", "tgi", NULL
};

//  The wire format of one answer: the flavour's, except that an Ollama server speaks
//  the OpenAI layer on /v1/chat/completions and its own NDJSON on /api/chat.
typedef enum { D_OPENAI, D_LLAMACPP, D_VLLM, D_OLLAMA, D_NATIVE, D_TGI } s_dialect_t;

typedef enum {
    S_OK, S_500, S_TIMEOUT, S_MALFORMED, S_NO_USAGE, S_REJECT_SCHEMA, S_TGI, S_TWO_CHOICES,
    S_LENGTH, S_HUGE, S_NUL, S_BAD_UTF8, S_MAX_USAGE, S_OVER_USAGE, S_LOADING, S_RATE_LIMITED,
    S_CUT, S_DROP, S_RESEND_PROBE, S_DROP_AFTER_HEADERS, S_DROP_MID_STREAM, S_HANG,
    S_SLOW_DRIP, S_GARBAGE, S_RATE_LIMITED_AFTER, S_RATE_LIMITED_ONCE, S_LOADING_THEN_READY,
    S_OVERLOADED, S_OVERLOADED_ONCE, S_MODEL_NOT_FOUND, S_IN_STREAM_ERROR, S_THINK,
    S_STREAM_USAGE_MISSING, S_CONTEXT_OVERFLOW
} s_mode_t;

static const struct {
    const char *name;
    s_mode_t mode;
} s_mode_names[] = {
    { "ok", S_OK }, { "500", S_500 }, { "timeout", S_TIMEOUT }, { "malformed", S_MALFORMED },
    { "no-usage", S_NO_USAGE }, { "reject-schema", S_REJECT_SCHEMA }, { "tgi-error", S_TGI },
    { "two-choices", S_TWO_CHOICES }, { "length", S_LENGTH }, { "huge", S_HUGE },
    { "nul", S_NUL }, { "bad-utf8", S_BAD_UTF8 }, { "max-usage", S_MAX_USAGE },
    { "over-usage", S_OVER_USAGE }, { "loading", S_LOADING }, { "rate-limited", S_RATE_LIMITED },
    { "cut", S_CUT }, { "drop", S_DROP }, { "drop-before-headers", S_DROP },
    { "resend-probe", S_RESEND_PROBE }, { "drop-after-headers", S_DROP_AFTER_HEADERS },
    { "drop-mid-stream", S_DROP_MID_STREAM }, { "hang", S_HANG }, { "slow-drip", S_SLOW_DRIP },
    { "garbage", S_GARBAGE }, { "rate-limited-after", S_RATE_LIMITED_AFTER },
    { "rate-limited-once", S_RATE_LIMITED_ONCE }, { "loading-then-ready", S_LOADING_THEN_READY },
    { "overloaded", S_OVERLOADED }, { "overloaded-once", S_OVERLOADED_ONCE },
    { "model-not-found", S_MODEL_NOT_FOUND }, { "in-stream-error", S_IN_STREAM_ERROR },
    { "think", S_THINK }, { "stream-usage-missing", S_STREAM_USAGE_MISSING },
    { "context-overflow", S_CONTEXT_OVERFLOW }, { NULL, S_OK }
};

typedef struct {
    char *content;
    long completion_tokens;         //  -1: estimate
} s_output_t;

static s_output_t *s_outputs;
static size_t s_output_count;
static atomic_size_t s_next;
static s_flavor_t s_flavor = F_OPENAI;
static s_mode_t s_mode = S_OK;
static bool s_legacy;
static const char *s_model = "fake-model";
static bool s_model_given;
static long s_ctx = 4096;
static bool s_ctx_given;
static long s_hang_ms = 10000;
static long s_delay_ms = 0;
static long s_drip_ms = 500;
static long s_keepalive_ms = 0;
static long s_load_ms = 0;
static long s_fail_count = 1;
static long s_chunk_bytes = 8;
static const char *s_retry_after;
static const char *s_requests_path;
static const char *s_probes_path;
static long s_received;             //  completion requests received; under s_log_mutex
static pthread_mutex_t s_log_mutex = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool s_stopping;
static atomic_bool s_ollama_loaded; //  Ollama's /api/ps lists the model once it has run
static struct timespec s_started;

typedef struct {
    char *data;
    size_t size;
    bool too_big;
} s_upload_t;

//  Per connection (libmicrohttpd's socket context): resend-probe has answered on it.
typedef struct {
    bool answered;
} s_socket_t;

//  --- small helpers ---------------------------------------------------------------------

//  Sleeps ms milliseconds, or less if the process is stopping.
static void
s_sleep_ms (long ms)
{
    for (long waited = 0; waited < ms && !atomic_load (&s_stopping); waited += 10)
        usleep (10000);
}

static long
s_elapsed_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (long) ((now.tv_sec - s_started.tv_sec) * 1000
                   + (now.tv_nsec - s_started.tv_nsec) / 1000000);
}

//  Pseudo-random 64 bits (splitmix64 over a shared counter): ids only, not secrets.
static uint64_t
s_random (void)
{
    static atomic_uint_fast64_t state;
    uint64_t z = atomic_fetch_add (&state, 0x9E3779B97F4A7C15ULL)
               + (uint64_t) time (NULL) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

//  Writes `len` characters from `alphabet` to `out` and a NUL.
static void
s_random_text (char *out, size_t len, const char *alphabet)
{
    size_t size = strlen (alphabet);
    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[s_random () % size];
    out[len] = 0;
}

//  RFC 3339 with nanoseconds, UTC, as Go prints time.Time (Ollama's created_at).
static void
s_rfc3339 (char *out, size_t size, long offset_s)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    time_t secs = now.tv_sec + offset_s;
    struct tm tm;
    gmtime_r (&secs, &tm);
    char date[40];
    strftime (date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (out, size, "%s.%09ldZ", date, now.tv_nsec);
}

//  The JSON text of value (borrowed); caller frees.
static char *
s_dump (json_t *value)
{
    return json_dumps (value, JSON_COMPACT | JSON_REAL_PRECISION (10));
}

//  bad-utf8: the content's marker \x01, escaped as \u0001 by the encoder, becomes the raw
//  byte 0xff in the text on the wire.  Returns the text's new length.
static size_t
s_patch_bad_utf8 (char *text)
{
    size_t len = strlen (text);
    if (s_mode != S_BAD_UTF8)
        return len;
    char *out = text;
    for (const char *in = text; *in;) {
        if (!strncmp (in, "\\u0001", 6)) {
            *out++ = (char) 0xff;
            in += 6;
        }
        else
            *out++ = *in++;
    }
    *out = 0;
    return (size_t) (out - text);
}

//  The longest prefix of text[0..len) no longer than max bytes that ends on a UTF-8
//  character boundary (at least one character when max > 0).
static size_t
s_utf8_cut (const char *text, size_t len, size_t max)
{
    if (max >= len)
        return len;
    size_t cut = max;
    while (cut > 0 && ((unsigned char) text[cut] & 0xC0) == 0x80)
        cut--;
    if (cut == 0 && max > 0) {
        cut = 1;
        while (cut < len && ((unsigned char) text[cut] & 0xC0) == 0x80)
            cut++;
    }
    return cut;
}

static bool
s_is (const char *a, const char *b)
{
    return a && b && !strcmp (a, b);
}

//  --- canned outputs --------------------------------------------------------------------

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

//  --- logs ------------------------------------------------------------------------------

static void
s_append_line (const char *path, json_t *entry)
{
    char *line = s_dump (entry);
    int fd = line ? open (path, O_WRONLY | O_CREAT | O_APPEND, 0600) : -1;
    if (fd >= 0) {
        size_t len = strlen (line);
        line[len] = '\n';
        ssize_t rc = write (fd, line, len + 1);
        (void) rc;
        close (fd);
    }
    free (line);
}

//  Counts a completion request and logs it; body may be NULL (not JSON, too large).
//  Numbered and written under the lock, so the log's lines are in order of "n".
static long
s_note_request (struct MHD_Connection *connection, const char *path, json_t *body)
{
    pthread_mutex_lock (&s_log_mutex);
    long n = ++s_received;
    if (s_requests_path) {
        const char *auth =
          MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "Authorization");
        json_t *entry = json_pack ("{s:o}", "authorization",
                                   auth ? json_string (auth) : json_null ());
        if (s_flavor != F_OPENAI)
            json_object_set_new (entry, "path", json_string (path));
        json_object_set (entry, "body", body ? body : json_null ());
        json_object_set_new (entry, "n", json_integer (n));
        s_append_line (s_requests_path, entry);
        json_decref (entry);
    }
    pthread_mutex_unlock (&s_log_mutex);
    return n;
}

static void
s_note_probe (const char *method, const char *path)
{
    if (!s_probes_path)
        return;
    pthread_mutex_lock (&s_log_mutex);
    json_t *entry = json_pack ("{s:s, s:s}", "method", method, "path", path);
    s_append_line (s_probes_path, entry);
    json_decref (entry);
    pthread_mutex_unlock (&s_log_mutex);
}

static long
s_received_now (void)
{
    pthread_mutex_lock (&s_log_mutex);
    long received = s_received;
    pthread_mutex_unlock (&s_log_mutex);
    return received;
}

//  --- streamed bodies -------------------------------------------------------------------
//
//  A body sent piece by piece from libmicrohttpd's content reader, in the connection's
//  own thread (one thread per connection, so sleeping here holds up no one else).  Each
//  part may wait before it goes out; while a part waits, a keep-alive comment goes out
//  every ping_ms if the stream has one.  After the last part the body ends, or, if the
//  stream is broken, the connection is closed short of it.

typedef struct {
    char *text;
    size_t len;
    long wait_ms;
} s_part_t;

typedef struct {
    s_part_t *parts;
    size_t count;
    size_t index;                   //  the part being sent
    size_t offset;                  //  bytes of it sent
    const char *ping;               //  keep-alive comment, or NULL
    long ping_ms;
    bool broken;
} s_stream_t;

static void
s_stream_add (s_stream_t *stream, char *text, size_t len)
{
    stream->parts = realloc (stream->parts, (stream->count + 1) * sizeof *stream->parts);
    stream->parts[stream->count++] = (s_part_t) { text, len, 0 };
}

static void
s_stream_addn (s_stream_t *stream, const char *text, size_t len)
{
    char *copy = malloc (len + 1);
    memcpy (copy, text, len);
    copy[len] = 0;
    s_stream_add (stream, copy, len);
}

//  Keeps the first `keep` parts and breaks the stream after them.
static void
s_stream_truncate (s_stream_t *stream, size_t keep)
{
    while (stream->count > keep)
        free (stream->parts[--stream->count].text);
    stream->broken = true;
}

static void
s_stream_free (void *cls)
{
    s_stream_t *stream = cls;
    if (!stream)
        return;
    for (size_t i = 0; i < stream->count; i++)
        free (stream->parts[i].text);
    free (stream->parts);
    free (stream);
}

static ssize_t
s_stream_reader (void *cls, uint64_t pos, char *buf, size_t max)
{
    (void) pos;
    s_stream_t *stream = cls;
    while (stream->index < stream->count) {
        s_part_t *part = &stream->parts[stream->index];
        if (part->wait_ms > 0) {
            long slice = part->wait_ms;
            if (stream->ping && stream->ping_ms > 0 && stream->ping_ms < slice)
                slice = stream->ping_ms;
            s_sleep_ms (slice);
            part->wait_ms -= slice;
            if (atomic_load (&s_stopping))
                return MHD_CONTENT_READER_END_WITH_ERROR;
            if (part->wait_ms > 0) {
                size_t len = strlen (stream->ping);
                memcpy (buf, stream->ping, len < max ? len : max);
                return (ssize_t) (len < max ? len : max);
            }
        }
        if (stream->offset < part->len) {
            size_t len = part->len - stream->offset;
            if (len > max)
                len = max;
            memcpy (buf, part->text + stream->offset, len);
            stream->offset += len;
            return (ssize_t) len;
        }
        stream->index++;
        stream->offset = 0;
    }
    return stream->broken ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
}

//  --- replies --------------------------------------------------------------------------
//
//  A request's answer is decided first and sent last (s_finish), so that the waits
//  (--delay-ms, timeout, a queue) can happen before the status line or, in a stream with
//  keep-alive comments, after it.

typedef enum { R_CLOSE, R_BODY, R_STREAM } s_reply_kind_t;

typedef struct {
    s_reply_kind_t kind;
    unsigned int status;
    const char *content_type;
    const char *retry_after;
    char *body;                     //  R_BODY, owned
    size_t len;
    s_stream_t *stream;             //  R_STREAM, owned
    uint64_t size;                  //  R_STREAM: the announced length, or MHD_SIZE_UNKNOWN
    long wait_ms;                   //  before answering, on top of --delay-ms
} s_reply_t;

static void
s_reply_body (s_reply_t *reply, unsigned int status, const char *content_type, char *text,
              size_t len)
{
    reply->kind = R_BODY;
    reply->status = status;
    reply->content_type = content_type;
    free (reply->body);
    reply->body = text;
    reply->len = len;
}

static void
s_reply_text (s_reply_t *reply, unsigned int status, const char *content_type, const char *text)
{
    s_reply_body (reply, status, content_type, strdup (text), strlen (text));
}

//  Takes value.
static void
s_reply_json (s_reply_t *reply, unsigned int status, const char *content_type, json_t *value)
{
    char *text = s_dump (value);
    json_decref (value);
    if (!text)
        text = strdup ("{}");
    size_t len = s_patch_bad_utf8 (text);
    s_reply_body (reply, status, content_type, text, len);
}

//  Takes stream.
static void
s_reply_stream (s_reply_t *reply, const char *content_type, s_stream_t *stream, uint64_t size)
{
    reply->kind = R_STREAM;
    reply->status = 200;
    reply->content_type = content_type;
    reply->stream = stream;
    reply->size = size;
}

static enum MHD_Result
s_finish (struct MHD_Connection *connection, s_reply_t *reply, long delay_ms)
{
    long wait = delay_ms + reply->wait_ms;
    s_stream_t *stream = reply->kind == R_STREAM ? reply->stream : NULL;
    if (stream && stream->ping && reply->size == MHD_SIZE_UNKNOWN && stream->count)
        stream->parts[0].wait_ms += wait;   //  headers now, the wait in keep-alives
    else
        s_sleep_ms (wait);
    struct MHD_Response *response = NULL;
    if (reply->kind == R_BODY) {
        response = MHD_create_response_from_buffer (reply->len, reply->body,
                                                    MHD_RESPMEM_MUST_FREE);
        if (response)
            reply->body = NULL;
    }
    else if (reply->kind == R_STREAM) {
        response = MHD_create_response_from_callback (reply->size, S_BLOCK, s_stream_reader,
                                                      stream, s_stream_free);
        if (response)
            reply->stream = NULL;
    }
    free (reply->body);
    s_stream_free (reply->stream);
    if (!response)
        return MHD_NO;          //  R_CLOSE: libmicrohttpd closes the connection at once
    if (reply->content_type)
        MHD_add_response_header (response, "Content-Type", reply->content_type);
    if (reply->retry_after)
        MHD_add_response_header (response, "Retry-After", reply->retry_after);
    enum MHD_Result rc = MHD_queue_response (connection, reply->status, response);
    MHD_destroy_response (response);
    return rc;
}

//  --- error shapes ---------------------------------------------------------------------

static const char *
s_json_type (s_dialect_t d)
{
    return d == D_OLLAMA || d == D_NATIVE ? "application/json; charset=utf-8"
                                          : "application/json";
}

static const char *
s_stream_type (s_dialect_t d)
{
    return d == D_NATIVE ? "application/x-ndjson"
         : d == D_VLLM   ? "text/event-stream; charset=utf-8"
                         : "text/event-stream";
}

static const char *
s_vllm_type (unsigned int status)
{
    return status == 404 ? "NotFoundError"
         : status == 503 ? "ServiceUnavailableError"
         : status >= 500 ? "InternalServerError"
                         : "BadRequestError";
}

static const char *
s_tgi_type (unsigned int status)
{
    return status == 424 ? "generation"
         : status == 429 ? "overloaded"
         : status == 503 ? "healthcheck"
         : status >= 500 ? "incomplete_generation"
                         : "validation";
}

//  The dialect's error body.  `type` is the llama.cpp / OpenAI-compatible type (used by
//  openai and llamacpp); the others derive theirs from the status, as those servers do.
static json_t *
s_error_json (s_dialect_t d, unsigned int status, const char *message, const char *type)
{
    switch (d) {
        case D_OPENAI:
        case D_LLAMACPP:
            return json_pack ("{s:{s:i, s:s, s:s}}", "error", "code", (int) status, "message",
                              message, "type", type);
        case D_VLLM:
            return json_pack ("{s:{s:s, s:s, s:n, s:i}}", "error", "message", message, "type",
                              s_vllm_type (status), "param", "code", (int) status);
        case D_OLLAMA:
            return json_pack ("{s:{s:s, s:s, s:n, s:n}}", "error", "message", message, "type",
                              status == 404 ? "not_found_error"
                              : status < 500 ? "invalid_request_error" : "api_error",
                              "param", "code");
        case D_NATIVE:
            return json_pack ("{s:s}", "error", message);
        case D_TGI:
            return json_pack ("{s:s, s:s}", "error", message, "error_type", s_tgi_type (status));
    }
    return NULL;
}

static void
s_reply_error (s_reply_t *reply, s_dialect_t d, unsigned int status, const char *message,
               const char *type)
{
    s_reply_json (reply, status, s_json_type (d), s_error_json (d, status, message, type));
}

//  OpenAI's own error body: {"error":{"message","type","param","code"}}.
static void
s_reply_openai (s_reply_t *reply, unsigned int status, const char *message, const char *type,
                const char *param, const char *code)
{
    s_reply_json (reply, status, "application/json",
                  json_pack ("{s:{s:s, s:s, s:o, s:o}}", "error", "message", message, "type",
                             type, "param", param ? json_string (param) : json_null (), "code",
                             code ? json_string (code) : json_null ()));
}

static void
s_reply_rate_limited (s_reply_t *reply)
{
    s_reply_openai (reply, 429, "Rate limit reached for requests: simulated by fake_llm",
                    "requests", NULL, "rate_limit_exceeded");
}

//  --- one completion request ------------------------------------------------------------

typedef struct {
    s_dialect_t d;
    json_t *body;                   //  the request, NULL if it was not JSON or too large
    long n;                         //  its number in the request log
    bool stream;
    bool usage_wanted;              //  streaming with a usage chunk asked for
    const char *req_model;          //  borrowed from body
    const char *model;              //  the answer's "model"
    long cap;                       //  the dialect's token cap, -1 if none
    long prompt_tokens;
    char *content;                  //  the answer's text (may hold a NUL), owned
    size_t len;
    const char *think;              //  reasoning sent apart from the content, or NULL
    const char *finish;             //  "stop", "length", "stop_sequence"
    const char *stop_hit;           //  the stop string that ended the answer, borrowed
    long completion_tokens;
    long load_ms;                   //  Ollama: the model load this request waited for
    char id[80];
    time_t created;
} s_call_t;

//  The request's token cap as the dialect reads it; -1 when absent.
static long
s_cap (s_dialect_t d, json_t *body)
{
    static const char *fields[][3] = {
        [D_OPENAI] = { "max_tokens", "max_completion_tokens", NULL },
        [D_LLAMACPP] = { "n_predict", "max_completion_tokens", "max_tokens" },
        [D_VLLM] = { "max_completion_tokens", "max_tokens", NULL },
        [D_OLLAMA] = { "max_tokens", NULL, NULL },
        [D_NATIVE] = { NULL, NULL, NULL },
        [D_TGI] = { "max_tokens", "max_completion_tokens", NULL },
    };
    if (d == D_NATIVE) {
        json_t *cap = json_object_get (json_object_get (body, "options"), "num_predict");
        return json_is_integer (cap) && json_integer_value (cap) >= 0
               ? (long) json_integer_value (cap) : -1;
    }
    for (int i = 0; i < 3 && fields[d][i]; i++) {
        json_t *cap = json_object_get (body, fields[d][i]);
        if (json_is_integer (cap) && json_integer_value (cap) >= 0)
            return (long) json_integer_value (cap);
    }
    return -1;
}

static const char *
s_llamacpp_alias (void)
{
    return s_model_given ? s_model : "fake-model.gguf";
}

static const char *
s_tgi_id (void)
{
    return s_model_given ? s_model : "fake/tgi-model";
}

//  Ollama's full name for a model: a bare name means the tag "latest".
static void
s_ollama_name (char *out, size_t size, const char *name)
{
    snprintf (out, size, strchr (name, ':') ? "%s" : "%s:latest", name);
}

static bool
s_ollama_knows (const char *name)
{
    char asked[512], served[512];
    s_ollama_name (asked, sizeof asked, name);
    s_ollama_name (served, sizeof served, s_model);
    return !strcmp (asked, served);
}

//  Chooses the answer's text and its finish, per the dialect and the mode.
static void
s_answer (s_call_t *c)
{
    const char *text = "{\"action\":\"escalate\",\"params\":{},\"confidence\":0.9,"
                       "\"rationale\":\"fake_llm default output\"}";
    long tokens = -1;
    if (s_output_count) {
        size_t index = atomic_fetch_add (&s_next, 1) % s_output_count;
        text = s_outputs[index].content;
        tokens = s_outputs[index].completion_tokens;
    }
    bool estimated = tokens < 0;
    if (estimated)
        tokens = (long) (strlen (text) + 3) / 4;
    if (s_mode == S_NUL)
        text = "{\"action\":\"x\0\"}";
    else if (s_mode == S_BAD_UTF8)
        text = "caf\x01";   //  the existing bad-utf8 content, "caf\xff"
    size_t len = s_mode == S_NUL ? 15 : strlen (text);
    size_t pad = s_mode == S_HUGE ? 2 * 1024 * 1024 : 0;
    bool inline_think = s_mode == S_THINK
                        && (c->d == D_OPENAI || c->d == D_LLAMACPP || c->d == D_TGI);
    size_t lead = inline_think ? strlen (S_THINK_INLINE) : 0;
    c->content = malloc (lead + len + pad + 1);
    memcpy (c->content, S_THINK_INLINE, lead);
    memcpy (c->content + lead, text, len);
    memset (c->content + lead + len, ' ', pad);
    c->len = lead + len + pad;
    c->content[c->len] = 0;
    if (s_mode == S_THINK && !inline_think)
        c->think = S_THINK_APART;
    c->finish = s_mode == S_LENGTH ? "length" : "stop";

    if (c->d == D_OPENAI) {
        //  As it always was: the estimate of the canned text, however the mode changed it.
        c->completion_tokens = tokens;
        snprintf (c->id, sizeof c->id, "chatcmpl-fake%zu", atomic_load (&s_next));
    }
    else {
        //  A stop string ends the answer (TGI keeps the stop text; the others drop it).
        json_t *stops = c->d == D_NATIVE
                      ? json_object_get (json_object_get (c->body, "options"), "stop")
                      : json_object_get (c->body, "stop");
        const char *earliest = NULL;
        for (size_t i = 0; i < (json_is_array (stops) ? json_array_size (stops) : 1); i++) {
            json_t *stop = json_is_array (stops) ? json_array_get (stops, i) : stops;
            const char *word = json_string_value (stop);
            if (!word || !*word)
                continue;
            const char *at = memmem (c->content, c->len, word, strlen (word));
            if (at && (!earliest || at < earliest)) {
                earliest = at;
                c->stop_hit = word;
            }
        }
        if (earliest && s_mode != S_LENGTH) {
            c->len = (size_t) (earliest - c->content)
                   + (c->d == D_TGI ? strlen (c->stop_hit) : 0);
            c->content[c->len] = 0;
            c->finish = c->d == D_TGI ? "stop_sequence" : "stop";
        }
        else
            c->stop_hit = NULL;
        if (estimated)
            tokens = (long) (c->len + (c->think ? strlen (c->think) : 0) + 3) / 4;
        //  Generation stops at the token cap (huge ignores it) or, with --ctx, where the
        //  context is full: the answer is cut there and ends with "length".
        long limit = s_mode == S_HUGE ? -1 : c->cap;
        long room = s_ctx - c->prompt_tokens;
        if (s_ctx_given && room > 0 && (limit < 0 || room < limit))
            limit = room;
        if (limit >= 0 && tokens > limit) {
            size_t think_len = c->think ? strlen (c->think) : 0;
            size_t bytes = (size_t) limit * 4 > think_len ? (size_t) limit * 4 - think_len : 0;
            c->len = s_utf8_cut (c->content, c->len, bytes);
            c->content[c->len] = 0;
            tokens = limit;
            c->finish = "length";
        }
        c->completion_tokens = tokens;
        if (c->d == D_LLAMACPP) {
            memcpy (c->id, "chatcmpl-", 9);
            s_random_text (c->id + 9, 32, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                          "0123456789");
        }
        else if (c->d == D_VLLM) {
            memcpy (c->id, "chatcmpl-", 9);
            s_random_text (c->id + 9, 32, "0123456789abcdef");
        }
        else if (c->d == D_OLLAMA)
            snprintf (c->id, sizeof c->id, "chatcmpl-%d", (int) (s_random () % 999));
    }
    if (s_mode == S_MAX_USAGE || s_mode == S_OVER_USAGE) {
        long cap = c->d == D_OPENAI ? s_cap (D_OPENAI, c->body) : c->cap;
        if (cap >= 0) {
            c->completion_tokens = cap;
            if (s_mode == S_OVER_USAGE && c->n % 3 == 0)
                c->completion_tokens += 50;
        }
    }
}

static json_t *
s_usage_json (s_call_t *c)
{
    json_int_t p = c->prompt_tokens, k = c->completion_tokens;
    if (c->d == D_VLLM)
        return json_pack ("{s:I, s:I, s:I}", "prompt_tokens", p, "total_tokens", p + k,
                          "completion_tokens", k);
    return json_pack ("{s:I, s:I, s:I}", "prompt_tokens", p, "completion_tokens", k,
                      "total_tokens", p + k);
}

//  llama.cpp's timings: 0.5 ms per prompt token, 20 ms per generated token.
static json_t *
s_timings (s_call_t *c)
{
    return json_pack ("{s:i, s:I, s:f, s:f, s:f, s:I, s:f, s:f, s:f}", "cache_n", 0, "prompt_n",
                      (json_int_t) c->prompt_tokens, "prompt_ms", c->prompt_tokens * 0.5,
                      "prompt_per_token_ms", 0.5, "prompt_per_second", 2000.0, "predicted_n",
                      (json_int_t) c->completion_tokens, "predicted_ms",
                      c->completion_tokens * 20.0, "predicted_per_token_ms", 20.0,
                      "predicted_per_second", 50.0);
}

//  Ollama's native trailer: done_reason, durations (ns) and, unless usage is withheld,
//  prompt_eval_count and eval_count (which Ollama itself omits at times).
static void
s_native_trailer (s_call_t *c, json_t *line, bool usage)
{
    json_int_t load = c->load_ms ? (json_int_t) c->load_ms * 1000000 : 12345678;
    json_int_t prompt = (json_int_t) c->prompt_tokens * 500000;
    json_int_t eval = (json_int_t) c->completion_tokens * 20000000;
    json_object_set_new (line, "done_reason", json_string (c->finish));
    json_object_set_new (line, "done", json_true ());
    json_object_set_new (line, "total_duration", json_integer (load + prompt + eval));
    json_object_set_new (line, "load_duration", json_integer (load));
    if (usage)
        json_object_set_new (line, "prompt_eval_count", json_integer (c->prompt_tokens));
    json_object_set_new (line, "prompt_eval_duration", json_integer (prompt));
    if (usage)
        json_object_set_new (line, "eval_count", json_integer (c->completion_tokens));
    json_object_set_new (line, "eval_duration", json_integer (eval));
}

static json_t *
s_native_line (s_call_t *c, json_t *message)
{
    char at[64];
    s_rfc3339 (at, sizeof at, 0);
    return json_pack ("{s:s, s:s, s:o}", "model", c->model, "created_at", at, "message", message);
}

//  The whole (non-streamed) answer in the dialect's shape.
static json_t *
s_whole (s_call_t *c)
{
    bool usage = s_mode != S_NO_USAGE;
    json_t *message = json_pack ("{s:s, s:o}", "role", "assistant", "content",
                                 json_stringn (c->content, c->len));
    json_t *fr = json_string (c->finish);
    json_t *reply = NULL, *choice = NULL;
    json_int_t created = (json_int_t) c->created;
    switch (c->d) {
        case D_OPENAI:
            choice = json_pack ("{s:i, s:o, s:o}", "index", 0, "message", message,
                                "finish_reason", fr);
            reply = json_pack ("{s:s, s:s, s:I, s:s, s:[o]}", "id", c->id, "object",
                               "chat.completion", "created", created, "model", c->model,
                               "choices", choice);
            if (usage)
                json_object_set_new (reply, "usage", s_usage_json (c));
            break;
        case D_LLAMACPP:
            choice = json_pack ("{s:o, s:i, s:o}", "finish_reason", fr, "index", 0,
                                "message", message);
            reply = json_pack ("{s:[o], s:I, s:s, s:s, s:s}", "choices", choice, "created",
                               created, "model", c->model, "system_fingerprint",
                               "b6500-fakellm", "object", "chat.completion");
            if (usage) {
                json_t *u = s_usage_json (c);
                json_object_set_new (u, "prompt_tokens_details",
                                     json_pack ("{s:i}", "cached_tokens", 0));
                json_object_set_new (reply, "usage", u);
            }
            json_object_set_new (reply, "id", json_string (c->id));
            if (usage)
                json_object_set_new (reply, "timings", s_timings (c));
            break;
        case D_VLLM:
            json_object_set_new (message, "refusal", json_null ());
            json_object_set_new (message, "annotations", json_null ());
            json_object_set_new (message, "audio", json_null ());
            json_object_set_new (message, "function_call", json_null ());
            json_object_set_new (message, "tool_calls", json_array ());
            json_object_set_new (message, "reasoning_content",
                                 c->think ? json_string (c->think) : json_null ());
            choice = json_pack ("{s:i, s:o, s:n, s:o, s:o}", "index", 0, "message", message,
                                "logprobs", "finish_reason", fr, "stop_reason",
                                c->stop_hit ? json_string (c->stop_hit) : json_null ());
            reply = json_pack ("{s:s, s:s, s:I, s:s, s:[o], s:n, s:n}", "id", c->id, "object",
                               "chat.completion", "created", created, "model", c->model,
                               "choices", choice, "service_tier", "system_fingerprint");
            if (usage) {
                json_t *u = s_usage_json (c);
                json_object_set_new (u, "prompt_tokens_details", json_null ());
                json_object_set_new (reply, "usage", u);
            }
            json_object_set_new (reply, "prompt_logprobs", json_null ());
            json_object_set_new (reply, "kv_transfer_params", json_null ());
            break;
        case D_OLLAMA:
            if (c->think)
                json_object_set_new (message, "reasoning", json_string (c->think));
            choice = json_pack ("{s:i, s:o, s:o}", "index", 0, "message", message,
                                "finish_reason", fr);
            reply = json_pack ("{s:s, s:s, s:I, s:s, s:s, s:[o]}", "id", c->id, "object",
                               "chat.completion", "created", created, "model", c->model,
                               "system_fingerprint", "fp_ollama", "choices", choice);
            if (usage)
                json_object_set_new (reply, "usage", s_usage_json (c));
            break;
        case D_NATIVE:
            if (c->think)
                json_object_set_new (message, "thinking", json_string (c->think));
            json_decref (fr);
            reply = s_native_line (c, message);
            s_native_trailer (c, reply, usage);
            return reply;
        case D_TGI:
            choice = json_pack ("{s:i, s:o, s:n, s:o}", "index", 0, "message", message,
                                "logprobs", "finish_reason", fr);
            reply = json_pack ("{s:s, s:s, s:I, s:s, s:s, s:[o]}", "object", "chat.completion",
                               "id", "", "created", created, "model", c->model,
                               "system_fingerprint", "3.3.6-native", "choices", choice);
            if (usage)
                json_object_set_new (reply, "usage", s_usage_json (c));
            break;
    }
    if (s_mode == S_TWO_CHOICES) {
        json_t *choices = json_object_get (reply, "choices");
        json_t *second = json_deep_copy (json_array_get (choices, 0));
        if (c->d != D_OPENAI)
            json_object_set_new (second, "index", json_integer (1));
        json_array_append_new (choices, second);
    }
    return reply;
}

//  --- streaming -----------------------------------------------------------------------

//  A new stream for the call; llama.cpp and TGI send keep-alive comments while it waits
//  (with --keepalive-ms).
static s_stream_t *
s_stream_new (s_call_t *c)
{
    s_stream_t *stream = calloc (1, sizeof *stream);
    if (s_keepalive_ms > 0 && (c->d == D_LLAMACPP || c->d == D_TGI)) {
        stream->ping = c->d == D_LLAMACPP ? ": keep-alive\n\n" : ":\n\n";
        stream->ping_ms = s_keepalive_ms;
    }
    return stream;
}

//  Frames one payload as the dialect streams it: an SSE event "data: X" (TGI "data:X",
//  without the space), or an NDJSON line (Ollama's /api/chat).
static void
s_emit_text (s_call_t *c, s_stream_t *stream, const char *payload, size_t len)
{
    const char *head = c->d == D_NATIVE ? "" : c->d == D_TGI ? "data:" : "data: ";
    const char *tail = c->d == D_NATIVE ? "\n" : "\n\n";
    size_t head_len = strlen (head), tail_len = strlen (tail);
    char *text = malloc (head_len + len + tail_len + 1);
    memcpy (text, head, head_len);
    memcpy (text + head_len, payload, len);
    memcpy (text + head_len + len, tail, tail_len + 1);
    s_stream_add (stream, text, head_len + len + tail_len);
}

//  Takes value.
static void
s_emit (s_call_t *c, s_stream_t *stream, json_t *value)
{
    char *text = s_dump (value);
    json_decref (value);
    if (!text)
        return;
    size_t len = s_patch_bad_utf8 (text);
    s_emit_text (c, stream, text, len);
    free (text);
}

static void
s_emit_done (s_call_t *c, s_stream_t *stream)
{
    if (c->d != D_NATIVE)
        s_emit_text (c, stream, "[DONE]", 6);
}

//  One choice of a chunk; takes delta.
static json_t *
s_choice (s_call_t *c, int index, json_t *delta, const char *finish)
{
    json_t *fr = finish ? json_string (finish) : json_null ();
    switch (c->d) {
        case D_LLAMACPP:
            return json_pack ("{s:o, s:i, s:o}", "finish_reason", fr, "index", index, "delta",
                              delta);
        case D_VLLM:
        case D_TGI: {
            json_t *choice = json_pack ("{s:i, s:o, s:n, s:o}", "index", index, "delta", delta,
                                        "logprobs", "finish_reason", fr);
            if (c->d == D_VLLM && finish)
                json_object_set_new (choice, "stop_reason",
                                     c->stop_hit ? json_string (c->stop_hit) : json_null ());
            return choice;
        }
        default:
            return json_pack ("{s:i, s:o, s:o}", "index", index, "delta", delta,
                              "finish_reason", fr);
    }
}

//  A chunk around choices (taken), in the dialect's shape.
static json_t *
s_chunk_with (s_call_t *c, json_t *choices)
{
    json_int_t created = (json_int_t) c->created;
    switch (c->d) {
        case D_LLAMACPP:
            return json_pack ("{s:o, s:I, s:s, s:s, s:s, s:s}", "choices", choices, "created",
                              created, "id", c->id, "model", c->model, "system_fingerprint",
                              "b6500-fakellm", "object", "chat.completion.chunk");
        case D_OLLAMA:
            return json_pack ("{s:s, s:s, s:I, s:s, s:s, s:o}", "id", c->id, "object",
                              "chat.completion.chunk", "created", created, "model", c->model,
                              "system_fingerprint", "fp_ollama", "choices", choices);
        case D_TGI:
            return json_pack ("{s:s, s:s, s:I, s:s, s:s, s:o, s:n}", "object",
                              "chat.completion.chunk", "id", "", "created", created, "model",
                              c->model, "system_fingerprint", "3.3.6-native", "choices",
                              choices, "usage");
        default:
            return json_pack ("{s:s, s:s, s:I, s:s, s:o}", "id", c->id, "object",
                              "chat.completion.chunk", "created", created, "model", c->model,
                              "choices", choices);
    }
}

//  A chunk carrying delta (taken) in every choice the mode sends.
static json_t *
s_delta_chunk (s_call_t *c, json_t *delta, const char *finish)
{
    json_t *choices = json_array ();
    int count = s_mode == S_TWO_CHOICES ? 2 : 1;
    for (int i = 0; i < count; i++)
        json_array_append_new (choices, s_choice (c, i, i + 1 < count ? json_deep_copy (delta)
                                                                       : delta, finish));
    return s_chunk_with (c, choices);
}

//  The length of the piece of text[off..len) that goes in one chunk: --chunk-bytes, or
//  more when a long text would need over S_MAX_PIECES chunks (64 KiB in huge mode),
//  ending on a character boundary.
static size_t
s_piece (const char *text, size_t len, size_t off)
{
    size_t want = s_mode == S_HUGE ? 64 * 1024 : (size_t) s_chunk_bytes;
    if (want < (len + S_MAX_PIECES - 1) / S_MAX_PIECES)
        want = (len + S_MAX_PIECES - 1) / S_MAX_PIECES;
    return s_utf8_cut (text + off, len - off, want);
}

//  The streamed answer in the dialect's shape: the opening chunk, the reasoning (when it
//  is sent apart), the first `keep` pieces of content and, if `finished`, the finish,
//  the usage (when asked for and the mode allows it) and the end of the stream.
static void
s_stream_answer (s_call_t *c, s_stream_t *stream, size_t keep, bool finished)
{
    bool usage = s_mode != S_NO_USAGE && s_mode != S_STREAM_USAGE_MISSING;
    size_t think_len = c->think ? strlen (c->think) : 0;
    if (c->d == D_NATIVE) {
        for (size_t off = 0, n; off < think_len; off += n) {
            n = s_piece (c->think, think_len, off);
            json_t *line = s_native_line (c, json_pack ("{s:s, s:s, s:s%}", "role", "assistant",
                                                        "content", "", "thinking",
                                                        c->think + off, n));
            json_object_set_new (line, "done", json_false ());
            s_emit (c, stream, line);
        }
        size_t sent = 0;
        for (size_t off = 0, n; off < c->len && sent < keep; off += n, sent++) {
            n = s_piece (c->content, c->len, off);
            json_t *line = s_native_line (c, json_pack ("{s:s, s:s%}", "role", "assistant",
                                                        "content", c->content + off, n));
            json_object_set_new (line, "done", json_false ());
            s_emit (c, stream, line);
        }
        if (finished) {
            json_t *line = s_native_line (c, json_pack ("{s:s, s:s}", "role", "assistant",
                                                        "content", ""));
            s_native_trailer (c, line, usage);
            s_emit (c, stream, line);
        }
        return;
    }
    //  The opening chunk: llama.cpp's has content null; Ollama and TGI have none (Ollama
    //  puts the role on its first piece, TGI on every piece).
    if (c->d == D_OPENAI || c->d == D_VLLM)
        s_emit (c, stream, s_delta_chunk (c, json_pack ("{s:s, s:s}", "role", "assistant",
                                                        "content", ""), NULL));
    else if (c->d == D_LLAMACPP)
        s_emit (c, stream, s_delta_chunk (c, json_pack ("{s:s, s:n}", "role", "assistant",
                                                        "content"), NULL));
    bool first = true;
    for (size_t off = 0, n; off < think_len; off += n) {
        n = s_piece (c->think, think_len, off);
        json_t *delta = json_object ();
        if (c->d == D_OLLAMA) {
            if (first || s_legacy)
                json_object_set_new (delta, "role", json_string ("assistant"));
            json_object_set_new (delta, "content", json_string (""));
            json_object_set_new (delta, "reasoning", json_stringn (c->think + off, n));
        }
        else
            json_object_set_new (delta, "reasoning_content", json_stringn (c->think + off, n));
        s_emit (c, stream, s_delta_chunk (c, delta, NULL));
        first = false;
    }
    size_t sent = 0;
    for (size_t off = 0, n; off < c->len && sent < keep; off += n, sent++) {
        n = s_piece (c->content, c->len, off);
        bool last = off + n >= c->len;
        json_t *delta = json_object ();
        if (c->d == D_TGI || (c->d == D_OLLAMA && (first || s_legacy)))
            json_object_set_new (delta, "role", json_string ("assistant"));
        json_object_set_new (delta, "content", json_stringn (c->content + off, n));
        //  vLLM puts the finish on the last piece; so does TGI unless the model stopped
        //  on its own (then an end-of-sequence chunk with no text carries it).
        const char *finish = NULL;
        if (finished && last && (c->d == D_VLLM || (c->d == D_TGI && !s_is (c->finish, "stop"))))
            finish = c->finish;
        s_emit (c, stream, s_delta_chunk (c, delta, finish));
        first = false;
    }
    if (!finished)
        return;
    if (c->d == D_VLLM) {
        if (c->len == 0)
            s_emit (c, stream, s_delta_chunk (c, json_pack ("{s:s}", "content", ""), c->finish));
    }
    else if (c->d == D_TGI) {
        if (c->len == 0 || s_is (c->finish, "stop"))
            s_emit (c, stream, s_delta_chunk (c, json_pack ("{s:s, s:s}", "role", "assistant",
                                                            "content", ""), c->finish));
    }
    else if (c->d == D_OLLAMA && s_legacy)
        s_emit (c, stream, s_delta_chunk (c, json_pack ("{s:s, s:s}", "role", "assistant",
                                                        "content", ""), c->finish));
    else {
        //  A chunk of its own with an empty delta; llama.cpp's timings ride on it when no
        //  usage chunk follows.
        json_t *chunk = s_delta_chunk (c, json_object (), c->finish);
        if (c->d == D_LLAMACPP && usage && !c->usage_wanted)
            json_object_set_new (chunk, "timings", s_timings (c));
        s_emit (c, stream, chunk);
    }
    if (usage && c->usage_wanted) {
        json_t *chunk = s_chunk_with (c, json_array ());
        json_object_set_new (chunk, "usage", s_usage_json (c));
        if (c->d == D_LLAMACPP)
            json_object_set_new (chunk, "timings", s_timings (c));
        s_emit (c, stream, chunk);
    }
    s_emit_done (c, stream);
}

//  An error after the stream started, as the dialect reports one (status stays 200).
static void
s_emit_stream_error (s_call_t *c, s_stream_t *stream, const char *message, int code,
                     const char *type)
{
    switch (c->d) {
        case D_OPENAI:
            s_emit (c, stream, json_pack ("{s:{s:s, s:s, s:n, s:n}}", "error", "message",
                                          message, "type", type, "param", "code"));
            break;
        case D_LLAMACPP:
            if (s_legacy) {
                //  Before September 2025: a non-standard "error:" field, then [DONE].
                json_t *error = json_pack ("{s:i, s:s, s:s}", "code", code, "message", message,
                                           "type", type);
                char *text = s_dump (error), *line = NULL;
                json_decref (error);
                int len = text ? asprintf (&line, "error: %s\n\n", text) : -1;
                free (text);
                if (len > 0)
                    s_stream_add (stream, line, (size_t) len);
            }
            else
                s_emit (c, stream, s_error_json (D_LLAMACPP, (unsigned int) code, message, type));
            break;
        case D_VLLM:
            s_emit (c, stream, s_error_json (D_VLLM, (unsigned int) code, message, type));
            break;
        case D_OLLAMA:
            return;                 //  Ollama's OpenAI layer just ends the stream
        case D_NATIVE:
            s_emit (c, stream, json_pack ("{s:s}", "error", message));
            return;
        case D_TGI:
            s_emit (c, stream, json_pack ("{s:{s:s, s:i}}", "error", "message", message,
                                          "http_status_code", 422));
            break;
    }
    s_emit_done (c, stream);
}

//  --- deciding the answer ---------------------------------------------------------------

static const char *s_garbage[] = {
    "%% fake_llm garbage: not JSON %%\n", "}{ ][ ,,, \"unterminated\n", "\x89PNG\r\n\x1a\n",
    "\xff\xfe\xfd binary noise\n", "<<EOF>> 0xDEADBEEF\n", NULL
};

//  loading-then-ready, before it is ready (llama.cpp, vLLM, TGI, openai): until
//  --fail-count completion requests have been refused or --load-ms has passed.
static bool
s_loading_now (void)
{
    if (s_mode != S_LOADING_THEN_READY || s_flavor == F_OLLAMA || s_flavor == F_OLLAMA_NATIVE)
        return false;
    if (s_load_ms > 0 && s_elapsed_ms () >= s_load_ms)
        return false;
    return s_received_now () < s_fail_count;
}

//  The overloaded answer; false where the server queues instead (llama.cpp, vLLM).
static bool
s_reply_overloaded (s_call_t *c, s_reply_t *reply)
{
    switch (c->d) {
        case D_OLLAMA:
        case D_NATIVE:
            s_reply_error (reply, c->d, 503, S_OLLAMA_BUSY, NULL);
            return true;
        case D_TGI:
            s_reply_error (reply, c->d, 429, "Model is overloaded", NULL);
            return true;
        case D_OPENAI:
            s_reply_openai (reply, 503, "The engine is currently overloaded, please try again "
                            "later", "server_error", NULL, NULL);
            return true;
        default:
            return false;
    }
}

static void
s_reply_tgi_shape (s_reply_t *reply, const char *what)
{
    char text[1024];
    snprintf (text, sizeof text, S_TGI_DESERIALIZE "%s", what);
    s_reply_text (reply, 422, "text/plain; charset=utf-8", text);
}

//  TGI's strict body: the Content-Type, JSON, serde's types, then its own validation.
static bool
s_invalid_tgi (struct MHD_Connection *connection, s_call_t *c, const json_error_t *err,
               s_reply_t *reply)
{
    char text[512];
    const char *type = MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "Content-Type");
    if (!type || strncasecmp (type, "application/json", 16)) {
        s_reply_text (reply, 415, "text/plain; charset=utf-8",
                      "Expected request with `Content-Type: application/json`");
        return true;
    }
    if (!c->body) {
        snprintf (text, sizeof text, "Failed to parse the request body as JSON: %s at line %d "
                  "column %d", err->text, err->line, err->column);
        s_reply_text (reply, 400, "text/plain; charset=utf-8", text);
        return true;
    }
    json_t *messages = json_object_get (c->body, "messages");
    if (!json_is_array (messages)) {
        s_reply_tgi_shape (reply, messages ? "messages: invalid type, expected a sequence"
                                           : "missing field `messages`");
        return true;
    }
    json_t *stop = json_object_get (c->body, "stop");
    if (stop && !json_is_null (stop) && !json_is_array (stop)) {
        if (json_is_string (stop))
            snprintf (text, sizeof text, "stop: invalid type: string \"%.200s\", expected a "
                      "sequence", json_string_value (stop));
        else
            snprintf (text, sizeof text, "stop: invalid type, expected a sequence");
        s_reply_tgi_shape (reply, text);
        return true;
    }
    json_t *format = json_object_get (c->body, "response_format");
    if (format && !json_is_null (format)) {
        const char *kind = json_string_value (json_object_get (format, "type"));
        if (!kind) {
            s_reply_tgi_shape (reply, "response_format: missing field `type`");
            return true;
        }
        if (!s_is (kind, "json") && !s_is (kind, "json_object") && !s_is (kind, "regex")
            && !s_is (kind, "json_schema")) {
            snprintf (text, sizeof text, "response_format: unknown variant `%.100s`, expected "
                      "one of `json`, `regex`, `json_schema`", kind);
            s_reply_tgi_shape (reply, text);
            return true;
        }
        if (!json_object_get (format, "value")) {
            s_reply_tgi_shape (reply, "response_format: missing field `value`");
            return true;
        }
    }
    const char *invalid = NULL;
    json_t *top_p = json_object_get (c->body, "top_p");
    json_t *temperature = json_object_get (c->body, "temperature");
    json_t *penalty = json_object_get (c->body, "frequency_penalty");
    if (json_array_size (messages) == 0)
        invalid = "Input validation error: `inputs` cannot be empty";
    else if (json_is_number (top_p)
             && !(json_number_value (top_p) > 0.0 && json_number_value (top_p) < 1.0))
        invalid = "Input validation error: `top_p` must be > 0.0 and < 1.0";
    else if (json_is_number (temperature) && json_number_value (temperature) < 0.0)
        invalid = "Input validation error: `temperature` must be strictly positive";
    else if (json_is_number (penalty) && (json_number_value (penalty) < -2.0
                                          || json_number_value (penalty) > 2.0))
        invalid = "Input validation error: `frequency_penalty` must be >= -2.0 and <= 2.0";
    else if (json_array_size (stop) > 4) {
        snprintf (text, sizeof text, "Input validation error: `stop` supports up to 4 stop "
                  "sequences. Given: %zu", json_array_size (stop));
        invalid = text;
    }
    if (invalid)
        s_reply_error (reply, D_TGI, 422, invalid, NULL);
    return invalid != NULL;
}

//  The request as the dialect would refuse it (bad JSON, missing fields, an unknown
//  model); false if it is acceptable.
static bool
s_invalid (struct MHD_Connection *connection, s_call_t *c, const s_upload_t *upload,
           const json_error_t *err, s_reply_t *reply)
{
    json_t *messages = json_object_get (c->body, "messages");
    bool listed = json_is_array (messages) && json_array_size (messages) > 0;
    const char *name = c->req_model ? c->req_model : s_model;
    char text[512];
    switch (c->d) {
        case D_OPENAI:
            break;
        case D_LLAMACPP:
            if (!c->body) {
                //  nlohmann's parse error surfaces as a 500 from llama.cpp's handler.
                snprintf (text, sizeof text, "[json.exception.parse_error.101] parse error at "
                          "line %d, column %d: syntax error while parsing value", err->line,
                          err->column);
                s_reply_error (reply, c->d, 500, text, "server_error");
                return true;
            }
            if (s_mode == S_MODEL_NOT_FOUND) {
                //  Only a router-mode llama-server knows models by name.
                snprintf (text, sizeof text, "model '%.200s' not found", name);
                s_reply_error (reply, c->d, 404, text, "not_found_error");
                return true;
            }
            break;
        case D_VLLM:
            if (!c->body) {
                s_reply_error (reply, c->d, 400, "JSON decode error", NULL);
                return true;
            }
            if ((c->req_model && strcmp (c->req_model, s_model)) || s_mode == S_MODEL_NOT_FOUND) {
                snprintf (text, sizeof text, "The model `%.200s` does not exist.", name);
                s_reply_error (reply, c->d, 404, text, NULL);
                return true;
            }
            if (!json_is_array (messages)) {
                s_reply_error (reply, c->d, 400, "messages: Field required", NULL);
                return true;
            }
            if (!listed) {
                s_reply_error (reply, c->d, 400, "The decoder prompt cannot be empty", NULL);
                return true;
            }
            if (json_object_get (c->body, "stream_options")
                && !json_is_null (json_object_get (c->body, "stream_options")) && !c->stream) {
                s_reply_error (reply, c->d, 400, "Stream options can only be defined when "
                               "`stream=True`.", NULL);
                return true;
            }
            return false;
        case D_OLLAMA:
        case D_NATIVE:
            if (!c->body) {
                s_reply_error (reply, c->d, 400, upload->size ? err->text : "missing request body",
                               NULL);
                return true;
            }
            if (!c->req_model || !*c->req_model) {
                s_reply_error (reply, c->d, 400, "model is required", NULL);
                return true;
            }
            if (!s_ollama_knows (c->req_model) || s_mode == S_MODEL_NOT_FOUND) {
                snprintf (text, sizeof text, "model '%.200s' not found", c->req_model);
                s_reply_error (reply, c->d, 404, text, NULL);
                return true;
            }
            if (listed)
                return false;
            if (c->d == D_OLLAMA)
                s_reply_error (reply, c->d, 400, "[] is too short - 'messages'", NULL);
            else {
                //  /api/chat with no messages only loads the model.
                json_t *line = s_native_line (c, json_pack ("{s:s, s:s}", "role", "assistant",
                                                            "content", ""));
                json_object_set_new (line, "done_reason", json_string ("load"));
                json_object_set_new (line, "done", json_true ());
                s_reply_json (reply, 200, s_json_type (c->d), line);
                atomic_store (&s_ollama_loaded, true);
            }
            return true;
        case D_TGI:
            return s_invalid_tgi (connection, c, err, reply);
    }
    if (!listed) {
        s_reply_error (reply, c->d, 400, "'messages' must be a non-empty array",
                       "invalid_request_error");
        return true;
    }
    return false;
}

//  With --ctx: whether the request is over the context as the dialect judges it.
//  llama.cpp and Ollama refuse a prompt that does not fit (an answer that does not fit
//  ends with "length"); vLLM, TGI and OpenAI refuse prompt + token cap past the context.
static bool
s_overflows (s_call_t *c)
{
    long prompt = c->prompt_tokens;
    if (c->d == D_LLAMACPP || c->d == D_OLLAMA || c->d == D_NATIVE || c->cap < 0)
        return prompt >= s_ctx;
    return prompt + c->cap > s_ctx;
}

static void
s_reply_overflow (s_call_t *c, s_reply_t *reply)
{
    long prompt = c->prompt_tokens, cap = c->cap < 0 ? 0 : c->cap, ctx = s_ctx;
    char text[512];
    snprintf (text, sizeof text, "This model's maximum context length is %ld tokens. However, "
              "you requested %ld tokens (%ld in the messages, %ld in the completion). Please "
              "reduce the length of the messages or completion.", ctx, prompt + cap, prompt, cap);
    switch (c->d) {
        case D_OPENAI:
            s_reply_openai (reply, 400, text, "invalid_request_error", "messages",
                            "context_length_exceeded");
            return;
        case D_VLLM:
            s_reply_error (reply, c->d, 400, text, NULL);
            return;
        case D_OLLAMA:
        case D_NATIVE:
            s_reply_error (reply, c->d, 400, S_OLLAMA_CTX, NULL);
            return;
        case D_LLAMACPP:
            if (s_legacy) {
                //  Older builds: another type and text, and inside a 200 stream.
                const char *old = "the request exceeds the available context size. try "
                                  "increasing the context size or enable context shift";
                if (c->stream) {
                    s_stream_t *stream = s_stream_new (c);
                    s_emit_stream_error (c, stream, old, 400, "invalid_request_error");
                    s_reply_stream (reply, s_stream_type (c->d), stream, MHD_SIZE_UNKNOWN);
                }
                else
                    s_reply_error (reply, c->d, 400, old, "invalid_request_error");
                return;
            }
            snprintf (text, sizeof text, "request (%ld tokens) exceeds the available context "
                      "size (%ld tokens), try increasing it", prompt, ctx);
            json_t *error = s_error_json (c->d, 400, text, "exceed_context_size_error");
            json_object_set_new (json_object_get (error, "error"), "n_prompt_tokens",
                                 json_integer (prompt));
            json_object_set_new (json_object_get (error, "error"), "n_ctx", json_integer (ctx));
            s_reply_json (reply, 400, s_json_type (c->d), error);
            return;
        case D_TGI:
            if (prompt > ctx - 1)
                snprintf (text, sizeof text, "Input validation error: `inputs` must have less "
                          "than %ld tokens. Given: %ld", ctx - 1, prompt);
            else
                snprintf (text, sizeof text, "Input validation error: `inputs` tokens + "
                          "`max_new_tokens` must be <= %ld. Given: %ld `inputs` tokens and %ld "
                          "`max_new_tokens`", ctx, prompt, cap);
            if (c->stream) {
                s_stream_t *stream = s_stream_new (c);
                s_emit_stream_error (c, stream, text, 422, NULL);
                s_reply_stream (reply, s_stream_type (c->d), stream, MHD_SIZE_UNKNOWN);
            }
            else
                s_reply_error (reply, c->d, 422, text, NULL);
            return;
    }
}

//  A whole body (taken) sent as the mode wants it: at once, cut, dripped, or not at all.
static void
s_reply_whole (s_reply_t *reply, const char *content_type, char *text, size_t len)
{
    if (s_mode != S_CUT && s_mode != S_DROP_MID_STREAM && s_mode != S_DROP_AFTER_HEADERS
        && s_mode != S_SLOW_DRIP) {
        s_reply_body (reply, 200, content_type, text, len);
        return;
    }
    //  A Content-Length for the whole answer, and a body that may stop short of it.
    s_stream_t *stream = calloc (1, sizeof *stream);
    if (s_mode == S_SLOW_DRIP) {
        size_t step = len / 8 + 1;
        for (size_t off = 0; off < len; off += step) {
            s_stream_addn (stream, text + off, len - off < step ? len - off : step);
            if (off)
                stream->parts[stream->count - 1].wait_ms = s_drip_ms;
        }
    }
    else if (s_mode != S_DROP_AFTER_HEADERS)
        s_stream_addn (stream, text, len / 2);
    stream->broken = s_mode != S_SLOW_DRIP;
    free (text);
    s_reply_stream (reply, content_type, stream, len);
}

static void
s_plan (struct MHD_Connection *connection, s_call_t *c, const s_upload_t *upload,
        const json_error_t *err, s_reply_t *reply)
{
    s_dialect_t d = c->d;
    json_t *body = c->body;
    //  Ollama's /api/chat streams unless told not to; the others only when asked.
    json_t *stream_flag = json_object_get (body, "stream");
    c->stream = d == D_NATIVE ? body && !json_is_false (stream_flag) : json_is_true (stream_flag);
    json_t *options = json_object_get (body, "stream_options");
    json_t *include = json_object_get (options, "include_usage");
    c->usage_wanted = c->stream && (d == D_VLLM ? json_is_object (options)
                                                  && !json_is_false (include)
                                                : json_is_true (include));
    c->req_model = json_string_value (json_object_get (body, "model"));
    c->model = d == D_LLAMACPP ? s_llamacpp_alias ()
             : d == D_TGI      ? s_tgi_id ()
             : c->req_model    ? c->req_model : s_model;
    c->cap = s_cap (d, body);
    c->created = time (NULL);

    //  Faults that do not look at the body.
    switch (s_mode) {
        case S_DROP:
            reply->kind = R_CLOSE;
            return;
        case S_HANG:
            reply->kind = R_CLOSE;
            reply->wait_ms = s_hang_ms;
            return;
        case S_LOADING:
            s_reply_error (reply, D_LLAMACPP, 503, "Loading model", "unavailable_error");
            return;
        case S_RATE_LIMITED:
        case S_RATE_LIMITED_AFTER:
            s_reply_rate_limited (reply);
            if (s_mode == S_RATE_LIMITED_AFTER)
                reply->retry_after = s_retry_after ? s_retry_after : "1";
            return;
        case S_RATE_LIMITED_ONCE:
            if (c->n <= s_fail_count) {
                s_reply_rate_limited (reply);
                reply->retry_after = s_retry_after;
                return;
            }
            break;
        case S_LOADING_THEN_READY:
            if (c->n > s_fail_count)
                break;
            if (d == D_OLLAMA || d == D_NATIVE) {
                //  Ollama loads on demand: the request waits for the load, then answers.
                c->load_ms = s_load_ms > 0 ? s_load_ms : 2000;
                reply->wait_ms += c->load_ms;
                break;
            }
            if (s_load_ms > 0 && s_elapsed_ms () >= s_load_ms)
                break;
            //  vLLM and TGI: 503 as their /health says while not ready (a real one may
            //  not listen at all yet: connection refused, which test_backend_faults'
            //  server-restart case covers with a fake started late).
            if (d == D_VLLM)
                s_reply_text (reply, 503, NULL, "");
            else if (d == D_TGI)
                s_reply_error (reply, D_TGI, 503, "unhealthy", NULL);
            else
                s_reply_error (reply, D_LLAMACPP, 503, "Loading model", "unavailable_error");
            return;
        case S_OVERLOADED:
        case S_OVERLOADED_ONCE:
            if ((s_mode == S_OVERLOADED || c->n <= s_fail_count) && s_reply_overloaded (c, reply))
                return;
            break;
        default:
            break;
    }

    //  The body, as the dialect checks it.
    if (upload->too_big) {
        if (d == D_TGI)
            s_reply_text (reply, 413, "text/plain; charset=utf-8",
                          "Failed to buffer the request body: length limit exceeded");
        else
            s_reply_error (reply, d, 413, "request body too large", "invalid_request_error");
        return;
    }
    if (s_invalid (connection, c, upload, err, reply))
        return;
    if (d == D_OLLAMA || d == D_NATIVE)
        atomic_store (&s_ollama_loaded, true);
    char *prompt = json_dumps (json_object_get (body, "messages"), JSON_COMPACT);
    c->prompt_tokens = prompt ? (long) (strlen (prompt) + 3) / 4 : 0;
    free (prompt);

    //  Faults that answer a valid request.
    bool has_schema = json_object_get (body, d == D_NATIVE ? "format" : "response_format");
    switch (s_mode) {
        case S_500:
            s_reply_error (reply, d, 500, "fake_llm: simulated server error", "server_error");
            return;
        case S_TGI:
            s_reply_json (reply, 422, "application/json",
                          json_pack ("{s:s, s:s}", "error",
                                     "Input validation error: simulated by fake_llm",
                                     "error_type", "validation"));
            return;
        case S_BAD_UTF8:
            if (d == D_OPENAI && !c->stream) {
                s_reply_text (reply, 200, "application/json",
                              "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                              "\"content\":\"caf\xff\"},\"finish_reason\":\"stop\"}]}");
                return;
            }
            break;
        case S_MALFORMED:
            //  Not JSON, and not even UTF-8 (the \xff): clients must cope with both.
            if (!c->stream)
                s_reply_text (reply, 200, "text/html", "<html>this is not JSON \xff</html>");
            else {
                s_stream_t *stream = s_stream_new (c);
                const char *junk = "<html>this is not JSON \xff</html>";
                for (int i = 0; i < 2; i++)
                    s_emit_text (c, stream, junk, strlen (junk));
                s_emit_done (c, stream);
                s_reply_stream (reply, s_stream_type (d), stream, MHD_SIZE_UNKNOWN);
            }
            return;
        case S_REJECT_SCHEMA:
            if (!has_schema)
                break;
            if (d == D_TGI)
                s_reply_error (reply, d, 422, "Input validation error: grammar is not supported",
                               NULL);
            else
                s_reply_error (reply, d, 400, d == D_NATIVE
                               ? "format is not supported by this server"
                               : "response_format is not supported by this server",
                               "invalid_request_error");
            return;
        case S_TIMEOUT:
            reply->wait_ms += s_hang_ms;
            break;
        case S_MODEL_NOT_FOUND:
            if (d == D_OPENAI) {
                char text[512];
                snprintf (text, sizeof text, "The model `%.200s` does not exist or you do not "
                          "have access to it.", c->model);
                s_reply_openai (reply, 404, text, "invalid_request_error", NULL,
                                "model_not_found");
                return;
            }
            break;                  //  TGI falls back to its base model
        default:
            break;
    }
    if (s_mode == S_CONTEXT_OVERFLOW || (s_ctx_given && s_overflows (c))) {
        s_reply_overflow (c, reply);
        return;
    }

    s_answer (c);
    if (!c->stream) {
        if (s_mode == S_IN_STREAM_ERROR) {
            if (d == D_TGI)
                s_reply_error (reply, d, 424, "Request failed during generation: " S_GEN_ERROR,
                               NULL);
            else
                s_reply_error (reply, d, 500, S_GEN_ERROR, "server_error");
            return;
        }
        if (s_mode == S_GARBAGE) {
            size_t len = 0;
            for (int i = 0; s_garbage[i]; i++)
                len += strlen (s_garbage[i]);
            char *text = malloc (len + 1), *at = text;
            for (int i = 0; s_garbage[i]; i++)
                at = stpcpy (at, s_garbage[i]);
            s_reply_body (reply, 200, s_json_type (d), text, len);
            return;
        }
        json_t *whole = s_whole (c);
        char *text = s_dump (whole);
        json_decref (whole);
        size_t len = s_patch_bad_utf8 (text);
        s_reply_whole (reply, s_json_type (d), text, len);
        return;
    }
    s_stream_t *stream = s_stream_new (c);
    if (s_mode == S_GARBAGE)
        for (int i = 0; s_garbage[i]; i++)
            s_stream_addn (stream, s_garbage[i], strlen (s_garbage[i]));
    else if (s_mode == S_IN_STREAM_ERROR) {
        s_stream_answer (c, stream, 3, false);
        s_emit_stream_error (c, stream, d == D_TGI ? "Request failed during generation: "
                                                     S_GEN_ERROR : S_GEN_ERROR,
                             500, "server_error");
    }
    else
        s_stream_answer (c, stream, SIZE_MAX, true);
    if (s_mode == S_CUT || s_mode == S_DROP_MID_STREAM)
        s_stream_truncate (stream, stream->count / 2 ? stream->count / 2 : 1);
    else if (s_mode == S_DROP_AFTER_HEADERS)
        s_stream_truncate (stream, 0);
    else if (s_mode == S_SLOW_DRIP)
        for (size_t i = 1; i < stream->count; i++)
            stream->parts[i].wait_ms = s_drip_ms;
    s_reply_stream (reply, s_stream_type (d), stream, MHD_SIZE_UNKNOWN);
}

static enum MHD_Result
s_completion (struct MHD_Connection *connection, const char *url, s_dialect_t d,
              s_upload_t *upload)
{
    json_error_t err = { 0 };
    s_call_t call = { .d = d };
    if (!upload->too_big)
        call.body = json_loadb (upload->data ? upload->data : "", upload->size, 0, &err);
    call.n = s_note_request (connection, url, call.body);
    s_reply_t reply = { 0 };
    s_plan (connection, &call, upload, &err, &reply);
    enum MHD_Result rc = s_finish (connection, &reply, s_delay_ms);
    free (call.content);
    json_decref (call.body);
    return rc;
}

//  --- probes: health, model lists, server facts ----------------------------------------

static json_t *
s_ollama_details (void)
{
    return json_pack ("{s:s, s:s, s:s, s:[s], s:s, s:s}", "parent_model", "", "format", "gguf",
                      "family", "llama", "families", "llama", "parameter_size", "3.2B",
                      "quantization_level", "Q4_K_M");
}

//  One entry of Ollama's /api/tags (or, with `loaded`, of /api/ps).
static json_t *
s_ollama_entry (bool loaded)
{
    char name[512], when[64];
    s_ollama_name (name, sizeof name, s_model);
    s_rfc3339 (when, sizeof when, loaded ? 300 : -86400);
    json_t *entry = json_pack ("{s:s, s:s, s:I, s:s, s:o}", "name", name, "model", name, "size",
                               (json_int_t) 2019393189, "digest",
                               "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                               "details", s_ollama_details ());
    if (loaded) {
        json_object_set_new (entry, "expires_at", json_string (when));
        json_object_set_new (entry, "size_vram", json_integer (2019393189));
        json_object_set_new (entry, "context_length", json_integer (s_ctx));
    }
    else
        json_object_set_new (entry, "modified_at", json_string (when));
    return entry;
}

//  /api/show for the model the body names.
static void
s_ollama_show (const s_upload_t *upload, s_reply_t *reply)
{
    json_t *body = json_loadb (upload->data ? upload->data : "", upload->size, 0, NULL);
    const char *name = json_string_value (json_object_get (body, "model"));
    if (!name)
        name = json_string_value (json_object_get (body, "name"));
    char text[512];
    if (!name || !*name)
        s_reply_error (reply, D_NATIVE, 400, "model is required", NULL);
    else if (!s_ollama_knows (name)) {
        snprintf (text, sizeof text, "model '%.200s' not found", name);
        s_reply_error (reply, D_NATIVE, 404, text, NULL);
    }
    else {
        char when[64];
        s_rfc3339 (when, sizeof when, -86400);
        s_reply_json (reply, 200, s_json_type (D_NATIVE),
                      json_pack ("{s:s, s:s, s:s, s:s, s:o, s:{s:s, s:I, s:I}, s:[s], s:s}",
                                 "license", "", "modelfile",
                                 "# Modelfile generated by fake_llm\nFROM fake\n", "parameters",
                                 "stop \"<|eot_id|>\"", "template", "{{ .Prompt }}", "details",
                                 s_ollama_details (), "model_info", "general.architecture",
                                 "llama", "general.parameter_count",
                                 (json_int_t) 3212749888LL, "llama.context_length",
                                 (json_int_t) s_ctx, "capabilities", "completion",
                                 "modified_at", when));
    }
    json_decref (body);
}

//  The OpenAI-style model list: [entry] (taken).
static void
s_reply_models (s_reply_t *reply, json_t *entry, const char *content_type)
{
    s_reply_json (reply, 200, content_type,
                  json_pack ("{s:s, s:[o]}", "object", "list", "data", entry));
}

static void
s_probe (const char *method, const char *url, const s_upload_t *upload, s_reply_t *reply)
{
    bool get = !strcmp (method, "GET") || !strcmp (method, "HEAD");
    bool loading = s_loading_now ();
    json_int_t now = (json_int_t) time (NULL);
    const char *plain = "text/plain; charset=utf-8";
    switch (s_flavor) {
        case F_OPENAI:
            if (get && s_is (url, "/v1/models"))
                s_reply_models (reply, json_pack ("{s:s, s:s, s:i, s:s}", "id", s_model,
                                                  "object", "model", "created", 0, "owned_by",
                                                  "fake_llm"), "application/json");
            else if (get && s_is (url, "/health") && loading)
                s_reply_error (reply, D_LLAMACPP, 503, "Loading model", "unavailable_error");
            else if (get && s_is (url, "/health"))
                s_reply_text (reply, 200, "application/json", "{\"status\":\"ok\"}");
            else
                s_reply_error (reply, D_OPENAI, 404, "not found", "not_found_error");
            return;
        case F_LLAMACPP:
            if (loading)
                s_reply_error (reply, D_LLAMACPP, 503, "Loading model", "unavailable_error");
            else if (get && (s_is (url, "/health") || s_is (url, "/v1/health")))
                s_reply_text (reply, 200, "application/json", "{\"status\":\"ok\"}");
            else if (get && s_is (url, "/props"))
                s_reply_json (reply, 200, "application/json",
                              json_pack ("{s:{s:i, s:I, s:b, s:{s:i, s:f, s:f}}, s:i, s:s, s:s,"
                                         " s:s, s:I}", "default_generation_settings", "id", 0,
                                         "n_ctx", (json_int_t) s_ctx, "is_processing", 0,
                                         "params", "n_predict", -1, "temperature", 0.8, "top_p",
                                         0.95, "total_slots", 1, "model_path",
                                         "models/fake-model.gguf", "chat_template",
                                         "{% for message in messages %}{{ message.content }}"
                                         "{% endfor %}", "build_info", "b6500-fakellm", "n_ctx",
                                         (json_int_t) s_ctx));
            else if (get && (s_is (url, "/v1/models") || s_is (url, "/models")))
                s_reply_models (reply,
                                json_pack ("{s:s, s:s, s:I, s:s, s:{s:i, s:i, s:I, s:i, s:I,"
                                           " s:I}}", "id", s_llamacpp_alias (), "object",
                                           "model", "created", now, "owned_by", "llamacpp",
                                           "meta", "vocab_type", 2, "n_vocab", 128256,
                                           "n_ctx_train",
                                           (json_int_t) (s_ctx > 131072 ? s_ctx : 131072),
                                           "n_embd", 4096, "n_params",
                                           (json_int_t) 8030261248LL, "size",
                                           (json_int_t) 4920733696LL), "application/json");
            else
                s_reply_error (reply, D_LLAMACPP, 404, "File Not Found", "not_found_error");
            return;
        case F_VLLM:
            if (loading || (get && (s_is (url, "/health") || s_is (url, "/ping"))))
                s_reply_text (reply, loading ? 503 : 200, NULL, "");
            else if (get && s_is (url, "/v1/models"))
                s_reply_models (reply,
                                json_pack ("{s:s, s:s, s:I, s:s, s:s, s:n, s:I, s:[{s:s, s:s,"
                                           " s:I, s:b, s:b, s:b, s:b, s:b, s:b, s:s, s:n,"
                                           " s:b}]}", "id", s_model, "object", "model",
                                           "created", now, "owned_by", "vllm", "root", s_model,
                                           "parent", "max_model_len", (json_int_t) s_ctx,
                                           "permission", "id", "modelperm-fake", "object",
                                           "model_permission", "created", now,
                                           "allow_create_engine", 0, "allow_sampling", 1,
                                           "allow_logprobs", 1, "allow_search_indices", 0,
                                           "allow_view", 1, "allow_fine_tuning", 0,
                                           "organization", "*", "group", "is_blocking", 0),
                                "application/json");
            else if (get && s_is (url, "/version"))
                s_reply_text (reply, 200, "application/json", "{\"version\":\"0.11.0\"}");
            else if (s_is (url, "/v1/chat/completions"))
                s_reply_text (reply, 405, "application/json",
                              "{\"detail\":\"Method Not Allowed\"}");
            else
                s_reply_text (reply, 404, "application/json", "{\"detail\":\"Not Found\"}");
            return;
        case F_OLLAMA:
        case F_OLLAMA_NATIVE: {
            char name[512];
            s_ollama_name (name, sizeof name, s_model);
            const char *json = s_json_type (D_NATIVE);
            if (get && s_is (url, "/"))
                s_reply_text (reply, 200, plain, "Ollama is running");
            else if (get && s_is (url, "/api/version"))
                s_reply_text (reply, 200, json, "{\"version\":\"0.12.6\"}");
            else if (get && s_is (url, "/api/tags"))
                s_reply_json (reply, 200, json, json_pack ("{s:[o]}", "models",
                                                           s_ollama_entry (false)));
            else if (get && s_is (url, "/api/ps")) {
                json_t *models = json_array ();
                if (atomic_load (&s_ollama_loaded))
                    json_array_append_new (models, s_ollama_entry (true));
                s_reply_json (reply, 200, json, json_pack ("{s:o}", "models", models));
            }
            else if (!strcmp (method, "POST") && s_is (url, "/api/show"))
                s_ollama_show (upload, reply);
            else if (get && s_is (url, "/v1/models"))
                s_reply_models (reply, json_pack ("{s:s, s:s, s:I, s:s}", "id", name, "object",
                                                  "model", "created", now, "owned_by",
                                                  "library"), json);
            else if (get && !strncmp (url, "/v1/models/", 11)) {
                if (s_ollama_knows (url + 11))
                    s_reply_json (reply, 200, json,
                                  json_pack ("{s:s, s:s, s:I, s:s}", "id", url + 11, "object",
                                             "model", "created", now, "owned_by", "library"));
                else {
                    char text[512];
                    snprintf (text, sizeof text, "model '%.200s' not found", url + 11);
                    s_reply_error (reply, D_OLLAMA, 404, text, NULL);
                }
            }
            else
                s_reply_text (reply, 404, plain, "404 page not found");
            return;
        }
        case F_TGI:
            if (loading)
                s_reply_error (reply, D_TGI, 503, "unhealthy", NULL);
            else if (get && (s_is (url, "/health") || s_is (url, "/") || s_is (url, "/ping")))
                s_reply_text (reply, 200, NULL, "");
            else if (get && s_is (url, "/info"))
                s_reply_json (reply, 200, "application/json",
                              json_pack ("{s:s, s:n, s:s, s:i, s:i, s:i, s:I, s:I, s:i, s:i,"
                                         " s:s, s:s, s:n, s:n}", "model_id", s_tgi_id (),
                                         "model_sha", "model_pipeline_tag", "text-generation",
                                         "max_concurrent_requests", 128, "max_best_of", 2,
                                         "max_stop_sequences", 4, "max_input_tokens",
                                         (json_int_t) s_ctx - 1, "max_total_tokens",
                                         (json_int_t) s_ctx, "validation_workers", 2,
                                         "max_client_batch_size", 4, "router",
                                         "text-generation-router", "version", "3.3.6", "sha",
                                         "docker_label"));
            else if (get && s_is (url, "/v1/models"))
                s_reply_models (reply, json_pack ("{s:s, s:s, s:i, s:s}", "id", s_tgi_id (),
                                                  "object", "model", "created", 0, "owned_by",
                                                  s_tgi_id ()), "application/json");
            else
                s_reply_text (reply, s_is (url, "/v1/chat/completions") ? 405 : 404, NULL, "");
            return;
    }
}

//  --- libmicrohttpd callbacks ----------------------------------------------------------

//  The dialect of a completion request to url, or -1 if the flavour serves none there.
static int
s_completion_dialect (const char *url)
{
    bool v1 = s_is (url, "/v1/chat/completions");
    switch (s_flavor) {
        case F_OPENAI:
            return v1 ? D_OPENAI : -1;
        case F_LLAMACPP:
            return v1 || s_is (url, "/chat/completions") ? D_LLAMACPP : -1;
        case F_VLLM:
            return v1 ? D_VLLM : -1;
        case F_OLLAMA:
        case F_OLLAMA_NATIVE:
            return v1 ? D_OLLAMA : s_is (url, "/api/chat") ? D_NATIVE : -1;
        case F_TGI:
            return v1 ? D_TGI : -1;
    }
    return -1;
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
    int d = s_completion_dialect (url);
    if (!strcmp (method, "POST") && d >= 0)
        return s_completion (connection, url, (s_dialect_t) d, upload);
    s_note_probe (method, url);
    s_reply_t reply = { 0 };
    s_probe (method, url, upload, &reply);
    return s_finish (connection, &reply, 0);
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

//  --- main ------------------------------------------------------------------------------

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
    fprintf (stderr, "usage: fake_llm --port P | --port-file F [--flavor F] [--legacy] "
                     "[--model NAME] [--ctx N] [--responses FILE] [--mode MODE] "
                     "[--fail-count N] [--retry-after V] [--hang-ms N] [--delay-ms N] "
                     "[--drip-ms N] [--keepalive-ms N] [--load-ms N] [--chunk-bytes N] "
                     "[--requests LOG] [--probes LOG]\n"
                     "  flavours:");
    for (int f = 0; s_flavor_names[f]; f++)
        fprintf (stderr, " %s", s_flavor_names[f]);
    fprintf (stderr, "\n  modes:");
    for (int m = 0; s_mode_names[m].name; m++)
        fprintf (stderr, " %s", s_mode_names[m].name);
    fprintf (stderr, "\n");
    exit (2);
}

//  A non-negative number, or the usage message.
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
    long port = -1;
    const char *port_file = NULL, *responses = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp (arg, "--legacy")) {
            s_legacy = true;
            continue;
        }
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
            s_hang_ms = s_number (value);
        else if (!strcmp (arg, "--delay-ms"))
            s_delay_ms = s_number (value);
        else if (!strcmp (arg, "--drip-ms"))
            s_drip_ms = s_number (value);
        else if (!strcmp (arg, "--keepalive-ms"))
            s_keepalive_ms = s_number (value);
        else if (!strcmp (arg, "--load-ms"))
            s_load_ms = s_number (value);
        else if (!strcmp (arg, "--fail-count"))
            s_fail_count = s_number (value);
        else if (!strcmp (arg, "--chunk-bytes")) {
            s_chunk_bytes = s_number (value);
            if (s_chunk_bytes < 1)
                s_usage ();
        }
        else if (!strcmp (arg, "--ctx")) {
            s_ctx = s_number (value);
            s_ctx_given = true;
            if (s_ctx < 1)
                s_usage ();
        }
        else if (!strcmp (arg, "--model")) {
            s_model = value;
            s_model_given = true;
            if (!*s_model || strlen (s_model) > 200)
                s_usage ();
        }
        else if (!strcmp (arg, "--retry-after"))
            s_retry_after = value;
        else if (!strcmp (arg, "--requests"))
            s_requests_path = value;
        else if (!strcmp (arg, "--probes"))
            s_probes_path = value;
        else if (!strcmp (arg, "--flavor")) {
            int f = 0;
            while (s_flavor_names[f] && strcmp (s_flavor_names[f], value))
                f++;
            if (!s_flavor_names[f])
                s_usage ();
            s_flavor = (s_flavor_t) f;
        }
        else if (!strcmp (arg, "--mode")) {
            int m = 0;
            while (s_mode_names[m].name && strcmp (s_mode_names[m].name, value))
                m++;
            if (!s_mode_names[m].name)
                s_usage ();
            s_mode = s_mode_names[m].mode;
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
    clock_gettime (CLOCK_MONOTONIC, &s_started);

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
    //  A thread per connection: a hanging or dripping answer holds up no other client.
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
