#!/usr/bin/env bash
# End-to-end: the read key never enters the processes that serve clients.
#
#   read_key_isolation_test.sh AGENT_BINARY CLIENT_BINARY
#
# With a read key, swrdma-agent starts a verifier process that holds it (swrdma-verify,
# agent/token_verifier.h) and re-executes itself without it. For the key given each way an
# operator can give it (SWRDMA_JWT_READ_KEY, --jwt-read-key, WEED_JWT_SIGNING_READ_KEY, a
# SeaweedFS security.toml), a random key is used and then looked for, byte for byte, in every
# readable mapping of the supervisor and of the data-plane child (/proc/PID/mem, as root), and in
# their command lines and environments: it must be nowhere. The same scan of the verifier must
# find it (the scan works). Tokens signed with the key are accepted and others refused (the
# verifier answers), and once the verifier is killed the agent stops with an error, saying why.
# Needs python3, curl.
set -euo pipefail
# shellcheck source=SCRIPTDIR/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"
e2e_self_deadline 400 "$@"
e2e_binaries "$@"
e2e_need curl python3 pgrep
[[ $(id -u) == 0 ]] || e2e_skip "reading another process's memory needs root (run the tests as root)"

e2e_workdir
D=$W/volumes
e2e_mkvolume "$D" 9 --needles 20 --min 1 --max 20K
e2e_fids live m9.tsv | head -3 >live.txt
mapfile -t fids <live.txt
f0=${fids[0]}

token() { e2e_token "$@"; }  # KEY FID [EXP_DELTA_SECONDS]

# hits PID KEY: how often KEY occurs in the process's readable memory, its cmdline and environ.
# Mappings over 1 GiB (sanitizer shadow and reserves) and the volume files are skipped.
hits() {
  python3 - "$1" "$2" <<'PY'
import os, sys
pid, key = sys.argv[1], sys.argv[2].encode()
n = 0
for name in ("cmdline", "environ"):
    with open(f"/proc/{pid}/{name}", "rb") as f:
        n += f.read().count(key)
scanned = 0
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
    for line in maps:
        parts = line.split()
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        path = parts[5] if len(parts) > 5 else ""
        if "r" not in parts[1] or hi - lo > (1 << 30) or path.endswith(".dat"):
            continue
        if path in ("[vvar]", "[vsyscall]"):
            continue
        pos, tail = lo, b""
        while pos < hi:
            size = min(hi - pos, 1 << 20)
            try:
                mem.seek(pos)
                chunk = mem.read(size)
            except OSError:
                break
            if not chunk:
                break
            buf = tail + chunk
            n += buf.count(key)
            tail = buf[-(len(key) - 1):]  # a key across two chunks is counted once
            pos += len(chunk)
            scanned += len(chunk)
print(n, scanned)
PY
}

check_isolated() {  # WAY KEY: the agent just started with KEY given WAY
  local way=$1 key=$2 sup dp ver n scanned
  e2e_wait_ready 30 || e2e_fail "$way: the agent is not ready (log $W/agent.log)"
  sup=$(e2e_supervisor_pid) dp=$(e2e_data_plane_pid) ver=$(e2e_verifier_pid)
  [[ -n $sup && -n $dp ]] || e2e_fail "$way: no supervisor/data-plane pair under $E2E_AGENT_PID"
  [[ -n $ver ]] || e2e_fail "$way: no verifier process (swrdma-verify) beside the data plane: $(ps -o pid,comm --ppid "$sup" | tr '\n' ' ')"
  # The verifier answers: a token signed with the key reads, another key's is refused.
  e2e_t "$CLI" get --agent "$AG" --jwt "$(token "$key" "$f0")" -o ok.out "$f0" ||
    e2e_fail "$way: a token signed with the key was refused"
  e2e_expect_get_fails "$way: a token signed with another key" "wrong jwt" \
    --jwt "$(token not-the-key "$f0")" -o bad.out "$f0"
  for p in "$sup:supervisor" "$dp:data plane"; do
    read -r n scanned < <(hits "${p%%:*}" "$key")
    ((scanned > 0)) || e2e_fail "$way: scanned nothing of the ${p#*:} (pid ${p%%:*})"
    ((n == 0)) || e2e_fail "$way: the read key is in the ${p#*:}'s memory ($n times in $scanned bytes)"
    e2e_log "  $way: key not in the ${p#*:} (pid ${p%%:*}, $((scanned >> 20)) MiB scanned)"
  done
  read -r n scanned < <(hits "$ver" "$key")
  ((n > 0)) || e2e_fail "$way: the scan did not find the key in the verifier either: it would miss it anywhere"
  grep -q "held by the verifier process" "$W/agent.log" ||
    e2e_fail "$way: the agent does not log that the key is held by the verifier"
  if grep -qF -- "$key" "$W/agent.log"; then e2e_fail "$way: the key is in the log"; fi
}

KEY=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
e2e_log "SWRDMA_JWT_READ_KEY in the environment"
export SWRDMA_JWT_READ_KEY=$KEY
e2e_serve "$D"
unset SWRDMA_JWT_READ_KEY
check_isolated env "$KEY"
e2e_sigterm_agent

KEY=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
e2e_log "--jwt-read-key on the command line"
e2e_serve "$D" --jwt-read-key "$KEY"
check_isolated flag "$KEY"
e2e_sigterm_agent

KEY=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
e2e_log "WEED_JWT_SIGNING_READ_KEY in the environment (as weed reads it)"
export WEED_JWT_SIGNING_READ_KEY=$KEY
e2e_serve "$D"
unset WEED_JWT_SIGNING_READ_KEY
check_isolated weed-env "$KEY"
e2e_sigterm_agent

KEY=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
e2e_log "a SeaweedFS security.toml; then the verifier is killed"
printf '[jwt.signing.read]\nkey = "%s"\n' "$KEY" >security.toml
e2e_serve "$D" --security-toml "$W/security.toml"
check_isolated security.toml "$KEY"
# Without its verifier the agent could only refuse every token: it stops with an error (systemd
# then restarts it, with a new verifier), saying why. Until it is gone, tokens are refused
# (fail closed; token_verifier_test checks that part without the race).
kill -9 "$(e2e_verifier_pid)"
e2e_wait_until 15 0.2 e2e_exited "$E2E_AGENT_PID" ||
  e2e_fail "the agent still runs 15 s after its read-token verifier died"
rc=0
wait "$E2E_AGENT_PID" || rc=$?
((rc != 0)) || e2e_fail "the agent exited 0 after losing its verifier: a service manager would not restart it"
grep -q "read-token verifier .* died" "$W/agent.log" ||
  e2e_fail "the agent does not log that the verifier died: $(tail -n 3 "$W/agent.log")"
e2e_log "read key isolation: OK"
