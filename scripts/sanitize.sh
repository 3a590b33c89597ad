#!/usr/bin/env bash
# One AddressSanitizer + UndefinedBehaviorSanitizer run (CI: .ci/run; by hand: make sanitize):
# builds the unit tests, the in-process agent tests and the binaries with clang-19 and runs them,
# plus the end-to-end tests that make sense under ASan (real agent and client processes, with
# LeakSanitizer checking the agent's data-plane child when it exits).
#
#   scripts/sanitize.sh [CTEST_ARGS...]   (e.g. -R 'checked_read|e2e_c_api' for a subset)
#
# The build shares the fuzz tree (build-fuzz, scripts/fuzz.sh): same compiler, same flags
# (-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined), so the libraries
# `make test` already built there for fuzz_smoke are not compiled again; only the tests, the
# binaries and the client library are added. Their coverage instrumentation costs some speed at
# run time, which these tests do not measure.
# Left out: fuzz_smoke (it runs in `make test`, on this very tree), e2e_deb_install (it would
# install an ASan-built package into the system) and the benchmarks (not built here).
#
# Installs nothing (scripts/install-deps.sh does: clang-19 libclang-rt-19-dev); exits 77 (skip)
# when clang++-19 is missing. Environment:
#   SANITIZE_BUILD  build directory (default: FUZZ_BUILD, else <repo>/build-fuzz)
#   SANITIZE_JOBS   build and ctest parallelism (default nproc)
#   ASAN_OPTIONS, UBSAN_OPTIONS   override the defaults below
#   SANITIZE_VM     0: skip the VM pass below (default 1; it skips by itself without root or qemu)
#
# Then the verbs code under ASan on a real kernel RDMA stack: tests/vm/vm-test.sh with
# SWRDMA_VM_SANITIZE=1 boots kernel 6.1 once (Soft-RoCE, the cached guest image `make test`'s
# vm_softroce built) and runs this tree's verbs_test and swrdma-verbs-vmtest there, every report
# fatal and printed symbolized. Not with CTEST_ARGS (a narrowed run is about host tests).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${SANITIZE_BUILD:-${FUZZ_BUILD:-$ROOT/build-fuzz}}
CXX=${FUZZ_CXX:-clang++-19}
CC=${FUZZ_CC:-clang-19}
JOBS=${SANITIZE_JOBS:-$(nproc)}

for c in "$CXX" "$CC"; do
  if ! command -v "$c" >/dev/null; then
    echo "SKIP: $c not found; install clang-19 and libclang-rt-19-dev (scripts/install-deps.sh)" >&2
    exit 77
  fi
done

t0=$SECONDS
# Configure every time: a tree scripts/fuzz.sh created has the tests off. The compile flags stay
# those of fuzz.sh, so nothing it built is rebuilt.
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_C_COMPILER="$CC" -DSWRDMA_FUZZ=ON -DSWRDMA_BUILD_TESTS=ON -DSWRDMA_BUILD_BENCH=OFF \
  >/dev/null || { echo "sanitize: configuring $BUILD failed (cmake output above)" >&2; exit 1; }
echo "sanitize: building tests and binaries in $BUILD (clang-19, ASan + UBSan)" >&2
cmake --build "$BUILD" -j"$JOBS" ||
  { echo "sanitize: the build in $BUILD failed (compiler output above)" >&2; exit 1; }
build_s=$((SECONDS - t0))
echo "sanitize: build took ${build_s} s" >&2

# Reports are fatal: ASan stops at the first error, UBSan too (-fno-sanitize-recover=undefined,
# halt_on_error), LeakSanitizer fails the process at exit (the agent's child: agent/heap.h).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:check_initialization_order=1:strict_string_checks=1:detect_stack_use_after_return=1}
# Symbolized reports (function, file:line) when llvm-symbolizer is installed.
if [[ -z "${ASAN_SYMBOLIZER_PATH:-}" ]] && command -v llvm-symbolizer >/dev/null; then
  ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer)
  export ASAN_SYMBOLIZER_PATH
fi
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

t1=$SECONDS
rc=0
# The VM (label vm) and real-SeaweedFS (label seaweedfs) tests run in `make test` only: they run
# prebuilt guest / weed processes and would double CI time here for little sanitizer coverage.
(cd "$BUILD" && ctest --output-on-failure --timeout 900 -j"$JOBS" \
  -E '^(fuzz_smoke|e2e_deb_install|bench_ucx_smoke)$' -LE '^(vm|seaweedfs)$' "$@") || rc=$?
echo "sanitize: build ${build_s} s, tests $((SECONDS - t1)) s" >&2
if ((rc != 0)); then
  echo "sanitize: tests failed under ASan/UBSan in $BUILD (reports above; rerun one with" \
    "cd $BUILD && ctest -R NAME --output-on-failure)" >&2
fi

if [[ "${SANITIZE_VM:-1}" == 1 && $# -eq 0 ]]; then
  t2=$SECONDS
  echo "sanitize: the verbs code under ASan in the Soft-RoCE VM (kernel 6.1)" >&2
  vm_rc=0
  SWRDMA_VM_SANITIZE=1 "$ROOT/tests/vm/vm-test.sh" "$BUILD" || vm_rc=$?
  if ((vm_rc == 77)); then
    echo "sanitize: SKIPPED the VM pass (no qemu and not root; see above)" >&2
  elif ((vm_rc != 0)); then
    echo "sanitize: the VM pass failed (sanitizer reports or test failures above; results in" \
      "$BUILD/vm-test)" >&2
    rc=1
  fi
  echo "sanitize: VM pass $((SECONDS - t2)) s" >&2
fi
exit "$rc"
