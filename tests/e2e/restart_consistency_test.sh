#!/usr/bin/env bash
# End-to-end: kill -9 of the agent while it builds or updates its needle index, then restarts.
#
#   restart_consistency_test.sh AGENT_BINARY CLIENT_BINARY CHAOS_BINARY
#
# The agent (--no-supervise: nothing restarts it behind our back) indexes a large volume of tiny
# needles (CONSISTENCY_NEEDLES, default 1.5 M) and a smaller one (400 K). It is killed
#   A. while it writes volume 1's rebuild (SST files, before the ingestion),
#   B. after volume 1 is committed, while it writes volume 2's rebuild,
#   D. while it applies a big appended tail of volume 1 (CONSISTENCY_TAIL, default 600 K entries,
#      applied in batches that each carry their watermark), after the first batch landed.
# After each kill the next start must show (agent log: "volume N: scan 0/T entries", the index
# progress that agent/volume_set.cc logs before reading T `.idx` entries) that it re-reads only
# what was not committed: all of volume 1 after A, nothing of volume 1 but all of volume 2 after
# B, less than the tail after D, and nothing at all on a further clean restart (a kill that came
# late, after the rebuild it aimed at was ingested, is recognised from the log and must then cost
# nothing). Each complete start must report the live/deleted counts the `.idx` files imply (/v1/volumes vs the mkvolume and chaos manifests)
# and serve a sample of fids (sizes as the manifests say; deleted ones fail as deleted).
set -euo pipefail
# shellcheck source=SCRIPTDIR/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"
e2e_self_deadline 300 "$@"
e2e_binaries_chaos "$@"
e2e_need curl jq pgrep
NEEDLES=${CONSISTENCY_NEEDLES:-1500000}
TAIL=${CONSISTENCY_TAIL:-600000}

e2e_workdir
e2e_shm_in_workdir
D=$W/volumes
e2e_mkvolume "$D" 1 --needles "$NEEDLES" --size 1 --delete-fraction 0.05
e2e_mkvolume "$D" 2 --needles 400000 --min 1 --max 2K --delete-fraction 0.1 --gzip-fraction 0.1 \
  --seed 2
idx_entries() { echo $(($(stat -c %s "$D/$1.idx") / 16)); }
declare -A LIVE DELETED
for vid in 1 2; do
  LIVE[$vid]=$(e2e_fids live "m$vid.tsv" | wc -l)
  DELETED[$vid]=$(e2e_fids deleted "m$vid.tsv" | wc -l)
done
e2e_log "volume 1: ${LIVE[1]} live, ${DELETED[1]} deleted ($(idx_entries 1) .idx entries);" \
  "volume 2: ${LIVE[2]} live, ${DELETED[2]} deleted"

AGENT_ARGS=(--no-supervise --dir "$D" --index-dir "$W/index")
# scan_total LOG VID: the largest T of "volume VID: scan 0/T entries" in LOG, 0 if none.
scan_total() {
  { grep -oE "volume $2: scan 0/[0-9]+ entries" "$1" || true; } |
    sed -E 's/.*scan 0\/([0-9]+) entries/\1/' | sort -n | tail -n1 | grep . || echo 0
}
# Each start must log that it indexes both volumes (guards the log wording the checks rely on).
check_indexing_logged() {
  local vid
  for vid in 1 2; do
    grep -q "indexing volume $vid " "$1" || e2e_fail "$1 does not say it indexed volume $vid"
  done
}

# kill_when LOG PATTERN: starts the agent in the background and kill -9s it as soon as LOG
# matches PATTERN (grep -E). Sets KILLED_LATE=1 if it was already serving by then.
kill_when() {
  local log=$1 pattern=$2 pid
  e2e_spawn pid 120 "$log" "$log" "$AGENT" "${AGENT_ARGS[@]}" --http 127.0.0.1:0
  e2e_wait_log "the agent" "$pid" "$log" "$pattern" 60 0.002
  # `timeout` is the parent; the agent is its only child.
  pkill -KILL -P "$pid" || true
  wait "$pid" 2>/dev/null || true
  KILLED_LATE=0
  grep -q 'serving http' "$log" && KILLED_LATE=1
  e2e_log "killed -9 on /$pattern/ (after start-up: $KILLED_LATE); last line: $(tail -n1 "$log" | cut -c1-120)"
}

# check_served LOG: a complete start; counts and a sample of reads match the manifests.
check_served() {
  local log=$1 extra_live=$2 vid got want
  e2e_serve --log "$log" "$D" --no-supervise
  check_indexing_logged "$log"
  e2e_get_json /v1/volumes volumes.json
  for vid in 1 2; do
    want="$((LIVE[$vid] + (vid == 1 ? extra_live : 0))) ${DELETED[$vid]}"
    got=$(jq -r ".volumes[] | select(.volume_id == $vid) | \"\(.live_needles) \(.deleted_needles)\"" \
      volumes.json)
    [[ "$got" == "$want" ]] ||
      e2e_fail "volume $vid: agent says live/deleted $got, the .idx files imply $want ($log)"
  done
  # 300 live fids of each volume (+ 300 of the tail), read and sized as the manifests say.
  {
    awk -F'\t' '$3 == "live" { print $1 "\t" $2 }' m1.tsv | shuf -n 300
    awk -F'\t' '$3 == "live" { print $1 "\t" $2 }' m2.tsv | shuf -n 300
    if [[ -s tail.tsv ]]; then awk -F'\t' '$1 == "put" { print $3 "\t" $4 }' tail.tsv | shuf -n 300; fi
  } >sample.tsv
  rm -rf got && mkdir got
  local sample
  mapfile -t sample < <(cut -f1 sample.tsv)
  e2e_t "$CLI" get --agent "$AG" --transports tcp -o got "${sample[@]}" 2>get.err ||
    e2e_fail "reading the sample failed: $(head -3 get.err)"
  local bad
  bad=$(while IFS=$'\t' read -r fid size; do
    [[ "$(stat -c %s "got/$fid" 2>/dev/null)" == "$size" ]] || echo "$fid"
  done <sample.tsv | head -n 3)
  [[ -z "$bad" ]] || e2e_fail "sample fids read wrong: $bad"
  # Deleted ones fail, as deleted.
  local fid
  for fid in $(e2e_fids deleted m1.tsv m2.tsv | shuf -n 10); do
    e2e_expect_get_fails --status 1 "deleted $fid" deleted --transports tcp "$fid"
  done
  e2e_log "counts and $(wc -l <sample.tsv) sampled reads match ($log)"
}

# ---- A: kill while volume 1's rebuild is being written --------------------------------------
ENTRIES1=$(idx_entries 1)
kill_when a.log "volume 1: write 0/"
ENTRIES2=$(idx_entries 2)
# A rebuild logs "write N/N" once it is ingested: a kill after that (a loaded machine may be that
# slow to notice the line it waited for) found the volume committed.
committed() { grep -qE "volume $2: write ([0-9]+)/\\1 entries" "$1"; }
if committed a.log 1; then WANT_B1=0; else WANT_B1=$ENTRIES1; fi
# ---- B: the next start rebuilds volume 1 from scratch; kill in volume 2's rebuild -------------
kill_when b.log "volume 2: write 0/"
t=$(scan_total b.log 1)
((t == WANT_B1)) || e2e_fail "after kill A, volume 1 was re-read as $t entries, expected $WANT_B1"
committed b.log 1 || e2e_fail "volume 2 was indexed before volume 1 was committed (b.log)"
if committed b.log 2; then WANT_C2=0; else WANT_C2=$ENTRIES2; fi
# ---- C: complete start: volume 1, committed before B, is not read again; volume 2 is ---------
check_served c.log 0
t=$(scan_total c.log 1)
((t == 0)) || e2e_fail "after kill B, volume 1 was re-read ($t entries) though it was committed"
t=$(scan_total c.log 2)
((t == WANT_C2)) || e2e_fail "after kill B, volume 2 was re-read as $t entries, expected $WANT_C2"
e2e_sigterm_agent

# ---- D: a big tail appended to volume 1; kill after its first batch landed -------------------
# Up to 10 min: 600,000 appends take ~20 s optimized but over 90 s in the Debug ASan build.
E2E_CMD_TIMEOUT=600 e2e_t "$CHAOS" append --dir "$D" --vid 1 --manifest tail.tsv --count "$TAIL" \
  --min-size 1 --max-size 16 --gzip-fraction 0 --seed 7 2>append.err ||
  e2e_fail "appending the tail failed (rc $?, 124 = timed out): $(tail -n 3 append.err)"
kill_when d.log "volume 1: write [1-9][0-9]*/$TAIL entries"
done_before_kill=$(grep -oE "volume 1: write [0-9]+/$TAIL" d.log | sed -E 's/.* ([0-9]+)\/.*/\1/' |
  sort -n | tail -n1)
# ---- E: complete start: only the rest of the tail is applied ---------------------------------
check_served e.log "$TAIL"
t=$(scan_total e.log 1)
((t <= TAIL - done_before_kill)) ||
  e2e_fail "after kill D, $t tail entries were re-read; $done_before_kill of $TAIL had landed"
((t < ENTRIES1)) || e2e_fail "after kill D, volume 1 was rebuilt ($t entries) instead of its tail"
e2e_log "tail: $done_before_kill of $TAIL entries landed before kill D; the restart applied $t"
t2=$(scan_total e.log 2)
((t2 == 0)) || e2e_fail "after kill D, volume 2 was re-read ($t2 entries) though unchanged"
e2e_sigterm_agent

# ---- F: a clean restart is up to date: nothing re-read ---------------------------------------
check_served f.log "$TAIL"
for vid in 1 2; do
  t=$(scan_total f.log "$vid")
  ((t == 0)) || e2e_fail "a clean restart re-read $t entries of volume $vid"
done
jq -c -n --argjson n "$NEEDLES" --argjson tail "$TAIL" --argjson landed "$done_before_kill" \
  --argjson rest "$(scan_total e.log 1)" --argjson live1 "$((LIVE[1] + TAIL))" \
  --argjson del1 "${DELETED[1]}" --argjson b1 "$(scan_total b.log 1)" \
  --argjson c2 "$(scan_total c.log 2)" --argjson e1 "$ENTRIES1" --argjson e2 "$ENTRIES2" \
  '{test: "restart_consistency", needles: $n, idx_entries: [$e1, $e2],
    reread_after_kill_a: {volume1: $b1}, reread_after_kill_b: {volume1: 0, volume2: $c2},
    tail: $tail, tail_landed_before_kill: $landed, tail_applied_after_restart: $rest,
    reread_after_clean_restart: 0, volume1_live: $live1, volume1_deleted: $del1}'
e2e_sigterm_agent
e2e_log "PASS"
