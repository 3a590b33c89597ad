#!/usr/bin/env bash
# End-to-end: `swrdma-agent` and `swrdma` as separate processes on one host.
#
#   two_process_test.sh AGENT_BINARY CLIENT_BINARY
#
# Generates v3 and v2 (legacy CRC) volumes with `swrdma mkvolume` (1 byte to > 4 MiB, plain and
# gzip, some deleted, one in a collection), starts the agent on a kernel-chosen port, and reads
# every live fid with `swrdma get` over tcp and over shared memory (posix,sysv,cma). Each file
# must equal the HTTP fallback's bytes, the manifest's size, and an independent decode of the
# record straight from the .dat (header, DataSize, flags, data; gunzip'ed with gzip(1)). Then
# error paths (deleted, malformed, unknown volume, wrong cookie), a byte flipped on disk under
# the running agent (CRC error, HTTP 500, other fids unaffected), hostile HTTP input, and a clean
# SIGTERM. Needs curl, jq, gzip and coreutils.
set -euo pipefail
# shellcheck source=SCRIPTDIR/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"
e2e_self_deadline 420 "$@"
e2e_binaries "$@"
e2e_need curl jq gzip od dd

e2e_workdir
D=$W/volumes

# ---- volumes ------------------------------------------------------------------------------
# vid  version  sizes           gzip  deleted  extra
declare -A VOLFILE
mkvol() {  # mkvol VID FILE_PREFIX ARGS...
  local vid=$1 prefix=$2
  shift 2
  e2e_mkvolume "$D" "$vid" "$@"
  VOLFILE[$vid]="$D/$prefix$vid.dat"
  [[ -f "${VOLFILE[$vid]}" ]] || e2e_fail "mkvolume did not write ${VOLFILE[$vid]}"
}
mkvol 2 "" --needles 300 --min 1 --max 300K --gzip-fraction 0.3 --delete-fraction 0.1
mkvol 3 "" --needles 6 --min 4100K --max 6M --gzip-fraction 0.5 --delete-fraction 0.2 --seed 4
mkvol 4 "" --needles 8 --size 1 --gzip-fraction 0.5 --seed 4
mkvol 5 "" --version 2 --legacy-crc --needles 200 --min 1 --max 200K --gzip-fraction 0.3 \
  --delete-fraction 0.1 --seed 5
mkvol 6 "" --version 2 --legacy-crc --needles 6 --min 4100K --max 6M --gzip-fraction 0.5 --seed 6
mkvol 7 "" --version 2 --legacy-crc --needles 8 --size 1 --gzip-fraction 0.5 --seed 7
mkvol 8 "pics_" --collection pics --needles 20 --min 1 --max 10K --gzip-fraction 0.3 --seed 8
cat m*.tsv >all.tsv
e2e_fids live all.tsv >live.txt
e2e_fids deleted all.tsv >deleted.txt
awk -F'\t' '$3 == "live" && $4 == "gzip" { print $1 }' all.tsv >live_gzip.txt
# The generated mix must cover what this test claims to cover.
# shellcheck disable=SC2016  # awk conditions, expanded by awk
for want in '$2 == 1 && $4 == "gzip"' '$2 == 1 && $4 == "plain"' \
  '$2 > 4194304 && $4 == "gzip"' '$2 > 4194304 && $4 == "plain"'; do
  for vols in '^[234],' '^[567],'; do
    n=$(grep -E "$vols" all.tsv | awk -F'\t' "\$3 == \"live\" && $want" | wc -l)
    ((n > 0)) || e2e_fail "generated volumes lack a live needle with $want ($vols)"
  done
done
e2e_log "volumes: $(wc -l <live.txt) live fids ($(wc -l <live_gzip.txt) gzip), $(wc -l <deleted.txt) deleted"

# ---- agent --------------------------------------------------------------------------------
# UCX's default transports, so clients can pick tcp or shared memory.
e2e_serve "$D"

e2e_t "$CLI" info --agent "$AG" --json >info.json || e2e_fail "swrdma info --json failed"
for vid in "${!VOLFILE[@]}"; do
  want=$(e2e_fids live "m$vid.tsv" | wc -l)
  got=$(jq ".volumes[] | select(.volume_id == $vid) | .live_needles" info.json)
  [[ "$got" == "$want" ]] || e2e_fail "info: volume $vid has live_needles=$got, manifest $want"
done
e2e_t "$CLI" info --agent "$AG" >info.txt || e2e_fail "swrdma info failed"
grep -q 'volume 8 collection pics' info.txt || e2e_fail "info does not show the collection"

# ---- every live fid over tcp and shared memory, vs HTTP, manifest and the .dat ------------
# CMA reads the agent's memory with process_vm_readv: where Yama forbids that, only tcp is tested.
SHM_TLS=posix,sysv,cma
if ! e2e_cma_allowed; then
  e2e_log "Yama ptrace_scope >= 2: CMA cannot work, skipping the shared-memory reads"
  SHM_TLS=""
fi
e2e_get_all "$W/tcp" live.txt tcp --transports tcp
[[ -z "$SHM_TLS" ]] ||
  e2e_get_all "$W/shm" live.txt '(posix|sysv|cma)(,(posix|sysv|cma))*' --transports "$SHM_TLS"
e2e_http_fetch_all live.txt "$W/http"
e2e_compare_dirs "$W/tcp" "$W/http" live.txt
[[ -z "$SHM_TLS" ]] || e2e_compare_dirs "$W/shm" "$W/http" live.txt
e2e_check_sizes "$W/tcp" "$W/all.tsv"
e2e_log "every live fid read over tcp and shm equals the HTTP fallback and the manifest sizes"

# Independent decode: where the volume's .idx says the record is (the agent no longer tells
# where records live in its memory: checked exposure), read it from the .dat with od/dd; the
# status and size come from /v1/lookup.
jq -R . live.txt | jq -s '{protocol: 1, fids: .}' >lookup_req.json
e2e_t curl -sf -X POST -H 'Accept: application/json' -H 'Content-Type: application/json' \
  --data-binary @lookup_req.json "$(e2e_url /v1/lookup)" >lookup.json || e2e_fail "/v1/lookup failed"
jq -r '.results[] | "\(.fid) \(.status) \(.volume_id) \(.address) \(.size)"' lookup.json >loc.txt
(($(wc -l <loc.txt) == $(wc -l <live.txt))) || e2e_fail "/v1/lookup answered a different count"
jq -e '[.results[].address] | all(. == 0)' lookup.json >/dev/null ||
  e2e_fail "/v1/lookup told agent addresses in checked exposure"

be_uint() {  # be_uint FILE OFFSET N: big-endian unsigned integer of N bytes at OFFSET
  local hex
  hex=$(od -An -v -tx1 -j "$2" -N "$3" "$1" | tr -d ' \n')
  echo $((16#$hex))
}
# .idx entries: needle id u64, offset u32 (in 8-byte units), size u32, big-endian; the last entry
# of an id wins (SeaweedFS's default 4-byte offsets, as e2e_mkvolume writes).
declare -A IDXOFF
load_idx() {  # load_idx VID
  local vid=$1 line
  while read -r line; do
    line=${line// /}
    [[ ${#line} == 32 ]] || continue
    IDXOFF[$vid:$((16#${line:0:16}))]=$((16#${line:16:8} * 8))
  done < <(od -An -v -tx1 -w16 "${VOLFILE[$vid]%.dat}.idx")
}
for vid in "${!VOLFILE[@]}"; do load_idx "$vid"; done
file_offset_of() {  # file_offset_of FID: the record's offset in the .dat
  local vid=${1%%,*} key=${1#*,}
  local id=$((16#${key:0:${#key}-8}))
  [[ -n ${IDXOFF[$vid:$id]+x} ]] || e2e_fail "$1 is not in the .idx of volume $vid"
  echo "${IDXOFF[$vid:$id]}"
}
declare -A GZ
while IFS=$'\t' read -r fid _ _ enc; do GZ[$fid]=$enc; done <all.tsv
mkdir -p stored
decoded=0
while read -r fid status vid _ size; do
  [[ "$status" == ok ]] || e2e_fail "lookup of live $fid: $status"
  dat=${VOLFILE[$vid]}
  key=${fid#*,}
  cookie=$((16#${key: -8}))
  id=$((16#${key:0:${#key}-8}))
  off=$(file_offset_of "$fid")
  # Header: cookie u32, id u64, size u32; then DataSize u32 (all big-endian).
  hdr=$(od -An -v -tx1 -j "$off" -N 20 "$dat" | tr -d ' \n')
  ((16#${hdr:0:8} == cookie)) || e2e_fail "$fid: cookie in the .dat differs"
  ((16#${hdr:8:16} == id)) || e2e_fail "$fid: needle id in the .dat differs"
  ((16#${hdr:24:8} == size)) || e2e_fail "$fid: size in the .dat differs"
  dsize=$((16#${hdr:32:8}))
  flags=$(be_uint "$dat" $((off + 20 + dsize)) 1)
  gz=plain
  ((flags & 1)) && gz=gzip
  [[ "$gz" == "${GZ[$fid]}" ]] || e2e_fail "$fid: flags say $gz, the manifest ${GZ[$fid]}"
  dd if="$dat" of="stored/$fid" iflag=skip_bytes,count_bytes skip=$((off + 20)) \
    count="$dsize" status=none
  if [[ $gz == gzip ]]; then
    gzip -dc <"stored/$fid" | cmp -s - "tcp/$fid" || e2e_fail "$fid: gunzip of the .dat data differs"
  else
    cmp -s "stored/$fid" "tcp/$fid" || e2e_fail "$fid: the .dat data differs from swrdma get"
  fi
  decoded=$((decoded + 1))
done <loc.txt
e2e_log "independent decode of $decoded records from the .dat files agrees"

# --raw gives the stored gzip stream; so does HTTP with Accept-Encoding: gzip.
e2e_get_all "$W/raw" live_gzip.txt tcp --transports tcp --raw
while read -r fid; do
  cmp -s "raw/$fid" "stored/$fid" || e2e_fail "$fid: --raw differs from the stored gzip data"
done <live_gzip.txt
g=$(head -n1 live_gzip.txt)
e2e_t curl -sf -H 'Accept-Encoding: gzip' -o http_gz "$(e2e_url "/$g")"
cmp -s http_gz "stored/$g" || e2e_fail "$g: HTTP with Accept-Encoding: gzip is not the stored stream"
# Range over HTTP: the first 10 bytes of the (decoded) body.
big=$(awk -F'\t' '$3 == "live" && $2 > 100 { print $1; exit }' all.tsv)
code=$(e2e_t curl -s -o http_range -w '%{http_code}' -H 'Range: bytes=0-9' "$(e2e_url "/$big")")
[[ "$code" == 206 ]] || e2e_fail "Range request answered $code"
head -c 10 "tcp/$big" | cmp -s - http_range || e2e_fail "Range bytes differ"

# One fid to stdout and to -o FILE.
one=$(awk -F'\t' '$3 == "live" && $4 == "gzip" && $2 > 1000 { print $1; exit }' all.tsv)
e2e_t "$CLI" get --agent "$AG" --transports tcp "$one" >one.stdout || e2e_fail "get to stdout"
cmp -s one.stdout "http/$one" || e2e_fail "get to stdout differs"
e2e_t "$CLI" get --agent "$AG" --transports tcp "$one" -o one.file || e2e_fail "get -o FILE"
cmp -s one.file "http/$one" || e2e_fail "get -o FILE differs"
e2e_log "--raw, Accept-Encoding: gzip, Range, stdout and -o FILE agree"

# ---- errors ---------------------------------------------------------------------------------
expect_http() {  # expect_http CODE PATH [CURL ARGS...]
  local want=$1 path=$2 got
  shift 2
  got=$(e2e_http_code "$@" "$(e2e_url "$path")")
  [[ "$got" == "$want" ]] || e2e_fail "HTTP $path answered $got, expected $want"
}

for fid in $(grep '^2,' deleted.txt | head -n 2) $(grep '^5,' deleted.txt | head -n 1); do
  e2e_expect_get_fails "deleted $fid" "^swrdma: .*deleted.*" --transports tcp "$fid"
  grep -qF "$fid" err.txt || e2e_fail "deleted $fid: the error does not name the fid"
  expect_http 404 "/$fid"
done
for bad in '2,zz' '2,' ',01637037d6' 'abc' '2,01234567g9' 'x,01637037d6' \
  '2,0123456789abcdef0123456789' '4294967296,01637037d6' '2,01637037d6_extra'; do
  e2e_expect_get_fails "malformed '$bad'" "^swrdma: " --transports tcp "$bad"
  grep -qF -- "$bad" err.txt || e2e_fail "malformed '$bad': the error does not name the fid"
done
expect_http 400 "/2,zz"
expect_http 400 "/nofid"
e2e_expect_get_fails "unknown volume" "^swrdma: .*(unknown_volume|not exported).*99,01637037d6" \
  --transports tcp 99,01637037d6
expect_http 404 "/99,01637037d6"
live1=$(head -n1 live.txt)
wrong_cookie="${live1:0:${#live1}-1}$(printf '%x' $(((16#${live1: -1} + 1) % 16)))"
e2e_expect_get_fails "wrong cookie $wrong_cookie" "^swrdma: .*$wrong_cookie" --transports tcp \
  "$wrong_cookie"
expect_http 404 "/$wrong_cookie"
e2e_expect_get_fails "absent needle" "^swrdma: .*2,7fffff01020304" --transports tcp \
  2,7fffff01020304
expect_http 404 "/2,7fffff01020304"

# A batch with failures: the good fids are still written, each failure gets its line.
del1=$(head -n1 deleted.txt)
live2=$(sed -n 2p live.txt)
mkdir -p mixed
rc=0
e2e_t "$CLI" get --agent "$AG" --transports tcp -o mixed "$live1" "$del1" 2,zz "$live2" \
  2>mixed.err || rc=$?
((rc == 1)) || e2e_fail "mixed batch: exit status $rc, expected 1"
{ grep -qF "$del1" mixed.err && grep -qF "2,zz" mixed.err && grep -q '2 of 4 reads failed' mixed.err; } ||
  e2e_fail "mixed batch: unexpected errors: $(cat mixed.err)"
{ cmp -s "mixed/$live1" "http/$live1" && cmp -s "mixed/$live2" "http/$live2"; } ||
  e2e_fail "mixed batch: the live fids were not written correctly"
[[ ! -e "mixed/$del1" ]] || e2e_fail "mixed batch: wrote a file for the deleted fid"
e2e_log "deleted, malformed, unknown-volume, wrong-cookie and absent fids fail cleanly"

# ---- a byte flipped in the .dat under the running agent -------------------------------------
write_byte() {  # write_byte FILE OFFSET VALUE: overwrites one byte in place
  printf '%b' "\\x$(printf %02x "$3")" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
corrupt_and_check() {  # corrupt_and_check FID
  local fid=$1 vid off dsize pos old new others rc tls
  vid=${fid%%,*}
  off=$(file_offset_of "$fid")
  dsize=$(be_uint "${VOLFILE[$vid]}" $((off + 16)) 4)
  pos=$((off + 20 + dsize / 2))
  old=$(be_uint "${VOLFILE[$vid]}" "$pos" 1)
  new=$((old ^ 0xff))
  write_byte "${VOLFILE[$vid]}" "$pos" "$new"
  ((($(be_uint "${VOLFILE[$vid]}" "$pos" 1)) == new)) || e2e_fail "could not flip the byte"
  for tls in tcp $SHM_TLS; do
    rc=0
    e2e_t "$CLI" get --agent "$AG" --transports "$tls" "$fid" >/dev/null 2>crc.err || rc=$?
    ((rc != 0 && rc < 124)) || e2e_fail "corrupt $fid over $tls: exit status $rc"
    grep -q 'CRC' crc.err || e2e_fail "corrupt $fid over $tls: no CRC in: $(cat crc.err)"
    (($(wc -l <crc.err) == 1)) || e2e_fail "corrupt $fid over $tls: not one line: $(cat crc.err)"
  done
  # The other fids in the same batch still succeed.
  others=$(grep -v "^$fid\$" live.txt | shuf -n 5 --random-source=live.txt)
  rm -rf crcbatch
  mkdir crcbatch
  rc=0
  # shellcheck disable=SC2086
  e2e_t "$CLI" get --agent "$AG" --transports tcp -o crcbatch $others "$fid" 2>crc.err || rc=$?
  ((rc == 1)) || e2e_fail "batch with corrupt $fid: exit status $rc"
  grep -q "CRC" crc.err || e2e_fail "batch with corrupt $fid: no CRC in: $(cat crc.err)"
  for o in $others; do
    cmp -s "crcbatch/$o" "http/$o" || e2e_fail "batch with corrupt $fid: $o not read correctly"
  done
  [[ ! -e "crcbatch/$fid" ]] || e2e_fail "batch with corrupt $fid: wrote the corrupt needle"
  expect_http 500 "/$fid"
  # Restore the byte: the needle reads correctly again (nothing cached the bad state).
  write_byte "${VOLFILE[$vid]}" "$pos" "$old"
  ((($(be_uint "${VOLFILE[$vid]}" "$pos" 1)) == old)) || e2e_fail "could not restore the byte"
  e2e_t "$CLI" get --agent "$AG" --transports tcp "$fid" -o restored || e2e_fail "restored $fid"
  cmp -s restored "http/$fid" || e2e_fail "restored $fid reads different bytes"
  e2e_log "flipped byte in $fid: CRC error over tcp and shm, HTTP 500, other fids fine"
}
# Damaged record framing (header size, DataSize, stored CRC, absurd sizes) must be reported as
# corruption by the client and as 500 by the HTTP fallback, never crash either side.
corrupt_framing_and_check() {  # corrupt_framing_and_check FID
  local fid=$1 vid size off rel mask pos old rc
  vid=${fid%%,*}
  read -r _ _ _ _ size < <(grep "^$fid " loc.txt)
  off=$(file_offset_of "$fid")
  # <offset in the record> <xor mask>: size low byte, size high byte, DataSize low byte, DataSize
  # high byte, stored CRC.
  for c in "15 1" "12 128" "19 1" "16 64" "$((16 + size)) 1"; do
    read -r rel mask <<<"$c"
    pos=$((off + rel))
    old=$(be_uint "${VOLFILE[$vid]}" "$pos" 1)
    write_byte "${VOLFILE[$vid]}" "$pos" $((old ^ mask))
    rc=0
    e2e_t "$CLI" get --agent "$AG" --transports tcp "$fid" >/dev/null 2>frame.err || rc=$?
    ((rc != 0 && rc < 124)) || e2e_fail "$fid damaged at +$rel: exit status $rc"
    { grep -qF "$fid" frame.err && grep -Eq '^swrdma: .*(corruption|CRC)' frame.err; } ||
      e2e_fail "$fid damaged at +$rel: error does not say corruption/CRC: $(cat frame.err)"
    expect_http 500 "/$fid"
    write_byte "${VOLFILE[$vid]}" "$pos" "$old"
  done
  e2e_t "$CLI" get --agent "$AG" --transports tcp "$fid" -o restored || e2e_fail "restored $fid"
  cmp -s restored "http/$fid" || e2e_fail "restored $fid reads different bytes"
  e2e_log "damaged size/DataSize/CRC fields of $fid: reported as corruption, HTTP 500"
}
corrupt_framing_and_check "$(awk -F'\t' '/^2,/ && $3 == "live" && $2 > 1000 { print $1; exit }' all.tsv)"
corrupt_framing_and_check "$(awk -F'\t' '/^5,/ && $3 == "live" && $2 > 1000 { print $1; exit }' all.tsv)"
corrupt_and_check "$(awk -F'\t' '/^2,/ && $3 == "live" && $4 == "plain" && $2 > 1000 { print $1; exit }' all.tsv)"
corrupt_and_check "$(awk -F'\t' '/^5,/ && $3 == "live" && $4 == "gzip" && $2 > 1000 { print $1; exit }' all.tsv)"

# ---- hostile HTTP input -----------------------------------------------------------------------
post() {  # post CONTENT_TYPE BODY_FILE -> status code of POST /v1/lookup
  e2e_http_code -X POST -H "Content-Type: $1" --data-binary "@$2" "$(e2e_url /v1/lookup)"
}
printf '\xc1\xff\x00\x93' >garbage.bin
printf '{"protocol":1,"fids":[' >trunc.json
printf '{"protocol":1}' >nofids.json
printf '[1,2,3]' >array.json
printf '{"protocol":1,"fids":[1,2]}' >badtype.json
printf '\xdd\xff\xff\xff\xff' >hugearray.msgpack  # array32 claiming 4G elements
head -c 2000000 /dev/zero | tr '\0' 'a' >big.json
for c in "application/msgpack garbage.bin 400" "application/json garbage.bin 400" \
  "application/json trunc.json 400" "application/json nofids.json 400" \
  "application/json array.json 400" "application/json badtype.json 400" \
  "application/msgpack hugearray.msgpack 400" "application/json big.json 413"; do
  read -r ct body want <<<"$c"
  got=$(post "$ct" "$body")
  [[ "$got" == "$want" ]] || e2e_fail "POST /v1/lookup ($ct, $body) answered $got, expected $want"
done
expect_http 404 /v1/nope
expect_http 404 /v1/volumes/99
expect_http 400 /v1/volumes/abc
expect_http 405 /v1/lookup
expect_http 405 "/$live1" -X DELETE
expect_http 200 /healthz
e2e_t "$CLI" get --agent "$AG" --transports tcp "$live1" -o after || e2e_fail "get after bad input"
cmp -s after "http/$live1" || e2e_fail "get after bad input differs"
e2e_log "hostile HTTP input answered 400/404/405/413; the agent still serves"

# ---- shutdown ---------------------------------------------------------------------------------
e2e_sigterm_agent
e2e_log "PASS"
