#!/bin/bash
# Build the netboot commissioning environment: OUTDIR/commission.initrd (+ the enlistment
# image's OUTDIR/vmlinuz and OUTDIR/enlist.initrd, which it extends).
#
#   images/commission/build.sh OUTDIR
#
# commission.initrd = enlist.initrd + a small overlay cpio archive (the kernel unpacks
# concatenated archives in order, later files replacing earlier ones). The overlay holds
# this directory's `init` and /lib/netboot/enlist-functions.sh: the enlistment init's
# helper and network functions (everything between its "JSON helpers" marker and its
# final "( main )" call), so driver loading, NIC choice, DHCP and JSON escaping are
# shared, not copied. Idempotent: rebuilt only when an input is newer than the output.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ENLIST="$REPO/images/enlist"
PYTHON=${PYTHON:-python3}

log() { echo "commission-build: $*" >&2; }
die() { echo "commission-build: error: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)

"$ENLIST/build.sh" "$OUTDIR"
[ -f "$OUTDIR/enlist.initrd" ] || die "$OUTDIR/enlist.initrd was not built"

OUT="$OUTDIR/commission.initrd"
INPUTS=("$HERE/init" "$HERE/build.sh" "$ENLIST/init" "$ENLIST/mkcpio.py" "$OUTDIR/enlist.initrd")
fresh=1
[ -e "$OUT" ] || fresh=0
for in in "${INPUTS[@]}"; do
    [ "$in" -nt "$OUT" ] && fresh=0
done
if [ "$fresh" = 1 ]; then
    log "ok: $OUT is up to date"
    exit 0
fi

STAGING=$(mktemp -d)
trap 'rm -rf "$STAGING"' EXIT
R="$STAGING/root"
mkdir -p "$R/lib/netboot"
install -m 755 "$HERE/init" "$R/init"
start='^# -+ JSON helpers$'
grep -Eq "$start" "$ENLIST/init" || die "$ENLIST/init lost its '# --- JSON helpers' marker"
grep -q '^( main )$' "$ENLIST/init" || die "$ENLIST/init lost its final '( main )' line"
awk -v start="$start" '$0 ~ start {on = 1} /^\( main \)$/ {exit} on' "$ENLIST/init" \
    >"$R/lib/netboot/enlist-functions.sh"
for fn in parse_cmdline load_modules bring_up_nics choose_boot_iface configure_network \
          get_cpu get_memory disk_serial nics wait_for nvme_settled jstr getv readf; do
    grep -q "^$fn()" "$R/lib/netboot/enlist-functions.sh" || die "enlist init has no $fn()"
done
"$PYTHON" "$ENLIST/mkcpio.py" "$R" "$STAGING/overlay.cpio.gz"
cat "$OUTDIR/enlist.initrd" "$STAGING/overlay.cpio.gz" >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
(cd "$OUTDIR" && sha256sum commission.initrd >commission.initrd.sha256)
log "ok: $OUT ($(stat -c %s "$OUT") bytes)"
