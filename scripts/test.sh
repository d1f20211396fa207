#!/usr/bin/env bash
# The test suite, from a fresh machine: installs dependencies, builds, runs every CTest test except
# those labelled gpu (add `-L gpu` yourself on a CUDA build). Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
# The browser test's playwright-core (tests/browser/package-lock.json; it drives Debian's chromium,
# so no browser is downloaded), when missing or older than the lock.
if [ ! -d tests/browser/node_modules ] || [ tests/browser/package-lock.json -nt tests/browser/node_modules ]; then
  npm ci --prefix tests/browser --no-audit --no-fund
fi
BUILD_DIR="${STUDIO_BUILD_DIR:-build}"
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 900 -j "${STUDIO_JOBS:-$(nproc)}" -LE gpu "$@"
