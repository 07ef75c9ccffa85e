#!/usr/bin/env bash
# Two server binaries (or the server and examples/baseline) loaded in turn on one route,
# ROUNDS times, so that drift on the machine hits both alike: requests/s and the server's
# user and system CPU time per request, from /proc/PID/stat. For a quick A/B of a change
# (build the old commit into another directory first); bench/run.sh stays the measurement.
#
#   bench/ab.sh BINARY_A BINARY_B [ROUNDS] [PATH] [FIXTURE]
#
# Defaults: 3 rounds, /new-call, 01-newcall-in.form. Each run: a fresh server on a loopback
# port (PATH, LISTEN_ADDR, SKIP_SIGNATURE_VERIFICATION=true and WORKERS=4 in its
# environment, stdout to a file), wrk -t2 -c32 for 2 s to warm up, then 8 s measured.
# Needs wrk and python3.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
if [[ $# -lt 2 ]]; then
  echo "usage: bench/ab.sh BINARY_A BINARY_B [ROUNDS] [PATH] [FIXTURE]" >&2
  exit 2
fi
binaries=("$1" "$2")
rounds="${3:-3}"
path="${4:-/new-call}"
fixture="${5:-01-newcall-in.form}"
for tool in wrk python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench/ab.sh: $tool is needed" >&2; exit 1; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sipgateio-ab.XXXXXX")"
SERVER_PID=""
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill -KILL "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export BENCH_PATH="$path" BENCH_BODY="$ROOT/tests/fixtures/$fixture"
ticks_per_second="$(getconf CLK_TCK)"

# Prints "user system" CPU ticks of process $1.
cpu_ticks() {
  python3 -c 'import sys; f = open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")", 1)[1].split(); print(f[11], f[12])' "$1"
}

run() {
  local binary="$1" label="$2"
  start_server "$binary" "$WORK" WORKERS=4
  local url="http://127.0.0.1:$SERVER_PORT/"
  wrk -t2 -c32 -d2s -s "$ROOT/bench/post.lua" "$url" >/dev/null
  local before after requests
  before="$(cpu_ticks "$SERVER_PID")"
  requests="$(wrk -t2 -c32 -d8s -s "$ROOT/bench/post.lua" "$url" | sed -n 's/^BENCH requests=\([0-9]*\).*/\1/p')"
  after="$(cpu_ticks "$SERVER_PID")"
  kill -KILL "$SERVER_PID"
  SERVER_PID=""
  python3 - "$requests" "$before" "$after" "$ticks_per_second" "$label" <<'EOF'
import sys

requests, before, after, hz, label = sys.argv[1:]
requests, hz = int(requests), int(hz)
(user0, system0), (user1, system1) = (map(int, t.split()) for t in (before, after))
micros = lambda ticks: ticks / hz * 1e6 / requests
print(f"{requests / 8:9,.0f}/s  user {micros(user1 - user0):5.1f} µs  system "
      f"{micros(system1 - system0):5.1f} µs per request  {label}")
EOF
}

for round in $(seq "$rounds"); do
  echo "round $round"
  run "${binaries[0]}" "A: ${binaries[0]}"
  run "${binaries[1]}" "B: ${binaries[1]}"
done
