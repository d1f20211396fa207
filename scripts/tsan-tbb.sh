#!/usr/bin/env bash
# Builds oneTBB with ThreadSanitizer for the `tsan` preset (CMakePresets.json): TSan sees only the
# synchronisation of instrumented code, and Debian's libtbb is not, so every hand-over between flow
# graph tasks (made inside libtbb's scheduler) would be reported as a race.
# The source is Debian's own (the version installed, checked against Debian's SHA-256), built into
# build-tsan/tbb; the preset's TBB_DIR points there. Idempotent: an existing build is kept.
#   scripts/tsan-tbb.sh && cmake --preset tsan && cmake --build --preset tsan && ctest --preset tsan
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$root/build-tsan/tbb"
version=2021.8.0
sha256=7e9111b8bb59c8800bf6d0b06afe7b0891937443d2dae1ee1101c8e2ede6a7ef
url="http://deb.debian.org/debian/pool/main/o/onetbb/onetbb_${version}.orig.tar.xz"

if [ -f "$prefix/lib/cmake/TBB/TBBConfig.cmake" ]; then
  echo "tsan-tbb: $prefix is already built"
  exit 0
fi
for tool in curl xz cmake ninja; do
  command -v "$tool" >/dev/null || {
    echo "tsan-tbb: $tool is missing (run scripts/install-deps.sh)" >&2
    exit 1
  }
done
work="$root/build-tsan/tbb-src"
mkdir -p "$work"
tarball="$work/onetbb_${version}.orig.tar.xz"
if [ ! -f "$tarball" ]; then
  echo "tsan-tbb: downloading $url"
  curl -fsSL -o "$tarball.part" "$url"
  mv "$tarball.part" "$tarball"
fi
echo "$sha256  $tarball" | sha256sum -c --quiet - || {
  echo "tsan-tbb: $tarball does not match Debian's SHA-256; delete it and run again" >&2
  exit 1
}
rm -rf "$work/src" && mkdir -p "$work/src"
tar -xJf "$tarball" -C "$work/src" --strip-components=1
cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTBB_SANITIZE=thread -DTBB_TEST=OFF -DTBB_EXAMPLES=OFF -DTBB_STRICT=OFF -DTBBMALLOC_BUILD=OFF \
  -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib >/dev/null
cmake --build "$work/build"
cmake --install "$work/build" >/dev/null
echo "tsan-tbb: installed in $prefix"
