#!/usr/bin/env bash
# The Python package's tests (ctest -L python, `make test`): a cached venv, the extension built
# into the build tree with pip (scikit-build-core, incremental), pytest against real agents.
#
#   python/tests/run.sh BUILD_DIR AGENT_BINARY CLI_BINARY [PYTEST_ARGS...]
#
# The venv holds python/requirements-test.txt (from PyPI) and lives outside the tree, in
# $SWRDMA_PYENV_CACHE (default /var/cache/swrdma, else ~/.cache/swrdma) as pyenv-<hash of the
# requirements and the Python version>; it is built when missing (Debian's pip refuses system
# installs, PEP 668). The package is installed with --target into BUILD_DIR/python-site (never
# into the shared venv), built in BUILD_DIR/python-ext. Exit 77 (skipped, said loudly) when
# python3-venv is missing or PyPI cannot be reached to build the venv (a failure under CI=true or
# SWRDMA_REQUIRE_PYTHON=1); any other failure fails.
set -euo pipefail
if [[ -z "${SWRDMA_PY_UNDER_DEADLINE:-}" ]]; then  # the whole run is bounded in time
  export SWRDMA_PY_UNDER_DEADLINE=1
  exec timeout -s TERM -k 30 "${SWRDMA_PY_TIMEOUT:-1500}" bash "$0" "$@"
fi
[[ $# -ge 3 ]] || { echo "usage: $0 BUILD_DIR AGENT CLI [PYTEST_ARGS...]" >&2; exit 2; }
BUILD=$(realpath "$1")
export SWRDMA_AGENT=$(realpath "$2") SWRDMA_CLI=$(realpath "$3")
shift 3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PKG=$(dirname "$HERE")
log() { printf '[python-tests %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
skip() {  # in CI (CI=true) or with SWRDMA_REQUIRE_PYTHON=1 not running is a failure
  if [[ "${CI:-}" == "true" || "${SWRDMA_REQUIRE_PYTHON:-}" == "1" ]]; then
    log "FAIL: cannot run the Python tests: $*"
    exit 1
  fi
  log "SKIPPED, NOT RUN: $*"
  exit 77
}

PY=${SWRDMA_PYTHON:-}
if [[ -z "$PY" ]]; then
  PY=$(command -v /usr/bin/python3 || command -v python3 || true)
fi
[[ -n "$PY" ]] || skip "no python3: scripts/install-deps.sh installs python3-dev python3-venv"
"$PY" -c 'import venv, ensurepip' 2>/dev/null ||
  skip "$PY has no venv/ensurepip: apt-get install python3-venv (scripts/install-deps.sh)"

CACHE=${SWRDMA_PYENV_CACHE:-/var/cache/swrdma}
mkdir -p "$CACHE" 2>/dev/null && [[ -w "$CACHE" ]] || CACHE=$HOME/.cache/swrdma
mkdir -p "$CACHE"
KEY=$({ cat "$PKG/requirements-test.txt"; "$PY" -c 'import sys; print(sys.version)'; } |
  sha256sum | cut -c1-16)
VENV=$CACHE/pyenv-$KEY
if [[ ! -f "$VENV/.complete" ]]; then
  (
    flock -w 900 9 || { log "waited 15 min for $VENV.lock"; exit 1; }
    if [[ ! -f "$VENV/.complete" ]]; then
      log "building the test venv $VENV (pip install -r python/requirements-test.txt from PyPI)"
      rm -rf "$VENV"
      "$PY" -m venv "$VENV"
      if ! "$VENV/bin/pip" install -q --disable-pip-version-check \
        -r "$PKG/requirements-test.txt"; then
        rm -rf "$VENV"
        exit 77
      fi
      touch "$VENV/.complete"
    fi
  ) 9>"$VENV.lock" || {
    rc=$?
    ((rc == 77)) && skip "pip could not install python/requirements-test.txt (is PyPI reachable?)"
    log "FAIL: building the venv $VENV failed ($rc)"
    exit 1
  }
fi
log "venv $VENV ($("$VENV/bin/python" --version))"

# The extension, into BUILD/python-site. RelWithDebInfo as the build tree, so ccache shares the
# client library's objects with it.
SITE=$BUILD/python-site
log "building the extension (pip install ./python, build dir $BUILD/python-ext)"
t0=$SECONDS
if ! "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation \
  --upgrade --target "$SITE" \
  --config-settings=build-dir="$BUILD/python-ext" \
  --config-settings=cmake.build-type=RelWithDebInfo \
  --config-settings=build.verbose=false \
  "$PKG" >"$BUILD/python-ext.log" 2>&1; then
  tail -n 40 "$BUILD/python-ext.log" >&2
  log "FAIL: building the extension failed (log: $BUILD/python-ext.log)"
  exit 1
fi
log "extension built in $((SECONDS - t0)) s"

cd "$HERE"
export PYTHONPATH=$SITE
export PYTHONDONTWRITEBYTECODE=1
log "pytest against real agents (swrdma-agent: $SWRDMA_AGENT)"
exec "$VENV/bin/python" -m pytest -p no:cacheprovider -q -ra "$@" "$HERE"
