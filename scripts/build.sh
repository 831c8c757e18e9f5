#!/usr/bin/env bash
# Installs dependencies (idempotent) and builds conceptlab into build/ (Release, Ninja).
# Extra CMake arguments pass through, e.g. -DCONCEPTLAB_BUILD_VIEWER=OFF.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup-deps.sh"
BUILD_DIR="${CONCEPTLAB_BUILD_DIR:-$ROOT/build}"
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$BUILD_DIR" -j "$(nproc)"
