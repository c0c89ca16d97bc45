#!/usr/bin/env bash
# TFTP download benchmark: single transfers of a BIG_MIB file, lock-step and RFC 7440 windowed,
# then CONC concurrent curl transfers. Server in netns rackbench-srv on 0.0.0.0:69, clients in
# rackbench-cli over the veth (MTU 1500, so blksize 1468 fills a frame).
#
# usage: bench/tftp.sh rack|tftpd-hpa|atftpd OUT.tsv
# Knobs: CASES ("client:blksize:windowsize ..."), REPEAT (3), BIG_MIB (50), CONC (100),
#        CONC_MIB (10), PIN (split: server on the last CPU, clients on CPU 0, as shared/lab/perf)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

SERVER=${1:?usage: tftp.sh rack|tftpd-hpa|atftpd OUT.tsv}
TSV=${2:?usage: tftp.sh rack|tftpd-hpa|atftpd OUT.tsv}
CASES=${CASES:-"curl:512:1 curl:1468:1 atftp:512:1 atftp:1468:1 atftp:512:16 atftp:1468:16"}
REPEAT=${REPEAT:-3}
BIG_MIB=${BIG_MIB:-50}
CONC=${CONC:-100}
CONC_MIB=${CONC_MIB:-10}
TIMEOUT=${TIMEOUT:-60}
PIN=${PIN:-split}
RUNDIR=$RB_DIR/runs/tftp-$SERVER-$(date +%Y%m%d-%H%M%S)
ROOT=$RB_DIR/tftproot
SCRATCH=/dev/shm/rackbench-tftp.$$
mkdir -p "$RUNDIR" "$ROOT" "$SCRATCH" "$(dirname "$TSV")"

rb_pin_setup
rb_netns_up
rb_port_free udp 69
rb_cg_init

mkfile() { local f=$ROOT/$1 n=$2
  [ "$(stat -c %s "$f" 2>/dev/null || echo 0)" = $((n * 1048576)) ] ||
    head -c $((n * 1048576)) /dev/urandom >"$f"; chmod 0644 "$f"; }
mkfile big.bin "$BIG_MIB"
[ "$CONC" -gt 0 ] && mkfile conc.bin "$CONC_MIB"
head -c 4096 /dev/urandom >"$ROOT/probe.bin"; chmod 0644 "$ROOT/probe.bin"
chmod 0755 "$ROOT"
BIG_BYTES=$((BIG_MIB * 1048576)); CONC_BYTES=$((CONC_MIB * 1048576))
cat >"$RUNDIR/rackbench-backend.toml" <<EOF
[boot]
unknown_purpose = "none"
EOF

SRV_PID=
cleanup() { rb_kill "$SRV_PID"; rb_cg_done; rm -rf "$SCRATCH"; }
trap cleanup EXIT INT TERM

case $SERVER in
  rack)
    srv_exec "$RB_BIN" tftp --backend "$RUNDIR/rackbench-backend.toml" --root "$ROOT" --listen 0.0.0.0:69 \
      >"$RUNDIR/server.out" 2>&1 & ;;
  tftpd-hpa)   # Debian's defaults (--secure), standalone listener
    srv_exec in.tftpd --foreground --listen --address 0.0.0.0:69 --secure --user nobody "$ROOT" \
      >"$RUNDIR/server.out" 2>&1 & ;;
  atftpd)      # unpacked from the .deb by scripts/deps/rackbench.sh (it conflicts with tftpd-hpa)
    srv_exec "$RB_ATFTPD" --daemon --no-fork --port 69 --user nobody --group nogroup \
      --maxthread 400 --logfile - "$ROOT" >"$RUNDIR/server.out" 2>&1 & ;;
  *) echo "unknown server $SERVER" >&2; exit 2 ;;
esac
SRV_PID=$!
rb_wait_port udp 69 || { cat "$RUNDIR"/server.* >&2; exit 1; }
sleep 0.3

# Does the server negotiate windowsize? (atftp --trace on a small file)
WIN_OK=no
in_cli timeout 10 atftp --trace -g -r probe.bin -l "$SCRATCH/probe" --option "blksize 1468" \
  --option "windowsize 4" "$RB_IP_SRV" 69 >"$RUNDIR/probe.txt" 2>&1 || true
grep -q 'OACK.*windowsize' "$RUNDIR/probe.txt" && WIN_OK=yes

{
  echo "# tftp.sh $SERVER | $(date -u +%FT%TZ) | $(nproc) cpu | PIN=$PIN REPEAT=$REPEAT | windowsize negotiated: $WIN_OK | loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'server\tclient\tblksize\twindowsize\tok\tmib_per_s\tsrv_cpu_ms_per_mib\tall_s\n'
} >"$TSV"

one() {  # client blksize window -> "ok seconds"
  local c=$1 b=$2 w=$3 t0 t1 size=0 out=$SCRATCH/out.bin opts=()
  rm -f "$out"; t0=$(rb_now)
  case $c in
    curl)  size=$(in_cli timeout "$TIMEOUT" curl -s -o /dev/null --tftp-blksize "$b" \
             -w '%{size_download}' "tftp://$RB_IP_SRV/big.bin" 2>>"$RUNDIR/client.err") || true ;;
    atftp) opts=(--option "blksize $b"); [ "$w" != 1 ] && opts+=(--option "windowsize $w")
           in_cli timeout "$TIMEOUT" atftp -g -r big.bin -l "$out" "${opts[@]}" "$RB_IP_SRV" 69 \
             >>"$RUNDIR/client.err" 2>&1 || true
           size=$(stat -c %s "$out" 2>/dev/null || echo 0) ;;
  esac
  t1=$(rb_now); rm -f "$out"
  awk -v ok="$([ "$size" = "$BIG_BYTES" ] && echo 1 || echo 0)" -v a="$t0" -v b="$t1" \
    'BEGIN { printf "%d %.3f\n", ok, b - a }'
}

for case in $CASES; do
  IFS=: read -r c b w <<<"$case"
  : >"$RUNDIR/rep.txt"
  k0=$(rb_srv_cpu_us "$SRV_PID")
  for i in $(seq 1 "$REPEAT"); do
    one "$c" "$b" "$w" >>"$RUNDIR/rep.txt"
    tail -1 "$RUNDIR/rep.txt" | grep -q '^1 ' || break
  done
  k1=$(rb_srv_cpu_us "$SRV_PID")
  read -r ok secs < <(awk '$1 == 1 { t[++n] = $2 } END {
      if (!n) { print "0 0"; exit }
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (t[j] < t[i]) { x = t[i]; t[i] = t[j]; t[j] = x }
      printf "%d %.3f\n", n, (n % 2 ? t[(n + 1) / 2] : (t[n / 2] + t[n / 2 + 1]) / 2) }' "$RUNDIR/rep.txt")
  mibps=$(awk -v m="$BIG_MIB" -v s="$secs" -v ok="$ok" 'BEGIN { if (ok) printf "%.1f", m / s; else print "fail" }')
  wl=$w; [ "$w" != 1 ] && [ "$WIN_OK" = no ] && wl="$w(ignored)"
  cpu=$(awk -v k=$((k1 - k0)) -v n="$ok" -v m="$BIG_MIB" 'BEGIN { printf "%.2f", n ? k / 1000 / (n * m) : 0 }')
  all=$(awk '{ printf "%s%s%s", (NR > 1 ? "," : ""), $2, ($1 == 1 ? "" : "!") }' "$RUNDIR/rep.txt")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$SERVER" "$c" "$b" "$wl" "$ok/$REPEAT" "$mibps" "$cpu" "$all" >>"$TSV"
  printf '  %-9s %-5s blksize %4s window %-11s %s  %7s MiB/s  %6s ms/MiB  (%s s)\n' "$SERVER" "$c" "$b" "$wl" "$ok/$REPEAT" "$mibps" "$cpu" "$all"
done

if [ "$CONC" -gt 0 ]; then
  k0=$(rb_srv_cpu_us "$SRV_PID"); t0=$(rb_now)
  in_cli timeout 300 bash -c '
    for i in $(seq 1 '"$CONC"'); do
      curl -s -o /dev/null --tftp-blksize 1468 -w "%{size_download}\n" tftp://'"$RB_IP_SRV"'/conc.bin &
    done; wait' >"$RUNDIR/conc.txt" 2>>"$RUNDIR/client.err" || true
  t1=$(rb_now); k1=$(rb_srv_cpu_us "$SRV_PID")
  read -r ok mibps < <(awk -v want="$CONC_BYTES" -v m="$CONC_MIB" -v t0="$t0" -v t1="$t1" '
    $1 == want { ok++ } END { printf "%d %.1f\n", ok, ok * m / (t1 - t0) }' "$RUNDIR/conc.txt")
  cpu=$(awk -v k=$((k1 - k0)) -v n="$ok" -v m="$CONC_MIB" 'BEGIN { printf "%.2f", n ? k / 1000 / (n * m) : 0 }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$SERVER" "curl-x$CONC" 1468 1 "$ok/$CONC" "$mibps" "$cpu" - >>"$TSV"
  printf '  %-9s %d concurrent curl, blksize 1468: %s done  %7s MiB/s  %6s ms/MiB\n' "$SERVER" "$CONC" "$ok/$CONC" "$mibps" "$cpu"
fi
