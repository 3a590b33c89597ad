#!/usr/bin/env bash
# End-to-end across a network: agent and client in two network namespaces joined by a veth pair.
#
#   two_host_netns_test.sh AGENT_BINARY CLIENT_BINARY
#
# Namespace A holds the agent (10.77.0.1), namespace B the client (10.77.0.2); addresses exist only
# inside the namespaces, nothing in the host's namespace changes. The client reads every live fid
# over UCX tcp and compares it with the HTTP fallback fetched from B. Exits 77 (ctest: skipped)
# where namespaces cannot be created (not root, no CAP_NET_ADMIN/CAP_SYS_ADMIN, no `ip`).
# Namespace and veth names carry $$ so parallel runs do not collide.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/e2e_lib.sh
source "$HERE/e2e_lib.sh"
e2e_self_deadline 300 "$@"

[[ $# -eq 2 ]] || e2e_fail "usage: $0 AGENT_BINARY CLIENT_BINARY"
AGENT=$(realpath "$1")
CLI=$(realpath "$2")
[[ -x "$AGENT" && -x "$CLI" ]] || e2e_fail "build swrdma-agent and swrdma first"
for tool in curl jq; do
  command -v "$tool" >/dev/null || e2e_fail "$tool is needed (scripts/install-deps.sh installs it)"
done
command -v ip >/dev/null || e2e_skip "no 'ip' command (iproute2): cannot create network namespaces"
[[ "$(id -u)" == 0 ]] || e2e_skip "network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)"

NS_A="swrdma-e2e-a-$$"
NS_B="swrdma-e2e-b-$$"
VETH_A="swra$$"  # interface names: at most 15 characters
VETH_B="swrb$$"
IP_A=10.77.0.1
IP_B=10.77.0.2

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
e2e_t ip -n "$NS_A" addr add "$IP_A/24" dev "$VETH_A"
e2e_t ip -n "$NS_B" addr add "$IP_B/24" dev "$VETH_B"
for ns in "$NS_A" "$NS_B"; do
  e2e_t ip -n "$ns" link set lo up  # UCX wants a working loopback
done
e2e_t ip -n "$NS_A" link set "$VETH_A" up
e2e_t ip -n "$NS_B" link set "$VETH_B" up
# UCX lists only interfaces that are RUNNING, and does so once, when its context starts: wait
# for both ends' operational state to be UP (linkwatch can take a second) before any UCX starts.
for end in "$NS_A $VETH_A" "$NS_B $VETH_B"; do
  read -r ns dev <<<"$end"
  for i in $(seq 100); do
    e2e_t ip -n "$ns" -o link show dev "$dev" | grep -q 'state UP' && break
    ((i < 100)) || e2e_fail "$dev in $ns did not come up within 10 s"
    sleep 0.1
  done
done
E2E_AGENT_PREFIX=(ip netns exec "$NS_A")
E2E_CLIENT_PREFIX=(ip netns exec "$NS_B")
e2e_log "namespaces $NS_A ($IP_A) and $NS_B ($IP_B) joined by $VETH_A/$VETH_B"

e2e_tmpdir W
cd "$W"
D=$W/volumes
e2e_t "$CLI" mkvolume --dir "$D" --vid 2 --needles 200 --min 1 --max 300K --gzip-fraction 0.3 \
  --delete-fraction 0.1 --fids m2.tsv >/dev/null || e2e_fail "mkvolume of volume 2 failed"
e2e_t "$CLI" mkvolume --dir "$D" --vid 3 --version 2 --legacy-crc --needles 4 --min 4100K \
  --max 5M --gzip-fraction 0.5 --seed 6 --fids m3.tsv >/dev/null || e2e_fail "mkvolume of volume 3 failed"
cat m2.tsv m3.tsv >all.tsv
awk -F'\t' '$3 == "live" { print $1 }' all.tsv >live.txt
awk -F'\t' '$3 == "deleted" { print $1 }' all.tsv >deleted.txt

e2e_start_agent "$W/agent.log" "$AGENT" --dir "$D" --index-dir "$W/index" --http "$IP_A:0" \
  --transports tcp
AG="$IP_A:$E2E_AGENT_PORT"

# The agent really is only reachable through the veth: its worker address must work from B.
e2e_client "$CLI" info --agent "$AG" >info.txt 2>&1 || e2e_fail "swrdma info from $NS_B: $(cat info.txt)"
grep -q "this client's lanes: tcp" info.txt || e2e_fail "client lanes are not tcp: $(cat info.txt)"

mkdir -p rdma
n=$(wc -l <live.txt)
# shellcheck disable=SC2046
e2e_client "$CLI" get --agent "$AG" --transports tcp -v -o rdma $(cat live.txt) 2>get.err || {
  cat get.err >&2
  e2e_fail "swrdma get from $NS_B failed"
}
grep -Eq "read $n of $n needles, .* over rdma \(transports: tcp\)" get.err ||
  e2e_fail "unexpected summary: $(cat get.err)"
e2e_http_fetch_all live.txt "$W/http"
e2e_compare_dirs "$W/rdma" "$W/http" live.txt
e2e_check_sizes "$W/rdma" "$W/all.tsv"
e2e_log "$n live fids read over tcp across the veth equal the HTTP fallback and the manifest"

# With UCX's default transports the client must still end up on tcp (shared memory across
# namespaces is not offered by this agent).
one=$(sed -n 3p live.txt)
e2e_client "$CLI" get --agent "$AG" -o default_tls "$one" 2>default.err ||
  e2e_fail "swrdma get with default transports from $NS_B: $(cat default.err)"
cmp -s default_tls "http/$one" || e2e_fail "swrdma get with default transports read other bytes"

# A deleted fid fails with one line, across namespaces too.
del=$(head -n1 deleted.txt)
rc=0
e2e_client "$CLI" get --agent "$AG" --transports tcp "$del" >/dev/null 2>del.err || rc=$?
((rc != 0 && rc < 124)) || e2e_fail "deleted $del: exit status $rc"
{ (($(wc -l <del.err) == 1)) && grep -q deleted del.err; } || e2e_fail "deleted $del: $(cat del.err)"

e2e_sigterm_agent
e2e_log "PASS"
