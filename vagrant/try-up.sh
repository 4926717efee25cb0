#!/bin/bash
# `vagrant up` of the netboot admin VM with vagrant-libvirt, confined: a private
# system-mode libvirtd inside a network namespace and a mount namespace this script
# creates, so every bridge, dnsmasq, tap and firewall rule libvirt makes lives in that
# namespace and dies with it. Nothing is left on the host (checked: firewall rules,
# ip_forward, links). See docs/appliance.md ("vagrant up, confined").
#
#   vagrant/try-up.sh [BOX]        (root; BOX defaults to build/netboot-appliance.box,
#                                   made by `make vagrant-box`; `make vagrant-up-check`)
#
# Phases, each bounded by `timeout` and timed: box add (private VAGRANT_HOME), libvirtd
# start, vagrant up --provider=libvirt (TCG: NETBOOT_LIBVIRT_DRIVER=qemu), wait for
# `systemctl is-active netboot` = active over `vagrant ssh`, `netboot status`,
# vagrant destroy -f. Teardown (always, also on failure or timeout): libvirtd and every
# process left in the namespace ended by PID, namespace deleted, temp dir removed.
# Logs: artifacts/vagrant/ (vagrant up output, libvirtd log, domain log, summary).
# Environment: UP_TIMEOUT (2400 s), READY_TIMEOUT (900 s), KEEP_WORK=1 (keep the
# temp dir for debugging; libvirt's state only, the namespace is always removed).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)

# ---------------------------------------------------------------------------------------
# Inside: network namespace NS + private mount namespace. $1 = work dir, $2 = box.
# ---------------------------------------------------------------------------------------
inside() {
    local work=$1 box=$2
    t0=${TRYUP_T0:-$(date +%s)}  # the outer script's start: one clock for all lines
    ns_procs() {  # processes sharing this network namespace: name(pid)
        local me p
        me=$(readlink /proc/self/ns/net)
        for p in /proc/[0-9]*; do
            [ "$(readlink "$p/ns/net" 2>/dev/null)" = "$me" ] && printf '%s(%s) ' "$(cat "$p/comm" 2>/dev/null)" "${p#/proc/}"
        done
    }
    phase() { echo "try-up [$(( $(date +%s) - t0 ))s]: $*"; }
    timed() {  # timed NAME SECONDS CMD...: run bounded, print and record its duration
        local name=$1 limit=$2 start rc=0
        shift 2
        start=$(date +%s)
        timeout --kill-after=20 "$limit" "$@" || rc=$?
        echo "$name $(( $(date +%s) - start ))s rc=$rc" | tee -a "$work/phases"
        [ "$rc" = 0 ] || { phase "$name failed (rc=$rc; 124 = timed out after ${limit}s)"; return "$rc"; }
    }

    # libvirt's system-mode paths are compiled in (/etc/libvirt, /run/libvirt,
    # /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt): give this mount namespace
    # its own /run, /var and /etc/libvirt, all under $work. Nothing is mounted outside.
    mkdir -p "$work"/run "$work"/var/{lib/libvirt,cache/libvirt,log/libvirt,tmp} \
        "$work"/etc-libvirt "$work"/vagrant-home
    ln -sfn /run "$work/var/run"
    ln -sfn /run/lock "$work/var/lock"
    chmod 1777 "$work/var/tmp"
    mount --bind "$work/run" /run
    mkdir -p /run/lock
    mount --bind "$work/var" /var
    mount --bind "$work/etc-libvirt" /etc/libvirt
    # No upstream DNS for libvirt's dnsmasq (the namespace has no route out anyway).
    echo "# netboot try-up.sh: private namespace, no upstream DNS" > "$work/resolv.conf"
    mount --bind "$work/resolv.conf" /etc/resolv.conf
    # A system-mode libvirtd looks up its compiled-in accounts (libvirt-qemu, swtpm)
    # before reading qemu.conf; Debian's libvirt-daemon-system would add them to the
    # host. Add them only to this mount namespace's view of /etc/passwd and /etc/group.
    cp /etc/passwd "$work/passwd"
    cp /etc/group "$work/group"
    local id=64990 name
    for name in libvirt-qemu swtpm libvirt-dnsmasq; do
        getent passwd "$name" >/dev/null || echo "$name:x:$id:$id::/nonexistent:/usr/sbin/nologin" >> "$work/passwd"
        getent group "$name" >/dev/null || echo "$name:x:$id:" >> "$work/group"
        id=$(( id + 1 ))
    done
    for name in kvm libvirt; do
        getent group "$name" >/dev/null || echo "$name:x:$id:" >> "$work/group"
        id=$(( id + 1 ))
    done
    mount --bind "$work/passwd" /etc/passwd
    mount --bind "$work/group" /etc/group

    cat > /etc/libvirt/libvirtd.conf <<'CONF'
unix_sock_dir = "/run/libvirt"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
CONF
    # QEMU as root without cgroups, security driver or per-VM /dev namespace: there is
    # no systemd here and the private /run, /var already confine it. TCG is chosen by
    # the domain type (NETBOOT_LIBVIRT_DRIVER=qemu), not here.
    cat > /etc/libvirt/qemu.conf <<'CONF'
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
CONF
    echo 'uri_default = "qemu:///system"' > /etc/libvirt/libvirt.conf

    phase "links in the namespace before libvirt: $(ip -br link | awk '{print $1}' | tr '\n' ' ')"
    /usr/sbin/libvirtd -f /etc/libvirt/libvirtd.conf > "$work/libvirtd.out" 2>&1 &
    echo $! > "$work/libvirtd.pid"
    local deadline=$(( $(date +%s) + 120 )) start
    start=$(date +%s)
    until virsh -c qemu:///system version >/dev/null 2>&1; do
        kill -0 "$(cat "$work/libvirtd.pid")" 2>/dev/null || { phase "libvirtd exited"; cat "$work/libvirtd.out"; return 1; }
        [ "$(date +%s)" -lt "$deadline" ] || { phase "libvirtd not answering after 120s"; return 1; }
        sleep 1
    done
    echo "libvirtd-start $(( $(date +%s) - start ))s rc=0" | tee -a "$work/phases"
    virsh -c qemu:///system version | sed 's/^/  /'

    export VAGRANT_HOME=$work/vagrant-home
    export VAGRANT_DOTFILE_PATH=$work/dotfile   # not vagrant/.vagrant in the tree
    export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_NO_COLOR=1
    export VAGRANT_CWD=$SRC/vagrant
    export LIBVIRT_DEFAULT_URI=qemu:///system    # the private daemon (private /run)
    export NETBOOT_LIBVIRT_DRIVER=qemu           # TCG (LAB-NOTES: no usable KVM here)

    phase "vagrant box add $box (private VAGRANT_HOME)"
    timed box-add 600 vagrant box add --name netboot/appliance "$box" > "$work/box-add.log" 2>&1 \
        || { cat "$work/box-add.log"; return 1; }

    phase "vagrant up --provider=libvirt (bounded ${UP_TIMEOUT}s)"
    timed vagrant-up "$UP_TIMEOUT" vagrant up --provider=libvirt 2>&1 | tee "$work/vagrant-up.log"
    [ "${PIPESTATUS[0]}" = 0 ] || return 1

    phase "networks and links libvirt made (all in this namespace):"
    virsh -c qemu:///system net-list --all | sed 's/^/  /'
    ip -br link | sed 's/^/  /'
    ip -br addr | grep -v '^lo' | sed 's/^/  /' || true
    echo "  processes in this namespace: $(ns_procs)"
    echo "  firewall rules in the namespace: $(nft list ruleset 2>/dev/null | grep -c . || true) lines"

    phase "waiting for netboot.service active (vagrant ssh, bounded ${READY_TIMEOUT}s)"
    start=$(date +%s)
    deadline=$(( start + READY_TIMEOUT ))
    local state=
    while :; do
        state=$(timeout 120 vagrant ssh -c 'systemctl is-active netboot' 2>/dev/null | tr -d '\r' | tail -1) || true
        echo "  systemctl is-active netboot: ${state:-<no answer>}"
        [ "$state" = active ] && break
        [ "$(date +%s)" -lt "$deadline" ] || break
        sleep 5
    done
    echo "netboot-active $(( $(date +%s) - start ))s state=$state" | tee -a "$work/phases"
    [ "$state" = active ] || { phase "netboot.service did not become active"; return 1; }

    phase "netboot status (over vagrant ssh)"
    timed netboot-status 300 vagrant ssh -c 'sudo netboot status; echo "netboot status rc=$?"' \
        2>&1 | tr -d '\r' | tee "$work/netboot-status.log"
    grep -q 'netboot status rc=0' "$work/netboot-status.log" || { phase "netboot status failed"; return 1; }

    phase "vagrant destroy -f"
    timed vagrant-destroy 600 vagrant destroy -f 2>&1 | tee "$work/vagrant-destroy.log"
    [ "${PIPESTATUS[0]}" = 0 ] || return 1
    phase "inside done"
}

if [ "${1:-}" = --inside ]; then
    UP_TIMEOUT=${UP_TIMEOUT:-2400}
    READY_TIMEOUT=${READY_TIMEOUT:-900}
    inside "$2" "$3"
    exit $?
fi

# ---------------------------------------------------------------------------------------
# Outside (host): namespace, host-state snapshots, teardown.
# ---------------------------------------------------------------------------------------
BOX=$(readlink -f "${1:-$SRC/build/netboot-appliance.box}")
[ "$(id -u)" = 0 ] || { echo "try-up.sh: needs root (network and mount namespaces, libvirtd)" >&2; exit 1; }
for tool in vagrant virsh ip unshare nft iptables-save ip6tables-save qemu-system-x86_64 dnsmasq; do
    command -v "$tool" >/dev/null || { echo "try-up.sh: $tool missing (make deps)" >&2; exit 1; }
done
[ -x /usr/sbin/libvirtd ] || { echo "try-up.sh: /usr/sbin/libvirtd missing (make deps)" >&2; exit 1; }
vagrant plugin list 2>/dev/null | grep -q vagrant-libvirt || { echo "try-up.sh: vagrant-libvirt plugin missing (make deps)" >&2; exit 1; }
[ -f "$BOX" ] || { echo "try-up.sh: $BOX missing: make vagrant-box" >&2; exit 1; }

WORK=$(mktemp -d /tmp/netboot-try-up.XXXXXX)
NS=nbtryup$$
ARTIFACTS=$SRC/artifacts/vagrant
mkdir -p "$ARTIFACTS"
T0=$(date +%s)
say() { echo "try-up [$(( $(date +%s) - T0 ))s]: $*"; }

host_state() {  # what libvirt could change on the host if it escaped the namespace
    set +e
    echo "== nft list ruleset"; nft list ruleset
    echo "== iptables-save"; iptables-save | grep -v '^#' || true
    echo "== ip6tables-save"; ip6tables-save | grep -v '^#' || true
    echo "== ip_forward $(cat /proc/sys/net/ipv4/ip_forward) $(cat /proc/sys/net/ipv6/conf/all/forwarding)"
    echo "== libvirt-style links"; ip -br link | awk '{print $1}' | grep -E '^(virbr|vnet|vagrant)' || true
    echo "== /run/libvirt $( [ -e /run/libvirt ] && echo exists || echo absent), /var/lib/libvirt $( [ -e /var/lib/libvirt ] && echo exists || echo absent)"
}

teardown() {
    local rc=$?
    set +e
    say "teardown (exit status so far: $rc)"
    local pids pid n
    if [ -f "$WORK/libvirtd.pid" ]; then
        pid=$(cat "$WORK/libvirtd.pid")
        kill -TERM "$pid" 2>/dev/null && say "libvirtd $pid: SIGTERM"
    fi
    # Everything still running in the namespace (QEMU, dnsmasq, ssh, libvirtd), by PID.
    for n in $(seq 1 20); do
        pids=$(ip netns pids "$NS" 2>/dev/null | tr '\n' ' ')
        [ -z "$pids" ] && break
        [ "$n" = 1 ] && say "ending processes left in $NS: $pids"
        if [ "$n" -lt 15 ]; then kill -TERM $pids 2>/dev/null; else kill -KILL $pids 2>/dev/null; fi
        sleep 1
    done
    pids=$(ip netns pids "$NS" 2>/dev/null | tr '\n' ' ')
    [ -z "$pids" ] || { say "processes still in $NS after SIGKILL: $pids"; rc=1; }
    ip netns del "$NS" 2>/dev/null && say "namespace $NS deleted"
    for f in phases vagrant-up.log vagrant-destroy.log netboot-status.log box-add.log \
             libvirtd.out var/log/libvirt/libvirtd.log; do
        [ -f "$WORK/$f" ] && cp "$WORK/$f" "$ARTIFACTS/$(basename "$f")"
    done
    cp "$WORK"/var/log/libvirt/qemu/*.log "$ARTIFACTS/" 2>/dev/null
    host_state > "$WORK/host-after.txt" 2>&1
    if diff -u "$WORK/host-before.txt" "$WORK/host-after.txt" > "$ARTIFACTS/host-diff.txt"; then
        say "host unchanged: nft ruleset, iptables/ip6tables, ip_forward, no virbr/vnet links, no /run/libvirt"
    else
        say "HOST STATE CHANGED (see $ARTIFACTS/host-diff.txt):"; cat "$ARTIFACTS/host-diff.txt"; rc=1
    fi
    if [ "${KEEP_WORK:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
    {
        echo "total $(( $(date +%s) - T0 ))s rc=$rc"
    } >> "$ARTIFACTS/phases"
    say "phase times:"; sed 's/^/  /' "$ARTIFACTS/phases" 2>/dev/null
    say "$( [ "$rc" = 0 ] && echo PASS || echo FAIL ) (logs in $ARTIFACTS)"
    exit "$rc"
}

rm -f "$ARTIFACTS"/*
host_state > "$WORK/host-before.txt" 2>&1
trap teardown EXIT
trap 'exit 130' INT TERM
say "versions: $(vagrant --version), vagrant-libvirt $(vagrant plugin list 2>/dev/null | sed -n 's/^vagrant-libvirt (\([^,]*\).*/\1/p'), $(/usr/sbin/libvirtd --version), $(qemu-system-x86_64 --version | head -1)"
say "box $BOX ($(du -h "$BOX" | cut -f1)); work dir $WORK; namespace $NS"
ip netns add "$NS"
ip -n "$NS" link set lo up
# The whole run: network namespace NS, plus a private mount namespace for libvirt's paths.
TRYUP_T0=$T0 UP_TIMEOUT=${UP_TIMEOUT:-2400} READY_TIMEOUT=${READY_TIMEOUT:-900} \
    timeout --kill-after=30 $(( ${UP_TIMEOUT:-2400} + ${READY_TIMEOUT:-900} + 1800 )) \
    ip netns exec "$NS" unshare --mount --propagation private "$0" --inside "$WORK" "$BOX"
