#!/usr/bin/env bash
# Issue 13: a hostile UCX peer against a real swrdma-agent.
#
#   hostile_peer_test.sh AGENT_BINARY CLIENT_BINARY HOSTILE_PEER_BINARY
#
# For an agent without and with a read key: hostile_peer (tests/hostile_peer/hostile_peer.cc)
# attacks the agent's worker over shared memory (posix,sysv,cma) and over UCX tcp, as an
# unprivileged user (uid 65534: a peer on another account; a peer allowed to ptrace the agent can
# read and write it with or without UCX, docs/security.md): gets and puts with forged rkeys at
# the exported mapping, one byte past it, the binary's ELF header, heap, stack and data (checked
# through /proc/PID/mem), raw active messages with unknown ids and malformed read requests, a
# flood of forged gets (the agent's RSS must come back within 16 MiB once UCX has released the
# exited clients). Meanwhile a legitimate client reads in a loop and must get only correct bytes.
# Then per-fid refusals: no or invalid token, deleted needle, unknown volume. Needs root (another
# process's /proc/PID/mem, setuid), curl, jq.
#
# Over UCX tcp, UCT's own PUT_REQ frame handler writes wherever a frame says
# (uct_tcp_ep_handle_put_req, src/uct/tcp/tcp_ep.c, UCX 1.13), whatever the agent's UCP features.
# So the agent offers no UCX tcp unless started with --insecure-ucx-tcp, and peers on the network
# read over its TCP read port. With TCP_PUT=unreachable (below) the tcp run proves the frame
# cannot reach the agent: no UCX tcp endpoint to its worker address, no TCP port but HTTP and the
# read port, a UCT-PUT_REQ-shaped frame to each writes nothing, garbage / lying lengths / a
# connection flood on the read port leave it up, while the legitimate client reads over the read
# port. (TCP_PUT=known-hole, against an agent with --insecure-ucx-tcp, prints and counts a
# "KNOWN ..." line for the hole instead, never a pass.)
set -euo pipefail
# shellcheck source=SCRIPTDIR/../e2e/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/e2e_lib.sh"
e2e_self_deadline 840 "$@"
(($# == 3)) || e2e_fail "usage: $0 AGENT_BINARY CLIENT_BINARY HOSTILE_PEER_BINARY"
e2e_binaries "$1" "$2"
HOSTILE=$(realpath "$3")
[[ -x $HOSTILE ]] || e2e_fail "build hostile_peer first"
TCP_PUT=unreachable  # known-hole: only against an agent started with --insecure-ucx-tcp
# What the agent's RSS may keep after an attack, and how long exited clients' endpoints may take
# to go (a few keepalive rounds of the agent's 2 s; see the check below).
RSS_SLACK_KB=${HOSTILE_RSS_SLACK_KB:-16384}
RSS_SETTLE_S=${HOSTILE_RSS_SETTLE_S:-30}
# AddressSanitizer builds (make sanitize): freed blocks wait in ASan's quarantine (256 MiB by
# default) before reuse, so RSS grows with every freed request though nothing leaks. As in
# agent_resources_test.sh, the agent then runs with a 4 MiB quarantine and without fake stacks,
# and the same RSS slack applies.
if grep -qa __asan_init "$1"; then
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=${HOSTILE_ASAN_QUARANTINE_MB:-4}:\
detect_stack_use_after_return=0"
  e2e_log "AddressSanitizer build: processes run with ASAN_OPTIONS=$ASAN_OPTIONS"
fi
# Legitimate reads share the agent's one progress thread with the flood's forged requests, and a
# sanitizer build is several times slower: their timeout is generous, since what this test checks
# is that they get correct bytes, not how fast (a read that never comes still fails it).
LEGIT_TIMEOUT_MS=${HOSTILE_LEGIT_TIMEOUT_MS:-60000}
e2e_need curl jq python3 cmp
((EUID == 0)) || e2e_skip "needs root: reads the agent's memory through /proc/PID/mem"
e2e_cma_allowed || e2e_skip "Yama ptrace_scope >= 2: shared memory (cma) cannot work here"

e2e_workdir
D=$W/volumes
e2e_mkvolume "$D" 9 --needles 60 --min 1 --max 300K --gzip-fraction 0.3 --delete-fraction 0.2
e2e_fids live m9.tsv | head -20 >live.txt
e2e_fids deleted m9.tsv | head -1 >deleted.txt
[[ -s deleted.txt ]] || e2e_fail "mkvolume made no deleted needle"
DAT=$(realpath "$D"/9.dat)
# The unprivileged peer must be able to reach the agent's shared memory at all.
chmod 755 "$W"

tokens() {  # tokens KEY FID...: one read token per fid, one a line (one python process)
  python3 - "$@" <<'PY'
import base64, hashlib, hmac, json, sys, time
key = sys.argv[1]
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
head = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
for fid in sys.argv[2:]:
    body = b(json.dumps({"fid": fid, "exp": int(time.time()) + 600}).encode())
    sig = b(hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    print(f"{head}.{body}.{sig}")
PY
}
token() { tokens "$1" "$2"; }

# legit_loop TLS OUT: reads every live fid (with $JWT_ARGS) again and again until $W/stop exists,
# at least once; every round must equal the HTTP fallback's bytes. Writes "ok N" or the first
# failure to OUT.
legit_loop() {
  local tls=$1 out=$2 rounds=0 f
  while ((rounds == 0)) || [[ ! -e $W/stop ]]; do
    rm -rf "$W/legit-$tls"
    mkdir -p "$W/legit-$tls"
    if ! e2e_t "$CLI" get --agent "$AG" --transports "$tls" --timeout-ms "$LEGIT_TIMEOUT_MS" \
      "${JWT_ARGS[@]}" -o "$W/legit-$tls" \
      "${fids[@]}" 2>"$W/legit-$tls.err"; then
      echo "round $rounds: swrdma get failed: $(tail -n 40 "$W/legit-$tls.err")" >"$out"
      cp "$W/legit-$tls.err" "${TMPDIR:-/tmp}/hostile-peer-legit-$tls.err" || true
      return
    fi
    for f in "${fids[@]}"; do
      cmp -s "$W/legit-$tls/$f" "$W/http/$f" || {
        echo "round $rounds: $f differs from the HTTP fallback" >"$out"
        return
      }
    done
    rounds=$((rounds + 1))
  done
  echo "ok $rounds" >"$out"
}

known_total=0
for keymode in none key; do
  e2e_log "---- agent with read key: $keymode"
  args=(--no-read-auth)
  KEY=""
  if [[ $keymode == key ]]; then
    KEY="hostile-test-read-key"
    args=(--jwt-read-key "$KEY")
  fi
  e2e_serve --log "$W/agent-$keymode.log" "$D" "${args[@]}"
  grep -q "exposure: checked on" "$W/agent-$keymode.log" || e2e_fail "no 'exposure: checked' at start"
  PID=$(e2e_serving_pid)
  [[ -n $PID ]] || e2e_fail "cannot find the serving agent process"
  e2e_get_json /v1/info info.json
  ADDRESS=$(jq -r .worker_address info.json)
  READ_PORT=$(jq -r '.tcp_read.port // 0' info.json)
  jq -e '.checked_reads == true and .exposure == "checked"' info.json >/dev/null ||
    e2e_fail "/v1/info: $(cat info.json)"
  mapfile -t fids <live.txt
  JWT_ARGS=()
  toks=()
  [[ -z $KEY ]] || mapfile -t toks < <(tokens "$KEY" "${fids[@]}")
  mkdir -p "$W/http"
  for i in "${!fids[@]}"; do
    f=${fids[$i]}
    hdr=()
    if [[ -n $KEY ]]; then
      hdr=(-H "Authorization: Bearer ${toks[$i]}")
      JWT_ARGS+=(--jwt "${toks[$i]}")
    fi
    curl -sf "${hdr[@]}" -o "$W/http/$f" "$(e2e_url "/$f")" || e2e_fail "GET /$f failed"
  done

  # TRANSPORTS:USER. An unprivileged peer cannot even attach the agent's SysV segments (the
  # kernel refuses; reported, not passed as an attack). Root over posix,sysv does connect: its
  # attacks must get nothing. (cma with root or the agent's uid is ptrace-level access: the
  # kernel, not UCX, decides; docs/security.md.)
  for run in posix,sysv,cma:65534 posix,sysv:root tcp:65534; do
    tls=${run%%:*}
    who=${run#*:}
    as=(--as-uid 65534 --must-connect 0)
    [[ $who == root ]] && as=(--must-connect 1)
    [[ $tls == tcp ]] && as=(--as-uid 65534 --must-connect 1)
    e2e_log "hostile peer over $tls as $who (key: $keymode)"
    rss_before=$(e2e_proc_status_kb "$PID" VmRSS)
    rm -f "$W/stop" "$W/legit.out"
    legit_loop "$tls" "$W/legit.out" &
    legit_pid=$!
    rc=0
    UCX_TLS=$tls UCX_WARN_UNUSED_ENV_VARS=n e2e_t "$HOSTILE" --pid "$PID" --address "$ADDRESS" \
      --dat "$DAT" "${as[@]}" --timeout-ms 2000 --flood 20000 --tcp-put "$TCP_PUT" \
      --host 127.0.0.1 --http-port "$E2E_AGENT_PORT" --read-port "$READ_PORT" \
      >"hostile-$keymode-$run.txt" 2>"hostile-$keymode-$run.err" || rc=$?
    touch "$W/stop"
    wait "$legit_pid" || true
    grep -E '^(FAIL|KNOWN|OK|FAILED)' "hostile-$keymode-$run.txt" >&2 || true
    ((rc == 0)) || {
      grep -v '^PASS' "hostile-$keymode-$run.txt" | head -n 40 >&2
      tail -n 5 "hostile-$keymode-$run.err" >&2
      e2e_fail "hostile peer over $tls (key: $keymode): exit $rc"
    }
    passes=$(grep -c '^PASS' "hostile-$keymode-$run.txt" || true)
    known=$(grep -c '^KNOWN' "hostile-$keymode-$run.txt" || true)
    known_total=$((known_total + known))
    if [[ $tls != tcp ]] && ((known > 0)); then e2e_fail "a put landed over shared memory"; fi
    if [[ $tls == tcp && $TCP_PUT == known-hole ]] && ((known == 0)); then
      e2e_fail "the tcp run did not report the known UCT PUT_REQ case"
    fi
    e2e_log "$tls: $passes checks passed, $known known tcp case(s) reported"
    kill -0 "$PID" 2>/dev/null || e2e_fail "the agent died"
    e2e_agent_ready || e2e_fail "the agent is not ready after the attack over $tls"
    legit=$(cat "$W/legit.out" 2>/dev/null || echo "no result")
    [[ $legit == ok* ]] ||
      e2e_fail "the legitimate client over $tls during the attack: $legit"
    e2e_log "legitimate client over $tls during the attack: $legit rounds, every byte right"
    # Nothing may stay behind: RSS back within RSS_SLACK_KB of before. Not right away: each
    # `swrdma get` of legit_loop is a new process whose reply endpoint in the agent keeps the
    # client's SysV segments attached, with the pages the agent's replies wrote into them
    # (~0.6 MiB per round here), until a UCX keepalive round finds the process gone (every 2 s
    # in the agent, 20 s with UCX's default: 150 rounds then held +90 MiB; docs/read-path.md).
    # So: wait for the release, bounded, then compare. Measured: the flood alone (20000 forged
    # gets, twice) +1.2 MiB; 100 legit rounds alone +3 MiB after the release (RssShmem back to
    # its start), with +62 MiB before it at 20 s keepalive, +12 MiB peak at 2 s. A leak per
    # forged request (>= 1 KiB) or per client (its segments, ~0.6 MiB) exceeds the slack.
    rss_peak=$(e2e_proc_status_kb "$PID" VmRSS)
    sysv_peak=$(grep -c SYSV "/proc/$PID/maps" || true)
    t_release=$SECONDS
    rss_settled() {
      rss_after=$(e2e_proc_status_kb "$PID" VmRSS)
      ((rss_after < rss_before + RSS_SLACK_KB))
    }
    e2e_wait_until "$RSS_SETTLE_S" 0.5 rss_settled || true
    e2e_log "agent RSS: $rss_before KiB before, $rss_peak KiB ($sysv_peak SysV mappings) right" \
      "after the attack, $rss_after KiB ($(grep -c SYSV "/proc/$PID/maps" || true) SysV" \
      "mappings) $((SECONDS - t_release)) s later"
    ((rss_after < rss_before + RSS_SLACK_KB)) ||
      e2e_fail "the agent's RSS grew from $rss_before to $rss_after KiB over the attack and" \
        "stayed above +$RSS_SLACK_KB KiB for $RSS_SETTLE_S s (a leak per forged request or per" \
        "client; with UCX_KEEPALIVE_INTERVAL set above 2 s, raise HOSTILE_RSS_SETTLE_S)"

    # Per-fid refusals, on the same transport.
    f0=${fids[0]}
    del=$(cat deleted.txt)
    jwt=()
    [[ -n $KEY ]] && jwt=(--jwt "$(token "$KEY" "$del")")
    e2e_expect_get_fails "deleted needle over $tls" "$del" --transports "$tls" \
      --timeout-ms "$LEGIT_TIMEOUT_MS" "${jwt[@]}" \
      -o x "$del"
    jwt=()
    [[ -n $KEY ]] && jwt=(--jwt "$(token "$KEY" "77,0100000000deadbeef")")
    e2e_expect_get_fails "unknown volume over $tls" "77,0100000000deadbeef" --transports "$tls" \
      "${jwt[@]}" -o x "77,0100000000deadbeef"
    if [[ -n $KEY ]]; then
      e2e_expect_get_fails "no token over $tls" "wrong jwt" --transports "$tls" -o x "$f0"
      e2e_expect_get_fails "token of another fid over $tls" "wrong jwt" --transports "$tls" \
        --jwt "$(token "$KEY" "${fids[1]}")" -o x "$f0"
      e2e_expect_get_fails "token with another key over $tls" "wrong jwt" --transports "$tls" \
        --jwt "$(token other-key "$f0")" -o x "$f0"
    fi
    e2e_log "per-fid refusals over $tls: OK"
  done
  e2e_sigterm_agent
done
if ((known_total > 0)); then
  e2e_log "KNOWN (documented, docs/security.md 'tcp and untrusted peers'): $known_total report(s)" \
    "of UCT's tcp PUT_REQ frame writing agent memory (see hostile-*-tcp*.txt lines 'KNOWN');" \
    "closed by the own-framing tcp path, after which TCP_PUT in this script becomes 'unreachable'"
fi
e2e_log "hostile peer: OK (shared memory: nothing reachable; tcp: $TCP_PUT)"
