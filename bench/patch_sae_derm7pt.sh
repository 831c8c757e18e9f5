#!/usr/bin/env bash
# Pooled vs patch SAEs on derm7pt (../shared): the MobileNet V1 feature map (7 x 7 x 1024 per
# image) embedded with --patches; a pooled SAE on the 1011 image means and a patch SAE on the
# 49,539 patches, same size, k, batch and number of steps; image activations of the patch SAE
# pooled by max and by mean; per column the best latent chosen on training images and its AUROC
# on held-out images (bench/concept_heldout: one seeded 80/20 image split, the same for all).
# Usage: bench/patch_sae_derm7pt.sh [BUILD_DIR] [ARCH topk] [STEPS 980]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$ROOT/build}"
ARCH="${2:-topk}"
STEPS="${3:-980}"
BIN="$BUILD/tools/conceptlab"
SHARED="$ROOT/../shared/derm7pt"
[ -f "$SHARED/encoder/mobilenet_v1_224_features.pt" ] || { echo "needs ../shared/derm7pt (not here): skipped"; exit 0; }
COLS=pigment_network,streaks,pigmentation,regression_structures,dots_and_globules,blue_whitish_veil,vascular_structures,hair,gel_bubble,ruler,dark_corner
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
"$BIN" -q embed --model "$SHARED/encoder/mobilenet_v1_224_features.pt" --csv "$SHARED/meta.csv" \
  --image-root "$SHARED/images" --out "$W/e.h5" --patches --device cpu
PATCH_EPOCHS=$(( (STEPS + 48) / 49 ))  # 49,539 patches in batches of 1,024: 49 steps an epoch
common=(--arch "$ARCH" --n-latents 2048 --k 16 --batch 1024 --seed 0 --checkpoint-every 0 --device cpu)
"$BIN" -q sae train --embeddings "$W/e.h5" --out "$W/pooled.h5" --epochs "$STEPS" "${common[@]}"
"$BIN" -q sae train --embeddings "$W/e.patches.h5" --out "$W/patch.h5" --epochs "$PATCH_EPOCHS" "${common[@]}"
"$BIN" -q sae encode --sae "$W/pooled.h5" --embeddings "$W/e.h5" --out "$W/pooled_acts.h5"
for pool in max mean; do
  "$BIN" -q sae encode --sae "$W/patch.h5" --embeddings "$W/e.patches.h5" --out "$W/patch_$pool.h5" --pool "$pool"
done
for f in pooled_acts patch_max patch_mean; do
  echo "== $f"
  "$BUILD/bench/concept_heldout" "$W/$f.h5" "$SHARED/meta.csv" "$COLS"
done
