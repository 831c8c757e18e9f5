#!/usr/bin/env bash
# Installs every Debian package conceptlab needs to build, test and run. Idempotent:
# packages already present are skipped, so a second run costs only the dpkg query.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev libopenblas0-pthread
  # Gloo headers: ProcessGroupGloo.hpp includes them; the distributed SAE trainer needs them.
  libgloo-dev
  libeigen3-dev libopencv-dev libhdf5-dev
  nlohmann-json3-dev doctest-dev libcli11-dev libspdlog-dev libfmt-dev
  libimgui-dev libglfw3-dev libgl-dev
  xvfb xauth libgl1-mesa-dri fonts-dejavu-core
  python3 python3-numpy python3-h5py
  # PyTorch in Python: the tests cross-check embed and export_torchscript.py against it.
  python3-torch python3-torchvision
)
# CONCEPTLAB_BENCH_DEPS=1 adds scikit-learn for bench/cbm_sklearn.py (the reference's classifier).
if [ "${CONCEPTLAB_BENCH_DEPS:-0}" = "1" ]; then PKGS+=(python3-sklearn); fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
