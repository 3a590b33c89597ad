#!/usr/bin/env bash
# The read path next to its ceiling, on one machine in one run: for 4 KiB and 1 MiB needles and
# windows of 1 and 64 reads in flight,
#   (a) `swrdma bench` one-sided reads over tcp loopback,
#   (b) the same over shared memory (--transports posix,sysv,cma),
#   (c) the agent's HTTP fallback (`swrdma bench --mode http`),
#   (c') same-host reads over the agent's local socket (--transports local: the client maps the
#       volume files and verifies in place; compared with single-core memcpy),
#   (d) the bare UCX ceiling: swrdma-bench-ucx, same transport, size and window, its target
#       mapping the same volume file and busy-polling (no agent, no HTTP, no verification),
#   (e) single-core memcpy of the same size,
#   (f) nginx serving a static file of the same size (one worker process, sendfile, keep-alive),
#       read by wrk with one thread and K connections: what a plain web server on the storage
#       node gives the same reader (nginx-light and wrk are installed with apt when missing and
#       running as root; COMPARE_NGINX=0 leaves the row out, COMPARE_NGINX_PORT 18661).
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
# --hugepages or --copy), COMPARE_ROUNDS (3: every cell is run that many times, rounds
# interleaved so that a burst of load on the host hits every path alike; the table shows the
# median and the range), COMPARE_LOOKUP_BATCH (1000 fids per batched /v1/lookup request; 0: no
# lookup row), COMPARE_LOCAL_PROGRESS (adaptive: the agent's --progress for the same-host row,
# run against its own agent). Each agent run also records the agent's CPU (supervisor + data-plane process, in
# cores). Default runtime: about 7 min.
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
rounds=${COMPARE_ROUNDS:-3}
lookup_batch=${COMPARE_LOOKUP_BATCH:-1000}
nginx_row=${COMPARE_NGINX:-1}
local_progress=${COMPARE_LOCAL_PROGRESS:-adaptive}
agent_paths="tcp shm http"
[[ $local_progress != "$progress" ]] || agent_paths="tcp shm local http"
nginx_port=${COMPARE_NGINX_PORT:-18661}
hz=$(getconf CLK_TCK)
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

# ---- (f) nginx: installed when missing (as gnuplot below), never started as a system service ----
apt_quiet() {  # apt_quiet PKG...: installs with invoke-rc.d refused (no daemon left running)
  [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null || return 1
  local made_policy=0 rc=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 || rc=$?
  ((made_policy)) && rm -f /usr/sbin/policy-rc.d
  return $rc
}
have_nginx() { command -v nginx >/dev/null && command -v wrk >/dev/null; }
if [[ $nginx_row == 1 ]] && ! have_nginx; then
  echo "installing nginx-light and wrk for the nginx row" >&2
  apt_quiet nginx-light wrk ||
    echo "WARNING: no nginx row: nginx-light / wrk could not be installed (not root or no apt)" >&2
fi
have_nginx || nginx_row=0
stop_bg() {  # stop_bg VAR: stops the background process whose pid VAR holds, then clears VAR
  local -n pid_var=$1
  if [[ -n "$pid_var" ]]; then
    kill "$pid_var" 2>/dev/null || true
    wait "$pid_var" 2>/dev/null || true
    pid_var=""
  fi
}
nginx_pid=""
stop_nginx() { stop_bg nginx_pid; }
start_nginx() {
  local dir="$out/nginx" first=""
  mkdir -p "$dir/tmp" "$data/nginx"
  for size in $sizes; do
    first=${first:-$size}
    [[ -e "$data/nginx/$size" ]] ||
      head -c "$(numfmt --from=iec "$size")" /dev/urandom >"$data/nginx/$size"
  done
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 100000000;
  open_file_cache max=16 inactive=60s;
  open_file_cache_valid 60s;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server { listen 127.0.0.1:$nginx_port; root $data/nginx; }
}
EOF
  nginx -p "$dir" -c "$dir/nginx.conf" 2>>"$dir/error.log" &
  nginx_pid=$!
  for _ in $(seq 50); do
    curl -sf -o /dev/null "http://127.0.0.1:$nginx_port/$first" && return 0
    sleep 0.1
  done
  echo "WARNING: no nginx row this round: nginx did not start; see $dir/error.log" >&2
  stop_nginx
  return 1
}
# wrk's summary as one JSON line like swrdma bench's: ops/s, bytes/s (file size x ops: what the
# reader got), p50/p99 from --latency (printed in us, ms or s).
wrk_json() {  # wrk_json SIZE WINDOW
  local bytes
  bytes=$(numfmt --from=iec "$1")
  wrk -t1 -c"$2" -d"${seconds}s" --latency "http://127.0.0.1:$nginx_port/$1" |
    awk -v bytes="$bytes" -v window="$2" '
      function us(v) {
        if (v ~ /us$/) return v + 0
        if (v ~ /ms$/) return v * 1000
        if (v ~ /s$/) return v * 1000000
        return v + 0
      }
      $1 == "50%" { p50 = us($2) }
      $1 == "99%" { p99 = us($2) }
      $1 == "Requests/sec:" { ops = $2 }
      /Non-2xx/ { errors += $NF }
      END {
        printf "{\"ops_per_sec\":%s,\"bytes_per_sec\":%s,\"p50_us\":%s,\"p99_us\":%s,\"window\":%d,\"errors\":%d}\n",
               ops + 0, (ops + 0) * bytes, p50 + 0, p99 + 0, window, errors + 0
      }'
}

results="$out/results.jsonl"
# UCX prints its warnings on stdout (UCX_LOG_FILE defaults to it): keep the JSON line only.
json_only() { grep -E '^\{' | tail -1; }
: >"$results"
record() {  # record PATH SIZE JSON [AGENT_CPU]: appends the run and prints a line
  local path=$1 size=$2 json=$3 cpu=${4:-null}
  echo "$json" | jq -c --arg path "$path" --arg s "$size" --argjson round "$round" \
    --argjson cpu "$cpu" --argjson load "$(cut -d' ' -f1 /proc/loadavg)" \
    '{path:$path, size:$s, window:(.window // .inflight), round:$round, ops_per_sec, bytes_per_sec,
      p50_us, p99_us, errors:(.errors // 0), reg_cache_hit_rate, hugepages, requests_per_sec,
      batch, agent_cpu:$cpu, loadavg:$load}' >>"$results"
  echo "$json" | jq -r --arg m "round $round: $path $size window $(echo "$json" | jq '.window // .inflight')" \
    --arg cpu "$cpu" '"\($m): \(.ops_per_sec|floor) ops/s, \(.bytes_per_sec/1048576|floor) MiB/s, p50 \(.p50_us) us, p99 \(.p99_us) us, agent CPU \($cpu)"' >&2
}

# shellcheck source=bench/agent_cpu.sh
source "$(dirname "${BASH_SOURCE[0]}")/agent_cpu.sh"  # cpu_ticks PID

# Runs `swrdma bench ARGS...` against the agent; prints its JSON line and writes the agent's CPU
# (cores) over the whole invocation (connect, warm-up, timed part) to $out/run_cpu (the function
# runs in a command substitution: a variable would not come back).
bench_against_agent() {
  local a b t0 t1 json
  a=$(cpu_ticks "$agent_pid")
  t0=$(date +%s.%N)
  json=$("$swrdma" bench --agent "$url" "$@" 2>"$out/bench.err" | json_only) || return 1
  b=$(cpu_ticks "$agent_pid")
  t1=$(date +%s.%N)
  echo "scale=3; ($b - $a) / ($hz * ($t1 - $t0))" | bc | sed 's/^\./0./' >"$out/run_cpu"
  echo "$json"
}

# ---- (a)-(c): the agent, (d) the ceiling, (e) memcpy; COMPARE_ROUNDS times ----
agent_pid=""
stop_agent() { stop_bg agent_pid; }
trap 'stop_agent; stop_nginx' EXIT
start_agent() {  # start_agent [PROGRESS]
  "$agent_bin" --dir "$data/volumes" --index-dir "$data/index" --http "127.0.0.1:$port" \
    --progress "${1:-$progress}" --log-level warn --local-socket "$out/agent.sock" \
    >>"$out/agent.log" 2>&1 &
  agent_pid=$!
  for _ in $(seq 150); do
    curl -sf "$url/readyz" >/dev/null && break
    sleep 0.2
  done
  curl -sf "$url/readyz" >/dev/null || { echo "agent not ready; see $out/agent.log" >&2; exit 1; }
}
run_agent_path() {  # run_agent_path PATH SIZE WINDOW: one `swrdma bench` cell against the agent
  local path=$1 size=$2 window=$3 json extra
  case $path in
    tcp) extra=(--transports tcp "${bench_mode_args[@]}" "${bench_args[@]}") ;;
    shm) extra=(--transports "$shm_tls" "${bench_mode_args[@]}" "${bench_args[@]}") ;;
    local) extra=(--transports local "${bench_mode_args[@]}" "${bench_args[@]}") ;;
    http) extra=(--mode http) ;;
  esac
  # A long lookup TTL: the warm-up fills the client's lookup cache, so the timed reads are
  # one-sided gets + verification, comparable with the ceiling's bare gets.
  json=$(bench_against_agent --volume "${vid[$size]}" --seconds "$seconds" \
    --inflight "$window" --json --lookup-ttl-ms 3600000 "${extra[@]}") || {
    echo "swrdma bench failed ($path $size $window):" >&2
    cat "$out/bench.err" >&2
    return 0
  }
  record "$path" "$size" "$json" "$(cat "$out/run_cpu")"
}
rm -rf "$data/index"
: >"$out/agent.log"

for round in $(seq "$rounds"); do
  echo "---- round $round of $rounds ----" >&2
  start_agent
  for size in $sizes; do
    for window in $windows; do
      for path in $agent_paths; do
        run_agent_path "$path" "$size" "$window"
      done
    done
  done
  # Batched lookups: what a cold client pays per fid before its first get (no cache involved).
  if [[ $lookup_batch != 0 && " $sizes " == *" 4K "* ]]; then
    if json=$(bench_against_agent --volume "${vid[4K]}" --seconds "$seconds" --mode lookup \
      --batch "$lookup_batch" --json); then
      record lookup 4K "$json" "$(cat "$out/run_cpu")"
    else
      echo "swrdma bench --mode lookup failed:" >&2
      cat "$out/bench.err" >&2
    fi
  fi
  stop_agent
  # Same-host reads touch neither the agent's UCX worker nor its progress thread: they run next
  # to an agent as deployed (--progress adaptive sleeps when no UCX traffic comes), so the
  # client gets the machine and the agent's CPU shows what the local path costs it.
  if [[ $local_progress != "$progress" ]]; then
    start_agent "$local_progress"
    for size in $sizes; do
      for window in $windows; do
        run_agent_path local "$size" "$window"
      done
    done
    stop_agent
  fi

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
  if [[ $nginx_row == 1 ]] && start_nginx; then
    for size in $sizes; do
      for window in $windows; do
        record nginx "$size" "$(wrk_json "$size" "$window")"
      done
    done
    stop_nginx
  fi
done

# ---- the table: medians over the rounds ----
# jq helpers shared by the table and the plot.
jq_lib='
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
              else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r1: . * 10 | round / 10;
  def cells: map(select(.path != "lookup")) | group_by([.size, .window, .path])
    | map({size: .[0].size, window: .[0].window, path: .[0].path, runs: length,
           ops: (map(.ops_per_sec) | median), lo: (map(.ops_per_sec) | min),
           hi: (map(.ops_per_sec) | max), bytes: (map(.bytes_per_sec) | median),
           p50: (map(.p50_us) | median), p99: (map(.p99_us) | median),
           cpu: (map(.agent_cpu | select(. != null)) | median), errors: (map(.errors) | add)});'
{
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),"
  echo "UCX $(ucx_info -v 2>/dev/null | sed -n 's/^# Version //p' | head -1); agent --progress $progress; $seconds s per run, $rounds rounds (medians; ops/s range in brackets); load average at the runs $(jq -s 'map(.loadavg) | "\(min)-\(max)"' -r "$results")."
  echo "K = reads in flight ($window_mode windows; lockstep: for K > 1 the latency is that of the whole window). Ceiling: tcp and"
  echo "HTTP against swrdma-bench-ucx over tcp, shared memory against it over $shm_tls, local (same-host mapping) against memcpy. Agent CPU: cores used by the agent over the"
  echo "whole bench invocation (connect, warm-up, timed part); its progress thread busy-polls$([[ $local_progress != "$progress" ]] && echo " (the local row: --progress $local_progress, as deployed; same-host reads never use it)"). nginx: one worker, sendfile, wrk with one thread and K connections."
  echo
  echo "| needle | K | path | ops/s (range) | MiB/s | p50 µs | p99 µs | agent CPU | of ceiling |"
  echo "|---|---|---|---|---|---|---|---|---|"
  jq -rs "$jq_lib"'
    def k: if . >= 1000000 then "\(. / 10000 | round / 100) M" elif . >= 10000 then "\(. / 1000 | round) k"
           else "\(. | round)" end;
    cells as $all
    | ($all | map(select(.path != "memcpy"))
       | sort_by([(.size | if . == "4K" then 0 else 1 end), .window,
                  ({"tcp":0,"ucx-tcp":1,"shm":2,"ucx-shm":3,"local":4,"http":5,"nginx":6}[.path])])[]) as $c
    | ($all | map(select(.size == $c.size and
         (if $c.path == "local" then .path == "memcpy"
          else .window == $c.window and
               .path == (if $c.path == "shm" then "ucx-shm" else "ucx-tcp" end) end)))
       | first | .ops) as $ceil
    | (if ($c.path | startswith("ucx")) then "ceiling" elif $c.path == "nginx" then "-"
       elif $ceil then "\($c.ops / $ceil * 100 | round) %" else "-" end) as $ratio
    | "| \($c.size) | \($c.window) | \($c.path) | \($c.ops | k) (\($c.lo | k)-\($c.hi | k)) | \($c.bytes / 1048576 | r1) | \($c.p50 | r1) | \($c.p99 | r1) | \(if $c.cpu then ($c.cpu | tostring) else "-" end) | \($ratio)\(if $c.errors > 0 then ", \($c.errors) errors" else "" end) |"
  ' "$results"
  jq -rs "$jq_lib"'cells[] | select(.path == "memcpy") |
    "| \(.size) | - | memcpy (1 core) | \(.ops | round) | \(.bytes / 1048576 | round) | \(.p50 | r1) | \(.p99 | r1) | - | - |"' "$results"
  jq -rs "$jq_lib"'cells as $all | $all | map(select(.path == "nginx"))
    | select(length > 0) | "\nSame-host reads against nginx serving the same size (ops/s, medians):",
      (.[] as $n | $all | map(select(.path == "local" and .size == $n.size and .window == $n.window))
       | first | select(.) | "- \($n.size) K=\($n.window): local \(.ops | round) ops/s, nginx \($n.ops | round) ops/s: \(.ops / $n.ops * 10 | round / 10)x")' "$results"
  jq -rs "$jq_lib"'map(select(.path == "lookup")) | select(length > 0) |
    "\nBatched lookups (`swrdma bench --mode lookup`, \(.[0].batch) fids per POST /v1/lookup, one request at a time, \(length) runs):
\(map(.ops_per_sec) | median | round) fids/s (\(map(.requests_per_sec) | median | r1) requests/s), p50 \(map(.p50_us) | median / 1000 | . * 100 | round / 100) ms and p99 \(map(.p99_us) | median / 1000 | . * 100 | round / 100) ms per request, agent CPU \(map(.agent_cpu | select(. != null)) | median) cores, \(map(.errors) | add) errors."' "$results"
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
  jq -rs "$jq_lib"'
    (["case","tcp","ucx-tcp","shm","ucx-shm","local","http","nginx","memcpy"] | join(" ")),
    (cells as $all | $all | map(select(.path != "memcpy")) | group_by([.size, .window])[]
     | . as $g
     | [("\($g[0].size)-K\($g[0].window)")] +
       (["tcp","ucx-tcp","shm","ucx-shm","local","http","nginx"] | map(. as $p
         | ($g | map(select(.path == $p)) | first // {} | .bytes // null
            | if . then . / 1048576 else "NaN" end))) +
       [($all | map(select(.path == "memcpy" and .size == $g[0].size)) | first
         | .bytes / 1048576) // "NaN"]
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
plot for [i=2:9] "$out/compare.dat" using i:xtic(1) title columnheader(i)
EOF
  echo "plot: $out/compare.png" >&2
else
  echo "no gnuplot: apt-get install gnuplot-nox for $out/compare.png" >&2
fi
echo "table: $out/compare.md, runs: $results" >&2
