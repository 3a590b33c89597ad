#!/usr/bin/env bash
# The read path next to its ceiling, on one machine in one run: for 4 KiB and 1 MiB needles and
# windows of 1 and 64 reads in flight,
#   (a) `swrdma bench` one-sided reads over tcp loopback,
#   (b) the same over shared memory (--transports posix,sysv,cma),
#   (c) the agent's HTTP fallback (`swrdma bench --mode http`),
#   (d) the bare UCX ceiling: swrdma-bench-ucx, same transport, size and window, its target
#       mapping the same volume file and busy-polling (no agent, no HTTP, no verification),
#   (e) single-core memcpy of the same size.
# Writes OUT_DIR/results.jsonl, OUT_DIR/compare.md (table, with the ratio of each path to its
# ceiling: tcp and HTTP against the tcp ceiling, shared memory against the shared-memory one) and
# OUT_DIR/compare.png (gnuplot; installed with apt when missing and running as root).
#
#   bench/compare.sh BUILD_DIR [OUT_DIR]        (make compare; OUT_DIR defaults to BUILD_DIR/compare)
#
# The agent runs with --progress busy (COMPARE_PROGRESS), like the ceiling's target, so the two
# differ only by what the agent and client do; it is stopped while the ceiling runs so that two
# busy pollers never share a small machine. Knobs (environment): COMPARE_SECONDS per run (3),
# COMPARE_SIZES ("4K 1M"), COMPARE_WINDOWS ("1 64"), COMPARE_PROGRESS (busy), COMPARE_PORT
# (18660), COMPARE_DATA (OUT_DIR/data, volumes kept between runs), COMPARE_WINDOW_MODE (sliding:
# K gets kept in flight by both swrdma bench and the ceiling, per-read latencies; lockstep: whole
# windows of K waited for together), COMPARE_BENCH_ARGS (extra `swrdma bench` flags, e.g.
# --hugepages or --copy). Default runtime: about 2 min.
set -euo pipefail

build=$(realpath "${1:?build directory}")
out=$(realpath -m "${2:-$build/compare}")
seconds=${COMPARE_SECONDS:-3}
sizes=${COMPARE_SIZES:-4K 1M}
windows=${COMPARE_WINDOWS:-1 64}
progress=${COMPARE_PROGRESS:-busy}
port=${COMPARE_PORT:-18660}
data=${COMPARE_DATA:-$out/data}
window_mode=${COMPARE_WINDOW_MODE:-sliding}
read -r -a bench_args <<<"${COMPARE_BENCH_ARGS:-}"
bench_mode_args=(--sliding)
ceiling_mode_args=(--sliding)
if [[ $window_mode == lockstep ]]; then
  bench_mode_args=()
  ceiling_mode_args=()
fi
swrdma="$build/client/swrdma"
agent_bin="$build/agent/swrdma-agent"
ucx_bin="$build/bench/swrdma-bench-ucx"
url="http://127.0.0.1:$port"
shm_tls=posix,sysv,cma

for b in "$swrdma" "$agent_bin" "$ucx_bin"; do
  [[ -x $b ]] || { echo "missing $b: build it first (make build)" >&2; exit 1; }
done
for tool in jq curl bc; do
  command -v $tool >/dev/null || { echo "missing $tool: apt-get install $tool" >&2; exit 1; }
done

declare -A vid=([4K]=1 [1M]=2) needles=([4K]=20000 [1M]=200)
mkdir -p "$data/volumes" "$out"
for size in $sizes; do
  if [[ ! -e "$data/volumes/${vid[$size]}.dat" ]]; then
    "$swrdma" mkvolume --dir "$data/volumes" --vid "${vid[$size]}" --needles "${needles[$size]}" \
      --size "$size" >&2
  fi
done

results="$out/results.jsonl"
# UCX prints its warnings on stdout (UCX_LOG_FILE defaults to it): keep the JSON line only.
json_only() { grep -E '^\{' | tail -1; }
: >"$results"
record() {  # record PATH SIZE JSON: appends the run and prints a line
  local path=$1 size=$2 json=$3
  echo "$json" | jq -c --arg path "$path" --arg s "$size" --argjson load "$(cut -d' ' -f1 /proc/loadavg)" \
    '{path:$path, size:$s, window:(.window // .inflight), ops_per_sec, bytes_per_sec, p50_us,
      p99_us, errors:(.errors // 0), reg_cache_hit_rate, hugepages, loadavg:$load}' >>"$results"
  echo "$json" | jq -r --arg m "$path $size window $(echo "$json" | jq '.window // .inflight')" \
    '"\($m): \(.ops_per_sec|floor) ops/s, \(.bytes_per_sec/1048576|floor) MiB/s, p50 \(.p50_us) us, p99 \(.p99_us) us"' >&2
}

# ---- (a)-(c): the agent ----
agent_pid=""
stop_agent() {
  if [[ -n "$agent_pid" ]]; then
    kill "$agent_pid" 2>/dev/null || true
    wait "$agent_pid" 2>/dev/null || true
    agent_pid=""
  fi
}
trap stop_agent EXIT
rm -rf "$data/index"
"$agent_bin" --dir "$data/volumes" --index-dir "$data/index" --http "127.0.0.1:$port" \
  --progress "$progress" --log-level warn >"$out/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 150); do
  curl -sf "$url/readyz" >/dev/null && break
  sleep 0.2
done
curl -sf "$url/readyz" >/dev/null || { echo "agent not ready; see $out/agent.log" >&2; exit 1; }

for size in $sizes; do
  for window in $windows; do
    for path in tcp shm http; do
      case $path in
        tcp) extra=(--transports tcp "${bench_mode_args[@]}" "${bench_args[@]}") ;;
        shm) extra=(--transports "$shm_tls" "${bench_mode_args[@]}" "${bench_args[@]}") ;;
        http) extra=(--mode http) ;;
      esac
      # A long lookup TTL: the warm-up fills the client's lookup cache, so the timed reads are
      # one-sided gets + verification, comparable with the ceiling's bare gets.
      json=$("$swrdma" bench --agent "$url" --volume "${vid[$size]}" --seconds "$seconds" \
        --inflight "$window" --json --lookup-ttl-ms 3600000 "${extra[@]}" 2>"$out/bench.err" |
        json_only) || {
        echo "swrdma bench failed ($path $size $window):" >&2
        cat "$out/bench.err" >&2
        continue
      }
      record "$path" "$size" "$json"
    done
  done
done
stop_agent

# ---- (d) the ceiling, (e) memcpy ----
for size in $sizes; do
  for window in $windows; do
    for tls in tcp "$shm_tls"; do
      path=ucx-tcp
      [[ $tls == tcp ]] || path=ucx-shm
      json=$("$ucx_bin" --transports "$tls" --size "$size" --window "$window" \
        "${ceiling_mode_args[@]}" --seconds "$seconds" --file "$data/volumes/${vid[$size]}.dat" |
        json_only) || {
        echo "swrdma-bench-ucx failed ($tls $size $window)" >&2
        continue
      }
      record "$path" "$size" "$json"
    done
  done
  record memcpy "$size" "$("$ucx_bin" --mode memcpy --size "$size" --seconds "$seconds")"
done

# ---- the table ----
{
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),"
  echo "UCX $(ucx_info -v 2>/dev/null | sed -n 's/^# Version //p' | head -1); agent --progress $progress; $seconds s per run; load average at the runs $(jq -s 'map(.loadavg) | "\(min)-\(max)"' -r "$results")."
  echo "K = reads in flight ($window_mode windows; lockstep: for K > 1 the latency is that of the whole window). Ceiling: tcp and"
  echo "HTTP against swrdma-bench-ucx over tcp, shared memory against it over $shm_tls."
  echo
  echo "| needle | K | path | ops/s | MiB/s | p50 µs | p99 µs | of ceiling |"
  echo "|---|---|---|---|---|---|---|---|"
  jq -rs '
    def r1: . * 10 | round / 10;
    def ceiling($all; $p; $s; $w):
      ($all | map(select(.size == $s and .window == $w and
        .path == (if $p == "shm" then "ucx-shm" else "ucx-tcp" end))) | first | .ops_per_sec);
    . as $all
    | map(select(.path != "memcpy"))
    | sort_by([(.size | if . == "4K" then 0 else 1 end), .window,
               ({"tcp":0,"ucx-tcp":1,"shm":2,"ucx-shm":3,"http":4}[.path])])[]
    | (if (.path | startswith("ucx")) then "ceiling"
       else (ceiling($all; .path; .size; .window)) as $c
         | if $c then "\(.ops_per_sec / $c * 100 | round) %" else "-" end end) as $ratio
    | "| \(.size) | \(.window) | \(.path) | \(.ops_per_sec | round) | \(.bytes_per_sec / 1048576 | r1) | \(.p50_us | r1) | \(.p99_us | r1) | \($ratio) |"
  ' "$results"
  jq -rs '.[] | select(.path == "memcpy") |
    "| \(.size) | - | memcpy (1 core) | \(.ops_per_sec | round) | \(.bytes_per_sec / 1048576 | round) | \(.p50_us * 10 | round / 10) | \(.p99_us * 10 | round / 10) | - |"' "$results"
} >"$out/compare.md"
cat "$out/compare.md"

# ---- the plot ----
if ! command -v gnuplot >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing gnuplot-nox for the plot" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null 2>&1 || true
  fi
fi
if command -v gnuplot >/dev/null; then
  # One cluster per (needle, K), one bar per path: MiB/s on a log scale.
  jq -rs '
    (["case","tcp","ucx-tcp","shm","ucx-shm","http","memcpy"] | join(" ")),
    (. as $all | map(select(.path != "memcpy")) | group_by([.size, .window])[]
     | . as $g
     | [("\($g[0].size)-K\($g[0].window)")] +
       (["tcp","ucx-tcp","shm","ucx-shm","http"] | map(. as $p
         | ($g | map(select(.path == $p)) | first | .bytes_per_sec / 1048576) // "NaN")) +
       [($all | map(select(.path == "memcpy" and .size == $g[0].size)) | first
         | .bytes_per_sec / 1048576) // "NaN"]
     | map(tostring) | join(" "))' "$results" >"$out/compare.dat"
  gnuplot <<EOF
set terminal pngcairo size 1000,560 noenhanced
set output "$out/compare.png"
set title "swrdma read path vs bare UCX ceiling and memcpy (MiB/s, log scale)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set ylabel "MiB/s"
set key outside right
set grid ytics
plot for [i=2:7] "$out/compare.dat" using i:xtic(1) title columnheader(i)
EOF
  echo "plot: $out/compare.png" >&2
else
  echo "no gnuplot: apt-get install gnuplot-nox for $out/compare.png" >&2
fi
echo "table: $out/compare.md, runs: $results" >&2
