#!/usr/bin/env bash
# Host tools for the Soft-RoCE VM test (tests/vm, make vm-test): qemu (TCG), debootstrap,
# mkfs.ext4 -d; only those missing are installed.
set -euo pipefail
PKGS=(qemu-system-x86 debootstrap e2fsprogs util-linux jq)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing packages ${missing[*]}; run as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "installing missing Debian packages for the VM test: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  echo "apt-get install failed; refreshing package lists and retrying" >&2
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
