#!/usr/bin/env bash
# actions/restart-unit, the example exec program: it restarts exactly one allow-listed
# .service and refuses everything else before systemctl is reached.  systemctl is a stub
# named by SYSTEMCTL (the helper never looks anything up in PATH), which records its
# arguments one per line.
source "$(dirname "$0")/lib.sh"
HELPER=$ROOT/actions/restart-unit

# The program meshd executes: executable, and writable by its owner only.
[ -x "$HELPER" ] || fail "$HELPER is not executable"
mode=$(stat -c %a "$HELPER")
[ "$mode" = 755 ] || fail "$HELPER has mode $mode, expected 755"

cat > "$T/systemctl" <<'STUB'
#!/bin/sh
printf '%s\n' "$@" > "$STUB_LOG"
exit "${STUB_EXIT:-0}"
STUB
chmod 0755 "$T/systemctl"
printf '# units meshd may restart\nweb.service\n  worker@2.service\t# trailing comment\n\n# old.service\napi.service' \
    > "$T/allow"
export SYSTEMCTL=$T/systemctl RESTART_UNIT_ALLOW=$T/allow STUB_LOG=$T/called

# run EXPECTED_STATUS ARGS...: the helper's exit status must be EXPECTED_STATUS.
run() {
    local want=$1; shift
    rm -f "$STUB_LOG"
    local got=0
    "$HELPER" "$@" > "$T/out" 2> "$T/err" || got=$?
    [ "$got" = "$want" ] || fail "restart-unit $(printf '%q ' "$@"): exit $got, expected $want ($(cat "$T/err"))"
}
not_called() { [ ! -e "$STUB_LOG" ] || fail "systemctl was called: $(cat "$STUB_LOG")"; }
called_with() { [ "$(cat "$STUB_LOG")" = "$(printf '%s\n' "$@")" ] || fail "systemctl got: $(cat "$STUB_LOG")"; }

note "allow-listed units are restarted, with -- before the name"
run 0 web.service
called_with restart -- web.service
run 0 worker@2.service
called_with restart -- worker@2.service
run 0 api.service                       # the last line has no newline
called_with restart -- api.service

note "systemctl's failure is the helper's"
STUB_EXIT=5 run 5 web.service
called_with restart -- web.service

note "not on the list: refused (77)"
run 77 old.service                      # commented out
not_called
run 77 db.service
not_called
grep -q "refused: db.service is not on the allow-list" "$T/err" || fail "$(cat "$T/err")"
run 77 Web.service                      # names are compared exactly
not_called

note "not a unit name: refused (65) before the list is read"
for bad in 'web.service; reboot' 'web.service reboot' $'web.service\nreboot' '../web.service' \
           'a/b.service' '$(id).service' '`id`.service' '*.service' '.service' 'web.socket' \
           'web.service.' 'web.servic' 'web' '' 'wéb.service' "web.service'"; do
    run 65 "$bad"
    not_called
done

note "usage: exactly one argument (64)"
run 64
run 64 web.service api.service
not_called

note "SYSTEMCTL must be absolute; the allow-list must be readable"
SYSTEMCTL=systemctl run 64 web.service
not_called
RESTART_UNIT_ALLOW=$T/nothere run 66 web.service
not_called
RESTART_UNIT_ALLOW=$T run 66 web.service
not_called

note "a leading dash never reaches systemctl as an option"
printf -- '\n-x.service\n' >> "$T/allow"
run 0 -x.service
called_with restart -- -x.service

echo "restart_unit_helper: ok"
