#!/usr/bin/env bash
# End-to-end: the agent does not keep resources of clients that came and went.
#
#   agent_resources_test.sh AGENT_BINARY CLIENT_BINARY [CHAOS_BINARY (unused)]
#
# Runs RESOURCE_CYCLES (default 50) sequential `swrdma get` processes against a supervised agent:
# each connects (HTTP + a UCX endpoint), reads a few needles and exits. The data-plane child's
# open file descriptors (/proc/PID/fd) and memory (VmRSS, and RssAnon: anonymous memory, which
# leaves out the pages of the mapped volume files that reads bring in) are sampled after a
# warm-up (baseline), every 10 cycles and at the end. They must come back near the baseline:
#   fds:     at most RESOURCE_FD_SLACK (default 8) above it: UCX may keep a few sockets or
#            lingering connections for a moment;
#   RssAnon: at most RESOURCE_RSS_SLACK_KB (default 16384 KiB) above it: allocator caches and
#            UCX's per-worker pools grow in steps, not per client;
#   maps:    /proc/PID/maps lines, at most RESOURCE_MAPS_SLACK (default 10) above it;
#   heap:    swrdma_heap_in_use_bytes (/metrics: what the allocator counts as allocated and not
#            freed), at most RESOURCE_HEAP_SLACK_KB (default 4096 KiB) above it. A leak grows it
#            whatever the allocator caches.
# AddressSanitizer builds (make asan, make sanitize): ASan keeps freed blocks in a quarantine
# (256 MiB by default) before reusing them, so RssAnon grows by ~100 MiB over these cycles though
# the heap stays flat. The agent then runs with quarantine_size_mb=RESOURCE_ASAN_QUARANTINE_MB
# (default 4) and detect_stack_use_after_return=0 (clang's fake stacks hold ~11 MiB per thread),
# and the same slacks apply.
# Over tcp, then over shared memory (posix,sysv,cma) where Yama allows CMA. Prints one JSON line
# with the numbers.
#
# Shared memory: the agent's UCX worker creates a reply endpoint for every client and maps the
# client's SysV/posix segments for it (3 mappings, ~100 KiB resident). Nothing a client does on
# close reaches the agent; only UCX's keepalive releases that endpoint, once it finds the client
# process gone, and only for clients connected with peer error handling, which shared memory has
# with UCX_MM_ERROR_HANDLING=y (rdma::UcxContextOptions::shm_peer_failure, on in both binaries).
# Keepalive runs every UCX_KEEPALIVE_INTERVAL (2 s in the agent unless set; UCX's default is
# 20 s), so after the shared-memory cycles the test waits up to RESOURCE_SETTLE_S (default 60)
# seconds for the numbers to come back. Meanwhile one `swrdma bench` client stays connected over
# shared memory for RESOURCE_LIVE_S (default 25) seconds, across keepalive rounds: it must see no
# error and no reconnect (keepalive must not cut off live clients).
set -euo pipefail
# shellcheck source=SCRIPTDIR/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"
e2e_self_deadline 300 "$@"
e2e_binaries "$@"
e2e_need jq pgrep
CYCLES=${RESOURCE_CYCLES:-50}
FD_SLACK=${RESOURCE_FD_SLACK:-8}
RSS_SLACK_KB=${RESOURCE_RSS_SLACK_KB:-16384}
MAPS_SLACK=${RESOURCE_MAPS_SLACK:-10}
SETTLE_S=${RESOURCE_SETTLE_S:-60}
LIVE_S=${RESOURCE_LIVE_S:-25}
HEAP_SLACK_KB=${RESOURCE_HEAP_SLACK_KB:-4096}
ASAN_QUARANTINE_MB=${RESOURCE_ASAN_QUARANTINE_MB:-4}
if grep -qa __asan_init "$AGENT"; then
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=$ASAN_QUARANTINE_MB:\
detect_stack_use_after_return=0"
  # ASan's allocator maps a region per size class as it first uses it, and the small quarantine
  # cycles blocks through more of them: measured +12 mappings over tcp after 50 clients with the
  # heap flat (+4 KiB). The heap count is the leak check there; a leaked mapping per client (50)
  # still exceeds this slack.
  MAPS_SLACK=${RESOURCE_MAPS_SLACK:-30}
  e2e_log "AddressSanitizer build: the agent runs with ASAN_OPTIONS=$ASAN_OPTIONS," \
    "maps slack $MAPS_SLACK"
fi

e2e_workdir
e2e_shm_in_workdir
e2e_mkvolume "$W/volumes" 1 --needles 200 --min 1 --max 64K --gzip-fraction 0.2
e2e_fids live m1.tsv >live.txt
mapfile -t FIDS <live.txt
e2e_serve "$W/volumes"
DP=$(e2e_data_plane_pid)
[[ -n "$DP" ]] || e2e_fail "no data-plane child under the supervisor"

fds() { e2e_proc_fds "$DP"; }
maps() { e2e_proc_maps "$DP"; }
status_kb() { e2e_proc_status_kb "$DP" "$1"; }
heap_kb() {  # the allocator's count of bytes in use, from /metrics
  local v
  v=$(e2e_client curl -sf --max-time 10 "$(e2e_url /metrics)" |
    awk '$1 == "swrdma_heap_in_use_bytes" { printf "%d", $2 / 1024 }') || true
  [[ "$v" =~ ^[0-9]+$ ]] || e2e_fail "no swrdma_heap_in_use_bytes in the agent's /metrics"
  echo "$v"
}
sample() {
  printf '{"fds":%s,"maps":%s,"rss_kb":%s,"rss_anon_kb":%s,"rss_file_kb":%s,"rss_shmem_kb":%s,' \
    "$(fds)" "$(maps)" "$(status_kb VmRSS)" "$(status_kb RssAnon)" \
    "$(status_kb RssFile)" "$(status_kb RssShmem)"
  printf '"heap_kb":%s}' "$(heap_kb)"
}
get() {  # get TRANSPORTS FID...: one client process, connect / read / disconnect
  local tls=$1
  shift
  rm -rf out && mkdir out
  e2e_t "$CLI" get --agent "$AG" --transports "$tls" -o out "$@" 2>get.err ||
    e2e_fail "swrdma get over $tls failed: $(cat get.err)"
}
settle() {  # the agent notices closed connections asynchronously
  sleep 1.5
}
# settle_to BASELINE_JSON: waits (up to SETTLE_S) until fds and maps are back within their slack
# of the baseline; prints the seconds it took.
settle_to() {
  local base_fds base_maps t0=$SECONDS
  base_fds=$(jq .fds <<<"$1")
  base_maps=$(jq .maps <<<"$1")
  settle
  e2e_wait_until $((SETTLE_S - (SECONDS - t0))) 1 settled "$base_fds" "$base_maps" || true
  echo $((SECONDS - t0))
}
# settled BASE_FDS BASE_MAPS: fds and maps are back within their slack of the baseline.
settled() { (($(fds) <= $1 + FD_SLACK && $(maps) <= $2 + MAPS_SLACK)); }

# run_cycles TRANSPORTS: prints a JSON object with the samples.
run_cycles() {
  local tls=$1 i base samples=() final
  # Warm-up: every needle once (their pages are in RSS from now on), and a few clients.
  get "$tls" "${FIDS[@]}"
  for i in 1 2 3; do get "$tls" "${FIDS[@]:0:5}"; done
  settle
  base=$(sample)
  local live_pid=""
  if [[ "$tls" != tcp ]]; then
    # A client that stays connected across keepalive rounds while the others come and go.
    e2e_spawn live_pid $((LIVE_S + 60)) live.json live.err \
      "$CLI" bench --agent "http://$AG" --volume 1 --seconds "$LIVE_S" --transports "$tls" --json
  fi
  for ((i = 1; i <= CYCLES; i++)); do
    get "$tls" "${FIDS[RANDOM % ${#FIDS[@]}]}" "${FIDS[RANDOM % ${#FIDS[@]}]}" \
      "${FIDS[RANDOM % ${#FIDS[@]}]}"
    if ((i % 10 == 0)); then samples+=("$(sample)"); fi
  done
  local live='null'
  if [[ -n "$live_pid" ]]; then
    wait "$live_pid" || e2e_fail "swrdma bench over $tls (alive across keepalive rounds) failed: \
$(tail -n 3 live.err)"
    live=$(tail -n 1 live.json)
    jq -e '.errors == 0 and .reconnects == 0 and .ops > 0' <<<"$live" >/dev/null ||
      e2e_fail "the live client over $tls saw errors or reconnects: $live"
  fi
  local settle_s
  settle_s=$(settle_to "$base")
  final=$(sample)
  [[ "$(e2e_data_plane_pid)" == "$DP" ]] ||
    e2e_fail "the data-plane child was restarted during the $tls cycles: numbers are void"
  local joined
  joined=$(IFS=,; echo "${samples[*]}")
  jq -c -n --arg t "$tls" --argjson b "$base" --argjson f "$final" --argjson s "[$joined]" \
    --argjson settle "$settle_s" --argjson live "$live" \
    '{transports: $t, baseline: $b, every_10: $s, final: $f, settle_s: $settle,
      live_client: (if $live == null then null else
        ($live | {transport, seconds, ops, errors, reconnects}) end),
      fd_growth: ($f.fds - $b.fds), maps_growth: ($f.maps - $b.maps),
      rss_anon_growth_kb: ($f.rss_anon_kb - $b.rss_anon_kb),
      heap_growth_kb: ($f.heap_kb - $b.heap_kb),
      rss_shmem_growth_kb: ($f.rss_shmem_kb - $b.rss_shmem_kb),
      rss_growth_kb: ($f.rss_kb - $b.rss_kb)}'
}

RESULTS=("$(run_cycles tcp)")
if e2e_cma_allowed; then
  RESULTS+=("$(run_cycles posix,sysv,cma)")
else
  e2e_log "Yama ptrace_scope >= 2: CMA cannot work, skipping the shared-memory cycles"
fi
summary=$(printf '%s\n' "${RESULTS[@]}" | jq -s -c --argjson n "$CYCLES" \
  --argjson fs "$FD_SLACK" --argjson rs "$RSS_SLACK_KB" \
  --argjson ms "$MAPS_SLACK" --argjson ss "$SETTLE_S" --argjson hs "$HEAP_SLACK_KB" \
  '{test: "agent_resources", cycles_per_transport: $n, fd_slack: $fs, rss_anon_slack_kb: $rs,
    maps_slack: $ms, heap_slack_kb: $hs, settle_limit_s: $ss, runs: .}')
echo "$summary"
growth=$(jq -r '.runs[] | "\(.transports) \(.fd_growth) \(.rss_anon_growth_kb) \(.maps_growth) \(.rss_shmem_growth_kb) \(.heap_growth_kb)"' \
  <<<"$summary")
while read -r tls fdg rssg mapg shmg heapg; do
  ((heapg <= HEAP_SLACK_KB)) ||
    e2e_fail "over $tls the agent's heap in use grew by $heapg KiB after $CYCLES clients: a leak"
  ((fdg <= FD_SLACK)) || e2e_fail "over $tls the agent kept $fdg more fds after $CYCLES clients"
  ((rssg <= RSS_SLACK_KB)) ||
    e2e_fail "over $tls the agent's RssAnon grew by $rssg KiB after $CYCLES clients"
  ((mapg <= MAPS_SLACK)) ||
    e2e_fail "over $tls the agent kept $mapg more memory mappings (RssShmem +$shmg KiB) after \
$CYCLES clients and ${SETTLE_S} s (shared memory: is UCX_MM_ERROR_HANDLING=n set?)"
done <<<"$growth"

e2e_sigterm_agent
e2e_log "PASS"
