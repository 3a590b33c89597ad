#!/usr/bin/env bash
# The read-path matrix: `swrdma bench` against a local swrdma-agent for 4 KiB and 1 MiB needles,
# rdma over tcp, rdma over shared memory and the HTTP fallback, inflight 1 and 64, with the agent
# in each --progress mode; plus the agent's CPU while idle in each mode. One JSON object per run
# (bench's own, plus progress, size, agent_cpu_pct: agent CPU during the run, client_cpu_pct) is
# appended to OUT; a table is printed at the end.
#
#   bench/read_matrix.sh BUILD_DIR DATA_DIR OUT.jsonl [SECONDS] [MODES] [SIZES] [REPEAT]
#   e.g. bench/read_matrix.sh build /tmp/swrdma-bench /tmp/read.jsonl 5 "busy event adaptive" "4K 1M" 3
#
# Volumes are generated once in DATA_DIR (4K: 20000 needles, 1M: 300 needles). Both programs run
# on this host, so on a small machine they share the cores (and with anything else running):
# every run records the load average, and the table shows the median of REPEAT runs with the
# spread of ops/s.
set -euo pipefail

build=${1:?build directory}
data=${2:?data directory}
out=${3:?output .jsonl}
seconds=${4:-5}
modes=${5:-busy event adaptive}
sizes=${6:-4K 1M}
repeat=${7:-1}
swrdma="$build/client/swrdma"
agent_bin="$build/agent/swrdma-agent"
port=${SWRDMA_BENCH_PORT:-18650}
# Extra `swrdma bench` flags for every run, e.g. "--lookup-ttl-ms 3600000" to time one-sided gets
# only (the warm-up fills the lookup cache) instead of the client's default lookup caching.
read -r -a bench_extra <<<"${SWRDMA_BENCH_FLAGS:-}"
url="http://127.0.0.1:$port"
hz=$(getconf CLK_TCK)

declare -A vid=([4K]=1 [1M]=2) needles=([4K]=20000 [1M]=300)
mkdir -p "$data/volumes"
for size in $sizes; do
  if [[ ! -e "$data/volumes/${vid[$size]}.dat" ]]; then
    "$swrdma" mkvolume --dir "$data/volumes" --vid "${vid[$size]}" --needles "${needles[$size]}" \
      --size "$size" >&2
  fi
done

# shellcheck source=bench/agent_cpu.sh
source "$(dirname "${BASH_SOURCE[0]}")/agent_cpu.sh"  # cpu_ticks PID

agent_pid=""
stop_agent() {
  if [[ -n "$agent_pid" ]]; then
    kill "$agent_pid" 2>/dev/null || true
    wait "$agent_pid" 2>/dev/null || true
    agent_pid=""
  fi
}
trap stop_agent EXIT

idle_cpu() {  # agent CPU % over 5 s without traffic
  local a b
  a=$(cpu_ticks "$agent_pid")
  sleep 5
  b=$(cpu_ticks "$agent_pid")
  printf '%.1f' "$(echo "scale=2; ($b - $a) * 100 / ($hz * 5)" | bc)"
}

for mode in $modes; do
  rm -rf "$data/index-$mode"
  "$agent_bin" --dir "$data/volumes" --index-dir "$data/index-$mode" --http "127.0.0.1:$port" \
    --progress "$mode" --log-level warn >"$data/agent-$mode.log" 2>&1 &
  agent_pid=$!
  for _ in $(seq 100); do
    curl -sf "$url/readyz" >/dev/null && break
    sleep 0.2
  done
  sleep 1
  idle_before=$(idle_cpu)
  echo "progress=$mode: agent idle CPU ${idle_before}% (5 s, before any traffic)" >&2
  jq -nc --arg p "$mode" --argjson c "$idle_before" \
    '{kind:"idle", progress:$p, when:"before", agent_cpu_pct:$c}' >>"$out"
  for round in $(seq "$repeat"); do
    for size in $sizes; do
      for lane in tcp shm http; do
        for inflight in 1 64; do
          case $lane in
            tcp) extra=(--transports tcp) ;;
            shm) extra=(--transports posix,sysv,cma) ;;
            http) extra=(--mode http) ;;
          esac
          a=$(cpu_ticks "$agent_pid")
          t0=$(date +%s.%N)
          json=$(/usr/bin/time -f '%U %S' -o "$data/time.txt" "$swrdma" bench --agent "$url" \
            --volume "${vid[$size]}" --seconds "$seconds" --inflight "$inflight" --json \
            "${extra[@]}" "${bench_extra[@]}" 2>"$data/bench.err") || {
            echo "bench failed ($mode $size $lane $inflight):" >&2
            cat "$data/bench.err" >&2
          }
          b=$(cpu_ticks "$agent_pid")
          t1=$(date +%s.%N)
          # Agent CPU over the whole invocation (connect + warm-up + timed run), client CPU likewise.
          read -r cu cs <"$data/time.txt"
          wall=$(echo "$t1 - $t0" | bc)
          agent_pct=$(printf '%.1f' "$(echo "scale=2; ($b - $a) * 100 / ($hz * $wall)" | bc)")
          client_pct=$(printf '%.1f' "$(echo "scale=2; ($cu + $cs) * 100 / $wall" | bc)")
          load=$(cut -d' ' -f1 /proc/loadavg)
          echo "$json" | jq -c --arg p "$mode" --arg s "$size" --arg l "$lane" \
            --argjson ac "$agent_pct" --argjson cc "$client_pct" --argjson load "$load" \
            '. + {kind:"run", progress:$p, size:$s, lane:$l, agent_cpu_pct:$ac, client_cpu_pct:$cc,
                  loadavg:$load}' >>"$out"
          echo "$json" | jq -r --arg m "$mode $size $lane inflight $inflight" \
            '"\($m): \(.ops_per_sec|floor) ops/s, \(.bytes_per_sec/1048576|floor) MiB/s, p50 \(.p50_us) us, p99 \(.p99_us) us, errors \(.errors)"' >&2
        done
      done
    done
  done
  idle_after=$(idle_cpu)
  echo "progress=$mode: agent idle CPU ${idle_after}% (5 s, after the runs)" >&2
  jq -nc --arg p "$mode" --argjson c "$idle_after" \
    '{kind:"idle", progress:$p, when:"after", agent_cpu_pct:$c}' >>"$out"
  stop_agent
done

echo
jq -rs '
  def median: sort | .[(length - 1) / 2 | floor];
  (["progress","size","lane","inflight","runs","ops/s","(min-max)","MiB/s","p50 us","p99 us",
    "mean us","agent %","client %","load","errors"] | @tsv),
  (map(select(.kind=="run")) | group_by([.progress, .size, .lane, .inflight])[] |
    [.[0].progress, .[0].size, .[0].lane, .[0].inflight, length,
     (map(.ops_per_sec) | median | floor),
     "\(map(.ops_per_sec) | min | floor)-\(map(.ops_per_sec) | max | floor)",
     (map(.bytes_per_sec / 1048576) | median | . * 10 | floor / 10),
     (map(.p50_us) | median | . * 10 | floor / 10), (map(.p99_us) | median | floor),
     (map(.mean_us) | median | . * 10 | floor / 10),
     (map(.agent_cpu_pct) | median), (map(.client_cpu_pct) | median), (map(.loadavg) | median),
     (map(.errors) | add)] | @tsv),
  "",
  (.[] | select(.kind=="idle") | "idle \(.progress) \(.when): \(.agent_cpu_pct)% CPU")' "$out"
