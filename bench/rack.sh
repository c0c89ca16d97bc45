#!/usr/bin/env bash
# The rack benchmark: our DHCP, TFTP and HTTP boot servers beside the reference servers, in one
# run, on a private veth pair between two network namespaces (bench/lib.sh). Nothing leaves the
# machine and no reference server runs outside it. Needs root and scripts/deps/rackbench.sh.
#
#   bench/rack.sh                      all three benchmarks, RUNS=3 times each, servers interleaved
#   ONLY="dhcp" RUNS=1 bench/rack.sh   a subset
#
# It builds maas-rack-bench with --release, runs each benchmark RUNS times (each time: our server,
# then the references, so they share the background load), prints one table per protocol with the
# rack issue's targets checked, and writes it into BENCHMARKS.md (a section per date and machine).
#
#   DHCP  bench/dhcp.sh: perfdhcp DORA ramp against rack (lease log synced before replies), Kea, dhcpd
#   TFTP  bench/tftp.sh: lock-step blksize 512/1468 and windowsize 16, vs tftpd-hpa and atftpd
#   HTTP  bench/http.sh: 100 concurrent clients (wrk and curl) on boot files, vs nginx
# Knobs: RUNS (3), ONLY ("dhcp tftp http"), WRITE (1: update BENCHMARKS.md), and those of each script.
# Takes about 12 minutes per run of the three on a 2-vCPU machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

RUNS=${RUNS:-3}
ONLY=${ONLY:-"dhcp tftp http"}
WRITE=${WRITE:-1}
[ "$(id -u)" = 0 ] || { echo "bench/rack.sh needs root (network namespaces, cgroups)" >&2; exit 1; }
for p in perfdhcp kea-dhcp4 dhcpd in.tftpd nginx wrk atftp curl python3; do
  command -v "$p" >/dev/null || { echo "$p missing: run scripts/deps/rackbench.sh" >&2; exit 1; }
done
[ -x "$RB_ATFTPD" ] || { echo "atftpd missing: run scripts/deps/rackbench.sh" >&2; exit 1; }

(cd "$RB_REPO" && cargo build --release --locked -q -p maas-rack-bench)

OUT=$RB_DIR/results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
{
  echo "# $(date -u "+%F %H:%M UTC") on $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
  echo
  echo "Machine: \`nproc\` $(nproc), CPU \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\", kernel $(uname -r), Debian $(cat /etc/debian_version)."
  echo "Run: $(date -u +%FT%TZ), $RUNS run(s) of \`$ONLY\`, commit $(cd "$RB_REPO" && git rev-parse --short HEAD)$(cd "$RB_REPO" && git diff --quiet HEAD -- crates bench || echo '+changes'), load average at start $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Versions: $(perfdhcp -v 2>&1 | head -1 | sed 's/VERSION: /perfdhcp /'), $(kea-dhcp4 -v 2>&1 | head -1 | sed 's/^/Kea /'), $(dhcpd --version 2>&1 | head -1), tftpd-hpa $(dpkg-query -W -f='${Version}' tftpd-hpa), atftpd 0.8.0 (unpacked .deb), $(nginx -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(curl --version | head -1 | cut -d' ' -f1-2), $(atftp --version 2>&1 | head -1)."
} >"$OUT/machine.txt"
echo "results -> $OUT"

for run in $(seq 1 "$RUNS"); do
  for bench in $ONLY; do
    case $bench in
      dhcp) servers="rack kea dhcpd" ;;
      tftp) servers="rack tftpd-hpa atftpd" ;;
      http) servers="rack nginx" ;;
      *) echo "unknown benchmark $bench" >&2; exit 2 ;;
    esac
    for server in $servers; do
      echo "== run $run/$RUNS: $bench $server ($(cut -d' ' -f1 /proc/loadavg) load)"
      bash "$here/$bench.sh" "$server" "$OUT/$bench-$server-$run.tsv" || echo "!! $bench $server failed" >&2
    done
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
rb_netns_down

if [ "$WRITE" = 1 ]; then
  python3 "$here/report.py" "$OUT" --write "$RB_REPO/BENCHMARKS.md"
else
  python3 "$here/report.py" "$OUT"
fi
