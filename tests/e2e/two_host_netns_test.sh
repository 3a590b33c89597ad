#!/usr/bin/env bash
# End-to-end across a network: agent and client in two network namespaces joined by a veth pair.
#
#   two_host_netns_test.sh AGENT_BINARY CLIENT_BINARY
#
# Namespace A holds the agent (10.77.0.1), namespace B the client (10.77.0.2, in IPC and PID
# namespaces of its own, as on another host); addresses exist only
# inside the namespaces, nothing in the host's namespace changes. The agent runs with its default
# transports, which leave UCX tcp out (issue 13: UCT's PUT_REQ frame): the client reads every live
# fid over the agent's TCP read port (--read-port, checked reads) and compares it with the HTTP
# fallback fetched from B; the agent's read-port counters must show those reads, and the agent
# must listen on no TCP port but its HTTP and read ports (no UCX tcp port a peer could reach). Exits 77 (ctest: skipped)
# where namespaces cannot be created (not root, no CAP_NET_ADMIN/CAP_SYS_ADMIN, no `ip`).
# Namespace and veth names carry $$ so parallel runs do not collide.
set -euo pipefail
# shellcheck source=SCRIPTDIR/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"
e2e_self_deadline 300 "$@"
e2e_binaries "$@"
e2e_need curl jq unshare ss
IP_A=10.77.0.1
IP_B=10.77.0.2
e2e_netns_pair "$IP_A" "$IP_B"  # sets NS_A, NS_B, VETH_A, VETH_B
E2E_AGENT_PREFIX=(ip netns exec "$NS_A")
# Another host also means other IPC and PID namespaces: UCX's shared-memory addresses carry them
# (posix/sysv the IPC namespace, cma the PID namespace), so B cannot take shared memory to A.
E2E_CLIENT_PREFIX=(ip netns exec "$NS_B" unshare --ipc --pid --fork)

e2e_workdir
D=$W/volumes
e2e_mkvolume "$D" 2 --needles 200 --min 1 --max 300K --gzip-fraction 0.3 --delete-fraction 0.1
e2e_mkvolume "$D" 3 --version 2 --legacy-crc --needles 4 --min 4100K --max 5M --gzip-fraction 0.5 \
  --seed 6
cat m2.tsv m3.tsv >all.tsv
e2e_fids live all.tsv >live.txt
e2e_fids deleted all.tsv >deleted.txt

e2e_serve --host "$IP_A" "$D"

# No UCX tcp: /v1/info says so, and the agent listens on its HTTP and read ports only.
e2e_get_json /v1/info v1info.json
jq -e '(.transports | index("tcp")) == null and .exposures.tcp_read == "checked"' v1info.json \
  >/dev/null || e2e_fail "/v1/info offers UCX tcp or no checked tcp_read: $(cat v1info.json)"
read_port=$(jq -r '.tcp_read.port // empty' v1info.json)
[[ -n $read_port ]] || e2e_fail "/v1/info names no TCP read port: $(cat v1info.json)"
pid=$(e2e_serving_pid)
ports=$(ip netns exec "$NS_A" ss -Hltnp | awk -v p="pid=$pid," '$0 ~ p { n = split($4, a, ":"); print a[n] }' |
  sort -n | tr '\n' ' ')
[[ $ports == "$(printf '%s\n' "$E2E_AGENT_PORT" "$read_port" | sort -n | tr '\n' ' ')" ]] ||
  e2e_fail "the agent listens on TCP ports '$ports', expected only HTTP $E2E_AGENT_PORT and read port $read_port"
e2e_log "agent listens on TCP ports $ports only (HTTP, read port): no UCX tcp port"

# The agent really is only reachable through the veth: the client reads over its TCP read port.
e2e_client "$CLI" info --agent "$AG" >info.txt 2>&1 || e2e_fail "swrdma info from $NS_B: $(cat info.txt)"
grep -q "this client's lanes: tcp" info.txt || e2e_fail "client lanes are not tcp: $(cat info.txt)"

e2e_get_all "$W/rdma" live.txt tcp --transports tcp
e2e_http_fetch_all live.txt "$W/http"
e2e_compare_dirs "$W/rdma" "$W/http" live.txt
e2e_check_sizes "$W/rdma" "$W/all.tsv"
e2e_log "$(wc -l <live.txt) live fids read over tcp across the veth equal the HTTP fallback and the manifest"
e2e_client curl -sf "$(e2e_url /metrics)" >metrics.txt || e2e_fail "GET /metrics failed"
sent=$(awk '/^swrdma_tcp_read_fids_total\{answer="sent"\}/ { print $2 }' metrics.txt)
((${sent%.*} >= $(wc -l <live.txt))) ||
  e2e_fail "the read port served ${sent:-no} fids, expected at least $(wc -l <live.txt)"
e2e_log "the agent's TCP read port served $sent fids (checked reads, not UCX)"

# With UCX's default transports the client must still end up on the read port (shared memory
# across namespaces is not offered by this agent, UCX tcp not at all).
one=$(sed -n 3p live.txt)
e2e_client "$CLI" get --agent "$AG" -o default_tls "$one" 2>default.err ||
  e2e_fail "swrdma get with default transports from $NS_B: $(cat default.err)"
cmp -s default_tls "http/$one" || e2e_fail "swrdma get with default transports read other bytes"

# A deleted fid fails with one line, across namespaces too.
del=$(head -n1 deleted.txt)
e2e_expect_get_fails "deleted $del" deleted --transports tcp "$del"

e2e_sigterm_agent
e2e_log "PASS"
