#!/usr/bin/env bash
# The test suite, from a fresh machine: installs dependencies, builds, runs every CTest test except
# those labelled gpu (add `-L gpu` yourself on a CUDA build). Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
BUILD_DIR="${STUDIO_BUILD_DIR:-build}"
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 900 -j "${STUDIO_JOBS:-$(nproc)}" -LE gpu "$@"
