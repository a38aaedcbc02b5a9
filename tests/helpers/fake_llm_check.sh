#!/usr/bin/env bash
# Self-check of tests/helpers/fake_llm with curl: each fault mode, --delay-ms and the
# request log's "n".  Not part of tests/run.sh; run it by hand after changing fake_llm:
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
    rm -f "$T/port" "$T/requests"
    "$FAKE" --port-file "$T/port" --mode "$1" --requests "$T/requests" "${@:2}" 2>> "$T/server.log" &
    PID=$!
    for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
    URL=http://127.0.0.1:$(cat "$T/port")/v1/chat/completions
}
call() {    # curl options...; sets RC, CODE; body in $T/body, headers in $T/headers
    rm -f "$T/body" "$T/headers"; touch "$T/body" "$T/headers"
    CODE=$(curl -sS -o "$T/body" -D "$T/headers" -w '%{http_code}' \
                -H 'Content-Type: application/json' -d "$BODY" "$@" "$URL" 2> "$T/curl.err")
    RC=$?
}
has() { grep -q -- "$1" "$2"; }
logged() { [ "$(grep -c '"n":' "$T/requests" 2>/dev/null)" = "$1" ] && has "\"n\":$1}" "$T/requests"; }

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

exit $failed
