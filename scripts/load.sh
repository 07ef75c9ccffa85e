#!/usr/bin/env bash
# Load and loss check on the loopback interface, bounded in time and count.
#
#   scripts/load.sh [full|stop]
#
# full (default): EVENTS valid events (the four routes in turn, each with a unique callId,
#   SKIP_SIGNATURE_VERIFICATION=true) over CONNECTIONS keep-alive connections; then checks
#   that stdout holds exactly one well-formed line per 200 answer (none missing,
#   duplicated or interleaved) and reports RSS (VmRSS) at start, peak and end.
# stop: the same load, but SIGTERM after STOP_AFTER seconds: every request answered 200
#   before the stop must have its line, and the process must exit 0.
#
# Settings (environment): EVENTS (100000), CONNECTIONS (48), MAX_SECONDS (120, the load
# client's own limit), STOP_AFTER (2), OUT (a temporary directory for the files).
set -euo pipefail

mode=${1:-full}
events=${EVENTS:-100000}
connections=${CONNECTIONS:-48}
max_seconds=${MAX_SECONDS:-120}
stop_after=${STOP_AFTER:-2}
case "$mode" in full | stop) ;; *) echo "usage: $0 [full|stop]" >&2; exit 2 ;; esac

cd "$(dirname "$0")/.."
out=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/load.XXXXXX")}
mkdir -p "$out"
cargo build --release --quiet --bin sipgateio-callevents --example load
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin=$target_dir/release/sipgateio-callevents
load=$target_dir/release/examples/load

# Port 0: the server logs the port it got.
cd "$out"
rm -f events.out server.log rss.samples answered.txt ./*.sorted load.summary
LISTEN_ADDR=127.0.0.1:0 SKIP_SIGNATURE_VERIFICATION=true RUST_LOG=warn,sipgateio_callevents=info \
    "$bin" >events.out 2>server.log &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
addr=
for _ in $(seq 100); do
    addr=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' server.log | head -n 1)
    [ -n "$addr" ] && break
    sleep 0.05
done
[ -n "$addr" ] || { echo "the server did not start:" >&2; cat server.log >&2; exit 1; }
case "$addr" in 127.*) ;; *) echo "refusing non-loopback $addr" >&2; exit 1 ;; esac

rss() { sed -n "s/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$pid/status" 2>/dev/null || true; }
rss_start=$(rss)
(while kill -0 "$pid" 2>/dev/null; do rss >>rss.samples; sleep 0.1; done) &
sampler=$!

if [ "$mode" = stop ]; then
    (sleep "$stop_after"; kill -TERM "$pid") &
fi
"$load" "$addr" "$events" "$connections" "$max_seconds" answered.txt | tee load.summary
rss_end=$(rss)

if [ "$mode" = full ]; then
    kill -TERM "$pid"
fi
status=0
wait "$pid" || status=$?
trap - EXIT
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
rss_peak=$(sort -n rss.samples | tail -n 1)
samples=$(wc -l <rss.samples)
# Flat means: no growth between the first tenth of the run and its last tenth.
rss_early=$(sed -n "$((samples / 10 + 1))p" rss.samples)
rss_late=$(sed -n "$((samples * 9 / 10 + 1))p" rss.samples)
to_stderr=$(grep -c 'could not write the event line' server.log || true)

fail=0
check() { if ! eval "$2"; then echo "FAILED: $1" >&2; fail=1; else echo "ok: $1"; fi; }
answered=$(wc -l <answered.txt)
lines=$(wc -l <events.out)
grep -o 'callId load-[0-9]*-[0-9]*' events.out | cut -d' ' -f2 | sort >printed.sorted
sort answered.txt >answered.sorted
# A line is whole when it is one of the four event lines with exactly one callId.
malformed=$(grep -cvE '^(New call from .* \(direction in\), callId load-[0-9]+-[0-9]+|4915791234567 answered call from 492111234567, answering number 4915791234567, callId load-[0-9]+-[0-9]+|The call has been hung up, cause normalClearing, callId load-[0-9]+-[0-9]+|DTMF digits 0815, callId load-[0-9]+-[0-9]+)$' events.out || true)
duplicated=$(uniq -d printed.sorted | wc -l)
missing=$(comm -23 answered.sorted printed.sorted | wc -l)
unanswered_lines=$(comm -13 answered.sorted printed.sorted | wc -l)

echo "mode $mode: answered 200: $answered, event lines: $lines, missing: $missing, duplicated: $duplicated, malformed: $malformed, printed but not seen answered: $unanswered_lines"
echo "event lines sent to stderr instead of stdout: $to_stderr"
echo "exit status $status; VmRSS kB start $rss_start, at 10% $rss_early, at 90% $rss_late, peak $rss_peak, end ${rss_end:-gone} ($samples samples); files in $out"
check "the server exits 0" '[ "$status" -eq 0 ]'
check "no answered event is missing its line" '[ "$missing" -eq 0 ]'
check "no line is duplicated" '[ "$duplicated" -eq 0 ]'
check "no line is malformed or interleaved" '[ "$malformed" -eq 0 ]'
if [ "$mode" = full ]; then
    check "as many lines as 200 answers" '[ "$lines" -eq "$answered" ]'
    check "every event was answered 200" '[ "$answered" -eq "$events" ]'
else
    check "the stop came during the load" '[ "$answered" -lt "$events" ] && [ "$answered" -gt 0 ]'
    # Printed before the answer went out; an answer cut off by the exit may be unseen.
    check "lines without a seen answer are at most one per connection" '[ "$unanswered_lines" -le "$connections" ]'
fi
exit $fail
