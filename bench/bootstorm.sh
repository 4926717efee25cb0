#!/usr/bin/env bash
# Boot storm: N simulated PXE clients power on at once (N = 10, 100, 500 by default).
#
# Each client (bench/py/bootstorm_clients.py, asyncio, in namespace nbb-cli) does:
# DHCP DORA as a BIOS PXE ROM -> TFTP undionly.kpxe (blksize 1432, lock-step) -> DHCP
# again as iPXE -> HTTP script -> HTTP kernel + initrd (the real build/boot files, ~11 MB).
# Servers, in namespace nbb-srv on one veth (10.77.0.0/16):
#   - ours:            `netboot serve` (DHCP + TFTP + HTTP in one Twisted process)
#   - dnsmasq+busybox: dnsmasq 2.90 (DHCP + TFTP, --no-ping) + busybox httpd for HTTP,
#                      with a static iPXE script: the classic hand-built PXE setup.
# Reported per N: time until every client has its kernel and initrd ("all booted"),
# per-phase p50/p95 completion times, and failures. All clients share the client
# namespace's one address for TFTP/HTTP (the leased addresses are not configured).
#
#   sudo bench/bootstorm.sh              # NS="10 100 500"
#
# Output ends with `RATIO bootstorm N=<n>-time ours/dnsmasq+busybox <x.xx>` (peer time /
# our time until the last booted client: > 1.00 means ours boots the rack sooner) and
# `RATIO bootstorm N=<n>-booted ...` (clients booted, ours / peer; clients that got no
# lease after the PXE retry schedule count as not booted).
source "$(dirname "$0")/lib.sh"

NS=${NS:-"10 100 500"}
SERVERS=${SERVERS:-"ours dnsmasq+busybox"}
BOOT=${BOOT:-$REPO/build/boot}
for f in undionly.kpxe vmlinuz enlist.initrd; do
    [ -f "$BOOT/$f" ] || { log "$BOOT/$f missing: run make boot"; exit 2; }
done
command -v dnsmasq >/dev/null && command -v busybox >/dev/null || { log "dnsmasq and busybox needed"; exit 2; }

WORK=$(mktemp -d /var/tmp/nbb-storm.XXXXXX)
cleanup() { bg_stop_all; netns_down; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
chmod 755 "$WORK"

ours_config() {
    cat <<EOF
server_address = "$SRV_IP"
state_dir = "$WORK/state"
boot_dir = "$BOOT"
[http]
port = 5248
[tftp]
port = 69
max_sessions = 2048
[dhcp]
interfaces = ["$SRV_IF"]
subnet = "10.77.0.0/16"
range_start = "10.77.1.1"
range_end = "10.77.4.254"
lease_seconds = 600
domain = "bench.lan"
EOF
}

start_server() {
    rm -rf "$WORK/state" "$WORK/leases" "$WORK/www"
    case $1 in
        ours)
            ours_config >"$WORK/netboot.toml"
            bg_start "$WORK/ours.log" ip netns exec "$SRV_NS" "$PY" -m netboot.cli --config "$WORK/netboot.toml" serve
            SRV_PIDS=("$BG_PID")
            wait_tcp "$SRV_NS" 5248 60 && wait_udp "$SRV_NS" 67 30 || { tail -20 "$WORK/ours.log" >&2; return 1; } ;;
        dnsmasq+busybox)
            mkdir -p "$WORK/www/boot/ipxe"
            ln -s "$BOOT" "$WORK/www/boot/files"
            printf '#!ipxe\nkernel http://%s:8080/boot/files/vmlinuz initrd=enlist.initrd\ninitrd http://%s:8080/boot/files/enlist.initrd\nboot\n' \
                "$SRV_IP" "$SRV_IP" >"$WORK/www/boot/ipxe/script"
            bg_start "$WORK/busybox.log" ip netns exec "$SRV_NS" busybox httpd -f -p "$SRV_IP:8080" -h "$WORK/www"
            SRV_PIDS=("$BG_PID")
            bg_start "$WORK/dnsmasq.log" ip netns exec "$SRV_NS" dnsmasq -k --conf-file=/dev/null --port=0 \
                --interface="$SRV_IF" --bind-interfaces --no-ping \
                --dhcp-range=10.77.1.1,10.77.4.254,255.255.0.0,10m --dhcp-lease-max=5000 \
                --dhcp-leasefile="$WORK/leases" --dhcp-match=set:ipxe,175 \
                --dhcp-boot=tag:!ipxe,undionly.kpxe,,"$SRV_IP" \
                --dhcp-boot=tag:ipxe,"http://$SRV_IP:8080/boot/ipxe/script" \
                --enable-tftp --tftp-root="$BOOT" --tftp-max=5000 --quiet-tftp --quiet-dhcp \
                --user=root --group=root --pid-file="$WORK/dnsmasq.pid"
            SRV_PIDS+=("$BG_PID")
            wait_tcp "$SRV_NS" 8080 15; wait_udp "$SRV_NS" 67 15 ;;
    esac
    sleep 0.5
}

netns_up
declare -A SUMMARY=()
for srv in $SERVERS; do
    for n in $NS; do
        start_server "$srv"
        log "$srv: $n clients"
        line=$(in_cli timeout 1000 "$PY" "$REPO/bench/py/bootstorm_clients.py" --n "$n" --deadline 900 --interface "$CLI_IF" | tail -1)
        SUMMARY[$srv:$n]=$line
        echo "$srv N=$n $line"
        rec "$srv:$n" "$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['all_booted_s'])" "$line")"
        rec "$srv:$n:ok" "$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['ok'])" "$line")"
        for p in "${SRV_PIDS[@]}"; do bg_stop "$p"; done
    done
done

echo
printf '%-18s' "all booted (s)"; for n in $NS; do printf '%10s' "N=$n"; done; echo
for srv in $SERVERS; do
    printf '%-18s' "$srv"; for n in $NS; do printf '%10s' "${FIG[$srv:$n]:-}"; done; echo
done
printf '%-18s' "clients booted"; echo
for srv in $SERVERS; do
    printf '%-18s' "$srv"; for n in $NS; do printf '%10s' "${FIG[$srv:$n:ok]:-}/$n"; done; echo
done
echo "(all booted = when the last client that booted had its kernel and initrd)"
echo
# time: peer seconds / our seconds (> 1.00: ours boots them sooner); booted: ours/peer count.
for n in $NS; do
    ratio_line bootstorm "N=$n-time" "ours:$n" "dnsmasq+busybox" "dnsmasq+busybox:$n" lower
    ratio_line bootstorm "N=$n-booted" "ours:$n:ok" "dnsmasq+busybox" "dnsmasq+busybox:$n:ok"
done
