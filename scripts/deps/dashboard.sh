#!/usr/bin/env bash
# What the dashboard's browser test needs: Debian's Chromium and its
# WebDriver (chromium, chromium-driver: /usr/bin/chromium and
# /usr/bin/chromedriver), and fonts so screenshots have text.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(chromium chromium-driver fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "dashboard.sh: missing ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  apt-cache policy "${missing[0]}" | grep -q 'Candidate: [0-9]' || apt-get update -qq
  for i in $(seq 1 30); do
    apt-get install -y -qq --no-install-recommends "${missing[@]}" && break
    [ "$i" = 30 ] && { echo "dashboard.sh: apt-get install failed" >&2; exit 1; }
    echo "dashboard.sh: apt busy, retry $i" >&2; sleep 10
  done
fi
/usr/bin/chromium --version
/usr/bin/chromedriver --version
echo "dashboard.sh: deps ready"
