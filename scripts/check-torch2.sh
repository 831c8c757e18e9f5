#!/usr/bin/env bash
# Compiles (syntax only) every LibTorch-using source of conceptlab against LibTorch 2.x headers,
# the CUDA-only paths included, on a machine that has neither a GPU nor LibTorch 2.x: the code must
# build against Debian's LibTorch 1.13 and a pip CUDA LibTorch 2.x, and a GPU session is too short
# to discover API drift there. Headers come from Debian trixie's libtorch-dev (2.6) and, with
# --cuda, from its nvidia-cuda-dev (CUDA 12.4, a ~0.9 GB download), libcu++-dev and libnccl-dev,
# unpacked under .debs/torch2 (git-ignored). Nothing is installed. Run after scripts/build.sh.
#   bash scripts/check-torch2.sh [--cuda] [SUBSTRING...]   (only sources whose path contains one)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEBS="$ROOT/.debs/torch2"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CUDA=0
if [[ "${1:-}" == "--cuda" ]]; then CUDA=1; shift; fi
mkdir -p "$DEBS/root"

# Package -> pool path, from trixie's package lists (fetched once).
filename_of() {
  local pkg="$1" comp
  for comp in main contrib non-free; do
    local list="$DEBS/Packages-$comp"
    [[ -s "$list" ]] || curl -fsS "$MIRROR/dists/trixie/$comp/binary-amd64/Packages.xz" | xz -dc > "$list"
    local f
    f=$(awk -v P="Package: $pkg" '$0==P{found=1} found && /^Filename:/{print $2; exit}' "$list")
    if [[ -n "$f" ]]; then echo "$f"; return; fi
  done
  echo "check-torch2: package $pkg not found in trixie" >&2
  return 1
}

# Unpacks the headers (and the CMake files) of a package under $DEBS/root, once.
unpack() {
  local pkg="$1" f
  [[ -e "$DEBS/$pkg.done" ]] && return
  f=$(filename_of "$pkg")
  echo "check-torch2: fetching $pkg ($f)"
  curl -fsS -o "$DEBS/pkg.deb" "$MIRROR/$f"
  dpkg-deb --fsys-tarfile "$DEBS/pkg.deb" | tar -x -C "$DEBS/root" --wildcards '*/include/*'
  rm -f "$DEBS/pkg.deb"
  touch "$DEBS/$pkg.done"
}

unpack libtorch-dev
if [[ $CUDA == 1 ]]; then
  unpack nvidia-cuda-dev
  unpack libcu++-dev
  unpack libnccl-dev
  # Generated at a CUDA LibTorch's own build; a CPU package lacks it.
  mkdir -p "$DEBS/overlay/c10/cuda/impl"
  printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' > "$DEBS/overlay/c10/cuda/impl/cuda_cmake_macros.h"
fi

# The compile commands of the usual configuration, without building anything.
CC_DIR="$ROOT/build-torch2-cc"
mkdir -p "$CC_DIR"
cmake -S "$ROOT" -B "$CC_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
  > "$CC_DIR/configure.log" 2>&1 || { cat "$CC_DIR/configure.log"; exit 1; }
exec /usr/bin/python3 "$ROOT/scripts/syntax_check_torch2.py" "$CC_DIR/compile_commands.json" "$DEBS" "$CUDA" "$@"
