#!/usr/bin/env bash
# Submits a studio job to Slurm as an array of N shards (at most K running at once) plus a merge
# job that runs when all of them ended, and prints both job ids.
#   samples/slurm/submit.sh JOB_FILE RUN_DIR N [K] [extra sbatch options, e.g. -p gpu]
# RUN_DIR is the job's output folder (its "output", default out/<name> beside the job file);
# the merged ledger and report go to RUN_DIR-merged. Set STUDIO to the studio binary's path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
JOB="${1:?usage: submit.sh JOB_FILE RUN_DIR N [K] [sbatch options]}"
RUN_DIR="${2:?usage: submit.sh JOB_FILE RUN_DIR N [K] [sbatch options]}"
N="${3:?usage: submit.sh JOB_FILE RUN_DIR N [K] [sbatch options]}"
K="${4:-$N}"
shift $(( $# < 4 ? $# : 4 ))
script="$here/studio-array.sbatch"
[ "${STUDIO_GPU:-0}" = 1 ] && script="$here/studio-array-gpu.sbatch"
array=$(sbatch --parsable --array="0-$((N - 1))%$K" --export=ALL "$@" "$script" "$JOB")
merge=$(sbatch --parsable --dependency="afterany:$array" --export=ALL "$@" \
  "$here/studio-merge.sbatch" "$RUN_DIR" "$RUN_DIR-merged")
echo "array job $array ($N shards, at most $K at once); merge job $merge -> $RUN_DIR-merged"
