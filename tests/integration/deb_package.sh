#!/usr/bin/env bash
# The Debian package on this machine: `make deb`, dpkg -i, the installed unit passes
# `systemd-analyze verify` and has an exposure of at most 1.5, the installed meshd accepts
# /etc/meshd/meshd.yaml as the meshd user and starts with it, meshctl and its completion
# work; then dpkg -r and dpkg -P leave nothing of the package behind.
#
# Needs root (dpkg -i, the meshd user).  It refuses to run (fails, touching nothing) when
# the meshd package, /etc/meshd or /var/lib/meshd is already on the machine: purging would
# destroy them.  Whatever happens, the trap leaves the machine as it was: the package
# purged, and the meshd user and group (which the package keeps on purge, as Debian
# packages do: docs/packaging.md) deleted if this test created them.
# meshd-test: no-asan
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i, a system user); run make test as root"
command -v dpkg > /dev/null || fail "not a Debian system (no dpkg)"
if dpkg-query -W -f='${Status}' meshd 2>/dev/null | grep -qv 'not-installed'; then
    fail "the meshd package is already on this machine; this test would remove it"
fi
for d in /etc/meshd /var/lib/meshd /run/meshd; do
    [ -e "$d" ] && fail "$d exists on this machine; this test would purge it"
done
had_user=; getent passwd meshd > /dev/null && had_user=1
had_group=; getent group meshd > /dev/null && had_group=1

DAEMON=
restore() {
    [ -n "$DAEMON" ] && { kill -TERM "$DAEMON" 2>/dev/null; wait "$DAEMON" 2>/dev/null || true; }
    if dpkg-query -W -f='${Status}' meshd 2>/dev/null | grep -qv 'not-installed'; then
        dpkg -P meshd > /dev/null 2>&1 || true
    fi
    rm -rf /run/meshd /etc/meshd /var/lib/meshd     # none existed before (checked above)
    [ -z "$had_user" ] && getent passwd meshd > /dev/null && userdel meshd 2>/dev/null
    [ -z "$had_group" ] && getent group meshd > /dev/null && groupdel meshd 2>/dev/null
    cleanup
}
trap restore EXIT

# 1. the package
make --no-print-directory -s deb B="$B" > "$T/deb.log" 2>&1 || { tail -30 "$T/deb.log"; fail "make deb failed"; }
DEB=$(ls "$B"/deb/meshd_*_*.deb | head -1)
[ -f "$DEB" ] || fail "make deb made no package"
note "$(basename "$DEB"): $(stat -c %s "$DEB") bytes; lintian: $(grep -c '^[EW]:' "$B/deb/lintian.txt" || true) errors/warnings"
grep -q '^E:' "$B/deb/lintian.txt" && fail "lintian errors: $(grep '^E:' "$B/deb/lintian.txt")"
dpkg-deb -f "$DEB" Package | grep -qx meshd || fail "not the meshd package"
dpkg-deb -I "$DEB" conffiles | grep -qx /etc/meshd/meshd.yaml || fail "/etc/meshd/meshd.yaml is not a conffile"

# 2. install
dpkg -i "$DEB" > "$T/install.log" 2>&1 || { cat "$T/install.log"; fail "dpkg -i failed"; }
dpkg -L meshd | sort > "$T/files"
for f in /usr/bin/meshd /usr/bin/mesh-agent /usr/bin/meshctl /lib/systemd/system/meshd.service \
         /usr/lib/sysusers.d/meshd.conf /usr/lib/tmpfiles.d/meshd.conf \
         /usr/share/bash-completion/completions/meshctl /usr/share/man/man8/meshd.8.gz \
         /usr/share/man/man1/meshctl.1.gz /usr/share/man/man5/meshd.yaml.5.gz \
         /usr/share/meshd/rules/action_allowlist.lua /etc/meshd/meshd.yaml; do
    grep -qx "$f" "$T/files" || fail "the package does not ship $f"
    [ -f "$f" ] || fail "$f not installed"
done
getent passwd meshd > /dev/null || fail "postinst did not create the meshd user"
[ "$(stat -c '%a %U %G' /etc/meshd)" = "750 root meshd" ] || fail "/etc/meshd is $(stat -c '%a %U %G' /etc/meshd)"
[ "$(stat -c '%a %U %G' /var/lib/meshd)" = "750 meshd meshd" ] || fail "/var/lib/meshd is $(stat -c '%a %U %G' /var/lib/meshd)"
note "installed: $(wc -l < "$T/files") paths; user $(id meshd)"

# 3. the unit
UNIT=/lib/systemd/system/meshd.service
systemd-analyze verify "$UNIT" > "$T/verify.out" 2>&1 || { cat "$T/verify.out"; fail "systemd-analyze verify refuses $UNIT"; }
[ -s "$T/verify.out" ] && { cat "$T/verify.out"; fail "systemd-analyze verify warns about $UNIT"; }
exposure=$(systemd-analyze security --offline=yes "$UNIT" 2>&1 \
           | sed -n 's/.*Overall exposure level for meshd.service: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "no 'Overall exposure level' from systemd-analyze security"
python3 -c "import sys; sys.exit(0 if float('$exposure') <= 1.5 else 1)" || fail "exposure $exposure > 1.5"
note "systemd-analyze verify: clean; exposure $exposure"

# 4. the installed meshd and the installed template, as root and as the unit's user
/usr/bin/meshd --check-config /etc/meshd/meshd.yaml > "$T/check.out" 2>&1 \
    || { cat "$T/check.out"; fail "meshd --check-config /etc/meshd/meshd.yaml failed"; }
AS_MESHD=(setpriv --reuid=meshd --regid=meshd --clear-groups)
"${AS_MESHD[@]}" /usr/bin/meshd --check-config /etc/meshd/meshd.yaml > /dev/null 2>&1 \
    || fail "the meshd user cannot check /etc/meshd/meshd.yaml (ExecStartPre would fail)"
note "$(cat "$T/check.out")"
# Start it as the unit would (user meshd, RuntimeDirectory=meshd made here since no systemd
# manager runs it): it comes up, answers meshctl and writes its log; with no Kafka broker
# at localhost:9092 its agent cannot consume, which is the template's expected state.
install -d -m 0750 -o meshd -g meshd /run/meshd
"${AS_MESHD[@]}" /usr/bin/meshd --config /etc/meshd/meshd.yaml 2> "$T/meshd.log" &
DAEMON=$!
for _ in $(seq 50); do
    /usr/bin/meshctl --json status > "$T/status.json" 2>/dev/null && break
    kill -0 "$DAEMON" 2>/dev/null || fail "the installed meshd exited at start"
    sleep 0.2
done
PKGVER=$(dpkg-deb -f "$DEB" Version)
jq_py 'assert d["daemon"]["config"] == "/etc/meshd/meshd.yaml", d["daemon"]; assert d["daemon"]["storage"] == "up"
assert "'"$PKGVER"'" in d["daemon"]["version"], ("package '"$PKGVER"' but meshd says", d["daemon"]["version"])' \
    < "$T/status.json" || fail "meshctl status of the installed meshd: $(head -c 300 "$T/status.json")"
kill -TERM "$DAEMON"; rc=0; wait "$DAEMON" || rc=$?; DAEMON=
[ "$rc" = 0 ] || fail "the installed meshd exited with $rc on SIGTERM"
[ -s /var/lib/meshd/decisions.jsonl ] || fail "the installed meshd wrote no decision log"
note "started as meshd with the shipped template, answered status, stopped cleanly"

/usr/bin/meshctl --help > "$T/help.out" 2>&1 || fail "meshctl --help exited non-zero"
grep -q 'usage: meshctl' "$T/help.out" || fail "meshctl --help printed no usage"
got=$(bash --norc --noprofile -c '. /usr/share/bash-completion/completions/meshctl
    COMP_WORDS=(meshctl au); COMP_CWORD=1; _meshctl; echo "${COMPREPLY[*]}"')
[ "$got" = audit ] || fail "installed completion: 'meshctl au' -> '$got'"

# 5. remove: every file but the conffile gone; purge: the conffile and the directories too
dpkg -r meshd > "$T/remove.log" 2>&1 || { cat "$T/remove.log"; fail "dpkg -r failed"; }
while read -r f; do
    [ "$f" = /etc/meshd/meshd.yaml ] && continue
    [ -f "$f" ] && fail "$f left after dpkg -r"
done < "$T/files"
[ -f /etc/meshd/meshd.yaml ] || fail "dpkg -r removed the conffile (only purge should)"
dpkg -P meshd > "$T/purge.log" 2>&1 || { cat "$T/purge.log"; fail "dpkg -P failed"; }
left=
while read -r f; do
    case $f in /|/etc|/lib|/lib/*systemd*|/usr|/usr/bin|/usr/lib|/usr/share|/usr/share/man|/usr/share/man/man?|\
               /usr/share/doc|/usr/share/bash-completion|/usr/share/bash-completion/completions|\
               /usr/lib/sysusers.d|/usr/lib/tmpfiles.d|/.) continue ;; esac
    [ -e "$f" ] && left="$left $f"
done < "$T/files"
[ -z "$left" ] || fail "left after purge:$left"
for d in /etc/meshd /var/lib/meshd /run/meshd; do
    [ -e "$d" ] && fail "$d left after purge"
done
st=$(dpkg-query -W -f='${Status}' meshd 2>/dev/null || true)
case $st in ""|*not-installed*) ;; *) fail "dpkg still holds meshd after purge: $st" ;; esac
note "removed and purged: nothing left (the meshd user is kept by the package; removed by this test)"
echo ok
