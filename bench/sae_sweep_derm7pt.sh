#!/usr/bin/env bash
# `conceptlab sae sweep` on the derm7pt embeddings in ../shared: plain and nested top-k SAEs at two
# sizes and two k (8 SAEs, 200 epochs of batch 256 on the 809 training rows), scored on the 202
# held-out rows against the 12 annotation columns; prints the table and the pick, and leaves
# sweep.csv, sweep.json and sweep.png in OUT_DIR.
# Usage: bench/sae_sweep_derm7pt.sh [BUILD_DIR] [OUT_DIR]   (defaults: build, a temp folder)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$ROOT/build}/tools/conceptlab"
SHARED="$ROOT/../shared/derm7pt"
[ -f "$SHARED/embeddings_mnv1.h5" ] || { echo "needs ../shared/derm7pt (not here): skipped"; exit 0; }
COLS=pigment_network,streaks,pigmentation,regression_structures,dots_and_globules,blue_whitish_veil,vascular_structures,hair,gel_bubble,ruler,ink,dark_corner
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
OUT="${2:-$W/sweep}"
cat > "$W/sweep.json" <<'JSON'
{"train": {"batch": 256, "epochs": 200, "lr": 0.001, "checkpoint_every": 0}}
JSON
cat > "$W/grid.json" <<'JSON'
{"arch": ["topk", "matryoshka-topk"], "n_latents": [1024, 2048], "k": [16, 32]}
JSON
"$BIN" -q sae sweep --embeddings "$SHARED/embeddings_mnv1.h5" --labels "$SHARED/meta.csv" --columns "$COLS" \
  --grid "$W/grid.json" --config "$W/sweep.json" --out "$OUT" --device cpu
