#!/bin/bash
# Builds the in-memory environment the machine agent runs in: vmlinuz + initrd.gz in OUTDIR.
#
#   scripts/build-ephemeral.sh OUTDIR [--agent BINARY]
#
# Everything comes from Debian's packages: the kernel from linux-image-amd64 (downloaded, unpacked,
# cached under target/ephemeral-cache, which git ignores), static busybox from busybox-static
# (unpacked by scripts/deps/agent.sh), and the deploy tools (sgdisk, mke2fs, mkfs.fat, blkdiscard, partx,
# grub-install with the i386-pc and x86_64-efi modules) with the shared libraries they link, copied
# from the Debian packages scripts/deps/agent.sh installs (each file is checked with dpkg -S).
#
# The agent is built here as a static glibc binary (-C target-feature=+crt-static, opt-level z, LTO,
# panic=abort, stripped). --agent uses a given binary instead (the tests pass cargo's test build);
# a dynamically linked one gets its libraries copied like the tools.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:?usage: build-ephemeral.sh OUTDIR [--agent BINARY]}
shift
AGENT=
while [ $# -gt 0 ]; do
  case "$1" in
    --agent) AGENT=${2:?--agent needs a path}; shift 2 ;;
    *) echo "build-ephemeral: unknown argument $1" >&2; exit 2 ;;
  esac
done
CACHE=${MAAS_EPHEMERAL_CACHE:-$REPO/target/ephemeral-cache}
BUSYBOX=/var/cache/maas-agent-deps/busybox/bin/busybox
mkdir -p "$OUT" "$CACHE"
OUT=$(cd "$OUT" && pwd)
log() { echo "build-ephemeral: $*" >&2; }

[ -x "$BUSYBOX" ] || { log "static busybox missing: run scripts/deps/agent.sh"; exit 1; }

# 1. The agent.
if [ -z "$AGENT" ]; then
  log "building the static agent"
  (cd "$REPO" && CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build -q -p maas-agent --bin maas-agent --locked --target x86_64-unknown-linux-gnu --profile ephemeral \
      --config 'profile.ephemeral.inherits="release"' --config 'profile.ephemeral.opt-level="z"' \
      --config 'profile.ephemeral.lto=true' --config 'profile.ephemeral.codegen-units=1' \
      --config 'profile.ephemeral.panic="abort"' --config 'profile.ephemeral.strip=true' \
      --config 'profile.ephemeral.debug=false')
  AGENT=$REPO/target/x86_64-unknown-linux-gnu/ephemeral/maas-agent
fi
[ -x "$AGENT" ] || { log "no agent binary at $AGENT"; exit 1; }

# 2. The kernel package.
if [ ! -d "$CACHE/kpkg/boot" ]; then
  PKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$PKG" ] || { log "apt-cache knows no linux-image-amd64 (run apt-get update)"; exit 1; }
  log "downloading $PKG"
  (cd "$CACHE" && rm -rf linux-image-*.deb kpkg && apt-get download -q "$PKG" >/dev/null && mkdir kpkg \
     && dpkg-deb -x linux-image-*.deb kpkg && rm -f linux-image-*.deb)
fi
KVER=$(ls "$CACHE/kpkg/lib/modules" | head -1)
MODDIR=$CACHE/kpkg/lib/modules/$KVER
[ -f "$MODDIR/modules.dep" ] || depmod -b "$CACHE/kpkg" "$KVER"

# 3. The root tree.
R=$CACHE/root
rm -rf "$R"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,lib/modules,lib64,dev,proc,sys,tmp,run,mnt,root}
cp "$BUSYBOX" "$R/bin/busybox"
ln -s busybox "$R/bin/sh"
install -m 0755 "$AGENT" "$R/usr/bin/maas-agent"

# Modules and their dependencies, in load order (modules.dep lists each module's needs).
WANT="virtio_pci virtio_net virtio_blk virtio_scsi e1000 e1000e igb ahci ata_piix sd_mod sr_mod nvme ext4 vfat nls_cp437 nls_iso8859-1 loop efivarfs crc32c_generic"
: > "$R/lib/modules/load-order"
declare -A SEEN
add_module() {
  local name=$1 path dep
  path=$(awk -F: -v n="$name" '{f=$1; sub(".*/","",f); sub(/\.ko(\.xz|\.zst)?$/,"",f); gsub("-","_",f); m=n; gsub("-","_",m); if (f==m) {print $1; exit}}' "$MODDIR/modules.dep")
  if [ -z "$path" ]; then
    grep -q "/${name//_/[-_]}.ko" "$MODDIR/modules.builtin" 2>/dev/null || log "module $name: not found (built in or absent)"
    return 0
  fi
  [ -n "${SEEN[$path]:-}" ] && return 0
  SEEN[$path]=1
  for dep in $(awk -F: -v p="$path" '$1==p {print $2}' "$MODDIR/modules.dep"); do
    dep=${dep##*/}; dep=${dep%%.ko*}
    add_module "$dep"
  done
  local base; base=$(basename "$path"); base=${base%%.ko*}
  case "$path" in
    *.xz) xz -dc "$MODDIR/$path" > "$R/lib/modules/$base.ko" ;;
    *.zst) zstd -dcq "$MODDIR/$path" > "$R/lib/modules/$base.ko" ;;
    *) cp "$MODDIR/$path" "$R/lib/modules/$base.ko" ;;
  esac
  echo "$base" >> "$R/lib/modules/load-order"
}
for m in $WANT; do add_module "$m"; done

# Deploy and erase tools with their libraries.
copy_with_libs() {
  local source=$1 destination=$2 lib
  # With merged /usr, packages register /sbin/x and /lib/x for what lives in /usr/sbin and /usr/lib.
  local real; real=$(readlink -f "$source")
  if [ "$source" != "$AGENT" ]; then
    dpkg -S "$source" >/dev/null 2>&1 || dpkg -S "${source#/usr}" >/dev/null 2>&1 || dpkg -S "$real" >/dev/null 2>&1 \
      || dpkg -S "${real#/usr}" >/dev/null 2>&1 || { log "$source does not come from a Debian package"; exit 1; }
  fi
  mkdir -p "$R$(dirname "$destination")"
  cp -L "$source" "$R$destination"
  for lib in $(ldd "$source" 2>/dev/null | grep -o '/[^ ]*\.so[^ ]*' || true); do
    [ -e "$R$lib" ] && continue
    mkdir -p "$R$(dirname "$lib")"
    cp -L "$lib" "$R$lib"
  done
}
for tool in /usr/sbin/sgdisk /usr/sbin/mke2fs /usr/sbin/mkfs.fat /usr/sbin/blkdiscard /usr/bin/partx /usr/sbin/grub-install; do
  copy_with_libs "$tool" "$tool"
done
if file -L "$R/usr/bin/maas-agent" | grep -q 'dynamically linked'; then
  log "the agent is dynamically linked: copying its libraries"
  copy_with_libs "$AGENT" /usr/bin/maas-agent
fi
if file -L "$R/usr/bin/maas-agent" | grep -q 'not stripped'; then strip "$R/usr/bin/maas-agent"; fi
ln -s mke2fs "$R/usr/sbin/mkfs.ext4"
ln -s mkfs.fat "$R/usr/sbin/mkfs.vfat"
cp /etc/mke2fs.conf "$R/etc/mke2fs.conf"
# GRUB for images without their own: the images and lists of each platform, and only the modules a
# disk boot of a GPT/ext4 or FAT system with our generated grub.cfg needs, closed over moddep.lst.
GRUB_MODULES="normal linux search search_label search_fs_uuid search_fs_file part_gpt part_msdos ext2 fat
  gzio echo test configfile boot chain biosdisk all_video video_bochs video_cirrus efi_gop efi_uga
  terminal serial font gfxterm"
for platform in i386-pc x86_64-efi; do
  src=/usr/lib/grub/$platform; dst=$R/usr/lib/grub/$platform
  mkdir -p "$dst"
  cp "$src"/*.lst "$src"/*.img "$dst"/ 2>/dev/null || true
  cp "$src"/modinfo.sh "$dst"/ 2>/dev/null || true
  todo=$GRUB_MODULES
  while [ -n "$todo" ]; do
    next=
    for m in $todo; do
      [ -f "$src/$m.mod" ] || continue
      [ -f "$dst/$m.mod" ] && continue
      cp "$src/$m.mod" "$dst/"
      next="$next $(awk -F: -v m="$m" '$1==m {print $2}' "$src/moddep.lst")"
    done
    todo=$next
  done
done
mkdir -p "$R/usr/share/grub" && cp /usr/share/grub/unicode.pf2 "$R/usr/share/grub/" 2>/dev/null || true

cat > "$R/etc/os-release" <<OS
NAME="MAAS in-memory environment"
ID=maas-ephemeral
VERSION_ID="$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo dev)"
OS
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:x:0:' > "$R/etc/group"

cat > "$R/etc/udhcpc.script" <<'DHCP'
#!/bin/sh
# udhcpc hook: configure the lease (busybox ifconfig/route understand dotted masks).
case "$1" in
  deconfig) ifconfig "$interface" 0.0.0.0 up ;;
  bound|renew)
    ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}" up
    [ -n "$router" ] && { route del default 2>/dev/null; for r in $router; do route add default gw "$r" dev "$interface"; break; done; }
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    [ -n "$domain" ] && echo "search $domain" >> /etc/resolv.conf
    [ -n "$hostname" ] && hostname "$hostname"
    echo "$interface $ip" > /run/dhcp-lease ;;
esac
exit 0
DHCP

cat > "$R/init" <<'INIT'
#!/bin/sh
# PID 1 of the MAAS in-memory environment: mounts, modules, DHCP on the boot interface, then the
# agent, whose exit status says what to do: 0 power off, 3 reboot, 4 stay up, else power off after 30 s.
/bin/busybox mkdir -p /proc /sys /dev /tmp /run
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
exec </dev/console >/dev/console 2>&1
say() { echo "[maas-init $(cut -d' ' -f1 /proc/uptime)s] $*"; }
say "MAAS in-memory environment $(. /etc/os-release; echo "$VERSION_ID"), kernel $(uname -r)"
for m in $(cat /lib/modules/load-order); do
  grep -q "^$m " /proc/modules || insmod "/lib/modules/$m.ko" 2>/dev/null || true
done
[ -d /sys/firmware/efi ] && mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null
mdev -s 2>/dev/null
ip link set lo up
BOOTMAC=
for w in $(cat /proc/cmdline); do
  case "$w" in BOOTIF=01-*) BOOTMAC=$(echo "${w#BOOTIF=01-}" | tr 'A-F-' 'a-f:') ;; esac
done
IF=
for i in $(seq 1 40); do
  for d in /sys/class/net/*; do
    n=${d##*/}; [ "$n" = lo ] && continue; [ -e "$d/device" ] || continue
    if [ -z "$BOOTMAC" ] || [ "$(cat "$d/address")" = "$BOOTMAC" ]; then IF=$n; break; fi
  done
  [ -n "$IF" ] && break; sleep 0.25
done
if [ -n "$IF" ]; then
  for d in /sys/class/net/*; do ip link set "${d##*/}" up 2>/dev/null; done
  say "boot interface $IF ($(cat /sys/class/net/$IF/address))"
  udhcpc -i "$IF" -s /etc/udhcpc.script -q -n -t 10 -T 2 -x hostname:maas-ephemeral >/dev/null 2>&1 \
    && say "DHCP: $(cat /run/dhcp-lease)" || say "DHCP failed on $IF"
else
  say "no network interface found"
fi
/usr/bin/maas-agent
code=$?
say "agent exited with $code"
sync
case "$code" in
  0) poweroff -f ;;
  3) reboot -f ;;
  4) say "staying up (agent asked)"; exec sh ;;
  *) say "powering off in 30 s"; sleep 30; poweroff -f ;;
esac
INIT
chmod 0755 "$R/init" "$R/etc/udhcpc.script"

# 4. Pack.
(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -6 > "$OUT/initrd.gz")
cp "$CACHE/kpkg/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
log "kernel $KVER, $(wc -l < "$R/lib/modules/load-order") modules, agent $(stat -c %s "$R/usr/bin/maas-agent") bytes"
log "wrote $OUT/vmlinuz ($(stat -c %s "$OUT/vmlinuz") bytes) and $OUT/initrd.gz ($(stat -c %s "$OUT/initrd.gz") bytes)"
