# shellcheck shell=bash
# Sourced by bench/*.sh. A private test network, server CPU accounting and process helpers.
#
#   netns rackbench-srv : rb-s 10.77.0.1/24 (servers)
#   netns rackbench-cli : rb-c 10.77.0.2/24 (load generators and clients)
#
# Nothing else is attached to these namespaces (no default route, no bridge to the host), so
# nothing a server sends inside them can leave the machine. The method follows
# shared/lab/perf (netns.sh): servers start inside a cgroup-v1 cpuacct group, so their CPU
# time covers threads and forked children.

RB_NS_SRV=rackbench-srv
RB_NS_CLI=rackbench-cli
RB_IF_SRV=rb-s
RB_IF_CLI=rb-c
RB_IP_SRV=10.77.0.1
RB_IP_CLI=10.77.0.2
RB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Work files (lease logs, test files, raw outputs) live on the real disk, not tmpfs, so that
# lease-file syncs cost what they cost in production.
RB_DIR=${RB_DIR:-$RB_REPO/target/rackbench}
RB_BIN=${RB_BIN:-$RB_REPO/target/release/maas-rack-bench}
RB_ATFTPD=${RB_ATFTPD:-/var/cache/maas-rack-deps/atftpd-root/usr/sbin/atftpd}

rb_netns_up() {
  local ns
  for ns in "$RB_NS_SRV" "$RB_NS_CLI"; do
    ip netns list | grep -qw "^$ns" || ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  done
  if ! ip -n "$RB_NS_SRV" link show "$RB_IF_SRV" >/dev/null 2>&1; then
    ip link add "$RB_IF_SRV" type veth peer name "$RB_IF_CLI"
    ip link set "$RB_IF_SRV" netns "$RB_NS_SRV"
    ip link set "$RB_IF_CLI" netns "$RB_NS_CLI"
    ip -n "$RB_NS_SRV" addr add "$RB_IP_SRV/24" dev "$RB_IF_SRV"
    ip -n "$RB_NS_CLI" addr add "$RB_IP_CLI/24" dev "$RB_IF_CLI"
  fi
  ip -n "$RB_NS_SRV" link set "$RB_IF_SRV" up
  ip -n "$RB_NS_CLI" link set "$RB_IF_CLI" up
  for ns in "$RB_NS_SRV" "$RB_NS_CLI"; do
    if ip -n "$ns" route show default | grep -q .; then
      echo "netns $ns has a default route; refusing" >&2; return 1
    fi
  done
}

rb_netns_down() {
  ip netns del "$RB_NS_SRV" 2>/dev/null || true   # removes the veth pair too
  ip netns del "$RB_NS_CLI" 2>/dev/null || true
}

in_srv() { ip netns exec "$RB_NS_SRV" "$@"; }
in_cli() { ip netns exec "$RB_NS_CLI" ${CLI_PIN[@]+"${CLI_PIN[@]}"} "$@"; }

# Kills a process this script started (by PID) and waits for it, escalating after 5 s.
rb_kill() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# Waits until something listens on $1 (udp|tcp) port $2 inside the server namespace.
rb_wait_port() {
  local proto=$1 port=$2 i flag
  [ "$proto" = udp ] && flag=-uln || flag=-tln
  for i in $(seq 1 100); do
    in_srv ss $flag "sport = :$port" | grep -q ":$port" && return 0
    sleep 0.1
  done
  echo "nothing listening on $proto/$port in $RB_NS_SRV" >&2; return 1
}

# Fails if something already listens on $1 (udp|tcp) port $2 in the server namespace: a
# leftover server would answer beside the one being measured.
rb_port_free() {
  local proto=$1 port=$2 flag
  [ "$proto" = udp ] && flag=-ulnp || flag=-tlnp
  if in_srv ss $flag "sport = :$port" | grep -q ":$port"; then
    echo "something already listens on $proto/$port in $RB_NS_SRV:" >&2
    in_srv ss $flag "sport = :$port" >&2
    return 1
  fi
}

RB_CG=${RB_CG:-/sys/fs/cgroup/cpuacct/maas-rackbench}
rb_cg_init() {
  RB_CG_OK=0
  if [ -d "${RB_CG%/*}" ] && mkdir -p "$RB_CG" 2>/dev/null && [ -w "$RB_CG/cgroup.procs" ]; then
    RB_CG_OK=1
  else
    echo "warning: no cgroup-v1 cpuacct; server CPU comes from /proc of the server process" >&2
  fi
}
rb_cg_done() { [ "${RB_CG_OK:-0}" = 1 ] && rmdir "$RB_CG" 2>/dev/null || true; }

# Runs "$@" in the server namespace inside the cgroup (joined before entering the netns,
# because `ip netns exec` remounts /sys). Use as `srv_exec cmd args &`; $! is then the
# server's own PID, since every step execs.
srv_exec() {
  exec sh -c 'if [ -w "$0/cgroup.procs" ]; then echo $$ >"$0/cgroup.procs"; fi
              ns=$1; shift; exec ip netns exec "$ns" "$@"' "$RB_CG" "$RB_NS_SRV" ${SRV_PIN[@]+"${SRV_PIN[@]}"} "$@"
}

# Server CPU in microseconds: the cgroup's total, or the process tree's from /proc.
rb_srv_cpu_us() {
  if [ "${RB_CG_OK:-0}" = 1 ]; then
    echo $(( $(cat "$RB_CG/cpuacct.usage") / 1000 ))
  else
    local pid=$1 kid sum
    sum=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    for kid in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
      sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$kid/stat" 2>/dev/null || echo 0)))
    done
    echo $(( sum * 1000000 / $(getconf CLK_TCK) ))
  fi
}

# PIN=none|split|same: split puts the server on the last CPU and clients on CPU 0.
rb_pin_setup() {
  local last=$(( $(nproc) - 1 ))
  SRV_PIN=(); CLI_PIN=()
  case ${PIN:-none} in
    none) ;;
    split) SRV_PIN=(taskset -c "$last"); CLI_PIN=(taskset -c 0) ;;
    same)  SRV_PIN=(taskset -c "$last"); CLI_PIN=(taskset -c "$last") ;;
    *) echo "PIN must be none, split or same" >&2; return 1 ;;
  esac
}

# CPU busy ticks of the whole machine (all CPUs), for "everything else" accounting.
rb_busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }

rb_now() { date +%s.%N; }
