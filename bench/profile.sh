#!/usr/bin/env bash
# Profile one benchmark target under a bounded wrk load with perf (sampling on cpu-clock,
# which works in VMs without hardware counters).
#
#   bench/profile.sh [new-call | new-call-verified | on-hangup | baseline
#                     | new-call-journal | on-hangup-journal] [SECONDS]
#   PROFILER=callgrind bench/profile.sh TARGET [SECONDS]
#   PROFILER=syscalls bench/profile.sh TARGET [SECONDS]
#
# The -journal targets are new-call and on-hangup with CALL_LOG_FILE (CALL_LOG_SYNC=normal),
# a new journal in bench/results/ (the project's file system), removed afterwards.
#
# Builds the release binary (it keeps line tables, so perf resolves symbols), starts the
# target on a loopback port, warms it up, records the server process for SECONDS (default
# 8) while wrk -t2 -c32 loads it, and prints where the server spent its CPU: by binary or
# kernel, then the top functions by self time. The raw data stays in
# bench/results/perf-TARGET.data (git-ignored) for `perf report -i`.
#
# PROFILER=callgrind runs the server under valgrind instead (user-space instructions only,
# exact and independent of other load on the machine): wrk -t1 -c4 for SECONDS (default
# 10), then the instructions per request and the top functions by inclusive cost; the data
# stays in bench/results/callgrind-TARGET.out for callgrind_annotate.
#
# PROFILER=syscalls counts, with perf stat, the server's system calls (all, futex, write)
# and context switches per request during SECONDS (default 8) of wrk -t2 -c32: the kernel
# side of a request, which callgrind does not see, as counts that other load on the
# machine barely moves. Needs access to perf's tracepoints (root).
# Needs perf (apt-get install linux-perf) or valgrind, and wrk; installs nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
FIXTURES="$ROOT/tests/fixtures"
TARGET="${1:-new-call}"
SECONDS_TO_RECORD="${2:-}"

PROFILER="${PROFILER:-perf}"
for tool in "$([[ "$PROFILER" == callgrind ]] && echo valgrind || echo perf)" wrk curl python3 cargo; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench/profile.sh: $tool is needed" >&2; exit 1; }
done

kind=app sig="" env_vars="SKIP_SIGNATURE_VERIFICATION=true"
case "$TARGET" in
  new-call) path=/new-call body=01-newcall-in.form ;;
  new-call-verified)
    path=/new-call body=18-signed-real-capture.form sig=18-signed-real-capture.sig
    env_vars="SKIP_SIGNATURE_VERIFICATION=false" ;;
  on-hangup) path=/on-hangup body=09-hangup-normalclearing.form ;;
  baseline) kind=baseline path=/new-call body=01-newcall-in.form env_vars="" ;;
  new-call-journal) path=/new-call body=01-newcall-in.form journal=1 ;;
  on-hangup-journal) path=/on-hangup body=09-hangup-normalclearing.form journal=1 ;;
  *) echo "bench/profile.sh: unknown target $TARGET" >&2; exit 2 ;;
esac

(cd "$ROOT" && cargo build --release --quiet --bin sipgateio-callevents --example baseline)
TARGET_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sipgateio-profile.XXXXXX")"
if [[ "$kind" == baseline ]]; then
  cp "$TARGET_DIR/release/examples/baseline" "$WORK/server"
else
  cp "$TARGET_DIR/release/sipgateio-callevents" "$WORK/server"
fi
SERVER_PID="" JOURNAL_DIR=""
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill -KILL "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
  [[ -z "$JOURNAL_DIR" ]] || rm -rf "$JOURNAL_DIR"
}
trap cleanup EXIT
if [[ -n "${journal:-}" ]]; then
  # Beside the project, not in TMPDIR, which may be tmpfs.
  mkdir -p "$BENCH/results"
  JOURNAL_DIR="$(mktemp -d "$BENCH/results/journal.XXXXXX")"
  env_vars+=" CALL_LOG_SYNC=normal CALL_LOG_FILE=$JOURNAL_DIR/calls.sqlite"
fi

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
WORKERS="${WORKERS:-$(python3 -c 'import os; print(max(len(os.sched_getaffinity(0)), 4))')}"
mkdir -p "$BENCH/results"
wrapper=()
if [[ "$PROFILER" == callgrind ]]; then
  CG_OUT="$BENCH/results/callgrind-$TARGET.out"
  rm -f "$CG_OUT" "$CG_OUT".*
  wrapper=(valgrind -q --tool=callgrind "--callgrind-out-file=$CG_OUT")
fi
# shellcheck disable=SC2086 # env_vars is a list of NAME=value words
(cd "$WORK" && exec env -i PATH="$PATH" LISTEN_ADDR="127.0.0.1:$PORT" WORKERS="$WORKERS" \
  $env_vars "${wrapper[@]}" ./server >"$WORK/events.out" 2>"$WORK/server.log") &
SERVER_PID=$!
for _ in $(seq 1000); do
  [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$PORT/health" || true)" == 200 ]] && break
  sleep 0.01
done

load() {
  BENCH_PATH="$path" BENCH_BODY="$FIXTURES/$body" BENCH_SIGNATURE="${sig:+$FIXTURES/$sig}" \
    wrk -t2 -c32 -d"$1" --latency -s "$BENCH/post.lua" "http://127.0.0.1:$PORT"
}

stop_server() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# The report's heading: the tool, the load it ran under, and wrk's figures.
heading() {
  echo "## $1: $TARGET ($path), $2"
  echo
  echo "wrk: $(sed 's/^BENCH //' "$WORK/wrk.txt")"
  echo
}
if [[ "$PROFILER" == callgrind ]]; then
  SECONDS_TO_RECORD="${SECONDS_TO_RECORD:-10}"
  callgrind_load() {
    BENCH_PATH="$path" BENCH_BODY="$FIXTURES/$body" BENCH_SIGNATURE="${sig:+$FIXTURES/$sig}" \
      wrk -t1 -c4 -d"$1" -s "$BENCH/post.lua" "http://127.0.0.1:$PORT" | grep '^BENCH'
  }
  # Start-up and the first requests on each connection (thread and buffer set-up) are
  # not counted: a warm-up, then the counters are zeroed, so the figure is per request
  # whatever the run's length.
  callgrind_load 2s >/dev/null
  callgrind_control -z "$SERVER_PID" >/dev/null 2>&1
  callgrind_load "${SECONDS_TO_RECORD}s" >"$WORK/wrk.txt"
  # Dump now (the baseline has no graceful stop), then stop it.
  callgrind_control -d "$SERVER_PID" >/dev/null 2>&1
  kill -KILL "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  CG_FILE="$(ls -t "$CG_OUT"* | head -1)"
  total="$(callgrind_annotate "$CG_FILE" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }')"
  requests="$(sed 's/.*requests=\([0-9]*\).*/\1/' "$WORK/wrk.txt")"
  heading callgrind "wrk -t1 -c4 -d${SECONDS_TO_RECORD}s under valgrind"
  echo "user-space instructions: $total in total, about $((total / requests)) per request (after a 2 s warm-up); data: $CG_FILE"
  echo
  echo "### Top functions, inclusive"
  echo '```'
  callgrind_annotate --inclusive=yes "$CG_FILE" 2>/dev/null |
    grep -E '^ *[0-9,]+ \(' | grep -vE 'thread_start|call_once|backtrace|start_thread|boxed.rs|PROGRAM TOTALS' |
    sed -E 's#/rustc/[0-9a-f]+/library/##; s#/root/.cargo/registry/src/[^/]+/##; s# \[[^]]*\]$##' | head -40
  echo '```'
  exit 0
fi
SECONDS_TO_RECORD="${SECONDS_TO_RECORD:-8}"
load 2s >/dev/null
if [[ "$PROFILER" == syscalls ]]; then
  events=raw_syscalls:sys_enter,syscalls:sys_enter_futex,syscalls:sys_enter_write,context-switches
  perf stat -x, -o "$WORK/stat.csv" -e "$events" -p "$SERVER_PID" &
  STAT_PID=$!
  load "${SECONDS_TO_RECORD}s" | grep '^BENCH' >"$WORK/wrk.txt"
  # A connection thread's counts reach its process's counters only when the thread ends:
  # give the threads of the connections wrk just closed time to end.
  sleep 1
  kill -INT "$STAT_PID"
  wait "$STAT_PID" || true
  stop_server
  heading "system calls" "${SECONDS_TO_RECORD}s under wrk -t2 -c32"
  python3 - "$WORK/stat.csv" "$(sed 's/.*requests=\([0-9]*\).*/\1/' "$WORK/wrk.txt")" <<'PY'
import sys
names = {"raw_syscalls:sys_enter": "system calls", "syscalls:sys_enter_futex": "futex",
         "syscalls:sys_enter_write": "write", "context-switches": "context switches"}
requests = int(sys.argv[2])
for line in open(sys.argv[1]):
    fields = line.strip().split(",")
    if len(fields) > 2 and fields[2] in names and fields[0].replace(".", "").isdigit():
        print(f"{names[fields[2]]:>17}: {float(fields[0]) / requests:.2f} per request")
PY
  exit 0
fi
DATA="$BENCH/results/perf-$TARGET.data"
load "$((SECONDS_TO_RECORD + 2))s" | grep '^BENCH' >"$WORK/wrk.txt" &
WRK_PID=$!
sleep 1
perf record -q -e cpu-clock -F 1999 -p "$SERVER_PID" -o "$DATA" -- sleep "$SECONDS_TO_RECORD" 2>/dev/null
wait "$WRK_PID"
stop_server
heading perf "${SECONDS_TO_RECORD}s under wrk -t2 -c32"
echo "### Where the server's CPU went, by object"
echo '```'
perf report -i "$DATA" --stdio --no-children --sort dso --percent-limit 1 2>/dev/null | grep -v '^#' | sed '/^$/d'
echo '```'
echo "### Top functions, self time"
echo '```'
perf report -i "$DATA" --stdio --no-children --sort dso,symbol --percent-limit 0.8 2>/dev/null |
  grep -v '^#' | sed '/^$/d' | head -40
echo '```'
