# shellcheck shell=bash
# shellcheck disable=SC2034  # the EC_* totals are read by seaweedfs_test.sh
# The erasure-coding phase of seaweedfs_test.sh (sourced, not run): after the mount pass, with a
# fresh agent on the volume directory, two volumes of the corpus (one holding a needle larger than
# 1 MiB, so records cross the 1 MiB shard blocks; weed_corpus.py ec-pick; that one then grown by
# 12 MiB written straight to it, weed_corpus.py ec-fill, so its .dat passes the 10 MiB of one row
# of 1 MiB blocks) are frozen (volume.mark -readonly), their .dat/.idx copied aside, and
# erasure-coded by weed itself
# (`weed shell` lock; ec.encode -volumeIds=A,B -force; unlock: one volume server, so -force). Once
# the volume server holds .ecx and .ec00..ec13 and no .dat for them and the agent lists them with
# "ec": true and 14 shards (it follows the change live):
#   a. swrdma-ec-encode (our ec::EncodeEcVolume) on the copies: every .ec00..ec13 and the .ecx must
#      equal weed's byte for byte (a difference is an EC mismatch, each file named); the .vif is
#      compared field by field and its differences only logged (weed writes bytesOffset 0 and a
#      blockSize, and the encode time), and so is weed's .ecsum (ours writes none);
#   b. every corpus fid of those volumes compared three ways (weed_corpus.py compare --volumes):
#      the volume server now reads them from its shards;
#   b2. a lost shard: .ec00 of the first volume (the .dat's first block: corpus needles) moved
#      out of the directory; the volume server keeps reading its open file, the agent sees 13
#      shards and must rebuild those needles from parity (swrdma_ec_rebuilt_pieces_total grows):
#      the volume's fids compared again, then the file is put back and 14 shards awaited;
#   c. one live fid deleted through the volume server (weed journals it in the .ecj): the agent's
#      fallback must answer 404 as the volume server does, and `swrdma get` must fail, deleted or
#      not found, within 30 s;
#   d. shards on two servers (ec_spread): a second volume server joins, weed's own
#      `ec.balance -volumeIds=A,B -apply` moves part of each volume's shards to it (with copies of
#      the .ecx/.ecj/.vif), a second agent serves its directory, and every live fid of those
#      volumes is read by the cluster client (`swrdma get --master --agent-map`, weed_corpus.py
#      ec-spread) against the volume server's own GET (weed reads the other server's shards over
#      gRPC). A needle across the two servers is assembled from both agents' pieces: with read
#      tokens every fid must read byte-exact and at least one must be assembled; without, such a
#      needle may only be refused (the agent lacking its header cannot check its cookie).
# The master's /dir/lookup?volumeId=N of an EC volume is kept in $P/ec-lookup-N.json (and logged).
#
# Globals used: WEED, CLI, PY, P, D, MASTER, VOLUME, AG (e2e_serve); set: EC_* totals.

EC_VOLUMES=0
EC_FIDS=0
EC_MISMATCHES=0
EC_SHARDS_IDENTICAL=true
EC_SPREAD_FIDS=0
EC_SPREAD_ASSEMBLED=0
EC_ENCODE=""
EC_SHARDS=(00 01 02 03 04 05 06 07 08 09 10 11 12 13)

# ec_setup: finds swrdma-ec-encode: $SWRDMA_EC_ENCODE (ctest sets it), else the build tree of
# the swrdma binary (build/client/swrdma -> build/tests/swrdma-ec-encode).
ec_setup() {
  EC_ENCODE=${SWRDMA_EC_ENCODE:-$(dirname "$CLI")/../tests/swrdma-ec-encode}
  [[ -x "$EC_ENCODE" ]] || e2e_fail "swrdma-ec-encode not found at $EC_ENCODE: build it" \
    "(cmake --build BUILD --target swrdma-ec-encode) and set SWRDMA_EC_ENCODE to its path"
  EC_ENCODE=$(realpath "$EC_ENCODE")
}

# ec_mismatch NAME MESSAGE: an EC difference, logged, counted and added to the pass's report.
ec_mismatch() {
  e2e_log "[$1] EC DIFFERENCE: $2"
  printf '[ec]\t%s\n' "$2" >>"$P/report.txt"
  EC_MISMATCHES=$((EC_MISMATCHES + 1))
}

# ec_shell NAME WHAT COMMAND...: runs the weed shell commands (one a line) between lock and
# unlock; fails the test on a non-zero status or an "error:" line (weed shell exits 0 after a
# command fails). The output goes to $P/shell-ec.log.
ec_shell() {
  local name=$1 what=$2
  shift 2
  { echo lock && printf '%s\n' "$@" && echo unlock; } |
    e2e_t "$WEED" shell -master="$MASTER" >>"$P/shell-ec.log" 2>&1 ||
    e2e_fail "[$name] weed shell $what failed: $(tail -n 5 "$P/shell-ec.log")"
  if grep -qE '^error' "$P/shell-ec.log"; then
    e2e_fail "[$name] weed shell $what reported an error ($P/shell-ec.log):" \
      "$(grep -E '^error' "$P/shell-ec.log" | tail -n 3)"
  fi
}

# ec_on_disk VID...: the volume server holds .ecx and every shard of each VID, and no .dat.
ec_on_disk() {
  local vid s
  for vid in "$@"; do
    [[ -f "$D/$vid.ecx" && ! -e "$D/$vid.dat" ]] || return 1
    for s in "${EC_SHARDS[@]}"; do
      [[ -f "$D/$vid.ec$s" ]] || return 1
    done
  done
}

# ec_agent_lists VIDS: the agent's /v1/volumes lists every volume of VIDS (3,5) with "ec": true
# and all 14 shards.
ec_agent_lists() {
  curl -sf --max-time 5 -H 'Accept: application/json' "$(e2e_url /v1/volumes)" >"$P/ec-volumes.json" &&
    jq -e --arg vids "$1" '($vids | split(",") | map(tonumber)) -
      [.volumes[] | select(.ec == true and (.ec_shards | length) == 14) | .volume_id] | length == 0' \
      "$P/ec-volumes.json" >/dev/null
}

# ec_agent_shards VID N: the agent's /v1/volumes lists EC volume VID with N shards.
ec_agent_shards() {
  curl -sf --max-time 5 -H 'Accept: application/json' "$(e2e_url /v1/volumes)" >"$P/ec-volumes.json" &&
    jq -e --argjson v "$1" --argjson n "$2" \
      '[.volumes[] | select(.volume_id == $v and .ec == true and (.ec_shards | length) == $n)]
       | length == 1' "$P/ec-volumes.json" >/dev/null
}

# ec_rebuilt_pieces: the agent's swrdma_ec_rebuilt_pieces_total (0 when absent).
ec_rebuilt_pieces() {
  curl -sf --max-time 5 "$(e2e_url /metrics)" |
    awk '$1 == "swrdma_ec_rebuilt_pieces_total" { n = $2 } END { printf "%d\n", n + 0 }'
}

# ec_read_token FID: a read token from the master for FID (empty without a read key).
ec_read_token() {
  e2e_t curl -s -D - -o /dev/null "http://$MASTER/dir/lookup?fileId=$1&read=yes" |
    sed -n 's/^[Aa]uthorization: *[Bb]earer *\([^[:space:]]*\).*/\1/p' | head -n1
}

# ec_both_404 FID TOKEN: the volume server and the agent's fallback both answer 404 for FID.
ec_both_404() {
  local auth=()
  [[ -n "$2" ]] && auth=(-H "Authorization: Bearer $2")
  EC_VS_CODE=$(e2e_http_code "${auth[@]}" --max-time 10 "http://$VOLUME/$1")
  EC_AG_CODE=$(e2e_http_code "${auth[@]}" --max-time 10 "$(e2e_url "/$1")")
  [[ "$EC_VS_CODE" == 404 && "$EC_AG_CODE" == 404 ]]
}

# ec_phase NAME jwt|open: the EC phase (see the top of this file) with a fresh agent on $D; stops
# it at the end. Adds to the EC_* totals.
ec_phase() {
  local name=$1 mode=$2 t0=$SECONDS picks vid n biggest vids=() list
  W=$P e2e_serve --log "$P/agent-ec.log" "$D"
  picks=$(e2e_t python3 "$PY" ec-pick --master "$MASTER" --corpus "$P/corpus.jsonl" --dir "$D") ||
    e2e_fail "[$name] weed_corpus.py ec-pick found no volumes to erasure-code (see above)"
  while read -r vid n biggest; do
    vids+=("$vid")
    e2e_log "[$name] EC: volume $vid ($n live corpus fids, largest needle $biggest B)"
  done <<<"$picks"
  list=$(
    IFS=,
    echo "${vids[*]}"
  )
  EC_VOLUMES=$((EC_VOLUMES + ${#vids[@]}))
  e2e_t python3 "$PY" ec-fill --master "$MASTER" --volume "$VOLUME" --vid "${vids[0]}" \
    --out "$P/corpus.jsonl" ||
    e2e_fail "[$name] writing the EC filler needles to volume ${vids[0]} failed (see above)"

  # Frozen first, so the copies are exactly what ec.encode encodes (the filer keeps writing).
  local marks=()
  for vid in "${vids[@]}"; do
    marks+=("volume.mark -node=$VOLUME -volumeId=$vid -readonly")
  done
  ec_shell "$name" "volume.mark -readonly" "${marks[@]}"
  mkdir -p "$P/ec-copy" "$P/ec-ours"
  for vid in "${vids[@]}"; do
    cp "$D/$vid.dat" "$D/$vid.idx" "$P/ec-copy/" ||
      e2e_fail "[$name] copying $D/$vid.dat and .idx aside failed"
  done
  local t1=$SECONDS
  ec_shell "$name" "ec.encode -volumeIds=$list -force" "ec.encode -volumeIds=$list -force"
  grep -q 'Successfully completed EC encoding' "$P/shell-ec.log" ||
    e2e_fail "[$name] weed shell ec.encode did not complete: $(tail -n 5 "$P/shell-ec.log")"
  e2e_wait_until 60 0.5 ec_on_disk "${vids[@]}" ||
    e2e_fail "[$name] 60 s after ec.encode $D lacks the .ecx/.ec00..ec13 of volumes $list or" \
      "still has a .dat: $(cd "$D" && ls)"
  e2e_wait_until 60 0.5 ec_agent_lists "$list" ||
    e2e_fail "[$name] the agent does not list volumes $list as EC with 14 shards 60 s after" \
      "ec.encode: $(jq -c '[.volumes[] | {volume_id, ec, ec_shards}]' "$P/ec-volumes.json")" \
      "(agent log $P/agent-ec.log)"
  e2e_log "[$name] EC: weed encoded volumes $list, the agent lists them as EC ($((SECONDS - t1)) s)"
  for vid in "${vids[@]}"; do
    e2e_t curl -s "http://$MASTER/dir/lookup?volumeId=$vid" >"$P/ec-lookup-$vid.json" || true
    e2e_log "[$name] EC: master /dir/lookup?volumeId=$vid: $(jq -c '{n: (.locations | length),
      urls: ([.locations[].url] | unique), error}' "$P/ec-lookup-$vid.json" 2>/dev/null ||
      head -c 200 "$P/ec-lookup-$vid.json")"
  done

  # a. Our encoder on the copies vs weed's files, byte for byte.
  local ts differ s f
  for vid in "${vids[@]}"; do
    ts=$(jq -r '.ecShardConfig.encodeTsNs // 0' "$D/$vid.vif" 2>/dev/null || echo 0)
    if ! e2e_t "$EC_ENCODE" --encode-ts-ns "$ts" "$P/ec-copy/$vid.dat" "$P/ec-copy/$vid.idx" \
      "$P/ec-ours" "$vid" >"$P/ec-encode-$vid.log" 2>&1; then
      ec_mismatch "$name" "swrdma-ec-encode of volume $vid failed: $(cat "$P/ec-encode-$vid.log")"
      EC_SHARDS_IDENTICAL=false
      continue
    fi
    differ=()
    for f in "${EC_SHARDS[@]/#/ec}" ecx; do
      cmp -s "$P/ec-ours/$vid.$f" "$D/$vid.$f" || differ+=(".$f")
    done
    if ((${#differ[@]})); then
      EC_SHARDS_IDENTICAL=false
      for f in "${differ[@]}"; do
        ec_mismatch "$name" "volume $vid: our $f differs from weed's:" \
          "$({ cmp "$P/ec-ours/$vid$f" "$D/$vid$f" 2>&1 || true; } | head -n1)" \
          "(sizes $(stat -c %s "$P/ec-ours/$vid$f") vs $(stat -c %s "$D/$vid$f");" \
          "ours in $P/ec-ours, the source in $P/ec-copy)"
      done
    else
      e2e_log "[$name] EC: volume $vid: our .ec00..ec13 and .ecx equal weed's byte for byte" \
        "(.dat $(stat -c %s "$P/ec-copy/$vid.dat") B, $(stat -c %s "$D/$vid.ec00") B a shard," \
        ".ecx $(stat -c %s "$D/$vid.ecx") B)"
    fi
    [[ ! -s "$D/$vid.ecj" ]] || e2e_log "[$name] EC: weed's $vid.ecj is not empty right after ec.encode"
    s=$(jq -cn --slurpfile o "$P/ec-ours/$vid.vif" --slurpfile w "$D/$vid.vif" \
      '[($o[0] | paths(scalars)) as $p | select(($o[0] | getpath($p)) != ($w[0] | getpath($p)))
        | {key: ($p | map(tostring) | join(".")), ours: ($o[0] | getpath($p)),
           weed: ($w[0] | getpath($p))}] +
       [($w[0] | paths(scalars)) as $p | select(($o[0] | getpath($p)) == null)
        | {key: ($p | map(tostring) | join(".")), weed: ($w[0] | getpath($p))}]' 2>&1) ||
      s="(not comparable: $s)"
    [[ "$s" == "[]" ]] || e2e_log "[$name] EC: volume $vid: .vif fields that differ (not counted): $s"
    [[ ! -e "$D/$vid.ecsum" ]] || e2e_log "[$name] EC: weed also wrote $vid.ecsum" \
      "($(stat -c %s "$D/$vid.ecsum") B; ours writes none)"
  done

  # b. Every corpus fid of those volumes, three ways, now read from the shards.
  local cmp_args=() summary
  [[ $mode == jwt ]] && cmp_args=(--jwt)
  summary=$(e2e_t timeout 600 python3 "$PY" compare --master "$MASTER" --volume "$VOLUME" \
    --agent "$AG" --cli "$CLI" --corpus "$P/corpus.jsonl" --report "$P/report-ec.txt" \
    --volumes "$list" "${cmp_args[@]}") || e2e_fail "[$name] the comparison of the EC volumes" \
    "did not finish (see above)"
  EC_FIDS=$((EC_FIDS + $(jq -r .fids <<<"$summary")))
  n=$(jq -r .mismatches <<<"$summary")
  if ((n)); then
    EC_MISMATCHES=$((EC_MISMATCHES + n))
    e2e_log "[$name] EC DIFFERENCE: $n fids of EC volumes $list read differently ($P/report-ec.txt)"
    sed 's/^/[ec]\t/' "$P/report-ec.txt" >>"$P/report.txt"
  fi

  # b2. A lost shard: the agent rebuilds from parity what .ec00 held.
  local lost="$D/${vids[0]}.ec00" rebuilt0 rebuilt1
  rebuilt0=$(ec_rebuilt_pieces)
  mv "$lost" "$P/" || e2e_fail "[$name] moving $lost aside failed"
  if ! e2e_wait_until 30 0.5 ec_agent_shards "${vids[0]}" 13; then
    mv "$P/$(basename "$lost")" "$lost"
    e2e_fail "[$name] 30 s after $lost was moved away the agent does not list 13 shards for" \
      "volume ${vids[0]}: $(jq -c '[.volumes[] | {volume_id, ec_shards}]' "$P/ec-volumes.json")"
  fi
  summary=$(e2e_t timeout 600 python3 "$PY" compare --master "$MASTER" --volume "$VOLUME" \
    --agent "$AG" --cli "$CLI" --corpus "$P/corpus.jsonl" --report "$P/report-ec-lost.txt" \
    --volumes "${vids[0]}" "${cmp_args[@]}") || {
    mv "$P/$(basename "$lost")" "$lost"
    e2e_fail "[$name] the comparison of EC volume ${vids[0]} without shard 0 did not finish"
  }
  mv "$P/$(basename "$lost")" "$lost" || e2e_fail "[$name] putting $lost back failed"
  rebuilt1=$(ec_rebuilt_pieces)
  EC_FIDS=$((EC_FIDS + $(jq -r .fids <<<"$summary")))
  n=$(jq -r .mismatches <<<"$summary")
  if ((n)); then
    EC_MISMATCHES=$((EC_MISMATCHES + n))
    e2e_log "[$name] EC DIFFERENCE: $n fids of EC volume ${vids[0]} read differently without" \
      "its shard 0 ($P/report-ec-lost.txt)"
    sed 's/^/[ec-lost]\t/' "$P/report-ec-lost.txt" >>"$P/report.txt"
  fi
  if ((rebuilt1 <= rebuilt0)); then
    ec_mismatch "$name" "volume ${vids[0]} without shard 0: the agent rebuilt nothing" \
      "(swrdma_ec_rebuilt_pieces_total $rebuilt0 -> $rebuilt1), so the reads did not test it"
  else
    e2e_log "[$name] EC: volume ${vids[0]} without shard 0: $(jq -r .fids <<<"$summary") fids" \
      "compared, $n differences, $((rebuilt1 - rebuilt0)) pieces rebuilt from parity by the agent"
  fi
  e2e_wait_until 30 0.5 ec_agent_shards "${vids[0]}" 14 ||
    e2e_fail "[$name] the agent does not list 14 shards for volume ${vids[0]} again 30 s after" \
      "$lost was put back"

  # c. A deletion weed journals in the .ecj: the agent must follow it.
  local fid token ecj0 code get_args=()
  fid=$(jq -rs --arg v "${vids[0]}," '[.[] | select((.fid // "") | startswith($v))] |
    group_by(.fid) | map(last) | map(select(.what | test("^p[0-9]+ (binary|text) [0-9]+ B$"))) |
    sort_by(.size) | last | .fid // empty' "$P/corpus.jsonl")
  [[ -n "$fid" ]] || e2e_fail "[$name] no live binary/text corpus fid in EC volume ${vids[0]}"
  token=""
  [[ $mode == jwt ]] && token=$(ec_read_token "$fid")
  [[ -n "$token" ]] && get_args=(--jwt "$token")
  ecj0=$(stat -c %s "$D/${vids[0]}.ecj")
  local auth=()
  [[ -n "$token" ]] && auth=(-H "Authorization: Bearer $token")
  # Only a fid the agent reads before the delete tells whether it follows the .ecj.
  code=$(e2e_http_code "${auth[@]}" --max-time 10 "$(e2e_url "/$fid")")
  [[ "$code" == 200 ]] || ec_mismatch "$name" "EC fid $fid: the agent's fallback answers $code" \
    "before it is deleted (the volume server 200), so the deletion check below proves nothing"
  code=$(e2e_http_code -X DELETE --max-time 30 "http://$VOLUME/$fid")
  [[ "$code" == 202 || "$code" == 200 ]] ||
    e2e_fail "[$name] DELETE http://$VOLUME/$fid (EC volume ${vids[0]}) answered $code, expected 202"
  if ! e2e_wait_until 30 0.5 ec_both_404 "$fid" "$token"; then
    ec_mismatch "$name" "deleted EC fid $fid: after 30 s the volume server answers $EC_VS_CODE and" \
      "the agent's fallback $EC_AG_CODE (both should be 404; .ecj $ecj0 -> $(stat -c %s \
      "$D/${vids[0]}.ecj") B; agent log $P/agent-ec.log)"
  else
    local rc=0
    e2e_client "$CLI" get --agent "$AG" "${get_args[@]}" -o "$P/ec-deleted.out" "$fid" \
      >/dev/null 2>"$P/ec-deleted.err" || rc=$?
    if ((rc == 0)); then
      ec_mismatch "$name" "deleted EC fid $fid: swrdma get still reads it" \
        "($(stat -c %s "$P/ec-deleted.out") B) where both HTTP servers answer 404"
    elif ((rc >= 124)) || ! grep -qiE 'deleted|not found' "$P/ec-deleted.err"; then
      ec_mismatch "$name" "deleted EC fid $fid: swrdma get failed (status $rc) but not as deleted" \
        "or not found: $(head -c 300 "$P/ec-deleted.err")"
    else
      e2e_log "[$name] EC: deleted $fid (.ecj $ecj0 -> $(stat -c %s "$D/${vids[0]}.ecj") B):" \
        "404 from both, swrdma get: $(head -n1 "$P/ec-deleted.err")"
    fi
  fi
  ec_spread "$name" "$mode" "${vids[@]}"
  e2e_sigterm_agent
  e2e_log "[$name] EC phase: ${#vids[@]} volumes, $EC_FIDS fids so far, $EC_MISMATCHES EC" \
    "differences so far, $((SECONDS - t0)) s"
}

# ec_shard_files DIR VID: how many shard files of VID are in DIR.
ec_shard_files() {
  find "$1" -maxdepth 1 -name "$2.ec[0-9][0-9]" | wc -l
}

# ec_ns CMD...: CMD inside the spread step's network namespace.
ec_ns() { ip netns exec "$NS_A" "$@"; }

# ec_agent_matches URL DIR VIDS...: the agent at URL (http://host:port) lists every VID as EC with
# exactly as many shards as DIR holds (it followed ec.balance's moves).
ec_agent_matches() {
  local url=$1 dir=$2 vid n
  shift 2
  ec_ns curl -sf --max-time 5 -H 'Accept: application/json' "$url/v1/volumes" \
    >"$P/ec-spread-volumes.json" || return 1
  for vid in "$@"; do
    n=$(ec_shard_files "$dir" "$vid")
    jq -e --argjson v "$vid" --argjson n "$n" \
      '[.volumes[] | select(.volume_id == $v and .ec == true and (.ec_shards | length) == $n)]
       | length == 1' "$P/ec-spread-volumes.json" >/dev/null || return 1
  done
}

# ec_spread_done D1 D2 VIDS...: each VID has shards on both servers and an .ecx on the second.
ec_spread_done() {
  local d1=$1 d2=$2 vid
  shift 2
  for vid in "$@"; do
    [[ -f "$d2/$vid.ecx" ]] || return 1
    (($(ec_shard_files "$d2" "$vid") > 0 && $(ec_shard_files "$d1" "$vid") > 0)) || return 1
  done
}

# ec_node_up URL: the master at EC_MASTER lists the volume server URL.
ec_node_up() { ec_ns curl -sf --max-time 5 "http://$EC_MASTER/dir/status" | grep -q "\"Url\":\"$1\""; }

# ec_spread NAME jwt|open VIDS...: step d above. weed refuses to copy shards from a volume server
# on a loopback address (an SSRF guard in VolumeEcShardsCopy), so this step runs a cluster of its
# own in a network namespace whose only outside link is a veth to a second, empty namespace
# (e2e_netns_pair), on a private address: a master, volume server 1 started on copies of the EC
# volumes' files (.ecx, .ecj, .vif and all shards), then volume server 2, ec.balance, and one
# agent per volume server.
ec_spread() {
  local name=$1 mode=$2 t0=$SECONDS
  shift 2
  local vids=("$@") list s1=$P/spread d1 d2 ip pid vid f rc=0
  list=$(
    IFS=,
    echo "$*"
  )
  if [[ -z "${NS_A:-}" ]]; then
    e2e_netns_pair 10.231.7.1 10.231.7.2  # sets NS_A (used here) and NS_B; removed at exit
  fi
  ip=10.231.7.1
  d1=$s1/volume1
  d2=$s1/volume2
  mkdir -p "$s1/master" "$d1" "$d2" "$s1/agent1" "$s1/agent2"
  for vid in "${vids[@]}"; do
    for f in "$D/$vid".ecx "$D/$vid".ecj "$D/$vid".vif "$D/$vid".ec[0-9][0-9]; do
      [[ -e "$f" ]] && cp "$f" "$d1/"
    done
  done
  EC_MASTER=$ip:9333
  local weed_ip=(-ip="$ip" -ip.bind="$ip")
  # Started from $P: the jwt pass's security.toml applies to them as to the first cluster.
  e2e_spawn pid 900 "$s1/master.log" "$s1/master.log" ip netns exec "$NS_A" "$WEED" master \
    "${weed_ip[@]}" -port=9333 -mdir="$s1/master" -volumeSizeLimitMB=64 -defaultReplication=000
  e2e_wait_until 60 0.3 ec_ns curl -sf -o /dev/null "http://$EC_MASTER/cluster/status" ||
    e2e_fail "[$name] the spread step's weed master did not answer within 60 s:" \
      "$(tail -n 5 "$s1/master.log")"
  e2e_spawn pid 900 "$s1/volume1.log" "$s1/volume1.log" ip netns exec "$NS_A" "$WEED" volume \
    "${weed_ip[@]}" -port=8080 -dir="$d1" -max=40 -mserver="$EC_MASTER" -preStopSeconds=0
  e2e_wait_until 60 0.5 ec_node_up "$ip:8080" ||
    e2e_fail "[$name] volume server 1 of the spread step did not join within 60 s:" \
      "$(tail -n 5 "$s1/volume1.log")"
  e2e_spawn pid 900 "$s1/volume2.log" "$s1/volume2.log" ip netns exec "$NS_A" "$WEED" volume \
    "${weed_ip[@]}" -port=8081 -dir="$d2" -max=40 -mserver="$EC_MASTER" -preStopSeconds=0
  e2e_wait_until 60 0.5 ec_node_up "$ip:8081" ||
    e2e_fail "[$name] volume server 2 of the spread step did not join within 60 s:" \
      "$(tail -n 5 "$s1/volume2.log")"
  # Volume server 1 reports its EC shards with its heartbeat: ec.balance plans from the master.
  { echo lock && echo "ec.balance -volumeIds=$list -apply" && echo unlock; } |
    e2e_t ip netns exec "$NS_A" "$WEED" shell -master="$EC_MASTER" >"$s1/shell.log" 2>&1 ||
    e2e_fail "[$name] weed shell ec.balance failed: $(tail -n 5 "$s1/shell.log")"
  grep -qE '^error' "$s1/shell.log" &&
    e2e_fail "[$name] weed shell ec.balance reported an error ($s1/shell.log):" \
      "$(grep -E '^error' "$s1/shell.log" | tail -n 3)"
  e2e_wait_until 60 0.5 ec_spread_done "$d1" "$d2" "${vids[@]}" ||
    e2e_fail "[$name] 60 s after ec.balance the shards of volumes $list are not on both servers:" \
      "$(cd "$d1" && ls | tr '\n' ' ') / $(cd "$d2" && ls | tr '\n' ' ') ($s1/shell.log)"
  local where=""
  for vid in "${vids[@]}"; do
    where+=" $vid: $(cd "$d1" && ls "$vid".ec[0-9][0-9] | sed 's/.*\.ec//' | tr '\n' ' ')|"
    where+=" $(cd "$d2" && ls "$vid".ec[0-9][0-9] | sed 's/.*\.ec//' | tr '\n' ' ');"
  done
  e2e_log "[$name] EC spread: ec.balance put the shards (server 1 | server 2):$where"

  # One agent per volume server, in the namespace; the first cluster's agent variables are put
  # back after.
  local saved_pid=$E2E_AGENT_PID saved_port=$E2E_AGENT_PORT saved_log=$E2E_AGENT_LOG
  local saved_host=$E2E_AGENT_HOST saved_ag=$AG ag1 ag2 agent1 agent2
  E2E_AGENT_PREFIX=(ip netns exec "$NS_A")
  E2E_CLIENT_PREFIX=(ip netns exec "$NS_A")
  W=$s1/agent1 e2e_serve --host "$ip" --log "$s1/agent1.log" "$d1"
  ag1=$AG agent1=$E2E_AGENT_PID
  W=$s1/agent2 e2e_serve --host "$ip" --log "$s1/agent2.log" "$d2"
  ag2=$AG agent2=$E2E_AGENT_PID
  E2E_AGENT_PREFIX=()
  E2E_CLIENT_PREFIX=()
  E2E_AGENT_PID=$saved_pid E2E_AGENT_PORT=$saved_port E2E_AGENT_LOG=$saved_log
  E2E_AGENT_HOST=$saved_host AG=$saved_ag
  e2e_wait_until 60 0.5 ec_agent_matches "http://$ag1" "$d1" "${vids[@]}" ||
    e2e_fail "[$name] agent 1 does not list the shards in $d1:" \
      "$(jq -c '[.volumes[] | select(.ec) | {volume_id, ec_shards}]' "$P/ec-spread-volumes.json")"
  e2e_wait_until 60 0.5 ec_agent_matches "http://$ag2" "$d2" "${vids[@]}" ||
    e2e_fail "[$name] agent 2 does not list the shards in $d2:" \
      "$(jq -c '[.volumes[] | select(.ec) | {volume_id, ec_shards}]' "$P/ec-spread-volumes.json")"
  printf '%s http://%s\n%s http://%s\n' "$ip:8080" "$ag1" "$ip:8081" "$ag2" >"$s1/agents.map"

  local jwt=() summary
  [[ $mode == jwt ]] && jwt=(--jwt)
  summary=$(e2e_t timeout 600 ip netns exec "$NS_A" python3 "$PY" ec-spread \
    --master "$EC_MASTER" --cli "$CLI" --agent-map "$s1/agents.map" --corpus "$P/corpus.jsonl" \
    --volumes "$list" --report "$P/report.txt" "${jwt[@]}") || rc=$?
  ((rc == 0)) || e2e_fail "[$name] weed_corpus.py ec-spread did not finish (status $rc)"
  local n fids assembled refused
  n=$(jq -r .mismatches <<<"$summary")
  fids=$(jq -r .fids <<<"$summary")
  assembled=$(jq -r .assembled <<<"$summary")
  refused=$(jq -r .refused_open <<<"$summary")
  EC_FIDS=$((EC_FIDS + fids))
  EC_MISMATCHES=$((EC_MISMATCHES + n))
  EC_SPREAD_FIDS=$((EC_SPREAD_FIDS + fids))
  EC_SPREAD_ASSEMBLED=$((EC_SPREAD_ASSEMBLED + assembled))
  ((fids > 0)) || ec_mismatch "$name" "EC spread: no live fid of volumes $list to read"
  if [[ $mode == jwt ]] && ((assembled == 0)); then
    ec_mismatch "$name" "EC spread: no needle was assembled from the pieces of both agents" \
      "($fids read), so the reads did not test it (shards:$where)"
  fi
  e2e_log "[$name] EC spread: $fids fids through swrdma get --master, $n differences," \
    "$assembled assembled from both agents' pieces, $refused refused without tokens" \
    "(needle across servers, header elsewhere), $((SECONDS - t0)) s"
  e2e_sigterm "$agent1" "the spread step's agent 1"
  e2e_sigterm "$agent2" "the spread step's agent 2"
  # The weed processes: by their namespace (pids of `ip netns exec` are the weed processes').
  for pid in $(ip netns pids "$NS_A"); do
    kill -TERM "$pid" 2>/dev/null
  done
  e2e_wait_until 15 0.2 eval '[[ -z "$(ip netns pids "$NS_A")" ]]' ||
    e2e_log "[$name] warning: weed processes of the spread step still run after 15 s"
}
