#!/usr/bin/env bash
# End-to-end: read authorization with SeaweedFS read tokens, with the real binaries.
#
#   read_auth_test.sh AGENT_BINARY CLIENT_BINARY
#
# The agent takes its key from a SeaweedFS security.toml ([jwt.signing.read] key). Tokens are
# minted here with Python's hmac (an implementation independent of the agent's). Checks, with
# --exposure checked (the default) and region (which UCX transports cannot enforce: the agent says
# so and serves checked reads all the same): `swrdma get` without or with a wrong
# token fails with "wrong jwt"; with the right token (one per fid) every byte equals the HTTP
# fallback's; the fallback itself answers 401 {"error":"wrong jwt"} without a token. Then SIGHUP
# with a new key in security.toml: old tokens are refused, new ones accepted; a broken file on
# SIGHUP keeps the key in force. Needs curl, python3.
set -euo pipefail
# shellcheck source=SCRIPTDIR/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"
e2e_self_deadline 300 "$@"
e2e_binaries "$@"
e2e_need curl python3 cmp

e2e_workdir
D=$W/volumes
e2e_mkvolume "$D" 9 --needles 40 --min 1 --max 200K --gzip-fraction 0.3 --delete-fraction 0.1
e2e_fids live m9.tsv | head -12 >live.txt

token() { e2e_token "$@"; }  # KEY FID [EXP_DELTA_SECONDS]

# get_f0_with KEY: swrdma get of $f0 with a token signed with KEY succeeds.
get_f0_with() { e2e_t "$CLI" get --agent "$AG" --jwt "$(token "$1" "$f0")" -o new.out "$f0" 2>/dev/null; }

printf '[jwt.signing.read]\nkey = "first-key"\nexpires_after_seconds = 10\n' >security.toml

# Region exposure with a key hands volume keys to holders of one-fid tokens: refused at start
# unless asked for with --region-with-tokens (issue 15, 12).
rc=0
e2e_t "$AGENT" --no-supervise --dir "$D" --index-dir "$W/index-refused" --http 127.0.0.1:0 \
  --security-toml "$W/security.toml" --exposure region >refused.log 2>&1 || rc=$?
((rc != 0)) || e2e_fail "the agent started with --exposure region and a read key"
grep -q -- "--region-with-tokens" refused.log ||
  e2e_fail "the refusal does not name --region-with-tokens: $(tail -n 3 refused.log)"

for exposure in checked region; do
  e2e_log "exposure $exposure"
  args=()
  [[ $exposure == region ]] && args=(--exposure region --region-with-tokens)
  e2e_serve --log "$W/agent-$exposure.log" "$D" --security-toml "$W/security.toml" "${args[@]}"
  grep -q "exposure: checked on" "$W/agent-$exposure.log" ||
    e2e_fail "the agent did not log 'exposure: checked on ...'"
  if [[ $exposure == region ]]; then
    grep -q -- "--exposure region needs an RDMA device" "$W/agent-$exposure.log" ||
      e2e_fail "the agent did not warn that region cannot be enforced on its transports"
  fi
  curl -sf -H 'Accept: application/json' "http://$AG/v1/info" >info.json
  python3 - info.json <<'PY' || e2e_fail "/v1/info does not say checked for every transport"
import json, sys
info = json.load(open(sys.argv[1]))
assert info["exposure"] == "checked", info
assert info["exposures"] and set(info["exposures"].values()) == {"checked"}, info
assert info["checked_reads"] is True, info
PY
  if grep -q "first-key" "$W/agent-$exposure.log"; then e2e_fail "the read key appears in the log"; fi

  mapfile -t fids <live.txt
  f0=${fids[0]}
  # No token, wrong key, token for another fid: refused, nothing read.
  for t in "" "$(token wrong-key "$f0")" "$(token first-key "${fids[1]}")" "$(token first-key "$f0" -5)"; do
    jwt=()
    [[ -n $t ]] && jwt=(--jwt "$t")
    e2e_expect_get_fails "swrdma get of $f0 with a bad token ($exposure)" "wrong jwt" \
      "${jwt[@]}" -o bad.out "$f0"
  done
  code=$(curl -s -o body.txt -w '%{http_code}' "http://$AG/$f0")
  [[ $code == 401 && $(cat body.txt) == '{"error":"wrong jwt"}' ]] ||
    e2e_fail "GET /$f0 without a token answered $code $(cat body.txt)"

  # One token per fid: every byte as the HTTP fallback serves it (with the same tokens).
  jwt=()
  for f in "${fids[@]}"; do jwt+=(--jwt "$(token first-key "$f")"); done
  mkdir -p "out-$exposure"
  e2e_t "$CLI" get --agent "$AG" "${jwt[@]}" -o "out-$exposure" "${fids[@]}" ||
    e2e_fail "swrdma get with valid tokens failed ($exposure)"
  for f in "${fids[@]}"; do
    curl -sf -o want.bin -H "Authorization: Bearer $(token first-key "$f")" "http://$AG/$f" ||
      e2e_fail "GET /$f with a valid token failed"
    cmp -s want.bin "out-$exposure/$f" || e2e_fail "$f: RDMA bytes differ from HTTP ($exposure)"
  done

  # SIGHUP: a new key in security.toml replaces the old one; a broken file keeps it. Sent to the
  # agent itself (its supervisor forwards it), not to the timeout(1) wrapper in E2E_AGENT_PID.
  agent_pid=$(e2e_supervisor_pid)
  [[ -n $agent_pid ]] || e2e_fail "cannot find the agent process under $E2E_AGENT_PID"
  printf '[jwt.signing.read]\nkey = "second-key"\n' >security.toml
  kill -HUP "$agent_pid"
  e2e_wait_until 20 0.1 get_f0_with second-key ||
    e2e_fail "after SIGHUP a token signed with the new key is refused ($exposure)"
  e2e_expect_get_fails "after SIGHUP, a token signed with the old key ($exposure)" "wrong jwt" \
    --jwt "$(token first-key "$f0")" -o old.out "$f0"
  printf '[jwt.signing.read\nkey = ' >security.toml
  kill -HUP "$agent_pid"
  sleep 0.5
  e2e_t "$CLI" get --agent "$AG" --jwt "$(token second-key "$f0")" -o new.out "$f0" ||
    e2e_fail "a broken security.toml on SIGHUP dropped the key in force ($exposure)"
  grep -q "reloading the read key failed" "$W/agent-$exposure.log" ||
    e2e_fail "the failed reload is not logged"
  printf '[jwt.signing.read]\nkey = "first-key"\n' >security.toml
  e2e_sigterm_agent
done
e2e_log "read authorization: OK"
