#!/usr/bin/env bash
# TFTP read throughput: netboot's server vs tftpd-hpa, dnsmasq and atftpd, in one run.
#
# One 64 MiB random file; server in namespace nbb-srv (10.77.0.1:69), atftp clients in
# nbb-cli, over one veth pair (MTU 1500). Settings: blksize 512 and 1468 x windowsize 1
# and 16 x 1 client and 20 concurrent clients; plus 100 concurrent clients on a 16 MiB
# file (blksize 1468, windowsize 16), which must all complete. tftpd-hpa and dnsmasq do
# not implement windowsize (RFC 7440): they answer lock-step, as a real client would see.
# MB/s = 10^6 bytes/s, aggregate over all clients; every output is checked by size (the
# first single-client transfer of each setting also by sha256). Each server's CPU time
# (user + system of the server, its threads and its child processes, /proc/PID/stat) is
# read around each 64 MiB run: "server CPU us/block" is much less sensitive to other
# load on the machine than MB/s (its RATIO lines are peer/ours: > 1.00, ours cheaper).
#
#   sudo bench/tftp_bench.sh                 # everything (~10 min on 2 cores)
#   SERVERS="ours atftpd" SETTINGS="1468-w16" CONCS="1" bench/tftp_bench.sh
#
# Output ends with `RATIO tftp <setting> ours/<peer> <x.xx>` lines (> 1.00: ours faster).
# Needs root (namespaces), atftp (client), tftpd-hpa, dnsmasq; atftpd is unpacked from
# its Debian package into $BENCH_WORK/tools (it conflicts with tftpd-hpa as a package).
source "$(dirname "$0")/lib.sh"

SERVERS=${SERVERS:-"ours tftpd-hpa dnsmasq atftpd"}
SETTINGS=${SETTINGS:-"512-w1 1468-w1 512-w16 1468-w16"}
CONCS=${CONCS:-"1 20"}
BIG_CONC=${BIG_CONC:-100}
SIZE_MB=${SIZE_MB:-64}
BIG_CONC_MB=${BIG_CONC_MB:-16}
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-300}
OURS_WORKERS=${OURS_WORKERS:-2}  # netboot TFTP processes sharing port 69 ([tftp] workers)
ATFTPD=$BENCH_WORK/tools/atftpd-root/usr/sbin/atftpd

for tool in atftp in.tftpd dnsmasq ip ss; do
    command -v "$tool" >/dev/null || { log "$tool missing (apt-get install atftp tftpd-hpa dnsmasq-base iproute2)"; exit 2; }
done
if [ ! -x "$ATFTPD" ]; then
    log "unpacking atftpd into $BENCH_WORK/tools"
    dl=$(mktemp -d); (cd "$dl" && apt-get download -q atftpd >&2)
    dpkg-deb -x "$dl"/atftpd_*.deb "$BENCH_WORK/tools/atftpd-root"; rm -rf "$dl"
fi

WORK=$(mktemp -d /var/tmp/nbb-tftp.XXXXXX)
OUT=$(mktemp -d /dev/shm/nbb-tftp-out.XXXXXX)
ROOT=$WORK/root
cleanup() { bg_stop_all; netns_down; rm -rf "$WORK" "$OUT"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$ROOT"
chmod 755 "$WORK" "$ROOT"
head -c $((SIZE_MB * 1048576)) /dev/urandom >"$ROOT/big.img"
head -c $((BIG_CONC_MB * 1048576)) /dev/urandom >"$ROOT/mid.img"
chmod 644 "$ROOT"/*.img
SUM=$(sha256sum "$ROOT/big.img" | cut -d' ' -f1)

server_cmd() {
    case $1 in
        ours) echo "$PY -m netboot.tftp.server --root $ROOT --address $SRV_IP --port 69 --max-sessions 1024 --max-windowsize 16 --workers $OURS_WORKERS" ;;
        # netboot with every transfer on the Python loop (no C fast path): SERVERS="ours ours-py ..."
        ours-py) echo "$PY -m netboot.tftp.server --root $ROOT --address $SRV_IP --port 69 --max-sessions 1024 --max-windowsize 16 --workers $OURS_WORKERS --no-fastpath" ;;
        tftpd-hpa) echo "in.tftpd -L -a $SRV_IP:69 -s $ROOT -u root" ;;
        dnsmasq) echo "dnsmasq -k --conf-file=/dev/null --port=0 --interface=$SRV_IF --bind-interfaces --enable-tftp --tftp-root=$ROOT --tftp-max=1024 --quiet-tftp --user=root --group=root --pid-file=$WORK/dnsmasq.pid --log-facility=$WORK/dnsmasq.log" ;;
        atftpd) echo "$ATFTPD --daemon --no-fork --port 69 --bind-address $SRV_IP --user root --group root --maxthread 1024 --logfile $WORK/atftpd.log --verbose=1 $ROOT" ;;
        *) log "unknown server $1"; return 1 ;;
    esac
}

CLK_TCK=$(getconf CLK_TCK)
# cpu_ticks PID: user + system ticks of PID (all threads), its reaped children and its
# live children (netboot's worker processes). tftpd-hpa's per-transfer children are
# reaped with SIGCHLD ignored, which adds nothing to the parent's times: no figure.
cpu_ticks() {
    local pid sum=0 t
    for pid in "$1" $(pgrep -P "$1" || true); do
        t=$(awk '{sub(/.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || continue
        sum=$((sum + ${t:-0}))
    done
    echo "$sum"
}

# run_clients N FILE BLKSIZE WINDOWSIZE -> prints "ok secs"
run_clients() {
    local n=$1 file=$2 bs=$3 ws=$4 opts="--option 'blksize $bs'"
    [ "$ws" -gt 1 ] && opts="$opts --option 'windowsize $ws'"
    rm -f "$OUT"/c.*
    local t0 t1
    t0=$EPOCHREALTIME
    in_cli timeout "$CLIENT_TIMEOUT" bash -c "
        for i in \$(seq 1 $n); do atftp $opts --get -r $file -l $OUT/c.\$i $SRV_IP 69 >/dev/null 2>&1 & done
        wait" || true
    t1=$EPOCHREALTIME
    local size ok=0 i
    size=$(stat -c %s "$ROOT/$file")
    for i in $(seq 1 "$n"); do
        [ "$(stat -c %s "$OUT/c.$i" 2>/dev/null || echo 0)" = "$size" ] && ok=$((ok + 1))
    done
    if [ "$n" = 1 ] && [ "$file" = big.img ] && [ "$ok" = 1 ]; then
        [ "$(sha256sum "$OUT/c.1" | cut -d' ' -f1)" = "$SUM" ] || { log "checksum mismatch"; ok=0; }
    fi
    rm -f "$OUT"/c.*
    echo "$ok $(python3 -c "print($t1 - $t0)")"
}

start_server() {
    bg_start "$WORK/$1.out" ip netns exec "$SRV_NS" bash -c "exec $(server_cmd "$1")"
    SPID=$BG_PID
    wait_udp "$SRV_NS" 69 30
    # Worker processes bind after their interpreter starts: wait for all of them, so no
    # start-up work overlaps the measurement.
    local want=1 i
    case $1 in ours|ours-py) want=$OURS_WORKERS ;; esac
    for i in $(seq 1 300); do
        [ "$(ip netns exec "$SRV_NS" ss -Huln 'sport = :69' | wc -l)" -ge "$want" ] && break
        sleep 0.1
    done
    sleep 0.3
}
stop_server() {
    kill -0 "$SPID" 2>/dev/null || { log "server $1 died:"; tail -20 "$WORK/$1.out" >&2; }
    bg_stop "$SPID"
}

netns_up
log "file ${SIZE_MB} MiB; servers: $SERVERS; settings: $SETTINGS x clients $CONCS (+ $BIG_CONC x ${BIG_CONC_MB} MiB)"
# Settings outside, servers inside: every server is measured at a setting within a minute
# or so of the others, so load from elsewhere on the machine skews the ratios less.
for setting in $SETTINGS; do
    bs=${setting%-w*}; ws=${setting#*-w}
    for n in $CONCS; do
        for srv in $SERVERS; do
            start_server "$srv"
            cpu0=$(cpu_ticks "$SPID")
            read -r ok secs < <(run_clients "$n" big.img "$bs" "$ws")
            sleep 0.3  # let per-transfer children (tftpd-hpa) exit and be reaped
            cpu1=$(cpu_ticks "$SPID")
            stop_server "$srv"
            mbs=$(python3 -c "print(round($ok * $SIZE_MB * 1048576 / 1e6 / $secs, 2))")
            rec "$srv:$setting:c$n" "$mbs"
            blocks=$((n * (SIZE_MB * 1048576 / bs + 1)))
            [ "$srv" = tftpd-hpa ] || rec "$srv:$setting:c$n:cpu" "$(python3 -c "print(round(($cpu1 - $cpu0) / $CLK_TCK * 1e6 / $blocks, 2))")"
            [ "$ok" = "$n" ] || log "$srv $setting x$n: only $ok of $n transfers complete"
        done
    done
done
for srv in $SERVERS; do
    start_server "$srv"
    read -r ok secs < <(run_clients "$BIG_CONC" mid.img 1468 16)
    stop_server "$srv"
    rec "$srv:1468-w16:c$BIG_CONC" "$(python3 -c "print(round($ok * $BIG_CONC_MB * 1048576 / 1e6 / $secs, 2))")"
    rec "$srv:complete:c$BIG_CONC" "$ok"
done

echo
printf '%-22s' "MB/s (aggregate)"; for srv in $SERVERS; do printf '%12s' "$srv"; done; echo
for setting in $SETTINGS; do
    for n in $CONCS; do
        printf '%-22s' "$setting x$n"
        for srv in $SERVERS; do printf '%12s' "${FIG[$srv:$setting:c$n]:-}"; done; echo
    done
done
printf '%-22s' "1468-w16 x$BIG_CONC"; for srv in $SERVERS; do printf '%12s' "${FIG[$srv:1468-w16:c$BIG_CONC]:-}"; done; echo
printf '%-22s' "complete of $BIG_CONC"; for srv in $SERVERS; do printf '%12s' "${FIG[$srv:complete:c$BIG_CONC]:-}"; done; echo
echo
printf '%-22s' "server CPU us/block"; for srv in $SERVERS; do printf '%12s' "$srv"; done; echo
for setting in $SETTINGS; do
    for n in $CONCS; do
        printf '%-22s' "$setting x$n"
        for srv in $SERVERS; do printf '%12s' "${FIG[$srv:$setting:c$n:cpu]:-}"; done; echo
    done
done
echo
log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
for srv in $SERVERS; do
    [ "$srv" = ours ] && continue
    for setting in $SETTINGS; do
        for n in $CONCS; do
            ratio_line tftp "${SIZE_MB}MiB-$setting-x$n" "ours:$setting:c$n" "$srv" "$srv:$setting:c$n"
        done
    done
    ratio_line tftp "${BIG_CONC_MB}MiB-1468-w16-x$BIG_CONC" "ours:1468-w16:c$BIG_CONC" "$srv" "$srv:1468-w16:c$BIG_CONC"
    [ "$srv" = tftpd-hpa ] && continue  # no CPU figure (see cpu_ticks)
    for setting in $SETTINGS; do
        for n in $CONCS; do
            ratio_line tftp "cpu-per-block-$setting-x$n" "ours:$setting:c$n:cpu" "$srv" "$srv:$setting:c$n:cpu" lower
        done
    done
done
