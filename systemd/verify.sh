#!/bin/sh
# Offline checks of the shipped systemd units (no running systemd needed; Debian 12 has
# systemd-analyze 252):
#   1. systemd-analyze verify (no output allowed: warnings fail too), run in a throwaway root that holds the units, systemd's own unit
#      files (for the dependencies) and stub executables at the paths ExecStart=/ExecReload=
#      name — verify refuses a unit whose binary is missing, and /opt/modbot does not exist
#      on a build machine;
#   2. systemd-analyze security --offline=true: the exposure must be at most 2.0
#      (--threshold is on the 0-100 scale, so 20).
# Usage: sh systemd/verify.sh     (exit status 0 = all units pass)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root/opt/modbot/.venv/bin" \
         "$root/usr/bin" "$root/bin"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
for stub in "$root/opt/modbot/.venv/bin/modbot" "$root/usr/bin/kill" "$root/bin/kill"; do
    printf '#!/bin/sh\nexit 0\n' > "$stub"
    chmod 755 "$stub"
done
status=0
for unit in "$here"/*.service; do
    name=$(basename "$unit")
    cp "$unit" "$root/etc/systemd/system/$name"
    # verify exits 0 on parse warnings (unknown key, bad value: "ignoring"), so any output
    # counts as a failure too
    if out=$(systemd-analyze verify --root="$root" "$name" 2>&1) && [ -z "$out" ]; then
        echo "verify   $name: ok"
    else
        printf '%s\n' "$out" | sed "s|$root||g"
        echo "verify   $name: FAILED"; status=1
    fi
    exposure=$(systemd-analyze security --offline=true "$unit" 2>/dev/null \
               | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
    if systemd-analyze security --offline=true --threshold=20 "$unit" >/dev/null 2>&1; then
        echo "security $name: exposure $exposure (<= 2.0): ok"
    else
        echo "security $name: exposure $exposure (> 2.0): FAILED"; status=1
    fi
done
exit $status
