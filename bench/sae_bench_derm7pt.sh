#!/usr/bin/env bash
# `conceptlab sae bench` on the derm7pt embeddings in ../shared: plain top-k and matryoshka top-k
# SAEs (2048 latents, k 16, three seeds each, for stability) and the reference recipe (relu-l1,
# expansion 8, L1 3e-5), all trained by `sae sweep` on the bench's training rows only (the same
# seeded split: holdout 0.2, seed 0), scored against PCA, NMF and k-means on the 12 annotation
# columns, with SCR for hair:melanoma and ruler:melanoma. Prints the table and leaves bench.md,
# bench.json and the charts in OUT_DIR.
# Usage: bench/sae_bench_derm7pt.sh [BUILD_DIR] [OUT_DIR]   (defaults: build, a temp folder)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$ROOT/build}/tools/conceptlab"
SHARED="$ROOT/../shared/derm7pt"
[ -f "$SHARED/embeddings_mnv1.h5" ] || { echo "needs ../shared/derm7pt (not here): skipped"; exit 0; }
COLS=pigment_network,streaks,pigmentation,regression_structures,dots_and_globules,blue_whitish_veil,vascular_structures,hair,gel_bubble,ruler,ink,dark_corner
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
OUT="${2:-$W/bench}"
cat > "$W/sweep.json" <<'JSON'
{"holdout": 0.2, "seed": 0, "train": {"batch": 256, "epochs": 200, "lr": 0.001, "checkpoint_every": 0}}
JSON
cat > "$W/grid_topk.json" <<'JSON'
{"arch": ["topk", "matryoshka-topk"], "n_latents": [2048], "k": [16], "seed": [0, 1, 2]}
JSON
cat > "$W/grid_ref.json" <<'JSON'
{"arch": ["relu-l1"], "expansion": [8], "l1": [3e-5], "lr": [5e-4], "batch": [4096], "n_latents": [0]}
JSON
t0=$(date +%s)
"$BIN" -q sae sweep --embeddings "$SHARED/embeddings_mnv1.h5" --labels "$SHARED/meta.csv" --columns "$COLS" \
  --grid "$W/grid_topk.json" --config "$W/sweep.json" --out "$W/topk" --device cpu > /dev/null
"$BIN" -q sae sweep --embeddings "$SHARED/embeddings_mnv1.h5" --labels "$SHARED/meta.csv" --columns "$COLS" \
  --grid "$W/grid_ref.json" --config "$W/sweep.json" --out "$W/ref" --device cpu > /dev/null
t1=$(date +%s)
# Grid order: arch outer, seed inner: sae_00..02 topk seeds 0-2, sae_03..05 matryoshka seeds 0-2.
T="$W/topk"
"$BIN" -q sae bench --embeddings "$SHARED/embeddings_mnv1.h5" --labels "$SHARED/meta.csv" --columns "$COLS" \
  --saes "$T/sae_00.h5" "$T/sae_03.h5" "$W/ref/sae_00.h5" \
  --seeds-of "$T/sae_00.h5,$T/sae_01.h5,$T/sae_02.h5" --seeds-of "$T/sae_03.h5,$T/sae_04.h5,$T/sae_05.h5" \
  --spurious hair:melanoma,ruler:melanoma --holdout 0.2 --seed 0 --device cpu --out "$OUT"
t2=$(date +%s)
echo "training (7 SAEs): $((t1 - t0)) s; bench: $((t2 - t1)) s"
cat "$OUT/bench.md"
