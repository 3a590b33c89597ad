# shellcheck shell=bash
# Helpers shared by the end-to-end tests in tests/e2e/ (sourced, not run).
#
# The tests run the real `swrdma-agent` and `swrdma` binaries as separate processes. Everything
# here is bounded in time: each command runs under `timeout`, every background process (the agent
# too) has a hard lifetime, every wait has a deadline, and the calling script re-executes itself
# under an overall deadline (e2e_self_deadline) so its EXIT trap still runs, and cleans up, before
# ctest's own TIMEOUT would SIGKILL it.
#
# A test starts like this:
#
#   set -euo pipefail
#   # shellcheck source=SCRIPTDIR/e2e_lib.sh
#   source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"
#   e2e_self_deadline 300 "$@"
#   e2e_binaries "$@"        # AGENT, CLI (and CHAOS)
#   e2e_need curl jq         # tools it needs
#   e2e_workdir              # W, a fresh directory (removed on exit), is the working directory
#   e2e_mkvolume "$W/volumes" 2 --needles 200 --min 1 --max 300K   # writes m2.tsv
#   e2e_fids live m2.tsv >live.txt
#   e2e_serve "$W/volumes"   # the agent on 127.0.0.1:<kernel-chosen port>; AG=127.0.0.1:PORT
#   ...
#   e2e_sigterm_agent
#
# Globals set here for the scripts: AGENT, CLI, CHAOS (e2e_binaries), W (e2e_workdir), AG
# (e2e_serve), E2E_AGENT_PID/PORT/HOST/LOG (e2e_start_agent).

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

# ---- arguments, tools, working directory ------------------------------------------------------

# e2e_binaries "$@": the script's arguments AGENT_BINARY CLIENT_BINARY [CHAOS_BINARY], as ctest
# passes them. Sets AGENT, CLI and CHAOS (empty without a third) to absolute paths; each one given
# must be executable.
e2e_binaries() {
  (($# == 2 || $# == 3)) || e2e_fail "usage: $0 AGENT_BINARY CLIENT_BINARY [CHAOS_BINARY]"
  AGENT=$(realpath "$1")
  CLI=$(realpath "$2")
  CHAOS=""
  [[ -x "$AGENT" && -x "$CLI" ]] || e2e_fail "build swrdma-agent and swrdma first"
  if (($# == 3)); then
    CHAOS=$(realpath "$3")
    [[ -x "$CHAOS" ]] || e2e_fail "build swrdma-volume-chaos first"
  fi
}
# e2e_binaries_chaos "$@": e2e_binaries, and CHAOS_BINARY is required.
e2e_binaries_chaos() {
  (($# == 3)) || e2e_fail "usage: $0 AGENT_BINARY CLIENT_BINARY CHAOS_BINARY"
  e2e_binaries "$@"
}

# e2e_need TOOL...: fails unless every TOOL is on PATH. e2e_need_or_skip: skips the test instead.
e2e_need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || e2e_fail "$tool is needed (scripts/install-deps.sh installs it)"
  done
}
e2e_need_or_skip() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || e2e_skip "$tool is missing (scripts/install-deps.sh installs it)"
  done
}

# e2e_tmpdir VAR: a fresh temporary directory, removed on exit.
e2e_tmpdir() {
  local d
  d=$(mktemp -d "${TMPDIR:-/tmp}/swrdma-e2e.XXXXXX")
  e2e_on_cleanup "rm -rf '$d'"
  printf -v "$1" '%s' "$d"
}
# e2e_workdir: W is a fresh temporary directory (removed on exit) and the working directory.
e2e_workdir() {
  e2e_tmpdir W
  cd "$W"
}
# e2e_shm_in_workdir: a SIGKILLed UCX process leaves its posix shared-memory files behind: keep
# them in $W/shm, not in /dev/shm (UCX opens peers' files through /proc/<pid>/fd, so the directory
# need not be shared).
e2e_shm_in_workdir() {
  mkdir -p "$W/shm"
  export UCX_POSIX_DIR=$W/shm
}

# e2e_t CMD...: runs CMD bounded in time.
e2e_t() { timeout -k 5 "$E2E_CMD_TIMEOUT" "$@"; }

# Commands are run through these prefixes so the same helpers work inside network namespaces.
E2E_AGENT_PREFIX=()
E2E_CLIENT_PREFIX=()
e2e_client() { e2e_t "${E2E_CLIENT_PREFIX[@]}" "$@"; }

# ---- waiting ------------------------------------------------------------------------------------

# e2e_wait_until SECONDS INTERVAL CMD...: runs CMD every INTERVAL seconds until it succeeds
# (returns 0) or SECONDS have passed (returns 1; CMD ran at least once). CMD runs in this shell,
# so it may e2e_fail to stop waiting early (say, when the process it waits for died).
e2e_wait_until() {
  local limit=$1 every=$2 deadline
  shift 2
  deadline=$((${EPOCHREALTIME//[!0-9]/} + limit * 1000000))
  until "$@"; do
    ((${EPOCHREALTIME//[!0-9]/} < deadline)) || return 1
    sleep "$every"
  done
}
# e2e_exited PID: PID no longer runs.
e2e_exited() { ! kill -0 "$1" 2>/dev/null; }

# e2e_wait_log WHAT PID FILE ERE SECONDS [INTERVAL]: waits until FILE (the output of WHAT, pid PID)
# has a line matching ERE; fails if PID exits first or SECONDS pass. INTERVAL defaults to 0.1.
e2e_wait_log() {
  local what=$1 pid=$2 file=$3 ere=$4 seconds=$5 every=${6:-0.1}
  e2e_wait_until "$seconds" "$every" _e2e_logged "$what" "$pid" "$file" "$ere" ||
    e2e_fail "$what did not log /$ere/ within $seconds s ($file)"
}
_e2e_logged() {  # _e2e_logged WHAT PID FILE ERE
  grep -qE -- "$4" "$3" && return 0
  e2e_exited "$2" && e2e_fail "$1 exited before logging /$4/ ($3): $(tail -n 5 "$3")"
  return 1
}

# ---- background processes -----------------------------------------------------------------------

# e2e_spawn PIDVAR SECONDS OUT ERR CMD...: starts CMD in the background under `timeout` (SIGTERM
# after SECONDS, SIGKILL 10 s later), stdout to OUT and stderr to ERR (both to OUT when ERR is the
# same file), and has it stopped at exit (e2e_stop_hard; that cleanup is registered in the calling
# shell, so a spawn inside $(...) is bounded by SECONDS alone). Sets PIDVAR to the pid of the
# `timeout` process: it forwards SIGTERM, and its exit status is CMD's.
e2e_spawn() {
  local var=$1 seconds=$2 out=$3 err=$4
  shift 4
  : >"$out"  # exists before the background redirection opens it
  if [[ "$err" == "$out" ]]; then
    timeout -s TERM -k 10 "$seconds" "$@" >"$out" 2>&1 &
  else
    timeout -s TERM -k 10 "$seconds" "$@" >"$out" 2>"$err" &
  fi
  printf -v "$var" '%s' "$!"
  e2e_on_cleanup "e2e_stop_hard $!"
}

# e2e_stop_hard PID: cleanup of a process that may still run: SIGTERM (forwarded by timeout), then
# SIGKILL (to it and its children) after 5 s.
e2e_stop_hard() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  e2e_wait_until 5 0.1 e2e_exited "$pid" || {
    pkill -KILL -P "$pid" 2>/dev/null
    kill -KILL "$pid" 2>/dev/null
  }
  wait "$pid" 2>/dev/null
  return 0
}

# e2e_sigterm PID WHAT: SIGTERM must stop PID with exit status 0 within 8 seconds.
e2e_sigterm() {
  local pid=$1 what=$2 rc=0
  kill -TERM "$pid"
  e2e_wait_until 8 0.1 e2e_exited "$pid" || e2e_fail "$what still runs 8 s after SIGTERM"
  wait "$pid" || rc=$?
  ((rc == 0)) || e2e_fail "$what exited with status $rc after SIGTERM (expected 0)"
}

# ---- the agent ----------------------------------------------------------------------------------

# e2e_start_agent LOG AGENT_BINARY ARGS...: starts the agent (with --http HOST:PORT among ARGS;
# PORT 0 lets the kernel pick a free one), waits until /readyz answers 200 and sets E2E_AGENT_PID
# (the `timeout` process around the agent: it forwards SIGTERM), E2E_AGENT_PORT and E2E_AGENT_HOST.
e2e_start_agent() {
  local log=$1 host="" prev="" a t0=$SECONDS
  shift
  for a in "$@"; do
    if [[ "$prev" == "--http" ]]; then host=${a%:*}; fi
    prev=$a
  done
  [[ -n "$host" ]] || e2e_fail "e2e_start_agent: pass --http HOST:PORT"
  E2E_AGENT_LOG=$log
  # -k: an agent ignoring SIGTERM is killed 10 s later (that also fails the SIGTERM check).
  e2e_spawn E2E_AGENT_PID "$E2E_AGENT_LIFETIME" "$log" "$log" "${E2E_AGENT_PREFIX[@]}" "$@"
  local port_ere='serving http on .* \(port [0-9]+\)'
  e2e_wait_log "the agent" "$E2E_AGENT_PID" "$log" "$port_ere" 60
  E2E_AGENT_PORT=$(sed -n 's/.*serving http on .* (port \([0-9][0-9]*\)).*/\1/p' "$log" | head -n1)
  E2E_AGENT_HOST=$host
  # Within the same 60 s as the port.
  e2e_wait_until $((60 - (SECONDS - t0))) 0.2 _e2e_agent_up ||
    e2e_fail "/readyz did not answer 200 within 60 s (last: $E2E_READYZ)"
  e2e_log "agent pid $E2E_AGENT_PID ready on $host:$E2E_AGENT_PORT"
}
_e2e_agent_up() {
  e2e_exited "$E2E_AGENT_PID" && e2e_fail "the agent exited before /readyz (log: $E2E_AGENT_LOG)"
  e2e_agent_ready
}

# e2e_serve [--log FILE] [--host ADDR] [--port N] VOLUME_DIR [AGENT_ARGS...]: e2e_start_agent of
# $AGENT --dir VOLUME_DIR --index-dir $W/index --http ADDR:N AGENT_ARGS (defaults: $W/agent.log,
# 127.0.0.1, port 0: the kernel picks one). Sets AG=ADDR:PORT (for --agent).
e2e_serve() {
  local log=$W/agent.log host=127.0.0.1 port=0
  while (($# > 0)); do
    case $1 in
      --log) log=$2 ;;
      --host) host=$2 ;;
      --port) port=$2 ;;
      *) break ;;
    esac
    shift 2
  done
  local dir=$1
  shift
  # The read port on a port of its own (clients learn it from /v1/info), not the default HTTP
  # port + 1: with port 0 that one is any port, which another process's connection may hold
  # (seen in e2e_chaos: a restart on the same HTTP port found port + 1 taken).
  local read_port=(--read-port "$host:0")
  [[ " $* " == *" --read-port "* || " $* " == *" --read-port="* ]] && read_port=()
  e2e_start_agent "$log" "$AGENT" --dir "$dir" --index-dir "$W/index" --http "$host:$port" \
    "${read_port[@]}" "$@"
  AG="$host:$E2E_AGENT_PORT"
}

e2e_url() { printf 'http://%s:%s%s' "$E2E_AGENT_HOST" "$E2E_AGENT_PORT" "$1"; }

# e2e_http_code [CURL_ARGS...] URL: the HTTP status curl gets (000 when it gets none).
e2e_http_code() { e2e_client curl -s -o /dev/null -w '%{http_code}' "$@" || true; }
# e2e_agent_ready: /readyz answers 200 now (the code it got is in E2E_READYZ).
e2e_agent_ready() {
  E2E_READYZ=$(e2e_http_code --max-time 5 "$(e2e_url /readyz)")
  [[ "$E2E_READYZ" == 200 ]]
}
# e2e_wait_ready SECONDS: /readyz answers 200 within SECONDS.
e2e_wait_ready() { e2e_wait_until "$1" 0.2 e2e_agent_ready; }

# e2e_get_json PATH OUT: GET PATH from the agent as JSON into OUT.
e2e_get_json() {
  e2e_client curl -sf -H 'Accept: application/json' "$(e2e_url "$1")" >"$2" || e2e_fail "$1 failed"
}

# e2e_token KEY FID [EXP_DELTA_SECONDS]: a SeaweedFS read token (HS256, {"fid","exp"}, exp 300 s
# ahead by default), signed with Python's hmac: an implementation independent of the agent's.
e2e_token() {
  python3 - "$@" <<'PY'
import base64, hashlib, hmac, json, sys, time
key, fid = sys.argv[1], sys.argv[2]
delta = int(sys.argv[3]) if len(sys.argv) > 3 else 300
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
head = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b(json.dumps({"fid": fid, "exp": int(time.time()) + delta}).encode())
sig = b(hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
}

# Process tree of a started agent: the `timeout` wrapper (E2E_AGENT_PID) -> the supervisor (or,
# with --no-supervise, the agent itself) -> the data-plane child that serves; with a read key
# also the verifier holding it (swrdma-verify, agent/token_verifier.h) beside that child.
e2e_supervisor_pid() { pgrep -P "$E2E_AGENT_PID" | head -n1 || true; }
# The supervisor's data-plane child; nothing when there is none (between restarts, unsupervised).
e2e_data_plane_pid() {
  local sup
  sup=$(e2e_supervisor_pid)
  [[ -z "$sup" ]] || pgrep -x swrdma-agent -P "$sup" | head -n1 || true
}
# The process that serves: the data-plane child, or the agent itself when it is not supervised.
e2e_serving_pid() {
  local sup child
  sup=$(e2e_supervisor_pid)
  [[ -n "$sup" ]] || return 0
  child=$(pgrep -x swrdma-agent -P "$sup" | head -n1 || true)
  echo "${child:-$sup}"
}
# The read-token verifier process of the agent (empty without a read key).
e2e_verifier_pid() {
  local sup
  sup=$(e2e_supervisor_pid)
  [[ -z "$sup" ]] || pgrep -x swrdma-verify -P "$sup" | head -n1 || true
}
# e2e_count_restarts LOG...: how often the supervisor saw its data-plane child die.
e2e_count_restarts() { cat "$@" | grep -c 'supervisor: the agent process died' || true; }

# A process's resources, from /proc: open fds, lines of maps, a /proc/PID/status field in KiB.
e2e_proc_fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
e2e_proc_maps() { wc -l <"/proc/$1/maps"; }
e2e_proc_status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# e2e_sigterm_agent: SIGTERM must stop the agent with exit status 0 within 8 seconds.
e2e_sigterm_agent() {
  e2e_sigterm "$E2E_AGENT_PID" "the agent"
  grep -q 'stopped' "$E2E_AGENT_LOG" || e2e_fail "the agent did not log 'stopped' on SIGTERM"
  e2e_log "agent stopped cleanly on SIGTERM"
}

# e2e_cma_allowed: CMA (process_vm_readv, the `cma` of posix,sysv,cma) can work here. Yama
# ptrace_scope >= 2 forbids it (UCX copes with 1 through PR_SET_PTRACER).
e2e_cma_allowed() {
  ! { [[ -r /proc/sys/kernel/yama/ptrace_scope ]] &&
    (($(cat /proc/sys/kernel/yama/ptrace_scope) >= 2)); }
}

# ---- network namespaces -------------------------------------------------------------------------

# e2e_netns_pair IP_A IP_B: two network namespaces, NS_A (address IP_A/24) and NS_B (IP_B/24),
# joined by a veth pair VETH_A/VETH_B that only they see, with loopback up in both; removed at
# exit. Returns once both ends are operationally UP. Skips the test (77) where namespaces or veth
# cannot be made (not root, no CAP_NET_ADMIN/CAP_SYS_ADMIN, no `ip`). Names carry $$, so parallel
# runs do not collide.
e2e_netns_pair() {
  local ip_a=$1 ip_b=$2 ns
  command -v ip >/dev/null || e2e_skip "no 'ip' command (iproute2): cannot create network namespaces"
  [[ "$(id -u)" == 0 ]] || e2e_skip "network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)"
  NS_A="swrdma-e2e-a-$$"
  NS_B="swrdma-e2e-b-$$"
  VETH_A="swra$$"  # interface names: at most 15 characters
  VETH_B="swrb$$"
  # Removing a namespace also removes the veth end inside it, and with it the peer.
  e2e_on_cleanup "timeout 10 ip netns del '$NS_A'"
  if ! e2e_t ip netns add "$NS_A" 2>/dev/null; then
    e2e_skip "cannot create a network namespace here (ip netns add failed: no CAP_NET_ADMIN/CAP_SYS_ADMIN?)"
  fi
  e2e_on_cleanup "timeout 10 ip netns del '$NS_B'"
  e2e_t ip netns add "$NS_B" || e2e_fail "ip netns add $NS_B failed after $NS_A worked"
  # Create the pair inside A with its peer directly in B: the host namespace never sees it.
  e2e_t ip -n "$NS_A" link add "$VETH_A" type veth peer name "$VETH_B" netns "$NS_B" ||
    e2e_skip "cannot create a veth pair here (no veth support in this kernel/container?)"
  e2e_t ip -n "$NS_A" addr add "$ip_a/24" dev "$VETH_A"
  e2e_t ip -n "$NS_B" addr add "$ip_b/24" dev "$VETH_B"
  for ns in "$NS_A" "$NS_B"; do
    e2e_t ip -n "$ns" link set lo up  # UCX wants a working loopback
  done
  e2e_t ip -n "$NS_A" link set "$VETH_A" up
  e2e_t ip -n "$NS_B" link set "$VETH_B" up
  # UCX lists only interfaces that are RUNNING, and does so once, when its context starts: wait
  # for both ends' operational state to be UP (linkwatch can take a second) before any UCX starts.
  e2e_wait_until 10 0.1 _e2e_link_up "$NS_A" "$VETH_A" ||
    e2e_fail "$VETH_A in $NS_A did not come up within 10 s"
  e2e_wait_until 10 0.1 _e2e_link_up "$NS_B" "$VETH_B" ||
    e2e_fail "$VETH_B in $NS_B did not come up within 10 s"
  e2e_log "namespaces $NS_A ($ip_a) and $NS_B ($ip_b) joined by $VETH_A/$VETH_B"
}

_e2e_link_up() { e2e_t ip -n "$1" -o link show dev "$2" | grep -q 'state UP'; }  # NS DEV

# ---- volumes and reads --------------------------------------------------------------------------

# e2e_mkvolume DIR VID MKVOLUME_ARGS...: `swrdma mkvolume` ($CLI) of volume VID in DIR, with its
# manifest (fid, size, live|deleted, gzip|plain) in mVID.tsv of the working directory.
e2e_mkvolume() {
  local dir=$1 vid=$2
  shift 2
  e2e_t "$CLI" mkvolume --dir "$dir" --vid "$vid" --fids "m$vid.tsv" "$@" >/dev/null \
    2>"m$vid.err" || e2e_fail "mkvolume of volume $vid failed: $(tail -n 3 "m$vid.err")"
}
# e2e_fids STATE MANIFEST...: the fids of the manifests' needles in STATE (live or deleted).
e2e_fids() {
  local state=$1
  shift
  awk -F'\t' -v s="$state" '$3 == s { print $1 }' "$@"
}

# e2e_get_all OUT FIDS_FILE TRANSPORTS_ERE [GET_ARGS...]: `swrdma get -v` of every fid (one a
# line) into the directory OUT; its stderr (OUT.err) must be exactly the summary line, saying
# every fid was read over rdma with transports matching TRANSPORTS_ERE.
e2e_get_all() {
  local out=$1 fids=$2 expect=$3 n list
  shift 3
  mkdir -p "$out"
  mapfile -t list <"$fids"
  n=${#list[@]}
  e2e_client "$CLI" get --agent "$AG" -v "$@" -o "$out" "${list[@]}" 2>"$out.err" || {
    cat "$out.err" >&2
    e2e_fail "swrdma get $* failed"
  }
  grep -Eq "read $n of $n needles, .* over rdma \(transports: ($expect)\)" "$out.err" ||
    e2e_fail "unexpected summary of swrdma get $*: $(cat "$out.err")"
  # Nothing but the summary line on stderr (no UCX noise on a healthy read).
  (($(wc -l <"$out.err") == 1)) || e2e_fail "stderr of swrdma get $* is not one line: $(cat "$out.err")"
}

# e2e_expect_get_fails [--status N] WHAT PATTERN GET_ARGS...: `swrdma get GET_ARGS` must fail (not
# crash; with --status, with exit status N) with one line on stderr (err.txt) that matches PATTERN
# (grep -E), and write nothing to stdout.
e2e_expect_get_fails() {
  local want_rc=""
  if [[ "$1" == --status ]]; then
    want_rc=$2
    shift 2
  fi
  local what=$1 pattern=$2 rc=0
  shift 2
  e2e_client "$CLI" get --agent "$AG" "$@" >err.out 2>err.txt || rc=$?
  ((rc != 0)) || e2e_fail "$what: swrdma get succeeded"
  ((rc < 124)) || e2e_fail "$what: swrdma get died (status $rc): $(cat err.txt)"
  [[ -z "$want_rc" ]] || ((rc == want_rc)) ||
    e2e_fail "$what: swrdma get exited with status $rc, expected $want_rc: $(cat err.txt)"
  (($(wc -l <err.txt) == 1)) || e2e_fail "$what: expected one line of error, got: $(cat err.txt)"
  grep -Eq -- "$pattern" err.txt || e2e_fail "$what: error does not match /$pattern/: $(cat err.txt)"
  [[ ! -s err.out ]] || e2e_fail "$what: wrote data to stdout"
}

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
