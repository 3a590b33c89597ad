# shellcheck shell=bash
# The `weed mount` part of seaweedfs_test.sh (sourced, not run): a real FUSE mount of the filer
# with RDMA through `swrdma sidecar`, every file read through it and compared with the filer's
# bytes (tests/seaweedfs/mount_read.py), the sidecar's counters checked, then the agent stopped
# and the same reads made again through a fresh mount (the mount must fall back to HTTP).
#
# Which weed mounts: the pinned weed (scripts/build-weed.sh) when its `weed mount` has the
# -rdma.* flags. SeaweedFS removed them (weed/mount/rdma_client.go) between its 2026-08-22
# snapshot and the pinned 4.53 (2026-11-09), and the Go module proxy serves only the pinned
# version, so otherwise the mount is done by $SWRDMA_WEED_MOUNT, or by
# `scripts/build-weed.sh --mount` (built from a SeaweedFS source tree that still has them, see
# there). Without one, the mount pass still runs, over HTTP only, and says so loudly
# (mount_rdma_reads stays 0 and "mount_weed" in the summary says why).
# No /dev/fuse or fusermount3: the test fails, unless SWRDMA_SEAWEEDFS_NO_MOUNT=1 says to leave
# the mount out (then loudly, and "mount_weed" says "not run").
#
# Globals used: WEED, CLI, HERE, P, FILER, MASTER, E2E_AGENT_PORT; set: MOUNT_* totals.

MOUNT_FILES=0
MOUNT_MISMATCHES=0
MOUNT_RDMA_READS=0
MOUNT_BYTES=0
MOUNT_END_REFUSED=0
MOUNT_KNOWN_WRONG=0  # /mountknown files read wrong through the RDMA mount (its chunk placement)
MOUNT_WEED=""       # the weed binary that mounts ("" = no mount pass)
MOUNT_WEED_DESC=""  # for the summary
MOUNT_RDMA=0        # 1: MOUNT_WEED has -rdma.enabled / -rdma.sidecar

has_rdma_flags() { [[ $("$1" mount -h 2>&1) == *-rdma.sidecar* ]]; }

mount_setup() {
  if [[ "${SWRDMA_SEAWEEDFS_NO_MOUNT:-}" == 1 ]]; then
    e2e_log "!!! MOUNT PASS NOT RUN: SWRDMA_SEAWEEDFS_NO_MOUNT=1 (mount_files stays 0) !!!"
    MOUNT_WEED_DESC="not run (SWRDMA_SEAWEEDFS_NO_MOUNT=1)"
    return 0
  fi
  [[ -c /dev/fuse ]] || e2e_fail "/dev/fuse is missing: the weed mount pass cannot run (load the \
fuse module, or set SWRDMA_SEAWEEDFS_NO_MOUNT=1 to leave the mount pass out)"
  command -v fusermount3 >/dev/null || e2e_fail "fusermount3 is missing: install fuse3 \
(scripts/install-deps.sh), or set SWRDMA_SEAWEEDFS_NO_MOUNT=1 to leave the mount pass out"
  local cand rc=0
  if has_rdma_flags "$WEED"; then
    MOUNT_WEED=$WEED MOUNT_RDMA=1 MOUNT_WEED_DESC="pinned weed"
  elif [[ -n "${SWRDMA_WEED_MOUNT:-}" ]]; then
    [[ -x "$SWRDMA_WEED_MOUNT" ]] && has_rdma_flags "$SWRDMA_WEED_MOUNT" ||
      e2e_fail "SWRDMA_WEED_MOUNT=$SWRDMA_WEED_MOUNT is not a weed whose mount has -rdma.sidecar"
    MOUNT_WEED=$SWRDMA_WEED_MOUNT MOUNT_RDMA=1 MOUNT_WEED_DESC="SWRDMA_WEED_MOUNT"
  elif cand=$(timeout -k 30 3000 "$HERE/../../scripts/build-weed.sh" --mount) || rc=$?; ((rc == 0)); then
    has_rdma_flags "$cand" || e2e_fail "scripts/build-weed.sh --mount gave $cand without -rdma.sidecar"
    MOUNT_WEED=$cand MOUNT_RDMA=1
    MOUNT_WEED_DESC="$("$cand" version 2>/dev/null | awk 'NR == 1 { print $3 }') ($("$HERE/../../scripts/build-weed.sh" --mount-version))"
  else
    MOUNT_WEED=$WEED MOUNT_RDMA=0 MOUNT_WEED_DESC="pinned weed, HTTP only: no weed with -rdma.* here"
    e2e_log "!!! the pinned weed's mount has no -rdma.* flags and no RDMA-capable weed is at hand" \
      "(SWRDMA_WEED_MOUNT, scripts/build-weed.sh --mount: status $rc): the mount pass reads" \
      "over HTTP only and mount_rdma_reads stays 0 !!!"
  fi
  e2e_log "weed mount: $MOUNT_WEED ($MOUNT_WEED_DESC; RDMA flags: $MOUNT_RDMA)"
}

# mount_start DIR CACHEDIR SIDECAR_PORT: mounts the filer on DIR; sets MOUNT_PID.
mount_start() {
  local dir=$1 cache=$2 sp=$3 rdma=()
  mkdir -p "$dir" "$cache"
  ((MOUNT_RDMA)) && rdma=(-rdma.enabled -rdma.sidecar="127.0.0.1:$sp" -rdma.timeoutMs=5000)
  # Unmounted on every exit path: the cleanup (LIFO) detaches it before it stops the process.
  e2e_spawn MOUNT_PID 600 "$dir.log" "$dir.log" "$MOUNT_WEED" -logtostderr=true mount \
    -filer="$FILER" -dir="$dir" -cacheDir="$cache" -localSocket="$dir.sock" -allowOthers=false \
    -dirAutoCreate "${rdma[@]}"
  e2e_on_cleanup "mountpoint -q '$dir' && fusermount3 -uz '$dir'"
  mount_ready() {
    e2e_exited "$MOUNT_PID" && e2e_fail "weed mount exited: $(tail -n 5 "$dir.log")"
    mountpoint -q "$dir" && [[ -d "$dir/mountcorpus" ]]
  }
  e2e_wait_until 60 0.3 mount_ready || e2e_fail "weed mount of $FILER on $dir not ready within \
60 s: $(tail -n 5 "$dir.log")"
}

# mount_stop DIR: SIGTERM (weed unmounts), then a lazy unmount if it is still mounted.
mount_stop() {
  local dir=$1
  kill -TERM "$MOUNT_PID" 2>/dev/null || true
  e2e_wait_until 15 0.2 e2e_exited "$MOUNT_PID" || e2e_log "weed mount still runs 15 s after SIGTERM"
  if mountpoint -q "$dir"; then fusermount3 -uz "$dir" || true; fi
  e2e_stop_hard "$MOUNT_PID"
}

sidecar_stat() { e2e_t curl -sf "http://127.0.0.1:$SIDECAR_PORT/stats" | jq -r "$1"; }

# mount_read LABEL DIR [--known-wrong-ok]: mount_read.py read; adds to the totals; its JSON in
# MOUNT_OUT.
mount_read() {
  MOUNT_OUT=$(e2e_t timeout 240 python3 "$HERE/mount_read.py" read --filer "$FILER" --mnt "$2" \
    --report "$P/report.txt" --label "$1" "${@:3}") || e2e_fail "reading through the mount ($1) failed"
  MOUNT_FILES=$((MOUNT_FILES + $(jq -r .files <<<"$MOUNT_OUT")))
  MOUNT_MISMATCHES=$((MOUNT_MISMATCHES + $(jq -r .mismatches <<<"$MOUNT_OUT")))
  MOUNT_BYTES=$((MOUNT_BYTES + $(jq -r .bytes <<<"$MOUNT_OUT")))
}

mount_write_corpus() {
  [[ -n "$MOUNT_WEED" ]] || return 0
  e2e_t python3 "$HERE/mount_read.py" write --filer "$FILER" --dir /mountcorpus
}

# mount_pass NAME jwt|open: the mount with the agent, then (the agent stopped) without it. Stops
# the agent.
mount_pass() {
  local name=$1 mode=$2
  if [[ -z "$MOUNT_WEED" ]]; then
    e2e_sigterm_agent
    return 0
  fi
  local sc_args=(--http 127.0.0.1:0 --agent-port "$E2E_AGENT_PORT")
  # With a read key the agents want tokens: the sidecar gets them from the master.
  [[ $mode == jwt ]] && sc_args+=(--master "http://$MASTER")
  e2e_spawn SIDECAR_PID 600 "$P/sidecar.log" "$P/sidecar.log" "$CLI" sidecar "${sc_args[@]}"
  e2e_wait_log "swrdma sidecar" "$SIDECAR_PID" "$P/sidecar.log" 'listening on' 30
  SIDECAR_PORT=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\) .*/\1/p' "$P/sidecar.log" | head -n1)
  e2e_log "[$name] swrdma sidecar on 127.0.0.1:$SIDECAR_PORT; mounting with $MOUNT_WEED_DESC"

  local t0=$SECONDS r0 e0 p0 m0
  mount_start "$P/mnt" "$P/mcache1" "$SIDECAR_PORT"
  r0=$(sidecar_stat .reads) e0=$(sidecar_stat .errors) p0=$(sidecar_stat '.past_end + .at_end')
  m0=$(sidecar_stat .filer_manifests)
  local known=()
  ((MOUNT_RDMA)) && known=(--known-wrong-ok)
  mount_read "$name-mount" "$P/mnt" "${known[@]}"
  MOUNT_KNOWN_WRONG=$((MOUNT_KNOWN_WRONG + $(jq -r .known_wrong <<<"$MOUNT_OUT")))
  local reads=$(($(sidecar_stat .reads) - r0)) errors=$(($(sidecar_stat .errors) - e0))
  local past=$(($(sidecar_stat '.past_end + .at_end') - p0))
  local manifests=$(($(sidecar_stat .filer_manifests) - m0))
  MOUNT_RDMA_READS=$((MOUNT_RDMA_READS + reads))
  MOUNT_END_REFUSED=$((MOUNT_END_REFUSED + past))
  e2e_log "[$name] through the mount: $MOUNT_OUT; sidecar: $reads RDMA reads (200), $errors refused" \
    "($past ranges at or past a needle's end, $manifests filer manifest needles; the mount read" \
    "those over HTTP), $((SECONDS - t0)) s"
  grep -q 'RDMA acceleration enabled' "$P/mnt.log" && ((MOUNT_RDMA)) ||
    ((!MOUNT_RDMA)) || e2e_log "[$name] weed mount did not log 'RDMA acceleration enabled'"
  if ((MOUNT_RDMA && reads == 0)); then
    echo "[$name] mount: no read went over RDMA (sidecar reads 0, errors $errors)" >>"$P/report.txt"
    MOUNT_MISMATCHES=$((MOUNT_MISMATCHES + 1))
  fi
  mount_stop "$P/mnt"

  # The agent stopped: the sidecar cannot read; the mount must still return the filer's bytes.
  e2e_sigterm_agent
  t0=$SECONDS r0=$(sidecar_stat .reads) e0=$(sidecar_stat .errors)
  mount_start "$P/mnt2" "$P/mcache2" "$SIDECAR_PORT"
  mount_read "$name-mount-no-agent" "$P/mnt2"
  reads=$(($(sidecar_stat .reads) - r0)) errors=$(($(sidecar_stat .errors) - e0))
  e2e_log "[$name] through the mount, agent stopped: $MOUNT_OUT; sidecar: $reads reads, $errors" \
    "refused (the mount fell back to HTTP), $((SECONDS - t0)) s"
  if ((MOUNT_RDMA && (reads != 0 || errors == 0))); then
    echo "[$name] mount without the agent: sidecar reads $reads (want 0), errors $errors (want > 0)" \
      >>"$P/report.txt"
    MOUNT_MISMATCHES=$((MOUNT_MISMATCHES + 1))
  fi
  mount_stop "$P/mnt2"
  e2e_sigterm "$SIDECAR_PID" "swrdma sidecar"
}
