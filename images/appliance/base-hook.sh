#!/bin/sh
# mmdebstrap hooks for the appliance's base root file system (build.sh).
#   essential ROOT  - before the kernel is installed: a small initramfs with just the
#                     drivers a VM disk needs (virtio, ext4), not MODULES=most's 30 MB
#   customize ROOT  - after all packages: drop what an image does not need
set -eu
stage=$1
root=$2
case "$stage" in
essential)
    mkdir -p "$root/etc/initramfs-tools/conf.d"
    echo MODULES=list > "$root/etc/initramfs-tools/conf.d/netboot.conf"
    printf '%s\n' virtio_pci virtio_blk virtio_scsi sd_mod ahci ata_piix ext4 \
        >> "$root/etc/initramfs-tools/modules"
    ;;
customize)
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
    rm -f "$root"/var/cache/apt/archives/*.deb
    rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
    ;;
*)
    echo "base-hook.sh: unknown stage $stage" >&2
    exit 2
    ;;
esac
