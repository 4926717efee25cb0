#!/usr/bin/env bash
# DNS caching-forwarder benchmark (NOT a test): netboot's DNS vs dnsmasq vs unbound.
#
# Everything runs inside one private network namespace created here (bench-dns-$$),
# on its loopback: nothing touches the host's interfaces or resolver.
#   upstream:  unbound on 127.0.0.2:5353, authoritative (local-data) for NAMES names
#              of bench.test and a redirect zone miss.test (any *.miss.test -> A).
#   targets:   each caching forwarder in turn on 127.0.0.3:53 -> the upstream:
#              ours    = `netboot serve` (DNS only matters; no DHCP), DNS_WORKERS extra
#                        processes sharing the port with SO_REUSEPORT
#              dnsmasq = dnsmasq --cache-size=$CACHE
#              unbound = a second unbound, forward-zone "." to the upstream, 1 thread
# Workloads (dnsperf, DURATION s each, TRIALS times, median kept):
#   hit:  all NAMES names, shuffled, after a warm-up pass: every answer from cache
#         (-c 20 -q 500, as in shared/bench ANCHORS.md)
#   miss: distinct *.miss.test names, target restarted first: every query a miss
#         (-c 10 -q 100)
#   latency: hit workload at a fixed LAT_QPS with dnsperf -v; p50/p99/p99.9 from the
#         per-query latencies
# Prints a table and, last, one line per setting and peer:
#   RATIO dns <setting> ours/<peer> <x.xx>      (above 1.00 = ours better)
# q/s ratios are ours/peer; latency ratios are peer/ours (so higher is still better).
#
# Knobs: DURATION (10) TRIALS (2) NAMES (10000) UNIQUE (1500000) CACHE (20000)
#        DNS_WORKERS (1) LAT_QPS (5000) PEERS ("dnsmasq unbound")
# Needs root, dnsperf, dnsmasq, unbound (installed with apt-get if missing).
set -euo pipefail

DURATION=${DURATION:-10}
TRIALS=${TRIALS:-2}
NAMES=${NAMES:-10000}
UNIQUE=${UNIQUE:-1500000}
CACHE=${CACHE:-20000}
DNS_WORKERS=${DNS_WORKERS:-1}
LAT_QPS=${LAT_QPS:-5000}
PEERS=${PEERS:-"dnsmasq unbound"}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
NS=bench-dns-$$
UP_IP=127.0.0.2; UP_PORT=5353
FWD_IP=127.0.0.3; FWD_PORT=53

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 2; }
missing=""
for tool in dnsperf:dnsperf dnsmasq:dnsmasq-base unbound:unbound; do
    command -v "${tool%%:*}" >/dev/null || missing="$missing ${tool##*:}"
done
if [ -n "$missing" ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

WORK=$(mktemp -d /var/tmp/netboot-dns-bench.XXXXXX)
PIDS=()
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
in_ns() { ip netns exec "$NS" "$@"; }
start_bg() {  # start_bg LOG CMD... -> BG_PID (the command itself: ip netns exec execs)
    local out=$1; shift
    "$@" >"$out" 2>&1 &
    BG_PID=$!
    PIDS+=("$BG_PID")
}
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local p
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
wait_udp() {  # wait_udp ADDR PORT
    local i
    for i in $(seq 1 200); do
        in_ns ss -Huln "sport = :$2" 2>/dev/null | grep -qF "$1:$2" && return 0
        sleep 0.1
    done
    log "nothing listening on $1:$2/udp"; return 1
}

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" addr add 127.0.0.2/8 dev lo
ip -n "$NS" addr add 127.0.0.3/8 dev lo

"$PY" - "$WORK" "$NAMES" "$UNIQUE" <<'PYEOF'
import random, sys
work, n, u = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names = [f"h{i}.bench.test" for i in range(n)]
common = f"""    do-ip6: no
    num-threads: 1
    username: ""
    chroot: ""
    directory: "{work}"
    use-syslog: no
    logfile: ""
    verbosity: 0
    module-config: "iterator"
    access-control: 127.0.0.0/8 allow
"""
with open(f"{work}/upstream.conf", "w") as f:
    f.write(f'server:\n    interface: 127.0.0.2\n    port: 5353\n    pidfile: "{work}/up.pid"\n')
    f.write(common)
    f.write('    local-zone: "bench.test." static\n    local-zone: "miss.test." redirect\n')
    f.write('    local-data: "miss.test. 3600 IN A 10.99.0.1"\n')
    for i, name in enumerate(names):
        f.write(f'    local-data: "{name}. 3600 IN A 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"\n')
    f.write("remote-control:\n    control-enable: no\n")
with open(f"{work}/unbound-fwd.conf", "w") as f:
    f.write(f'server:\n    interface: 127.0.0.3\n    port: 53\n    pidfile: "{work}/fwd.pid"\n')
    f.write(common)
    # "test." is an RFC 6761 local zone in unbound: nodefault it to forward it.
    f.write('    do-not-query-localhost: no\n    local-zone: "test." nodefault\n')
    f.write('forward-zone:\n    name: "."\n    forward-addr: 127.0.0.2@5353\n')
    f.write("remote-control:\n    control-enable: no\n")
random.Random(1).shuffle(names)
with open(f"{work}/hit.txt", "w") as f:
    f.writelines(f"{x} A\n" for x in names)
with open(f"{work}/miss.txt", "w") as f:
    f.writelines(f"u{i}.miss.test A\n" for i in range(u))
PYEOF
mkdir -p "$WORK/state" "$WORK/boot"
cat >"$WORK/netboot.toml" <<EOC
server_address = "$FWD_IP"
state_dir = "$WORK/state"
boot_dir = "$WORK/boot"
[http]
port = 5248
[tftp]
port = 69
[dns]
upstreams = ["$UP_IP:$UP_PORT"]
allow_recursion = ["127.0.0.0/8"]
cache_size = $CACHE
workers = $DNS_WORKERS
EOC

start_bg "$WORK/upstream.log" ip netns exec "$NS" unbound -d -c "$WORK/upstream.conf"
UPSTREAM_PID=$BG_PID
wait_udp "$UP_IP" "$UP_PORT"
log "upstream unbound up with $NAMES names; dnsperf $(dnsperf -h 2>&1 | grep -i '^Version' || true)"

TPID=
start_target() {
    case $1 in
        ours) start_bg "$WORK/target.log" ip netns exec "$NS" "$PY" -m netboot.cli --config "$WORK/netboot.toml" serve ;;
        dnsmasq) start_bg "$WORK/target.log" ip netns exec "$NS" dnsmasq -k --conf-file=/dev/null --no-resolv \
                     --no-hosts --server="$UP_IP#$UP_PORT" --listen-address="$FWD_IP" --bind-interfaces \
                     --port="$FWD_PORT" --cache-size="$CACHE" --pid-file="$WORK/dnsmasq.pid" \
                     --user=root --group=root --log-facility="$WORK/dnsmasq.log" ;;
        unbound) start_bg "$WORK/target.log" ip netns exec "$NS" unbound -d -c "$WORK/unbound-fwd.conf" ;;
    esac
    TPID=$BG_PID
    wait_udp "$FWD_IP" "$FWD_PORT"
    if [ "$1" = ours ]; then  # every worker bound (they share the port)
        local i
        for i in $(seq 1 100); do
            [ "$(in_ns ss -Huln "sport = :$FWD_PORT" | wc -l)" -gt "$DNS_WORKERS" ] && break
            sleep 0.1
        done
    fi
    sleep 0.3
}
stop_target() { [ -n "$TPID" ] && stop_pid "$TPID"; TPID=; }

# dnsperf FILE ARGS... -> QPS LOST
run_dnsperf() {
    local f=$1; shift
    in_ns timeout $((DURATION + 60)) dnsperf -s "$FWD_IP" -p "$FWD_PORT" -d "$f" "$@" >"$WORK/dnsperf.out" 2>&1 || true
    QPS=$(sed -n 's/.*Queries per second: *\([0-9.]*\).*/\1/p' "$WORK/dnsperf.out")
    LOST=$(sed -n 's/.*Queries lost: *[0-9]* (\([0-9.]*\)%).*/\1/p' "$WORK/dnsperf.out")
    QPS=${QPS:-0}; LOST=${LOST:-100}
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A RESULT
for tgt in ours $PEERS; do
    start_target "$tgt"
    # Warm-up: every name, four times, each run from new source ports -- with worker
    # processes the kernel maps each client port to one process, so this reaches each
    # process's own cache with most names (~94% with two processes).
    for c in 1 7 20 3; do
        DURATION=120 run_dnsperf "$WORK/hit.txt" -n 1 -c "$c" -q 20 -l 120
        log "$tgt warm-up pass (-c $c): $QPS q/s, lost $LOST%"
    done
    vals=()
    for t in $(seq 1 "$TRIALS"); do
        run_dnsperf "$WORK/hit.txt" -l "$DURATION" -c 20 -q 500
        log "$tgt hit trial $t: $QPS q/s, lost $LOST%"
        vals+=("$QPS")
    done
    RESULT[$tgt,hit]=$(median "${vals[@]}")
    # latency at a fixed rate, from dnsperf -v per-query lines ("> NOERROR ... 0.000123")
    in_ns timeout 60 dnsperf -s "$FWD_IP" -p "$FWD_PORT" -d "$WORK/hit.txt" -l 5 -c 1 -q 50 \
        -Q "$LAT_QPS" -v >"$WORK/lat.out" 2>&1 || true
    read -r P50 P99 P999 N < <("$PY" - "$WORK/lat.out" <<'PYEOF'
import sys
lat = []
for line in open(sys.argv[1]):
    if line.startswith("> "):
        try:
            lat.append(float(line.split()[-1]) * 1000)
        except ValueError:
            pass  # a timeout line ("> T ..."): counted by dnsperf as lost
lat.sort()
pick = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
print(f"{pick(0.5):.3f} {pick(0.99):.3f} {pick(0.999):.3f} {len(lat)}")
PYEOF
)
    log "$tgt hit latency at $LAT_QPS q/s: p50 $P50 ms, p99 $P99 ms, p99.9 $P999 ms ($N queries)"
    RESULT[$tgt,p50]=$P50; RESULT[$tgt,p99]=$P99
    stop_target
    vals=()
    for t in $(seq 1 "$TRIALS"); do
        start_target "$tgt"
        run_dnsperf "$WORK/miss.txt" -l "$DURATION" -c 10 -q 100
        grep -E "Response codes" "$WORK/dnsperf.out" >&2 || true  # SERVFAILs show here
        stop_target
        log "$tgt miss trial $t: $QPS q/s, lost $LOST%"
        vals+=("$QPS")
    done
    RESULT[$tgt,miss]=$(median "${vals[@]}")
done
kill -0 "$UPSTREAM_PID" 2>/dev/null || log "upstream died"

printf '\n%-10s %12s %12s %10s %10s\n' target "hit q/s" "miss q/s" "hit p50" "hit p99" 
for tgt in ours $PEERS; do
    printf '%-10s %12s %12s %8s ms %8s ms\n' "$tgt" "${RESULT[$tgt,hit]}" "${RESULT[$tgt,miss]}" \
        "${RESULT[$tgt,p50]}" "${RESULT[$tgt,p99]}"
done
echo
for peer in $PEERS; do
    "$PY" - "$peer" "${RESULT[ours,hit]}" "${RESULT[$peer,hit]}" "${RESULT[ours,miss]}" \
        "${RESULT[$peer,miss]}" "${RESULT[ours,p99]}" "${RESULT[$peer,p99]}" <<'PYEOF'
import sys
peer, oh, ph, om, pm, ol, pl = sys.argv[1], *map(float, sys.argv[2:])
ratio = lambda a, b: f"{a / b:.2f}" if b > 0 else "nan"
print(f"RATIO dns hit-qps ours/{peer} {ratio(oh, ph)}")
print(f"RATIO dns miss-qps ours/{peer} {ratio(om, pm)}")
print(f"RATIO dns hit-p99-latency ours/{peer} {ratio(pl, ol)}")
PYEOF
done
