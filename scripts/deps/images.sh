#!/bin/bash
# Debian packages the boot image tests need (maas-images, the rack image cache) and that
# scripts/build-test-images.sh uses to make the test mirror. Idempotent and non-interactive;
# run as root. The test script runs every scripts/deps/*.sh.
#
#   gnupg            gpg: makes the throw-away signing key, clearsigns and detach-signs
#   cpio gzip xz-utils zstd   the initramfs (and decompressing kernel modules)
#   squashfs-tools   mksquashfs: the test image's squashfs root
#   fdisk e2fsprogs  sfdisk and mke2fs: the tiny dd disk image, built without loop mounts
# The kernel (linux-image-amd64's dependency) and busybox-static are only downloaded by the
# build script with apt-get download, never installed, so they need fresh apt lists.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PKGS=(gnupg cpio gzip xz-utils zstd squashfs-tools fdisk e2fsprogs)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
lists_ok() { apt-cache depends linux-image-amd64 2>/dev/null | grep -q 'Depends: linux-image-[0-9]'; }
if [ ${#missing[@]} -eq 0 ] && lists_ok; then
  echo "images deps: all installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "images deps: missing ${missing[*]:-apt lists}; run as root" >&2
  exit 1
fi
lists_ok && apt-cache policy "${missing[0]:-gnupg}" | grep -q 'Candidate: [0-9]' || apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo "images deps: installing ${missing[*]}"
  # Retry while another apt/dpkg run holds the lock.
  for i in $(seq 1 12); do
    if apt-get install -y -qq --no-install-recommends "${missing[@]}"; then break; fi
    [ "$i" = 12 ] && { echo "images.sh: apt-get install ${missing[*]} failed" >&2; exit 1; }
    echo "images.sh: apt busy or failed, retry $i" >&2; sleep 10
  done
fi
command -v gpg cpio gzip mksquashfs >/dev/null
[ -x /usr/sbin/sfdisk ] || [ -x /sbin/sfdisk ]
lists_ok
echo "images deps: ready"
