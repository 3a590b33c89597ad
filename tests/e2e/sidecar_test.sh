#!/usr/bin/env bash
# End-to-end: `swrdma sidecar` driven as `weed mount -rdma.enabled -rdma.sidecar=HOST:PORT` drives
# it, and the --master paths of `swrdma get/info/bench`, with the real binaries.
#
#   sidecar_test.sh AGENT_BINARY CLIENT_BINARY
#
# A volume from `swrdma mkvolume` (plain and gzip needles, some deleted) behind a real agent; the
# sidecar maps volume server 127.0.0.1:8080 to that agent. Like the mount: GET /health, then
# GET /read?file_id=..&offset=..&size=..&volume_server=http://127.0.0.1:8080 for chunks of every
# live fid, 16 at a time; every body must equal the same slice of `swrdma get` (which verifies
# header and CRC) and carry X-RDMA-Used: true. Unknown or deleted fids and a dead agent must be
# non-200 JSON (the mount then falls back), bad parameters 400. A stand-in master (python3 http
# server answering /dir/lookup as FORMAT.md documents; skipped without python3) checks
# `swrdma get --master` failing over from a dead replica, `info --master` and `bench --master`.
# Needs curl, jq, cmp, dd.
set -euo pipefail
# shellcheck source=SCRIPTDIR/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"
e2e_self_deadline 400 "$@"
e2e_binaries "$@"
e2e_need curl jq cmp dd

e2e_workdir
e2e_mkvolume "$W/vols" 3 --needles 120 --min 1 --max 200K --gzip-fraction 0.4 --delete-fraction 0.1 \
  --seed 3
e2e_fids live m3.tsv >live.txt
e2e_fids deleted m3.tsv >deleted.txt
e2e_serve "$W/vols"

# A port nothing listens on, for a dead agent.
DEAD=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 9)
cat >agents.map <<EOF
# volume server     agent
127.0.0.1:8080      http://$AG
127.0.0.1:8099      http://127.0.0.1:$DEAD   # a volume server whose agent is down
EOF

# ---- the sidecar ---------------------------------------------------------------------------
e2e_spawn SC_PID 300 sidecar.log sidecar.log \
  "$CLI" sidecar --http 127.0.0.1:0 --agent-map agents.map --transports tcp
SC_ERE='listening on 127\.0\.0\.1:[0-9]+'
e2e_wait_log "the sidecar" "$SC_PID" sidecar.log "$SC_ERE" 10
SC=$(grep -oE "$SC_ERE" sidecar.log | head -n1 | cut -d' ' -f3)
e2e_log "sidecar on $SC"

e2e_client curl -sf --max-time 5 "http://$SC/health" >health.json || e2e_fail "GET /health failed"
[[ $(jq -r .status health.json) == healthy && $(jq -r .rdma.enabled health.json) == true ]] ||
  e2e_fail "health: $(cat health.json)"

# Reference bytes: swrdma get straight from the agent (verified).
e2e_get_all "$W/ref" live.txt tcp --transports tcp

# Chunk reads: all but the last byte, a middle slice, bytes just before the end, size 0 (to the
# end); 16 in parallel. (A range reaching the end is refused: checked below.)
: >jobs.txt
while read -r fid; do
  size=$(stat -c %s "ref/$fid")
  mid=$((size / 3))
  midsize=$((mid + 1 < size - mid ? mid + 1 : size - mid - 1))  # ends inside (0: to the end)
  tail=$((size > 7 ? size - 7 : 0))
  printf '%s %s %s\n' "$fid" 0 $((size - 1)) "$fid" "$mid" "$midsize" "$fid" "$tail" \
    $((size - tail - 1)) \
    "$fid" 0 0 >>jobs.txt
done <live.txt
mkdir -p got
read_one() {  # read_one FID OFFSET SIZE: body to got/FID.OFFSET.SIZE, headers beside it
  local out="got/$1.$2.$3"
  curl -s --max-time 30 -D "$out.h" -o "$out" -w '%{http_code}\n' \
    "http://$SC/read?file_id=$1&offset=$2&size=$3&volume_server=http://127.0.0.1:8080" >"$out.code"
}
export -f read_one
export SC
e2e_t xargs -P 16 -n 3 bash -c 'read_one "$@"' _ <jobs.txt || e2e_fail "parallel /read failed"
n=0
while read -r fid offset size; do
  out="got/$fid.$offset.$size"
  [[ $(cat "$out.code") == 200 ]] || e2e_fail "/read $fid $offset $size: $(cat "$out.code") $(cat "$out")"
  grep -qi '^X-RDMA-Used: true' "$out.h" || e2e_fail "/read $fid: no X-RDMA-Used: true"
  grep -qi '^X-Source: rdma' "$out.h" || e2e_fail "/read $fid: no X-Source: rdma"
  count=()
  ((size == 0)) || count=(count="$size")
  dd if="ref/$fid" of=want iflag=skip_bytes,count_bytes bs=64K skip="$offset" "${count[@]}" \
    status=none
  cmp -s want "$out" || e2e_fail "/read $fid offset $offset size $size differs from swrdma get"
  n=$((n + 1))
done <jobs.txt
e2e_log "  $n chunk reads identical to swrdma get ($(grep -c gzip m3.tsv) gzip needles among them)"
[[ $(e2e_client curl -s "http://$SC/health" | jq -r .rdma.connected) == true ]] ||
  e2e_fail "health does not say connected after reads"

# Failures: non-200 JSON, so the mount falls back to its own HTTP read.
LIVE=$(head -n1 live.txt)
DELETED=$(head -n1 deleted.txt)
check_status() {  # check_status WANT TARGET
  local code
  code=$(e2e_client curl -s --max-time 30 -o body.json -w '%{http_code}' "http://$SC$2")
  [[ "$code" == "$1" ]] || e2e_fail "GET $2: HTTP $code, expected $1: $(cat body.json)"
  jq -e .error body.json >/dev/null || e2e_fail "GET $2: no JSON error: $(cat body.json)"
}
VS=volume_server=http://127.0.0.1:8080
check_status 404 "/read?file_id=3,ffff0000aaaa&offset=0&size=10&$VS"
check_status 404 "/read?file_id=$DELETED&offset=0&size=10&$VS"
check_status 404 "/read?file_id=9,01637037d6&offset=0&size=10&$VS"
check_status 502 "/read?file_id=$LIVE&offset=0&size=10&volume_server=http://127.0.0.1:8099"
# A range reaching or running past the end of the data: refused (416), never a short body the
# mount would copy as is.
LIVE_SIZE=$(stat -c %s "ref/$LIVE")
check_status 416 "/read?file_id=$LIVE&offset=0&size=$LIVE_SIZE&$VS"
check_status 416 "/read?file_id=$LIVE&offset=$((LIVE_SIZE - 1))&size=2&$VS"
check_status 416 "/read?file_id=$LIVE&offset=$((LIVE_SIZE + 1))&size=0&$VS"
check_status 400 "/read?offset=0&size=10&$VS"
check_status 400 "/read?file_id=3,zz&offset=0&size=10&$VS"
check_status 400 "/read?file_id=$LIVE&offset=x&size=10&$VS"
check_status 400 "/read?file_id=$LIVE&offset=0&size=10"
[[ $(e2e_http_code -X DELETE "http://$SC/cleanup?temp_file=/tmp/x") == 200 ]] ||
  e2e_fail "DELETE /cleanup is not 200"
e2e_sigterm "$SC_PID" "the sidecar"
grep -q 'served' sidecar.log || e2e_fail "the sidecar did not log its totals"
e2e_log "sidecar: mount contract ok, stopped cleanly"

# ---- --master through a stand-in master ----------------------------------------------------
command -v python3 >/dev/null || e2e_skip "python3 missing: the --master part needs the stand-in"
cat >master.py <<'EOF'
# Stand-in SeaweedFS master: GET /dir/lookup?volumeId=V answers the locations in volumes.json.
import http.server, json, sys, urllib.parse
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        vid = (q.get("volumeId") or q.get("fileId") or ["0"])[0].split(",")[0]
        vols = json.load(open("volumes.json"))
        if u.path != "/dir/lookup" or vid not in vols:
            body, code = {"volumeOrFileId": vid, "error": "volume id %s not found" % vid}, 404
        else:
            body, code = {"volumeOrFileId": vid, "locations": [
                {"url": s, "publicUrl": s, "dataCenter": "dc1"} for s in vols[vid]]}, 200
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
EOF
echo '{"3": ["127.0.0.1:8099", "127.0.0.1:8080"]}' >volumes.json
e2e_spawn M_PID 300 master.port master.log python3 master.py
e2e_wait_until 5 0.1 test -s master.port || e2e_fail "the stand-in master did not start: $(cat master.log)"
MASTER="http://127.0.0.1:$(cat master.port)"
e2e_log "stand-in master on $MASTER"

mkdir -p viamaster
mapfile -t LIVE_FIDS <live.txt
e2e_client "$CLI" get --master "$MASTER" --agent-map agents.map --transports tcp -v \
  -o viamaster "${LIVE_FIDS[@]}" 2>get.log || e2e_fail "get --master failed: $(tail -n 3 get.log)"
e2e_compare_dirs ref viamaster live.txt
grep -q 'failovers' get.log || e2e_fail "get --master -v printed no summary"
if e2e_client "$CLI" get --master "$MASTER" --agent-map agents.map "$DELETED" 2>err.txt; then
  e2e_fail "get --master of a deleted fid succeeded"
fi
grep -q deleted err.txt || e2e_fail "get --master of a deleted fid: $(cat err.txt)"

rc=0
# (UCX may print warnings on stdout: keep the JSON line.)
e2e_client "$CLI" info --master "$MASTER" --agent-map agents.map --volume 3 --json >info.out ||
  rc=$?
grep '^{' info.out | tail -n 1 >info.json
((rc == 1)) || e2e_fail "info --master with a dead replica exited $rc (expected 1)"
[[ $(jq '.volumes[0].replicas | length' info.json) == 2 &&
  $(jq '.volumes[0].replicas[1].ok' info.json) == true &&
  $(jq '.volumes[0].replicas[0].ok' info.json) == false ]] || e2e_fail "info: $(cat info.json)"

echo '{"3": ["127.0.0.1:8080"]}' >volumes.json
e2e_client "$CLI" bench --master "$MASTER" --agent-map agents.map --volume 3 --ops 300 \
  --threads 2 --transports tcp --json >bench.out || e2e_fail "bench --master failed"
grep '^{' bench.out | tail -n 1 >bench.json
jq -e '.ops == 300 and .errors == 0 and (.agents | length) == 1 and .master != ""' bench.json \
  >/dev/null || e2e_fail "bench --master: $(cat bench.json)"
e2e_log "--master: get (with failover), info and bench ok"
e2e_log "PASS"
