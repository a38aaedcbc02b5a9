#!/usr/bin/env bash
# Self-check of tests/helpers/fake_llm with curl: each fault mode, --delay-ms and the
# request log's "n"; then each flavour (llamacpp, vllm, ollama, ollama-native, tgi), its
# answer and stream shapes, request checks, context overflow, probes, and the new faults.
# Run by tests/run.sh (make test), or by hand after changing fake_llm:
#     tests/helpers/fake_llm_check.sh [path/to/fake_llm]     (default $B/tests/fake_llm)
# Prints one line per check and exits non-zero if any failed.
cd "$(dirname "$0")/../.."
FAKE=${1:-${B:-build}/tests/fake_llm}
[ -x "$FAKE" ] || { echo "no $FAKE (make ${B:-build}/tests/fake_llm)"; exit 2; }
T=$(mktemp -d); PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$T"' EXIT
BODY='{"model":"m","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'
failed=0

check() {   # description, condition...
    if "${@:2}"; then echo "ok   $1"; else echo "FAIL $1"; failed=1; fi
}
start() {   # mode, extra arguments...
    [ -n "$PID" ] && { kill "$PID"; wait "$PID" 2>/dev/null; }
    rm -f "$T/port" "$T/requests" "$T/probes"
    "$FAKE" --port-file "$T/port" --mode "$1" --requests "$T/requests" --probes "$T/probes" \
            "${@:2}" 2>> "$T/server.log" &
    PID=$!
    for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
    BASE=http://127.0.0.1:$(cat "$T/port")
    URL=$BASE/v1/chat/completions
}
call() {    # curl options...; sets RC, CODE; body in $T/body, headers in $T/headers
    rm -f "$T/body" "$T/headers"; touch "$T/body" "$T/headers"
    CODE=$(curl -sS -N -o "$T/body" -D "$T/headers" -w '%{http_code}' \
                -H 'Content-Type: application/json' -d "$BODY" "$@" "$URL" 2> "$T/curl.err")
    RC=$?
}
get() {     # path, curl options...: a probe; sets CODE, body in $T/body
    CODE=$(curl -sS -o "$T/body" -w '%{http_code}' "${@:2}" "$BASE$1" 2> "$T/curl.err")
    RC=$?
}
has() { grep -q -- "$1" "$2"; }
header() { tr -d '\r' < "$T/headers" | grep -qi -- "^$1"; }
logged() { [ "$(grep -c '"n":' "$T/requests" 2>/dev/null)" = "$1" ] && has "\"n\":$1}" "$T/requests"; }
# frames FRAMING [end]: every line of the body in $T/body is an event of that framing
# ("data: " SSE, "data:" SSE without a space, "ndjson") holding JSON or [DONE] (SSE
# comments and blank lines aside); with "end", the stream ends as the framing does
# ([DONE] last, or an NDJSON line with "done": true).  Prints the streamed text
# (delta.content of choice 0, or message.content) to $T/text.
frames() {
    python3 - "$1" "${2:-}" "$T/body" "$T/text" <<'PY'
import json, sys
framing, end, path, out = sys.argv[1:5]
lines = [l for l in open(path, "rb").read().decode("utf-8").split("\n") if l and l[0] != ":"]
assert lines, "empty"
text, objs = "", []
for l in lines:
    if framing == "ndjson":
        obj = json.loads(l)
    else:
        assert l.startswith(framing), l
        payload = l[len(framing):]
        assert framing != "data:" or not payload.startswith(" "), l
        if payload == "[DONE]":
            objs.append("[DONE]"); continue
        obj = json.loads(payload)
    objs.append(obj)
    if "message" in obj:
        text += obj["message"].get("content") or ""
    for c in obj.get("choices") or []:
        if c.get("index") == 0:
            text += (c.get("delta") or {}).get("content") or ""
if end:
    assert objs[-1] == "[DONE]" if framing != "ndjson" else objs[-1].get("done") is True, objs[-1]
open(out, "w").write(text)
PY
}
# whole: the content of a whole answer in $T/body (choices[0].message or message).
whole() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
print((d.get("choices") or [d])[0]["message"]["content"], end="")' "$T/body"
}
# same_text: the streamed text equals the whole answer's content saved in $T/whole.
same_text() { cmp -s "$T/text" "$T/whole"; }

start ok;            call
check "ok: 200, usage estimated, logged as n=1" \
      eval '[ $RC = 0 ] && [ $CODE = 200 ] && has "\"completion_tokens\":22" $T/body && logged 1'

start max-usage;     call
check "max-usage: completion_tokens = max_tokens" \
      eval '[ $CODE = 200 ] && has "\"completion_tokens\":64,\"total_tokens\":72" $T/body'

start over-usage;    call; a=$(cat "$T/body"); call; b=$(cat "$T/body"); call
check "over-usage: 64, 64, then 114 on the 3rd request" \
      eval '[[ $a == *\"completion_tokens\":64,* && $b == *\"completion_tokens\":64,* ]] && has "\"completion_tokens\":114," $T/body && logged 3'

start loading;       call
check "loading: 503 with llama.cpp's body" \
      eval '[ $CODE = 503 ] && [ "$(cat $T/body)" = "{\"error\":{\"code\":503,\"message\":\"Loading model\",\"type\":\"unavailable_error\"}}" ] && logged 1'

start rate-limited;  call
check "rate-limited: 429 with an OpenAI error body" \
      eval '[ $CODE = 429 ] && has "\"code\":\"rate_limit_exceeded\"" $T/body && logged 1'

start cut;           call
length=$(tr -d '\r' < "$T/headers" | sed -n 's/^Content-Length: //p')
check "cut: 200, Content-Length $length, $(wc -c < "$T/body") bytes, curl exit $RC" \
      eval '[ $CODE = 200 ] && { [ $RC = 18 ] || [ $RC = 56 ]; } && [ $(wc -c < $T/body) -lt "$length" ] && logged 1'

start drop;          call; call
check "drop: empty reply (curl exit $RC), both requests logged" \
      eval '[ $RC = 52 ] && [ ! -s $T/body ] && logged 2'

start resend-probe
curl -sv -o /dev/null -H 'Content-Type: application/json' -d "$BODY" "$URL" --next \
     -o /dev/null -H 'Content-Type: application/json' -d "$BODY" "$URL" > "$T/verbose" 2>&1
RC=$?
check "resend-probe: no Connection: close, yet the 2nd request needs a new connection" \
      eval '[ $RC = 0 ] && ! grep -qi "^< connection: close" $T/verbose && has "(#1)" $T/verbose && logged 2'

start ok --delay-ms 1500
call -m 0.5
check "delay-ms: a client giving up after 0.5 s times out (curl exit $RC), request logged" \
      eval '[ $RC = 28 ] && logged 1'
call
check "delay-ms: then answers after the delay" eval '[ $CODE = 200 ] && logged 2'

start ok;            BODY='not json' call
check "a refused body (400) is logged with body null" \
      eval '[ $CODE = 400 ] && has "\"body\":null,\"n\":1}" $T/requests'

# --- flavours: the whole answer, then the stream of the same text ----------------------
WHOLE='{"model":"fake-model","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'
STREAM='{"model":"fake-model","max_tokens":64,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}'
STREAM_PLAIN='{"model":"fake-model","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}'
STREAM_OPTIONS_ONLY='{"model":"fake-model","max_tokens":64,"stream":false,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}'
NATIVE='{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"format":"json","keep_alive":"5m"}'
NATIVE_WHOLE='{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"stream":false}'
LONG='{"model":"fake-model","max_tokens":10,"messages":[{"role":"user","content":"'$(printf 'a%.0s' $(seq 120))'"}]}'
LONG_STREAM=${LONG/\"max_tokens\"/\"stream\":true,\"max_tokens\"}

start ok --flavor openai
BODY=$STREAM call
check "openai: a stream (role, deltas, finish, usage chunk, [DONE]) when asked" \
      eval '[ $CODE = 200 ] && frames "data: " end && has "\"choices\":\[\],\"usage\":{" $T/body'

start ok --flavor llamacpp
BODY=$WHOLE call; whole > "$T/whole"
check "llamacpp: whole answer: the alias as model, usage with cached_tokens, timings" \
      eval '[ $CODE = 200 ] && has "\"model\":\"fake-model.gguf\"" $T/body && has "\"cached_tokens\":0" $T/body && has "\"timings\":{" $T/body && has "\"id\":\"chatcmpl-" $T/body'
BODY=$STREAM call
check "llamacpp: stream: content null first, finish alone in delta {}, usage chunk with timings" \
      eval 'frames "data: " end && same_text && has "\"delta\":{\"role\":\"assistant\",\"content\":null}" $T/body && has "\"finish_reason\":\"stop\",\"index\":0,\"delta\":{}" $T/body && has "\"choices\":\[\],.*\"usage\":{.*\"timings\":{" $T/body'
BODY=$STREAM_PLAIN call
check "llamacpp: stream without include_usage: no usage, timings on the finish chunk" \
      eval 'frames "data: " end && ! has "\"usage\"" $T/body && has "\"delta\":{}}\],.*\"timings\"" $T/body'
get /props
check "llamacpp: /props n_ctx = 4096 by default" \
      eval '[ $CODE = 200 ] && has "\"default_generation_settings\":{[^}]*\"n_ctx\":4096" $T/body'
get /v1/models
check "llamacpp: /v1/models owned_by llamacpp with meta.n_ctx_train" \
      eval 'has "\"owned_by\":\"llamacpp\",\"meta\":{.*\"n_ctx_train\":" $T/body'
get /nope
check "llamacpp: an unknown path is its 404 File Not Found; probes logged apart" \
      eval '[ $CODE = 404 ] && has "File Not Found" $T/body && [ $(wc -l < $T/probes) = 3 ] && has "{\"method\":\"GET\",\"path\":\"/props\"}" $T/probes && logged 3'

start ok --flavor vllm --ctx 8192
BODY=$WHOLE call; whole > "$T/whole"
check "vllm: whole answer: requested model, stop_reason, reasoning_content null" \
      eval '[ $CODE = 200 ] && has "\"model\":\"fake-model\"" $T/body && has "\"stop_reason\":null" $T/body && has "\"reasoning_content\":null" $T/body'
BODY=$STREAM call
check "vllm: stream: role with content \"\", finish on the last content chunk, usage chunk" \
      eval 'frames "data: " end && same_text && has "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}" $T/body && has "\"delta\":{\"content\":\".*\"logprobs\":null,\"finish_reason\":\"stop\",\"stop_reason\":null" $T/body && has "\"choices\":\[\],\"usage\":{" $T/body'
BODY=${WHOLE/fake-model/other} call
check "vllm: another model is a 404 NotFoundError" \
      eval '[ $CODE = 404 ] && [ "$(cat $T/body)" = "{\"error\":{\"message\":\"The model \`other\` does not exist.\",\"type\":\"NotFoundError\",\"param\":null,\"code\":404}}" ]'
BODY=$STREAM_OPTIONS_ONLY call
check "vllm: stream_options without stream is a 400" \
      eval '[ $CODE = 400 ] && has "Stream options can only be defined when" $T/body'
get /v1/models; models=$(cat "$T/body"); get /health
check "vllm: /v1/models max_model_len = --ctx, /health empty" \
      eval '[[ $models == *\"owned_by\":\"vllm\"*\"max_model_len\":8192* ]] && [ $CODE = 200 ] && [ ! -s $T/body ]'

start ok --flavor ollama
BODY=$WHOLE call; whole > "$T/whole"
check "ollama /v1: whole answer with fp_ollama" \
      eval '[ $CODE = 200 ] && has "\"system_fingerprint\":\"fp_ollama\"" $T/body && header "content-type: application/json; charset=utf-8"'
BODY=$STREAM call
check "ollama /v1: stream: role on the first chunk only, finish alone, usage chunk" \
      eval 'frames "data: " end && same_text && [ $(grep -o "\"role\"" $T/body | wc -l) = 1 ] && has "\"delta\":{},\"finish_reason\":\"stop\"" $T/body && has "\"choices\":\[\],\"usage\":{" $T/body'
BODY=${WHOLE/fake-model/nope} call
check "ollama /v1: an unknown model is a 404 not_found_error" \
      eval '[ $CODE = 404 ] && [ "$(cat $T/body)" = "{\"error\":{\"message\":\"model '"'"'nope'"'"' not found\",\"type\":\"not_found_error\",\"param\":null,\"code\":null}}" ]'
get /; root=$(cat "$T/body"); get /api/ps
check "ollama: / is running, /api/ps lists NAME:latest with context_length once loaded" \
      eval '[ "$root" = "Ollama is running" ] && has "\"name\":\"fake-model:latest\".*\"context_length\":4096" $T/body'
get /api/show -d '{"model":"fake-model"}'
check "ollama: /api/show model_info llama.context_length" \
      eval '[ $CODE = 200 ] && has "\"llama.context_length\":4096" $T/body'

start ok --flavor ollama --legacy
BODY=$STREAM call
check "ollama --legacy: every chunk has role, the last content \"\" with the finish" \
      eval 'frames "data: " end && [ $(grep -c "\"role\":\"assistant\"" $T/body) -ge 3 ] && has "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":\"stop\"" $T/body'

start ok --flavor ollama-native
URL=$BASE/api/chat BODY=$NATIVE_WHOLE call; whole > "$T/whole"
check "ollama-native: stream false: one object, done true, counts and durations" \
      eval '[ $CODE = 200 ] && has "\"done_reason\":\"stop\",\"done\":true,\"total_duration\":[0-9]*,\"load_duration\":[0-9]*,\"prompt_eval_count\":8," $T/body'
URL=$BASE/api/chat BODY=$NATIVE call
check "ollama-native: streams by default: NDJSON, done:true last with done_reason and eval_count" \
      eval 'frames ndjson end && same_text && header "content-type: application/x-ndjson" && tail -1 $T/body | grep -q "\"done_reason\":\"stop\",\"done\":true,.*\"eval_count\":[0-9]" && [ $(grep -c "\"done\":false" $T/body) -ge 2 ]'
URL=$BASE/api/chat BODY=${NATIVE/fake-model/nope} call
check "ollama-native: unknown model 404 {\"error\":\"model 'nope' not found\"}" \
      eval '[ $CODE = 404 ] && [ "$(cat $T/body)" = "{\"error\":\"model '"'"'nope'"'"' not found\"}" ]'

start ok --flavor tgi
BODY=$WHOLE call; whole > "$T/whole"
check "tgi: whole answer: id \"\", the served id as model" \
      eval '[ $CODE = 200 ] && has "\"id\":\"\"" $T/body && has "\"model\":\"fake/tgi-model\"" $T/body'
BODY=$STREAM call
check "tgi: stream: data: without a space, role + usage null on every chunk, data:[DONE]" \
      eval 'frames "data:" end && same_text && ! has "^data: " $T/body && [ $(grep -c "\"role\":\"assistant\"" $T/body) = $(grep -c "\"usage\":null" $T/body) ] && has "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":\"stop\"}\],\"usage\":null" $T/body && [ "$(grep -v "^$" $T/body | tail -1)" = "data:[DONE]" ]'
BODY=${STREAM/\"messages\"/\"stop\":[\"params\"],\"messages\"} call
check "tgi: a matched stop string ends the stream with stop_sequence" \
      eval 'frames "data:" end && has "\"finish_reason\":\"stop_sequence\"" $T/body && grep -q "params$" $T/text'
BODY='{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{}}}}' call
check "tgi: OpenAI's response_format shape is a 422 text/plain deserialisation error" \
      eval '[ $CODE = 422 ] && header "content-type: text/plain" && [ "$(cat $T/body)" = "Failed to deserialize the JSON body into the target type: response_format: missing field \`value\`" ]'
BODY='{"messages":[{"role":"user","content":"x"}],"stop":"x"}' call; stop_code=$CODE
BODY='{"messages":[{"role":"user","content":"x"}],"top_p":1.0}' call
check "tgi: stop as a string 422 text, top_p 1.0 422 validation" \
      eval '[ $stop_code = 422 ] && [ $CODE = 422 ] && [ "$(cat $T/body)" = "{\"error\":\"Input validation error: \`top_p\` must be > 0.0 and < 1.0\",\"error_type\":\"validation\"}" ]'
get /info
check "tgi: /info max_total_tokens 4096, max_input_tokens 4095" \
      eval 'has "\"max_input_tokens\":4095,\"max_total_tokens\":4096" $T/body'

# --- context overflow (--ctx 20; the prompt is about 36 tokens) -------------------------
start ok --flavor llamacpp --ctx 20;       BODY=$LONG call
check "context: llamacpp 400 exceed_context_size_error with n_prompt_tokens, n_ctx" \
      eval '[ $CODE = 400 ] && has "\"type\":\"exceed_context_size_error\",\"n_prompt_tokens\":[0-9]*,\"n_ctx\":20}" $T/body'
start ok --flavor vllm --ctx 20;           BODY=$LONG call
check "context: vllm 400 maximum context length" \
      eval '[ $CODE = 400 ] && has "This model'"'"'s maximum context length is 20 tokens. However, you requested" $T/body && has "BadRequestError" $T/body'
start ok --flavor ollama --ctx 20;         BODY=$LONG call
check "context: ollama /v1 400 the prompt is longer than the context length" \
      eval '[ $CODE = 400 ] && has "\"message\":\"the prompt is longer than the context length" $T/body'
URL=$BASE/api/chat BODY=$LONG call
check "context: ollama /api/chat 400 {\"error\":...}" \
      eval '[ $CODE = 400 ] && has "^{\"error\":\"the prompt is longer than the context length" $T/body'
start ok --flavor tgi --ctx 20;            BODY=$LONG call; tgi_code=$CODE
BODY=$LONG_STREAM call
check "context: tgi 422 validation, and inside a 200 stream when streaming" \
      eval '[ $tgi_code = 422 ] && [ $CODE = 200 ] && frames "data:" end && has "^data:{\"error\":{\"message\":\"Input validation error: \`inputs\` must have less than 19 tokens. Given: [0-9]*\",\"http_status_code\":422}}" $T/body'
start ok --ctx 20;                         BODY=$LONG call
check "context: openai 400 context_length_exceeded" \
      eval '[ $CODE = 400 ] && has "\"code\":\"context_length_exceeded\"" $T/body'
start ok --flavor llamacpp --ctx 20;       BODY=$WHOLE call
check "context: llamacpp cuts an answer where the context is full (20 - 8), finish length" \
      eval '[ $CODE = 200 ] && has "\"finish_reason\":\"length\"" $T/body && has "\"completion_tokens\":12," $T/body'
start context-overflow --flavor vllm;      BODY=$WHOLE call
check "context-overflow: forced for a small request" eval '[ $CODE = 400 ] && has "maximum context length is 4096" $T/body'

# --- faults ----------------------------------------------------------------------------
start rate-limited-after; call
check "rate-limited-after: 429 with Retry-After: 1" eval '[ $CODE = 429 ] && header "retry-after: 1$"'
start rate-limited-after --retry-after "Wed, 21 Oct 2026 07:28:00 GMT"; call
check "rate-limited-after: Retry-After as an HTTP date" \
      eval '[ $CODE = 429 ] && header "retry-after: Wed, 21 Oct 2026 07:28:00 GMT"'
BODY=$WHOLE
start rate-limited-once --fail-count 2 --flavor vllm; call; a=$CODE; call; b=$CODE; call
check "rate-limited-once --fail-count 2: 429, 429, 200, no Retry-After by default" \
      eval '[ $a$b$CODE = 429429200 ] && ! header "retry-after" && logged 3'

start loading-then-ready --flavor llamacpp --fail-count 2
seq=""; for step in h c h c h c; do
    if [ $step = h ]; then get /health; else BODY=$WHOLE call; fi; seq+="$CODE "; done
check "loading-then-ready llamacpp: /health and completions 503 until 2 refused, then 200 ($seq)" \
      eval '[ "$seq" = "503 503 503 503 200 200 " ]'
start loading-then-ready --flavor vllm
get /health; h1=$CODE; get /v1/models; m1=$CODE; call; c1=$CODE; get /health; h2=$CODE; call
check "loading-then-ready vllm: /health, /v1/models and a completion 503 (empty), then ready" \
      eval '[ $h1$m1$c1 = 503503503 ] && [ $h2 = 200 ] && [ $CODE = 200 ] && logged 2'
start loading-then-ready --flavor tgi --fail-count 5 --load-ms 400
get /health; h1=$CODE; sleep 0.5; get /health
check "loading-then-ready tgi --load-ms: ready after the load time" eval '[ $h1 = 503 ] && [ $CODE = 200 ]'

start overloaded --flavor tgi;              BODY=$WHOLE call
check "overloaded tgi: 429 Model is overloaded" \
      eval '[ $CODE = 429 ] && [ "$(cat $T/body)" = "{\"error\":\"Model is overloaded\",\"error_type\":\"overloaded\"}" ]'
start overloaded-once --flavor ollama;      BODY=$WHOLE call; a=$CODE; call
check "overloaded-once ollama: 503 server busy, then 200" \
      eval '[ $a = 503 ] && [ $CODE = 200 ] && logged 2'

start drop-after-headers --flavor llamacpp; BODY=$STREAM call
check "drop-after-headers: 200 and chunked headers, then closed before a byte (curl exit $RC)" \
      eval '[ $CODE = 200 ] && [ $RC = 18 ] && [ ! -s $T/body ] && header "transfer-encoding: chunked"'
start drop-mid-stream --flavor vllm;        BODY=$STREAM call
check "drop-mid-stream: some events, then closed without [DONE] (curl exit $RC)" \
      eval '[ $CODE = 200 ] && [ $RC = 18 ] && frames "data: " && ! has "\[DONE\]" $T/body'
start hang --hang-ms 300;                   call
check "hang: nothing, then closed without a reply (curl exit $RC), logged" \
      eval '[ $RC = 52 ] && [ ! -s $T/body ] && logged 1'
start slow-drip --flavor llamacpp --drip-ms 100 --chunk-bytes 64 --keepalive-ms 40 --delay-ms 300
BODY=$STREAM call
check "slow-drip + keep-alive: headers first, \": keep-alive\" comments while waiting" \
      eval '[ $CODE = 200 ] && frames "data: " end && [ $(grep -c "^: keep-alive$" $T/body) -ge 5 ]'
start garbage --flavor tgi;                 BODY=$STREAM call
check "garbage: 200 text/event-stream of lines that are neither SSE nor JSON" \
      eval '[ $CODE = 200 ] && header "content-type: text/event-stream" && ! frames "data:" 2>/dev/null'

start in-stream-error --flavor llamacpp;    BODY=$STREAM call
check "in-stream-error llamacpp: data: {\"error\":...} then data: [DONE], no finish" \
      eval '[ $CODE = 200 ] && frames "data: " end && has "^data: {\"error\":{\"code\":500," $T/body && ! has "finish_reason\":\"stop" $T/body'
start in-stream-error --flavor llamacpp --legacy; BODY=$STREAM call
check "in-stream-error llamacpp --legacy: an \"error: {...}\" line" \
      eval '[ $CODE = 200 ] && has "^error: {\"code\":500," $T/body && has "^data: \[DONE\]" $T/body'
start in-stream-error --flavor ollama-native; URL=$BASE/api/chat BODY=$NATIVE call
check "in-stream-error ollama-native: an {\"error\":...} line, no done line" \
      eval '[ $CODE = 200 ] && frames ndjson && tail -1 $T/body | grep -q "^{\"error\":" && ! has "\"done\":true" $T/body'
start in-stream-error --flavor tgi;         BODY=$WHOLE call
check "in-stream-error tgi, not streaming: 424 generation" \
      eval '[ $CODE = 424 ] && has "\"error_type\":\"generation\"" $T/body'

start think --flavor vllm;                  BODY=$WHOLE call
check "think vllm: the reasoning in reasoning_content, not the content" \
      eval 'has "\"reasoning_content\":\"I should look at the series...\"" $T/body && ! has "<think>" $T/body'
start think --flavor llamacpp;              BODY=$WHOLE call
check "think llamacpp: inline <think>...</think> before the content" \
      eval 'has "\"content\":\"<think>\\\\nI should look at the series...\\\\n</think>\\\\n\\\\n{" $T/body'
start stream-usage-missing --flavor ollama; BODY=$STREAM call
check "stream-usage-missing: no usage although include_usage" \
      eval 'frames "data: " end && ! has "usage" $T/body'
start model-not-found --flavor llamacpp;    BODY=$WHOLE call
check "model-not-found llamacpp: 404 not_found_error" \
      eval '[ $CODE = 404 ] && has "\"type\":\"not_found_error\"" $T/body'

exit $failed
