/*  backend - one model call: messages in, verbatim model text and usage out.
 *  Data path: event -> detect -> incident -> [reason] -> gate -> act -> record
 *  (the reasoning loop's only way to reach a model).
 *
 *  A backend kind is a callback table (mesh_backend_ops_t, Fluent Bit style):
 *  backend_scripted.c (canned outputs from a JSON-lines file, for the demo and the
 *  tests) and backend_http.c (an inference server over HTTP with libcurl: llama.cpp
 *  server, vLLM, Ollama, TGI).  backend.c picks the table from the config and keeps
 *  the promises below the same for every kind.
 *
 *  Nothing here interprets the model's text: content is returned verbatim, parsing
 *  and judging it is the reasoning loop's and the gates' business.  A backend object
 *  is used by one thread at a time (one per reasoning worker); objects share only
 *  what health.h keeps per server (the circuit breaker, the probed facts), which is
 *  thread-safe.
 */
#ifndef MESH_BACKEND_H
#define MESH_BACKEND_H

#include "config.h"
#include "fail.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *content;              //  verbatim model text (owned)
    char *model;                //  model name the server reported (owned, may be NULL)
    long prompt_tokens;         //  server-reported usage; estimated (bytes/4, rounded up)
    long completion_tokens;     //  if absent, and then `estimated` is set
    bool estimated;
    long latency_ms;            //  set on failure too (time until the failure was known)
    char *finish_reason;        //  owned, may be NULL
    size_t received_bytes;      //  HTTP body bytes read; kept on failure too (for charging)
    //  For charging (agents/backend/charge.h), kept on failure too:
    bool sent;                  //  a request reached the server (it may have generated)
    long http_status;           //  the last response's status, 0 when none came
    int requests;               //  HTTP requests sent (a retry without response_format: 2)
    bool complete;              //  the last response arrived whole (no transport error)
    bool answered_error;        //  the last answer was an error before any token (a 2xx
                                //  error body, an in-stream error first): nothing generated
    //  What the record shows of the call (kept on failure too):
    const char *flavor;         //  the wire format spoken ("llamacpp", ...; static)
    bool streamed;
    long ttft_ms;               //  request start -> first token; -1 if none came
    double tokens_per_s;        //  completion tokens / (duration - ttft); 0 if unknown
    const char *structured;     //  the structured-output form of the last request (static)
    bool schema_fallback;       //  the server refused the form and got a request without it
    char *reasoning;            //  a <think> block or reasoning field set aside (owned,
    size_t reasoning_bytes;     //  bounded); never parsed as the proposal
    long context_tokens;        //  the server's context length, 0 if unknown
    json_t *requests_log;       //  [{n, status, class, ms, bytes, wait_ms?, retry_after_ms?}]
                                //  one per HTTP request of the call (owned, may be NULL)
} mesh_backend_reply_t;

typedef struct _mesh_backend_t mesh_backend_t;

//  A call's deadline and context, beyond the messages (mesh_backend_call_ex).
typedef struct {
    long deadline_ms;           //  CLOCK_MONOTONIC ms after which no request may start and
                                //  no wait may end (the incident's); 0 = the backend's own
    long prompt_estimate;       //  tokens, for the context pre-check
} mesh_backend_opts_t;

//  The callback table of one backend kind.  STATE is what create returned.  call has
//  the contract of mesh_backend_call; backend.c clears REPLY before and after a failure.
typedef struct {
    const char *kind;
    void *(*create) (const mesh_backend_config_t *cfg);             //  NULL (logged) if unusable
    void (*destroy) (void *state);
    int (*call) (void *state, json_t *messages, int max_tokens, json_t *schema,
                 const char *seed_key, const mesh_backend_opts_t *opts,
                 mesh_backend_reply_t *reply, mesh_fail_t *why, char **detail);
    bool (*available) (void *state);                                 //  may be NULL: always
} mesh_backend_ops_t;

extern const mesh_backend_ops_t mesh_backend_scripted_ops;
extern const mesh_backend_ops_t mesh_backend_http_ops;


//  Create a backend of cfg->kind; NULL (logged) if the config is unusable (a scripted
//  file that does not load, an openai backend without an http(s) url).  An openai key
//  file that cannot be read is only a warning here: its calls fail until it can.
//  CFG is copied as needed; it need not outlive the backend.
mesh_backend_t *mesh_backend_new (const mesh_backend_config_t *cfg);
//  Destroy; sets *self_p to NULL; safe on NULL.
void mesh_backend_destroy (mesh_backend_t **self_p);
//  Check a model answer (TEXT, LEN bytes) against LIMITS before anyone parses it: its
//  size, then in one pass without building anything, its bytes (NUL, invalid UTF-8, an
//  escaped NUL), its nesting depth, its number of object keys and the length of each
//  string as written.  A zero field of LIMITS means its default.  MESH_FAIL_NONE, or
//  MODEL_OVERSIZE (a limit) / MODEL_MALFORMED (the bytes) with *detail set to a
//  one-line reason naming the limit or the byte offset (caller frees).  Text that is
//  not JSON passes: the parser says what is wrong with it.
mesh_fail_t mesh_backend_scan (const char *text, size_t len, const mesh_output_limits_t *limits,
                               char **detail);
//  The stop reasons that mean "the model finished its answer": "stop" (every server),
//  "stop_sequence" and "eos_token" (TGI), "eos" (some llama.cpp builds); an absent or
//  null finish_reason (Ollama's runner may give none) counts as a stop.  Anything
//  else ("length", "content_filter", "abort", "tool_calls") is a truncated answer.
bool mesh_backend_finished (const char *finish_reason);

//  MESSAGES: a JSON array of {"role","content"} (borrowed).  SCHEMA: JSON Schema for the
//  proposal (borrowed, may be NULL).  SEED_KEY: "<decision id>/<step>" (the scripted
//  backend derives its choice from it, the http one a seed; may be NULL).  0 and *reply
//  filled, or -1 with *why (a MODEL_* class of
//  fail.h; docs/reasoning.md has which means what) and *detail (a one-line message,
//  caller frees) set, and of *reply only what describes the call (latency, bytes, the
//  requests and their log, flavour, TTFT), never content.  Clear *reply with
//  mesh_backend_reply_clear in either case.
int mesh_backend_call (mesh_backend_t *self, json_t *messages, int max_tokens, json_t *schema,
                       const char *seed_key, mesh_backend_reply_t *reply, mesh_fail_t *why,
                       char **detail);
//  The same with OPTS (may be NULL): the caller's deadline and prompt estimate.
int mesh_backend_call_ex (mesh_backend_t *self, json_t *messages, int max_tokens, json_t *schema,
                          const char *seed_key, const mesh_backend_opts_t *opts,
                          mesh_backend_reply_t *reply, mesh_fail_t *why, char **detail);
//  Whether a call to this backend would be let through now (its circuit is not open).
//  Always true for a kind without a circuit.
bool mesh_backend_available (mesh_backend_t *self);
//  Free what REPLY owns and zero it; safe on a zeroed reply.
void mesh_backend_reply_clear (mesh_backend_reply_t *reply);
//  The backend's configured name (borrowed).
const char *mesh_backend_name (const mesh_backend_t *self);
//  Token estimate used wherever a server does not report usage: BYTES / 4, rounded up.
long mesh_backend_estimate_tokens (size_t bytes);
//  Estimate for a JSON value as it is sent (compact serialisation).
long mesh_backend_estimate_json (json_t *value);

#endif
