#!/usr/bin/env bash
# Quickstart: the batch job samples/quickstart/job.json (3 products x 2 channels, a caption and a
# product photo each, plus a product photo of samples/quickstart/photos edited by inversion with
# the product kept) run by `studio run`, then its KPI report.
#
# The job reads its models from models/starter-tiny-random (a diffusers pipeline) and
# models/llada-starter-tiny-random (a LLaDA text model). When they are missing this script writes
# them with random weights (`studio models init`), so the job runs end to end on any machine
# without downloading anything: those captions and pictures are noise, by construction, and the
# script says so. For real assets put trained weights under models/ (see models/README.md) and
# point the job's "models" at them.
set -euo pipefail
cd "$(dirname "$0")/../.."
STUDIO="${STUDIO_BUILD_DIR:-build}/pipeline/studio"
JOB=samples/quickstart/job.json
OUT=out/quickstart/job

# A folder written by `studio models init` says so in its README.md.
is_random() { head -n 1 "$1/README.md" 2>/dev/null | grep -q '^# Random weights'; }

"$STUDIO" --version
echo
if [ ! -f models/starter-tiny-random/model_index.json ]; then
  echo "quickstart: writing a random-weight starter image model (models/starter-tiny-random)"
  "$STUDIO" models init --arch configs/starter-tiny --out models/starter-tiny-random
fi
if [ ! -f models/llada-starter-tiny-random/config.json ]; then
  echo "quickstart: writing a random-weight starter text model (models/llada-starter-tiny-random)"
  "$STUDIO" models init --arch configs/llada-starter-tiny --out models/llada-starter-tiny-random
fi
echo
"$STUDIO" plan "$JOB"
echo
# A finished earlier run is continued (nothing is made twice); a fresh one starts otherwise.
resume=()
[ -d "$OUT/journal" ] && resume=(--resume)
start=$(date +%s)
set +e
"$STUDIO" run "$JOB" "${resume[@]}"
rc=$?
set -e
echo
"$STUDIO" kpi report "$OUT"
echo
echo "quickstart: studio run finished in $(( $(date +%s) - start )) s (exit code $rc: 0 all made,"
echo "  1 some items failed, each recorded with its stage and reason)"
echo "  assets:   $OUT/<item>/<channel>/caption-*.txt, visual-*.png and edit-*.png, each with a sidecar .json"
echo "  journal:  $OUT/journal/ (what is safely made; 'studio run $JOB --resume' continues)"
echo "  KPIs:     $OUT/ledger/, $OUT/kpi.csv and $OUT/report.html (open it in a browser)"
if is_random models/starter-tiny-random || is_random models/llada-starter-tiny-random; then
  echo
  echo "quickstart: random-weight starter models: the job runs end to end, but the captions and"
  echo "  pictures are noise (captions that need the model to meet a rule fail; rules a fixed"
  echo "  edit can meet, such as hashtags and brand spellings, pass). Put trained weights under"
  echo "  models/ for real assets (see models/README.md)."
fi
