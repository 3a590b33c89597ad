# shellcheck shell=bash
# Helpers shared by the end-to-end tests in tests/e2e/ (sourced, not run).
#
# The tests run the real `swrdma-agent` and `swrdma` binaries as separate processes. Everything
# here is bounded in time: each command runs under `timeout`, the agent has a hard lifetime, and
# the calling script re-executes itself under an overall deadline (e2e_self_deadline) so its EXIT
# trap still runs, and cleans up, before ctest's own TIMEOUT would SIGKILL it.

set -euo pipefail

E2E_CMD_TIMEOUT=${E2E_CMD_TIMEOUT:-90}     # seconds for any single command
E2E_AGENT_LIFETIME=${E2E_AGENT_LIFETIME:-600}  # hard cap on an agent's life

e2e_log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
e2e_fail() {
  e2e_log "FAIL: $*"
  exit 1
}
e2e_skip() {
  e2e_log "SKIP: $*"
  exit 77
}

# Re-executes the calling script under `timeout` once, so a hung step turns into SIGTERM -> trap
# -> cleanup instead of an uncleaned SIGKILL from ctest. Call first, with the script's "$@".
e2e_self_deadline() {
  local seconds=$1
  shift
  if [[ -z "${E2E_UNDER_DEADLINE:-}" ]]; then
    export E2E_UNDER_DEADLINE=1
    exec timeout -s TERM -k 60 "$seconds" bash "$0" "$@"
  fi
}

# Cleanup actions run in reverse order of registration by the EXIT trap, also on failure.
E2E_CLEANUP=()
e2e_on_cleanup() { E2E_CLEANUP+=("$1"); }
e2e_run_cleanup() {
  local rc=$? i
  trap - EXIT ERR
  # A signal now (the deadline's SIGTERM, a Ctrl-C) must not cut the cleanup short; the deadline's
  # SIGKILL, 60 s later, still bounds it. (A no-op handler, not SIG_IGN: commands started by the
  # cleanup must not inherit an ignored SIGTERM.)
  trap ':' INT TERM
  set +e
  if ((rc != 0)) && [[ -n "${E2E_AGENT_LOG:-}" && -f "${E2E_AGENT_LOG}" ]]; then
    e2e_log "agent log (last 30 lines of $E2E_AGENT_LOG):"
    tail -n 30 "$E2E_AGENT_LOG" >&2
  fi
  for ((i = ${#E2E_CLEANUP[@]} - 1; i >= 0; i--)); do
    eval "${E2E_CLEANUP[i]}" >/dev/null 2>&1
  done
  exit "$rc"
}
trap e2e_run_cleanup EXIT
# A command failing under `set -e` says where, instead of ending the test silently.
set -E
trap 'e2e_log "FAIL: status $? at ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND"' ERR
trap 'e2e_log "interrupted (signal or deadline)"; exit 1' INT TERM

# e2e_tmpdir VAR: a fresh temporary directory, removed on exit.
e2e_tmpdir() {
  local d
  d=$(mktemp -d "${TMPDIR:-/tmp}/swrdma-e2e.XXXXXX")
  e2e_on_cleanup "rm -rf '$d'"
  printf -v "$1" '%s' "$d"
}

# e2e_t CMD...: runs CMD bounded in time.
e2e_t() { timeout -k 5 "$E2E_CMD_TIMEOUT" "$@"; }

# Commands are run through these prefixes so the same helpers work inside network namespaces.
E2E_AGENT_PREFIX=()
E2E_CLIENT_PREFIX=()
e2e_client() { e2e_t "${E2E_CLIENT_PREFIX[@]}" "$@"; }

# e2e_start_agent LOG AGENT_BINARY ARGS...: starts the agent (with --http HOST:0 among ARGS so the
# kernel picks a free port), waits until /readyz answers 200 and sets E2E_AGENT_PID (the
# `timeout` process around the agent: it forwards SIGTERM), E2E_AGENT_PORT and E2E_AGENT_HOST.
e2e_start_agent() {
  local log=$1 host="" prev="" a
  shift
  for a in "$@"; do
    if [[ "$prev" == "--http" ]]; then host=${a%:*}; fi
    prev=$a
  done
  [[ -n "$host" ]] || e2e_fail "e2e_start_agent: pass --http HOST:0"
  E2E_AGENT_LOG=$log
  : >"$log"  # exists before the background redirection opens it
  # -k: an agent ignoring SIGTERM is killed 10 s later (that also fails the SIGTERM check).
  timeout -s TERM -k 10 "$E2E_AGENT_LIFETIME" "${E2E_AGENT_PREFIX[@]}" "$@" >"$log" 2>&1 &
  E2E_AGENT_PID=$!
  e2e_on_cleanup "e2e_stop_agent_hard $E2E_AGENT_PID"
  local deadline=$((SECONDS + 60))
  E2E_AGENT_PORT=""
  while [[ -z "$E2E_AGENT_PORT" ]]; do
    kill -0 "$E2E_AGENT_PID" 2>/dev/null || e2e_fail "the agent exited during start-up (log: $log)"
    ((SECONDS < deadline)) || e2e_fail "the agent did not log its HTTP port within 60 s"
    E2E_AGENT_PORT=$(sed -n 's/.*serving http on .* (port \([0-9][0-9]*\)).*/\1/p' "$log" |
      head -n1 || true)
    [[ -n "$E2E_AGENT_PORT" ]] || sleep 0.1
  done
  E2E_AGENT_HOST=$host
  local code=""
  while [[ "$code" != 200 ]]; do
    kill -0 "$E2E_AGENT_PID" 2>/dev/null || e2e_fail "the agent exited before /readyz (log: $log)"
    ((SECONDS < deadline)) || e2e_fail "/readyz did not answer 200 within 60 s (last: $code)"
    code=$(e2e_client curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
      "http://$host:$E2E_AGENT_PORT/readyz" || true)
    [[ "$code" == 200 ]] || sleep 0.2
  done
  e2e_log "agent pid $E2E_AGENT_PID ready on $host:$E2E_AGENT_PORT"
}

# Cleanup of an agent that may still run: SIGTERM (forwarded by timeout), then SIGKILL.
e2e_stop_agent_hard() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    pkill -KILL -P "$pid" 2>/dev/null
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  return 0
}

# e2e_sigterm_agent: SIGTERM must stop the agent with exit status 0 within 8 seconds.
e2e_sigterm_agent() {
  local pid=$E2E_AGENT_PID i rc=0
  kill -TERM "$pid"
  for i in $(seq 80); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && e2e_fail "the agent still runs 8 s after SIGTERM"
  wait "$pid" || rc=$?
  ((rc == 0)) || e2e_fail "the agent exited with status $rc after SIGTERM (expected 0)"
  grep -q 'stopped' "$E2E_AGENT_LOG" || e2e_fail "the agent did not log 'stopped' on SIGTERM"
  e2e_log "agent stopped cleanly on SIGTERM"
}

e2e_url() { printf 'http://%s:%s%s' "$E2E_AGENT_HOST" "$E2E_AGENT_PORT" "$1"; }

# e2e_http_fetch_all FIDS_FILE OUT_DIR: GETs every fid (one line each) from the agent's HTTP
# fallback with one curl process; writes OUT_DIR/<fid> and OUT_DIR.codes ("<status> <fid>").
e2e_http_fetch_all() {
  local fids=$1 out=$2 cfg fid
  mkdir -p "$out"
  cfg="$out.curlrc"
  : >"$cfg"
  while read -r fid; do
    printf 'url = "%s"\noutput = "%s/%s"\n' "$(e2e_url "/$fid")" "$out" "$fid" >>"$cfg"
  done <"$fids"
  e2e_client curl -s --max-time 60 -K "$cfg" -w '%{http_code} %{url_effective}\n' \
    >"$out.codes.raw" || e2e_fail "curl over the HTTP fallback failed"
  sed 's|^\([0-9]*\) .*/\([^/]*\)$|\1 \2|' "$out.codes.raw" >"$out.codes"
  local bad
  bad=$(awk '$1 != 200' "$out.codes" | head -n 5)
  [[ -z "$bad" ]] || e2e_fail "HTTP fallback did not answer 200 for: $bad"
  (($(wc -l <"$out.codes") == $(wc -l <"$fids"))) || e2e_fail "curl fetched fewer fids than asked"
}

# e2e_compare_dirs A B FIDS_FILE: every fid's file in A equals the one in B, byte for byte.
e2e_compare_dirs() {
  local a=$1 b=$2 fids=$3 fid n=0
  while read -r fid; do
    [[ -f "$a/$fid" ]] || e2e_fail "$a/$fid is missing"
    [[ -f "$b/$fid" ]] || e2e_fail "$b/$fid is missing"
    n=$((n + 1))
  done <"$fids"
  local d
  d=$(diff -rq "$a" "$b" 2>&1 | head -n 5) || true
  [[ -z "$d" ]] || e2e_fail "contents differ ($a vs $b): $d"
  e2e_log "  $n files identical: $(basename "$a") == $(basename "$b")"
}

# e2e_check_sizes DIR MANIFEST: each live fid's file size equals the manifest's size column.
e2e_check_sizes() {
  local dir=$1 manifest=$2 bad
  bad=$(cd "$dir" && awk -F'\t' '$3 == "live" { print $1 "\t" $2 }' "$manifest" |
    while IFS=$'\t' read -r fid size; do
      got=$(stat -c %s -- "$fid" 2>/dev/null || echo missing)
      [[ "$got" == "$size" ]] || echo "$fid: $got bytes, manifest says $size"
    done | head -n 5)
  [[ -z "$bad" ]] || e2e_fail "sizes differ from the mkvolume manifest: $bad"
}
