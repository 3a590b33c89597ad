#!/usr/bin/env bash
# End-to-end against the real SeaweedFS: `weed master`, `weed volume -dir=D` and `weed filer` on
# loopback ports, the agent with --dir D beside the volume server, and every fid of a corpus read
# three ways: the volume server's own GET (the reference), the agent's HTTP fallback (status,
# bytes and headers, also with Accept-Encoding: gzip, a Range, If-Modified-Since, If-None-Match)
# and `swrdma get` (the agent's one-sided read; for a chunk manifest it must refuse, and --raw
# must give the stored manifest).
#
#   seaweedfs_test.sh AGENT_BINARY CLIENT_BINARY [WEED_BINARY]
#
# Without WEED_BINARY, scripts/build-weed.sh builds weed first (cached; half an hour on a busy
# 2-core machine the first time; skipped, 77, without Go). Two passes, each a fresh cluster:
#   jwt:  master, volume server and agent share a read key ([jwt.signing.read] in security.toml
#         in their working directory, which the agent finds as weed does); tokens come from the
#         master (/dir/lookup?fileId=F&read=yes, Authorization header) for the fid without "_N",
#         as weed checks them; a token asked for fid_N itself and reads without a token must be
#         refused where weed refuses them;
#   open: no key anywhere (weed then resolves chunk manifests; with a key it fails to read the
#         chunks, and so does the agent).
# The corpus (tests/seaweedfs/weed_corpus.py): empty to multi-MiB, binary and text weed gzips,
# names and mime types, TTL, Seaweed-* pairs, two concatenated gzip members uploaded with
# Content-Encoding: gzip, the compressed flag on data that is not gzip, overwrites, fid_N of an
# assign with count=3, a cm=true chunk manifest, big and appended files through the filer (the
# latter folded into filer manifest chunks); then deletes and volume.vacuum through `weed shell`.
# Half of it is written before the agent starts, half while it runs, and the comparison waits
# until the agent exports every .dat as it is on disk.
# Then, in each pass, a real `weed mount` of the filer with -rdma.enabled -rdma.sidecar= through
# `swrdma sidecar`: every file read through it (offsets around the chunk boundaries first, then
# whole) and compared with the filer's bytes, the sidecar's counters checked (reads went over
# RDMA), and again through a fresh mount with the agent stopped (the mount falls back to HTTP);
# see mount_pass.sh for which weed mounts and what happens without /dev/fuse.
# Then, in each pass, erasure coding (ec_phase.sh; about 5 s a pass): with a fresh agent, weed's
# own `ec.encode` of two corpus volumes (one with a needle over 1 MiB, so records cross shard
# blocks, grown by 12 MiB past one row of ten 1 MiB blocks), followed live by the agent; our encoder (swrdma-ec-encode, $SWRDMA_EC_ENCODE) on copies
# of their .dat/.idx must produce weed's .ec00..ec13 and .ecx byte for byte; every corpus fid of
# them compared three ways again (now read from the shards); one of them deleted through weed
# (journalled in the .ecj): the agent must answer 404 and `swrdma get` fail as deleted.
# Differences go to report.txt of each pass (printed). The last line on stdout is one JSON
# object: {"fids","mismatches","mount_files","mount_mismatches","mount_rdma_reads","weed_version"}
# plus "mount_bytes", "mount_end_refused" (ranges the sidecar refused at or past a needle's end),
# "mount_known_wrong" (files weed mount's RDMA path is known to read wrong, see mount_read.py;
# not mismatches), "mount_weed", and of the EC phase "ec_volumes" (volumes erasure-coded),
# "ec_fids" (fids compared on them), "ec_mismatches" (any fails the test) and
# "ec_shards_identical" (our shards and .ecx equal weed's). Needs python3, curl, jq, cmp (and
# fuse3 for the mount).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../e2e/e2e_lib.sh
source "$HERE/../e2e/e2e_lib.sh"
(($# == 2 || $# == 3)) || e2e_fail "usage: $0 AGENT_BINARY CLIENT_BINARY [WEED_BINARY]"
if (($# == 2)); then
  # The build first, bounded on its own (a fresh one takes long); then the test proper, under its
  # deadline, with the binary.
  e2e_log "building (or reusing) the real weed: scripts/build-weed.sh"
  rc=0
  weed_bin=$(timeout -k 30 3000 "$HERE/../../scripts/build-weed.sh") || rc=$?
  ((rc != 77)) || e2e_skip "no Go toolchain to build weed with (see above)"
  ((rc == 0)) || e2e_fail "scripts/build-weed.sh failed (status $rc, see above)"
  set -- "$1" "$2" "$weed_bin"
fi
e2e_self_deadline 900 "$@"
e2e_binaries "$1" "$2"
e2e_need python3 curl jq cmp
start=$SECONDS
WEED=$(realpath "$3")
[[ -x "$WEED" ]] || e2e_fail "weed binary $WEED is not executable"
# "version 30GB 4.53 linux amd64" -> "4.53 (v0.0.0-...)", the module version it was built from.
WEED_VERSION="$("$WEED" version 2>/dev/null | awk 'NR == 1 { print $3 }') ($("$HERE/../../scripts/build-weed.sh" --version))"
e2e_log "weed: $WEED ($WEED_VERSION)"

e2e_workdir
e2e_shm_in_workdir
PY=$HERE/weed_corpus.py
# shellcheck source=mount_pass.sh
source "$HERE/mount_pass.sh"
mount_setup
# shellcheck source=ec_phase.sh
source "$HERE/ec_phase.sh"
ec_setup

# Three HTTP ports whose gRPC companions (port + 10000, weed's default) are free too.
free_ports() {
  python3 - <<'PY'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
ports = []
while len(ports) < 3:
    p = random.randrange(20000, 29000)
    if p not in ports and free(p) and free(p + 10000):
        ports.append(p)
print(*ports)
PY
}

# in_sync DIR: the agent exports every volume of the volume server with the same compaction
# revision and exactly the .dat's current size (so it has seen the last writes and the vacuum).
in_sync() {
  python3 - "$VOLUME" "$(e2e_url /v1/volumes)" "$P/sync.txt" "$1" <<'PY'
import json, os, sys, urllib.request
vs = json.load(urllib.request.urlopen(f"http://{sys.argv[1]}/status"))
vols = {v["Id"]: v for v in vs.get("Volumes") or []}
req = urllib.request.Request(sys.argv[2], headers={"Accept": "application/json"})
ag = {v["volume_id"]: v for v in json.load(urllib.request.urlopen(req))["volumes"]}
def dat_size(v):
    name = (v["Collection"] + "_" if v.get("Collection") else "") + f"{v['Id']}.dat"
    try:
        return os.stat(os.path.join(sys.argv[4], name)).st_size
    except OSError:
        return None
bad = [(vid, v.get("CompactRevision"), dat_size(v), ag.get(vid, {}).get("compaction_revision"),
        ag.get(vid, {}).get("size")) for vid, v in vols.items()
       if vid not in ag or ag[vid].get("compaction_revision") != v.get("CompactRevision")
       or ag[vid].get("size") != dat_size(v)]
if bad:
    print("not in sync (vid, weed revision, .dat size, agent revision, agent size):", bad,
          file=open(sys.argv[3], "w"))
sys.exit(1 if bad else 0)
PY
}

# run_pass NAME jwt|open: a fresh cluster in $W/NAME, the corpus, the comparison; adds to
# TOTAL_FIDS and TOTAL_MISMATCHES. With jwt, master, volume server and agent share a read key
# (weed finds security.toml in its working directory, the agent is given it), tokens come from
# the master; open: no key anywhere (and chunk manifests are resolved: with a key weed fails to
# read their chunks).
TOTAL_FIDS=0
TOTAL_MISMATCHES=0
run_pass() {
  local name=$1 mode=$2 mp vp fp
  P=$W/$name
  D=$P/volume
  mkdir -p "$D" "$P/master" "$P/filer"
  read -r mp vp fp < <(free_ports)
  MASTER=127.0.0.1:$mp
  VOLUME=127.0.0.1:$vp
  FILER=127.0.0.1:$fp
  local cmp_args=()
  if [[ $mode == jwt ]]; then
    printf '[jwt.signing.read]\nkey = "swrdma-seaweedfs-test-read-key"\nexpires_after_seconds = 300\n' \
      >"$P/security.toml"
    cmp_args=(--jwt)
  fi
  cd "$P"
  local life=1400 pid
  e2e_spawn pid $life "$P/master.log" "$P/master.log" "$WEED" master -ip=127.0.0.1 \
    -ip.bind=127.0.0.1 -port="$mp" -mdir="$P/master" -volumeSizeLimitMB=64 -defaultReplication=000
  e2e_wait_until 60 0.3 curl -sf -o /dev/null "http://$MASTER/cluster/status" ||
    e2e_fail "weed master did not answer on $MASTER within 60 s: $(tail -n 5 "$P/master.log")"
  e2e_spawn pid $life "$P/volume.log" "$P/volume.log" "$WEED" volume -ip=127.0.0.1 \
    -ip.bind=127.0.0.1 -port="$vp" -dir="$D" -max=40 -mserver="$MASTER" -preStopSeconds=0
  e2e_spawn pid $life "$P/filer.log" "$P/filer.log" "$WEED" filer -ip=127.0.0.1 \
    -ip.bind=127.0.0.1 -port="$fp" -master="$MASTER" -defaultStoreDir="$P/filer" -maxMB=1
  cluster_up() {
    curl -sf "http://$MASTER/dir/status" | grep -q "\"Url\":\"$VOLUME\"" &&
      curl -sf -o /dev/null "http://$FILER/" -H 'Accept: application/json'
  }
  e2e_wait_until 90 0.5 cluster_up || e2e_fail "weed volume/filer not up within 90 s: \
$(tail -n 5 "$P/volume.log") $(tail -n 5 "$P/filer.log")"
  e2e_log "[$name] weed up: master $MASTER, volume $VOLUME (-dir $D), filer $FILER; read key: $mode"

  e2e_log "[$name] phase 1: corpus before the agent starts"
  e2e_t python3 "$PY" write --master "$MASTER" --filer "$FILER" --phase 1 --out "$P/corpus.jsonl"
  # No --security-toml: the agent finds $P/security.toml in its working directory, as weed does.
  W=$P e2e_serve --log "$P/agent.log" "$D"
  # A wrong key source is a difference too (the reads without a token below show its effect).
  local want="read tokens: none"
  [[ $mode == jwt ]] && want="read tokens: ./security.toml"
  if ! grep -q "$want" "$P/agent.log"; then
    e2e_log "[$name] DIFFERENCE: the agent logs '$(grep -o 'read tokens: [^;]*' "$P/agent.log")'," \
      "expected '$want' (weed finds ./security.toml)"
    TOTAL_MISMATCHES=$((TOTAL_MISMATCHES + 1))
  fi
  e2e_log "[$name] phase 2: corpus while the agent runs"
  e2e_t python3 "$PY" write --master "$MASTER" --filer "$FILER" --phase 2 --out "$P/corpus.jsonl"
  mount_write_corpus
  e2e_t python3 "$PY" delete --master "$MASTER" --corpus "$P/corpus.jsonl"
  e2e_log "[$name] volume.vacuum through weed shell"
  printf 'lock\nvolume.vacuum -garbageThreshold=0.0001\nunlock\n' |
    e2e_t "$WEED" shell -master="$MASTER" >"$P/shell.log" 2>&1 ||
    e2e_fail "weed shell volume.vacuum failed: $(tail -n 5 "$P/shell.log")"
  e2e_wait_until 30 0.5 in_sync "$D" || e2e_log "[$name] warning: after 30 s $(cat "$P/sync.txt")"

  e2e_log "[$name] comparing every fid: volume server GET vs agent fallback vs swrdma get"
  local summary
  summary=$(e2e_t timeout 900 python3 "$PY" compare --master "$MASTER" --volume "$VOLUME" \
    --agent "$AG" --cli "$CLI" --corpus "$P/corpus.jsonl" --report "$P/report.txt" \
    "${cmp_args[@]}") || e2e_fail "the comparison did not finish"
  TOTAL_FIDS=$((TOTAL_FIDS + $(jq -r .fids <<<"$summary")))
  TOTAL_MISMATCHES=$((TOTAL_MISMATCHES + $(jq -r .mismatches <<<"$summary")))
  mount_pass "$name" "$mode"  # stops the agent
  ec_phase "$name" "$mode"    # a fresh agent, stopped at its end
  if [[ -s "$P/report.txt" ]]; then
    e2e_log "[$name] differences ($P/report.txt):"
    cat "$P/report.txt" >&2
  fi
  cd "$W"
}

run_pass jwt jwt
run_pass open open
e2e_log "harness wall time: $((SECONDS - start)) s"
jq -cn --argjson fids "$TOTAL_FIDS" --argjson mismatches "$TOTAL_MISMATCHES" \
  --argjson mount_files "$MOUNT_FILES" --argjson mount_mismatches "$MOUNT_MISMATCHES" \
  --argjson mount_rdma_reads "$MOUNT_RDMA_READS" --arg weed_version "$WEED_VERSION" \
  --argjson mount_bytes "$MOUNT_BYTES" --argjson mount_end_refused "$MOUNT_END_REFUSED" \
  --argjson mount_known_wrong "$MOUNT_KNOWN_WRONG" --arg mount_weed "$MOUNT_WEED_DESC" \
  --argjson ec_volumes "$EC_VOLUMES" --argjson ec_fids "$EC_FIDS" \
  --argjson ec_mismatches "$EC_MISMATCHES" --argjson ec_shards_identical "$EC_SHARDS_IDENTICAL" \
  --argjson ec_spread_fids "$EC_SPREAD_FIDS" --argjson ec_spread_assembled "$EC_SPREAD_ASSEMBLED" \
  '{$fids, $mismatches, $mount_files, $mount_mismatches, $mount_rdma_reads, $weed_version,
    $mount_bytes, $mount_end_refused, $mount_known_wrong, $mount_weed, $ec_volumes, $ec_fids,
    $ec_mismatches, $ec_shards_identical, $ec_spread_fids, $ec_spread_assembled}'
((TOTAL_MISMATCHES == 0 && MOUNT_MISMATCHES == 0 && EC_MISMATCHES == 0)) || exit 1
