#!/usr/bin/env bash
# End-to-end: swrdma-agent's command line. Invalid values are errors naming the flag (never a
# silent default); a transport required with --require-transports that this host lacks stops the
# agent at start, and so does UCX tcp without --insecure-ucx-tcp; --list-devices says plainly when there is no RDMA device; --version works.
#
#   agent_flags_test.sh AGENT_BINARY CLIENT_BINARY
set -euo pipefail
# shellcheck source=SCRIPTDIR/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"
e2e_self_deadline 120 "$@"
e2e_binaries "$@"
e2e_workdir
e2e_mkvolume vols 1 --needles 5 --size 1K

# expect_fail WHAT PATTERN ARGS...: the agent exits non-zero and its output matches PATTERN.
expect_fail() {
  local what=$1 pattern=$2 out rc=0
  shift 2
  out=$(e2e_t "$AGENT" "$@" 2>&1) || rc=$?
  [[ $rc -ne 0 ]] || e2e_fail "$what: exit 0, expected a failure"
  grep -qE -- "$pattern" <<<"$out" || e2e_fail "$what: output does not match '$pattern': $out"
  e2e_log "$what: refused (exit $rc)"
}
expect_fail "unknown export mode" "export-mode" --dir vols --export-mode bogus
expect_fail "unknown progress mode" "progress" --dir vols --progress sometimes
expect_fail "bad offset width" "offset-bytes" --dir vols --offset-bytes 6
expect_fail "missing volume directory" "dir" --dir "$W/does-not-exist"
expect_fail "no --dir at all" "--dir" --index-dir idx --http 127.0.0.1:0 --no-supervise
expect_fail "bad listen address" "listen|address" --dir vols --index-dir idx --http nonsense:x
expect_fail "required transport missing" "transport 'rc' required" --dir vols --index-dir idx \
  --http 127.0.0.1:0 --transports posix,rc --require-transports
# UCX tcp lets any peer write agent memory (UCT's PUT_REQ frame): only with --insecure-ucx-tcp.
expect_fail "UCX tcp without --insecure-ucx-tcp" "insecure-ucx-tcp" --dir vols --index-dir idx \
  --http 127.0.0.1:0 --no-supervise --transports tcp
UCX_TLS=tcp expect_fail "UCX tcp from UCX_TLS without --insecure-ucx-tcp" "insecure-ucx-tcp" \
  --dir vols --index-dir idx --http 127.0.0.1:0 --no-supervise

expect_fail "bad --verbs-port" "verbs-port" --dir vols --index-dir idx --verbs-port 70000
expect_fail "verbs required without a device" "verbs" --dir vols --index-dir idx \
  --http 127.0.0.1:0 --no-supervise --transports verbs,posix --require-transports

# Without an RDMA device verbs is off, said once, and the agent serves checked reads: /v1/info has
# no "verbs", a client asking for verbs only gets a clear error, one that also allows another
# transport reads over it.
if ! ibv_devices 2>/dev/null | awk 'NR>2' | grep -q .; then
  e2e_serve vols --read-port 127.0.0.1:0 --no-supervise
  grep -q "verbs: off" "$W/agent.log" || e2e_fail "the agent does not say verbs is off: $(cat "$W/agent.log")"
  info=$(e2e_client curl -s --max-time 5 -H 'Accept: application/json' "$(e2e_url /v1/info)")
  [[ "$(jq -c '.verbs' <<<"$info")" == null ]] || e2e_fail "/v1/info offers verbs without a device: $info"
  fid=$(e2e_fids live m1.tsv | head -n1)
  out=$(e2e_t "$CLI" get --agent "$AG" --transports verbs "$fid" -o /dev/null 2>&1) &&
    e2e_fail "swrdma get --transports verbs succeeded without verbs: $out"
  grep -q "verbs" <<<"$out" || e2e_fail "the verbs-only client's error does not name verbs: $out"
  e2e_t "$CLI" get --agent "$AG" --transports verbs,tcp "$fid" -o /dev/null ||
    e2e_fail "swrdma get --transports verbs,tcp did not fall back to tcp"
  e2e_sigterm_agent
  e2e_log "no RDMA device: verbs off, /v1/info without verbs, --transports verbs a clear error"
fi

out=$(e2e_t "$AGENT" --list-devices 2>&1) || e2e_fail "--list-devices failed: $out"
if ! ibv_devices 2>/dev/null | grep -q mlx; then
  grep -q "no RDMA devices" <<<"$out" || e2e_fail "--list-devices does not say there is none: $out"
fi
grep -q "UCX transports" <<<"$out" || e2e_fail "--list-devices lists no UCX transports: $out"
version=$(e2e_t "$AGENT" --version)
[[ -n "$version" ]] || e2e_fail "--version printed nothing"
e2e_log "PASS"
