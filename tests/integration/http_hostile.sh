#!/usr/bin/env bash
# meshd's HTTP listener against hostile clients: malformed request lines, methods other
# than GET/HEAD, a body, an oversized URI and oversized headers, a slowloris (connections
# that send nothing, or half a request line, and then wait past http.timeout_s), more connections than
# http.max_connections_per_ip: each answered with its code or closed, and meshd keeps
# serving GET /healthz and stays alive.  Also: http.listen false serves nothing, a bad
# http config is refused by --check-config naming the key, and a taken port stops meshd
# at start naming address:port.
source "$(dirname "$0")/lib.sh"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
agent="  - name: ops
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    detector: { kind: ewma, alpha: 0.1, warmup: 5, threshold: 0.5 }
    reason: { backend: scripted }
    actions: [scale_out, escalate]
    fallback: escalate"
write_config "$agent"
cat >> "$T/meshd.yaml" <<YAML
http:
  listen: true
  port: $PORT
  max_connections: 16
  max_connections_per_ip: 4
  timeout_s: 2
  max_request_bytes: 4096
YAML
start_meshd
URL=http://127.0.0.1:$PORT
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }
healthy() { [ "$(code "$URL/healthz")" = 200 ] || fail "GET /healthz failed after: $1"; kill -0 "$MESHD" || fail "meshd died after: $1"; }

# Raw bytes to the port; prints the status line (or nothing when meshd closed).
raw() { python3 - "$PORT" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
try:
    data = s.recv(4096)
except Exception:
    data = b""
print(data.split(b"\r\n", 1)[0].decode("latin-1"))
PY
}

[ "$(code "$URL/healthz")" = 200 ] || fail "no /healthz"
headers=$(curl -s -D - -o /dev/null "$URL/healthz")
for h in "X-Content-Type-Options: nosniff" "Cache-Control: no-store" "Content-Security-Policy: default-src 'none'"; do
    grep -qi "^$h" <<< "$headers" || fail "no '$h' header: $headers"
done
[ "$(curl -s "$URL/healthz")" = ok ] || fail "/healthz body is not ok"
[ "$(code "$URL/nothing-here")" = 404 ] || fail "unknown path not 404"
[ "$(code -I "$URL/metrics")" = 200 ] || fail "HEAD /metrics not 200"

for m in POST PUT DELETE PATCH OPTIONS; do
    c=$(code -X "$m" "$URL/metrics")
    [ "$c" = 405 ] || fail "$m answered $c, not 405"
done
allow=$(curl -s -D - -o /dev/null -X POST --data x "$URL/metrics" | tr -d '\r' | sed -n 's/^Allow: //Ip')
[ "$allow" = "GET, HEAD" ] || fail "405 without 'Allow: GET, HEAD' (got '$allow')"
c=$(code -X GET --data-binary 'a body' "$URL/metrics")
[ "$c" = 413 ] || fail "GET with a body answered $c, not 413"
note "methods and body refused"; healthy "methods"

line=$(raw 'GARBAGE\r\n\r\n'); note "garbage line -> '$line'"
case "$line" in "HTTP/1.1 400"*|"") ;; *) fail "garbage request line answered '$line'";; esac
line=$(raw 'GET /healthz HTTP/9.9\r\n\r\n'); note "HTTP/9.9 -> '$line'"
case "$line" in "HTTP/1.1 505"*|"HTTP/1.1 400"*|"") ;; *) fail "bad version answered '$line'";; esac
line=$(raw 'GET  HTTP/1.1\r\nHost: a\r\n\r\n'); note "no target -> '$line'"
case "$line" in "HTTP/1.1 400"*|"") ;; *) fail "a request without a target answered '$line'";; esac
line=$(raw 'GET /healthz HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n'); note "bad header -> '$line'"
case "$line" in "HTTP/1.1 400"*|"HTTP/1.1 200"*|"") ;; *) fail "malformed header answered '$line'";; esac
healthy "malformed requests"

long=$(head -c 20000 /dev/zero | tr '\0' a)
c=$(code "$URL/metrics?$long")
[ "$c" = 414 ] || fail "a 20 kB URI answered $c, not 414"
c=$(code -H "X-Big: $long" "$URL/healthz")
[ "$c" = 431 ] || fail "a 20 kB header answered $c, not 431"
many=(); for i in $(seq 200); do many+=(-H "X-H$i: $(head -c 40 /dev/zero | tr '\0' b)"); done
c=$(code "${many[@]}" "$URL/healthz")
[ "$c" = 431 ] || fail "200 headers of 40 bytes answered $c, not 431"
note "oversized URI and headers refused"; healthy "oversized requests"

# Slowloris: 4 idle connections fill the per-IP limit; a fifth is refused (closed) while
# they stand, and GET /healthz works again once timeout_s (2 s) closed them.
python3 - "$PORT" > "$T/slow.out" <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
slow = socket.create_connection(("127.0.0.1", port))
slow.sendall(b"GET /healthz HTTP/1.1\r\n")
t0 = time.time()
closed = []
def gone(s):
    s.settimeout(0.05)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True
# how long the idle ones last (MHD closes a connection idle for timeout_s)
while time.time() - t0 < 8:
    for s in idle:
        if s not in closed and gone(s):
            closed.append(s)
            print("idle closed after %.1f s" % (time.time() - t0), flush=True)
    time.sleep(0.2)
print("closed", len(closed), flush=True)
PY
SLOW=$!
sleep 0.5
c=$(code --max-time 2 "$URL/healthz")
note "a fifth connection while four stand: $c"
[ "$c" = 000 ] || [ "$c" = 503 ] || fail "per-IP limit not enforced: the fifth connection got $c"
wait "$SLOW" || true
cat "$T/slow.out"
grep -q "closed 3" "$T/slow.out" || fail "idle connections were not closed by timeout_s"
awk '/idle closed after/ { if ($4 > 4.5) bad=1 } END { exit bad }' "$T/slow.out" || fail "idle connections outlived timeout_s"
healthy "slowloris"

# More connections than max_connections_per_ip at once: the excess is closed, meshd lives.
python3 - "$PORT" <<'PY'
import socket, sys
port = int(sys.argv[1])
socks = []
for _ in range(40):
    try:
        socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
    except OSError:
        pass
refused = 0
for s in socks:
    s.settimeout(1)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        if not s.recv(64).startswith(b"HTTP/1.1 200"):
            refused += 1
    except OSError:
        refused += 1
print("of", len(socks), "connections", refused, "were refused")
assert refused >= len(socks) - 4, "more than max_connections_per_ip were served at once"
for s in socks:
    s.close()
PY
sleep 0.3
healthy "a connection flood"
stop_meshd

# A taken port: meshd refuses to start and names address:port.
python3 -c 'import socket,time,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(); time.sleep(20)' "$PORT" &
HOLD=$!; PIDS+=("$HOLD"); sleep 0.3
rc=0; timeout 20 "$BIN/meshd" --config "$T/meshd.yaml" 2> "$T/taken.log" || rc=$?
[ "$rc" != 0 ] || fail "meshd started on a taken port"
grep -q "cannot listen on 127.0.0.1:$PORT" "$T/taken.log" || { cat "$T/taken.log"; fail "no error naming 127.0.0.1:$PORT"; }
kill "$HOLD"; wait "$HOLD" 2>/dev/null || true
note "a taken port stops meshd: $(grep -o 'cannot listen.*' "$T/taken.log" | head -1)"

# http.listen false (the default): nothing listens.
sed -i 's/^  listen: true/  listen: false/' "$T/meshd.yaml"
start_meshd
[ "$(code "$URL/healthz")" = 000 ] || fail "http.listen false still serves"
stop_meshd
note "http.listen false serves nothing"

# Bad http config: refused, naming the key.
bad() {  # what to put under http:, the text the error must contain
    write_config "$agent"
    printf 'http:\n%s\n' "$1" >> "$T/meshd.yaml"
    rc=0; "$BIN/meshd" --check-config "$T/meshd.yaml" > "$T/check.out" 2>&1 || rc=$?
    [ "$rc" != 0 ] || fail "--check-config accepted http: $1"
    grep -q "$2" "$T/check.out" || { cat "$T/check.out"; fail "no '$2' in the error for $1"; }
}
bad "  port: 70000" "http.port"
bad "  address: localhost" "http.address"
bad "  listen: maybe" "http.listen"
bad "  max_connections: 4
  max_connections_per_ip: 8" "max_connections_per_ip"
bad "  timeout_s: 0" "http.timeout_s"
bad "  max_request_bytes: 10" "http.max_request_bytes"
bad "  bogus: 1" "bogus"
note "bad http config refused by --check-config"
echo "http_hostile: ok"
