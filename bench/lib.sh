# shellcheck shell=bash
# Helpers shared by netboot's benchmarks (adapted from the reference harness in
# shared/bench/lib.sh). Source it; do not run it.
#
# - namespaces nbb-srv / nbb-cli joined by one veth pair (10.77.0.1/16 <-> 10.77.255.254/16,
#   MTU 1500): nothing is attached to the host's interfaces; all traffic stays on the pair.
# - bg_start / bg_stop_all: start programs in the background and stop exactly those PIDs.
# - rec NAME VALUE: remember a figure; ratio LINE...: print RATIO lines at the end.

set -euo pipefail
BENCH_WORK=${BENCH_WORK:-/var/tmp/netboot-bench}
mkdir -p "$BENCH_WORK/tools"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PY:-$REPO/.venv/bin/python}

SRV_NS=nbb-srv
CLI_NS=nbb-cli
SRV_IF=nbb-vs
CLI_IF=nbb-vc
SRV_IP=10.77.0.1
CLI_IP=10.77.255.254
BENCH_PIDS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

netns_down() {
    local ns
    for ns in "$SRV_NS" "$CLI_NS"; do
        if ip netns list | awk '{print $1}' | grep -qx "$ns"; then ip netns del "$ns"; fi
    done
}

netns_up() {
    netns_down
    ip netns add "$SRV_NS"
    ip netns add "$CLI_NS"
    ip link add "$SRV_IF" netns "$SRV_NS" type veth peer name "$CLI_IF" netns "$CLI_NS"
    ip -n "$SRV_NS" link set lo up
    ip -n "$CLI_NS" link set lo up
    ip -n "$SRV_NS" addr add "$SRV_IP/16" dev "$SRV_IF"
    ip -n "$CLI_NS" addr add "$CLI_IP/16" dev "$CLI_IF"
    ip -n "$SRV_NS" link set "$SRV_IF" up
    ip -n "$CLI_NS" link set "$CLI_IF" up
    local i
    for i in $(seq 1 50); do
        if ip -n "$CLI_NS" -br link show dev "$CLI_IF" | grep -qw UP; then sleep 0.5; return 0; fi
        sleep 0.1
    done
    log "veth pair did not come up"; return 1
}

in_srv() { ip netns exec "$SRV_NS" "$@"; }
in_cli() { ip netns exec "$CLI_NS" "$@"; }

bg_start() {   # LOGFILE CMD... -> BG_PID
    local logf=$1; shift
    "$@" >"$logf" 2>&1 &
    BG_PID=$!
    BENCH_PIDS+=("$BG_PID")
}

bg_stop() {    # PID: TERM, wait up to 5 s, then KILL. Only PIDs we started.
    local pid=$1 i
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    local keep=() p
    for p in "${BENCH_PIDS[@]}"; do [ "$p" != "$pid" ] && keep+=("$p"); done
    BENCH_PIDS=("${keep[@]+"${keep[@]}"}")
}

bg_stop_all() {
    local p
    for p in "${BENCH_PIDS[@]+"${BENCH_PIDS[@]}"}"; do bg_stop "$p"; done
    BENCH_PIDS=()
}

wait_udp() {   # NS PORT [TIMEOUT_S]: until something listens on PORT/udp in NS
    local ns=$1 port=$2 t=${3:-10} i
    for i in $(seq 1 $((t * 10))); do
        if ip netns exec "$ns" ss -Huln "sport = :$port" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.1
    done
    log "nothing listening on udp $port in $ns after ${t}s"; return 1
}

wait_tcp() {   # NS PORT [TIMEOUT_S]
    local ns=$1 port=$2 t=${3:-10} i
    for i in $(seq 1 $((t * 10))); do
        if ip netns exec "$ns" ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.1
    done
    log "nothing listening on tcp $port in $ns after ${t}s"; return 1
}

# Figures: FIG[name]=value (MB/s or seconds); printed by ratio_line.
declare -A FIG=()
rec() { FIG[$1]=$2; log "RESULT $1 = $2"; }

# ratio_line BENCH SETTING OURS_KEY PEER PEER_KEY [lower_is_better]
ratio_line() {
    local bench=$1 setting=$2 ours=${FIG[$3]:-0} peer=$4 theirs=${FIG[$5]:-0} lower=${6:-}
    python3 - "$bench" "$setting" "$ours" "$peer" "$theirs" "$lower" <<'EOF'
import sys
bench, setting, ours, peer, theirs, lower = sys.argv[1:]
ours, theirs = float(ours), float(theirs)
if lower:
    r = theirs / ours if ours > 0 else 0.0
else:
    r = ours / theirs if theirs > 0 else (99.99 if ours > 0 else 0.0)
print(f"RATIO {bench} {setting} ours/{peer} {r:.2f}")
EOF
}
