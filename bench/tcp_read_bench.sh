#!/usr/bin/env bash
# Checked reads over tcp: the agent's own TCP read port (agent/tcp_read_server.h) against UCX tcp
# (active-message checked reads, the agent started with --read-port off --insecure-ucx-tcp), same
# machine, same volumes, one run. For each size (4 KiB, 1 MiB) and window (K = 1, 64 reads in flight, sliding)
# it runs `swrdma bench --transports tcp --json` against each agent, COMPARE_ROUNDS times,
# interleaved, and writes OUT_DIR/results.jsonl (one line per run: path, size, window, round,
# ops/s, bytes/s, p50/p99 us, agent CPU in cores, load average) and OUT_DIR/summary.md (medians).
#
#   bench/tcp_read_bench.sh BUILD_DIR [OUT_DIR]     (OUT_DIR defaults to BUILD_DIR/tcp-read-bench)
#
# Knobs: COMPARE_SECONDS (3), COMPARE_ROUNDS (3), COMPARE_SIZES ("4K 1M"), COMPARE_WINDOWS
# ("1 64"), COMPARE_PROGRESS (busy), COMPARE_PORT (18670; the agent without a read port uses
# +10), COMPARE_DATA (OUT_DIR/data, volumes kept between runs).
set -euo pipefail

build=$(realpath "${1:?build directory}")
out=$(realpath -m "${2:-$build/tcp-read-bench}")
seconds=${COMPARE_SECONDS:-3}
rounds=${COMPARE_ROUNDS:-3}
sizes=${COMPARE_SIZES:-4K 1M}
windows=${COMPARE_WINDOWS:-1 64}
progress=${COMPARE_PROGRESS:-busy}
port=${COMPARE_PORT:-18670}
data=${COMPARE_DATA:-$out/data}
swrdma="$build/client/swrdma"
agent_bin="$build/agent/swrdma-agent"
hz=$(getconf CLK_TCK)
for b in "$swrdma" "$agent_bin"; do
  [[ -x $b ]] || { echo "missing $b: build it first (make build)" >&2; exit 1; }
done
for tool in jq curl bc; do
  command -v $tool >/dev/null || { echo "missing $tool: apt-get install $tool" >&2; exit 1; }
done
# shellcheck source=bench/agent_cpu.sh
source "$(dirname "${BASH_SOURCE[0]}")/agent_cpu.sh"

declare -A vid=([4K]=1 [1M]=2) needles=([4K]=20000 [1M]=200)
mkdir -p "$data/volumes" "$out"
for size in $sizes; do
  if [[ ! -e "$data/volumes/${vid[$size]}.dat" ]]; then
    "$swrdma" mkvolume --dir "$data/volumes" --vid "${vid[$size]}" --needles "${needles[$size]}" \
      --size "$size" >&2
  fi
done

agent_pid=""
stop_agent() {
  if [[ -n "$agent_pid" ]]; then
    kill "$agent_pid" 2>/dev/null || true
    wait "$agent_pid" 2>/dev/null || true
    agent_pid=""
  fi
}
trap stop_agent EXIT
start_agent() {  # start_agent PORT EXTRA_ARGS...
  local p=$1
  shift
  rm -rf "$data/index-$p"
  "$agent_bin" --dir "$data/volumes" --index-dir "$data/index-$p" --http "127.0.0.1:$p" \
    --progress "$progress" --log-level warn "$@" >>"$out/agent.log" 2>&1 &
  agent_pid=$!
  for _ in $(seq 150); do
    curl -sf "http://127.0.0.1:$p/readyz" >/dev/null && return 0
    sleep 0.2
  done
  echo "agent not ready; see $out/agent.log" >&2
  exit 1
}

results="$out/results.jsonl"
: >"$results"
: >"$out/agent.log"
for round in $(seq "$rounds"); do
  for path in tcp-port ucx-tcp; do
    if [[ $path == tcp-port ]]; then
      start_agent "$port"
      url="http://127.0.0.1:$port"
      curl -sf "$url/v1/info" -H 'Accept: application/json' | jq -e '.tcp_read.port' >/dev/null ||
        { echo "the agent does not advertise tcp_read" >&2; exit 1; }
    else
      start_agent "$((port + 10))" --read-port off --insecure-ucx-tcp
      url="http://127.0.0.1:$((port + 10))"
    fi
    for size in $sizes; do
      for window in $windows; do
        a=$(cpu_ticks "$agent_pid")
        t0=$(date +%s.%N)
        json=$("$swrdma" bench --agent "$url" --volume "${vid[$size]}" --seconds "$seconds" \
          --inflight "$window" --sliding --transports tcp --json 2>"$out/bench.err" |
          grep -E '^\{' | tail -1) || {
          echo "swrdma bench failed ($path $size K=$window):" >&2
          cat "$out/bench.err" >&2
          continue
        }
        b=$(cpu_ticks "$agent_pid")
        t1=$(date +%s.%N)
        cpu=$(echo "scale=3; ($b - $a) / ($hz * ($t1 - $t0))" | bc | sed 's/^\./0./')
        echo "$json" | jq -c --arg path "$path" --arg s "$size" --argjson round "$round" \
          --argjson cpu "$cpu" --argjson load "$(cut -d' ' -f1 /proc/loadavg)" \
          '{path:$path, size:$s, window:(.window // .inflight), round:$round, ops_per_sec,
            bytes_per_sec, p50_us, p99_us, errors:(.errors // 0), transports,
            agent_cpu:$cpu, loadavg:$load}' | tee -a "$results" >&2
      done
    done
    stop_agent
  done
done

{
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; $seconds s per run, $rounds rounds (medians);"
  echo "load average at the runs $(jq -s 'map(.loadavg) | "\(min)-\(max)"' -r "$results"); agent --progress $progress."
  echo
  echo "| needle | K | path | ops/s | MiB/s | p50 µs | p99 µs | agent CPU | errors |"
  echo "|---|---|---|---|---|---|---|---|---|"
  jq -rs '
    def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
                else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    group_by([.size, .window, .path]) | .[]
    | "| \(.[0].size) | \(.[0].window) | \(.[0].path) | \(map(.ops_per_sec) | median | floor) | \(map(.bytes_per_sec) | median / 1048576 | floor) | \(map(.p50_us) | median) | \(map(.p99_us) | median) | \(map(.agent_cpu) | median) | \(map(.errors) | add) |"' \
    "$results"
} >"$out/summary.md"
cat "$out/summary.md"
