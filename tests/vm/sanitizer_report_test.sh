#!/usr/bin/env bash
# tests/vm/sanitizer-report.sh, on the host, without a VM: a raw guest report (frames as
# "(module+0xoffset)", the guest has no symbolizer) must fail the run and come out with the
# function and source file of the project's frames; no report must pass.
#
# usage: sanitizer_report_test.sh BINARY   (any binary of the build tree with debug info)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:?usage: sanitizer_report_test.sh BINARY}
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v nm >/dev/null || fail "nm not found (binutils)"
[ -x "$BIN" ] || fail "$BIN not built"
main=$(nm "$BIN" | awk '$3 == "main" {print $1; exit}')
[ -n "$main" ] || fail "no symbol main in $BIN"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/6.1"

"$HERE/sanitizer-report.sh" "$dir" 2>"$dir/empty.err" || fail "no report, yet it failed: $(cat "$dir/empty.err")"

printf '%s\n' "==7==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x6020" \
  "    #0 0x55d000001000  ($BIN+0x$(printf '%x' $((0x$main + 4)))) (BuildId: 00)" \
  "    #1 0x7f0000000000  (/nonexistent/libgone.so+0x1234) (BuildId: 00)" >"$dir/6.1/sanitizer.7"
"$HERE/sanitizer-report.sh" "$dir" 2>"$dir/report.err" && fail "a report, yet it passed"
grep -q 'sanitizer report from the guest: .*/6.1/sanitizer.7' "$dir/report.err" ||
  fail "the report was not printed: $(cat "$dir/report.err")"
grep -qE '#0 .* in main .*\.cc:[0-9]+' "$dir/report.err" ||
  fail "frame #0 was not symbolized to main and a source line: $(grep '#0' "$dir/report.err")"
grep -qF "#1 0x7f0000000000  (/nonexistent/libgone.so+0x1234) (BuildId: 00)" "$dir/report.err" ||
  fail "a frame that cannot be resolved must stay as it was"
[ -s "$dir/6.1/sanitizer.7.symbolized" ] || fail "no sanitizer.7.symbolized next to the report"
echo "PASS: guest sanitizer reports fail the run and are symbolized on the host"
