#!/usr/bin/env bash
# `make demo`: generate a SeaweedFS volume, export it with swrdma-agent, read every live needle
# back with `swrdma get` (over the agent's TCP read port, then over shared memory), verify, and stop.
set -euo pipefail
BUILD=${1:-build}
SWRDMA="$BUILD/client/swrdma"
AGENT="$BUILD/agent/swrdma-agent"
DATA=${DEMO_DIR:-demo-data}
NEEDLES=${DEMO_NEEDLES:-2000}

say() { printf '\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "demo: FAILED: $*" >&2; exit 1; }

rm -rf "$DATA"
mkdir -p "$DATA/volumes" "$DATA/out-tcp" "$DATA/out-shm"

say "1. generating volume 1: $NEEDLES needles of 1 KiB..256 KiB, 25% gzip, 5% deleted"
"$SWRDMA" mkvolume --dir "$DATA/volumes" --vid 1 --needles "$NEEDLES" --min 1K --max 256K \
  --gzip-fraction 0.25 --delete-fraction 0.05 --fids "$DATA/fids.tsv"

# A free port: the default 18515 unless something already listens there.
PORT=18515
while (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do PORT=$((PORT + 1)); done
URL="http://127.0.0.1:$PORT"

say "2. starting swrdma-agent on $URL (log: $DATA/agent.log)"
"$AGENT" --dir "$DATA/volumes" --index-dir "$DATA/index" --http "127.0.0.1:$PORT" \
  >"$DATA/agent.log" 2>&1 &
AGENT_PID=$!
trap 'kill $AGENT_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  "$SWRDMA" info --agent "$URL" --timeout-ms 500 >/dev/null 2>&1 && break
  kill -0 $AGENT_PID 2>/dev/null || { cat "$DATA/agent.log"; fail "the agent exited at start"; }
  sleep 0.1
done
"$SWRDMA" info --agent "$URL"

mapfile -t LIVE < <(awk '$3 == "live" { print $1 }' "$DATA/fids.tsv")
mapfile -t DELETED < <(awk '$3 == "deleted" { print $1 }' "$DATA/fids.tsv")

say "3. reading ${#LIVE[@]} live needles over tcp (the agent's read port: it checks each read)"
"$SWRDMA" get --agent "$URL" --transports tcp -v -o "$DATA/out-tcp" "${LIVE[@]}"
say "4. reading them again over same-host shared memory"
"$SWRDMA" get --agent "$URL" --transports posix,sysv,cma -v -o "$DATA/out-shm" "${LIVE[@]}"

say "5. verifying"
# The client already checked every record's header, cookie and CRC-32C. Independently: every
# size matches what the generator wrote, and both transports returned the same bytes.
bytes=0
while IFS=$'\t' read -r fid size state _; do
  [ "$state" = live ] || continue
  got=$(stat -c %s "$DATA/out-tcp/$fid")
  [ "$got" = "$size" ] || fail "$fid: $got bytes, expected $size"
  cmp -s "$DATA/out-tcp/$fid" "$DATA/out-shm/$fid" || fail "$fid differs between tcp and shm"
  bytes=$((bytes + size))
done <"$DATA/fids.tsv"
if "$SWRDMA" get --agent "$URL" -o /dev/null "${DELETED[0]}" 2>"$DATA/deleted.err"; then
  fail "deleted needle ${DELETED[0]} was returned"
fi
echo "deleted needle ${DELETED[0]} refused as expected: $(cat "$DATA/deleted.err")"

say "6. stopping the agent (SIGTERM)"
kill -TERM $AGENT_PID
wait $AGENT_PID || fail "agent exited with status $?"
trap - EXIT

say "demo OK: ${#LIVE[@]} needles, $bytes bytes verified over tcp and shared memory"
