#!/usr/bin/env bash
# Installs the Debian 12 packages the build needs, only those that are missing.
set -euo pipefail
PKGS=(
  cmake g++ make pkg-config
  libucx-dev ucx-utils libibverbs-dev ibverbs-utils librdmacm-dev
  librocksdb-dev libisal-dev zlib1g-dev
  libboost-dev libmsgpack-cxx-dev nlohmann-json3-dev libcli11-dev
  libspdlog-dev libfmt-dev prometheus-cpp-dev
  libssl-dev libtomlplusplus-dev  # JWT (HMAC-SHA256), security.toml / config files
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-19 libclang-rt-19-dev  # make fuzz / scripts/fuzz.sh (libFuzzer, ASan, UBSan)
  clang-format-19  # make format (.clang-format)
  iproute2 procps
  curl jq  # tests/e2e
  strace  # tests/e2e/agent_unprivileged_test.sh: the agent's system calls vs the unit's filter
  fuse3  # tests/seaweedfs: weed mount (fusermount3)
  python3-dev python3-venv python3-pip  # the Python package (pip install ./python, docs/python.md)
  dpkg-dev  # make deb: dpkg-shlibdeps
  ccache  # rebuilds of a second tree or a fresh clone (CMakeLists.txt)
)
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "error: missing packages ${missing[*]}; run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
echo "installing missing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  echo "apt-get install failed; refreshing package lists and retrying" >&2
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
