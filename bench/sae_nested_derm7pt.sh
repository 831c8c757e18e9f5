#!/usr/bin/env bash
# Plain vs nested (matryoshka) SAEs on the derm7pt embeddings in ../shared: same size, k, steps
# and seeds; prints FVU, L0, dead fraction, the mean best-latent AUROC over the annotated columns
# (and per column), where the best latents sit, and the K-latent sets against the linear probe.
# Usage: bench/sae_nested_derm7pt.sh [BUILD_DIR] [SEEDS] [EPOCHS]   (defaults: build "0 1 2" 200)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$ROOT/build}/tools/conceptlab"
SEEDS="${2:-0 1 2}"
EPOCHS="${3:-200}"
SHARED="$ROOT/../shared/derm7pt"
[ -f "$SHARED/embeddings_mnv1.h5" ] || { echo "needs ../shared/derm7pt (not here): skipped"; exit 0; }
COLS=pigment_network,streaks,pigmentation,regression_structures,dots_and_globules,blue_whitish_veil,vascular_structures,hair,gel_bubble,ruler,ink,dark_corner
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
for arch in topk matryoshka-topk; do
  for seed in $SEEDS; do
    s="$W/$arch-$seed"
    "$BIN" -q sae train --embeddings "$SHARED/embeddings_mnv1.h5" --out "$s.h5" --arch "$arch" --n-latents 2048 \
      --k 16 --batch 256 --epochs "$EPOCHS" --lr 1e-3 --seed "$seed" --checkpoint-every 0 --device cpu
    "$BIN" -q sae eval --sae "$s.h5" --embeddings "$SHARED/embeddings_mnv1.h5" --prefixes 16,64,256 --json > "$s.eval.json"
    "$BIN" -q sae encode --sae "$s.h5" --embeddings "$SHARED/embeddings_mnv1.h5" --out "$s.acts.h5" --device cpu
    "$BIN" -q explain match --activations "$s.acts.h5" --labels "$SHARED/meta.csv" --columns "$COLS" \
      --embeddings "$SHARED/embeddings_mnv1.h5" --names-out "$s.names.h5" --json > "$s.match.json"
  done
done
/usr/bin/python3 - "$W" "$COLS" "$SEEDS" <<'EOF'
import json, statistics, sys
w, cols, seeds = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split()
for arch in ("topk", "matryoshka-topk"):
    rows = []
    for seed in seeds:
        ev = json.load(open(f"{w}/{arch}-{seed}.eval.json"))
        m = json.load(open(f"{w}/{arch}-{seed}.match.json"))
        best = {c["concept"]: c["best"][0] for c in m["concepts"]}
        sets = {c["concept"]: (c["set_auroc"], c["probe_auroc"]) for c in m["concepts"]}
        rows.append((ev, best, sets))
    mean = lambda xs: statistics.mean(xs)
    print(f"\n{arch}: {len(rows)} seeds")
    print(f"  FVU {mean([r[0]['fvu'] for r in rows]):.4f}  L0 {mean([r[0]['l0'] for r in rows]):.1f}  "
          f"dead {mean([r[0]['dead_fraction'] for r in rows]):.3f}  FVU of latents [0,16) "
          f"{mean([r[0]['fvu_prefix']['16'] for r in rows]):.3f}, [0,64) {mean([r[0]['fvu_prefix']['64'] for r in rows]):.3f}")
    per_seed = [mean([r[1][c]["auroc"] for c in cols]) for r in rows]
    print(f"  mean best-latent AUROC {mean(per_seed):.3f} (per seed {', '.join(f'{v:.3f}' for v in per_seed)})")
    print(f"  best latents below 64: {mean([sum(r[1][c]['latent'] < 64 for c in cols) for r in rows]):.1f} of {len(cols)}")
    print(f"  K-latent set AUROC {mean([mean([r[2][c][0] for c in cols]) for r in rows]):.3f} "
          f"vs probe {mean([mean([r[2][c][1] for c in cols]) for r in rows]):.3f}")
    for c in cols:
        print(f"    {c:24s} best {mean([r[1][c]['auroc'] for r in rows]):.3f}  set {mean([r[2][c][0] for r in rows]):.3f}"
              f"  probe {mean([r[2][c][1] for r in rows]):.3f}")
EOF
