#!/usr/bin/env bash
# The call journal under a long load, and the check that it loses nothing: EVENTS events
# (whole calls: newCall, answer, hangup, each call with a callId of its own; bench/calls.lua)
# over CONNECTIONS keep-alive connections to the release binary with CALL_LOG_FILE set,
# then a clean stop (SIGTERM) and a count of the rows in the journal's `events` table.
#
#   bench/journal-load.sh [normal|full]
#
# Checks that every event was answered 200, that the journal holds exactly one row per
# 200 (no event acknowledged and missing, none twice), that stdout has a line per 200,
# that the file passes SQLite's quick_check and that the server exits 0; reports the
# run's duration and throughput, wrk's p50 and p99, the server's peak RSS, and the file's
# size per million events (main file plus -wal, at the end of the load and after the stop).
#
# Settings (environment): EVENTS (1000000), THREADS (2, wrk's), CONNECTIONS (32),
# MAX_SECONDS (900: wrk's own limit, the run's bound), KEEP=1 keeps the journal and the
# event lines (by default they are removed: about 0.7 and 0.16 GB per million events),
# OUT (the folder for the files; by default a new one in bench/results/, on the project's
# file system, since a journal on tmpfs would measure memory, not a disk).
# Needs wrk, curl, python3 (its sqlite3 module), cargo. Loopback only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
SYNC="${1:-normal}"
case "$SYNC" in normal | full) ;; *) echo "usage: bench/journal-load.sh [normal|full]" >&2; exit 2 ;; esac
EVENTS="${EVENTS:-1000000}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
MAX_SECONDS="${MAX_SECONDS:-900}"
# Each thread stops once its own events are answered; with fewer events than threads
# one would never have any to wait for.
((EVENTS >= THREADS)) || { echo "bench/journal-load.sh: EVENTS must be at least THREADS" >&2; exit 2; }
for tool in wrk curl python3 cargo; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench/journal-load.sh: $tool is needed" >&2; exit 1; }
done

mkdir -p "$BENCH/results"
OUT="${OUT:-$(mktemp -d "$BENCH/results/journal-load.XXXXXX")}"
mkdir -p "$OUT/marks"
JOURNAL="$OUT/calls.sqlite"
rm -f "$JOURNAL" "$JOURNAL-wal" "$JOURNAL-shm" "$OUT"/marks/done-*
FILE_SYSTEM="$(findmnt -n -o FSTYPE,SOURCE -T "$OUT" 2>/dev/null | tr -s ' ' || stat -f -c %T "$OUT")"

SERVER_PID="" WRK_PID=""
cleanup() {
  for pid in "$WRK_PID" "$SERVER_PID"; do
    [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
  done
  # The journal and the event lines are large (0.7 and 0.16 GB per million events); the
  # summary and the server's log stay.
  [[ "${KEEP:-}" == 1 ]] || rm -f "$JOURNAL" "$JOURNAL-wal" "$JOURNAL-shm" "$OUT/events.out"
  rm -f "$OUT/server"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$ROOT" && cargo build --release --quiet --bin sipgateio-callevents)
TARGET_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
# A copy, so that another build in the shared target dir cannot swap it mid-run.
cp "$TARGET_DIR/release/sipgateio-callevents" "$OUT/server"
# Taken when the binary is built: others may commit during the run.
COMMIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
(cd "$ROOT" && git diff --quiet HEAD -- src Cargo.toml 2>/dev/null) || COMMIT="$COMMIT, with uncommitted changes in src/ or Cargo.toml"

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
(cd "$OUT" && exec env -i PATH="$PATH" LISTEN_ADDR="127.0.0.1:$PORT" \
  SKIP_SIGNATURE_VERIFICATION=true CALL_LOG_FILE="$JOURNAL" CALL_LOG_SYNC="$SYNC" \
  ./server >"$OUT/events.out" 2>"$OUT/server.log") &
SERVER_PID=$!
for _ in $(seq 500); do
  [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$PORT/health" || true)" == 200 ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server did not start:" >&2; cat "$OUT/server.log" >&2; exit 1; }
  sleep 0.01
done

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "journal load: $EVENTS events, CALL_LOG_SYNC=$SYNC, wrk -t$THREADS -c$CONNECTIONS, journal on $FILE_SYSTEM; load average $LOAD_START" >&2
started=$(date +%s.%N)
LOAD_EVENTS="$EVENTS" LOAD_THREADS="$THREADS" LOAD_FIXTURES="$ROOT/tests/fixtures" LOAD_MARKS="$OUT/marks" \
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${MAX_SECONDS}s" --timeout 10s -s "$BENCH/calls.lua" \
  "http://127.0.0.1:$PORT" >"$OUT/wrk.txt" &
WRK_PID=$!
# Each wrk thread leaves a mark once all its events are answered; wrk itself would sleep
# out its whole duration, so the end is taken from the marks and wrk is told to stop.
while kill -0 "$WRK_PID" 2>/dev/null; do
  marks=$(find "$OUT/marks" -name 'done-*' | wc -l)
  ((marks >= THREADS)) && break
  sleep 0.05
done
finished=$(date +%s.%N)
kill -INT "$WRK_PID" 2>/dev/null || true
wait "$WRK_PID" || true
WRK_PID=""
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }
main_loaded=$(size_of "$JOURNAL") wal_loaded=$(size_of "$JOURNAL-wal")
hwm_kb=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$SERVER_PID/status")

# The clean stop: the writer commits what waits and closes the file.
kill -TERM "$SERVER_PID"
stop_started=$(date +%s.%N)
status=0
wait "$SERVER_PID" || status=$?
stop_seconds=$(python3 -c "print(f'{$(date +%s.%N) - $stop_started:.2f}')")
SERVER_PID=""
main_stopped=$(size_of "$JOURNAL") wal_stopped=$(size_of "$JOURNAL-wal")

# Read-only: counting must not change what is measured.
python3 - "$JOURNAL" >"$OUT/rows.txt" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
rows, distinct = db.execute(
    "SELECT COUNT(*), COUNT(DISTINCT call_id || ' ' || event) FROM events").fetchone()
kinds = dict(db.execute("SELECT event, COUNT(*) FROM events GROUP BY event"))
calls = db.execute("SELECT COUNT(DISTINCT call_id) FROM events").fetchone()[0]
check = db.execute("PRAGMA quick_check").fetchone()[0]
print(f"rows={rows} distinct={distinct} calls={calls} newCall={kinds.get('newCall', 0)} "
      f"answer={kinds.get('answer', 0)} hangup={kinds.get('hangup', 0)} quick_check={check}")
EOF
lines=$(wc -l <"$OUT/events.out")
# Trouble with the journal is logged as a warning or an error (an event answered before
# its commit, a failed write); the info line at start is not counted.
journal_errors=$(grep -cE '(WARN|ERROR).*call journal' "$OUT/server.log" || true)

seconds=$(python3 -c "print(f'{$finished - $started:.3f}')")
cat >"$OUT/measured.txt" <<EOF
events=$EVENTS seconds=$seconds lines=$lines journal_log_lines=$journal_errors status=$status
stop_seconds=$stop_seconds hwm_kb=$hwm_kb main_loaded=$main_loaded
wal_loaded=$wal_loaded main_stopped=$main_stopped wal_stopped=$wal_stopped
EOF
python3 - "$OUT/wrk.txt" "$OUT/rows.txt" "$OUT/measured.txt" <<EOF | tee "$OUT/summary.txt"
import sys

def pairs(path, prefix=""):
    found = {}
    for line in open(path):
        if line.startswith(prefix):
            for pair in line.split():
                key, _, value = pair.partition("=")
                if value:
                    found[key] = value if not value.lstrip("-").replace(".", "").isdigit() else float(value)
    return found

load, rows, m = pairs(sys.argv[1], "LOAD "), pairs(sys.argv[2]), pairs(sys.argv[3])
events, ok, seconds = m["events"], load.get("ok", 0), m["seconds"]
stored = m["main_stopped"] + m["wal_stopped"]
print(f"CALL_LOG_SYNC=$SYNC, {events:,.0f} events over wrk -t$THREADS -c$CONNECTIONS, journal on $FILE_SYSTEM")
print(f"commit $COMMIT, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs")
print(f"load average: $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end")
print(f"duration {seconds:.1f} s, {ok / seconds:,.0f} events/s; wrk p50 {load.get('p50_us', 0) / 1000:.2f} ms, "
      f"p99 {load.get('p99_us', 0) / 1000:.2f} ms, max {load.get('max_us', 0) / 1000:.1f} ms "
      f"(with the few GET /health fillers)")
print(f"answered 200: {ok:,.0f} of {load.get('sent', 0):,.0f} sent ({load.get('other_status', 0):.0f} other statuses; "
      f"errors: connect {load.get('connect_errors', 0):.0f}, read {load.get('read_errors', 0):.0f}, "
      f"write {load.get('write_errors', 0):.0f}, timeouts {load.get('timeouts', 0):.0f})")
print(f"rows in events: {rows['rows']:,.0f} ({rows['distinct']:,.0f} distinct callId and event; "
      f"{rows['calls']:,.0f} calls: {rows['newCall']:,.0f} newCall, {rows['answer']:,.0f} answer, "
      f"{rows['hangup']:,.0f} hangup); quick_check {rows['quick_check']}")
print(f"event lines on stdout: {m['lines']:,.0f}; warnings and errors about the journal in the server's log: "
      f"{m['journal_log_lines']:.0f}; server exit status {m['status']:.0f}, "
      f"{m['stop_seconds']:.2f} s from SIGTERM to exit")
print(f"peak RSS (VmHWM) {m['hwm_kb'] * 1024 / 1e6:.1f} MB")
print(f"file at the end of the load: main {m['main_loaded'] / 1e6:,.1f} MB + -wal {m['wal_loaded'] / 1e6:,.1f} MB; "
      f"after the stop: main {m['main_stopped'] / 1e6:,.1f} MB + -wal {m['wal_stopped'] / 1e6:,.1f} MB; "
      f"{stored / max(rows['rows'], 1):,.0f} bytes per event, so "
      f"{stored / max(rows['rows'], 1):,.0f} MB per million events")
checks = [
    ("every event answered 200", ok == events and load.get("sent") == events),
    ("a row for every 200, none twice (rows == 200s == distinct)", rows["rows"] == ok == rows["distinct"]),
    ("an event line for every 200", m["lines"] == ok),
    ("quick_check ok", rows["quick_check"] == "ok"),
    ("the server exits 0", m["status"] == 0),
]
failed = False
for name, passed in checks:
    print(("ok: " if passed else "FAILED: ") + name)
    failed |= not passed
sys.exit(1 if failed else 0)
EOF
