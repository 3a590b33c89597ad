#!/usr/bin/env bash
# Builds the real SeaweedFS `weed` binary from the Go module proxy with the machine's Go, into a
# cache outside the source tree, and prints the binary's path on stdout (progress goes to stderr).
#
#   scripts/build-weed.sh            build (or reuse) and print the path
#   scripts/build-weed.sh --version  print the pinned version and exit
#   scripts/build-weed.sh --mount    the same for a weed whose `weed mount` still has -rdma.enabled
#                                    and -rdma.sidecar (see below); --mount-version prints its pin
#
# weed mount's RDMA client (weed/mount/rdma_client.go, the -rdma.* flags) is in SeaweedFS's
# 2026-08-22 snapshot (commit WEED_MOUNT_COMMIT below) and gone from the pinned 4.53, and the Go
# module proxy here serves only the pinned version. So --mount builds from a SeaweedFS source tree
# at that commit that you provide: SWRDMA_WEED_MOUNT_SRC=DIR (a checkout, or `git archive` of
# go.mod go.sum weed telemetry/proto), into $CACHE/weed-mount-<commit>/bin/weed, reused when
# present; exit 77 when neither the binary nor the source is there.
#
# The version below is the one place it is pinned. Nothing is written into the repository:
#   $SWRDMA_CACHE (default /var/cache/swrdma, or ~/.cache/swrdma when that is not writable)
#     weed-<version>/bin/weed         the binary (reused when present)
#     weed-<version>/build.log        go's output of the last build
#     go/{path,modcache,buildcache}   GOPATH, GOMODCACHE, GOCACHE of this build
# A fresh build downloads ~200 modules and compiles for several minutes on 2 cores.
# Environment: SWRDMA_CACHE (above), GO (the go binary, default `go`), GOPROXY (go's default).
# Exit status: 0 built or cached, 77 no Go toolchain here, 1 the build failed.
set -euo pipefail

WEED_MODULE=github.com/seaweedfs/seaweedfs/weed
WEED_VERSION=v0.0.0-20261109003541-7506e5f91cd6
WEED_MOUNT_COMMIT=cc8364a03ebf5cf9f8eab3315ded2000cd07fff6  # 2026-08-22, has weed mount -rdma.*

MODE=proxy
case "${1:-}" in
  --version) echo "$WEED_VERSION"; exit 0 ;;
  --mount-version) echo "seaweedfs@${WEED_MOUNT_COMMIT:0:12} (2026-08-22, source tree)"; exit 0 ;;
  --mount) MODE=mount ;;
  "") ;;
  *) echo "usage: $0 [--version|--mount|--mount-version]" >&2; exit 2 ;;
esac

default_cache=/var/cache/swrdma
if ! mkdir -p "$default_cache" 2>/dev/null || [[ ! -w "$default_cache" ]]; then
  default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/swrdma
fi
CACHE=${SWRDMA_CACHE:-$default_cache}
DEST=$CACHE/weed-$WEED_VERSION
if [[ $MODE == mount ]]; then
  DEST=$CACHE/weed-mount-${WEED_MOUNT_COMMIT:0:12}
  WEED_VERSION="(mount) ${WEED_MOUNT_COMMIT:0:12}"
fi
BIN=$DEST/bin/weed

if [[ -x "$BIN" ]]; then
  echo "weed $WEED_VERSION: cached at $BIN" >&2
  echo "$BIN"
  exit 0
fi
if [[ $MODE == mount ]]; then
  SRC=${SWRDMA_WEED_MOUNT_SRC:-}
  if [[ -z "$SRC" || ! -f "$SRC/go.mod" || ! -f "$SRC/weed/mount/rdma_client.go" ]]; then
    echo "build-weed --mount: no cached $BIN, and SWRDMA_WEED_MOUNT_SRC='$SRC' is not a SeaweedFS" \
      "source tree with weed/mount/rdma_client.go. Get one at commit $WEED_MOUNT_COMMIT" \
      "(git clone https://github.com/seaweedfs/seaweedfs; git checkout $WEED_MOUNT_COMMIT)" \
      "and set SWRDMA_WEED_MOUNT_SRC to it." >&2
    exit 77
  fi
fi

GO=${GO:-go}
if ! command -v "$GO" >/dev/null; then
  echo "build-weed: no Go toolchain ('$GO' not found); install Go >= 1.24 (https://go.dev/dl/)" \
    "or set GO=/path/to/go" >&2
  exit 77
fi

mkdir -p "$DEST/bin" "$CACHE/go/path" "$CACHE/go/modcache" "$CACHE/go/buildcache"
LOG=$DEST/build.log
echo "weed $WEED_VERSION: building with $("$GO" version) into $DEST (log: $LOG)" >&2
start=$SECONDS
# Build into a temporary directory and rename: a half-written binary is never taken as cached.
tmpbin=$(mktemp -d "$DEST/.gobin.XXXXXX")
trap 'rm -rf "$tmpbin"' EXIT
set +e
(
  export GOPATH=$CACHE/go/path GOMODCACHE=$CACHE/go/modcache GOCACHE=$CACHE/go/buildcache
  export GOFLAGS="-buildvcs=false -mod=readonly" CGO_ENABLED=0
  # `go install module@version` refuses modules whose go.mod has replace directives (seaweedfs
  # has one), so fetch the module's source from the proxy and build it as the main module, the
  # way `go build` in a checkout would, honouring its go.mod and go.sum.
  if [[ $MODE == mount ]]; then
    src=$SRC
  else
    echo "go: downloading $WEED_MODULE@$WEED_VERSION (module source)"
    src=$("$GO" mod download -json "${WEED_MODULE%/weed}@$WEED_VERSION" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || exit 1
  fi
  [[ -n "$src" && -d "$src/weed" ]] || { echo "module source not found in go mod download output"; exit 1; }
  cd "$src" && "$GO" build -v -trimpath -o "$tmpbin/weed" ./weed
) 2>&1 | tee "$LOG" | awk '
  /^go: downloading/ { d++; if (d % 25 == 1) { printf "  downloading modules... %d\n", d > "/dev/stderr" } next }
  /^[a-zA-Z0-9._~-]+(\/[^ ]+)?$/ { c++; if (c % 100 == 0) { printf "  compiled %d packages\n", c > "/dev/stderr" } next }
  { print "  " $0 > "/dev/stderr" }'
rc=${PIPESTATUS[0]}
set -e
if [[ $rc -ne 0 || ! -x "$tmpbin/weed" ]]; then
  echo "build-weed: 'go install $WEED_MODULE@$WEED_VERSION' (go build of the module source) failed (exit $rc); the last lines of" \
    "$LOG are above. Check network access to \$GOPROXY (${GOPROXY:-$("$GO" env GOPROXY)}) and free" \
    "space under $CACHE, then rerun." >&2
  tail -n 20 "$LOG" >&2
  exit 1
fi
mv "$tmpbin/weed" "$BIN"
echo "weed $WEED_VERSION: built in $((SECONDS - start)) s -> $BIN" >&2
echo "$BIN"
