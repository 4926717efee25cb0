#!/bin/sh
# mmdebstrap --customize-hook for the deploy image: runs on the build host after every
# package is installed, with $1 = the new root. Settings here are the same for every node;
# the installer adds the per-node ones (fstab, hostname, grub on the disk, NoCloud seed).
set -eu
R=$1

# grub: serial and VGA console, a short menu, kernel names eth0.. as the installer saw
# them (its network-config names the boot NIC by that name and MAC).
cat >"$R/etc/default/grub" <<'GRUB'
# Written by the netboot deploy image recipe (images/deploy/customize.sh).
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8 net.ifnames=0 biosdevname=0"
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUB

# cloud-init: only the NoCloud seed the installer writes (no network probing for cloud
# metadata services, which would cost minutes of timeouts on bare metal).
cat >"$R/etc/cloud/cloud.cfg.d/10_netboot_datasource.cfg" <<'CFG'
# Written by the netboot deploy image recipe: the installer writes the NoCloud seed.
datasource_list: [ NoCloud, None ]
CFG

# Per-machine identity is created on first boot, never shared between nodes.
rm -f "$R"/etc/ssh/ssh_host_*
: >"$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
echo localhost >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$R/etc/hosts"

# Kernel modules compressed with zstd (kmod loads .ko.zst; initramfs-tools copies them
# as they are): about 240 MB of modules become about 70 MB to stream, unpack and write on
# every deploy. The initrd in /boot was made before this and still has its own copies.
for kdir in "$R"/lib/modules/*; do
    kver=${kdir##*/}
    find "$kdir/kernel" -name '*.ko' -print0 | xargs -0 -r -n 64 -P "$(nproc)" zstd -q --rm -12
    depmod -b "$R" "$kver"
done

# A lean initramfs: the storage drivers and filesystems in initramfs-modules (next to
# this script) instead of "most" modules; regenerated now, after the modules above.
HERE=$(cd "$(dirname "$0")" && pwd)
echo MODULES=list >"$R/etc/initramfs-tools/conf.d/netboot"
sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$HERE/initramfs-modules" >>"$R/etc/initramfs-tools/modules"
chroot "$R" update-initramfs -u -k all

# Periodic apt jobs would start downloading on a fresh node right after deploy.
for unit in apt-daily.timer apt-daily-upgrade.timer; do
    rm -f "$R/etc/systemd/system/timers.target.wants/$unit"
done
# The mmdebstrap host's resolver must not leak into nodes (dhclient writes the node's).
rm -f "$R/etc/resolv.conf"
: >"$R/etc/resolv.conf"
