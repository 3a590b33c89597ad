#!/usr/bin/env bash
# Prints the sanitizer reports the guest left in the VM test's results (vm-test.sh with
# SWRDMA_VM_SANITIZE=1), symbolized on the host, and fails when there is any.
#
# usage: sanitizer-report.sh OUTROOT     (OUTROOT = BUILD/vm-test; reports: OUTROOT/<kernel>/sanitizer.<pid>)
#
# The guest has no llvm-symbolizer (it would need ~40 host libraries in the image), so its
# reports carry raw frames, "(module+0xoffset)". The build tree is shared into the guest at its
# host path, so the project's binaries are the same files here: each frame is resolved here
# with llvm-symbolizer (else addr2line) and written next to the raw report as
# sanitizer.<pid>.symbolized. Frames in the guest's system libraries resolve against the host's
# copies when those are the same Debian 12 files; otherwise they stay raw.
# Exit: 0 no report, 1 reports found (printed on stderr).
set -uo pipefail
OUTROOT=${1:?usage: sanitizer-report.sh OUTROOT}

symbolizer=""
for s in llvm-symbolizer-19 /usr/lib/llvm-19/bin/llvm-symbolizer llvm-symbolizer; do
  if command -v "$s" >/dev/null; then symbolizer=$(command -v "$s"); break; fi
done
resolve() {  # module offset -> "function file:line" (inlined frames joined by " <- "), or ""
  if [ -n "$symbolizer" ]; then
    "$symbolizer" --obj="$1" --demangle --inlines "$2" 2>/dev/null |
      awk 'NF{ if (n++ % 2 == 0) f = $0; else out = out (out ? " <- " : "") f " " $0 }
           END{ print out }'
  elif command -v addr2line >/dev/null; then
    addr2line -f -C -i -e "$1" "$2" 2>/dev/null | paste -sd' ' | sed 's/ ?? ??:0//g'
  fi
}
symbolize() {  # raw report -> the same lines, each frame with its function and source line
  local line mod off where
  while IFS= read -r line; do
    if [[ $line =~ \(([^()+ ]+)\+(0x[0-9a-fA-F]+)\) ]]; then
      mod=${BASH_REMATCH[1]} off=${BASH_REMATCH[2]}
      where=""
      [ -r "$mod" ] && where=$(resolve "$mod" "$off")
      where=${where// ??:0:0/}  # a system library without debug info: its symbol, no line
      if [ -n "$where" ] && [[ $where != "??"* ]]; then
        printf '%s in %s\n' "$line" "$where"
        continue
      fi
    fi
    printf '%s\n' "$line"
  done
}

found=0
for f in "$OUTROOT"/*/sanitizer.*; do
  [ -e "$f" ] || continue
  case "$f" in *.symbolized) continue ;; esac
  found=$((found + 1))
  symbolize <"$f" >"$f.symbolized"
  {
    echo "==== sanitizer report from the guest: $f (symbolized: $f.symbolized) ===="
    cat "$f.symbolized"
  } >&2
done
if [ "$found" -gt 0 ]; then
  echo "error: $found sanitizer report(s) from the guest (above; symbolizer: ${symbolizer:-addr2line})." \
    "Fix the bug they show; rerun with: SWRDMA_VM_SANITIZE=1 SWRDMA_VM_KERNELS=6.1 tests/vm/vm-test.sh BUILD_DIR" >&2
  exit 1
fi
exit 0
