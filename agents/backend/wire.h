/*  wire - the four inference servers' wire formats, as pure functions.
 *  Data path: event -> detect -> incident -> [reason] -> gate -> act -> record
 *  (what backend_http.c sends and how it reads what comes back).
 *
 *  Nothing here does I/O or keeps global state: request bodies are built, answers
 *  (whole or streamed, fed in pieces of any size) are read, errors are classified,
 *  probe answers are interpreted.  Every function is total on hostile bytes: a bounded
 *  copy of server text, never a crash, never an unbounded allocation.
 *  ../../docs/reasoning.md ("Backends") has the table of flavours and faults, and
 *  shared research notes (inference-backends.md) the servers' own shapes.
 *
 *  Flavours (mesh_backend_flavor_t, common/config.h):
 *      openai         POST /v1/chat/completions, SSE "data: {...}" ... "data: [DONE]"
 *      llamacpp       same; keep-alive ": comment" lines; old builds' "error: {...}" lines
 *      vllm           same; usage chunk only when stream_options is sent (stream only)
 *      ollama         same (/v1); a failure ends the stream without a finish
 *      ollama-native  POST /api/chat, NDJSON lines, "done": true on the last one,
 *                     usage as prompt_eval_count / eval_count, errors {"error": "text"}
 *      tgi            SSE "data:{...}" (no space), response_format {"type":"json",
 *                     "value": schema}, stop must be an array, errors
 *                     {"error": "text", "error_type": ...}, in-stream
 *                     {"error": {"message", "http_status_code"}}
 */
#ifndef MESH_WIRE_H
#define MESH_WIRE_H

#include "config.h"
#include "fail.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define MESH_WIRE_LINE_MAX      (1024 * 1024)   //  one SSE/NDJSON line, bytes
#define MESH_WIRE_TEXT_MAX      300             //  error messages kept (one line, bytes)
#define MESH_WIRE_REASONING_MAX 65536           //  reasoning text kept (the rest is counted)

//  "openai", "llamacpp", "vllm", "ollama", "ollama-native", "tgi"; "auto" for AUTO.
const char *mesh_wire_flavor_name (mesh_backend_flavor_t flavor);
//  The request path: "/api/chat" for ollama-native, else "/v1/chat/completions".
const char *mesh_wire_path (mesh_backend_flavor_t flavor);

//  How the proposal's JSON Schema is sent.
typedef enum {
    MESH_WIRE_SCHEMA_NONE,          //  not sent
    MESH_WIRE_SCHEMA_OPENAI,        //  response_format {type: json_schema, json_schema:
                                    //  {name: "proposal", schema, strict: true}}
    MESH_WIRE_SCHEMA_TGI,           //  response_format {type: "json", value: schema}
    MESH_WIRE_SCHEMA_FORMAT,        //  Ollama native: format: schema
} mesh_wire_schema_t;

//  "none", "json_schema", "tgi_json", "format".
const char *mesh_wire_schema_name (mesh_wire_schema_t form);
//  The form a flavour takes first: FORMAT for ollama-native, TGI for tgi, else OPENAI.
mesh_wire_schema_t mesh_wire_schema_default (mesh_backend_flavor_t flavor);

typedef struct {
    json_t *messages;               //  [{role, content}] (borrowed)
    const char *model;              //  NULL: not sent (tgi: "tgi" is sent instead)
    int max_tokens;                 //  sent as max_tokens (ollama-native: options.num_predict)
    double temperature;
    json_t *schema;                 //  borrowed; NULL or form NONE: no structured output
    mesh_wire_schema_t schema_form;
    bool stream;                    //  stream: true (+ stream_options.include_usage for the
                                    //  OpenAI-style flavours; ollama-native: stream false
                                    //  is sent explicitly when not streaming)
    bool has_seed;
    int64_t seed;                   //  0 .. 2^31-1 (every server takes that range)
    char *const *stop;              //  sent as an array (ollama-native: options.stop)
    size_t stop_count;
    const char *keep_alive;         //  ollama-native only; NULL: not sent
} mesh_wire_request_t;

//  The JSON body of one request for FLAVOR (AUTO is treated as openai).  top_p is never
//  sent (TGI refuses 1.0).  NULL only when out of memory.
json_t *mesh_wire_request (mesh_backend_flavor_t flavor, const mesh_wire_request_t *request);

//  What one answer said, whole or streamed.  The reader fills it; the caller frees it
//  with mesh_wire_answer_clear.
typedef struct {
    char *content;                  //  text of choices[0] (message.content, or the deltas
    size_t content_len;             //  joined; ollama-native: message.content); NUL-terminated
    bool content_seen;              //  a content string (even "") was in the answer
    bool content_overflow;          //  more than max_content bytes came (the rest dropped)
    char *reasoning;                //  reasoning_content / reasoning / thinking fields, joined,
    size_t reasoning_len;           //  at most MESH_WIRE_REASONING_MAX kept; NULL if none
    size_t reasoning_bytes;         //  all of it, kept or not
    char *model;                    //  the model the server said it served (one line)
    char *finish_reason;            //  finish_reason / done_reason (one line); NULL: none
    long prompt_tokens;             //  usage, -1 unknown (ollama-native: prompt_eval_count)
    long completion_tokens;         //  -1 unknown (ollama-native: eval_count)
    bool done;                      //  the end was seen: "[DONE]", "done": true, or a whole
                                    //  (non-streamed) answer with its choice
    bool finished;                  //  a finish_reason / done_reason was seen
    size_t choices;                 //  non-stream: size of "choices"; stream: highest index+1
    //  An error the server put in the answer (HTTP 200 body, or a stream event or line):
    bool error;
    char *error_message;            //  one line, at most MESH_WIRE_TEXT_MAX bytes
    char *error_type;               //  type / error_type / code when it is a string; may be NULL
    long error_status;              //  code / http_status_code when a number, else 0
    //  Malformed: what was read is not the flavour's format (a line that is not JSON, a
    //  non-stream body that is not an object, a content that is not a string or holds
    //  a NUL, more than one choice, a line over MESH_WIRE_LINE_MAX).
    bool malformed;
    char *malformed_detail;         //  one line; the first problem only
    size_t events;                  //  data events / NDJSON lines read (comments excluded)
    size_t token_events;            //  events that carried content or reasoning text
} mesh_wire_answer_t;

//  An incremental reader of a streamed answer (SSE or NDJSON by flavour).
typedef struct {
    mesh_backend_flavor_t flavor;
    size_t max_content;
    char *line;                     //  the incomplete line so far (bounded)
    size_t line_len, line_cap;
    bool skipping;                  //  inside an over-long line: dropped until its newline
    mesh_wire_answer_t answer;
} mesh_wire_stream_t;

//  Start reading a stream for FLAVOR keeping at most MAX_CONTENT content bytes.
void mesh_wire_stream_init (mesh_wire_stream_t *stream, mesh_backend_flavor_t flavor,
                            size_t max_content);
//  Feed the next LEN bytes (any split, "\n" or "\r\n").  Returns how many events in
//  them carried content or reasoning text (so the caller sees the first token), or -1
//  once the answer is malformed or carries an error (the caller may stop reading).
//  SSE: lines starting with ':' are comments; "data:" with or without one space;
//  "[DONE]" compared with the whole payload; "event:"/"id:"/"retry:" lines ignored; a
//  line starting with "error:" (old llama.cpp) is an in-stream error; a payload whose
//  object has "error" is one.  A chunk with "choices": [] is legal (usage).
int mesh_wire_stream_feed (mesh_wire_stream_t *stream, const char *data, size_t len);
//  The body ended: read a last line that had no newline.
void mesh_wire_stream_end (mesh_wire_stream_t *stream);
//  Free what the reader owns, the answer included (take what you need first).
void mesh_wire_stream_clear (mesh_wire_stream_t *stream);

//  Read a whole (non-streamed) 2xx body of FLAVOR into ANSWER (zeroed first).  A body
//  that is an error object sets error; one that is not the format sets malformed.
void mesh_wire_read_body (mesh_backend_flavor_t flavor, const char *body, size_t len,
                          size_t max_content, mesh_wire_answer_t *answer);
void mesh_wire_answer_clear (mesh_wire_answer_t *answer);

//  The error message in an error body in any of the servers' shapes (nested
//  {"error":{"message"}}, {"error":"text"}, flat {"message"}, FastAPI {"detail"},
//  plain text), one line, at most MESH_WIRE_TEXT_MAX bytes; "(empty body)" if none.
//  *TYPE (may be NULL) gets the error's type / error_type string, or NULL.  Caller frees.
char *mesh_wire_error_text (const char *body, size_t len, char **type);

//  The failure class of an error: STATUS (HTTP status, 0 for an in-stream error),
//  MESSAGE and TYPE as mesh_wire_error_text gave them (may be NULL).
//      context_overflow  type exceed_context_size_error, or text "context length",
//                        "context size", "maximum context length", "must be <=" with
//                        "tokens", "exceeds the available context", "prompt is too long"
//      not_found         404 (any text), or "model" + "not found" / "does not exist"
//      rate_limited      429 (unless the text or type says overloaded)
//      overloaded        503/429 with "busy", "overloaded", "maximum pending"; TGI
//                        error_type overloaded; any other 503 but loading
//      loading           503 with "loading" (any case)
//      malformed         400/415/422 naming response_format / json_schema / grammar /
//                        schema (the structured-output form was refused: see
//                        mesh_wire_schema_refused)
//      model_error       everything else (400, 401, 403, 500, 503 without text, ...)
mesh_fail_t mesh_wire_classify (long status, const char *message, const char *type);
//  Whether an error (STATUS, MESSAGE) refused the structured-output form we sent:
//  400/415/422 whose text names response_format, json_schema, grammar, format or schema.
bool mesh_wire_schema_refused (long status, const char *message);
//  Whether a failure class may be retried with the same body after a backoff:
//  rate_limited, overloaded, loading, unreachable.
bool mesh_wire_transient (mesh_fail_t fail);

//  A Retry-After header value in ms from NOW: delta-seconds ("120") or an HTTP date
//  (IMF-fixdate, RFC 850, asctime).  -1 if absent or unreadable; 0 for a date passed.
//  At most 24 h.
long mesh_wire_retry_after_ms (const char *value, time_t now);
//  Full-jitter exponential backoff: a uniform draw in [0, min(cap, base * 2^attempt)]
//  from R (a uniform 32-bit random number).  ATTEMPT counts from 0.
long mesh_wire_backoff_ms (int attempt, long base_ms, long cap_ms, uint32_t r);

//  A leading reasoning block in CONTENT: after optional whitespace, "<think>" ...
//  "</think>" (also <thinking>, <reasoning>).  Returns a pointer into CONTENT just past
//  the block and the whitespace after it, and sets *THINK_LEN (and *THINK_START) to the
//  block's inner text; CONTENT itself and *THINK_LEN = 0 if there is none.  An opened
//  block that never closes: returns a pointer to the end (nothing to parse) and the
//  whole rest as the think text.
const char *mesh_wire_split_think (const char *content, const char **think_start,
                                   size_t *think_len);

//  What a probe endpoint said (see mesh_wire_probe_read).
typedef struct {
    bool answered;                  //  the endpoint exists (2xx, or a 503 with a body)
    bool ready;                     //  the server says it can serve now
    bool loading;                   //  the server says it is loading
    mesh_backend_flavor_t flavor;   //  what the answer reveals, AUTO if nothing
    long context_tokens;            //  the context length it reports, 0 if none
    bool model_listed;              //  MODEL is among the listed models (lists only)
    bool model_list;                //  the answer was a model list
} mesh_wire_probe_t;

//  Interpret the answer to a probe GET of PATH (STATUS, BODY of LEN bytes) for MODEL
//  (may be NULL).  Paths: "/health" (llama.cpp {"status":"ok"}, 503 "Loading model";
//  vLLM/TGI empty 200), "/props" (llama.cpp: flavor llamacpp,
//  default_generation_settings.n_ctx or n_ctx), "/v1/models" (owned_by "vllm" -> vllm
//  and max_model_len; "llamacpp" -> llamacpp and meta.n_ctx_train; model_listed),
//  "/info" (TGI: flavor tgi, max_input_tokens, else max_total_tokens),
//  "/api/version" (Ollama: flavor ollama), "/api/tags" (Ollama model list, names with
//  and without ":latest"), "/api/ps" (context_length of MODEL if loaded), "/api/show"
//  (POST answer: model_info "<arch>.context_length", or parameters "num_ctx N").
void mesh_wire_probe_read (const char *path, long status, const char *body, size_t len,
                           const char *model, mesh_wire_probe_t *probe);

#endif
