#!/usr/bin/env bash
# `make install PREFIX=/usr DESTDIR=...` gives a meshd that starts as shipped: the
# installed /etc/meshd/meshd.yaml names the rules where they were installed and no demo
# backend, and passes the installed meshd's --check-config; the installed unit passes
# `systemd-analyze verify` and keeps its exposure.
#
# Nothing is installed outside DESTDIR, so the installed files name /usr/... paths that
# exist only under DESTDIR.  The checks run on copies whose /usr/ prefix is rewritten to
# DESTDIR/usr/ (the config's rule paths, the unit's Exec lines; MANPATH for the unit's
# man: links).  The installed files themselves are checked to name exactly
# /usr/share/meshd/rules/ and /usr/bin/, so the rewrite hides nothing.
# meshd-test: no-asan
source "$(dirname "$0")/lib.sh"

R=$T/root
make --no-print-directory -s install B="$B" PREFIX=/usr DESTDIR="$R" > "$T/install.log" 2>&1 \
    || { cat "$T/install.log"; fail "make install failed"; }

for f in usr/bin/meshd usr/bin/mesh-agent usr/bin/meshctl etc/meshd/meshd.yaml \
         lib/systemd/system/meshd.service usr/lib/sysusers.d/meshd.conf \
         usr/lib/tmpfiles.d/meshd.conf usr/share/bash-completion/completions/meshctl \
         usr/share/man/man8/meshd.8 usr/share/man/man1/meshctl.1 usr/share/man/man5/meshd.yaml.5 \
         usr/share/meshd/rules/action_allowlist.lua; do
    [ -f "$R/$f" ] || fail "make install did not install /$f"
done
CONF=$R/etc/meshd/meshd.yaml

# What the installed template names, as written.
rules=$(grep -v '^[[:space:]]*#' "$CONF" | grep -o '[^][ ,]*\.lua' | sort -u)
[ -n "$rules" ] || fail "the installed template names no rule file"
for r in $rules; do
    case $r in
        /usr/share/meshd/rules/*) [ -f "$R$r" ] || fail "the template names $r, not installed" ;;
        *) fail "the installed template names the rule $r outside /usr/share/meshd/rules" ;;
    esac
done
note "rules named: $(echo $rules)"
grep -v '^[[:space:]]*#' "$CONF" | grep -Eq 'kind:[[:space:]]*scripted' \
    && fail "the installed template has a scripted (demo) backend active"
grep -v '^[[:space:]]*#' "$CONF" | grep -q 'api_key_file' \
    && fail "the installed template names an api_key_file that does not exist"
[ "$(stat -c %a "$CONF")" = 644 ] || fail "installed config mode $(stat -c %a "$CONF")"

# The installed meshd checks the installed template (its rules read from DESTDIR).
sed "s#/usr/share/meshd/rules/#$R/usr/share/meshd/rules/#g" "$CONF" > "$T/meshd-destdir.yaml"
"$R/usr/bin/meshd" --check-config "$T/meshd-destdir.yaml" > "$T/check.out" 2>&1 \
    || { cat "$T/check.out"; fail "the installed meshd refuses the installed template"; }
note "$(cat "$T/check.out")"
# and without the rewrite it would look for them under /usr/share/meshd/rules (sanity:
# this proves the copy above is what made the difference, when meshd is not installed here)
if [ ! -e /usr/share/meshd/rules/action_allowlist.lua ]; then
    "$R/usr/bin/meshd" --check-config "$CONF" > /dev/null 2>&1 \
        && fail "check-config passed with rule paths that do not exist on this machine"
fi

# The unit: Exec lines name /usr/bin; verify a copy pointing into DESTDIR.
UNIT=$R/lib/systemd/system/meshd.service
grep -q '^ExecStart=/usr/bin/meshd --config /etc/meshd/meshd.yaml$' "$UNIT" \
    || fail "the installed unit's ExecStart is not /usr/bin/meshd"
grep -q '@PREFIX@' "$UNIT" && fail "the installed unit still holds @PREFIX@"
if command -v systemd-analyze > /dev/null; then
    mkdir -p "$T/unit"
    sed "s#=/usr/bin/#=$R/usr/bin/#g" "$UNIT" > "$T/unit/meshd.service"
    MANPATH=$R/usr/share/man systemd-analyze verify "$T/unit/meshd.service" > "$T/verify.out" 2>&1 \
        || { cat "$T/verify.out"; fail "systemd-analyze verify refuses the installed unit"; }
    [ -s "$T/verify.out" ] && { cat "$T/verify.out"; fail "systemd-analyze verify warns"; }
    exposure=$(systemd-analyze security --offline=yes "$T/unit/meshd.service" 2>&1 \
               | sed -n 's/.*Overall exposure level for meshd.service: \([0-9.]*\).*/\1/p')
    [ -n "$exposure" ] || fail "no exposure level from systemd-analyze security"
    python3 -c "import sys; sys.exit(0 if float('$exposure') <= 1.5 else 1)" \
        || fail "exposure $exposure > 1.5"
    note "systemd-analyze verify: clean; exposure $exposure"
else
    note "systemd-analyze not available: unit not verified"
fi

# A second make install keeps the operator's config and puts the template beside it.
echo "# edited by the operator" >> "$CONF"
make --no-print-directory -s install B="$B" PREFIX=/usr DESTDIR="$R" > "$T/install2.log" 2>&1 \
    || { cat "$T/install2.log"; fail "make install over an installation failed"; }
tail -1 "$CONF" | grep -q 'edited by the operator' || fail "make install overwrote /etc/meshd/meshd.yaml"
cmp -s "$R/etc/meshd/meshd.yaml.new" <(head -n -1 "$CONF") || fail "no meshd.yaml.new with the template beside it"
note "a second make install kept the edited config; the template is meshd.yaml.new"
echo ok
