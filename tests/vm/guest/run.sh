#!/bin/bash
# Runs inside the test guest (started by /sbin/swrdma-vm-init from the read-only source share):
# Soft-RoCE on a dummy interface, then the verbs tests, then the real agent over verbs
# (agent_pass.sh). Writes $OUT/vmtest.json, $OUT/agent.json and $OUT/meta.json (tests/vm/vm-test.sh
# merges and sums them) and exits non-zero when a test failed.
# $OUT is this kernel's results folder on the host; /mnt/out/env.sh names the binaries.
set -u
OUT=${OUT:?}
. /mnt/out/env.sh
# The boot vm-test.sh labels "odp" runs a kernel whose rxe pages on demand (Linux >= 6.14): the
# ODP tests must run there (not skip), and the agent pass checks ODP registrations.
ODP=0
[ "$(basename "$OUT")" = odp ] && ODP=1
export ODP
IP=192.0.2.1
t0=$(cut -d' ' -f1 /proc/uptime)
T() { echo "[vm] [$(cut -d' ' -f1 /proc/uptime)s] $*"; }
result_error() {  # message: a result that says what failed
  printf '{"kernel":"%s","ok":false,"error":"%s"}\n' "$(uname -r)" "$1" >"$OUT/meta.json"
  T "error: $1"
  exit 1
}

T "kernel $(uname -r), $(nproc) CPUs, $(free -m | awk '/^Mem:/{print $2}') MiB"
T "Soft-RoCE: rdma_rxe on dummy0 ($IP)"
for m in ib_uverbs rdma_ucm rdma_rxe dummy; do
  modprobe "$m" $([ "$m" = dummy ] && echo numdummies=0) || result_error "modprobe $m failed"
done
ip link add dummy0 type dummy && ip addr add $IP/24 dev dummy0 && ip link set dummy0 up ||
  result_error "setting up dummy0 failed"
rdma link add rxe0 type rxe netdev dummy0 || result_error "rdma link add rxe0 failed"
rdma link show | sed 's/^/[vm]   /'
ibv_devinfo -v -d rxe0 >"$OUT/ibv_devinfo.txt" 2>&1
grep -E 'state|active_mtu|link_layer' "$OUT/ibv_devinfo.txt" | sed 's/^/[vm]   /'
T "  on-demand paging: $(grep -A3 -E 'general_odp_caps' "$OUT/ibv_devinfo.txt" | tr -s ' \t\n' ' ' | cut -c1-150) $(grep -A6 -E 'rc_odp_caps' "$OUT/ibv_devinfo.txt" | tr -s ' \t\n' ' ' | cut -c1-120)"
ulimit -l unlimited  # registrations pin memory

# The sanitizer pass (vm-test.sh with SWRDMA_VM_SANITIZE=1: ASan + UBSan builds of the binaries).
# Every report is fatal and lands in $OUT/sanitizer.<pid>, raw (the guest has no symbolizer; the
# host symbolizes against the same binaries: tests/vm/sanitizer-report.sh).
if [ "${SANITIZE:-0}" = 1 ]; then
  export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:check_initialization_order=1:strict_string_checks=1:detect_stack_use_after_return=1:symbolize=0:log_path=$OUT/sanitizer"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:symbolize=0:log_path=$OUT/sanitizer"
  T "sanitizer pass: ASan + LSan + UBSan, every report fatal, reports in $OUT/sanitizer.<pid>"
fi

# The verbs unit tests, for real this time (the host has no RDMA device).
T "verbs_test (rdma/verbs against rxe0)"
SWRDMA_VERBS_TEST_DEVICE=rxe0 SWRDMA_VERBS_TEST_ADDR=$IP timeout 120 "$VERBS_TEST" \
  --gtest_output=xml:"$OUT/verbs_test.xml" >"$OUT/verbs_test.log" 2>&1
verbs_rc=$?
# The device tests skip without a device; here they must have run.
loopback=0
grep -q '^\[       OK \] VerbsLoopback.ExportReadAndRefusals' "$OUT/verbs_test.log" &&
  grep -q '^\[       OK \] VerbsLoopback.PushLandsOnlyInTheLandingPool' "$OUT/verbs_test.log" && loopback=1
# On the ODP kernel the on-demand test must have run and passed, not skipped.
if [ $ODP = 1 ] && ! grep -q '^\[       OK \] VerbsLoopback.OnDemandExportPinsNothingAndFollowsTheFile' "$OUT/verbs_test.log"; then
  T "error: the ODP kernel's verbs_test did not pass OnDemandExportPinsNothingAndFollowsTheFile (skipped or failed): $(grep -m1 -iE 'odp|on-demand' "$OUT/verbs_test.log")"
  loopback=0
fi
T "verbs_test rc=$verbs_rc, loopback test ran and passed: $loopback ($(grep -E '^\[  (PASSED|FAILED)  \]' "$OUT/verbs_test.log" | tr '\n' ' '))"
[ $verbs_rc -eq 0 ] || tail -n 30 "$OUT/verbs_test.log" | sed 's/^/[vm]   /'

T "swrdma-verbs-vmtest (exporter and reader processes, hostile peers)"
w0=$(cut -d' ' -f1 /proc/uptime)
timeout 300 "$VMTEST" --device rxe0 --address $IP --dir /var/tmp/swrdma-vmtest \
  --window-reads "${WINDOW_READS:-25000}" --json "$OUT/vmtest.json" 2> >(tee "$OUT/vmtest.log" | sed -u 's/^/[vm]   /') >/dev/null
vm_rc=$?
w1=$(cut -d' ' -f1 /proc/uptime)
T "swrdma-verbs-vmtest rc=$vm_rc"
[ -s "$OUT/vmtest.json" ] || T "error: swrdma-verbs-vmtest wrote no result (rc $vm_rc; log $OUT/vmtest.log)"

# The real agent and client over verbs, and a hostile peer against the agent ($OUT/agent.json).
agent_rc=0 a0=$w1 a1=$w1
if [ "${AGENT_PASS:-1}" = 1 ]; then
  T "agent pass: the real swrdma-agent over verbs, read by swrdma, attacked (tests/vm/guest/agent_pass.sh)"
  a0=$(cut -d' ' -f1 /proc/uptime)
  timeout 900 bash "$(dirname "$0")/agent_pass.sh"
  agent_rc=$?
  a1=$(cut -d' ' -f1 /proc/uptime)
  [ $agent_rc -eq 124 ] && T "error: the agent pass did not finish within 900 s"
  T "agent pass rc=$agent_rc"
fi

# The host merges this with vmtest.json and agent.json.
printf '{"kernel":"%s","guest_boot_to_script_s":%s,"vmtest_wall_s":%s,"verbs_test_rc":%d,"verbs_loopback_passed":%d,"vmtest_rc":%d,"agent_pass_rc":%d,"agent_pass_wall_s":%s}\n' \
  "$(uname -r)" "$t0" "$(awk "BEGIN{print $w1-$w0}")" $verbs_rc $loopback $vm_rc $agent_rc \
  "$(awk "BEGIN{print $a1-$a0}")" >"$OUT/meta.json"
dmesg | grep -iE 'rxe|rdma|WARNING|BUG' | tail -n 20 >"$OUT/dmesg-rdma.txt"
sanitizer_ok=1
for f in "$OUT"/sanitizer.*; do
  [ -e "$f" ] && sanitizer_ok=0 && T "error: sanitizer report $f (the host prints it symbolized)"
done
T "done"
[ $sanitizer_ok -eq 1 ] && [ $verbs_rc -eq 0 ] && [ $vm_rc -eq 0 ] && [ $loopback -eq 1 ] && [ $agent_rc -eq 0 ]
