#!/usr/bin/env bash
# Quickstart: what studio can do on this machine today. It checks the build and recognises the
# checkpoints you placed under models/ (see README.md, "Models").
#
# The batch job itself (`studio run samples/quickstart/job.json`: captions, product photos, KPI
# report) needs the pipeline, text and image stages, which are not built yet (issues #4, #6, #7);
# until they land this script says so instead of pretending to generate anything.
set -euo pipefail
cd "$(dirname "$0")/../.."
STUDIO="${STUDIO_BUILD_DIR:-build}/pipeline/studio"

"$STUDIO" --version
echo
shopt -s nullglob
found=0
for d in models/*/; do
  found=1
  "$STUDIO" models inspect "$d" || echo "quickstart: $d is not a usable checkpoint (see above)"
  echo
done
if [ "$found" -eq 0 ]; then
  echo "quickstart: no checkpoints under models/ yet. Put a diffusers pipeline folder there, e.g."
  echo "  models/stable-diffusion-v1-5/{model_index.json,unet/,vae/,text_encoder/,tokenizer/,scheduler/}"
  echo "and run: $STUDIO models inspect models/stable-diffusion-v1-5"
fi
echo
echo "quickstart: generation (studio run samples/quickstart/job.json) is not available yet:"
echo "  the text, image and batch stages are still being built. Nothing was generated."
