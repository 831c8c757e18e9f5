#!/usr/bin/env bash
# Regenerates the README's viewer screenshots (assets/screenshots/*.png) from a demo workspace:
# `conceptlab demo --out demo-out` first. Headless (Xvfb + Mesa). The latent shown is the one the
# demo named hair (the first of its hair intervention), and Intervene zeroes the hair latents.
# Usage: scripts/screenshots.sh [WORKSPACE demo-out] [BUILD_DIR build]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WS="${1:-demo-out}"
BIN="${2:-$ROOT/build}/tools/conceptlab"
OUT="$ROOT/assets/screenshots"
[ -f "$WS/report.json" ] || { echo "$WS: no report.json (run conceptlab demo --out $WS first)" >&2; exit 1; }
read -r HAIR LATENTS IMAGE < <(python3 - "$WS" <<'PY'
import json, sys
ws = sys.argv[1]
r = json.load(open(f"{ws}/report.json"))
hair = next(iv for iv in r["interventions"] if iv["concept"] == "hair")["latents"]
loc = json.load(open(f"{ws}/localize.json")) if "localize" in r else None
import csv
rows = list(csv.DictReader(open(r["config"]["data"]["csv"])))
image = next(x["ImageID"] for x in rows if x["split"] == "test" and x["hair"] == "1" and x["malignant"] == "1")
print(hair[0], ",".join(map(str, hair)), image)
PY
)
EDITS="$(mktemp --suffix .json)"
trap 'rm -f "$EDITS"' EXIT
python3 - "$LATENTS" > "$EDITS" <<'PY'
import json, sys
print(json.dumps({"format": "conceptlab.edits", "schema_version": 1,
                  "edits": [{"latent": int(l), "op": "zero"} for l in sys.argv[1].split(",")]}))
PY
shot() { xvfb-run -a -s "-screen 0 1920x1200x24" "$BIN" -q view "$WS" --size 1600x1000 --screenshot "$OUT/$1.png" "${@:2}"; }
shot overview --panel overview
shot latents --panel latents --select "latent=$HAIR"
shot latent --panel latent --select "latent=$HAIR"
shot global --panel global
shot image --panel image --select "image=$IMAGE"
shot image_overlay --panel image --select "image=$IMAGE" --overlay attribution
shot latent_overlay --panel latent --select "latent=$HAIR" --overlay latent
shot intervene --panel intervene --edits "$EDITS"
shot subgroups --panel subgroups
shot curves --panel curves
echo "hair latent $HAIR (zeroed: $LATENTS), image $IMAGE -> $OUT"
