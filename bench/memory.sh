#!/usr/bin/env bash
# Where the server's resident memory goes under load: malloc arenas, the binary, libc,
# thread stacks, the main heap. For peak-RSS questions that bench/run.sh's one figure
# (VmHWM) cannot answer.
#
#   bench/memory.sh [--hogs] [BINARY] [PATH] [FIXTURE] [NAME=value ...]
#
# Defaults: the release binary, /on-hangup, 09-hangup-normalclearing.form, and
# EVENT_FORMAT=json. Starts the binary on a loopback port (nothing but PATH, LISTEN_ADDR,
# SKIP_SIGNATURE_VERIFICATION=true and the given variables in its environment), loads it
# with wrk -t2 -c32 for 10 s, reads /proc/PID/smaps 8 s in, and prints the resident
# kilobytes by kind, then requests/s and VmHWM. --hogs runs two busy `yes` processes
# beside it during the load, so that the event-line writer falls behind as it does on a
# busy machine. Pass another BINARY (a build of an older commit) to compare two side by side.
# Needs wrk, python3; builds nothing unless BINARY is left out.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
hogs=false
if [[ "${1:-}" == --hogs ]]; then
  hogs=true
  shift
fi
if [[ -n "${1:-}" ]]; then
  binary="$1"
else
  (cd "$ROOT" && cargo build --release --quiet --bin sipgateio-callevents)
  binary="$ROOT/target/release/sipgateio-callevents"
fi
path="${2:-/on-hangup}"
fixture="${3:-09-hangup-normalclearing.form}"
shift 3 2>/dev/null || shift $#
variables=("$@")
[[ ${#variables[@]} -eq 0 ]] && variables=(EVENT_FORMAT=json)
for tool in wrk python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench/memory.sh: $tool is needed" >&2; exit 1; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sipgateio-memory.XXXXXX")"
SERVER_PID="" HOG_PIDS=()
cleanup() {
  for pid in "$SERVER_PID" "${HOG_PIDS[@]}"; do
    [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

start_server "$binary" "$WORK" "${variables[@]}"

if $hogs; then
  for _ in 1 2; do
    yes >/dev/null &
    HOG_PIDS+=($!)
    disown "$!"
  done
fi
BENCH_PATH="$path" BENCH_BODY="$ROOT/tests/fixtures/$fixture" \
  wrk -t2 -c32 -d10s -s "$ROOT/bench/post.lua" "http://127.0.0.1:$SERVER_PORT/" >"$WORK/wrk.txt" &
wrk_pid=$!
sleep 8
python3 - "$SERVER_PID" <<'EOF'
import collections, re, sys

pid = sys.argv[1]
resident = collections.Counter()
mappings = collections.Counter()
kind = None
for line in open(f"/proc/{pid}/smaps"):
    head = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)", line)
    if head:
        start, perms, name = int(head.group(1), 16), head.group(3), head.group(4)
        if name:
            kind = name.rsplit("/", 1)[-1] if name.startswith("/") else name
        elif perms == "rw-p" and start % (64 << 20) == 0:
            # glibc maps each arena's heap at a 64 MiB boundary.
            kind = "malloc arenas"
        else:
            kind = "other anonymous (thread stacks)"
        mappings[kind] += 1
        continue
    if line.startswith("Rss:"):
        resident[kind] += int(line.split()[1])
for kind, kilobytes in resident.most_common(8):
    print(f"{kilobytes:8} kB  {kind} ({mappings[kind]} mappings)")
EOF
wait "$wrk_pid"
for pid in "${HOG_PIDS[@]}"; do
  kill "$pid" 2>/dev/null || true
done
grep -E "Requests/sec" "$WORK/wrk.txt"
grep VmHWM "/proc/$SERVER_PID/status"
