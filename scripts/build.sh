#!/usr/bin/env bash
# Installs dependencies (idempotent) and builds conceptlab into build/ (Release, Ninja).
# Extra CMake arguments pass through, e.g. -DCONCEPTLAB_BUILD_VIEWER=OFF.
# CONCEPTLAB_BUILD_TARGET=conceptlab builds only that target (the demo needs nothing else).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup-deps.sh"
BUILD_DIR="${CONCEPTLAB_BUILD_DIR:-$ROOT/build}"
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
if [ -n "${CONCEPTLAB_BUILD_TARGET:-}" ]; then
  cmake --build "$BUILD_DIR" -j "$(nproc)" --target "$CONCEPTLAB_BUILD_TARGET"
else
  cmake --build "$BUILD_DIR" -j "$(nproc)"
fi
