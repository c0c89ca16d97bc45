#!/usr/bin/env bash
# HTTP boot-file benchmark: wrk with WRK_CONN (100) keep-alive connections on a boot-file-sized
# file and on a 1 KiB file (iPXE-script sized), and CONC (100) concurrent curl downloads of a
# CONC_MIB file. Server in netns rackbench-srv on TCP 5248, clients over that namespace's
# loopback (as shared/lab/perf's default).
#
# usage: bench/http.sh rack|nginx OUT.tsv
# Knobs: BOOT_MIB (16), CONC (100), CONC_MIB (30), WRK_CONN (100), WRK_THREADS (2),
#        WRK_SECS (10), REPEAT (3, wrk runs per file; the median is reported), PIN (none)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

SERVER=${1:?usage: http.sh rack|nginx OUT.tsv}
TSV=${2:?usage: http.sh rack|nginx OUT.tsv}
BOOT_MIB=${BOOT_MIB:-16}
CONC=${CONC:-100}
CONC_MIB=${CONC_MIB:-30}
WRK_CONN=${WRK_CONN:-100}
WRK_THREADS=${WRK_THREADS:-2}
WRK_SECS=${WRK_SECS:-10}
REPEAT=${REPEAT:-3}
PIN=${PIN:-none}
PORT=5248
URL=http://127.0.0.1:$PORT
RUNDIR=$RB_DIR/runs/http-$SERVER-$(date +%Y%m%d-%H%M%S)
ROOT=$RB_DIR/httproot
mkdir -p "$RUNDIR" "$ROOT" "$(dirname "$TSV")"

rb_pin_setup
rb_netns_up
rb_port_free tcp "$PORT"
rb_cg_init
in_lo() { ip netns exec "$RB_NS_SRV" ${CLI_PIN[@]+"${CLI_PIN[@]}"} "$@"; }

mkfile() { local f=$ROOT/$1 n=$2
  [ "$(stat -c %s "$f" 2>/dev/null || echo 0)" = "$n" ] || head -c "$n" /dev/urandom >"$f"; chmod 0644 "$f"; }
mkfile boot.bin $((BOOT_MIB * 1048576))
mkfile conc.bin $((CONC_MIB * 1048576))
mkfile small-1k.bin 1024
chmod 0755 "$ROOT"
cat >"$RUNDIR/rackbench-backend.toml" <<EOF
[boot]
unknown_purpose = "none"
EOF

SRV_PID=
cleanup() { rb_kill "$SRV_PID"; rb_cg_done; }
trap cleanup EXIT INT TERM

case $SERVER in
  rack)
    srv_exec "$RB_BIN" http --backend "$RUNDIR/rackbench-backend.toml" --root "$ROOT" \
      --listen "0.0.0.0:$PORT" >"$RUNDIR/server.out" 2>&1 & ;;
  nginx)   # shared/lab/perf's config: sendfile, keep-alive, no access log, a worker per CPU
    cat >"$RUNDIR/rackbench-nginx.conf" <<EOF
user nobody nogroup;
worker_processes auto;
pid $RUNDIR/nginx.pid;
error_log $RUNDIR/error.log warn;
events { worker_connections 4096; }
http {
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 65; keepalive_requests 100000;
  access_log off;
  default_type application/octet-stream;
  server { listen $PORT reuseport; root $ROOT; }
}
EOF
    srv_exec nginx -e "$RUNDIR/error.log" -c "$RUNDIR/rackbench-nginx.conf" -g 'daemon off;' \
      >"$RUNDIR/server.out" 2>&1 & ;;
  *) echo "unknown server $SERVER" >&2; exit 2 ;;
esac
SRV_PID=$!
rb_wait_port tcp "$PORT" || { cat "$RUNDIR"/server.* >&2; exit 1; }
sleep 0.3

{
  echo "# http.sh $SERVER | $(date -u +%FT%TZ) | $(nproc) cpu | PIN=$PIN REPEAT=$REPEAT WRK_SECS=$WRK_SECS | loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'server\ttest\tclients\tok\tmib_per_s\treq_per_s\tsrv_cpu_ms_per_mib\tsrv_us_per_req\tall\n'
} >"$TSV"

# wrk on one file, REPEAT times; reports the median run by req/s
wrk_file() {  # file bytes test
  local f=$1 bytes=$2 test=$3 i out k0 k1 rps nreq errs=ok
  : >"$RUNDIR/wrk-$test.runs"
  for i in $(seq 1 "$REPEAT"); do
    out=$RUNDIR/wrk-$test-$i.txt
    k0=$(rb_srv_cpu_us "$SRV_PID")
    in_lo timeout $((WRK_SECS + 30)) wrk -t"$WRK_THREADS" -c"$WRK_CONN" -d"${WRK_SECS}s" --timeout 30s "$URL/$f" >"$out" 2>&1 || true
    k1=$(rb_srv_cpu_us "$SRV_PID")
    rps=$(awk '/^Requests\/sec:/ { printf "%.1f", $2 }' "$out")
    nreq=$(awk '/requests in/ { print $1 }' "$out")
    grep -qE 'Non-2xx|Socket errors' "$out" && errs=errors
    echo "${rps:-0} ${nreq:-0} $((k1 - k0))" >>"$RUNDIR/wrk-$test.runs"
  done
  sort -n "$RUNDIR/wrk-$test.runs" | awk -v s="$SERVER" -v t="$test" -v c="$WRK_CONN" -v b="$bytes" -v e="$errs" '
    { r[NR] = $1; n[NR] = $2; k[NR] = $3; all = all (NR > 1 ? "," : "") sprintf("%.0f", $1 * b / 1048576) }
    END { m = int((NR + 1) / 2); mib = n[m] * b / 1048576
      printf "%s\t%s\t%d\t%s\t%.0f\t%.0f\t%.3f\t%.1f\t%s\n", s, t, c, e, r[m] * b / 1048576, r[m],
        (mib > 0 ? k[m] / 1000 / mib : 0), (n[m] > 0 ? k[m] / n[m] : 0), all }'
}

show() { awk -F'\t' '{ printf "  %-6s %-12s %4s clients %-6s %8s MiB/s %9s req/s  %7s ms/MiB %7s us/req  (MiB/s runs: %s)\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }'; }

line=$(wrk_file boot.bin $((BOOT_MIB * 1048576)) "wrk-${BOOT_MIB}MiB"); echo "$line" >>"$TSV"; echo "$line" | show
line=$(wrk_file small-1k.bin 1024 wrk-1KiB); echo "$line" >>"$TSV"; echo "$line" | show

if [ "$CONC" -gt 0 ]; then
  k0=$(rb_srv_cpu_us "$SRV_PID"); t0=$(rb_now)
  in_lo timeout 300 bash -c '
    for i in $(seq 1 '"$CONC"'); do curl -s -o /dev/null -w "%{size_download}\n" '"$URL"'/conc.bin & done
    wait' >"$RUNDIR/conc.txt" 2>>"$RUNDIR/client.err" || true
  t1=$(rb_now); k1=$(rb_srv_cpu_us "$SRV_PID")
  line=$(awk -v s="$SERVER" -v want=$((CONC_MIB * 1048576)) -v m="$CONC_MIB" -v c="$CONC" -v t0="$t0" -v t1="$t1" -v k=$((k1 - k0)) '
    $1 == want { ok++ } END { w = t1 - t0
      printf "%s\tcurl-%dMiB\t%d\t%d/%d\t%.0f\t-\t%.3f\t-\t-\n", s, m, c, ok, c, ok * m / w, (ok ? k / 1000 / (ok * m) : 0) }' "$RUNDIR/conc.txt")
  echo "$line" >>"$TSV"; echo "$line" | show
fi
