#!/bin/bash
# Build the netboot admin VM: a Debian 12 qcow2 with netboot installed through
# packaging/install.sh and enabled, two NICs (eth0 management: DHCP client; eth1
# provisioning: static address, DHCP served there), serial console, syslinux (BIOS) and
# GRUB at the removable path of the same FAT partition (UEFI).
#
#   images/appliance/build.sh OUTDIR        (root; see docs/appliance.md)
#
# Inputs: Debian packages (mmdebstrap, Debian's mirror via the host's apt sources),
# wheels of this checkout + its dependencies (pip, PyPI or pip's cache), boot files
# from BOOT_DIR (default build/boot, `make boot`). Outputs in OUTDIR:
#   netboot-appliance.qcow2 -> netboot-appliance-<key>.qcow2, BUILDINFO
# Cached: the base root file system (key: package list + this recipe) and the image
# (key: every input's hash); a second run with the same inputs does nothing.
# STAGE=base stops after the base tarball (OUTDIR/base.tar; tests/integration/test_install.py).
# Environment: PROV_ADDRESS (10.66.0.1/24), BOOT_DIR, PYTHON (the .venv's python),
# DEBIAN_SOURCES (/etc/apt/sources.list.d/debian.sources), DISK_GIB (3),
# DEB_CACHE (/var/cache/netboot-appliance/debs: downloaded .debs, kept across clones).
set -euo pipefail

OUT=${1:?usage: build.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
PROV_ADDRESS=${PROV_ADDRESS:-10.66.0.1/24}
BOOT_DIR=${BOOT_DIR:-$SRC/build/boot}
PYTHON=${PYTHON:-$SRC/.venv/bin/python}
DEBIAN_SOURCES=${DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}
DISK_GIB=${DISK_GIB:-3}
DEB_CACHE=${DEB_CACHE:-/var/cache/netboot-appliance/debs}
BOOT_MIB=96
# minbase + what an appliance needs; no recommends. The cloud kernel is small and has
# the virtio drivers; udev names the NICs; systemd-networkd configures them.
PACKAGES=systemd-sysv,udev,dbus,linux-image-cloud-amd64,initramfs-tools,python3,python3-venv,openssh-server,sudo,iproute2,curl,sqlite3

[ "$(id -u)" = 0 ] || { echo "build.sh: needs root (mmdebstrap, chroot, mounts)" >&2; exit 1; }
for tool in mmdebstrap mkfs.ext4 mkfs.vfat mcopy mmd syslinux grub-mkstandalone sfdisk qemu-img; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool missing (make deps)" >&2; exit 1; }
done
for f in undionly.kpxe snponly.efi vmlinuz enlist.initrd; do
    [ -f "$BOOT_DIR/$f" ] || { echo "build.sh: $BOOT_DIR/$f missing: run make boot" >&2; exit 1; }
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
t0=$(date +%s)
say() { echo "build.sh [$(( $(date +%s) - t0 ))s]: $*"; }

# --- cache keys ------------------------------------------------------------------------
hash_files() { (cd "$1" && find "${@:2}" -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16; }
# Bump BASE_RECIPE when the mmdebstrap invocation below changes.
BASE_RECIPE=1
BASE_KEY=$(printf '%s\n' "$BASE_RECIPE" "$PACKAGES" "$(sha256sum <"$HERE/base-hook.sh")" | sha256sum | cut -c1-16)
SRC_KEY=$(hash_files "$SRC" pyproject.toml netboot packaging images/appliance docs)
BOOT_KEY=$(hash_files "$BOOT_DIR" .)
KEY=$(printf '%s\n' "$BASE_KEY" "$SRC_KEY" "$BOOT_KEY" "$PROV_ADDRESS" "$DISK_GIB" | sha256sum | cut -c1-16)
IMAGE=$OUT/netboot-appliance-$KEY.qcow2
if [ -f "$IMAGE" ] && [ "${STAGE:-}" != base ]; then
    ln -sf "$(basename "$IMAGE")" "$OUT/netboot-appliance.qcow2"
    say "image cached: $IMAGE"
    exit 0
fi

WORK=$(mktemp -d "$OUT/work.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

# --- 1. base root file system (cached on its own: it changes rarely) -------------------
BASE=$OUT/base-$BASE_KEY.tar
if [ ! -f "$BASE" ]; then
    say "mmdebstrap bookworm (minbase, no recommends) -> $BASE"
    mkdir -p "$DEB_CACHE"
    # .debs are kept in DEB_CACHE between builds (mmdebstrap(1)'s caching recipe):
    # a rebuild downloads only what changed on the mirror.
    mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
        --aptopt='APT::Install-Recommends "false"' \
        --skip=download/empty --skip=essential/unlink \
        --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
        --setup-hook="sync-in $DEB_CACHE /var/cache/apt/archives/" \
        --essential-hook="$HERE/base-hook.sh essential \"\$1\"" \
        --customize-hook="sync-out /var/cache/apt/archives $DEB_CACHE" \
        --customize-hook="$HERE/base-hook.sh customize \"\$1\"" \
        bookworm "$WORK/base.tar" "$DEBIAN_SOURCES"
    mv "$WORK/base.tar" "$BASE"
else
    say "base root file system cached: $BASE"
fi
ln -sf "$(basename "$BASE")" "$OUT/base.tar"
find "$OUT" -maxdepth 1 -name 'base-*.tar' ! -name "$(basename "$BASE")" -delete
if [ "${STAGE:-}" = base ]; then
    say "STAGE=base: stopping after the base root file system ($OUT/base.tar)"
    exit 0
fi

# --- 2. wheels: netboot and its dependencies, installed offline in the chroot ----------
say "pip wheel (netboot + dependencies)"
"$PYTHON" -m pip wheel --quiet --wheel-dir "$WORK/wheels" "$SRC"

# --- 3. root file system: base + install.sh + appliance configuration ------------------
ROOT=$WORK/root
mkdir -p "$ROOT"
tar -C "$ROOT" -xpf "$BASE"
mkdir -p "$ROOT/tmp/netboot-src" "$ROOT/tmp/wheels" "$ROOT/tmp/boot"
cp -r "$SRC/packaging" "$SRC/docs" "$ROOT/tmp/netboot-src/"
cp "$WORK"/wheels/*.whl "$ROOT/tmp/wheels/"
cp -r "$BOOT_DIR"/. "$ROOT/tmp/boot/"
say "install.sh in the chroot (offline, from wheels)"
unshare --mount --propagation private bash -euo pipefail -c '
    root=$1
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs tmpfs "$root/run"
    chroot "$root" env -u PYTHONDONTWRITEBYTECODE \
        /tmp/netboot-src/packaging/install.sh --wheels /tmp/wheels --boot-files /tmp/boot
    # Byte code for everything in the venv, whatever the environment said.
    chroot "$root" /opt/netboot/bin/python -m compileall -q -j 0 /opt/netboot/lib >/dev/null
    chroot "$root" netboot --config /etc/netboot/netboot.toml init --interface eth1 \
        --address "$2" --no-dhcp-probe --resolv-conf /dev/null
' _ "$ROOT" "$PROV_ADDRESS"
"$HERE/configure.sh" "$ROOT" "$PROV_ADDRESS"
rm -rf "$ROOT/tmp/netboot-src" "$ROOT/tmp/wheels" "$ROOT/tmp/boot"
# pip compiled every module at install: the service (read-only /opt, no bytecode
# writes) would otherwise recompile netboot and Twisted on each start, ~40 s under TCG.

# --- 4. disk: MBR + syslinux on a FAT boot partition, ext4 root; no loop devices -------
say "disk image (${DISK_GIB} GiB: FAT /boot ${BOOT_MIB} MiB + ext4 root)"
KERNEL=$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -1)
INITRD=$(ls "$ROOT"/boot/initrd.img-* | sort -V | tail -1)
BOOTIMG=$WORK/boot.img
ROOTIMG=$WORK/root.img
DISK=$WORK/disk.raw
ROOT_MIB=$(( DISK_GIB * 1024 - BOOT_MIB - 2 ))
mkfs.vfat -F 32 -n NETBOOTBOOT -h 2048 -C "$BOOTIMG" $(( BOOT_MIB * 1024 )) >/dev/null
CMDLINE="root=LABEL=netboot-root rw console=tty0 console=ttyS0,115200n8 net.ifnames=0 systemd.show_status=1"
cat > "$WORK/syslinux.cfg" <<EOF
SERIAL 0 115200
DEFAULT netboot
PROMPT 0
TIMEOUT 1
LABEL netboot
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND $CMDLINE
EOF
syslinux --install "$BOOTIMG"
mcopy -i "$BOOTIMG" "$KERNEL" ::/vmlinuz
mcopy -i "$BOOTIMG" "$INITRD" ::/initrd.img
mcopy -i "$BOOTIMG" "$WORK/syslinux.cfg" ::/syslinux.cfg
# UEFI: the same FAT partition serves as the ESP -- GRUB at the removable-media path
# EFI/BOOT/BOOTX64.EFI (no NVRAM boot entry needed), built standalone on the host with
# its config embedded; it finds this partition by label and boots the same kernel.
cat > "$WORK/grub-efi.cfg" <<EOF
insmod part_msdos
insmod fat
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
search --no-floppy --set=root --label NETBOOTBOOT
menuentry netboot {
    linux /vmlinuz $CMDLINE
    initrd /initrd.img
}
EOF
grub-mkstandalone -O x86_64-efi --locales= --fonts= --themes= --modules="part_msdos fat" \
    --install-modules="normal linux search search_label fat part_msdos serial terminal echo test configfile" \
    -o "$WORK/BOOTX64.EFI" "boot/grub/grub.cfg=$WORK/grub-efi.cfg"
mmd -i "$BOOTIMG" ::/EFI ::/EFI/BOOT
mcopy -i "$BOOTIMG" "$WORK/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
mkfs.ext4 -q -L netboot-root -d "$ROOT" "$ROOTIMG" "${ROOT_MIB}M"
truncate -s "${DISK_GIB}G" "$DISK"
printf 'label: dos\nstart=2048, size=%dMiB, type=c, bootable\nstart=%d, type=83\n' \
    "$BOOT_MIB" $(( 2048 + BOOT_MIB * 2048 )) | sfdisk --quiet "$DISK"
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$DISK" bs=440 count=1 conv=notrunc status=none
dd if="$BOOTIMG" of="$DISK" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$ROOTIMG" of="$DISK" bs=1M seek=$(( 1 + BOOT_MIB )) conv=notrunc,sparse status=none
qemu-img convert -O qcow2 "$DISK" "$WORK/image.qcow2"
mv "$WORK/image.qcow2" "$IMAGE"
ln -sf "$(basename "$IMAGE")" "$OUT/netboot-appliance.qcow2"
cat > "$OUT/BUILDINFO" <<EOF
image: $(basename "$IMAGE")
key: $KEY (base $BASE_KEY, source $SRC_KEY, boot files $BOOT_KEY)
provisioning address: $PROV_ADDRESS on eth1
kernel: $(basename "$KERNEL")
netboot: $(ls "$WORK"/wheels/netboot-*.whl | xargs -n1 basename)
built in: $(( $(date +%s) - t0 ))s
EOF
# Old images (other keys) are not needed: keep the cache to one image.
find "$OUT" -maxdepth 1 -name 'netboot-appliance-*.qcow2' ! -name "$(basename "$IMAGE")" -delete
say "done: $IMAGE ($(du -h "$IMAGE" | cut -f1))"
