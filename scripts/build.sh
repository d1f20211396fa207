#!/usr/bin/env bash
# Configures and builds studio into build/ (or $STUDIO_BUILD_DIR) with Ninja, ccache when present.
# Extra arguments go to cmake (e.g. -DCMAKE_PREFIX_PATH=... for a CUDA libtorch).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${STUDIO_BUILD_DIR:-build}"
JOBS="${STUDIO_JOBS:-$(nproc)}"
if [ ! -f "$BUILD_DIR/build.ninja" ] || [ $# -gt 0 ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${STUDIO_BUILD_TYPE:-RelWithDebInfo}" "$@"
fi
cmake --build "$BUILD_DIR" -j "$JOBS"
