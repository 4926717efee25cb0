#!/usr/bin/env bash
# DHCPv4 DORA throughput: netboot vs dnsmasq vs Kea (memfile), in one run. Not a test.
#
# Each server runs in its own namespace pair (nbdh-s-NAME / nbdh-c-NAME, one veth pair,
# 10.77.0.1/16 <-> 10.77.255.254/16); nothing touches the host's interfaces. Leases
# go to files on disk ($LEASE_BASE, /var/tmp by default): netboot fsyncs each batch
# before its ACKs (SQLite WAL, synchronous=FULL, group commit); Kea's memfile appends
# to its CSV without fsync; dnsmasq rewrites its lease file.
#
# Settings (each peer x each setting):
#   relay-1k / relay-50k   Kea's perfdhcp in relay mode (giaddr set, unicast to :67)
#   bcast-1k / bcast-50k   dhcpload (tools/dhcpload.c): broadcast PXE-like clients
# 1k / 50k = pool size, with as many distinct client MACs as addresses.
# Figure per setting: the highest offered rate (ladder, DURATION s per rung) at which
# >= 99% of DORAs complete (<= 1% loss). Ends with one line per setting and peer:
#   RATIO dhcp <setting> ours/<peer> <x.xx>      (> 1.00: ours is better)
#
# Knobs: DURATION (5), SETTINGS, PEERS ("kea dnsmasq"), RATES_FAST, RATES_SLOW, TRIES (2),
# LEASE_BASE (/var/tmp), PROFILE=1 (CPU profile of ours at PROFILE_RATE, by stage).
# Needs root, kea-dhcp4-server, kea-admin (perfdhcp), dnsmasq-base, gcc. Installing
# kea-dhcp4-server enables its boot service: disable it (update-rc.d / systemctl
# disable kea-dhcp4-server); this script starts every server itself, in namespaces.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PY=${PY:-$REPO/.venv/bin/python}
WORK_BASE=${BENCH_WORK:-/var/tmp/netboot-bench}
LEASE_BASE=${LEASE_BASE:-/var/tmp}
DURATION=${DURATION:-5}
SETTINGS=${SETTINGS:-"relay-1k relay-50k bcast-1k bcast-50k"}
PEERS=${PEERS-"kea dnsmasq"}
RATES_FAST=${RATES_FAST:-"500 1000 1500 2000 3000 4000 5000 6000 8000 10000"}
RATES_SLOW=${RATES_SLOW:-"100 200 300 400 500 600 800 1000 1500"}
TRIES=${TRIES:-2}   # a rung passes if any try completes >= 99% (a shared box is noisy)
STOP_BELOW=${STOP_BELOW:-90}
SRV_IP=10.77.0.1
CLI_IP=10.77.255.254
SRV_IF=nbdh-vs
CLI_IF=nbdh-vc
PIDS=()
NSES=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "dhcp_bench.sh: needs root (network namespaces)" >&2; exit 2; }
for tool in perfdhcp kea-dhcp4 dnsmasq gcc ip; do
    command -v "$tool" >/dev/null || { echo "dhcp_bench.sh: $tool missing" \
        "(apt-get install kea-dhcp4-server kea-admin dnsmasq-base gcc iproute2)" >&2; exit 2; }
done

mkdir -p "$WORK_BASE/tools"
LOADGEN=$WORK_BASE/tools/dhcpload
if [ ! -x "$LOADGEN" ] || [ "$HERE/tools/dhcpload.c" -nt "$LOADGEN" ]; then
    gcc -O2 -Wall -o "$LOADGEN" "$HERE/tools/dhcpload.c"
fi
WORK=$(mktemp -d "$LEASE_BASE/nbdh-bench.XXXXXX")
RESULTS=$WORK/results.tsv

stop_pid() {   # TERM, wait up to 5 s, KILL: only processes this script started
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
netns_del() { ip netns list | awk '{print $1}' | grep -qx "$1" && ip netns del "$1" || true; }
cleanup() {
    local p n
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    for n in "${NSES[@]}"; do netns_del "$n"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pair_up() {   # NAME -> SRV_NS CLI_NS
    SRV_NS=nbdh-s-$1
    CLI_NS=nbdh-c-$1
    netns_del "$SRV_NS"; netns_del "$CLI_NS"
    ip netns add "$SRV_NS"; NSES+=("$SRV_NS")
    ip netns add "$CLI_NS"; NSES+=("$CLI_NS")
    ip link add "$SRV_IF" netns "$SRV_NS" type veth peer name "$CLI_IF" netns "$CLI_NS"
    ip -n "$SRV_NS" link set lo up; ip -n "$CLI_NS" link set lo up
    ip -n "$SRV_NS" addr add "$SRV_IP/16" dev "$SRV_IF"
    ip -n "$CLI_NS" addr add "$CLI_IP/16" dev "$CLI_IF"
    ip -n "$SRV_NS" link set "$SRV_IF" up; ip -n "$CLI_NS" link set "$CLI_IF" up
    sleep 1
}
pair_down() { netns_del "$SRV_NS"; netns_del "$CLI_NS"; }

wait_udp67() {
    local i
    for i in $(seq 1 300); do
        ip netns exec "$SRV_NS" ss -Huln "sport = :67" 2>/dev/null | grep -q . && return 0
        sleep 0.1
    done
    log "nothing listens on :67 in $SRV_NS"; return 1
}

pool_end() {   # SIZE -> last address of a pool starting at 10.77.0.10
    python3 -c "import ipaddress,sys; print(ipaddress.IPv4Address('10.77.0.10') + int(sys.argv[1]) - 1)" "$1"
}

start_server() {   # PEER POOL TMP -> SPID
    local peer=$1 pool=$2 tmp=$3 end
    end=$(pool_end "$pool")
    case $peer in
        ours)
            cat >"$tmp/netboot.toml" <<EOF
server_address = "$SRV_IP"
state_dir = "$tmp/state"
boot_dir = "$tmp/boot"
[http]
port = 5248
[tftp]
port = 69
[dhcp]
interfaces = ["$SRV_IF"]
subnet = "10.77.0.0/16"
range_start = "10.77.0.10"
range_end = "$end"
router = "$SRV_IP"
lease_seconds = 43200
boot_lease_seconds = 43200
log_replies = false
rogue_probe_seconds = 0
conflict_probe = false
EOF
            mkdir -p "$tmp/boot"
            local runner="-m netboot.dhcp.run --config $tmp/netboot.toml"
            [ -n "${PROFILE_OUT:-}" ] && runner="$HERE/dhcp_profile.py run --config $tmp/netboot.toml --out $PROFILE_OUT"
            ip netns exec "$SRV_NS" bash -c "exec $PY $runner" >"$tmp/server.out" 2>&1 &
            ;;
        kea)
            sed -e "s#@IFACE@#$SRV_IF#; s#@PERSIST@#true#; s#@TMP@#$tmp#g; s#@SRV_IP@#$SRV_IP#g" \
                -e "s#10.77.0.10 - 10.77.255.200#10.77.0.10 - $end#" \
                "$HERE/conf/kea-dhcp4.json.in" >"$tmp/kea.json"
            ip netns exec "$SRV_NS" env KEA_PIDFILE_DIR="$tmp" KEA_LOCKFILE_DIR="$tmp" \
                kea-dhcp4 -c "$tmp/kea.json" >"$tmp/server.out" 2>&1 &
            ;;
        dnsmasq)
            ip netns exec "$SRV_NS" dnsmasq -k --conf-file=/dev/null --port=0 \
                --interface="$SRV_IF" --bind-interfaces \
                --dhcp-range="10.77.0.10,$end,255.255.0.0,12h" --dhcp-authoritative \
                --dhcp-leasefile="$tmp/leases" --dhcp-lease-max=100000 \
                --pid-file="$tmp/dnsmasq.pid" --log-facility="$tmp/dnsmasq.log" --quiet-dhcp \
                --dhcp-boot=pxelinux.0,,$SRV_IP --user=root --group=root --no-ping \
                >"$tmp/server.out" 2>&1 &
            ;;
    esac
    SPID=$!
    PIDS+=("$SPID")
    wait_udp67
    [ "$peer" = ours ] && { for i in $(seq 1 100); do grep -q "netboot-dhcp: ready" "$tmp/server.out" && break; sleep 0.1; done; }
    sleep 0.5
}

macfile() {   # COUNT -> file of distinct locally administered MACs
    local f=$WORK/macs-$1.txt
    [ -s "$f" ] || python3 - "$f" "$1" <<'EOF'
import random, sys
r = random.Random(7742); seen = set()
with open(sys.argv[1], "w") as f:
    while len(seen) < int(sys.argv[2]):
        b = [r.randrange(256) for _ in range(6)]
        b[0] = (b[0] & 0xFC) | 0x02
        m = ":".join(f"{x:02x}" for x in b)
        if m not in seen:
            seen.add(m); f.write(m + "\n")
EOF
    echo "$f"
}

run_rung() {   # PEER SETTING RATE -> RES="sent acks completion%"
    local peer=$1 setting=$2 rate=$3 pool kind tmp out
    kind=${setting%-*}; pool=${setting#*-}; pool=${pool%k}000
    tmp=$(mktemp -d "$WORK/run.XXXXXX")
    start_server "$peer" "$pool" "$tmp"
    if [ "$kind" = relay ]; then
        ip netns exec "$CLI_NS" timeout $((DURATION + 20)) perfdhcp -4 -l "$CLI_IP" -r "$rate" \
            -M "$(macfile "$pool")" -p "$DURATION" -W 500000 "$SRV_IP" >"$tmp/load.out" 2>&1 || true
        out=$(python3 - "$tmp/load.out" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
def sect(name):
    m = re.search(r"Statistics for: " + name + r"\*+\n(.*?)(\n\*\*\*|\Z)", t, re.S)
    s = m.group(1) if m else ""
    return int((re.search(r"sent packets: (\d+)", s) or [0, 0])[1]), int((re.search(r"received packets: (\d+)", s) or [0, 0])[1])
d, r = sect("DISCOVER-OFFER"), sect("REQUEST-ACK")
print(d[0], r[1])
EOF
)
    else
        out=$(ip netns exec "$CLI_NS" timeout $((DURATION + 20)) "$LOADGEN" -i "$CLI_IF" -r "$rate" \
            -p "$DURATION" -n "$pool" -w 500 2>"$tmp/load.err" | awk '{print $1, $4}' || true)
    fi
    kill -0 "$SPID" 2>/dev/null || { log "$peer died:"; tail -20 "$tmp/server.out" >&2; }
    stop_pid "$SPID"
    read -r sent acks <<<"${out:-0 0}"
    RES="$sent $acks $(python3 -c "print(round(100.0*$acks/max($sent,1),2))")"
    rm -rf "$tmp"
}

rec() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"; }

ladder() {   # PEER SETTING -> best rate at >= 99% completion
    local peer=$1 setting=$2 rates=$RATES_FAST best=0 rate sent acks compl
    [ "$peer" = dnsmasq ] && rates=$RATES_SLOW
    for rate in $rates; do
        local top=0 try
        for try in $(seq 1 "$TRIES"); do
            run_rung "$peer" "$setting" "$rate"
            read -r sent acks compl <<<"$RES"
            log "$peer $setting rate $rate/s try $try: sent=$sent acks=$acks completion=$compl%"
            top=$(python3 -c "print(max($top, $compl))")
            python3 -c "import sys; sys.exit(0 if $compl >= 99.0 else 1)" && break
        done
        if python3 -c "import sys; sys.exit(0 if $top >= 99.0 else 1)"; then best=$rate; fi
        python3 -c "import sys; sys.exit(0 if $top < $STOP_BELOW else 1)" && break
    done
    rec "$peer" "$setting" "$best"
    log "RESULT $peer $setting: $best DORA/s at <= 1% loss"
}

for peer in ours $PEERS; do
    pair_up "$peer"
    for setting in $SETTINGS; do ladder "$peer" "$setting"; done
    pair_down
done

if [ "${PROFILE:-0}" = 1 ]; then
    pair_up prof
    PROFILE_OUT=$WORK/ours.prof run_rung ours relay-50k "${PROFILE_RATE:-4000}"
    log "where ours spends CPU at ${PROFILE_RATE:-4000}/s offered, relay-50k:"
    "$PY" "$HERE/dhcp_profile.py" report "$WORK/ours.prof"
    pair_down
fi

echo
echo "| setting | ours | $(echo "$PEERS" | sed 's/ / | /g') |  (DORA/s at <= 1% loss, ${DURATION} s per rung)"
for setting in $SETTINGS; do
    line="| $setting | $(awk -F'\t' -v s="$setting" '$1=="ours" && $2==s {print $3}' "$RESULTS")"
    for peer in $PEERS; do
        line="$line | $(awk -F'\t' -v p="$peer" -v s="$setting" '$1==p && $2==s {print $3}' "$RESULTS")"
    done
    echo "$line |"
done
echo
for setting in $SETTINGS; do
    ours=$(awk -F'\t' -v s="$setting" '$1=="ours" && $2==s {print $3}' "$RESULTS")
    for peer in $PEERS; do
        theirs=$(awk -F'\t' -v p="$peer" -v s="$setting" '$1==p && $2==s {print $3}' "$RESULTS")
        python3 -c "import sys; o,t=float(sys.argv[1]),float(sys.argv[2]); print(f'RATIO dhcp $setting ours/$peer {o/t if t else float(\"inf\"):.2f}')" "$ours" "$theirs"
    done
done
