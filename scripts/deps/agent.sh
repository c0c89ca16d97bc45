#!/bin/bash
# Debian packages the machine agent's tests and scripts/build-ephemeral.sh need. Idempotent and
# non-interactive; run as root. The lead's test script runs every scripts/deps/*.sh.
#
#   kmod                                          depmod, to index the kernel package's modules
#   gdisk e2fsprogs dosfstools util-linux mount   partitioning, mkfs, losetup/blockdev/wipefs for deploy and erase
#   grub-pc-bin grub2-common                      grub-install and the i386-pc modules the environment carries
#   xz-utils bzip2 gzip cpio                      packing the initrd and making test images
#   qemu-system-x86 seabios                        the boot test of the in-memory environment
#   busybox-static                                only DOWNLOADED and unpacked into /var/cache/maas-agent-deps/busybox:
#                                                 it conflicts with the dynamic `busybox` the rack tests install
#
# Machines of this workplace ship qemu-utils from bookworm-backports; plain bookworm qemu-system-x86
# would remove it, so then qemu comes from bookworm-backports through a private sources list (the
# system's sources stay untouched), as scripts/deps/rack.sh does.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PKGS=(kmod gdisk e2fsprogs dosfstools util-linux mount grub-pc-bin grub2-common xz-utils bzip2 gzip cpio qemu-system-x86 seabios)
CACHE=/var/cache/maas-agent-deps

busybox_ok() { [ -x $CACHE/busybox/bin/busybox ]; }
fetch_busybox() {
  busybox_ok && return 0
  mkdir -p $CACHE
  ( cd $CACHE && rm -rf busybox busybox-static_*.deb && apt-get download -q busybox-static 2>/dev/null \
      && dpkg-deb -x busybox-static_*.deb busybox && rm -f busybox-static_*.deb )
  busybox_ok
}

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ] && busybox_ok; then
  echo "agent deps: all installed"
  exit 0
fi
echo "agent deps: installing ${missing[*]:-} (busybox-static: $(busybox_ok && echo present || echo fetch))"

apt-cache policy busybox-static | grep -q 'Candidate: [0-9]' || apt-get update -qq

if dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -q bpo \
   && ! dpkg-query -W -f='${Status}' qemu-system-x86 2>/dev/null | grep -q 'install ok installed'; then
  B=/tmp/agent-apt-bpo; mkdir -p $B/lists/partial $B/archives/partial
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
  if apt-get install -y -qq --no-install-recommends "${PKGS[@]}" && fetch_busybox; then
    echo "agent deps: done"
    exit 0
  fi
  echo "agent deps: apt busy or failed, retry $i" >&2
  sleep 10
done
echo "agent deps: install failed" >&2
exit 1
