#!/bin/sh
# Package a qcow2 as a vagrant-libvirt box: a tar of box.img, metadata.json and a
# Vagrantfile with the provider defaults (vagrant-libvirt's box format, version 1).
#   make-box.sh IMAGE.qcow2 OUT.box
set -eu
image=${1:?usage: make-box.sh IMAGE.qcow2 OUT.box}
out=${2:?usage: make-box.sh IMAGE.qcow2 OUT.box}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Virtual size in GiB, rounded up (vagrant-libvirt sizes the volume from it).
bytes=$(qemu-img info --output=json "$image" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
gib=$(( (bytes + 1073741823) / 1073741824 ))
ln -s "$(readlink -f "$image")" "$work/box.img"
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %d}\n' "$gib" > "$work/metadata.json"
cat > "$work/Vagrantfile" <<'VF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.driver = ENV.fetch("NETBOOT_LIBVIRT_DRIVER", "kvm")
    lv.machine_type = "pc"
    lv.disk_bus = "virtio"
  end
end
VF
tar -C "$work" -chf "$out.tmp" metadata.json Vagrantfile box.img
mv "$out.tmp" "$out"
echo "make-box.sh: $out (${gib} GiB virtual, $(du -h "$out" | cut -f1))"
