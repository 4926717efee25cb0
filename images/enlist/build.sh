#!/bin/bash
# Build the netboot enlistment environment: OUTDIR/vmlinuz, OUTDIR/enlist.initrd, SHA256SUMS.
#
#   images/enlist/build.sh OUTDIR
#
# Kernel and modules come from Debian's linux-image-6.1.*-amd64 package (the one the
# linux-image-amd64 metapackage depends on), fetched with `apt-get download` into the cache
# (NETBOOT_CACHE, default <repo>/build/cache) and unpacked there, never installed on the
# host. Userland is the host's static busybox. See README.md next to this file.
#
# Idempotent: each step is skipped when its outputs are newer than its inputs (and were
# built from the same kernel package), so a re-run without changes takes about a second.
#
# Environment:
#   NETBOOT_CACHE               cache directory (default <repo>/build/cache)
#   NETBOOT_ENLIST_KERNEL_DEB   use this linux-image .deb instead of resolving/downloading one
#   NETBOOT_ENLIST_KERNEL_PKG   package name to use instead of linux-image-amd64's dependency
#   NETBOOT_BUSYBOX             static busybox binary (default /bin/busybox)
#   SOURCE_DATE_EPOCH           mtime stamped on every initrd entry (default 0)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

log() { echo "enlist-build: $*" >&2; }
die() { echo "enlist-build: error: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
CACHE=${NETBOOT_CACHE:-$REPO/build/cache}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
BUSYBOX=${NETBOOT_BUSYBOX:-/bin/busybox}
PYTHON=${PYTHON:-python3}

for tool in dpkg-deb depmod modprobe sha256sum "$PYTHON"; do
    command -v "$tool" >/dev/null || die "$tool not found (packages: dpkg, kmod, coreutils, python3)"
done

# One build at a time per cache (the unpacked kernel tree is shared).
if command -v flock >/dev/null; then
    exec 9>"$CACHE/.enlist-build.lock"
    flock 9
fi

STAGING=""
cleanup() { if [ -n "$STAGING" ]; then rm -rf "$STAGING"; fi; }
trap cleanup EXIT

# up_to_date OUTPUT INPUT...: OUTPUT exists and no INPUT is newer than it.
up_to_date() {
    local out=$1 in
    shift
    [ -e "$out" ] || return 1
    for in in "$@"; do
        [ "$in" -nt "$out" ] && return 1
    done
    return 0
}

# ---------------------------------------------------------------- 1. kernel package
resolve_kernel_deb() {
    if [ -n "${NETBOOT_ENLIST_KERNEL_DEB:-}" ]; then
        [ -f "$NETBOOT_ENLIST_KERNEL_DEB" ] || die "NETBOOT_ENLIST_KERNEL_DEB=$NETBOOT_ENLIST_KERNEL_DEB: no such file"
        KERNEL_DEB=$(cd "$(dirname "$NETBOOT_ENLIST_KERNEL_DEB")" && pwd)/$(basename "$NETBOOT_ENLIST_KERNEL_DEB")
        return
    fi
    local pkg ver debname
    pkg=${NETBOOT_ENLIST_KERNEL_PKG:-}
    if [ -z "$pkg" ]; then
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null \
            | awk '!found && $1 == "Depends:" && $2 ~ /^linux-image-6\.1\..*-amd64$/ {print $2; found=1}') || true
    fi
    ver=""
    if [ -n "$pkg" ]; then
        ver=$(apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" {print $2}') || true
        [ "$ver" = "(none)" ] && ver=""
    fi
    if [ -z "$pkg" ] || [ -z "$ver" ]; then
        # Offline fallback: the newest kernel already in the cache.
        KERNEL_DEB=$(ls "$CACHE"/linux-image-6.1.*-amd64_*_amd64.deb 2>/dev/null | sort -V | tail -n 1) || true
        [ -n "$KERNEL_DEB" ] || die "cannot resolve linux-image-amd64's kernel package with apt-cache (apt-get update?) and none is cached in $CACHE"
        log "apt-cache could not resolve the kernel package; using cached $(basename "$KERNEL_DEB")"
        return
    fi
    debname="${pkg}_${ver//:/%3a}_amd64.deb"
    KERNEL_DEB="$CACHE/$debname"
    if [ -f "$KERNEL_DEB" ]; then
        return
    fi
    log "downloading $pkg=$ver"
    local dl
    dl=$(mktemp -d "$CACHE/.download.XXXXXX")
    if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
        chown _apt "$dl"    # apt downloads as _apt; avoids its "unsandboxed" warning
    fi
    if ! (cd "$dl" && apt-get download -q "$pkg=$ver" >&2); then
        if [ "$(id -u)" -eq 0 ]; then
            log "apt-get download failed; running apt-get update and retrying once"
            apt-get update -q >&2 || true
            (cd "$dl" && apt-get download -q "$pkg=$ver" >&2) || { rm -rf "$dl"; die "apt-get download $pkg=$ver failed"; }
        else
            rm -rf "$dl"
            die "apt-get download $pkg=$ver failed (try: apt-get update)"
        fi
    fi
    local got
    got=$(ls "$dl"/*.deb)
    [ "$(id -u)" -eq 0 ] && chown 0:0 "$got"
    mv "$got" "$KERNEL_DEB"    # atomic: a cached .deb is always complete
    rm -rf "$dl"
}
resolve_kernel_deb
KERNEL_ID=$(basename "$KERNEL_DEB" .deb)

# ---------------------------------------------------------------- 2. unpack + depmod
KROOT="$CACHE/kernel/$KERNEL_ID"
if ! up_to_date "$KROOT/.unpacked" "$KERNEL_DEB"; then
    log "unpacking $(basename "$KERNEL_DEB")"
    rm -rf "$KROOT" "$KROOT.tmp"
    mkdir -p "$KROOT.tmp"
    dpkg-deb -x "$KERNEL_DEB" "$KROOT.tmp"
    if [ ! -d "$KROOT.tmp/lib/modules" ] && [ -d "$KROOT.tmp/usr/lib/modules" ]; then
        ln -s usr/lib "$KROOT.tmp/lib"    # merged-/usr packages; depmod -b looks in lib/
    fi
    kver=$(ls "$KROOT.tmp/lib/modules")
    [ "$(echo "$kver" | wc -l)" -eq 1 ] || die "expected one kernel in the package, found: $kver"
    [ -f "$KROOT.tmp/boot/vmlinuz-$kver" ] || die "no /boot/vmlinuz-$kver in $(basename "$KERNEL_DEB")"
    # The package ships no modules.dep (postinst runs depmod); make it here.
    depmod -b "$KROOT.tmp" "$kver"
    mv "$KROOT.tmp" "$KROOT"
    echo "$kver" >"$KROOT/.unpacked"
fi
KVER=$(cat "$KROOT/.unpacked")
MODDIR="$KROOT/lib/modules/$KVER"

# ---------------------------------------------------------------- 3. module insmod order
# modprobe --show-depends prints the insmod sequence (soft deps and deps first) from the
# package's own modules.dep; -C /dev/null keeps the host's modprobe.d out of it.
mapfile -t WANTED < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$HERE/modules.list")
MODULES=()
declare -A SEEN=()
for mod in "${WANTED[@]}"; do
    out=$(modprobe -C /dev/null -d "$KROOT" -S "$KVER" --show-depends "$mod" 2>&1) \
        || die "module $mod: $out"
    while read -r kind path _; do
        [ "$kind" = "insmod" ] || continue    # "builtin NAME": nothing to load
        rel=${path#"$MODDIR"/}
        if [ -z "${SEEN[$rel]:-}" ]; then
            SEEN[$rel]=1
            MODULES+=("$rel")
        fi
    done <<<"$out"
done

BUSYBOX_VERSION=$("$BUSYBOX" 2>&1 | head -n 1 || true)
BUILDINFO_NEW="kernel_package: $(dpkg-deb -f "$KERNEL_DEB" Package) $(dpkg-deb -f "$KERNEL_DEB" Version)
kernel_release: $KVER
busybox: $BUSYBOX_VERSION
modules: $(for m in "${MODULES[@]}"; do m=${m##*/}; printf '%s ' "${m%%.ko*}"; done | sed 's/ $//')"
if [ "$(cat "$OUTDIR/BUILDINFO" 2>/dev/null || true)" != "$BUILDINFO_NEW" ]; then
    # Different kernel, module set or busybox: nothing in OUTDIR can be reused.
    rm -f "$OUTDIR/vmlinuz" "$OUTDIR/enlist.initrd" "$OUTDIR/SHA256SUMS"
    printf '%s\n' "$BUILDINFO_NEW" >"$OUTDIR/BUILDINFO.tmp"
    mv "$OUTDIR/BUILDINFO.tmp" "$OUTDIR/BUILDINFO"
fi

# ---------------------------------------------------------------- 4. vmlinuz
if ! up_to_date "$OUTDIR/vmlinuz" "$KROOT/.unpacked"; then
    log "vmlinuz <- $KERNEL_ID"
    cp "$KROOT/boot/vmlinuz-$KVER" "$OUTDIR/vmlinuz.tmp"
    mv "$OUTDIR/vmlinuz.tmp" "$OUTDIR/vmlinuz"
fi

# ---------------------------------------------------------------- 5. initrd
INPUTS=("$HERE/init" "$HERE/udhcpc.script" "$HERE/modules.list" "$HERE/mkcpio.py"
        "$HERE/build.sh" "$BUSYBOX" "$KROOT/.unpacked" "$OUTDIR/BUILDINFO")
if ! up_to_date "$OUTDIR/enlist.initrd" "${INPUTS[@]}"; then
    log "building enlist.initrd (${#MODULES[@]} modules, kernel $KVER)"
    "$PYTHON" - "$BUSYBOX" <<'EOF' || die "$BUSYBOX is not a static x86-64 ELF binary (install busybox-static)"
import struct, sys
with open(sys.argv[1], "rb") as fh:
    elf = fh.read()
assert elf[:4] == b"\x7fELF" and elf[4] == 2 and struct.unpack_from("<H", elf, 18)[0] == 62
phoff, = struct.unpack_from("<Q", elf, 32)
phentsize, phnum = struct.unpack_from("<HH", elf, 54)
for i in range(phnum):
    ptype, = struct.unpack_from("<I", elf, phoff + i * phentsize)
    assert ptype != 3, "dynamically linked (has PT_INTERP)"
EOF
    STAGING=$(mktemp -d "$CACHE/.enlist-staging.XXXXXX")
    R="$STAGING/root"
    mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc/enlist,var,root}
    ln -s ../run "$R/var/run"

    cp "$BUSYBOX" "$R/bin/busybox"
    chmod 755 "$R/bin/busybox"
    while read -r applet; do
        [ "$applet" = "bin/busybox" ] && continue
        [ -e "$R/$applet" ] || [ -L "$R/$applet" ] || ln -s /bin/busybox "$R/$applet"
    done < <("$BUSYBOX" --list-full)

    install -m 755 "$HERE/init" "$R/init"
    install -m 755 "$HERE/udhcpc.script" "$R/etc/enlist/udhcpc.script"
    printf '%s\n' "$BUILDINFO_NEW" >"$R/etc/enlist/buildinfo"
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
    printf 'root:x:0:\n' >"$R/etc/group"

    # Modules, decompressed, at their usual paths; plus modules.dep for the kernel's own
    # request_module() calls (busybox modprobe reads the text modules.dep).
    RMOD="$R/lib/modules/$KVER"
    mkdir -p "$RMOD"
    : >"$R/etc/enlist/modules"
    for rel in "${MODULES[@]}"; do
        src="$MODDIR/$rel"
        dst="$RMOD/${rel%.ko*}.ko"
        mkdir -p "$(dirname "$dst")"
        case "$rel" in
            *.ko)     cp "$src" "$dst" ;;
            *.ko.xz)  xz -dc "$src" >"$dst" ;;
            *.ko.zst) zstd -qdc "$src" >"$dst" ;;
            *.ko.gz)  gzip -dc "$src" >"$dst" ;;
            *) die "unknown module format: $rel" ;;
        esac
        echo "/lib/modules/$KVER/${rel%.ko*}.ko" >>"$R/etc/enlist/modules"
    done
    cp "$MODDIR/modules.builtin" "$MODDIR/modules.order" "$RMOD/"
    [ -f "$MODDIR/modules.builtin.modinfo" ] && cp "$MODDIR/modules.builtin.modinfo" "$RMOD/"
    depmod -b "$R" "$KVER"
    rm -f "$RMOD"/*.bin "$RMOD/modules.builtin.modinfo"

    "$PYTHON" "$HERE/mkcpio.py" "$R" "$OUTDIR/enlist.initrd" \
        --dev dev/console:600:c:5:1 --dev dev/null:666:c:1:3
    rm -rf "$STAGING"
    STAGING=""
fi

# ---------------------------------------------------------------- 6. checksums
if ! up_to_date "$OUTDIR/SHA256SUMS" "$OUTDIR/vmlinuz" "$OUTDIR/enlist.initrd"; then
    (cd "$OUTDIR" && sha256sum vmlinuz enlist.initrd >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
fi

log "ok: $OUTDIR/{vmlinuz,enlist.initrd,SHA256SUMS} (kernel $KVER, initrd $(stat -c %s "$OUTDIR/enlist.initrd") bytes)"
