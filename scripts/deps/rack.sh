#!/bin/bash
# Debian packages the rack crates' tests need (maas-dhcp-wire, maas-tftp-wire, maas-boot-policy, maas-rack, maas-rackd).
# Idempotent and non-interactive; run as root. The lead's test script runs every scripts/deps/*.sh.
#
#   busybox          udhcpc (real DHCP client) and dhcprelay (real DHCP relay, giaddr) in the rack integration tests
#   tftp-hpa atftp   real TFTP clients (curl tftp:// is the third); atftp is the one that speaks RFC 7440 windowsize
#   curl iproute2    HTTP/TFTP client; network namespaces and veth pairs
#   qemu-system-x86 ipxe-qemu seabios   a PXE-booting guest (iPXE option ROM) for the boot test
#   ipxe pxelinux syslinux-common grub-efi-amd64-signed shim-signed shim-helpers-amd64-signed
#                    boot loaders the rack serves (maas-rack copies them into <data dir>/boot-loaders at start;
#                    shim-helpers gives mmx64.efi, the MOK manager shim chains to)
#   isc-dhcp-relay   a real DHCP relay (dhcrelay) for the giaddr test; only DOWNLOADED and unpacked into
#                    /var/cache/maas-rack-deps/root, never installed, so no relay service is ever started
#
# Machines of this workplace ship qemu-utils from bookworm-backports; plain bookworm qemu-system-x86 would
# remove it, so in that case qemu comes from bookworm-backports through a private sources list (the system's
# sources stay untouched), the same way shared/lab/pxe/install.sh does it.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PKGS=(
  busybox tftp-hpa atftp curl iproute2
  qemu-system-x86 ipxe-qemu seabios
  ipxe pxelinux syslinux-common grub-efi-amd64-signed shim-signed shim-helpers-amd64-signed
)

relay_ok() { [ -x /var/cache/maas-rack-deps/root/usr/sbin/dhcrelay ]; }
fetch_relay() {
  relay_ok && return 0
  mkdir -p /var/cache/maas-rack-deps
  ( cd /var/cache/maas-rack-deps && rm -f isc-dhcp-relay_*.deb && apt-get download -q isc-dhcp-relay 2>/dev/null \
      && dpkg-deb -x isc-dhcp-relay_*.deb root )
  relay_ok
}

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ] && relay_ok; then
  echo "rack deps: all installed"
  exit 0
fi
echo "rack deps: installing ${missing[*]}"

apt-cache policy isc-dhcp-relay | grep -q 'Candidate: [0-9]' || apt-get update -qq

if dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -q bpo \
   && ! dpkg-query -W -f='${Status}' qemu-system-x86 2>/dev/null | grep -q 'install ok installed'; then
  B=/tmp/rack-apt-bpo; mkdir -p $B/lists/partial $B/archives/partial
  cat > $B/sources.list <<EOS
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
deb http://deb.debian.org/debian bookworm-backports main
EOS
  O=(-o Dir::Etc::sourcelist=$B/sources.list -o Dir::Etc::sourceparts=- -o Dir::State::lists=$B/lists -o Dir::Cache::archives=$B/archives)
  apt-get "${O[@]}" update -qq
  apt-get "${O[@]}" install -y -qq --no-install-recommends -t bookworm-backports \
      qemu-system-x86 qemu-system-common qemu-system-data qemu-utils
fi

# Another engineer's install may hold the dpkg lock: retry for a while.
for i in $(seq 1 30); do
  if apt-get install -y -qq --no-install-recommends "${PKGS[@]}" && fetch_relay; then
    echo "rack deps: done"
    exit 0
  fi
  echo "rack deps: apt busy or failed, retry $i" >&2
  sleep 10
done
echo "rack deps: apt-get install failed" >&2
exit 1
