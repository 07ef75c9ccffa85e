#!/usr/bin/env bash
# Benchmark: this server's routes and a bare tiny_http baseline, side by side, in one run.
#
#   bench/run.sh [--install] [--quick]
#
# Builds the release binary and examples/baseline.rs, examples/verify_cost.rs,
# examples/rules_cost.rs and examples/route_cost.rs, then for ROUNDS rounds (target order
# rotated each round, so drift hits every target alike) starts each target on a fresh loopback port, warms it
# up, loads it with wrk, samples its memory and CPU time, and stops it. Then it times
# start-up to the first answered request and measures the binary size, one signature
# check, one decision by 50 call rules (bench/rules-50.toml) and the application's part of
# a request (routing and the event line). The `journal` targets run the same requests
# with CALL_LOG_FILE set (CALL_LOG_SYNC=normal), a fresh journal in a new folder of
# bench/results/ per run (on the project's file system, not tmpfs); after each, its rows are
# counted against the event lines. The markdown table goes to stdout and
# to bench/results/latest.md (git-ignored; the raw measurements go to bench/results/raw/,
# and `python3 bench/report.py bench/results/raw/{runs.tsv,extra.txt,meta.txt,verify.txt}`
# renders them again).
#
# Needs: cargo, wrk, curl, python3 (and strip for the stripped size). Installs nothing
# unless run with --install (then: apt-get install wrk). Loopback only; about 10 minutes.
#
# Settings (environment): BENCH_ROUNDS=5, BENCH_DURATION=10s, BENCH_WARMUP=2s,
# BENCH_THREADS=2, BENCH_CONNECTIONS=32, BENCH_STARTS=20, WORKERS (the baseline's worker
# threads; default: the number of CPUs but at least 4, as the server had before it served
# each connection on its own thread). --quick: 1 round of
# 3 s, 5 starts (a smoke test, not a measurement).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
FIXTURES="$ROOT/tests/fixtures"

ROUNDS="${BENCH_ROUNDS:-5}"
DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-2s}"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
STARTS="${BENCH_STARTS:-20}"
COMMAND_LINE="bench/run.sh $*"

for arg in "$@"; do
  case "$arg" in
    --install) INSTALL=1 ;;
    --quick) ROUNDS=1 DURATION=3s WARMUP=1s STARTS=5 ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

# The targets: name | server (app or baseline) | path | body fixture | signature file | env.
# To add a row, add a line; env is space-separated NAME=value pairs for the server, and
# @JOURNAL@ in it becomes a new journal file for each run. A journal target follows its
# route without the journal, so that the rotation below runs the two one after the other
# (in all but the round where the list wraps between them).
TARGETS=(
  "baseline|baseline|/new-call|01-newcall-in.form||"
  "/new-call|app|/new-call|01-newcall-in.form||SKIP_SIGNATURE_VERIFICATION=true"
  "/new-call journal|app|/new-call|01-newcall-in.form||SKIP_SIGNATURE_VERIFICATION=true CALL_LOG_SYNC=normal CALL_LOG_FILE=@JOURNAL@"
  "/new-call verified|app|/new-call|18-signed-real-capture.form|18-signed-real-capture.sig|SKIP_SIGNATURE_VERIFICATION=false"
  "/on-hangup|app|/on-hangup|09-hangup-normalclearing.form||SKIP_SIGNATURE_VERIFICATION=true"
  "/on-hangup journal|app|/on-hangup|09-hangup-normalclearing.form||SKIP_SIGNATURE_VERIFICATION=true CALL_LOG_SYNC=normal CALL_LOG_FILE=@JOURNAL@"
  "/on-hangup json|app|/on-hangup|09-hangup-normalclearing.form||SKIP_SIGNATURE_VERIFICATION=true EVENT_FORMAT=json"
  "/new-call 50 rules|app|/new-call|01-newcall-in.form||SKIP_SIGNATURE_VERIFICATION=true CALL_RULES_FILE=$BENCH/rules-50.toml"
  "/new-call metrics|app|/new-call|01-newcall-in.form||SKIP_SIGNATURE_VERIFICATION=true METRICS=true"
)

# ---- tools ------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  if [[ "${INSTALL:-}" == 1 ]]; then
    sudo_cmd=""
    [[ "$(id -u)" != 0 ]] && sudo_cmd="sudo"
    $sudo_cmd apt-get update && $sudo_cmd apt-get install -y wrk
  else
    echo "bench/run.sh: wrk is not installed; run: apt-get install wrk (or bench/run.sh --install)" >&2
    exit 1
  fi
fi
for tool in cargo curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench/run.sh: $tool is needed" >&2; exit 1; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sipgateio-bench.XXXXXX")"
# The journals go beside the project, not to TMPDIR, which may be tmpfs: a journal in
# memory would not measure the disk the server will write to.
mkdir -p "$BENCH/results"
JOURNAL_FILE_SYSTEM="$(findmnt -n -o FSTYPE,SOURCE -T "$BENCH/results" 2>/dev/null | tr -s ' ' ||
  stat -f -c %T "$BENCH/results")"
SERVER_PID="" JOURNAL_DIR=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  [[ -z "$JOURNAL_DIR" ]] || rm -rf "$JOURNAL_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build ------------------------------------------------------------------------------
echo "building release binaries..." >&2
(cd "$ROOT" && cargo build --release --quiet --bin sipgateio-callevents \
  --example baseline --example verify_cost --example rules_cost --example route_cost)
TARGET_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
APP_BIN="$TARGET_DIR/release/sipgateio-callevents"
BASELINE_BIN="$TARGET_DIR/release/examples/baseline"
VERIFY_BIN="$TARGET_DIR/release/examples/verify_cost"
# Copies, so that another build in the shared target dir cannot swap them mid-run.
cp "$APP_BIN" "$WORK/app"
cp "$BASELINE_BIN" "$WORK/baseline"
APP_BIN="$WORK/app"
BASELINE_BIN="$WORK/baseline"
# The commit is taken now, when the binaries are built: others may commit during the run.
if COMMIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)"; then
  (cd "$ROOT" && git diff --quiet HEAD -- src Cargo.toml) || COMMIT="$COMMIT, with uncommitted changes in src/ or Cargo.toml"
else
  COMMIT="unknown (not a git checkout)"
fi

WORKERS="${WORKERS:-$(python3 -c 'import os; print(max(len(os.sched_getaffinity(0)), 4))')}"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_server KIND ENV STDOUT_FILE: starts it in an empty directory (no .env) with only
# the given variables; sets SERVER_PID and PORT, and waits until /health answers.
start_server() {
  local kind="$1" env_vars="$2" out="$3" bin
  [[ "$kind" == baseline ]] && bin="$BASELINE_BIN" || bin="$APP_BIN"
  PORT="$(free_port)"
  mkdir -p "$WORK/cwd"
  # shellcheck disable=SC2086 # env_vars is a list of NAME=value words
  local workers=""
  [[ "$kind" == baseline ]] && workers="WORKERS=$WORKERS"
  # shellcheck disable=SC2086 # workers is empty or one NAME=value word
  (cd "$WORK/cwd" && exec env -i PATH="$PATH" LISTEN_ADDR="127.0.0.1:$PORT" \
    $workers $env_vars "$bin" >"$out" 2>"$WORK/server.log") &
  SERVER_PID=$!
  local tries=0
  until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
    "http://127.0.0.1:$PORT/health" || true)" == 200 ]]; do
    tries=$((tries + 1))
    if ((tries > 500)) || ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "bench/run.sh: the $kind server did not come up; its log:" >&2
      tail -5 "$WORK/server.log" >&2
      exit 1
    fi
    sleep 0.01
  done
}

stop_server() {
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  local tries=0
  while kill -0 "$SERVER_PID" 2>/dev/null && ((tries < 100)); do
    sleep 0.05
    tries=$((tries + 1))
  done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# Lines in FILE once it has stopped growing (the server may write event lines from a
# thread of its own, a moment after the reply); waits at most about 2 s.
settled_lines() {
  local before after tries=0
  after=$(wc -l <"$1")
  while ((tries < 40)); do
    sleep 0.05
    before=$after
    after=$(wc -l <"$1")
    [[ "$after" == "$before" ]] && break
    tries=$((tries + 1))
  done
  echo "$after"
}

# CPU time (user + system, clock ticks) of the server process, all threads.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# Rows in a journal's events table, read-only (python3's sqlite3: no sqlite3 shell needed).
journal_rows() {
  python3 -c 'import sqlite3, sys; print(sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True).execute("SELECT COUNT(*) FROM events").fetchone()[0])' "$1"
}
status_kb() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }

run_wrk() { # DURATION PATH BODY SIGNATURE
  BENCH_PATH="$2" BENCH_BODY="$3" BENCH_SIGNATURE="$4" \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$1" --latency -s "$BENCH/post.lua" \
    "http://127.0.0.1:$PORT"
}

# ---- load -------------------------------------------------------------------------------
RUNS="$WORK/runs.tsv"
: >"$RUNS"
count=${#TARGETS[@]}
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "load: $ROUNDS round(s) x $count targets, wrk -t$THREADS -c$CONNECTIONS -d$DURATION" \
  "after a $WARMUP warm-up, WORKERS=$WORKERS; load average: $LOAD_START" >&2
for ((round = 1; round <= ROUNDS; round++)); do
  for ((i = 0; i < count; i++)); do
    index=$(((i + round - 1) % count))
    IFS='|' read -r name kind path body sig env_vars <<<"${TARGETS[$index]}"
    body_file="$FIXTURES/$body"
    sig_file=""
    [[ -n "$sig" ]] && sig_file="$FIXTURES/$sig"
    out="$WORK/events.out"
    journal=""
    if [[ "$env_vars" == *@JOURNAL@* ]]; then
      JOURNAL_DIR="$(mktemp -d "$BENCH/results/journal.XXXXXX")"
      journal="$JOURNAL_DIR/calls.sqlite"
      env_vars="${env_vars//@JOURNAL@/$journal}"
    fi
    start_server "$kind" "$env_vars" "$out"
    # One request first: it must be answered 200 (the signed one proves verification).
    curl_args=(-s -o /dev/null -w '%{http_code}' --max-time 5
      -H 'Content-Type: application/x-www-form-urlencoded; charset=UTF-8'
      --data-binary "@$body_file")
    [[ -n "$sig_file" ]] && curl_args+=(-H "X-Sipgate-Signature: $(cat "$sig_file")")
    code="$(curl "${curl_args[@]}" "http://127.0.0.1:$PORT$path" || true)"
    if [[ "$code" != 200 ]]; then
      echo "bench/run.sh: $name answered $code, not 200; its log:" >&2
      tail -5 "$WORK/server.log" >&2
      stop_server
      exit 1
    fi
    run_wrk "$WARMUP" "$path" "$body_file" "$sig_file" >/dev/null
    lines_before=$(settled_lines "$out")
    ticks_before=$(cpu_ticks "$SERVER_PID")
    result="$(run_wrk "$DURATION" "$path" "$body_file" "$sig_file" | grep '^BENCH ')"
    ticks_after=$(cpu_ticks "$SERVER_PID")
    hwm=$(status_kb "$SERVER_PID" VmHWM)
    rss=$(status_kb "$SERVER_PID" VmRSS)
    threads=$(status_kb "$SERVER_PID" Threads)
    lines_after=$(settled_lines "$out")
    stop_server
    # The journal after the clean stop: a row for each event line printed since the start
    # (warm-up included) means no answered event was left out; and its size on disk.
    journal_fields=""
    if [[ -n "$journal" ]]; then
      # The -wal is gone after a clean stop, unless the last checkpoint failed.
      journal_bytes=0
      for file in "$journal" "$journal-wal"; do
        [[ -e "$file" ]] && journal_bytes=$((journal_bytes + $(stat -c %s "$file")))
      done
      journal_fields=$(printf '\tjournal_rows=%s journal_lines=%s journal_bytes=%s' \
        "$(journal_rows "$journal")" "$(wc -l <"$out")" "$journal_bytes")
      rm -rf "$JOURNAL_DIR"
      JOURNAL_DIR=""
    fi
    # Event lines the server could not write to stdout go to its log instead (warm-up
    # included); count them, so that a lost line is told from a diverted one.
    diverted=$(grep -c 'could not write the event line' "$WORK/server.log" || true)
    format=none
    if [[ -s "$out" ]]; then
      case "$(head -c1 "$out")" in "{") format=json ;; *) format=text ;; esac
    fi
    printf 'round=%s\tname=%s\t%s\tticks=%s\tlines=%s\tdiverted=%s\thwm_kb=%s\trss_kb=%s\tthreads=%s\tformat=%s%s\n' \
      "$round" "$name" "${result#BENCH }" "$((ticks_after - ticks_before))" \
      "$((lines_after - lines_before))" "$diverted" "$hwm" "$rss" "$threads" "$format" \
      "$journal_fields" >>"$RUNS"
    echo "  round $round: $name: ${result#BENCH }" >&2
  done
done

# ---- start-up, size, signature cost -----------------------------------------------------
echo "start-up: $STARTS starts each..." >&2
startup() { # ENV_LINES BIN [MORE_ENV_LINES]
  printf '%s\n' $1 ${3:-} >"$WORK/startup.env"
  python3 "$BENCH/startup.py" "$STARTS" "$WORK/startup.env" -- "$2"
}
{
  echo "startup baseline $(startup "" "$BASELINE_BIN" "WORKERS=$WORKERS")"
  echo "startup app-verification-off $(startup "SKIP_SIGNATURE_VERIFICATION=true" "$APP_BIN")"
  echo "startup app-verification-on $(startup "SKIP_SIGNATURE_VERIFICATION=false" "$APP_BIN")"
  for bin in app baseline; do
    size=$(stat -c %s "$WORK/$bin")
    stripped=n/a
    if command -v strip >/dev/null 2>&1; then
      strip -o "$WORK/$bin.stripped" "$WORK/$bin" && stripped=$(stat -c %s "$WORK/$bin.stripped")
    fi
    echo "size $bin unstripped=$size stripped=$stripped"
  done
  "$VERIFY_BIN" 2000 >"$WORK/verify.txt"
  echo "verify $(tail -1 "$WORK/verify.txt")"
} >"$WORK/extra.txt"
sed -i '$d' "$WORK/verify.txt"

# ---- report -----------------------------------------------------------------------------
{
  echo "command $COMMAND_LINE"
  echo "load wrk -t$THREADS -c$CONNECTIONS -d$DURATION (warm-up $WARMUP), $ROUNDS round(s), WORKERS=$WORKERS"
  echo "date $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit $COMMIT"
  echo "cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), nproc $(nproc)"
  echo "kernel $(uname -sr)"
  echo "rustc $(rustc --version)"
  echo "loadavg $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (1, 5, 15 min)"
  echo "journal_fs $JOURNAL_FILE_SYSTEM (bench/results/)"
} >"$WORK/meta.txt"
mkdir -p "$BENCH/results/raw"
cp "$WORK/runs.tsv" "$WORK/extra.txt" "$WORK/meta.txt" "$WORK/verify.txt" "$BENCH/results/raw/"
{
  BENCH_CONNECTIONS="$CONNECTIONS" python3 "$BENCH/report.py" "$WORK/runs.tsv" "$WORK/extra.txt" "$WORK/meta.txt" "$WORK/verify.txt"
  echo
  echo "### Call rules: deciding by 50 rules (examples/rules_cost.rs)"
  echo
  echo '```'
  "$TARGET_DIR/release/examples/rules_cost"
  echo '```'
  echo
  echo "### Routing and the event line, without tiny_http (examples/route_cost.rs)"
  echo
  echo '```'
  "$TARGET_DIR/release/examples/route_cost"
  echo '```'
} | tee "$BENCH/results/latest.md"
