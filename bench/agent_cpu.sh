# Sourced by bench/compare.sh and bench/read_matrix.sh: the agent's CPU time.

# utime + stime of the agent in clock ticks: its supervisor and the data-plane child (the child
# serves everything; reading only the supervisor's /proc/PID/stat misses it).
cpu_ticks() {
  local p total=0
  for p in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
