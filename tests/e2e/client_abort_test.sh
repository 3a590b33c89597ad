#!/usr/bin/env bash
# End-to-end: clients that die mid-transfer must not take the agent down.
#
#   client_abort_test.sh AGENT_BINARY CLIENT_BINARY
#
# A storage-side agent serves many clients; any of them may crash, be OOM-killed or Ctrl-C'ed in
# the middle of a batch. Repeatedly SIGKILLs (and SIGINTs) `swrdma get` while it reads large
# needles over tcp and over shared memory, and curl while it downloads over the HTTP fallback;
# afterwards the agent must still run and serve every fid correctly.
set -euo pipefail
# shellcheck source=SCRIPTDIR/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"
e2e_self_deadline 300 "$@"
e2e_binaries "$@"
e2e_need curl
ROUNDS=${E2E_ABORT_ROUNDS:-12}

e2e_workdir
e2e_shm_in_workdir
e2e_mkvolume "$W/volumes" 2 --needles 80 --min 200K --max 1M --gzip-fraction 0.2
e2e_fids live m2.tsv >live.txt
e2e_serve "$W/volumes"

# The agent service must survive: UCX 1.13 may abort the agent's data-plane process when a tcp
# client dies mid-read (see agent/supervisor.h); the supervisor then restarts it on the same
# listening socket. So: the supervisor is alive and /readyz answers 200 again within 20 s.
agent_alive() { ! e2e_exited "$E2E_AGENT_PID" && e2e_wait_ready 20; }

# abort_rounds WHAT SIGNAL CMD...: starts CMD in the background ROUNDS times and sends it SIGNAL
# after 10..90 ms, while it transfers; the agent must survive every round.
abort_rounds() {
  local what=$1 sig=$2 i pid delay
  shift 2
  for ((i = 1; i <= ROUNDS; i++)); do
    rm -rf out
    mkdir out
    "$@" >/dev/null 2>&1 &
    pid=$!
    delay=0.0$((RANDOM % 9 + 1))
    sleep "$delay"
    kill "-$sig" "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    sleep 0.3  # let the agent notice the dead peer
    agent_alive || e2e_fail "the agent died after $what was sent SIG$sig ${delay}s into round $i"
  done
  e2e_log "agent survived $ROUNDS rounds of $what killed by SIG$sig mid-transfer"
}
mapfile -t FIDS <live.txt
# Each invocation reads every fid three times, so the kill lands while data is moving.
GET=("$CLI" get --agent "$AG" -o out "${FIDS[@]}" "${FIDS[@]}" "${FIDS[@]}")
abort_rounds "a tcp client" KILL "${GET[@]}" --transports tcp
abort_rounds "a tcp client" INT "${GET[@]}" --transports tcp
abort_rounds "a shared-memory client" KILL "${GET[@]}" --transports posix,sysv,cma
big=$(sort -t$'\t' -k2,2n m2.tsv | tail -n1 | cut -f1)
abort_rounds "an HTTP download" KILL curl -s --limit-rate 2M -o out/x "$(e2e_url "/$big")"

# Still serving, and serving correctly.
e2e_get_all "$W/tcp" live.txt tcp --transports tcp
e2e_http_fetch_all live.txt "$W/http"
e2e_compare_dirs "$W/tcp" "$W/http" live.txt
restarts=$(e2e_count_restarts "$E2E_AGENT_LOG")
e2e_log "data-plane restarts by the supervisor: $restarts"
e2e_sigterm_agent
e2e_log "PASS"
