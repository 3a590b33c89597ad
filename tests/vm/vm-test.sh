#!/usr/bin/env bash
# The verbs data path on a real kernel RDMA stack: boots a Debian guest under qemu (TCG) once per
# kernel (6.1 and 6.12: they pin file mappings differently; "odp": a newer kernel from
# trixie-backports whose rxe pages on demand, for the ODP tests), sets up Soft-RoCE (rdma_rxe) on a
# dummy interface inside it, runs the verbs tests there, then the real agent over verbs read by
# the real client and attacked by a hostile verbs peer (guest/agent_pass.sh), collects the
# results and prints one JSON object as its last line.
#
# usage: vm-test.sh BUILD_DIR
#   BUILD_DIR must hold tests/verbs_test, tests/vm/swrdma-verbs-vmtest and, for the agent pass,
#   agent/swrdma-agent, client/swrdma and tests/vm/swrdma-verbs-attack (make vm-test builds
#   them). The guest image is built once and cached (build-image.sh). The source and build
#   trees are shared into the guest read-only (9p) at their own paths, and so are the real
#   SeaweedFS fixtures (../shared/fixtures next to the source tree) when they exist; results
#   come back in BUILD_DIR/vm-test/<kernel>/.
#   The last line's reads, wrong_bytes and crc_failures count both passes (swrdma-verbs-vmtest's
#   and the agent pass's; agent_* fields give the agent pass's alone); each hostile_* and
#   out_of_bounds_refused / old_generation_refused holds only if it held against both exporters.
# env: SWRDMA_VM_KERNELS   kernels to boot (default "6.1 6.12 odp"; odp: the image's ODP
#                          kernel, build-image.sh); 6.1 and odp leave out some steps of the
#                          agent pass (guest/agent_pass.sh says which and why)
#      SWRDMA_VM_FULL      1: every step of the agent pass on every boot
#      SWRDMA_VM_TIMEOUT   seconds one boot may take, tests included (default 900)
#      SWRDMA_VM_WINDOW_READS  4 KiB READs of the CPU comparison per kernel (default 25000: under
#                          TCG 100000 take about a minute per kernel)
#      SWRDMA_VM_CACHE     image cache (default /var/cache/swrdma/vm)
#      SWRDMA_VM_IMAGE     use this image directory as it is (debugging; no build, no hash check)
#      SWRDMA_VM_AGENT     0: leave out the agent pass (default 1)
#      SWRDMA_VM_AGENT_TRANSPORTS  the agent's --transports in the agent pass (default empty:
#                          the agent's own, which keeps its UCX to shared memory where an RDMA
#                          device exists; e.g. verbs,posix,sysv,cma names them)
#      SWRDMA_VM_SANITIZE  1: sanitizer pass (scripts/sanitize.sh): BUILD_DIR is an ASan + UBSan
#                          tree (build-fuzz; the default when the binaries are ASan builds, as
#                          in make asan's build-asan; 0 forces the full run), one kernel (6.1 unless SWRDMA_VM_KERNELS), 2000
#                          window reads unless SWRDMA_VM_WINDOW_READS; every report is fatal and
#                          printed symbolized (tests/vm/sanitizer-report.sh)
# Exit: 0 all passed, 1 a test failed or the VM did not finish, 77 cannot run here (no qemu and
# not root to install it).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
BUILD=$(cd "${1:?usage: vm-test.sh BUILD_DIR}" && pwd)
KERNELS=${SWRDMA_VM_KERNELS:-6.1 6.12 odp}
TIMEOUT=${SWRDMA_VM_TIMEOUT:-900}
T0=$SECONDS
say() { printf '[vm-test +%4ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() { printf '[vm-test +%4ds] error: %s\n' "$((SECONDS - T0))" "$*" >&2; exit "${2:-1}"; }

# --- host tools ------------------------------------------------------------------------------
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v debootstrap >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    "$SRC/scripts/install-vm-deps.sh" || die "installing the VM tools failed (scripts/install-vm-deps.sh)"
  else
    echo "SKIP: qemu-system-x86 / debootstrap missing and not root; run scripts/install-vm-deps.sh" >&2
    exit 77
  fi
fi
[ "$(id -u)" -eq 0 ] || { echo "SKIP: the VM test needs root (debootstrap, 9p passthrough)" >&2; exit 77; }
command -v jq >/dev/null || die "jq not found (scripts/install-deps.sh installs it)"

# --- what runs in the guest, and the libraries it needs --------------------------------------
VMTEST=$BUILD/tests/vm/swrdma-verbs-vmtest
VERBS_TEST=$BUILD/tests/verbs_test
for b in "$VMTEST" "$VERBS_TEST"; do
  [ -x "$b" ] || die "$b not built; run: cmake --build $BUILD --target swrdma-verbs-vmtest verbs_test"
done
# The agent pass: the real agent and client, and the hostile peer turned on the agent.
AGENT_PASS=${SWRDMA_VM_AGENT:-1}
AGENT=$BUILD/agent/swrdma-agent
CLI=$BUILD/client/swrdma
ATTACK=$BUILD/tests/vm/swrdma-verbs-attack
if [ "$AGENT_PASS" = 1 ]; then
  for b in "$AGENT" "$CLI" "$ATTACK"; do
    [ -x "$b" ] || die "$b not built; run: cmake --build $BUILD --target swrdma-agent swrdma swrdma-verbs-attack (or SWRDMA_VM_AGENT=0 leaves the agent pass out)"
  done
fi
# The real SeaweedFS volume files, read-only, when this checkout has them beside it.
FIXTURES=$(cd "$SRC/../shared/fixtures" 2>/dev/null && pwd)
is_asan() { nm "$1" 2>/dev/null | grep ' __asan_init$' >/dev/null; }  # clang: T; g++: U (no grep -q: pipefail + SIGPIPE)
# An ASan tree (make sanitize's build-fuzz, or make asan's build-asan) always takes the sanitizer
# pass: its reports must be collected and fail the run, and the full read windows would take
# several times longer under ASan and TCG.
SANITIZE=${SWRDMA_VM_SANITIZE:-}
if [ -z "$SANITIZE" ]; then
  SANITIZE=0
  is_asan "$VMTEST" && { SANITIZE=1; say "$VMTEST is an AddressSanitizer build: sanitizer pass"; }
fi
if [ "$SANITIZE" = 1 ]; then
  # Kernel 6.1 (Debian 12's own): ChooseExportMapping's read-only registration fails there and
  # the writable never-written fallback registers, so both paths run under ASan; 6.12 takes
  # only the first. It also boots and runs in about half the time of 6.12 under TCG.
  KERNELS=${SWRDMA_VM_KERNELS:-6.1}
  for b in "$VMTEST" "$VERBS_TEST"; do
    is_asan "$b" ||
      die "SWRDMA_VM_SANITIZE=1 but $b is not an AddressSanitizer build (use the tree scripts/sanitize.sh builds, build-fuzz)"
  done
  say "sanitizer pass (ASan + LSan + UBSan) on kernel(s) $KERNELS"
fi
# --- image -----------------------------------------------------------------------------------
say "guest image (built once, cached; a fresh build takes 5-10 min)"
IMG_T0=$SECONDS
if [ -n "${SWRDMA_VM_IMAGE:-}" ]; then
  IMG=$SWRDMA_VM_IMAGE  # debugging: an image directory built earlier, used as it is
else
  IMG=$("$HERE/build-image.sh" | tail -n1) || die "building the guest image failed (see above)"
fi
IMAGE_S=$((SECONDS - IMG_T0))
[ -f "$IMG/rootfs.img" ] || die "no rootfs.img in $IMG"
say "image $IMG ready after ${IMAGE_S}s"
# Every shared library the guest binaries (and the agent, which later runs there) load must come
# from a package installed in the image: a missing one would only show up inside the VM.
installed=$(debugfs -R "cat /var/lib/dpkg/status" "$IMG/rootfs.img" 2>/dev/null | awk '/^Package:/{print $2}')
[ -n "$installed" ] || die "cannot read the package list of $IMG/rootfs.img (debugfs)"
libs=$(for b in "$VMTEST" "$VERBS_TEST" "$AGENT" "$CLI" "$ATTACK"; do
         [ -x "$b" ] && ldd "$b" | awk '$3 ~ /^\// {print $3}'
       done | sort -u)
# One dpkg -S for all of them (by resolved path; merged /usr: also by the path ldd printed).
owners=$(for lib in $libs; do readlink -f "$lib"; echo "$lib"; done | sort -u |
         xargs -r dpkg -S 2>/dev/null | cut -d: -f1 | tr ',' '\n' | sed 's/ //g' | sort -u)
need=""
for pkg in $owners; do
  case "$pkg" in libc6|libgcc-s1|libstdc++6) continue ;; esac
  grep -qx "$pkg" <<<"$installed" || need="$need $pkg"
done
need=$(echo "$need" | tr ' ' '\n' | sort -u | tr '\n' ' ')
[ -z "${need// /}" ] || die "the guest lacks packages the binaries need: $need; add them to tests/vm/guest-packages.txt"


# --- one boot per kernel ---------------------------------------------------------------------
OUTROOT=$BUILD/vm-test
rm -rf "$OUTROOT"
mkdir -p "$OUTROOT"
# What the guest script runs (it sources this file from the out share).
cat >"$OUTROOT/env.sh" <<EOF
VMTEST=$VMTEST
VERBS_TEST=$VERBS_TEST
WINDOW_READS=${SWRDMA_VM_WINDOW_READS:-25000}
AGENT_PASS=$AGENT_PASS
AGENT=$AGENT
CLI=$CLI
ATTACK=$ATTACK
FIXTURES_TAG=${FIXTURES:+fixtures}
AGENT_TRANSPORTS=${SWRDMA_VM_AGENT_TRANSPORTS-}
EOF
[ "${SWRDMA_VM_FULL:-0}" = 1 ] && echo FULL=1 >>"$OUTROOT/env.sh"
[ "$SANITIZE" = 1 ] && printf 'SANITIZE=1\nWINDOW_READS=%s\n' "${SWRDMA_VM_WINDOW_READS:-2000}" >>"$OUTROOT/env.sh"
boot() {  # kernel-series  -> 0 when the guest finished and its script passed
  local series=$1 k i
  if [ "$series" = odp ]; then  # the kernel build-image.sh chose for on-demand paging
    k=vmlinuz-$(cat "$IMG/boot/odp-kernel" 2>/dev/null)
    [ -f "$IMG/boot/$k" ] || k=""
  else
    k=$(cd "$IMG/boot" && ls "vmlinuz-$series".* 2>/dev/null | sort -V | tail -n1)
  fi
  [ -n "$k" ] || { say "error: no kernel $series in the image ($(ls "$IMG/boot" | tr '\n' ' '))"; return 1; }
  local kver=${k#vmlinuz-} out=$OUTROOT/$series
  i=$IMG/boot/initrd.img-$kver
  mkdir -p "$out"
  local console=$OUTROOT/console-$series.log
  say "booting kernel $kver under TCG (timeout ${TIMEOUT}s; console $console)"
  local b0=$SECONDS
  local virtfs=(-virtfs "local,path=$OUTROOT,mount_tag=out,security_model=none,id=out"
                -virtfs "local,path=$SRC,mount_tag=src,security_model=none,readonly=on,id=src")
  local cmd="console=ttyS0 root=/dev/vda rw rootfstype=ext4 init=/sbin/swrdma-vm-init panic=-1"
  cmd="$cmd loglevel=4 swrdma.src=$SRC swrdma.build=$BUILD swrdma.label=$series"
  cmd="$cmd swrdma.script=$SRC/tests/vm/guest/run.sh"
  case "$BUILD/" in
    "$SRC"/*) ;;
    *) virtfs+=(-virtfs "local,path=$BUILD,mount_tag=build,security_model=none,readonly=on,id=build") ;;
  esac
  # Mounted by the agent pass itself (guest/agent_pass.sh), not by guest-init.
  [ -n "$FIXTURES" ] &&
    virtfs+=(-virtfs "local,path=$FIXTURES,mount_tag=fixtures,security_model=none,readonly=on,id=fixtures")
  local attempt rc
  for attempt in 1 2; do
    # snapshot=on: the cached image is never written; each boot starts from the same tree.
    timeout --kill-after=10 "$TIMEOUT" qemu-system-x86_64 \
      -accel tcg,thread=multi -cpu max -M q35 -smp 2 -m 2048 -nic none \
      -kernel "$IMG/boot/$k" -initrd "$i" -append "$cmd" \
      -drive "file=$IMG/rootfs.img,format=raw,if=virtio,cache=unsafe,snapshot=on" \
      "${virtfs[@]}" -display none -monitor none -serial stdio -no-reboot </dev/null 2>&1 |
      while IFS= read -r line; do
        printf '%s\n' "$line" >>"$console"
        case "$line" in "[vm]"*) printf '[vm-test +%4ds] %-4s %s\n' "$((SECONDS - T0))" "$series" "${line%$'\r'}" ;; esac
      done
    rc=${PIPESTATUS[0]}
    # A guest kernel that panics in early boot, before our script printed anything (seen once
    # on this host: "Fatal exception in interrupt" at 2.8 s on two kernels in a row, under
    # TCG's multi-threaded mode) is an emulator flake, not a test result: one more boot.
    if [ $attempt = 1 ] && [ ! -f "$out/rc" ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] &&
      grep -aq 'Kernel panic' "$console" && ! grep -aq '^\[vm\]' "$console"; then
      say "WARNING: kernel $series panicked while booting, before the test script ran (console kept as $console.panic: $(grep -a -m1 'Kernel panic' "$console" | tr -d '\r')); booting it once more"
      mv "$console" "$console.panic"
      continue
    fi
    break
  done
  local wall=$((SECONDS - b0))
  echo "$wall" >"$out/wall_s"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    say "error: kernel $series: the guest did not power off within ${TIMEOUT}s (raise SWRDMA_VM_TIMEOUT under a slow host); last console lines:"
    tail -n 15 "$console" | sed 's/^/    /'
    echo '"timeout"' >"$out/failure"
    return 1
  fi
  if [ ! -f "$out/rc" ]; then
    say "error: kernel $series: qemu exited ($rc) before the guest script finished; last console lines:"
    tail -n 15 "$console" | sed 's/^/    /'
    return 1
  fi
  say "kernel $series: guest finished in ${wall}s, guest script rc $(cat "$out/rc")"
  [ "$(cat "$out/rc")" = 0 ]
}
fail=0
# One boot after another: run at once on this 2-core host, three boots took longer in all (each
# guest's CPU-bound steps ran 2.4 times slower; measured 2026-12-07).
for series in $KERNELS; do boot "$series" || fail=1; done
[ "$SANITIZE" = 1 ] && { "$HERE/sanitizer-report.sh" "$OUTROOT" || fail=1; }

# --- the result: per kernel and summed --------------------------------------------------------
per_kernel='{}'
for series in $KERNELS; do
  d=$OUTROOT/$series
  # The agent pass's result: {} when it was left out, a failure when it should be there and is not.
  agent='{}'
  if [ "$AGENT_PASS" = 1 ]; then
    agent='{"agent_ok":false,"agent_error":"no agent.json from the guest"}'
    [ -s "$d/agent.json" ] && jq -e . "$d/agent.json" >/dev/null 2>&1 && agent=$(jq -c . "$d/agent.json")
  fi
  if [ -s "$d/vmtest.json" ] && [ -s "$d/meta.json" ] && jq -e . "$d/vmtest.json" "$d/meta.json" >/dev/null 2>&1; then
    obj=$(jq -s --argjson wall "$(cat "$d/wall_s" 2>/dev/null || echo null)" --argjson agent "$agent" \
      --argjson agent_pass "$([ "$AGENT_PASS" = 1 ] && echo true || echo false)" '
      .[0] + .[1] + $agent + {vm_wall_s: $wall,
        ok: (.[0].ok == true and .[1].verbs_test_rc == 0 and .[1].vmtest_rc == 0
             and .[1].verbs_loopback_passed == 1
             and (($agent_pass | not) or ($agent.agent_ok == true and .[1].agent_pass_rc == 0)))}' \
      "$d/vmtest.json" "$d/meta.json")
  elif [ -s "$d/meta.json" ] && jq -e . "$d/meta.json" >/dev/null 2>&1; then
    obj=$(jq --argjson agent "$agent" '. + $agent + {ok: false}' "$d/meta.json")
  else
    obj='{"ok":false,"error":"no result from the guest"}'
  fi
  per_kernel=$(jq --arg k "$series" --argjson o "$obj" '. + {($k): $o}' <<<"$per_kernel")
done
# Sums over kernels; a field no kernel measured stays null, a boolean holds only if it held on
# every kernel.
summary=$(jq -c --argjson image_s "$IMAGE_S" --argjson wall_s "$((SECONDS - T0))" \
  --argjson agent_pass "$([ "$AGENT_PASS" = 1 ] && echo true || echo false)" '
  def total(f): [.[] | f | select(. != null)] | if length == 0 then null else add end;
  # Both passes: a sum, or a conjunction (of vmtest alone when the agent pass was left out).
  def sum2(f; g): [total(f), total(g)] | map(select(. != null)) | if length == 0 then null else add end;
  # false when one is false, else null when one is unknown (a pass that did not get there);
  # a boot that left out steps of the agent pass on purpose (agent_left_out, guest/agent_pass.sh)
  # did not measure their fields: those are not unknown.
  def both(f; g): [.[] | f, (if (.agent_left_out // []) != [] then (g | select(. != null)) else g end
                             | select($agent_pass))] |
    if any(. == false) then false elif length == 0 or any(. == null) then null else true end;
  {reads: sum2(.reads; .agent_reads_all), wrong_bytes: sum2(.wrong_bytes; .agent_wrong_bytes),
   crc_failures: sum2(.crc_failures; .agent_crc_failures),
   agent_cpu_ms: total(.agent_cpu_ms), client_cpu_ms: total(.client_cpu_ms),
   hostile_write_refused: both(.hostile_write_refused; .agent_hostile_write_refused),
   hostile_atomic_refused: both(.hostile_atomic_refused; .agent_hostile_atomic_refused),
   out_of_bounds_refused: both(.out_of_bounds_refused; .agent_hostile_out_of_bounds_refused),
   old_generation_refused: both(.old_generation_refused; .agent_old_generation_refused),
   forged_rkey_refused: both(.forged_rkey_refused; .agent_hostile_forged_rkey_refused),
   transport: "verbs",
   agent_reads: total(.agent_reads), agent_wrong_bytes: total(.agent_wrong_bytes),
   agent_transport: ([.[] | .agent_transport | select(. != null)] | unique | join(",") | if . == "" then null else . end),
   agent_restart_reads: total(.agent_restart_reads),
   agent_push_pushed: total(.agent_push_pushed),
   push_ok: ([.[] | .agent_push_ok | select(. != null)] | if length == 0 then null else all end),
   agent_4k_reads: total(.agent_cpu_reads), agent_4k_agent_cpu_ms: total(.agent_cpu_agent_ms),
   agent_4k_client_cpu_ms: total(.agent_cpu_client_ms),
   agent_pass_agent_cpu_ms: total(.agent_pass_agent_cpu_ms),
   agent_pass_client_cpu_ms: total(.agent_pass_client_cpu_ms),
   ok: ([.[] | .ok == true] | all),
   image_build_s: $image_s, wall_s: $wall_s,
   kernels: .}' <<<"$per_kernel")
[ "$(jq -r .ok <<<"$summary")" = true ] || fail=1
say "results in $OUTROOT ($([ $fail = 0 ] && echo PASS || echo FAIL))"
echo "$summary"
exit $fail
