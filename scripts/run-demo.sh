#!/usr/bin/env bash
# Installs dependencies, builds the one binary the demo runs (not the tests and benches:
# scripts/run-tests.sh builds those), and runs the main job: `conceptlab demo` into ./demo-out.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONCEPTLAB_BUILD_TARGET=conceptlab bash "$ROOT/scripts/build.sh"
BUILD_DIR="${CONCEPTLAB_BUILD_DIR:-$ROOT/build}"
"$BUILD_DIR/tools/conceptlab" demo --out "${CONCEPTLAB_DEMO_DIR:-$ROOT/demo-out}"
