#!/usr/bin/env bash
# Kafka security end to end, as far as it goes without a TLS/SASL cluster: a SASL_SSL +
# SCRAM config whose password is a systemd credential ($CREDENTIALS_DIRECTORY/NAME) loads;
# the agents, pointed at a port where nothing listens, fail within their bound with one
# clear line and are restarted; and the password is in no process's command line, no
# `meshctl status` output and no log line.  An inline password is refused by
# --check-config without being repeated.
source "$(dirname "$0")/lib.sh"

SECRET="scram-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkdir -p "$T/creds"
printf '%s\n' "$SECRET" > "$T/creds/kafka-password"
chmod 0400 "$T/creds/kafka-password"
export CREDENTIALS_DIRECTORY="$T/creds"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

write_config "  - name: ops
    topics: [metrics]
    fields: { key: [host, metric], value: value, time: ts }
    reason: { backend: scripted }
    actions: [scale_out, escalate]
    fallback: escalate"
python3 - "$T/meshd.yaml" "$PORT" <<'PY'
import sys, re
path, port = sys.argv[1], sys.argv[2]
text = open(path).read()
kafka = f"""kafka:
  brokers: 127.0.0.1:{port}
  session_timeout_ms: 6000
  security:
    protocol: sasl_ssl
    sasl:
      mechanism: SCRAM-SHA-256
      username: meshd
      password_file: {{credential: kafka-password}}
  properties:
    socket.keepalive.enable: true
"""
text = re.sub(r"kafka:\n(  .*\n)+", kafka, text, count=1)
open(path, "w").write(text)
PY
"$BIN/meshd" --check-config "$T/meshd.yaml" > "$T/check.out" 2>&1 || { cat "$T/check.out"; fail "the config does not check"; }

# An inline password: refused at its line, its value not repeated.
sed 's/      password_file: {credential: kafka-password}/      password: "'"$SECRET"'"/' \
    "$T/meshd.yaml" > "$T/inline.yaml"
if "$BIN/meshd" --check-config "$T/inline.yaml" > "$T/inline.out" 2>&1; then
    fail "an inline password was accepted"
fi
grep -q 'kafka.security.sasl.password: secrets are never written in the config' "$T/inline.out" \
    || { cat "$T/inline.out"; fail "no clear refusal of the inline password"; }
grep -q -- "$SECRET" "$T/inline.out" && fail "the refusal repeats the password"

"$BIN/meshd" --config "$T/meshd.yaml" 2> "$T/meshd.log" &
MESHD=$!
PIDS+=("$MESHD")
for _ in $(seq 100); do
    grep -q 'no usable connection to the brokers at' "$T/meshd.log" && break
    kill -0 "$MESHD" 2>/dev/null || fail "meshd exited"
    sleep 0.2
done
grep -q "no usable connection to the brokers at 127.0.0.1:$PORT" "$T/meshd.log" \
    || fail "the agent did not say why it cannot start"
note "$(grep -m1 'no usable connection' "$T/meshd.log" | cut -c1-160)"

# Command lines of meshd and of every agent it runs now; status; the log so far.
for _ in $(seq 50); do
    pgrep -P "$MESHD" > /dev/null && break
    sleep 0.1
done
{
    tr '\0' ' ' < "/proc/$MESHD/cmdline"; echo
    # An agent that cannot connect exits and is restarted: it may be gone by now.
    for p in $(pgrep -P "$MESHD"); do { tr '\0' ' ' < "/proc/$p/cmdline"; } 2>/dev/null || true; echo; done
} > "$T/argv.txt"
grep -q 'mesh-agent' "$T/argv.txt" || note "no agent running at this instant"
MESHCTL --json status > "$T/status.json" 2>&1 || true
grep -q '"agents"' "$T/status.json" || fail "no status"
for f in argv.txt status.json meshd.log; do
    if grep -q -- "$SECRET" "$T/$f"; then fail "the password appears in $f"; fi
done

kill -TERM "$MESHD"
wait "$MESHD" || true
grep -q -- "$SECRET" "$T/meshd.log" && fail "the password appears in the log"
if grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/meshd.log"; then
    fail "sanitizer report"
fi
echo ok
