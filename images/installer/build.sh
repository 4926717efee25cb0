#!/bin/bash
# Build the netboot deploy environment (the fast installer) as a boot image:
#   OUTDIR/{vmlinuz,deploy.initrd,manifest.json}
#
#   images/installer/build.sh BOOT_DIR OUTDIR
#
# BOOT_DIR is the output of images/enlist/build.sh: the installer boots the same Debian
# kernel (BOOT_DIR/vmlinuz, its modules unpacked in the shared cache). The initramfs is
# the host's static busybox (shell, wget, udhcpc, mount, chroot ...) plus the tools
# busybox lacks, taken from Debian packages with `mmdebstrap --variant=extract` (unpacked
# with their libraries, never installed on the host): sfdisk (fdisk), mke2fs
# (e2fsprogs), mkfs.fat (dosfstools), zstd, GNU tar (xattrs) and wipefs/blkdiscard
# (util-linux: disk erasing). grub is not needed
# here: the installer runs grub-install inside the image it wrote.
#
# Idempotent: skipped when the outputs are newer than every input.
# Environment: NETBOOT_CACHE (default <repo>/build/cache), NETBOOT_BUSYBOX (/bin/busybox),
# NETBOOT_DEBIAN_MIRROR (http://deb.debian.org/debian), SOURCE_DATE_EPOCH (0).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
log() { echo "installer-build: $*" >&2; }
die() { echo "installer-build: error: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 BOOT_DIR OUTDIR"
BOOT_DIR=$(cd "$1" && pwd)
mkdir -p "$2"
OUTDIR=$(cd "$2" && pwd)
CACHE=${NETBOOT_CACHE:-$REPO/build/cache}
BUSYBOX=${NETBOOT_BUSYBOX:-/bin/busybox}
MIRROR=${NETBOOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PYTHON=${PYTHON:-python3}
TOOLS_PACKAGES=fdisk,e2fsprogs,dosfstools,zstd,tar,util-linux

for tool in mmdebstrap depmod modprobe ldconfig sha256sum "$PYTHON"; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
[ -f "$BOOT_DIR/BUILDINFO" ] && [ -f "$BOOT_DIR/vmlinuz" ] \
    || die "$BOOT_DIR has no vmlinuz/BUILDINFO: run images/enlist/build.sh $BOOT_DIR first"
KVER=$(sed -n 's/^kernel_release: //p' "$BOOT_DIR/BUILDINFO")
KROOT=""
for marker in "$CACHE"/kernel/*/.unpacked; do
    [ -f "$marker" ] && [ "$(cat "$marker")" = "$KVER" ] && KROOT=$(dirname "$marker")
done
[ -n "$KROOT" ] || die "kernel $KVER is not unpacked in $CACHE/kernel (run images/enlist/build.sh)"
MODDIR="$KROOT/lib/modules/$KVER"

exec 9>"$OUTDIR/.installer-build.lock"
flock 9

INPUTS=("$HERE/init" "$HERE/build.sh" "$HERE/modules.list" "$REPO/images/enlist/modules.list"
        "$REPO/images/enlist/mkcpio.py" "$REPO/images/enlist/udhcpc.script" "$BUSYBOX"
        "$BOOT_DIR/vmlinuz" "$KROOT/.unpacked")
up_to_date() {
    local out=$1 in
    shift
    [ -e "$out" ] || return 1
    for in in "$@"; do [ "$in" -nt "$out" ] && return 1; done
    return 0
}
if up_to_date "$OUTDIR/manifest.json" "${INPUTS[@]}"; then
    log "up to date: $OUTDIR"
    exit 0
fi

STAGING=$(mktemp -d "$OUTDIR/.staging.XXXXXX")
trap 'rm -rf "$STAGING"' EXIT
R="$STAGING/root"

# ---------------------------------------------------------------- 1. Debian tools
TOOLS="$CACHE/installer-tools"
if [ ! -f "$TOOLS/.done" ] || [ "$(cat "$TOOLS/.done")" != "$TOOLS_PACKAGES $MIRROR" ]; then
    log "extracting $TOOLS_PACKAGES (and their libraries) from $MIRROR"
    rm -rf "$TOOLS" "$TOOLS.tmp"
    mmdebstrap --quiet --variant=extract --mode=root --include="$TOOLS_PACKAGES" \
        --aptopt='Acquire::Languages "none"' bookworm "$TOOLS.tmp" "$MIRROR" >&2
    mv "$TOOLS.tmp" "$TOOLS"
    echo "$TOOLS_PACKAGES $MIRROR" >"$TOOLS/.done"
fi
mkdir -p "$R"
cp -a "$TOOLS"/. "$R"/
rm -rf "$R"/usr/share/{doc,man,info,locale,lintian,bash-completion,gcc,bug} \
    "$R"/var/lib/dpkg "$R"/var/cache "$R"/var/log \
    "$R"/etc/apt "$R"/.done "$R"/dev/*
# iconv: only what mkfs.fat uses for volume labels (codepage 850).
find "$R/usr/lib/x86_64-linux-gnu/gconv" -type f ! -name 'IBM850.so' ! -name 'gconv-modules*' -delete
ldconfig -r "$R"

# ---------------------------------------------------------------- 2. busybox + init
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,target,etc/deploy,root}
cp "$BUSYBOX" "$R/bin/busybox"
chmod 755 "$R/bin/busybox"
while read -r applet; do
    [ "$applet" = "bin/busybox" ] && continue
    # A real Debian tool (sfdisk, tar, zstd ...) wins over the busybox applet.
    base=${applet##*/}
    if [ -e "$R/$applet" ] || [ -L "$R/$applet" ]; then continue; fi
    found=0
    for d in bin sbin usr/bin usr/sbin; do
        [ -e "$R/$d/$base" ] && found=1
    done
    [ "$found" = 1 ] || ln -s /bin/busybox "$R/$applet"
done < <("$BUSYBOX" --list-full)
for tool in bin/tar usr/bin/zstd sbin/sfdisk sbin/mkfs.ext4 sbin/mkfs.fat sbin/wipefs sbin/blkdiscard; do
    [ -x "$R/$tool" ] || die "the installer needs /$tool (packages $TOOLS_PACKAGES)"
done
install -m 755 "$HERE/init" "$R/init"
install -m 755 "$REPO/images/enlist/udhcpc.script" "$R/etc/deploy/udhcpc.script"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"
printf 'kernel_release: %s\ntools: %s\n' "$KVER" "$TOOLS_PACKAGES" >"$R/etc/deploy/buildinfo"

# ---------------------------------------------------------------- 3. kernel modules
mapfile -t WANTED < <(cat "$REPO/images/enlist/modules.list" "$HERE/modules.list" \
    | sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d')
RMOD="$R/lib/modules/$KVER"
mkdir -p "$RMOD"
declare -A SEEN=()
for mod in "${WANTED[@]}"; do
    out=$(modprobe -C /dev/null -d "$KROOT" -S "$KVER" --show-depends "$mod" 2>&1) \
        || die "module $mod: $out"
    while read -r kind path _; do
        [ "$kind" = insmod ] || continue
        rel=${path#"$MODDIR"/}
        [ -n "${SEEN[$rel]:-}" ] && continue
        SEEN[$rel]=1
        dst="$RMOD/${rel%.ko*}.ko"
        mkdir -p "$(dirname "$dst")"
        case "$rel" in
            *.ko) cp "$path" "$dst" ;;
            *.ko.xz) xz -dc "$path" >"$dst" ;;
            *.ko.zst) zstd -qdc "$path" >"$dst" ;;
            *) die "unknown module format: $rel" ;;
        esac
    done <<<"$out"
done
cp "$MODDIR/modules.builtin" "$MODDIR/modules.order" "$RMOD/"
[ -f "$MODDIR/modules.builtin.modinfo" ] && cp "$MODDIR/modules.builtin.modinfo" "$RMOD/"
depmod -b "$R" "$KVER"
rm -f "$RMOD"/*.bin "$RMOD/modules.builtin.modinfo"

# ---------------------------------------------------------------- 4. pack + manifest
"$PYTHON" "$REPO/images/enlist/mkcpio.py" "$R" "$STAGING/deploy.initrd" \
    --dev dev/console:600:c:5:1 --dev dev/null:666:c:1:3
cp "$BOOT_DIR/vmlinuz" "$STAGING/vmlinuz"
"$PYTHON" - "$STAGING" "$KVER" <<'PY'
import hashlib, json, sys
from pathlib import Path
out, kver = Path(sys.argv[1]), sys.argv[2]
files = {}
for name in ("vmlinuz", "deploy.initrd"):
    data = (out / name).read_bytes()
    files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
version = hashlib.sha256(
    "".join(f"{n}\0{files[n]['sha256']}\n" for n in sorted(files)).encode()
).hexdigest()[:16]
doc = {"kind": "boot", "name": "installer", "version": version, "arch": "amd64",
       "kernel": "vmlinuz", "initrds": ["deploy.initrd"], "kernel_release": kver,
       "files": files}
(out / "manifest.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
PY
for f in vmlinuz deploy.initrd manifest.json; do mv "$STAGING/$f" "$OUTDIR/$f.tmp"; done
for f in vmlinuz deploy.initrd manifest.json; do mv "$OUTDIR/$f.tmp" "$OUTDIR/$f"; done
log "ok: $OUTDIR (initrd $(stat -c %s "$OUTDIR/deploy.initrd") bytes, kernel $KVER)"
