#!/usr/bin/env bash
# The libFuzzer targets of tests/fuzz (a standalone clang project: no libtorch), for CTest's `fuzz`
# label and for long runs by hand.
#   run_fuzz.sh build                   configure + build every target in $STUDIO_FUZZ_BUILD
#   run_fuzz.sh fuzz_TARGET [SECONDS]   fuzz for SECONDS (default $FUZZ_SECONDS, else 20) from a copy
#                                       of the seed corpus tests/fuzz/corpus/TARGET (never written)
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
# shellcheck disable=SC2086
exec "$exe" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$build/crash-${what#fuzz_}-" ${FUZZ_FLAGS:-} "$corpus"
