#!/usr/bin/env bash
# Installs dependencies, builds, and runs the main job: `conceptlab demo` into ./demo-out.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/build.sh"
BUILD_DIR="${CONCEPTLAB_BUILD_DIR:-$ROOT/build}"
"$BUILD_DIR/tools/conceptlab" demo --out "${CONCEPTLAB_DEMO_DIR:-$ROOT/demo-out}"
