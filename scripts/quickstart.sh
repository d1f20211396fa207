#!/usr/bin/env bash
# The newcomer's first command: installs dependencies, builds studio, and runs the quickstart
# job in samples/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
exec ./samples/quickstart/run.sh
