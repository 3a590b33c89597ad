#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang-19 and runs each over its seed corpus for a
# bounded time, failing on any crash, sanitizer report, leak, timeout or out-of-memory.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 10; `make fuzz FUZZ_SECONDS=600`: longer)
#
# Installs nothing (scripts/install-deps.sh does: clang-19 libclang-rt-19-dev); exits 77 (skip)
# when clang++-19 is missing. Environment:
#   FUZZ_BUILD    build directory (default <repo>/build-fuzz), configured with SWRDMA_FUZZ=ON and
#                 only the libraries the targets need are built
#   FUZZ_TARGETS  space-separated subset of the targets below
#   FUZZ_JOBS     build parallelism (default nproc)
#   FUZZ_CXX      the clang++ to use (default clang++-19); FUZZ_CC the clang (default clang-19)
# Inputs the fuzzers find are kept in $FUZZ_BUILD/fuzz-corpus/<target> (the seeds in
# fuzz/corpus/<target> are never written to); crashing inputs land in
# $FUZZ_BUILD/fuzz-artifacts/<target>/. Reproduce one with: $FUZZ_BUILD/fuzz/<target> <file>
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${1:-10}
[[ "$SECS" =~ ^[0-9]+$ && "$SECS" -gt 0 ]] || { echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2; }
BUILD=${FUZZ_BUILD:-$ROOT/build-fuzz}
CXX=${FUZZ_CXX:-clang++-19}
JOBS=${FUZZ_JOBS:-$(nproc)}
read -r -a TARGETS <<<"${FUZZ_TARGETS:-fuzz_file_id fuzz_needle fuzz_idx fuzz_wire fuzz_jwt \
fuzz_http_parser fuzz_agent_handler fuzz_read_messages fuzz_tcp_reply fuzz_ec fuzz_verifier}"

if ! command -v "$CXX" >/dev/null; then
  echo "SKIP: $CXX not found; install clang-19 and libclang-rt-19-dev (scripts/install-deps.sh)" >&2
  exit 77
fi

build_start=$SECONDS
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  # clang-19 for C too: scripts/sanitize.sh builds the tests (a C one among them) in this tree.
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$CXX" \
    -DCMAKE_C_COMPILER="${FUZZ_CC:-clang-19}" -DSWRDMA_FUZZ=ON -DSWRDMA_BUILD_TESTS=OFF \
    -DSWRDMA_BUILD_BENCH=OFF >/dev/null
else
  # An existing tree (options kept): configure again, so targets added since are known to make.
  cmake -S "$ROOT" -B "$BUILD" >/dev/null
fi
# The build's output goes to a log, shown only when it fails: CI keeps the last lines of a failing
# test's output, and those must be the fuzzers' verdicts, not make's chatter.
mkdir -p "$BUILD"
if ! cmake --build "$BUILD" -j"$JOBS" --target "${TARGETS[@]}" >"$BUILD/fuzz-build.log" 2>&1; then
  echo "FAIL: building the fuzz targets failed; last lines of $BUILD/fuzz-build.log:" >&2
  grep -E 'error|Error' "$BUILD/fuzz-build.log" | head -n 20 >&2
  tail -n 30 "$BUILD/fuzz-build.log" >&2
  exit 1
fi
echo "fuzz build: $((SECONDS - build_start)) s ($BUILD/fuzz-build.log)" >&2

# UBSan reports are fatal (-fno-sanitize-recover); ASan/LSan stop at the first report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
summary=()
for t in "${TARGETS[@]}"; do
  bin="$BUILD/fuzz/$t"
  seeds="$ROOT/fuzz/corpus/$t"
  work="$BUILD/fuzz-corpus/$t"
  artifacts="$BUILD/fuzz-artifacts/$t"
  log="$BUILD/fuzz-logs/$t.log"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  # libFuzzer keeps every input it ever reduced; merge the working corpus down to the ones that
  # add coverage once it grows, so start-up stays short in `make test`.
  if (($(find "$work" -type f | wc -l) > 3000)); then
    rm -rf "$work.merge" && mkdir -p "$work.merge"
    if timeout -k 10 300 "$bin" -merge=1 -rss_limit_mb=2048 "$work.merge" "$work" \
      >"$log.merge" 2>&1; then
      rm -rf "$work" && mv "$work.merge" "$work"
    fi
  fi
  rc=0
  # -timeout: one input taking over 10 s is a hang; the outer timeout bounds start-up and exit too.
  timeout -k 10 $((SECS + 120)) "$bin" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" "$seeds" \
    >"$log" 2>&1 || rc=$?
  # The last status line: "#123 DONE cov: 456 ft: 789 corp: 12/3Kb ... exec/s: 1000 ..."
  stats=$(grep -E '^#[0-9]+' "$log" | tail -n1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$stats")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$stats")
  execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$stats")
  rate=$(sed -n 's/.* exec\/s: \([0-9]*\).*/\1/p' <<<"$stats")
  corp=$(find "$work" -type f | wc -l)
  summary+=("$(printf '%-20s rc=%-3s runs=%-9s exec/s=%-7s cov=%-6s ft=%-6s corpus=%s' \
    "$t" "$rc" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$corp")")
  if ((rc != 0)); then
    failed+=("$t")
    echo "FAIL: $t exited with status $rc; last lines of $log:" >&2
    tail -n 25 "$log" >&2
  fi
done
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzzing found problems in: ${failed[*]} (inputs in $BUILD/fuzz-artifacts/)" >&2
  exit 1
fi
echo "fuzzing: ${#TARGETS[@]} targets, $SECS s each, no crashes"
