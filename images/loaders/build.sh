#!/bin/bash
# Collect the non-iPXE boot loaders into OUTDIR (the TFTP/HTTP boot root):
#
#   OUTDIR/lpxelinux.0, OUTDIR/ldlinux.c32   BIOS pxelinux path (Debian pxelinux, syslinux-common)
#   OUTDIR/bootx64.efi                       shim (shim-signed: shimx64.efi.signed, MS-signed)
#   OUTDIR/grubx64.efi                       grub (grub-efi-amd64-signed: grubnetx64.efi.signed)
#   OUTDIR/grubaa64.efi                      arm64 grub (grub-efi-arm64-signed: grubnetaa64.efi.signed)
#
# shim loads grubx64.efi from the directory of the BOOTP `file` field, so both sit at the
# top of the root. pxelinux/syslinux-common are installed packages (APT_PACKAGES); shim-signed
# and grub-efi-amd64-signed are fetched with `apt-get download` into the cache
# (NETBOOT_CACHE, default <repo>/build/cache) and unpacked there, never installed.
# grub-efi-arm64-signed is an arm64 package: it is found through a private apt state in
# the cache (APT_CONFIG with arm64 added), so the host's apt and dpkg are not changed.
# Idempotent: a cached .deb is reused; files are copied only when they differ.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
log() { echo "loaders: $*" >&2; }
die() { echo "loaders: error: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
CACHE=${NETBOOT_CACHE:-$REPO/build/cache}
mkdir -p "$CACHE/loaders"
CACHE=$(cd "$CACHE" && pwd)

install_file() {    # SRC DEST: copy when different (keeps mtimes stable for HTTP ETags)
    [ -f "$1" ] || die "$1 missing"
    cmp -s "$1" "$2" || cp "$1" "$2"
}

# fetch PACKAGE: the unpacked tree of the candidate version of PACKAGE in the cache.
fetch() {
    local pkg=$1 arch=${2:-amd64} ver deb dir dl
    ver=$(apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" {print $2}') || true
    if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
        deb=$(ls "$CACHE/loaders/${pkg}"_*.deb 2>/dev/null | sort -V | tail -n 1) || true
        [ -n "$deb" ] || die "apt-cache knows no $pkg (apt-get update?) and none is cached"
    else
        deb="$CACHE/loaders/${pkg}_${ver//:/%3a}_${arch}.deb"
        if [ ! -f "$deb" ]; then
            log "downloading $pkg=$ver"
            dl=$(mktemp -d "$CACHE/loaders/.dl.XXXXXX")
            if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$dl"; fi
            (cd "$dl" && apt-get download -q "$pkg:$arch=$ver" >&2) || {
                rm -rf "$dl"; die "apt-get download $pkg=$ver failed (apt-get update?)"; }
            mv "$dl"/*.deb "$deb"
            rm -rf "$dl"
        fi
    fi
    dir="$CACHE/loaders/$(basename "$deb" .deb)"
    if [ ! -f "$dir/.unpacked" ]; then
        rm -rf "$dir"
        dpkg-deb -x "$deb" "$dir"
        touch "$dir/.unpacked"
    fi
    FETCHED=$dir
}

install_file /usr/lib/PXELINUX/lpxelinux.0 "$OUTDIR/lpxelinux.0"
install_file /usr/lib/syslinux/modules/bios/ldlinux.c32 "$OUTDIR/ldlinux.c32"

fetch shim-signed
install_file "$FETCHED/usr/lib/shim/shimx64.efi.signed" "$OUTDIR/bootx64.efi"
fetch grub-efi-amd64-signed
install_file "$FETCHED/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed" "$OUTDIR/grubx64.efi"

# arm64: a private apt state that also knows arm64 packages (lists only, ~20 MB).
ARM=$CACHE/apt-arm64
mkdir -p "$ARM/lists/partial" "$ARM/archives/partial"
mkdir -p "$ARM/cache"
printf 'APT::Architectures { "amd64"; "arm64"; };\nDir::State::Lists "%s/lists";\nDir::Cache "%s/cache";\nDir::Cache::Archives "%s/archives";\n' \
    "$ARM" "$ARM" "$ARM" >"$ARM/apt.conf"
export APT_CONFIG=$ARM/apt.conf
if ! ls "$ARM"/lists/*binary-arm64_Packages* >/dev/null 2>&1; then
    log "apt-get update for arm64 package lists (private state in $ARM)"
    apt-get update -q >&2 || log "apt-get update (arm64) failed; using a cached .deb if any"
fi
fetch grub-efi-arm64-signed arm64
unset APT_CONFIG
install_file "$FETCHED/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed" "$OUTDIR/grubaa64.efi"
log "loaders ready in $OUTDIR"
