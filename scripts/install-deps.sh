#!/usr/bin/env bash
# Installs studio's build and test dependencies from Debian 12 packages. Idempotent: it runs
# apt-get only when a package is missing. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git
  libtorch-dev libopenblas0-pthread
  nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev libssl-dev
  libopencv-dev libopenimageio-dev openimageio-tools libexiv2-dev exiv2 libwebp-dev zlib1g-dev
  liblcms2-dev
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev ffmpeg
  libassimp-dev libtbb-dev
  catch2
  # the fuzz tests (tests/fuzz): clang, and libFuzzer's runtime, which clang only recommends
  clang libclang-rt-14-dev
  valgrind  # the video I/O leak test (tests/leak/) runs under it
  # the cluster tests' private single-node Slurm (scripts/local-slurm.sh)
  slurmctld slurmd slurm-client munge
  # the sbatch samples forward signals with pkill (procps)
  procps
  # `studio review` (cpp-httplib) and its browser test (headless chromium, node + playwright-core)
  libcpp-httplib-dev chromium nodejs
)
# npm only where there is no npm command: a nodejs from elsewhere (nodesource) brings its own, and
# Debian's npm package would conflict with it.
if ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
