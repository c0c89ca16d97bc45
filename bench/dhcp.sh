#!/usr/bin/env bash
# DHCPv4 DORA benchmark: perfdhcp (relay mode, giaddr 10.77.0.2) against one server in netns
# rackbench-srv, rate ramped step by step, a fresh server with an empty lease database per step.
#
# usage: bench/dhcp.sh rack|kea|dhcpd OUT.tsv
#   rack   our DhcpServer (maas-rack-bench dhcp), lease log synced (fdatasync) before replies
#   kea    Kea memfile, persist true, lfc-interval 0, INFO log to a file (shared/lab/perf config)
#   dhcpd  ISC dhcpd, leases file, ping-check false, -d log to a file
# Knobs: RACK_FLAGS (extra flags for maas-rack-bench dhcp, e.g. --no-fsync), RATES, PERIOD (s per step, 10), CLIENTS (60000), STOP_DROP_PCT (5), PIN (none), KEEP=1
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

SERVER=${1:?usage: dhcp.sh rack|kea|dhcpd OUT.tsv}
TSV=${2:?usage: dhcp.sh rack|kea|dhcpd OUT.tsv}
RATES=${RATES:-"500 1000 2000 4000 6000 8000 10000 12000 15000 20000"}
PERIOD=${PERIOD:-10}
CLIENTS=${CLIENTS:-60000}
STOP_DROP_PCT=${STOP_DROP_PCT:-5}
PIN=${PIN:-none}
SUBNET=10.77.0.0 NETMASK=255.255.0.0 POOL_START=10.77.1.0 POOL_END=10.77.255.254
RUNROOT=$RB_DIR/runs/dhcp-$SERVER-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUNROOT" "$(dirname "$TSV")"

command -v perfdhcp >/dev/null || { echo "perfdhcp missing: run scripts/deps/rackbench.sh" >&2; exit 1; }
rb_pin_setup
rb_netns_up
rb_port_free udp 67
rb_cg_init
SRV_PID=
cleanup() { rb_kill "$SRV_PID"; rb_cg_done; }
trap cleanup EXIT INT TERM

write_configs() {   # $1 = run dir
  local d=$1
  case $SERVER in
  rack)
    cat >"$d/rackbench-backend.toml" <<EOF
[dhcp]
[[dhcp.interface]]
name = "$RB_IF_SRV"
address = "$RB_IP_SRV"

[[subnet]]
cidr = "$SUBNET/16"
router = "$RB_IP_SRV"
lease_time = 3600
ranges = ["$POOL_START-$POOL_END"]
EOF
    ;;
  kea)
    cat >"$d/kea.json" <<EOF
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "$RB_IF_SRV" ], "dhcp-socket-type": "udp" },
  "lease-database": { "type": "memfile", "persist": true, "name": "$d/kea-leases4.csv", "lfc-interval": 0 },
  "valid-lifetime": 3600, "renew-timer": 900, "rebind-timer": 1800,
  "subnet4": [ { "id": 1, "subnet": "$SUBNET/16",
                 "pools": [ { "pool": "$POOL_START - $POOL_END" } ],
                 "option-data": [ { "name": "routers", "data": "$RB_IP_SRV" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "INFO",
                 "output_options": [ { "output": "$d/server.log" } ] } ]
} }
EOF
    ;;
  dhcpd)
    cat >"$d/dhcpd.conf" <<EOF
authoritative;
ddns-update-style none;
ping-check false;
default-lease-time 3600;
max-lease-time 7200;
subnet $SUBNET netmask $NETMASK {
  range $POOL_START $POOL_END;
  option routers $RB_IP_SRV;
}
EOF
    : >"$d/dhcpd.leases"
    ;;
  *) echo "unknown server $SERVER" >&2; exit 2 ;;
  esac
}

start_server() {    # $1 = run dir; sets SRV_PID
  local d=$1
  case $SERVER in
  rack)
    srv_exec "$RB_BIN" dhcp --backend "$d/rackbench-backend.toml" --state-dir "$d/state" ${RACK_FLAGS:-} \
      >"$d/server.out" 2>&1 & ;;
  kea)
    srv_exec env KEA_PIDFILE_DIR="$d" KEA_LOCKFILE_DIR="$d" kea-dhcp4 -c "$d/kea.json" \
      >"$d/server.out" 2>&1 & ;;
  dhcpd)
    srv_exec dhcpd -4 -f -d -cf "$d/dhcpd.conf" -lf "$d/dhcpd.leases" -pf "$d/dhcpd.pid" "$RB_IF_SRV" \
      >"$d/server.log" 2>&1 & ;;
  esac
  SRV_PID=$!
  rb_wait_port udp 67 || { tail -20 "$d"/server.* >&2; exit 1; }
  sleep 0.5
}

parse() {   # perfdhcp report -> shell assignments
  awk '
    /Statistics for: DISCOVER-OFFER/ { s="do" }
    /Statistics for: REQUEST-ACK/    { s="ra" }
    /^sent packets:/     { v[s"_sent"]=$3 }
    /^received packets:/ { v[s"_recv"]=$3 }
    /^avg delay:/        { v[s"_avg"]=$3 }
    END {
      printf "do_sent=%s ra_recv=%s do_avg=%s ra_avg=%s\n",
        v["do_sent"]+0, v["ra_recv"]+0, v["do_avg"]+0, v["ra_avg"]+0
    }' "$1"
}

{
  echo "# dhcp.sh $SERVER | $(date -u +%FT%TZ) | $(nproc) cpu | PIN=$PIN PERIOD=$PERIOD CLIENTS=$CLIENTS"
  printf 'server\treq_rate\tleases_per_s\tunfinished_pct\tdora_avg_ms\tsrv_cpu_s\tsrv_us_per_lease\tgen_cpu_pct\tother_cpu_pct\n'
} >"$TSV"

for rate in $RATES; do
  d=$RUNROOT/r$rate; mkdir -p "$d"
  write_configs "$d"
  start_server "$d"
  c0=$(rb_srv_cpu_us "$SRV_PID"); b0=$(rb_busy_ticks); t0=$(rb_now)
  rc=0
  /usr/bin/time -f '%U %S' -o "$d/perfdhcp.time" \
    timeout $((PERIOD + 20)) ip netns exec "$RB_NS_CLI" ${CLI_PIN[@]+"${CLI_PIN[@]}"} \
    perfdhcp -4 -g single -l "$RB_IP_CLI" -r "$rate" -R "$CLIENTS" -p "$PERIOD" -d 1 -W 1000000 -s 1 \
      "$RB_IP_SRV" >"$d/perfdhcp.out" 2>&1 || rc=$?
  c1=$(rb_srv_cpu_us "$SRV_PID"); b1=$(rb_busy_ticks); t1=$(rb_now)
  kill -0 "$SRV_PID" 2>/dev/null || { echo "$SERVER died at rate $rate" >&2; tail -20 "$d"/server.* >&2; }
  rb_kill "$SRV_PID"; SRV_PID=
  [ $rc -le 3 ] || { echo "perfdhcp rc=$rc at rate $rate" >&2; tail -5 "$d/perfdhcp.out" >&2; }
  eval "$(parse "$d/perfdhcp.out")"
  read -r gu gs < <(tail -1 "$d/perfdhcp.time" 2>/dev/null) || true
  [[ "${gu:-}" =~ ^[0-9.]+$ && "${gs:-}" =~ ^[0-9.]+$ ]] || { gu=0; gs=0; }
  line=$(awk -v s="$SERVER" -v rate="$rate" -v ds="$do_sent" -v ack="$ra_recv" -v p="$PERIOD" \
    -v doa="$do_avg" -v raa="$ra_avg" -v c="$((c1 - c0))" -v b="$((b1 - b0))" -v gu="$gu" -v gs="$gs" \
    -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" 'BEGIN {
      wall = t1 - t0; unf = ds > 0 ? (ds - ack) * 100 / ds : 100; scpu = c / 1e6
      other = (b / hz - scpu - gu - gs) * 100 / wall; if (other < 0) other = 0
      printf "%s\t%d\t%.0f\t%.2f\t%.3f\t%.2f\t%.1f\t%.0f\t%.0f\n", s, rate, ack / p, unf, doa + raa,
        scpu, (ack > 0 ? scpu * 1e6 / ack : 0), (gu + gs) * 100 / wall, other }')
  echo "$line" >>"$TSV"
  echo "$line" | awk -F'\t' '{ printf "  %-6s %6s/s -> %6s leases/s  unfinished %6s%%  DORA %7s ms  %7s us/lease  (perfdhcp %s%%, other %s%%)\n", $1, $2, $3, $4, $5, $7, $8, $9 }'
  [ "${KEEP:-0}" = 1 ] || rm -rf "$d/state" "$d"/*.leases* "$d"/*.csv* "$d"/server.log
  unf=$(echo "$line" | cut -f4)
  if awk -v u="$unf" -v m="$STOP_DROP_PCT" 'BEGIN{exit !(u > m)}'; then break; fi
done
