#!/usr/bin/env bash
# The newcomer's first command: installs dependencies, builds studio, and runs the quickstart
# in samples/quickstart/ (the image stage end to end; a random-weight starter model, whose
# picture is noise, when models/ holds no real weights).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
exec ./samples/quickstart/run.sh
