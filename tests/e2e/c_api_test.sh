#!/usr/bin/env bash
# End-to-end: the C API (client/swrdma.h) from C, through libswrdma.so, against real agents.
#
#   c_api_test.sh AGENT_BINARY CLIENT_BINARY C_TEST_BINARY LIBSWRDMA VERSION HEADER
#
# Checks that libswrdma.so exports exactly the swrdma_* functions the header declares. Generates
# v3 and v2 (legacy CRC) volumes with `swrdma mkvolume` (1 byte to 300 KiB, plain and gzip, some
# deleted), starts the agent on a kernel-chosen loopback port and fetches every live fid over its
# HTTP fallback (the expected bytes: a read path independent of the one under test). Then the C
# program (tests/c_api_test.c) reads every fid over tcp, and over the HTTP fallback with no usable
# UCX transport; and, against a second agent that requires read tokens (minted here with
# Python's hmac), with right, missing and wrong tokens. Needs curl, python3, nm.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/e2e_lib.sh
source "$HERE/e2e_lib.sh"
e2e_self_deadline 300 "$@"

[[ $# -eq 6 ]] || e2e_fail "usage: $0 AGENT CLIENT C_TEST LIBSWRDMA VERSION HEADER"
AGENT=$(realpath "$1")
CLI=$(realpath "$2")
CTEST=$(realpath "$3")
LIB=$(realpath "$4")
VERSION=$5
HEADER=$(realpath "$6")
for tool in curl python3 nm; do
  command -v "$tool" >/dev/null || e2e_fail "$tool is needed"
done
[[ -x "$AGENT" && -x "$CLI" && -x "$CTEST" && -f "$LIB" ]] || e2e_fail "build the binaries first"

e2e_tmpdir W
cd "$W"

# ---- the shared library exports the C API and nothing else ---------------------------------
nm -D --defined-only "$LIB" | awk '{ print $3 }' | sort >exported.txt
grep -E '^(const )?[a-z_]+\*? \*?swrdma_[a-z_]+\(' "$HEADER" | sed -E 's/.*(swrdma_[a-z_]+)\(.*/\1/' | sort -u >declared.txt
(($(wc -l <declared.txt) >= 10)) || e2e_fail "found only $(wc -l <declared.txt) functions in $HEADER"
diff declared.txt exported.txt >exports.diff ||
  e2e_fail "libswrdma.so exports differ from swrdma.h (< header only, > library only): $(cat exports.diff)"
e2e_log "libswrdma.so exports exactly the $(wc -l <declared.txt) functions of swrdma.h"

# ---- volumes, agent, expected bytes --------------------------------------------------------
D=$W/volumes
e2e_t "$CLI" mkvolume --dir "$D" --vid 2 --fids m2.tsv --needles 60 --min 1 --max 300K \
  --gzip-fraction 0.3 --delete-fraction 0.2 --seed 11 >/dev/null || e2e_fail "mkvolume 2 failed"
e2e_t "$CLI" mkvolume --dir "$D" --vid 5 --fids m5.tsv --version 2 --legacy-crc --needles 30 \
  --min 1 --max 100K --gzip-fraction 0.3 --delete-fraction 0.2 --seed 12 >/dev/null ||
  e2e_fail "mkvolume 5 failed"
cat m2.tsv m5.tsv >all.tsv
awk -F'\t' '$3 == "live" { print $1 }' all.tsv >live.txt
for want in live deleted; do
  grep -q "	$want	" all.tsv || e2e_fail "the generated volumes have no $want needle"
done
grep -q '	live	gzip$' all.tsv || e2e_fail "the generated volumes have no live gzip needle"

e2e_start_agent "$W/agent.log" "$AGENT" --dir "$D" --index-dir "$W/index" --http 127.0.0.1:0
URL="http://127.0.0.1:$E2E_AGENT_PORT"
e2e_http_fetch_all live.txt "$W/expected"
e2e_check_sizes "$W/expected" "$W/all.tsv"

# ---- the C program -------------------------------------------------------------------------
e2e_t "$CTEST" read "$URL" all.tsv "$W/expected" "$VERSION" tcp ||
  e2e_fail "c_api_test read failed"
e2e_t "$CTEST" fallback "$URL" all.tsv "$W/expected" || e2e_fail "c_api_test fallback failed"

# ---- read tokens ---------------------------------------------------------------------------
token() { e2e_token "$@"; }  # KEY FID [EXP_DELTA_SECONDS]
printf '[jwt.signing.read]\nkey = "c-api-key"\n' >security.toml
e2e_start_agent "$W/agent-auth.log" "$AGENT" --dir "$D" --index-dir "$W/index-auth" \
  --http 127.0.0.1:0 --security-toml "$W/security.toml"
: >tokens.tsv
while read -r fid; do
  printf '%s\t%s\n' "$fid" "$(token c-api-key "$fid")" >>tokens.tsv
done < <(head -n 8 live.txt)
e2e_t "$CTEST" auth "http://127.0.0.1:$E2E_AGENT_PORT" tokens.tsv "$W/expected" ||
  e2e_fail "c_api_test auth failed"

e2e_log "PASS: the C API reads every fid, reports every error, over tcp, HTTP and with tokens"
