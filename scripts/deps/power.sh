#!/bin/bash
# Installs what the maas-power tests need, as root on Debian 12. Idempotent: a second run
# installs nothing and only checks.
#   apt:  openipmi (ipmi_sim, an IPMI BMC emulator), ipmitool (the independent client the tests
#         compare against), libvirt-clients + libvirt-daemon (virsh and libvirtd, whose test
#         driver the virsh tests use; libvirt-daemon-system creates the libvirt-qemu user without
#         which libvirtd refuses to start), openssl (self-signed certificates for the HTTPS
#         Redfish emulator). No service is started: the tests start their own libvirtd.
#   pip:  pyghmi and sushy-tools, pinned in crates/power/tests/requirements.txt, into $REPO/.venv
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
export DEBIAN_FRONTEND=noninteractive

PKGS=(openipmi ipmitool libvirt-clients libvirt-daemon libvirt-daemon-system openssl python3-venv)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-cache policy "${missing[0]}" | grep -q 'Candidate: [0-9]' || apt-get update -qq
  # Retry while another apt/dpkg run holds the lock.
  for i in $(seq 1 30); do
    if apt-get install -y -qq --no-install-recommends "${missing[@]}"; then break; fi
    [ "$i" = 30 ] && { echo "power.sh: apt-get install ${missing[*]} failed" >&2; exit 1; }
    echo "power.sh: apt busy or failed, retry $i" >&2; sleep 10
  done
fi

[ -x "$REPO/.venv/bin/python" ] || python3 -m venv "$REPO/.venv"
"$REPO/.venv/bin/pip" install -q --disable-pip-version-check -r "$REPO/crates/power/tests/requirements.txt"

command -v ipmi_sim ipmitool virsh libvirtd >/dev/null
"$REPO/.venv/bin/python" -c 'import pyghmi.ipmi.bmc, sushy_tools.emulator.main' 
echo "power.sh: deps ready"
