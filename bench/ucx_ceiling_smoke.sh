#!/usr/bin/env bash
# Smoke test of swrdma-bench-ucx (ctest bench_ucx_smoke): a few gets over tcp and over shared
# memory, and a few copies; checks the JSON fields exist and ops > 0. No timing assertions.
#   bench/ucx_ceiling_smoke.sh PATH/TO/swrdma-bench-ucx
set -euo pipefail
bin=${1:?swrdma-bench-ucx binary}
command -v jq >/dev/null || { echo "jq not installed (apt-get install jq); skipping"; exit 77; }

check() {  # check JSON... : every field present and numeric where it should be, ops > 0
  local json=$1
  echo "$json"
  echo "$json" | jq -e '
    (.size | type == "number") and (.window | type == "number") and (.transport | type == "string")
    and (.ops_per_sec | type == "number") and (.bytes_per_sec | type == "number")
    and (.p50_us | type == "number") and (.p99_us | type == "number")
    and .ops > 0 and .ops_per_sec > 0' >/dev/null || { echo "bad output: $json" >&2; exit 1; }
}

for tls in tcp posix,sysv,cma; do
  for window in 1 8; do
    check "$(timeout 60 "$bin" --transports "$tls" --size 4K --window "$window" --ops 200)"
  done
done
check "$(timeout 60 "$bin" --transports tcp --size 1M --window 2 --ops 10 --buffer-mib 8)"
check "$(timeout 60 "$bin" --mode memcpy --size 1M --ops 50)"
echo "ok"
