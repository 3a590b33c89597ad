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
# shellcheck source=SCRIPTDIR/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"
e2e_self_deadline 300 "$@"
e2e_binaries "$@"
e2e_need curl jq
IP_A=10.77.0.1
IP_B=10.77.0.2
e2e_netns_pair "$IP_A" "$IP_B"  # sets NS_A, NS_B, VETH_A, VETH_B
E2E_AGENT_PREFIX=(ip netns exec "$NS_A")
E2E_CLIENT_PREFIX=(ip netns exec "$NS_B")

e2e_workdir
D=$W/volumes
e2e_mkvolume "$D" 2 --needles 200 --min 1 --max 300K --gzip-fraction 0.3 --delete-fraction 0.1
e2e_mkvolume "$D" 3 --version 2 --legacy-crc --needles 4 --min 4100K --max 5M --gzip-fraction 0.5 \
  --seed 6
cat m2.tsv m3.tsv >all.tsv
e2e_fids live all.tsv >live.txt
e2e_fids deleted all.tsv >deleted.txt

e2e_serve --host "$IP_A" "$D" --transports tcp

# The agent really is only reachable through the veth: its worker address must work from B.
e2e_client "$CLI" info --agent "$AG" >info.txt 2>&1 || e2e_fail "swrdma info from $NS_B: $(cat info.txt)"
grep -q "this client's lanes: tcp" info.txt || e2e_fail "client lanes are not tcp: $(cat info.txt)"

e2e_get_all "$W/rdma" live.txt tcp --transports tcp
e2e_http_fetch_all live.txt "$W/http"
e2e_compare_dirs "$W/rdma" "$W/http" live.txt
e2e_check_sizes "$W/rdma" "$W/all.tsv"
e2e_log "$(wc -l <live.txt) live fids read over tcp across the veth equal the HTTP fallback and the manifest"

# With UCX's default transports the client must still end up on tcp (shared memory across
# namespaces is not offered by this agent).
one=$(sed -n 3p live.txt)
e2e_client "$CLI" get --agent "$AG" -o default_tls "$one" 2>default.err ||
  e2e_fail "swrdma get with default transports from $NS_B: $(cat default.err)"
cmp -s default_tls "http/$one" || e2e_fail "swrdma get with default transports read other bytes"

# A deleted fid fails with one line, across namespaces too.
del=$(head -n1 deleted.txt)
e2e_expect_get_fails "deleted $del" deleted --transports tcp "$del"

e2e_sigterm_agent
e2e_log "PASS"
