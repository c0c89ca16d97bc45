#!/usr/bin/env bash
# What the region's tests need: jq (the issue's `maas admin machines read | jq ...`
# line is tested verbatim) and python-libmaas with pytest in the repo's .venv.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
export DEBIAN_FRONTEND=noninteractive
pkgs=(jq python3-venv)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "region.sh: missing ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  apt-cache policy "${missing[0]}" | grep -q 'Candidate: [0-9]' || apt-get update -qq
  for i in $(seq 1 30); do
    apt-get install -y -qq --no-install-recommends "${missing[@]}" && break
    [ "$i" = 30 ] && { echo "region.sh: apt-get install failed" >&2; exit 1; }
    echo "region.sh: apt busy, retry $i" >&2; sleep 10
  done
fi
[ -x "$REPO/.venv/bin/python" ] || python3 -m venv "$REPO/.venv"
"$REPO/.venv/bin/pip" install -q --disable-pip-version-check -r "$REPO/tests/python/requirements.txt"
"$REPO/.venv/bin/python" -c 'import maas.client, pytest'
echo "region.sh: deps ready"
