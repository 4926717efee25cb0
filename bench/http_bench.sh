#!/usr/bin/env bash
# HTTP vs TFTP for a 50 MiB initrd, and netboot's HTTP file serving vs busybox httpd.
#
# Server side in namespace nbb-srv (10.77.0.1), curl/atftp clients in nbb-cli, one veth
# pair (MTU 1500). Figures are MB/s (10^6 B/s), aggregate over all clients; every output
# is checked by size (and the first by sha256).
#   - ours-http:  netboot's BootFiles (twisted.web static.File + ETag), bench/py/serve_boot_files.py
#   - busybox:    busybox httpd (C, fork per connection), a plain reference HTTP server
#   - ours-tftp:  netboot's TFTP server, blksize 1468, windowsize 1 and 16 (atftp client)
#
#   sudo bench/http_bench.sh            # CONCS="1 20" SIZE_MB=50
#
# Output ends with RATIO lines: `RATIO http <setting> ours/<peer> <x.xx>` where "ours" is
# netboot's HTTP serving and the peer is busybox httpd or netboot's own TFTP at that
# setting (> 1.00: HTTP from netboot is faster).
source "$(dirname "$0")/lib.sh"

CONCS=${CONCS:-"1 20"}
SIZE_MB=${SIZE_MB:-50}
HTTP_PORT=8080
for tool in curl atftp busybox; do
    command -v "$tool" >/dev/null || { log "$tool missing"; exit 2; }
done

WORK=$(mktemp -d /var/tmp/nbb-http.XXXXXX)
OUT=$(mktemp -d /dev/shm/nbb-http-out.XXXXXX)
ROOT=$WORK/root
cleanup() { bg_stop_all; netns_down; rm -rf "$WORK" "$OUT"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$ROOT"; chmod 755 "$WORK" "$ROOT"
head -c $((SIZE_MB * 1048576)) /dev/urandom >"$ROOT/initrd.img"; chmod 644 "$ROOT/initrd.img"
SIZE=$(stat -c %s "$ROOT/initrd.img")
SUM=$(sha256sum "$ROOT/initrd.img" | cut -d' ' -f1)

# run N CLIENT_CMD_WITH_@OUT@ -> "ok secs"
run() {
    local n=$1 cmd=$2 t0 t1 ok=0 i
    rm -f "$OUT"/c.*
    t0=$EPOCHREALTIME
    in_cli timeout 600 bash -c "for i in \$(seq 1 $n); do ${cmd//@OUT@/$OUT/c.\$i} >/dev/null 2>&1 & done; wait" || true
    t1=$EPOCHREALTIME
    for i in $(seq 1 "$n"); do
        [ "$(stat -c %s "$OUT/c.$i" 2>/dev/null || echo 0)" = "$SIZE" ] && ok=$((ok + 1))
    done
    if [ "$n" = 1 ] && [ "$ok" = 1 ]; then
        [ "$(sha256sum "$OUT/c.1" | cut -d' ' -f1)" = "$SUM" ] || { log "checksum mismatch"; ok=0; }
    fi
    rm -f "$OUT"/c.*
    echo "$ok $(python3 -c "print($t1 - $t0)")"
}

measure() {   # NAME CMD
    local name=$1 cmd=$2 n ok secs
    for n in $CONCS; do
        read -r ok secs < <(run "$n" "$cmd")
        [ "$ok" = "$n" ] || log "$name x$n: only $ok of $n complete"
        rec "$name:c$n" "$(python3 -c "print(round($ok * $SIZE / 1e6 / $secs, 2))")"
    done
}

netns_up
URL=http://$SRV_IP:$HTTP_PORT
bg_start "$WORK/ours-http.out" ip netns exec "$SRV_NS" "$PY" "$REPO/bench/py/serve_boot_files.py" "$ROOT" "$SRV_IP" "$HTTP_PORT"
P=$BG_PID; wait_tcp "$SRV_NS" "$HTTP_PORT" 15
measure ours-http "curl -sS -o @OUT@ $URL/boot/files/initrd.img"
bg_stop "$P"

mkdir -p "$WORK/bb/boot"; ln -s "$ROOT" "$WORK/bb/boot/files"
bg_start "$WORK/busybox.out" ip netns exec "$SRV_NS" busybox httpd -f -p "$SRV_IP:$HTTP_PORT" -h "$WORK/bb"
P=$BG_PID; wait_tcp "$SRV_NS" "$HTTP_PORT" 15
measure busybox "curl -sS -o @OUT@ $URL/boot/files/initrd.img"
bg_stop "$P"

bg_start "$WORK/ours-tftp.out" ip netns exec "$SRV_NS" "$PY" -m netboot.tftp.server --root "$ROOT" --address "$SRV_IP" --port 69 --max-sessions 1024
P=$BG_PID; wait_udp "$SRV_NS" 69 15
measure tftp-1468-w1 "atftp --option 'blksize 1468' --get -r initrd.img -l @OUT@ $SRV_IP 69"
measure tftp-1468-w16 "atftp --option 'blksize 1468' --option 'windowsize 16' --get -r initrd.img -l @OUT@ $SRV_IP 69"
bg_stop "$P"

echo
printf '%-16s' "MB/s"; for n in $CONCS; do printf '%14s' "x$n"; done; echo
for name in ours-http busybox tftp-1468-w1 tftp-1468-w16; do
    printf '%-16s' "$name"; for n in $CONCS; do printf '%14s' "${FIG[$name:c$n]:-}"; done; echo
done
echo
for n in $CONCS; do
    for peer in busybox tftp-1468-w1 tftp-1468-w16; do
        ratio_line http "${SIZE_MB}MiB-initrd-x$n" "ours-http:c$n" "$peer" "$peer:c$n"
    done
done
