#!/usr/bin/env bash
# Builds the test boot image set from Debian's packages only and publishes it as a local
# simplestreams mirror signed with a throw-away GPG key, for the importer and rack tests.
#
#   scripts/build-test-images.sh [OUT]      (default: target/test-images, git-ignored)
#
# What it makes under OUT:
#   keyring.gpg, other-keyring.gpg  the signing key's public half, and an unrelated key's
#   gnupg/                          the throw-away GNUPGHOME that signs (no passphrase)
#   mirror/                         version 20240301 of the products below
#   mirror-next/                    mirror/ plus version 20240315 (a new initrd, the same kernel)
#   uploads/tiny.dd.gz              the ddgz root image alone, for upload tests
#   files.env                       sizes and sha256s of what was published, for the tests
#
# Each mirror has streams/v1/index.{json,sjson,json.gpg} and per product list
# <content-id>.{json,sjson,json.gpg}, like images.maas.io's ephemeral-v3 streams:
#   com.ubuntu.maas:stable:v3:download    com.ubuntu.maas.stable:v3:boot:22.04:amd64:ga-22.04
#       (os ubuntu, release jammy, so the region's default commissioning selection finds it;
#        the files are Debian's: vmlinuz from linux-image-amd64, a busybox initramfs and a
#        squashfs root made from the same busybox tree)
#   com.ubuntu.maas:stable:test-dd-download  com.ubuntu.maas.stable:test-dd:tiny:amd64
#       (os custom, release tiny, one root-dd.gz: a 4 MiB MBR disk with an ext4 partition)
#
# Cached: the .debs stay in OUT/cache, and a stamp of this script makes a second run a
# no-op that asks apt nothing. Needs (scripts/deps/images.sh): apt-get, dpkg-deb,
# gpg, cpio, gzip, mksquashfs, sfdisk, mke2fs, sha256sum.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$REPO/target/test-images}
mkdir -p "$OUT/cache"
OUT=$(cd "$OUT" && pwd)
CACHE=$OUT/cache
V1=20240301
V2=20240315

need() {
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ] && [ ! -x "/sbin/$tool" ]; then
      echo "build-test-images: $tool is missing; run scripts/deps/images.sh as root" >&2
      exit 2
    fi
  done
}
need apt-get apt-cache dpkg-deb gpg cpio gzip mksquashfs sfdisk mke2fs sha256sum
export PATH=$PATH:/usr/sbin:/sbin

# Fast path: the same script already built OUT (a newer kernel package in the archive does
# not matter to the tests, so apt is not asked).
SCRIPT_SHA=$(sha256sum "$0" | cut -d' ' -f1)
if [ -f "$OUT/stamp" ] && [ "$(cut -d' ' -f1 "$OUT/stamp")" = "$SCRIPT_SHA" ] && [ -f "$OUT/files.env" ]; then
  echo "build-test-images: up to date in $OUT"
  exit 0
fi

KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$KPKG" ]; then
  echo "build-test-images: apt knows no linux-image-amd64; run 'apt-get update' (scripts/deps/images.sh does)" >&2
  exit 2
fi
STAMP="$SCRIPT_SHA $KPKG"
rm -f "$OUT/stamp"

# 1. Packages, downloaded (never installed) into the cache.
fetch_deb() {
  local package=$1
  if ! ls "$CACHE/${package}"_*.deb >/dev/null 2>&1; then
    (cd "$CACHE" && apt-get download -q "$package" >/dev/null 2>&1) || {
      echo "build-test-images: apt-get download $package failed (network or apt lists)" >&2
      exit 2
    }
  fi
  ls "$CACHE/${package}"_*.deb | head -n1
}
KDEB=$(fetch_deb "$KPKG")
BDEB=$(fetch_deb busybox-static)

WORK=$OUT/work
rm -rf "$WORK"
mkdir -p "$WORK/kernel" "$WORK/busybox"
# Only the kernel and a few NIC/disk modules, so a QEMU guest can bring up networking.
dpkg-deb --fsys-tarfile "$KDEB" | tar -x -C "$WORK/kernel" --wildcards \
  './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/virtio/*' './lib/modules/*/kernel/net/core/failover.ko*' \
  './lib/modules/*/kernel/drivers/net/net_failover.ko*' './lib/modules/*/kernel/drivers/net/virtio_net.ko*' \
  './lib/modules/*/kernel/drivers/block/virtio_blk.ko*' './lib/modules/*/kernel/drivers/net/ethernet/intel/e1000/*'
dpkg-deb -x "$BDEB" "$WORK/busybox"
VMLINUZ=$(ls "$WORK"/kernel/boot/vmlinuz-* | head -n1)

# 2. The in-memory environment: static busybox, an /init, the modules. Reproducible (fixed
# times, sorted names, gzip -n) so the same inputs give the same sha256.
make_tree() {
  local root=$1 marker=$2
  mkdir -p "$root"/{bin,sbin,etc,dev,proc,sys,tmp,lib/modules}
  cp "$WORK/busybox/bin/busybox" "$root/bin/busybox"
  ln -s busybox "$root/bin/sh"
  find "$WORK/kernel/lib/modules" -name '*.ko*' | while read -r module; do
    case "$module" in
      *.xz) xz -dc "$module" >"$root/lib/modules/$(basename "${module%.xz}")" ;;
      *.zst) zstd -dcq "$module" >"$root/lib/modules/$(basename "${module%.zst}")" ;;
      *) cp "$module" "$root/lib/modules/" ;;
    esac
  done
  echo "$marker" >"$root/etc/maas-test-image"
  cat >"$root/init" <<'INIT'
#!/bin/sh
/bin/busybox --install -s
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in failover net_failover virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_net virtio_blk e1000; do
  insmod /lib/modules/$m.ko 2>/dev/null
done
echo "maas-test-image: $(cat /etc/maas-test-image) up on $(uname -r)"
for i in /sys/class/net/*; do ip link set "$(basename "$i")" up; done
grep -q 'maas-test.shell' /proc/cmdline && exec sh
poweroff -f
INIT
  chmod 0755 "$root/init"
  find "$root" -exec touch -h -d @0 {} +
}
make_initrd() {
  local root=$1 out=$2
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 --reproducible | gzip -9 -n >"$out")
}
make_tree "$WORK/root1" "version $V1"
make_tree "$WORK/root2" "version $V2"
make_initrd "$WORK/root1" "$WORK/initrd1"
make_initrd "$WORK/root2" "$WORK/initrd2"
mksquashfs "$WORK/root1" "$WORK/squashfs1" -quiet -noappend -all-root -mkfs-time 0 -all-time 0 -no-progress >/dev/null
mksquashfs "$WORK/root2" "$WORK/squashfs2" -quiet -noappend -all-root -mkfs-time 0 -all-time 0 -no-progress >/dev/null

# 3. A tiny dd image: 4 MiB, an MBR with one Linux partition holding an ext4 filesystem.
DISK=$WORK/tiny.dd
truncate -s 4M "$DISK"
printf 'label: dos\nlabel-id: 0x4d414153\nstart=2048, type=83\n' | sfdisk -q "$DISK"
mkdir -p "$WORK/disk-root/etc"
echo tiny >"$WORK/disk-root/etc/hostname"
find "$WORK/disk-root" -exec touch -h -d @0 {} +
E2FSPROGS_FAKE_TIME=1 mke2fs -q -F -t ext4 -L tiny -U 6d616173-0000-4000-8000-000000000001 \
  -E offset=1048576,hash_seed=6d616173-0000-4000-8000-000000000002 -d "$WORK/disk-root" "$DISK" 3M
gzip -9 -n -c "$DISK" >"$WORK/tiny.dd.gz"

# 4. The signing key and an unrelated one, both throw-away, no passphrase.
make_key() {
  local home=$1 uid=$2
  rm -rf "$home"; mkdir -p "$home"; chmod 700 "$home"
  GNUPGHOME=$home gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-generate-key "$uid" rsa3072 sign never 2>/dev/null
}
make_key "$OUT/gnupg" "MAAS test images <images@test.invalid>"
make_key "$WORK/gnupg-other" "Somebody else <other@test.invalid>"
GNUPGHOME=$OUT/gnupg gpg --batch --quiet --export >"$OUT/keyring.gpg"
GNUPGHOME=$WORK/gnupg-other gpg --batch --quiet --export >"$OUT/other-keyring.gpg"

# 5. The mirrors.
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
UPDATED="Fri, 01 Mar 2024 00:00:00 +0000"
SUBARCHES="generic,hwe-p,hwe-q,hwe-r,hwe-s,hwe-t,hwe-u,hwe-v,hwe-w,ga-16.04,ga-18.04,ga-20.04,ga-22.04"

# item NAME FTYPE PATH FILE [extra json]
item() {
  printf '        "%s": {"ftype": "%s", "path": "%s", "sha256": "%s", "size": %s%s}' \
    "$1" "$2" "$3" "$(sha "$4")" "$(size "$4")" "${5:+, $5}"
}
# boot_version SERIAL DIR: the items of one version, files already placed under DIR.
boot_version() {
  local serial=$1 dir=$2 base="jammy/amd64/$1"
  printf '      "%s": {"items": {\n' "$serial"
  item boot-kernel boot-kernel "$base/ga-22.04/generic/boot-kernel" "$dir/$base/ga-22.04/generic/boot-kernel" '"kpackage": "linux-generic"'; printf ',\n'
  item boot-initrd boot-initrd "$base/ga-22.04/generic/boot-initrd" "$dir/$base/ga-22.04/generic/boot-initrd" '"kpackage": "linux-generic"'; printf ',\n'
  item manifest manifest "$base/squashfs.manifest" "$dir/$base/squashfs.manifest"; printf ',\n'
  item squashfs squashfs "$base/squashfs" "$dir/$base/squashfs"; printf '\n'
  printf '      }}'
}
place_version() {
  local dir=$1 serial=$2 initrd=$3 squashfs=$4 base="$1/jammy/amd64/$2"
  mkdir -p "$base/ga-22.04/generic"
  cp "$VMLINUZ" "$base/ga-22.04/generic/boot-kernel"
  cp "$initrd" "$base/ga-22.04/generic/boot-initrd"
  cp "$squashfs" "$base/squashfs"
  echo "busybox-static $(dpkg-deb -f "$BDEB" Version)" >"$base/squashfs.manifest"
}
sign() {
  local json=$1
  GNUPGHOME=$OUT/gnupg gpg --batch --quiet --yes --digest-algo SHA512 --clearsign -o "${json%.json}.sjson" "$json"
  GNUPGHOME=$OUT/gnupg gpg --batch --quiet --yes --digest-algo SHA512 --detach-sign -o "$json.gpg" "$json"
}
publish() {
  local dir=$1; shift
  local versions=("$@")
  local streams=$dir/streams/v1
  mkdir -p "$streams" "$dir/custom/tiny/amd64/$V1"
  cp "$WORK/tiny.dd.gz" "$dir/custom/tiny/amd64/$V1/root-dd.gz"
  {
    printf '{\n  "content_id": "com.ubuntu.maas:stable:v3:download",\n  "datatype": "image-ids",\n  "format": "products:1.0",\n  "updated": "%s",\n  "products": {\n' "$UPDATED"
    printf '    "com.ubuntu.maas.stable:v3:boot:22.04:amd64:ga-22.04": {\n'
    printf '      "arch": "amd64", "kflavor": "generic", "krel": "jammy", "label": "stable", "os": "ubuntu",\n'
    printf '      "release": "jammy", "release_codename": "Jammy Jellyfish", "release_title": "22.04 LTS",\n'
    printf '      "subarch": "ga-22.04", "subarches": "%s", "support_eol": "2027-04-21", "version": "22.04",\n' "$SUBARCHES"
    printf '      "versions": {\n'
    local first=1
    for serial in "${versions[@]}"; do
      [ $first -eq 1 ] || printf ',\n'
      first=0
      boot_version "$serial" "$dir"
    done
    printf '\n      }\n    }\n  }\n}\n'
  } >"$streams/com.ubuntu.maas:stable:v3:download.json"
  {
    printf '{\n  "content_id": "com.ubuntu.maas:stable:test-dd-download",\n  "datatype": "image-ids",\n  "format": "products:1.0",\n  "updated": "%s",\n  "products": {\n' "$UPDATED"
    printf '    "com.ubuntu.maas.stable:test-dd:tiny:amd64": {\n'
    printf '      "arch": "amd64", "label": "stable", "os": "custom", "release": "tiny", "release_title": "Tiny dd image",\n'
    printf '      "subarch": "generic", "subarches": "generic",\n'
    printf '      "versions": {\n      "%s": {"items": {\n' "$V1"
    item root-dd.gz root-dd.gz "custom/tiny/amd64/$V1/root-dd.gz" "$dir/custom/tiny/amd64/$V1/root-dd.gz"
    printf '\n      }}\n      }\n    }\n  }\n}\n'
  } >"$streams/com.ubuntu.maas:stable:test-dd-download.json"
  local ext
  for ext in json sjson; do
    {
      printf '{\n  "format": "index:1.0",\n  "updated": "%s",\n  "index": {\n' "$UPDATED"
      printf '    "com.ubuntu.maas:stable:test-dd-download": {"datatype": "image-ids", "format": "products:1.0", "path": "streams/v1/com.ubuntu.maas:stable:test-dd-download.%s", "products": ["com.ubuntu.maas.stable:test-dd:tiny:amd64"], "updated": "%s"},\n' "$ext" "$UPDATED"
      printf '    "com.ubuntu.maas:stable:v3:download": {"datatype": "image-ids", "format": "products:1.0", "path": "streams/v1/com.ubuntu.maas:stable:v3:download.%s", "products": ["com.ubuntu.maas.stable:v3:boot:22.04:amd64:ga-22.04"], "updated": "%s"}\n' "$ext" "$UPDATED"
      printf '  }\n}\n'
    } >"$streams/index.$ext.tmp"
  done
  mv "$streams/index.json.tmp" "$streams/index.json"
  sign "$streams/index.json"
  # index.sjson is the signed index whose paths name the .sjson documents.
  GNUPGHOME=$OUT/gnupg gpg --batch --quiet --yes --digest-algo SHA512 --clearsign -o "$streams/index.sjson" "$streams/index.sjson.tmp"
  rm "$streams/index.sjson.tmp"
  sign "$streams/com.ubuntu.maas:stable:v3:download.json"
  sign "$streams/com.ubuntu.maas:stable:test-dd-download.json"
}

rm -rf "$OUT/mirror" "$OUT/mirror-next" "$OUT/uploads"
place_version "$OUT/mirror" "$V1" "$WORK/initrd1" "$WORK/squashfs1"
publish "$OUT/mirror" "$V1"
place_version "$OUT/mirror-next" "$V1" "$WORK/initrd1" "$WORK/squashfs1"
place_version "$OUT/mirror-next" "$V2" "$WORK/initrd2" "$WORK/squashfs2"
publish "$OUT/mirror-next" "$V1" "$V2"
mkdir -p "$OUT/uploads"
cp "$WORK/tiny.dd.gz" "$OUT/uploads/tiny.dd.gz"

{
  echo "V1=$V1"
  echo "V2=$V2"
  echo "KERNEL_SHA256=$(sha "$VMLINUZ")"
  echo "KERNEL_SIZE=$(size "$VMLINUZ")"
  echo "INITRD1_SHA256=$(sha "$WORK/initrd1")"
  echo "INITRD2_SHA256=$(sha "$WORK/initrd2")"
  echo "SQUASHFS1_SHA256=$(sha "$WORK/squashfs1")"
  echo "SQUASHFS2_SHA256=$(sha "$WORK/squashfs2")"
  echo "DDGZ_SHA256=$(sha "$WORK/tiny.dd.gz")"
  echo "DDGZ_SIZE=$(size "$WORK/tiny.dd.gz")"
} >"$OUT/files.env"
rm -rf "$WORK"
echo "$STAMP" >"$OUT/stamp"
echo "build-test-images: published to $OUT (kernel $(basename "$VMLINUZ"))"
