#!/usr/bin/env bash
# The decision log as a transparency log, on the demo's log and on copies an attacker
# rewrote:
#  1. verify checks chain, tree and the signed checkpoint; an accepted decision's
#     inclusion proof verifies offline with the public key alone, and with an
#     independent verifier written from docs/audit.md (Python, hashlib);
#  2. a proof with a changed leaf, path, checkpoint or key is refused;
#  3. meshd restarted: `meshctl audit checkpoint` signs on demand; the old checkpoint is
#     proven consistent with the new one (and the proof verifies offline);
#  4. tampering, each caught: a consistent rewrite of a record (chain, MACs and head all
#     recomputed with the stolen MAC key); the same with every checkpoint removed (verify
#     cannot see it, the kept old checkpoint can); reordered records; a forged checkpoint
#     file; a rewritten log that meshd re-signed with another key.
source "$(dirname "$0")/lib.sh"

mkdir -p "$T/b"
for f in meshd mesh-agent meshctl mesh-gen; do
    [ -e "$BIN/$f" ] && ln -s "$BIN/$f" "$T/b/$f"
done
B_ABS=$T/b DEMO_POINTS=${DEMO_POINTS:-400} bash -c 'B=$B_ABS tools/demo.sh' > "$T/demo.out" 2>&1 \
    || { tail -30 "$T/demo.out"; fail "demo failed"; }
CONF=$T/b/demo/meshd.yaml
STATE=$T/b/demo/state
LOG=$STATE/decisions.jsonl
M=("$BIN/meshctl" --config "$CONF")
PUB=$("${M[@]}" audit pubkey)
note "public key: $PUB"

expect_fail() {   # what, command...: exit 1 and a FAIL line
    local what=$1; shift
    set +e
    out=$("$@" 2>&1); rc=$?
    set -e
    echo "$out" | tail -3
    [ "$rc" = 1 ] || fail "$what: exit $rc, expected 1"
    echo "$out" | grep -q "FAIL" || fail "$what: no FAIL line"
}

# 1. verify, prove, verify-proof
out=$("${M[@]}" audit verify --pubkey "$PUB") || { echo "$out"; fail "verify of the demo's log"; }
echo "$out"
echo "$out" | grep -q "checkpoints: 1 verified" || fail "the stop checkpoint is not verified"
ID=$("${M[@]}" --json audit list --verdict accepted | jq_py 'print(d[0]["id"])')
"${M[@]}" audit prove "$ID" > "$T/proof.json" || fail "audit prove"
(cd / && "$BIN/meshctl" audit verify-proof "$T/proof.json" --pubkey "$PUB") \
    || fail "the proof does not verify offline"
echo "$PUB" > "$T/pub.key"
"$BIN/meshctl" audit verify-proof "$T/proof.json" --pubkey "$T/pub.key" > /dev/null \
    || fail "the proof does not verify with the key in a file"
# An independent verifier, from the formats in docs/audit.md.
python3 - "$T/proof.json" "$PUB" <<'PY'
import base64, hashlib, json, sys
p = json.load(open(sys.argv[1])); vkey = sys.argv[2]
name, keyid, keyb64 = vkey.split("+", 2)
raw = base64.b64decode(keyb64)
assert raw[0] == 1 and len(raw) == 33
assert hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex() == keyid
note = p["checkpoint"]
body, sigs = note.split("\n\n", 1)
body += "\n"
origin, size, root_b64 = body.splitlines()[:3]
sig_line = sigs.splitlines()[0]
assert sig_line.startswith("\u2014 " + name + " ")
sig = base64.b64decode(sig_line.rsplit(" ", 1)[1])
assert sig[:4].hex() == keyid and len(sig) == 68
try:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    Ed25519PublicKey.from_public_bytes(raw[1:]).verify(sig[4:], body.encode())
    print("signature: verified (python cryptography)")
except ImportError:
    print("signature: not checked here (no python cryptography module)")
H = lambda b: hashlib.sha256(b).digest()
r = H(b"\x00" + p["leaf"].encode())
fn, sn = p["leaf_index"], p["tree_size"] - 1
assert int(size) == p["tree_size"]
for h in map(base64.b64decode, p["audit_path"]):
    assert sn > 0
    if fn & 1 or fn == sn:
        r = H(b"\x01" + h + r)
        while not fn & 1 and fn:
            fn >>= 1; sn >>= 1
    else:
        r = H(b"\x01" + r + h)
    fn >>= 1; sn >>= 1
assert sn == 0 and r == base64.b64decode(root_b64), "path does not lead to the root"
assert json.loads(p["leaf"])["seq"] == p["leaf_index"] + 1
print("independent verifier: leaf %d of %d in %s verified" % (p["leaf_index"], int(size), origin))
PY

# 2. changed proofs are refused
python3 - "$T/proof.json" "$T" <<'PY' || fail "cannot make the changed proofs"
import json, sys
p = json.load(open(sys.argv[1])); t = sys.argv[2]
def save(name, q): json.dump(q, open(t + "/" + name, "w"))
q = dict(p); q["leaf"] = q["leaf"].replace('"accepted"', '"rejected"', 1)
assert q["leaf"] != p["leaf"], "the leaf was not changed"; save("p-leaf.json", q)
q = dict(p); path = list(q["audit_path"]); path[0] = ("A" if path[0][0] != "A" else "B") + path[0][1:]
q["audit_path"] = path; save("p-path.json", q)
q = dict(p); lines = q["checkpoint"].split("\n"); lines[1] = str(int(lines[1]) + 1)
q["checkpoint"] = "\n".join(lines); save("p-note.json", q)
q = dict(p); q["leaf_index"] += 1; save("p-index.json", q)
PY
for f in p-leaf p-path p-note p-index; do
    expect_fail "proof $f" "$BIN/meshctl" audit verify-proof "$T/$f.json" --pubkey "$PUB"
done
"$BIN/meshctl" audit keygen --key "$T/other.key" other/meshd > "$T/other.pub" 2>/dev/null
expect_fail "another key" "$BIN/meshctl" audit verify-proof "$T/proof.json" --pubkey "$T/other.pub"

# 3. meshd again: an on-demand checkpoint, and consistency with the old one
cp "$LOG.checkpoint" "$T/old.cp"
"$BIN/meshd" --config "$CONF" 2> "$T/meshd.log" &
MESHD=$!; PIDS+=("$MESHD")
for _ in $(seq 100); do
    "${M[@]}" --json status 2>/dev/null | grep -q '"ready":true' && break
    sleep 0.2
done
"${M[@]}" audit checkpoint > "$T/ondemand.cp" || fail "meshctl audit checkpoint"
cat "$T/ondemand.cp"
head -1 "$T/ondemand.cp" | grep -q . || fail "no checkpoint printed"
stop_meshd
out=$("${M[@]}" audit verify --pubkey "$PUB") || { echo "$out"; fail "verify after a restart"; }
echo "$out" | grep -q "checkpoints: 2 verified" || { echo "$out"; fail "expected 2 checkpoints (at the first stop, on demand; nothing after it)"; }
"${M[@]}" audit consistency "$T/old.cp" --pubkey "$PUB" > "$T/cons.json" \
    || fail "the old checkpoint is not consistent with the latest"
"${M[@]}" audit consistency "$T/old.cp" "$T/ondemand.cp" --pubkey "$PUB" > /dev/null \
    || fail "the old checkpoint is not consistent with the on-demand one"
(cd / && "$BIN/meshctl" audit verify-proof "$T/cons.json" --pubkey "$PUB") \
    || fail "the consistency proof does not verify offline"

# 4. tampering.  rewrite.py SRC DST EDIT_FROM EDIT_TO DROP_CHECKPOINTS: change the first
#    accepted decision's text, and recompute seq, prev, MAC (with the stolen key), hash and
#    the head, so that the chain alone verifies.
cat > "$T/rewrite.py" <<'PY'
import hashlib, hmac, json, re, sys
src, dst, old, new, drop = sys.argv[1:6]
key = open(sys.argv[6], "rb").read()
out, prev, edited = [], "0" * 64, False
for line in open(src).read().splitlines():
    rec = json.loads(line)
    if drop == "1" and rec.get("type") == "checkpoint":
        continue
    prefix = line[:line.index(',"mac":"')]
    if not edited and rec.get("type") == "decision" and rec.get("verdict") == "accepted":
        assert old in prefix, "nothing to edit"
        prefix, edited = prefix.replace(old, new, 1), True
    prefix = re.sub(r'^\{"seq":\d+,"prev":"[0-9a-f]{64}"',
                    '{"seq":%d,"prev":"%s"' % (len(out) + 1, prev), prefix)
    body = prefix + ',"mac":"%s"' % hmac.new(key, prefix.encode(), hashlib.sha256).hexdigest()
    prev = hashlib.sha256(body.encode()).hexdigest()
    out.append(body + ',"hash":"%s"}' % prev)
assert edited
open(dst, "w").write("\n".join(out) + "\n")
open(dst + ".head", "w").write('{"seq":%d,"hash":"%s"}\n' % (len(out), prev))
PY
KEY=$STATE/ledger.key
mk() { rm -rf "$T/x-$1"; mkdir -p "$T/x-$1"; cp -r "$STATE/." "$T/x-$1/"; chmod -R u+w "$T/x-$1"; }

#  a. a consistent rewrite of log and head: the signed checkpoints give it away
mk a
python3 "$T/rewrite.py" "$LOG" "$T/x-a/decisions.jsonl" '"verdict":"accepted"' '"verdict":"rejected"' 0 "$KEY"
"$BIN/meshctl" --log "$T/x-a/decisions.jsonl" audit verify --key "$KEY" > /dev/null 2>&1 && \
    fail "a consistent rewrite verifies" || true
expect_fail "consistent rewrite" "$BIN/meshctl" --log "$T/x-a/decisions.jsonl" audit verify --key "$KEY" --pubkey "$PUB"
echo "$out" | grep -q "checkpoint" || fail "the rewrite is not named as a checkpoint mismatch"

#  b. the same with every checkpoint removed: the chain, MACs and head verify; the old
#     checkpoint an auditor kept does not match
mk b
rm -f "$T/x-b/decisions.jsonl.checkpoint"
python3 "$T/rewrite.py" "$LOG" "$T/x-b/decisions.jsonl" '"verdict":"accepted"' '"verdict":"rejected"' 1 "$KEY"
"$BIN/meshctl" --log "$T/x-b/decisions.jsonl" audit verify --key "$KEY" > "$T/b.out" \
    || { cat "$T/b.out"; fail "the rewritten log without checkpoints should pass the chain"; }
grep -q "checkpoints: none" "$T/b.out" || fail "a log without checkpoints is not said so"
expect_fail "old checkpoint vs rewritten log" \
    "$BIN/meshctl" --log "$T/x-b/decisions.jsonl" audit consistency "$T/old.cp" --pubkey "$PUB"
echo "$out" | grep -q "rewritten" || fail "the rewrite is not named"

#  c. two records swapped
mk c
python3 - "$LOG" "$T/x-c/decisions.jsonl" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines(True)
lines[4], lines[5] = lines[5], lines[4]
open(sys.argv[2], "w").writelines(lines)
PY
expect_fail "reordered records" "$BIN/meshctl" --log "$T/x-c/decisions.jsonl" audit verify

#  d. a forged checkpoint file: another root under the real signature
mk d
python3 - "$T/x-d/decisions.jsonl.checkpoint" <<'PY'
import base64, sys
lines = open(sys.argv[1]).read().split("\n")
root = bytearray(base64.b64decode(lines[2])); root[0] ^= 1
lines[2] = base64.b64encode(bytes(root)).decode()
open(sys.argv[1], "w").write("\n".join(lines))
PY
expect_fail "forged checkpoint file" "$BIN/meshctl" --log "$T/x-d/decisions.jsonl" audit verify --pubkey "$PUB"

#  e. the rewritten log (b) re-signed by meshd with a key of the attacker's: self-consistent,
#     refused by anyone who holds the real public key or an old checkpoint
mk e
cp "$T/x-b/decisions.jsonl" "$T/x-b/decisions.jsonl.head" "$T/x-e/"
rm -f "$T/x-e/decisions.jsonl.checkpoint" "$T/x-e/audit-signing.key"
sed -e "s#$T/b/demo/state#$T/x-e#; s#$T/b/demo/run#$T/x-e-run#" "$CONF" > "$T/e.yaml"
printf 'audit:\n  signing_key: %s\n' "$T/other.key" >> "$T/e.yaml"
"$BIN/meshd" --config "$T/e.yaml" 2> "$T/meshd.log" &
MESHD=$!; PIDS+=("$MESHD")
for _ in $(seq 100); do
    "$BIN/meshctl" --config "$T/e.yaml" --json status 2>/dev/null | grep -q '"ready":true' && break
    sleep 0.2
done
stop_meshd
"$BIN/meshctl" --log "$T/x-e/decisions.jsonl" audit verify > "$T/e.out" \
    || { cat "$T/e.out"; fail "the re-signed log should be self-consistent"; }
grep -q "other/meshd" "$T/e.out" || fail "verify does not name the key that signed"
expect_fail "re-signed with another key" \
    "$BIN/meshctl" --log "$T/x-e/decisions.jsonl" audit verify --pubkey "$PUB"
expect_fail "re-signed log vs old checkpoint" \
    "$BIN/meshctl" --log "$T/x-e/decisions.jsonl" audit consistency "$T/old.cp" --pubkey "$PUB"
echo "audit proofs: ok"
