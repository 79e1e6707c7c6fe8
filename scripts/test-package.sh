#!/usr/bin/env bash
# The package test (issue 15): builds the .deb, installs it with dpkg on
# this machine, checks the binary, the man pages, the completions (each
# shell parses its script) and every systemd unit, then removes it and
# checks that nothing but the config is left; purging removes that too.
# Refuses to run where a freezeframe it did not install is present.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "package test: $*" >&2; exit 1; }
if dpkg-query -W -f='${Status}' freezeframe 2>/dev/null | grep -q installed \
    || [ -e /usr/bin/freezeframe ] || [ -e /etc/freezeframe ]; then
    fail "a freezeframe package, /usr/bin/freezeframe or /etc/freezeframe is already here; not touching what this test did not install"
fi
deb=$(bash "$here/package.sh" "${1:-dev}")
installed=0
cleanup() { [ "$installed" = 1 ] && dpkg --purge freezeframe >/dev/null 2>&1 || true; }
trap cleanup EXIT
files=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {sub(/^\./, "", $6); print $6}')
dpkg -i "$deb" >/dev/null
installed=1
freezeframe --version | grep -q '^freezeframe ' || fail "freezeframe --version"
for page in freezeframe freezeframe-backup freezeframe-status freezeframe.toml; do
    man -w "$page" >/dev/null || fail "man -w $page"
done
[ "$(man -w 5 freezeframe.toml)" = /usr/share/man/man5/freezeframe.toml.5 ] || fail "freezeframe.toml(5)"
man -l /usr/share/man/man1/freezeframe-backup.1 2>/dev/null | grep -q -- '--exclude' \
    || fail "freezeframe-backup(1) does not document --exclude"
bash -c '. /usr/share/bash-completion/completions/freezeframe && complete -p freezeframe' >/dev/null \
    || fail "bash completion"
zsh -n /usr/share/zsh/vendor-completions/_freezeframe || fail "zsh completion"
fish -n /usr/share/fish/vendor_completions.d/freezeframe.fish || fail "fish completion"
fish -c 'source /usr/share/fish/vendor_completions.d/freezeframe.fish; complete -C "freezeframe sta"' \
    | grep -q '^status' || fail "fish completes subcommands"
for u in /lib/systemd/system/freezeframe-*; do
    said=$(systemd-analyze verify "$u" 2>&1) || fail "systemd-analyze verify $u: $said"
    [ -z "$said" ] || fail "systemd-analyze verify $u: $said"
done
grep -q '^Persistent=true' /lib/systemd/system/freezeframe-backup.timer || fail "timer"
# The default config loads as it is.
freezeframe show-config >/dev/null || fail "the default config does not load"
dpkg -r freezeframe >/dev/null
for f in $files; do
    if [ "$f" = /etc/freezeframe/freezeframe.toml ]; then
        [ -f "$f" ] || fail "dpkg -r removed the config $f"
    elif [ -e "$f" ]; then
        fail "dpkg -r left $f"
    fi
done
dpkg --purge freezeframe >/dev/null
installed=0
[ ! -e /etc/freezeframe ] || fail "dpkg --purge left /etc/freezeframe"
echo "package test: ok ($(basename "$deb"))"

