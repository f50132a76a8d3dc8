#!/usr/bin/env bash
# Installs the Debian packages kerascpp's build, tests and examples need (only the missing ones).
# Usage: tools/deps.sh [extra packages...]
set -euo pipefail
# libopenmpi-dev openmpi-bin: the opt-in data parallelism (kerascpp::mpi) and its tests under mpirun.
# clang-format: the style check (ctest format, tools/format.sh).
pkgs=(build-essential cmake pkg-config libeigen3-dev nlohmann-json3-dev libstb-dev libcli11-dev catch2 python3-h5py python3-numpy python3-pil nodejs npm
      libopenmpi-dev openmpi-bin clang-format "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A machine may already have node/npm from elsewhere; then the Debian packages are not needed.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
