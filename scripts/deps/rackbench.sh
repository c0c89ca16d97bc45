#!/bin/bash
# Debian packages the rack benchmark (bench/rack.sh) needs: the load generators and the reference servers
# our DHCP, TFTP and HTTP servers are compared with. Idempotent and non-interactive; run as root.
#
#   kea-admin          perfdhcp, the DHCPv4 load generator
#   kea-dhcp4-server   Kea, a reference DHCP server
#   isc-dhcp-server    ISC dhcpd, a reference DHCP server
#   tftpd-hpa          a reference TFTP server (lock-step)
#   atftpd             a reference TFTP server with RFC 7440 windowsize; it conflicts with tftpd-hpa, so it is
#                      only DOWNLOADED and unpacked into /var/cache/maas-rack-deps/atftpd-root, never installed
#   nginx-light        the reference HTTP server
#   wrk                HTTP load generator
#   atftp tftp-hpa curl busybox iproute2   TFTP/HTTP clients and namespaces (also in rack.sh)
#
# SAFETY: none of these servers may answer on the machine's network or stay running as a service. The packages
# are installed with a policy-rc.d that forbids starting services, their init scripts are then disabled, and
# the script fails if any of them is running afterwards. bench/rack.sh starts them by hand, in the foreground,
# inside network namespaces, with configs it writes.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PKGS=(kea-admin kea-dhcp4-server isc-dhcp-server tftpd-hpa nginx-light wrk atftp tftp-hpa curl busybox iproute2)
SERVICES=(kea-dhcp4-server kea-dhcp6-server kea-dhcp-ddns-server kea-ctrl-agent isc-dhcp-server tftpd-hpa nginx)
PROGRAMS=(kea-dhcp4 kea-dhcp6 kea-dhcp-ddns kea-ctrl-agent dhcpd in.tftpd nginx)
ATFTPD_ROOT=/var/cache/maas-rack-deps/atftpd-root

atftpd_ok() { [ -x "$ATFTPD_ROOT/usr/sbin/atftpd" ]; }
fetch_atftpd() {
  atftpd_ok && return 0
  mkdir -p /var/cache/maas-rack-deps
  ( cd /var/cache/maas-rack-deps && rm -f atftpd_*.deb && apt-get download -q atftpd 2>/dev/null \
      && dpkg-deb -x atftpd_*.deb atftpd-root )
  atftpd_ok
}

# Stops (through its own init script, never by process name) and disables every reference service.
quiesce() {
  local s
  for s in "${SERVICES[@]}"; do
    if [ -x "/etc/init.d/$s" ]; then
      "/etc/init.d/$s" stop >/dev/null 2>&1 || true
      update-rc.d "$s" disable >/dev/null 2>&1 || true
    fi
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      systemctl disable --now "$s" >/dev/null 2>&1 || true
    fi
  done
}

# Fails if a reference server is running outside the benchmark (the benchmark's own runs carry
# "maas-rackbench" in their command line, through their config paths).
check_none_running() {
  local p bad=0
  for p in "${PROGRAMS[@]}"; do
    if ps -eo pid=,comm=,args= | awk -v p="$p" '$2 == substr(p, 1, 15) && $0 !~ /maas-rackbench/' | grep -q .; then
      echo "rackbench deps: $p is running outside the benchmark; stop it" >&2
      ps -eo pid=,comm=,args= | awk -v p="$p" '$2 == substr(p, 1, 15)' >&2
      bad=1
    fi
  done
  return $bad
}

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ] && atftpd_ok; then
  quiesce
  check_none_running
  echo "rackbench deps: all installed"
  exit 0
fi
echo "rackbench deps: installing ${missing[*]}"

# Forbid service starts during the install; put back whatever policy was there before.
POLICY=/usr/sbin/policy-rc.d
saved=
if [ -e "$POLICY" ]; then saved=$(mktemp); cp -p "$POLICY" "$saved"; fi
restore_policy() { if [ -n "$saved" ]; then cp -p "$saved" "$POLICY"; rm -f "$saved"; else rm -f "$POLICY"; fi; }
trap restore_policy EXIT
printf '#!/bin/sh\n# installed by scripts/deps/rackbench.sh for the duration of an install\nexit 101\n' >"$POLICY"
chmod 0755 "$POLICY"

apt-cache policy kea-admin | grep -q 'Candidate: [0-9]' || apt-get update -qq

ok=0
# Another engineer's install may hold the dpkg lock: retry for a while.
for i in $(seq 1 30); do
  if apt-get install -y -qq --no-install-recommends "${PKGS[@]}" && fetch_atftpd; then
    ok=1; break
  fi
  echo "rackbench deps: apt busy or failed, retry $i" >&2
  sleep 10
done
quiesce
[ "$ok" = 1 ] || { echo "rackbench deps: apt-get install failed" >&2; exit 1; }
check_none_running
echo "rackbench deps: done"
