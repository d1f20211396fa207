#!/usr/bin/env bash
# Quickstart: what studio can do on this machine today. It picks a diffusers pipeline under
# models/ (see README.md, "Models"), summarises it and makes one product photo with the image
# stage: out/quickstart/mug.png, its sidecar JSON and the metadata inside the PNG.
#
# With no model under models/ it first writes a random-weight starter pipeline
# (`studio models init --arch configs/starter-tiny`), so the image stage runs end to end on any
# machine without downloading anything: that picture is noise, by construction. Put real Stable
# Diffusion weights under models/ and the same command makes a real photo.
#
# The batch job itself (`studio run samples/quickstart/job.json`: captions, product photos, KPI
# report) needs the pipeline and text stages, which are not built yet (issues #4, #6); until they
# land this script says so instead of pretending to run it.
set -euo pipefail
cd "$(dirname "$0")/../.."
STUDIO="${STUDIO_BUILD_DIR:-build}/pipeline/studio"
STARTER=models/starter-tiny-random
PROMPT="a red ceramic mug on a wooden table, studio lighting"
OUT=out/quickstart/mug.png

# A folder written by `studio models init` says so in its README.md.
is_random() { head -n 1 "$1/README.md" 2>/dev/null | grep -q '^# Random weights'; }

"$STUDIO" --version
echo
shopt -s nullglob
pipelines=()
for d in models/*/; do
  [ -f "$d/model_index.json" ] && pipelines+=("${d%/}")
done
if [ "${#pipelines[@]}" -eq 0 ]; then
  echo "quickstart: no diffusers pipeline under models/ yet; writing a random-weight starter model"
  echo "  (for real pictures put a Stable Diffusion pipeline folder under models/:"
  echo "  see models/README.md)"
  "$STUDIO" models init --arch configs/starter-tiny --out "$STARTER"
  pipelines=("$STARTER")
  echo
fi
# The first pipeline with real weights, else the first one (a random-weight starter).
model="${pipelines[0]}"
for d in "${pipelines[@]}"; do
  if ! is_random "$d"; then model="$d"; break; fi
done
"$STUDIO" models inspect "$model"
echo

mkdir -p "$(dirname "$OUT")"
start=$(date +%s)
"$STUDIO" image --model "$model" --prompt "$PROMPT" --seed 42 --steps 20 --out "$OUT"
echo
echo "quickstart: made $OUT in $(( $(date +%s) - start )) s with $model"
echo "  image:    $OUT"
echo "  sidecar:  $OUT.json (model, seed, scheduler, timesteps, timings: all it takes to redo it)"
echo "  metadata: inside the PNG (prompt and settings as AUTOMATIC1111 writes them, IPTC"
echo "            AI-generated marker); show it with: oiiotool --info -v $OUT"
if is_random "$model"; then
  echo
  echo "quickstart: random-weight starter model: the pipeline runs end to end, the picture is"
  echo "  noise; put real Stable Diffusion weights under models/ (see models/README.md)"
fi
echo
echo "quickstart: the batch job (studio run samples/quickstart/job.json) is not available yet:"
echo "  the text and batch stages are still being built. Only the image above was generated."
