#!/bin/sh
# Install netboot as a system service on Debian 12: a virtualenv in /opt/netboot, the
# netboot system user, the systemd unit, /etc/netboot and the boot-file directory.
# Idempotent; run as root on the target machine or inside its chroot. See docs/install.md.
#
#   packaging/install.sh [--prefix /opt/netboot] [--wheels DIR] [--boot-files DIR]
#                        [--no-enable]
#
#   --wheels DIR      install offline from a wheel directory (`make wheels`), else pip
#                     installs this checkout and its dependencies from PyPI
#   --boot-files DIR  copy iPXE loaders, kernel and enlistment initrd (`make boot`'s
#                     build/boot) to /srv/netboot/boot
#   --no-enable       do not enable netboot.service
set -eu

PREFIX=/opt/netboot
WHEELS=
BOOT_FILES=
ENABLE=yes
SRC=$(cd "$(dirname "$0")/.." && pwd)

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=$2; shift 2 ;;
        --wheels) WHEELS=$2; shift 2 ;;
        --boot-files) BOOT_FILES=$2; shift 2 ;;
        --no-enable) ENABLE=no; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

say() { echo "install.sh: $*"; }
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
command -v python3 >/dev/null || { echo "install.sh: apt-get install python3 python3-venv" >&2; exit 1; }
python3 -c 'import ensurepip' 2>/dev/null || { echo "install.sh: apt-get install python3-venv" >&2; exit 1; }

# 1. The virtualenv: netboot and its pinned-by-pip dependencies, apart from Debian's
#    python3-* packages (docs/install.md says why).
[ -x "$PREFIX/bin/python" ] || python3 -m venv "$PREFIX"
if [ -n "$WHEELS" ]; then
    say "installing netboot from wheels in $WHEELS (offline)"
    "$PREFIX/bin/pip" install -q --no-index --find-links "$WHEELS" --upgrade netboot
else
    say "installing netboot from $SRC (dependencies from PyPI)"
    "$PREFIX/bin/pip" install -q --upgrade "$SRC"
fi
ln -sf "$PREFIX/bin/netboot" /usr/local/bin/netboot
install -d "$PREFIX/share/doc/netboot"
for doc in install.md appliance.md; do
    [ -f "$SRC/docs/$doc" ] && install -m 0644 "$SRC/docs/$doc" "$PREFIX/share/doc/netboot/"
done

# 2. The system user (systemd-sysusers where it exists, else useradd).
install -D -m 0644 "$SRC/packaging/netboot.sysusers" /usr/lib/sysusers.d/netboot.conf
if command -v systemd-sysusers >/dev/null; then
    systemd-sysusers /usr/lib/sysusers.d/netboot.conf
elif ! id netboot >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/netboot --no-create-home \
        --shell /usr/sbin/nologin --comment "netboot provisioning appliance" netboot
fi

# 3. Directories: configuration (root-owned, readable by netboot), state, boot files.
install -d -m 0755 /etc/netboot
install -d -o netboot -g netboot -m 0750 /var/lib/netboot
install -d -m 0755 /srv/netboot/boot
if [ -n "$BOOT_FILES" ]; then
    say "copying boot files from $BOOT_FILES"
    cp -r "$BOOT_FILES"/. /srv/netboot/boot/
fi

# 4. The unit.
# netboot-console-status.service (installed, not enabled: the admin VM enables it)
# prints `netboot status` on the console once netboot is ready.
for unit in netboot.service netboot-console-status.service; do
    sed "s|@PREFIX@|$PREFIX|g" "$SRC/packaging/$unit" > "/etc/systemd/system/$unit.new"
    chmod 0644 "/etc/systemd/system/$unit.new"
    mv "/etc/systemd/system/$unit.new" "/etc/systemd/system/$unit"
done
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
if [ "$ENABLE" = yes ]; then
    systemctl enable netboot.service 2>&1 | sed 's/^/install.sh: /'
fi

if [ -f /etc/netboot/netboot.toml ]; then
    say "kept /etc/netboot/netboot.toml"
else
    say "next: netboot init --interface <provisioning interface>, then systemctl start netboot"
fi
say "installed netboot $("$PREFIX/bin/python" -c 'import importlib.metadata as m; print(m.version("netboot"))') in $PREFIX"
