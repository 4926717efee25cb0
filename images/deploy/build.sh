#!/bin/bash
# Build the netboot deploy image: a Debian 12 root filesystem tarball for the installer.
#
#   images/deploy/build.sh OUTDIR
#
# Writes OUTDIR/<recipe-hash>/{debian-12-amd64.tar.zst,packages.tsv,manifest.json} and
# prints that directory on stdout. The recipe hash covers every input that shapes the
# image (this script, packages.list, exclude.list, customize.sh, suite, mirrors,
# SOURCE_DATE_EPOCH), so a second run with the same recipe is a cache hit (about a
# second). With the same mirror content the tarball is byte-identical (mmdebstrap honours
# SOURCE_DATE_EPOCH); packages.tsv records the exact package versions either way.
#
# Environment:
#   NETBOOT_DEBIAN_MIRROR    main archive (default http://deb.debian.org/debian)
#   NETBOOT_DEBIAN_SECURITY  security archive (default http://deb.debian.org/debian-security)
#   SOURCE_DATE_EPOCH        timestamp for reproducible output (default 1700000000)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { echo "deploy-build: $*" >&2; }
die() { echo "deploy-build: error: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
command -v mmdebstrap >/dev/null || die "mmdebstrap not found (apt-get install mmdebstrap)"
command -v zstd >/dev/null || die "zstd not found (apt-get install zstd)"
[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap root mode installs packages with dpkg in a chroot)"

SUITE=bookworm
NAME=debian-12-amd64
MIRROR=${NETBOOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${NETBOOT_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
SOURCES=("deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY $SUITE-security main")

mapfile -t PACKAGES < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$HERE/packages.list")
mapfile -t DPKGOPTS < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$HERE/exclude.list")

RECIPE_HASH=$(
    {
        for f in build.sh packages.list exclude.list customize.sh initramfs-modules; do
            printf '%s\0' "$f"; cat "$HERE/$f"; printf '\0'
        done
        printf '%s\0' "$SUITE" "${SOURCES[@]}" "$SOURCE_DATE_EPOCH"
    } | sha256sum | cut -c1-16
)
DEST="$OUTDIR/$RECIPE_HASH"
if [ -f "$DEST/manifest.json" ]; then
    log "cached: $DEST (recipe $RECIPE_HASH)"
    echo "$DEST"
    exit 0
fi

# One build per output directory at a time; a second caller waits, then hits the cache.
exec 9>"$OUTDIR/.build.lock"
flock 9
if [ -f "$DEST/manifest.json" ]; then
    echo "$DEST"
    exit 0
fi

WORK=$(mktemp -d "$OUTDIR/.build-$RECIPE_HASH.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log "building $NAME (recipe $RECIPE_HASH): ${#PACKAGES[@]} packages on minbase"
started=$(date +%s)
args=(--variant=minbase --mode=root --format=tar
      --include="$(IFS=,; echo "${PACKAGES[*]}")"
      --aptopt='Acquire::Languages "none"')
for opt in "${DPKGOPTS[@]}"; do args+=(--dpkgopt="$opt"); done
args+=(--customize-hook="\"$HERE/customize.sh\" \"\$1\"")
args+=(--customize-hook="dpkg-query --admindir=\"\$1/var/lib/dpkg\" -W -f '\${Package}\t\${Version}\n' >\"$WORK/packages.tsv\"")
mmdebstrap "${args[@]}" "$SUITE" "$WORK/rootfs.tar" "${SOURCES[@]}" >&2
zstd -q -T0 -10 --rm "$WORK/rootfs.tar" -o "$WORK/$NAME.tar.zst"

sha=$(sha256sum "$WORK/$NAME.tar.zst" | cut -d' ' -f1)
size=$(stat -c %s "$WORK/$NAME.tar.zst")
python3 - "$WORK/manifest.json" "$NAME" "$RECIPE_HASH" "$sha" "$size" "$SOURCE_DATE_EPOCH" <<'PY'
import json, sys
out, name, recipe, sha, size, epoch = sys.argv[1:]
manifest = {
    "kind": "deploy",
    "name": name,
    "version": recipe,
    "arch": "amd64",
    "os": "debian",
    "release": "bookworm",
    "source_date_epoch": int(epoch),
    "files": {f"{name}.tar.zst": {"sha256": sha, "size": int(size)}},
}
with open(out, "w") as fh:
    json.dump(manifest, fh, indent=2, sort_keys=True)
    fh.write("\n")
PY
chmod 755 "$WORK"
mv "$WORK" "$DEST"
trap - EXIT
log "ok: $DEST/$NAME.tar.zst ($size bytes, $(( $(date +%s) - started )) s)"
echo "$DEST"
