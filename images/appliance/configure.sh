#!/bin/sh
# Turn an installed root file system into the netboot admin VM (build.sh, step 3):
# NIC roles, network configuration, console, SSH and the vagrant user.
#   configure.sh ROOT PROV_ADDRESS
# eth0 = management (DHCP client), eth1 = provisioning (static PROV_ADDRESS; netboot
# serves DHCP only there). net.ifnames=0 on the kernel command line makes the names
# follow PCI order on QEMU, libvirt and vagrant-libvirt alike.
set -eu
root=$1
prov=$2

echo netboot > "$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 netboot\n' > "$root/etc/hosts"
echo 'LABEL=netboot-root / ext4 defaults,errors=remount-ro 0 1' > "$root/etc/fstab"
: > "$root/etc/machine-id"  # generated on first boot: every VM gets its own

mkdir -p "$root/etc/systemd/network"
cat > "$root/etc/systemd/network/10-management.network" <<NET
[Match]
Name=eth0

[Network]
DHCP=ipv4
NET
cat > "$root/etc/systemd/network/20-provisioning.network" <<NET
[Match]
Name=eth1

[Link]
RequiredForOnline=yes

[Network]
Address=$prov
ConfigureWithoutCarrier=yes
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
chroot "$root" systemctl enable systemd-networkd.service >/dev/null 2>&1
# netboot waits for network-online.target; only the provisioning NIC matters (the
# management NIC may have no DHCP server, which must not delay netboot 2 minutes).
mkdir -p "$root/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat > "$root/etc/systemd/system/systemd-networkd-wait-online.service.d/netboot.conf" <<UNIT
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --interface=eth1 --timeout=90
UNIT

# SSH: fresh host keys on first boot (not the ones generated inside the build).
rm -f "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/etc/systemd/system/ssh.service.d"
cat > "$root/etc/systemd/system/ssh.service.d/hostkeys.conf" <<UNIT
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT

# The vagrant user, with Vagrant's published insecure key (vagrant replaces it with a
# fresh key pair on the first `vagrant up`) and passwordless sudo.
chroot "$root" useradd --create-home --shell /bin/bash --groups sudo vagrant 2>/dev/null || true
install -d -m 0700 "$root/home/vagrant/.ssh"
cat > "$root/home/vagrant/.ssh/authorized_keys" <<KEY
ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niNltGEFHzD8+v1I2YJ6oXevct1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoPkcmF0aYet2PkEDo3MlTBckFXPITAMzF8dJSIFo9D8HfdOV0IAdx4O7PtixWKn5y2hMNG0zQPyUecp4pzC6kivAIhyfHilFR61RGL+GPXQ2MWZWFYbAGjyiYJnAmCP3NOTd0jMZEnDkbUvxhMmBYSdETk1rRgm+R4LOzFUGaHqHDLKLX+FIPKcF96hrucXzcWyLbIbEgE98OHlnVYCzRdK8jlqm8tehUc9c9WhQ== vagrant insecure public key
KEY
chmod 0600 "$root/home/vagrant/.ssh/authorized_keys"
chroot "$root" chown -R vagrant:vagrant /home/vagrant/.ssh
echo 'vagrant ALL=(ALL) NOPASSWD:ALL' > "$root/etc/sudoers.d/vagrant"
chmod 0440 "$root/etc/sudoers.d/vagrant"

# Console: `netboot status` once netboot is ready (listeners, user, counts).
chroot "$root" systemctl enable netboot-console-status.service >/dev/null 2>&1

# Console: the journal's netboot lines also go to the serial port, so the boot log
# shows "netboot: ready" (tests and operators watching the console).
mkdir -p "$root/etc/systemd/journald.conf.d"
cat > "$root/etc/systemd/journald.conf.d/console.conf" <<CONF
[Journal]
ForwardToConsole=yes
TTYPath=/dev/ttyS0
MaxLevelConsole=info
CONF
