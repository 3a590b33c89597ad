#!/usr/bin/env bash
# Runs the needle index benchmark from a build directory and keeps its JSON beside the build:
#   scripts/bench-index.sh <build-dir> [swrdma-bench-index flags...]
# SWRDMA_BENCH_ENTRIES (default 1000000,10000000) and SWRDMA_BENCH_THREADS (default 2) set the
# volume sizes and lookup threads; extra flags are passed through (see --help).
set -euo pipefail
BUILD=${1:?usage: scripts/bench-index.sh <build-dir> [flags...]}
shift
BIN="$BUILD/bench/swrdma-bench-index"
if [ ! -x "$BIN" ]; then
  echo "error: $BIN is not built; run: cmake --build $BUILD --target swrdma-bench-index" >&2
  exit 1
fi
OUT="$BUILD/bench-index.json"
"$BIN" --entries "${SWRDMA_BENCH_ENTRIES:-1000000,10000000}" \
  --threads "${SWRDMA_BENCH_THREADS:-2}" "$@" >"$OUT"
cat "$OUT"
echo "bench-index: results in $OUT" >&2
