#!/usr/bin/env bash
# End-to-end chaos: live volume changes, faults and agent crashes under readers that check every
# byte.
#
#   chaos_test.sh AGENT_BINARY CLIENT_BINARY CHAOS_BINARY
#
# The real agent (supervised, as deployed) exports three volumes that `swrdma-volume-chaos run`
# changes as a volume server would: appends at a steady rate, and in random order deletes, vacuums
# (compaction revision + 1 renamed over), a `.dat` cut in the middle of its last record, and a
# volume removed and re-created. Meanwhile this script kill -9s the agent's data-plane child (the
# supervisor restarts it) and the whole agent (restarted on the same port and --index-dir), and
# two `swrdma-volume-chaos read` processes read random fids of the manifest the whole time.
#
# Afterwards, with the volumes quiet, `verify` reads every fid once: live ones must read right,
# deleted ones must fail. The result is one JSON line (reads ok, retried, failed by error code,
# wrong bytes, ...). Fails if any read returned wrong bytes, if no read succeeded, if a needle
# was readable longer than the 2 s grace after its deletion, or if the final pass fails.
#
# CHAOS_SECONDS (default 60) sets the length of the chaos phase; CHAOS_SEED its randomness.
set -euo pipefail
# shellcheck source=SCRIPTDIR/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"
CHAOS_SECONDS=${CHAOS_SECONDS:-60}
{ [[ "$CHAOS_SECONDS" =~ ^[0-9]+$ ]] && ((CHAOS_SECONDS >= 10)); } ||
  e2e_fail "CHAOS_SECONDS must be a whole number of seconds >= 10 (got '$CHAOS_SECONDS')"
E2E_AGENT_LIFETIME=$((CHAOS_SECONDS + 300))
e2e_self_deadline $((CHAOS_SECONDS + 240)) "$@"

e2e_binaries_chaos "$@"
e2e_need curl jq pgrep
SEED=${CHAOS_SEED:-$RANDOM}
RANDOM=$SEED
e2e_log "chaos for ${CHAOS_SECONDS}s, seed $SEED (CHAOS_SEED=$SEED repeats the fault order)"

e2e_workdir
e2e_shm_in_workdir
D=$W/volumes
M=$W/manifest.tsv
mkdir -p "$D"

# Three volumes with some needles before the agent starts.
for vid in 1 2 3; do
  e2e_t "$CHAOS" append --dir "$D" --manifest "$M" --vid "$vid" --count 150 --seed "$SEED$vid" \
    2>/dev/null || e2e_fail "seeding volume $vid failed"
done

STARTS=0
start_agent() {  # start_agent PORT: a supervised agent, log agent.N.log
  STARTS=$((STARTS + 1))
  e2e_serve --log "$W/agent.$STARTS.log" --port "$1" "$D"
}
start_agent 0
PORT=$E2E_AGENT_PORT
URL="http://$AG"

# ---- writer and readers ---------------------------------------------------------------------
BG=()
background() {  # background NAME CMD...: stdout to NAME.json, stderr to NAME.log
  local name=$1 pid
  shift
  e2e_spawn pid $((CHAOS_SECONDS + 120)) "$W/$name.json" "$W/$name.log" "$@"
  BG+=("$pid")
}
background writer "$CHAOS" run --dir "$D" --manifest "$M" --vids 1,2,3 --seed "$SEED" \
  --seconds "$CHAOS_SECONDS" --rate 90 --fault-every-ms 1200 --max-size 49152
WRITER=${BG[0]}
READ_SECONDS=$((CHAOS_SECONDS + 4))
# Fids per ReadMany: batches mix cached lookups of a volume's old export with fresh ones of its
# new export (the client keeps one rkey per (volume, generation) for the whole batch).
READ_BATCH=${CHAOS_READ_BATCH:-8}
for r in 1 2; do
  background "reader$r" "$CHAOS" read --agent "$URL" --manifest "$M" --seconds "$READ_SECONDS" \
    --name "reader$r" --seed "$SEED$r" --rate 300 --transports tcp --batch "$READ_BATCH"
done

# ---- agent crashes while all that runs ------------------------------------------------------
# Roughly one crash every 12 s, the first after 6 s; at least one of each kind.
N_CRASH=$((CHAOS_SECONDS / 12))
((N_CRASH >= 2)) || N_CRASH=2
CRASHES=(child whole)
for ((i = 2; i < N_CRASH; i++)); do
  if ((RANDOM % 3 == 0)); then CRASHES+=(whole); else CRASHES+=(child); fi
done
for ((i = ${#CRASHES[@]} - 1; i > 0; i--)); do  # Fisher-Yates, with the seeded $RANDOM
  j=$((RANDOM % (i + 1)))
  tmp=${CRASHES[i]}
  CRASHES[i]=${CRASHES[j]}
  CRASHES[j]=$tmp
done
CHILD_KILLS=0
WHOLE_KILLS=0
T0=$SECONDS
for ((i = 0; i < ${#CRASHES[@]}; i++)); do
  at=$((T0 + 6 + i * (CHAOS_SECONDS - 10) / ${#CRASHES[@]} + RANDOM % 3))
  while ((SECONDS < at)); do sleep 0.2; done
  kill -0 "$WRITER" 2>/dev/null || break
  case ${CRASHES[i]} in
    child)
      dp=$(e2e_data_plane_pid)
      [[ -n "$dp" ]] || e2e_fail "no data-plane child of the supervisor to kill"
      kill -KILL "$dp"
      CHILD_KILLS=$((CHILD_KILLS + 1))
      e2e_log "kill -9 of the data-plane child $dp"
      # The supervisor restarts it (back-off <= 5 s) on the same listening socket.
      e2e_wait_ready 30 || e2e_fail "the supervisor did not bring the agent back within 30 s"
      new=$(e2e_data_plane_pid)
      [[ -n "$new" && "$new" != "$dp" ]] || e2e_fail "no new data-plane child after killing $dp"
      ;;
    whole)
      sup=$(e2e_supervisor_pid)
      dp=$(e2e_data_plane_pid)
      [[ -n "$sup" ]] || e2e_fail "no supervisor to kill"
      # Both at once, as a machine crash or an OOM kill of the group would.
      kill -KILL "$sup" ${dp:+"$dp"}
      WHOLE_KILLS=$((WHOLE_KILLS + 1))
      e2e_log "kill -9 of the whole agent (supervisor $sup, child ${dp:-none})"
      e2e_wait_until 10 0.1 e2e_exited "$E2E_AGENT_PID" || true
      wait "$E2E_AGENT_PID" 2>/dev/null || true
      # The child too: its exit (unmapping the volumes, UCX's threads) takes a busy 2-core
      # machine a moment, and the restart should not race it.
      [[ -z "$dp" ]] || e2e_wait_until 10 0.1 e2e_exited "$dp" || true
      # Down for a moment, then back on the same port with the same index directory.
      sleep 0.$((RANDOM % 9 + 1))
      start_agent "$PORT"
      ;;
  esac
done

# ---- results ---------------------------------------------------------------------------------
for pid in "${BG[@]}"; do
  rc=0
  wait "$pid" || rc=$?
  ((rc == 0 || rc == 3)) || {
    e2e_log "a background process failed (status $rc); logs:"
    tail -n 20 "$W"/writer.log "$W"/reader*.log >&2
    e2e_fail "writer or reader exited with status $rc"
  }
done
grep -q FAILED "$W/writer.log" && e2e_fail "the writer failed: $(grep FAILED "$W/writer.log" | head -3)"
# Quiet volumes: let the agent settle (inotify + scan, grace of the last deletes), then read all.
sleep 3
rc=0
e2e_t "$CHAOS" verify --agent "$URL" --manifest "$M" >verify.json 2>verify.log || rc=$?
((rc == 0 || rc == 3)) || e2e_fail "verify exited with status $rc: $(cat verify.log)"

restarts=$(e2e_count_restarts "$W"/agent.*.log)
summary=$(jq -s -c --argjson w "$(cat writer.json)" --argjson v "$(cat verify.json)" \
  --argjson child "$CHILD_KILLS" --argjson whole "$WHOLE_KILLS" --argjson restarts "$restarts" \
  --argjson secs "$CHAOS_SECONDS" --argjson seed "$SEED" '
  def sum_maps(f): [.[] | f | to_entries[]] | group_by(.key)
                   | map({key: .[0].key, value: (map(.value) | add)}) | from_entries;
  {test: "chaos", seconds: $secs, seed: $seed,
   reads: (map(.reads) | add), reads_ok: (map(.ok) | add),
   retried: (map(.retries) | add), reconnects: (map(.reconnects) | add),
   failed_by_code: sum_maps(.failed), failed_gone_by_code: sum_maps(.failed_gone),
   wrong_bytes: (map(.wrong_bytes) | add),
   ok_gone_within_grace: (map(.ok_gone_within_grace) | add),
   stale_after_delete: (map(.stale_after_delete) | add),
   http_fallbacks: (map(.http_fallbacks) | add),
   kills: {data_plane: $child, whole_agent: $whole, supervisor_restarts: $restarts},
   writer: $w, verify: $v}' reader1.json reader2.json)
echo "$summary"

wrong=$(jq '.wrong_bytes + .verify.wrong_bytes' <<<"$summary")
ok=$(jq '.reads_ok' <<<"$summary")
stale=$(jq '.stale_after_delete' <<<"$summary")
((wrong == 0)) || e2e_fail "$wrong reads returned wrong bytes (see reader*.log)"
((ok > 0)) || e2e_fail "no read succeeded"
((stale == 0)) || e2e_fail "$stale reads of needles deleted more than 2 s before succeeded"
[[ $(jq '.verify.passed' <<<"$summary") == true ]] ||
  e2e_fail "final pass over every fid failed: $(cat verify.json) $(head -5 verify.log)"
e2e_sigterm_agent
e2e_log "PASS"
