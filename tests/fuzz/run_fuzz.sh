#!/usr/bin/env bash
# The libFuzzer targets of tests/fuzz (a standalone clang project: no libtorch), for CTest's `fuzz`
# label and for long runs by hand.
#   run_fuzz.sh build                   configure + build every target in $STUDIO_FUZZ_BUILD
#   run_fuzz.sh fuzz_TARGET [SECONDS]   fuzz for SECONDS (default $FUZZ_SECONDS, else 20) from a copy
#                                       of the seed corpus tests/fuzz/corpus/TARGET (never written),
#                                       plus the matching malformed samples of ../shared/data as
#                                       read-only seed folders when they exist (never copied)
# Extra libFuzzer flags: FUZZ_FLAGS, e.g. FUZZ_FLAGS=-runs=1000000. A finding (crash, sanitizer
# report, an exception other than studio::Error, a timeout) exits non-zero and leaves the input as
# $STUDIO_FUZZ_BUILD/crash-TARGET-*: add it to the corpus once fixed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${STUDIO_FUZZ_BUILD:-$here/../../build/fuzz-build}"
what="${1:?usage: run_fuzz.sh build | fuzz_TARGET [SECONDS]}"

if [ "$what" = build ]; then
  cmake -S "$here" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ >/dev/null
  exec cmake --build "$build"
fi

seconds="${2:-${FUZZ_SECONDS:-20}}"
exe="$build/$what"
[ -x "$exe" ] || { echo "run_fuzz: $exe is not built (run_fuzz.sh build first)" >&2; exit 1; }
corpus="$build/corpus-${what#fuzz_}"
mkdir -p "$corpus"
if [ -d "$here/corpus/${what#fuzz_}" ]; then
  cp -n "$here/corpus/${what#fuzz_}"/* "$corpus"/ 2>/dev/null || true
fi
# Extra seed folders (libFuzzer reads every folder given; it writes new inputs only to the first):
# the shared test data's broken and real files for the importers.
data="${STUDIO_DATA:-$here/../../../shared/data}"
extra=()
# Per-target default flags (FUZZ_FLAGS, given after them, overrides): the photos are up to 470 kB;
# mutating whole photos runs at a few inputs per second, so image inputs are capped at 64 kB
# (longer seeds are read truncated: more broken files to start from).
target_flags=()
case "$what" in
  fuzz_mesh_import) candidates=("$data/meshes/bad") ;;
  fuzz_image_import) candidates=("$data/photos"); target_flags=(-max_len=65536) ;;
  *) candidates=() ;;
esac
for d in "${candidates[@]}"; do
  if [ -d "$d" ]; then extra+=("$d"); fi
done
# Leaks inside a system library the importer uses (not studio's code) are suppressed for that
# target only: tests/fuzz/lsan-TARGET.supp names the library; leaks in studio's code still fail.
# Full stack unwinding on malloc lets LeakSanitizer see the library's frames under libstdc++'s
# (the system libraries have no frame pointers), at some cost in speed; the stored stacks are cut
# to 16 frames and the quarantine to 64 MB so ASan's own memory stays well under the 2 GB limit.
if [ -f "$here/lsan-${what#fuzz_}.supp" ]; then
  export LSAN_OPTIONS="suppressions=$here/lsan-${what#fuzz_}.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
  export ASAN_OPTIONS="fast_unwind_on_malloc=0:malloc_context_size=16:quarantine_size_mb=64${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
fi
# shellcheck disable=SC2086
exec "$exe" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$build/crash-${what#fuzz_}-" "${target_flags[@]}" ${FUZZ_FLAGS:-} "$corpus" "${extra[@]}"
